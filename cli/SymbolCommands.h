#pragma once
// Symbol commands in WinDbg's syntax and output: .sympath / .sympath+, .symfix / .symfix+,
// .reload, !sym noisy|quiet, x, ln, lm (and lmv, lm k, lm u, lm m PATTERN), !lmi, dps / dqs /
// dds, dt. The REPL hands a command here first; true = it was one of these and it ran (its
// output and errors went to `out`).
#include "engine/Debugger.h"

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace kdcart::cli {

class Output;

// What a bare `dps` continues from.
struct SymbolCommandState {
    std::optional<uint64_t> next_address;
    std::string last_command = "dps";
    // .frame N: the scope dv shows, valid while frame 0 is still at (frame_pc, frame_sp).
    size_t frame = 0;
    uint64_t frame_pc = 0;
    uint64_t frame_sp = 0;
};

bool run_symbol_command(engine::Debugger& dbg, Output& out, SymbolCommandState& state,
                        std::string_view word, std::string_view args);

// Where the symbol engine's notices go (`notice`), download progress (one updating line on
// `out` for files over 1 MiB), and what cancels a download (`interrupt` set, e.g. Ctrl+C).
void attach_symbol_output(engine::Debugger& dbg, Output& out,
                          std::function<void(const std::string&)> notice,
                          const std::atomic<bool>* interrupt);

// The symbol path at start-up: -y PATH when given, else _NT_ALT_SYMBOL_PATH;_NT_SYMBOL_PATH.
void configure_symbol_path(engine::Debugger& dbg, const std::string& y_option);

// WinDbg-style text for one symbol's type or value after its name, as x and ln show it:
// " (unsigned int64)", " (<no parameter info>)", " = 0x5", " = <no type information>".
std::string symbol_suffix(engine::Debugger& dbg, const engine::SymbolInfo& s);

} // namespace kdcart::cli
