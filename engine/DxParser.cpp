// dx's expressions: a small recursive-descent parser over the C++-like expressions dx takes
// (casts to PDB and C++ base types, *, &, ., ->, [i], numbers, registers, typed globals and the
// data model's @$ objects), evaluated through DxEvaluator (see DxValue.h).
#include "engine/Debugger.h"
#include "engine/DxValue.h"
#include "engine/HexText.h"
#include "engine/KernelTypes.h"
#include "engine/TextSplit.h"

#include <cctype>
#include <cstring>

namespace kdcart::engine {

namespace {

// C++ base types by name: their CodeView simple type index (the CodeView format's constants).
std::optional<uint32_t> simple_type(std::string_view name) {
    static const std::pair<const char*, uint32_t> k_types[] = {
        {"void", 0x0003},
        {"char", 0x0010},
        {"signed char", 0x0010},
        {"unsigned char", 0x0020},
        {"short", 0x0011},
        {"unsigned short", 0x0021},
        {"long", 0x0012},
        {"unsigned long", 0x0022},
        {"__int64", 0x0013},
        {"long long", 0x0013},
        {"unsigned __int64", 0x0023},
        {"unsigned long long", 0x0023},
        {"bool", 0x0030},
        {"float", 0x0040},
        {"double", 0x0041},
        {"wchar_t", 0x0071},
        {"int", 0x0074},
        {"unsigned int", 0x0075},
    };
    for (const auto& [n, index] : k_types) {
        if (name == n) {
            return index;
        }
    }
    return std::nullopt;
}

bool is_ident_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || c == '@' ||
           c == '!' || c == '`';
}

} // namespace

// ---------------------------------------------------------------------------------------------
// The parser: unary := '*' unary | '&' unary | '(' TYPE '*' ')' unary | postfix
//             postfix := primary ('.' name | '->' name | '[' unary ']')*
//             primary := '(' unary ')' | token

struct DxEvaluator::Parser {
    DxEvaluator& ev;
    std::string_view s;
    size_t pos = 0;

