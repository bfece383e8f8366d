#include "cli/SymbolCommands.h"
#include "cli/Repl.h"
#include "cli/SourceLines.h"
#include "cli/StackCommands.h"
#include "cli/TextUtil.h"
#include "cli/TypeFormat.h"
#include "cli/format/Format.h"

#include "engine/Wildcard.h"

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>

namespace kdcart::cli {

namespace {

using engine::Module;

void print(Output& out, const std::string& s) {
    out.write(s);
}

bool is_kernel_address(uint64_t a) {
    return (a >> 63) != 0;
}

// ---- .sympath / .symfix ----

void print_path(engine::Debugger& dbg, Output& out) {
    const auto& path = dbg.symbols().path();
    if (path.empty()) {
        print(out, "Symbol search path is: <empty>\nExpanded Symbol search path is: <empty>\n");
        return;
    }
    std::string s = "Symbol search path is: " + path.text() + "\n";
    s += "Expanded Symbol search path is: " + path.expanded() + "\n\n";
    s += "************* Symbol Path validation summary **************\n";
    s += "Response                         Time (ms)     Location\n";
    for (const auto& e : path.elements()) {
        std::string response;
        switch (e.kind) {
        case engine::SymbolPathElement::Kind::Directory: {
            std::error_code ec;
            response = std::filesystem::is_directory(e.directory, ec) ? "OK" : "Error";
            break;
        }
        case engine::SymbolPathElement::Kind::Server:
        case engine::SymbolPathElement::Kind::Cache:
            response = "Deferred";
            break;
        }
        response.resize(47, ' ');
        s += response + e.text + "\n";
    }
    print(out, s);
}

void cmd_sympath(engine::Debugger& dbg, Output& out, bool append, std::string_view args) {
    args = trim(args);
    auto& sym = dbg.symbols();
    if (!args.empty()) {
        const std::string cache = engine::default_symbol_cache();
        sym.set_path(append ? sym.path().appended(args, cache)
                            : engine::SymbolPath::parse(args, cache));
    }
    print_path(dbg, out);
}

void cmd_symfix(engine::Debugger& dbg, bool append, std::string_view args) {
    const std::string fix = engine::symfix_path(trim(args));
    auto& sym = dbg.symbols();
    const std::string cache = engine::default_symbol_cache();
    sym.set_path(append ? sym.path().appended(fix, cache) : engine::SymbolPath::parse(fix, cache));
}

// ---- .reload ----

void dots(std::string& s, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        s += '.';
        if (i % 64 == 63 && i + 1 < n) {
            s += '\n';
        }
    }
    s += '\n';
}

void cmd_reload(engine::Debugger& dbg, Output& out, std::string_view args) {
    bool force = false, unload = false;
    std::string module;
    for (const auto& t : split_words(args)) {
        if (t[0] == '/' || t[0] == '-') {
            for (char c : t.substr(1)) {
                force = force || c == 'f' || c == 'F';
                unload = unload || c == 'u' || c == 'U';
            }
        } else {
            module = t;
        }
    }
    auto mods = dbg.modules();
    if (!mods) {
        print(out, "Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    auto& sym = dbg.symbols();
    if (unload) {
        for (const auto& m : *mods) {
            if (module.empty() || lower(module) == m.name || lower(module) == lower(m.file_name)) {
                sym.forget(m.base);
            }
        }
        return;
    }
    if (!module.empty()) {
        // "nt", "kdtest", "kdtest.sys" or "kdtest.sys=base,size" (the address part is ignored)
        module = module.substr(0, module.find('='));
        auto r = sym.reload(module, force);
        if (!r) {
            print(out, "Unable to find module '" + module + "'\n");
        }
        return;
    }
    std::string s = "Loading Kernel Symbols\n";
    print(out, s);
    auto r = sym.reload("", force);
    s.clear();
    dots(s, r ? r->size() : 0);
    s += "Loading User Symbols\n\n";
    auto unloaded = dbg.unloaded_modules();
    const size_t n = unloaded ? unloaded->size() : 0;
    s += "Loading unloaded module list\n";
    if (n > 0) {
        dots(s, n);
    }
    print(out, s);
}

// ---- !sym ----

void cmd_bang_sym(engine::Debugger& dbg, Output& out, std::string_view args) {
    const std::string a = lower(trim(args));
    auto& sym = dbg.symbols();
    if (a == "noisy") {
        sym.set_noisy(true);
    } else if (a == "quiet") {
        sym.set_noisy(false);
    } else if (!a.empty()) {
        print(out, "!sym <noisy | quiet>\n");
        return;
    }
    print(out, std::string(sym.noisy() ? "noisy" : "quiet") + " mode - symbol prompts off\n");
}

// ---- x / ln ----

void cmd_x(engine::Debugger& dbg, Output& out, std::string_view args) {
    bool verbose = false;
    std::string spec;
    for (const auto& t : split_words(args)) {
        if (t == "/v" || t == "-v") {
            verbose = true;
        } else if (t[0] == '/') {
            continue; // other listing options (/a /n /z /t ...) only change the order
        } else {
            spec = t;
        }
    }
    if (spec.empty()) {
        print(out, "Usage: x [/v] module!pattern\n");
        return;
    }
    if (auto mods = dbg.modules(); !mods) {
        print(out, "Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    const size_t bang = spec.find('!');
    const std::string module = bang == std::string::npos ? "*" : spec.substr(0, bang);
    const std::string pattern = bang == std::string::npos ? spec : spec.substr(bang + 1);
    auto hits = dbg.symbols().search(module, pattern.empty() ? "*" : pattern);
    std::string s;
    for (const auto& h : hits) {
        if (verbose) {
            const bool priv =
                h.kind == engine::SymbolKind::Function || h.kind == engine::SymbolKind::Data;
            const bool func = h.kind == engine::SymbolKind::Function ||
                              h.kind == engine::SymbolKind::PublicFunction ||
                              (h.kind == engine::SymbolKind::Export);
            std::string size = hex_digits(h.size);
            if (size.size() < 4) {
                size.insert(0, 4 - size.size(), ' ');
            }
            s += std::string(priv ? "prv " : "pub ") + (func ? "func   " : "global ") +
                 format_address(h.address) + " " + size + " ";
        } else {
            s += format_address(h.address) + " ";
        }
        s += h.module + "!" + h.name + symbol_suffix(dbg, h) + "\n";
    }
    print(out, s);
}

void cmd_ln(engine::Debugger& dbg, Output& out, std::string_view args) {
    uint64_t addr = 0;
    if (trim(args).empty()) {
        auto ctx = dbg.context();
        if (!ctx) {
            print(out, ctx.error().message + "\n");
            return;
        }
        addr = ctx->Rip;
    } else {
        auto v = dbg.evaluate(trim(args));
        if (!v) {
            print(out, v.error().message + "\n");
            return;
        }
        addr = *v;
    }
    if (auto mods = dbg.modules(); !mods) {
        print(out, "Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    auto n = dbg.symbols().near(addr);
    if (!n) {
        return; // WinDbg prints nothing for an address no symbol is near
    }
    std::string s;
    if (auto src = source_suffix(dbg, addr); !src.empty()) {
        s += src + " "; // " [d:\src\file.c @ 42] (fffff880`...)   ..." as WinDbg shows it
    }
    if (n->below) {
        engine::SymbolMatch m{n->below->module, n->below->name, n->below->address, n->displacement};
        s += "(" + format_address(n->below->address) + ")   " + format_symbol(m);
    }
    if (n->above) {
        s += std::string(n->below ? "   |  " : "") + "(" + format_address(n->above->address) +
             ")   " + n->above->module + "!" + n->above->name;
    }
    s += "\n";
    if (!n->exact.empty()) {
        s += "Exact matches:\n";
        for (const auto& e : n->exact) {
            s += "    " + e.module + "!" + e.name + symbol_suffix(dbg, e) + "\n";
        }
    }
    print(out, s);
}

// ---- lm ----

std::string timestamp_text(uint32_t t) {
    const std::time_t tt = t;
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
    return std::string(buf) + " (" + hex_upper_digits(t, 8) + ")";
}

void cmd_lm(engine::Debugger& dbg, Output& out, std::string_view word, std::string_view args) {
    bool verbose = false, kernel_only = false, user_only = false;
    std::string pattern;
    for (char c : word.substr(2)) {
        verbose = verbose || c == 'v';
        kernel_only = kernel_only || c == 'k';
        user_only = user_only || c == 'u';
    }
    auto t = split_words(args);
    for (size_t i = 0; i < t.size(); ++i) {
        const std::string w = lower(t[i]);
        if (w == "m" && i + 1 < t.size()) {
            pattern = lower(t[++i]);
        } else if (w.size() > 1 && w[0] == 'm' &&
                   (w[1] == '*' || std::isalnum(static_cast<unsigned char>(w[1])) == 0)) {
            pattern = w.substr(1);
        } else {
            for (char c : w) {
                verbose = verbose || c == 'v';
                kernel_only = kernel_only || c == 'k';
                user_only = user_only || c == 'u';
            }
        }
    }
    auto mods = dbg.modules();
    if (!mods) {
        print(out, "Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    std::vector<engine::Module> shown;
    for (const auto& m : *mods) {
        if (!pattern.empty() && !engine::wildcard_match(pattern, m.name)) {
            continue;
        }
        if ((kernel_only && !is_kernel_address(m.base)) ||
            (user_only && is_kernel_address(m.base))) {
            continue;
        }
        shown.push_back(m);
    }
    if (!verbose) {
        print(out, format_lm(shown));
    } else {
        std::string s;
        for (const auto& m : shown) {
            std::string line = format_lm({m});
            s += line.substr(line.find('\n') + 1);
            const std::string& file = m.file_name;
            s += "    Loaded symbol image file: " + file + "\n";
            s += "    Image path: " + (m.full_path.empty() ? file : m.full_path) + "\n";
            s += "    Image name: " + file + "\n";
            const auto st = dbg.symbols().state(m.base);
            if (st.image && st.image->reproducible) {
                s += "    Image was built with /Brepro flag.\n";
                s += "    Timestamp:        " + hex_upper_digits(m.timestamp, 8) +
                     " (This is a reproducible build file hash, not a timestamp)\n";
            } else {
                s += "    Timestamp:        " + timestamp_text(m.timestamp) + "\n";
            }
            s += "    CheckSum:         " + hex_upper_digits(m.checksum, 8) + "\n";
            s += "    ImageSize:        " + hex_upper_digits(m.size, 8) + "\n";
        }
        print(out, "start             end                 module name\n" + s);
    }
    if (pattern.empty() && !kernel_only && !user_only) {
        auto u = dbg.unloaded_modules();
        if (u && !u->empty()) {
            std::string s = "\nUnloaded modules:\n";
            for (const auto& m : *u) {
                s += format_address(m.start) + " " + format_address(m.end) + "   " + m.name + "\n";
            }
            print(out, s);
        }
    }
}

// !lmi: the image's identity as the debugger found it.
void cmd_lmi(engine::Debugger& dbg, Output& out, std::string_view args) {
    const std::string name(trim(args));
    auto mods = dbg.modules();
    if (!mods) {
        print(out, "Unable to read the module list: " + mods.error().message + "\n");
        return;
    }
    const engine::Module* m = nullptr;
    for (const auto& x : *mods) {
        if (lower(name) == x.name || lower(name) == lower(x.file_name)) {
            m = &x;
        }
    }
    if (!m) {
        if (auto a = dbg.evaluate(name)) {
            for (const auto& x : *mods) {
                if (*a >= x.base && *a < x.end()) {
                    m = &x;
                }
            }
        }
    }
    if (!m) {
        print(out, "Unable to find module '" + name + "'\n");
        return;
    }
    auto& sym = dbg.symbols();
    (void)sym.symbolize(m->base); // loads it
    const auto st = sym.state(m->base);
    std::string s = "Loaded Module Info: [" + m->name + "] \n";
    s += "         Module: " + m->file_name.substr(0, m->file_name.rfind('.')) + "\n";
    s += "   Base Address: " + hex_digits(m->base, 16) + "\n";
    s += "     Image Name: " + m->file_name + "\n";
    if (st.image) {
        s += "   Machine Type: " + std::to_string(st.image->machine) +
             (st.image->machine == engine::k_machine_amd64  ? " (X64)"
              : st.image->machine == engine::k_machine_i386 ? " (I386)"
                                                            : "") +
             "\n";
    }
    s += "     Time Stamp: " + hex_digits(m->timestamp) + " " + timestamp_text(m->timestamp) + "\n";
    s += "           Size: " + hex_digits(m->size) + "\n";
    s += "       CheckSum: " + hex_digits(m->checksum) + "\n";
    if (st.image) {
        s += "Characteristics: " + hex_digits(st.image->characteristics) + "\n";
        if (st.image->codeview) {
            const auto& cv = *st.image->codeview;
            s += "Debug Data Dirs: Type  Size     VA  Pointer\n";
            s += "             CODEVIEW RSDS - GUID: " + cv.guid_string() + "\n";
            s += "               Age: " + std::to_string(cv.age) + ", Pdb: " + cv.pdb_name + "\n";
        }
        s += "     Image Type: MEMORY   - Image read successfully from loaded memory.\n";
    }
    switch (st.state) {
    case Module::SymbolState::Pdb:
    case Module::SymbolState::PrivatePdb:
        s += "    Symbol Type: PDB      - Symbols loaded successfully from symbol search path.\n";
        s += "                 " + st.symbol_file + "\n";
        s += std::string("    Load Report: ") +
             (st.state == Module::SymbolState::Pdb ? "public symbols" : "private symbols & lines") +
             " , not source indexed \n";
        s += "                 " + st.symbol_file + "\n";
        break;
    case Module::SymbolState::Exports:
        s += "    Symbol Type: EXPORT   - PDB not found\n";
        s += "    Load Report: export symbols\n";
        break;
    default:
        s += "    Symbol Type: NONE     - PDB not found\n";
        s += "    Load Report: no symbols loaded\n";
        break;
    }
    print(out, s);
}

// ---- dps / dqs / dds ----

void cmd_dps(engine::Debugger& dbg, Output& out, SymbolCommandState& state, std::string_view word,
             std::string_view args) {
    const size_t width = word == "dds" ? 4 : 8;
    uint64_t start = 0;
    uint64_t count = 0x80 / width;
    if (trim(args).empty()) {
        if (!state.next_address || state.last_command != word) {
            print(out, "No previous address; give one (e.g. " + std::string(word) + " @rsp)\n");
            return;
        }
        start = *state.next_address;
    } else {
        auto cb = dbg.expression_callbacks();
        auto range = engine::parse_range(args, cb, count, width);
        if (!range) {
            print(out, range.error().message + "\n");
            return;
        }
        start = range->start;
        count = range->count;
    }
    if (count * width > 16 * 1024 * 1024) {
        print(out, "Range error in '" + std::string(args) + "' (more than 16 MiB)\n");
        return;
    }
    auto block = dbg.read_virtual(start, count * width);
    if (!block) {
        print(out, "Memory read failed: " + block.error().message + "\n");
        return;
    }
    std::string s;
    for (uint64_t i = 0; i < count; ++i) {
        const size_t off = i * width;
        const uint64_t at = start + off;
        s += width == 8 ? format_address(at) : hex_digits(at & 0xFFFFFFFF, 8);
        s += "  ";
        bool ok = true;
        uint64_t v = 0;
        for (size_t b = 0; b < width; ++b) {
            ok = ok && block->valid[off + b];
            v |= uint64_t{block->bytes[off + b]} << (8 * b);
        }
        if (!ok) {
            s += width == 8 ? "????????`????????" : "????????";
            s += "\n";
            continue;
        }
        s += width == 8 ? format_address(v) : hex_digits(v, 8);
        if (auto sym = dbg.symbolize(v)) {
            s += " " + format_symbol(*sym);
        }
        s += "\n";
    }
    print(out, s);
    state.next_address = start + count * width;
    state.last_command = std::string(word);
}

} // namespace

std::string symbol_suffix(engine::Debugger& dbg, const engine::SymbolInfo& s) {
    using engine::SymbolKind;
    switch (s.kind) {
    case SymbolKind::Function:
    case SymbolKind::PublicFunction:
    case SymbolKind::Export: {
        if (!s.params) {
            return " (<no parameter info>)";
        }
        std::string p;
        for (const auto& t : *s.params) {
            p += (p.empty() ? "" : ", ") + t;
        }
        return " (" + (p.empty() ? std::string("void") : p) + ")";
    }
    case SymbolKind::Data:
        if (s.type_index != 0) {
            if (const auto* types = dbg.symbols().types_of(s.address)) {
                return " = " + format_value_inline(dbg, *types, s.type_index, s.address);
            }
        }
        return " = <no type information>";
    case SymbolKind::Public:
        return " = <no type information>";
    }
    return "";
}

void attach_symbol_output(engine::Debugger& dbg, Output& out,
                          std::function<void(const std::string&)> notice,
                          const std::atomic<bool>* interrupt) {
    auto& sym = dbg.symbols();
    sym.set_sink(std::move(notice));
    engine::SymbolFetchOptions o;
    if (interrupt) {
        o.cancelled = [interrupt] { return interrupt->load(); };
    }
    auto last = std::make_shared<int>(-1);
    Output* o_out = &out;
    o.progress = [o_out, last](const std::string& url, uint64_t done, uint64_t total) {
        if (total < (1u << 20)) {
            return;
        }
        const int pct = static_cast<int>(done * 100 / total);
        if (pct / 10 == *last / 10 && pct != 100) {
            return;
        }
        *last = pct == 100 ? -1 : pct;
        char buf[64];
        std::snprintf(buf, sizeof buf, ": %3d%% of %.1f MB", pct, static_cast<double>(total) / 1e6);
        o_out->write("\rSYMSRV:  Downloading " + url.substr(url.rfind('/') + 1) + buf +
                     (pct == 100 ? "\n" : ""));
    };
    sym.set_fetch_options(std::move(o));
}

void configure_symbol_path(engine::Debugger& dbg, const std::string& y_option) {
    std::string text = y_option;
    if (text.empty()) {
        const char* alt = std::getenv("_NT_ALT_SYMBOL_PATH");
        const char* nt = std::getenv("_NT_SYMBOL_PATH");
        if (alt && *alt) {
            text = alt;
        }
        if (nt && *nt) {
            text += (text.empty() ? "" : ";") + std::string(nt);
        }
    }
    dbg.symbols().set_path(engine::SymbolPath::parse(text, engine::default_symbol_cache()));
}

bool run_symbol_command(engine::Debugger& dbg, Output& out, SymbolCommandState& state,
                        std::string_view word, std::string_view args) {
    // The REPL's word stops before '+': ".sympath+ X" arrives as ".sympath" and "+ X".
    const bool plus = !args.empty() && args.front() == '+';
    if (word == ".sympath") {
        cmd_sympath(dbg, out, plus, plus ? args.substr(1) : args);
    } else if (word == ".symfix") {
        cmd_symfix(dbg, plus, plus ? args.substr(1) : args);
    } else if (word == ".reload") {
        cmd_reload(dbg, out, args);
    } else if (word == "!sym") {
        cmd_bang_sym(dbg, out, args);
    } else if (word == "x") {
        cmd_x(dbg, out, args);
    } else if (word == "ln") {
        cmd_ln(dbg, out, args);
    } else if (word == ".lines") {
        cmd_lines(dbg, out, args); // SourceLines.cpp
    } else if (word.size() >= 2 && word.substr(0, 2) == "lm" &&
               word.find_first_not_of("lmvkuo", 2) == std::string_view::npos) {
        cmd_lm(dbg, out, word, args);
    } else if (word == "!lmi") {
        cmd_lmi(dbg, out, args);
    } else if (word == "dps" || word == "dqs" || word == "dds") {
        cmd_dps(dbg, out, state, word == "dps" ? "dqs" : word, args);
    } else if (word == "dt") {
        cmd_dt(dbg, out, args);
    } else if (run_stack_command(dbg, out, state, word, args)) {
        return true;
    } else {
        return false;
    }
    return true;
}

} // namespace kdcart::cli
