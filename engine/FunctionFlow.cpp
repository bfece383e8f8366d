#include "engine/FunctionFlow.h"

#include <Zydis/Zydis.h>

#include <map>

namespace kdcart::engine {

namespace {

constexpr uint32_t kChunk = 256; // bytes read at a time while decoding a path

FlowInstruction decode(const ZydisDecoder& decoder, uint64_t address, const uint8_t* bytes,
                       size_t size, bool& ok) {
    FlowInstruction fi;
    fi.address = address;
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    ok = ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes, size, &insn, ops));
    if (!ok) {
        return fi;
    }
    fi.length = insn.length;
    switch (insn.meta.category) {
    case ZYDIS_CATEGORY_CALL:
        fi.kind = FlowInstruction::Kind::Call;
        break;
    case ZYDIS_CATEGORY_UNCOND_BR:
        fi.kind = FlowInstruction::Kind::Jump;
        break;
    case ZYDIS_CATEGORY_COND_BR:
        fi.kind = FlowInstruction::Kind::ConditionalJump;
        break;
    case ZYDIS_CATEGORY_RET:
        fi.kind = FlowInstruction::Kind::Return;
        break;
    default:
        if (insn.mnemonic == ZYDIS_MNEMONIC_INT3 || insn.mnemonic == ZYDIS_MNEMONIC_HLT ||
            insn.mnemonic == ZYDIS_MNEMONIC_IRETQ || insn.mnemonic == ZYDIS_MNEMONIC_UD2 ||
            insn.mnemonic == ZYDIS_MNEMONIC_SYSRET) {
            // int3 can be a breakpoint the target owns: WinDbg decodes on after it too.
            fi.kind = insn.mnemonic == ZYDIS_MNEMONIC_INT3 ? FlowInstruction::Kind::Other
                                                           : FlowInstruction::Kind::Stop;
        }
        break;
    }
    if (fi.kind == FlowInstruction::Kind::Other || fi.kind == FlowInstruction::Kind::Stop ||
        fi.kind == FlowInstruction::Kind::Return) {
        return fi;
    }
    const ZydisDecodedOperand& op = ops[0];
    if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE && op.imm.is_relative) {
        ZyanU64 t = 0;
        if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &op, address, &t))) {
            fi.target = t;
        }
    } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.base == ZYDIS_REGISTER_RIP &&
               op.mem.index == ZYDIS_REGISTER_NONE) {
        ZyanU64 t = 0;
        if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &op, address, &t))) {
            fi.memory_target = t;
        }
    }
    return fi;
}

} // namespace

FunctionFlow trace_function(uint64_t start, const FlowOptions& options) {
    FunctionFlow flow;
    flow.start = start;
    ZydisDecoder decoder;
    if (!ZYAN_SUCCESS(
            ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64))) {
        return flow;
    }
    std::map<uint64_t, FlowInstruction> seen;
    std::vector<uint64_t> pending{start};
    flow.block_starts.insert(start);
    std::vector<uint8_t> buf;
    uint64_t buf_at = 0;
    while (!pending.empty()) {
        uint64_t a = pending.back();
        pending.pop_back();
        while (!seen.count(a)) {
            if (seen.size() >= options.max_instructions) {
                flow.truncated = true;
                pending.clear();
                break;
            }
            if (options.cancel && options.cancel->load()) {
                flow.interrupted = true;
                pending.clear();
                break;
            }
            if (a < buf_at || a + 15 > buf_at + buf.size()) {
                buf = options.read ? options.read(a, kChunk) : std::vector<uint8_t>{};
                buf_at = a;
            }
            const size_t avail = a - buf_at < buf.size() ? buf.size() - (a - buf_at) : 0;
            bool ok = false;
            FlowInstruction fi = avail ? decode(decoder, a, buf.data() + (a - buf_at),
                                                std::min<size_t>(avail, 15), ok)
                                       : FlowInstruction{};
            if (!ok) {
                break; // unreadable or undecodable: this path ends here
            }
            seen.emplace(a, fi);
            const uint64_t next = a + fi.length;
            using K = FlowInstruction::Kind;
            if (fi.kind == K::Jump || fi.kind == K::ConditionalJump) {
                if (fi.target && (!options.follow || options.follow(*fi.target))) {
                    flow.block_starts.insert(*fi.target);
                    pending.push_back(*fi.target);
                }
            }
            if (fi.kind == K::Jump || fi.kind == K::Return || fi.kind == K::Stop) {
                flow.block_starts.insert(next); // only shown if something reaches it
                break;
            }
            if (fi.kind == K::ConditionalJump) {
                flow.block_starts.insert(next);
            }
            // After a call that does not return (KeBugCheckEx) the next bytes may be another
            // function: falling into the start of one ends the path.
            if ((fi.kind == K::Call && options.follow && !options.follow(next)) ||
                (options.contains && !options.contains(next))) {
                break;
            }
            a = next;
        }
    }
    flow.instructions.reserve(seen.size());
    for (auto& [addr, fi] : seen) {
        flow.instructions.push_back(fi);
    }
    // Keep only block starts that hold an instruction.
    for (auto it = flow.block_starts.begin(); it != flow.block_starts.end();) {
        it = seen.count(*it) ? std::next(it) : flow.block_starts.erase(it);
    }
    return flow;
}

} // namespace kdcart::engine
