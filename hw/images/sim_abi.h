/*
 * Contract between the simulated kernel images (hw/images/ *.c sources, built with clang-cl for
 * x86_64-pc-windows-msvc) and the simulator (hw/SimMachine.cpp, built for Linux).
 * C only, fixed-width types spelled so that they mean the same on LLP64 and LP64.
 */
#ifndef KDCART_SIM_ABI_H
#define KDCART_SIM_ABI_H

#define SIM_U64 unsigned long long
#define SIM_U32 unsigned int

/* KUSER_SHARED_DATA: kernel address and the fields the simulator keeps current. */
#define SIM_KUSER_SHARED_DATA 0xFFFFF78000000000ULL
#define SIM_KUSER_TICK_COUNT_MULTIPLIER 0x004  /* ULONG */
#define SIM_KUSER_INTERRUPT_TIME 0x008         /* KSYSTEM_TIME, 100 ns since boot */
#define SIM_KUSER_SYSTEM_TIME 0x014            /* KSYSTEM_TIME, 100 ns since 1601 */
#define SIM_KUSER_IMAGE_NUMBER_LOW 0x02C       /* USHORT */
#define SIM_KUSER_IMAGE_NUMBER_HIGH 0x02E      /* USHORT */
#define SIM_KUSER_NT_SYSTEM_ROOT 0x030         /* WCHAR[260] */
#define SIM_KUSER_NT_BUILD_NUMBER 0x260        /* ULONG */
#define SIM_KUSER_NT_PRODUCT_TYPE 0x264        /* ULONG */
#define SIM_KUSER_PRODUCT_TYPE_IS_VALID 0x268  /* BOOLEAN */
#define SIM_KUSER_NT_MAJOR_VERSION 0x26C       /* ULONG */
#define SIM_KUSER_NT_MINOR_VERSION 0x270       /* ULONG */
#define SIM_KUSER_KD_DEBUGGER_ENABLED 0x2D4    /* BOOLEAN */
#define SIM_KUSER_TICK_COUNT 0x320             /* KSYSTEM_TIME / ULONG64 TickCountQuad */
#define SIM_KUSER_ACTIVE_PROCESSOR_COUNT 0x3C0 /* ULONG */

/* Debug services: int 0x2d with eax = service, rcx/rdx = arguments, then an int3 that the
 * trap handler steps over (as NT's KiDebugServiceTrap does). */
#define SIM_BREAKPOINT_PRINT 1
#define SIM_BREAKPOINT_PROMPT 2
#define SIM_BREAKPOINT_LOAD_SYMBOLS 3 /* rcx = ANSI path (NUL-terminated), rdx = SIM_SYMBOL_INFO*  \
                                       */
#define SIM_BREAKPOINT_UNLOAD_SYMBOLS 4 /* same arguments */

typedef struct SIM_SYMBOL_INFO {
    SIM_U64 BaseOfDll;
    SIM_U32 SizeOfImage;
    SIM_U32 CheckSum;
} SIM_SYMBOL_INFO;

/* DbgBreakPointWithStatus status values. */
#define SIM_DBG_STATUS_CONTROL_C 1
#define SIM_DBG_STATUS_BUGCHECK_FIRST 2

/* The boot information the simulator hands to nt!KiSystemStartup in rcx. */
#define SIM_MAX_BOOT_DRIVERS 8
typedef struct SIM_BOOT_DRIVER {
    SIM_U64 DriverEntry;  /* PDRIVER_INITIALIZE */
    SIM_U64 DriverObject; /* PDRIVER_OBJECT */
    SIM_U64 RegistryPath; /* PUNICODE_STRING */
    SIM_U64 ImageBase;
} SIM_BOOT_DRIVER;

typedef struct SIM_LOADER_BLOCK {
    SIM_U64 DriverCount;
    SIM_BOOT_DRIVER Drivers[SIM_MAX_BOOT_DRIVERS];
} SIM_LOADER_BLOCK;

/* KPCR / KPRCB layout (modelled on Windows 10 x64; advertised in KDDEBUGGER_DATA64). */
#define SIM_KPCR_GDT_BASE 0x000
#define SIM_KPCR_TSS_BASE 0x008
#define SIM_KPCR_SELF 0x018
#define SIM_KPCR_CURRENT_PRCB 0x020
#define SIM_KPCR_IDT_BASE 0x038
#define SIM_KPCR_IRQL 0x050
#define SIM_KPCR_PRCB 0x180

