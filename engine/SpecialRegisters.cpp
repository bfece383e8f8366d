#include "engine/SpecialRegisters.h"

#include <algorithm>
#include <cstring>

namespace kdcart::engine {

Result<protocol::KSPECIAL_REGISTERS> read_special_registers(Target& target, uint16_t cpu) {
    using protocol::KSPECIAL_REGISTERS;
    auto raw = target.read_control_space(cpu, protocol::AMD64_DEBUG_CONTROL_SPACE_KSPECIAL,
                                         protocol::KSPECIAL_REGISTERS_WINDBG_SIZE);
    if (!raw) {
        return tl::unexpected(raw.error());
    }
    // WinDbg reads 0xE0 bytes (through Xcr0); whatever the target gave is used, the rest is 0.
    if (raw->bytes.size() < offsetof(KSPECIAL_REGISTERS, Tr)) {
        return make_error(Errc::Unreadable, "control space (KSPECIAL_REGISTERS) not readable");
    }
    KSPECIAL_REGISTERS s{};
    std::memcpy(&s, raw->bytes.data(), std::min(raw->bytes.size(), sizeof s));
    return s;
}

} // namespace kdcart::engine
