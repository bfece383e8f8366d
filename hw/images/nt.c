/*
 * ntoskrnl.exe of the kdcart simulator: a freestanding x64 PE built with clang-cl + lld-link.
 *
 * It holds what a kernel debugger host looks for in a real NT kernel (KdDebuggerDataBlock,
 * PsLoadedModuleList, KiProcessorBlock, NtBuildLab, RtlpBreakWithStatusInstruction, ...)
 * plus just enough code to run a driver: DbgPrint over the real debug service (int 0x2d),
 * a system-thread start, an idle loop and a timer wait built on `hlt`.
 * The simulator (hw/SimMachine.cpp) plays boot loader: it maps the images, fills the data
 * structures and starts KiSystemStartup on CPU 0 and KiIdleLoop on the other CPUs.
 */
#include <stdarg.h>

#include "sim_abi.h"

typedef unsigned char UCHAR;
typedef unsigned char BOOLEAN;
typedef char CHAR;
typedef char CCHAR;
typedef unsigned short USHORT;
typedef unsigned short WCHAR;
typedef unsigned int ULONG;
typedef int LONG;
typedef int NTSTATUS;
typedef unsigned long long ULONG64;
typedef unsigned long long ULONG_PTR;
typedef unsigned long long SIZE_T;
typedef void* PVOID;

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY* Flink;
    struct _LIST_ENTRY* Blink;
} LIST_ENTRY;

typedef struct _STRING {
    USHORT Length;
    USHORT MaximumLength;
    CHAR* Buffer;
} STRING, *PSTRING;

typedef struct _UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    WCHAR* Buffer;
} UNICODE_STRING, *PUNICODE_STRING;

/* ------------------------------------------------------------------------------------------
 * Kernel structures under Microsoft's names, at the offsets sim_abi.h gives (which the
 * simulator fills). They are here so that ntoskrnl.pdb carries them: a debugger reads these
 * objects through the PDB's types, by field name. The padding members are named Reserved*.
 * ---------------------------------------------------------------------------------------- */
#define SIM_AT(type, field, off)                                                                   \
    _Static_assert(__builtin_offsetof(type, field) == (off), #type "." #field)

typedef char KPROCESSOR_MODE;
typedef UCHAR KIRQL;
typedef long long LONG64;
typedef short SHORT;

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    };
    LONG64 QuadPart;
} LARGE_INTEGER;

typedef struct _CLIENT_ID {
    PVOID UniqueProcess;
    PVOID UniqueThread;
} CLIENT_ID;

typedef struct _IO_STATUS_BLOCK {
    union {
        NTSTATUS Status;
        PVOID Pointer;
    };
    ULONG_PTR Information;
} IO_STATUS_BLOCK;

typedef struct _DISPATCHER_HEADER {
    UCHAR Type; /* 0/1 events, 3 process, 4 queue, 6 thread */
    UCHAR Signalling;
    UCHAR Size;
    UCHAR Reserved1;
    LONG SignalState;
    LIST_ENTRY WaitListHead;
} DISPATCHER_HEADER;

typedef struct _KEVENT {
    DISPATCHER_HEADER Header;
} KEVENT;

typedef struct _KQUEUE {
    DISPATCHER_HEADER Header;
    LIST_ENTRY EntryListHead;
    ULONG CurrentCount;
    ULONG MaximumCount;
    LIST_ENTRY ThreadListHead;
} KQUEUE;

struct _KTHREAD;
struct _KPROCESS;

typedef struct _KWAIT_BLOCK {
    LIST_ENTRY WaitListEntry;
    UCHAR WaitType;
    UCHAR BlockState;
    USHORT WaitKey;
    LONG SpareLong;
    PVOID Object;
    struct _KTHREAD* Thread;
    PVOID SparePtr;
} KWAIT_BLOCK;
SIM_AT(KWAIT_BLOCK, WaitType, SIM_KWAIT_BLOCK_WAIT_TYPE);
SIM_AT(KWAIT_BLOCK, BlockState, SIM_KWAIT_BLOCK_BLOCK_STATE);
SIM_AT(KWAIT_BLOCK, WaitKey, SIM_KWAIT_BLOCK_WAIT_KEY);
SIM_AT(KWAIT_BLOCK, Object, SIM_KWAIT_BLOCK_OBJECT);
SIM_AT(KWAIT_BLOCK, Thread, SIM_KWAIT_BLOCK_THREAD);
_Static_assert(sizeof(KWAIT_BLOCK) == SIM_KWAIT_BLOCK_SIZE, "KWAIT_BLOCK size");

typedef struct _KAPC_STATE {
    LIST_ENTRY ApcListHead[2];
    struct _KPROCESS* Process;
    UCHAR InProgressFlags;
    BOOLEAN KernelApcPending;
    BOOLEAN UserApcPending;
    UCHAR Reserved[5];
} KAPC_STATE;
_Static_assert(sizeof(KAPC_STATE) == 0x30, "KAPC_STATE size");

typedef struct _KTHREAD {
    DISPATCHER_HEADER Header;
    PVOID SListFaultAddress;
    ULONG64 QuantumTarget;
    PVOID Reserved0;
    PVOID InitialStack;
    PVOID StackLimit;
    PVOID StackBase;
    ULONG64 ThreadLock;
    ULONG64 CycleTime;
    ULONG CurrentRunTime;
    ULONG ExpectedRunTime;
    PVOID KernelStack;
    PVOID StateSaveArea;
    PVOID SchedulingGroup;
    UCHAR WaitRegister;
    BOOLEAN Running;
    BOOLEAN Alerted[2];
    ULONG MiscFlags;
    ULONG ThreadFlags;
    ULONG Reserved1;
    ULONG SystemCallNumber;
    ULONG Reserved2;
    PVOID FirstArgument;
    PVOID TrapFrame;
    KAPC_STATE ApcState;
    ULONG UserIdealProcessor;
    ULONG Reserved3;
    LIST_ENTRY WaitListEntry;
    KWAIT_BLOCK* WaitBlockList;
    LONG64 WaitStatus;
    PVOID Teb;
    PVOID Queue;
    KWAIT_BLOCK WaitBlock[4];
    UCHAR State;
    KIRQL WaitIrql;
    KPROCESSOR_MODE WaitMode;
    BOOLEAN Alertable;
    CHAR Priority;
    CHAR BasePriority;
    UCHAR WaitReason;
    UCHAR Reserved5;
    ULONG WaitTime;
    SHORT KernelApcDisable;
    SHORT SpecialApcDisable;
    ULONG KernelTime;
    ULONG UserTime;
    PVOID Win32Thread;
    struct _KPROCESS* Process;
    ULONG NextProcessor;
    ULONG IdealProcessor;
    LIST_ENTRY QueueListEntry;
    LIST_ENTRY ThreadListEntry;
    ULONG ContextSwitches;
    UCHAR Reserved6[SIM_KTHREAD_SIZE - SIM_KTHREAD_THREAD_LIST_ENTRY - 0x14];
} KTHREAD, *PKTHREAD;
SIM_AT(KTHREAD, InitialStack, SIM_KTHREAD_INITIAL_STACK);
SIM_AT(KTHREAD, StackLimit, SIM_KTHREAD_STACK_LIMIT);
SIM_AT(KTHREAD, StackBase, SIM_KTHREAD_STACK_BASE);
SIM_AT(KTHREAD, KernelStack, SIM_KTHREAD_KERNEL_STACK);
SIM_AT(KTHREAD, TrapFrame, SIM_KTHREAD_TRAP_FRAME);
SIM_AT(KTHREAD, ApcState, SIM_KTHREAD_APC_STATE);
SIM_AT(KTHREAD, ApcState.Process, SIM_KTHREAD_APC_STATE_PROCESS);
SIM_AT(KTHREAD, WaitListEntry, SIM_KTHREAD_WAIT_LIST_ENTRY);
SIM_AT(KTHREAD, WaitBlockList, SIM_KTHREAD_WAIT_BLOCK_LIST);
SIM_AT(KTHREAD, WaitStatus, SIM_KTHREAD_WAIT_STATUS);
SIM_AT(KTHREAD, Teb, SIM_KTHREAD_TEB);
SIM_AT(KTHREAD, WaitBlock, SIM_KTHREAD_WAIT_BLOCK);
SIM_AT(KTHREAD, State, SIM_KTHREAD_STATE);
SIM_AT(KTHREAD, WaitIrql, SIM_KTHREAD_WAIT_IRQL);
SIM_AT(KTHREAD, WaitMode, SIM_KTHREAD_WAIT_MODE);
SIM_AT(KTHREAD, Alertable, SIM_KTHREAD_ALERTABLE);
SIM_AT(KTHREAD, Priority, SIM_KTHREAD_PRIORITY);
SIM_AT(KTHREAD, BasePriority, SIM_KTHREAD_BASE_PRIORITY);
SIM_AT(KTHREAD, WaitReason, SIM_KTHREAD_WAIT_REASON);
SIM_AT(KTHREAD, WaitTime, SIM_KTHREAD_WAIT_TIME);
SIM_AT(KTHREAD, KernelApcDisable, SIM_KTHREAD_KERNEL_APC_DISABLE);
SIM_AT(KTHREAD, SpecialApcDisable, SIM_KTHREAD_SPECIAL_APC_DISABLE);
SIM_AT(KTHREAD, KernelTime, SIM_KTHREAD_KERNEL_TIME);
SIM_AT(KTHREAD, UserTime, SIM_KTHREAD_USER_TIME);
SIM_AT(KTHREAD, Win32Thread, SIM_KTHREAD_WIN32_THREAD);
SIM_AT(KTHREAD, Process, SIM_KTHREAD_PROCESS);
SIM_AT(KTHREAD, NextProcessor, SIM_KTHREAD_NEXT_PROCESSOR);
SIM_AT(KTHREAD, QueueListEntry, SIM_KTHREAD_QUEUE_LIST_ENTRY);
SIM_AT(KTHREAD, ThreadListEntry, SIM_KTHREAD_THREAD_LIST_ENTRY);
_Static_assert(sizeof(KTHREAD) == SIM_KTHREAD_SIZE, "KTHREAD size");

typedef struct _M128A {
    ULONG64 Low;
    LONG64 High;
} M128A;

/* What a trap handler saves (sim_abi.h: Windows x64 names and order, offsets of our own). */
typedef struct _KTRAP_FRAME {
    ULONG64 P1Home;
    ULONG64 P2Home;
    ULONG64 P3Home;
    ULONG64 P4Home;
    ULONG64 P5;
    KPROCESSOR_MODE PreviousMode;
    KIRQL PreviousIrql;
    UCHAR FaultIndicator;
    UCHAR ExceptionActive;
    ULONG MxCsr;
    ULONG64 Reserved0[2];
    ULONG64 Rax;
    ULONG64 Rcx;
    ULONG64 Rdx;
    ULONG64 R8;
    ULONG64 R9;
    ULONG64 R10;
    ULONG64 R11;
    ULONG64 GsBase;
    M128A Xmm0;
    M128A Xmm1;
    M128A Xmm2;
    M128A Xmm3;
    M128A Xmm4;
    M128A Xmm5;
    ULONG64 FaultAddress;
    ULONG64 Dr0;
    ULONG64 Dr1;
    ULONG64 Dr2;
    ULONG64 Dr3;
    ULONG64 Dr6;
    ULONG64 Dr7;
    ULONG64 DebugControl;
    ULONG64 LastBranchToRip;
    ULONG64 LastBranchFromRip;
    ULONG64 LastExceptionToRip;
    ULONG64 LastExceptionFromRip;
    USHORT SegDs;
    USHORT SegEs;
    USHORT SegFs;
    USHORT SegGs;
    ULONG64 TrapFrame;
    ULONG64 Rbx;
    ULONG64 Rdi;
    ULONG64 Rsi;
    ULONG64 Rbp;
    ULONG64 ErrorCode;
    ULONG64 Rip;
    USHORT SegCs;
    UCHAR Fill0;
    UCHAR Logging;
    USHORT Fill1[2];
    ULONG EFlags;
    ULONG Fill2;
    ULONG64 Rsp;
    USHORT SegSs;
    USHORT Fill3;
    ULONG Fill4;
} KTRAP_FRAME, *PKTRAP_FRAME;
SIM_AT(KTRAP_FRAME, PreviousMode, SIM_KTRAP_FRAME_PREVIOUS_MODE);
SIM_AT(KTRAP_FRAME, Rax, SIM_KTRAP_FRAME_RAX);
SIM_AT(KTRAP_FRAME, Rcx, SIM_KTRAP_FRAME_RCX);
SIM_AT(KTRAP_FRAME, Rdx, SIM_KTRAP_FRAME_RDX);
SIM_AT(KTRAP_FRAME, R8, SIM_KTRAP_FRAME_R8);
SIM_AT(KTRAP_FRAME, R9, SIM_KTRAP_FRAME_R9);
SIM_AT(KTRAP_FRAME, R10, SIM_KTRAP_FRAME_R10);
SIM_AT(KTRAP_FRAME, R11, SIM_KTRAP_FRAME_R11);
SIM_AT(KTRAP_FRAME, Rbx, SIM_KTRAP_FRAME_RBX);
SIM_AT(KTRAP_FRAME, Rdi, SIM_KTRAP_FRAME_RDI);
SIM_AT(KTRAP_FRAME, Rsi, SIM_KTRAP_FRAME_RSI);
SIM_AT(KTRAP_FRAME, Rbp, SIM_KTRAP_FRAME_RBP);
SIM_AT(KTRAP_FRAME, Rip, SIM_KTRAP_FRAME_RIP);
SIM_AT(KTRAP_FRAME, SegCs, SIM_KTRAP_FRAME_SEG_CS);
SIM_AT(KTRAP_FRAME, EFlags, SIM_KTRAP_FRAME_EFLAGS);
SIM_AT(KTRAP_FRAME, Rsp, SIM_KTRAP_FRAME_RSP);
SIM_AT(KTRAP_FRAME, SegSs, SIM_KTRAP_FRAME_SEG_SS);
_Static_assert(sizeof(KTRAP_FRAME) == SIM_KTRAP_FRAME_SIZE, "KTRAP_FRAME size");

