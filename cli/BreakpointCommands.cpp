// bp bu bm ba bl bc bd be, t p gu, .pagein, .allow_bp_ba_convert, sxe/sxd: WinDbg syntax.
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "engine/Expression.h"
#include "cli/format/Format.h"

#include <cstdio>
#include <tuple>

namespace kdcart::cli {

namespace {

// Leading "/1", "/w \"cond\"", "/p X", "/t X", "/c N", "/C N", "/a", "/d" options.
struct BpOptions {
    bool one_shot = false;
    std::string condition;    // /w
    bool all_symbols = false; // bm /a: data symbols too
    bool deferred = false;    // bm /d: bu breakpoints
    std::string process;      // /p EPROCESS (an expression, evaluated by the caller)
    std::string thread;       // /t ETHREAD
};

// One option argument: up to the first blank outside parentheses (`poi(@$proc + 8)`).
std::string_view take_word(std::string_view& text) {
    text = trim(text);
    int depth = 0;
    size_t i = 0;
    for (; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '(') {
            ++depth;
        } else if (c == ')' && depth > 0) {
            --depth;
        } else if (depth == 0 && std::isspace(static_cast<unsigned char>(c))) {
            break;
        }
    }
    std::string_view word = text.substr(0, i);
    text = trim(text.substr(i));
    return word;
}

// A "quoted" string at the start of text (\" inside it is a quote); the rest after it.
std::optional<std::string> take_quoted(std::string_view& text) {
    text = trim(text);
    if (text.empty() || text[0] != '"') {
        return std::nullopt;
    }
    std::string out;
    for (size_t i = 1; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '"') {
            out += '"';
            ++i;
        } else if (text[i] == '"') {
            text = trim(text.substr(i + 1));
            return out;
        } else {
            out += text[i];
        }
    }
    return std::nullopt;
}
std::string_view take_options(std::string_view args, BpOptions& opt, std::string& err) {
    args = trim(args);
    while (!args.empty() && args[0] == '/') {
        if (args.size() >= 2 && args[1] == '1') {
            opt.one_shot = true;
            args = trim(args.substr(2));
            continue;
        }
        if (args.size() >= 2 && args[1] == 'w') {
            // bp /w "condition": stop only when it is true (WinDbg's conditional breakpoint).
            std::string_view rest = args.substr(2);
            auto cond = take_quoted(rest);
            if (!cond || trim(*cond).empty()) {
                err = "Unknown option '/w': it takes a quoted condition (bp /w \"@rcx == 5\" "
                      "ADDRESS)";
                return {};
            }
            opt.condition = *cond;
            args = rest;
            continue;
        }
        if (args.size() >= 2 && (args[1] == 'a' || args[1] == 'd') &&
            (args.size() == 2 || std::isspace(static_cast<unsigned char>(args[2])))) {
            (args[1] == 'a' ? opt.all_symbols : opt.deferred) = true;
            args = trim(args.substr(2));
            continue;
        }
        if (args.size() >= 3 && (args[1] == 'p' || args[1] == 't') &&
            std::isspace(static_cast<unsigned char>(args[2]))) {
            // bp /p EPROCESS, bp /t ETHREAD (kernel mode): only in that process / thread.
            const char which = args[1];
            args = args.substr(2);
            std::string_view value = take_word(args);
            if (value.empty()) {
                err = std::string("Unknown option '/") + which + "': it takes an address (bp /" +
                      which + (which == 'p' ? " EPROCESS" : " ETHREAD") + " ADDRESS)";
                return {};
            }
            (which == 'p' ? opt.process : opt.thread) = std::string(value);
            continue;
        }
        if (args.size() >= 2 && (args[1] == 'c' || args[1] == 'C')) {
            // Call-depth limits: accepted and skipped, with a word.
            err = std::string("option /") + args[1] + " is not supported yet; ignored";
            args = trim(args.substr(2));
            size_t sp = args.find_first_of(" \t");
            args = sp == std::string_view::npos ? std::string_view() : trim(args.substr(sp));
            continue;
        }
        err = "Unknown option '" + std::string(args.substr(0, 2)) + "'";
        return {};
    }
    return args;
}

