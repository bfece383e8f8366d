#include "engine/ResourceLocks.h"
#include "engine/Debugger.h"

namespace kdcart::engine {

Result<LockScan> ResourceLocks::scan() {
    auto info = m_dbg.target_info();
    if (!info || !info->kddata_found) {
        return make_error(Errc::NotFound, "KDDEBUGGER_DATA64 was not found on the target");
    }
    uint64_t head = info->kddata.ExpSystemResourcesList;
    if (head == 0) {
        head = m_dbg.lookup_symbol("nt", "ExpSystemResourcesList").value_or(0);
    }
    if (head == 0) {
        return make_error(Errc::NotFound,
                          "the ERESOURCE list is not reachable: KDDEBUGGER_DATA64."
                          "ExpSystemResourcesList is 0 and nt has no ExpSystemResourcesList");
    }
    auto links = m_types.offset("_ERESOURCE", "SystemResourcesList");
    if (!links) {
        return make_error(Errc::NotFound,
                          "the ERESOURCE list is not readable: " + links.error().message);
    }
    auto walk = m_types.walk_list(head);
    LockScan out;
    out.broken = walk.broken;
    for (uint64_t entry : walk.entries) {
        const uint64_t r = entry - *links;
        ++out.total;
        auto active = m_types.read_unsigned(r, "_ERESOURCE", "ActiveCount");
        if (!active || *active == 0) {
            continue;
        }
        HeldResource h;
        h.address = r;
        h.active_count = *active;
        h.exclusive = (m_types.read_unsigned(r, "_ERESOURCE", "Flag").value_or(0) & 0x80) != 0;
        h.contention_count = m_types.read_unsigned(r, "_ERESOURCE", "ContentionCount").value_or(0);
        h.exclusive_waiters =
            m_types.read_unsigned(r, "_ERESOURCE", "NumberOfExclusiveWaiters").value_or(0);
        h.shared_waiters =
            m_types.read_unsigned(r, "_ERESOURCE", "NumberOfSharedWaiters").value_or(0);
        ResourceOwner first;
        first.thread = m_types.read_unsigned(r, "_ERESOURCE", "OwnerEntry.OwnerThread").value_or(0);
        first.count = m_types.read_unsigned(r, "_ERESOURCE", "OwnerEntry.OwnerCount").value_or(1);
        if (first.thread != 0) {
            h.owners.push_back(first);
        }
        out.held.push_back(std::move(h));
    }
    return out;
}

} // namespace kdcart::engine