/* What KiSwapContext leaves at KTHREAD.KernelStack of a thread it switched out. */
typedef struct _KSWITCH_FRAME {
    ULONG64 P1Home;
    ULONG64 P2Home;
    ULONG64 P3Home;
    ULONG64 P4Home;
    ULONG64 P5Home;
    UCHAR ApcBypass;
    UCHAR Fill1[7];
    ULONG64 Rbp;
    ULONG64 Return;
} KSWITCH_FRAME, *PKSWITCH_FRAME;
SIM_AT(KSWITCH_FRAME, Rbp, SIM_KSWITCH_FRAME_RBP);
SIM_AT(KSWITCH_FRAME, Return, SIM_KSWITCH_FRAME_RETURN);
_Static_assert(sizeof(KSWITCH_FRAME) == SIM_KSWITCH_FRAME_SIZE, "KSWITCH_FRAME size");

typedef struct _ETHREAD {
    KTHREAD Tcb;
    LARGE_INTEGER CreateTime;
    LARGE_INTEGER ExitTime;
    PVOID ChargeOnlySession;
    LIST_ENTRY PostBlockList;
    PVOID StartAddress;
    CLIENT_ID Cid;
    LIST_ENTRY IrpList;
    PVOID Win32StartAddress;
    LIST_ENTRY ThreadListEntry;
    ULONG ActiveExWorker;
    UCHAR Reserved0[SIM_ETHREAD_SIZE - SIM_ETHREAD_THREAD_LIST_ENTRY - 0x14];
} ETHREAD, *PETHREAD;
SIM_AT(ETHREAD, CreateTime, SIM_ETHREAD_CREATE_TIME);
SIM_AT(ETHREAD, StartAddress, SIM_ETHREAD_START_ADDRESS);
SIM_AT(ETHREAD, Cid, SIM_ETHREAD_CID);
SIM_AT(ETHREAD, IrpList, SIM_ETHREAD_IRP_LIST);
SIM_AT(ETHREAD, Win32StartAddress, SIM_ETHREAD_WIN32_START_ADDRESS);
SIM_AT(ETHREAD, ThreadListEntry, SIM_ETHREAD_THREAD_LIST_ENTRY);
_Static_assert(sizeof(ETHREAD) == SIM_ETHREAD_SIZE, "ETHREAD size");

typedef struct _KPROCESS {
    DISPATCHER_HEADER Header;
    LIST_ENTRY ProfileListHead;
    ULONG64 Reserved0;
    ULONG64 DirectoryTableBase;
    ULONG64 Reserved1;
    LIST_ENTRY ThreadListHead;
    ULONG ProcessLock;
    ULONG Reserved2;
    ULONG64 Affinity;
    UCHAR Reserved3[0x40];
    LIST_ENTRY ReadyListHead;
    CHAR BasePriority;
    UCHAR Reserved4[3];
    ULONG KernelTime;
    ULONG UserTime;
    UCHAR Reserved5[SIM_KPROCESS_SIZE - SIM_KPROCESS_USER_TIME - 4];
} KPROCESS, *PKPROCESS;
SIM_AT(KPROCESS, DirectoryTableBase, SIM_KPROCESS_DIRECTORY_TABLE_BASE);
SIM_AT(KPROCESS, ThreadListHead, SIM_KPROCESS_THREAD_LIST_HEAD);
SIM_AT(KPROCESS, BasePriority, SIM_KPROCESS_BASE_PRIORITY);
SIM_AT(KPROCESS, KernelTime, SIM_KPROCESS_KERNEL_TIME);
SIM_AT(KPROCESS, UserTime, SIM_KPROCESS_USER_TIME);
_Static_assert(sizeof(KPROCESS) == SIM_KPROCESS_SIZE, "KPROCESS size");

typedef struct _EX_FAST_REF {
    union {
        PVOID Object;
        ULONG64 Value;
    };
} EX_FAST_REF;

typedef struct _HANDLE_TABLE {
    ULONG NextHandleNeedingPool;
    LONG ExtraInfoPages;
    ULONG64 TableCode;
    struct _EPROCESS* QuotaProcess;
    ULONG UniqueProcessId;
    ULONG Flags;
    ULONG Reserved0;
    LONG HandleCount;
    UCHAR Reserved1[SIM_HANDLE_TABLE_SIZE - SIM_HANDLE_TABLE_HANDLE_COUNT - 4];
} HANDLE_TABLE;
SIM_AT(HANDLE_TABLE, HandleCount, SIM_HANDLE_TABLE_HANDLE_COUNT);
_Static_assert(sizeof(HANDLE_TABLE) == SIM_HANDLE_TABLE_SIZE, "HANDLE_TABLE size");

typedef struct _MM_SESSION_SPACE {
    LONG ReferenceCount;
    ULONG u;
    ULONG Reserved0;
    ULONG SessionId;
    UCHAR Reserved1[SIM_MM_SESSION_SPACE_SIZE - SIM_MM_SESSION_SPACE_SESSION_ID - 4];
} MM_SESSION_SPACE;
SIM_AT(MM_SESSION_SPACE, SessionId, SIM_MM_SESSION_SPACE_SESSION_ID);

typedef struct _EPROCESS {
    KPROCESS Pcb;
    ULONG64 ProcessLock;
    ULONG64 RundownProtect;
    UCHAR Reserved0[SIM_EPROCESS_UNIQUE_PROCESS_ID - SIM_KPROCESS_SIZE - 0x10];
    PVOID UniqueProcessId;
    LIST_ENTRY ActiveProcessLinks;
    ULONG Flags2;
    ULONG Flags;
    LARGE_INTEGER CreateTime;
    UCHAR Reserved1[SIM_EPROCESS_SESSION - SIM_EPROCESS_CREATE_TIME - 8];
    MM_SESSION_SPACE* Session;
    UCHAR Reserved2[SIM_EPROCESS_OBJECT_TABLE - SIM_EPROCESS_SESSION - 8];
    HANDLE_TABLE* ObjectTable;
    EX_FAST_REF Token;
    ULONG64 WorkingSetPage;
    ULONG64 Reserved3;
    PVOID InheritedFromUniqueProcessId;
    ULONG64 OwnerProcessId;
    ULONG64 Reserved4;
    struct _PEB* Peb;
    UCHAR Reserved5[SIM_EPROCESS_IMAGE_FILE_NAME - SIM_EPROCESS_PEB - 8];
    UCHAR ImageFileName[15];
    UCHAR PriorityClass;
    UCHAR Reserved6[SIM_EPROCESS_THREAD_LIST_HEAD - SIM_EPROCESS_IMAGE_FILE_NAME - 16];
    LIST_ENTRY ThreadListHead;
    ULONG ActiveThreads;
    UCHAR Reserved7[SIM_EPROCESS_SIZE - SIM_EPROCESS_ACTIVE_THREADS - 4];
} EPROCESS, *PEPROCESS;
SIM_AT(EPROCESS, Pcb.DirectoryTableBase, SIM_EPROCESS_DIRECTORY_TABLE_BASE);
SIM_AT(EPROCESS, UniqueProcessId, SIM_EPROCESS_UNIQUE_PROCESS_ID);
SIM_AT(EPROCESS, ActiveProcessLinks, SIM_EPROCESS_ACTIVE_PROCESS_LINKS);
SIM_AT(EPROCESS, CreateTime, SIM_EPROCESS_CREATE_TIME);
SIM_AT(EPROCESS, Session, SIM_EPROCESS_SESSION);
SIM_AT(EPROCESS, ObjectTable, SIM_EPROCESS_OBJECT_TABLE);
SIM_AT(EPROCESS, Token, SIM_EPROCESS_TOKEN);
SIM_AT(EPROCESS, InheritedFromUniqueProcessId, SIM_EPROCESS_INHERITED_FROM_PID);
SIM_AT(EPROCESS, Peb, SIM_EPROCESS_PEB);
SIM_AT(EPROCESS, ImageFileName, SIM_EPROCESS_IMAGE_FILE_NAME);
SIM_AT(EPROCESS, ThreadListHead, SIM_EPROCESS_THREAD_LIST_HEAD);
SIM_AT(EPROCESS, ActiveThreads, SIM_EPROCESS_ACTIVE_THREADS);
_Static_assert(sizeof(EPROCESS) == SIM_EPROCESS_SIZE, "EPROCESS size");

/* Processor blocks: the fields the simulator fills (sim_abi.h), the rest Reserved. */
typedef struct _KSPECIAL_REGISTERS {
    ULONG64 Cr0;
    ULONG64 Cr2;
    ULONG64 Cr3;
    ULONG64 Cr4;
    ULONG64 KernelDr0;
    ULONG64 KernelDr1;
    ULONG64 KernelDr2;
    ULONG64 KernelDr3;
    ULONG64 KernelDr6;
    ULONG64 KernelDr7;
    UCHAR Gdtr[16];
    UCHAR Idtr[16];
    USHORT Tr;
    USHORT Ldtr;
    ULONG MxCsr;
    ULONG64 DebugControl;
    ULONG64 LastBranchToRip;
    ULONG64 LastBranchFromRip;
    ULONG64 LastExceptionToRip;
    ULONG64 LastExceptionFromRip;
    ULONG64 Cr8;
    UCHAR Reserved0[0xF0 - 0xA8];
} KSPECIAL_REGISTERS;
SIM_AT(KSPECIAL_REGISTERS, Cr8, 0xA0);
_Static_assert(sizeof(KSPECIAL_REGISTERS) == 0xF0, "KSPECIAL_REGISTERS size");

typedef struct _KPROCESSOR_STATE {
    KSPECIAL_REGISTERS SpecialRegisters;
    UCHAR ContextFrame[SIM_KPRCB_CPU_TYPE - SIM_KPRCB_PROC_STATE_CONTEXT];
} KPROCESSOR_STATE;

typedef struct _KPRCB {
    ULONG MxCsr;
    UCHAR LegacyNumber;
    UCHAR ReservedPad0;
    BOOLEAN InterruptRequest;
    BOOLEAN IdleHalt;
    KTHREAD* CurrentThread;
    KTHREAD* NextThread;
    KTHREAD* IdleThread;
    ULONG Reserved0;
    ULONG Number;
    UCHAR Reserved1[SIM_KPRCB_PROCESSOR_STATE - SIM_KPRCB_NUMBER - 4];
    KPROCESSOR_STATE ProcessorState;
    CHAR CpuType;
    CHAR CpuID;
    USHORT CpuStep;
    ULONG MHz;
    UCHAR VendorString[13];
    UCHAR Reserved2[SIM_KPRCB_CONTEXT - SIM_KPRCB_VENDOR_STRING - 13];
    PVOID Context;
    ULONG64 PcrPage;
    PVOID DpcRoutine;
    ULONG MaxBreakpoints;
    ULONG MaxWatchpoints;
    KIRQL DebuggerSavedIRQL;
    UCHAR Reserved3[SIM_KPRCB_READY_SUMMARY - SIM_KPRCB_DEBUGGER_SAVED_IRQL - 1];
    ULONG ReadySummary;
    UCHAR Reserved4[SIM_KPRCB_DISPATCHER_READY_LIST_HEAD - SIM_KPRCB_READY_SUMMARY - 4];
    LIST_ENTRY DispatcherReadyListHead[32];
    UCHAR Reserved5[SIM_KPRCB_SIZE - SIM_KPRCB_DISPATCHER_READY_LIST_HEAD - 32 * 16];
} KPRCB, *PKPRCB;
SIM_AT(KPRCB, LegacyNumber, SIM_KPRCB_LEGACY_NUMBER);
SIM_AT(KPRCB, CurrentThread, SIM_KPRCB_CURRENT_THREAD);
SIM_AT(KPRCB, NextThread, SIM_KPRCB_NEXT_THREAD);
SIM_AT(KPRCB, IdleThread, SIM_KPRCB_IDLE_THREAD);
SIM_AT(KPRCB, Number, SIM_KPRCB_NUMBER);
SIM_AT(KPRCB, ProcessorState, SIM_KPRCB_PROCESSOR_STATE);
SIM_AT(KPRCB, ProcessorState.ContextFrame, SIM_KPRCB_PROC_STATE_CONTEXT);
SIM_AT(KPRCB, CpuType, SIM_KPRCB_CPU_TYPE);
SIM_AT(KPRCB, CpuStep, SIM_KPRCB_CPU_STEP);
SIM_AT(KPRCB, MHz, SIM_KPRCB_MHZ);
SIM_AT(KPRCB, VendorString, SIM_KPRCB_VENDOR_STRING);
SIM_AT(KPRCB, Context, SIM_KPRCB_CONTEXT);
SIM_AT(KPRCB, PcrPage, SIM_KPRCB_PCR_PAGE);
SIM_AT(KPRCB, DpcRoutine, SIM_KPRCB_DPC_ROUTINE);
SIM_AT(KPRCB, MaxBreakpoints, SIM_KPRCB_MAX_BREAKPOINTS);
SIM_AT(KPRCB, MaxWatchpoints, SIM_KPRCB_MAX_WATCHPOINTS);
SIM_AT(KPRCB, DebuggerSavedIRQL, SIM_KPRCB_DEBUGGER_SAVED_IRQL);
SIM_AT(KPRCB, ReadySummary, SIM_KPRCB_READY_SUMMARY);
SIM_AT(KPRCB, DispatcherReadyListHead, SIM_KPRCB_DISPATCHER_READY_LIST_HEAD);
_Static_assert(sizeof(KPRCB) == SIM_KPRCB_SIZE, "KPRCB size");

typedef struct _KPCR {
    PVOID GdtBase;
    PVOID TssBase;
    ULONG64 UserRsp;
    struct _KPCR* Self;
    KPRCB* CurrentPrcb;
    PVOID LockArray;
    PVOID Used_Self;
    PVOID IdtBase;
    ULONG64 Unused[2];
    KIRQL Irql;
    UCHAR Reserved0[SIM_KPCR_PRCB - SIM_KPCR_IRQL - 1];
    KPRCB Prcb;
} KPCR, *PKPCR;
SIM_AT(KPCR, TssBase, SIM_KPCR_TSS_BASE);
SIM_AT(KPCR, Self, SIM_KPCR_SELF);
SIM_AT(KPCR, CurrentPrcb, SIM_KPCR_CURRENT_PRCB);
SIM_AT(KPCR, IdtBase, SIM_KPCR_IDT_BASE);
SIM_AT(KPCR, Irql, SIM_KPCR_IRQL);
SIM_AT(KPCR, Prcb, SIM_KPCR_PRCB);
_Static_assert(sizeof(KPCR) == SIM_KPCR_SIZE, "KPCR size");