// The optional pass count after a breakpoint's address (default 1).
Result<uint64_t> parse_passes(std::string_view text, const ExpressionCallbacks& cb) {
    if (text.empty()) {
        return 1;
    }
    auto p = evaluate_expression(text, cb);
    if (!p || *p == 0) {
        return make_error(Errc::InvalidArgument, "Bad pass count '" + std::string(text) + "'");
    }
    return *p;
}

// The /p and /t addresses of `opt`, evaluated (any expression: @$proc, @$thread, poi(...)).
struct BpFilters {
    std::optional<uint64_t> process, thread;
};
Result<BpFilters> evaluate_filters(const BpOptions& opt, const ExpressionCallbacks& cb) {
    BpFilters out;
    for (auto [text, slot, what] : {std::tuple{&opt.process, &out.process, "process"},
                                    std::tuple{&opt.thread, &out.thread, "thread"}}) {
        if (text->empty()) {
            continue;
        }
        auto v = evaluate_expression(*text, cb);
        if (!v) {
            return make_error(Errc::InvalidArgument, std::string("Bad ") + what + " address '" +
                                                         *text + "': " + v.error().message);
        }
        *slot = *v;
    }
    return out;
}

// Splits off a trailing "quoted command" and returns it without the quotes; inside it \" is a
// quote and \\ a backslash, as in WinDbg (bp f ".printf \"%d\\n\", @rcx; g").
std::string take_command(std::string_view& args) {
    auto q = args.find('"');
    if (q == std::string_view::npos) {
        return {};
    }
    std::string cmd;
    for (size_t i = q + 1; i < args.size(); ++i) {
        if (args[i] == '\\' && i + 1 < args.size() &&
            (args[i + 1] == '"' || args[i + 1] == '\\')) {
            cmd += args[++i];
        } else if (args[i] == '"') {
            break;
        } else {
            cmd += args[i];
        }
    }
    args = trim(args.substr(0, q));
    return cmd;
}

} // namespace

std::string Repl::breakpoint_label(uint64_t address) {
    if (auto sym = m_dbg->symbolize(address)) {
        return format_symbol(*sym);
    }
    return format_address(address);
}

void Repl::cmd_bp(std::string_view word, std::string_view args) {
    BpOptions opt;
    std::string warn;
    args = take_options(args, opt, warn);
    if (!warn.empty()) {
        if (warn.rfind("Unknown", 0) == 0) {
            error(warn);
            return;
        }
        error(warn);
    }
    std::string command = take_command(args);
    auto filters = evaluate_filters(opt, m_dbg->expression_callbacks());
    if (!filters) {
        error(filters.error().message);
        return;
    }
    if (word == "bm") {
        cmd_bm(opt.one_shot, opt.all_symbols, opt.deferred, opt.condition, command, args,
               filters->process, filters->thread);
        return;
    }
    if (args.empty()) {
        error("Usage: " + std::string(word) +
              " [/1] [/p EPROCESS] [/t ETHREAD] ADDRESS [PASSES] [\"COMMANDS\"]");
        return;
    }
    auto cb = m_dbg->expression_callbacks();
    size_t used = 0;
    std::string expr;
    std::optional<uint64_t> address;
    auto value = evaluate_expression_prefix(args, cb, &used);
    if (value) {
        address = *value;
        expr = std::string(trim(args.substr(0, used)));
    } else {
        // The first word is the expression; it may name a module that is not loaded yet.
        size_t sp = args.find_first_of(" \t");
        expr = std::string(args.substr(0, sp));
        used = sp == std::string_view::npos ? args.size() : sp;
    }
    auto passes = parse_passes(trim(args.substr(used)), cb);
    if (!passes) {
        error(passes.error().message);
        return;
    }
    engine::Debugger::BreakpointRequest req;
    req.kind = engine::BreakpointKind::Software;
    req.deferred = word == "bu";
    req.expression = expr;
    req.address = address;
    req.one_shot = opt.one_shot;
    req.pass_count = *passes;
    req.command = command;
    req.condition = opt.condition;
    req.match_process = filters->process;
    req.match_thread = filters->thread;
    if (!address) {
        if (expr.find('!') == std::string::npos) {
            error(value.error().message);
            return;
        }
        if (word != "bu") {
            print("Bp expression '" + expr + "' could not be resolved, adding deferred bp\n");
            req.deferred = true;
        }
    }
    auto r = m_dbg->set_breakpoint(req);
    if (!r) {
        error(req.address ? "Unable to set breakpoint at " + format_address(*req.address) + ": " +
                                r.error().message
                          : r.error().message);
        return;
    }
    if (r->redefined) {
        print("breakpoint " + std::to_string(r->id) + " redefined\n");
    }
    if (r->converted_to_hardware) {
        print("Breakpoint " + std::to_string(r->id) + " is on a page that is not present: " +
              "set as hardware breakpoint (ba e1) instead\n");
        return;
    }
    for (const auto* b : m_dbg->breakpoints().all()) {
        if (b->id == r->id && b->state == engine::LocationState::Owed) {
            print("Breakpoint " + std::to_string(b->id) + " at " + format_address(*b->address) +
                  " is owed: its page is not present. The target arms it when the page comes "
                  "in; or use .pagein " +
                  format_address(*b->address) + ", ba e1 " + format_address(*b->address) +
                  ", or .allow_bp_ba_convert 1.\n");
        }
    }
}

