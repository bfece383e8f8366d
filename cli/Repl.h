#pragma once
// The kd> command loop: reads WinDbg commands, runs them through the engine, prints WinDbg's
// formats. All text output of kdcart goes through here.
#include "cli/Aliases.h"
#include "cli/Script.h"
#include "cli/SourceListing.h"
#include "cli/SymbolCommands.h"
#include "engine/Debugger.h"

#include <atomic>
#include <functional>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::cli {

// Set by the SIGINT handler; the loops poll it.
extern std::atomic<bool> g_interrupt;
// Set by SIGTERM/SIGHUP: leave the target clean (break in, remove breakpoints, resume), quit.
extern std::atomic<bool> g_terminate;

class Output {
public:
    virtual ~Output() = default;
    virtual void write(std::string_view text) = 0;
};

// Everything the REPL prints goes through here: to the real output and, while .logopen has a
// file open, to the log too (ScriptCommands.cpp). `as /c` captures instead.
class LogOutput final : public Output {
public:
    explicit LogOutput(Output& inner) : m_inner(inner) {}
    ~LogOutput() override;
    LogOutput(const LogOutput&) = delete;
    LogOutput& operator=(const LogOutput&) = delete;
    void write(std::string_view text) override;
    // Into the log only (the command lines the user typed, which the terminal showed).
    void log_only(std::string_view text);
    [[nodiscard]] Result<void> open(const std::string& path, bool append);
    void close();
    bool is_open() const { return m_file != nullptr; }
    const std::string& path() const { return m_path; }
    void begin_capture(std::string* into) { m_capture = into; }
    void end_capture() { m_capture = nullptr; }

private:
    Output& m_inner;
    std::FILE* m_file = nullptr;
    std::string m_path;
    std::string* m_capture = nullptr;
};

// The evaluator lives in the engine; commands use it by these names.
using engine::evaluate_expression;
using engine::evaluate_expression_prefix;
using engine::ExpressionCallbacks;
using engine::k_max_range_bytes;
using engine::parse_range;
using engine::Range;

class Repl final : public engine::EngineDelegate, private ScriptHost {
public:
    explicit Repl(Output& out) : m_log(out), m_out(m_log) {}

    void set_debugger(engine::Debugger* dbg);
    // Reads one line from the user (for DbgPrompt); nullopt at end of input.
    void set_line_reader(std::function<std::optional<std::string>(const std::string&)> reader) {
        m_line_reader = std::move(reader);
    }
    // Prints what WinDbg prints once connected, then the stop.
    void announce_connection(const engine::StopEvent& stop);
    void print_stop(const engine::StopEvent& stop);
    // -z: what WinDbg prints when it opens a dump (kind, version, bug check, where it stopped).
    void announce_dump();
    // -srcpath: the source search path (.srcpath).
    void set_source_path(const std::string& dirs) { m_source.finder().set_path(dirs); }

    enum class Flow { Continue, Quit };
    // Runs one input line: ';'-separated commands, control flow tokens and aliases as in
    // WinDbg's command programs (cli/Script.h, ScriptCommands.cpp).
    Flow execute_line(const std::string& line);
    // Waits for the running target to stop, breaking in on Ctrl+C. Returns false when the
    // link failed for good.
    bool wait_while_running();
    std::string prompt() const;
    bool quit_requested() const { return m_quit; }
    int exit_code() const { return m_exit_code; }

    // EngineDelegate
    void on_debug_print(std::string_view text) override;
    std::string on_debug_prompt(std::string_view prompt) override;
    void on_notice(std::string_view text) override;
    void on_exception_passed(const engine::StopEvent& event) override;

private:
    Flow run_command(std::string_view cmd);
    void print(std::string_view text) { m_out.write(text); }
    void error(std::string_view text);

