#pragma once
// `!locks`: the executive resources (ERESOURCE) on nt's ExpSystemResourcesList
// (KDDEBUGGER_DATA64.ExpSystemResourcesList), walked with a bound through
// _ERESOURCE.SystemResourcesList by field name; the held ones with their owners.
#include "engine/KernelTypes.h"

#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct ResourceOwner {
    uint64_t thread = 0;
    uint64_t count = 0;
};

struct HeldResource {
    uint64_t address = 0;
    bool exclusive = false;
    uint64_t active_count = 0;
    uint64_t contention_count = 0;
    uint64_t exclusive_waiters = 0;
    uint64_t shared_waiters = 0;
    std::vector<ResourceOwner> owners;
};

struct LockScan {
    uint64_t total = 0;
    std::vector<HeldResource> held;
    std::optional<std::string> broken;
};

class ResourceLocks {
  public:
    ResourceLocks(Debugger& dbg, const KernelTypes& types) : m_dbg(dbg), m_types(types) {}
    [[nodiscard]] Result<LockScan> scan();

  private:
    Debugger& m_dbg;
    const KernelTypes& m_types;
};

} // namespace kdcart::engine