void Repl::cmd_ba(std::string_view args) {
    BpOptions opt;
    std::string warn;
    args = take_options(args, opt, warn);
    if (!warn.empty()) {
        error(warn);
        if (warn.rfind("Unknown", 0) == 0) {
            return;
        }
    }
    std::string command = take_command(args);
    args = trim(args);
    if (args.empty()) {
        error("Usage: ba [/1] e|r|w|i 1|2|4|8 ADDRESS [PASSES] [\"COMMANDS\"]");
        return;
    }
    engine::HwAccess access;
    switch (std::tolower(static_cast<unsigned char>(args[0]))) {
    case 'e': access = engine::HwAccess::Execute; break;
    case 'w': access = engine::HwAccess::Write; break;
    case 'r': access = engine::HwAccess::ReadWrite; break;
    case 'i': access = engine::HwAccess::Io; break;
    default:
        error("Bad access type '" + std::string(1, args[0]) + "' (use e, r, w or i)");
        return;
    }
    args = trim(args.substr(1));
    if (args.empty() || !std::isdigit(static_cast<unsigned char>(args[0]))) {
        error("Usage: ba ACCESS SIZE ADDRESS (e.g. ba w4 nt!KdDebuggerEnabled)");
        return;
    }
    const int size = args[0] - '0';
    args = trim(args.substr(1));
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        error("Bad size " + std::to_string(size) + ": hardware breakpoints cover 1, 2, 4 or 8 bytes");
        return;
    }
    // WinDbg's place for the options: after the size (ba w4 /p EPROCESS ADDRESS).
    warn.clear();
    args = take_options(args, opt, warn);
    if (!warn.empty()) {
        error(warn);
        if (warn.rfind("Unknown", 0) == 0) {
            return;
        }
    }
    auto filters = evaluate_filters(opt, m_dbg->expression_callbacks());
    if (!filters) {
        error(filters.error().message);
        return;
    }
    auto cb = m_dbg->expression_callbacks();
    size_t used = 0;
    auto addr = evaluate_expression_prefix(args, cb, &used);
    if (!addr) {
        error(addr.error().message);
        return;
    }
    auto passes = parse_passes(trim(args.substr(used)), cb);
    if (!passes) {
        error(passes.error().message);
        return;
    }
    engine::Debugger::BreakpointRequest req;
    req.kind = engine::BreakpointKind::Hardware;
    req.expression = std::string(trim(args.substr(0, used)));
    req.address = *addr;
    req.access = access;
    req.length = static_cast<uint8_t>(size);
    req.one_shot = opt.one_shot;
    req.pass_count = *passes;
    req.command = command;
    req.match_process = filters->process;
    req.match_thread = filters->thread;
    auto r = m_dbg->set_breakpoint(req);
    if (!r) {
        error(req.address ? "Unable to set breakpoint at " + format_address(*req.address) + ": " +
                                r.error().message
                          : r.error().message);
        return;
    }
    if (r->redefined) {
        print("breakpoint " + std::to_string(r->id) + " redefined\n");
    }
}

