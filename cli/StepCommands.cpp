// Stepping to a place: pc / tc [count] (step over / trace until the next call instruction, the
// count-th one), pa / ta ADDR (step over / trace until ADDR, every step shown as WinDbg shows
// them). Built on the engine's single steps (p and t): the intermediate stops of pc / tc are not
// printed, the last one is; a breakpoint or an exception on the way ends the command and is
// reported as usual. Ctrl+C ends it after the step under way (breaking in when that step takes
// long, e.g. p over a call that does not return).
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/InstructionInfo.h"

#include <chrono>

namespace kdcart::cli {

namespace {
constexpr auto kBreakInAfter = std::chrono::milliseconds(500);
} // namespace

std::optional<engine::StopEvent> Repl::wait_step_quietly(bool& interrupted) {
    using namespace std::chrono;
    steady_clock::time_point asked{};
    bool broke_in = false;
    while (m_dbg->state() == engine::RunState::Running) {
        if (g_terminate.load() || g_interrupt.exchange(false)) {
            if (!interrupted) {
                interrupted = true;
                asked = steady_clock::now();
            }
        }
        if (interrupted && !broke_in && steady_clock::now() - asked > kBreakInAfter) {
            if (auto r = m_dbg->break_in(); !r) {
                error("Break-in failed: " + r.error().message);
            }
            broke_in = true;
        }
        auto stop = m_dbg->wait_for_stop(milliseconds(100));
        if (stop) {
            return *stop;
        }
        if (stop.error().code == Errc::Timeout) {
            continue;
        }
        if (stop.error().code == Errc::Disconnected) {
            error("The link is gone: " + stop.error().message);
            return std::nullopt;
        }
        on_notice(stop.error().message);
    }
    return m_dbg->last_stop();
}

bool Repl::call_at(uint64_t address) {
    auto mem = m_dbg->read_virtual(address, 16);
    if (!mem) {
        return false;
    }
    const size_t n = mem->readable_prefix();
    auto info = engine::decode_instruction(std::span<const uint8_t>(mem->bytes.data(), n));
    return info && info->is_call;
}

void Repl::cmd_step_to(std::string_view word, std::string_view args) {
    using K = engine::Debugger::StepKind;
    const K kind = word[0] == 't' ? K::Into : K::Over;
    const bool to_call = word[1] == 'c';
    auto cb = m_dbg->expression_callbacks();
    args = trim(args);
    uint64_t calls = 1;
    uint64_t target = 0;
    if (to_call) {
        if (!args.empty()) {
            auto n = evaluate_expression(args, cb);
            if (!n || *n == 0) {
                error("Bad count '" + std::string(args) + "'");
                return;
            }
            calls = *n;
        }
    } else {
        if (args.empty()) {
            error("Usage: " + std::string(word) + " ADDRESS");
            return;
        }
        auto a = evaluate_expression(args, cb);
        if (!a) {
            error(a.error().message);
            return;
        }
        target = *a;
    }
    if (!to_call) {
        // pa / ta: every step prints its registers and instruction, as t and p do.
        for (;;) {
            if (auto r = m_dbg->step(kind); !r) {
                error("Cannot step: " + r.error().message);
                return;
            }
            if (!wait_while_running()) {
                return;
            }
            const auto& stop = m_dbg->last_stop();
            if (!stop.step_complete || stop.pc == target || g_interrupt.load()) {
                return;
            }
        }
    }
    // pc / tc: quiet steps up to the call.
    bool interrupted = false;
    for (;;) {
        if (auto r = m_dbg->step(kind); !r) {
            error("Cannot step: " + r.error().message);
            return;
        }
        auto stop = wait_step_quietly(interrupted);
        if (!stop) {
            return;
        }
        if (!stop->step_complete || interrupted || g_interrupt.load()) {
            print_stop(*stop);
            if (interrupted) {
                g_interrupt.store(true); // execute_line drops the rest of the line, then forgets it
            }
            return;
        }
        if (call_at(stop->pc) && --calls == 0) {
            print_stop(*stop);
            return;
        }
    }
}

} // namespace kdcart::cli