#define SIM_KPRCB_MXCSR 0x000
#define SIM_KPRCB_LEGACY_NUMBER 0x004
#define SIM_KPRCB_CURRENT_THREAD 0x008
#define SIM_KPRCB_NEXT_THREAD 0x010
#define SIM_KPRCB_IDLE_THREAD 0x018
#define SIM_KPRCB_NUMBER 0x024
#define SIM_KPRCB_PROCESSOR_STATE 0x040        /* KPROCESSOR_STATE */
#define SIM_KPRCB_PROC_STATE_SPECIAL_REG 0x040 /* KSPECIAL_REGISTERS, 0xF0 bytes */
#define SIM_KPRCB_PROC_STATE_CONTEXT 0x130     /* CONTEXT, 0x4D0 bytes, 16-aligned */
#define SIM_KPRCB_CPU_TYPE 0x600               /* CHAR */
#define SIM_KPRCB_CPU_ID 0x601                 /* CHAR */
#define SIM_KPRCB_CPU_STEP 0x602               /* USHORT */
#define SIM_KPRCB_MHZ 0x604                    /* ULONG */
#define SIM_KPRCB_VENDOR_STRING 0x608          /* UCHAR[13] */
#define SIM_KPRCB_CONTEXT 0x618                /* PCONTEXT */
#define SIM_KPRCB_PCR_PAGE 0x620               /* ULONG_PTR, PFN of the KPCR page */
#define SIM_KPRCB_DPC_ROUTINE 0x628            /* PVOID (always 0) */
#define SIM_KPRCB_MAX_BREAKPOINTS 0x630        /* ULONG */
#define SIM_KPRCB_MAX_WATCHPOINTS 0x634        /* ULONG */
#define SIM_KPRCB_DEBUGGER_SAVED_IRQL 0x638    /* UCHAR: the IRQL before the debugger ran */
#define SIM_KPRCB_READY_SUMMARY 0x640          /* ULONG: bit P set = DispatcherReadyListHead[P] */
#define SIM_KPRCB_DISPATCHER_READY_LIST_HEAD 0x680 /* LIST_ENTRY[32] of KTHREAD.WaitListEntry */
#define SIM_KPRCB_SIZE 0x900
#define SIM_KPCR_SIZE (SIM_KPCR_PRCB + SIM_KPRCB_SIZE)

/* KTHREAD / ETHREAD / KPROCESS / EPROCESS and the other kernel objects. nt.c declares them under
 * Microsoft's names (_KTHREAD, _EPROCESS, _OBJECT_HEADER, _DRIVER_OBJECT, _IRP, _PEB...) so that
 * its PDB carries them, at these offsets (static asserts there). Except where an x64 ABI fixes
 * them (the KPCR/KPRCB fields that gs: accesses and KDDEBUGGER_DATA64 consumers use, above), the
 * offsets are chosen to differ from every real Windows build: a debugger that reads these
 * structures correctly here must have taken the offsets from the PDB (or KDDEBUGGER_DATA64),
 * not from a table of some build. */
