#pragma once
// Run control of a live target: attach, stops (what a state change means), go / step / step
// over / step out, break-in, processor switch, reboot, detach. WinDbg's model: a breakpoint under
// the PC is stepped off with the trace flag first; exception filters decide which exceptions
// stop; module loads re-resolve deferred breakpoints.
#include "engine/BreakpointManager.h"
#include "engine/Contexts.h"
#include "engine/KernelInfo.h"
#include "engine/LiveTarget.h"
#include "engine/StackWalker.h"
#include "engine/Symbols.h"

#include <functional>
#include <map>

namespace kdcart::engine {

struct AttachOptions {
    bool break_in = false;                 // -b: stop the target as soon as it answers
    std::optional<Millis> connect_timeout; // none: wait until interrupted
    // Polled while waiting; returns true when the user asked to stop waiting (Ctrl+C).
    std::function<bool()> interrupted;
    // Polled while waiting; true once kdcart must leave (SIGTERM, SIGHUP). Before a break-in was
    // sent the wait ends at once and nothing is changed on the target; after one, its stop is
    // taken (for a few seconds) so that the caller can leave the target running.
    std::function<bool()> terminated;
};

enum class RunState { Detached, Running, Stopped };

enum class StepKind { Into, Over, Out };

// Exception filters (sxe / sxd / sxn / sxi) by exception code. Break = stop on the first chance
// (the default); SecondChance = only tell about the first chance; Output = tell, never stop;
// Ignore = say nothing. Second chances always stop unless ignored.
enum class ExceptionPolicy { Break, SecondChance, Output, Ignore };

// The parts of the engine run control works with (owned by the Debugger).
struct RunParts {
    LiveTarget& target;
    Memory& memory;
    Contexts& contexts;
    KernelInfo& info;
    Modules& modules;
    Symbols& symbols;
    BreakpointManager& breakpoints;
    StackWalker& stack;
};

class RunControl {
public:
    explicit RunControl(RunParts parts) : m(parts) {}

    [[nodiscard]] Result<StopEvent> attach(const AttachOptions& options);
    RunState state() const { return m_state; }
    const StopEvent& last_stop() const { return m_stop; }

    [[nodiscard]] Result<void> go();
    [[nodiscard]] Result<void> go_until(uint64_t address);
    // t / p / gu. The stop arrives through wait_for_stop with step_complete set.
    [[nodiscard]] Result<void> step(StepKind kind);
    [[nodiscard]] Result<StopEvent> wait_for_stop(Millis timeout);
    [[nodiscard]] Result<void> break_in();
    [[nodiscard]] Result<StopEvent> switch_processor(uint16_t cpu, Millis timeout);
    [[nodiscard]] Result<void> reboot();
    // .crash: the target bug checks (MANUALLY_INITIATED_CRASH) and comes back with that stop.
    [[nodiscard]] Result<void> crash();
    [[nodiscard]] Result<void> detach();
    void remove_all_breakpoints_from_target();

    void set_break_on_module_load(bool on) { m_break_on_load = on; }
    void set_exception_policy(uint32_t code, ExceptionPolicy policy) {
        m_exception_policy[code] = policy;
    }
    // bp /p /t: whether a hit is the breakpoint's (engine/BreakpointFilter); an error stops.
    using BreakpointMatcher = std::function<Result<bool>(const Breakpoint&, const StopEvent&)>;
    void set_breakpoint_matcher(BreakpointMatcher matcher) { m_matcher = std::move(matcher); }
    ExceptionPolicy exception_policy(uint32_t code) const {
        auto it = m_exception_policy.find(code);
        return it == m_exception_policy.end() ? ExceptionPolicy::Break : it->second;
    }

private:
    enum class Phase { None, SteppingOffBreakpoint };

    StopEvent make_stop(const protocol::StateChange& sc);
    [[nodiscard]] Result<StopEvent> enter_stop(const protocol::StateChange& sc);
    [[nodiscard]] Result<StopEvent> first_stop(const protocol::StateChange& sc);
    [[nodiscard]] Result<void> resume(uint32_t status, bool trace);
    [[nodiscard]] Result<void> resume_with_breakpoints(bool trace, uint32_t status);
    [[nodiscard]] Result<void> go_impl(std::optional<uint64_t> until);
    // Decides what a raw stop means; nullopt = handled internally, keep running.
    [[nodiscard]] Result<std::optional<StopEvent>> filter_stop(StopEvent ev);
    void forget_stop_state(bool running);
    uint64_t continue_status_for_stop() const;
    bool is_own_breakpoint(uint64_t pc);
    [[nodiscard]] Result<uint64_t> current_pc();
    // Moves Rip over a hard-coded int3 (break-in, DbgBreakPoint) the stop is on.
    [[nodiscard]] Result<void> skip_hardcoded_break(const CONTEXT& ctx);
    void end_step_state();

    RunParts m;
    RunState m_state = RunState::Detached;
    StopEvent m_stop;
    bool m_breakin_requested = false;
    bool m_break_on_load = false;
    std::map<uint32_t, ExceptionPolicy> m_exception_policy;
    std::optional<uint64_t> m_step_out_rsp; // gu: stop only when the frame is gone
    bool m_stepping = false;                // t (or p on a non-call): a trace step is under way
    Phase m_phase = Phase::None;
    uint32_t m_resume_status = protocol::DBG_CONTINUE;
    bool m_swept = false; // the RestoreBreakPoint sweep of a fresh connection was sent
    BreakpointMatcher m_matcher;
    // A break-in was asked for and no stop has been reported since: a stop the engine would
    // pass over (a filtered-out hit, the step off a breakpoint, a pass count) is reported as
    // the break-in instead, since a target that is stopped that often may never see the
    // break-in byte while it runs.
    bool m_breakin_pending = false;
};

} // namespace kdcart::engine
