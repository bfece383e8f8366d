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
    // Only with the kernel's PDB types (nullopt: not known):
    std::optional<uint64_t> object_table;
    std::optional<int64_t> handle_count; // _HANDLE_TABLE.HandleCount, when the type has it
    bool session_known = false;
    std::optional<uint32_t> session_id; // nullopt with session_known: "none" (no session)
};

struct ProcessList {
    std::vector<ProcessInfo> processes;
    // The offsets came from the kernel's PDB types (nt!_EPROCESS...) by field name; false:
    // from KDDEBUGGER_DATA64 and the kernel's own data (see `sources`).
    bool from_types = false;
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

    // The active process list (PsActiveProcessHead), walked with a bound. The offsets come from
    // the kernel's PDB types when it has them (nt!_EPROCESS and its fields by name), else from
    // KDDEBUGGER_DATA64.
    [[nodiscard]] Result<ProcessList> processes();

    // At most this many list entries are followed.
    static constexpr size_t k_max_list_entries = 4096;

  private:
    struct ProcessLayout {
        uint64_t links = 0; // ActiveProcessLinks
        uint64_t pid = 0;
        std::optional<uint64_t> name;
        uint64_t parent = 0;
        uint64_t peb = 0;
        uint64_t dtb = 0;
        // PDB only
        std::optional<uint64_t> object_table;
        std::optional<uint64_t> handle_count; // in _HANDLE_TABLE
        std::optional<uint64_t> session;
        std::optional<uint64_t> session_id; // in _MM_SESSION_SPACE
    };
    [[nodiscard]] Result<TargetInfo> kddata();
    // The layout from KDDEBUGGER_DATA64 and the System process (`first`: the list's first
    // entry).
    [[nodiscard]] Result<ProcessLayout> layout_from_kddata(const TargetInfo& info, uint64_t first,
                                                           std::vector<std::string>& sources);
    [[nodiscard]] Result<ProcessList> walk_processes(uint64_t head, uint64_t first,
                                                     const ProcessLayout& layout, ProcessList list);
    // The layout from nt's PDB types; nullopt when it has none (or lacks a field).
    std::optional<ProcessLayout> layout_from_types(std::vector<std::string>& sources);
    Debugger& m_dbg;
};

} // namespace kdcart::engine
