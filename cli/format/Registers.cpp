// The `r` block and single-register text in WinDbg's format.
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

uint64_t mask_of(unsigned bits) {
    return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}

// "rax=...", right-aligned to 3 characters (" r8=") as in WinDbg's `r` block.
std::string reg64(const char* name, uint64_t value) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%3s=%016" PRIx64, name, value);
    return buf;
}

} // namespace

std::string format_register(std::string_view name, uint64_t value) {
    auto info = find_register(name);
    unsigned bits = info ? info->bits : 64;
    std::string shown = info ? std::string(info->name) : std::string(name);
    int digits = bits <= 4 ? 1 : static_cast<int>(bits / 4);
    return shown + "=" + hex_digits(value & mask_of(bits), digits);
}

std::string format_flags(uint32_t efl) {
    auto bit = [efl](unsigned n) { return ((efl >> n) & 1u) != 0; };
    std::string s;
    s += bit(11) ? "ov" : "nv";
    s += bit(10) ? " dn" : " up";
    s += bit(9) ? " ei" : " di";
    s += bit(7) ? " ng" : " pl";
    s += bit(6) ? " zr" : " nz";
    s += bit(4) ? " ac" : " na";
    s += bit(2) ? " pe" : " po";
    s += bit(0) ? " cy" : " nc";
    return s;
}

std::string format_registers(const CONTEXT& c) {
    std::string out;
    out += reg64("rax", c.Rax) + " " + reg64("rbx", c.Rbx) + " " + reg64("rcx", c.Rcx) + "\n";
    out += reg64("rdx", c.Rdx) + " " + reg64("rsi", c.Rsi) + " " + reg64("rdi", c.Rdi) + "\n";
    out += reg64("rip", c.Rip) + " " + reg64("rsp", c.Rsp) + " " + reg64("rbp", c.Rbp) + "\n";
    out += reg64("r8", c.R8) + " " + reg64("r9", c.R9) + " " + reg64("r10", c.R10) + "\n";
    out += reg64("r11", c.R11) + " " + reg64("r12", c.R12) + " " + reg64("r13", c.R13) + "\n";
    out += reg64("r14", c.R14) + " " + reg64("r15", c.R15) + "\n";
    std::string iopl = "iopl=" + hex_digits((c.EFlags >> 12) & 3u, 1);
    iopl.append(15 - iopl.size(), ' ');
    out += iopl + format_flags(c.EFlags) + "\n";
    char buf[128];
    std::snprintf(buf, sizeof(buf),
                  "cs=%04x  ss=%04x  ds=%04x  es=%04x  fs=%04x  gs=%04x             efl=%08x\n",
                  c.SegCs, c.SegSs, c.SegDs, c.SegEs, c.SegFs, c.SegGs, c.EFlags);
    out += buf;
    return out;
}

} // namespace kdcart::cli
