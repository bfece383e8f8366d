// Register commands: r (integer registers, and by name the control, descriptor, x87, MMX and SSE
// registers: cr0 cr2 cr3 cr4 cr8, gdtr gdtl idtr idtl tr ldtr, st0-st7, mm0-mm7, xmm0-xmm15
// [:uq :ud :uw :ub :f :d], mxcsr), rM MASK / rF / rX (the r display with more register groups),
// rm [MASK] (the default mask of `r`).
//
// The control and descriptor registers come from KSPECIAL_REGISTERS through control space, the
// rest from the processor's CONTEXT.
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/SpecialRegisters.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

namespace kdcart::cli {

namespace {

using protocol::KSPECIAL_REGISTERS;

// WinDbg's register mask bits (rm ?).
constexpr uint32_t kMaskInteger = 0x3;
constexpr uint32_t kMaskFloat = 0x4;
constexpr uint32_t kMaskSegment = 0x8;
constexpr uint32_t kMaskMmx = 0x10;
constexpr uint32_t kMaskDebug = 0x20;
constexpr uint32_t kMaskXmm = 0x40;
constexpr uint32_t kMaskControl = 0x80;
constexpr uint32_t kMaskDescriptor = 0x100;

// "%g" the way the register display shows reals ("0", "1.5", "1.4013e-45").
std::string real(double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// A 128-bit XMM register in one of WinDbg's views, highest element first.
std::string xmm_text(const protocol::M128A& x, std::string_view view) {
    uint8_t b[16];
    std::memcpy(b, &x.Low, 8);
    std::memcpy(b + 8, &x.High, 8);
    std::string out;
    auto add = [&out](const std::string& s) {
        out += out.empty() ? "" : " ";
        out += s;
    };
    if (view == "uq" || view == "q" || view == "i64" || view == "ui64") {
        for (int i = 1; i >= 0; --i) {
            uint64_t v = 0;
            std::memcpy(&v, b + 8 * i, 8);
            add(hex_digits(v, 16));
        }
    } else if (view == "ud" || view == "d32" || view == "i32" || view == "ui32") {
        for (int i = 3; i >= 0; --i) {
            uint32_t v = 0;
            std::memcpy(&v, b + 4 * i, 4);
            add(hex_digits(v, 8));
        }
    } else if (view == "uw" || view == "i16" || view == "ui16") {
        for (int i = 7; i >= 0; --i) {
            uint16_t v = 0;
            std::memcpy(&v, b + 2 * i, 2);
            add(hex_digits(v, 4));
        }
    } else if (view == "ub" || view == "i8" || view == "ui8") {
        for (int i = 15; i >= 0; --i) {
            add(hex_digits(b[i], 2));
        }
    } else if (view == "d") {
        for (int i = 1; i >= 0; --i) {
            double v = 0;
            std::memcpy(&v, b + 8 * i, 8);
            add(real(v));
        }
    } else { // f (the default): four floats
        for (int i = 3; i >= 0; --i) {
            float v = 0;
            std::memcpy(&v, b + 4 * i, 4);
            add(real(static_cast<double>(v)));
        }
    }
    return out;
}

// An x87 register (80-bit extended, low 10 bytes of the M128A) as WinDbg shows st0-st7:
// " 0.000000000000000000000e+0000" (21 digits, four-digit exponent, sign column).
std::string st_text(const protocol::M128A& r) {
    uint8_t b[16] = {};
    std::memcpy(b, &r.Low, 8);
    std::memcpy(b + 8, &r.High, 8);
    long double v = 0;
    static_assert(sizeof(long double) >= 10);
    std::memcpy(&v, b, 10);
    char buf[64];
    std::snprintf(buf, sizeof buf, "% .21Le", v);
    std::string s = buf;
    const size_t e = s.find('e');
    if (e != std::string::npos && e + 2 < s.size()) {
        std::string digits = s.substr(e + 2);
        while (digits.size() < 4) {
            digits.insert(digits.begin(), '0');
        }
        s = s.substr(0, e + 2) + digits;
    }
    return s;
}

std::string fpcw_text(uint16_t cw) {
    static const char* kRound[] = {"rn", "rd", "ru", "rz"};
    static const char* kPrec[] = {"24", "??", "53", "64"};
    std::string s = std::string(kRound[(cw >> 10) & 3]) + " " + kPrec[(cw >> 8) & 3] + " ";
    const char* letters = "puozdi"; // bits 5..0; masked exceptions in lower case
    for (int i = 0; i < 6; ++i) {
        const int bit = 5 - i;
        const char c = letters[i];
        s += ((cw >> bit) & 1) ? c : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return s;
}

std::string fpsw_text(uint16_t sw) {
    char buf[64];
    const unsigned cc =
        ((sw >> 14) & 1) << 3 | ((sw >> 10) & 1) << 2 | ((sw >> 9) & 1) << 1 | ((sw >> 8) & 1);
    std::snprintf(buf, sizeof buf, "top=%u cc=%u%u%u%u ", (sw >> 11) & 7, (cc >> 3) & 1,
                  (cc >> 2) & 1, (cc >> 1) & 1, cc & 1);
    std::string s = buf;
    const char* letters = "espuozdi"; // bits 7..0, shown when set
    for (int i = 0; i < 8; ++i) {
        s += ((sw >> (7 - i)) & 1) ? letters[i] : '-';
    }
    return s;
}

// FXSAVE keeps an abridged tag byte (1 = valid); the full tag word marks empty registers 11.
uint16_t full_tag_word(uint8_t abridged) {
    uint16_t t = 0;
    for (int i = 0; i < 8; ++i) {
        if (((abridged >> i) & 1) == 0) {
            t |= static_cast<uint16_t>(3u << (2 * i));
        }
    }
    return t;
}

struct SpecialName {
    const char* name;
    int digits;
    uint64_t (*get)(const KSPECIAL_REGISTERS&);
};

const SpecialName kSpecial[] = {
    {"cr0", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Cr0; }},
    {"cr2", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Cr2; }},
    {"cr3", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Cr3; }},
    {"cr4", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Cr4; }},
    {"cr8", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Cr8; }},
    {"gdtr", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Gdtr.Base; }},
    {"gdtl", 4, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Gdtr.Limit; }},
    {"idtr", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Idtr.Base; }},
    {"idtl", 4, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Idtr.Limit; }},
    {"tr", 4, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Tr; }},
    {"ldtr", 4, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Ldtr; }},
    {"xcr0", 16, [](const KSPECIAL_REGISTERS& s) -> uint64_t { return s.Xcr0; }},
};

