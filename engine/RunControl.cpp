#include "engine/RunControl.h"
#include "engine/HexText.h"

#include "engine/InstructionInfo.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <spdlog/spdlog.h>

namespace kdcart::engine {

using namespace protocol;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// attach and stops

Result<StopEvent> RunControl::attach(const AttachOptions& options) {
    auto& session = m.target.session();
    const auto start = Clock::now();
    auto timed_out = [&] {
        return options.connect_timeout && Clock::now() - start >= *options.connect_timeout;
    };
    bool said_waiting = false;
    bool breakin_sent = false;
    auto last_breakin = Clock::time_point{};
    std::optional<Clock::time_point> leave_by;
    for (;;) {
        if (session.has_state_change()) {
            break;
        }
        if (options.terminated && options.terminated()) {
            if (!breakin_sent) {
                return make_error(
                    Errc::Interrupted,
                    "terminated before the target stopped: nothing on it was changed");
            }
            // The break-in is on its way: its stop lets the caller resume the target cleanly.
            if (!leave_by) {
                leave_by = Clock::now() + std::chrono::seconds(10);
            } else if (Clock::now() >= *leave_by) {
                return make_error(Errc::Interrupted,
                                  "terminated; the target did not answer the break-in sent to it "
                                  "(if it stops later, it waits for a debugger)");
            }
        }
        if (options.interrupted && options.interrupted()) {
            if (breakin_sent) {
                return make_error(Errc::Interrupted,
                                  "gave up waiting for the target (the break-in sent to it may "
                                  "still stop it; it then waits for a debugger)");
            }
            m_breakin_requested = true;
        }
        const bool want_break = options.break_in || m_breakin_requested;
        if (want_break && Clock::now() - last_breakin > std::chrono::seconds(2)) {
            if (auto r = session.send_breakin(); !r) {
                return tl::unexpected(r.error());
            }
            m_breakin_requested = true;
            breakin_sent = true;
            last_breakin = Clock::now();
        }
        if (!session.synchronized()) {
            auto r = session.reset(Millis(1000));
            if (!r && r.error().code != Errc::Timeout) {
                return tl::unexpected(r.error());
            }
            if (!r && !said_waiting && !session.has_state_change()) {
                said_waiting = true;
                m.target.notice("Waiting to reconnect...");
            }
        } else {
            auto sc = session.wait_state_change(Millis(200));
            if (sc) {
                auto ev = first_stop(*sc);
                if (!ev || ev->kind != StopKind::LoadSymbols || m_break_on_load) {
                    return ev;
                }
                // A module load while nobody asked to stop: take it and keep waiting.
                if (auto r = filter_stop(*ev); !r) {
                    return tl::unexpected(r.error());
                }
                continue;
            }
            if (sc.error().code != Errc::Timeout) {
                return tl::unexpected(sc.error());
            }
        }
        if (timed_out()) {
            return make_error(Errc::Timeout,
                              "the target did not answer on " + session.describe_link());
        }
    }
    auto sc = session.wait_state_change(Millis(0));
    if (!sc) {
        return tl::unexpected(sc.error());
    }
    auto ev = first_stop(*sc);
    if (ev && ev->kind == StopKind::LoadSymbols && !m_break_on_load) {
        if (auto r = filter_stop(*ev); !r) {
            return tl::unexpected(r.error());
        }
        return attach(options); // the target runs again: keep waiting for a real stop
    }
    return ev;
}

Result<StopEvent> RunControl::first_stop(const StateChange& sc) {
    auto ev = enter_stop(sc);
    if (ev && !m_swept) {
        // As WinDbg does on connect: clear breakpoints an earlier session may have left. Once
        // per session: the stops that follow while attaching (a module load taken silently, a
        // stop re-sent after a RESET) find only our own breakpoints, which the table tracks.
        m_swept = true;
        for (uint32_t handle = 1; handle <= 32; ++handle) {
            (void)m.target.client().restore_breakpoint(handle);
        }
    }
    return ev;
}

StopEvent RunControl::make_stop(const StateChange& sc) {
    const auto& c = sc.change;
    StopEvent ev;
    ev.processor = c.Processor;
    ev.num_processors = c.NumberProcessors ? c.NumberProcessors : 1;
    ev.thread = c.Thread;
    ev.pc = c.ProgramCounter;
    ev.report = c.ControlReport;
    switch (c.NewState) {
    case DbgKdExceptionStateChange: {
        const auto& rec = c.u.Exception.ExceptionRecord;
        ev.exception_code = rec.ExceptionCode;
        ev.exception_address = rec.ExceptionAddress;
        ev.first_chance = c.u.Exception.FirstChance != 0;
        for (uint32_t i = 0; i < std::min<uint32_t>(rec.NumberParameters, 15); ++i) {
            ev.exception_params.push_back(rec.ExceptionInformation[i]);
        }
        const auto& info = m.info.known();
        if (rec.ExceptionCode == STATUS_BREAKPOINT) {
            const bool at_break_site =
                info && info->kddata_found && ev.pc == info->kddata.BreakpointWithStatus;
            ev.kind = (m_breakin_requested || at_break_site) ? StopKind::BreakIn
                                                             : StopKind::Breakpoint;
            // (KiBugcheckData is past the KDDEBUGGER_DATA64 fields the first stop reads.)
            std::optional<TargetInfo> full;
            if (at_break_site && !m_breakin_requested) {
                if (auto r = m.info.get()) {
                    full = *r;
                }
            }
            if (full && full->kddata.KiBugcheckData != 0) {
                // DbgBreakPointWithStatus from KeBugCheckEx: KiBugCheckData holds the code
                // (zero at any other break). One read, only at an unrequested break.
                if (auto b = m.memory.read_virtual(full->kddata.KiBugcheckData, 40);
                    b && b->all_valid()) {
                    uint64_t v[5];
                    std::memcpy(v, b->bytes.data(), sizeof v);
                    if (static_cast<uint32_t>(v[0]) != 0) {
                        ev.kind = StopKind::Breakpoint;
                        ev.bugcheck_code = static_cast<uint32_t>(v[0]);
                        std::copy(v + 1, v + 5, ev.bugcheck_params);
                    }
                }
            }
        } else if (rec.ExceptionCode == STATUS_SINGLE_STEP) {
            ev.kind = StopKind::SingleStep;
        } else {
            ev.kind = StopKind::Exception;
        }
        break;
    }
    case DbgKdLoadSymbolsStateChange: {
        ev.kind = StopKind::LoadSymbols;
        ev.unload = c.u.LoadSymbols.UnloadSymbols != 0;
        ev.image_base = c.u.LoadSymbols.BaseOfDll;
        ev.image_size = c.u.LoadSymbols.SizeOfImage;
        size_t n = std::min<size_t>(c.u.LoadSymbols.PathNameLength, sc.extra.size());
        ev.image_path.assign(sc.extra.begin(), sc.extra.begin() + static_cast<long>(n));
        while (!ev.image_path.empty() && ev.image_path.back() == '\0') {
            ev.image_path.pop_back();
        }
        break;
    }
    case DbgKdCommandStringStateChange:
        ev.kind = StopKind::CommandString;
        break;
    default:
        ev.kind = StopKind::Other;
        break;
    }
    return ev;
}

void RunControl::forget_stop_state(bool running) {
    m.memory.invalidate();
    m.memory.set_running(running);
    m.contexts.forget();
    m.target.forget_stop_state();
}

Result<StopEvent> RunControl::enter_stop(const StateChange& sc) {
    forget_stop_state(false);
    m_state = RunState::Stopped;
    // The code bytes at the PC came with the stop (KD's own breakpoints already taken out, as
    // ours are while stopped): the code line and `p`'s look at the instruction read no memory.
    const auto& report = sc.change.ControlReport;
    uint8_t stream[sizeof report.InstructionStream];
    std::memcpy(stream, report.InstructionStream, sizeof stream);
    const size_t count = std::min<size_t>(report.InstructionCount, sizeof stream);
    m.memory.seed_virtual(sc.change.ProgramCounter, std::span<const uint8_t>(stream, count));
    m.target.set_stop_processor(sc.change.Processor, sc.change.ProcessorLevel,
                                sc.change.NumberProcessors);
    // A target that started over may be a different boot: its code bytes, breakpoint handles
    // and debug registers are fresh. Forget the sites without restoring them, learn the
    // target again, and let the next go write everything back.
    const bool was_reset = m.target.take_reset();
    if (was_reset) {
        m.breakpoints.forget_target_state();
        m.info.forget();
        m.modules.invalidate();
        m.symbols.forget_all();
        m.target.forget_target();
    }
    if (!m.info.known()) {
        if (auto r = m.info.basic(); !r) {
            m.target.notice("could not read the target's version: " + r.error().message);
        }
    }
    m_stop = make_stop(sc);
    m_breakin_requested = false;
    // WinDbg's model: no breakpoint stays in the target while it is stopped.
    m.breakpoints.remove_sites();
    if (was_reset) {
        m.breakpoints.resolve_deferred();
    }
    return m_stop;
}

Result<void> RunControl::resume(uint32_t status, bool trace) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    if (auto r = m.contexts.write_back(); !r) {
        return r;
    }
    AMD64_DBGKD_CONTROL_SET cs{};
    cs.TraceFlag = trace ? 1 : 0;
    cs.Dr7 = m.breakpoints.programmed_dr7() | 0x400; // WinDbg always keeps bit 10 set
    cs.CurrentSymbolStart = 1;
    cs.CurrentSymbolEnd = 0;
    // The control set is 4-byte packed: copy fields out before binding references to them.
    const uint64_t dr7 = cs.Dr7;
    const uint32_t trace_flag = cs.TraceFlag;
    spdlog::debug("engine: Continue2 status {:#x} trace {} dr7 {:#x}", status, trace_flag, dr7);
    if (auto r = m.target.client().continue2(status, cs); !r) {
        return r;
    }
    forget_stop_state(true);
    m_state = RunState::Running;
    return {};
}

