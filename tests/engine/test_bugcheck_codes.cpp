// The bug check table against seed 003's 259 rows (003:337-1371, "259 bugchecks are
// documented in WinDbg help"), embedded here as the seed prints them, in the seed's order, so
// that the repository stands alone; and the parameter texts the seeds show.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/BugCheckCodes.h"

#include <cstdlib>
#include <doctest/doctest.h>
#include <set>
#include <string>

using namespace kdcart::engine;

namespace {

// Seed 003, lines 337-1371: one "BugCheck CODE: NAME" row per code (the Google hit counts
// between the rows are left out).
const char* const kSeedRows[] = {
    "BugCheck 1000008E: KERNEL_MODE_EXCEPTION_NOT_HANDLED_M",
    "BugCheck A: IRQL_NOT_LESS_OR_EQUAL",
    "BugCheck D1: DRIVER_IRQL_NOT_LESS_OR_EQUAL",
    "BugCheck 50: PAGE_FAULT_IN_NONPAGED_AREA",
    "BugCheck C2: BAD_POOL_CALLER",
    "BugCheck 9C: MACHINE_CHECK_EXCEPTION",
    "BugCheck 1000007F: UNEXPECTED_KERNEL_MODE_TRAP_M",
    "BugCheck 7E: SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
    "BugCheck 1000007E: SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M",
    "BugCheck 7F: UNEXPECTED_KERNEL_MODE_TRAP",
    "BugCheck 4E: PFN_LIST_CORRUPT",
    "BugCheck 24: NTFS_FILE_SYSTEM",
    "BugCheck 8E: KERNEL_MODE_EXCEPTION_NOT_HANDLED",
    "BugCheck 1E: KMODE_EXCEPTION_NOT_HANDLED",
    "BugCheck 100000EA: THREAD_STUCK_IN_DEVICE_DRIVER_M",
    "BugCheck EA: THREAD_STUCK_IN_DEVICE_DRIVER",
    "BugCheck 19: BAD_POOL_HEADER",
    "BugCheck F4: CRITICAL_OBJECT_TERMINATION",
    "BugCheck 1A: MEMORY_MANAGEMENT",
    "BugCheck C4: DRIVER_VERIFIER_DETECTED_VIOLATION",
    "BugCheck 7B: INACCESSIBLE_BOOT_DEVICE",
    "BugCheck 1: APC_INDEX_MISMATCH",
    "BugCheck 77: KERNEL_STACK_INPAGE_ERROR",
    "BugCheck FE: BUGCODE_USB_DRIVER",
    "BugCheck 44: MULTIPLE_IRP_COMPLETE_REQUESTS",
    "BugCheck C5: DRIVER_CORRUPTED_EXPOOL",
    "BugCheck 124: WHEA_UNCORRECTABLE_ERROR",
    "BugCheck C000021A: STATUS_SYSTEM_PROCESS_TERMINATED",
    "BugCheck 20: KERNEL_APC_PENDING_DURING_EXIT",
    "BugCheck B8: ATTEMPTED_SWITCH_FROM_DPC",
    "BugCheck 5: INVALID_PROCESS_ATTACH_ATTEMPT",
    "BugCheck C: MAXIMUM_WAIT_OBJECTS_EXCEEDED",
    "BugCheck 7A: KERNEL_DATA_INPAGE_ERROR",
    "BugCheck DE: POOL_CORRUPTION_IN_FILE_AREA",
    "BugCheck A0: INTERNAL_POWER_ERROR",
    "BugCheck FC: ATTEMPTED_EXECUTE_OF_NOEXECUTE_MEMORY",
    "BugCheck 9F: DRIVER_POWER_STATE_FAILURE",
    "BugCheck E2: MANUALLY_INITIATED_CRASH",
    "BugCheck 2: DEVICE_QUEUE_NOT_BUSY",
    "BugCheck AB: SESSION_HAS_VALID_POOL_ON_EXIT",
    "BugCheck 93: INVALID_KERNEL_HANDLE",
    "BugCheck 51: REGISTRY_ERROR",
    "BugCheck 3: INVALID_AFFINITY_SET",
    "BugCheck 35: NO_MORE_IRP_STACK_LOCATIONS",
    "BugCheck 3B: SYSTEM_SERVICE_EXCEPTION",
    "BugCheck CE: DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS",
    "BugCheck C1: SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION",
    "BugCheck E3: RESOURCE_NOT_OWNED",
    "BugCheck 109: CRITICAL_STRUCTURE_CORRUPTION",
    "BugCheck E: NO_USER_MODE_CONTEXT",
    "BugCheck D: MUTEX_LEVEL_NUMBER_VIOLATION",
    "BugCheck 12: TRAP_CAUSE_UNKNOWN",
    "BugCheck 23: FAT_FILE_SYSTEM",
    "BugCheck 116: VIDEO_TDR_ERROR",
    "BugCheck 9: IRQL_NOT_GREATER_OR_EQUAL",
    "BugCheck 10D: WDF_VIOLATION",
    "BugCheck 4: INVALID_DATA_ACCESS_TRAP",
    "BugCheck 6: INVALID_PROCESS_DETACH_ATTEMPT",
    "BugCheck 3F: NO_MORE_SYSTEM_PTES",
    "BugCheck C9: DRIVER_VERIFIER_IOMANAGER_VIOLATION",
    "BugCheck D0: DRIVER_CORRUPTED_MMPOOL",
    "BugCheck 117: VIDEO_TDR_TIMEOUT_DETECTED",
    "BugCheck F: SPIN_LOCK_ALREADY_OWNED",
    "BugCheck 11: THREAD_NOT_MUTEX_OWNER",
    "BugCheck 6B: PROCESS1_INITIALIZATION_FAILED",
    "BugCheck BE: ATTEMPTED_WRITE_TO_READONLY_MEMORY",
    "BugCheck B: NO_EXCEPTION_HANDLING_SUPPORT",
    "BugCheck 27: RDR_FILE_SYSTEM",
    "BugCheck 41: MUST_SUCCEED_POOL_EMPTY",
    "BugCheck 96: INVALID_WORK_QUEUE_ITEM",
    "BugCheck D5: DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL",
    "BugCheck DA: SYSTEM_PTE_MISUSE",
    "BugCheck E1: WORKER_THREAD_RETURNED_AT_BAD_IRQL",
    "BugCheck E6: DRIVER_VERIFIER_DMA_VIOLATION",
    "BugCheck 10E: VIDEO_MEMORY_MANAGEMENT_INTERNAL",
    "BugCheck 8: IRQL_NOT_DISPATCH_LEVEL",
    "BugCheck 18: REFERENCE_BY_POINTER",
    "BugCheck 34: CACHE_MANAGER",
    "BugCheck 76: PROCESS_HAS_LOCKED_PAGES",
    "BugCheck CA: PNP_DETECTED_FATAL_ERROR",
    "BugCheck CB: DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS",
    "BugCheck D2: BUGCODE_ID_DRIVER",
    "BugCheck D4: SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD",
    "BugCheck D9: LOCKED_PAGES_TRACKER_CORRUPTION",
    "BugCheck F7: DRIVER_OVERRAN_STACK_BUFFER",
    "BugCheck 101: CLOCK_WATCHDOG_TIMEOUT",
    "BugCheck C0000218: STATUS_CANNOT_LOAD_REGISTRY_FILE",
    "BugCheck 7: INVALID_SOFTWARE_INTERRUPT",
    "BugCheck 13: EMPTY_THREAD_REAPER_LIST",
    "BugCheck 14: CREATE_DELETE_LOCK_NOT_LOCKED",
    "BugCheck 22: FILE_SYSTEM",
    "BugCheck 29: SECURITY_SYSTEM",
    "BugCheck 39: SYSTEM_EXIT_OWNED_MUTEX",
    "BugCheck 46: DEREF_UNKNOWN_LOGON_SESSION",
    "BugCheck 4D: NO_PAGES_AVAILABLE",
    "BugCheck 9E: USER_MODE_HEALTH_MONITOR",
    "BugCheck BA: SESSION_HAS_VALID_VIEWS_ON_EXIT",
    "BugCheck D3: DRIVER_PORTION_MUST_BE_NONPAGED",
    "BugCheck D6: DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
    "BugCheck E7: INVALID_FLOATING_POINT_STATE",
    "BugCheck 100: LOADER_BLOCK_MISMATCH",
    "BugCheck 106: AGP_ILLEGALLY_REPROGRAMMED",
    "BugCheck DEADDEAD: MANUALLY_INITIATED_CRASH1",
    "BugCheck 10: SPIN_LOCK_NOT_OWNED",
    "BugCheck 21: QUOTA_UNDERFLOW",
    "BugCheck 26: CDFS_FILE_SYSTEM",
    "BugCheck 30: SET_OF_INVALID_CONTEXT",
    "BugCheck 33: UNEXPECTED_INITIALIZATION_CALL",
    "BugCheck 36: DEVICE_REFERENCE_COUNT_NOT_ZERO",
    "BugCheck 37: FLOPPY_INTERNAL_ERROR",
    "BugCheck 40: TARGET_MDL_TOO_SMALL",
    "BugCheck 42: ATDISK_DRIVER_INTERNAL",
    "BugCheck 4A: IRQL_GT_ZERO_AT_SYSTEM_SERVICE",
    "BugCheck 72: ASSIGN_DRIVE_LETTERS_FAILED",
    "BugCheck 73: CONFIG_LIST_FAILED",
    "BugCheck CD: PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
    "BugCheck CF: TERMINAL_SERVER_DRIVER_MADE_INCORRECT_MEMORY_REFERENCE",
    "BugCheck E4: WORKER_INVALID",
    "BugCheck 104: AGP_INVALID_ACCESS",
    "BugCheck 15: LAST_CHANCE_CALLED_FROM_KMODE",
    "BugCheck 16: CID_HANDLE_CREATION",
    "BugCheck 17: CID_HANDLE_DELETION",
    "BugCheck 28: CORRUPT_ACCESS_TOKEN",
    "BugCheck 38: SERIAL_DRIVER_INTERNAL",
    "BugCheck 43: NO_SUCH_PARTITION",
    "BugCheck 45: INSUFFICIENT_SYSTEM_MAP_REGS",
    "BugCheck 48: CANCEL_STATE_IN_COMPLETED_IRP",
    "BugCheck 49: PAGE_FAULT_WITH_INTERRUPTS_OFF",
    "BugCheck 57: XNS_INTERNAL_ERROR",
    "BugCheck 58: FTDISK_INTERNAL_ERROR",
    "BugCheck 5C: HAL_INITIALIZATION_FAILED",
    "BugCheck 60: PROCESS_INITIALIZATION_FAILED",
    "BugCheck 62: OBJECT1_INITIALIZATION_FAILED",
    "BugCheck 63: SECURITY1_INITIALIZATION_FAILED",
    "BugCheck 64: SYMBOLIC_INITIALIZATION_FAILED",
    "BugCheck 67: CONFIG_INITIALIZATION_FAILED",
    "BugCheck 68: FILE_INITIALIZATION_FAILED",
    "BugCheck 70: SESSION4_INITIALIZATION_FAILED",
    "BugCheck 74: BAD_SYSTEM_CONFIG_INFO",
    "BugCheck 75: CANNOT_WRITE_CONFIGURATION",
    "BugCheck 79: MISMATCHED_HAL",
    "BugCheck 7D: INSTALL_MORE_MEMORY",
    "BugCheck 80: NMI_HARDWARE_FAILURE",
    "BugCheck 82: DFS_FILE_SYSTEM",
    "BugCheck 85: SETUP_FAILURE",
    "BugCheck 99: INVALID_REGION_OR_SEGMENT",
    "BugCheck A1: PCI_BUS_DRIVER_INTERNAL",
    "BugCheck BF: MUTEX_ALREADY_OWNED",
    "BugCheck CC: PAGE_FAULT_IN_FREED_SPECIAL_POOL",
    "BugCheck DB: DRIVER_CORRUPTED_SYSPTES",
    "BugCheck E8: INVALID_CANCEL_OF_FILE_OPEN",
    "BugCheck ED: UNMOUNTABLE_BOOT_VOLUME",
    "BugCheck FD: DIRTY_NOWRITE_PAGES_CONGESTION",
    "BugCheck 108: THIRD_PARTY_FILE_SYSTEM_FAILURE",
    "BugCheck 111: RECURSIVE_NMI",
    "BugCheck 121: DRIVER_VIOLATION",
    "BugCheck 122: WHEA_INTERNAL_ERROR",
    "BugCheck 1B: PFN_SHARE_COUNT",
    "BugCheck 1C: PFN_REFERENCE_COUNT",
    "BugCheck 1D: NO_SPIN_LOCK_AVAILABLE",
    "BugCheck 1F: SHARED_RESOURCE_CONV_ERROR",
    "BugCheck 25: NPFS_FILE_SYSTEM",
    "BugCheck 2A: INCONSISTENT_IRP",
    "BugCheck 2B: PANIC_STACK_SWITCH",
    "BugCheck 2C: PORT_DRIVER_INTERNAL",
    "BugCheck 2D: SCSI_DISK_DRIVER_INTERNAL",
    "BugCheck 2E: DATA_BUS_ERROR",
    "BugCheck 2F: INSTRUCTION_BUS_ERROR",
    "BugCheck 31: PHASE0_INITIALIZATION_FAILED",
    "BugCheck 32: PHASE1_INITIALIZATION_FAILED",
    "BugCheck 3A: SYSTEM_UNWIND_PREVIOUS_USER",
    "BugCheck 3C: INTERRUPT_UNWIND_ATTEMPTED",
    "BugCheck 3D: INTERRUPT_EXCEPTION_NOT_HANDLED",
    "BugCheck 3E: MULTIPROCESSOR_CONFIGURATION_NOT_SUPPORTED",
    "BugCheck 47: REF_UNKNOWN_LOGON_SESSION",
    "BugCheck 4B: STREAMS_INTERNAL_ERROR",
    "BugCheck 4C: FATAL_UNHANDLED_HARD_ERROR",
    "BugCheck 4F: NDIS_INTERNAL_ERROR",
    "BugCheck 52: MAILSLOT_FILE_SYSTEM",
    "BugCheck 53: NO_BOOT_DEVICE",
    "BugCheck 54: LM_SERVER_INTERNAL_ERROR",
    "BugCheck 55: DATA_COHERENCY_EXCEPTION",
    "BugCheck 56: INSTRUCTION_COHERENCY_EXCEPTION",
    "BugCheck 59: PINBALL_FILE_SYSTEM",
    "BugCheck 5A: CRITICAL_SERVICE_FAILED",
    "BugCheck 5B: SET_ENV_VAR_FAILED",
    "BugCheck 5D: UNSUPPORTED_PROCESSOR",
    "BugCheck 5E: OBJECT_INITIALIZATION_FAILED",
    "BugCheck 5F: SECURITY_INITIALIZATION_FAILED",
    "BugCheck 61: HAL1_INITIALIZATION_FAILED",
    "BugCheck 65: MEMORY1_INITIALIZATION_FAILED",
    "BugCheck 66: CACHE_INITIALIZATION_FAILED",
    "BugCheck 69: IO1_INITIALIZATION_FAILED",
    "BugCheck 6A: LPC_INITIALIZATION_FAILED",
    "BugCheck 6C: REFMON_INITIALIZATION_FAILED",
    "BugCheck 6D: SESSION1_INITIALIZATION_FAILED",
    "BugCheck 6E: SESSION2_INITIALIZATION_FAILED",
    "BugCheck 6F: SESSION3_INITIALIZATION_FAILED",
    "BugCheck 71: SESSION5_INITIALIZATION_FAILED",
    "BugCheck 78: PHASE0_EXCEPTION",
    "BugCheck 7C: BUGCODE_NDIS_DRIVER",
    "BugCheck 81: SPIN_LOCK_INIT_FAILURE",
    "BugCheck 8B: MBR_CHECKSUM_MISMATCH",
    "BugCheck 8F: PP0_INITIALIZATION_FAILED",
    "BugCheck 90: PP1_INITIALIZATION_FAILED",
    "BugCheck 92: UP_DRIVER_ON_MP_SYSTEM",
    "BugCheck 94: KERNEL_STACK_LOCKED_AT_EXIT",
    "BugCheck 97: BOUND_IMAGE_UNSUPPORTED",
    "BugCheck 98: END_OF_NT_EVALUATION_PERIOD",
    "BugCheck 9A: SYSTEM_LICENSE_VIOLATION",
    "BugCheck 9B: UDFS_FILE_SYSTEM",
    "BugCheck A2: MEMORY_IMAGE_CORRUPT",
    "BugCheck A3: ACPI_DRIVER_INTERNAL",
    "BugCheck A4: CNSS_FILE_SYSTEM_FILTER",
    "BugCheck A5: ACPI_BIOS_ERROR",
    "BugCheck A7: BAD_EXHANDLE",
    "BugCheck AC: HAL_MEMORY_ALLOCATION",
    "BugCheck AD: VIDEO_DRIVER_DEBUG_REPORT_REQUEST",
    "BugCheck B4: VIDEO_DRIVER_INIT_FAILURE",
    "BugCheck B9: CHIPSET_DETECTED_ERROR",
    "BugCheck BB: NETWORK_BOOT_INITIALIZATION_FAILED",
    "BugCheck BC: NETWORK_BOOT_DUPLICATE_ADDRESS",
    "BugCheck C6: DRIVER_CAUGHT_MODIFYING_FREED_POOL",
    "BugCheck C7: TIMER_OR_DPC_INVALID",
    "BugCheck C8: IRQL_UNEXPECTED_VALUE",
    "BugCheck D7: DRIVER_UNMAPPING_INVALID_VIEW",
    "BugCheck D8: DRIVER_USED_EXCESSIVE_PTES",
    "BugCheck DC: DRIVER_INVALID_STACK_ACCESS",
    "BugCheck DF: IMPERSONATING_WORKER_THREAD",
    "BugCheck E0: ACPI_BIOS_FATAL_ERROR",
    "BugCheck E9: ACTIVE_EX_WORKER_THREAD_TERMINATION",
    "BugCheck EB: DIRTY_MAPPED_PAGES_CONGESTION",
    "BugCheck EC: SESSION_HAS_VALID_SPECIAL_POOL_ON_EXIT",
    "BugCheck EF: CRITICAL_PROCESS_DIED",
    "BugCheck F1: SCSI_VERIFIER_DETECTED_VIOLATION",
    "BugCheck F3: DISORDERLY_SHUTDOWN",
    "BugCheck F5: FLTMGR_FILE_SYSTEM",
    "BugCheck F6: PCI_VERIFIER_DETECTED_VIOLATION",
    "BugCheck F8: RAMDISK_BOOT_INITIALIZATION_FAILED",
    "BugCheck F9: DRIVER_RETURNED_STATUS_REPARSE_FOR_VOLUME_OPEN",
    "BugCheck FA: HTTP_DRIVER_CORRUPTED",
    "BugCheck FF: RESERVE_QUEUE_OVERFLOW",
    "BugCheck 105: AGP_GART_CORRUPTION",
    "BugCheck 10A: APP_TAGGING_INITIALIZATION_FAILED",
    "BugCheck 10C: FSRTL_EXTRA_CREATE_PARAMETER_VIOLATION",
    "BugCheck 10F: RESOURCE_MANAGER_EXCEPTION_NOT_HANDLED",
    "BugCheck 112: MSRPC_STATE_VIOLATION",
    "BugCheck 113: VIDEO_DXGKRNL_FATAL_ERROR",
    "BugCheck 114: VIDEO_SHADOW_DRIVER_FATAL_ERROR",
    "BugCheck 115: AGP_INTERNAL",
    "BugCheck 119: VIDEO_SCHEDULER_INTERNAL_ERROR",
    "BugCheck 11A: EM_INITIALIZATION_FAILURE",
    "BugCheck 11B: DRIVER_RETURNED_HOLDING_CANCEL_LOCK",
    "BugCheck 11C: ATTEMPTED_WRITE_TO_CM_PROTECTED_STORAGE",
    "BugCheck 11D: EVENT_TRACING_FATAL_ERROR",
    "BugCheck 127: PAGE_NOT_ZERO",
    "BugCheck 12B: FAULTY_HARDWARE_CORRUPTED_PAGE",
    "BugCheck 12C: EXFAT_FILE_SYSTEM",
    "BugCheck C0000221: STATUS_IMAGE_CHECKSUM_MISMATCH",
};

} // namespace