const SpecialName* find_special(std::string_view name) {
    for (const auto& s : kSpecial) {
        if (name == s.name) {
            return &s;
        }
    }
    return nullptr;
}

// "xmm12" -> 12, "st3" -> 3 ("mm3" for prefix "mm").
std::optional<unsigned> indexed(std::string_view name, std::string_view prefix, unsigned count) {
    if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) {
        return std::nullopt;
    }
    unsigned v = 0;
    for (char c : name.substr(prefix.size())) {
        if (!std::isdigit(static_cast<unsigned char>(c))) {
            return std::nullopt;
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
        if (v >= count) {
            return std::nullopt;
        }
    }
    return v;
}

} // namespace

bool Repl::run_register_command(std::string_view cmd) {
    size_t i = 0;
    while (i < cmd.size() && std::isalpha(static_cast<unsigned char>(cmd[i]))) {
        ++i;
    }
    const std::string_view raw = cmd.substr(0, i);
    const std::string_view args = trim(cmd.substr(i));
    if (raw == "r" || raw == "R") {
        if (!cmd_pseudo_registers(args)) { // r $t0 = expr, r $.u0 = text (ScriptCommands.cpp)
            cmd_registers(args);
        }
        return true;
    }
    if (raw == "rM" || raw == "rF" || raw == "rX") {
        uint32_t mask = raw == "rF"   ? (kMaskInteger | kMaskFloat)
                        : raw == "rX" ? (kMaskInteger | kMaskXmm)
                                      : m_register_mask;
        std::string_view rest = args;
        if (raw == "rM") {
            size_t used = 0;
            auto cb = m_dbg->expression_callbacks();
            auto m = evaluate_expression_prefix(rest, cb, &used);
            if (!m) {
                error(m.error().message);
                return true;
            }
            mask = static_cast<uint32_t>(*m);
            rest = trim(rest.substr(used));
        }
        if (!rest.empty()) {
            cmd_registers(rest);
            return true;
        }
        print_register_groups(mask);
        return true;
    }
    if (raw == "rm") {
        if (args == "?") {
            print("       3 - Integer state (64-bit)\n"
                  "       4 - Floating-point state\n"
                  "       8 - Segment registers\n"
                  "      10 - MMX registers\n"
                  "      20 - Debug registers and, in kernel, CR4\n"
                  "      40 - SSE XMM registers\n"
                  "      80 - Control registers CR0, CR2, CR3 and CR8 (kernel)\n"
                  "     100 - Descriptor and task state (kernel)\n");
            return true;
        }
        if (!args.empty()) {
            auto cb = m_dbg->expression_callbacks();
            auto m = evaluate_expression(args, cb);
            if (!m) {
                error(m.error().message);
                return true;
            }
            m_register_mask = static_cast<uint32_t>(*m);
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "Register output mask is %x:\n", m_register_mask);
        std::string out = buf;
        struct {
            uint32_t bit;
            const char* what;
        } const groups[] = {{kMaskInteger, "Integer state (64-bit)"},
                            {kMaskFloat, "Floating-point state"},
                            {kMaskSegment, "Segment registers"},
                            {kMaskMmx, "MMX registers"},
                            {kMaskDebug, "Debug registers and, in kernel, CR4"},
                            {kMaskXmm, "SSE XMM registers"},
                            {kMaskControl, "Control registers"},
                            {kMaskDescriptor, "Descriptor and task state"}};
        for (const auto& g : groups) {
            if ((m_register_mask & g.bit) != 0) {
                std::snprintf(buf, sizeof buf, "%8x - ", g.bit);
                out += std::string(buf) + g.what + "\n";
            }
        }
        print(out);
        return true;
    }
    return false;
}

