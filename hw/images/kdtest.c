/*
 * kdtest.sys: the test driver of the kdcart simulator. DriverEntry starts a system thread
 * (KdTestLoop) that runs forever on CPU 0: each iteration calls KdTestCompute and
 * KdTestUpdate (which writes the 8-byte KdTestCounter), from iteration
 * KdTestPagedStartIteration on also KdTestPagedFunction (alone in the PAGEKD section, which
 * the simulator pages out at boot), prints "kdtest: tick N" about every two seconds and then
 * waits 100 ms with nt!KdSimWait (hlt). Breakpoint and stepping tests target these functions,
 * so they stay real, exported, non-inlined functions. KdTestAccess and KdTestSpin are for
 * tests that call them on a processor of their choice. When the simulator arms it (kdsim
 * --bugcheck-after), the loop calls KdTestRaiseBugCheck, which bug checks the machine.
 */
#include "sim_abi.h"

typedef unsigned char UCHAR;
typedef unsigned short USHORT;
typedef unsigned short WCHAR;
typedef unsigned int ULONG;
typedef int NTSTATUS;
typedef unsigned long long ULONG64;
typedef void* PVOID;

typedef struct _UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    WCHAR* Buffer;
} UNICODE_STRING, *PUNICODE_STRING;

typedef void (*PKSTART_ROUTINE)(PVOID StartContext);

#define NTIMPORT __declspec(dllimport)
#define NTEXPORT __declspec(dllexport)

NTIMPORT ULONG DbgPrint(const char* Format, ...);
NTIMPORT void KdSimWait(ULONG Milliseconds);
NTIMPORT ULONG64 KeQueryInterruptTime(void);
NTIMPORT ULONG KeGetCurrentProcessorNumber(void);
NTIMPORT __declspec(noreturn) void KeBugCheckEx(ULONG BugCheckCode, ULONG64 Parameter1,
                                                ULONG64 Parameter2, ULONG64 Parameter3,
                                                ULONG64 Parameter4);
NTIMPORT NTSTATUS PsCreateSystemThread(PVOID* ThreadHandle, ULONG DesiredAccess,
                                       PVOID ObjectAttributes, PVOID ProcessHandle, PVOID ClientId,
                                       PKSTART_ROUTINE StartRoutine, PVOID StartContext);

#define KDTEST_BUFFER_SIZE 256

NTEXPORT volatile ULONG64 KdTestCounter;
NTEXPORT volatile ULONG64 KdTestLastValue;
NTEXPORT volatile UCHAR KdTestBuffer[KDTEST_BUFFER_SIZE];
NTEXPORT volatile ULONG KdTestTicks;

NTEXPORT volatile ULONG64 KdTestIteration; /* iterations of KdTestLoop completed */
NTEXPORT volatile ULONG KdTestPagedStartIteration = SIM_KDTEST_PAGED_START_ITERATION;
NTEXPORT volatile ULONG64 KdTestPagedCalls;
NTEXPORT volatile ULONG64 KdTestPagedResult;
NTEXPORT volatile ULONG64 KdTestSpinCount;

/* kdsim --bugcheck-after (see sim_abi.h): set by the simulator at boot. */
NTEXPORT volatile ULONG KdTestBugCheckCode;   /* 0: never */
NTEXPORT volatile ULONG64 KdTestBugCheckTime; /* interrupt time, 100 ns since boot */
NTEXPORT volatile ULONG KdTestBugCheckRaised; /* KdTestRaiseBugCheck ran */

NTEXPORT ULONG64 KdTestCompute(ULONG64 Input);
NTEXPORT void KdTestUpdate(ULONG64 Value);
NTEXPORT ULONG64 KdTestPagedFunction(ULONG64 Input);

/* Absolute pointers in data: the loader must relocate them (DIR64 base relocations). */
typedef struct _KDTEST_INFO {
    const char* Name;
    volatile ULONG64* Counter;
    volatile UCHAR* Buffer;
    ULONG64 (*Compute)(ULONG64);
    void (*Update)(ULONG64);
} KDTEST_INFO;

NTEXPORT const KDTEST_INFO KdTestInfo = {"kdtest", &KdTestCounter, KdTestBuffer, KdTestCompute,
                                         KdTestUpdate};

/* For the symbol tests: a structure worth `dt` (bit fields, an enum, arrays, a list head, a
 * counted string, a nested structure, a pointer to itself) in a global that is not exported, and
 * a chain of private calls (static, so only the PDB names them; the middle one with a large
 * frame) that the loop runs once per iteration. */
typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY* Flink;
    struct _LIST_ENTRY* Blink;
} LIST_ENTRY;

typedef enum _KDTEST_STATE { KdTestIdle = 0, KdTestRunning = 1, KdTestStopped = 5 } KDTEST_STATE;

typedef struct _KDTEST_SAMPLE {
    ULONG Signature; /* 'KDTS' */
    ULONG Enabled : 1;
    ULONG Level : 3;
    ULONG Reserved : 28;
    KDTEST_STATE State;
    UCHAR Tag[8];
    ULONG64 Values[4];
    LIST_ENTRY Links;
    UNICODE_STRING Name;
    KDTEST_INFO Info;
    struct _KDTEST_SAMPLE* Self;
} KDTEST_SAMPLE;

KDTEST_SAMPLE KdTestSample;
static WCHAR KdTestSampleName[] = {'k', 'd', 't', 'e', 's', 't', ' ', 's', 'a', 'm', 'p', 'l', 'e', 0};

static __declspec(noinline) ULONG64 KdTestInnerStep(ULONG64 Value) {
    KdTestSample.Values[Value & 3] = Value;
    return Value * 7 + 1;
}

static __declspec(noinline) ULONG64 KdTestMiddleStep(ULONG64 Value) {
    volatile UCHAR scratch[0x240];
    scratch[Value % sizeof scratch] = (UCHAR)Value;
    return KdTestInnerStep(Value + scratch[(Value + 1) % sizeof scratch]) ^ 0x5A;
}

static __declspec(noinline) ULONG64 KdTestOuterStep(ULONG64 Value) {
    return KdTestMiddleStep(Value + 3) + 2;
}

static void KdTestInitSample(void) {
    KdTestSample.Signature = 0x5354444B;
    KdTestSample.Enabled = 1;
    KdTestSample.Level = 5;
    KdTestSample.State = KdTestRunning;
    static const char tag[] = "sample";
    for (int i = 0; i < (int)sizeof tag; i++) {
        ((volatile UCHAR*)KdTestSample.Tag)[i] = (UCHAR)tag[i]; /* no memcpy: no CRT here */
    }
    KdTestSample.Links.Flink = &KdTestSample.Links;
    KdTestSample.Links.Blink = &KdTestSample.Links;
    KdTestSample.Name.Length = (USHORT)(13 * sizeof(WCHAR));
    KdTestSample.Name.MaximumLength = (USHORT)sizeof KdTestSampleName;
    KdTestSample.Name.Buffer = KdTestSampleName;
    KdTestSample.Info = KdTestInfo;
    KdTestSample.Self = &KdTestSample;
}

/* For the stack tests: a path through a machine frame and a function whose unwind info is
 * chained, both written by hand below (C code gets neither from the compiler). KdTestLoop calls
 * KdTestSplitFunction once per iteration. Its prolog is in the primary part; the body is in a
 * separate part (KdTestSplitFunctionCold) whose unwind info only chains to the primary's, as
 * BBT/PGO-split functions are. The body calls KdTestRaiseSoftTrap, which pushes a machine frame
 * as the CPU does for an interrupt (ss, rsp, rflags, cs, rip) and enters KdTestSoftInterrupt, an
 * interrupt handler (UWOP_PUSH_MACHFRAME) that calls KdTestTrapWork and returns as iretq would.
 * A breakpoint on KdTestTrapWork shows all of it in `k`. */
NTEXPORT volatile ULONG64 KdTestTrapCalls;
NTEXPORT volatile ULONG64 KdTestTrapResult;
NTEXPORT ULONG64 KdTestSplitFunction(ULONG64 Value);

NTEXPORT __declspec(noinline) ULONG64 KdTestTrapWork(ULONG64 Value) {
    ULONG64 calls = KdTestTrapCalls + 1;
    KdTestTrapCalls = calls;
    return Value * 5 + calls;
}

