#include "cli/Aliases.h"

namespace kdcart::cli {

namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// An alias name stands alone between these.
bool is_delimiter(char c) {
    return is_blank(c) || c == ';' || c == '"';
}

// The '}' closing a ${...} token that starts at text[at] ("${"), or npos.
size_t alias_token_end(std::string_view text, size_t at) {
    return text.find('}', at + 2);
}

bool starts_with_alias_command(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && is_blank(text[i])) {
        ++i;
    }
    if (text.size() - i < 2) {
        return false;
    }
    std::string_view w = text.substr(i, 2);
    if (w != "as" && w != "aS" && w != "ad" && w != "al") {
        return false;
    }
    return i + 2 == text.size() || is_blank(text[i + 2]) || text[i + 2] == ';';
}

} // namespace

const std::string* Aliases::find(std::string_view name) const {
    auto it = m_user.find(name);
    return it == m_user.end() ? nullptr : &it->second;
}

size_t find_block_end(std::string_view text, size_t open) {
    int depth = 0;
    bool quoted = false;
    for (size_t i = open; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '\\' && i + 1 < text.size()) {
                ++i;
            } else if (c == '"') {
                quoted = false;
            }
            continue;
        }
        if (c == '"') {
            quoted = true;
        } else if (c == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            size_t end = alias_token_end(text, i);
            if (end == std::string_view::npos) {
                return end;
            }
            i = end;
        } else if (c == '{') {
            ++depth;
        } else if (c == '}') {
            if (--depth == 0) {
                return i;
            }
        }
    }
    return std::string_view::npos;
}

std::string strip_verbatim(std::string_view token) {
    if (token.size() > 5 && token.substr(0, 5) == "${/v:" && token.back() == '}') {
        return std::string(token.substr(5, token.size() - 6));
    }
    return std::string(token);
}

std::string Aliases::expand_token(std::string_view inner, std::string_view whole) const {
    // inner is what stands between "${" and "}".
    if (inner.size() >= 3 && inner[0] == '/' && inner[2] == ':') {
        const char sw = inner[1];
        std::string_view name = inner.substr(3);
        const std::string* v = find(name);
        switch (sw) {
        case 'd':
            return v ? "1" : "0";
        case 'f':
            return v ? *v : std::string();
        case 'n':
            return v ? std::string(name) : std::string(whole);
        case 'v':
        default:
            return std::string(whole);
        }
    }
    const std::string* v = find(inner);
    return v ? *v : std::string(whole);
}

namespace {

// Walks text keeping track of quotes and of the { } block depth (${...} tokens are skipped as a
// whole); calls at(i) for every position at depth 0 outside quotes, which returns how many
// characters it consumed (0: copy the character as it is).
template <class Fn> std::string walk_level(std::string_view t, Fn&& at) {
    std::string out;
    out.reserve(t.size());
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < t.size();) {
        const char c = t[i];
        if (quoted && c == '\\' && i + 1 < t.size()) {
            out.append(t.substr(i, 2));
            i += 2;
            continue;
        }
        if (depth == 0) {
            if (size_t n = at(i, out)) {
                i += n;
                continue;
            }
        }
        if (c == '$' && i + 1 < t.size() && t[i + 1] == '{') {
            size_t end = alias_token_end(t, i);
            size_t stop = end == std::string_view::npos ? t.size() : end + 1;
            out.append(t.substr(i, stop - i));
            i = stop;
            continue;
        }
        if (c == '"') {
            quoted = !quoted;
        } else if (!quoted && c == '{') {
            ++depth;
        } else if (!quoted && c == '}' && depth > 0) {
            --depth;
        }
        out += c;
        ++i;
    }
    return out;
}

} // namespace

std::string Aliases::expand(std::string_view text) const {
    if (starts_with_alias_command(text)) {
        return std::string(text);
    }
    // Fixed-name aliases first ("fixed-name alias replacement occurs before user-named"),
    // wherever they stand.
    std::string fixed = walk_level(text, [&](size_t i, std::string& out) -> size_t {
        if (text[i] == '$' && i + 2 < text.size() && text[i + 1] == 'u' && text[i + 2] >= '0' &&
            text[i + 2] <= '9') {
            out += m_fixed[static_cast<size_t>(text[i + 2] - '0')];
            return 3;
        }
        return 0;
    });
    const std::string_view t = fixed;
    return walk_level(t, [&](size_t i, std::string& out) -> size_t {
        if (t[i] == '$' && i + 1 < t.size() && t[i + 1] == '{') {
            size_t end = alias_token_end(t, i);
            if (end == std::string_view::npos) {
                return 0;
            }
            out += expand_token(t.substr(i + 2, end - i - 2), t.substr(i, end - i + 1));
            return end - i + 1;
        }
        if (is_delimiter(t[i]) || (i > 0 && !is_delimiter(t[i - 1]))) {
            return 0;
        }
        size_t end = i;
        while (end < t.size() && !is_delimiter(t[end])) {
            ++end;
        }
        if (const std::string* v = find(t.substr(i, end - i))) {
            out += *v;
            return end - i;
        }
        return 0;
    });
}

} // namespace kdcart::cli
