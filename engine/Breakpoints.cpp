#include "engine/Breakpoints.h"

#include <cctype>
#include <sstream>

namespace kdcart::engine {

Breakpoint& BreakpointTable::add(Breakpoint bp) {
    uint32_t id = 0;
    while (m_bps.count(id) != 0) {
        ++id;
    }
    bp.id = id;
    auto [it, inserted] = m_bps.emplace(id, std::move(bp));
    (void)inserted;
    return it->second;
}

Breakpoint* BreakpointTable::find(uint32_t id) {
    auto it = m_bps.find(id);
    return it == m_bps.end() ? nullptr : &it->second;
}

Breakpoint* BreakpointTable::find_at(uint64_t address, BreakpointKind kind) {
    for (auto& [id, bp] : m_bps) {
        if (bp.kind == kind && bp.address && *bp.address == address) {
            return &bp;
        }
    }
    return nullptr;
}

Breakpoint* BreakpointTable::find_deferred(const std::string& expression) {
    for (auto& [id, bp] : m_bps) {
        if (bp.deferred && bp.expression == expression) {
            return &bp;
        }
    }
    return nullptr;
}

bool BreakpointTable::remove(uint32_t id) {
    return m_bps.erase(id) != 0;
}

std::vector<Breakpoint*> BreakpointTable::all() {
    std::vector<Breakpoint*> out;
    for (auto& [id, bp] : m_bps) {
        out.push_back(&bp);
    }
    return out;
}

std::vector<const Breakpoint*> BreakpointTable::all() const {
    std::vector<const Breakpoint*> out;
    for (const auto& [id, bp] : m_bps) {
        out.push_back(&bp);
    }
    return out;
}

unsigned BreakpointTable::used_slots() const {
    unsigned mask = 0;
    for (const auto& [id, bp] : m_bps) {
        if (bp.kind == BreakpointKind::Hardware && bp.slot >= 0) {
            mask |= 1u << bp.slot;
        }
    }
    return mask;
}

std::optional<int> BreakpointTable::free_slot() const {
    const unsigned used = used_slots();
    for (int i = 0; i < 4; ++i) {
        if ((used & (1u << i)) == 0) {
            return i;
        }
    }
    return std::nullopt;
}

uint64_t dr7_len_bits(uint8_t length) {
    switch (length) {
    case 2: return 1;
    case 4: return 3;
    case 8: return 2;
    default: return 0;
    }
}

uint64_t compute_dr7(const BreakpointTable& table) {
    uint64_t dr7 = 0x400;
    for (const auto* bp : table.all()) {
        if (bp->kind != BreakpointKind::Hardware || bp->slot < 0 || !bp->enabled ||
            !bp->address) {
            continue;
        }
        const int i = bp->slot;
        dr7 |= 1ull << (2 * i); // Ln
        dr7 |= static_cast<uint64_t>(bp->access) << (16 + 4 * i);
        dr7 |= dr7_len_bits(bp->access == HwAccess::Execute ? 1 : bp->length) << (18 + 4 * i);
    }
    return dr7;
}

std::optional<std::vector<uint32_t>> parse_breakpoint_ids(const std::string& text,
                                                          const BreakpointTable& table) {
    std::vector<uint32_t> out;
    std::string t = text;
    for (auto& c : t) {
        if (c == ',') {
            c = ' ';
        }
    }
    std::stringstream ss(t);
    std::string tok;
    bool any = false;
    while (ss >> tok) {
        any = true;
        if (tok == "*") {
            for (const auto* bp : table.all()) {
                out.push_back(bp->id);
            }
            continue;
        }
        // Breakpoint ids are decimal, as bl shows them.
        auto parse_num = [](const std::string& s) -> std::optional<uint32_t> {
            if (s.empty() || s.size() > 6) {
                return std::nullopt;
            }
            uint32_t v = 0;
            for (char c : s) {
                if (!std::isdigit(static_cast<unsigned char>(c))) {
                    return std::nullopt;
                }
                v = v * 10 + static_cast<uint32_t>(c - '0');
            }
            return v;
        };
        auto dash = tok.find('-');
        if (dash != std::string::npos) {
            auto a = parse_num(tok.substr(0, dash));
            auto b = parse_num(tok.substr(dash + 1));
            if (!a || !b || *b < *a || *b - *a > 4096) {
                return std::nullopt;
            }
            for (uint32_t i = *a; i <= *b; ++i) {
                out.push_back(i);
            }
            continue;
        }
        auto n = parse_num(tok);
        if (!n) {
            return std::nullopt;
        }
        out.push_back(*n);
    }
    if (!any) {
        return std::nullopt;
    }
    return out;
}

} // namespace kdcart::engine
