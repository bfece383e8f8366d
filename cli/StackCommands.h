#pragma once
// Stack commands that need symbols: kb / kv (the four home-space words, "Args to Child"), kp / kP
// (parameters from the PDB), .frame [/r] [N] (the scope dv uses), dv [/v] (parameters and locals
// of the scope's function, from its PDB records).
#include "cli/SymbolCommands.h"

namespace kdcart::cli {

class Output;

// kb, kv, kp, kP, kbn, kvn, kpn ...: true when `word` was one of them.
bool run_stack_command(engine::Debugger& dbg, Output& out, SymbolCommandState& state,
                       std::string_view word, std::string_view args);

} // namespace kdcart::cli
