#pragma once
// Commands about code and images: uf [/c] (UnassembleFunction.cpp), .fnent (FunctionEntry.cpp),
// !dh (ImageHeaders.cpp), dx (DataModel.h). true = `word` was one of them and it ran.
#include "engine/Debugger.h"
#include "engine/UnwindInfo.h"

#include <string_view>

namespace kdcart::cli {

class Output;

bool run_code_command(engine::Debugger& dbg, Output& out, std::string_view word,
                      std::string_view args);

void cmd_unassemble_function(engine::Debugger& dbg, Output& out, std::string_view args);
void cmd_function_entry(engine::Debugger& dbg, Output& out, std::string_view args);
void cmd_image_headers(engine::Debugger& dbg, Output& out, std::string_view args);

// Target memory for the unwind-data readers (unreadable bytes end the result).
engine::UnwindMemory unwind_memory_of(engine::Debugger& dbg);
// The image base of the module holding `address`, if any (reads the module list).
std::optional<uint64_t> module_base_of(engine::Debugger& dbg, uint64_t address);
// ln's first line for `address`: "(addr)   mod!sym+0x10   |  (addr)   mod!next" (empty when no
// symbol is near).
std::string nearest_symbols_line(engine::Debugger& dbg, uint64_t address);

} // namespace kdcart::cli
