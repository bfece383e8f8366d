/* hal.dll of the kdcart simulator: a couple of HAL exports, importing from ntoskrnl.exe. */
typedef unsigned int ULONG;
typedef unsigned long long ULONG64;

__declspec(dllimport) ULONG64 KeQueryInterruptTime(void);

/* Busy-waits `MicroSeconds` of simulated interrupt time. */
__declspec(dllexport) void KeStallExecutionProcessor(ULONG MicroSeconds) {
    ULONG64 deadline = KeQueryInterruptTime() + (ULONG64)MicroSeconds * 10ULL;
    while (KeQueryInterruptTime() < deadline) {
        __asm__ __volatile__("pause");
    }
}

__declspec(dllexport) ULONG64 KeQueryPerformanceCounter(ULONG64* Frequency) {
    if (Frequency != 0) {
        *Frequency = 10000000ULL;
    }
    return KeQueryInterruptTime();
}

__declspec(dllexport) void HalReturnToFirmware(ULONG Routine) {
    (void)Routine;
    for (;;) {
        __asm__ __volatile__("hlt");
    }
}

int HalpDllEntry(void) {
    return 0;
}
