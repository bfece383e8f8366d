// Breakpoints and run control of the Debugger, WinDbg's model: every site is removed at each
// stop and written again on go; a breakpoint under the PC is stepped off with the trace flag
// first; hardware breakpoints go into every processor's KSPECIAL_REGISTERS and Continue2's Dr7.
#include "engine/Debugger.h"
#include "engine/InstructionInfo.h"
#include "engine/Unwinder.h"

#include <algorithm>
#include <set>
#include <spdlog/spdlog.h>

namespace kdcart::engine {

using namespace protocol;

namespace {
// Addresses in error messages; the CLI adds WinDbg's formatting where it prints them.
std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
    return buf;
}
} // namespace

// ---------------------------------------------------------------------------------------------
// address translation

Result<Translation> Debugger::translate(uint64_t va) {
    if (!is_canonical(va)) {
        return make_error(Errc::InvalidArgument, "non-canonical address " + hex(va));
    }
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (!m_cr3) {
        auto special = m_client->read_control_space(m_processor, AMD64_DEBUG_CONTROL_SPACE_KSPECIAL,
                                                    KSPECIAL_REGISTERS_WINDBG_SIZE);
        if (!special) {
            return tl::unexpected(special.error());
        }
        auto cr3 = kd_decode<uint64_t>(special->bytes, offsetof(KSPECIAL_REGISTERS, Cr3));
        if (!cr3) {
            return make_error(Errc::Unreadable, "control space (KSPECIAL_REGISTERS) not readable");
        }
        m_cr3 = *cr3;
    }
    return translate_va(va, *m_cr3, [this](uint64_t pa) -> std::optional<uint64_t> {
        auto r = m_client->read_physical(pa, 8);
        if (!r || r->bytes.size() != 8) {
            return std::nullopt;
        }
        return kd_decode<uint64_t>(r->bytes);
    });
}

Result<void> Debugger::page_in(uint64_t va) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    return m_client->page_in(va);
}

// ---------------------------------------------------------------------------------------------
// the breakpoint table

Result<Debugger::BreakpointResult> Debugger::set_breakpoint(const BreakpointRequest& req) {
    BreakpointResult result;
    Breakpoint bp;
    bp.kind = req.kind;
    bp.deferred = req.deferred;
    bp.expression = req.expression;
    bp.address = req.address;
    bp.access = req.access;
    bp.length = req.kind == BreakpointKind::Hardware ? req.length : 1;
    bp.one_shot = req.one_shot;
    bp.pass_count = bp.passes_left = std::max<uint64_t>(1, req.pass_count);
    bp.command = req.command;

    if (bp.address && !is_canonical(*bp.address)) {
        return make_error(Errc::InvalidArgument,
                          "not canonical");
    }
    if (bp.kind == BreakpointKind::Hardware) {
        if (!bp.address) {
            return make_error(Errc::InvalidArgument, "a hardware breakpoint needs an address");
        }
        if (bp.length != 1 && bp.length != 2 && bp.length != 4 && bp.length != 8) {
            return make_error(Errc::InvalidArgument,
                              "Data breakpoint length must be 1, 2, 4 or 8");
        }
        if (bp.access == HwAccess::Execute && bp.length != 1) {
            return make_error(Errc::InvalidArgument,
                              "Execution breakpoints (ba e) must have length 1");
        }
        if (*bp.address % bp.length != 0) {
            return make_error(Errc::InvalidArgument,
                              "Data breakpoint must be aligned (the address is not a "
                              "multiple of " +
                                  std::to_string(bp.length) + ")");
        }
    } else if (bp.address) {
        // Where is the page? Present: fine. Paged out: owed, the target arms it on page-in.
        // No mapping at all: nothing will ever execute there.
        auto t = translate(*bp.address);
        if (t) {
            if (t->state == PageState::Unmapped) {
                return make_error(Errc::Unreadable, "the address is not mapped");
            }
            if (t->state == PageState::NotPresent) {
                bp.state = LocationState::Owed;
            }
        } else {
            spdlog::debug("engine: cannot translate {:#x}: {}", *bp.address, t.error().message);
        }
        if (bp.state == LocationState::Owed && m_allow_bp_ba_convert &&
            m_breakpoints.free_slot()) {
            bp.kind = BreakpointKind::Hardware;
            bp.access = HwAccess::Execute;
            bp.state = LocationState::Resolved;
            result.converted_to_hardware = true;
        }
    } else {
        bp.state = LocationState::Unresolved;
    }

    Breakpoint* existing = nullptr;
    if (bp.address) {
        existing = m_breakpoints.find_at(*bp.address, bp.kind);
    } else if (bp.deferred) {
        existing = m_breakpoints.find_deferred(bp.expression);
    }
    if (existing) {
        const uint32_t id = existing->id;
        const int slot = existing->slot;
        *existing = bp;
        existing->id = id;
        existing->slot = slot;
        result.id = id;
        result.redefined = true;
        m_hw_dirty = existing->kind == BreakpointKind::Hardware;
        return result;
    }
    if (bp.kind == BreakpointKind::Hardware) {
        auto slot = m_breakpoints.free_slot();
        if (!slot) {
            return make_error(Errc::Unsupported,
                              "No free hardware breakpoint slot (DR0-DR3 are all in use)");
        }
        bp.slot = *slot;
        m_hw_dirty = true;
    }
    result.id = m_breakpoints.add(std::move(bp)).id;
    return result;
}