#define SIM_KTHREAD_INITIAL_STACK 0x030
#define SIM_KTHREAD_STACK_LIMIT 0x038
#define SIM_KTHREAD_STACK_BASE 0x040
#define SIM_KTHREAD_KERNEL_STACK 0x060
#define SIM_KTHREAD_TRAP_FRAME 0x098
#define SIM_KTHREAD_APC_STATE 0x0A0 /* KAPC_STATE (0x30) */
#define SIM_KTHREAD_APC_STATE_PROCESS 0x0C0
#define SIM_KTHREAD_WAIT_LIST_ENTRY 0x0D8
#define SIM_KTHREAD_WAIT_BLOCK_LIST 0x0E8 /* KWAIT_BLOCK* */
#define SIM_KTHREAD_WAIT_STATUS 0x0F0
#define SIM_KTHREAD_TEB 0x0F8
#define SIM_KTHREAD_WAIT_BLOCK 0x108 /* KWAIT_BLOCK[4] */
#define SIM_KTHREAD_STATE 0x1C8      /* UCHAR: 1 Ready, 2 Running, 5 Waiting (KTHREAD_STATE) */
#define SIM_KTHREAD_WAIT_IRQL 0x1C9
#define SIM_KTHREAD_WAIT_MODE 0x1CA /* KPROCESSOR_MODE */
#define SIM_KTHREAD_ALERTABLE 0x1CB
#define SIM_KTHREAD_PRIORITY 0x1CC
#define SIM_KTHREAD_BASE_PRIORITY 0x1CD
#define SIM_KTHREAD_WAIT_REASON 0x1CE /* KWAIT_REASON */
#define SIM_KTHREAD_WAIT_TIME 0x1D0   /* ULONG: tick count when the wait began */
#define SIM_KTHREAD_KERNEL_APC_DISABLE 0x1D4
#define SIM_KTHREAD_SPECIAL_APC_DISABLE 0x1D6
#define SIM_KTHREAD_KERNEL_TIME 0x1D8
#define SIM_KTHREAD_USER_TIME 0x1DC
#define SIM_KTHREAD_WIN32_THREAD 0x1E0
#define SIM_KTHREAD_PROCESS 0x1E8
#define SIM_KTHREAD_NEXT_PROCESSOR 0x1F0 /* ULONG */
#define SIM_KTHREAD_QUEUE_LIST_ENTRY 0x1F8
#define SIM_KTHREAD_THREAD_LIST_ENTRY 0x208 /* in KPROCESS.ThreadListHead */
#define SIM_KTHREAD_SIZE 0x440
#define SIM_ETHREAD_CREATE_TIME 0x440
#define SIM_ETHREAD_START_ADDRESS 0x468
#define SIM_ETHREAD_CID 0x470 /* CLIENT_ID {UniqueProcess, UniqueThread} */
#define SIM_ETHREAD_IRP_LIST 0x480
#define SIM_ETHREAD_WIN32_START_ADDRESS 0x490
#define SIM_ETHREAD_THREAD_LIST_ENTRY 0x498 /* in EPROCESS.ThreadListHead */
#define SIM_ETHREAD_SIZE 0x4F0

#define SIM_KWAIT_BLOCK_WAIT_LIST_ENTRY 0x00
#define SIM_KWAIT_BLOCK_WAIT_TYPE 0x10 /* UCHAR: 0 WaitAll, 1 WaitAny */
#define SIM_KWAIT_BLOCK_BLOCK_STATE 0x11
#define SIM_KWAIT_BLOCK_WAIT_KEY 0x12
#define SIM_KWAIT_BLOCK_OBJECT 0x18
#define SIM_KWAIT_BLOCK_THREAD 0x20
#define SIM_KWAIT_BLOCK_SIZE 0x30

#define SIM_KPROCESS_DIRECTORY_TABLE_BASE 0x030
#define SIM_KPROCESS_THREAD_LIST_HEAD 0x040 /* KTHREAD.ThreadListEntry */
#define SIM_KPROCESS_BASE_PRIORITY 0x0B0
#define SIM_KPROCESS_KERNEL_TIME 0x0B4
#define SIM_KPROCESS_USER_TIME 0x0B8
#define SIM_KPROCESS_SIZE 0x2E0
#define SIM_EPROCESS_DIRECTORY_TABLE_BASE SIM_KPROCESS_DIRECTORY_TABLE_BASE /* Pcb first */
#define SIM_EPROCESS_UNIQUE_PROCESS_ID 0x3D8
#define SIM_EPROCESS_ACTIVE_PROCESS_LINKS 0x3E0
#define SIM_EPROCESS_CREATE_TIME 0x3F8
#define SIM_EPROCESS_SESSION 0x468      /* MM_SESSION_SPACE* */
#define SIM_EPROCESS_OBJECT_TABLE 0x4F0 /* HANDLE_TABLE* */
#define SIM_EPROCESS_TOKEN 0x4F8
#define SIM_EPROCESS_INHERITED_FROM_PID 0x510
#define SIM_EPROCESS_PEB 0x528
#define SIM_EPROCESS_IMAGE_FILE_NAME 0x5C0  /* UCHAR[15] */
#define SIM_EPROCESS_THREAD_LIST_HEAD 0x5F8 /* ETHREAD.ThreadListEntry */
#define SIM_EPROCESS_ACTIVE_THREADS 0x608
#define SIM_EPROCESS_SIZE 0x7C8

