#include "engine/BreakpointFilter.h"
#include "engine/HexText.h"

#include "engine/Breakpoints.h"
#include "engine/Debugger.h"
#include "engine/KernelTypes.h"
#include "engine/ThreadState.h"

#include <cstdio>

namespace kdcart::engine {

Result<uint64_t> BreakpointFilter::current_thread(uint16_t cpu, const StopEvent& stop) {
    if (cpu == stop.processor && stop.thread != 0) {
        return stop.thread;
    }
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return tl::unexpected(kt.error());
    }
    ThreadState threads(m_dbg, *kt);
    auto t = threads.current_thread(cpu);
    if (!t) {
        return make_error(t.error().code, "cannot read KPRCB.CurrentThread of processor " +
                                              std::to_string(cpu) + ": " + t.error().message);
    }
    if (*t == 0) {
        return make_error(Errc::Unreadable,
                          "KPRCB.CurrentThread of processor " + std::to_string(cpu) + " is null");
    }
    return *t;
}

Result<uint64_t> BreakpointFilter::process_of(uint64_t thread) {
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return tl::unexpected(kt.error());
    }
    auto p = ThreadState(m_dbg, *kt).process_of(thread);
    if (!p) {
        return make_error(p.error().code, "cannot read the process of thread " + hex(thread) +
                                              " (KTHREAD.ApcState.Process): " + p.error().message);
    }
    if (*p == 0) {
        return make_error(Errc::Unreadable, "thread " + hex(thread) +
                                                " has no process (KTHREAD.ApcState.Process "
                                                "is null)");
    }
    return *p;
}

Result<bool> BreakpointFilter::matches(const Breakpoint& bp, const StopEvent& stop) {
    if (!bp.match_thread && !bp.match_process) {
        return true;
    }
    auto thread = current_thread(stop.processor, stop);
    if (!thread) {
        return tl::unexpected(thread.error());
    }
    if (bp.match_thread && *bp.match_thread != *thread) {
        return false; // no memory read: the stop names its thread
    }
    if (bp.match_process) {
        auto process = process_of(*thread);
        if (!process) {
            return tl::unexpected(process.error());
        }
        if (*process != *bp.match_process) {
            return false;
        }
    }
    return true;
}

} // namespace kdcart::engine
