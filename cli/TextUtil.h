#pragma once
// Small text helpers shared by the command files.
#include <cctype>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::cli {

// A number in hex, lower-case digits, no prefix, zero-padded to `width` ("fffff800", "00000010").
inline std::string hex_digits(uint64_t v, int width = 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*" PRIx64, width, v);
    return buf;
}

// The same with upper-case digits ("0000FFFF").
inline std::string hex_upper_digits(uint64_t v, int width = 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*" PRIX64, width, v);
    return buf;
}

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

// Splits at blanks (no quoting): for commands that take numbers and words.
inline std::vector<std::string> split_words(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) {
            ++i;
        }
        size_t j = i;
        while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) {
            ++j;
        }
        if (j > i) {
            out.emplace_back(s.substr(i, j - i));
        }
        i = j;
    }
    return out;
}

} // namespace kdcart::cli