/* Objects */
typedef struct _OBJECT_HEADER {
    LONG64 PointerCount;
    LONG64 HandleCount;
    UCHAR TypeIndex;
    UCHAR TraceFlags;
    UCHAR InfoMask;
    UCHAR Flags;
    ULONG Reserved0;
    PVOID Lock;
    PVOID ObjectCreateInfo;
    PVOID SecurityDescriptor;
    ULONG64 Reserved1;
    ULONG64 Body;
} OBJECT_HEADER;
SIM_AT(OBJECT_HEADER, PointerCount, SIM_OBJECT_HEADER_POINTER_COUNT);
SIM_AT(OBJECT_HEADER, HandleCount, SIM_OBJECT_HEADER_HANDLE_COUNT);
SIM_AT(OBJECT_HEADER, TypeIndex, SIM_OBJECT_HEADER_TYPE_INDEX);
SIM_AT(OBJECT_HEADER, InfoMask, SIM_OBJECT_HEADER_INFO_MASK);
SIM_AT(OBJECT_HEADER, Flags, SIM_OBJECT_HEADER_FLAGS);
SIM_AT(OBJECT_HEADER, Body, SIM_OBJECT_HEADER_BODY);

typedef struct _OBJECT_HEADER_NAME_INFO {
    UNICODE_STRING Name;
    PVOID Directory;
    LONG ReferenceCount;
    ULONG Reserved0;
} OBJECT_HEADER_NAME_INFO;
SIM_AT(OBJECT_HEADER_NAME_INFO, Name, SIM_OBJECT_HEADER_NAME_INFO_NAME);
SIM_AT(OBJECT_HEADER_NAME_INFO, Directory, SIM_OBJECT_HEADER_NAME_INFO_DIRECTORY);
_Static_assert(sizeof(OBJECT_HEADER_NAME_INFO) == SIM_OBJECT_HEADER_NAME_INFO_SIZE,
               "OBJECT_HEADER_NAME_INFO size");

typedef struct _OBJECT_TYPE {
    UNICODE_STRING Name;
    LIST_ENTRY TypeList;
    PVOID DefaultObject;
    ULONG Key;
    UCHAR Index;
    UCHAR Reserved0[3];
    ULONG TotalNumberOfObjects;
    ULONG TotalNumberOfHandles;
    UCHAR Reserved1[SIM_OBJECT_TYPE_SIZE - SIM_OBJECT_TYPE_TOTAL_HANDLES - 4];
} OBJECT_TYPE;
SIM_AT(OBJECT_TYPE, Name, SIM_OBJECT_TYPE_NAME);
SIM_AT(OBJECT_TYPE, TypeList, SIM_OBJECT_TYPE_TYPE_LIST);
SIM_AT(OBJECT_TYPE, Key, SIM_OBJECT_TYPE_KEY);
SIM_AT(OBJECT_TYPE, Index, SIM_OBJECT_TYPE_INDEX);
SIM_AT(OBJECT_TYPE, TotalNumberOfObjects, SIM_OBJECT_TYPE_TOTAL_OBJECTS);
SIM_AT(OBJECT_TYPE, TotalNumberOfHandles, SIM_OBJECT_TYPE_TOTAL_HANDLES);
_Static_assert(sizeof(OBJECT_TYPE) == SIM_OBJECT_TYPE_SIZE, "OBJECT_TYPE size");

typedef struct _OBJECT_DIRECTORY_ENTRY {
    PVOID Object;
    struct _OBJECT_DIRECTORY_ENTRY* ChainLink;
    ULONG HashValue;
    ULONG Reserved0;
} OBJECT_DIRECTORY_ENTRY;
SIM_AT(OBJECT_DIRECTORY_ENTRY, Object, SIM_OBJECT_DIRECTORY_ENTRY_OBJECT);
SIM_AT(OBJECT_DIRECTORY_ENTRY, ChainLink, SIM_OBJECT_DIRECTORY_ENTRY_CHAIN_LINK);
SIM_AT(OBJECT_DIRECTORY_ENTRY, HashValue, SIM_OBJECT_DIRECTORY_ENTRY_HASH_VALUE);
_Static_assert(sizeof(OBJECT_DIRECTORY_ENTRY) == SIM_OBJECT_DIRECTORY_ENTRY_SIZE,
               "OBJECT_DIRECTORY_ENTRY size");

typedef struct _OBJECT_DIRECTORY {
    ULONG64 Reserved0[2];
    OBJECT_DIRECTORY_ENTRY* HashBuckets[SIM_OBJECT_DIRECTORY_BUCKETS];
    ULONG64 Reserved1;
} OBJECT_DIRECTORY;
SIM_AT(OBJECT_DIRECTORY, HashBuckets, SIM_OBJECT_DIRECTORY_HASH_BUCKETS);
_Static_assert(sizeof(OBJECT_DIRECTORY) == SIM_OBJECT_DIRECTORY_SIZE, "OBJECT_DIRECTORY size");

/* Memory manager: one MMPFN per page frame (MmPfnDatabase). */
typedef struct _MMPFN {
    union {
        ULONG64 Flink;
        ULONG64 WsIndex;
    } u1;
    ULONG64 PteAddress;
    union {
        ULONG64 Blink;
        ULONG64 ShareCount;
    } u2;
    struct {
        USHORT ReferenceCount;
        struct {
            UCHAR PageLocation : 3;
            UCHAR WriteInProgress : 1;
            UCHAR Modified : 1;
            UCHAR ReadInProgress : 1;
            UCHAR CacheAttribute : 2;
        } e1;
        UCHAR Reserved0;
        ULONG Reserved1;
    } u3;
    ULONG64 OriginalPte;
    struct {
        ULONG64 PteFrame : 40;
        ULONG64 Reserved : 23;
        ULONG64 PrototypePte : 1;
    } u4;
} MMPFN;
SIM_AT(MMPFN, PteAddress, SIM_MMPFN_PTE_ADDRESS);
SIM_AT(MMPFN, u2, SIM_MMPFN_SHARE_COUNT);
SIM_AT(MMPFN, u3, SIM_MMPFN_REFERENCE_COUNT);
SIM_AT(MMPFN, OriginalPte, SIM_MMPFN_ORIGINAL_PTE);
SIM_AT(MMPFN, u4, SIM_MMPFN_U4);
_Static_assert(sizeof(MMPFN) == SIM_MMPFN_SIZE, "MMPFN size");

/* Executive resources */
typedef struct _OWNER_ENTRY {
    ULONG64 OwnerThread;
    ULONG OwnerCount;
    ULONG Reserved0;
} OWNER_ENTRY;

typedef struct _ERESOURCE {
    ULONG64 Reserved0;
    LIST_ENTRY SystemResourcesList;
    OWNER_ENTRY OwnerEntry;
    SHORT ActiveCount;
    USHORT Flag;
    ULONG NumberOfSharedWaiters;
    ULONG NumberOfExclusiveWaiters;
    ULONG ContentionCount;
    ULONG64 Reserved1[2];
} ERESOURCE;
SIM_AT(ERESOURCE, SystemResourcesList, SIM_ERESOURCE_SYSTEM_RESOURCES_LIST);
SIM_AT(ERESOURCE, OwnerEntry.OwnerThread, SIM_ERESOURCE_OWNER_THREAD);
SIM_AT(ERESOURCE, OwnerEntry.OwnerCount, SIM_ERESOURCE_OWNER_COUNT);
SIM_AT(ERESOURCE, ActiveCount, SIM_ERESOURCE_ACTIVE_COUNT);
SIM_AT(ERESOURCE, Flag, SIM_ERESOURCE_FLAG);
SIM_AT(ERESOURCE, NumberOfSharedWaiters, SIM_ERESOURCE_SHARED_WAITERS);
SIM_AT(ERESOURCE, NumberOfExclusiveWaiters, SIM_ERESOURCE_EXCLUSIVE_WAITERS);
SIM_AT(ERESOURCE, ContentionCount, SIM_ERESOURCE_CONTENTION_COUNT);
_Static_assert(sizeof(ERESOURCE) == SIM_ERESOURCE_SIZE, "ERESOURCE size");

/* I/O */
struct _DEVICE_OBJECT;
struct _IRP;
typedef NTSTATUS (*PDRIVER_DISPATCH)(struct _DEVICE_OBJECT* DeviceObject, struct _IRP* Irp);

typedef struct _DRIVER_OBJECT {
    SHORT Type;
    SHORT Size;
    ULONG Flags;
    ULONG64 Reserved0;
    struct _DEVICE_OBJECT* DeviceObject;
    ULONG64 Reserved1;
    PVOID DriverStart;
    ULONG DriverSize;
    ULONG Reserved2;
    PVOID DriverSection;
    PVOID DriverExtension;
    ULONG64 Reserved3;
    UNICODE_STRING DriverName;
    PUNICODE_STRING HardwareDatabase;
    PVOID FastIoDispatch;
    ULONG64 Reserved4;
    PVOID DriverInit;
    PVOID DriverStartIo;
    PVOID DriverUnload;
    PDRIVER_DISPATCH MajorFunction[28];
} DRIVER_OBJECT, *PDRIVER_OBJECT;
SIM_AT(DRIVER_OBJECT, Flags, SIM_DRIVER_OBJECT_FLAGS);
SIM_AT(DRIVER_OBJECT, DeviceObject, SIM_DRIVER_OBJECT_DEVICE_OBJECT);
SIM_AT(DRIVER_OBJECT, DriverStart, SIM_DRIVER_OBJECT_DRIVER_START);
SIM_AT(DRIVER_OBJECT, DriverSize, SIM_DRIVER_OBJECT_DRIVER_SIZE);
SIM_AT(DRIVER_OBJECT, DriverSection, SIM_DRIVER_OBJECT_DRIVER_SECTION);
SIM_AT(DRIVER_OBJECT, DriverExtension, SIM_DRIVER_OBJECT_DRIVER_EXTENSION);
SIM_AT(DRIVER_OBJECT, DriverName, SIM_DRIVER_OBJECT_DRIVER_NAME);
SIM_AT(DRIVER_OBJECT, DriverInit, SIM_DRIVER_OBJECT_DRIVER_INIT);
SIM_AT(DRIVER_OBJECT, DriverStartIo, SIM_DRIVER_OBJECT_DRIVER_START_IO);
SIM_AT(DRIVER_OBJECT, DriverUnload, SIM_DRIVER_OBJECT_DRIVER_UNLOAD);
SIM_AT(DRIVER_OBJECT, MajorFunction, SIM_DRIVER_OBJECT_MAJOR_FUNCTION);
_Static_assert(sizeof(DRIVER_OBJECT) == SIM_DRIVER_OBJECT_SIZE, "DRIVER_OBJECT size");

typedef struct _DEVOBJ_EXTENSION {
    SHORT Type;
    USHORT Size;
    ULONG Reserved0;
    struct _DEVICE_OBJECT* DeviceObject;
    ULONG PowerFlags;
    ULONG Reserved1;
    PVOID Dope;
    ULONG ExtensionFlags;
    ULONG Reserved2;
    PVOID DeviceNode;
    PVOID Reserved3;
    struct _DEVICE_OBJECT* AttachedTo;
    PVOID Vpb;
} DEVOBJ_EXTENSION;
SIM_AT(DEVOBJ_EXTENSION, DeviceObject, SIM_DEVOBJ_EXTENSION_DEVICE_OBJECT);
SIM_AT(DEVOBJ_EXTENSION, AttachedTo, SIM_DEVOBJ_EXTENSION_ATTACHED_TO);
_Static_assert(sizeof(DEVOBJ_EXTENSION) == SIM_DEVOBJ_EXTENSION_SIZE, "DEVOBJ_EXTENSION size");

typedef struct _DEVICE_OBJECT {
    SHORT Type;
    USHORT Size;
    LONG ReferenceCount;
    ULONG64 Reserved0;
    DRIVER_OBJECT* DriverObject;
    struct _DEVICE_OBJECT* NextDevice;
    struct _DEVICE_OBJECT* AttachedDevice;
    struct _IRP* CurrentIrp;
    PVOID Timer;
    ULONG Flags;
    ULONG Characteristics;
    PVOID Vpb;
    PVOID DeviceExtension;
    ULONG DeviceType;
    CHAR StackSize;
    UCHAR Reserved1[SIM_DEVICE_OBJECT_DEVICE_OBJECT_EXTENSION - SIM_DEVICE_OBJECT_STACK_SIZE - 1];
    DEVOBJ_EXTENSION* DeviceObjectExtension;
    UCHAR Reserved2[SIM_DEVICE_OBJECT_SIZE - SIM_DEVICE_OBJECT_DEVICE_OBJECT_EXTENSION - 8];
} DEVICE_OBJECT, *PDEVICE_OBJECT;
SIM_AT(DEVICE_OBJECT, ReferenceCount, SIM_DEVICE_OBJECT_REFERENCE_COUNT);
SIM_AT(DEVICE_OBJECT, DriverObject, SIM_DEVICE_OBJECT_DRIVER_OBJECT);
SIM_AT(DEVICE_OBJECT, NextDevice, SIM_DEVICE_OBJECT_NEXT_DEVICE);
SIM_AT(DEVICE_OBJECT, AttachedDevice, SIM_DEVICE_OBJECT_ATTACHED_DEVICE);
SIM_AT(DEVICE_OBJECT, CurrentIrp, SIM_DEVICE_OBJECT_CURRENT_IRP);
SIM_AT(DEVICE_OBJECT, Flags, SIM_DEVICE_OBJECT_FLAGS);
SIM_AT(DEVICE_OBJECT, Characteristics, SIM_DEVICE_OBJECT_CHARACTERISTICS);
SIM_AT(DEVICE_OBJECT, DeviceExtension, SIM_DEVICE_OBJECT_DEVICE_EXTENSION);
SIM_AT(DEVICE_OBJECT, DeviceType, SIM_DEVICE_OBJECT_DEVICE_TYPE);
SIM_AT(DEVICE_OBJECT, StackSize, SIM_DEVICE_OBJECT_STACK_SIZE);
SIM_AT(DEVICE_OBJECT, DeviceObjectExtension, SIM_DEVICE_OBJECT_DEVICE_OBJECT_EXTENSION);
_Static_assert(sizeof(DEVICE_OBJECT) == SIM_DEVICE_OBJECT_SIZE, "DEVICE_OBJECT size");

