#pragma once
// Objects, drivers, devices, IRPs and list walks: !object ADDR|\path, !drvobj NAME|ADDR [flags],
// !devobj ADDR|NAME, !devstack ADDR, !irp ADDR [1], !list -x "cmd" ADDR. Everything through
// nt's PDB types (engine/ObjectState, engine/IoState). True = `word` was one of these.
#include "engine/Debugger.h"

#include <functional>
#include <string>
#include <string_view>

namespace kdcart::cli {

class Output;

// `run_line` runs one REPL command line (for !list -x).
bool run_object_command(engine::Debugger& dbg, Output& out, std::string_view word,
                        std::string_view args,
                        const std::function<void(const std::string&)>& run_line);

} // namespace kdcart::cli