TEST_CASE("every row of the seed's table is in the table, with the seed's name") {
    std::set<uint32_t> seen;
    size_t rows = 0;
    for (const char* row : kSeedRows) {
        std::string r(row);
        REQUIRE(r.rfind("BugCheck ", 0) == 0);
        const auto colon = r.find(": ");
        REQUIRE(colon != std::string::npos);
        const auto code =
            static_cast<uint32_t>(std::strtoul(r.substr(9, colon - 9).c_str(), nullptr, 16));
        const std::string name = r.substr(colon + 2);
        INFO(r);
        auto got = bugcheck_name(code);
        REQUIRE(got.has_value());
        CHECK(std::string(*got) == name);
        CHECK(seen.insert(code).second); // no code twice
        ++rows;
    }
    CHECK(rows == 259);
}

TEST_CASE("the table holds exactly the seed's 259 codes plus the later ones it marks") {
    size_t seed = 0;
    uint32_t last = 0;
    bool first = true;
    for (const auto& n : bugcheck_names()) {
        if (!first) {
            CHECK(n.code > last); // sorted, no duplicates
        }
        first = false;
        last = n.code;
        seed += n.in_seed_table ? 1 : 0;
    }
    CHECK(seed == 259);
    CHECK(std::string(*bugcheck_name(0x133)) == "DPC_WATCHDOG_VIOLATION");
    CHECK(std::string(*bugcheck_name(0x139)) == "KERNEL_SECURITY_CHECK_FAILURE");
    CHECK_FALSE(bugcheck_name(0xC0000142).has_value()); // 000:1286 "Unknown bugcheck code"
    CHECK_FALSE(bugcheck_name(0).has_value());
}