__asm__(".text\n"
        /* The primary part: prolog only (push rbx; sub rsp,20h), then on to the body. */
        ".globl KdTestSplitFunction\n"
        ".def KdTestSplitFunction; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KdTestSplitFunction:\n"
        "    pushq %rbx\n"
        "    subq $0x20, %rsp\n"
        "    movq %rcx, %rbx\n"
        "    jmp KdTestSplitFunctionCold\n"
        "KdTestSplitFunctionEnd:\n"
        /* An ordinary function (compiler-style unwind info) that raises the soft interrupt. */
        ".globl KdTestRaiseSoftTrap\n"
        ".def KdTestRaiseSoftTrap; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KdTestRaiseSoftTrap:\n"
        ".seh_proc KdTestRaiseSoftTrap\n"
        "    subq $0x28, %rsp\n"
        ".seh_stackalloc 0x28\n"
        ".seh_endprologue\n"
        "    movq %rsp, %rax\n"
        "    pushq $0x18\n"            /* ss */
        "    pushq %rax\n"             /* rsp when interrupted */
        "    pushfq\n"                 /* rflags */
        "    pushq $0x10\n"            /* cs */
        "    leaq 1f(%rip), %rax\n"
        "    pushq %rax\n"             /* rip: where the interrupt returns */
        "    jmp KdTestSoftInterrupt\n"
        "1:  addq $0x28, %rsp\n"
        "    ret\n"
        ".seh_endproc\n"
        /* The interrupt handler: a machine frame, no error code. */
        ".globl KdTestSoftInterrupt\n"
        ".def KdTestSoftInterrupt; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KdTestSoftInterrupt:\n"
        ".seh_proc KdTestSoftInterrupt\n"
        ".seh_pushframe\n"
        "    pushq %rbp\n"
        ".seh_pushreg %rbp\n"
        "    subq $0x20, %rsp\n"
        ".seh_stackalloc 0x20\n"
        ".seh_endprologue\n"
        "    movq %rbx, %rcx\n"
        "    callq KdTestTrapWork\n"
        "    movq %rax, KdTestTrapResult(%rip)\n"
        "    addq $0x20, %rsp\n"
        "    popq %rbp\n"
        "    popq %rcx\n"              /* rip */
        "    addq $8, %rsp\n"          /* cs */
        "    popfq\n"
        "    popq %rsp\n"              /* rsp (ss is left) */
        "    jmp *%rcx\n"
        ".seh_endproc\n"
        /* The body of KdTestSplitFunction, away from its prolog. */
        ".globl KdTestSplitFunctionCold\n"
        ".def KdTestSplitFunctionCold; .scl 2; .type 32; .endef\n"
        ".p2align 4, 0xcc\n"
        "KdTestSplitFunctionCold:\n"
        "    movq %rbx, %rcx\n"
        "    callq KdTestRaiseSoftTrap\n"
        "    addq %rbx, %rax\n"
        "    addq $0x20, %rsp\n"
        "    popq %rbx\n"
        "    ret\n"
        "KdTestSplitFunctionColdEnd:\n"
        /* Unwind info by hand: the primary's codes, and the body's record that chains to it. */
        ".section .xdata,\"dr\"\n"
        ".p2align 2\n"
        "KdTestSplitUnwind:\n"
        "    .byte 0x01, 5, 2, 0\n"     /* version 1, no flags, prolog 5 bytes, 2 codes */
        "    .byte 5, 0x32\n"           /* offs 5: UWOP_ALLOC_SMALL (3+1)*8 = 0x20 */
        "    .byte 1, 0x30\n"           /* offs 1: UWOP_PUSH_NONVOL rbx */
        ".p2align 2\n"
        "KdTestSplitColdUnwind:\n"
        "    .byte 0x21, 0, 0, 0\n"     /* version 1, UNW_FLAG_CHAININFO, no codes */
        "    .rva KdTestSplitFunction\n"
        "    .rva KdTestSplitFunctionEnd\n"
        "    .rva KdTestSplitUnwind\n"
        ".section .pdata,\"dr\"\n"
        ".p2align 2\n"
        "    .rva KdTestSplitFunction\n"
        "    .rva KdTestSplitFunctionEnd\n"
        "    .rva KdTestSplitUnwind\n"
        "    .rva KdTestSplitFunctionCold\n"
        "    .rva KdTestSplitFunctionColdEnd\n"
        "    .rva KdTestSplitColdUnwind\n"
        ".text\n");

/* A little arithmetic: a few rounds of an LCG with an xorshift. */
NTEXPORT __declspec(noinline) ULONG64 KdTestCompute(ULONG64 Input) {
    ULONG64 acc = Input ^ 0x9E3779B97F4A7C15ULL;
    for (int round = 0; round < 4; round++) {
        acc = acc * 6364136223846793005ULL + 1442695040888963407ULL;
        acc ^= acc >> 29;
    }
    return acc;
}

