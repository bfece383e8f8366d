// dx [-r1] EXPR, a first step of the data model: a typed object one level deep, as WinDbg shows
// it. EXPR is a cast of an address to a pointer to a PDB type, "(mod!_TYPE *)0x...", optionally
// dereferenced, "(*((mod!_TYPE *)0x...))", or a typed global, "mod!Variable". Each field is one
// line: "    [+0x018] ApiNumber        : SmStartCsrApi (5) [Type: _SMAPINUMBER]" (structures,
// unions and arrays without a value); signed integers in decimal, unsigned ones and pointers in
// hex, bit fields with their bit position, as dx prints them.
#include "cli/DataModel.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

#include <cstdio>
#include <cstring>

namespace kdcart::cli {

namespace {

using engine::PdbType;

std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

// dx's type names: "unsigned __int64", "_LIST_ENTRY *".
std::string dx_type_name(const engine::PdbTypes& types, uint32_t index) {
    std::string n = types.c_name(index);
    for (const char* kw : {"struct ", "union ", "enum ", "class "}) {
        for (size_t p = n.find(kw); p != std::string::npos; p = n.find(kw, p)) {
            n.erase(p, std::strlen(kw));
        }
    }
    for (const char* w : {"int64", "int128"}) {
        for (size_t p = n.find(w); p != std::string::npos; p = n.find(w, p + 3)) {
            if (p < 2 || n.compare(p - 2, 2, "__") != 0) {
                n.insert(p, "__");
                p += 2;
            }
        }
    }
    return n;
}

const PdbType* resolved(const engine::PdbTypes& types, uint32_t index, uint32_t* out_index) {
    const PdbType* t = types.get(index);
    for (int i = 0; t && t->kind == PdbType::Kind::Modifier && i < 8; ++i) {
        index = t->element;
        t = types.get(index);
    }
    if (out_index) {
        *out_index = index;
    }
    return t;
}

std::optional<uint64_t> read_uint(engine::Debugger& dbg, uint64_t address, size_t size) {
    if (size == 0 || size > 8) {
        return std::nullopt;
    }
    auto m = dbg.read_virtual(address, size);
    if (!m || m->readable_prefix() < size) {
        return std::nullopt;
    }
    uint64_t v = 0;
    for (size_t i = size; i-- > 0;) {
        v = (v << 8) | m->bytes[i];
    }
    return v;
}

// The value part of a line (without " : "), nullopt for aggregates that show no value.
std::optional<std::string> value_text(engine::Debugger& dbg, const engine::PdbTypes& types,
                                      uint32_t index, uint64_t address) {
    const PdbType* t = resolved(types, index, &index);
    if (!t) {
        return std::string("<unknown type>");
    }
    const auto unreadable = [&] { return "Unable to read memory at Address " + hex(address); };
    switch (t->kind) {
    case PdbType::Kind::Struct:
    case PdbType::Kind::Union:
    case PdbType::Kind::Array:
    case PdbType::Kind::Function:
        return std::nullopt;
    case PdbType::Kind::Pointer: {
        auto v = read_uint(dbg, address, t->size ? t->size : 8);
        return v ? hex(*v) : unreadable();
    }
    case PdbType::Kind::Enum: {
        const PdbType* u = types.get(t->element);
        auto v = read_uint(dbg, address, u && u->size ? u->size : 4);
        if (!v) {
            return unreadable();
        }
        for (const auto& e : t->enumerators) {
            if (static_cast<uint64_t>(e.value) == *v) {
                return e.name + " (" + std::to_string(e.value) + ")";
            }
        }
        return std::to_string(static_cast<int64_t>(*v));
    }
    case PdbType::Kind::Bitfield: {
        const PdbType* u = types.get(t->element);
        auto v = read_uint(dbg, address, u && u->size ? u->size : 4);
        if (!v) {
            return unreadable();
        }
        uint64_t bits = *v >> t->bit_position;
        if (t->bit_length < 64) {
            bits &= (uint64_t{1} << t->bit_length) - 1;
        }
        return hex(bits);
    }
    case PdbType::Kind::Base: {
        if (t->base == PdbType::Base::Void || t->size == 0) {
            return std::string("<void>");
        }
        auto v = read_uint(dbg, address, t->size);
        if (!v) {
            return unreadable();
        }
        switch (t->base) {
        case PdbType::Base::Int: {
            const unsigned shift = 64 - 8 * static_cast<unsigned>(t->size);
            const int64_t sv = static_cast<int64_t>(*v << shift) >> shift;
            return std::to_string(sv);
        }
        case PdbType::Base::Char:
        case PdbType::Base::UChar: {
            const int64_t sv =
                t->base == PdbType::Base::Char ? static_cast<int8_t>(*v) : static_cast<int64_t>(*v);
            std::string s = std::to_string(sv);
            if (*v >= 0x20 && *v < 0x7F) {
                s += " '" + std::string(1, static_cast<char>(*v)) + "'";
            }
            return s;
        }
        case PdbType::Base::Bool:
            return std::string(*v ? "true" : "false");
        case PdbType::Base::Float: {
            char b[64];
            if (t->size == 4) {
                float f;
                uint32_t u = static_cast<uint32_t>(*v);
                std::memcpy(&f, &u, 4);
                std::snprintf(b, sizeof b, "%g", static_cast<double>(f));
            } else {
                double d;
                std::memcpy(&d, &*v, 8);
                std::snprintf(b, sizeof b, "%g", d);
            }
            return std::string(b);
        }
        default:
            return hex(*v);
        }
    }
    default:
        return std::string("<unknown type>");
    }
}

std::string pad(std::string s, size_t width) {
    if (s.size() < width) {
        s.resize(width, ' ');
    }
    return s;
}

std::string strip_parens(std::string_view s) {
    s = trim(s);
    while (s.size() >= 2 && s.front() == '(' && s.back() == ')') {
        // Only when the outer pair encloses everything.
        int depth = 0;
        bool encloses = true;
        for (size_t i = 0; i < s.size(); ++i) {
            depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
            if (depth == 0 && i + 1 < s.size()) {
                encloses = false;
                break;
            }
        }
        if (!encloses) {
            break;
        }
        s = trim(s.substr(1, s.size() - 2));
    }
    return std::string(s);
}

struct Typed {
    const engine::PdbTypes* types = nullptr;
    uint32_t type = 0;
    uint64_t address = 0;    // where the object is
    bool is_pointer = false; // the expression's value is a pointer to it
    std::string module;
};

Result<Typed> parse_expression(engine::Debugger& dbg, std::string_view text) {
    std::string e = strip_parens(text);
    bool deref = false;
    if (!e.empty() && e[0] == '*') {
        deref = true;
        e = strip_parens(std::string_view(e).substr(1));
    }
    Typed t;
    if (!e.empty() && e[0] == '(') {
        // (module!TYPE *)address
        const size_t close = e.find(')');
        if (close == std::string::npos) {
            return make_error(Errc::InvalidArgument, "Unbalanced parentheses in '" + e + "'");
        }
        std::string cast = std::string(trim(std::string_view(e).substr(1, close - 1)));
        if (cast.empty() || cast.back() != '*') {
            return make_error(Errc::InvalidArgument,
                              "Only pointer casts are supported: '" + e + "'");
        }
        cast.pop_back();
        cast = std::string(trim(cast));
        for (const char* kw : {"struct ", "union ", "enum "}) {
            if (cast.rfind(kw, 0) == 0) {
                cast = std::string(trim(std::string_view(cast).substr(std::strlen(kw))));
            }
        }
        std::string module;
        std::string name = cast;
        if (auto bang = cast.find('!'); bang != std::string::npos) {
            module = cast.substr(0, bang);
            name = cast.substr(bang + 1);
        }
        auto ref = dbg.symbols().find_type(module, name);
        if (!ref || !ref->types) {
            return make_error(Errc::NotFound, "Couldn't resolve type '" + cast + "'");
        }
        // The C++ address-of a symbol is what MASM evaluates the symbol to.
        std::string operand = strip_parens(std::string_view(e).substr(close + 1));
        if (!operand.empty() && operand[0] == '&') {
            operand = strip_parens(std::string_view(operand).substr(1));
        }
        auto v = dbg.evaluate(operand);
        if (!v) {
            return tl::unexpected(v.error());
        }
        t.types = ref->types;
        t.type = ref->index;
        t.address = *v;
        t.is_pointer = !deref;
        t.module = ref->module;
        return t;
    }
    // A typed global: module!Variable
    std::string module, name = e;
    if (auto bang = e.find('!'); bang != std::string::npos) {
        module = e.substr(0, bang);
        name = e.substr(bang + 1);
    }
    auto found = dbg.symbols().search(module.empty() ? "*" : module, name);
    for (const auto& s : found) {
        if (s.type_index == 0) {
            continue;
        }
        auto base = dbg.module_base(s.module);
        const engine::PdbTypes* types = base ? dbg.symbols().types_of(*base) : nullptr;
        if (!types) {
            continue;
        }
        t.types = types;
        t.type = s.type_index;
        t.address = s.address;
        t.module = s.module;
        if (deref) {
            // *pointer_global: the pointee
            uint32_t idx = 0;
            const PdbType* pt = resolved(*types, t.type, &idx);
            if (!pt || pt->kind != PdbType::Kind::Pointer) {
                return make_error(Errc::InvalidArgument, "'" + e + "' is not a pointer");
            }
            auto v = read_uint(dbg, t.address, 8);
            if (!v) {
                return make_error(Errc::Unreadable,
                                  "Unable to read memory at Address " + hex(t.address));
            }
            t.type = pt->element;
            t.address = *v;
        }
        return t;
    }
    return make_error(Errc::NotFound, "Couldn't resolve error at '" + e + "'");
}

} // namespace

void cmd_dx(engine::Debugger& dbg, Output& out, std::string_view args) {
    args = trim(args);
    int depth = 1;
    while (!args.empty() && args[0] == '-') {
        if (args.size() >= 2 && (args[1] == 'r' || args[1] == 'R')) {
            size_t i = 2;
            int n = 0;
            while (i < args.size() && std::isdigit(static_cast<unsigned char>(args[i]))) {
                n = n * 10 + (args[i] - '0');
                ++i;
            }
            depth = i > 2 ? n : 1;
            args = trim(args.substr(i));
        } else {
            out.write("Unsupported dx option '" + std::string(args.substr(0, 2)) +
                      "' (kdcart's dx shows one level: -r0 or -r1)\n");
            return;
        }
    }
    if (args.empty()) {
        out.write("Usage: dx [-r1] expression\n");
        return;
    }
    if (auto mods = dbg.modules(); !mods) {
        out.write("Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    auto t = parse_expression(dbg, args);
    if (!t) {
        out.write("Error: " + t.error().message + "\n");
        return;
    }
    const engine::PdbTypes& types = *t->types;
    const std::string type_name = dx_type_name(types, t->type);
    std::string s;
    if (t->is_pointer) {
        s += std::string(args) + " : " + hex(t->address) + " [Type: " + type_name + " *]\n";
    } else if (auto v = value_text(dbg, types, t->type, t->address)) {
        s += std::string(args) + " : " + *v + " [Type: " + type_name + "]\n";
    } else {
        s += std::string(args) + " [Type: " + type_name + "]\n";
    }
    uint32_t idx = 0;
    const PdbType* ty = resolved(types, t->type, &idx);
    if (depth >= 1 && ty &&
        (ty->kind == PdbType::Kind::Struct || ty->kind == PdbType::Kind::Union)) {
        for (const auto& f : ty->fields) {
            if (f.is_static) {
                continue;
            }
            char off[48];
            const PdbType* ft = types.get(f.type);
            if (ft && ft->kind == PdbType::Kind::Bitfield) {
                std::snprintf(off, sizeof off, "[+0x%03llx (%2u:%2u)]",
                              static_cast<unsigned long long>(f.offset),
                              ft->bit_position + ft->bit_length - 1u, ft->bit_position);
            } else {
                std::snprintf(off, sizeof off, "[+0x%03llx]",
                              static_cast<unsigned long long>(f.offset));
            }
            const uint32_t shown_type =
                ft && ft->kind == PdbType::Kind::Bitfield ? ft->element : f.type;
            auto v = value_text(dbg, types, f.type, t->address + f.offset);
            s += "    " + std::string(off) + " " + pad(f.name, 16) + (v ? " : " + *v + " " : " ") +
                 "[Type: " + dx_type_name(types, shown_type) + "]\n";
        }
    } else if (depth >= 1 && ty && ty->kind == PdbType::Kind::Array && ty->count > 0) {
        const PdbType* el = types.get(ty->element);
        const uint64_t es = el && el->size ? el->size : 1;
        const uint64_t n = std::min<uint64_t>(ty->count, 100);
        for (uint64_t i = 0; i < n; ++i) {
            auto v = value_text(dbg, types, ty->element, t->address + i * es);
            s += "    [" + std::to_string(i) + "]" + (v ? " : " + *v + " " : " ") +
                 "[Type: " + dx_type_name(types, ty->element) + "]\n";
        }
        if (ty->count > n) {
            s += "    [...]\n";
        }
    }
    out.write(s);
}

} // namespace kdcart::cli
