#include "engine/Contexts.h"

namespace kdcart::engine {

using namespace protocol;

Result<CONTEXT> Contexts::get(uint16_t cpu) {
    if (auto it = m_contexts.find(cpu); it != m_contexts.end()) {
        return it->second;
    }
    auto ctx = m_target.get_context(cpu);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    m_contexts[cpu] = *ctx;
    return *ctx;
}

void Contexts::set(uint16_t cpu, const CONTEXT& context) {
    m_contexts[cpu] = context;
    m_dirty[cpu] = true;
}

bool Contexts::dirty() const {
    for (const auto& [cpu, d] : m_dirty) {
        if (d) {
            return true;
        }
    }
    return false;
}

Result<void> Contexts::write_back() {
    for (auto& [cpu, dirty] : m_dirty) {
        if (!dirty) {
            continue;
        }
        CONTEXT ctx = m_contexts[cpu];
        if (ctx.ContextFlags == 0) {
            ctx.ContextFlags = CONTEXT_FULL;
        }
        // Debug registers belong to the hardware breakpoints, which go through control space
        // and Continue2's Dr7; a stale copy here would overwrite them.
        ctx.ContextFlags &= ~(CONTEXT_DEBUG_REGISTERS & ~CONTEXT_AMD64);
        if (auto r = m_target.set_context(cpu, ctx); !r) {
            return r;
        }
        dirty = false;
    }
    return {};
}

} // namespace kdcart::engine