#define SIM_HANDLE_TABLE_HANDLE_COUNT 0x24 /* LONG */
#define SIM_HANDLE_TABLE_SIZE 0x40
#define SIM_MM_SESSION_SPACE_SESSION_ID 0x0C
#define SIM_MM_SESSION_SPACE_SIZE 0x40

/* Objects: an OBJECT_HEADER before each body, an OBJECT_HEADER_NAME_INFO before the header when
 * InfoMask has bit 0x02. TypeIndex indexes nt!ObTypeIndexTable (not encoded with a cookie). */
#define SIM_OBJECT_HEADER_POINTER_COUNT 0x00
#define SIM_OBJECT_HEADER_HANDLE_COUNT 0x08
#define SIM_OBJECT_HEADER_TYPE_INDEX 0x10 /* UCHAR */
#define SIM_OBJECT_HEADER_INFO_MASK 0x12  /* UCHAR */
#define SIM_OBJECT_HEADER_FLAGS 0x13
#define SIM_OBJECT_HEADER_BODY 0x38
#define SIM_OBJECT_HEADER_NAME_INFO_NAME 0x00 /* UNICODE_STRING */
#define SIM_OBJECT_HEADER_NAME_INFO_DIRECTORY 0x10
#define SIM_OBJECT_HEADER_NAME_INFO_SIZE 0x20
#define SIM_OBJECT_TYPE_NAME 0x00 /* UNICODE_STRING */
#define SIM_OBJECT_TYPE_TYPE_LIST 0x10
#define SIM_OBJECT_TYPE_KEY 0x28
#define SIM_OBJECT_TYPE_INDEX 0x2C /* UCHAR */
#define SIM_OBJECT_TYPE_TOTAL_OBJECTS 0x30
#define SIM_OBJECT_TYPE_TOTAL_HANDLES 0x34
#define SIM_OBJECT_TYPE_SIZE 0x40
#define SIM_MAX_OBJECT_TYPES 64
/* ObTypeIndexTable slots kdsim fills */
#define SIM_OBJ_TYPE_TYPE 2
#define SIM_OBJ_TYPE_DIRECTORY 3
#define SIM_OBJ_TYPE_PROCESS 7
#define SIM_OBJ_TYPE_THREAD 8
#define SIM_OBJ_TYPE_EVENT 16
#define SIM_OBJ_TYPE_DEVICE 33
#define SIM_OBJ_TYPE_DRIVER 34
#define SIM_OBJ_TYPE_FILE 37
/* Object directories (\, \Driver, \Device, \ObjectTypes): 37 hash buckets of
 * OBJECT_DIRECTORY_ENTRY chains; nt!ObpRootDirectoryObject points to the root. */
#define SIM_OBJECT_DIRECTORY_BUCKETS 37
#define SIM_OBJECT_DIRECTORY_HASH_BUCKETS 0x10
#define SIM_OBJECT_DIRECTORY_SIZE 0x140
#define SIM_OBJECT_DIRECTORY_ENTRY_OBJECT 0x00
#define SIM_OBJECT_DIRECTORY_ENTRY_CHAIN_LINK 0x08
#define SIM_OBJECT_DIRECTORY_ENTRY_HASH_VALUE 0x10
#define SIM_OBJECT_DIRECTORY_ENTRY_SIZE 0x18
/* MMPFN (0x30 bytes, layout::MMPFN_SIZE): filled for every page the boot page tables map. */
#define SIM_MMPFN_FLINK 0x00
#define SIM_MMPFN_PTE_ADDRESS 0x08
#define SIM_MMPFN_SHARE_COUNT 0x10
#define SIM_MMPFN_REFERENCE_COUNT 0x18 /* USHORT */
#define SIM_MMPFN_E1 0x1A              /* UCHAR: PageLocation:3, WriteInProgress:1, Modified:1 */
#define SIM_MMPFN_ORIGINAL_PTE 0x20
#define SIM_MMPFN_U4 0x28 /* PteFrame:40, Reserved:23, PrototypePte:1 */
#define SIM_MMPFN_SIZE 0x30
/* Executive resources on nt!ExpSystemResourcesList (ERESOURCE.SystemResourcesList):
 * nt!PiEngineLock held exclusively by System's thread 8 (contention 6), nt!IopDeviceTreeLock
 * shared by it, nt!CmpRegistryLock free. */
