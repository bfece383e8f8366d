#pragma once
// Source mode's text and settings, as kd shows them: the source search path (.srcpath,
// .srcpath+), the source options (l+t l+s l+o l+l l+* and l-..., `l+` alone lists them), the
// listings (lsa, ls, lsc, lsf, lsf-, lsp) and the source lines shown at a stop with l+s.
// Formats from WinDbg's engine: "Source options are 5:", "     1/t - Step/trace by source
// line", listing lines ">   12: text" (a '>' or a blank, the line number in five places),
// "Current: FILE(LINE)", "No source found for 'FILE'", "Unable to load 'FILE'",
// "At the prompt, display 0 source lines before and 1 after".
#include "engine/Debugger.h"
#include "engine/SourceFiles.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::cli {

class Output;

// The option bits WinDbg prints (l+ / l-).
enum SourceOption : uint32_t {
    kSourceStep = 0x1, // t: step/trace by source line
    kSourceLine = 0x2, // l: the line's number (kdcart: the same flag as .lines)
    kSourceList = 0x4, // s: the source lines at the prompt
    kSourceOnly = 0x8, // o: only the source lines when stepping
};

// One listing line: ">   12: text" when `marked`, "    12: text" otherwise.
std::string format_source_line(uint32_t number, std::string_view text, bool marked);

class SourceView {
  public:
    engine::SourceFinder& finder() { return m_files.finder(); }
    // The options as l+ shows them (the l bit is .lines).
    uint32_t options(engine::Debugger& dbg) const;
    bool step_by_line(engine::Debugger& dbg) const {
        return (m_options & kSourceStep) && dbg.known_symbols().load_lines();
    }
    bool list_at_prompt() const { return m_options & kSourceList; }
    bool only_source() const { return (m_options & kSourceList) && (m_options & kSourceOnly); }

    // The commands; true when `word` was one of them.
    bool run(engine::Debugger& dbg, Output& out, std::string_view word, std::string_view args);
    // l+s at a stop: the lines around `pc`'s line ("" when none or l-s).
    std::string stop_lines(engine::Debugger& dbg, Output& out, uint64_t pc);

  private:
    void cmd_srcpath(Output& out, bool append, std::string_view args);
    void cmd_options(engine::Debugger& dbg, Output& out, char sign, std::string_view args);
    void cmd_list(engine::Debugger& dbg, Output& out, std::string_view word, std::string_view args);
    void cmd_load(Output& out, bool unload, std::string_view args);
    void cmd_lsp(engine::Debugger& dbg, Output& out, std::string_view args);
    // The file `recorded` names, read (cached); says "No source found for '...'" when missing.
    const engine::SourceText* load(Output& out, const std::string& recorded);
    std::string lines_text(const engine::SourceText& file, int64_t first, int64_t last,
                           uint32_t mark);

    engine::SourceFiles m_files;
    uint32_t m_options = 0;                        // t s o and the other bits l+* sets (not l)
    const engine::SourceText* m_current = nullptr; // ls's file (lsf, lsa)
    int64_t m_current_line = 0;                    // ls's next line
    uint32_t m_before = 0;                         // lsp: lines shown before / after at a stop
    uint32_t m_after = 1;
    uint32_t m_list_count = 20; // ls / lsa: lines per listing
};

} // namespace kdcart::cli
