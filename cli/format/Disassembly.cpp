// One x64 instruction in WinDbg's `u` layout, decoded with Zydis and printed by our own operand
// printer (Zydis' Intel formatter differs from WinDbg in too many details: "0x" immediates,
// spaces after commas, omitted "ptr" sizes, jz/jnz names).
#include "cli/format/Format.h"

#include <Zydis/Zydis.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace kdcart::cli {

namespace {

// Bytes start at column 18 (17-character address plus a space). Operands start 24 columns
// later, or 25 when the byte string needs 16 or more characters (what real listings show:
// "c744245001000000 mov     dword ptr [rsp+50h],1",
// "654889242510000000 mov   qword ptr gs:[10h],rsp").
constexpr size_t k_bytes_column = 18;
constexpr size_t k_bytes_width = 16;
constexpr size_t k_operand_offset = 24;

std::string hex_bytes(const uint8_t* data, size_t n) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof(buf), "%02x", data[i]);
        s += buf;
    }
    return s;
}

std::string assemble_line(uint64_t address, const std::string& bytes, const std::string& mnemonic,
                          const std::string& operands) {
    std::string line = format_address(address) + " " + bytes;
    if (bytes.size() < k_bytes_width) {
        line.append(k_bytes_width - bytes.size(), ' ');
    } else {
        line += ' ';
    }
    line += mnemonic;
    if (!operands.empty()) {
        size_t target = k_bytes_column + k_operand_offset + (bytes.size() >= k_bytes_width ? 1 : 0);
        if (line.size() + 1 > target) {
            target = line.size() + 1;
        }
        line.append(target - line.size(), ' ');
        line += operands;
    }
    return line;
}

std::string with_symbol(uint64_t address, const Symbolizer& symbolizer) {
    if (symbolizer) {
        if (auto name = symbolizer(address)) {
            return *name + " (" + format_address(address) + ")";
        }
    }
    return format_address(address);
}

std::string register_name(ZydisRegister reg) {
    if (reg >= ZYDIS_REGISTER_ST0 && reg <= ZYDIS_REGISTER_ST7) {
        if (reg == ZYDIS_REGISTER_ST0) {
            return "st";
        }
        return "st(" + std::to_string(reg - ZYDIS_REGISTER_ST0) + ")";
    }
    const char* s = ZydisRegisterGetString(reg);
    return s != nullptr ? s : "?";
}

const char* size_keyword(uint16_t bits) {
    switch (bits) {
    case 8:
        return "byte ptr ";
    case 16:
        return "word ptr ";
    case 32:
        return "dword ptr ";
    case 48:
        return "fword ptr ";
    case 64:
        return "qword ptr ";
    case 80:
        return "tbyte ptr ";
    case 128:
        return "xmmword ptr ";
    case 256:
        return "ymmword ptr ";
    case 512:
        return "zmmword ptr ";
    default:
        return "";
    }
}

bool explicit_segment(const ZydisDecodedInstruction& instr, ZydisRegister seg) {
    switch (seg) {
    case ZYDIS_REGISTER_FS:
    case ZYDIS_REGISTER_GS:
        return true;
    case ZYDIS_REGISTER_CS:
        return (instr.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_CS) != 0;
    case ZYDIS_REGISTER_DS:
        return (instr.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_DS) != 0;
    case ZYDIS_REGISTER_ES:
        return (instr.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_ES) != 0;
    case ZYDIS_REGISTER_SS:
        return (instr.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_SS) != 0;
    default:
        return false;
    }
}

