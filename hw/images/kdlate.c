/*
 * kdlate.sys: a driver the simulator loads after boot (and unloads and loads again, see
 * hw/README.md), so that a kernel debugger sees LoadSymbols state changes and can resolve
 * deferred breakpoints ("bu kdlate!KdLateWork") on a module that was not there when it
 * connected. DriverEntry sets a periodic timer whose DPC calls KdLateWork every
 * SIM_KDLATE_PERIOD_MS; KdLateWork calls KdLateHelper (a call to step over, a function to
 * step out of). DriverUnload cancels the timer.
 */
#include "sim_abi.h"

typedef unsigned char UCHAR;
typedef unsigned short USHORT;
typedef unsigned short WCHAR;
typedef unsigned int ULONG;
typedef int LONG;
typedef int NTSTATUS;
typedef unsigned char BOOLEAN;
typedef unsigned long long ULONG64;
typedef void* PVOID;

typedef struct _UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    WCHAR* Buffer;
} UNICODE_STRING, *PUNICODE_STRING;

/* Opaque to drivers, as in the WDK. */
typedef struct _KDPC {
    ULONG64 Opaque[SIM_KDPC_SIZE / 8];
} KDPC, *PKDPC;

typedef struct _KTIMER {
    ULONG64 Opaque[SIM_KTIMER_SIZE / 8];
} KTIMER, *PKTIMER;

typedef void (*PKDEFERRED_ROUTINE)(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1,
                                   PVOID SystemArgument2);
typedef void (*PDRIVER_UNLOAD)(PVOID DriverObject);

#define NTIMPORT __declspec(dllimport)
#define NTEXPORT __declspec(dllexport)

NTIMPORT ULONG DbgPrint(const char* Format, ...);
NTIMPORT ULONG KeGetCurrentProcessorNumber(void);
NTIMPORT ULONG64 KeQueryInterruptTime(void);
NTIMPORT void KeInitializeDpc(PKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine, PVOID DeferredContext);
NTIMPORT void KeInitializeTimer(PKTIMER Timer);
NTIMPORT BOOLEAN KeSetTimerEx(PKTIMER Timer, long long DueTime, LONG Period, PKDPC Dpc);
NTIMPORT BOOLEAN KeCancelTimer(PKTIMER Timer);

NTEXPORT volatile ULONG64 KdLateCounter;    /* calls of KdLateWork since this load */
NTEXPORT volatile ULONG64 KdLateLastResult; /* what KdLateHelper returned last */
NTEXPORT volatile ULONG KdLateLastProcessor;

static KTIMER KdLateTimer;
static KDPC KdLateDpc;

NTEXPORT __declspec(noinline) ULONG64 KdLateHelper(ULONG64 Value) {
    ULONG64 acc = Value ^ 0xC2B2AE3D27D4EB4FULL;
    acc ^= acc >> 31;
    acc *= 0x165667B19E3779F9ULL;
    return acc ^ (acc >> 29);
}

NTEXPORT __declspec(noinline) void KdLateWork(ULONG64 Iteration) {
    KdLateLastResult = KdLateHelper(Iteration);
    KdLateLastProcessor = KeGetCurrentProcessorNumber();
    KdLateCounter = Iteration + 1;
}

static void KdLateDpcRoutine(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1,
                             PVOID SystemArgument2) {
    (void)Dpc;
    (void)DeferredContext;
    (void)SystemArgument1;
    (void)SystemArgument2;
    KdLateWork(KdLateCounter);
}

NTEXPORT __declspec(noinline) void KdLateUnload(PVOID DriverObject) {
    (void)DriverObject;
    KeCancelTimer(&KdLateTimer);
    DbgPrint("kdlate: DriverUnload after %d calls\n", (int)KdLateCounter);
}

NTEXPORT NTSTATUS DriverEntry(PVOID DriverObject, PUNICODE_STRING RegistryPath) {
    DbgPrint("kdlate: DriverEntry %wZ on cpu %u\n", RegistryPath, KeGetCurrentProcessorNumber());
    *(PDRIVER_UNLOAD*)((UCHAR*)DriverObject + SIM_DRIVER_OBJECT_DRIVER_UNLOAD) = KdLateUnload;
    KdLateCounter = 0;
    KeInitializeDpc(&KdLateDpc, KdLateDpcRoutine, 0);
    KeInitializeTimer(&KdLateTimer);
    long long due = -(long long)SIM_KDLATE_PERIOD_MS * 10000LL;
    KeSetTimerEx(&KdLateTimer, due, SIM_KDLATE_PERIOD_MS, &KdLateDpc);
    return 0;
}
