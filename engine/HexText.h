#pragma once
// Hex numbers in the engine's error messages ("fffffa8000003038", "0x1000"). WinDbg's display
// formats (backticks, MASM style) are the CLI's: cli/format.
#include <cstdint>
#include <cstdio>
#include <string>

namespace kdcart::engine {

// Lower-case digits without a prefix.
inline std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
}

// With a 0x prefix.
inline std::string hex_0x(uint64_t v) {
    return "0x" + hex(v);
}

} // namespace kdcart::engine