#define SIM_ERESOURCE_SYSTEM_RESOURCES_LIST 0x08
#define SIM_ERESOURCE_OWNER_THREAD 0x18
#define SIM_ERESOURCE_OWNER_COUNT 0x20
#define SIM_ERESOURCE_ACTIVE_COUNT 0x28 /* SHORT */
#define SIM_ERESOURCE_FLAG 0x2A         /* USHORT: 0x80 ResourceOwnedExclusive */
#define SIM_ERESOURCE_SHARED_WAITERS 0x2C
#define SIM_ERESOURCE_EXCLUSIVE_WAITERS 0x30
#define SIM_ERESOURCE_CONTENTION_COUNT 0x34
#define SIM_ERESOURCE_SIZE 0x48
#define SIM_ERESOURCE_PI_ENGINE_CONTENTION 6
/* The SMBIOS structure table (types 0, 1, 2, 127) nt!WmipSMBiosTablePhysicalAddress /
 * nt!WmipSMBiosTableLength describe. */
#define SIM_SMBIOS_BIOS_VENDOR "kdsim"
#define SIM_SMBIOS_BIOS_VERSION "1.0"
#define SIM_SMBIOS_BIOS_DATE "12/06/2026"
#define SIM_SMBIOS_BIOS_MAJOR 1
#define SIM_SMBIOS_BIOS_MINOR 2
#define SIM_SMBIOS_SYSTEM_MANUFACTURER "kdcart project"
#define SIM_SMBIOS_SYSTEM_PRODUCT "kdsim x64"
#define SIM_SMBIOS_SYSTEM_VERSION "1.0"
#define SIM_SMBIOS_SYSTEM_SKU "SIM-1"
#define SIM_SMBIOS_SYSTEM_FAMILY "Simulated"
#define SIM_SMBIOS_BOARD_MANUFACTURER "kdcart project"
#define SIM_SMBIOS_BOARD_PRODUCT "kdsim board"
#define SIM_SMBIOS_BOARD_VERSION "1"

/* I/O: DEVICE_OBJECT, DEVOBJ_EXTENSION, IRP and IO_STACK_LOCATION (a pending IRP's stack
 * locations follow it). */
