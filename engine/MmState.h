#pragma once
// The memory manager's state a debugger can reach: one PFN database entry (nt!_MMPFN by field
// name, the database from KDDEBUGGER_DATA64.MmPfnDatabase / nt!MmPfnDatabase) and the counters
// KDDEBUGGER_DATA64 points to (!vm). Each value says where it came from; what cannot be reached
// is absent, not guessed.
#include "engine/KernelTypes.h"

#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct PfnEntry {
    uint64_t pfn = 0;
    uint64_t address = 0;                // of the MMPFN
    std::optional<uint64_t> flink;       // u1.Flink
    std::optional<uint64_t> blink;       // u2.Blink / ShareCount
    std::optional<uint64_t> pte_address; // PteAddress
    std::optional<uint64_t> reference_count;
    std::optional<uint64_t> page_location; // u3.e1.PageLocation (MMLISTS)
    std::optional<uint64_t> modified;
    std::optional<uint64_t> read_in_progress;
    std::optional<uint64_t> write_in_progress;
    std::optional<uint64_t> original_pte;
    std::optional<uint64_t> pte_frame;
    std::optional<uint64_t> prototype;
};

struct VmCounter {
    std::string name;   // "MmNumberOfPhysicalPages"
    uint64_t value = 0; // pages (or an address for the pool bounds)
    bool pages = true;  // false: an address
};

struct VmCounters {
    std::vector<VmCounter> counters;
    std::vector<std::string> missing; // KDDEBUGGER_DATA64 fields that are 0 or unreadable
};

class MmState {
  public:
    explicit MmState(Debugger& dbg) : m_dbg(dbg) {}

    // The PFN database's base (the value of nt!MmPfnDatabase).
    [[nodiscard]] Result<uint64_t> pfn_database();
    // `value`: a page frame number, or the address of an entry in the database.
    [[nodiscard]] Result<PfnEntry> pfn(const KernelTypes& types, uint64_t value);
    [[nodiscard]] Result<VmCounters> vm();

  private:
    Debugger& m_dbg;
};

// "Zeroed", "Free", "Standby", "Modified", "ModifiedNoWrite", "Bad", "Active", "Transition".
std::string page_location_name(uint64_t location);

} // namespace kdcart::engine
