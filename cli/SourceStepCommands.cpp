// Source mode in the REPL: t / p by source line once l+t is set (and line support is on), and
// the source lines a stop shows with l+s (only them with l+o). The decisions are the engine's
// (engine/SourceStepper); here the target is stepped one instruction at a time with the same
// quiet steps as pc / tc, so a source step shows one stop display at the end, stops at a
// breakpoint or exception on the way, and ends after the step under way on Ctrl+C.
#include "cli/Repl.h"
#include "cli/SourceListing.h"
#include "engine/SourceStepper.h"

namespace kdcart::cli {

bool Repl::print_stop_source(uint64_t pc) {
    const std::string lines = m_source.stop_lines(*m_dbg, m_out, pc);
    if (lines.empty()) {
        return false;
    }
    print(lines);
    return m_source.only_source();
}

std::optional<bool> Repl::source_step(engine::StepKind kind) {
    using K = engine::StepKind;
    auto stepper = engine::SourceStepper::start(*m_dbg, m_dbg->last_stop().pc);
    if (!stepper) {
        return std::nullopt; // no line here: an ordinary instruction step
    }
    bool interrupted = false;
    uint64_t pc = m_dbg->last_stop().pc;
    // One step of `how`; the stop, or nullopt once something else was reported.
    auto step_once = [&](K how) -> std::optional<engine::StopEvent> {
        if (auto r = m_dbg->step(how); !r) {
            error("Cannot step: " + r.error().message);
            return std::nullopt;
        }
        auto stop = wait_step_quietly(interrupted);
        if (!stop) {
            return std::nullopt;
        }
        if (!stop->step_complete || interrupted || g_interrupt.load()) {
            print_stop(*stop);
            if (interrupted) {
                g_interrupt.store(true); // execute_line drops the rest of the line
            }
            return std::nullopt;
        }
        return stop;
    };
    for (;;) {
        const bool into_call = kind == K::Into && call_at(pc);
        auto stop = step_once(kind);
        if (!stop) {
            return false;
        }
        auto next = stepper->after_step(stop->pc, into_call);
        if (next == engine::SourceStepper::Next::StepOut) {
            stop = step_once(K::Out);
            if (!stop) {
                return false;
            }
            next = stepper->after_step(stop->pc, false);
        }
        switch (next) {
        case engine::SourceStepper::Next::Step:
        case engine::SourceStepper::Next::StepOut: // the return landed in code without lines
            pc = stop->pc;
            continue;
        case engine::SourceStepper::Next::Stop:
            print_stop(*stop);
            return true;
        case engine::SourceStepper::Next::GiveUp:
            print_stop(*stop);
            error("Source step: no other source line reached in " +
                  std::to_string(stepper->steps()) + " instructions from line " +
                  std::to_string(stepper->line().line) + " of " + stepper->line().file +
                  "; stopped here");
            return false;
        }
    }
}

} // namespace kdcart::cli
