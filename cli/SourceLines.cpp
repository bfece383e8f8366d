#include "cli/SourceLines.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"

#include <cstdio>

namespace kdcart::cli {

std::string source_suffix(engine::Debugger& dbg, uint64_t address) {
    if (!dbg.known_symbols().load_lines()) {
        return "";
    }
    auto at = dbg.known_symbols().source_line(address);
    if (!at) {
        return "";
    }
    return " [" + at->file + " @ " + std::to_string(at->line) + "]";
}

std::string frame_source_suffix(engine::Debugger& dbg, uint64_t pc, bool is_return_address) {
    std::string s = source_suffix(dbg, is_return_address && pc > 0 ? pc - 1 : pc);
    // k's frames end "... @ 111] " in WinDbg's x64 stacks (with the blank).
    return s.empty() ? s : s + " ";
}

std::string line_number_column(engine::Debugger& dbg, uint64_t address) {
    if (!dbg.known_symbols().load_lines()) {
        return "";
    }
    auto at = dbg.known_symbols().source_line(address);
    if (!at) {
        return "";
    }
    char buf[24];
    std::snprintf(buf, sizeof buf, "%5u ", at->line);
    return buf;
}

void cmd_lines(engine::Debugger& dbg, Output& out, std::string_view args) {
    const std::string_view a = trim(args);
    auto& sym = dbg.symbols();
    if (a.empty() || a == "-t") {
        sym.set_load_lines(!sym.load_lines());
    } else if (a == "-e") {
        sym.set_load_lines(true);
    } else if (a == "-d") {
        sym.set_load_lines(false);
    } else {
        out.write("Usage: .lines [-e|-d|-t]\n");
        return;
    }
    out.write(sym.load_lines() ? "Line number information will be loaded\n"
                               : "Line number information will not be loaded\n");
}

} // namespace kdcart::cli
