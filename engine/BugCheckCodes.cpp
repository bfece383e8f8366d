// The bug check table. Names: seed 003's 259-row table (003:337-1371, "documented in WinDbg
// help"), checked row by row by tests/engine/test_bugcheck_codes.cpp, plus a few codes of later
// Windows releases (in_seed_table = false). Descriptions and parameter meanings: the help texts
// of the common codes; where a seed shows the text (000:110-116 for 0xEF, 001:845-851 for 0x20,
// 001:1075-1095 for 0xC4/0xC5, 003:71-91 and 003:109-119 for 0xC2 and 0x19) it is copied as the
// seed prints it.
#include "engine/BugCheckCodes.h"

#include <algorithm>

namespace kdcart::engine {

namespace {

constexpr BugCheckName kNames[] = {
    {0x1, "APC_INDEX_MISMATCH"},
    {0x2, "DEVICE_QUEUE_NOT_BUSY"},
    {0x3, "INVALID_AFFINITY_SET"},
    {0x4, "INVALID_DATA_ACCESS_TRAP"},
    {0x5, "INVALID_PROCESS_ATTACH_ATTEMPT"},
    {0x6, "INVALID_PROCESS_DETACH_ATTEMPT"},
    {0x7, "INVALID_SOFTWARE_INTERRUPT"},
    {0x8, "IRQL_NOT_DISPATCH_LEVEL"},
    {0x9, "IRQL_NOT_GREATER_OR_EQUAL"},
    {0xA, "IRQL_NOT_LESS_OR_EQUAL"},
    {0xB, "NO_EXCEPTION_HANDLING_SUPPORT"},
    {0xC, "MAXIMUM_WAIT_OBJECTS_EXCEEDED"},
    {0xD, "MUTEX_LEVEL_NUMBER_VIOLATION"},
    {0xE, "NO_USER_MODE_CONTEXT"},
    {0xF, "SPIN_LOCK_ALREADY_OWNED"},
    {0x10, "SPIN_LOCK_NOT_OWNED"},
    {0x11, "THREAD_NOT_MUTEX_OWNER"},
    {0x12, "TRAP_CAUSE_UNKNOWN"},
    {0x13, "EMPTY_THREAD_REAPER_LIST"},
    {0x14, "CREATE_DELETE_LOCK_NOT_LOCKED"},
    {0x15, "LAST_CHANCE_CALLED_FROM_KMODE"},
    {0x16, "CID_HANDLE_CREATION"},
    {0x17, "CID_HANDLE_DELETION"},
    {0x18, "REFERENCE_BY_POINTER"},
    {0x19, "BAD_POOL_HEADER"},
    {0x1A, "MEMORY_MANAGEMENT"},
    {0x1B, "PFN_SHARE_COUNT"},
    {0x1C, "PFN_REFERENCE_COUNT"},
    {0x1D, "NO_SPIN_LOCK_AVAILABLE"},
    {0x1E, "KMODE_EXCEPTION_NOT_HANDLED"},
    {0x1F, "SHARED_RESOURCE_CONV_ERROR"},
    {0x20, "KERNEL_APC_PENDING_DURING_EXIT"},
    {0x21, "QUOTA_UNDERFLOW"},
    {0x22, "FILE_SYSTEM"},
    {0x23, "FAT_FILE_SYSTEM"},
    {0x24, "NTFS_FILE_SYSTEM"},
    {0x25, "NPFS_FILE_SYSTEM"},
    {0x26, "CDFS_FILE_SYSTEM"},
    {0x27, "RDR_FILE_SYSTEM"},
    {0x28, "CORRUPT_ACCESS_TOKEN"},
    {0x29, "SECURITY_SYSTEM"},
    {0x2A, "INCONSISTENT_IRP"},
    {0x2B, "PANIC_STACK_SWITCH"},
    {0x2C, "PORT_DRIVER_INTERNAL"},
    {0x2D, "SCSI_DISK_DRIVER_INTERNAL"},
    {0x2E, "DATA_BUS_ERROR"},
    {0x2F, "INSTRUCTION_BUS_ERROR"},
    {0x30, "SET_OF_INVALID_CONTEXT"},
    {0x31, "PHASE0_INITIALIZATION_FAILED"},
    {0x32, "PHASE1_INITIALIZATION_FAILED"},
    {0x33, "UNEXPECTED_INITIALIZATION_CALL"},
    {0x34, "CACHE_MANAGER"},
    {0x35, "NO_MORE_IRP_STACK_LOCATIONS"},
    {0x36, "DEVICE_REFERENCE_COUNT_NOT_ZERO"},
    {0x37, "FLOPPY_INTERNAL_ERROR"},
    {0x38, "SERIAL_DRIVER_INTERNAL"},
    {0x39, "SYSTEM_EXIT_OWNED_MUTEX"},
    {0x3A, "SYSTEM_UNWIND_PREVIOUS_USER"},
    {0x3B, "SYSTEM_SERVICE_EXCEPTION"},
    {0x3C, "INTERRUPT_UNWIND_ATTEMPTED"},
    {0x3D, "INTERRUPT_EXCEPTION_NOT_HANDLED"},
    {0x3E, "MULTIPROCESSOR_CONFIGURATION_NOT_SUPPORTED"},
    {0x3F, "NO_MORE_SYSTEM_PTES"},
    {0x40, "TARGET_MDL_TOO_SMALL"},
    {0x41, "MUST_SUCCEED_POOL_EMPTY"},
    {0x42, "ATDISK_DRIVER_INTERNAL"},
    {0x43, "NO_SUCH_PARTITION"},
    {0x44, "MULTIPLE_IRP_COMPLETE_REQUESTS"},
    {0x45, "INSUFFICIENT_SYSTEM_MAP_REGS"},
    {0x46, "DEREF_UNKNOWN_LOGON_SESSION"},
    {0x47, "REF_UNKNOWN_LOGON_SESSION"},
    {0x48, "CANCEL_STATE_IN_COMPLETED_IRP"},
    {0x49, "PAGE_FAULT_WITH_INTERRUPTS_OFF"},
    {0x4A, "IRQL_GT_ZERO_AT_SYSTEM_SERVICE"},
    {0x4B, "STREAMS_INTERNAL_ERROR"},
    {0x4C, "FATAL_UNHANDLED_HARD_ERROR"},
    {0x4D, "NO_PAGES_AVAILABLE"},
    {0x4E, "PFN_LIST_CORRUPT"},
    {0x4F, "NDIS_INTERNAL_ERROR"},
    {0x50, "PAGE_FAULT_IN_NONPAGED_AREA"},
    {0x51, "REGISTRY_ERROR"},
    {0x52, "MAILSLOT_FILE_SYSTEM"},
    {0x53, "NO_BOOT_DEVICE"},
    {0x54, "LM_SERVER_INTERNAL_ERROR"},
    {0x55, "DATA_COHERENCY_EXCEPTION"},
    {0x56, "INSTRUCTION_COHERENCY_EXCEPTION"},
    {0x57, "XNS_INTERNAL_ERROR"},
    {0x58, "FTDISK_INTERNAL_ERROR"},
    {0x59, "PINBALL_FILE_SYSTEM"},
    {0x5A, "CRITICAL_SERVICE_FAILED"},
    {0x5B, "SET_ENV_VAR_FAILED"},
    {0x5C, "HAL_INITIALIZATION_FAILED"},
    {0x5D, "UNSUPPORTED_PROCESSOR"},
    {0x5E, "OBJECT_INITIALIZATION_FAILED"},
    {0x5F, "SECURITY_INITIALIZATION_FAILED"},
    {0x60, "PROCESS_INITIALIZATION_FAILED"},
    {0x61, "HAL1_INITIALIZATION_FAILED"},
    {0x62, "OBJECT1_INITIALIZATION_FAILED"},
    {0x63, "SECURITY1_INITIALIZATION_FAILED"},
    {0x64, "SYMBOLIC_INITIALIZATION_FAILED"},
    {0x65, "MEMORY1_INITIALIZATION_FAILED"},
    {0x66, "CACHE_INITIALIZATION_FAILED"},
    {0x67, "CONFIG_INITIALIZATION_FAILED"},
    {0x68, "FILE_INITIALIZATION_FAILED"},
    {0x69, "IO1_INITIALIZATION_FAILED"},
    {0x6A, "LPC_INITIALIZATION_FAILED"},
    {0x6B, "PROCESS1_INITIALIZATION_FAILED"},
    {0x6C, "REFMON_INITIALIZATION_FAILED"},
    {0x6D, "SESSION1_INITIALIZATION_FAILED"},
    {0x6E, "SESSION2_INITIALIZATION_FAILED"},
    {0x6F, "SESSION3_INITIALIZATION_FAILED"},
    {0x70, "SESSION4_INITIALIZATION_FAILED"},
    {0x71, "SESSION5_INITIALIZATION_FAILED"},
    {0x72, "ASSIGN_DRIVE_LETTERS_FAILED"},
    {0x73, "CONFIG_LIST_FAILED"},
    {0x74, "BAD_SYSTEM_CONFIG_INFO"},
    {0x75, "CANNOT_WRITE_CONFIGURATION"},
    {0x76, "PROCESS_HAS_LOCKED_PAGES"},
    {0x77, "KERNEL_STACK_INPAGE_ERROR"},
    {0x78, "PHASE0_EXCEPTION"},
    {0x79, "MISMATCHED_HAL"},
    {0x7A, "KERNEL_DATA_INPAGE_ERROR"},
    {0x7B, "INACCESSIBLE_BOOT_DEVICE"},
    {0x7C, "BUGCODE_NDIS_DRIVER"},
    {0x7D, "INSTALL_MORE_MEMORY"},
    {0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"},
    {0x7F, "UNEXPECTED_KERNEL_MODE_TRAP"},
    {0x80, "NMI_HARDWARE_FAILURE"},
    {0x81, "SPIN_LOCK_INIT_FAILURE"},
    {0x82, "DFS_FILE_SYSTEM"},
    {0x85, "SETUP_FAILURE"},
    {0x8B, "MBR_CHECKSUM_MISMATCH"},
    {0x8E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED"},
    {0x8F, "PP0_INITIALIZATION_FAILED"},
    {0x90, "PP1_INITIALIZATION_FAILED"},
    {0x92, "UP_DRIVER_ON_MP_SYSTEM"},
    {0x93, "INVALID_KERNEL_HANDLE"},
    {0x94, "KERNEL_STACK_LOCKED_AT_EXIT"},
    {0x96, "INVALID_WORK_QUEUE_ITEM"},
    {0x97, "BOUND_IMAGE_UNSUPPORTED"},
    {0x98, "END_OF_NT_EVALUATION_PERIOD"},
    {0x99, "INVALID_REGION_OR_SEGMENT"},
    {0x9A, "SYSTEM_LICENSE_VIOLATION"},
    {0x9B, "UDFS_FILE_SYSTEM"},
    {0x9C, "MACHINE_CHECK_EXCEPTION"},
    {0x9E, "USER_MODE_HEALTH_MONITOR"},
    {0x9F, "DRIVER_POWER_STATE_FAILURE"},
    {0xA0, "INTERNAL_POWER_ERROR"},
    {0xA1, "PCI_BUS_DRIVER_INTERNAL"},
    {0xA2, "MEMORY_IMAGE_CORRUPT"},
    {0xA3, "ACPI_DRIVER_INTERNAL"},
    {0xA4, "CNSS_FILE_SYSTEM_FILTER"},
    {0xA5, "ACPI_BIOS_ERROR"},
    {0xA7, "BAD_EXHANDLE"},
    {0xAB, "SESSION_HAS_VALID_POOL_ON_EXIT"},
    {0xAC, "HAL_MEMORY_ALLOCATION"},
    {0xAD, "VIDEO_DRIVER_DEBUG_REPORT_REQUEST"},
    {0xB4, "VIDEO_DRIVER_INIT_FAILURE"},
    {0xB8, "ATTEMPTED_SWITCH_FROM_DPC"},
    {0xB9, "CHIPSET_DETECTED_ERROR"},
    {0xBA, "SESSION_HAS_VALID_VIEWS_ON_EXIT"},
    {0xBB, "NETWORK_BOOT_INITIALIZATION_FAILED"},
    {0xBC, "NETWORK_BOOT_DUPLICATE_ADDRESS"},
    {0xBE, "ATTEMPTED_WRITE_TO_READONLY_MEMORY"},
    {0xBF, "MUTEX_ALREADY_OWNED"},
    {0xC1, "SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION"},
    {0xC2, "BAD_POOL_CALLER"},
    {0xC4, "DRIVER_VERIFIER_DETECTED_VIOLATION"},
    {0xC5, "DRIVER_CORRUPTED_EXPOOL"},
    {0xC6, "DRIVER_CAUGHT_MODIFYING_FREED_POOL"},
    {0xC7, "TIMER_OR_DPC_INVALID"},
    {0xC8, "IRQL_UNEXPECTED_VALUE"},
    {0xC9, "DRIVER_VERIFIER_IOMANAGER_VIOLATION"},
    {0xCA, "PNP_DETECTED_FATAL_ERROR"},
    {0xCB, "DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS"},
    {0xCC, "PAGE_FAULT_IN_FREED_SPECIAL_POOL"},
    {0xCD, "PAGE_FAULT_BEYOND_END_OF_ALLOCATION"},
    {0xCE, "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS"},
    {0xCF, "TERMINAL_SERVER_DRIVER_MADE_INCORRECT_MEMORY_REFERENCE"},
    {0xD0, "DRIVER_CORRUPTED_MMPOOL"},
    {0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL"},
    {0xD2, "BUGCODE_ID_DRIVER"},
    {0xD3, "DRIVER_PORTION_MUST_BE_NONPAGED"},
    {0xD4, "SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD"},
    {0xD5, "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL"},
    {0xD6, "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION"},
    {0xD7, "DRIVER_UNMAPPING_INVALID_VIEW"},
    {0xD8, "DRIVER_USED_EXCESSIVE_PTES"},
    {0xD9, "LOCKED_PAGES_TRACKER_CORRUPTION"},
    {0xDA, "SYSTEM_PTE_MISUSE"},
    {0xDB, "DRIVER_CORRUPTED_SYSPTES"},
    {0xDC, "DRIVER_INVALID_STACK_ACCESS"},
    {0xDE, "POOL_CORRUPTION_IN_FILE_AREA"},
    {0xDF, "IMPERSONATING_WORKER_THREAD"},
    {0xE0, "ACPI_BIOS_FATAL_ERROR"},
    {0xE1, "WORKER_THREAD_RETURNED_AT_BAD_IRQL"},
    {0xE2, "MANUALLY_INITIATED_CRASH"},
    {0xE3, "RESOURCE_NOT_OWNED"},
    {0xE4, "WORKER_INVALID"},
    {0xE6, "DRIVER_VERIFIER_DMA_VIOLATION"},
    {0xE7, "INVALID_FLOATING_POINT_STATE"},
    {0xE8, "INVALID_CANCEL_OF_FILE_OPEN"},
    {0xE9, "ACTIVE_EX_WORKER_THREAD_TERMINATION"},
    {0xEA, "THREAD_STUCK_IN_DEVICE_DRIVER"},
    {0xEB, "DIRTY_MAPPED_PAGES_CONGESTION"},
    {0xEC, "SESSION_HAS_VALID_SPECIAL_POOL_ON_EXIT"},
    {0xED, "UNMOUNTABLE_BOOT_VOLUME"},
    {0xEF, "CRITICAL_PROCESS_DIED"},
    {0xF1, "SCSI_VERIFIER_DETECTED_VIOLATION"},
    {0xF2, "HARDWARE_INTERRUPT_STORM", false},
    {0xF3, "DISORDERLY_SHUTDOWN"},
    {0xF4, "CRITICAL_OBJECT_TERMINATION"},
    {0xF5, "FLTMGR_FILE_SYSTEM"},
    {0xF6, "PCI_VERIFIER_DETECTED_VIOLATION"},
    {0xF7, "DRIVER_OVERRAN_STACK_BUFFER"},
    {0xF8, "RAMDISK_BOOT_INITIALIZATION_FAILED"},
    {0xF9, "DRIVER_RETURNED_STATUS_REPARSE_FOR_VOLUME_OPEN"},
    {0xFA, "HTTP_DRIVER_CORRUPTED"},
    {0xFC, "ATTEMPTED_EXECUTE_OF_NOEXECUTE_MEMORY"},
    {0xFD, "DIRTY_NOWRITE_PAGES_CONGESTION"},
    {0xFE, "BUGCODE_USB_DRIVER"},
    {0xFF, "RESERVE_QUEUE_OVERFLOW"},
    {0x100, "LOADER_BLOCK_MISMATCH"},
    {0x101, "CLOCK_WATCHDOG_TIMEOUT"},
    {0x104, "AGP_INVALID_ACCESS"},
    {0x105, "AGP_GART_CORRUPTION"},
    {0x106, "AGP_ILLEGALLY_REPROGRAMMED"},
    {0x108, "THIRD_PARTY_FILE_SYSTEM_FAILURE"},
    {0x109, "CRITICAL_STRUCTURE_CORRUPTION"},
    {0x10A, "APP_TAGGING_INITIALIZATION_FAILED"},
    {0x10C, "FSRTL_EXTRA_CREATE_PARAMETER_VIOLATION"},
    {0x10D, "WDF_VIOLATION"},
    {0x10E, "VIDEO_MEMORY_MANAGEMENT_INTERNAL"},
    {0x10F, "RESOURCE_MANAGER_EXCEPTION_NOT_HANDLED"},
    {0x111, "RECURSIVE_NMI"},
    {0x112, "MSRPC_STATE_VIOLATION"},
    {0x113, "VIDEO_DXGKRNL_FATAL_ERROR"},
    {0x114, "VIDEO_SHADOW_DRIVER_FATAL_ERROR"},
    {0x115, "AGP_INTERNAL"},
    {0x116, "VIDEO_TDR_ERROR"},
    {0x117, "VIDEO_TDR_TIMEOUT_DETECTED"},
    {0x119, "VIDEO_SCHEDULER_INTERNAL_ERROR"},
    {0x11A, "EM_INITIALIZATION_FAILURE"},
    {0x11B, "DRIVER_RETURNED_HOLDING_CANCEL_LOCK"},
    {0x11C, "ATTEMPTED_WRITE_TO_CM_PROTECTED_STORAGE"},
    {0x11D, "EVENT_TRACING_FATAL_ERROR"},
    {0x121, "DRIVER_VIOLATION"},
    {0x122, "WHEA_INTERNAL_ERROR"},
    {0x124, "WHEA_UNCORRECTABLE_ERROR"},
    {0x127, "PAGE_NOT_ZERO"},
    {0x12B, "FAULTY_HARDWARE_CORRUPTED_PAGE"},
    {0x12C, "EXFAT_FILE_SYSTEM"},
    {0x12E, "INVALID_MDL_RANGE", false},
    {0x131, "INVALID_EXTENDED_PROCESSOR_STATE", false},
    {0x133, "DPC_WATCHDOG_VIOLATION", false},
    {0x139, "KERNEL_SECURITY_CHECK_FAILURE", false},
    {0x13A, "KERNEL_MODE_HEAP_CORRUPTION", false},
    {0x144, "BUGCODE_USB3_DRIVER", false},
    {0x149, "REFS_FILE_SYSTEM", false},
    {0x154, "UNEXPECTED_STORE_EXCEPTION", false},
    {0x157, "KERNEL_THREAD_PRIORITY_FLOOR_VIOLATION", false},
    {0x15F, "CONNECTED_STANDBY_WATCHDOG_TIMEOUT_LIVEDUMP", false},
    {0x160, "WIN32K_ATOMIC_CHECK_FAILURE", false},
    {0x161, "LIVE_SYSTEM_DUMP", false},
    {0x162, "KERNEL_AUTO_BOOST_INVALID_LOCK_RELEASE", false},
    {0x164, "WIN32K_CRITICAL_FAILURE", false},
    {0x189, "BAD_OBJECT_HEADER", false},
    {0x18B, "SECURE_KERNEL_ERROR", false},
    {0x1C7, "STORE_DATA_STRUCTURE_CORRUPTION", false},
    {0x1CA, "SYNTHETIC_WATCHDOG_TIMEOUT", false},
    {0x20001, "HYPERVISOR_ERROR", false},
    {0x1000007E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"},
    {0x1000007F, "UNEXPECTED_KERNEL_MODE_TRAP_M"},
    {0x1000008E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED_M"},
    {0x100000EA, "THREAD_STUCK_IN_DEVICE_DRIVER_M"},
    {0xC0000218, "STATUS_CANNOT_LOAD_REGISTRY_FILE"},
    {0xC000021A, "STATUS_SYSTEM_PROCESS_TERMINATED"},
    {0xC0000221, "STATUS_IMAGE_CHECKSUM_MISMATCH"},
    {0xDEADDEAD, "MANUALLY_INITIATED_CRASH1"},
};

struct Help {
    uint32_t code;
    const char* description; // lines separated by '\n'
};

// Parameter meanings; `arg1` set = only when the first parameter has that value (a subcode).
struct Params {
    uint32_t code;
    std::optional<uint64_t> arg1;
    const char* text[4];
};

const Help kHelp[] = {
    {0x1, "This is a kernel internal error. The most common reason to see this\n"
          "bugcheck is when a filesystem or a driver has a mismatched number of\n"
          "calls to disable and re-enable APCs."},
    {0xA, "An attempt was made to access a pageable (or completely invalid) address at an\n"
          "interrupt request level (IRQL) that is too high.  This is usually\n"
          "caused by drivers using improper addresses.\n"
          "If a kernel debugger is available get the stack backtrace."},
    {0x19, "The pool is already corrupt at the time of the current request.\n"
           "This may or may not be due to the caller.\n"
           "The internal pool links must be walked to figure out a possible cause of\n"
           "the problem, and then special pool applied to the suspect tags or the driver\n"
           "verifier to a suspect driver."},
    {0x1A, "    # Any other values for parameter 1 must be individually examined."},
    {0x1E, "This is a very common bugcheck.  Usually the exception address pinpoints\n"
           "the driver/function that caused the problem.  Always note this address\n"
           "as well as the link date of the driver/image that contains this address."},
    {0x20, "The key data item is the thread's APC disable count.\n"
           "If this is non-zero, then this is the source of the problem."},
    {0x3B, "An exception happened while executing a system service routine."},
    {0x50, "Invalid system memory was referenced.  This cannot be protected by try-except.\n"
           "Typically the address is just plain bad or it is pointing at freed memory."},
    {0x7E, "This is a very common bugcheck.  Usually the exception address pinpoints\n"
           "the driver/function that caused the problem.  Always note this address\n"
           "as well as the link date of the driver/image that contains this address."},
    {0x7F, "This means a trap occurred in kernel mode, and it's a trap of a kind\n"
           "that the kernel isn't allowed to have/catch (bound trap) or that\n"
           "is always instant death (double fault).  The first number in the\n"
           "bugcheck params is the number of the trap (8 = double fault, etc)\n"
           "Consult an Intel x86 family manual to learn more about what these\n"
           "traps are."},
    {0x9F, "A driver has failed to complete a power IRP within a specific time."},
    {0xC2, "The current thread is making a bad pool request.  Typically this is at a bad "
           "IRQL level or double freeing the same allocation, etc."},
    {0xC4, "A device driver attempting to corrupt the system has been caught.  This is\n"
           "because the driver was specified in the registry as being suspect (by the\n"
           "administrator) and the kernel has enabled substantial checking of this driver.\n"
           "If the driver attempts to corrupt the system, bugchecks 0xC4, 0xC1 and 0xA will\n"
           "be among the most commonly seen crashes."},
    {0xD1, "An attempt was made to access a pageable (or completely invalid) address at an\n"
           "interrupt request level (IRQL) that is too high.  This is usually\n"
           "caused by drivers using improper addresses.\n"
           "If kernel debugger is available get stack backtrace."},
    {0xE2, "The user manually initiated this crash dump."},
    {0xEF, "        A critical system process died"},
    {0x133, "The DPC watchdog detected a prolonged run time at an IRQL of DISPATCH_LEVEL\n"
            "or above."},
    {0x139, "A kernel component has corrupted a critical data structure.  The corruption\n"
            "could potentially allow a malicious user to gain control of this machine."},
    {0x161, "The system administrator requested the collection of a live system memory dump."},
    {0xDEADDEAD, "The user manually initiated this crash dump."},
};

const Params kParams[] = {
    {0x1,
     std::nullopt,
     {"Address of system call function or worker routine", "Thread->ApcStateIndex",
      "(Thread->SpecialApcDisable << 16) | Thread->KernelApcDisable",
      "Call type (0 - system call, 1 - worker routine)"}},
    {0xA,
     std::nullopt,
     {"memory referenced", "IRQL",
      "bitfield :\n"
      "\tbit 0 : value 0 = read operation, 1 = write operation\n"
      "\tbit 3 : value 0 = not an execute operation, 1 = execute operation (only on chips "
      "which support this level of status)",
      "address which referenced memory"}},
    {0x19,
     0x2,
     {"the verifier pool pattern check failed.  The owner has likely corrupted the pool block",
      "the pool entry being checked.", "size of the block.", "0."}},
    {0x19,
     0x3,
     {"the pool freelist is corrupt.", "the pool entry being checked.",
      "the read back flink freelist value (should be the same as 2).",
      "the read back blink freelist value (should be the same as 2)."}},
    {0x19,
     0x20,
     {"a pool block header size is corrupt.", "The pool entry we were looking for within the page.",
      "The next pool entry.", "(reserved)"}},
    {0x1E,
     std::nullopt,
     {"The exception code that was not handled", "The address that the exception occurred at",
      "Parameter 0 of the exception", "Parameter 1 of the exception"}},
    {0x20,
     std::nullopt,
     {"The address of the APC found pending during exit.", "The thread's APC disable count",
      "The current IRQL", ""}},
    {0x3B,
     std::nullopt,
     {"Exception code that caused the BugCheck",
      "Address of the instruction which caused the BugCheck",
      "Address of the context record for the exception that caused the BugCheck", "zero."}},
    {0x50,
     std::nullopt,
     {"memory referenced.", "value 0 = read operation, 1 = write operation.",
      "If non-zero, the instruction address which referenced the bad memory\n\taddress.",
      "(reserved)"}},
    {0x7E,
     std::nullopt,
     {"The exception code that was not handled", "The address that the exception occurred at",
      "Exception Record Address", "Context Record Address"}},
    {0x7F, 0x0, {"EXCEPTION_DIVIDED_BY_ZERO", "", "", ""}},
    {0x7F, 0x1, {"EXCEPTION_DEBUG", "", "", ""}},
    {0x7F, 0x2, {"EXCEPTION_NMI", "", "", ""}},
    {0x7F, 0x3, {"EXCEPTION_INT3", "", "", ""}},
    {0x7F, 0x5, {"EXCEPTION_BOUND_CHECK", "", "", ""}},
    {0x7F, 0x6, {"EXCEPTION_INVALID_OPCODE", "", "", ""}},
    {0x7F, 0x7, {"EXCEPTION_NPX_NOT_AVAILABLE", "", "", ""}},
    {0x7F, 0x8, {"EXCEPTION_DOUBLE_FAULT", "", "", ""}},
    {0x7F, 0x9, {"EXCEPTION_NPX_OVERRUN", "", "", ""}},
    {0x7F, 0xA, {"EXCEPTION_INVALID_TSS", "", "", ""}},
    {0x7F, 0xB, {"EXCEPTION_SEGMENT_NOT_PRESENT", "", "", ""}},
    {0x7F, 0xC, {"EXCEPTION_STACK_FAULT", "", "", ""}},
    {0x7F, 0xD, {"EXCEPTION_GP_FAULT", "", "", ""}},
    {0x7F, 0xF, {"EXCEPTION_RESERVED_TRAP", "", "", ""}},
    {0x7F, 0x10, {"EXCEPTION_NPX_ERROR", "", "", ""}},
    {0x7F, 0x11, {"EXCEPTION_ALIGNMENT_CHECK", "", "", ""}},
    {0x9F,
     0x1,
     {"A device object is being freed which still has an outstanding power request\n"
      "\twhich it has not completed.",
      "Device object", "", ""}},
    {0x9F,
     0x3,
     {"A device object has been blocking an IRP for too long a time",
      "Physical Device Object of the stack",
      "nt!TRIAGE_9F_POWER on Win7 and higher, otherwise the Functional Device Object of the "
      "stack",
      "The blocked IRP"}},
    {0x9F,
     0x4,
     {"The power transition timed out waiting to synchronize with the Pnp\n\tsubsystem.",
      "Timeout in seconds.", "The thread currently holding on to the Pnp lock.",
      "nt!TRIAGE_9F_PNP on Win7 and higher"}},
    {0xC2,
     0x0,
     {"The caller is requesting a zero byte pool allocation.", "zero.",
      "the pool type being allocated.", "the pool tag being used."}},
    {0xC2,
     0x7,
     {"Attempt to free pool which was already freed", "Pool tag value from the pool header",
      "Contents of the pool block header", "Address of the block of pool being freed"}},
    {0xC4,
     0xC5,
     {"Thread APC disable count changed by driver dispatch routine.",
      "Driver dispatch routine address.", "Current thread APC disable count.",
      "Thread APC disable count before calling driver dispatch routine.\n"
      "      The APC disable count is decremented each time a driver calls\n"
      "      KeEnterCriticalRegion, FsRtlEnterFileSystem, or acquires a mutex. The APC\n"
      "      disable count is incremented each time a driver calls KeLeaveCriticalRegion,\n"
      "      FsRtlExitFileSystem, or KeReleaseMutex. Since these calls should always be in\n"
      "      pairs, this value should be zero when a thread exits. A negative value\n"
      "      indicates that a driver has disabled APC calls without re-enabling them. A\n"
      "      positive value indicates that the reverse is true."}},
    {0xD1,
     std::nullopt,
     {"memory referenced", "IRQL", "value 0 = read operation, 1 = write operation",
      "address which referenced memory"}},
    {0xEF,
     std::nullopt,
     {"Process object or thread object",
      "If this is 0, a process died. If this is 1, a thread died.", "", ""}},
    {0x133,
     0x0,
     {"A single DPC or ISR exceeded its time allotment. The offending\n"
      "\tcomponent can usually be identified with a stack trace.",
      "The DPC time count (in ticks).", "The DPC time allotment (in ticks).",
      "cast to nt!DPC_WATCHDOG_GLOBAL_TRIAGE_BLOCK, which contains\n"
      "\tadditional information regarding this single DPC timeout"}},
    {0x133,
     0x1,
     {"The system cumulatively spent an extended period of time at\n"
      "\tDISPATCH_LEVEL or above. The offending component can usually be\n"
      "\tidentified with a stack trace.",
      "The watchdog period.",
      "cast to nt!DPC_WATCHDOG_GLOBAL_TRIAGE_BLOCK, which contains\n"
      "\tadditional information regarding the cumulative timeout",
      "0"}},
    {0x139,
     0x0,
     {"A stack-based buffer has been overrun (legacy /GS violation).",
      "Address of the trap frame for the exception that caused the BugCheck",
      "Address of the exception record for the exception that caused the BugCheck", "Reserved"}},
    {0x139,
     0x1,
     {"VTGuard instrumentation code detected an attempt to use an illegal\n"
      "\tvirtual function table. Typically, a C++ object was corrupted, and then\n"
      "\ta virtual method call was attempted using the corrupted object's this\n"
      "\tpointer.",
      "Address of the trap frame for the exception that caused the BugCheck",
      "Address of the exception record for the exception that caused the BugCheck", "Reserved"}},
    {0x139,
     0x2,
     {"Stack cookie instrumentation code detected a stack-based\n"
      "\tbuffer overrun (/GS violation).",
      "Address of the trap frame for the exception that caused the BugCheck",
      "Address of the exception record for the exception that caused the BugCheck", "Reserved"}},
    {0x139,
     0x3,
     {"A LIST_ENTRY has been corrupted (i.e. double remove).",
      "Address of the trap frame for the exception that caused the BugCheck",
      "Address of the exception record for the exception that caused the BugCheck", "Reserved"}},
    {0x139,
     std::nullopt,
     {"The type of the failure (the FAST_FAIL_* code).",
      "Address of the trap frame for the exception that caused the BugCheck",
      "Address of the exception record for the exception that caused the BugCheck", "Reserved"}},
};

} // namespace

std::span<const BugCheckName> bugcheck_names() {
    return kNames;
}

std::optional<std::string_view> bugcheck_name(uint32_t code) {
    auto it = std::lower_bound(std::begin(kNames), std::end(kNames), code,
                               [](const BugCheckName& n, uint32_t c) { return n.code < c; });
    if (it == std::end(kNames) || it->code != code) {
        return std::nullopt;
    }
    return it->name;
}

BugCheckDescription describe_bugcheck(uint32_t code, const std::array<uint64_t, 4>& params) {
    BugCheckDescription d;
    auto name = bugcheck_name(code);
    if (!name) {
        return d;
    }
    d.known = true;
    d.name = std::string(*name);
    for (const auto& h : kHelp) {
        if (h.code == code) {
            d.description = h.description;
            break;
        }
    }
    const Params* any = nullptr;
    const Params* exact = nullptr;
    for (const auto& p : kParams) {
        if (p.code != code) {
            continue;
        }
        if (!p.arg1) {
            any = any ? any : &p;
        } else if (*p.arg1 == params[0]) {
            exact = &p;
            break;
        }
    }
    if (const Params* p = exact ? exact : any) {
        for (size_t i = 0; i < 4; ++i) {
            d.parameters[i] = p->text[i];
        }
    }
    return d;
}

} // namespace kdcart::engine