Result<StopEvent> RunControl::wait_for_stop(Millis timeout) {
    if (m_state == RunState::Stopped) {
        return m_stop;
    }
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const auto now = Clock::now();
        const auto left = now >= deadline ? Millis(0)
                                          : std::chrono::duration_cast<Millis>(deadline - now);
        auto sc = m.target.session().wait_state_change(left);
        if (!sc) {
            return tl::unexpected(sc.error());
        }
        auto ev = enter_stop(*sc);
        if (!ev) {
            return ev;
        }
        auto decided = filter_stop(*ev);
        if (!decided) {
            return tl::unexpected(decided.error());
        }
        if (*decided) {
            m_stop = **decided;
            m_breakin_pending = false;
            return m_stop;
        }
        // Handled inside the engine (a step off a breakpoint, a pass count, a module load):
        // the target is running again.
    }
}

Result<void> RunControl::break_in() {
    m_breakin_requested = true;
    m_breakin_pending = true;
    return m.target.session().send_breakin();
}

Result<StopEvent> RunControl::switch_processor(uint16_t cpu, Millis timeout) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (cpu >= m_stop.num_processors) {
        return make_error(Errc::InvalidArgument,
                          "Processor " + std::to_string(cpu) + " does not exist (" +
                              std::to_string(m_stop.num_processors) + " processors)");
    }
    if (cpu == m.target.current_processor()) {
        return m_stop;
    }
    if (auto r = m.contexts.write_back(); !r) {
        return tl::unexpected(r.error());
    }
    const StopEvent previous = m_stop;
    if (auto r = m.target.client().switch_processor(cpu); !r) {
        return tl::unexpected(r.error());
    }
    m_state = RunState::Running;
    auto sc = m.target.session().wait_state_change(timeout);
    if (!sc) {
        return tl::unexpected(sc.error());
    }
    auto ev = enter_stop(*sc);
    if (ev && ev->kind == StopKind::Breakpoint && previous.kind == StopKind::BreakIn) {
        m_stop.kind = StopKind::BreakIn; // the switched-to CPU reports the same break-in
    }
    return ev;
}