Result<void> Debugger::clear_breakpoint(uint32_t id) {
    auto* bp = m_breakpoints.find(id);
    if (!bp) {
        return make_error(Errc::NotFound, "Breakpoint " + std::to_string(id) + " does not exist");
    }
    if (bp->kind == BreakpointKind::Hardware) {
        m_hw_dirty = true;
    }
    m_breakpoints.remove(id);
    return {};
}

Result<void> Debugger::enable_breakpoint(uint32_t id, bool enable) {
    auto* bp = m_breakpoints.find(id);
    if (!bp) {
        return make_error(Errc::NotFound, "Breakpoint " + std::to_string(id) + " does not exist");
    }
    bp->enabled = enable;
    if (bp->kind == BreakpointKind::Hardware) {
        m_hw_dirty = true;
    }
    return {};
}

void Debugger::resolve_deferred() {
    if (!m_resolver) {
        return;
    }
    for (auto* bp : m_breakpoints.all()) {
        if (!bp->deferred) {
            continue;
        }
        auto addr = m_resolver(bp->expression);
        if (!addr) {
            bp->address.reset();
            bp->state = LocationState::Unresolved;
            continue;
        }
        bp->address = addr;
        bp->state = LocationState::Resolved;
        if (bp->kind == BreakpointKind::Software) {
            if (auto t = translate(*addr); t && t->state == PageState::NotPresent) {
                bp->state = LocationState::Owed;
            }
        }
    }
}

