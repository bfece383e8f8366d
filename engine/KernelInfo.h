#pragma once
// Learning a target: the version block, KDDEBUGGER_DATA64 ('KDBG' checked, fields past the
// block's own Size left zero), the build lab string and KUSER_SHARED_DATA's version.
#include "engine/Memory.h"

namespace kdcart::engine {

[[nodiscard]] Result<TargetInfo> learn_target(Target& target, Memory& memory);

} // namespace kdcart::engine

namespace kdcart::engine {

// What is known about the target, learnt once and forgotten when it starts over.
class KernelInfo {
public:
    KernelInfo(Target& target, Memory& memory) : m_target(target), m_memory(memory) {}
    // Learns the target if needed (reads memory: the target must be stopped).
    [[nodiscard]] Result<TargetInfo> get();
    const std::optional<TargetInfo>& known() const { return m_info; }
    void forget() { m_info.reset(); }

private:
    Target& m_target;
    Memory& m_memory;
    std::optional<TargetInfo> m_info;
};

} // namespace kdcart::engine
