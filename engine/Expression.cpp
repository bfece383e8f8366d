// WinDbg MASM expressions and address ranges.
#include "engine/Expression.h"

#include <string>

namespace kdcart::engine {

namespace {

constexpr int k_max_depth = 200;

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool is_alnum(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Characters of a number, register or symbol token. ':' only counts as part of "::".
bool is_token_char(char c) {
    return is_alnum(c) || c == '_' || c == '!' || c == '$' || c == '@' || c == '?' || c == '`';
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

int digit_value(char c) {
    c = lower(c);
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 10;
    }
    return 99;
}

enum class NumberStatus { Ok, NotNumber, Overflow };

// A MASM number token: optional radix prefix, digits (backticks ignored), optional 'h' suffix.
NumberStatus parse_number(std::string_view tok, unsigned default_radix, uint64_t& out) {
    unsigned radix = default_radix;
    std::string digits;
    for (char c : tok) {
        if (c != '`') {
            digits += c;
        }
    }
    if (digits.size() >= 2 && digits[0] == '0') {
        switch (lower(digits[1])) {
        case 'x':
            radix = 16;
            digits.erase(0, 2);
            break;
        case 'n':
            radix = 10;
            digits.erase(0, 2);
            break;
        case 't':
            radix = 8;
            digits.erase(0, 2);
            break;
        case 'y':
            radix = 2;
            digits.erase(0, 2);
            break;
        default:
            break;
        }
    }
    if (radix == default_radix && digits.size() >= 2 && lower(digits.back()) == 'h') {
        bool all_hex = true;
        for (size_t i = 0; i + 1 < digits.size(); ++i) {
            all_hex = all_hex && digit_value(digits[i]) < 16;
        }
        if (all_hex) {
            radix = 16;
            digits.pop_back();
        }
    }
    if (digits.empty()) {
        return NumberStatus::NotNumber;
    }
    uint64_t value = 0;
    bool overflow = false;
    for (char c : digits) {
        int d = digit_value(c);
        if (d >= static_cast<int>(radix)) {
            return NumberStatus::NotNumber;
        }
        if (value > (~uint64_t{0} - static_cast<uint64_t>(d)) / radix) {
            overflow = true;
        }
        value = value * radix + static_cast<uint64_t>(d);
    }
    if (overflow) {
        return NumberStatus::Overflow;
    }
    out = value;
    return NumberStatus::Ok;
}

class Parser {
  public:
    Parser(std::string_view text, const ExpressionCallbacks& callbacks)
        : m_text(text), m_cb(callbacks) {}

    Result<uint64_t> expression() { return parse_or(); }
    size_t position() const { return m_pos; }
    void skip_blanks() {
        while (m_pos < m_text.size() && is_space(m_text[m_pos])) {
            ++m_pos;
        }
    }
    bool at_end() const { return m_pos >= m_text.size(); }
    tl::unexpected<Error> error(std::string_view kind, size_t at) const {
        return make_error(Errc::InvalidArgument,
                          std::string(kind) + " error at '" + std::string(rest(at)) + "'");
    }

  private:
    std::string_view rest(size_t at) const {
        return at < m_text.size() ? m_text.substr(at) : std::string_view{};
    }

    // After an operand: skips blanks and takes `op` if it comes next; otherwise leaves the
    // position before the blanks, so a prefix parse does not swallow them.
    bool take_operator(std::string_view op) {
        size_t saved = m_pos;
        skip_blanks();
        if (m_text.substr(m_pos, op.size()) == op) {
            // "mod" is a word: it must not run into a following name.
            if (is_alnum(op[0]) && m_pos + op.size() < m_text.size() &&
                is_token_char(m_text[m_pos + op.size()])) {
                m_pos = saved;
                return false;
            }
            m_pos += op.size();
            return true;
        }
        m_pos = saved;
        return false;
    }

    // Like take_operator but refuses when the operator is the prefix of a longer one.
    bool take_operator_not(std::string_view op, std::string_view longer) {
        size_t saved = m_pos;
        skip_blanks();
        bool is_longer = m_text.substr(m_pos, longer.size()) == longer;
        m_pos = saved;
        if (is_longer) {
            return false;
        }
        return take_operator(op);
    }

    Result<uint64_t> parse_or() {
        auto lhs = parse_xor();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        while (take_operator_not("|", "||") || take_operator("or")) {
            auto rhs = parse_xor();
            if (!rhs) {
                return rhs;
            }
            v |= *rhs;
        }
        return v;
    }

    Result<uint64_t> parse_xor() {
        auto lhs = parse_and();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        while (take_operator("^") || take_operator("xor")) {
            auto rhs = parse_and();
            if (!rhs) {
                return rhs;
            }
            v ^= *rhs;
        }
        return v;
    }

    Result<uint64_t> parse_and() {
        auto lhs = parse_compare();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        while (take_operator_not("&", "&&") || take_operator("and")) {
            auto rhs = parse_compare();
            if (!rhs) {
                return rhs;
            }
            v &= *rhs;
        }
        return v;
    }

    // = (or ==) != < > <= >=: 1 or 0, unsigned, between the shifts and "and" as in WinDbg.
    Result<uint64_t> parse_compare() {
        auto lhs = parse_shift();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        for (;;) {
            enum { Eq, Ne, Le, Ge, Lt, Gt } op;
            if (take_operator("==") || take_operator("=")) {
                op = Eq;
            } else if (take_operator("!=")) {
                op = Ne;
            } else if (take_operator("<=")) {
                op = Le;
            } else if (take_operator(">=")) {
                op = Ge;
            } else if (take_operator_not("<", "<<")) {
                op = Lt;
            } else if (take_operator_not(">", ">>")) {
                op = Gt;
            } else {
                break;
            }
            auto rhs = parse_shift();
            if (!rhs) {
                return rhs;
            }
            switch (op) {
            case Eq:
                v = v == *rhs;
                break;
            case Ne:
                v = v != *rhs;
                break;
            case Le:
                v = v <= *rhs;
                break;
            case Ge:
                v = v >= *rhs;
                break;
            case Lt:
                v = v < *rhs;
                break;
            case Gt:
                v = v > *rhs;
                break;
            }
        }
        return v;
    }

    Result<uint64_t> parse_shift() {
        auto lhs = parse_additive();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        for (;;) {
            int kind = 0;
            if (take_operator("<<")) {
                kind = 1;
            } else if (take_operator(">>>")) {
                kind = 3;
            } else if (take_operator(">>")) {
                kind = 2;
            } else {
                break;
            }
            auto rhs = parse_additive();
            if (!rhs) {
                return rhs;
            }
            uint64_t n = *rhs;
            if (kind == 1) {
                v = n >= 64 ? 0 : v << n;
            } else if (kind == 2) {
                v = n >= 64 ? 0 : v >> n;
            } else {
                auto s = static_cast<int64_t>(v);
                v = static_cast<uint64_t>(n >= 64 ? (s < 0 ? -1 : 0) : s >> n);
            }
        }
        return v;
    }

    Result<uint64_t> parse_additive() {
        auto lhs = parse_multiplicative();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        for (;;) {
            bool add;
            if (take_operator("+")) {
                add = true;
            } else if (take_operator("-")) {
                add = false;
            } else {
                break;
            }
            auto rhs = parse_multiplicative();
            if (!rhs) {
                return rhs;
            }
            v = add ? v + *rhs : v - *rhs;
        }
        return v;
    }

    Result<uint64_t> parse_multiplicative() {
        auto lhs = parse_unary();
        if (!lhs) {
            return lhs;
        }
        uint64_t v = *lhs;
        for (;;) {
            char op;
            if (take_operator("*")) {
                op = '*';
            } else if (take_operator("/")) {
                op = '/';
            } else if (take_operator("%") || take_operator("mod")) {
                op = '%';
            } else {
                break;
            }
            skip_blanks();
            size_t rhs_at = m_pos;
            auto rhs = parse_unary();
            if (!rhs) {
                return rhs;
            }
            if (op == '*') {
                v *= *rhs;
            } else if (*rhs == 0) {
                return error("Divide by zero", rhs_at);
            } else if (op == '/') {
                v /= *rhs;
            } else {
                v %= *rhs;
            }
        }
        return v;
    }

    Result<uint64_t> parse_unary() {
        skip_blanks();
        // "not x": 1 when x is zero, else 0.
        if (m_text.size() - m_pos > 3 && iequals(m_text.substr(m_pos, 3), "not") &&
            !is_token_char(m_text[m_pos + 3])) {
            size_t after = m_pos + 3;
            while (after < m_text.size() && is_space(m_text[after])) {
                ++after;
            }
            if (after < m_text.size() && m_text[after] != ')') {
                m_pos = after;
                if (++m_depth > k_max_depth) {
                    return error("Syntax", m_pos);
                }
                auto v = parse_unary();
                --m_depth;
                if (!v) {
                    return v;
                }
                return static_cast<uint64_t>(*v == 0);
            }
        }
        if (m_pos < m_text.size()) {
            char c = m_text[m_pos];
            if (c == '-' || c == '+' || c == '~') {
                ++m_pos;
                if (++m_depth > k_max_depth) {
                    return error("Syntax", m_pos);
                }
                auto v = parse_unary();
                --m_depth;
                if (!v) {
                    return v;
                }
                if (c == '-') {
                    return 0 - *v;
                }
                if (c == '~') {
                    return ~*v;
                }
                return *v;
            }
        }
        return parse_primary();
    }

    Result<uint64_t> parse_parenthesized(size_t* close_at) {
        // m_pos is at '('.
        ++m_pos;
        if (++m_depth > k_max_depth) {
            return error("Syntax", m_pos);
        }
        auto v = parse_or();
        --m_depth;
        if (!v) {
            return v;
        }
        skip_blanks();
        if (m_pos >= m_text.size() || m_text[m_pos] != ')') {
            return error("Syntax", m_pos);
        }
        if (close_at != nullptr) {
            *close_at = m_pos;
        }
        ++m_pos;
        return v;
    }

    std::string_view scan_token() {
        size_t start = m_pos;
        while (m_pos < m_text.size()) {
            char c = m_text[m_pos];
            if (c == '!' && m_pos + 1 < m_text.size() && m_text[m_pos + 1] == '=') {
                break; // "a!=b"
            }
            if (is_token_char(c)) {
                ++m_pos;
            } else if (c == ':' && m_pos + 2 < m_text.size() && m_text[m_pos + 1] == ':' &&
                       is_token_char(m_text[m_pos + 2])) {
                m_pos += 2; // C++ scope: nt!Foo::Bar
            } else {
                break;
            }
        }
        return m_text.substr(start, m_pos - start);
    }

    Result<uint64_t> lookup_register(std::string_view name, size_t at) {
        if (m_cb.register_value) {
            if (auto v = m_cb.register_value(name)) {
                return *v;
            }
        }
        return error("Bad register", at);
    }

    Result<uint64_t> call_function(std::string_view name) {
        size_t close_at = 0;
        auto arg = parse_parenthesized(&close_at);
        if (!arg) {
            return arg;
        }
        if (iequals(name, "low")) {
            return *arg & 0xFFFF;
        }
        if (iequals(name, "hi")) {
            return (*arg >> 16) & 0xFFFF;
        }
        int size = 8;
        if (iequals(name, "dwo")) {
            size = 4;
        } else if (iequals(name, "wo")) {
            size = 2;
        } else if (iequals(name, "by")) {
            size = 1;
        }
        if (m_cb.read_memory) {
            if (auto v = m_cb.read_memory(*arg, size)) {
                uint64_t mask = size == 8 ? ~uint64_t{0} : (uint64_t{1} << (size * 8)) - 1;
                return *v & mask;
            }
        }
        return make_error(Errc::Unreadable,
                          "Memory access error at '" + std::string(rest(close_at)) + "'");
    }

    // @@masm(expr) is this evaluator; @@c++(expr) and @@(expr) name the C++ one.
    Result<uint64_t> evaluator_switch(std::string_view tok, size_t start) {
        std::string_view which = tok.substr(2);
        if (iequals(which, "masm") && m_pos < m_text.size() && m_text[m_pos] == '(') {
            return parse_parenthesized(nullptr);
        }
        const bool cpp = (which.empty() && m_pos < m_text.size() && m_text[m_pos] == '(') ||
                         (iequals(which, "c") && m_text.substr(m_pos, 3) == "++(");
        if (cpp) {
            return make_error(Errc::InvalidArgument,
                              "C++ expressions (@@c++) are not supported yet; use MASM at '" +
                                  std::string(rest(start)) + "'");
        }
        return error("Syntax", start);
    }

    // "text" with \" and \\ escapes; m_pos after the closing quote.
    std::optional<std::string> string_literal() {
        skip_blanks();
        if (m_pos >= m_text.size() || m_text[m_pos] != '"') {
            return std::nullopt;
        }
        std::string out;
        for (++m_pos; m_pos < m_text.size(); ++m_pos) {
            char c = m_text[m_pos];
            if (c == '\\' && m_pos + 1 < m_text.size() &&
                (m_text[m_pos + 1] == '"' || m_text[m_pos + 1] == '\\')) {
                out.push_back(m_text[++m_pos]);
            } else if (c == '"') {
                ++m_pos;
                return out;
            } else {
                out.push_back(c);
            }
        }
        return std::nullopt;
    }

    // $scmp("a", "b") / $sicmp: -1, 0 or 1 (strcmp order); $spat("text", "pattern"): 1 when
    // the wildcard pattern ('*', '?') matches, case-insensitively.
    Result<uint64_t> string_function(std::string_view name) {
        ++m_pos; // '('
        auto a = string_literal();
        skip_blanks();
        if (!a || m_pos >= m_text.size() || m_text[m_pos] != ',') {
            return error("Syntax", m_pos);
        }
        ++m_pos;
        auto b = string_literal();
        skip_blanks();
        if (!b || m_pos >= m_text.size() || m_text[m_pos] != ')') {
            return error("Syntax", m_pos);
        }
        ++m_pos;
        if (iequals(name, "$spat")) {
            return static_cast<uint64_t>(wildcard(*b, *a));
        }
        const bool fold = iequals(name, "$sicmp");
        for (size_t i = 0;; ++i) {
            if (i == a->size() || i == b->size()) {
                int r = a->size() == b->size() ? 0 : (i == a->size() ? -1 : 1);
                return static_cast<uint64_t>(static_cast<int64_t>(r));
            }
            char x = fold ? lower((*a)[i]) : (*a)[i];
            char y = fold ? lower((*b)[i]) : (*b)[i];
            if (x != y) {
                return static_cast<uint64_t>(static_cast<int64_t>(
                    static_cast<unsigned char>(x) < static_cast<unsigned char>(y) ? -1 : 1));
            }
        }
    }

    static bool wildcard(std::string_view p, std::string_view t) {
        size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
        while (ti < t.size()) {
            if (pi < p.size() && (p[pi] == '?' || (p[pi] != '*' && lower(p[pi]) == lower(t[ti])))) {
                ++pi;
                ++ti;
            } else if (pi < p.size() && p[pi] == '*') {
                star = pi++;
                mark = ti;
            } else if (star != std::string_view::npos) {
                pi = star + 1;
                ti = ++mark;
            } else {
                return false;
            }
        }
        while (pi < p.size() && p[pi] == '*') {
            ++pi;
        }
        return pi == p.size();
    }

    Result<uint64_t> parse_primary() {
        skip_blanks();
        if (m_pos >= m_text.size()) {
            return error("Syntax", m_pos);
        }
        const size_t start = m_pos;
        const char c = m_text[m_pos];
        if (c == '(') {
            return parse_parenthesized(nullptr);
        }
        if (c == '.' && (m_pos + 1 >= m_text.size() || !is_token_char(m_text[m_pos + 1]))) {
            ++m_pos;
            return lookup_register("$ip", start);
        }
        if (c == '`') {
            // Source line syntax: `[[Module!]Filename][:LineNumber]`
            const size_t close = m_text.find('`', m_pos + 1);
            if (close == std::string_view::npos || !m_cb.source_line) {
                return error("Syntax", start);
            }
            const std::string_view spec = m_text.substr(m_pos + 1, close - m_pos - 1);
            m_pos = close + 1;
            return m_cb.source_line(spec);
        }
        std::string_view tok = scan_token();
        if (tok.empty()) {
            return error("Syntax", start);
        }
        if (tok.size() >= 2 && tok[0] == '@' && tok[1] == '@') {
            return evaluator_switch(tok, start);
        }
        if (tok[0] == '@') {
            std::string_view name = tok.substr(1);
            if (name.empty() || name[0] == '@') {
                return error("Syntax", start);
            }
            return lookup_register(name, start);
        }
        if (tok[0] == '$') {
            if (iequals(tok, "$scmp") || iequals(tok, "$sicmp") || iequals(tok, "$spat")) {
                size_t saved = m_pos;
                skip_blanks();
                if (m_pos < m_text.size() && m_text[m_pos] == '(') {
                    return string_function(tok);
                }
                m_pos = saved;
            }
            return lookup_register(tok, start);
        }
        static constexpr std::string_view functions[] = {"poi", "qwo", "dwo", "wo",
                                                         "by",  "low", "hi"};
        for (auto f : functions) {
            if (iequals(tok, f)) {
                size_t saved = m_pos;
                skip_blanks();
                if (m_pos < m_text.size() && m_text[m_pos] == '(') {
                    return call_function(tok);
                }
                m_pos = saved;
                break;
            }
        }
        if (tok.find('!') == std::string_view::npos) {
            // "0n-10": a sign right after a radix prefix.
            if (tok.size() == 2 && tok[0] == '0' &&
                std::string_view("xntyXNTY").find(tok[1]) != std::string_view::npos &&
                m_pos < m_text.size() && m_text[m_pos] == '-') {
                ++m_pos;
                std::string_view digits = scan_token();
                uint64_t v = 0;
                if (parse_number(std::string(tok) + std::string(digits), m_cb.default_radix, v) ==
                    NumberStatus::Ok) {
                    return 0 - v;
                }
                return error("Syntax", start);
            }
            uint64_t v = 0;
            switch (parse_number(tok, m_cb.default_radix, v)) {
            case NumberStatus::Ok:
                return v;
            case NumberStatus::Overflow:
                return error("Overflow", start);
            case NumberStatus::NotNumber:
                break;
            }
        }
        if (m_cb.symbol_value) {
            if (auto v = m_cb.symbol_value(tok)) {
                return *v;
            }
        }
        if (tok.find('!') == std::string_view::npos && m_cb.register_value) {
            if (auto v = m_cb.register_value(tok)) {
                return *v;
            }
        }
        return error("Couldn't resolve", start);
    }

    std::string_view m_text;
    const ExpressionCallbacks& m_cb;
    size_t m_pos = 0;
    int m_depth = 0;
};

tl::unexpected<Error> range_error(std::string_view text) {
    return make_error(Errc::InvalidArgument, "Range error in '" + std::string(text) + "'");
}

std::string_view trim_left(std::string_view s) {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    return s;
}

} // namespace

Result<uint64_t> evaluate_expression_prefix(std::string_view text,
                                            const ExpressionCallbacks& callbacks,
                                            size_t* consumed) {
    Parser parser(text, callbacks);
    auto v = parser.expression();
    if (v && consumed != nullptr) {
        *consumed = parser.position();
    }
    return v;
}

Result<uint64_t> evaluate_expression(std::string_view text, const ExpressionCallbacks& callbacks) {
    Parser parser(text, callbacks);
    auto v = parser.expression();
    if (!v) {
        return v;
    }
    parser.skip_blanks();
    if (!parser.at_end()) {
        return parser.error("Syntax", parser.position());
    }
    return v;
}

Result<Range> parse_range(std::string_view text, const ExpressionCallbacks& callbacks,
                          uint64_t default_count, size_t element_size) {
    if (element_size == 0) {
        element_size = 1;
    }
    const std::string_view whole = text;
    text = trim_left(text);
    size_t consumed = 0;
    auto start = evaluate_expression_prefix(text, callbacks, &consumed);
    if (!start) {
        return tl::unexpected(start.error());
    }
    std::string_view rest = trim_left(text.substr(consumed));
    Range range;
    range.start = *start;
    if (rest.empty()) {
        range.count = default_count;
        return range;
    }
    const uint64_t max_count = k_max_range_bytes / element_size;
    if (rest[0] == 'l' || rest[0] == 'L') {
        std::string_view count_text = rest.substr(1);
        bool unlimited = false;
        bool backwards = false;
        if (!count_text.empty() && count_text[0] == '?') {
            unlimited = true;
            count_text.remove_prefix(1);
        } else if (!count_text.empty() && count_text[0] == '-') {
            backwards = true;
            count_text.remove_prefix(1);
        }
        auto count = evaluate_expression(count_text, callbacks);
        if (!count) {
            return tl::unexpected(count.error());
        }
        if (*count == 0 || (!unlimited && *count > max_count)) {
            return range_error(whole);
        }
        range.count = *count;
        range.count_given = true;
        if (backwards) {
            range.start = *start - *count * element_size;
        }
        return range;
    }
    auto end = evaluate_expression(rest, callbacks);
    if (!end) {
        return tl::unexpected(end.error());
    }
    if (*end < *start) {
        return range_error(whole);
    }
    const uint64_t span = *end - *start; // bytes minus one
    if (span / element_size >= max_count) {
        return range_error(whole);
    }
    range.count = span / element_size + 1;
    range.count_given = true;
    return range;
}

} // namespace kdcart::engine
