#pragma once
// Process- and thread-filtered breakpoints, as WinDbg's kernel-mode `bp /p EPROCESS` and
// `bp /t ETHREAD`: a hit belongs to the breakpoint only when the current thread is the /t one
// and the current process the /p one. The current thread is the one the stop reports (the state
// change's Thread, which is KPRCB.CurrentThread of the stop's processor; the KPRCB is read when
// the stop leaves it zero or another processor is asked about), its process
// KTHREAD.ApcState.Process (the address space it runs in), by field name from nt's PDB types.
// Returns data and errors; nothing here prints.
#include "engine/Types.h"
#include "transport/Error.h"

#include <cstdint>

namespace kdcart::engine {

class Debugger;
struct Breakpoint;

class BreakpointFilter {
  public:
    explicit BreakpointFilter(Debugger& dbg) : m_dbg(dbg) {}

    // Whether `bp` (with /p or /t) is hit at `stop`: true without filters. An error (that says
    // what could not be read) when the current thread or process cannot be told.
    [[nodiscard]] Result<bool> matches(const Breakpoint& bp, const StopEvent& stop);

    // The thread running on processor `cpu` now; `stop` supplies it for its own processor.
    [[nodiscard]] Result<uint64_t> current_thread(uint16_t cpu, const StopEvent& stop);
    // A thread's current process (KTHREAD.ApcState.Process).
    [[nodiscard]] Result<uint64_t> process_of(uint64_t thread);

  private:
    Debugger& m_dbg;
};

} // namespace kdcart::engine
