#pragma once
// The link's own commands (issue 13): .kdverify [on|off|auto] shows and sets how memory reads
// are verified on a noisy link, with the link's error counts; after a command that read through
// a noisy link, one line says what verifying cost. The REPL hands a command here first; true =
// it was one of these and it ran.
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

bool run_link_command(engine::Debugger& dbg, Output& out, std::string_view word,
                      std::string_view args);

// After a command: one line on what verified reads cost, when it verified 16 KB or more.
void note_verified_reads(engine::Debugger& dbg, Output& out);

} // namespace kdcart::cli
