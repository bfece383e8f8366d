/* kdcom.dll of the kdcart simulator: the KD transport entry points as stubs (the simulator
 * itself speaks KDCOM for the kernel). No imports. */
typedef int NTSTATUS;
typedef unsigned int ULONG;
typedef void* PVOID;

#define KDP_PACKET_TIMEOUT 1

__declspec(dllexport) NTSTATUS KdDebuggerInitialize0(PVOID LoaderBlock) {
    (void)LoaderBlock;
    return 0;
}

__declspec(dllexport) NTSTATUS KdDebuggerInitialize1(PVOID LoaderBlock) {
    (void)LoaderBlock;
    return 0;
}

__declspec(dllexport) void KdSendPacket(ULONG PacketType, PVOID MessageHeader, PVOID MessageData,
                                        PVOID Context) {
    (void)PacketType;
    (void)MessageHeader;
    (void)MessageData;
    (void)Context;
}

__declspec(dllexport) ULONG KdReceivePacket(ULONG PacketType, PVOID MessageHeader,
                                            PVOID MessageData, ULONG* DataLength, PVOID Context) {
    (void)PacketType;
    (void)MessageHeader;
    (void)MessageData;
    (void)Context;
    if (DataLength != 0) {
        *DataLength = 0;
    }
    return KDP_PACKET_TIMEOUT;
}

__declspec(dllexport) NTSTATUS KdD0Transition(void) {
    return 0;
}

__declspec(dllexport) NTSTATUS KdD3Transition(void) {
    return 0;
}

__declspec(dllexport) NTSTATUS KdSave(int SleepTransition) {
    (void)SleepTransition;
    return 0;
}

__declspec(dllexport) NTSTATUS KdRestore(int SleepTransition) {
    (void)SleepTransition;
    return 0;
}

int KdComDllEntry(void) {
    return 0;
}
