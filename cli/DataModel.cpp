// dx [-rN] EXPR: the data model's display of typed objects, as WinDbg shows it. The expression
// is evaluated by engine/DxValue (casts, typed globals, '*', '&', ".Field", "->Field", "[i]",
// @$curprocess, @$curthread, @$ip); this file formats it. The top line is the expression, 16
// spaces, then " : value" and/or " [Type: T]"; then its children N levels deep (-r1 when no -r
// is given), each level indented 4 more spaces, a child's name padded to 16:
// "    [+0x018] ApiNumber        : SmStartCsrApi (5) [Type: _SMAPINUMBER]" (structures, unions
// and arrays without a value); signed integers in decimal, unsigned ones and pointers in hex,
// bit fields with their bit position; a pointer to a structure expands into the structure it
// points to. Memory that cannot be read gives "Unable to read memory at Address 0x.." (no type)
// in the child's place and the display goes on. Containers show 100 children then "[...]"; the
// whole display stops at k_max_lines lines, and Ctrl+C stops it. Formats checked against the
// examples of Microsoft's dx and LINQ pages (see README).
#include "cli/DataModel.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/DxValue.h"
#include "engine/KernelTypes.h"

#include <algorithm>
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

std::string pad(std::string s, size_t width) {
    if (s.size() < width) {
        s.resize(width, ' ');
    }
    return s;
}

// A C string in target memory, at most 256 characters; nullopt when unreadable.
std::optional<std::string> read_c_string(engine::Debugger& dbg, uint64_t address) {
    auto m = dbg.read_virtual(address, 256);
    if (!m) {
        return std::nullopt;
    }
    std::string s;
    for (size_t i = 0; i < m->bytes.size(); ++i) {
        if (!m->valid[i]) {
            return s.empty() ? std::nullopt : std::optional<std::string>(s);
        }
        if (m->bytes[i] == 0) {
            return s;
        }
        s += static_cast<char>(m->bytes[i]);
    }
    return s;
}

// The deepest -r: each level is a C++ frame or two of DxPrinter::show.
constexpr int k_max_depth = 1000;

class DxPrinter {
  public:
    static constexpr size_t k_max_lines = 20000;

    DxPrinter(engine::Debugger& dbg, Output& out) : m_dbg(dbg), m_out(out), m_ev(dbg) {}

    engine::DxEvaluator& evaluator() { return m_ev; }

    // " : value [Type: T]", " [Type: T]", " : value" or "" for the value `v`.
    std::string suffix(const engine::DxValue& v) {
        using K = engine::DxValue::Kind;
        switch (v.kind) {
        case K::Number:
            return " : " + hex(v.address) +
                   (v.number_type.empty() ? "" : " [Type: " + v.number_type + "]");
        case K::Text:
            return " : " + v.text;
        case K::Process: {
            auto name = m_ev.process_name(v.address);
            return " : " + (name ? *name : name.error().message) + " [Switch To]";
        }
        case K::Thread: {
            // Where the thread is (its frame's symbol and address, then two spaces), as dx
            // lists threads.
            auto ip = m_ev.thread_ip(v.address);
            return " : " + (ip ? code_text(*ip) + " " : "<Unable to get stack trace>") +
                   " [Switch To]";
        }
        case K::ThreadList:
        case K::Untyped:
            return "";
        case K::Pointer:
            return " : " + pointer_text(v.types, v.type, v.address) +
                   " [Type: " + dx_type_name(*v.types, v.type) + " *]";
        case K::Object:
            break;
        }
        uint32_t index = 0;
        const PdbType* t = m_ev.resolved(v, &index);
        if (!t) {
            return " : <unknown type>";
        }
        const uint32_t shown = t->kind == PdbType::Kind::Bitfield ? t->element : v.type;
        const std::string type = " [Type: " + dx_type_name(*v.types, shown) + "]";
        bool failed = false;
        auto value = value_text(v, *t, failed);
        if (failed) {
            return " : " + *value; // the read error, without a type, as dx shows it
        }
        return (value ? " : " + *value : std::string()) + type;
    }

    // `name` and its value at `level` (indent 4 per level), then its children `depth` levels.
    bool show(const std::string& name, const engine::DxValue& v, int level, int depth) {
        if (!line(std::string(4 * static_cast<size_t>(level), ' ') + name + suffix(v))) {
            return false;
        }
        return show_children(v, level + 1, depth);
    }