std::string memory_operand(const ZydisDecodedInstruction& instr, const ZydisDecodedOperand& op,
                           uint64_t address, const Symbolizer& symbolizer) {
    std::string s;
    if (op.mem.type == ZYDIS_MEMOP_TYPE_MEM || op.mem.type == ZYDIS_MEMOP_TYPE_VSIB) {
        s += size_keyword(op.size);
    }
    const bool show_segment = explicit_segment(instr, op.mem.segment);
    if (show_segment) {
        s += register_name(op.mem.segment) + ":";
    }
    s += '[';
    const ZydisRegister base = op.mem.base;
    const ZydisRegister index = op.mem.index;
    const int64_t disp = op.mem.disp.has_displacement ? op.mem.disp.value : 0;
    if (base == ZYDIS_REGISTER_RIP || base == ZYDIS_REGISTER_EIP) {
        ZyanU64 target = 0;
        if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&instr, &op, address, &target))) {
            s += with_symbol(target, symbolizer);
        } else {
            s += format_address(address + instr.length + static_cast<uint64_t>(disp));
        }
    } else if (base == ZYDIS_REGISTER_NONE && index == ZYDIS_REGISTER_NONE) {
        if (op.mem.segment == ZYDIS_REGISTER_FS || op.mem.segment == ZYDIS_REGISTER_GS) {
            // Offsets into the TEB/KPCR: gs:[188h].
            s += format_masm_hex(static_cast<uint64_t>(disp));
        } else {
            uint64_t target = static_cast<uint64_t>(disp);
            if (instr.address_width == 32) {
                target &= 0xFFFFFFFFu;
            }
            s += with_symbol(target, symbolizer);
        }
    } else {
        bool first = true;
        if (base != ZYDIS_REGISTER_NONE) {
            s += register_name(base);
            first = false;
        }
        if (index != ZYDIS_REGISTER_NONE) {
            if (!first) {
                s += '+';
            }
            s += register_name(index);
            if (op.mem.scale > 1) {
                s += "*" + std::to_string(op.mem.scale);
            }
            first = false;
        }
        if (disp > 0) {
            s += "+" + format_masm_hex(static_cast<uint64_t>(disp));
        } else if (disp < 0) {
            s += "-" + format_masm_hex(0 - static_cast<uint64_t>(disp));
        }
    }
    s += ']';
    return s;
}

std::string immediate_operand(const ZydisDecodedInstruction& instr, const ZydisDecodedOperand& op,
                              uint64_t address, const Symbolizer& symbolizer) {
    if (op.imm.is_relative) {
        ZyanU64 target = 0;
        if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&instr, &op, address, &target))) {
            target = address + instr.length + op.imm.value.u;
        }
        return with_symbol(target, symbolizer);
    }
    // A sign-extended immediate shows at the instruction's operand size, unsigned:
    // "add rsp,0FFFFFFFFFFFFFF80h", "cmp eax,0FFFFFFFFh".
    uint64_t value = op.imm.value.u;
    const unsigned width = op.imm.is_signed ? instr.operand_width : op.size;
    if (width > 0 && width < 64) {
        value &= (uint64_t{1} << width) - 1;
    }
    // A 64-bit immediate (mov r64,imm64) that names a symbol prints like WinDbg's
    // "offset nt!Foo (fffff800`...)".
    if (op.size == 64 && instr.raw.imm[0].size == 64 && symbolizer) {
        if (auto name = symbolizer(value)) {
            return "offset " + *name + " (" + format_address(value) + ")";
        }
    }
    return format_masm_hex(value);
}

std::string operand_text(const ZydisDecodedInstruction& instr, const ZydisDecodedOperand& op,
                         uint64_t address, const Symbolizer& symbolizer) {
    switch (op.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
        return register_name(op.reg.value);
    case ZYDIS_OPERAND_TYPE_MEMORY:
        return memory_operand(instr, op, address, symbolizer);
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        return immediate_operand(instr, op, address, symbolizer);
    case ZYDIS_OPERAND_TYPE_POINTER: {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%04x:%08x", op.ptr.segment, op.ptr.offset);
        return buf;
    }
    default:
        return "?";
    }
}

// Zydis names that WinDbg spells differently (condition codes).
std::string windbg_mnemonic(std::string m) {
    static constexpr std::pair<std::string_view, std::string_view> renames[] = {
        {"jz", "je"},         {"jnz", "jne"},       {"jnb", "jae"},       {"jnbe", "ja"},
        {"jnl", "jge"},       {"jnle", "jg"},       {"setz", "sete"},     {"setnz", "setne"},
        {"setnb", "setae"},   {"setnbe", "seta"},   {"setnl", "setge"},   {"setnle", "setg"},
        {"cmovz", "cmove"},   {"cmovnz", "cmovne"}, {"cmovnb", "cmovae"}, {"cmovnbe", "cmova"},
        {"cmovnl", "cmovge"}, {"cmovnle", "cmovg"},
    };
    for (const auto& [from, to] : renames) {
        if (m == from) {
            return std::string(to);
        }
    }
    return m;
}