void Debugger::refresh_owed_states() {
    for (auto* bp : m_breakpoints.all()) {
        if (bp->state != LocationState::Owed || !bp->address) {
            continue;
        }
        if (auto t = translate(*bp->address); t && t->state == PageState::Present) {
            bp->state = LocationState::Resolved;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sites

Result<void> Debugger::insert_sites(std::optional<uint64_t> skip) {
    m_sites.clear();
    std::set<uint64_t> addresses;
    for (const auto* bp : m_breakpoints.all()) {
        if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
            bp->state != LocationState::Unresolved) {
            addresses.insert(*bp->address);
        }
    }
    addresses.insert(m_internal.begin(), m_internal.end());
    for (uint64_t a : addresses) {
        if (skip && *skip == a) {
            continue;
        }
        auto handle = m_client->write_breakpoint(a);
        if (!handle) {
            on_link_notice("Unable to insert breakpoint at " + hex(a) + ": " +
                           handle.error().message);
            continue;
        }
        m_sites.push_back({a, *handle});
    }
    return {};
}

void Debugger::remove_sites() {
    for (const auto& site : m_sites) {
        if (auto r = m_client->restore_breakpoint(site.handle); !r) {
            spdlog::debug("engine: RestoreBreakPoint {} failed: {}", site.handle,
                          r.error().message);
        }
    }
    m_sites.clear();
}

void Debugger::remove_all_breakpoints_from_target() {
    if (m_state == RunState::Stopped) {
        remove_sites();
    }
}

Result<void> Debugger::program_hardware(std::optional<uint64_t> skip_exec_at) {
    uint64_t dr7 = 0x400;
    uint64_t dr[4] = {0, 0, 0, 0};
    for (const auto* bp : m_breakpoints.all()) {
        if (bp->kind != BreakpointKind::Hardware || bp->slot < 0 || !bp->enabled ||
            !bp->address) {
            continue;
        }
        if (skip_exec_at && bp->access == HwAccess::Execute && *bp->address == *skip_exec_at) {
            continue;
        }
        const int i = bp->slot;
        dr[i] = *bp->address;
        dr7 |= 1ull << (2 * i);
        dr7 |= static_cast<uint64_t>(bp->access) << (16 + 4 * i);
        dr7 |= dr7_len_bits(bp->access == HwAccess::Execute ? 1 : bp->length) << (18 + 4 * i);
    }
    if (dr7 == m_programmed_dr7 && !m_hw_dirty) {
        return {};
    }
    for (uint16_t p = 0; p < m_stop.num_processors; ++p) {
        auto special = m_client->read_control_space(p, AMD64_DEBUG_CONTROL_SPACE_KSPECIAL,
                                                    KSPECIAL_REGISTERS_WINDBG_SIZE);
        if (!special) {
            return tl::unexpected(special.error());
        }
        auto bytes = special->bytes;
        if (bytes.size() < offsetof(KSPECIAL_REGISTERS, Gdtr)) {
            return make_error(Errc::Unreadable, "control space of processor " +
                                                    std::to_string(p) + " is short");
        }
        for (int i = 0; i < 4; ++i) {
            std::memcpy(bytes.data() + offsetof(KSPECIAL_REGISTERS, KernelDr0) + 8 * i, &dr[i], 8);
        }
        std::memcpy(bytes.data() + offsetof(KSPECIAL_REGISTERS, KernelDr7), &dr7, 8);
        auto w = m_client->write_control_space(p, AMD64_DEBUG_CONTROL_SPACE_KSPECIAL, bytes);
        if (!w) {
            return tl::unexpected(w.error());
        }
    }
    m_programmed_dr7 = dr7;
    m_hw_dirty = skip_exec_at.has_value(); // reprogram fully next time
    return {};
}

// ---------------------------------------------------------------------------------------------
// run control

uint64_t Debugger::continue_status_for_stop() const {
    if (m_stop.kind == StopKind::Exception && m_stop.first_chance) {
        return DBG_EXCEPTION_NOT_HANDLED; // let the OS handle it, as WinDbg's default does
    }
    return DBG_CONTINUE;
}

Result<void> Debugger::resume_with_breakpoints(bool trace, uint32_t status) {
    auto ctx = context();
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    // WinDbg's order when resuming: SetContext, then the debug registers through control
    // space, then Continue2.
    if (auto r = write_back_contexts(); !r) {
        return r;
    }
    const uint64_t pc = ctx->Rip;
    bool on_sw = std::find(m_internal.begin(), m_internal.end(), pc) != m_internal.end();
    bool on_hw_exec = false;
    for (const auto* bp : m_breakpoints.all()) {
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
    if ((on_sw || on_hw_exec) && !trace) {
        // Step off the breakpoint under the PC with it removed, then run with everything in.
        if (auto r = insert_sites(pc); !r) {
            return r;
        }
        if (auto r = program_hardware(pc); !r) {
            return r;
        }
        m_phase = Phase::SteppingOffBreakpoint;
        m_resume_status = status;
        return resume(status, true);
    }
    if (auto r = insert_sites(on_sw ? std::optional<uint64_t>(pc) : std::nullopt); !r) {
        return r;
    }
    if (auto r = program_hardware(on_hw_exec ? std::optional<uint64_t>(pc) : std::nullopt); !r) {
        return r;
    }
    m_phase = Phase::None;
    return resume(status, trace);
}

// The int3 of a break-in or DbgBreakPoint is not stepped past by the target: move Rip over it
// or the target traps again at once. Not for our own breakpoints (their byte is restored).
static bool is_own_breakpoint(const BreakpointTable& t, uint64_t pc) {
    for (const auto* bp : t.all()) {
        if (bp->kind == BreakpointKind::Software && bp->address && *bp->address == pc) {
            return true;
        }
    }
    return false;
}

Result<void> Debugger::go() {
    return go_impl(std::nullopt);
}

Result<void> Debugger::go_until(uint64_t address) {
    if (!is_canonical(address)) {
        return make_error(Errc::InvalidArgument, "Invalid address " + hex(address));
    }
    return go_impl(address);
}

Result<void> Debugger::go_impl(std::optional<uint64_t> until) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    m_internal.clear();
    if (until) {
        m_internal.push_back(*until);
    }
    m_step_out_rsp.reset();
    m_stepping = false;
    const uint32_t status = static_cast<uint32_t>(continue_status_for_stop());
    if ((m_stop.kind == StopKind::BreakIn || m_stop.kind == StopKind::Breakpoint) &&
        m_stop.exception_code == STATUS_BREAKPOINT && !m_stop.breakpoint_id &&
        !is_own_breakpoint(m_breakpoints, m_stop.pc)) {
        auto ctx = context();
        if (!ctx) {
            return tl::unexpected(ctx.error());
        }
        if (ctx->Rip == m_stop.pc) {
            auto mem = read_virtual(ctx->Rip, 1);
            if (mem && mem->all_valid() && mem->bytes[0] == 0xCC) {
                CONTEXT c = *ctx;
                c.Rip += 1;
                if (auto r = set_context(c); !r) {
                    return r;
                }
            }
        }
    }
    return resume_with_breakpoints(false, status);
}

std::optional<uint64_t> Debugger::image_base_of(uint64_t address) {
    if (!m_modules && !modules()) {
        return std::nullopt;
    }
    for (const auto& m : *m_modules) {
        if (address >= m.base && address < m.end()) {
            return m.base;
        }
    }
    return std::nullopt;
}

Result<void> Debugger::step(StepKind kind) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    m_internal.clear();
    m_step_out_rsp.reset();
    m_stepping = false;
    const uint32_t status = static_cast<uint32_t>(continue_status_for_stop());
    auto ctx = context();
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    CONTEXT c = *ctx;
    // Stopped on a hard-coded int3: step past it first, as `g` would.
    if (m_stop.exception_code == STATUS_BREAKPOINT && !m_stop.breakpoint_id &&
        c.Rip == m_stop.pc && !is_own_breakpoint(m_breakpoints, c.Rip)) {
        auto mem = read_virtual(c.Rip, 1);
        if (mem && mem->all_valid() && mem->bytes[0] == 0xCC) {
            c.Rip += 1;
            if (auto r = set_context(c); !r) {
                return r;
            }
        }
    }
    switch (kind) {
    case StepKind::Into:
        m_stepping = true;
        return resume_with_breakpoints(true, status);
    case StepKind::Over: {
        auto mem = read_virtual(c.Rip, 16);
        if (!mem) {
            return tl::unexpected(mem.error());
        }
        auto n = mem->readable_prefix();
        auto info = decode_instruction(std::span<const uint8_t>(mem->bytes.data(), n));
        if (info && info->is_call) {
            m_internal.push_back(c.Rip + info->length);
            return resume_with_breakpoints(false, status);
        }
        m_stepping = true;
        return resume_with_breakpoints(true, status);
    }
    case StepKind::Out: {
        UnwindMemory um;
        um.read = [this](uint64_t a, uint32_t size) -> std::vector<uint8_t> {
            auto blk = read_virtual(a, size);
            if (!blk) {
                return {};
            }
            blk->bytes.resize(blk->readable_prefix());
            return blk->bytes;
        };
        auto frame = unwind_frame(c, image_base_of(c.Rip).value_or(0), um);
        if (!frame) {
            return make_error(frame.error().code,
                              "Cannot find the caller's frame: " + frame.error().message);
        }
        m_internal.push_back(frame->return_address);
        m_step_out_rsp = frame->caller_rsp;
        return resume_with_breakpoints(false, status);
    }
    }
    return {};
}

Result<std::vector<StackFrame>> Debugger::stack_trace(size_t max_frames) {
    auto ctx = context();
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    UnwindMemory um;
    um.read = [this](uint64_t a, uint32_t size) -> std::vector<uint8_t> {
        auto blk = read_virtual(a, size);
        if (!blk) {
            return {};
        }
        blk->bytes.resize(blk->readable_prefix());
        return blk->bytes;
    };
    std::vector<StackFrame> frames;
    CONTEXT c = *ctx;
    while (frames.size() < max_frames) {
        auto base = image_base_of(c.Rip);
        auto f = unwind_frame(c, base.value_or(0), um);
        StackFrame frame;
        frame.child_sp = c.Rsp;
        frame.pc = c.Rip;
        if (!f) {
            frames.push_back(frame);
            break;
        }
        frame.return_address = f->return_address;
        frames.push_back(frame);
        // The walk ends at a return address outside every module, or when the stack does not
        // move up (a broken frame).
        if (f->return_address == 0 || !image_base_of(f->return_address) ||
            f->caller_rsp <= c.Rsp) {
            break;
        }
        c.Rip = f->return_address;
        c.Rsp = f->caller_rsp;
    }
    return frames;
}

Result<std::optional<StopEvent>> Debugger::filter_stop(StopEvent ev) {
    using R = std::optional<StopEvent>;
    if (ev.kind == StopKind::LoadSymbols) {
        // A driver loaded or unloaded: learn the module list again and resolve bu's.
        m_modules.reset();
        m_exports.erase(ev.image_base);
        resolve_deferred();
        if (!m_break_on_load) {
            m_phase = Phase::None;
            if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
                return tl::unexpected(r.error());
            }
            return R{};
        }
        return R{ev};
    }
    refresh_owed_states();

    if (ev.kind == StopKind::Exception) {
        const auto policy = exception_policy(ev.exception_code);
        const bool pass = policy == ExceptionPolicy::Ignore || policy == ExceptionPolicy::Output ||
                          (policy == ExceptionPolicy::SecondChance && ev.first_chance);
        if (pass) {
            if (policy != ExceptionPolicy::Ignore && m_delegate) {
                m_delegate->on_exception_passed(ev);
            }
            m_internal.clear();
            m_step_out_rsp.reset();
            m_stepping = false;
            m_phase = Phase::None;
            if (auto r = resume_with_breakpoints(false, DBG_EXCEPTION_NOT_HANDLED); !r) {
                return tl::unexpected(r.error());
            }
            return R{};
        }
    }

    if (m_phase == Phase::SteppingOffBreakpoint) {
        m_phase = Phase::None;
        const bool plain_step = ev.exception_code == STATUS_SINGLE_STEP &&
                                (ev.report.Dr6 & 0xF) == 0;
        if (plain_step) {
            // Off the breakpoint. If the next instruction holds a breakpoint too, that one is
            // hit now (its int3 would fire first thing); otherwise run on with all sites in.
            bool next_has_bp = false;
            for (const auto* bp : m_breakpoints.all()) {
                if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
                    *bp->address == ev.pc && bp->state != LocationState::Unresolved) {
                    next_has_bp = true;
                }
            }
            if (std::find(m_internal.begin(), m_internal.end(), ev.pc) != m_internal.end()) {
                next_has_bp = true;
            }
            if (!next_has_bp) {
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
            if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
                return tl::unexpected(r.error());
            }
            return R{};
        }
        bp->passes_left = bp->pass_count;
        ev.breakpoint_id = bp->id;
        if (bp->one_shot) {
            (void)clear_breakpoint(bp->id);
        }
        m_internal.clear();
        m_step_out_rsp.reset();
        m_stepping = false;
        return R{ev};
    };

    if (ev.exception_code == STATUS_BREAKPOINT) {
        if (std::find(m_internal.begin(), m_internal.end(), ev.pc) != m_internal.end()) {
            if (m_step_out_rsp) {
                auto ctx = context();
                if (ctx && ctx->Rsp < *m_step_out_rsp) {
                    // A deeper (recursive) call returned here: not our frame yet.
                    if (auto r = resume_with_breakpoints(false, DBG_CONTINUE); !r) {
                        return tl::unexpected(r.error());
                    }
                    return R{};
                }
            }
            // A user breakpoint at the same place is reported as hit too.
            for (auto* bp : m_breakpoints.all()) {
                if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
                    *bp->address == ev.pc) {
                    return user_bp_hit(bp);
                }
            }
            m_internal.clear();
            m_step_out_rsp.reset();
            ev.step_complete = true;
            return R{ev};
        }
        for (auto* bp : m_breakpoints.all()) {
            if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
                *bp->address == ev.pc) {
                bp->state = LocationState::Resolved; // it fired: the owed one was armed
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
                for (auto* bp : m_breakpoints.all()) {
                    if (bp->kind == BreakpointKind::Hardware && bp->slot == slot && bp->enabled) {
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
    m_internal.clear();
    m_step_out_rsp.reset();
    m_stepping = false;
    return R{ev};
}

} // namespace kdcart::engine