void Repl::print_register_groups(uint32_t mask) {
    // Only the x87/MMX/SSE groups need the whole CONTEXT; the rest is in its integer block.
    const bool full = (mask & (kMaskFloat | kMaskMmx | kMaskXmm)) != 0;
    auto ctx = m_dbg->context(std::nullopt,
                              full ? engine::ContextPart::Full : engine::ContextPart::Integer);
    if (!ctx) {
        error("Unable to get the registers: " + ctx.error().message);
        return;
    }
    const CONTEXT& c = *ctx;
    std::string out;
    if ((mask & (kMaskInteger | kMaskSegment)) != 0) {
        out += format_registers(c);
    }
    const auto& f = c.FltSave;
    if ((mask & kMaskFloat) != 0) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "fpcw=%04X: %s  fpsw=%04X: %s  fptw=%04X\n", f.ControlWord,
                      fpcw_text(f.ControlWord).c_str(), f.StatusWord,
                      fpsw_text(f.StatusWord).c_str(), full_tag_word(f.TagWord));
        out += buf;
        std::snprintf(buf, sizeof buf, "fopcode=%04X  fpip=%04X:%08X  fpdp=%04X:%08X\n",
                      f.ErrorOpcode, f.ErrorSelector, f.ErrorOffset, f.DataSelector, f.DataOffset);
        out += buf;
        for (int i = 0; i < 8; i += 2) {
            out += "st" + std::to_string(i) + "=" + st_text(f.FloatRegisters[i]) + "  st" +
                   std::to_string(i + 1) + "=" + st_text(f.FloatRegisters[i + 1]) + "\n";
        }
    }
    if ((mask & kMaskMmx) != 0) {
        for (int i = 0; i < 8; i += 2) {
            out += "mm" + std::to_string(i) + "=" + hex_digits(f.FloatRegisters[i].Low, 16) +
                   "  mm" + std::to_string(i + 1) + "=" +
                   hex_digits(f.FloatRegisters[i + 1].Low, 16) + "\n";
        }
    }
    if ((mask & kMaskXmm) != 0) {
        for (int i = 0; i < 16; ++i) {
            out += "xmm" + std::to_string(i) + "=" + xmm_text(f.XmmRegisters[i], "f") + "\n";
        }
        out += "mxcsr=" + hex_digits(c.MxCsr, 8) + "\n";
    }
    const bool need_special = (mask & (kMaskDebug | kMaskControl | kMaskDescriptor)) != 0;
    std::optional<KSPECIAL_REGISTERS> special;
    if (need_special) {
        auto s = engine::read_special_registers(m_dbg->target(), m_dbg->current_processor());
        if (s) {
            special = *s;
        } else {
            out += "(control registers not readable: " + s.error().message + ")\n";
        }
    }
    if ((mask & kMaskDebug) != 0) {
        out += "dr0=" + hex_digits(c.Dr0, 16) + " dr1=" + hex_digits(c.Dr1, 16) +
               " dr2=" + hex_digits(c.Dr2, 16) + "\n";
        out += "dr3=" + hex_digits(c.Dr3, 16) + " dr6=" + hex_digits(c.Dr6, 16) +
               " dr7=" + hex_digits(c.Dr7, 16);
        if (special) {
            out += " cr4=" + hex_digits(special->Cr4, 16);
        }
        out += "\n";
    }
    if ((mask & kMaskControl) != 0 && special) {
        out += "cr0=" + hex_digits(special->Cr0, 16) + " cr2=" + hex_digits(special->Cr2, 16) +
               " cr3=" + hex_digits(special->Cr3, 16) + "\n";
        out += "cr8=" + hex_digits(special->Cr8, 16) + "\n";
    }
    if ((mask & kMaskDescriptor) != 0 && special) {
        out += "gdtr=" + hex_digits(special->Gdtr.Base, 16) +
               "   gdtl=" + hex_digits(special->Gdtr.Limit, 4) +
               " idtr=" + hex_digits(special->Idtr.Base, 16) +
               "   idtl=" + hex_digits(special->Idtr.Limit, 4) +
               " tr=" + hex_digits(special->Tr, 4) + "  ldtr=" + hex_digits(special->Ldtr, 4) +
               "\n";
    }
    print(out);
    print(code_line(c.Rip));
}

