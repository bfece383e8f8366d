#pragma once
// dx [-r1] EXPR: a typed object one level deep in the data model's layout (DataModel.cpp).
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

void cmd_dx(engine::Debugger& dbg, Output& out, std::string_view args);

} // namespace kdcart::cli
