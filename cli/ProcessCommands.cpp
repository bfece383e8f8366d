// Processes, threads and the implicit scope. Data comes from engine/ThreadState and
// engine/KernelTypes (nt's PDB types by field name); the text from cli/ThreadFormat and
// cli/KernelFormat.
#include "cli/ProcessCommands.h"
#include "cli/KernelFormat.h"
#include "cli/PebFormat.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/ThreadFormat.h"
#include "cli/format/Format.h"
#include "engine/KernelState.h"
#include "engine/KernelTypes.h"
#include "engine/ProcessMemory.h"
#include "engine/ThreadState.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace kdcart::cli {

namespace {

std::string p16(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return buf;
}

constexpr size_t k_thread_frames = 64;

class ProcessCommands {
  public:
    ProcessCommands(engine::Debugger& dbg, Output& out) : m_dbg(dbg), m_out(out) {}

    bool run(std::string_view word, std::string_view args) {
        if (word == "!process") {
            // Without nt's types KernelCommands has the KDDEBUGGER_DATA64 form.
            if (!engine::KernelTypes::of_nt(m_dbg)) {
                return false;
            }
            if (types()) {
                process(args);
            }
            return true;
        }
        static const char* const mine[] = {"!thread",  "!running", "!ready", "!peb",
                                           ".process", ".thread",  ".cxr",   ".trap"};
        bool found = false;
        for (const char* m : mine) {
            found = found || word == m;
        }
        if (!found) {
            return false;
        }
        if (word == ".cxr") { // needs no kernel types
            cxr(args);
            return true;
        }
        if (!types()) {
            return true;
        }
        if (word == "!thread") {
            thread(args);
        } else if (word == "!running") {
            running();
        } else if (word == "!ready") {
            ready();
        } else if (word == "!peb") {
            peb(args);
        } else if (word == ".process") {
            dot_process(args);
        } else if (word == ".thread") {
            dot_thread(args);
        } else if (word == ".trap") {
            trap(args);
        }
        return true;
    }

  private:
    void print(std::string_view text) { m_out.write(text); }
    void error(std::string_view text) {
        std::string s(text);
        if (s.empty() || s.back() != '\n') {
            s.push_back('\n');
        }
        m_out.write(s);
    }
    std::optional<uint64_t> value(std::string_view text) {
        auto v = m_dbg.evaluate(text);
        if (!v) {
            error(v.error().message);
            return std::nullopt;
        }
        return *v;
    }
    bool types() {
        if (!m_kt) {
            auto k = engine::KernelTypes::of_nt(m_dbg);
            if (!k) {
                error(k.error().message);
                return false;
            }
            m_kt.emplace(std::move(*k));
            m_ts.emplace(m_dbg, *m_kt);
        }
        return true;
    }
    SymbolNamer namer() {
        return [this](uint64_t a) -> std::string {
            if (auto s = m_dbg.symbolize(a)) {
                return format_symbol(*s);
            }
            return "";
        };
    }
    // A machine frame's KTRAP_FRAME: its saved rip is nt!_KTRAP_FRAME.Rip (as `k` finds it).
    TrapFrameOf trap_frame_of() {
        return [this](const engine::StackFrame& f) -> uint64_t {
            auto rip = m_kt->try_offset("_KTRAP_FRAME", "Rip");
            return rip && f.machine_frame ? *f.machine_frame - *rip : f.child_sp;
        };
    }

    // The implicit thread: .thread's, else the thread the target stopped in, else the
    // current processor's KPRCB.CurrentThread.
    std::optional<uint64_t> current_thread() {
        if (m_dbg.scope().thread) {
            return *m_dbg.scope().thread;
        }
        auto t = m_ts->current_thread(m_dbg.current_processor());
        if (t && *t != 0) {
            return *t;
        }
        if (m_dbg.last_stop().thread != 0) {
            return m_dbg.last_stop().thread;
        }
        error("Unable to get the current thread: " +
              (t ? std::string("KPRCB.CurrentThread is 0") : t.error().message));
        return std::nullopt;
    }
    std::optional<uint64_t> current_process() {
        if (m_dbg.scope().process) {
            return *m_dbg.scope().process;
        }
        auto t = current_thread();
        if (!t) {
            return std::nullopt;
        }
        auto p = m_ts->process_of(*t);
        if (!p) {
            error("Unable to get the current process: " + p.error().message);
            return std::nullopt;
        }
        return *p;
    }

    // ---- !process ----------------------------------------------------------------------

