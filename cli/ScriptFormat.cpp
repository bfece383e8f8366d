// .printf and .formats text.
#include "cli/ScriptFormat.h"

#include "cli/format/Format.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace kdcart::cli {

namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

// %g as the Microsoft C runtime writes it: at least three exponent digits (1.7456e+031).
std::string msvc_g(double v) {
    if (std::isnan(v)) {
        return "nan";
    }
    if (std::isinf(v)) {
        return v < 0 ? "-inf" : "inf";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    std::string s(buf);
    auto e = s.find_first_of("eE");
    if (e != std::string::npos && e + 2 < s.size()) {
        std::string digits = s.substr(e + 2);
        while (digits.size() < 3) {
            digits.insert(digits.begin(), '0');
        }
        s = s.substr(0, e + 2) + digits;
    }
    return s;
}

float float_bits(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

double double_bits(uint64_t bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

std::string time_line(uint64_t v) {
    char buf[96];
    std::tm tm{};
    if (v <= 0xFFFFFFFFull) {
        // A small value reads as a time_t (seconds since 1970), as WinDbg shows it.
        const std::time_t t = static_cast<std::time_t>(v);
        gmtime_r(&t, &tm);
        std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
        return buf;
    }
    if (v > 0x7FFFFFFFFFFFFFFFull) {
        return "***** Invalid FILETIME";
    }
    // A FILETIME: 100 ns units since 1601-01-01 UTC.
    const int64_t seconds = static_cast<int64_t>(v / 10000000ull) - 11644473600ll;
    const unsigned ms = static_cast<unsigned>((v / 10000ull) % 1000ull);
    const std::time_t t = static_cast<std::time_t>(seconds);
    if (gmtime_r(&t, &tm) == nullptr) {
        return "***** Invalid FILETIME";
    }
    char head[64];
    std::strftime(head, sizeof head, "%a %b %e %H:%M:%S", &tm);
    std::snprintf(buf, sizeof buf, "%s.%03u %lld (GMT+0)", head, ms,
                  static_cast<long long>(tm.tm_year) + 1900);
    return buf;
}

} // namespace

std::string decode_escapes(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c != '\\' || i + 1 >= text.size()) {
            out += c;
            continue;
        }
        char e = text[++i];
        switch (e) {
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        case 'r':
            out += '\r';
            break;
        case 'a':
            out += '\a';
            break;
        case 'b':
            out += '\b';
            break;
        case '0':
            out += '\0';
            break;
        case 'x': {
            int v = 0;
            int n = 0;
            while (n < 2 && i + 1 < text.size() && hex_digit(text[i + 1]) >= 0) {
                v = v * 16 + hex_digit(text[++i]);
                ++n;
            }
            if (n == 0) {
                out += "\\x";
            } else {
                out += static_cast<char>(v);
            }
            break;
        }
        default:
            out += e; // \\ \" \' and anything else: the character itself
            break;
        }
    }
    return out;
}

Result<PrintfCommand> parse_printf(std::string_view args) {
    args = trim(args);
    // Options: /D (DML: the markup is shown as text), /od /oD /oe /on /op /oP /os /ov /ow
    // (WinDbg's window colours: nothing to do here).
    while (!args.empty() && args[0] == '/') {
        size_t sp = 1;
        while (sp < args.size() && !is_blank(args[sp]) && args[sp] != '"') {
            ++sp;
        }
        args = trim(args.substr(sp));
    }
    if (args.empty() || args[0] != '"') {
        return make_error(Errc::InvalidArgument,
                          "Usage: .printf \"format\", arguments (the format is quoted)");
    }
    size_t end = 1;
    while (end < args.size() && args[end] != '"') {
        end += args[end] == '\\' ? 2 : 1;
    }
    if (end >= args.size()) {
        return make_error(Errc::InvalidArgument,
                          "Syntax error in '.printf " + std::string(args) + "' (no closing \")");
    }
    PrintfCommand cmd;
    cmd.format = decode_escapes(args.substr(1, end - 1));
    std::string_view rest = trim(args.substr(end + 1));
    if (rest.empty()) {
        return cmd;
    }
    if (rest[0] != ',') {
        return make_error(Errc::InvalidArgument, "Syntax error in '.printf " + std::string(args) +
                                                     "' (a ',' goes "
                                                     "between the format and the arguments)");
    }
    rest.remove_prefix(1);
    int parens = 0;
    bool quoted = false;
    std::string cur;
    for (char c : rest) {
        if (c == '"') {
            quoted = !quoted;
        } else if (!quoted && c == '(') {
            ++parens;
        } else if (!quoted && c == ')') {
            --parens;
        } else if (!quoted && parens == 0 && c == ',') {
            cmd.arguments.emplace_back(trim(cur));
            cur.clear();
            continue;
        }
        cur += c;
    }
    cmd.arguments.emplace_back(trim(cur));
    for (const auto& a : cmd.arguments) {
        if (a.empty()) {
            return make_error(Errc::InvalidArgument, "Syntax error in '.printf " +
                                                         std::string(args) +
                                                         "' (an empty "
                                                         "argument)");
        }
    }
    return cmd;
}

