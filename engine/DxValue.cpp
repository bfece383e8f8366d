// dx's evaluator: a small recursive-descent parser over the C++-like expressions dx takes, and
// the children of each kind of value (see DxValue.h). Offsets come from the PDB's types by field
// name: the structures of a module from its own PDB, the kernel's objects from nt's.
#include "engine/DxValue.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"
#include "engine/KernelTypes.h"
#include "engine/ThreadState.h"

#include <cctype>
#include <cstring>

namespace kdcart::engine {

namespace {

std::string_view trim_view(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
        s.remove_prefix(1);
    }
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
        s.remove_suffix(1);
    }
    return s;
}

Error unreadable(uint64_t address) {
    return Error{Errc::Unreadable, "Unable to read memory at Address " + hex_0x(address)};
}

// An array's element count: its size over its element's (the PDB records the size).
uint64_t array_count(const PdbTypes& types, const PdbType& t) {
    if (t.count) {
        return t.count;
    }
    const PdbType* e = types.get(t.element);
    return e && e->size ? t.size / e->size : 0;
}

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
    std::string rest() const { return std::string(trim_view(s.substr(pos))); }
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
            std::string_view inner = trim_view(s.substr(pos + 1, close - pos - 1));
            if (!inner.empty() && inner.back() == '*') {
                pos = close + 1;
                return cast(trim_view(inner.substr(0, inner.size() - 1)));
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
                type = trim_view(type.substr(std::strlen(kw)));
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

    static tl::unexpected<Error> untyped(const DxValue& v) {
        return make_error(Errc::NotFound,
                          "No type (or void) for object at Address " + hex_0x(v.address));
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
    Parser p{*this, trim_view(expression)};
    auto v = p.unary();
    if (!v) {
        return v;
    }
    p.skip();
    if (p.pos != p.s.size()) {
        return p.bad("");
    }
    if (v->kind == DxValue::Kind::Untyped) {
        return Parser::untyped(*v);
    }
    return v;
}

const PdbType* DxEvaluator::resolved(const DxValue& v, uint32_t* out_index) const {
    if (!v.types || (v.kind != DxValue::Kind::Object && v.kind != DxValue::Kind::Pointer)) {
        return nullptr;
    }
    uint32_t index = v.type;
    const PdbType* t = v.types->get(index);
    for (int i = 0; t && t->kind == PdbType::Kind::Modifier && i < 8; ++i) {
        index = t->element;
        t = v.types->get(index);
    }
    if (out_index) {
        *out_index = index;
    }
    return t;
}

Result<uint64_t> DxEvaluator::read_scalar(const DxValue& v) {
    if (v.kind == DxValue::Kind::Number || v.kind == DxValue::Kind::Pointer) {
        return v.address;
    }
    const PdbType* t = resolved(v);
    if (!t) {
        return make_error(Errc::NotFound, "The value has no type");
    }
    uint64_t size = t->size;
    if (t->kind == PdbType::Kind::Enum || t->kind == PdbType::Kind::Bitfield) {
        const PdbType* u = v.types->get(t->element);
        size = u && u->size ? u->size : 4;
    } else if (t->kind == PdbType::Kind::Pointer && size == 0) {
        size = 8;
    }
    if (size == 0 || size > 8) {
        return make_error(Errc::InvalidArgument, "The value is not a scalar");
    }
    auto m = m_dbg.read_virtual(v.address, size);
    if (!m || m->readable_prefix() < size) {
        return tl::unexpected(unreadable(v.address));
    }
    uint64_t bits = 0;
    for (size_t i = size; i-- > 0;) {
        bits = (bits << 8) | m->bytes[i];
    }
    if (t->kind == PdbType::Kind::Bitfield) {
        bits >>= t->bit_position;
        if (t->bit_length < 64) {
            bits &= (uint64_t{1} << t->bit_length) - 1;
        }
    }
    return bits;
}

Result<DxValue> DxEvaluator::load_pointer(const DxValue& v) {
    if (v.kind != DxValue::Kind::Object) {
        return v;
    }
    const PdbType* t = resolved(v);
    if (!t || t->kind != PdbType::Kind::Pointer) {
        return v;
    }
    auto bits = read_scalar(v);
    if (!bits) {
        return tl::unexpected(bits.error());
    }
    DxValue p;
    p.kind = DxValue::Kind::Pointer;
    p.types = v.types;
    p.type = t->element;
    p.address = *bits;
    return p;
}

Result<DxValue> DxEvaluator::deref(const DxValue& v) {
    if (v.kind == DxValue::Kind::Untyped) {
        return Parser::untyped(v);
    }
    auto p = load_pointer(v);
    if (!p) {
        return p;
    }
    if (p->kind == DxValue::Kind::Process || p->kind == DxValue::Kind::Thread) {
        return p; // dx reaches a data-model object's properties through '->' too
    }
    if (p->kind != DxValue::Kind::Pointer) {
        return make_error(Errc::InvalidArgument,
                          "Cannot dereference a value that is not a pointer");
    }
    DxValue o = *p;
    o.kind = DxValue::Kind::Object;
    return o;
}

Result<DxValue> DxEvaluator::nt_object(const char* type, uint64_t address) {
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return tl::unexpected(kt.error());
    }
    auto index = kt->types().find(type);
    if (!index) {
        return make_error(Errc::NotFound, std::string("nt's PDB has no ") + type);
    }
    DxValue o;
    o.kind = DxValue::Kind::Object;
    o.types = &kt->types();
    o.type = *index;
    o.address = address;
    return o;
}

