#pragma once
// Text of the scripting commands: .printf's conversions and .formats' lines. Pure functions;
// target strings and symbol names come through callbacks.
#include "transport/Error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::cli {

struct PrintfCallbacks {
    // A NUL-terminated string at a target address (%ma / %s, %mu / %S / %ws), as UTF-8.
    std::function<std::optional<std::string>(uint64_t address, bool unicode)> read_string;
    // An ANSI_STRING / UNICODE_STRING at a target address (%msa, %msu).
    std::function<std::optional<std::string>(uint64_t address, bool unicode)> read_counted;
    // %y: "module!name+0x10 (fffff800`01234567)".
    std::function<std::string(uint64_t address)> symbol;
};

// `.printf [/D] [/oX] "format", arg, ...` split into the format (C escapes decoded) and the
// argument expressions (split at the commas outside parentheses and quotes).
struct PrintfCommand {
    std::string format;
    std::vector<std::string> arguments;
};
Result<PrintfCommand> parse_printf(std::string_view args);

// Formats as WinDbg's .printf: C conversions on 64-bit arguments (%d %i %u %x %X %o %c with
// flags, width, precision, and the l / h / ll / I64 sizes: 32 bits unless ll or I64; %e %f %g
// take a float unless l is given), %p (the target pointer as 16 hex digits), %N, %y, %ly,
// %ma %mu %msa %msu, %s (target ASCII string) %S / %ws (target Unicode string), %%.
Result<std::string> format_printf(std::string_view format, std::span<const uint64_t> arguments,
                                  const PrintfCallbacks& callbacks);

// .formats: "Evaluate expression:" and the Hex, Decimal, Octal, Binary, Chars, Time, Float and
// Double lines.
std::string format_formats(uint64_t value);

// A C string literal's body with its escapes decoded (\n \t \r \\ \" \' \a \b \0 \xHH).
std::string decode_escapes(std::string_view text);

} // namespace kdcart::cli
