#pragma once
// `dt` and typed values in WinDbg's layout, from the PDB types the engine hands out:
//   dt module!_TYPE                 the layout:  "   +0x008 Counter          : Ptr64 Uint8B"
//   dt module!_TYPE ADDR            with values: "   +0x008 Counter          : 0xfffff880`01203000"
//   dt [-r[N]] ... [Field|Prefix*]  nested structures N levels deep / only some fields
//   dt module!Pat*                  matching type names
//   dt module!Variable              a global's type at its address
#include "engine/Debugger.h"

#include <string>
#include <string_view>

namespace kdcart::cli {

class Output;

// One value on one line as x and ln show a global: "0x5", "0n-1", "0xfffff880`01203000",
// "struct _KDTEST_INFO", "unsigned char [256]".
std::string format_value_inline(engine::Debugger& dbg, const engine::PdbTypes& types, uint32_t type,
                                uint64_t address);

// A typed value at a target address as dt shows a field ("0x5", "0n-1", "_LIST_ENTRY [ ... ]").
std::string format_value_at(engine::Debugger& dbg, const engine::PdbTypes& types, uint32_t type,
                            uint64_t address);
// The same for a value held in a register (at most 8 bytes, no memory behind it).
std::string format_value_of(engine::Debugger& dbg, const engine::PdbTypes& types, uint32_t type,
                            uint64_t value);

void cmd_dt(engine::Debugger& dbg, Output& out, std::string_view args);

} // namespace kdcart::cli
