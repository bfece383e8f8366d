// The x64 register table: the names WinDbg accepts in `r` and in expressions, read from and
// written into a CONTEXT.
#include "engine/Registers.h"

#include <cctype>

namespace kdcart::engine {

namespace {

enum class Field : uint8_t {
    Rax,
    Rcx,
    Rdx,
    Rbx,
    Rsp,
    Rbp,
    Rsi,
    Rdi,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
    EFlags,
    SegCs,
    SegDs,
    SegEs,
    SegFs,
    SegGs,
    SegSs,
    Dr0,
    Dr1,
    Dr2,
    Dr3,
    Dr6,
    Dr7,
    MxCsr,
};

struct RegisterDesc {
    std::string_view name;
    Field field;
    uint8_t shift; // first bit of the register inside the field
    uint8_t bits;  // width
};

constexpr RegisterDesc k_registers[] = {
    // 64-bit
    {"rax", Field::Rax, 0, 64},
    {"rbx", Field::Rbx, 0, 64},
    {"rcx", Field::Rcx, 0, 64},
    {"rdx", Field::Rdx, 0, 64},
    {"rsi", Field::Rsi, 0, 64},
    {"rdi", Field::Rdi, 0, 64},
    {"rip", Field::Rip, 0, 64},
    {"rsp", Field::Rsp, 0, 64},
    {"rbp", Field::Rbp, 0, 64},
    {"r8", Field::R8, 0, 64},
    {"r9", Field::R9, 0, 64},
    {"r10", Field::R10, 0, 64},
    {"r11", Field::R11, 0, 64},
    {"r12", Field::R12, 0, 64},
    {"r13", Field::R13, 0, 64},
    {"r14", Field::R14, 0, 64},
    {"r15", Field::R15, 0, 64},
    // 32-bit
    {"eax", Field::Rax, 0, 32},
    {"ebx", Field::Rbx, 0, 32},
    {"ecx", Field::Rcx, 0, 32},
    {"edx", Field::Rdx, 0, 32},
    {"esi", Field::Rsi, 0, 32},
    {"edi", Field::Rdi, 0, 32},
    {"eip", Field::Rip, 0, 32},
    {"esp", Field::Rsp, 0, 32},
    {"ebp", Field::Rbp, 0, 32},
    {"r8d", Field::R8, 0, 32},
    {"r9d", Field::R9, 0, 32},
    {"r10d", Field::R10, 0, 32},
    {"r11d", Field::R11, 0, 32},
    {"r12d", Field::R12, 0, 32},
    {"r13d", Field::R13, 0, 32},
    {"r14d", Field::R14, 0, 32},
    {"r15d", Field::R15, 0, 32},
    // 16-bit
    {"ax", Field::Rax, 0, 16},
    {"bx", Field::Rbx, 0, 16},
    {"cx", Field::Rcx, 0, 16},
    {"dx", Field::Rdx, 0, 16},
    {"si", Field::Rsi, 0, 16},
    {"di", Field::Rdi, 0, 16},
    {"ip", Field::Rip, 0, 16},
    {"sp", Field::Rsp, 0, 16},
    {"bp", Field::Rbp, 0, 16},
    {"r8w", Field::R8, 0, 16},
    {"r9w", Field::R9, 0, 16},
    {"r10w", Field::R10, 0, 16},
    {"r11w", Field::R11, 0, 16},
    {"r12w", Field::R12, 0, 16},
    {"r13w", Field::R13, 0, 16},
    {"r14w", Field::R14, 0, 16},
    {"r15w", Field::R15, 0, 16},
    // 8-bit
    {"al", Field::Rax, 0, 8},
    {"bl", Field::Rbx, 0, 8},
    {"cl", Field::Rcx, 0, 8},
    {"dl", Field::Rdx, 0, 8},
    {"ah", Field::Rax, 8, 8},
    {"bh", Field::Rbx, 8, 8},
    {"ch", Field::Rcx, 8, 8},
    {"dh", Field::Rdx, 8, 8},
    {"sil", Field::Rsi, 0, 8},
    {"dil", Field::Rdi, 0, 8},
    {"spl", Field::Rsp, 0, 8},
    {"bpl", Field::Rbp, 0, 8},
    {"r8b", Field::R8, 0, 8},
    {"r9b", Field::R9, 0, 8},
    {"r10b", Field::R10, 0, 8},
    {"r11b", Field::R11, 0, 8},
    {"r12b", Field::R12, 0, 8},
    {"r13b", Field::R13, 0, 8},
    {"r14b", Field::R14, 0, 8},
    {"r15b", Field::R15, 0, 8},
    // flags
    {"efl", Field::EFlags, 0, 32},
    {"eflags", Field::EFlags, 0, 32},
    {"rflags", Field::EFlags, 0, 32},
    {"of", Field::EFlags, 11, 1},
    {"df", Field::EFlags, 10, 1},
    {"if", Field::EFlags, 9, 1},
    {"tf", Field::EFlags, 8, 1},
    {"sf", Field::EFlags, 7, 1},
    {"zf", Field::EFlags, 6, 1},
    {"af", Field::EFlags, 4, 1},
    {"pf", Field::EFlags, 2, 1},
    {"cf", Field::EFlags, 0, 1},
    {"vif", Field::EFlags, 19, 1},
    {"vip", Field::EFlags, 20, 1},
    {"iopl", Field::EFlags, 12, 2},
    // segments
    {"cs", Field::SegCs, 0, 16},
    {"ds", Field::SegDs, 0, 16},
    {"es", Field::SegEs, 0, 16},
    {"fs", Field::SegFs, 0, 16},
    {"gs", Field::SegGs, 0, 16},
    {"ss", Field::SegSs, 0, 16},
    // debug registers
    {"dr0", Field::Dr0, 0, 64},
    {"dr1", Field::Dr1, 0, 64},
    {"dr2", Field::Dr2, 0, 64},
    {"dr3", Field::Dr3, 0, 64},
    {"dr6", Field::Dr6, 0, 64},
    {"dr7", Field::Dr7, 0, 64},
    {"mxcsr", Field::MxCsr, 0, 32},
};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = static_cast<char>(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = static_cast<char>(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

const RegisterDesc* find_desc(std::string_view name) {
    for (const auto& d : k_registers) {
        if (iequals(d.name, name)) {
            return &d;
        }
    }
    return nullptr;
}

uint64_t read_field(const CONTEXT& c, Field f) {
    switch (f) {
    case Field::Rax:
        return c.Rax;
    case Field::Rcx:
        return c.Rcx;
    case Field::Rdx:
        return c.Rdx;
    case Field::Rbx:
        return c.Rbx;
    case Field::Rsp:
        return c.Rsp;
    case Field::Rbp:
        return c.Rbp;
    case Field::Rsi:
        return c.Rsi;
    case Field::Rdi:
        return c.Rdi;
    case Field::R8:
        return c.R8;
    case Field::R9:
        return c.R9;
    case Field::R10:
        return c.R10;
    case Field::R11:
        return c.R11;
    case Field::R12:
        return c.R12;
    case Field::R13:
        return c.R13;
    case Field::R14:
        return c.R14;
    case Field::R15:
        return c.R15;
    case Field::Rip:
        return c.Rip;
    case Field::EFlags:
        return c.EFlags;
    case Field::SegCs:
        return c.SegCs;
    case Field::SegDs:
        return c.SegDs;
    case Field::SegEs:
        return c.SegEs;
    case Field::SegFs:
        return c.SegFs;
    case Field::SegGs:
        return c.SegGs;
    case Field::SegSs:
        return c.SegSs;
    case Field::Dr0:
        return c.Dr0;
    case Field::Dr1:
        return c.Dr1;
    case Field::Dr2:
        return c.Dr2;
    case Field::Dr3:
        return c.Dr3;
    case Field::Dr6:
        return c.Dr6;
    case Field::Dr7:
        return c.Dr7;
    case Field::MxCsr:
        return c.MxCsr;
    }
    return 0;
}

void write_field(CONTEXT& c, Field f, uint64_t v) {
    const auto v16 = static_cast<uint16_t>(v);
    const auto v32 = static_cast<uint32_t>(v);
    switch (f) {
    case Field::Rax:
        c.Rax = v;
        break;
    case Field::Rcx:
        c.Rcx = v;
        break;
    case Field::Rdx:
        c.Rdx = v;
        break;
    case Field::Rbx:
        c.Rbx = v;
        break;
    case Field::Rsp:
        c.Rsp = v;
        break;
    case Field::Rbp:
        c.Rbp = v;
        break;
    case Field::Rsi:
        c.Rsi = v;
        break;
    case Field::Rdi:
        c.Rdi = v;
        break;
    case Field::R8:
        c.R8 = v;
        break;
    case Field::R9:
        c.R9 = v;
        break;
    case Field::R10:
        c.R10 = v;
        break;
    case Field::R11:
        c.R11 = v;
        break;
    case Field::R12:
        c.R12 = v;
        break;
    case Field::R13:
        c.R13 = v;
        break;
    case Field::R14:
        c.R14 = v;
        break;
    case Field::R15:
        c.R15 = v;
        break;
    case Field::Rip:
        c.Rip = v;
        break;
    case Field::EFlags:
        c.EFlags = v32;
        break;
    case Field::SegCs:
        c.SegCs = v16;
        break;
    case Field::SegDs:
        c.SegDs = v16;
        break;
    case Field::SegEs:
        c.SegEs = v16;
        break;
    case Field::SegFs:
        c.SegFs = v16;
        break;
    case Field::SegGs:
        c.SegGs = v16;
        break;
    case Field::SegSs:
        c.SegSs = v16;
        break;
    case Field::Dr0:
        c.Dr0 = v;
        break;
    case Field::Dr1:
        c.Dr1 = v;
        break;
    case Field::Dr2:
        c.Dr2 = v;
        break;
    case Field::Dr3:
        c.Dr3 = v;
        break;
    case Field::Dr6:
        c.Dr6 = v;
        break;
    case Field::Dr7:
        c.Dr7 = v;
        break;
    case Field::MxCsr:
        c.MxCsr = v32;
        break;
    }
}

uint64_t mask_of(unsigned bits) {
    return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}

} // namespace

std::optional<RegisterInfo> find_register(std::string_view name) {
    const RegisterDesc* d = find_desc(name);
    if (d == nullptr) {
        return std::nullopt;
    }
    return RegisterInfo{d->name, d->bits};
}

std::vector<std::string_view> register_names() {
    std::vector<std::string_view> names;
    for (const auto& d : k_registers) {
        names.push_back(d.name);
    }
    return names;
}

std::optional<uint64_t> get_register(const CONTEXT& context, std::string_view name) {
    const RegisterDesc* d = find_desc(name);
    if (d == nullptr) {
        return std::nullopt;
    }
    return (read_field(context, d->field) >> d->shift) & mask_of(d->bits);
}

Result<void> set_register(CONTEXT& context, std::string_view name, uint64_t value) {
    const RegisterDesc* d = find_desc(name);
    if (d == nullptr) {
        return make_error(Errc::InvalidArgument,
                          "Bad register error at '" + std::string(name) + "'");
    }
    // A value wider than the register is an error, not silently cut (r al=100); a negative
    // one that fits is taken (r al=-1 is ff).
    if (d->bits < 64) {
        const uint64_t width = mask_of(d->bits);
        const uint64_t sign_fill = ~width | (uint64_t{1} << (d->bits - 1));
        if (value > width && (value & sign_fill) != sign_fill) {
            return make_error(Errc::InvalidArgument, "Overflow error");
        }
    }
    const uint64_t mask = mask_of(d->bits) << d->shift;
    const uint64_t old = read_field(context, d->field);
    const uint64_t merged = (old & ~mask) | ((value << d->shift) & mask);
    write_field(context, d->field, merged);
    return {};
}

} // namespace kdcart::engine