// movsb/stosq/... with no visible operands: WinDbg prints "movs qword ptr [rdi],qword ptr [rsi]".
bool string_instruction(const ZydisDecodedInstruction& instr, std::string& base_name) {
    if (instr.operand_count_visible != 0) {
        return false;
    }
    static constexpr std::string_view families[] = {"movs", "stos", "lods", "scas", "cmps"};
    const char* m = ZydisMnemonicGetString(instr.mnemonic);
    if (m == nullptr) {
        return false;
    }
    std::string_view name = m;
    if (name.size() != 5) {
        return false;
    }
    for (auto f : families) {
        if (name.substr(0, 4) == f && std::strchr("bwdq", name[4]) != nullptr) {
            base_name = std::string(f);
            return true;
        }
    }
    return false;
}

const char* accumulator(uint16_t bits) {
    switch (bits) {
    case 8:
        return "al";
    case 16:
        return "ax";
    case 32:
        return "eax";
    default:
        return "rax";
    }
}

} // namespace

std::string format_instruction(uint64_t address, std::span<const uint8_t> bytes, size_t* length_out,
                               Symbolizer symbolizer) {
    if (bytes.empty()) {
        if (length_out != nullptr) {
            *length_out = 1;
        }
        return assemble_line(address, "??", "???", "");
    }
    ZydisDecoder decoder;
    ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisDecodedInstruction instr;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes.data(), bytes.size(), &instr, ops))) {
        if (length_out != nullptr) {
            *length_out = 1;
        }
        return assemble_line(address, hex_bytes(bytes.data(), 1), "???", "");
    }
    if (length_out != nullptr) {
        *length_out = instr.length;
    }

    const char* zname = ZydisMnemonicGetString(instr.mnemonic);
    std::string mnemonic = windbg_mnemonic(zname != nullptr ? zname : "???");
    std::string operands;
    std::string string_base;
    if (instr.mnemonic == ZYDIS_MNEMONIC_INT3) {
        mnemonic = "int";
        operands = "3";
    } else if (string_instruction(instr, string_base)) {
        mnemonic = string_base;
        for (uint8_t i = 0; i < instr.operand_count; ++i) {
            if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY) {
                operands += operands.empty() ? "" : ",";
                operands += operand_text(instr, ops[i], address, symbolizer);
            }
        }
    } else {
        // The multi-byte NOP's ModRM register operand is not shown: "nop dword ptr [rax+rax]".
        const uint8_t shown =
            instr.mnemonic == ZYDIS_MNEMONIC_NOP && instr.operand_count_visible > 1
                ? 1
                : instr.operand_count_visible;
        for (uint8_t i = 0; i < shown; ++i) {
            operands += i == 0 ? "" : ",";
            operands += operand_text(instr, ops[i], address, symbolizer);
        }
        // WinDbg shows the implicit accumulator of one-operand mul/div: "div rax,r11".
        const bool muldiv =
            instr.mnemonic == ZYDIS_MNEMONIC_DIV || instr.mnemonic == ZYDIS_MNEMONIC_IDIV ||
            instr.mnemonic == ZYDIS_MNEMONIC_MUL || instr.mnemonic == ZYDIS_MNEMONIC_IMUL;
        if (muldiv && instr.operand_count_visible == 1) {
            operands = std::string(accumulator(ops[0].size)) + "," + operands;
        }
    }

    std::string prefix;
    if ((instr.attributes & ZYDIS_ATTRIB_HAS_LOCK) != 0) {
        prefix += "lock ";
    }
    if ((instr.attributes & ZYDIS_ATTRIB_HAS_REP) != 0) {
        prefix += "rep ";
    } else if ((instr.attributes & ZYDIS_ATTRIB_HAS_REPE) != 0) {
        prefix += "repe ";
    } else if ((instr.attributes & ZYDIS_ATTRIB_HAS_REPNE) != 0) {
        prefix += "repne ";
    }
    return assemble_line(address, hex_bytes(bytes.data(), instr.length), prefix + mnemonic,
                         operands);
}

} // namespace kdcart::cli