    bool show_children(const engine::DxValue& v, int level, int depth) {
        if (depth <= 0 || !m_ev.expandable(v)) {
            return true;
        }
        auto c = m_ev.children(v);
        const std::string indent(4 * static_cast<size_t>(level), ' ');
        for (const auto& child : c.items) {
            std::string name;
            if (child.offset) {
                char off[48];
                const PdbType* ft =
                    child.value.types ? child.value.types->get(child.value.type) : nullptr;
                if (ft && ft->kind == PdbType::Kind::Bitfield) {
                    std::snprintf(off, sizeof off, "[+0x%03llx (%2u:%2u)] ",
                                  static_cast<unsigned long long>(*child.offset),
                                  ft->bit_position + ft->bit_length - 1u, ft->bit_position);
                } else {
                    std::snprintf(off, sizeof off, "[+0x%03llx] ",
                                  static_cast<unsigned long long>(*child.offset));
                }
                name = off;
            }
            name += pad(child.name, 16);
            if (!show(name, child.value, level, depth - 1)) {
                return false;
            }
        }
        if (c.truncated && !line(indent + "[...]")) {
            return false;
        }
        // A pointer that could not be read already says so on its own line.
        if (c.error && v.kind != engine::DxValue::Kind::Object && !line(indent + *c.error)) {
            return false;
        }
        return true;
    }

    void flush() {
        if (!m_buffer.empty()) {
            m_out.write(m_buffer);
            m_buffer.clear();
        }
    }

    bool line(const std::string& text) {
        if (g_interrupt.load()) {
            return false; // Ctrl+C: the rest of the display is dropped
        }
        if (m_lines >= k_max_lines) {
            if (m_lines == k_max_lines) {
                m_buffer += "... dx output stopped after " + std::to_string(k_max_lines) +
                            " lines (use a smaller -r)\n";
                ++m_lines;
            }
            return false;
        }
        m_buffer += text;
        m_buffer += '\n';
        if (++m_lines % 64 == 0) {
            flush();
        }
        return true;
    }

  private:
    std::string code_text(uint64_t address) {
        const std::string where = format_address(address);
        if (auto sym = m_dbg.symbolize(address)) {
            return format_symbol(*sym) + " (" + where + ")";
        }
        return where;
    }

    // A pointer's value; a function pointer with the function, a char pointer with its string.
    std::string pointer_text(const engine::PdbTypes* types, uint32_t pointee, uint64_t value) {
        std::string s = hex(value);
        engine::DxValue o;
        o.kind = engine::DxValue::Kind::Object;
        o.types = types;
        o.type = pointee;
        const PdbType* pt = m_ev.resolved(o);
        if (!pt || value == 0) {
            return s;
        }
        if (pt->kind == PdbType::Kind::Function) {
            if (auto sym = m_dbg.symbolize(value)) {
                s += " : " + format_symbol(*sym) + " (" + format_address(value) + ")";
            }
        } else if (pt->kind == PdbType::Kind::Base && pt->base == PdbType::Base::Char &&
                   pt->size == 1) {
            if (auto str = read_c_string(m_dbg, value)) {
                s += " : \"" + *str + "\"";
            }
        }
        return s;
    }