void Repl::cmd_registers(std::string_view args) {
    if (args.empty() && m_dbg->scope().context) { // .thread / .cxr / .trap
        print("Last set context:\n" + format_registers(*m_dbg->scope().context));
        return;
    }
    if (args.empty()) {
        print_register_groups(m_register_mask);
        return;
    }
    auto ctx = m_dbg->context(std::nullopt, engine::ContextPart::Integer);
    if (!ctx) {
        error("Unable to get the registers: " + ctx.error().message);
        return;
    }
    // r rax  |  r rax=5  |  r rax=5, rbx=6  |  r rax, rbx  |  r cr0  |  r xmm0:uq
    CONTEXT c = *ctx;
    bool have_full = false;
    bool changed = false;
    std::string out;
    std::optional<KSPECIAL_REGISTERS> special;
    std::string a(args);
    if (a.find('=') == std::string::npos) {
        // "r rax rbx": blank-separated names list each, as commas do.
        for (auto& ch : a) {
            ch = std::isspace(static_cast<unsigned char>(ch)) ? ',' : ch;
        }
    }
    size_t pos = 0;
    while (pos <= a.size()) {
        size_t comma = a.find(',', pos);
        std::string item(trim(std::string_view(a).substr(
            pos, comma == std::string::npos ? std::string::npos : comma - pos)));
        pos = comma == std::string::npos ? a.size() + 1 : comma + 1;
        if (item.empty()) {
            continue;
        }
        auto eq = item.find('=');
        std::string name = lower(trim(std::string_view(item).substr(0, eq)));
        if (!name.empty() && name[0] == '@') {
            name.erase(0, 1);
        }
        std::string view;
        if (auto colon = name.find(':'); colon != std::string::npos) {
            view = name.substr(colon + 1);
            name = name.substr(0, colon);
        }
        const SpecialName* sp = find_special(name);
        const auto xmm = indexed(name, "xmm", 16);
        const auto st = indexed(name, "st", 8);
        const auto mm = indexed(name, "mm", 8);
        if (eq != std::string::npos && (sp || xmm || st || mm)) {
            error("Setting " + name + " is not supported yet");
            return;
        }
        if (sp) {
            if (!special) {
                auto s =
                    engine::read_special_registers(m_dbg->target(), m_dbg->current_processor());
                if (!s) {
                    error("Unable to read " + name + ": " + s.error().message);
                    return;
                }
                special = *s;
            }
            out += std::string(sp->name) + "=" + hex_digits(sp->get(*special), sp->digits) + "\n";
            continue;
        }
        if ((xmm || st || mm) && !have_full) {
            // x87/MMX/SSE registers live past the integer block.
            auto whole = m_dbg->context(std::nullopt, engine::ContextPart::Full);
            if (!whole) {
                error("Unable to get the registers: " + whole.error().message);
                return;
            }
            c.FltSave = whole->FltSave;
            have_full = true;
        }
        if (xmm) {
            out += name + "=" + xmm_text(c.FltSave.XmmRegisters[*xmm], view.empty() ? "f" : view) +
                   "\n";
            continue;
        }
        if (st) {
            out += name + "=" + st_text(c.FltSave.FloatRegisters[*st]) + "\n";
            continue;
        }
        if (mm) {
            out += name + "=" + hex_digits(c.FltSave.FloatRegisters[*mm].Low, 16) + "\n";
            continue;
        }
        if (eq == std::string::npos) {
            auto v = get_register(c, name);
            if (!v) {
                error("Bad register error in 'r " + item + "'");
                return;
            }
            out += format_register(name, *v) + "\n";
            continue;
        }
        auto cb = m_dbg->expression_callbacks();
        auto value = evaluate_expression(trim(std::string_view(item).substr(eq + 1)), cb);
        if (!value) {
            error(value.error().message);
            return;
        }
        if (auto set = set_register(c, name, *value); !set) {
            const bool overflow = set.error().message == "Overflow error";
            error(std::string(overflow ? "Overflow error" : "Bad register error") + " in 'r " +
                  item + "'");
            return;
        }
        changed = true;
    }
    if (changed) {
        if (auto r = m_dbg->set_context(c); !r) {
            error("Unable to set the registers: " + r.error().message);
            return;
        }
    }
    print(out);
}

} // namespace kdcart::cli