#define SIM_DEVICE_OBJECT_REFERENCE_COUNT 0x04
#define SIM_DEVICE_OBJECT_DRIVER_OBJECT 0x10
#define SIM_DEVICE_OBJECT_NEXT_DEVICE 0x18
#define SIM_DEVICE_OBJECT_ATTACHED_DEVICE 0x20
#define SIM_DEVICE_OBJECT_CURRENT_IRP 0x28
#define SIM_DEVICE_OBJECT_FLAGS 0x38
#define SIM_DEVICE_OBJECT_CHARACTERISTICS 0x3C
#define SIM_DEVICE_OBJECT_DEVICE_EXTENSION 0x48
#define SIM_DEVICE_OBJECT_DEVICE_TYPE 0x50
#define SIM_DEVICE_OBJECT_STACK_SIZE 0x54
#define SIM_DEVICE_OBJECT_DEVICE_OBJECT_EXTENSION 0x140
#define SIM_DEVICE_OBJECT_SIZE 0x160
#define SIM_DEVOBJ_EXTENSION_DEVICE_OBJECT 0x08
#define SIM_DEVOBJ_EXTENSION_ATTACHED_TO 0x38
#define SIM_DEVOBJ_EXTENSION_SIZE 0x48
#define SIM_IRP_FLAGS 0x08
#define SIM_IRP_MDL_ADDRESS 0x10
#define SIM_IRP_ASSOCIATED_IRP 0x18
#define SIM_IRP_IO_STATUS 0x20 /* IO_STATUS_BLOCK {Status, Information} */
#define SIM_IRP_THREAD_LIST_ENTRY 0x30
#define SIM_IRP_REQUESTOR_MODE 0x41
#define SIM_IRP_PENDING_RETURNED 0x42
#define SIM_IRP_STACK_COUNT 0x43
#define SIM_IRP_CURRENT_LOCATION 0x44
#define SIM_IRP_CANCEL 0x45
#define SIM_IRP_CANCEL_IRQL 0x46
#define SIM_IRP_USER_IOSB 0x50
#define SIM_IRP_USER_EVENT 0x58
#define SIM_IRP_CANCEL_ROUTINE 0x70
#define SIM_IRP_USER_BUFFER 0x78
#define SIM_IRP_TAIL 0x80
#define SIM_IRP_TAIL_OVERLAY_THREAD 0xA0
#define SIM_IRP_TAIL_OVERLAY_CURRENT_STACK_LOCATION 0xC0
#define SIM_IRP_TAIL_OVERLAY_ORIGINAL_FILE_OBJECT 0xC8
#define SIM_IRP_SIZE 0xD8
#define SIM_IO_STACK_LOCATION_MAJOR_FUNCTION 0x00
#define SIM_IO_STACK_LOCATION_MINOR_FUNCTION 0x01
#define SIM_IO_STACK_LOCATION_FLAGS 0x02
#define SIM_IO_STACK_LOCATION_CONTROL 0x03
#define SIM_IO_STACK_LOCATION_PARAMETERS 0x08
#define SIM_IO_STACK_LOCATION_DEVICE_OBJECT 0x30
#define SIM_IO_STACK_LOCATION_FILE_OBJECT 0x38
#define SIM_IO_STACK_LOCATION_COMPLETION_ROUTINE 0x40
#define SIM_IO_STACK_LOCATION_CONTEXT 0x48
#define SIM_IO_STACK_LOCATION_SIZE 0x50

/* User mode: PEB, PEB_LDR_DATA, LDR_DATA_TABLE_ENTRY, RTL_USER_PROCESS_PARAMETERS. */
#define SIM_PEB_BEING_DEBUGGED 0x02
#define SIM_PEB_IMAGE_BASE_ADDRESS 0x18
#define SIM_PEB_LDR 0x20
#define SIM_PEB_PROCESS_PARAMETERS 0x28
#define SIM_PEB_PROCESS_HEAP 0x38
#define SIM_PEB_NUMBER_OF_PROCESSORS 0xC0
#define SIM_PEB_OS_MAJOR_VERSION 0x120
#define SIM_PEB_OS_MINOR_VERSION 0x124
#define SIM_PEB_OS_BUILD_NUMBER 0x128 /* USHORT */
#define SIM_PEB_SESSION_ID 0x2C8
#define SIM_PEB_SIZE 0x7D0
#define SIM_PEB_LDR_DATA_INITIALIZED 0x04
#define SIM_PEB_LDR_DATA_IN_LOAD_ORDER 0x18
#define SIM_PEB_LDR_DATA_IN_MEMORY_ORDER 0x28
#define SIM_PEB_LDR_DATA_IN_INIT_ORDER 0x38
#define SIM_PEB_LDR_DATA_SIZE 0x60
#define SIM_LDR_ENTRY_IN_LOAD_ORDER 0x00
#define SIM_LDR_ENTRY_IN_MEMORY_ORDER 0x10
#define SIM_LDR_ENTRY_IN_INIT_ORDER 0x20
#define SIM_LDR_ENTRY_DLL_BASE 0x38
#define SIM_LDR_ENTRY_ENTRY_POINT 0x40
#define SIM_LDR_ENTRY_SIZE_OF_IMAGE 0x48
#define SIM_LDR_ENTRY_FULL_DLL_NAME 0x50
#define SIM_LDR_ENTRY_BASE_DLL_NAME 0x60
#define SIM_LDR_ENTRY_SIZE 0x120
#define SIM_PROCESS_PARAMETERS_IMAGE_PATH_NAME 0x68
#define SIM_PROCESS_PARAMETERS_COMMAND_LINE 0x78
#define SIM_PROCESS_PARAMETERS_SIZE 0x400

