#include "engine/BreakpointManager.h"
#include "engine/HexText.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <spdlog/spdlog.h>

namespace kdcart::engine {

using namespace protocol;

Result<Translation> BreakpointManager::translate(uint64_t va) {
    const uint16_t cpu = m_target ? m_target->current_processor() : 0;
    return m_memory.translate(va, cpu);
}

Result<BreakpointResult> BreakpointManager::set(const BreakpointRequest& req) {
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
    bp.condition = req.condition;
    bp.match_process = req.match_process;
    bp.match_thread = req.match_thread;

    if (bp.address && !is_canonical(*bp.address)) {
        return make_error(Errc::InvalidArgument, "not canonical");
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
        if (bp.state == LocationState::Owed && m_allow_bp_ba_convert && m_table.free_slot()) {
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
        existing = m_table.find_at(*bp.address, bp.kind);
    } else if (bp.deferred) {
        existing = m_table.find_deferred(bp.expression);
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
        auto slot = m_table.free_slot();
        if (!slot) {
            return make_error(Errc::Unsupported,
                              "No free hardware breakpoint slot (DR0-DR3 are all in use)");
        }
        bp.slot = *slot;
        m_hw_dirty = true;
    }
    result.id = m_table.add(std::move(bp)).id;
    return result;
}

Result<void> BreakpointManager::clear(uint32_t id) {
    auto* bp = m_table.find(id);
    if (!bp) {
        return make_error(Errc::NotFound, "Breakpoint " + std::to_string(id) + " does not exist");
    }
    if (bp->kind == BreakpointKind::Hardware) {
        m_hw_dirty = true;
    }
    m_table.remove(id);
    return {};
}

Result<void> BreakpointManager::enable(uint32_t id, bool enable) {
    auto* bp = m_table.find(id);
    if (!bp) {
        return make_error(Errc::NotFound, "Breakpoint " + std::to_string(id) + " does not exist");
    }
    bp->enabled = enable;
    if (bp->kind == BreakpointKind::Hardware) {
        m_hw_dirty = true;
    }
    return {};
}

void BreakpointManager::resolve_deferred() {
    if (!m_resolver) {
        return;
    }
    for (auto* bp : m_table.all()) {
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

void BreakpointManager::refresh_owed_states() {
    for (auto* bp : m_table.all()) {
        if (bp->state != LocationState::Owed || !bp->address) {
            continue;
        }
        if (auto t = translate(*bp->address); t && t->state == PageState::Present) {
            bp->state = LocationState::Resolved;
        }
    }
}

bool BreakpointManager::is_temporary(uint64_t address) const {
    return std::find(m_temporaries.begin(), m_temporaries.end(), address) != m_temporaries.end();
}

Breakpoint* BreakpointManager::software_at(uint64_t address) {
    for (auto* bp : m_table.all()) {
        if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
            *bp->address == address && bp->state != LocationState::Unresolved) {
            return bp;
        }
    }
    return nullptr;
}

Result<void> BreakpointManager::insert_sites(std::optional<uint64_t> skip) {
    m_sites.clear();
    if (!m_target) {
        return {};
    }
    std::set<uint64_t> addresses;
    for (const auto* bp : m_table.all()) {
        if (bp->kind == BreakpointKind::Software && bp->enabled && bp->address &&
            bp->state != LocationState::Unresolved) {
            addresses.insert(*bp->address);
        }
    }
    addresses.insert(m_temporaries.begin(), m_temporaries.end());
    for (uint64_t a : addresses) {
        if (skip && *skip == a) {
            continue;
        }
        auto handle = m_target->client().write_breakpoint(a);
        if (!handle) {
            m_target->notice("Unable to insert breakpoint at " + hex_0x(a) + ": " +
                             handle.error().message);
            continue;
        }
        m_sites.push_back({a, *handle});
    }
    return {};
}

void BreakpointManager::remove_sites() {
    if (m_target) {
        for (const auto& site : m_sites) {
            if (auto r = m_target->client().restore_breakpoint(site.handle); !r) {
                spdlog::debug("engine: RestoreBreakPoint {} failed: {}", site.handle,
                              r.error().message);
            }
        }
    }
    m_sites.clear();
}

void BreakpointManager::forget_target_state() {
    m_sites.clear();
    m_hw_dirty = true;
    m_programmed_dr7 = 0x400;
}

Result<void> BreakpointManager::program_hardware(std::optional<uint64_t> skip_exec_at,
                                                 uint32_t num_processors) {
    if (!m_target) {
        return {};
    }
    uint64_t dr7 = 0x400;
    uint64_t dr[4] = {0, 0, 0, 0};
    for (const auto* bp : m_table.all()) {
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
    for (uint16_t p = 0; p < num_processors; ++p) {
        auto special = m_target->read_control_space(p, AMD64_DEBUG_CONTROL_SPACE_KSPECIAL,
                                                    KSPECIAL_REGISTERS_WINDBG_SIZE);
        if (!special) {
            return tl::unexpected(special.error());
        }
        auto bytes = special->bytes;
        if (bytes.size() < offsetof(KSPECIAL_REGISTERS, Gdtr)) {
            return make_error(Errc::Unreadable,
                              "control space of processor " + std::to_string(p) + " is short");
        }
        for (int i = 0; i < 4; ++i) {
            std::memcpy(bytes.data() + offsetof(KSPECIAL_REGISTERS, KernelDr0) + 8 * i, &dr[i], 8);
        }
        std::memcpy(bytes.data() + offsetof(KSPECIAL_REGISTERS, KernelDr7), &dr7, 8);
        auto w = m_target->write_control_space(p, AMD64_DEBUG_CONTROL_SPACE_KSPECIAL, bytes);
        if (!w) {
            return tl::unexpected(w.error());
        }
    }
    m_programmed_dr7 = dr7;
    m_hw_dirty = skip_exec_at.has_value(); // reprogram fully next time
    return {};
}

} // namespace kdcart::engine
