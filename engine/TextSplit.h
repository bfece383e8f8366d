#pragma once
// The short texts the engine parses (';'-separated paths, dx expressions): blanks trimmed,
// lists split. Shared by SymbolPath, SourceFinder and DxParser.
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

// `s` without leading and trailing white space.
inline std::string_view trim_space(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
        s.remove_prefix(1);
    }
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
        s.remove_suffix(1);
    }
    return s;
}

// The pieces of `s` between `sep`s, each trimmed; empty pieces are kept ("a;;b" has three).
inline std::vector<std::string> split_trimmed(std::string_view s, char sep) {
    std::vector<std::string> out;
    for (;;) {
        const size_t at = s.find(sep);
        out.emplace_back(trim_space(s.substr(0, at)));
        if (at == std::string_view::npos) {
            return out;
        }
        s.remove_prefix(at + 1);
    }
}

} // namespace kdcart::engine
