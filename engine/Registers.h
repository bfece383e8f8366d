#pragma once
// x64 registers by WinDbg's names: the table `r` and expressions use, read from and written into
// a CONTEXT. No text formatting here (cli/format does that).
#include "protocol/dbgkd_structs.h"
#include "transport/Error.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace kdcart::engine {

using protocol::CONTEXT;

struct RegisterInfo {
    std::string_view name; // canonical lower-case WinDbg name
    unsigned bits = 64;    // 64, 32, 16, 8 for integer registers; 1 or 2 for flag fields
};

// Looks a WinDbg register name up (case-insensitive): rax..r15, rip, eax/ax/al/ah, r8d/r8w/r8b,
// sil/dil/bpl/spl, eip/ip, efl (also "eflags"/"rflags"), cs ds es fs gs ss, dr0-dr3 dr6 dr7,
// mxcsr, the flag bits of df if tf sf zf af pf cf vif vip, and iopl.
std::optional<RegisterInfo> find_register(std::string_view name);
// Every name find_register accepts, canonical spelling (for completion and help).
std::vector<std::string_view> register_names();

// Reads a register (sub-registers return the sub-value, e.g. ah = bits 8..15 of rax).
std::optional<uint64_t> get_register(const CONTEXT& context, std::string_view name);
// Writes a register. Sub-registers merge into the full register and leave the other bits alone
// (al=5 changes only the low byte of rax). The value is truncated to the register's width; an
// unknown name is Errc::InvalidArgument.
Result<void> set_register(CONTEXT& context, std::string_view name, uint64_t value);

} // namespace kdcart::engine