    void cmd_go(std::string_view args);
    // memory (MemoryCommands.cpp): d*, e*, s, f, .writemem, .readmem; true = it was one
    bool run_memory_command(std::string_view cmd);
    void cmd_display(std::string_view name, std::string_view args, bool physical);
    void cmd_enter(std::string_view name, std::string_view args);
    void cmd_enter_string(std::string_view name, std::string_view args);
    void cmd_search(std::string_view args);
    void cmd_fill(std::string_view args);
    void cmd_writemem(std::string_view args);
    void cmd_readmem(std::string_view args);
    // registers (RegisterCommands.cpp): r, rM, rF, rX, rm; true = it was one
    bool run_register_command(std::string_view cmd);
    void cmd_registers(std::string_view args);
    void print_register_groups(uint32_t mask);
    void cmd_vertarget(bool full);
    void cmd_lm(std::string_view args);
    void cmd_evaluate(std::string_view args);
    void cmd_unassemble(std::string_view args);
    void cmd_unassemble_back(std::string_view args); // ub (UnassembleBack.cpp)
    void cmd_switch_processor(std::string_view args);
    void cmd_reboot();
    void cmd_help();
    void cmd_stack(std::string_view word, std::string_view args);
    // crash dumps (DumpCommands.cpp)
    void cmd_dump(std::string_view args);
    void cmd_crash();
    void cmd_bugcheck();
    void print_unloaded_modules();
    // breakpoints and stepping (BreakpointCommands.cpp)
    void cmd_bp(std::string_view word, std::string_view args);
    void cmd_ba(std::string_view args);
    void cmd_bm(bool one_shot, bool all_symbols, bool deferred, const std::string& condition,
                const std::string& command, std::string_view args,
                std::optional<uint64_t> match_process = std::nullopt,
                std::optional<uint64_t> match_thread = std::nullopt);
    void cmd_bl();
    void cmd_bc_bd_be(std::string_view word, std::string_view args);
    void cmd_step(std::string_view word, std::string_view args);
    // pc / tc / pa / ta (StepCommands.cpp)
    void cmd_step_to(std::string_view word, std::string_view args);
    std::optional<engine::StopEvent> wait_step_quietly(bool& interrupted);
    bool call_at(uint64_t address);
    // source mode (SourceStepCommands.cpp): t / p by line with l+t (nullopt: no line at the pc,
    // step by instruction; false: something else stopped it), the l+s lines at a stop (true:
    // l+o, nothing else to show)
    std::optional<bool> source_step(engine::StepKind kind);
    bool print_stop_source(uint64_t pc);
    // wt (WatchTrace.cpp)
    void cmd_watch_trace(std::string_view args);
    std::string wt_function_name(uint64_t address);
    void cmd_pagein(std::string_view args);
    void cmd_allow_convert(std::string_view args);
    void cmd_sx(std::string_view word, std::string_view args);
    // module events (EventCommands.cpp): sx* ld[:name] / ud[:name]; true = it was one
    bool cmd_sx_module(std::string_view word, std::string_view args);
    bool resume_if_module_event_unwanted(const engine::StopEvent& stop);
    std::string module_event_line(const engine::StopEvent& stop);
    std::string breakpoint_label(uint64_t address);
    void after_stop_commands(const engine::StopEvent& stop);
    // bp /w "condition": false resumes the target without a word (true = it resumed).
    bool resume_if_condition_false(const engine::StopEvent& stop);
    // scripting (ScriptCommands.cpp): as aS ad al .echo .printf .formats .cls .log* gc
    bool run_script_command(std::string_view word, std::string_view args,
                            std::string_view command);
    void unknown_command(std::string_view word, std::string_view command);
    void cmd_alias(bool phrase, std::string_view args);
    void cmd_alias_delete(std::string_view args);
    void cmd_alias_list();
    void cmd_printf(std::string_view args);
    void cmd_log(std::string_view word, std::string_view args);
    // r $t0 = expr, r $t0, r $.u0 = text; false when the arguments name no pseudo-register.
    bool cmd_pseudo_registers(std::string_view args);
    void run_breakpoint_command(uint32_t id, const std::string& command);
    std::optional<std::string> read_target_string(uint64_t address, bool unicode,
                                                  std::optional<size_t> bytes);
    std::optional<std::string> read_counted_string(uint64_t address, bool unicode);
    // ScriptHost
    ScriptFlow script_command(std::string_view command) override;
    Result<uint64_t> script_evaluate(std::string_view expression) override;
    Result<uint64_t> script_evaluate_prefix(std::string_view text, size_t* consumed) override;
    void script_error(std::string_view message) override;
    bool script_interrupted() override;
    Result<std::string> script_read_file(const std::string& path) override;
    void script_echo(std::string_view command) override;
    std::string code_line(uint64_t address);

    LogOutput m_log;
    Output& m_out;
    Aliases m_aliases;
    ScriptEngine m_script{*this, m_aliases};
    int m_line_depth = 0;           // execute_line nesting (0: a line the user typed)
    int m_bp_command_depth = 0;     // breakpoint command strings being run
    bool m_break_requested = false; // Ctrl+C sent a break-in: breakpoint commands do not run
    engine::Debugger* m_dbg = nullptr;
    bool m_quit = false;
    int m_exit_code = 0;
    // `d` without arguments continues where the last display stopped.
    std::string m_last_display = "db";
    uint32_t m_register_mask = 0x3; // rm: the groups `r` shows (integer state)
    bool m_sx_load = false;          // sxe ld: stop on module loads (m_sx_load_name: only these)
    bool m_sx_unload = false;        // sxe ud: stop on module unloads
    std::string m_sx_load_name;
    std::string m_sx_unload_name;
    std::optional<uint64_t> m_next_display;
    std::optional<uint64_t> m_next_unassemble;
    SymbolCommandState m_symbol_state; // dps / dqs / dds continue here
    SourceView m_source;               // .srcpath, l+/l-, ls* (SourceListing.h)
    bool m_at_line_start = true;
    std::function<std::optional<std::string>(const std::string&)> m_line_reader;
};

} // namespace kdcart::cli
