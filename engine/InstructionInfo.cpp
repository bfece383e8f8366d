#include "engine/InstructionInfo.h"

#include <Zydis/Zydis.h>

namespace kdcart::engine {

std::optional<InstructionInfo> decode_instruction(std::span<const uint8_t> bytes) {
    ZydisDecoder decoder;
    if (!ZYAN_SUCCESS(
            ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64))) {
        return std::nullopt;
    }
    ZydisDecodedInstruction insn;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&decoder, nullptr, bytes.data(), bytes.size(),
                                                    &insn))) {
        return std::nullopt;
    }
    InstructionInfo info;
    info.length = insn.length;
    info.is_call = insn.mnemonic == ZYDIS_MNEMONIC_CALL;
    info.is_ret = insn.mnemonic == ZYDIS_MNEMONIC_RET;
    return info;
}

} // namespace kdcart::engine