Result<void> RunControl::reboot() {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    if (auto r = m.target.client().reboot(); !r) {
        return r;
    }
    m.breakpoints.forget_target_state(); // the reboot restored every code byte
    forget_stop_state(true);
    m.info.forget();
    m.modules.invalidate();
    m.symbols.forget_all();
    m.target.forget_target();
    m_state = RunState::Running;
    return {};
}

Result<void> RunControl::crash() {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    if (auto r = m.contexts.write_back(); !r) {
        return r;
    }
    if (auto r = m.target.client().cause_bugcheck(); !r) {
        return r;
    }
    end_step_state();
    m_phase = Phase::None;
    forget_stop_state(true);
    m_state = RunState::Running;
    return {};
}

Result<void> RunControl::detach() {
    if (m_state == RunState::Stopped) {
        // Leave nothing behind: the target runs on clean (sites are already out while stopped;
        // hardware breakpoints are cleared here).
        std::vector<uint32_t> ids;
        for (const auto* bp : m.breakpoints.table().all()) {
            ids.push_back(bp->id);
        }
        for (uint32_t id : ids) {
            (void)m.breakpoints.clear(id);
        }
        m.breakpoints.temporaries().clear();
        if (auto r = go(); !r) {
            return r;
        }
    }
    m_state = RunState::Detached;
    return {};
}