typedef struct _IO_STACK_LOCATION {
    UCHAR MajorFunction;
    UCHAR MinorFunction;
    UCHAR Flags;
    UCHAR Control;
    ULONG Reserved0;
    union {
        struct {
            PVOID Argument1;
            PVOID Argument2;
            PVOID Argument3;
            PVOID Argument4;
        } Others;
        struct {
            ULONG OutputBufferLength;
            ULONG Reserved;
            ULONG InputBufferLength;
            ULONG Reserved2;
            ULONG IoControlCode;
            ULONG Reserved3;
            PVOID Type3InputBuffer;
        } DeviceIoControl;
        UCHAR Raw[0x28];
    } Parameters;
    DEVICE_OBJECT* DeviceObject;
    PVOID FileObject;
    PVOID CompletionRoutine;
    PVOID Context;
} IO_STACK_LOCATION, *PIO_STACK_LOCATION;
SIM_AT(IO_STACK_LOCATION, MinorFunction, SIM_IO_STACK_LOCATION_MINOR_FUNCTION);
SIM_AT(IO_STACK_LOCATION, Flags, SIM_IO_STACK_LOCATION_FLAGS);
SIM_AT(IO_STACK_LOCATION, Control, SIM_IO_STACK_LOCATION_CONTROL);
SIM_AT(IO_STACK_LOCATION, Parameters, SIM_IO_STACK_LOCATION_PARAMETERS);
SIM_AT(IO_STACK_LOCATION, DeviceObject, SIM_IO_STACK_LOCATION_DEVICE_OBJECT);
SIM_AT(IO_STACK_LOCATION, FileObject, SIM_IO_STACK_LOCATION_FILE_OBJECT);
SIM_AT(IO_STACK_LOCATION, CompletionRoutine, SIM_IO_STACK_LOCATION_COMPLETION_ROUTINE);
SIM_AT(IO_STACK_LOCATION, Context, SIM_IO_STACK_LOCATION_CONTEXT);
_Static_assert(sizeof(IO_STACK_LOCATION) == SIM_IO_STACK_LOCATION_SIZE, "IO_STACK_LOCATION size");

typedef struct _IRP {
    SHORT Type;
    USHORT Size;
    USHORT AllocationProcessorNumber;
    USHORT Reserved0;
    ULONG Flags;
    ULONG Reserved1;
    PVOID MdlAddress;
    union {
        struct _IRP* MasterIrp;
        LONG IrpCount;
        PVOID SystemBuffer;
    } AssociatedIrp;
    IO_STATUS_BLOCK IoStatus;
    LIST_ENTRY ThreadListEntry;
    UCHAR Reserved2;
    KPROCESSOR_MODE RequestorMode;
    BOOLEAN PendingReturned;
    CHAR StackCount;
    CHAR CurrentLocation;
    BOOLEAN Cancel;
    KIRQL CancelIrql;
    UCHAR Reserved3[9];
    IO_STATUS_BLOCK* UserIosb;
    KEVENT* UserEvent;
    ULONG64 Overlay[2];
    PVOID CancelRoutine;
    PVOID UserBuffer;
    union {
        struct {
            PVOID DriverContext[4];
            ETHREAD* Thread;
            PVOID AuxiliaryBuffer;
            LIST_ENTRY ListEntry;
            IO_STACK_LOCATION* CurrentStackLocation;
            PVOID OriginalFileObject;
        } Overlay;
    } Tail;
    ULONG64 Reserved4;
} IRP, *PIRP;
SIM_AT(IRP, Flags, SIM_IRP_FLAGS);
SIM_AT(IRP, MdlAddress, SIM_IRP_MDL_ADDRESS);
SIM_AT(IRP, AssociatedIrp, SIM_IRP_ASSOCIATED_IRP);
SIM_AT(IRP, IoStatus, SIM_IRP_IO_STATUS);
SIM_AT(IRP, ThreadListEntry, SIM_IRP_THREAD_LIST_ENTRY);
SIM_AT(IRP, RequestorMode, SIM_IRP_REQUESTOR_MODE);
SIM_AT(IRP, PendingReturned, SIM_IRP_PENDING_RETURNED);
SIM_AT(IRP, StackCount, SIM_IRP_STACK_COUNT);
SIM_AT(IRP, CurrentLocation, SIM_IRP_CURRENT_LOCATION);
SIM_AT(IRP, Cancel, SIM_IRP_CANCEL);
SIM_AT(IRP, CancelIrql, SIM_IRP_CANCEL_IRQL);
SIM_AT(IRP, UserIosb, SIM_IRP_USER_IOSB);
SIM_AT(IRP, UserEvent, SIM_IRP_USER_EVENT);
SIM_AT(IRP, CancelRoutine, SIM_IRP_CANCEL_ROUTINE);
SIM_AT(IRP, UserBuffer, SIM_IRP_USER_BUFFER);
SIM_AT(IRP, Tail, SIM_IRP_TAIL);
SIM_AT(IRP, Tail.Overlay.Thread, SIM_IRP_TAIL_OVERLAY_THREAD);
SIM_AT(IRP, Tail.Overlay.CurrentStackLocation, SIM_IRP_TAIL_OVERLAY_CURRENT_STACK_LOCATION);
SIM_AT(IRP, Tail.Overlay.OriginalFileObject, SIM_IRP_TAIL_OVERLAY_ORIGINAL_FILE_OBJECT);
_Static_assert(sizeof(IRP) == SIM_IRP_SIZE, "IRP size");

/* User mode */
typedef struct _LDR_DATA_TABLE_ENTRY {
    LIST_ENTRY InLoadOrderLinks;
    LIST_ENTRY InMemoryOrderLinks;
    LIST_ENTRY InInitializationOrderLinks;
    ULONG64 Reserved0;
    PVOID DllBase;
    PVOID EntryPoint;
    ULONG SizeOfImage;
    ULONG Reserved1;
    UNICODE_STRING FullDllName;
    UNICODE_STRING BaseDllName;
    ULONG Flags;
    USHORT ObsoleteLoadCount;
    USHORT TlsIndex;
    UCHAR Reserved2[SIM_LDR_ENTRY_SIZE - SIM_LDR_ENTRY_BASE_DLL_NAME - 0x18];
} LDR_DATA_TABLE_ENTRY;
SIM_AT(LDR_DATA_TABLE_ENTRY, InMemoryOrderLinks, SIM_LDR_ENTRY_IN_MEMORY_ORDER);
SIM_AT(LDR_DATA_TABLE_ENTRY, InInitializationOrderLinks, SIM_LDR_ENTRY_IN_INIT_ORDER);
SIM_AT(LDR_DATA_TABLE_ENTRY, DllBase, SIM_LDR_ENTRY_DLL_BASE);
SIM_AT(LDR_DATA_TABLE_ENTRY, EntryPoint, SIM_LDR_ENTRY_ENTRY_POINT);
SIM_AT(LDR_DATA_TABLE_ENTRY, SizeOfImage, SIM_LDR_ENTRY_SIZE_OF_IMAGE);
SIM_AT(LDR_DATA_TABLE_ENTRY, FullDllName, SIM_LDR_ENTRY_FULL_DLL_NAME);
SIM_AT(LDR_DATA_TABLE_ENTRY, BaseDllName, SIM_LDR_ENTRY_BASE_DLL_NAME);
_Static_assert(sizeof(LDR_DATA_TABLE_ENTRY) == SIM_LDR_ENTRY_SIZE, "LDR_DATA_TABLE_ENTRY size");

typedef struct _PEB_LDR_DATA {
    ULONG Length;
    BOOLEAN Initialized;
    UCHAR Reserved0[3];
    PVOID SsHandle;
    ULONG64 Reserved1;
    LIST_ENTRY InLoadOrderModuleList;
    LIST_ENTRY InMemoryOrderModuleList;
    LIST_ENTRY InInitializationOrderModuleList;
    struct _LDR_DATA_TABLE_ENTRY* EntryInProgress;
    BOOLEAN ShutdownInProgress;
    UCHAR Reserved2[7];
    PVOID ShutdownThreadId;
} PEB_LDR_DATA;
SIM_AT(PEB_LDR_DATA, Initialized, SIM_PEB_LDR_DATA_INITIALIZED);
SIM_AT(PEB_LDR_DATA, InLoadOrderModuleList, SIM_PEB_LDR_DATA_IN_LOAD_ORDER);
SIM_AT(PEB_LDR_DATA, InMemoryOrderModuleList, SIM_PEB_LDR_DATA_IN_MEMORY_ORDER);
SIM_AT(PEB_LDR_DATA, InInitializationOrderModuleList, SIM_PEB_LDR_DATA_IN_INIT_ORDER);
_Static_assert(sizeof(PEB_LDR_DATA) == SIM_PEB_LDR_DATA_SIZE, "PEB_LDR_DATA size");

typedef struct _RTL_USER_PROCESS_PARAMETERS {
    ULONG MaximumLength;
    ULONG Length;
    ULONG Flags;
    ULONG DebugFlags;
    PVOID ConsoleHandle;
    UCHAR Reserved0[SIM_PROCESS_PARAMETERS_IMAGE_PATH_NAME - 0x18];
    UNICODE_STRING ImagePathName;
    UNICODE_STRING CommandLine;
    PVOID Environment;
    UCHAR Reserved1[SIM_PROCESS_PARAMETERS_SIZE - SIM_PROCESS_PARAMETERS_COMMAND_LINE - 0x18];
} RTL_USER_PROCESS_PARAMETERS;
SIM_AT(RTL_USER_PROCESS_PARAMETERS, ImagePathName, SIM_PROCESS_PARAMETERS_IMAGE_PATH_NAME);
SIM_AT(RTL_USER_PROCESS_PARAMETERS, CommandLine, SIM_PROCESS_PARAMETERS_COMMAND_LINE);
_Static_assert(sizeof(RTL_USER_PROCESS_PARAMETERS) == SIM_PROCESS_PARAMETERS_SIZE,
               "RTL_USER_PROCESS_PARAMETERS size");

typedef struct _PEB {
    BOOLEAN InheritedAddressSpace;
    BOOLEAN ReadImageFileExecOptions;
    BOOLEAN BeingDebugged;
    UCHAR BitField;
    UCHAR Reserved0[4];
    PVOID Mutant;
    ULONG64 Reserved1;
    PVOID ImageBaseAddress;
    PEB_LDR_DATA* Ldr;
    RTL_USER_PROCESS_PARAMETERS* ProcessParameters;
    PVOID SubSystemData;
    PVOID ProcessHeap;
    UCHAR Reserved2[SIM_PEB_NUMBER_OF_PROCESSORS - SIM_PEB_PROCESS_HEAP - 8];
    ULONG NumberOfProcessors;
    ULONG NtGlobalFlag;
    UCHAR Reserved3[SIM_PEB_OS_MAJOR_VERSION - SIM_PEB_NUMBER_OF_PROCESSORS - 8];
    ULONG OSMajorVersion;
    ULONG OSMinorVersion;
    USHORT OSBuildNumber;
    USHORT OSCSDVersion;
    ULONG OSPlatformId;
    UCHAR Reserved4[SIM_PEB_SESSION_ID - SIM_PEB_OS_BUILD_NUMBER - 8];
    ULONG SessionId;
    UCHAR Reserved5[SIM_PEB_SIZE - SIM_PEB_SESSION_ID - 4];
} PEB, *PPEB;
SIM_AT(PEB, BeingDebugged, SIM_PEB_BEING_DEBUGGED);
SIM_AT(PEB, ImageBaseAddress, SIM_PEB_IMAGE_BASE_ADDRESS);
SIM_AT(PEB, Ldr, SIM_PEB_LDR);
SIM_AT(PEB, ProcessParameters, SIM_PEB_PROCESS_PARAMETERS);
SIM_AT(PEB, ProcessHeap, SIM_PEB_PROCESS_HEAP);
SIM_AT(PEB, NumberOfProcessors, SIM_PEB_NUMBER_OF_PROCESSORS);
SIM_AT(PEB, OSMajorVersion, SIM_PEB_OS_MAJOR_VERSION);
SIM_AT(PEB, OSMinorVersion, SIM_PEB_OS_MINOR_VERSION);
SIM_AT(PEB, OSBuildNumber, SIM_PEB_OS_BUILD_NUMBER);
SIM_AT(PEB, SessionId, SIM_PEB_SESSION_ID);
_Static_assert(sizeof(PEB) == SIM_PEB_SIZE, "PEB size");

/* The kernel's loader entry (PsLoadedModuleList), with the layout every x64 build shares. */
typedef struct _KLDR_DATA_TABLE_ENTRY {
    LIST_ENTRY InLoadOrderLinks;
    PVOID ExceptionTable;
    ULONG ExceptionTableSize;
    ULONG Reserved0;
    PVOID GpValue;
    PVOID NonPagedDebugInfo;
    PVOID DllBase;
    PVOID EntryPoint;
    ULONG SizeOfImage;
    ULONG Reserved1;
    UNICODE_STRING FullDllName;
    UNICODE_STRING BaseDllName;
    ULONG Flags;
    USHORT LoadCount;
    USHORT Reserved2;
    PVOID SectionPointer;
    ULONG CheckSum;
    ULONG CoverageSectionSize;
    PVOID CoverageSection;
    PVOID LoadedImports;
    PVOID Spare;
    ULONG SizeOfImageNotRounded;
    ULONG TimeDateStamp;
} KLDR_DATA_TABLE_ENTRY;
SIM_AT(KLDR_DATA_TABLE_ENTRY, DllBase, SIM_LDR_DLL_BASE);
SIM_AT(KLDR_DATA_TABLE_ENTRY, EntryPoint, SIM_LDR_ENTRY_POINT);
SIM_AT(KLDR_DATA_TABLE_ENTRY, SizeOfImage, SIM_LDR_SIZE_OF_IMAGE);
SIM_AT(KLDR_DATA_TABLE_ENTRY, BaseDllName, SIM_LDR_BASE_DLL_NAME);

