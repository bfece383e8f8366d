#include "cli/TypeFormat.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

#include "engine/Wildcard.h"

#include <algorithm>
#include <cstring>

namespace kdcart::cli {

namespace {

using engine::PdbType;
using engine::PdbTypes;
using Kind = PdbType::Kind;

constexpr int kMaxDepth = 16;

// The type under const/volatile.
const PdbType* bare(const PdbTypes& types, uint32_t& index) {
    const PdbType* t = types.get(index);
    for (int i = 0; t && t->kind == Kind::Modifier && i < kMaxDepth; ++i) {
        index = t->element;
        t = types.get(index);
    }
    return t;
}

std::string unsigned_text(uint64_t v) {
    if (v == 0) {
        return "0";
    }
    if (v > 0xFFFFFFFFull) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "0x%08llx`%08llx", static_cast<unsigned long long>(v >> 32),
                      static_cast<unsigned long long>(v & 0xFFFFFFFF));
        return buf;
    }
    return "0x" + hex_digits(v);
}

std::string pointer_text(uint64_t v, uint64_t size) {
    if (v == 0) {
        return "(null)";
    }
    if (size == 4) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "0x%08llx", static_cast<unsigned long long>(v));
        return buf;
    }
    return "0x" + format_address(v);
}

int64_t sign_extend(uint64_t v, uint64_t size) {
    if (size >= 8 || size == 0) {
        return static_cast<int64_t>(v);
    }
    const unsigned bits = static_cast<unsigned>(size * 8);
    const uint64_t m = uint64_t{1} << (bits - 1);
    return static_cast<int64_t>((v ^ m) - m);
}

// Type text in a layout ("Uint4B", "Ptr64 _LIST_ENTRY", "[4] UChar", "Pos 0, 1 Bit").
std::string layout_text(const PdbTypes& types, uint32_t index, int depth = 0) {
    if (depth > kMaxDepth) {
        return "?";
    }
    const PdbType* t = bare(types, index);
    if (!t) {
        return "<unknown type>";
    }
    switch (t->kind) {
    case Kind::Base:
        return t->name;
    case Kind::Pointer: {
        std::string p = t->size == 4 ? "Ptr32 " : "Ptr64 ";
        uint32_t e = t->element;
        const PdbType* pt = bare(types, e);
        if (pt && pt->kind == Kind::Function) {
            return p + "    " + types.c_name(pt->element) + " ";
        }
        return p + layout_text(types, e, depth + 1);
    }
    case Kind::Struct:
    case Kind::Union:
    case Kind::Enum:
        return t->name;
    case Kind::Array: {
        uint32_t e = t->element;
        const PdbType* et = bare(types, e);
        const uint64_t n = et && et->size ? t->size / et->size : 0;
        return "[" + std::to_string(n) + "] " + layout_text(types, t->element, depth + 1);
    }
    case Kind::Bitfield:
        return "Pos " + std::to_string(t->bit_position) + ", " + std::to_string(t->bit_length) +
               (t->bit_length == 1 ? " Bit" : " Bits");
    case Kind::Function:
        return types.c_name(t->element);
    default:
        return "<unknown type>";
    }
}

struct Reader {
    engine::Debugger& dbg;
    // A value held in a register: `address` 0 reads it instead of memory.
    std::optional<uint64_t> register_value = std::nullopt;
    // Little-endian value of `size` (<= 8) bytes; nullopt when unreadable.
    std::optional<uint64_t> value(uint64_t address, uint64_t size) {
        if (size == 0 || size > 8) {
            return std::nullopt;
        }
        if (register_value && address == 0) {
            return size == 8 ? *register_value
                             : *register_value & ((uint64_t{1} << (8 * size)) - 1);
        }
        auto m = dbg.read_virtual(address, size);
        if (!m || !m->all_valid()) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, m->bytes.data(), size);
        return v;
    }
    std::string ascii(uint64_t address, size_t max, bool wide) {
        auto m = dbg.read_virtual(address, max * (wide ? 2 : 1));
        if (!m) {
            return {};
        }
        std::string s;
        for (size_t i = 0; i < max; ++i) {
            const size_t o = i * (wide ? 2 : 1);
            if (o + (wide ? 1 : 0) >= m->bytes.size() || !m->valid[o]) {
                break;
            }
            const unsigned c = wide ? (m->bytes[o] | (m->bytes[o + 1] << 8)) : m->bytes[o];
            if (c == 0) {
                break;
            }
            s.push_back(c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '.');
        }
        return s;
    }
};