    void skip() {
        while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) {
            ++pos;
        }
    }
    bool eat(std::string_view t) {
        skip();
        if (s.substr(pos, t.size()) == t) {
            pos += t.size();
            return true;
        }
        return false;
    }
    std::string rest() const { return std::string(trim_space(s.substr(pos))); }
    tl::unexpected<Error> bad(std::string_view what) const {
        if (what.empty() && rest().empty()) {
            return make_error(Errc::InvalidArgument, "Unexpected end of expression");
        }
        return make_error(Errc::InvalidArgument, "Couldn't resolve error at '" +
                                                     std::string(what.empty() ? rest() : what) +
                                                     "'");
    }

    // The ')' that closes the '(' at `open`, npos when none.
    size_t closing(size_t open) const {
        int depth = 0;
        for (size_t i = open; i < s.size(); ++i) {
            depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
            if (depth == 0) {
                return i;
            }
        }
        return std::string_view::npos;
    }

    Result<DxValue> unary() {
        skip();
        if (eat("*")) {
            auto v = unary();
            return v ? ev.deref(*v) : v;
        }
        if (eat("&")) {
            auto v = unary();
            if (!v || v->kind == DxValue::Kind::Number) {
                return v; // MASM symbols already evaluate to their address
            }
            if (v->kind == DxValue::Kind::Untyped) {
                // "address of" a symbol without a type is a void *, to be cast.
                DxValue n;
                n.address = v->address;
                n.number_type = "void *";
                return n;
            }
            if (v->kind != DxValue::Kind::Object) {
                return make_error(Errc::InvalidArgument, "Cannot take the address of this value");
            }
            DxValue p = *v;
            p.kind = DxValue::Kind::Pointer;
            return p;
        }
        if (pos < s.size() && s[pos] == '(') {
            const size_t close = closing(pos);
            if (close == std::string_view::npos) {
                return make_error(Errc::InvalidArgument,
                                  "Unbalanced parentheses in '" + rest() + "'");
            }
            std::string_view inner = trim_space(s.substr(pos + 1, close - pos - 1));
            if (!inner.empty() && inner.back() == '*') {
                pos = close + 1;
                return cast(trim_space(inner.substr(0, inner.size() - 1)));
            }
            ++pos;
            auto v = unary();
            if (!v) {
                return v;
            }
            if (!eat(")")) {
                return bad("");
            }
            return postfix(std::move(*v));
        }
        auto v = primary();
        if (!v) {
            return v;
        }
        return postfix(std::move(*v));
    }

    Result<DxValue> cast(std::string_view type) {
        for (const char* kw : {"struct ", "union ", "enum ", "class "}) {
            if (type.substr(0, std::strlen(kw)) == kw) {
                type = trim_space(type.substr(std::strlen(kw)));
            }
        }
        std::string module, name(type);
        if (auto bang = type.find('!'); bang != std::string_view::npos) {
            module = std::string(type.substr(0, bang));
            name = std::string(type.substr(bang + 1));
        }
        auto ref = ev.m_dbg.symbols().find_type(module, name);
        if ((!ref || !ref->types) && simple_type(name)) {
            // A C++ base type: its CodeView index means the same in every PDB; the module's
            // (or nt's) types answer for it.
            const PdbTypes* types = nullptr;
            if (!module.empty()) {
                auto base = ev.m_dbg.module_base(module);
                types = base ? ev.m_dbg.symbols().types_of(*base) : nullptr;
            } else if (auto kt = KernelTypes::of_nt(ev.m_dbg)) {
                types = &kt->types();
            }
            if (types) {
                ref = TypeRef{module, types, *simple_type(name)};
            }
        }
        if (!ref || !ref->types) {
            return make_error(Errc::NotFound, "Couldn't resolve type '" + std::string(type) + "'");
        }
        auto v = unary();
        if (!v) {
            return v;
        }
        if (v->kind == DxValue::Kind::Untyped) {
            return untyped(*v);
        }
        uint64_t value = 0;
        if (v->kind == DxValue::Kind::Number || v->kind == DxValue::Kind::Pointer) {
            value = v->address;
        } else if (v->kind == DxValue::Kind::Object) {
            auto bits = ev.read_scalar(*v);
            if (!bits) {
                return tl::unexpected(bits.error());
            }
            value = *bits;
        } else {
            value = v->address; // a data-model process or thread: its kernel object
        }
        DxValue p;
        p.kind = DxValue::Kind::Pointer;
        p.types = ref->types;
        p.type = ref->index;
        p.address = value;
        return p;
    }

    Result<DxValue> postfix(DxValue v) {
        for (;;) {
            skip();
            if (v.kind == DxValue::Kind::Untyped && pos < s.size() &&
                (s[pos] == '.' || s[pos] == '-' || s[pos] == '[')) {
                return untyped(v);
            }
            if (eat("->")) {
                auto d = ev.deref(v);
                if (!d) {
                    return d;
                }
                auto m = member(*d);
                if (!m) {
                    return m;
                }
                v = std::move(*m);
            } else if (eat(".")) {
                auto m = member(v);
                if (!m) {
                    return m;
                }
                v = std::move(*m);
            } else if (eat("[")) {
                auto i = unary();
                if (!i) {
                    return i;
                }
                if (!eat("]")) {
                    return bad("");
                }
                uint64_t n = i->address;
                if (i->kind == DxValue::Kind::Object) {
                    auto bits = ev.read_scalar(*i);
                    if (!bits) {
                        return tl::unexpected(bits.error());
                    }
                    n = *bits;
                } else if (i->kind != DxValue::Kind::Number) {
                    return make_error(Errc::InvalidArgument, "An index must be a number");
                }
                auto e = ev.index(v, n);
                if (!e) {
                    return e;
                }
                v = std::move(*e);
            } else {
                return v;
            }
        }
    }

    Result<DxValue> member(const DxValue& v) {
        skip();
        const size_t start = pos;
        while (pos < s.size() &&
               (std::isalnum(static_cast<unsigned char>(s[pos])) || s[pos] == '_')) {
            ++pos;
        }
        if (pos == start) {
            return bad("");
        }
        return ev.member(v, s.substr(start, pos - start));
    }

    Result<DxValue> primary() {
        skip();
        const size_t start = pos;
        while (pos < s.size() &&
               (is_ident_char(s[pos]) || (s[pos] == '+' && pos > start) ||
                (s[pos] == '-' && pos > start && (pos + 1 >= s.size() || s[pos + 1] != '>')))) {
            ++pos;
        }
        const std::string token(s.substr(start, pos - start));
        if (token.empty()) {
            return bad("");
        }
        DxValue v;
        std::string lower = token;
        for (auto& c : lower) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (lower == "@$curprocess" || lower == "@$curthread") {
            const bool proc = lower == "@$curprocess";
            auto a = ev.m_dbg.evaluate(proc ? "@$proc" : "@$thread");
            if (!a || *a == 0) {
                return make_error(Errc::NotFound, std::string("Unable to find the current ") +
                                                      (proc ? "process" : "thread") + " (" +
                                                      KernelTypes::k_bad_symbols + ")");
            }
            v.kind = proc ? DxValue::Kind::Process : DxValue::Kind::Thread;
            v.address = *a;
            return v;
        }
        if (std::isdigit(static_cast<unsigned char>(token[0]))) {
            // C++ numbers: 0x.. hex (a backtick allowed), else decimal.
            std::string digits;
            const bool is_hex = lower.size() > 2 && lower[1] == 'x' && lower[0] == '0';
            for (char c : lower.substr(is_hex ? 2 : 0)) {
                if (c != '`') {
                    digits += c;
                }
            }
            if (digits.empty() || digits.size() > (is_hex ? 16u : 20u) ||
                digits.find_first_not_of(is_hex ? "0123456789abcdef" : "0123456789") !=
                    std::string::npos) {
                return bad(token);
            }
            v.address = std::stoull(digits, nullptr, is_hex ? 16 : 10);
            return v;
        }
        if (token[0] != '@' && token[0] != '$') {
            // A typed global: module!Variable, or Variable in any module.
            std::string module, name = token;
            if (auto bang = token.find('!'); bang != std::string::npos) {
                module = token.substr(0, bang);
                name = token.substr(bang + 1);
            }
            if (name.find_first_of("+-") == std::string::npos) {
                for (const auto& sym :
                     ev.m_dbg.symbols().search(module.empty() ? "*" : module, name)) {
                    if (sym.type_index == 0) {
                        v.kind = DxValue::Kind::Untyped;
                        v.address = sym.address;
                        continue; // another module may have it with a type
                    }
                    auto base = ev.m_dbg.module_base(sym.module);
                    const PdbTypes* types = base ? ev.m_dbg.symbols().types_of(*base) : nullptr;
                    if (!types) {
                        continue;
                    }
                    v.kind = DxValue::Kind::Object;
                    v.types = types;
                    v.type = sym.type_index;
                    v.address = sym.address;
                    return v;
                }
            }
        }
        if (v.kind == DxValue::Kind::Untyped) {
            return v;
        }
        auto n = ev.m_dbg.evaluate(token);
        if (!n) {
            return bad(token);
        }
        v.address = *n;
        if (token[0] == '@' || token[0] == '$') {
            v.number_type = "unsigned __int64"; // registers and pseudo-registers
        }
        return v;
    }
};

// ---------------------------------------------------------------------------------------------

Result<DxValue> DxEvaluator::evaluate(std::string_view expression) {
    Parser p{*this, trim_space(expression)};
    auto v = p.unary();
    if (!v) {
        return v;
    }
    p.skip();
    if (p.pos != p.s.size()) {
        return p.bad("");
    }
    if (v->kind == DxValue::Kind::Untyped) {
        return untyped(*v);
    }
    return v;
}

} // namespace kdcart::engine
