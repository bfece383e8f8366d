#include "cli/Repl.h"
#include "cli/CodeCommands.h"
#include "cli/AnalyzeCommands.h"
#include "cli/ProcessCommands.h"
#include "cli/KernelCommands.h"
#include "cli/ObjectCommands.h"
#include "cli/SystemCommands.h"
#include "cli/LinkCommands.h"
#include "cli/SourceLines.h"
#include "cli/TextUtil.h"

#include "engine/Expression.h"
#include "cli/format/Format.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

namespace kdcart::cli {

std::atomic<bool> g_interrupt{false};
std::atomic<bool> g_terminate{false};

namespace {

using engine::StopKind;



std::string session_time() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S.000 %Y (UTC + 0:00)", &tm);
    return buf;
}

} // namespace

void Repl::set_debugger(engine::Debugger* dbg) {
    m_dbg = dbg;
    if (m_dbg) {
        // Symbol warnings and `!sym noisy` lines appear as they happen; Ctrl+C stops a download.
        auto notice = [this](const std::string& t) { on_notice(t); };
        attach_symbol_output(*m_dbg, m_out, notice, &g_interrupt);
    }
}

std::string Repl::prompt() const {
    const unsigned cpu = m_dbg ? m_dbg->current_processor() : 0;
    return std::to_string(cpu) + ": kd> ";
}

void Repl::error(std::string_view text) {
    std::string s(text);
    if (s.empty() || s.back() != '\n') {
        s.push_back('\n');
    }
    print(s);
}

void Repl::on_debug_print(std::string_view text) {
    print(text);
    m_at_line_start = !text.empty() && text.back() == '\n';
}

std::string Repl::on_debug_prompt(std::string_view prompt) {
    // DbgPrompt: the target waits for a line typed by the user, as in WinDbg.
    if (!m_line_reader) {
        print(std::string(prompt) + "\n");
        return {};
    }
    auto line = m_line_reader(std::string(prompt));
    m_at_line_start = true;
    return line.value_or("");
}

void Repl::on_exception_passed(const engine::StopEvent& event) {
    if (!m_at_line_start) {
        print("\n");
        m_at_line_start = true;
    }
    print(format_exception_line(event.exception_code, event.first_chance) + "\n");
}

void Repl::on_notice(std::string_view text) {
    if (!m_at_line_start) {
        print("\n");
        m_at_line_start = true;
    }
    print(std::string(text) + "\n");
}

std::string Repl::code_line(uint64_t address) {
    std::string out;
    if (auto sym = m_dbg->symbolize(address)) {
        out += format_symbol(*sym) + source_suffix(*m_dbg, address) + ":\n";
    }
    auto mem = m_dbg->read_virtual(address, 16);
    if (!mem) {
        return out + format_address(address) + " ??              ???\n";
    }
    size_t n = mem->readable_prefix();
    if (n == 0) {
        return out + format_address(address) + " ??              ???\n";
    }
    size_t len = 0;
    auto symbolizer = [this](uint64_t a) -> std::optional<std::string> {
        if (auto s = m_dbg->symbolize(a); s && !s->name.empty()) {
            return format_symbol(*s);
        }
        return std::nullopt;
    };
    out += format_instruction(address, std::span<const uint8_t>(mem->bytes.data(), n), &len,
                              symbolizer) +
           "\n";
    return out;
}

void Repl::announce_connection(const engine::StopEvent& stop) {
    auto info = m_dbg->connection_info();
    if (info) {
        std::string os = info->nt_major ? "Windows " + std::to_string(info->nt_major) : "Windows";
        print("Connected to " + os + " " + std::to_string(info->build()) +
              " x64 target at (" + session_time() + "), ptr64 TRUE\n");
        print("Kernel Debugger connection established.\n");
        print(format_vertarget(*info, ""));
    } else {
        print("Kernel Debugger connection established.\n");
        error("Could not read the target's version: " + info.error().message);
    }
    print_stop(stop);
}

