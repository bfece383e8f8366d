#pragma once
// Small text helpers shared by the command files.
#include <cctype>
#include <string>
#include <string_view>

namespace kdcart::cli {

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
        s.remove_prefix(1);
    }
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
        s.remove_suffix(1);
    }
    return s;
}

inline std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return r;
}

} // namespace kdcart::cli