/* The break-in period kdtest uses between iterations, and how often it prints. */
#define SIM_KDTEST_PERIOD_MS 100
#define SIM_KDTEST_PRINT_INTERVAL_MS 2000
/* kdtest's loop calls KdTestPagedFunction (section PAGEKD, paged out at boot) from this
 * iteration on (the default of the exported, writable KdTestPagedStartIteration). */
#define SIM_KDTEST_PAGED_START_ITERATION 60
/* kdlate.sys (loaded after boot) runs KdLateWork from a periodic timer DPC. */
#define SIM_KDLATE_PERIOD_MS 500

/* Simulated interrupts. At a clock tick the simulator makes a halted processor (the last one)
 * take an "interrupt": it pushes the RIP after the hlt and jumps to nt!KiSimInterrupt, which
 * saves the volatile registers, runs nt!KiSimDispatchInterrupt (driver load/unload requests,
 * expired timers and their DPCs) and returns. The simulator only does so when there is work:
 * a request in nt!KiSimDriverRequest, or nt!KiSimNextTimerDue (interrupt time, 100 ns units;
 * SIM_TIMER_NONE = none) has passed. */
#define SIM_TIMER_NONE 0xFFFFFFFFFFFFFFFFULL

/* Opaque sizes of KDPC and KTIMER for drivers (nt.c defines the contents). */
#define SIM_KDPC_SIZE 0x40
#define SIM_KTIMER_SIZE 0x40

/* A driver load or unload that the simulator (playing MmLoadSystemImage: it maps the image and
 * builds the loader entry) asks nt to finish (link the entry into PsLoadedModuleList,
 * DbgLoadImageSymbols, DriverEntry; or DriverUnload, DbgUnLoadImageSymbols, unlink). nt clears
 * Operation and bumps Completed when done; the simulator then unmaps an unloaded image. */
#define SIM_DRIVER_OP_NONE 0
#define SIM_DRIVER_OP_LOAD 1
#define SIM_DRIVER_OP_UNLOAD 2
typedef struct SIM_DRIVER_REQUEST {
    SIM_U64 Operation;    /* SIM_DRIVER_OP_* */
    SIM_U64 LdrEntry;     /* KLDR_DATA_TABLE_ENTRY */
    SIM_U64 DriverObject; /* DRIVER_OBJECT */
    SIM_U64 RegistryPath; /* UNICODE_STRING* */
    SIM_U64 ImageName;    /* STRING* (ANSI path, as DbgLoadImageSymbols takes it) */
    SIM_U64 Status;       /* DriverEntry's NTSTATUS (sign-extended) */
    SIM_U64 Completed;    /* requests completed so far */
} SIM_DRIVER_REQUEST;

/* KTRAP_FRAME (Windows x64 field names and order, 0x10 bytes more after MxCsr than any real
 * build) and KSWITCH_FRAME. Threads that are not running keep the latter at KTHREAD.KernelStack:
 * the return address into the function that switched them out and their rbp. The trap-frame
 * entries (nt.c: KiSystemCall64, KiDpcInterrupt) build the former under a machine frame that
 * ends it: Rip, SegCs, EFlags, Rsp, SegSs, 8 bytes each. */
#define SIM_KTRAP_FRAME_PREVIOUS_MODE 0x028
#define SIM_KTRAP_FRAME_RAX 0x040
#define SIM_KTRAP_FRAME_RCX 0x048
#define SIM_KTRAP_FRAME_RDX 0x050
#define SIM_KTRAP_FRAME_R8 0x058
#define SIM_KTRAP_FRAME_R9 0x060
#define SIM_KTRAP_FRAME_R10 0x068
#define SIM_KTRAP_FRAME_R11 0x070
#define SIM_KTRAP_FRAME_RBX 0x150
#define SIM_KTRAP_FRAME_RDI 0x158
#define SIM_KTRAP_FRAME_RSI 0x160
#define SIM_KTRAP_FRAME_RBP 0x168
#define SIM_KTRAP_FRAME_RIP 0x178
#define SIM_KTRAP_FRAME_SEG_CS 0x180
#define SIM_KTRAP_FRAME_EFLAGS 0x188
#define SIM_KTRAP_FRAME_RSP 0x190
#define SIM_KTRAP_FRAME_SEG_SS 0x198
#define SIM_KTRAP_FRAME_SIZE 0x1A0
#define SIM_KSWITCH_FRAME_RBP 0x030
#define SIM_KSWITCH_FRAME_RETURN 0x038
#define SIM_KSWITCH_FRAME_SIZE 0x040
/* Threads nt parks at boot (KiSimParkThreads): a waiting thread's stack is built by running the
 * wait path on it up to the context switch; a ready one is preempted by a DPC interrupt and
 * queued in its processor's ready list. The simulator fills nt!KiSimParkList. */
