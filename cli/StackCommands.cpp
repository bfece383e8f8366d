#include "cli/StackCommands.h"
#include "cli/Repl.h"
#include "cli/SourceLines.h"
#include "cli/TextUtil.h"
#include "cli/TypeFormat.h"
#include "cli/format/Format.h"

#include <algorithm>
#include <cstring>

namespace kdcart::cli {

namespace {

using engine::PdbLocation;

void print(Output& out, const std::string& s) {
    out.write(s);
}

// CodeView's AMD64 register numbers as the register table names them.
std::optional<std::string> register_name(uint16_t cv) {
    static const char* k64[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"};
    static const char* k32[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
    static const char* k16[] = {"ax", "cx", "dx", "bx", "sp", "bp", "si", "di"};
    static const char* k8[] = {"al", "cl", "dl", "bl"};
    if (cv >= 1 && cv <= 4) {
        return k8[cv - 1];
    }
    if (cv >= 9 && cv <= 16) {
        return k16[cv - 9];
    }
    if (cv >= 17 && cv <= 24) {
        return k32[cv - 17];
    }
    if (cv >= 328 && cv <= 335) {
        return k64[cv - 328];
    }
    if (cv >= 336 && cv <= 343) {
        return "r" + std::to_string(cv - 336 + 8);
    }
    if (cv >= 344 && cv <= 351) {
        return "r" + std::to_string(cv - 344 + 8) + "b";
    }
    if (cv >= 352 && cv <= 359) {
        return "r" + std::to_string(cv - 352 + 8) + "w";
    }
    if (cv >= 360 && cv <= 367) {
        return "r" + std::to_string(cv - 360 + 8) + "d";
    }
    return std::nullopt;
}

// Registers (or their parts) a callee preserves: the unwinder restores them in outer frames.
bool nonvolatile(const std::string& name) {
    static const char* k[] = {"rbx", "rbp",  "rsi",  "rdi",  "r12",  "r13",  "r14",  "r15",
                              "ebx", "ebp",  "esi",  "edi",  "r12d", "r13d", "r14d", "r15d",
                              "bx",  "bp",   "si",   "di",   "r12w", "r13w", "r14w", "r15w",
                              "bl",  "r12b", "r13b", "r14b", "r15b"};
    return std::any_of(std::begin(k), std::end(k), [&](const char* r) { return name == r; });
}

constexpr uint16_t kCvRsp = 335;
constexpr uint16_t kCvEsp = 21;

struct Frames {
    std::vector<engine::StackFrame> frames;
    engine::CONTEXT context{};
};

std::optional<Frames> walk(engine::Debugger& dbg, Output& out, size_t max) {
    auto ctx = dbg.context();
    if (!ctx) {
        print(out, "Unable to get the registers: " + ctx.error().message + "\n");
        return std::nullopt;
    }
    auto frames = dbg.stack_trace(max);
    if (!frames) {
        print(out, "Stack walk failed: " + frames.error().message + "\n");
        return std::nullopt;
    }
    return Frames{std::move(*frames), *ctx};
}

// Where one location of a local says its value is, in frame `f` (frame 0 has every register).
struct Place {
    bool in_register = false;
    uint64_t value = 0; // the address, or the register's value
    std::string where;  // "@rsp+0x20", "@rcx"
};

std::optional<Place> place_of(const engine::PdbLocal& l, const engine::PdbFunctionFrame& fn,
                              uint64_t function_address, const engine::StackFrame& f, bool frame0,
                              const engine::CONTEXT& ctx) {
    const uint64_t pc_rva = f.pc - function_address + fn.rva;
    for (const PdbLocation& loc : l.locations) {
        if (loc.end_rva != 0 && (pc_rva < loc.start_rva || pc_rva >= loc.end_rva)) {
            continue; // not live here
        }
        char off[32];
        std::snprintf(
            off, sizeof off, "%s0x%x", loc.offset < 0 ? "-" : "+",
            static_cast<unsigned>(loc.offset < 0 ? -static_cast<int64_t>(loc.offset) : loc.offset));
        uint16_t reg = loc.cv_register;
        if (loc.kind == PdbLocation::Kind::FrameRelative) {
            reg = fn.frame_register != 0 ? fn.frame_register : kCvRsp;
        }
        auto name = register_name(reg);
        if (!name) {
            continue;
        }
        uint64_t base = 0;
        if (reg == kCvRsp || reg == kCvEsp) {
            base = f.child_sp; // known in every frame
        } else if (frame0) {
            auto v = engine::get_register(ctx, *name);
            if (!v) {
                continue;
            }
            base = *v;
        } else if (nonvolatile(*name)) {
            // Outer frames: the nonvolatile registers the unwind data restored.
            auto v = engine::get_register(f.context, *name);
            if (!v) {
                continue;
            }
            base = *v;
        } else {
            continue; // volatile registers of outer frames are not known
        }
        if (loc.kind == PdbLocation::Kind::Register) {
            return Place{true, base, "@" + *name};
        }
        return Place{false, base + static_cast<uint64_t>(static_cast<int64_t>(loc.offset)),
                     "@" + *name + off};
    }
    return std::nullopt;
}

std::string local_value(engine::Debugger& dbg, const engine::FrameScope& scope,
                        const engine::PdbLocal& l, const std::optional<Place>& p) {
    if (!p || !scope.types) {
        return "<value unavailable>";
    }
    return p->in_register ? format_value_of(dbg, *scope.types, l.type, p->value)
                          : format_value_at(dbg, *scope.types, l.type, p->value);
}

std::string frame_line(engine::Debugger& dbg, const engine::StackFrame& f, size_t n) {
    char num[24];
    std::snprintf(num, sizeof num, "%02zx ", n);
    std::string site = format_address(f.pc);
    if (auto sym = dbg.symbolize(f.pc)) {
        site = format_symbol(*sym);
    }
    return std::string(num) + format_address(f.child_sp) + " " + format_address(f.return_address) +
           " " + site;
}

// kp's call site: module!function(type name = value, ...)+0x12
std::string call_site_with_params(engine::Debugger& dbg, const Frames& fr, size_t i) {
    const auto& f = fr.frames[i];
    auto sym = dbg.symbolize(f.pc);
    if (!sym || sym->name.empty()) {
        return sym ? format_symbol(*sym) : format_address(f.pc);
    }
    auto scope = dbg.symbols().frame_scope(f.pc);
    if (!scope) {
        return format_symbol(*sym);
    }
    std::string params;
    for (const auto& l : scope->frame.locals) {
        if (!l.is_param) {
            continue;
        }
        const auto p = place_of(l, scope->frame, scope->function_address, f, i == 0, fr.context);
        params += (params.empty() ? "" : ", ") +
                  (scope->types ? scope->types->c_name(l.type) : std::string("?")) + " " + l.name +
                  " = " + local_value(dbg, *scope, l, p);
    }
    std::string s = sym->module + "!" + sym->name + "(" + (params.empty() ? "void" : params) + ")";
    if (sym->displacement != 0) {
        s += "+" + format_displacement(sym->displacement);
    }
    return s;
}

// The k family's arguments: [= rbp rsp rip] [L] [count].
struct StackArgs {
    size_t count = 20; // kd's default frame count
    std::optional<engine::CONTEXT> from;
};

std::optional<StackArgs> parse_stack_args(engine::Debugger& dbg, Output& out,
                                          std::string_view args) {
    StackArgs sa;
    args = trim(args);
    std::vector<std::string> words;
    for (size_t i = 0; i < args.size();) {
        const size_t j = args.find_first_of(" \t", i);
        std::string w(args.substr(i, j == args.npos ? args.npos : j - i));
        if (!w.empty()) {
            words.push_back(w);
        }
        if (j == args.npos) {
            break;
        }
        i = j + 1;
    }
    size_t i = 0;
    if (!words.empty() && words[0][0] == '=') {
        // k = rbp rsp rip: "=" may be joined to the first value.
        if (words[0].size() > 1) {
            words[0].erase(0, 1);
        } else {
            words.erase(words.begin());
        }
        if (words.size() < 3) {
            print(out, "Please specify the frame (rbp), stack (rsp) and instruction (rip) "
                       "pointers: k = rbp rsp rip [count]\n");
            return std::nullopt;
        }
        auto ctx = dbg.context(std::nullopt, engine::ContextPart::Integer);
        if (!ctx) {
            print(out, "Unable to get the registers: " + ctx.error().message + "\n");
            return std::nullopt;
        }
        uint64_t v[3];
        for (size_t k = 0; k < 3; ++k) {
            auto e = dbg.evaluate(words[k]);
            if (!e) {
                print(out, e.error().message + "\n");
                return std::nullopt;
            }
            v[k] = *e;
        }
        ctx->Rbp = v[0];
        ctx->Rsp = v[1];
        ctx->Rip = v[2];
        sa.from = *ctx;
        i = 3;
    }
    std::string rest;
    for (; i < words.size(); ++i) {
        rest += (rest.empty() ? "" : " ") + words[i];
    }
    std::string_view r = trim(rest);
    if (!r.empty() && (r[0] == 'L' || r[0] == 'l')) {
        r = trim(r.substr(1));
    }
    if (!r.empty()) {
        auto n = dbg.evaluate(r);
        if (!n || *n == 0 || *n > 0xFFFF) {
            print(out, "Bad frame count '" + std::string(r) + "'\n");
            return std::nullopt;
        }
        sa.count = static_cast<size_t>(*n);
    }
    return sa;
}

// Where a machine frame's KTRAP_FRAME starts: the saved rip's field offset from nt's
// _KTRAP_FRAME when the kernel's types are loaded; otherwise the handler's stack pointer after its
// prolog, where x64 NT's handlers build the trap frame.
uint64_t trap_frame_address(engine::Debugger& dbg, const engine::StackFrame& f) {
    if (auto t = dbg.symbols().find_type("nt", "_KTRAP_FRAME"); t && t->types) {
        if (const engine::PdbType* ty = t->types->get(t->index)) {
            for (const auto& field : ty->fields) {
                if (field.name == "Rip") {
                    return *f.machine_frame - field.offset;
                }
            }
        }
    }
    return f.child_sp;
}

// k, kn, kc, kb, kv, kp, kP, kL and their combinations (kbn, knL, ...). The REPL lower-cases
// the word, so kP is kp here.
void cmd_k(engine::Debugger& dbg, Output& out, std::string_view word, std::string_view args) {
    const std::string_view flags = word.substr(1);
    const bool numbered = flags.find('n') != std::string_view::npos;
    const bool call_only = flags.find('c') != std::string_view::npos;
    const bool params = flags.find_first_of("pP") != std::string_view::npos;
    const bool home = !params && flags.find_first_of("bv") != std::string_view::npos;
    const bool no_lines = flags.find('l') != std::string_view::npos; // kL hides source lines
    auto sa = parse_stack_args(dbg, out, args);
    if (!sa) {
        return;
    }
    std::optional<Frames> fr;
    if (sa->from) {
        fr = Frames{dbg.stack_trace_from(*sa->from, sa->count), *sa->from};
    } else {
        fr = walk(dbg, out, sa->count);
    }
    if (!fr) {
        return;
    }
    std::string s;
    if (!sa->from && dbg.scope().context) {
        s += "  *** Stack trace for last set context - .thread/.cxr resets it\n";
    }
    if (call_only) {
        s += " # Call Site\n";
    } else {
        s += numbered ? " # " : "";
        if (home) {
            std::string args_head = "Args to Child";
            args_head.resize(71, ' '); // four 17-character words and their spaces
            s += "Child-SP          RetAddr           : " + args_head + " : Call Site\n";
        } else {
            s += "Child-SP          RetAddr           Call Site\n";
        }
    }
    bool warned = false;
    for (size_t i = 0; i < fr->frames.size(); ++i) {
        const auto& f = fr->frames[i];
        if (f.unwind_guessed && !warned) {
            s += "WARNING: Stack unwind information not available. Following frames may be "
                 "wrong.\n";
            warned = true;
        }
        char num[24];
        std::snprintf(num, sizeof num, "%02zx ", i);
        std::string site;
        if (params) {
            site = call_site_with_params(dbg, *fr, i);
        } else if (auto sym = dbg.symbolize(f.pc)) {
            site = format_symbol(*sym);
        } else {
            char raw[24];
            std::snprintf(raw, sizeof raw, "0x%llx", static_cast<unsigned long long>(f.pc));
            site = raw;
        }
        if (f.machine_frame) {
            site += " (TrapFrame @ " + format_address(trap_frame_address(dbg, f)) + ")";
        }
        if (!no_lines) {
            site += frame_source_suffix(dbg, f.pc, i > 0 && !fr->frames[i - 1].machine_frame);
        }
        if (call_only) {
            s += num + site + "\n";
            continue;
        }
        std::string line = (numbered ? std::string(num) : std::string()) +
                           format_address(f.child_sp) + " " + format_address(f.return_address) +
                           " ";
        if (home) {
            // The home space of this frame's parameters, above its return address.
            std::string h;
            auto mem = f.caller_sp ? dbg.read_virtual(f.caller_sp, 32)
                                   : Result<engine::MemoryBlock>(tl::unexpected(
                                         Error(Errc::Unreadable, "no caller frame")));
            for (size_t q = 0; q < 4; ++q) {
                bool valid = mem.has_value();
                uint64_t v = 0;
                for (size_t b = 0; valid && b < 8; ++b) {
                    valid = mem->valid[q * 8 + b];
                    v |= uint64_t{mem->bytes[q * 8 + b]} << (8 * b);
                }
                h += (q ? " " : "") + (valid ? format_address(v) : "????????`????????");
            }
            line += ": " + h + " : ";
        }
        s += line + site + "\n";
    }
    print(out, s);
}

// Resets the scope when the target has moved on since .frame set it.
size_t current_frame(SymbolCommandState& state, const Frames& fr) {
    if (fr.frames.empty() || fr.frames[0].pc != state.frame_pc ||
        fr.frames[0].child_sp != state.frame_sp || state.frame >= fr.frames.size()) {
        state.frame = 0;
    }
    return state.frame;
}

void cmd_frame(engine::Debugger& dbg, Output& out, SymbolCommandState& state,
               std::string_view args) {
    bool regs = false;
    args = trim(args);
    while (args.size() >= 2 && args[0] == '/') {
        regs = regs || args[1] == 'r';
        args = trim(args.substr(2));
    }
    auto fr = walk(dbg, out, 256);
    if (!fr) {
        return;
    }
    size_t n = current_frame(state, *fr);
    if (!args.empty()) {
        auto v = dbg.evaluate(args);
        if (!v) {
            print(out, v.error().message + "\n");
            return;
        }
        if (*v >= fr->frames.size()) {
            print(out, "Frame " + std::to_string(*v) + " is beyond the stack (" +
                           std::to_string(fr->frames.size()) + " frames)\n");
            return;
        }
        n = static_cast<size_t>(*v);
        state.frame = n;
        state.frame_pc = fr->frames[0].pc;
        state.frame_sp = fr->frames[0].child_sp;
    }
    std::string s = frame_line(dbg, fr->frames[n], n) + "\n";
    if (regs) {
        // Outer frames: the registers the unwind data restores (nonvolatile ones, rip, rsp),
        // the volatile ones as frame 0 has them, as WinDbg shows them.
        s += format_registers(n == 0 ? fr->context : fr->frames[n].context);
        // The frame's instruction, as seed 001 shows it after the registers.
        const uint64_t pc = fr->frames[n].pc;
        if (auto code = dbg.read_virtual(pc, 16); code && code->readable_prefix() > 0) {
            size_t len = 0;
            s +=
                format_instruction(
                    pc, std::span<const uint8_t>(code->bytes.data(), code->readable_prefix()), &len,
                    [&dbg](uint64_t a) -> std::optional<std::string> {
                        if (auto sym = dbg.symbolize(a); sym && !sym->name.empty()) {
                            return format_symbol(*sym);
                        }
                        return std::nullopt;
                    }) +
                "\n";
        }
    }
    print(out, s);
}

void cmd_dv(engine::Debugger& dbg, Output& out, SymbolCommandState& state, std::string_view args) {
    const bool verbose = trim(args).rfind("/v", 0) == 0 || trim(args).rfind("/V", 0) == 0;
    auto fr = walk(dbg, out, 256);
    if (!fr || fr->frames.empty()) {
        return;
    }
    const size_t n = current_frame(state, *fr);
    const auto& f = fr->frames[n];
    auto scope = dbg.symbols().frame_scope(f.pc);
    if (!scope) {
        print(out, "Unable to enumerate locals, HRESULT 0x80004005\n"
                   "Private symbols (symbols.pri) are required for locals.\n"
                   "Type \".hh dbgerr005\" for details.\n");
        return;
    }
    size_t width = 16;
    for (const auto& l : scope->frame.locals) {
        width = std::max(width, l.name.size());
    }
    width += 4;
    std::string s;
    for (const auto& l : scope->frame.locals) {
        const auto p = place_of(l, scope->frame, scope->function_address, f, n == 0, fr->context);
        std::string name = l.name;
        if (name.size() < width) {
            name.insert(0, width - name.size(), ' ');
        }
        if (verbose) {
            std::string where =
                p ? (p->in_register ? p->where : format_address(p->value) + " " + p->where)
                  : "<unavailable>";
            where.resize(std::max<size_t>(where.size(), 30), ' ');
            s += std::string(l.is_param ? "prv param  " : "prv local  ") + where + " ";
            name = l.name;
        }
        s += name + " = " + local_value(dbg, *scope, l, p) + "\n";
    }
    print(out, s);
}

} // namespace

bool run_stack_command(engine::Debugger& dbg, Output& out, SymbolCommandState& state,
                       std::string_view word, std::string_view args) {
    if (word == ".frame") {
        cmd_frame(dbg, out, state, args);
        return true;
    }
    if (word == "dv") {
        cmd_dv(dbg, out, state, args);
        return true;
    }
    // k with any of b v p P n c L (kbn, knL, kc ...)
    if (!word.empty() && word[0] == 'k' &&
        word.find_first_not_of("bvpPncLl", 1) == std::string_view::npos) {
        cmd_k(dbg, out, word, args);
        return true;
    }
    return false;
}

} // namespace kdcart::cli