void Repl::cmd_bl() {
    std::string out;
    for (const auto* bp : m_dbg->breakpoints().all()) {
        char head[16];
        std::snprintf(head, sizeof head, "%2u ", bp->id);
        std::string flags = bp->enabled ? "e" : "d";
        if (bp->state == engine::LocationState::Unresolved) {
            flags += "u";
        }
        flags.resize(2, ' ');
        std::string addr = bp->address && bp->state != engine::LocationState::Unresolved
                               ? format_address(*bp->address)
                               : std::string(17, ' ');
        std::string hw = "   ";
        if (bp->kind == engine::BreakpointKind::Hardware) {
            const char acc[] = {'e', 'w', 'i', 'r'};
            hw = std::string(1, acc[static_cast<int>(bp->access)]) + " " +
                 std::to_string(bp->length);
        }
        char passes[32];
        std::snprintf(passes, sizeof passes, "%04llx (%04llx)",
                      static_cast<unsigned long long>(bp->passes_left),
                      static_cast<unsigned long long>(bp->pass_count));
        std::string where = bp->state == engine::LocationState::Unresolved || !bp->address
                                ? "(" + bp->expression + ")"
                                : breakpoint_label(*bp->address);
        std::string line = head + flags + addr + " " + hw + " " + passes + " " + where;
        if (bp->one_shot) {
            line += " /1";
        }
        if (!bp->condition.empty()) {
            line += " /w \"" + bp->condition + "\"";
        }
        if (!bp->command.empty()) {
            line += " \"" + bp->command + "\"";
        }
        if (bp->state == engine::LocationState::Owed) {
            line += "  (owed: page not present)";
        }
        out += line + "\n";
        if (bp->match_thread || bp->match_process) {
            // WinDbg's second line: "     Match process data ffffe000`4f6b5840" (thread first
            // when both are set, on the same line).
            out += "   ";
            if (bp->match_thread) {
                out += "  Match thread data " + format_address(*bp->match_thread);
            }
            if (bp->match_process) {
                out += "  Match process data " + format_address(*bp->match_process);
            }
            out += "\n";
        }
    }
    print(out);
}

void Repl::cmd_bc_bd_be(std::string_view word, std::string_view args) {
    auto ids = engine::parse_breakpoint_ids(std::string(trim(args)), m_dbg->breakpoints());
    if (!ids) {
        error("Usage: " + std::string(word) + " * | ID | ID-ID | ID ID ...");
        return;
    }
    for (uint32_t id : *ids) {
        Result<void> r = word == "bc"   ? m_dbg->clear_breakpoint(id)
                         : word == "bd" ? m_dbg->enable_breakpoint(id, false)
                                        : m_dbg->enable_breakpoint(id, true);
        if (!r) {
            error(r.error().message);
        }
    }
}