std::string read_error(uint64_t address) {
    return "Memory read error " + format_address(address);
}

std::string base_value(const PdbType& t, uint64_t v) {
    switch (t.base) {
    case PdbType::Base::Int:
    case PdbType::Base::HResult:
        return "0n" + std::to_string(sign_extend(v, t.size));
    case PdbType::Base::Char:
    case PdbType::Base::UChar:
    case PdbType::Base::WChar: {
        const char c = v >= 0x20 && v < 0x7F ? static_cast<char>(v) : '\0';
        return unsigned_text(v) + " '" + (c ? std::string(1, c) : std::string()) + "'";
    }
    case PdbType::Base::Bool:
        return v ? "1" : "0";
    case PdbType::Base::Float: {
        char buf[64];
        if (t.size == 4) {
            float f;
            uint32_t u = static_cast<uint32_t>(v);
            std::memcpy(&f, &u, 4);
            std::snprintf(buf, sizeof buf, "%g", static_cast<double>(f));
        } else {
            double d;
            std::memcpy(&d, &v, 8);
            std::snprintf(buf, sizeof buf, "%g", d);
        }
        return buf;
    }
    default:
        return unsigned_text(v);
    }
}

// The value after " : " for one field or variable (without nested lines).
std::string value_text(Reader& rd, const PdbTypes& types, uint32_t index, uint64_t address,
                       int depth = 0) {
    const PdbType* t = bare(types, index);
    if (!t || depth > kMaxDepth) {
        return "<unknown type>";
    }
    switch (t->kind) {
    case Kind::Base: {
        if (t->base == PdbType::Base::Void) {
            return "Void";
        }
        auto v = rd.value(address, t->size);
        return v ? base_value(*t, *v) : read_error(address);
    }
    case Kind::Enum: {
        auto v = rd.value(address, t->size);
        if (!v) {
            return read_error(address);
        }
        const int64_t sv = sign_extend(*v, t->size);
        for (const auto& e : t->enumerators) {
            if (e.value == sv) {
                return "0n" + std::to_string(sv) + " ( " + e.name + " )";
            }
        }
        return "0n" + std::to_string(sv);
    }
    case Kind::Pointer: {
        auto v = rd.value(address, t->size);
        if (!v) {
            return read_error(address);
        }
        std::string s = pointer_text(*v, t->size);
        if (*v == 0) {
            return s;
        }
        uint32_t e = t->element;
        const PdbType* pt = bare(types, e);
        if (pt && pt->kind == Kind::Base &&
            (pt->base == PdbType::Base::Char || pt->base == PdbType::Base::WChar)) {
            return s + "  \"" + rd.ascii(*v, 256, pt->base == PdbType::Base::WChar) + "\"";
        }
        if (pt && (pt->kind == Kind::Struct || pt->kind == Kind::Union || pt->kind == Kind::Enum)) {
            return s + " " + pt->name;
        }
        if (pt && pt->kind == Kind::Base && pt->base == PdbType::Base::Void) {
            return s + " Void";
        }
        return s;
    }
    case Kind::Struct:
    case Kind::Union: {
        if (t->name == "_LIST_ENTRY" && t->size == 16) {
            auto f = rd.value(address, 8);
            auto b = rd.value(address + 8, 8);
            if (!f || !b) {
                return t->name + " " + read_error(address);
            }
            return t->name + " [ " + pointer_text(*f, 8) + " - " + pointer_text(*b, 8) + " ]";
        }
        if (t->name == "_UNICODE_STRING" && t->size == 16) {
            auto len = rd.value(address, 2);
            auto buf = rd.value(address + 8, 8);
            if (!len || !buf) {
                return t->name + " " + read_error(address);
            }
            return t->name + " \"" + rd.ascii(*buf, std::min<uint64_t>(*len / 2, 512), true) + "\"";
        }
        return t->name;
    }
    case Kind::Array: {
        uint32_t e = t->element;
        const PdbType* et = bare(types, e);
        const uint64_t n = et && et->size ? t->size / et->size : 0;
        std::string head = "[" + std::to_string(n) + "] ";
        if (et && et->kind == Kind::Base &&
            (et->base == PdbType::Base::Char || et->base == PdbType::Base::UChar ||
             et->base == PdbType::Base::WChar)) {
            return head + " \"" +
                   rd.ascii(address, std::min<uint64_t>(n, 256), et->base == PdbType::Base::WChar) +
                   "\"";
        }
        if (et && (et->kind == Kind::Base || et->kind == Kind::Pointer || et->kind == Kind::Enum)) {
            return head + value_text(rd, types, e, address, depth + 1);
        }
        return head + layout_text(types, e);
    }
    case Kind::Bitfield: {
        uint32_t b = t->element;
        const PdbType* bt = bare(types, b);
        const uint64_t size = bt ? bt->size : 4;
        auto v = rd.value(address, size);
        if (!v) {
            return read_error(address);
        }
        std::string bits = "0y";
        for (int i = t->bit_length - 1; i >= 0; --i) {
            bits += ((*v >> (t->bit_position + i)) & 1) ? '1' : '0';
        }
        return bits;
    }
    case Kind::Function:
        return types.c_name(t->element) + " ()";
    default:
        return "<unknown type>";
    }
}

