#pragma once
// Kernel inspection commands: !analyze -show, !error, !pte, !vtop, !irql, !pcr, !prcb, `~`
// (processor list), .lastevent, !process. The REPL hands a command here first; true = it was
// one of these and it ran (its output and errors went to `out`).
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

bool run_kernel_command(engine::Debugger& dbg, Output& out, std::string_view word,
                        std::string_view args);

} // namespace kdcart::cli
