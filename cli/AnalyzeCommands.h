#pragma once
// `!analyze [-v]` on a bug check (live after the stop or `.crash`, or on a dump): the banner,
// the bug check's help, the Debugging Details with the stack, the followup frame and the
// bucket. `!analyze -show` stays with cli/KernelCommands. True = it was this command and it ran.
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

bool run_analyze_command(engine::Debugger& dbg, Output& out, std::string_view word,
                         std::string_view args);

} // namespace kdcart::cli
