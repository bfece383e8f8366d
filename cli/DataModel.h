#pragma once
// dx [-rN] EXPR: typed objects and the data model's @$ objects N levels deep (DataModel.cpp).
#include "engine/Debugger.h"

#include <string_view>

namespace kdcart::cli {

class Output;

void cmd_dx(engine::Debugger& dbg, Output& out, std::string_view args);

} // namespace kdcart::cli
