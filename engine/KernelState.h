#pragma once
// The kernel's processors and processes, read without PDB types: every offset comes from
// KDDEBUGGER_DATA64 (KiProcessorBlock, OffsetPrcb*, OffsetPcr*, PsActiveProcessHead,
// OffsetEprocess*, SizeEProcess). Where KDDEBUGGER_DATA64 has no offset for a field (a process's
// ActiveProcessLinks, UniqueProcessId, ImageFileName) it is located from what the kernel itself
// shows about the System process, and each result says how it was found (`sources`), so that the
// CLI can label it. When the kernel's PDB types are available they replace all of this.
#include "engine/Types.h"
#include "transport/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct ProcessorInfo {
    uint32_t index = 0;
    uint64_t kprcb = 0;
    uint64_t kpcr = 0;               // 0 when OffsetPcrContainedPrcb is not given
    uint64_t kpcr_self = 0;          // KPCR.Self (OffsetPcrSelfPcr)
    uint64_t kpcr_prcb = 0;          // KPCR.CurrentPrcb (OffsetPcrCurrentPrcb)
    uint64_t current_thread = 0;     // OffsetPrcbCurrentThread
    uint64_t idle_thread = 0;        // OffsetPrcbIdleThread
    std::optional<uint32_t> number;  // OffsetPrcbNumber (a USHORT/ULONG on x64: low 16 bits)
    std::optional<uint32_t> mhz;     // OffsetPrcbMhz
    std::optional<uint8_t> cpu_type; // OffsetPrcbCpuType
    std::string vendor;              // OffsetPrcbVendorString
    std::optional<uint64_t> cr8; // KPRCB.ProcessorState.SpecialRegisters.Cr8 (saved at the stop)
    uint64_t context = 0;        // KPRCB.Context (OffsetPrcbContext)
};

struct ProcessInfo {
    uint64_t eprocess = 0;
    uint64_t pid = 0;
    uint64_t parent_pid = 0;
    uint64_t peb = 0;
    uint64_t directory_table_base = 0;
    std::string image; // ImageFileName (up to 15 characters)
};

struct ProcessList {
    std::vector<ProcessInfo> processes;
    // How each offset was found, one line each ("ActiveProcessLinks +0x3e0: PsActiveProcessHead's
    // first entry minus nt!PsInitialSystemProcess").
    std::vector<std::string> sources;
    // The list broke here (a loop, an unreadable entry, too many entries): the walk stopped and
    // `processes` holds what came before.
    std::optional<std::string> broken;
};

class KernelState {
  public:
    explicit KernelState(Debugger& dbg) : m_dbg(dbg) {}

    // Every processor's KPRCB (KDDEBUGGER_DATA64.KiProcessorBlock) and the fields
    // KDDEBUGGER_DATA64's offsets reach.
    [[nodiscard]] Result<std::vector<ProcessorInfo>> processors();
    [[nodiscard]] Result<ProcessorInfo> processor(uint32_t index);

    // The active process list (PsActiveProcessHead), walked with a bound.
    [[nodiscard]] Result<ProcessList> processes();

    // At most this many list entries are followed.
    static constexpr size_t k_max_list_entries = 4096;

  private:
    [[nodiscard]] Result<TargetInfo> kddata();
    Debugger& m_dbg;
};

} // namespace kdcart::engine