    engine::ProcessInfo brief_of(uint64_t ep) {
        const auto& t = *m_kt;
        engine::ProcessInfo p;
        p.eprocess = ep;
        p.pid = t.read_pointer(ep, "_EPROCESS", "UniqueProcessId").value_or(0);
        p.parent_pid = t.read_pointer(ep, "_EPROCESS", "InheritedFromUniqueProcessId").value_or(0);
        p.peb = t.read_pointer(ep, "_EPROCESS", "Peb").value_or(0);
        p.directory_table_base =
            t.read_unsigned(ep, "_EPROCESS", "Pcb.DirectoryTableBase").value_or(0);
        p.image = t.read_char_array(ep, "_EPROCESS", "ImageFileName").value_or("");
        if (auto ot = t.read_pointer(ep, "_EPROCESS", "ObjectTable")) {
            p.object_table = *ot;
            if (*ot != 0) {
                if (auto n = t.read_signed(*ot, "_HANDLE_TABLE", "HandleCount")) {
                    p.handle_count = *n;
                }
            }
        }
        if (auto s = t.read_pointer(ep, "_EPROCESS", "Session")) {
            p.session_known = true;
            if (*s != 0) {
                auto id = t.read_unsigned(*s, "_MM_SESSION_SPACE", "SessionId");
                p.session_known = id.has_value();
                if (id) {
                    p.session_id = static_cast<uint32_t>(*id);
                }
            }
        }
        return p;
    }

    void process(std::string_view args) {
        auto words = split_words(args);
        std::optional<uint64_t> which;
        uint64_t flags = 3;
        std::string image;
        if (!words.empty() && words[0] != "-1") {
            which = value(words[0]);
            if (!which) {
                return;
            }
        }
        if (words.size() > 1) {
            auto f = value(words[1]);
            if (!f) {
                return;
            }
            flags = *f;
        } else if (which && *which == 0) {
            flags = 0;
        }
        if (words.size() > 2) {
            image = lower(words[2]);
        }
        if (!which) { // the current process
            auto cur = current_process();
            if (!cur) {
                return;
            }
            print_process(brief_of(*cur), flags);
            return;
        }
        if (*which != 0 && *which >= 0x10000) { // an EPROCESS address
            if (auto ok = m_ts->check_process(*which); !ok) {
                error(ok.error().message);
                return;
            }
            print_process(brief_of(*which), flags);
            return;
        }
        engine::KernelState ks(m_dbg);
        auto list = ks.processes();
        if (!list) {
            error("Unable to walk the process list: " + list.error().message);
            return;
        }
        if (*which == 0) {
            print("**** NT ACTIVE PROCESS DUMP ****\n");
        } else {
            print("Searching for Process with Cid == " + hex_digits(*which) + "\n");
        }
        bool found = false;
        for (const auto& p : list->processes) {
            if (*which != 0 && p.pid != *which) {
                continue;
            }
            if (!image.empty() && lower(p.image) != image) {
                continue;
            }
            found = true;
            print_process(p, flags);
        }
        if (list->broken) {
            error("The process list is broken: " + *list->broken);
        }
        if (*which != 0 && !found) {
            error("Unable to get process with Cid " + hex_digits(*which));
        }
    }

    void print_process(const engine::ProcessInfo& p, uint64_t flags) {
        std::string text = format_process_brief(p);
        if (flags & 1) {
            text.pop_back(); // the blank line after Image:
            if (auto d = m_ts->process_detail(p.eprocess)) {
                text += format_process_detail(*d);
            }
            text += "\n";
        }
        print(text);
        if ((flags & 6) == 0) {
            return;
        }
        auto threads = m_ts->threads_of(p.eprocess);
        if (!threads) {
            error("        Unable to list the threads: " + threads.error().message);
            return;
        }
        if (threads->threads.empty() && !threads->broken) {
            print("No active threads\n\n");
        }
        for (uint64_t et : threads->threads) {
            if (g_interrupt.load()) {
                return; // Ctrl+C
            }
            print_thread(et, flags & 2 ? ((flags & 4) ? 2 : 1) : 0, 8);
        }
        if (threads->broken) {
            error("        The thread list is broken: " + *threads->broken);
        }
    }