void RunControl::remove_all_breakpoints_from_target() {
    if (m_state == RunState::Stopped) {
        m.breakpoints.remove_sites();
    }
}

// ---------------------------------------------------------------------------------------------
// go and step

uint64_t RunControl::continue_status_for_stop() const {
    if (m_stop.kind == StopKind::Exception && m_stop.first_chance) {
        return DBG_EXCEPTION_NOT_HANDLED; // let the OS handle it, as WinDbg's default does
    }
    return DBG_CONTINUE;
}

// The current processor's pc: its registers when known here (the user may have set rip), else
// the stop's ProgramCounter. A quiet step (wt, pc, tc) then costs no register read.
Result<uint64_t> RunControl::current_pc() {
    const uint16_t cpu = m.target.current_processor();
    if (auto rip = m.contexts.known_rip(cpu)) {
        return *rip;
    }
    if (m_stop.processor == cpu && m_stop.pc != 0) {
        return m_stop.pc;
    }
    auto ctx = m.contexts.get(cpu, ContextPart::Integer);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    return ctx->Rip;
}

Result<void> RunControl::resume_with_breakpoints(bool trace, uint32_t status) {
    auto current = current_pc();
    if (!current) {
        return tl::unexpected(current.error());
    }
    // WinDbg's order when resuming: SetContext, then the debug registers through control
    // space, then Continue2.
    if (auto r = m.contexts.write_back(); !r) {
        return r;
    }
    const uint64_t pc = *current;
    bool on_sw = m.breakpoints.is_temporary(pc);
    bool on_hw_exec = false;
    for (const auto* bp : m.breakpoints.table().all()) {
        if (!bp->enabled || !bp->address || *bp->address != pc) {
            continue;
        }
        if (bp->kind == BreakpointKind::Software && bp->state != LocationState::Unresolved) {
            on_sw = true;
        }
        if (bp->kind == BreakpointKind::Hardware && bp->access == HwAccess::Execute) {
            on_hw_exec = true;
        }
    }
    const uint32_t cpus = m_stop.num_processors;
    if ((on_sw || on_hw_exec) && !trace) {
        // Step off the breakpoint under the PC with it removed, then run with everything in.
        if (auto r = m.breakpoints.insert_sites(pc); !r) {
            return r;
        }
        if (auto r = m.breakpoints.program_hardware(pc, cpus); !r) {
            return r;
        }
        m_phase = Phase::SteppingOffBreakpoint;
        m_resume_status = status;
        return resume(status, true);
    }
    if (auto r = m.breakpoints.insert_sites(on_sw ? std::optional<uint64_t>(pc) : std::nullopt);
        !r) {
        return r;
    }
    if (auto r = m.breakpoints.program_hardware(
            on_hw_exec ? std::optional<uint64_t>(pc) : std::nullopt, cpus);
        !r) {
        return r;
    }
    m_phase = Phase::None;
    return resume(status, trace);
}

