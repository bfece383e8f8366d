#pragma once
// The register context of each processor while the target is stopped: fetched on first use, in
// the part a command needs, changed locally by `r rax=...`, written back before the target runs
// (only when something changed, and then only the bytes that did).
#include "engine/Target.h"

#include <cstddef>
#include <map>
#include <optional>

namespace kdcart::engine {

enum class ContextPart {
    // CONTEXT bytes [0x30, 0x100): ContextFlags, MxCsr, the segment selectors, EFlags, Dr0-Dr7,
    // the integer registers and Rip. What `r`, the step line, expressions and the unwinder use;
    // fetched alone with GetContextEx (208 bytes instead of 1232). The rest of the CONTEXT
    // returned is zero unless it is already known.
    Integer,
    // The whole CONTEXT (x87/SSE state, vector registers, branch records too).
    Full,
};

class Contexts {
public:
    // Where the integer/control block lies in the CONTEXT (16-byte aligned at both ends).
    static constexpr uint32_t kIntegerOffset = offsetof(protocol::CONTEXT, ContextFlags);
    static constexpr uint32_t kIntegerEnd = offsetof(protocol::CONTEXT, FltSave);

    explicit Contexts(Target& target) : m_target(target) {}

    [[nodiscard]] Result<CONTEXT> get(uint16_t cpu, ContextPart part);
    // Local change. When only the integer block of `cpu` is known, only that block of `context`
    // is taken; a processor whose registers were never fetched takes the whole CONTEXT.
    void set(uint16_t cpu, const CONTEXT& context);
    // Writes the changes back: SetContextEx of the changed bytes of the integer block, or
    // SetContext of the whole CONTEXT when other parts changed, the processor's registers were
    // set without being fetched, or the target takes whole contexts only. The debug registers
    // are left out: hardware breakpoints own them (control space and Continue2's Dr7).
    [[nodiscard]] Result<void> write_back();
    bool dirty() const;
    void forget() { m_entries.clear(); }
    // Rip of `cpu` if its registers are known here (fetched or set), without asking the target.
    std::optional<uint64_t> known_rip(uint16_t cpu) const {
        auto it = m_entries.find(cpu);
        if (it == m_entries.end()) {
            return std::nullopt;
        }
        return it->second.current.Rip;
    }

private:
    struct Entry {
        CONTEXT fetched{}; // what the target has (the parts known)
        CONTEXT current{}; // with the local changes
        bool full = false; // all of the CONTEXT is known, not only the integer block
        bool known = true; // false: set() without a fetch, the target's registers are unknown
    };
    // Fetches [offset, offset+size) (or more, when the target gives only whole contexts) into
    // `e`; local changes in `e.current` are kept.
    [[nodiscard]] Result<void> fetch(uint16_t cpu, Entry& e, uint32_t offset, uint32_t size);
    [[nodiscard]] Result<void> write_whole(uint16_t cpu, Entry& e);
    static bool changed(const Entry& e);

    Target& m_target;
    std::map<uint16_t, Entry> m_entries;
};

} // namespace kdcart::engine
