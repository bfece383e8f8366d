#include "engine/Contexts.h"

#include <cstring>
#include <optional>

namespace kdcart::engine {

using namespace protocol;

namespace {

constexpr uint32_t kContextSize = sizeof(CONTEXT);
// The parts of the integer block a write may carry. ContextFlags (0x30) is the target's and the
// debug registers (0x48-0x78) belong to the hardware breakpoints: neither is ever written.
constexpr uint32_t kMxCsr = offsetof(CONTEXT, MxCsr); // 0x34, 4 bytes
constexpr uint32_t kDr0 = offsetof(CONTEXT, Dr0);     // 0x48: segments and EFlags end here
constexpr uint32_t kRax = offsetof(CONTEXT, Rax);     // 0x78: integer registers and Rip
static_assert(kMxCsr == 0x34 && kDr0 == 0x48 && kRax == 0x78);

const uint8_t* raw(const CONTEXT& c) {
    return reinterpret_cast<const uint8_t*>(&c);
}
uint8_t* raw(CONTEXT& c) {
    return reinterpret_cast<uint8_t*>(&c);
}

// The changed bytes of [lo, hi) widened to whole units of `unit` bytes counted from lo (the
// fields' own alignment), or nothing when that span is unchanged.
std::optional<std::pair<uint32_t, uint32_t>> changed_span(const CONTEXT& a, const CONTEXT& b,
                                                          uint32_t lo, uint32_t hi, uint32_t unit) {
    std::optional<uint32_t> first;
    uint32_t last = 0;
    for (uint32_t i = lo; i < hi; ++i) {
        if (raw(a)[i] != raw(b)[i]) {
            if (!first) {
                first = i;
            }
            last = i;
        }
    }
    if (!first) {
        return std::nullopt;
    }
    const uint32_t start = lo + (*first - lo) / unit * unit;
    const uint32_t end = std::min(hi, lo + ((last - lo) / unit + 1) * unit);
    return std::make_pair(start, end);
}

} // namespace

Result<void> Contexts::fetch(uint16_t cpu, Entry& e, uint32_t offset, uint32_t size) {
    auto got = m_target.get_context_bytes(cpu, offset, size);
    if (!got) {
        return tl::unexpected(got.error());
    }
    const uint64_t end = uint64_t{got->offset} + got->bytes.size();
    if (end > kContextSize || got->offset > offset || end < uint64_t{offset} + size) {
        return make_error(Errc::Malformed, "the target returned another part of the context");
    }
    // Local changes live in `current`: the integer block keeps them, the rest is new.
    const CONTEXT mine = e.current;
    const bool had_block = e.known;
    std::memcpy(raw(e.fetched) + got->offset, got->bytes.data(), got->bytes.size());
    e.current = e.fetched;
    if (had_block) {
        std::memcpy(raw(e.current) + kIntegerOffset, raw(mine) + kIntegerOffset,
                    kIntegerEnd - kIntegerOffset);
    }
    e.known = true;
    e.full = e.full || (got->offset == 0 && end == kContextSize);
    return {};
}

Result<CONTEXT> Contexts::get(uint16_t cpu, ContextPart part) {
    auto it = m_entries.find(cpu);
    if (it != m_entries.end() && (part == ContextPart::Integer || it->second.full)) {
        return it->second.current;
    }
    Entry fresh;
    fresh.known = false;
    Entry& e = it != m_entries.end() ? it->second : fresh;
    const bool whole = part == ContextPart::Full;
    if (auto r = fetch(cpu, e, whole ? 0 : kIntegerOffset,
                       whole ? kContextSize : kIntegerEnd - kIntegerOffset);
        !r) {
        return tl::unexpected(r.error());
    }
    if (it == m_entries.end()) {
        it = m_entries.emplace(cpu, fresh).first;
    }
    return it->second.current;
}

void Contexts::set(uint16_t cpu, const CONTEXT& context) {
    auto it = m_entries.find(cpu);
    if (it == m_entries.end()) {
        Entry e;
        e.current = context;
        e.full = true;
        e.known = false;
        m_entries.emplace(cpu, e);
        return;
    }
    Entry& e = it->second;
    if (e.full) {
        e.current = context;
    } else {
        std::memcpy(raw(e.current) + kIntegerOffset, raw(context) + kIntegerOffset,
                    kIntegerEnd - kIntegerOffset);
    }
}

bool Contexts::changed(const Entry& e) {
    if (!e.known) {
        return true;
    }
    const auto differs = [&](uint32_t lo, uint32_t hi) {
        return std::memcmp(raw(e.fetched) + lo, raw(e.current) + lo, hi - lo) != 0;
    };
    return differs(kMxCsr, kDr0) || differs(kRax, kContextSize);
}

bool Contexts::dirty() const {
    for (const auto& [cpu, e] : m_entries) {
        if (changed(e)) {
            return true;
        }
    }
    return false;
}

Result<void> Contexts::write_whole(uint16_t cpu, Entry& e) {
    if (e.known && !e.full) {
        if (auto r = fetch(cpu, e, 0, kContextSize); !r) {
            return r;
        }
    }
    CONTEXT ctx = e.current;
    if (ctx.ContextFlags == 0) {
        ctx.ContextFlags = CONTEXT_FULL;
    }
    // Debug registers belong to the hardware breakpoints, which go through control space and
    // Continue2's Dr7; a stale copy here would overwrite them.
    ctx.ContextFlags &= ~(CONTEXT_DEBUG_REGISTERS & ~CONTEXT_AMD64);
    if (auto r = m_target.set_context(cpu, ctx); !r) {
        return r;
    }
    e.fetched = e.current;
    e.known = true;
    return {};
}

Result<void> Contexts::write_back() {
    for (auto& [cpu, e] : m_entries) {
        if (!changed(e)) {
            continue;
        }
        const auto outside = e.known
                                 ? changed_span(e.fetched, e.current, kIntegerEnd, kContextSize, 1)
                                 : std::nullopt;
        if (!e.known || outside) {
            if (auto r = write_whole(cpu, e); !r) {
                return r;
            }
            continue;
        }
        // Only the integer block changed: at most two SetContextEx, one for MxCsr, the segments
        // and EFlags, one for the integer registers and Rip (the debug registers lie between).
        bool whole = false;
        for (auto span : {changed_span(e.fetched, e.current, kMxCsr, kDr0, 4),
                          changed_span(e.fetched, e.current, kRax, kIntegerEnd, 8)}) {
            if (!span) {
                continue;
            }
            const auto [lo, hi] = *span;
            auto r = m_target.set_context_bytes(
                cpu, lo, std::span<const uint8_t>(raw(e.current) + lo, hi - lo));
            if (!r && r.error().code == Errc::Unsupported) {
                whole = true; // whole contexts only: write it all below
                break;
            }
            if (!r) {
                return r;
            }
            std::memcpy(raw(e.fetched) + lo, raw(e.current) + lo, hi - lo);
        }
        if (whole) {
            if (auto r = write_whole(cpu, e); !r) {
                return r;
            }
        }
    }
    return {};
}

} // namespace kdcart::engine