typedef void (*PKSTART_ROUTINE)(PVOID StartContext);
typedef NTSTATUS (*PDRIVER_INITIALIZE)(PVOID DriverObject, PUNICODE_STRING RegistryPath);

#define NTEXPORT __declspec(dllexport)
#define STATUS_SUCCESS ((NTSTATUS)0)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009A)

/* ------------------------------------------------------------------------------------------
 * Exported data. The simulator fills most of it at load time, as KdInitSystem and the boot
 * loader do on a real machine.
 * ---------------------------------------------------------------------------------------- */
NTEXPORT __declspec(align(16)) ULONG64 KdDebuggerDataBlock[0x380 / 8];
NTEXPORT LIST_ENTRY KdpDebuggerDataListHead;
NTEXPORT LIST_ENTRY PsLoadedModuleList;
NTEXPORT LIST_ENTRY PsActiveProcessHead;
NTEXPORT EPROCESS* PsInitialSystemProcess;
NTEXPORT EPROCESS* PsIdleProcess;
NTEXPORT KPRCB* KiProcessorBlock[64];
/* The object manager's types, by OBJECT_HEADER.TypeIndex (the simulator fills them). */
NTEXPORT OBJECT_TYPE* ObTypeIndexTable[SIM_MAX_OBJECT_TYPES];
NTEXPORT OBJECT_TYPE* PsProcessType;
NTEXPORT OBJECT_TYPE* PsThreadType;
NTEXPORT OBJECT_TYPE* IoDriverObjectType;
NTEXPORT OBJECT_TYPE* IoDeviceObjectType;
NTEXPORT OBJECT_TYPE* IoFileObjectType;
NTEXPORT OBJECT_TYPE* ExEventObjectType;
NTEXPORT PVOID MmPhysicalMemoryBlock;
NTEXPORT ULONG64 MmNumberOfPhysicalPages;
NTEXPORT ULONG64 MmLowestPhysicalPage;
NTEXPORT ULONG64 MmHighestPhysicalPage;
NTEXPORT MMPFN* MmPfnDatabase;
NTEXPORT OBJECT_DIRECTORY* ObpRootDirectoryObject;
NTEXPORT LIST_ENTRY ExpSystemResourcesList;
NTEXPORT ERESOURCE PiEngineLock;
NTEXPORT ERESOURCE IopDeviceTreeLock;
NTEXPORT ERESOURCE CmpRegistryLock;
NTEXPORT ULONG64 WmipSMBiosTablePhysicalAddress;
NTEXPORT ULONG WmipSMBiosTableLength;
NTEXPORT PVOID MmNonPagedPoolStart;
NTEXPORT PVOID MmNonPagedPoolEnd;
NTEXPORT ULONG64 MmHighestUserAddress = 0x00007FFFFFFEFFFFULL;
NTEXPORT ULONG64 MmSystemRangeStart = 0xFFFF800000000000ULL;
NTEXPORT ULONG64 MmUserProbeAddress = 0x00007FFFFFFF0000ULL;
/* The unloaded-driver list (`lm`'s "Unloaded modules:"), filled by MiRememberUnloadedDriver. */
typedef struct _UNLOADED_DRIVERS {
    UNICODE_STRING Name;
    PVOID StartAddress;
    PVOID EndAddress;
    ULONG64 CurrentTime; /* LARGE_INTEGER, system time of the unload */
} UNLOADED_DRIVERS;
_Static_assert(sizeof(UNLOADED_DRIVERS) == SIM_UNLOADED_DRIVERS_SIZE, "UNLOADED_DRIVERS size");
static UNLOADED_DRIVERS MiUnloadedDriverArray[SIM_MAX_UNLOADED_DRIVERS];
static WCHAR MiUnloadedDriverNames[SIM_MAX_UNLOADED_DRIVERS][SIM_UNLOADED_DRIVER_NAME_CHARS];
NTEXPORT UNLOADED_DRIVERS* MmUnloadedDrivers = MiUnloadedDriverArray;
NTEXPORT ULONG MmLastUnloadedDriver;
NTEXPORT PVOID PspCidTable;
NTEXPORT PVOID KeLoaderBlock;
NTEXPORT ULONG KeTimeIncrement = 100000; /* 10 ms in 100 ns units */
NTEXPORT ULONG64 KiBugCheckData[5];
NTEXPORT ULONG CmNtCSDVersion;
NTEXPORT CHAR NtBuildLab[] = "19041.1.amd64fre.vb_release.191206-1406";
NTEXPORT ULONG NtBuildNumber = 0xF0000000u | 19041u;
NTEXPORT CCHAR KeNumberProcessors;
NTEXPORT BOOLEAN KdDebuggerEnabled;
NTEXPORT BOOLEAN KdDebuggerNotPresent = 1;

/* DbgPrint also keeps the text in the kernel's circular print buffer (!dbgprint). */
#define KD_PRINT_BUFFER_SIZE 0x1000
NTEXPORT CHAR KdPrintDefaultCircularBuffer[KD_PRINT_BUFFER_SIZE];
NTEXPORT CHAR* KdPrintCircularBuffer = KdPrintDefaultCircularBuffer;
NTEXPORT CHAR* KdPrintCircularBufferEnd = KdPrintDefaultCircularBuffer + KD_PRINT_BUFFER_SIZE;
NTEXPORT CHAR* KdPrintWritePointer = KdPrintDefaultCircularBuffer;
NTEXPORT ULONG KdPrintRolloverCount;
NTEXPORT ULONG KdPrintBufferSize = KD_PRINT_BUFFER_SIZE;

/* ------------------------------------------------------------------------------------------
 * Hand-written code: the break instructions the debugger relies on.
 * RtlpBreakWithStatusInstruction is the int3 a break-in stops at (KDDEBUGGER_DATA64
 * .BreakpointWithStatus); the host steps over it with Rip += 1 and the ret resumes.
 * ---------------------------------------------------------------------------------------- */
__asm__(".text\n"
        ".globl DbgBreakPoint\n"
        ".def DbgBreakPoint; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "DbgBreakPoint:\n"
        "    int3\n"
        "    ret\n"
        ".globl DbgBreakPointWithStatus\n"
        ".def DbgBreakPointWithStatus; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "DbgBreakPointWithStatus:\n"
        "    movl %ecx, %eax\n"
        ".globl RtlpBreakWithStatusInstruction\n"
        ".def RtlpBreakWithStatusInstruction; .scl 2; .type 32; .endef\n"
        "RtlpBreakWithStatusInstruction:\n"
        "    int3\n"
        "    ret\n"
        ".globl KiUnexpectedInterrupt\n"
        ".def KiUnexpectedInterrupt; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiUnexpectedInterrupt:\n"
        "    hlt\n"
        "    jmp KiUnexpectedInterrupt\n"
        ".globl KiSystemCall64\n"
        ".def KiSystemCall64; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiSystemCall64:\n"
        "    ud2\n"
        ".section .drectve,\"yn\"\n"
        ".ascii \" -export:DbgBreakPoint -export:DbgBreakPointWithStatus\"\n"
        ".ascii \" -export:RtlpBreakWithStatusInstruction\"\n"
        ".ascii \" -export:KiUnexpectedInterrupt -export:KiSystemCall64\"\n"
        ".text\n");

void DbgBreakPointWithStatus(ULONG Status);

/* ------------------------------------------------------------------------------------------
 * Small runtime: the compiler may call these for struct copies; drivers import them.
 * ---------------------------------------------------------------------------------------- */
NTEXPORT void* memset(void* Dest, int Value, SIZE_T Count) {
    void* ret = Dest;
    __asm__ __volatile__("rep stosb" : "+D"(Dest), "+c"(Count) : "a"(Value) : "memory");
    return ret;
}

NTEXPORT void* memcpy(void* Dest, const void* Src, SIZE_T Count) {
    void* ret = Dest;
    __asm__ __volatile__("rep movsb" : "+D"(Dest), "+S"(Src), "+c"(Count) : : "memory");
    return ret;
}