void Repl::cmd_step(std::string_view word, std::string_view args) {
    using K = engine::Debugger::StepKind;
    const K kind = word == "t" ? K::Into : word == "p" ? K::Over : K::Out;
    uint64_t count = 1;
    args = trim(args);
    if (!args.empty()) {
        if (kind == K::Out) {
            error("gu takes no arguments");
            return;
        }
        auto cb = m_dbg->expression_callbacks();
        auto n = evaluate_expression(args, cb);
        if (!n || *n == 0 || *n > 100000) {
            error("Bad step count '" + std::string(args) + "'");
            return;
        }
        count = *n;
    }
    for (uint64_t i = 0; i < count; ++i) {
        if (kind != K::Out && m_source.step_by_line(*m_dbg)) {
            if (auto by_line = source_step(kind)) { // l+t (SourceStepCommands.cpp)
                if (!*by_line) {
                    return;
                }
                continue;
            }
        }
        if (auto r = m_dbg->step(kind); !r) {
            error("Cannot step: " + r.error().message);
            return;
        }
        if (!wait_while_running()) {
            return;
        }
        if (!m_dbg->last_stop().step_complete) {
            return; // something else stopped the target: it has been reported
        }
    }
}

void Repl::cmd_pagein(std::string_view args) {
    auto cb = m_dbg->expression_callbacks();
    auto addr = evaluate_expression(trim(args), cb);
    if (!addr) {
        error(addr.error().message);
        return;
    }
    if (auto r = m_dbg->page_in(*addr); !r) {
        error("PageIn failed: " + r.error().message);
        return;
    }
    print("You need to continue execution (press 'g' <enter>) for the pagein to be brought in.  "
          "When the debugger breaks in or moves to the next event, the page will be present.\n");
}

void Repl::cmd_allow_convert(std::string_view args) {
    args = trim(args);
    if (!args.empty()) {
        if (args == "0" || args == "1") {
            m_dbg->set_allow_bp_ba_convert(args == "1");
        } else {
            error("Usage: .allow_bp_ba_convert [0|1]");
            return;
        }
    }
    print(std::string("Converting owed breakpoints to hardware breakpoints is ") +
          (m_dbg->allow_bp_ba_convert() ? "enabled" : "disabled") + "\n");
}

namespace {
// WinDbg's event codes for the exceptions a kernel target reports.
const struct {
    const char* name;
    uint32_t code;
} kExceptionEvents[] = {
    {"av", 0xC0000005},  {"dz", 0xC0000094},  {"ii", 0xC000001D}, {"sov", 0xC00000FD},
    {"gp", 0x80000001},  {"aph", 0xC0000205}, {"dm", 0x80000002}, {"iov", 0xC0000095},
    {"eh", 0xE06D7363},  {"ch", 0xC0000008},  {"isc", 0xC000001E}, {"3c", 0xC0000025},
};
} // namespace

void Repl::cmd_sx(std::string_view word, std::string_view args) {
    args = trim(args);
    if (cmd_sx_module(word, args)) {
        return; // ld / ud (EventCommands.cpp)
    }
    using P = engine::Debugger::ExceptionPolicy;
    const P policy = word == "sxe"   ? P::Break
                     : word == "sxd" ? P::SecondChance
                     : word == "sxn" ? P::Output
                                     : P::Ignore;
    std::optional<uint32_t> code;
    for (const auto& e : kExceptionEvents) {
        if (args == e.name) {
            code = e.code;
        }
    }
    if (!code && !args.empty()) {
        auto cb = m_dbg->expression_callbacks();
        if (auto v = evaluate_expression(args, cb); v && *v <= 0xFFFFFFFFu) {
            code = static_cast<uint32_t>(*v);
        }
    }
    if (!code) {
        error("Unknown event '" + std::string(args) + "' (av, dz, ii, sov, ld, or an exception "
              "code)");
        return;
    }
    if (*code == protocol::STATUS_BREAKPOINT || *code == protocol::STATUS_SINGLE_STEP) {
        error("Breakpoint and single-step events always stop in kdcart");
        return;
    }
    m_dbg->set_exception_policy(*code, policy);
    const char* what = policy == P::Break          ? "break on first chance"
                       : policy == P::SecondChance ? "break on second chance"
                       : policy == P::Output       ? "output, no break"
                                                   : "ignore";
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", *code);
    print(std::string(exception_name(*code)) + " - code " + buf + ": " + what + "\n");
}