    // detail: 0 the THREAD line, 1 with its wait and details, 2 and its stack.
    void print_thread(uint64_t ethread, int detail, size_t indent) {
        auto info = m_ts->thread(ethread);
        if (!info) {
            error(std::string(indent, ' ') + info.error().message);
            return;
        }
        if (detail == 0) {
            print(format_thread_line(*info, indent));
            return;
        }
        std::string text = format_thread(*info, namer(), indent);
        if (detail == 2) {
            auto ctx = m_ts->saved_context(*info);
            if (ctx) {
                // Walked as `k` walks a .thread context.
                auto saved = m_dbg.scope().context;
                m_dbg.scope().context = *ctx;
                auto frames = m_dbg.stack_trace(k_thread_frames);
                m_dbg.scope().context = saved;
                if (frames) {
                    text += format_thread_stack(*frames, namer(), indent, trap_frame_of());
                } else {
                    text += std::string(indent, ' ') +
                            "Unable to walk the thread's stack: " + frames.error().message + "\n";
                }
            } else {
                text += std::string(indent, ' ') +
                        "Unable to get the thread's stack: " + ctx.error().message + "\n";
            }
        }
        print(text + "\n");
    }

    // ---- !thread ----------------------------------------------------------------------

    void thread(std::string_view args) {
        auto words = split_words(args);
        std::optional<uint64_t> addr;
        uint64_t flags = 6;
        if (!words.empty() && words[0] != "-1") {
            addr = value(words[0]);
            if (!addr) {
                return;
            }
        }
        if (words.size() > 1) {
            auto f = value(words[1]);
            if (!f) {
                return;
            }
            flags = *f;
        }
        if (!addr) {
            addr = current_thread();
            if (!addr) {
                return;
            }
        }
        print_thread(*addr, (flags & 4) ? 2 : 1, 0);
    }

    // ---- !running / !ready ----------------------------------------------------------------

    void running() {
        struct Row {
            uint32_t cpu;
            uint64_t prcb, current, next, idle;
            std::optional<int8_t> cur_pri, next_pri;
        };
        std::vector<Row> rows;
        uint64_t all = 0, idle_mask = 0;
        for (uint32_t cpu = 0; cpu < m_dbg.num_processors(); ++cpu) {
            auto prcb = m_ts->prcb(cpu);
            if (!prcb) {
                error("Unable to read processor " + std::to_string(cpu) + ": " +
                      prcb.error().message);
                return;
            }
            Row r{cpu, *prcb, 0, 0, 0, std::nullopt, std::nullopt};
            auto cur = m_kt->read_pointer(*prcb, "_KPRCB", "CurrentThread");
            if (!cur) {
                error(cur.error().message);
                return;
            }
            r.current = *cur;
            r.next = m_kt->read_pointer(*prcb, "_KPRCB", "NextThread").value_or(0);
            r.idle = m_kt->read_pointer(*prcb, "_KPRCB", "IdleThread").value_or(0);
            auto pri = [this](uint64_t t) -> std::optional<int8_t> {
                if (t == 0) {
                    return std::nullopt;
                }
                if (auto v = m_kt->read_signed(t, "_KTHREAD", "Priority")) {
                    return static_cast<int8_t>(*v);
                }
                return std::nullopt;
            };
            r.cur_pri = pri(r.current);
            r.next_pri = pri(r.next);
            all |= uint64_t{1} << (cpu & 63);
            if (r.current == r.idle) {
                idle_mask |= uint64_t{1} << (cpu & 63);
            }
            rows.push_back(r);
        }
        std::string out = "\nSystem Processors:  (" + p16(all) + ")\n  Idle Processors:  (" +
                          p16(idle_mask) + ")\n\n";
        out += "       Prcbs             Current         (pri) Next            (pri) Idle\n";
        char buf[256];
        for (const auto& r : rows) {
            std::string pri_cur = r.cur_pri ? "(" + pad2(*r.cur_pri) + ")" : "    ";
            std::string next =
                r.next != 0
                    ? p16(r.next) + " " + (r.next_pri ? "(" + pad2(*r.next_pri) + ")" : "    ")
                    : std::string(21, ' ');
            std::snprintf(buf, sizeof buf,
                          "  %-3u  %016" PRIx64 "  %016" PRIx64 " %s %s %016" PRIx64
                          "  ................\n",
                          r.cpu, r.prcb, r.current, pri_cur.c_str(), next.c_str(), r.idle);
            out += buf;
        }
        print(out + "\n");
    }

    static std::string pad2(int v) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%2d", v);
        return buf;
    }