NTEXPORT void* memmove(void* Dest, const void* Src, SIZE_T Count) {
    UCHAR* d = (UCHAR*)Dest;
    const UCHAR* s = (const UCHAR*)Src;
    if (d <= s || d >= s + Count) {
        return memcpy(Dest, Src, Count);
    }
    d += Count - 1;
    s += Count - 1;
    __asm__ __volatile__("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(Count) : : "memory");
    return Dest;
}

NTEXPORT SIZE_T strlen(const char* Str) {
    SIZE_T n = 0;
    while (Str[n] != 0) {
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------
 * Processor and time.
 * ---------------------------------------------------------------------------------------- */
static __inline ULONG64 KiReadGsQword(ULONG64 Offset) {
    ULONG64 value;
    __asm__ __volatile__("movq %%gs:(%1), %0" : "=r"(value) : "r"(Offset));
    return value;
}

static __inline ULONG KiReadGsDword(ULONG64 Offset) {
    ULONG value;
    __asm__ __volatile__("movl %%gs:(%1), %0" : "=r"(value) : "r"(Offset));
    return value;
}

NTEXPORT ULONG KeGetCurrentProcessorNumber(void) {
    return KiReadGsDword(SIM_KPCR_PRCB + SIM_KPRCB_NUMBER);
}

NTEXPORT PVOID KeGetCurrentThread(void) {
    return (PVOID)KiReadGsQword(SIM_KPCR_PRCB + SIM_KPRCB_CURRENT_THREAD);
}

NTEXPORT PVOID PsGetCurrentProcess(void) {
    UCHAR* thread = (UCHAR*)KeGetCurrentThread();
    return *(PVOID*)(thread + SIM_KTHREAD_APC_STATE_PROCESS);
}

#define KUSER_FIELD(type, offset) (*(volatile type*)(SIM_KUSER_SHARED_DATA + (offset)))

/* Reads a KSYSTEM_TIME the way NT does: High1Time, LowPart, High2Time until they agree. */
static ULONG64 KiReadSystemTime(ULONG Offset) {
    for (;;) {
        LONG high1 = KUSER_FIELD(LONG, Offset + 4);
        ULONG low = KUSER_FIELD(ULONG, Offset);
        LONG high2 = KUSER_FIELD(LONG, Offset + 8);
        if (high1 == high2) {
            return ((ULONG64)(ULONG)high1 << 32) | low;
        }
    }
}

NTEXPORT ULONG64 KeQueryInterruptTime(void) {
    return KiReadSystemTime(SIM_KUSER_INTERRUPT_TIME);
}

NTEXPORT void KeQuerySystemTime(ULONG64* CurrentTime) {
    *CurrentTime = KiReadSystemTime(SIM_KUSER_SYSTEM_TIME);
}

/* Waits about `Milliseconds` of real time. Each `hlt` sleeps until the next clock tick,
 * so a waiting CPU costs the host nothing. */
NTEXPORT __declspec(noinline) void KdSimWait(ULONG Milliseconds) {
    ULONG64 deadline = KeQueryInterruptTime() + (ULONG64)Milliseconds * 10000ULL;
    while (KeQueryInterruptTime() < deadline) {
        __asm__ __volatile__("hlt" ::: "memory");
    }
}

NTEXPORT __declspec(noinline) __declspec(noreturn) void KiIdleLoop(void) {
    for (;;) {
        __asm__ __volatile__("hlt" ::: "memory");
    }
}

/* ------------------------------------------------------------------------------------------
 * Debug services (int 0x2d; the simulator steps over the int3 that follows, like NT's
 * KiDebugServiceTrap).
 * ---------------------------------------------------------------------------------------- */
static __declspec(noinline) ULONG
    DebugService(ULONG Service, ULONG64 Argument1, ULONG64 Argument2) {
    ULONG status;
    __asm__ __volatile__("int $0x2d\n\tint3"
                         : "=a"(status)
                         : "a"(Service), "c"(Argument1), "d"(Argument2)
                         : "memory");
    return status;
}

typedef struct _KD_OUTPUT {
    CHAR* Buffer;
    ULONG Capacity;
    ULONG Length;
} KD_OUTPUT;

static void KdpPutChar(KD_OUTPUT* Out, CHAR Ch) {
    if (Out->Length + 1 < Out->Capacity) {
        Out->Buffer[Out->Length] = Ch;
        Out->Length++;
    }
}

static void KdpPutPadding(KD_OUTPUT* Out, CHAR Ch, int Count) {
    while (Count-- > 0) {
        KdpPutChar(Out, Ch);
    }
}

static void KdpPutNumber(KD_OUTPUT* Out, ULONG64 Value, int Negative, ULONG Base, int Upper,
                         int Width, int ZeroPad, int LeftAlign, int Plus) {
    CHAR digits[24];
    int count = 0;
    const CHAR* set = Upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        digits[count++] = set[Value % Base];
        Value /= Base;
    } while (Value != 0);
    int sign = (Negative || Plus) ? 1 : 0;
    int pad = Width - count - sign;
    if (!LeftAlign && !ZeroPad) {
        KdpPutPadding(Out, ' ', pad);
    }
    if (sign) {
        KdpPutChar(Out, Negative ? '-' : '+');
    }
    if (!LeftAlign && ZeroPad) {
        KdpPutPadding(Out, '0', pad);
    }
    while (count > 0) {
        KdpPutChar(Out, digits[--count]);
    }
    if (LeftAlign) {
        KdpPutPadding(Out, ' ', pad);
    }
}

static void KdpPutString(KD_OUTPUT* Out, const CHAR* Ansi, const WCHAR* Wide, int Length, int Width,
                         int LeftAlign) {
    if (Ansi == 0 && Wide == 0) {
        Ansi = "(null)";
        Length = -1;
    }
    int n = 0;
    if (Length < 0) {
        if (Ansi != 0) {
            while (Ansi[n] != 0) {
                n++;
            }
        } else {
            while (Wide[n] != 0) {
                n++;
            }
        }
    } else {
        n = Length;
    }
    if (!LeftAlign) {
        KdpPutPadding(Out, ' ', Width - n);
    }
    for (int i = 0; i < n; i++) {
        KdpPutChar(Out, Ansi != 0 ? Ansi[i] : (CHAR)Wide[i]);
    }
    if (LeftAlign) {
        KdpPutPadding(Out, ' ', Width - n);
    }
}

/* The subset of the CRT printf grammar that drivers use with DbgPrint:
 * flags - 0 + ; width and precision (digits or *); size h l ll I I32 I64 z w;
 * conversions d i u x X o p c s S Z %. */
static ULONG KdpFormat(CHAR* Buffer, ULONG Capacity, const CHAR* Format, va_list Args) {
    KD_OUTPUT out = {Buffer, Capacity, 0};
    const CHAR* f = Format;
    while (*f != 0) {
        if (*f != '%') {
            KdpPutChar(&out, *f++);
            continue;
        }
        f++;
        int left = 0;
        int zero = 0;
        int plus = 0;
        for (;; f++) {
            if (*f == '-') {
                left = 1;
            } else if (*f == '0') {
                zero = 1;
            } else if (*f == '+') {
                plus = 1;
            } else if (*f == ' ' || *f == '#') {
                /* accepted and ignored */
            } else {
                break;
            }
        }
        int width = 0;
        if (*f == '*') {
            width = va_arg(Args, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            f++;
        } else {
            while (*f >= '0' && *f <= '9') {
                width = width * 10 + (*f++ - '0');
            }
        }
        int precision = -1;
        if (*f == '.') {
            f++;
            precision = 0;
            if (*f == '*') {
                precision = va_arg(Args, int);
                f++;
            } else {
                while (*f >= '0' && *f <= '9') {
                    precision = precision * 10 + (*f++ - '0');
                }
            }
        }
        int size64 = 0;
        int wide = 0;
        int half = 0;
        if (*f == 'h') {
            half = 1;
            f++;
        } else if (*f == 'l') {
            f++;
            if (*f == 'l') {
                size64 = 1;
                f++;
            }
        } else if (*f == 'I') {
            f++;
            if (f[0] == '6' && f[1] == '4') {
                size64 = 1;
                f += 2;
            } else if (f[0] == '3' && f[1] == '2') {
                f += 2;
            } else {
                size64 = 1;
            }
        } else if (*f == 'z') {
            size64 = 1;
            f++;
        } else if (*f == 'w') {
            wide = 1;
            f++;
        }
        CHAR conv = *f;
        if (conv == 0) {
            break;
        }
        f++;
        switch (conv) {
        case 'd':
        case 'i': {
            long long v = size64 ? va_arg(Args, long long) : (long long)va_arg(Args, int);
            if (half) {
                v = (short)v;
            }
            ULONG64 magnitude = v < 0 ? (ULONG64)0 - (ULONG64)v : (ULONG64)v;
            KdpPutNumber(&out, magnitude, v < 0, 10, 0, width, zero, left, plus);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            ULONG64 v = size64 ? va_arg(Args, ULONG64) : (ULONG64)va_arg(Args, ULONG);
            if (half) {
                v = (USHORT)v;
            }
            ULONG base = conv == 'u' ? 10 : (conv == 'o' ? 8 : 16);
            KdpPutNumber(&out, v, 0, base, conv == 'X', width, zero, left, 0);
            break;
        }
        case 'p':
            KdpPutNumber(&out, (ULONG64)va_arg(Args, PVOID), 0, 16, 1, 16, 1, 0, 0);
            break;
        case 'c': {
            CHAR ch = (CHAR)va_arg(Args, int);
            KdpPutString(&out, &ch, 0, 1, width, left);
            break;
        }
        case 's':
        case 'S': {
            int is_wide = wide || conv == 'S';
            PVOID p = va_arg(Args, PVOID);
            int len = -1;
            if (p != 0 && precision >= 0) {
                len = 0;
                if (is_wide) {
                    while (len < precision && ((const WCHAR*)p)[len] != 0) {
                        len++;
                    }
                } else {
                    while (len < precision && ((const CHAR*)p)[len] != 0) {
                        len++;
                    }
                }
            }
            KdpPutString(&out, is_wide ? 0 : (const CHAR*)p, is_wide ? (const WCHAR*)p : 0, len,
                         width, left);
            break;
        }
        case 'Z': {
            PVOID p = va_arg(Args, PVOID);
            if (p == 0) {
                KdpPutString(&out, 0, 0, -1, width, left);
            } else if (wide) {
                PUNICODE_STRING us = (PUNICODE_STRING)p;
                KdpPutString(&out, 0, us->Buffer, us->Length / 2, width, left);
            } else {
                PSTRING s = (PSTRING)p;
                KdpPutString(&out, s->Buffer, 0, s->Length, width, left);
            }
            break;
        }
        case '%':
            KdpPutChar(&out, '%');
            break;
        default:
            KdpPutChar(&out, '%');
            KdpPutChar(&out, conv);
            break;
        }
    }
    if (out.Capacity != 0) {
        out.Buffer[out.Length] = 0;
    }
    return out.Length;
}

static void KdpLogToCircularBuffer(const CHAR* Text, ULONG Length) {
    for (ULONG i = 0; i < Length; i++) {
        *KdPrintWritePointer++ = Text[i];
        if (KdPrintWritePointer >= KdPrintCircularBufferEnd) {
            KdPrintWritePointer = KdPrintCircularBuffer;
            KdPrintRolloverCount++;
        }
    }
}

static ULONG KdpPrint(const CHAR* Format, va_list Args) {
    CHAR buffer[512];
    ULONG length = KdpFormat(buffer, sizeof(buffer), Format, Args);
    KdpLogToCircularBuffer(buffer, length);
    return DebugService(SIM_BREAKPOINT_PRINT, (ULONG64)buffer, length);
}

NTEXPORT ULONG DbgPrint(const CHAR* Format, ...) {
    va_list args;
    va_start(args, Format);
    ULONG status = KdpPrint(Format, args);
    va_end(args);
    return status;
}

NTEXPORT ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, const CHAR* Format, ...) {
    (void)ComponentId;
    (void)Level;
    va_list args;
    va_start(args, Format);
    ULONG status = KdpPrint(Format, args);
    va_end(args);
    return status;
}

NTEXPORT ULONG vDbgPrintEx(ULONG ComponentId, ULONG Level, const CHAR* Format, va_list Args) {
    (void)ComponentId;
    (void)Level;
    return KdpPrint(Format, Args);
}

static void KdpImageSymbols(ULONG Service, PSTRING FileName, PVOID ImageBase) {
    CHAR path[260];
    ULONG length = FileName->Length < sizeof(path) - 1 ? FileName->Length : sizeof(path) - 1;
    memcpy(path, FileName->Buffer, length);
    path[length] = 0;
    /* SizeOfImage and CheckSum come from the image's own optional header. */
    const UCHAR* base = (const UCHAR*)ImageBase;
    ULONG nt = *(const ULONG*)(base + 0x3C);
    SIM_SYMBOL_INFO info;
    info.BaseOfDll = (ULONG64)ImageBase;
    info.SizeOfImage = *(const ULONG*)(base + nt + 24 + 56);
    info.CheckSum = *(const ULONG*)(base + nt + 24 + 64);
    DebugService(Service, (ULONG64)path, (ULONG64)&info);
}

NTEXPORT void DbgLoadImageSymbols(PSTRING FileName, PVOID ImageBase, ULONG_PTR ProcessId) {
    (void)ProcessId;
    KdpImageSymbols(SIM_BREAKPOINT_LOAD_SYMBOLS, FileName, ImageBase);
}

NTEXPORT void DbgUnLoadImageSymbols(PSTRING FileName, PVOID ImageBase, ULONG_PTR ProcessId) {
    (void)ProcessId;
    KdpImageSymbols(SIM_BREAKPOINT_UNLOAD_SYMBOLS, FileName, ImageBase);
}

/* ------------------------------------------------------------------------------------------
 * Lists.
 * ---------------------------------------------------------------------------------------- */
static void InitializeListHead(LIST_ENTRY* Head) {
    Head->Flink = Head;
    Head->Blink = Head;
}

static void InsertTailList(LIST_ENTRY* Head, LIST_ENTRY* Entry) {
    LIST_ENTRY* last = Head->Blink;
    Entry->Flink = Head;
    Entry->Blink = last;
    last->Flink = Entry;
    Head->Blink = Entry;
}

static void RemoveEntryList(LIST_ENTRY* Entry) {
    LIST_ENTRY* next = Entry->Flink;
    LIST_ENTRY* prev = Entry->Blink;
    prev->Flink = next;
    next->Blink = prev;
    Entry->Flink = Entry;
    Entry->Blink = Entry;
}

/* ------------------------------------------------------------------------------------------
 * Timers and DPCs. Drivers see KDPC and KTIMER as opaque blocks of SIM_KDPC_SIZE and
 * SIM_KTIMER_SIZE bytes. Timers expire from the simulated clock interrupt (KiSimInterrupt),
 * which the simulator raises on the last processor when KiSimNextTimerDue has passed; the DPCs
 * run right there, on that processor.
 * ---------------------------------------------------------------------------------------- */
struct _KDPC;
typedef void (*PKDEFERRED_ROUTINE)(struct _KDPC* Dpc, PVOID DeferredContext, PVOID SystemArgument1,
                                   PVOID SystemArgument2);

typedef struct _KDPC {
    PKDEFERRED_ROUTINE DeferredRoutine;
    PVOID DeferredContext;
    PVOID SystemArgument1;
    PVOID SystemArgument2;
    ULONG64 Reserved[4];
} KDPC, *PKDPC;

typedef struct _KTIMER {
    LIST_ENTRY TimerListEntry;
    ULONG64 DueTime; /* interrupt time, 100 ns units */
    LONG Period;     /* ms, 0 = one shot */
    BOOLEAN Inserted;
    PKDPC Dpc;
    ULONG64 Reserved[3];
} KTIMER, *PKTIMER;

_Static_assert(sizeof(KDPC) == SIM_KDPC_SIZE, "KDPC size");
_Static_assert(sizeof(KTIMER) == SIM_KTIMER_SIZE, "KTIMER size");

static LIST_ENTRY KiTimerListHead = {&KiTimerListHead, &KiTimerListHead};
NTEXPORT volatile ULONG64 KiSimNextTimerDue = SIM_TIMER_NONE;
NTEXPORT volatile ULONG64 KiSimInterruptCount;
NTEXPORT volatile SIM_DRIVER_REQUEST KiSimDriverRequest;

static void KiUpdateNextTimerDue(void) {
    ULONG64 next = SIM_TIMER_NONE;
    for (LIST_ENTRY* e = KiTimerListHead.Flink; e != &KiTimerListHead; e = e->Flink) {
        PKTIMER timer = (PKTIMER)e;
        if (timer->DueTime < next) {
            next = timer->DueTime;
        }
    }
    KiSimNextTimerDue = next;
}

NTEXPORT void KeInitializeDpc(PKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine,
                              PVOID DeferredContext) {
    memset(Dpc, 0, sizeof(*Dpc));
    Dpc->DeferredRoutine = DeferredRoutine;
    Dpc->DeferredContext = DeferredContext;
}

NTEXPORT void KeInitializeTimer(PKTIMER Timer) {
    memset(Timer, 0, sizeof(*Timer));
    InitializeListHead(&Timer->TimerListEntry);
}

NTEXPORT BOOLEAN KeCancelTimer(PKTIMER Timer) {
    BOOLEAN was_inserted = Timer->Inserted;
    if (was_inserted) {
        RemoveEntryList(&Timer->TimerListEntry);
        Timer->Inserted = 0;
        KiUpdateNextTimerDue();
    }
    return was_inserted;
}

/* DueTime < 0: relative, in 100 ns units; otherwise an absolute system time. */
NTEXPORT BOOLEAN KeSetTimerEx(PKTIMER Timer, long long DueTime, LONG Period, PKDPC Dpc) {
    BOOLEAN was_inserted = KeCancelTimer(Timer);
    ULONG64 now = KeQueryInterruptTime();
    ULONG64 due;
    if (DueTime < 0) {
        due = now + (ULONG64)(-DueTime);
    } else {
        ULONG64 system_now;
        KeQuerySystemTime(&system_now);
        due = (ULONG64)DueTime > system_now ? now + ((ULONG64)DueTime - system_now) : now;
    }
    Timer->DueTime = due;
    Timer->Period = Period;
    Timer->Dpc = Dpc;
    Timer->Inserted = 1;
    InsertTailList(&KiTimerListHead, &Timer->TimerListEntry);
    KiUpdateNextTimerDue();
    return was_inserted;
}

NTEXPORT BOOLEAN KeSetTimer(PKTIMER Timer, long long DueTime, PKDPC Dpc) {
    return KeSetTimerEx(Timer, DueTime, 0, Dpc);
}

/* Runs the DPC of every expired timer; periodic timers go back in with their next due time.
 * The list is scanned again after each DPC, which may set or cancel timers itself. */
static void KiExpireTimers(void) {
    for (int guard = 0; guard < 64; guard++) {
        ULONG64 now = KeQueryInterruptTime();
        PKTIMER expired = 0;
        for (LIST_ENTRY* e = KiTimerListHead.Flink; e != &KiTimerListHead; e = e->Flink) {
            if (((PKTIMER)e)->DueTime <= now) {
                expired = (PKTIMER)e;
                break;
            }
        }
        if (expired == 0) {
            break;
        }
        RemoveEntryList(&expired->TimerListEntry);
        expired->Inserted = 0;
        if (expired->Period > 0) {
            ULONG64 period = (ULONG64)expired->Period * 10000ULL;
            expired->DueTime += period;
            if (expired->DueTime <= now) {
                expired->DueTime = now + period;
            }
            expired->Inserted = 1;
            InsertTailList(&KiTimerListHead, &expired->TimerListEntry);
        }
        KiUpdateNextTimerDue();
        PKDPC dpc = expired->Dpc;
        if (dpc != 0 && dpc->DeferredRoutine != 0) {
            dpc->DeferredRoutine(dpc, dpc->DeferredContext, dpc->SystemArgument1,
                                 dpc->SystemArgument2);
        }
    }
    KiUpdateNextTimerDue();
}

/* ------------------------------------------------------------------------------------------
 * Drivers loaded after boot. The simulator has mapped the image and built its loader entry and
 * DRIVER_OBJECT (MmLoadSystemImage's part); this is IopLoadDriver's and MmUnloadSystemImage's
 * part, run from the simulated interrupt.
 * ---------------------------------------------------------------------------------------- */
typedef void (*PDRIVER_UNLOAD)(PVOID DriverObject);

/* ------------------------------------------------------------------------------------------
 * Objects and I/O: the object header in front of a body, its name, and IRP dispatch.
 * ---------------------------------------------------------------------------------------- */
static OBJECT_HEADER* ObpHeader(PVOID Object) {
    return (OBJECT_HEADER*)((UCHAR*)Object - SIM_OBJECT_HEADER_BODY);
}

NTEXPORT OBJECT_TYPE* ObGetObjectType(PVOID Object) {
    return ObTypeIndexTable[ObpHeader(Object)->TypeIndex];
}

NTEXPORT OBJECT_HEADER_NAME_INFO* ObQueryNameInfo(PVOID Object) {
    OBJECT_HEADER* header = ObpHeader(Object);
    if ((header->InfoMask & 0x02) == 0) {
        return 0;
    }
    return (OBJECT_HEADER_NAME_INFO*)((UCHAR*)header - sizeof(OBJECT_HEADER_NAME_INFO));
}

NTEXPORT void KeInitializeEvent(KEVENT* Event, ULONG Type, BOOLEAN State) {
    Event->Header.Type = (UCHAR)Type;
    Event->Header.Signalling = 0;
    Event->Header.Size = sizeof(KEVENT) / sizeof(LONG);
    Event->Header.SignalState = State;
    Event->Header.WaitListHead.Flink = &Event->Header.WaitListHead;
    Event->Header.WaitListHead.Blink = &Event->Header.WaitListHead;
}

/* Passes an IRP to the next lower stack location's driver, as IofCallDriver does. */
NTEXPORT NTSTATUS IoCallDriver(DEVICE_OBJECT* DeviceObject, IRP* Irp) {
    Irp->CurrentLocation--;
    IO_STACK_LOCATION* next = Irp->Tail.Overlay.CurrentStackLocation - 1;
    Irp->Tail.Overlay.CurrentStackLocation = next;
    next->DeviceObject = DeviceObject;
    return DeviceObject->DriverObject->MajorFunction[next->MajorFunction](DeviceObject, Irp);
}

/* What a driver's unhandled IRP_MJ_* entries point to. */
NTEXPORT NTSTATUS IopInvalidDeviceRequest(DEVICE_OBJECT* DeviceObject, IRP* Irp) {
    (void)DeviceObject;
    Irp->IoStatus.Status = (NTSTATUS)0xC0000010; /* STATUS_INVALID_DEVICE_REQUEST */
    Irp->IoStatus.Information = 0;
    return Irp->IoStatus.Status;
}

NTEXPORT PEB* PsGetProcessPeb(EPROCESS* Process) {
    return Process->Peb;
}

NTEXPORT PVOID PsGetThreadId(ETHREAD* Thread) {
    return Thread->Cid.UniqueThread;
}

NTEXPORT KPCR* KeGetPcr(void) {
    return (KPCR*)KiReadGsQword(SIM_KPCR_SELF);
}

#define FIELD_AT(type, base, offset) (*(type*)((UCHAR*)(base) + (offset)))

static __declspec(noinline) void IopLoadDriver(volatile SIM_DRIVER_REQUEST* Request) {
    LIST_ENTRY* entry = (LIST_ENTRY*)Request->LdrEntry;
    PVOID base = ((KLDR_DATA_TABLE_ENTRY*)entry)->DllBase;
    PVOID driver = (PVOID)Request->DriverObject;
    InsertTailList(&PsLoadedModuleList, entry);
    DbgLoadImageSymbols((PSTRING)Request->ImageName, base, (ULONG_PTR)-1);
    PDRIVER_INITIALIZE init = FIELD_AT(PDRIVER_INITIALIZE, driver, SIM_DRIVER_OBJECT_DRIVER_INIT);
    NTSTATUS status = init(driver, (PUNICODE_STRING)Request->RegistryPath);
    Request->Status = (ULONG64)(long long)status;
    if (status < 0) {
        DbgPrint("nt: driver at %p failed to initialize (0x%08x)\n", base, status);
    }
}

/* MmUnloadSystemImage's note of an unloaded driver: name, range and time go into the next
 * slot of MmUnloadedDrivers (a ring of SIM_MAX_UNLOADED_DRIVERS), MmLastUnloadedDriver moves on. */
static __declspec(noinline) void MiRememberUnloadedDriver(PUNICODE_STRING Name, PVOID Base,
                                                          ULONG Size) {
    ULONG index = MmLastUnloadedDriver;
    if (index >= SIM_MAX_UNLOADED_DRIVERS) {
        index = 0;
    }
    UNLOADED_DRIVERS* slot = &MmUnloadedDrivers[index];
    WCHAR* buffer = MiUnloadedDriverNames[index];
    USHORT chars = (USHORT)(Name->Length / sizeof(WCHAR));
    if (chars > SIM_UNLOADED_DRIVER_NAME_CHARS) {
        chars = SIM_UNLOADED_DRIVER_NAME_CHARS;
    }
    memcpy(buffer, Name->Buffer, chars * sizeof(WCHAR));
    slot->Name.Buffer = buffer;
    slot->Name.Length = (USHORT)(chars * sizeof(WCHAR));
    slot->Name.MaximumLength = slot->Name.Length;
    slot->StartAddress = Base;
    slot->EndAddress = (UCHAR*)Base + Size;
    KeQuerySystemTime(&slot->CurrentTime);
    MmLastUnloadedDriver = index + 1;
}

static __declspec(noinline) void IopUnloadDriver(volatile SIM_DRIVER_REQUEST* Request) {
    LIST_ENTRY* entry = (LIST_ENTRY*)Request->LdrEntry;
    PVOID base = FIELD_AT(PVOID, entry, SIM_LDR_DLL_BASE);
    PVOID driver = (PVOID)Request->DriverObject;
    PDRIVER_UNLOAD unload = FIELD_AT(PDRIVER_UNLOAD, driver, SIM_DRIVER_OBJECT_DRIVER_UNLOAD);
    if (unload != 0) {
        unload(driver);
    }
    DbgUnLoadImageSymbols((PSTRING)Request->ImageName, base, (ULONG_PTR)-1);
    RemoveEntryList(entry);
    MiRememberUnloadedDriver(&FIELD_AT(UNICODE_STRING, entry, SIM_LDR_BASE_DLL_NAME), base,
                             FIELD_AT(ULONG, entry, SIM_LDR_SIZE_OF_IMAGE));
}

/* Called by KiSimInterrupt (below) with the interrupted state saved. */
void KiSimDispatchInterrupt(void) {
    KiSimInterruptCount++;
    volatile SIM_DRIVER_REQUEST* request = &KiSimDriverRequest;
    ULONG64 operation = request->Operation;
    if (operation == SIM_DRIVER_OP_LOAD) {
        IopLoadDriver(request);
    } else if (operation == SIM_DRIVER_OP_UNLOAD) {
        IopUnloadDriver(request);
    }
    if (operation != SIM_DRIVER_OP_NONE) {
        request->Operation = SIM_DRIVER_OP_NONE;
        request->Completed++;
    }
    KiExpireTimers();
}

/* The interrupt entry: the simulator pushed the interrupted RIP (right after a hlt) and jumped
 * here. Saves flags and the volatile registers (xmm0-5 too), aligns the stack, calls
 * KiSimDispatchInterrupt and returns to where the processor was. Unwind data describes the
 * frame, so stacks walk through it. */
__asm__(".text\n"
        ".globl KiSimInterrupt\n"
        ".def KiSimInterrupt; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiSimInterrupt:\n"
        ".seh_proc KiSimInterrupt\n"
        "    pushfq\n"
        ".seh_stackalloc 8\n"
        "    pushq %rax\n"
        ".seh_pushreg %rax\n"
        "    pushq %rcx\n"
        ".seh_pushreg %rcx\n"
        "    pushq %rdx\n"
        ".seh_pushreg %rdx\n"
        "    pushq %r8\n"
        ".seh_pushreg %r8\n"
        "    pushq %r9\n"
        ".seh_pushreg %r9\n"
        "    pushq %r10\n"
        ".seh_pushreg %r10\n"
        "    pushq %r11\n"
        ".seh_pushreg %r11\n"
        "    pushq %rbp\n"
        ".seh_pushreg %rbp\n"
        "    movq %rsp, %rbp\n"
        ".seh_setframe %rbp, 0\n"
        ".seh_endprologue\n"
        "    andq $-16, %rsp\n"
        "    subq $0x80, %rsp\n"
        "    movdqa %xmm0, 0x20(%rsp)\n"
        "    movdqa %xmm1, 0x30(%rsp)\n"
        "    movdqa %xmm2, 0x40(%rsp)\n"
        "    movdqa %xmm3, 0x50(%rsp)\n"
        "    movdqa %xmm4, 0x60(%rsp)\n"
        "    movdqa %xmm5, 0x70(%rsp)\n"
        "    cld\n"
        "    call KiSimDispatchInterrupt\n"
        "    movdqa 0x20(%rsp), %xmm0\n"
        "    movdqa 0x30(%rsp), %xmm1\n"
        "    movdqa 0x40(%rsp), %xmm2\n"
        "    movdqa 0x50(%rsp), %xmm3\n"
        "    movdqa 0x60(%rsp), %xmm4\n"
        "    movdqa 0x70(%rsp), %xmm5\n"
        "    movq %rbp, %rsp\n"
        "    popq %rbp\n"
        "    popq %r11\n"
        "    popq %r10\n"
        "    popq %r9\n"
        "    popq %r8\n"
        "    popq %rdx\n"
        "    popq %rcx\n"
        "    popq %rax\n"
        "    popfq\n"
        "    ret\n"
        ".seh_endproc\n"
        ".section .drectve,\"yn\"\n"
        ".ascii \" -export:KiSimInterrupt\"\n"
        ".text\n");

/* ------------------------------------------------------------------------------------------
 * Threads that are not running. There is no scheduler here, but the threads the simulator made
 * waiting or ready get the stacks Windows x64 leaves such threads: at boot, KiSimParkThreads
 * runs each one's way into the dispatcher on its own kernel stack, up to KiSwapContext, whose
 * SwapContext saves a KSWITCH_FRAME (rbp, the return address into KiSwapContext) at
 * KTHREAD.KernelStack and switches back to the boot thread. A kernel-mode wait: KiSimThreadWait ->
 * KeWaitForSingleObject -> KiSwapThread. A user-mode wait enters through a system call: a
 * KTRAP_FRAME with the user registers at the top of the stack (KTHREAD.TrapFrame), KiSimSystemCall
 * -> NtWaitForSingleObject -> the same. A ready thread was preempted: KiSimBusyThread is
 * interrupted (KiDpcInterrupt builds a KTRAP_FRAME), KiDispatchInterrupt queues it in its
 * processor's KPRCB.DispatcherReadyListHead[Priority] (ReadySummary bit set) and switches.
 * ---------------------------------------------------------------------------------------- */
#define SIM_STR2(x) #x
#define SIM_STR(x) SIM_STR2(x)
#define KTHREAD_STATE_READY 1

NTEXPORT KTHREAD* KiSimParkList[SIM_MAX_PARKED_THREADS]; /* the simulator fills it */
NTEXPORT ULONG KiSimParkedCount;                         /* threads that got a switch frame */
NTEXPORT ULONG64 KiSimParkRsp; /* the boot thread's stack while another one is parked */
static KTHREAD* KiSimParkingThread;

void KiSimRunOnStack(PVOID Argument, PVOID Routine, PVOID StackPointer);
void SwapContext(KTHREAD* Thread);
void KiSimSystemCall(void);
void KiSimPreempt(void);

/* As on Windows x64, the switch frame's return address is in KiSwapContext (after the call to
 * SwapContext, which saves the frame), KernelStack + sizeof(KSWITCH_FRAME) its stack. */
NTEXPORT __declspec(noinline) BOOLEAN KiSwapContext(KTHREAD* Thread) {
    Thread->Running = 0;
    SwapContext(Thread);
    Thread->Running = 1;
    return Thread->ApcState.KernelApcPending;
}

static __declspec(noinline) NTSTATUS KiSwapThread(KTHREAD* Thread) {
    Thread->ContextSwitches++;
    KiSwapContext(Thread);
    return (NTSTATUS)Thread->WaitStatus;
}

NTEXPORT __declspec(noinline) NTSTATUS
    KeWaitForSingleObject(PVOID Object, ULONG WaitReason, KPROCESSOR_MODE WaitMode,
                          BOOLEAN Alertable, PVOID Timeout) {
    KTHREAD* thread = KiSimParkingThread;
    (void)Timeout;
    /* The simulator linked the wait block into the object's wait list already. */
    if (thread == 0 || thread->WaitBlockList == 0 || thread->WaitBlockList->Object != Object ||
        thread->WaitReason != WaitReason || thread->WaitMode != WaitMode ||
        thread->Alertable != Alertable) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    NTSTATUS status = KiSwapThread(thread);
    thread->WaitStatus = status;
    return status;
}

/* The handle stands for the object the simulator made the thread wait on. */
NTEXPORT __declspec(noinline) NTSTATUS
    NtWaitForSingleObject(PVOID Handle, BOOLEAN Alertable, PVOID Timeout) {
    KTHREAD* thread = KiSimParkingThread;
    (void)Handle;
    NTSTATUS status = KeWaitForSingleObject(thread->WaitBlockList->Object, thread->WaitReason,
                                            SIM_USER_MODE, Alertable, Timeout);
    thread->FirstArgument = Handle;
    return status;
}

NTEXPORT __declspec(noinline) __declspec(noreturn) void KiSimThreadWait(KTHREAD* Thread) {
    KeWaitForSingleObject(Thread->WaitBlockList->Object, Thread->WaitReason, Thread->WaitMode,
                          Thread->Alertable, 0);
    KiIdleLoop();
}

static void KiQueueReadyThread(KPRCB* Prcb, KTHREAD* Thread) {
    ULONG priority = (ULONG)(UCHAR)Thread->Priority & 31;
    Thread->State = KTHREAD_STATE_READY;
    InsertTailList(&Prcb->DispatcherReadyListHead[priority], &Thread->WaitListEntry);
    Prcb->ReadySummary |= 1u << priority;
}

/* Called by KiDpcInterrupt with the interrupted state in TrapFrame. */
NTEXPORT __declspec(noinline) void KiDispatchInterrupt(KTRAP_FRAME* TrapFrame) {
    KTHREAD* thread = KiSimParkingThread;
    KPRCB* prcb = KiProcessorBlock[thread->NextProcessor];
    KiQueueReadyThread(prcb, thread);
    KiSwapContext(thread);
    TrapFrame->Logging = 0;
}

NTEXPORT __declspec(noinline) __declspec(noreturn) void KiSimBusyThread(KTHREAD* Thread) {
    volatile ULONG64 acc = (ULONG64)Thread;
    for (;;) {
        for (int i = 0; i < 16; i++) {
            acc = acc * 6364136223846793005ULL + 1442695040888963407ULL;
        }
        KiSimPreempt();
    }
}

static void KiSimInitializeReadyLists(void) {
    for (ULONG i = 0; i < (ULONG)(UCHAR)KeNumberProcessors && i < 64; i++) {
        KPRCB* prcb = KiProcessorBlock[i];
        if (prcb == 0) {
            continue;
        }
        for (int p = 0; p < 32; p++) {
            InitializeListHead(&prcb->DispatcherReadyListHead[p]);
        }
        prcb->ReadySummary = 0;
    }
}

static void KiSimParkThreads(void) {
    KiSimInitializeReadyLists();
    for (ULONG i = 0; i < SIM_MAX_PARKED_THREADS; i++) {
        KTHREAD* thread = KiSimParkList[i];
        if (thread == 0) {
            continue;
        }
        KiSimParkingThread = thread;
        UCHAR* top = (UCHAR*)thread->InitialStack;
        if (thread->State != KTHREAD_STATE_READY && thread->WaitMode == SIM_USER_MODE) {
            /* In a system call from user mode: the registers syscall left, as KiSystemCall64
             * saves them (r10 = the first argument, rax = the service number). */
            KTRAP_FRAME* trap = (KTRAP_FRAME*)(top - sizeof(KTRAP_FRAME));
            trap->PreviousMode = SIM_USER_MODE;
            trap->Rax = 4; /* NtWaitForSingleObject */
            trap->R10 = 0x1c4;
            trap->Rdx = thread->Alertable;
            trap->Rip = SIM_USER_SYSCALL_RIP;
            trap->SegCs = 0x33;
            trap->EFlags = 0x246;
            trap->Rsp = ((ULONG64)thread->Teb & ~0xFFFFULL) - 0x358; /* its user stack */
            trap->SegSs = 0x2b;
            thread->TrapFrame = trap;
            KiSimRunOnStack(thread, (PVOID)KiSimSystemCall, &trap->Rip);
        } else {
            ULONG64* sp = (ULONG64*)(top - 0x38);
            *sp = 0; /* the thread's outermost return address: a walk ends there */
            KiSimRunOnStack(thread,
                            thread->State == KTHREAD_STATE_READY ? (PVOID)KiSimBusyThread
                                                                 : (PVOID)KiSimThreadWait,
                            sp);
        }
        KSWITCH_FRAME* frame = (KSWITCH_FRAME*)thread->KernelStack;
        if (frame != 0 && frame->Return != 0) {
            KiSimParkedCount++;
        }
    }
    KiSimParkingThread = 0;
}

// clang-format off
/* The boot thread's side of a park: KiSimRunOnStack saves its nonvolatile registers, switches
 * to the parked thread's stack and jumps to the routine; SwapContext leaves the switch frame
 * and comes back here, to KiSimRunOnStack's caller. */
__asm__(".text\n"
        ".globl KiSimRunOnStack\n"
        ".def KiSimRunOnStack; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiSimRunOnStack:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %rdi\n"
        "    pushq %rsi\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $0xA8, %rsp\n"
        "    movdqa %xmm6, 0x00(%rsp)\n"
        "    movdqa %xmm7, 0x10(%rsp)\n"
        "    movdqa %xmm8, 0x20(%rsp)\n"
        "    movdqa %xmm9, 0x30(%rsp)\n"
        "    movdqa %xmm10, 0x40(%rsp)\n"
        "    movdqa %xmm11, 0x50(%rsp)\n"
        "    movdqa %xmm12, 0x60(%rsp)\n"
        "    movdqa %xmm13, 0x70(%rsp)\n"
        "    movdqa %xmm14, 0x80(%rsp)\n"
        "    movdqa %xmm15, 0x90(%rsp)\n"
        "    movq %rsp, KiSimParkRsp(%rip)\n"
        "    movq %r8, %rsp\n"
        "    jmpq *%rdx\n"
        "KiSimResumeBootThread:\n"
        "    movq KiSimParkRsp(%rip), %rsp\n"
        "    movdqa 0x00(%rsp), %xmm6\n"
        "    movdqa 0x10(%rsp), %xmm7\n"
        "    movdqa 0x20(%rsp), %xmm8\n"
        "    movdqa 0x30(%rsp), %xmm9\n"
        "    movdqa 0x40(%rsp), %xmm10\n"
        "    movdqa 0x50(%rsp), %xmm11\n"
        "    movdqa 0x60(%rsp), %xmm12\n"
        "    movdqa 0x70(%rsp), %xmm13\n"
        "    movdqa 0x80(%rsp), %xmm14\n"
        "    movdqa 0x90(%rsp), %xmm15\n"
        "    addq $0xA8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rsi\n"
        "    popq %rdi\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        /* rcx = the thread being switched out; [rsp] = the return into KiSwapContext. */
        ".globl SwapContext\n"
        ".def SwapContext; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "SwapContext:\n"
        ".seh_proc SwapContext\n"
        "    subq $(" SIM_STR(SIM_KSWITCH_FRAME_RETURN) "), %rsp\n"
        ".seh_stackalloc " SIM_STR(SIM_KSWITCH_FRAME_RETURN) "\n"
        ".seh_endprologue\n"
        "    movq %rbp, " SIM_STR(SIM_KSWITCH_FRAME_RBP) "(%rsp)\n"
        "    movq %rsp, " SIM_STR(SIM_KTHREAD_KERNEL_STACK) "(%rcx)\n"
        "    jmp KiSimResumeBootThread\n"
        ".seh_endproc\n"
        /* Called from where a thread gets interrupted: the return address becomes the machine
         * frame's rip, as the processor pushes it, then the interrupt entry. */
        ".globl KiSimPreempt\n"
        ".def KiSimPreempt; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiSimPreempt:\n"
        "    popq %r10\n"
        "    movq %rsp, %r11\n"
        "    pushq $0x18\n"
        "    pushq %r11\n"
        "    pushfq\n"
        "    pushq $0x10\n"
        "    pushq %r10\n"
        "    jmp KiDpcInterrupt\n"
        /* The DPC interrupt entry: a machine frame, the trap frame under it. */
        ".globl KiDpcInterrupt\n"
        ".def KiDpcInterrupt; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiDpcInterrupt:\n"
        ".seh_proc KiDpcInterrupt\n"
        ".seh_pushframe\n"
        "    subq $(" SIM_STR(SIM_KTRAP_FRAME_RIP) "), %rsp\n"
        ".seh_stackalloc " SIM_STR(SIM_KTRAP_FRAME_RIP) "\n"
        ".seh_endprologue\n"
        "    movq %rax, " SIM_STR(SIM_KTRAP_FRAME_RAX) "(%rsp)\n"
        "    movq %rcx, " SIM_STR(SIM_KTRAP_FRAME_RCX) "(%rsp)\n"
        "    movq %rdx, " SIM_STR(SIM_KTRAP_FRAME_RDX) "(%rsp)\n"
        "    movq %r8, " SIM_STR(SIM_KTRAP_FRAME_R8) "(%rsp)\n"
        "    movq %r9, " SIM_STR(SIM_KTRAP_FRAME_R9) "(%rsp)\n"
        "    movq %r10, " SIM_STR(SIM_KTRAP_FRAME_R10) "(%rsp)\n"
        "    movq %r11, " SIM_STR(SIM_KTRAP_FRAME_R11) "(%rsp)\n"
        "    movq %rbp, " SIM_STR(SIM_KTRAP_FRAME_RBP) "(%rsp)\n"
        "    movq %rsp, %rcx\n"
        "    callq KiDispatchInterrupt\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_RAX) "(%rsp), %rax\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_RCX) "(%rsp), %rcx\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_RDX) "(%rsp), %rdx\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_R8) "(%rsp), %r8\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_R9) "(%rsp), %r9\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_R10) "(%rsp), %r10\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_R11) "(%rsp), %r11\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_RBP) "(%rsp), %rbp\n"
        "    addq $(" SIM_STR(SIM_KTRAP_FRAME_RIP) "), %rsp\n"
        "    iretq\n"
        ".seh_endproc\n"
        /* The system call entry of a parked user-mode wait: the trap frame is filled (by
         * KiSimParkThreads, as syscall and KiSystemCall64's prolog would); rsp = its Rip. One
         * service only: NtWaitForSingleObject(r10, rdx, r8). */
        ".globl KiSimSystemCall\n"
        ".def KiSimSystemCall; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KiSimSystemCall:\n"
        ".seh_proc KiSimSystemCall\n"
        ".seh_pushframe\n"
        "    subq $(" SIM_STR(SIM_KTRAP_FRAME_RIP) "), %rsp\n"
        ".seh_stackalloc " SIM_STR(SIM_KTRAP_FRAME_RIP) "\n"
        ".seh_endprologue\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_R10) "(%rsp), %rcx\n"
        "    movq " SIM_STR(SIM_KTRAP_FRAME_RDX) "(%rsp), %rdx\n"
        "    xorl %r8d, %r8d\n"
        "    callq NtWaitForSingleObject\n"
        "    movq %rax, " SIM_STR(SIM_KTRAP_FRAME_RAX) "(%rsp)\n"
        "    addq $(" SIM_STR(SIM_KTRAP_FRAME_RIP) "), %rsp\n"
        "    iretq\n"
        ".seh_endproc\n"
        ".section .drectve,\"yn\"\n"
        ".ascii \" -export:SwapContext -export:KiDpcInterrupt -export:KiSimSystemCall\"\n"
        ".text\n");
