#pragma once
// Processes and threads through nt's PDB types: !process (with flags), !thread, !running, !ready,
// !peb, and the implicit scope: .process [/p /r] ADDR, .thread [ADDR], .cxr [ADDR], .trap ADDR.
// Without nt's types `!process` is left to KernelCommands (its KDDEBUGGER_DATA64 form); the
// others say "NT symbols are incorrect, please fix symbols". True = `word` was one of these.
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

bool run_process_command(engine::Debugger& dbg, Output& out, std::string_view word,
                         std::string_view args);

} // namespace kdcart::cli