void Repl::print_stop(const engine::StopEvent& stop) {
    if (!m_at_line_start) {
        print("\n");
        m_at_line_start = true;
    }
    if (stop.breakpoint_id) {
        print(format_breakpoint_hit(*stop.breakpoint_id) + "\n");
        if (print_stop_source(stop.pc)) { // l+s, l+o
            after_stop_commands(stop);
            return;
        }
        print(code_line(stop.pc));
        after_stop_commands(stop);
        return;
    }
    if (stop.step_complete) {
        if (print_stop_source(stop.pc)) { // l+s, l+o
            return;
        }
        // t, p, gu and g ADDR show the registers, as kd does (the integer block is enough).
        if (auto ctx = m_dbg->context(std::nullopt, engine::ContextPart::Integer)) {
            print(format_registers(*ctx));
        }
        print(code_line(stop.pc));
        return;
    }
    print(format_stop_event(stop));
    if (stop.kind == engine::StopKind::LoadSymbols) {
        print(module_event_line(stop));
    }
    if (print_stop_source(stop.pc)) { // l+s, l+o
        return;
    }
    print(code_line(stop.pc));
}

bool Repl::wait_while_running() {
    using namespace std::chrono;
    auto last_break = steady_clock::time_point{};
    auto first_break = steady_clock::time_point{};
    bool breaking = false;
    while (m_dbg->state() == engine::RunState::Running) {
        if (g_terminate.load() && !breaking) {
            g_interrupt.store(true);
        }
        const bool interrupted = g_interrupt.exchange(false);
        if (interrupted && breaking && !g_terminate.load() &&
            steady_clock::now() - first_break > seconds(1)) {
            // Ctrl+C again while the target has not answered the first: the user wants out.
            g_terminate.store(true);
            on_notice("Ctrl+C again: kdcart quits once the target is stopped and clean");
        }
        if (g_terminate.load() && breaking && steady_clock::now() - first_break > seconds(15)) {
            return false; // the target does not stop: main says what is left behind
        }
        if (interrupted || (breaking && steady_clock::now() - last_break > seconds(3))) {
            if (auto r = m_dbg->break_in(); !r) {
                error("Break-in failed: " + r.error().message);
            }
            if (!breaking) {
                first_break = steady_clock::now();
            }
            breaking = true;
            last_break = steady_clock::now();
        }
        m_break_requested = breaking;
        auto stop = m_dbg->wait_for_stop(milliseconds(100));
        if (stop) {
            if (!breaking && resume_if_condition_false(*stop)) {
                continue; // bp /w "cond" was false: the target runs on
            }
            if (!breaking && resume_if_module_event_unwanted(*stop)) {
                continue; // a load/unload the sx filters do not stop on
            }
            print_stop(*stop);
            m_break_requested = false;
            if (g_terminate.load()) {
                return false; // the caller leaves through detach()
            }
            if (m_dbg->state() == engine::RunState::Running && !m_quit) {
                continue; // a breakpoint's command string resumed it (bp f "r rcx; g")
            }
            return true;
        }
        if (stop.error().code == Errc::Timeout) {
            continue;
        }
        if (stop.error().code == Errc::Disconnected) {
            error("The link is gone: " + stop.error().message);
            return false;
        }
        on_notice(stop.error().message);
    }
    return true;
}

// Repl::execute_line runs lines through the command-program interpreter: ScriptCommands.cpp.