// The int3 of a break-in or DbgBreakPoint is not stepped past by the target: move Rip over it
// or the target traps again at once. Not for our own breakpoints (their byte is restored).
bool RunControl::is_own_breakpoint(uint64_t pc) {
    for (const auto* bp : m.breakpoints.table().all()) {
        if (bp->kind == BreakpointKind::Software && bp->address && *bp->address == pc) {
            return true;
        }
    }
    return false;
}

Result<void> RunControl::skip_hardcoded_break(const CONTEXT& ctx) {
    auto mem = m.memory.read_virtual(ctx.Rip, 1);
    if (mem && mem->all_valid() && mem->bytes[0] == 0xCC) {
        CONTEXT c = ctx;
        c.Rip += 1;
        m.contexts.set(m.target.current_processor(), c);
    }
    return {};
}

void RunControl::end_step_state() {
    m.breakpoints.temporaries().clear();
    m_step_out_rsp.reset();
    m_stepping = false;
}

Result<void> RunControl::go() {
    return go_impl(std::nullopt);
}

Result<void> RunControl::go_until(uint64_t address) {
    if (!is_canonical(address)) {
        return make_error(Errc::InvalidArgument, "Invalid address " + hex_0x(address));
    }
    return go_impl(address);
}

Result<void> RunControl::go_impl(std::optional<uint64_t> until) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    end_step_state();
    m_breakin_pending = false;
    if (until) {
        m.breakpoints.temporaries().push_back(*until);
    }
    const uint32_t status = static_cast<uint32_t>(continue_status_for_stop());
    if ((m_stop.kind == StopKind::BreakIn || m_stop.kind == StopKind::Breakpoint) &&
        m_stop.exception_code == STATUS_BREAKPOINT && !m_stop.breakpoint_id &&
        !is_own_breakpoint(m_stop.pc)) {
        auto ctx = m.contexts.get(m.target.current_processor(), ContextPart::Integer);
        if (!ctx) {
            return tl::unexpected(ctx.error());
        }
        if (ctx->Rip == m_stop.pc) {
            if (auto r = skip_hardcoded_break(*ctx); !r) {
                return r;
            }
        }
    }
    return resume_with_breakpoints(false, status);
}