    // The value part of an Object (without " : "), nullopt for aggregates that show no value;
    // `failed` set when the value is the error that memory could not be read.
    std::optional<std::string> value_text(const engine::DxValue& v, const PdbType& t,
                                          bool& failed) {
        switch (t.kind) {
        case PdbType::Kind::Struct:
        case PdbType::Kind::Union:
            if (t.name == "_UNICODE_STRING") {
                return unicode_text(v);
            }
            if (t.name == "_LARGE_INTEGER" || t.name == "_ULARGE_INTEGER") {
                // Its QuadPart in braces: "{4160749568}".
                auto m = m_dbg.read_virtual(v.address, 8);
                if (!m || m->readable_prefix() < 8) {
                    failed = true;
                    return "Unable to read memory at Address " + hex(v.address);
                }
                uint64_t q = 0;
                for (size_t i = 8; i-- > 0;) {
                    q = (q << 8) | m->bytes[i];
                }
                return "{" +
                       (t.name == "_LARGE_INTEGER" ? std::to_string(static_cast<int64_t>(q))
                                                   : std::to_string(q)) +
                       "}";
            }
            return std::nullopt;
        case PdbType::Kind::Array:
        case PdbType::Kind::Function:
            return std::nullopt;
        default:
            break;
        }
        if (t.kind == PdbType::Kind::Base && (t.base == PdbType::Base::Void || t.size == 0)) {
            return std::string("<void>");
        }
        auto bits = m_ev.read_scalar(v);
        if (!bits) {
            failed = true;
            return bits.error().message;
        }
        const uint64_t x = *bits;
        switch (t.kind) {
        case PdbType::Kind::Pointer:
            return pointer_text(v.types, t.element, x);
        case PdbType::Kind::Enum:
            for (const auto& e : t.enumerators) {
                if (static_cast<uint64_t>(e.value) == x) {
                    return e.name + " (" + std::to_string(e.value) + ")";
                }
            }
            return std::to_string(static_cast<int64_t>(x));
        case PdbType::Kind::Bitfield:
            return hex(x);
        case PdbType::Kind::Base:
            break;
        default:
            return std::string("<unknown type>");
        }
        switch (t.base) {
        case PdbType::Base::Int: {
            const unsigned shift = 64 - 8 * static_cast<unsigned>(t.size);
            return std::to_string(static_cast<int64_t>(x << shift) >> shift);
        }
        case PdbType::Base::Char: {
            std::string s = std::to_string(static_cast<int8_t>(x));
            if (x >= 0x20 && x < 0x7F) {
                s += " '" + std::string(1, static_cast<char>(x)) + "'";
            }
            return s;
        }
        case PdbType::Base::Bool:
            return std::string(x ? "true" : "false");
        case PdbType::Base::Float: {
            char b[64];
            if (t.size == 4) {
                float f;
                const uint32_t u = static_cast<uint32_t>(x);
                std::memcpy(&f, &u, 4);
                std::snprintf(b, sizeof b, "%g", static_cast<double>(f));
            } else {
                double d;
                std::memcpy(&d, &x, 8);
                std::snprintf(b, sizeof b, "%g", d);
            }
            return std::string(b);
        }
        default:
            return hex(x);
        }
    }

    // A UNICODE_STRING's text, quoted (its Length and Buffer by field name).
    std::optional<std::string> unicode_text(const engine::DxValue& v) {
        engine::KernelTypes kt(
            *v.types, [this](uint64_t a, size_t n) { return m_dbg.read_virtual(a, n); }, "");
        auto s = kt.read_unicode_string_at(v.address, 512);
        if (!s) {
            return std::nullopt;
        }
        return "\"" + *s + "\"";
    }

    engine::Debugger& m_dbg;
    Output& m_out;
    engine::DxEvaluator m_ev;
    std::string m_buffer;
    size_t m_lines = 0;
};

} // namespace

void cmd_dx(engine::Debugger& dbg, Output& out, std::string_view args) {
    args = trim(args);
    int depth = 1; // dx's default: the object and its children
    while (!args.empty() && args[0] == '-') {
        if (args.size() >= 2 && (args[1] == 'r' || args[1] == 'R')) {
            size_t i = 2;
            int n = 0;
            while (i < args.size() && std::isdigit(static_cast<unsigned char>(args[i]))) {
                // Bounded so that the recursion (one C++ frame per level) stays shallow.
                n = std::min(n * 10 + (args[i] - '0'), k_max_depth);
                ++i;
            }
            depth = i > 2 ? n : 1;
            args = trim(args.substr(i));
        } else {
            out.write("Unsupported dx option '" + std::string(args.substr(0, 2)) +
                      "' (kdcart's dx takes -rN)\n");
            return;
        }
    }
    if (args.empty()) {
        out.write("Usage: dx [-rN] expression\n");
        return;
    }
    if (auto mods = dbg.modules(); !mods) {
        out.write("Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    DxPrinter p(dbg, out);
    auto v = p.evaluator().evaluate(args);
    if (!v) {
        out.write("Error: " + v.error().message + "\n");
        return;
    }
    // The expression, 16 spaces, then its value and type, as dx prints the top line.
    if (p.line(std::string(args) + std::string(16, ' ') + p.suffix(*v))) {
        p.show_children(*v, 1, depth);
    }
    p.flush();
}

} // namespace kdcart::cli