Result<std::string> format_printf(std::string_view format, std::span<const uint64_t> arguments,
                                  const PrintfCallbacks& callbacks) {
    std::string out;
    size_t next = 0;
    auto take = [&]() -> std::optional<uint64_t> {
        if (next >= arguments.size()) {
            return std::nullopt;
        }
        return arguments[next++];
    };
    const auto too_few = [] {
        return make_error(Errc::InvalidArgument,
                          "The format string needs more arguments than were given");
    };
    for (size_t i = 0; i < format.size(); ++i) {
        const char c = format[i];
        if (c != '%') {
            out += c;
            continue;
        }
        if (i + 1 < format.size() && format[i + 1] == '%') {
            out += '%';
            ++i;
            continue;
        }
        // %[flags][width][.precision][size]conversion
        size_t j = i + 1;
        std::string spec = "%";
        while (j < format.size() && std::strchr("-+ #0", format[j]) != nullptr) {
            spec += format[j++];
        }
        while (j < format.size() && std::isdigit(static_cast<unsigned char>(format[j]))) {
            spec += format[j++];
        }
        if (j < format.size() && format[j] == '.') {
            spec += format[j++];
            while (j < format.size() && std::isdigit(static_cast<unsigned char>(format[j]))) {
                spec += format[j++];
            }
        }
        int bits = 32;
        bool long_float = false;
        if (format.substr(j, 3) == "I64") {
            bits = 64;
            j += 3;
        } else if (format.substr(j, 3) == "I32") {
            j += 3;
        } else if (format.substr(j, 2) == "ll") {
            bits = 64;
            j += 2;
        } else if (format.substr(j, 2) == "hh") {
            bits = 8;
            j += 2;
        } else if (j < format.size() && format[j] == 'l') {
            long_float = true;
            ++j;
        } else if (j < format.size() && format[j] == 'h') {
            bits = 16;
            ++j;
        } else if (j < format.size() && format[j] == 'w' && j + 1 < format.size() &&
                   format[j + 1] == 's') {
            ++j; // %ws: a wide string
            long_float = true;
        }
        if (j >= format.size()) {
            out += format.substr(i);
            break;
        }
        const char conv = format[j];
        const std::string_view two = format.substr(j, 2);
        const std::string_view three = format.substr(j, 3);
        char buf[128];
        if (conv == 'd' || conv == 'i' || conv == 'u' || conv == 'x' || conv == 'X' ||
            conv == 'o' || conv == 'c') {
            auto v = take();
            if (!v) {
                return too_few();
            }
            if (conv == 'c') {
                std::snprintf(buf, sizeof buf, (spec + "c").c_str(),
                              static_cast<int>(static_cast<unsigned char>(*v)));
            } else if (conv == 'd' || conv == 'i') {
                long long s = bits == 64   ? static_cast<long long>(static_cast<int64_t>(*v))
                              : bits == 16 ? static_cast<int16_t>(*v)
                              : bits == 8  ? static_cast<int8_t>(*v)
                                           : static_cast<int32_t>(*v);
                std::snprintf(buf, sizeof buf, (spec + "lld").c_str(), s);
            } else {
                unsigned long long u = bits == 64   ? *v
                                       : bits == 16 ? static_cast<uint16_t>(*v)
                                       : bits == 8  ? static_cast<uint8_t>(*v)
                                                    : static_cast<uint32_t>(*v);
                std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), u);
            }
            out += buf;
            i = j;
            continue;
        }
        if (conv == 'e' || conv == 'E' || conv == 'f' || conv == 'g' || conv == 'G' ||
            conv == 'a') {
            auto v = take();
            if (!v) {
                return too_few();
            }
            double d = long_float || bits == 64
                           ? double_bits(*v)
                           : static_cast<double>(float_bits(static_cast<uint32_t>(*v)));
            std::snprintf(buf, sizeof buf, (spec + conv).c_str(), d);
            out += buf;
            i = j;
            continue;
        }
        if (conv == 'p' || conv == 'N') {
            auto v = take();
            if (!v) {
                return too_few();
            }
            std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(*v));
            out += buf;
            i = j;
            continue;
        }
        if (conv == 'y' || (conv == 'l' && two == "ly")) {
            auto v = take();
            if (!v) {
                return too_few();
            }
            out += callbacks.symbol ? callbacks.symbol(*v) : format_address(*v);
            i = j + (conv == 'l' ? 1 : 0);
            continue;
        }
        if ((conv == 'm' && (three == "msa" || three == "msu")) ||
            (conv == 'm' && (two == "ma" || two == "mu")) || conv == 's' || conv == 'S') {
            auto v = take();
            if (!v) {
                return too_few();
            }
            const bool counted = three == "msa" || three == "msu";
            const bool unicode = three == "msu" || (!counted && two == "mu") || conv == 'S' ||
                                 (conv == 's' && long_float);
            std::optional<std::string> s;
            if (counted) {
                s = callbacks.read_counted ? callbacks.read_counted(*v, unicode) : std::nullopt;
            } else {
                s = callbacks.read_string ? callbacks.read_string(*v, unicode) : std::nullopt;
            }
            if (!s) {
                // What WinDbg shows for a string it cannot read.
                std::snprintf(buf, sizeof buf, "<Memory access error at %016llx>",
                              static_cast<unsigned long long>(*v));
                out += buf;
            } else if (spec.size() > 1) {
                std::string fmt = spec + "s";
                std::vector<char> wide(s->size() + 256);
                std::snprintf(wide.data(), wide.size(), fmt.c_str(), s->c_str());
                out += wide.data();
            } else {
                out += *s;
            }
            i = j + (counted ? 2 : conv == 'm' ? 1 : 0);
            continue;
        }
        // Not a conversion WinDbg knows: printed as it stands.
        out += format.substr(i, j - i + 1);
        i = j;
    }
    return out;
}