Result<void> RunControl::step(StepKind kind) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    end_step_state();
    m_breakin_pending = false;
    const uint32_t status = static_cast<uint32_t>(continue_status_for_stop());
    auto pc = current_pc();
    if (!pc) {
        return tl::unexpected(pc.error());
    }
    // Stopped on a hard-coded int3: step past it first, as `g` would.
    if (m_stop.exception_code == STATUS_BREAKPOINT && !m_stop.breakpoint_id &&
        *pc == m_stop.pc && !is_own_breakpoint(*pc)) {
        auto ctx = m.contexts.get(m.target.current_processor(), ContextPart::Integer);
        if (!ctx) {
            return tl::unexpected(ctx.error());
        }
        if (auto r = skip_hardcoded_break(*ctx); !r) {
            return r;
        }
        pc = current_pc();
        if (!pc) {
            return tl::unexpected(pc.error());
        }
    }
    switch (kind) {
    case StepKind::Into:
        m_stepping = true;
        return resume_with_breakpoints(true, status);
    case StepKind::Over: {
        auto mem = m.memory.read_virtual(*pc, 16);
        if (!mem) {
            return tl::unexpected(mem.error());
        }
        auto n = mem->readable_prefix();
        auto info = decode_instruction(std::span<const uint8_t>(mem->bytes.data(), n));
        if (info && info->is_call) {
            m.breakpoints.temporaries().push_back(*pc + info->length);
            return resume_with_breakpoints(false, status);
        }
        m_stepping = true;
        return resume_with_breakpoints(true, status);
    }
    case StepKind::Out: {
        if (!m.modules.known()) {
            auto head = m.info.get();
            if (head) {
                (void)m.modules.list(head->version.PsLoadedModuleList);
            }
        }
        auto ctx = m.contexts.get(m.target.current_processor(), ContextPart::Integer);
        if (!ctx) {
            return tl::unexpected(ctx.error());
        }
        auto frame = m.stack.unwind_one(*ctx);
        if (!frame) {
            return make_error(frame.error().code,
                              "Cannot find the caller's frame: " + frame.error().message);
        }
        m.breakpoints.temporaries().push_back(frame->return_address);
        m_step_out_rsp = frame->caller_rsp;
        return resume_with_breakpoints(false, status);
    }
    }
    return {};
}

