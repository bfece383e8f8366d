#pragma once
// WinDbg's MASM expression evaluator, used for every command argument that is a number or an
// address, and the address-range syntax built on it ("ADDR L COUNT", "ADDR ENDADDR").
//
// Supported:
//  - numbers in the default radix (16 unless told otherwise), prefixes 0x (hex), 0n (decimal),
//    0t (octal), 0y (binary), an 'h' suffix (hex), backtick-split 64-bit values
//    (fffff800`01e45ce0); a '-' right after a prefix (0n-10) negates.
//  - binary + - * / % (also "mod"), & | ^ (also "and", "or", "xor"), << >> (logical) >>>
//    (arithmetic), the comparisons = (or ==) != < > <= >= (1 or 0, unsigned); unary - + ~ and
//    "not" (1 for zero, else 0); parentheses. WinDbg's precedence, highest first: * / %, + -,
//    shifts, comparisons, and, xor, or. 64-bit wrap-around arithmetic; / and % are unsigned.
//  - $scmp("a", "b"), $sicmp (case-insensitive): -1, 0, 1; $spat("text", "pat*"): 1 or 0.
//  - @@masm(expr); @@c++(expr) / @@(expr) are refused ("not supported yet").
//  - poi(x) (pointer, 8 bytes), qwo(x), dwo(x), wo(x), by(x) read memory through the callback;
//    low(x) / hi(x) take the low / high 16 bits of the low dword.
//  - @rax / @$ip: registers and pseudo-registers (the callback gets "rax" / "$ip").
//    $ip / $t0 without '@' are pseudo-registers too. "." alone is $ip.
//  - module!name and bare names: a token that is a valid number in the current radix is a number
//    ("add" is 0xadd, as in WinDbg); otherwise it is looked up as a symbol (this also covers
//    bare module names: "nt", "nt+0x1000"), then as a register ("rax").
//
// Errors are Errc::InvalidArgument with WinDbg's messages, which quote the rest of the text from
// the failing position: "Couldn't resolve error at 'foo+4'", "Syntax error at ')'",
// "Bad register error at '@foo'", "Divide by zero error at '0'". A failed memory read in poi()
// etc. is Errc::Unreadable, "Memory access error at ')'".
#include "transport/Error.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace kdcart::engine {

struct ExpressionCallbacks {
    // "rax", "eax", "$ip", "$t0" (no '@'); nullopt if there is no such register.
    std::function<std::optional<uint64_t>(std::string_view)> register_value;
    // "nt!KeBugCheckEx", "nt" (a module's base), "KeBugCheckEx"; nullopt if unknown.
    std::function<std::optional<uint64_t>(std::string_view)> symbol_value;
    // size is 1, 2, 4 or 8; returns the zero-extended little-endian value, nullopt if unreadable.
    std::function<std::optional<uint64_t>(uint64_t addr, int size)> read_memory;
    unsigned default_radix = 16; // 8, 10 or 16 (the `n` command)
    // A source-line expression, the text between its grave accents ("kdtest!kdtest.c:42");
    // an error when it names no line with code (or line support is off).
    std::function<Result<uint64_t>(std::string_view)> source_line;
};

// Evaluates the whole text (surrounding blanks allowed); anything left over is a syntax error.
Result<uint64_t> evaluate_expression(std::string_view text, const ExpressionCallbacks& callbacks);

// Evaluates the longest expression at the start of text and stores in *consumed how many
// characters it used (trailing blanks not included). It stops before anything that cannot
// continue the expression, e.g. at " L4" or at the second address of "1000 2000", so commands
// can read several arguments in a row.
Result<uint64_t> evaluate_expression_prefix(std::string_view text,
                                            const ExpressionCallbacks& callbacks, size_t* consumed);

// An address range in elements of the command's size.
struct Range {
    uint64_t start = 0;
    uint64_t count = 0;       // number of elements
    bool count_given = false; // false when the default count was used
};

// The largest range (in bytes) accepted without "L?": 256 MB, as in WinDbg.
inline constexpr uint64_t k_max_range_bytes = 256ull * 1024 * 1024;

// Parses "ADDR", "ADDR L COUNT", "ADDR LCOUNT", "ADDR L?COUNT", "ADDR L-COUNT" (the range that
// ends just before ADDR) or "ADDR ENDADDR" (inclusive end; the count rounds up to whole elements).
// ADDR and COUNT are expressions ("l758/@$ptrsize" works). Without a count, default_count is used.
// Errors: an empty text or a bad expression (the evaluator's message), ENDADDR below ADDR or a
// count of zero ("Range error in '...'"), more than k_max_range_bytes without "L?" ("Range error
// in '...'"), leftover text (syntax error).
Result<Range> parse_range(std::string_view text, const ExpressionCallbacks& callbacks,
                          uint64_t default_count, size_t element_size);

} // namespace kdcart::engine
