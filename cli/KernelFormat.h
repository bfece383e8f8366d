#pragma once
// WinDbg's text for the kernel-inspection commands (!analyze -show, !error, !pte, !process...).
// Pure functions over engine data: no I/O, no state.
#include "engine/BugCheckCodes.h"
#include "engine/ErrorCodes.h"
#include "engine/KernelState.h"
#include "engine/PteDecoder.h"

#include <array>
#include <cstdint>
#include <string>

namespace kdcart::cli {

// `!analyze -show CODE [P1..P4]` and the head of `!analyze -v` (000:110-116, 003:71-91):
//   CRITICAL_PROCESS_DIED (ef)
//           A critical system process died
//   Arguments:
//   Arg1: ffffd18c66891580, Process object or thread object
//   Arg3: 0000000000000000
// An unknown code: "Unknown bugcheck code (c0000142)" / "Unknown bugcheck description"
// (000:1286-1287). Arguments are 16 digits (x64).
std::string format_bugcheck_help(uint32_t code, const std::array<uint64_t, 4>& params,
                                 const engine::BugCheckDescription& description);

// The part of `!analyze -v`'s "Debugging Details" that needs no types (000:117-135):
//   Debugging Details:
//   ------------------
//   <two blank lines>
//   BUGCHECK_CODE:  ef
//   <blank>
//   BUGCHECK_P1: ffffd18c66891580
//   ... BUGCHECK_P4: 0, then BUGCHECK_STR:  0xEF
std::string format_analyze_details(uint32_t code, const std::array<uint64_t, 4>& params);

// `!error VALUE` (001:1933-1935):
//   Error code: (NTSTATUS) 0xc000000d (3221225485) - An invalid parameter was passed to a ...
// An unknown value: "... - <Unable to get error code text>" (000, EXCEPTION_CODE).
std::string format_error_code(const engine::ErrorLookup& error);

// `!pte VA` (001:1395-1405): the VA line, then four 27-column blocks (PXE, PPE, PDE, PTE) of
// "X at ADDR", "contains RAW", and "pfn N FLAGS" for each entry the walk read. The first entry
// that is not valid shows "not valid" and, in its column, what the software PTE says (Proto:,
// Transition:, PageFile:/Offset:, DemandZero, Protect:); a large page shows "LARGE PAGE pfn N"
// in the next column.
std::string format_pte(const engine::PagingStructureAddresses& addresses,
                       const engine::PteWalk& walk);

// `!vtop DTB VA`: WinDbg's Amd64VtoP trace, then "Virtual address V translates to physical
// address P." or "... translation fails, error 0xD0000147.".
std::string format_vtop(const engine::PteWalk& walk);

// One process of `!process 0 0` (x64 layout; 004:120-124 and 003:1903-1905 show the x86 one):
//   PROCESS ffffe00c2d47a040
//       SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000
//       DirBase: 001ad002  ObjectTable: ffffc0001b603000  HandleCount: 2287.
//       Image: System
// Without the kernel's PDB types SessionId, ObjectTable and HandleCount are not known: they
// read "<unknown>" (never a guess); with them, a HandleCount the types cannot reach reads
// "<Data Not Accessible>" as in WinDbg. Ends with the blank line WinDbg puts between processes.
std::string format_process_brief(const engine::ProcessInfo& process);

// "NT symbols are incorrect, please fix symbols" and where each offset came from, printed
// before output that KDDEBUGGER_DATA64 produced instead of the PDB.
std::string format_no_types_notice(const std::vector<std::string>& sources);

} // namespace kdcart::cli
