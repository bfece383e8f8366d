// wt [-l Depth] [-m Module]... [-i Module]... [-ni] [-nc] [-ns] [-nw] [-or] [EndAddress]: trace
// and watch. Traces the function the pc is in (or the call the pc is on) until it returns, one
// trace-flag step at a time (engine/CallTrace counts), printing WinDbg's call tree
//
//       3     0 [  0] nt!KiSomething
//       1     0 [  1]   nt!Thunk
//      ...
//
// (instructions the function executed itself, those of its callees, depth) and the summary:
// instruction and event counts, and per function its invocations and min/max/average
// instructions. Calls deeper than -l are stepped over silently. A breakpoint or exception on the
// way ends the trace and is reported; Ctrl+C ends it after the step under way, with the summary
// of what was traced.
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/CallTrace.h"
#include "engine/InstructionInfo.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>

namespace kdcart::cli {

namespace {

struct WtOptions {
    std::optional<uint32_t> max_depth;
    std::vector<std::string> only_modules;   // -m
    std::vector<std::string> ignore_modules; // -i
    bool no_ignored_entries = false;         // -ni
    bool no_calls = false;                   // -nc
    bool no_summary = false;                 // -ns
    bool no_warnings = false;                // -nw
    bool return_values = false;              // -or / -oR
    std::string end_expression;
};

// Parses the options; an error message on a bad one.
std::optional<std::string> parse_wt(std::string_view args, WtOptions& o) {
    args = trim(args);
    while (!args.empty() && args[0] == '-') {
        size_t n = 1;
        while (n < args.size() && !std::isspace(static_cast<unsigned char>(args[n]))) {
            ++n;
        }
        const std::string opt = lower(args.substr(0, n));
        args = trim(args.substr(n));
        auto value = [&]() -> std::string {
            size_t m = 0;
            while (m < args.size() && !std::isspace(static_cast<unsigned char>(args[m]))) {
                ++m;
            }
            std::string v(args.substr(0, m));
            args = trim(args.substr(m));
            return v;
        };
        if (opt == "-l") {
            const std::string v = value();
            char* end = nullptr;
            const unsigned long d = std::strtoul(v.c_str(), &end, 16);
            if (v.empty() || *end != '\0' || d > 0xFFFF) {
                return "Bad depth '" + v + "'";
            }
            o.max_depth = static_cast<uint32_t>(d);
        } else if (opt == "-m" || opt == "-i") {
            const std::string v = value();
            if (v.empty()) {
                return opt + " needs a module name";
            }
            (opt == "-m" ? o.only_modules : o.ignore_modules).push_back(lower(v));
        } else if (opt == "-ni") {
            o.no_ignored_entries = true;
        } else if (opt == "-nc") {
            o.no_calls = true;
        } else if (opt == "-ns") {
            o.no_summary = true;
        } else if (opt == "-nw") {
            o.no_warnings = true;
        } else if (opt == "-or") {
            o.return_values = true;
        } else if (opt == "-oa") {
            return "wt -oa is not supported yet";
        } else {
            return "Unknown option '" + opt + "'";
        }
    }
    if (!args.empty() && args[0] == '=') {
        return "wt = StartAddress is not supported yet";
    }
    o.end_expression = std::string(args);
    return std::nullopt;
}

std::string module_of(const std::string& function) {
    const auto bang = function.find('!');
    return lower(function.substr(0, bang));
}

std::string line_text(const engine::CallTraceLine& l, bool with_rax) {
    char head[64];
    std::snprintf(head, sizeof head, "%5" PRIu64 " %5" PRIu64 " [%3u] ", l.own, l.children,
                  l.depth);
    std::string s = head + std::string(2 * static_cast<size_t>(l.depth), ' ') + l.function;
    if (with_rax && l.returned) {
        char v[40];
        std::snprintf(v, sizeof v, " rax = %" PRIx64, l.return_value);
        s += v;
    }
    return s + "\n";
}

} // namespace

// The function an address is in, as wt names it: module!function, the module alone when it
// has no symbol there, the address when no module holds it.
std::string Repl::wt_function_name(uint64_t address) {
    if (auto sym = m_dbg->symbolize(address)) {
        return sym->name.empty() ? sym->module : sym->module + "!" + sym->name;
    }
    return format_address(address);
}

void Repl::cmd_watch_trace(std::string_view args) {
    WtOptions o;
    if (auto bad = parse_wt(args, o)) {
        error(*bad);
        return;
    }
    std::optional<uint64_t> end_address;
    if (!o.end_expression.empty()) {
        auto cb = m_dbg->expression_callbacks();
        auto a = evaluate_expression(o.end_expression, cb);
        if (!a) {
            error(a.error().message);
            return;
        }
        end_address = *a;
    }
    auto ctx = m_dbg->context(std::nullopt, engine::ContextPart::Integer);
    if (!ctx) {
        error("Cannot read the registers: " + ctx.error().message);
        return;
    }
    auto decode_at = [this](uint64_t pc) -> std::optional<engine::InstructionInfo> {
        auto mem = m_dbg->read_virtual(pc, 16);
        if (!mem) {
            return std::nullopt;
        }
        return engine::decode_instruction(
            std::span<const uint8_t>(mem->bytes.data(), mem->readable_prefix()));
    };
    const uint64_t start_pc = ctx->Rip;
    const auto first = decode_at(start_pc);
    if (!first) {
        error("Cannot decode the instruction at " + format_address(start_pc));
        return;
    }
    // On a call: trace that call until it comes back here. Elsewhere: until this function
    // returns (to [rsp] at its first instruction, else where the unwinder says).
    const bool on_call = first->is_call;
    const std::string start_function = wt_function_name(start_pc);
    uint64_t return_address = start_pc + first->length;
    if (!on_call) {
        auto sym = m_dbg->symbolize(start_pc);
        std::optional<uint64_t> ra;
        if (sym && !sym->name.empty() && sym->displacement == 0) {
            auto m = m_dbg->read_virtual(ctx->Rsp, 8);
            if (m && m->all_valid()) {
                uint64_t v = 0;
                std::memcpy(&v, m->bytes.data(), 8);
                ra = v;
            }
        }
        if (!ra) {
            if (auto frames = m_dbg->stack_trace(1); frames && !frames->empty()) {
                ra = (*frames)[0].return_address;
            }
        }
        return_address = ra.value_or(0);
    }
    print("Tracing " + start_function + " to return address " + format_address(return_address) +
          "\n");

    auto shown = [&](const engine::CallTraceLine& l, const std::string& caller_module) {
        if (o.no_calls || (o.max_depth && l.depth > *o.max_depth)) {
            return false;
        }
        const std::string mod = module_of(l.function);
        auto in = [&](const std::vector<std::string>& v, const std::string& m) {
            return std::find(v.begin(), v.end(), m) != v.end();
        };
        if (!o.only_modules.empty()) {
            // The module's own code and the first level of calls out of it.
            if (!in(o.only_modules, mod) && !in(o.only_modules, caller_module)) {
                return false;
            }
            return o.no_ignored_entries ? in(o.only_modules, mod) : true;
        }
        if (!o.ignore_modules.empty() && in(o.ignore_modules, mod)) {
            return false;
        }
        return true;
    };

    engine::CallTrace trace(start_function);
    std::vector<std::string> callers{""}; // the module of each open frame's caller
    uint64_t events = 0;
    bool interrupted = false;
    std::optional<engine::StopEvent> last;
    for (;;) {
        const uint64_t pc = last ? last->pc : start_pc;
        const auto info = last ? decode_at(pc) : first;
        using Kind = engine::CallTrace::Kind;
        Kind kind = Kind::Other;
        bool over = false;
        if (info && info->is_call) {
            kind = Kind::Call;
            over = o.max_depth && trace.depth() >= *o.max_depth;
        } else if (info && info->is_ret) {
            kind = Kind::Return;
        }
        const std::string here = last ? wt_function_name(pc) : start_function;
        using K = engine::Debugger::StepKind;
        if (auto r = m_dbg->step(over ? K::Over : K::Into); !r) {
            error("Cannot step: " + r.error().message);
            break;
        }
        auto stop = wait_step_quietly(interrupted);
        if (!stop) {
            return; // the link is gone: said already
        }
        last = *stop;
        if (!stop->step_complete) {
            break; // a breakpoint or an exception: reported below, after the summary
        }
        ++events;
        uint64_t rax = 0;
        if (kind == Kind::Return && o.return_values) {
            if (auto c = m_dbg->context(std::nullopt, engine::ContextPart::Integer)) {
                rax = c->Rax;
            }
        }
        const std::string next = wt_function_name(stop->pc);
        // A call stepped over (-l) is one instruction of this function.
        const Kind counted = over ? Kind::Other : kind;
        auto line = trace.executed(counted, over ? here : next, rax);
        if (line && shown(*line, callers.back())) {
            print(line_text(*line, o.return_values));
        }
        if (counted == Kind::Call) {
            callers.push_back(module_of(here));
        } else if (counted == Kind::Return && callers.size() > 1) {
            callers.pop_back();
        }
        if (trace.finished()) {
            break;
        }
        if (on_call && counted == Kind::Return && trace.depth() == 0) {
            if (!o.no_calls) {
                print(line_text(trace.current(), false));
            }
            break;
        }
        if ((end_address && stop->pc == *end_address) || interrupted || g_interrupt.load()) {
            break;
        }
    }
    trace.stop();
    if (!o.no_summary) {
        std::string s = "\n" + std::to_string(trace.instructions()) +
                        " instructions were executed in " + std::to_string(events) +
                        " events (0 from other threads)\n\n";
        s += "Function Name                               Invocations MinInst MaxInst AvgInst\n";
        for (const auto& [name, st] : trace.stats()) {
            char row[64];
            std::snprintf(row, sizeof row, "%11" PRIu64 "%8" PRIu64 "%8" PRIu64 "%8" PRIu64 "\n",
                          st.invocations, st.min, st.max,
                          st.invocations ? st.total / st.invocations : 0);
            std::string padded = name;
            if (padded.size() < 44) {
                padded.resize(44, ' ');
            }
            s += padded + row;
        }
        s += "\n0 system calls were executed\n\n";
        print(s);
    }
    if (last) {
        print_stop(*last);
    }
    if (interrupted) {
        g_interrupt.store(true); // execute_line drops the rest of the line, then forgets it
    }
}

} // namespace kdcart::cli