#define SIM_MAX_PARKED_THREADS 16
#define SIM_USER_MODE 1
/* Where a parked user-mode wait entered the kernel: ntdll (0x7FFCE5B00000, in each PEB's loader
 * list; not mapped) NtWaitForSingleObject's syscall + 2. */
#define SIM_USER_SYSCALL_RIP 0x00007FFCE5B9D0F4ULL

/* DRIVER_OBJECT (not the DDK's layout: see the KTHREAD block above) and the KLDR_DATA_TABLE_ENTRY
 * fields nt uses (the loader entry keeps the layout every x64 build shares). */
#define SIM_DRIVER_OBJECT_FLAGS 0x04
#define SIM_DRIVER_OBJECT_DEVICE_OBJECT 0x10
#define SIM_DRIVER_OBJECT_DRIVER_START 0x20
#define SIM_DRIVER_OBJECT_DRIVER_SIZE 0x28 /* ULONG */
#define SIM_DRIVER_OBJECT_DRIVER_SECTION 0x30
#define SIM_DRIVER_OBJECT_DRIVER_EXTENSION 0x38
#define SIM_DRIVER_OBJECT_DRIVER_NAME 0x48 /* UNICODE_STRING */
#define SIM_DRIVER_OBJECT_DRIVER_INIT 0x70
#define SIM_DRIVER_OBJECT_DRIVER_START_IO 0x78
#define SIM_DRIVER_OBJECT_DRIVER_UNLOAD 0x80
#define SIM_DRIVER_OBJECT_MAJOR_FUNCTION 0x88 /* PDRIVER_DISPATCH[28] */
#define SIM_DRIVER_OBJECT_SIZE 0x168
#define SIM_LDR_DLL_BASE 0x30
#define SIM_LDR_ENTRY_POINT 0x38
#define SIM_LDR_SIZE_OF_IMAGE 0x40 /* ULONG */
#define SIM_LDR_BASE_DLL_NAME 0x58 /* UNICODE_STRING */

/* nt!MmUnloadedDrivers points to an array of SIM_MAX_UNLOADED_DRIVERS UNLOADED_DRIVERS (x64:
 * UNICODE_STRING Name at 0, StartAddress at 0x10, EndAddress at 0x18, CurrentTime at 0x20);
 * nt!MmLastUnloadedDriver (ULONG) is the slot the next unload fills (it wraps to 0 after the
 * last slot, as MiRememberUnloadedDriver does). */
#define SIM_MAX_UNLOADED_DRIVERS 50
#define SIM_UNLOADED_DRIVERS_SIZE 0x28
#define SIM_UNLOADED_DRIVER_NAME_CHARS 64 /* room for each name kept by nt */

/* A bug check on a timer (kdsim --bugcheck-after SECONDS CODE): the simulator sets
 * kdtest!KdTestBugCheckTime (interrupt time, 100 ns since boot) and kdtest!KdTestBugCheckCode
 * (0 = never) at boot; KdTestLoop (CPU 0) then calls KdTestRaiseBugCheck, which sets
 * KdTestBugCheckRaised and calls KeBugCheckEx(code, &KdTestPagedFunction, 2, 0,
 * &KdTestRaiseBugCheck) (DRIVER_IRQL_NOT_LESS_OR_EQUAL's shape: pageable address referenced,
 * IRQL 2, read, the driver's code). KeBugCheckEx breaks into the debugger; once continued it
 * calls nt!KiSimReturnToFirmware (the crash dump is written, the machine reboots), where the
 * simulator stops the machine with StopKind::Reboot. */
#define SIM_BUGCHECK_IRQL 2

#endif