// clang-format on

/* ------------------------------------------------------------------------------------------
 * Bug checks. As NT with a kernel debugger: KiBugCheckData, the "Fatal System Error" text,
 * a break at RtlpBreakWithStatusInstruction (KiBugCheckDebugBreak); once the debugger lets
 * the processor go, the crash dump is written and the machine reboots. Both are the
 * simulator's: it stops the processor on the first instruction of KiSimReturnToFirmware.
 * ---------------------------------------------------------------------------------------- */
NTEXPORT __declspec(noinline) __declspec(noreturn) void KiSimReturnToFirmware(ULONG BugCheckCode) {
    (void)BugCheckCode;
    for (;;) {
        __asm__ __volatile__("hlt" ::: "memory");
    }
}

NTEXPORT __declspec(noreturn) void KeBugCheckEx(ULONG BugCheckCode, ULONG_PTR Parameter1,
                                                ULONG_PTR Parameter2, ULONG_PTR Parameter3,
                                                ULONG_PTR Parameter4) {
    KiBugCheckData[0] = BugCheckCode;
    KiBugCheckData[1] = Parameter1;
    KiBugCheckData[2] = Parameter2;
    KiBugCheckData[3] = Parameter3;
    KiBugCheckData[4] = Parameter4;
    DbgPrint("\n*** Fatal System Error: 0x%08lx\n                       (0x%p,0x%p,0x%p,0x%p)\n\n",
             BugCheckCode, (PVOID)Parameter1, (PVOID)Parameter2, (PVOID)Parameter3,
             (PVOID)Parameter4);
    DbgBreakPointWithStatus(SIM_DBG_STATUS_BUGCHECK_FIRST);
    KiSimReturnToFirmware(BugCheckCode);
}

