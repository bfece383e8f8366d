#pragma once
// The register context of each processor while the target is stopped: fetched on first use,
// changed locally by `r rax=...`, written back before the target runs.
#include "engine/Target.h"

#include <map>

namespace kdcart::engine {

class Contexts {
public:
    explicit Contexts(Target& target) : m_target(target) {}

    [[nodiscard]] Result<CONTEXT> get(uint16_t cpu);
    void set(uint16_t cpu, const CONTEXT& context);
    // SetContext for every processor whose registers were changed (the debug registers are left
    // out: hardware breakpoints own them).
    [[nodiscard]] Result<void> write_back();
    bool dirty() const;
    void forget() {
        m_contexts.clear();
        m_dirty.clear();
    }

private:
    Target& m_target;
    std::map<uint16_t, CONTEXT> m_contexts;
    std::map<uint16_t, bool> m_dirty;
};

} // namespace kdcart::engine