struct DtOptions {
    int depth = 0; // levels of nested structures to expand
    std::vector<std::string> fields;
};

bool field_wanted(const DtOptions& o, const std::string& name) {
    if (o.fields.empty()) {
        return true;
    }
    for (const auto& f : o.fields) {
        if (f == name || engine::wildcard_match(f, name)) {
            return true;
        }
    }
    return false;
}

void dump_fields(Reader& rd, const PdbTypes& types, const PdbType& t,
                 std::optional<uint64_t> address, const DtOptions& opt, int level,
                 std::string& out) {
    const std::string indent(3 + 3 * static_cast<size_t>(level), ' ');
    for (const auto& f : t.fields) {
        if (f.is_static || (level == 0 && !field_wanted(opt, f.name))) {
            continue;
        }
        char off[24];
        std::snprintf(off, sizeof off, "+0x%03llx ", static_cast<unsigned long long>(f.offset));
        std::string name = f.name;
        if (name.size() < 16) {
            name.resize(16, ' ');
        }
        std::string line = indent + off + name + " : ";
        line += address ? value_text(rd, types, f.type, *address + f.offset)
                        : layout_text(types, f.type);
        out += line + "\n";
        uint32_t idx = f.type;
        const PdbType* ft = bare(types, idx);
        if (ft && (ft->kind == Kind::Struct || ft->kind == Kind::Union) && level < opt.depth &&
            level < kMaxDepth) {
            dump_fields(rd, types, *ft,
                        address ? std::optional<uint64_t>(*address + f.offset) : std::nullopt, opt,
                        level + 1, out);
        }
    }
}

void print(Output& out, const std::string& s) {
    out.write(s);
}

} // namespace

std::string format_value_inline(engine::Debugger& dbg, const PdbTypes& types, uint32_t type,
                                uint64_t address) {
    Reader rd{dbg};
    uint32_t idx = type;
    const PdbType* t = bare(types, idx);
    if (!t) {
        return "<no type information>";
    }
    if (t->kind == Kind::Struct || t->kind == Kind::Union) {
        return types.c_name(idx);
    }
    if (t->kind == Kind::Array) {
        return types.c_name(idx);
    }
    return value_text(rd, types, idx, address);
}

std::string format_value_at(engine::Debugger& dbg, const PdbTypes& types, uint32_t type,
                            uint64_t address) {
    Reader rd{dbg};
    return value_text(rd, types, type, address);
}