Result<uint64_t> DxEvaluator::process_id(uint64_t eprocess) {
    auto kt = KernelTypes::of_nt(m_dbg);
    return kt ? kt->read_unsigned(eprocess, "_EPROCESS", "UniqueProcessId")
              : tl::unexpected(kt.error());
}

Result<std::string> DxEvaluator::process_name(uint64_t eprocess) {
    auto kt = KernelTypes::of_nt(m_dbg);
    return kt ? kt->read_char_array(eprocess, "_EPROCESS", "ImageFileName")
              : tl::unexpected(kt.error());
}

Result<uint64_t> DxEvaluator::thread_id(uint64_t ethread) {
    auto kt = KernelTypes::of_nt(m_dbg);
    return kt ? kt->read_unsigned(ethread, "_ETHREAD", "Cid.UniqueThread")
              : tl::unexpected(kt.error());
}

Result<uint64_t> DxEvaluator::thread_ip(uint64_t ethread) {
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return tl::unexpected(kt.error());
    }
    ThreadState ts(m_dbg, *kt);
    auto info = ts.thread(ethread);
    if (!info) {
        return tl::unexpected(info.error());
    }
    auto ctx = ts.saved_context(*info);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    return ctx->Rip;
}

Result<DxValue> DxEvaluator::member(const DxValue& v, std::string_view name) {
    if (v.kind == DxValue::Kind::Process || v.kind == DxValue::Kind::Thread) {
        const bool proc = v.kind == DxValue::Kind::Process;
        for (auto& c : children(v).items) {
            if (c.name == name) {
                return c.value;
            }
        }
        return make_error(Errc::NotFound, "No property '" + std::string(name) + "' on the " +
                                              (proc ? "process" : "thread") + " object");
    }
    auto p = load_pointer(v);
    if (!p) {
        return p;
    }
    DxValue o = *p;
    if (o.kind == DxValue::Kind::Pointer) {
        o.kind = DxValue::Kind::Object; // dx lets '.' reach through a pointer
    }
    const PdbType* t = resolved(o);
    if (!t || (t->kind != PdbType::Kind::Struct && t->kind != PdbType::Kind::Union)) {
        return make_error(Errc::InvalidArgument,
                          "Cannot find the field '" + std::string(name) + "': not a structure");
    }
    for (const auto& f : t->fields) {
        if (!f.is_static && f.name == name) {
            DxValue m;
            m.kind = DxValue::Kind::Object;
            m.types = o.types;
            m.type = f.type;
            m.address = o.address + f.offset;
            return m;
        }
    }
    std::string type = o.types->c_name(o.type);
    for (const char* kw : {"struct ", "union ", "class "}) {
        if (type.rfind(kw, 0) == 0) {
            type.erase(0, std::strlen(kw));
        }
    }
    return make_error(Errc::NotFound, "No field '" + std::string(name) + "' in " + type);
}

Result<DxValue> DxEvaluator::index(const DxValue& v, uint64_t i) {
    if (v.kind == DxValue::Kind::ThreadList) {
        // Keyed by thread id, as the children are named: Threads[0x18].
        auto c = children(v, SIZE_MAX);
        for (auto& child : c.items) {
            if (child.name == "[" + hex_0x(i) + "]") {
                return child.value;
            }
        }
        if (c.error) {
            return make_error(Errc::NotFound, *c.error);
        }
        return make_error(Errc::NotFound, "No thread with id " + hex_0x(i) + " in the process");
    }
    const PdbType* t = resolved(v);
    DxValue base = v;
    uint32_t element = 0;
    if (t && t->kind == PdbType::Kind::Array && v.kind == DxValue::Kind::Object) {
        element = t->element;
    } else {
        auto p = load_pointer(v);
        if (!p) {
            return p;
        }
        if (p->kind != DxValue::Kind::Pointer) {
            return make_error(Errc::InvalidArgument,
                              "Cannot index a value that is neither an array nor a pointer");
        }
        base = *p;
        element = p->type;
    }
    const PdbType* e = v.types->get(element);
    const uint64_t size = e && e->size ? e->size : 1;
    DxValue o;
    o.kind = DxValue::Kind::Object;
    o.types = v.types;
    o.type = element;
    o.address = base.address + i * size;
    return o;
}

