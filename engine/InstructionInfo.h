#pragma once
// Just enough x64 decoding for run control: instruction length and whether it is a call.
#include <cstdint>
#include <optional>
#include <span>

namespace kdcart::engine {

struct InstructionInfo {
    uint8_t length = 0;
    bool is_call = false;
    bool is_ret = false;
};

std::optional<InstructionInfo> decode_instruction(std::span<const uint8_t> bytes);

} // namespace kdcart::engine