std::string format_value_of(engine::Debugger& dbg, const PdbTypes& types, uint32_t type,
                            uint64_t value) {
    Reader rd{dbg, value};
    uint32_t idx = type;
    const PdbType* t = bare(types, idx);
    if (t && (t->kind == Kind::Struct || t->kind == Kind::Union || t->kind == Kind::Array)) {
        return t->name.empty() ? types.c_name(idx) : t->name; // an aggregate in a register
    }
    return value_text(rd, types, type, 0);
}

void cmd_dt(engine::Debugger& dbg, Output& out, std::string_view args) {
    DtOptions opt;
    std::vector<std::string> words;
    std::string cur;
    for (char c : args) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            if (!cur.empty()) {
                words.push_back(cur);
                cur.clear();
            }
        } else {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) {
        words.push_back(cur);
    }
    std::vector<std::string> rest;
    for (const auto& w : words) {
        if (w.size() >= 2 && w[0] == '-' && w[1] == 'r') {
            opt.depth = w.size() > 2 ? std::clamp(std::atoi(w.c_str() + 2), 0, 9) : 9;
        } else if (w[0] == '-') {
            continue; // -v -b -a ...: accepted, the layout stays the same
        } else {
            rest.push_back(w);
        }
    }
    if (rest.empty()) {
        print(out, "Usage: dt [-r[N]] [module!]Type [address] [field...]\n");
        return;
    }
    if (auto mods = dbg.modules(); !mods) {
        print(out, "Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    const std::string spec = rest[0];
    const size_t bang = spec.find('!');
    const std::string module = bang == std::string::npos ? "" : spec.substr(0, bang);
    const std::string name = bang == std::string::npos ? spec : spec.substr(bang + 1);
    auto& sym = dbg.symbols();

    if (engine::has_wildcard(name)) {
        std::string s;
        for (const auto& [mod, type] : sym.match_types(module.empty() ? "*" : module, name)) {
            s += "          " + mod + "!" + type + "\n";
        }
        print(out, s);
        return;
    }

    std::optional<engine::TypeRef> ref = sym.find_type(module, name);
    std::optional<uint64_t> address;
    size_t next = 1;
    if (!ref) {
        // A global variable: its type at its address.
        const auto hits = sym.search(module.empty() ? "*" : module, name);
        for (const auto& h : hits) {
            if (h.kind == engine::SymbolKind::Data && h.type_index != 0) {
                if (const auto* types = sym.types_of(h.address)) {
                    ref = engine::TypeRef{h.module, types, h.type_index};
                    address = h.address;
                    break;
                }
            }
        }
        if (!ref) {
            print(out, "Symbol " + spec + " not found.\n");
            return;
        }
    } else if (rest.size() > 1) {
        // The address, unless the word names a field.
        uint32_t idx = ref->index;
        const PdbType* t = bare(*ref->types, idx);
        bool is_field = false;
        for (const auto& f : t ? t->fields : std::vector<engine::PdbField>{}) {
            is_field = is_field || f.name == rest[1] || engine::wildcard_match(rest[1], f.name);
        }
        if (!is_field) {
            auto v = dbg.evaluate(rest[1]);
            if (!v) {
                print(out, v.error().message + "\n");
                return;
            }
            address = *v;
            next = 2;
        }
    }
    for (size_t i = next; i < rest.size(); ++i) {
        opt.fields.push_back(rest[i]);
    }
    uint32_t idx = ref->index;
    const PdbType* t = bare(*ref->types, idx);
    if (!t) {
        print(out, "Symbol " + spec + " not found.\n");
        return;
    }
    std::string s;
    if (module.empty() || address) {
        if (module.empty()) {
            s += ref->module + "!" + (t->name.empty() ? name : t->name) + "\n";
        }
    }
    Reader rd{dbg};
    if (t->kind == Kind::Struct || t->kind == Kind::Union) {
        dump_fields(rd, *ref->types, *t, address, opt, 0, s);
    } else if (t->kind == Kind::Enum && !address) {
        for (const auto& e : t->enumerators) {
            s += "   " + e.name + " = 0n" + std::to_string(e.value) + "\n";
        }
    } else if (address) {
        s += value_text(rd, *ref->types, idx, *address) + "\n";
    } else {
        s += layout_text(*ref->types, idx) + "\n";
    }
    print(out, s);
}

} // namespace kdcart::cli
