#pragma once
// Memory-manager and system state: !pfn, !vm, !sysinfo machineid, !locks, .cache. Data from
// engine/MmState, engine/Smbios, engine/ResourceLocks; text from cli/SystemFormat. True = `word`
// was one of these.
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

bool run_system_command(engine::Debugger& dbg, Output& out, std::string_view word,
                        std::string_view args);

} // namespace kdcart::cli