/* Writes the global counter and one byte of the buffer. */
NTEXPORT __declspec(noinline) void KdTestUpdate(ULONG64 Value) {
    ULONG64 next = KdTestCounter + 1;
    KdTestBuffer[next % KDTEST_BUFFER_SIZE] = (UCHAR)Value;
    KdTestLastValue = Value;
    KdTestCounter = next;
}

/* Pageable code: the only function in section PAGEKD, which starts paged out (not in the page
 * tables). Its first call pages it in; owed breakpoints on it are written then. */
NTEXPORT __declspec(noinline) __declspec(code_seg("PAGEKD")) ULONG64
    KdTestPagedFunction(ULONG64 Input) {
    ULONG64 calls = KdTestPagedCalls + 1;
    KdTestPagedResult = Input * 3 + calls;
    KdTestPagedCalls = calls;
    return KdTestPagedResult;
}

/* One access of Size (1, 2, 4 or 8) bytes at Address: a store of Value when Write is nonzero,
 * else a load (returned). For data-breakpoint tests. */
NTEXPORT __declspec(noinline) ULONG64
    KdTestAccess(ULONG64 Address, ULONG Size, ULONG Write, ULONG64 Value) {
    ULONG64 result = 0;
    switch (Size) {
    case 1:
        if (Write) {
            *(volatile UCHAR*)Address = (UCHAR)Value;
        } else {
            result = *(volatile UCHAR*)Address;
        }
        break;
    case 2:
        if (Write) {
            *(volatile USHORT*)Address = (USHORT)Value;
        } else {
            result = *(volatile USHORT*)Address;
        }
        break;
    case 4:
        if (Write) {
            *(volatile ULONG*)Address = (ULONG)Value;
        } else {
            result = *(volatile ULONG*)Address;
        }
        break;
    default:
        if (Write) {
            *(volatile ULONG64*)Address = Value;
        } else {
            result = *(volatile ULONG64*)Address;
        }
        break;
    }
    return result;
}

/* Busy work: adds 1 to KdTestSpinCount Iterations times. */
NTEXPORT __declspec(noinline) void KdTestSpin(ULONG64 Iterations) {
    for (ULONG64 i = 0; i < Iterations; i++) {
        KdTestSpinCount++;
    }
}

/* The driver's own bug check (kdsim --bugcheck-after): a frame of kdtest.sys under
 * KeBugCheckEx, with parameters shaped like DRIVER_IRQL_NOT_LESS_OR_EQUAL's. */
NTEXPORT __declspec(noinline) __declspec(noreturn) void KdTestRaiseBugCheck(ULONG Code) {
    KdTestBugCheckRaised = 1;
    KeBugCheckEx(Code, (ULONG64)&KdTestPagedFunction, SIM_BUGCHECK_IRQL, 0,
                 (ULONG64)&KdTestRaiseBugCheck);
}

NTEXPORT __declspec(noinline) void KdTestLoop(PVOID Context) {
    (void)Context;
    ULONG64 iteration = 0;
    ULONG64 next_print = KeQueryInterruptTime();
    for (;;) {
        KdTestUpdate(KdTestCompute(iteration));
        if (iteration >= KdTestPagedStartIteration) {
            KdTestPagedFunction(iteration);
        }
        ULONG64 now = KeQueryInterruptTime();
        if (now >= next_print) {
            DbgPrint("kdtest: tick %d\n", (int)KdTestTicks);
            KdTestTicks++;
            next_print = now + (ULONG64)SIM_KDTEST_PRINT_INTERVAL_MS * 10000ULL;
        }
        if (KdTestBugCheckCode != 0 && now >= KdTestBugCheckTime) {
            KdTestRaiseBugCheck(KdTestBugCheckCode);
        }
        iteration++;
        KdTestIteration = iteration;
        KdSimWait(SIM_KDTEST_PERIOD_MS);
        KdTestSample.Values[3] = KdTestOuterStep(iteration);
        KdTestSample.Values[2] = KdTestSplitFunction(iteration);
    }
}

NTEXPORT NTSTATUS DriverEntry(PVOID DriverObject, PUNICODE_STRING RegistryPath) {
    (void)DriverObject;
    DbgPrint("kdtest: DriverEntry %wZ on cpu %u\n", RegistryPath, KeGetCurrentProcessorNumber());
    KdTestInitSample();
    PVOID thread = 0;
    return PsCreateSystemThread(&thread, 0x1F03FF, 0, 0, 0, KdTestLoop, 0);
}
