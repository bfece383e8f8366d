#pragma once
// WinDbg's text for !pfn, !vm (001:93-153), !sysinfo machineid (003:7-15) and !locks
// (001:223-244). Pure functions.
#include "engine/MmState.h"
#include "engine/ResourceLocks.h"
#include "engine/Smbios.h"

#include <functional>
#include <optional>
#include <string>

namespace kdcart::cli {

//     PFN 00001234 at address FFFFFA0000036CC0
//     flink       00000000  blink / share count 00000001  pteaddress FFFFF6FB7DBED000
//     reference count 0001   Cached     color 0   Priority 0
//     restore pte 00000080  containing page 000187  Active     M
//     Modified
// A field the PDB's _MMPFN lacks reads "?".
std::string format_pfn(const engine::PfnEntry& pfn);

// "*** Virtual Memory Usage ***" and one line per counter reached, "label  pages (  Kb)"
// aligned as the seed; then what KDDEBUGGER_DATA64 did not reach.
std::string format_vm(const engine::VmCounters& vm);

// "Machine ID Information [From Smbios table at PA, Size=N]" and "Name = value" lines.
std::string format_machine_id(const engine::SmbiosMachineId& id, uint64_t table_pa, uint32_t size);

// "KD: Scanning for held locks.." then per held resource "Resource @ SYM (0xADDR)    Exclusively
// owned" / "Shared N owning threads", contention, "Threads: ADDR-01<*>"; then
// "N total locks, M locks currently held".
std::string format_locks(const engine::LockScan& scan,
                         const std::function<std::optional<std::string>(uint64_t)>& symbol);

} // namespace kdcart::cli