bool DxEvaluator::expandable(const DxValue& v) const {
    switch (v.kind) {
    case DxValue::Kind::Process:
    case DxValue::Kind::Thread:
    case DxValue::Kind::ThreadList:
        return true;
    case DxValue::Kind::Number:
    case DxValue::Kind::Text:
    case DxValue::Kind::Untyped:
        return false;
    default:
        break;
    }
    const PdbType* t = resolved(v);
    if (!t) {
        return false;
    }
    if (t->kind == PdbType::Kind::Pointer || v.kind == DxValue::Kind::Pointer) {
        DxValue pointee;
        pointee.kind = DxValue::Kind::Object;
        pointee.types = v.types;
        pointee.type = v.kind == DxValue::Kind::Pointer ? v.type : t->element;
        const PdbType* pt = resolved(pointee);
        return pt && (pt->kind == PdbType::Kind::Struct || pt->kind == PdbType::Kind::Union);
    }
    return t->kind == PdbType::Kind::Struct || t->kind == PdbType::Kind::Union ||
           (t->kind == PdbType::Kind::Array && array_count(*v.types, *t) > 0);
}

DxChildren DxEvaluator::children(const DxValue& v, size_t max) {
    DxChildren out;
    const auto add = [&](std::string name, DxValue value, std::optional<uint64_t> offset = {}) {
        if (out.items.size() >= max) {
            out.truncated = true;
            return false;
        }
        out.items.push_back({std::move(name), offset, std::move(value)});
        return true;
    };
    switch (v.kind) {
    case DxValue::Kind::Process: {
        auto ko = nt_object("_EPROCESS", v.address);
        if (!ko) {
            out.error = ko.error().message;
            return out;
        }
        add("KernelObject", *ko);
        if (auto name = process_name(v.address)) {
            DxValue t;
            t.kind = DxValue::Kind::Text;
            t.text = *name;
            add("Name", t);
        }
        if (auto id = process_id(v.address)) {
            DxValue n;
            n.address = *id;
            add("Id", n);
        }
        {
            // What WinDbg shows as a kernel-mode process's Handle: no handle, a constant.
            DxValue n;
            n.address = 0xf0f0f0f0;
            add("Handle", n);
        }
        DxValue threads;
        threads.kind = DxValue::Kind::ThreadList;
        threads.address = v.address;
        add("Threads", threads);
        return out;
    }
    case DxValue::Kind::Thread: {
        auto ko = nt_object("_ETHREAD", v.address);
        if (!ko) {
            out.error = ko.error().message;
            return out;
        }
        add("KernelObject", *ko);
        if (auto id = thread_id(v.address)) {
            DxValue n;
            n.address = *id;
            add("Id", n);
        }
        return out;
    }
    case DxValue::Kind::ThreadList: {
        auto kt = KernelTypes::of_nt(m_dbg);
        if (!kt) {
            out.error = kt.error().message;
            return out;
        }
        ThreadState ts(m_dbg, *kt);
        auto list = ts.threads_of(v.address);
        if (!list) {
            out.error = list.error().message;
            return out;
        }
        for (uint64_t et : list->threads) {
            DxValue t;
            t.kind = DxValue::Kind::Thread;
            t.address = et;
            auto id = thread_id(et);
            if (!add(id ? "[" + hex_0x(*id) + "]" : "[?]", t)) {
                break;
            }
        }
        if (list->broken && !out.truncated) {
            out.error = "The thread list is broken: " + *list->broken;
        }
        return out;
    }
    case DxValue::Kind::Number:
    case DxValue::Kind::Text:
    case DxValue::Kind::Untyped:
        return out;
    default:
        break;
    }
    auto p = load_pointer(v);
    if (!p) {
        out.error = p.error().message;
        return out;
    }
    DxValue o = *p;
    if (o.kind == DxValue::Kind::Pointer) {
        if (!expandable(o) || o.address == 0) {
            return out;
        }
        o.kind = DxValue::Kind::Object;
    }
    const PdbType* t = resolved(o);
    if (!t) {
        return out;
    }
    if (t->kind == PdbType::Kind::Struct || t->kind == PdbType::Kind::Union) {
        for (const auto& f : t->fields) {
            if (f.is_static) {
                continue;
            }
            DxValue m;
            m.kind = DxValue::Kind::Object;
            m.types = o.types;
            m.type = f.type;
            m.address = o.address + f.offset;
            if (!add(f.name, m, f.offset)) {
                break;
            }
        }
    } else if (t->kind == PdbType::Kind::Array) {
        const PdbType* e = o.types->get(t->element);
        const uint64_t size = e && e->size ? e->size : 1;
        for (uint64_t i = 0, n = array_count(*o.types, *t); i < n; ++i) {
            DxValue m;
            m.kind = DxValue::Kind::Object;
            m.types = o.types;
            m.type = t->element;
            m.address = o.address + i * size;
            if (!add("[" + std::to_string(i) + "]", m)) {
                break;
            }
        }
    }
    return out;
}

} // namespace kdcart::engine
