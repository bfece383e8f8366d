#pragma once
// Source lines in the commands' text, as kd shows them once `.lines` (or -lines) turned line
// support on: " [d:\src\file.c @ 42]" after a symbol (the stop line, u's header, uf's block
// labels, k's frames, ln), and `.lines [-e|-d|-t]` itself. kd's default is off.
#include "engine/Debugger.h"

#include <string>
#include <string_view>

namespace kdcart::cli {

class Output;

// " [path @ 42]" for the line whose code holds `address`; "" when lines are off or unknown.
std::string source_suffix(engine::Debugger& dbg, uint64_t address);

// The same for a stack frame: a caller's frame names the line of its call (the byte before
// the return address), frame 0 and a frame interrupted by a trap the line of their pc.
std::string frame_source_suffix(engine::Debugger& dbg, uint64_t pc, bool is_return_address);

// uf's column before each instruction: its line right-aligned in five places and a blank
// ("   18 "; a hidden line shows its raw number: "15732480 "); "" when lines are off or unknown.
std::string line_number_column(engine::Debugger& dbg, uint64_t address);

// .lines [-e|-d|-t]: "Line number information will be loaded" / "... will not be loaded".
void cmd_lines(engine::Debugger& dbg, Output& out, std::string_view args);

} // namespace kdcart::cli
