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
NTEXPORT PVOID PsInitialSystemProcess;
NTEXPORT PVOID PsIdleProcess;
NTEXPORT PVOID KiProcessorBlock[64];
NTEXPORT PVOID MmPhysicalMemoryBlock;
NTEXPORT ULONG64 MmNumberOfPhysicalPages;
NTEXPORT ULONG64 MmLowestPhysicalPage;
NTEXPORT ULONG64 MmHighestPhysicalPage;
NTEXPORT PVOID MmPfnDatabase;
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

#define FIELD_AT(type, base, offset) (*(type*)((UCHAR*)(base) + (offset)))

static __declspec(noinline) void IopLoadDriver(volatile SIM_DRIVER_REQUEST* Request) {
    LIST_ENTRY* entry = (LIST_ENTRY*)Request->LdrEntry;
    PVOID base = FIELD_AT(PVOID, entry, SIM_LDR_DLL_BASE);
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