    void ready() {
        for (uint32_t cpu = 0; cpu < m_dbg.num_processors(); ++cpu) {
            auto lists = m_ts->ready_lists(cpu);
            if (!lists) {
                error("Processor " + std::to_string(cpu) + ": " + lists.error().message);
                return;
            }
            if (lists->empty()) {
                print("Processor " + std::to_string(cpu) + ": No threads in READY state\n");
                continue;
            }
            for (const auto& q : *lists) {
                print("Processor " + std::to_string(cpu) + ": Ready Threads at priority " +
                      std::to_string(q.priority) + "\n");
                for (uint64_t t : q.threads) {
                    print_thread(t, 0, 4);
                }
                if (q.broken) {
                    error("    The ready list is broken: " + *q.broken);
                }
            }
        }
    }

    // ---- !peb ---------------------------------------------------------------------------

    void peb(std::string_view args) {
        auto words = split_words(args);
        auto proc = current_process();
        if (!proc) {
            return;
        }
        auto dtb = m_kt->read_unsigned(*proc, "_EPROCESS", "Pcb.DirectoryTableBase");
        if (!dtb) {
            error(dtb.error().message);
            return;
        }
        uint64_t peb_addr = 0;
        if (!words.empty()) {
            auto v = value(words[0]);
            if (!v) {
                return;
            }
            peb_addr = *v;
        } else {
            peb_addr = m_kt->read_pointer(*proc, "_EPROCESS", "Peb").value_or(0);
        }
        if (peb_addr == 0) {
            print("PEB NULL...\n");
            return;
        }
        // The PEB and what it points to live in the process's user half: read through its
        // page tables whatever the current address space is.
        engine::KernelTypes u(m_kt->types(), engine::process_reader(m_dbg, *dtb));
        print(format_peb(u, peb_addr));
    }

    // ---- .process / .thread / .cxr / .trap ---------------------------------------------

    void dot_process(std::string_view args) {
        bool translate = false, reload_user = false;
        auto words = split_words(args);
        std::vector<std::string> rest;
        for (const auto& w : words) {
            const std::string lw = lower(w);
            if (lw == "/p") {
                translate = true;
            } else if (lw == "/r") {
                reload_user = true;
            } else if (!w.empty() && w[0] == '/') {
                error("Unknown option '" + w + "' (.process takes /p and /r)");
                return;
            } else {
                rest.push_back(w);
            }
        }
        auto& scope = m_dbg.scope();
        if (rest.empty()) {
            auto cur = current_process();
            if (cur) {
                print("Implicit process is now " + format_address(*cur) + "\n");
            }
            return;
        }
        auto addr = value(rest[0]);
        if (!addr) {
            return;
        }
        if (*addr == 0) { // back to the current thread's process
            scope.process.reset();
            scope.translate_user = false;
            auto cur = current_process();
            if (cur) {
                print("Implicit process is now " + format_address(*cur) + "\n");
            }
            return;
        }
        if (auto ok = m_ts->check_process(*addr); !ok) {
            error(ok.error().message);
            return;
        }
        auto dtb = m_kt->read_unsigned(*addr, "_EPROCESS", "Pcb.DirectoryTableBase");
        if (!dtb) {
            error(dtb.error().message);
            return;
        }
        scope.process = *addr;
        scope.process_dtb = *dtb;
        // /p and /r: user addresses are read through that process's page tables (WinDbg's
        // .process /p translates them; /r then reloads user symbols).
        scope.translate_user = translate || reload_user;
        m_dbg.memory().invalidate();
        print("Implicit process is now " + format_address(*addr) + "\n");
        if (reload_user) {
            print("Loading User Symbols\n");
        }
    }

    void dot_thread(std::string_view args) {
        auto words = split_words(args);
        auto& scope = m_dbg.scope();
        std::vector<std::string> rest;
        for (const auto& w : words) {
            if (!w.empty() && w[0] == '/') {
                continue; // /p /r /w: accepted, the context is what they set
            }
            rest.push_back(w);
        }
        if (rest.empty()) {
            scope.reset_context();
            auto cur = current_thread();
            if (cur) {
                print("Implicit thread is now " + format_address(*cur) + "\n");
            }
            return;
        }
        auto addr = value(rest[0]);
        if (!addr) {
            return;
        }
        auto info = m_ts->thread(*addr);
        if (!info) {
            error(info.error().message);
            return;
        }
        auto ctx = m_ts->saved_context(*info);
        if (!ctx) {
            error("Unable to get the context of thread " + format_address(*addr) + ": " +
                  ctx.error().message);
            return;
        }
        scope.thread = *addr;
        scope.context = *ctx;
        print("Implicit thread is now " + format_address(*addr) + "\n");
    }