Result<std::optional<StopEvent>> RunControl::filter_stop(StopEvent ev) {
    using R = std::optional<StopEvent>;
    if (ev.kind == StopKind::LoadSymbols) {
        // A driver loaded or unloaded: learn the module list again and resolve bu's.
        m.modules.invalidate();
        m.symbols.forget(ev.image_base);
        m.breakpoints.resolve_deferred();
        if (!m_break_on_load) {
            m_phase = Phase::None;
            if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
                return tl::unexpected(r.error());
            }
            return R{};
        }
        return R{ev};
    }
    m.breakpoints.refresh_owed_states();

    if (ev.kind == StopKind::Exception) {
        const auto policy = exception_policy(ev.exception_code);
        const bool pass = policy == ExceptionPolicy::Ignore || policy == ExceptionPolicy::Output ||
                          (policy == ExceptionPolicy::SecondChance && ev.first_chance);
        if (pass) {
            if (policy != ExceptionPolicy::Ignore && m.target.delegate()) {
                m.target.delegate()->on_exception_passed(ev);
            }
            end_step_state();
            m_phase = Phase::None;
            if (auto r = resume_with_breakpoints(false, DBG_EXCEPTION_NOT_HANDLED); !r) {
                return tl::unexpected(r.error());
            }
            return R{};
        }
    }

    // The user's break-in, delivered at a stop the engine would otherwise pass over.
    auto as_break_in = [&]() {
        ev.kind = StopKind::BreakIn;
        ev.breakpoint_id.reset();
        end_step_state();
        return ev;
    };

    if (m_phase == Phase::SteppingOffBreakpoint) {
        m_phase = Phase::None;
        const bool plain_step =
            ev.exception_code == STATUS_SINGLE_STEP && (ev.report.Dr6 & 0xF) == 0;
        if (plain_step) {
            // Off the breakpoint. If the next instruction holds a breakpoint too, that one is
            // hit now (its int3 would fire first thing); otherwise run on with all sites in.
            const bool next_has_bp =
                m.breakpoints.software_at(ev.pc) != nullptr || m.breakpoints.is_temporary(ev.pc);
            if (!next_has_bp) {
                if (m_breakin_pending) {
                    return R{as_break_in()};
                }
                if (auto r = resume_with_breakpoints(false, m_resume_status); !r) {
                    return tl::unexpected(r.error());
                }
                return R{};
            }
            ev.exception_code = STATUS_BREAKPOINT;
            ev.kind = StopKind::Breakpoint;
        }
    }

    auto user_bp_hit = [&](Breakpoint* bp) -> Result<R> {
        bp->hits++;
        if (bp->passes_left > 1) {
            bp->passes_left--;
            if (m_breakin_pending) {
                return R{as_break_in()};
            }
            if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
                return tl::unexpected(r.error());
            }
            return R{};
        }
        bp->passes_left = bp->pass_count;
        ev.breakpoint_id = bp->id;
        if (bp->one_shot) {
            (void)m.breakpoints.clear(bp->id);
        }
        end_step_state();
        return R{ev};
    };

    // bp /p /t: a hit in another thread or process is not the breakpoint's (its count does not
    // move). When the current thread or process cannot be told, the stop is kept and said why.
    auto filtered_out = [&](const Breakpoint* bp) -> bool {
        if (!bp->match_thread && !bp->match_process) {
            return false;
        }
        auto ok = m_matcher ? m_matcher(*bp, ev)
                            : Result<bool>(make_error(Errc::Unsupported, "no thread information"));
        if (!ok) {
            m.target.notice("Breakpoint " + std::to_string(bp->id) +
                            ": cannot tell the current thread or process (" + ok.error().message +
                            "); stopping");
            return false;
        }
        return !*ok;
    };
    // Runs on past a filtered-out hit (stepping off it as off any own breakpoint), unless the
    // user asked for a break-in meanwhile: then this stop is that break-in.
    auto pass_filtered = [&]() -> Result<R> {
        if (ev.kind == StopKind::BreakIn || m_breakin_pending) {
            return R{as_break_in()};
        }
        if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
            return tl::unexpected(r.error());
        }
        return R{};
    };

    if (ev.exception_code == STATUS_BREAKPOINT) {
        if (m.breakpoints.is_temporary(ev.pc)) {
            if (m_step_out_rsp) {
                auto ctx = m.contexts.get(m.target.current_processor(), ContextPart::Integer);
                if (ctx && ctx->Rsp < *m_step_out_rsp) {
                    // A deeper (recursive) call returned here: not our frame yet.
                    if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
                        return tl::unexpected(r.error());
                    }
                    return R{};
                }
            }
            // A user breakpoint at the same place is reported as hit too.
            for (auto* bp : m.breakpoints.table().all()) {
                if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
                    *bp->address == ev.pc && !filtered_out(bp)) {
                    return user_bp_hit(bp);
                }
            }
            m.breakpoints.temporaries().clear();
            m_step_out_rsp.reset();
            ev.step_complete = true;
            return R{ev};
        }
        for (auto* bp : m.breakpoints.table().all()) {
            if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
                *bp->address == ev.pc) {
                bp->state = LocationState::Resolved; // it fired: the owed one was armed
                if (filtered_out(bp)) {
                    return pass_filtered();
                }
                return user_bp_hit(bp);
            }
        }
    } else if (ev.exception_code == STATUS_SINGLE_STEP) {
        const uint64_t dr6 = ev.report.Dr6;
        if ((dr6 & 0xF) != 0) {
            for (int slot = 0; slot < 4; ++slot) {
                if ((dr6 & (1ull << slot)) == 0) {
                    continue;
                }
                for (auto* bp : m.breakpoints.table().all()) {
                    if (bp->kind == BreakpointKind::Hardware && bp->slot == slot && bp->enabled) {
                        if (filtered_out(bp)) {
                            return pass_filtered();
                        }
                        return user_bp_hit(bp);
                    }
                }
            }
        }
        if (m_stepping) {
            m_stepping = false;
            ev.step_complete = true;
            return R{ev};
        }
    }
    end_step_state();
    return R{ev};
}

} // namespace kdcart::engine