std::string format_formats(uint64_t value) {
    char buf[160];
    std::string out = "Evaluate expression:\n";
    out += "  Hex:     " + format_address(value) + "\n";
    std::snprintf(buf, sizeof buf, "  Decimal: %lld\n",
                  static_cast<long long>(static_cast<int64_t>(value)));
    out += buf;
    std::snprintf(buf, sizeof buf, "  Octal:   %022llo\n", static_cast<unsigned long long>(value));
    out += buf;
    out += "  Binary:  ";
    for (int byte = 7; byte >= 0; --byte) {
        for (int bit = 7; bit >= 0; --bit) {
            out += (value >> (byte * 8 + bit)) & 1 ? '1' : '0';
        }
        out += byte ? " " : "\n";
    }
    out += "  Chars:   ";
    for (int byte = 7; byte >= 0; --byte) {
        const auto ch = static_cast<unsigned char>(value >> (byte * 8));
        out += ch >= 0x20 && ch < 0x7f ? static_cast<char>(ch) : '.';
    }
    out += "\n";
    out += "  Time:    " + time_line(value) + "\n";
    out += "  Float:   low " + msvc_g(float_bits(static_cast<uint32_t>(value))) + " high " +
           msvc_g(float_bits(static_cast<uint32_t>(value >> 32))) + "\n";
    out += "  Double:  " + msvc_g(double_bits(value)) + "\n";
    return out;
}

} // namespace kdcart::cli
