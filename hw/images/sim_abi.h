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
#define SIM_KPRCB_SIZE 0x680
#define SIM_KPCR_SIZE (SIM_KPCR_PRCB + SIM_KPRCB_SIZE)

/* KTHREAD / ETHREAD / EPROCESS (modelled on Windows 10 19041 x64). */
#define SIM_KTHREAD_INITIAL_STACK 0x028
#define SIM_KTHREAD_STACK_LIMIT 0x030
#define SIM_KTHREAD_STACK_BASE 0x038
#define SIM_KTHREAD_KERNEL_STACK 0x058
#define SIM_KTHREAD_APC_STATE_PROCESS 0x0B8
#define SIM_KTHREAD_TEB 0x0F0
#define SIM_KTHREAD_STATE 0x184 /* UCHAR: 2 = Running, 1 = Ready */
#define SIM_KTHREAD_PROCESS 0x220
#define SIM_KTHREAD_NEXT_PROCESSOR 0x234 /* ULONG */
#define SIM_KTHREAD_WAIT_REASON 0x283
#define SIM_KTHREAD_QUEUE_LIST_ENTRY 0x2C8
#define SIM_ETHREAD_CID 0x478 /* CLIENT_ID {UniqueProcess, UniqueThread} */
#define SIM_ETHREAD_IRP_LIST 0x4B0
#define SIM_ETHREAD_SIZE 0x898

#define SIM_EPROCESS_DIRECTORY_TABLE_BASE 0x028
#define SIM_EPROCESS_UNIQUE_PROCESS_ID 0x440
#define SIM_EPROCESS_ACTIVE_PROCESS_LINKS 0x448
#define SIM_EPROCESS_INHERITED_FROM_PID 0x540
#define SIM_EPROCESS_PEB 0x550
#define SIM_EPROCESS_IMAGE_FILE_NAME 0x5A8 /* UCHAR[15] */
#define SIM_EPROCESS_THREAD_LIST_HEAD 0x5E0
#define SIM_EPROCESS_SIZE 0x850

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

/* DRIVER_OBJECT and KLDR_DATA_TABLE_ENTRY fields nt uses (x64 offsets). */
#define SIM_DRIVER_OBJECT_DRIVER_INIT 0x58
#define SIM_DRIVER_OBJECT_DRIVER_UNLOAD 0x68
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
