#pragma once
// A processor's KSPECIAL_REGISTERS (CR0-CR4, CR8, GDTR, IDTR, TR, LDTR, the kernel debug
// registers, the syscall MSRs) through control space, as WinDbg reads them for `r cr0`.
#include "engine/Target.h"

namespace kdcart::engine {

[[nodiscard]] Result<protocol::KSPECIAL_REGISTERS> read_special_registers(Target& target,
                                                                          uint16_t cpu);

} // namespace kdcart::engine