    void cxr(std::string_view args) {
        auto words = split_words(args);
        auto& scope = m_dbg.scope();
        if (words.empty()) {
            scope.reset_context();
            return;
        }
        auto addr = value(words[0]);
        if (!addr) {
            return;
        }
        auto block = m_dbg.read_virtual(*addr, sizeof(protocol::CONTEXT));
        if (!block || !block->all_valid()) {
            error("Unable to read context, Win32 error 0n30");
            return;
        }
        protocol::CONTEXT c{};
        std::memcpy(&c, block->bytes.data(), sizeof c);
        // A CONTEXT says what it holds: CONTEXT_AMD64 must be set.
        if ((c.ContextFlags & 0x00100000) == 0) {
            error("Unable to read context: ContextFlags " + hex_digits(c.ContextFlags) + " at " +
                  format_address(*addr) + " is not an x64 CONTEXT");
            return;
        }
        scope.context = c;
        print(format_registers(c));
    }

    void trap(std::string_view args) {
        auto words = split_words(args);
        auto& scope = m_dbg.scope();
        if (words.empty()) {
            scope.reset_context();
            return;
        }
        auto addr = value(words[0]);
        if (!addr) {
            return;
        }
        const auto& t = *m_kt;
        auto rip = t.read_unsigned(*addr, "_KTRAP_FRAME", "Rip");
        auto rsp = t.read_unsigned(*addr, "_KTRAP_FRAME", "Rsp");
        if (!rip || !rsp) {
            error((!rip ? rip.error() : rsp.error()).message);
            return;
        }
        protocol::CONTEXT c{};
        c.ContextFlags = 0x0010000B; // CONTEXT_FULL
        c.Rip = *rip;
        c.Rsp = *rsp;
        struct Reg {
            const char* name;
            uint64_t* slot;
        };
        const Reg regs[] = {{"Rax", &c.Rax}, {"Rbx", &c.Rbx}, {"Rcx", &c.Rcx}, {"Rdx", &c.Rdx},
                            {"Rsi", &c.Rsi}, {"Rdi", &c.Rdi}, {"Rbp", &c.Rbp}, {"R8", &c.R8},
                            {"R9", &c.R9},   {"R10", &c.R10}, {"R11", &c.R11}};
        for (const auto& r : regs) {
            if (auto v = t.read_unsigned(*addr, "_KTRAP_FRAME", r.name)) {
                *r.slot = *v;
            }
        }
        c.SegCs =
            static_cast<uint16_t>(t.read_unsigned(*addr, "_KTRAP_FRAME", "SegCs").value_or(0x10));
        c.SegSs =
            static_cast<uint16_t>(t.read_unsigned(*addr, "_KTRAP_FRAME", "SegSs").value_or(0x18));
        c.EFlags =
            static_cast<uint32_t>(t.read_unsigned(*addr, "_KTRAP_FRAME", "EFlags").value_or(0));
        scope.context = c;
        // WinDbg's x64 layout: the note first, the registers without the segment line, then
        // the trapped instruction under its symbol.
        std::string text = format_registers(c);
        if (auto at = text.find("\ncs="); at != std::string::npos) {
            text.erase(at + 1, text.find('\n', at + 1) - at);
        }
        print("NOTE: The trap frame does not contain all registers.\n"
              "Some register values may be zeroed or incorrect.\n" +
              text + code_line(c.Rip));
    }

    // "module!symbol+0x..:" and the instruction there ("??" when unreadable).
    std::string code_line(uint64_t pc) {
        std::string out;
        auto sym = m_dbg.symbolize(pc);
        if (sym && !sym->name.empty()) {
            out += format_symbol(*sym) + ":\n";
        }
        auto symbolizer = [this](uint64_t a) -> std::optional<std::string> {
            if (auto s = m_dbg.symbolize(a); s && !s->name.empty()) {
                return format_symbol(*s);
            }
            return std::nullopt;
        };
        size_t len = 0;
        auto code = m_dbg.read_virtual(pc, 16);
        const size_t n = code ? code->readable_prefix() : 0;
        out += format_instruction(pc, std::span<const uint8_t>(n ? code->bytes.data() : nullptr, n),
                                  &len, symbolizer) +
               "\n";
        return out;
    }

    engine::Debugger& m_dbg;
    Output& m_out;
    std::optional<engine::KernelTypes> m_kt;
    std::optional<engine::ThreadState> m_ts;
};

} // namespace

bool run_process_command(engine::Debugger& dbg, Output& out, std::string_view word,
                         std::string_view args) {
    ProcessCommands p(dbg, out);
    return p.run(word, args);
}

} // namespace kdcart::cli
