#pragma once
// WinDbg's debugger command programs: the text of a command line, a breakpoint's command string
// or a script file, run statement by statement. Statements are separated by ';' (not inside
// "quotes"), and may be control flow tokens with { } blocks:
//   .if (c) { } .elsif (c) { } .else { }    .for (init; c; incr; incr) { }
//   .while (c) { }    .do { } (c)    .break    .continue    .block { }    .catch { }    .leave
//   j c 'cmds1' ; 'cmds2'    $$ comment (to the next ';')    * comment (to the end)
//   $$<file (line by line)    $$><file, $><file (condensed: newlines become ';')
//   $$>a<file arg1 "arg 2" (condensed, ${$arg1}... replaced; no echo)
// Aliases are replaced as each block is entered (Aliases::expand). Conditions are MASM
// expressions through the host. The engine never prints: plain commands, errors and the echo of
// script lines go to the host.
#include "cli/Aliases.h"
#include "transport/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::cli {

enum class ScriptFlow {
    Normal,
    Break,    // .break: leaves the innermost loop
    Continue, // .continue: next iteration of the innermost loop
    Leave,    // .leave: leaves the innermost .catch block
    Abort,    // stop this program: an error in a condition, Ctrl+C, or the target resumed
    Quit,     // q: stop everything
};

class ScriptHost {
  public:
    virtual ~ScriptHost() = default;
    // One plain command (no control flow token). Normal to go on, Abort to stop the program
    // (e.g. a breakpoint's command string resumed the target), Quit after q.
    virtual ScriptFlow script_command(std::string_view command) = 0;
    // A MASM expression: the whole text, or its longest prefix (for j).
    virtual Result<uint64_t> script_evaluate(std::string_view expression) = 0;
    virtual Result<uint64_t> script_evaluate_prefix(std::string_view text, size_t* consumed) = 0;
    virtual void script_error(std::string_view message) = 0;
    // Ctrl+C: loops and scripts stop.
    virtual bool script_interrupted() = 0;
    // A script file's text.
    virtual Result<std::string> script_read_file(const std::string& path) = 0;
    // $$< and $$>< show the commands they run, as WinDbg does, with the prompt.
    virtual void script_echo(std::string_view command) = 0;
};

class ScriptEngine {
  public:
    ScriptEngine(ScriptHost& host, Aliases& aliases) : m_host(host), m_aliases(aliases) {}

    // Enters a block: its aliases are replaced, then its statements run.
    ScriptFlow run_block(std::string_view text);
    // Runs statements without replacing aliases first (the text was replaced already).
    ScriptFlow run_statements(std::string_view text);

    // Splits "a; b; c" at the ';' that are not in quotes, parentheses or { } blocks.
    static std::vector<std::string> split_top_level(std::string_view text);

  private:
    struct Cursor {
        std::string_view text;
        size_t pos = 0;
        bool at_end() const { return pos >= text.size(); }
    };

    ScriptFlow run_one(Cursor& c);
    ScriptFlow run_if(Cursor& c);
    ScriptFlow run_for(Cursor& c);
    ScriptFlow run_while(Cursor& c, bool do_while);
    ScriptFlow run_j(std::string_view rest);
    ScriptFlow run_script_file(Cursor& c);
    ScriptFlow loop_body(std::string_view body, bool& stop);

    // ( ... ) at the cursor (after blanks and ';'): the text inside. Without parentheses, the
    // text up to the next '{' (for .if/.while) or ';' (after .do's block).
    bool take_condition(Cursor& c, std::string_view what, std::string& out, bool until_brace);
    // { ... } at the cursor (after blanks and ';'): the text inside.
    bool take_block(Cursor& c, std::string_view what, std::string& out);
    // Evaluates a condition; nullopt after reporting an error.
    std::optional<bool> condition(std::string_view text);
    ScriptFlow syntax_error(std::string_view what, std::string_view near);

    ScriptHost& m_host;
    Aliases& m_aliases;
    int m_depth = 0;
};

} // namespace kdcart::cli