TEST_CASE("0xEF as seed 000 shows it") {
    auto d = describe_bugcheck(0xEF, {0xffffd18c66891580ull, 0, 0, 0});
    CHECK(d.known);
    CHECK(d.name == "CRITICAL_PROCESS_DIED");
    CHECK(d.description == "        A critical system process died");
    CHECK(d.parameters[0] == "Process object or thread object");
    CHECK(d.parameters[1] == "If this is 0, a process died. If this is 1, a thread died.");
    CHECK(d.parameters[2].empty());
    CHECK(d.parameters[3].empty());
}

TEST_CASE("subcodes pick their texts: 0xC2 0, 0x19 2 and 0x20, 0xC4 0xC5 as the seeds show") {
    auto c2 = describe_bugcheck(0xC2, {0, 0, 0, 0});
    CHECK(c2.parameters[0] == "The caller is requesting a zero byte pool allocation.");
    CHECK(c2.parameters[1] == "zero.");
    CHECK(c2.parameters[3] == "the pool tag being used.");
    auto b19 = describe_bugcheck(0x19, {2, 1, 1, 1});
    CHECK(b19.parameters[0] == "the verifier pool pattern check failed.  The owner has likely "
                               "corrupted the pool block");
    CHECK(b19.parameters[3] == "0.");
    auto b19b = describe_bugcheck(0x19, {0x20, 0xa34583b8, 0xa34584f0, 0x0a270001});
    CHECK(b19b.parameters[1] == "The pool entry we were looking for within the page.");
    CHECK(b19b.parameters[3] == "(reserved)");
    auto c4 = describe_bugcheck(0xC4, {0xC5, 0xfffff88001345610ull, 0xffff, 0});
    CHECK(c4.parameters[0] == "Thread APC disable count changed by driver dispatch routine.");
    CHECK(c4.parameters[3].rfind("Thread APC disable count before calling driver dispatch "
                                 "routine.\n      The APC disable count",
                                 0) == 0);
    auto a20 = describe_bugcheck(0x20, {0, 0xffff, 0, 1});
    CHECK(a20.parameters[1] == "The thread's APC disable count");
    CHECK(a20.parameters[3].empty());
    // A subcode without its own text: no meanings (WinDbg prints the bare values).
    auto c4x = describe_bugcheck(0xC4, {0x1234, 0, 0, 0});
    CHECK(c4x.known);
    CHECK(c4x.parameters[0].empty());
    auto f7 = describe_bugcheck(0x7F, {8, 0, 0, 0});
    CHECK(f7.parameters[0] == "EXCEPTION_DOUBLE_FAULT");
}

TEST_CASE("common codes have parameter meanings") {
    for (uint32_t code : {0xAu, 0xD1u, 0x1Eu, 0x3Bu, 0x50u, 0x7Eu, 0xEFu}) {
        auto d = describe_bugcheck(code, {0, 0, 0, 0});
        INFO(code);
        CHECK(d.known);
        CHECK_FALSE(d.description.empty());
        CHECK_FALSE(d.parameters[0].empty());
    }
    CHECK(describe_bugcheck(0x9F, {3, 0, 0, 0}).parameters[3] == "The blocked IRP");
    CHECK_FALSE(describe_bugcheck(0x133, {1, 0, 0, 0}).parameters[1].empty());
    CHECK(describe_bugcheck(0x139, {3, 0, 0, 0}).parameters[0] ==
          "A LIST_ENTRY has been corrupted (i.e. double remove).");
    CHECK(describe_bugcheck(0xE2, {0, 0, 0, 0}).description ==
          "The user manually initiated this crash dump.");
    auto unknown = describe_bugcheck(0xC0000142, {0, 0, 0, 0});
    CHECK_FALSE(unknown.known);
    CHECK(unknown.name.empty());
}