Repl::Flow Repl::run_command(std::string_view cmd) {
    // Split the command word: letters/dots/!/~ then the rest.
    size_t i = 0;
    if (cmd[0] == '~') {
        if (trim(cmd.substr(1)).empty() && run_kernel_command(*m_dbg, m_out, "~", "")) {
            return Flow::Continue; // `~` alone lists the processors (KernelCommands.cpp)
        }
        cmd_switch_processor(cmd.substr(1));
        return Flow::Continue;
    }
    if (cmd[0] == '?') {
        if (trim(cmd.substr(1)).empty()) {
            cmd_help(); // `?` alone: the commands, as WinDbg's command help
        } else if (cmd.size() > 1 && cmd[1] == '?') {
            unknown_command("??", cmd);
        } else {
            cmd_evaluate(cmd.substr(1));
        }
        return Flow::Continue;
    }
    while (i < cmd.size() &&
           (std::isalnum(static_cast<unsigned char>(cmd[i])) || cmd[i] == '.' || cmd[i] == '!' ||
            cmd[i] == '_')) {
        ++i;
    }
    std::string word = lower(cmd.substr(0, i));
    std::string_view args = trim(cmd.substr(i));

    // d*, e*, s, f, .writemem, .readmem (MemoryCommands.cpp); r, rM, rm (RegisterCommands.cpp)
    if (run_memory_command(cmd) || run_register_command(cmd)) {
        return Flow::Continue;
    }
    // Run control exists only on a live target (WinDbg's wording on a dump).
    static const char* kRunOnly[] = {"g",  "t",  "p",  "gu", "bp", "bu", "bm", "ba",
                                     ".reboot", ".pagein", ".crash", ".dump", "pa", "ta",
                                     "pc", "tc", "wt", "gh", "gn"};
    if (!m_dbg->can_run()) {
        for (const char* w : kRunOnly) {
            if (word == w) {
                error(std::string(7, ' ') + "^ No runnable debuggees error in '" +
                      std::string(cmd) + "'");
                return Flow::Continue;
            }
        }
    }
    // !analyze [-v] (AnalyzeCommands.cpp)
    if (run_analyze_command(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // !process !thread !running !ready !peb .process .thread .cxr .trap (ProcessCommands.cpp)
    if (run_process_command(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // !object !drvobj !devobj !devstack !irp !list (ObjectCommands.cpp)
    if (run_object_command(*m_dbg, m_out, word, args,
                           [this](const std::string& line) { (void)execute_line(line); })) {
        return Flow::Continue;
    }
    // !pfn !vm !sysinfo !locks .cache (SystemCommands.cpp)
    if (run_system_command(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // !analyze -show, !error, !pte, !vtop, !irql, !pcr, !prcb, !process, .lastevent
    if (run_kernel_command(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // .kdverify (LinkCommands.cpp)
    if (run_link_command(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // as aS ad al .echo .printf .formats .cls .logopen .logappend .logclose gc
    if (run_script_command(word, args, cmd)) {
        return Flow::Continue;
    }
    // uf .fnent !dh (CodeCommands.h)
    if (run_code_command(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // .srcpath l+ l- ls lsa lsc lsf lsp (SourceListing.cpp)
    if (m_source.run(*m_dbg, m_out, word, args)) {
        return Flow::Continue;
    }
    // .sympath .symfix .reload !sym x ln lm* !lmi dps dqs dds dt (SymbolCommands.cpp)
    if (run_symbol_command(*m_dbg, m_out, m_symbol_state, word, args)) {
        return Flow::Continue;
    }
    if (word == "bp" || word == "bu" || word == "bm") {
        cmd_bp(word, args);
    } else if (word == "ba") {
        cmd_ba(args);
    } else if (word == "bl") {
        cmd_bl();
    } else if (word == "bc" || word == "bd" || word == "be") {
        cmd_bc_bd_be(word, args);
    } else if (word == "t" || word == "p" || word == "gu") {
        cmd_step(word, args);
    } else if (word == "pc" || word == "tc" || word == "pa" || word == "ta") {
        cmd_step_to(word, args); // StepCommands.cpp
    } else if (word == "wt") {
        cmd_watch_trace(args); // WatchTrace.cpp
    } else if (word == ".pagein") {
        cmd_pagein(args);
    } else if (word == ".allow_bp_ba_convert") {
        cmd_allow_convert(args);
    } else if (word == "sxe" || word == "sxd" || word == "sxn" || word == "sxi") {
        cmd_sx(word, args);
    } else if (word == "k" || word == "kn" || word == "kc" || word == "kb" || word == "kp" ||
               word == "kv") {
        cmd_stack(word, args);
    } else if (word == "g") {
        cmd_go(args);
    } else if (word == "vertarget") {
        cmd_vertarget(false);
    } else if (word == "version") {
        cmd_vertarget(true);
    } else if (word == "lm") {
        cmd_lm(args);
    } else if (word == "u") {
        cmd_unassemble(args);
    } else if (word == "ub") {
        cmd_unassemble_back(args); // UnassembleBack.cpp
    } else if ((word == "q" || word == "qq" || word == "qd") && args.empty()) {
        // Only these words alone quit: "Q," or "q 1" is a typo, not a reason to leave.
        if (auto r = m_dbg->detach(); !r) {
            error("Could not resume the target before quitting: " + r.error().message);
            m_exit_code = 1;
        }
        m_quit = true;
        print("quit:\n");
        return Flow::Quit;
    } else if (word == ".reboot") {
        cmd_reboot();
    } else if (word == ".dump") {
        cmd_dump(args);
    } else if (word == ".crash") {
        cmd_crash();
    } else if (word == ".bugcheck") {
        cmd_bugcheck();
    } else if (word == ".help" || word == "help") {
        cmd_help();
    } else {
        unknown_command(word, cmd); // "!vm is not supported yet" or WinDbg's syntax error
    }
    return Flow::Continue;
}

void Repl::cmd_go(std::string_view args) {
    if (!args.empty()) {
        auto cb = m_dbg->expression_callbacks();
        auto addr = evaluate_expression(args, cb);
        if (!addr) {
            error(addr.error().message);
            return;
        }
        if (auto r = m_dbg->go_until(*addr); !r) {
            error("Could not resume the target: " + r.error().message);
        }
        return;
    }
    if (auto r = m_dbg->go(); !r) {
        error("Could not resume the target: " + r.error().message);
    }
}

void Repl::cmd_vertarget(bool full) {
    auto info = m_dbg->target_info();
    if (!info) {
        error("Could not read the target's version: " + info.error().message);
        return;
    }
    if (full) {
        print(format_version(*info, "", "kdcart " KDCART_VERSION,
                             "link " + m_dbg->session().describe_link()));
        return;
    }
    print(format_vertarget(*info, ""));
}

void Repl::cmd_lm(std::string_view args) {
    auto mods = m_dbg->modules();
    if (!mods) {
        error("Unable to read the module list: " + mods.error().message);
        return;
    }
    // `lm m PATTERN` filters by name (simple * wildcard).
    std::string pattern;
    if (args.size() >= 2 && (args[0] == 'm' || args[0] == 'M') && std::isspace(args[1])) {
        pattern = lower(trim(args.substr(1)));
    }
    auto match = [](const std::string& p, const std::string& s) {
        // glob with '*' only
        size_t pi = 0, si = 0, star = std::string::npos, mark = 0;
        while (si < s.size()) {
            if (pi < p.size() && (p[pi] == s[si] || p[pi] == '?')) {
                ++pi;
                ++si;
            } else if (pi < p.size() && p[pi] == '*') {
                star = pi++;
                mark = si;
            } else if (star != std::string::npos) {
                pi = star + 1;
                si = ++mark;
            } else {
                return false;
            }
        }
        while (pi < p.size() && p[pi] == '*') {
            ++pi;
        }
        return pi == p.size();
    };
    std::vector<engine::Module> shown;
    for (const auto& m : *mods) {
        if (pattern.empty() || match(pattern, m.name)) {
            shown.push_back(m);
        }
    }
    print(format_lm(shown));
    if (pattern.empty()) {
        print_unloaded_modules();
    }
}

void Repl::cmd_evaluate(std::string_view args) {
    auto cb = m_dbg->expression_callbacks();
    auto v = evaluate_expression(trim(args), cb);
    if (!v) {
        error(v.error().message);
        return;
    }
    print("Evaluate expression: " + std::to_string(static_cast<int64_t>(*v)) + " = " +
          format_address(*v) + "\n");
}

void Repl::cmd_unassemble(std::string_view args) {
    auto cb = m_dbg->expression_callbacks();
    uint64_t start;
    uint64_t count = 8;
    if (args.empty()) {
        if (m_next_unassemble) {
            start = *m_next_unassemble;
        } else {
            auto ctx = m_dbg->context();
            if (!ctx) {
                error(ctx.error().message);
                return;
            }
            start = ctx->Rip;
        }
    } else {
        auto range = parse_range(args, cb, 8, 1);
        if (!range) {
            error(range.error().message);
            return;
        }
        start = range->start;
        count = std::min<uint64_t>(range->count, 4096);
    }
    uint64_t addr = start;
    std::string out;
    if (auto sym = m_dbg->symbolize(addr)) {
        out += format_symbol(*sym) + source_suffix(*m_dbg, addr) + ":\n";
    }
    auto symbolizer = [this](uint64_t a) -> std::optional<std::string> {
        if (auto s = m_dbg->symbolize(a); s && !s->name.empty()) {
            return format_symbol(*s);
        }
        return std::nullopt;
    };
    for (uint64_t i = 0; i < count; ++i) {
        auto mem = m_dbg->read_virtual(addr, 16);
        if (!mem) {
            error(mem.error().message);
            break;
        }
        size_t n = mem->readable_prefix();
        if (n == 0) {
            out += format_address(addr) + " ??              ???\n";
            addr += 1;
            continue;
        }
        size_t len = 0;
        out += format_instruction(addr, std::span<const uint8_t>(mem->bytes.data(), n), &len,
                                  symbolizer) +
               "\n";
        addr += len ? len : 1;
    }
    print(out);
    m_next_unassemble = addr;
}

void Repl::cmd_switch_processor(std::string_view args) {
    args = trim(args);
    if (!args.empty() && (args.back() == 's' || args.back() == 'S')) {
        args.remove_suffix(1);
    }
    auto cb = m_dbg->expression_callbacks();
    auto n = evaluate_expression(args, cb);
    if (!n) {
        error(n.error().message);
        return;
    }
    auto stop = m_dbg->switch_processor(static_cast<uint16_t>(*n), std::chrono::seconds(10));
    if (!stop) {
        error(stop.error().message);
        return;
    }
    print(code_line(stop->pc));
}

void Repl::cmd_reboot() {
    if (auto r = m_dbg->reboot(); !r) {
        error("Reboot failed: " + r.error().message);
        return;
    }
    print("Shutdown occurred at (" + session_time() + ")...unloading all symbol tables.\n");
    print("Waiting to reconnect...\n");
}

void Repl::cmd_stack(std::string_view word, std::string_view args) {
    size_t max = 20; // kd's default frame count
    if (!trim(args).empty()) {
        auto cb = m_dbg->expression_callbacks();
        auto a = trim(args);
        if (a[0] == 'L' || a[0] == 'l') {
            a.remove_prefix(1);
        }
        auto n = evaluate_expression(a, cb);
        if (!n || *n == 0 || *n > 0xFFFF) {
            error("Bad frame count '" + std::string(args) + "'");
            return;
        }
        max = static_cast<size_t>(*n);
    }
    auto frames = m_dbg->stack_trace(max);
    if (!frames) {
        error("Stack walk failed: " + frames.error().message);
        return;
    }
    const bool numbered = word == "kn";
    const bool call_only = word == "kc";
    std::string out;
    if (call_only) {
        out += " # Call Site\n";
    } else {
        out += numbered ? " # Child-SP          RetAddr           Call Site\n"
                        : "Child-SP          RetAddr           Call Site\n";
    }
    for (size_t i = 0; i < frames->size(); ++i) {
        const auto& f = (*frames)[i];
        char num[24];
        std::snprintf(num, sizeof num, "%02zx ", i);
        std::string site = breakpoint_label(f.pc);
        if (call_only) {
            out += num + site + "\n";
            continue;
        }
        out += (numbered ? std::string(num) : std::string()) + format_address(f.child_sp) + " " +
               format_address(f.return_address) + " " + site + "\n";
    }
    print(out);
}

// Repl::cmd_help: CommandCatalog.cpp has the text, ScriptCommands.cpp prints it.

} // namespace kdcart::cli