NTEXPORT __declspec(noreturn) void KeBugCheck(ULONG BugCheckCode) {
    KeBugCheckEx(BugCheckCode, 0, 0, 0, 0);
}

/* ------------------------------------------------------------------------------------------
 * System threads and boot. There is no scheduler: the first system thread a boot driver
 * creates runs on CPU 0 once all boot drivers are initialised.
 * ---------------------------------------------------------------------------------------- */
static PKSTART_ROUTINE PspPendingStartRoutine;
static PVOID PspPendingStartContext;

NTEXPORT NTSTATUS PsCreateSystemThread(PVOID* ThreadHandle, ULONG DesiredAccess,
                                       PVOID ObjectAttributes, PVOID ProcessHandle, PVOID ClientId,
                                       PKSTART_ROUTINE StartRoutine, PVOID StartContext) {
    (void)DesiredAccess;
    (void)ObjectAttributes;
    (void)ProcessHandle;
    (void)ClientId;
    if (PspPendingStartRoutine != 0) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    PspPendingStartRoutine = StartRoutine;
    PspPendingStartContext = StartContext;
    if (ThreadHandle != 0) {
        *ThreadHandle = (PVOID)0xFFFFFFFF80000004ULL;
    }
    return STATUS_SUCCESS;
}

NTEXPORT __declspec(noinline) __declspec(noreturn) void PspSystemThreadStartup(
    PKSTART_ROUTINE StartRoutine, PVOID StartContext) {
    StartRoutine(StartContext);
    KiIdleLoop();
}

NTEXPORT __declspec(noreturn) void KiSystemStartup(SIM_LOADER_BLOCK* LoaderBlock) {
    KeLoaderBlock = LoaderBlock;
    KiSimParkThreads();
    for (ULONG64 i = 0; i < LoaderBlock->DriverCount && i < SIM_MAX_BOOT_DRIVERS; i++) {
        SIM_BOOT_DRIVER* driver = &LoaderBlock->Drivers[i];
        PDRIVER_INITIALIZE entry = (PDRIVER_INITIALIZE)driver->DriverEntry;
        NTSTATUS status = entry((PVOID)driver->DriverObject, (PUNICODE_STRING)driver->RegistryPath);
        if (status < 0) {
            DbgPrint("nt: boot driver at %p failed to initialize (0x%08x)\n",
                     (PVOID)driver->ImageBase, status);
        }
    }
    KeLoaderBlock = 0;
    if (PspPendingStartRoutine != 0) {
        PspSystemThreadStartup(PspPendingStartRoutine, PspPendingStartContext);
    }
    KiIdleLoop();
}
