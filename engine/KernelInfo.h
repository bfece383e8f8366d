#pragma once
// Learning a target: the version block, KDDEBUGGER_DATA64 ('KDBG' checked, fields past the
// block's own Size left zero), the build lab string and KUSER_SHARED_DATA's version.
// On a live target the first stop reads only the KDBG fields a stop and the connection banner
// need (header, KernBase, BreakpointWithStatus, NtBuildLab); the rest of the
// block is read when a command first asks for the whole (KernelInfo::get).
#include "engine/Memory.h"

namespace kdcart::engine {

[[nodiscard]] Result<TargetInfo> learn_target(Target& target, Memory& memory,
                                              bool whole_kdbg = true);

} // namespace kdcart::engine

namespace kdcart::engine {

// What is known about the target, learnt once and forgotten when it starts over.
class KernelInfo {
public:
    KernelInfo(Target& target, Memory& memory) : m_target(target), m_memory(memory) {}
    // Learns the target if needed (reads memory: the target must be stopped), with the whole
    // KDDEBUGGER_DATA64 (while the target runs, what is known).
    [[nodiscard]] Result<TargetInfo> get();
    // What a stop and the connection banner need: KDDEBUGGER_DATA64's fields past
    // BreakpointWithStatus other than NtBuildLab may still be zero.
    [[nodiscard]] Result<TargetInfo> basic();
    const std::optional<TargetInfo>& known() const { return m_info; }
    void forget() {
        m_info.reset();
        m_complete = false;
    }

private:
    Target& m_target;
    Memory& m_memory;
    std::optional<TargetInfo> m_info;
    bool m_complete = false; // the whole KDDEBUGGER_DATA64 is in m_info
};

} // namespace kdcart::engine