void Repl::after_stop_commands(const engine::StopEvent& stop) {
    if (!stop.breakpoint_id) {
        return;
    }
    std::string command;
    for (const auto* bp : m_dbg->breakpoints().all()) {
        if (bp->id == *stop.breakpoint_id) {
            command = bp->command;
        }
    }
    if (!command.empty()) {
        // Aliases are replaced now, at the hit; a `g` in it resumes the target and the wait
        // that reported this hit goes on (no nesting, no limit on the number of hits).
        run_breakpoint_command(*stop.breakpoint_id, command);
    }
}

bool Repl::resume_if_condition_false(const engine::StopEvent& stop) {
    if (!stop.breakpoint_id) {
        return false;
    }
    std::string condition;
    for (const auto* bp : m_dbg->breakpoints().all()) {
        if (bp->id == *stop.breakpoint_id) {
            condition = bp->condition;
        }
    }
    if (condition.empty()) {
        return false;
    }
    auto v = evaluate_expression(condition, m_dbg->expression_callbacks());
    if (!v) {
        // WinDbg stops when it cannot evaluate the condition, and says why.
        error("Breakpoint " + std::to_string(*stop.breakpoint_id) + "'s condition '" + condition +
              "': " + v.error().message);
        return false;
    }
    if (*v != 0) {
        return false;
    }
    if (auto r = m_dbg->go(); !r) {
        error("Could not resume the target: " + r.error().message);
        return false;
    }
    return true;
}

void Repl::cmd_bm(bool one_shot, bool all_symbols, bool deferred, const std::string& condition,
                  const std::string& command, std::string_view args,
                  std::optional<uint64_t> match_process, std::optional<uint64_t> match_thread) {
    // bm [/1] [/a] [/d] module!pattern [passes] ["commands"]
    args = trim(args);
    size_t sp = args.find_first_of(" \t");
    std::string pattern(args.substr(0, sp));
    std::string_view rest =
        sp == std::string_view::npos ? std::string_view() : trim(args.substr(sp));
    if (pattern.empty()) {
        error("Usage: bm [/1] [/a] [/d] MODULE!PATTERN [PASSES] [\"COMMANDS\"]");
        return;
    }
    auto cb = m_dbg->expression_callbacks();
    auto passes = parse_passes(rest, cb);
    if (!passes) {
        error(passes.error().message);
        return;
    }
    const auto bang = pattern.find('!');
    const std::string module_pattern = bang == std::string::npos ? "*" : pattern.substr(0, bang);
    const std::string name_pattern = bang == std::string::npos ? pattern : pattern.substr(bang + 1);
    auto matches = m_dbg->symbols().search(module_pattern, name_pattern);
    std::string out;
    size_t set = 0;
    for (const auto& sym : matches) {
        // Code only, unless /a: functions, code publics and exports.
        if (!all_symbols && (sym.kind == engine::SymbolKind::Data ||
                             sym.kind == engine::SymbolKind::Public)) {
            continue;
        }
        engine::Debugger::BreakpointRequest req;
        req.kind = engine::BreakpointKind::Software;
        req.deferred = deferred;
        req.expression = sym.module + "!" + sym.name;
        req.address = sym.address;
        req.one_shot = one_shot;
        req.pass_count = *passes;
        req.command = command;
        req.condition = condition;
        req.match_process = match_process;
        req.match_thread = match_thread;
        auto r = m_dbg->set_breakpoint(req);
        if (!r) {
            out += "Unable to set breakpoint at " + format_address(sym.address) + " (" +
                   req.expression + "): " + r.error().message + "\n";
            continue;
        }
        ++set;
        if (r->redefined) {
            out += "breakpoint " + std::to_string(r->id) + " redefined\n";
        }
        char head[16];
        std::snprintf(head, sizeof head, "%3u: ", r->id);
        out += head + format_address(sym.address) + " @!\"" + req.expression + "\"\n";
    }
    if (set == 0 && out.empty()) {
        out = "No matching symbols found, no breakpoints set.\n";
    }
    print(out);
}

} // namespace kdcart::cli
