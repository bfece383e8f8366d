#pragma once
// DBGKD wire structures of the Windows kernel debugger protocol, with Microsoft's names.
// Layouts from ../shared/reference/kd-protocol.md §2-§3. Every size and every offset the code
// reads is proven at compile time. Decode by memcpy (see kd_decode/kd_encode), never by
// casting a receive buffer.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

static_assert(std::endian::native == std::endian::little, "kdcart assumes a little-endian host");

namespace kdcart::protocol {

// ---- packet types (KD header PacketType) ----
enum : uint16_t {
    PACKET_TYPE_UNUSED = 0,
    PACKET_TYPE_KD_STATE_CHANGE32 = 1,
    PACKET_TYPE_KD_STATE_MANIPULATE = 2,
    PACKET_TYPE_KD_DEBUG_IO = 3,
    PACKET_TYPE_KD_ACKNOWLEDGE = 4,
    PACKET_TYPE_KD_RESEND = 5,
    PACKET_TYPE_KD_RESET = 6,
    PACKET_TYPE_KD_STATE_CHANGE64 = 7,
    PACKET_TYPE_KD_POLL_BREAKIN = 8,
    PACKET_TYPE_KD_TRACE_IO = 9,
    PACKET_TYPE_KD_CONTROL_REQUEST = 10,
    PACKET_TYPE_KD_FILE_IO = 11,
    PACKET_TYPE_MAX = 12,
};

inline constexpr uint32_t PACKET_LEADER = 0x30303030;
inline constexpr uint32_t CONTROL_PACKET_LEADER = 0x69696969;
inline constexpr uint8_t PACKET_LEADER_BYTE = 0x30;
inline constexpr uint8_t CONTROL_PACKET_LEADER_BYTE = 0x69;
inline constexpr uint8_t PACKET_TRAILING_BYTE = 0xAA;
inline constexpr uint8_t BREAKIN_PACKET_BYTE = 0x62;
inline constexpr uint32_t PACKET_MAX_SIZE = 4000;
inline constexpr uint32_t INITIAL_PACKET_ID = 0x80800000;
inline constexpr uint32_t SYNC_PACKET_ID = 0x00000800;
inline constexpr uint32_t KDNET_HOST_INITIAL_ID = 0x80000000;

// ---- manipulate APIs ----
enum : uint32_t {
    DbgKdReadVirtualMemoryApi = 0x3130,
    DbgKdWriteVirtualMemoryApi = 0x3131,
    DbgKdGetContextApi = 0x3132,
    DbgKdSetContextApi = 0x3133,
    DbgKdWriteBreakPointApi = 0x3134,
    DbgKdRestoreBreakPointApi = 0x3135,
    DbgKdContinueApi = 0x3136,
    DbgKdReadControlSpaceApi = 0x3137,
    DbgKdWriteControlSpaceApi = 0x3138,
    DbgKdReadIoSpaceApi = 0x3139,
    DbgKdWriteIoSpaceApi = 0x313A,
    DbgKdRebootApi = 0x313B,
    DbgKdContinueApi2 = 0x313C,
    DbgKdReadPhysicalMemoryApi = 0x313D,
    DbgKdWritePhysicalMemoryApi = 0x313E,
    DbgKdQuerySpecialCallsApi = 0x313F,
    DbgKdSetSpecialCallApi = 0x3140,
    DbgKdClearSpecialCallsApi = 0x3141,
    DbgKdSetInternalBreakPointApi = 0x3142,
    DbgKdGetInternalBreakPointApi = 0x3143,
    DbgKdReadIoSpaceExtendedApi = 0x3144,
    DbgKdWriteIoSpaceExtendedApi = 0x3145,
    DbgKdGetVersionApi = 0x3146,
    DbgKdWriteBreakPointExApi = 0x3147,
    DbgKdRestoreBreakPointExApi = 0x3148,
    DbgKdCauseBugCheckApi = 0x3149,
    DbgKdSwitchProcessor = 0x3150,
    DbgKdPageInApi = 0x3151,
    DbgKdReadMachineSpecificRegister = 0x3152,
    DbgKdWriteMachineSpecificRegister = 0x3153,
    DbgKdSearchMemoryApi = 0x3156,
    DbgKdGetBusDataApi = 0x3157,
    DbgKdSetBusDataApi = 0x3158,
    DbgKdCheckLowMemoryApi = 0x3159,
    DbgKdClearAllInternalBreakpointsApi = 0x315A,
    DbgKdFillMemoryApi = 0x315B,
    DbgKdQueryMemoryApi = 0x315C,
    DbgKdSwitchPartition = 0x315D,
    DbgKdWriteCustomBreakpointApi = 0x315E,
    DbgKdGetContextExApi = 0x315F,
    DbgKdSetContextExApi = 0x3160,
    DbgKdMaximumManipulate = 0x3161,
};

// DEBUG_IO, TRACE_IO, FILE_IO, CONTROL_REQUEST APIs
enum : uint32_t {
    DbgKdPrintStringApi = 0x3230,
    DbgKdGetStringApi = 0x3231,
    DbgKdPrintTraceApi = 0x3330,
    DbgKdCreateFileApi = 0x3430,
    DbgKdReadFileApi = 0x3431,
    DbgKdWriteFileApi = 0x3432,
    DbgKdCloseFileApi = 0x3433,
    DbgKdRequestHardwareBp = 0x4300,
    DbgKdReleaseHardwareBp = 0x4301,
};

// state changes
enum : uint32_t {
    DbgKdExceptionStateChange = 0x3030,
    DbgKdLoadSymbolsStateChange = 0x3031,
    DbgKdCommandStringStateChange = 0x3032,
    DbgKdMaximumStateChange = 0x3033,
};

// NTSTATUS values we use
inline constexpr uint32_t STATUS_SUCCESS = 0x00000000;
inline constexpr uint32_t STATUS_PENDING = 0x00000103;
inline constexpr uint32_t DBG_CONTINUE = 0x00010002;
inline constexpr uint32_t DBG_EXCEPTION_HANDLED = 0x00010001;
inline constexpr uint32_t DBG_EXCEPTION_NOT_HANDLED = 0x80010001;
inline constexpr uint32_t STATUS_BREAKPOINT = 0x80000003;
inline constexpr uint32_t STATUS_SINGLE_STEP = 0x80000004;
inline constexpr uint32_t STATUS_UNSUCCESSFUL = 0xC0000001;
inline constexpr uint32_t STATUS_ACCESS_VIOLATION = 0xC0000005;
inline constexpr uint32_t STATUS_NO_SUCH_FILE = 0xC000000F;
inline constexpr uint32_t STATUS_NOT_IMPLEMENTED = 0xC0000002;

// BREAKPOINT_* values in ExceptionInformation[0] of a STATUS_BREAKPOINT
inline constexpr uint64_t BREAKPOINT_BREAK = 0;
inline constexpr uint64_t BREAKPOINT_PRINT = 1;
inline constexpr uint64_t BREAKPOINT_PROMPT = 2;
inline constexpr uint64_t BREAKPOINT_LOAD_SYMBOLS = 3;
inline constexpr uint64_t BREAKPOINT_UNLOAD_SYMBOLS = 4;
inline constexpr uint64_t BREAKPOINT_COMMAND_STRING = 5;

// MachineType
inline constexpr uint16_t IMAGE_FILE_MACHINE_I386 = 0x014C;
inline constexpr uint16_t IMAGE_FILE_MACHINE_AMD64 = 0x8664;

// DBGKD_GET_VERSION64.Flags
inline constexpr uint16_t DBGKD_VERS_FLAG_MP = 0x0001;
inline constexpr uint16_t DBGKD_VERS_FLAG_DATA = 0x0002;
inline constexpr uint16_t DBGKD_VERS_FLAG_PTR64 = 0x0004;
inline constexpr uint16_t DBGKD_VERS_FLAG_NOMM = 0x0008;
inline constexpr uint16_t DBGKD_VERS_FLAG_HSS = 0x0010;
inline constexpr uint16_t DBGKD_VERS_FLAG_PARTITIONS = 0x0020;
inline constexpr uint16_t DBGKD_VERS_FLAG_HAL_IN_NTOS = 0x0040;

// ---- the 16-byte KD packet header ----
struct KD_PACKET {
    /* 0x00 */ uint32_t PacketLeader;
    /* 0x04 */ uint16_t PacketType;
    /* 0x06 */ uint16_t ByteCount;
    /* 0x08 */ uint32_t PacketId;
    /* 0x0C */ uint32_t Checksum;
};
static_assert(sizeof(KD_PACKET) == 16);
static_assert(offsetof(KD_PACKET, PacketType) == 4);
static_assert(offsetof(KD_PACKET, ByteCount) == 6);
static_assert(offsetof(KD_PACKET, PacketId) == 8);
static_assert(offsetof(KD_PACKET, Checksum) == 12);

// ---- DBGKD_MANIPULATE_STATE64 union members ----
struct DBGKD_READ_MEMORY64 {
    /* 0x00 */ uint64_t TargetBaseAddress;
    /* 0x08 */ uint32_t TransferCount;
    /* 0x0C */ uint32_t ActualBytesRead;
};
static_assert(sizeof(DBGKD_READ_MEMORY64) == 16);

struct DBGKD_WRITE_MEMORY64 {
    /* 0x00 */ uint64_t TargetBaseAddress;
    /* 0x08 */ uint32_t TransferCount;
    /* 0x0C */ uint32_t ActualBytesWritten;
};
static_assert(sizeof(DBGKD_WRITE_MEMORY64) == 16);

struct DBGKD_GET_CONTEXT {
    uint32_t Unused;
};

struct DBGKD_SET_CONTEXT {
    /* 0x00 */ uint32_t ContextFlags;
};

struct DBGKD_WRITE_BREAKPOINT64 {
    /* 0x00 */ uint64_t BreakPointAddress;
    /* 0x08 */ uint32_t BreakPointHandle;
};
static_assert(sizeof(DBGKD_WRITE_BREAKPOINT64) == 16);
static_assert(offsetof(DBGKD_WRITE_BREAKPOINT64, BreakPointHandle) == 8);

struct DBGKD_RESTORE_BREAKPOINT {
    /* 0x00 */ uint32_t BreakPointHandle;
};

struct DBGKD_CONTINUE {
    /* 0x00 */ uint32_t ContinueStatus;
};

#pragma pack(push, 4)
struct AMD64_DBGKD_CONTROL_SET {
    /* 0x00 */ uint32_t TraceFlag;
    /* 0x04 */ uint64_t Dr7;
    /* 0x0C */ uint64_t CurrentSymbolStart;
    /* 0x14 */ uint64_t CurrentSymbolEnd;
};
#pragma pack(pop)
static_assert(sizeof(AMD64_DBGKD_CONTROL_SET) == 0x1C);
static_assert(offsetof(AMD64_DBGKD_CONTROL_SET, Dr7) == 0x04);
static_assert(offsetof(AMD64_DBGKD_CONTROL_SET, CurrentSymbolStart) == 0x0C);
static_assert(offsetof(AMD64_DBGKD_CONTROL_SET, CurrentSymbolEnd) == 0x14);

#pragma pack(push, 4)
struct DBGKD_CONTINUE2 {
    /* 0x00 */ uint32_t ContinueStatus;
    /* 0x04 */ AMD64_DBGKD_CONTROL_SET ControlSet;
};
#pragma pack(pop)
static_assert(sizeof(DBGKD_CONTINUE2) == 0x20);
static_assert(offsetof(DBGKD_CONTINUE2, ControlSet) == 4);

struct DBGKD_READ_WRITE_IO64 {
    /* 0x00 */ uint64_t IoAddress;
    /* 0x08 */ uint32_t DataSize;
    /* 0x0C */ uint32_t DataValue;
};
static_assert(sizeof(DBGKD_READ_WRITE_IO64) == 16);

struct DBGKD_READ_WRITE_MSR {
    /* 0x00 */ uint32_t Msr;
    /* 0x04 */ uint32_t DataValueLow;
    /* 0x08 */ uint32_t DataValueHigh;
};
static_assert(sizeof(DBGKD_READ_WRITE_MSR) == 12);

struct DBGKD_GET_VERSION64 {
    /* 0x00 */ uint16_t MajorVersion;
    /* 0x02 */ uint16_t MinorVersion;
    /* 0x04 */ uint8_t ProtocolVersion;
    /* 0x05 */ uint8_t KdSecondaryVersion;
    /* 0x06 */ uint16_t Flags;
    /* 0x08 */ uint16_t MachineType;
    /* 0x0A */ uint8_t MaxPacketType;
    /* 0x0B */ uint8_t MaxStateChange;
    /* 0x0C */ uint8_t MaxManipulate;
    /* 0x0D */ uint8_t Simulation;
    /* 0x0E */ uint16_t Unused[1];
    /* 0x10 */ uint64_t KernBase;
    /* 0x18 */ uint64_t PsLoadedModuleList;
    /* 0x20 */ uint64_t DebuggerDataList;
};
static_assert(sizeof(DBGKD_GET_VERSION64) == 40);
static_assert(offsetof(DBGKD_GET_VERSION64, ProtocolVersion) == 4);
static_assert(offsetof(DBGKD_GET_VERSION64, Flags) == 6);
static_assert(offsetof(DBGKD_GET_VERSION64, MachineType) == 8);
static_assert(offsetof(DBGKD_GET_VERSION64, MaxPacketType) == 0x0A);
static_assert(offsetof(DBGKD_GET_VERSION64, MaxManipulate) == 0x0C);
static_assert(offsetof(DBGKD_GET_VERSION64, KernBase) == 0x10);
static_assert(offsetof(DBGKD_GET_VERSION64, PsLoadedModuleList) == 0x18);
static_assert(offsetof(DBGKD_GET_VERSION64, DebuggerDataList) == 0x20);

struct DBGKD_CONTEXT_EX {
    /* 0x00 */ uint32_t Offset;
    /* 0x04 */ uint32_t ByteCount;
    /* 0x08 */ uint32_t BytesCopied;
};

struct DBGKD_SWITCH_PARTITION {
    uint32_t Partition;
};

struct DBGKD_MANIPULATE_STATE64 {
    /* 0x00 */ uint32_t ApiNumber;
    /* 0x04 */ uint16_t ProcessorLevel;
    /* 0x06 */ uint16_t Processor;
    /* 0x08 */ uint32_t ReturnStatus;
    /* 0x0C */ uint32_t Padding;
    /* 0x10 */ union {
        DBGKD_READ_MEMORY64 ReadMemory;
        DBGKD_WRITE_MEMORY64 WriteMemory;
        DBGKD_GET_CONTEXT GetContext;
        DBGKD_SET_CONTEXT SetContext;
        DBGKD_WRITE_BREAKPOINT64 WriteBreakPoint;
        DBGKD_RESTORE_BREAKPOINT RestoreBreakPoint;
        DBGKD_CONTINUE Continue;
        DBGKD_CONTINUE2 Continue2;
        DBGKD_READ_WRITE_IO64 ReadWriteIo;
        DBGKD_READ_WRITE_MSR ReadWriteMsr;
        DBGKD_GET_VERSION64 GetVersion64;
        DBGKD_CONTEXT_EX ContextEx;
        DBGKD_SWITCH_PARTITION SwitchPartition;
        uint8_t Raw[40];
    } u;
};
static_assert(sizeof(DBGKD_MANIPULATE_STATE64) == 0x38);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, Processor) == 0x06);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, ReturnStatus) == 0x08);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u) == 0x10);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.ReadMemory.TransferCount) == 0x18);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.ReadMemory.ActualBytesRead) == 0x1C);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.WriteBreakPoint.BreakPointHandle) == 0x18);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.Continue2.ControlSet.TraceFlag) == 0x14);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.Continue2.ControlSet.Dr7) == 0x18);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.Continue2.ControlSet.CurrentSymbolStart) ==
              0x20);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.Continue2.ControlSet.CurrentSymbolEnd) == 0x28);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.GetVersion64.DebuggerDataList) == 0x30);
static_assert(offsetof(DBGKD_MANIPULATE_STATE64, u.ReadWriteMsr.DataValueHigh) == 0x18);

// Read replies carry at most this many data bytes (4000 - 56).
inline constexpr uint32_t MAX_MANIPULATE_DATA = PACKET_MAX_SIZE - sizeof(DBGKD_MANIPULATE_STATE64);
static_assert(MAX_MANIPULATE_DATA == 3944);

// ---- state change (PacketType 7), AMD64 flavour ----
inline constexpr uint32_t EXCEPTION_MAXIMUM_PARAMETERS = 15;

struct DBGKM_EXCEPTION_RECORD64 {
    /* 0x00 */ uint32_t ExceptionCode;
    /* 0x04 */ uint32_t ExceptionFlags;
    /* 0x08 */ uint64_t ExceptionRecord;
    /* 0x10 */ uint64_t ExceptionAddress;
    /* 0x18 */ uint32_t NumberParameters;
    /* 0x1C */ uint32_t __unusedAlignment;
    /* 0x20 */ uint64_t ExceptionInformation[EXCEPTION_MAXIMUM_PARAMETERS];
};
static_assert(sizeof(DBGKM_EXCEPTION_RECORD64) == 0x98);

struct DBGKM_EXCEPTION64 {
    /* 0x00 */ DBGKM_EXCEPTION_RECORD64 ExceptionRecord;
    /* 0x98 */ uint32_t FirstChance;
};
static_assert(sizeof(DBGKM_EXCEPTION64) == 0xA0);

struct DBGKD_LOAD_SYMBOLS64 {
    /* 0x00 */ uint32_t PathNameLength;
    /* 0x08 */ uint64_t BaseOfDll;
    /* 0x10 */ uint64_t ProcessId;
    /* 0x18 */ uint32_t CheckSum;
    /* 0x1C */ uint32_t SizeOfImage;
    /* 0x20 */ uint8_t UnloadSymbols;
};
static_assert(sizeof(DBGKD_LOAD_SYMBOLS64) == 0x28);
static_assert(offsetof(DBGKD_LOAD_SYMBOLS64, BaseOfDll) == 0x08);
static_assert(offsetof(DBGKD_LOAD_SYMBOLS64, SizeOfImage) == 0x1C);
static_assert(offsetof(DBGKD_LOAD_SYMBOLS64, UnloadSymbols) == 0x20);

struct DBGKD_COMMAND_STRING {
    /* 0x00 */ uint32_t Flags;
    /* 0x04 */ uint32_t Reserved1;
    /* 0x08 */ uint64_t Reserved2[7];
};
static_assert(sizeof(DBGKD_COMMAND_STRING) == 0x40);

struct AMD64_DBGKD_CONTROL_REPORT {
    /* 0x00 */ uint64_t Dr6;
    /* 0x08 */ uint64_t Dr7;
    /* 0x10 */ uint32_t EFlags;
    /* 0x14 */ uint16_t InstructionCount;
    /* 0x16 */ uint16_t ReportFlags;
    /* 0x18 */ uint8_t InstructionStream[16];
    /* 0x28 */ uint16_t SegCs;
    /* 0x2A */ uint16_t SegDs;
    /* 0x2C */ uint16_t SegEs;
    /* 0x2E */ uint16_t SegFs;
};
static_assert(sizeof(AMD64_DBGKD_CONTROL_REPORT) == 0x30);

inline constexpr uint16_t AMD64_REPORT_INCLUDES_SEGS = 0x0001;
inline constexpr uint16_t AMD64_REPORT_STANDARD_CS = 0x0002;

struct DBGKD_ANY_WAIT_STATE_CHANGE {
    /* 0x00 */ uint32_t NewState;
    /* 0x04 */ uint16_t ProcessorLevel;
    /* 0x06 */ uint16_t Processor;
    /* 0x08 */ uint32_t NumberProcessors;
    /* 0x0C */ uint32_t Padding;
    /* 0x10 */ uint64_t Thread;
    /* 0x18 */ uint64_t ProgramCounter;
    /* 0x20 */ union {
        DBGKM_EXCEPTION64 Exception;
        DBGKD_LOAD_SYMBOLS64 LoadSymbols;
        DBGKD_COMMAND_STRING CommandString;
    } u;
    /* 0xC0 */ AMD64_DBGKD_CONTROL_REPORT ControlReport;
};
static_assert(sizeof(DBGKD_ANY_WAIT_STATE_CHANGE) == 0xF0);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, Thread) == 0x10);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ProgramCounter) == 0x18);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u) == 0x20);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u.Exception.ExceptionRecord.ExceptionAddress) ==
              0x30);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u.Exception.ExceptionRecord.NumberParameters) ==
              0x38);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE,
                       u.Exception.ExceptionRecord.ExceptionInformation) == 0x40);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u.Exception.FirstChance) == 0xB8);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u.LoadSymbols.BaseOfDll) == 0x28);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u.LoadSymbols.UnloadSymbols) == 0x40);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ControlReport) == 0xC0);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ControlReport.EFlags) == 0xD0);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ControlReport.InstructionStream) == 0xD8);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ControlReport.SegCs) == 0xE8);
static_assert(offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ControlReport.SegFs) == 0xEE);

// ---- DEBUG_IO (PacketType 3) ----
struct DBGKD_PRINT_STRING {
    /* 0x00 */ uint32_t LengthOfString;
};
struct DBGKD_GET_STRING {
    /* 0x00 */ uint32_t LengthOfPromptString;
    /* 0x04 */ uint32_t LengthOfStringRead;
};
struct DBGKD_DEBUG_IO {
    /* 0x00 */ uint32_t ApiNumber;
    /* 0x04 */ uint16_t ProcessorLevel;
    /* 0x06 */ uint16_t Processor;
    /* 0x08 */ union {
        DBGKD_PRINT_STRING PrintString;
        DBGKD_GET_STRING GetString;
    } u;
};
static_assert(sizeof(DBGKD_DEBUG_IO) == 16);
static_assert(offsetof(DBGKD_DEBUG_IO, u.PrintString.LengthOfString) == 8);
static_assert(offsetof(DBGKD_DEBUG_IO, u.GetString.LengthOfStringRead) == 0xC);

// ---- FILE_IO (PacketType 11) ----
struct DBGKD_CREATE_FILE {
    /* 0x00 */ uint32_t DesiredAccess;
    /* 0x04 */ uint32_t FileAttributes;
    /* 0x08 */ uint32_t ShareAccess;
    /* 0x0C */ uint32_t CreateDisposition;
    /* 0x10 */ uint32_t CreateOptions;
    /* 0x18 */ uint64_t Handle;
    /* 0x20 */ uint64_t Length;
};
static_assert(sizeof(DBGKD_CREATE_FILE) == 0x28);
struct DBGKD_FILE_IO {
    /* 0x00 */ uint32_t ApiNumber;
    /* 0x04 */ uint32_t Status;
    /* 0x08 */ union {
        uint64_t ReserveSpace[7];
        DBGKD_CREATE_FILE CreateFile;
    } u;
};
static_assert(sizeof(DBGKD_FILE_IO) == 64);
static_assert(offsetof(DBGKD_FILE_IO, u.CreateFile.Handle) == 0x20);
static_assert(offsetof(DBGKD_FILE_IO, u.CreateFile.Length) == 0x28);

// ---- AMD64 CONTEXT (0x4D0 bytes) ----
struct M128A {
    uint64_t Low;
    int64_t High;
};
static_assert(sizeof(M128A) == 16);

struct XMM_SAVE_AREA32 {
    /* 0x000 */ uint16_t ControlWord;
    /* 0x002 */ uint16_t StatusWord;
    /* 0x004 */ uint8_t TagWord;
    /* 0x005 */ uint8_t Reserved1;
    /* 0x006 */ uint16_t ErrorOpcode;
    /* 0x008 */ uint32_t ErrorOffset;
    /* 0x00C */ uint16_t ErrorSelector;
    /* 0x00E */ uint16_t Reserved2;
    /* 0x010 */ uint32_t DataOffset;
    /* 0x014 */ uint16_t DataSelector;
    /* 0x016 */ uint16_t Reserved3;
    /* 0x018 */ uint32_t MxCsr;
    /* 0x01C */ uint32_t MxCsr_Mask;
    /* 0x020 */ M128A FloatRegisters[8];
    /* 0x0A0 */ M128A XmmRegisters[16];
    /* 0x1A0 */ uint8_t Reserved4[96];
};
static_assert(sizeof(XMM_SAVE_AREA32) == 512);

inline constexpr uint32_t CONTEXT_AMD64 = 0x00100000;
inline constexpr uint32_t CONTEXT_CONTROL = CONTEXT_AMD64 | 0x1;
inline constexpr uint32_t CONTEXT_INTEGER = CONTEXT_AMD64 | 0x2;
inline constexpr uint32_t CONTEXT_SEGMENTS = CONTEXT_AMD64 | 0x4;
inline constexpr uint32_t CONTEXT_FLOATING_POINT = CONTEXT_AMD64 | 0x8;
inline constexpr uint32_t CONTEXT_DEBUG_REGISTERS = CONTEXT_AMD64 | 0x10;
inline constexpr uint32_t CONTEXT_FULL = CONTEXT_AMD64 | 0xB;
inline constexpr uint32_t CONTEXT_ALL = CONTEXT_AMD64 | 0x1F;

struct CONTEXT {
    /* 0x000 */ uint64_t P1Home, P2Home, P3Home, P4Home, P5Home, P6Home;
    /* 0x030 */ uint32_t ContextFlags;
    /* 0x034 */ uint32_t MxCsr;
    /* 0x038 */ uint16_t SegCs;
    /* 0x03A */ uint16_t SegDs;
    /* 0x03C */ uint16_t SegEs;
    /* 0x03E */ uint16_t SegFs;
    /* 0x040 */ uint16_t SegGs;
    /* 0x042 */ uint16_t SegSs;
    /* 0x044 */ uint32_t EFlags;
    /* 0x048 */ uint64_t Dr0, Dr1, Dr2, Dr3, Dr6, Dr7;
    /* 0x078 */ uint64_t Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi;
    /* 0x0B8 */ uint64_t R8, R9, R10, R11, R12, R13, R14, R15;
    /* 0x0F8 */ uint64_t Rip;
    /* 0x100 */ XMM_SAVE_AREA32 FltSave;
    /* 0x300 */ M128A VectorRegister[26];
    /* 0x4A0 */ uint64_t VectorControl;
    /* 0x4A8 */ uint64_t DebugControl;
    /* 0x4B0 */ uint64_t LastBranchToRip;
    /* 0x4B8 */ uint64_t LastBranchFromRip;
    /* 0x4C0 */ uint64_t LastExceptionToRip;
    /* 0x4C8 */ uint64_t LastExceptionFromRip;
};
static_assert(sizeof(CONTEXT) == 0x4D0);
static_assert(offsetof(CONTEXT, ContextFlags) == 0x30);
static_assert(offsetof(CONTEXT, MxCsr) == 0x34);
static_assert(offsetof(CONTEXT, SegCs) == 0x38);
static_assert(offsetof(CONTEXT, SegSs) == 0x42);
static_assert(offsetof(CONTEXT, EFlags) == 0x44);
static_assert(offsetof(CONTEXT, Dr0) == 0x48);
static_assert(offsetof(CONTEXT, Dr7) == 0x70);
static_assert(offsetof(CONTEXT, Rax) == 0x78);
static_assert(offsetof(CONTEXT, Rsp) == 0x98);
static_assert(offsetof(CONTEXT, Rdi) == 0xB0);
static_assert(offsetof(CONTEXT, R8) == 0xB8);
static_assert(offsetof(CONTEXT, R15) == 0xF0);
static_assert(offsetof(CONTEXT, Rip) == 0xF8);
static_assert(offsetof(CONTEXT, FltSave) == 0x100);
static_assert(offsetof(CONTEXT, VectorRegister) == 0x300);
static_assert(offsetof(CONTEXT, VectorControl) == 0x4A0);
static_assert(offsetof(CONTEXT, LastExceptionFromRip) == 0x4C8);

// ---- KSPECIAL_REGISTERS (AMD64; control space index 2) ----
struct KDESCRIPTOR {
    /* 0x00 */ uint16_t Pad[3];
    /* 0x06 */ uint16_t Limit;
    /* 0x08 */ uint64_t Base;
};
static_assert(sizeof(KDESCRIPTOR) == 16);

struct KSPECIAL_REGISTERS {
    /* 0x00 */ uint64_t Cr0, Cr2, Cr3, Cr4;
    /* 0x20 */ uint64_t KernelDr0, KernelDr1, KernelDr2, KernelDr3, KernelDr6, KernelDr7;
    /* 0x50 */ KDESCRIPTOR Gdtr;
    /* 0x60 */ KDESCRIPTOR Idtr;
    /* 0x70 */ uint16_t Tr;
    /* 0x72 */ uint16_t Ldtr;
    /* 0x74 */ uint32_t MxCsr;
    /* 0x78 */ uint64_t DebugControl;
    /* 0x80 */ uint64_t LastBranchToRip, LastBranchFromRip, LastExceptionToRip,
        LastExceptionFromRip;
    /* 0xA0 */ uint64_t Cr8;
    /* 0xA8 */ uint64_t MsrGsBase, MsrGsSwap, MsrStar, MsrLStar, MsrCStar, MsrSyscallMask;
    /* 0xD8 */ uint64_t Xcr0;
    /* 0xE0 */ uint64_t MsrFsBase;
    /* 0xE8 */ uint64_t SpecialPadding0;
};
static_assert(sizeof(KSPECIAL_REGISTERS) == 0xF0);
static_assert(offsetof(KSPECIAL_REGISTERS, Cr3) == 0x10);
static_assert(offsetof(KSPECIAL_REGISTERS, KernelDr0) == 0x20);
static_assert(offsetof(KSPECIAL_REGISTERS, KernelDr3) == 0x38);
static_assert(offsetof(KSPECIAL_REGISTERS, KernelDr6) == 0x40);
static_assert(offsetof(KSPECIAL_REGISTERS, KernelDr7) == 0x48);
static_assert(offsetof(KSPECIAL_REGISTERS, Gdtr.Limit) == 0x56);
static_assert(offsetof(KSPECIAL_REGISTERS, Gdtr.Base) == 0x58);
static_assert(offsetof(KSPECIAL_REGISTERS, Idtr.Base) == 0x68);
static_assert(offsetof(KSPECIAL_REGISTERS, Tr) == 0x70);
static_assert(offsetof(KSPECIAL_REGISTERS, Cr8) == 0xA0);
static_assert(offsetof(KSPECIAL_REGISTERS, Xcr0) == 0xD8);
// WinDbg reads and writes this many bytes of control space index 2 [V].
inline constexpr uint32_t KSPECIAL_REGISTERS_WINDBG_SIZE = 0xE0;

// x64 control space indexes (ReadControlSpace "address")
inline constexpr uint64_t AMD64_DEBUG_CONTROL_SPACE_KPCR = 0;
inline constexpr uint64_t AMD64_DEBUG_CONTROL_SPACE_KPRCB = 1;
inline constexpr uint64_t AMD64_DEBUG_CONTROL_SPACE_KSPECIAL = 2;
inline constexpr uint64_t AMD64_DEBUG_CONTROL_SPACE_KTHREAD = 3;

// ---- KDDEBUGGER_DATA64 (x64 layout, Appendix B) ----
inline constexpr uint32_t KDBG_TAG = 0x4742444B; // 'KDBG'

struct DBGKD_DEBUG_DATA_HEADER64 {
    /* 0x00 */ uint64_t List_Flink;
    /* 0x08 */ uint64_t List_Blink;
    /* 0x10 */ uint32_t OwnerTag;
    /* 0x14 */ uint32_t Size;
};
static_assert(sizeof(DBGKD_DEBUG_DATA_HEADER64) == 0x18);

struct KDDEBUGGER_DATA64 {
    /* 0x000 */ DBGKD_DEBUG_DATA_HEADER64 Header;
    /* 0x018 */ uint64_t KernBase;
    /* 0x020 */ uint64_t BreakpointWithStatus;
    /* 0x028 */ uint64_t SavedContext;
    /* 0x030 */ uint16_t ThCallbackStack;
    /* 0x032 */ uint16_t NextCallback;
    /* 0x034 */ uint16_t FramePointer;
    /* 0x036 */ uint16_t PaeEnabled;
    /* 0x038 */ uint64_t KiCallUserMode;
    /* 0x040 */ uint64_t KeUserCallbackDispatcher;
    /* 0x048 */ uint64_t PsLoadedModuleList;
    /* 0x050 */ uint64_t PsActiveProcessHead;
    /* 0x058 */ uint64_t PspCidTable;
    /* 0x060 */ uint64_t ExpSystemResourcesList;
    /* 0x068 */ uint64_t ExpPagedPoolDescriptor;
    /* 0x070 */ uint64_t ExpNumberOfPagedPools;
    /* 0x078 */ uint64_t KeTimeIncrement;
    /* 0x080 */ uint64_t KeBugCheckCallbackListHead;
    /* 0x088 */ uint64_t KiBugcheckData;
    /* 0x090 */ uint64_t IopErrorLogListHead;
    /* 0x098 */ uint64_t ObpRootDirectoryObject;
    /* 0x0a0 */ uint64_t ObpTypeObjectType;
    /* 0x0a8 */ uint64_t MmSystemCacheStart;
    /* 0x0b0 */ uint64_t MmSystemCacheEnd;
    /* 0x0b8 */ uint64_t MmSystemCacheWs;
    /* 0x0c0 */ uint64_t MmPfnDatabase;
    /* 0x0c8 */ uint64_t MmSystemPtesStart;
    /* 0x0d0 */ uint64_t MmSystemPtesEnd;
    /* 0x0d8 */ uint64_t MmSubsectionBase;
    /* 0x0e0 */ uint64_t MmNumberOfPagingFiles;
    /* 0x0e8 */ uint64_t MmLowestPhysicalPage;
    /* 0x0f0 */ uint64_t MmHighestPhysicalPage;
    /* 0x0f8 */ uint64_t MmNumberOfPhysicalPages;
    /* 0x100 */ uint64_t MmMaximumNonPagedPoolInBytes;
    /* 0x108 */ uint64_t MmNonPagedSystemStart;
    /* 0x110 */ uint64_t MmNonPagedPoolStart;
    /* 0x118 */ uint64_t MmNonPagedPoolEnd;
    /* 0x120 */ uint64_t MmPagedPoolStart;
    /* 0x128 */ uint64_t MmPagedPoolEnd;
    /* 0x130 */ uint64_t MmPagedPoolInformation;
    /* 0x138 */ uint64_t MmPageSize;
    /* 0x140 */ uint64_t MmSizeOfPagedPoolInBytes;
    /* 0x148 */ uint64_t MmTotalCommitLimit;
    /* 0x150 */ uint64_t MmTotalCommittedPages;
    /* 0x158 */ uint64_t MmSharedCommit;
    /* 0x160 */ uint64_t MmDriverCommit;
    /* 0x168 */ uint64_t MmProcessCommit;
    /* 0x170 */ uint64_t MmPagedPoolCommit;
    /* 0x178 */ uint64_t MmExtendedCommit;
    /* 0x180 */ uint64_t MmZeroedPageListHead;
    /* 0x188 */ uint64_t MmFreePageListHead;
    /* 0x190 */ uint64_t MmStandbyPageListHead;
    /* 0x198 */ uint64_t MmModifiedPageListHead;
    /* 0x1a0 */ uint64_t MmModifiedNoWritePageListHead;
    /* 0x1a8 */ uint64_t MmAvailablePages;
    /* 0x1b0 */ uint64_t MmResidentAvailablePages;
    /* 0x1b8 */ uint64_t PoolTrackTable;
    /* 0x1c0 */ uint64_t NonPagedPoolDescriptor;
    /* 0x1c8 */ uint64_t MmHighestUserAddress;
    /* 0x1d0 */ uint64_t MmSystemRangeStart;
    /* 0x1d8 */ uint64_t MmUserProbeAddress;
    /* 0x1e0 */ uint64_t KdPrintCircularBuffer;
    /* 0x1e8 */ uint64_t KdPrintCircularBufferEnd;
    /* 0x1f0 */ uint64_t KdPrintWritePointer;
    /* 0x1f8 */ uint64_t KdPrintRolloverCount;
    /* 0x200 */ uint64_t MmLoadedUserImageList;
    /* 0x208 */ uint64_t NtBuildLab;
    /* 0x210 */ uint64_t KiNormalSystemCall;
    /* 0x218 */ uint64_t KiProcessorBlock;
    /* 0x220 */ uint64_t MmUnloadedDrivers;
    /* 0x228 */ uint64_t MmLastUnloadedDriver;
    /* 0x230 */ uint64_t MmTriageActionTaken;
    /* 0x238 */ uint64_t MmSpecialPoolTag;
    /* 0x240 */ uint64_t KernelVerifier;
    /* 0x248 */ uint64_t MmVerifierData;
    /* 0x250 */ uint64_t MmAllocatedNonPagedPool;
    /* 0x258 */ uint64_t MmPeakCommitment;
    /* 0x260 */ uint64_t MmTotalCommitLimitMaximum;
    /* 0x268 */ uint64_t CmNtCSDVersion;
    /* 0x270 */ uint64_t MmPhysicalMemoryBlock;
    /* 0x278 */ uint64_t MmSessionBase;
    /* 0x280 */ uint64_t MmSessionSize;
    /* 0x288 */ uint64_t MmSystemParentTablePage;
    /* 0x290 */ uint64_t MmVirtualTranslationBase;
    /* 0x298 */ uint16_t OffsetKThreadNextProcessor;
    /* 0x29a */ uint16_t OffsetKThreadTeb;
    /* 0x29c */ uint16_t OffsetKThreadKernelStack;
    /* 0x29e */ uint16_t OffsetKThreadInitialStack;
    /* 0x2a0 */ uint16_t OffsetKThreadApcProcess;
    /* 0x2a2 */ uint16_t OffsetKThreadState;
    /* 0x2a4 */ uint16_t OffsetKThreadBStore;
    /* 0x2a6 */ uint16_t OffsetKThreadBStoreLimit;
    /* 0x2a8 */ uint16_t SizeEProcess;
    /* 0x2aa */ uint16_t OffsetEprocessPeb;
    /* 0x2ac */ uint16_t OffsetEprocessParentCID;
    /* 0x2ae */ uint16_t OffsetEprocessDirectoryTableBase;
    /* 0x2b0 */ uint16_t SizePrcb;
    /* 0x2b2 */ uint16_t OffsetPrcbDpcRoutine;
    /* 0x2b4 */ uint16_t OffsetPrcbCurrentThread;
    /* 0x2b6 */ uint16_t OffsetPrcbMhz;
    /* 0x2b8 */ uint16_t OffsetPrcbCpuType;
    /* 0x2ba */ uint16_t OffsetPrcbVendorString;
    /* 0x2bc */ uint16_t OffsetPrcbProcStateContext;
    /* 0x2be */ uint16_t OffsetPrcbNumber;
    /* 0x2c0 */ uint16_t SizeEThread;
    /* 0x2c2 */ uint8_t L1tfHighPhysicalBitIndex;
    /* 0x2c3 */ uint8_t L1tfSwizzleBitIndex;
    /* 0x2c4 */ uint32_t Padding0;
    /* 0x2c8 */ uint64_t KdPrintCircularBufferPtr;
    /* 0x2d0 */ uint64_t KdPrintBufferSize;
    /* 0x2d8 */ uint64_t KeLoaderBlock;
    /* 0x2e0 */ uint16_t SizePcr;
    /* 0x2e2 */ uint16_t OffsetPcrSelfPcr;
    /* 0x2e4 */ uint16_t OffsetPcrCurrentPrcb;
    /* 0x2e6 */ uint16_t OffsetPcrContainedPrcb;
    /* 0x2e8 */ uint16_t OffsetPcrInitialBStore;
    /* 0x2ea */ uint16_t OffsetPcrBStoreLimit;
    /* 0x2ec */ uint16_t OffsetPcrInitialStack;
    /* 0x2ee */ uint16_t OffsetPcrStackLimit;
    /* 0x2f0 */ uint16_t OffsetPrcbPcrPage;
    /* 0x2f2 */ uint16_t OffsetPrcbProcStateSpecialReg;
    /* 0x2f4 */ uint16_t GdtR0Code;
    /* 0x2f6 */ uint16_t GdtR0Data;
    /* 0x2f8 */ uint16_t GdtR0Pcr;
    /* 0x2fa */ uint16_t GdtR3Code;
    /* 0x2fc */ uint16_t GdtR3Data;
    /* 0x2fe */ uint16_t GdtR3Teb;
    /* 0x300 */ uint16_t GdtLdt;
    /* 0x302 */ uint16_t GdtTss;
    /* 0x304 */ uint16_t Gdt64R3CmCode;
    /* 0x306 */ uint16_t Gdt64R3CmTeb;
    /* 0x308 */ uint64_t IopNumTriageDumpDataBlocks;
    /* 0x310 */ uint64_t IopTriageDumpDataBlocks;
    /* 0x318 */ uint64_t VfCrashDataBlock;
    /* 0x320 */ uint64_t MmBadPagesDetected;
    /* 0x328 */ uint64_t MmZeroedPageSingleBitErrorsDetected;
    /* 0x330 */ uint64_t EtwpDebuggerData;
    /* 0x338 */ uint16_t OffsetPrcbContext;
    /* 0x33a */ uint16_t OffsetPrcbMaxBreakpoints;
    /* 0x33c */ uint16_t OffsetPrcbMaxWatchpoints;
    /* 0x340 */ uint32_t OffsetKThreadStackLimit;
    /* 0x344 */ uint32_t OffsetKThreadStackBase;
    /* 0x348 */ uint32_t OffsetKThreadQueueListEntry;
    /* 0x34c */ uint32_t OffsetEThreadIrpList;
    /* 0x350 */ uint16_t OffsetPrcbIdleThread;
    /* 0x352 */ uint16_t OffsetPrcbNormalDpcState;
    /* 0x354 */ uint16_t OffsetPrcbDpcStack;
    /* 0x356 */ uint16_t OffsetPrcbIsrStack;
    /* 0x358 */ uint16_t SizeKDPC_STACK_FRAME;
    /* 0x35a */ uint16_t OffsetKPriQueueThreadListHead;
    /* 0x35c */ uint16_t OffsetKThreadWaitReason;
    /* 0x35e */ uint16_t Padding1;
    /* 0x360 */ uint64_t PteBase;
    /* 0x368 */ uint64_t RetpolineStubFunctionTable;
    /* 0x370 */ uint32_t RetpolineStubFunctionTableSize;
    /* 0x374 */ uint32_t RetpolineStubOffset;
    /* 0x378 */ uint32_t RetpolineStubSize;
    /* 0x37c */ uint16_t OffsetEProcessMmHotPatchContext;
};
static_assert(sizeof(KDDEBUGGER_DATA64) == 0x380); // 0x37e of fields, padded to 8
static_assert(offsetof(KDDEBUGGER_DATA64, KernBase) == 0x18);
static_assert(offsetof(KDDEBUGGER_DATA64, BreakpointWithStatus) == 0x20);
static_assert(offsetof(KDDEBUGGER_DATA64, SavedContext) == 0x28);
static_assert(offsetof(KDDEBUGGER_DATA64, ThCallbackStack) == 0x30);
static_assert(offsetof(KDDEBUGGER_DATA64, NextCallback) == 0x32);
static_assert(offsetof(KDDEBUGGER_DATA64, FramePointer) == 0x34);
static_assert(offsetof(KDDEBUGGER_DATA64, PaeEnabled) == 0x36);
static_assert(offsetof(KDDEBUGGER_DATA64, KiCallUserMode) == 0x38);
static_assert(offsetof(KDDEBUGGER_DATA64, KeUserCallbackDispatcher) == 0x40);
static_assert(offsetof(KDDEBUGGER_DATA64, PsLoadedModuleList) == 0x48);
static_assert(offsetof(KDDEBUGGER_DATA64, PsActiveProcessHead) == 0x50);
static_assert(offsetof(KDDEBUGGER_DATA64, PspCidTable) == 0x58);
static_assert(offsetof(KDDEBUGGER_DATA64, ExpSystemResourcesList) == 0x60);
static_assert(offsetof(KDDEBUGGER_DATA64, ExpPagedPoolDescriptor) == 0x68);
static_assert(offsetof(KDDEBUGGER_DATA64, ExpNumberOfPagedPools) == 0x70);
static_assert(offsetof(KDDEBUGGER_DATA64, KeTimeIncrement) == 0x78);
static_assert(offsetof(KDDEBUGGER_DATA64, KeBugCheckCallbackListHead) == 0x80);
static_assert(offsetof(KDDEBUGGER_DATA64, KiBugcheckData) == 0x88);
static_assert(offsetof(KDDEBUGGER_DATA64, IopErrorLogListHead) == 0x90);
static_assert(offsetof(KDDEBUGGER_DATA64, ObpRootDirectoryObject) == 0x98);
static_assert(offsetof(KDDEBUGGER_DATA64, ObpTypeObjectType) == 0xa0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemCacheStart) == 0xa8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemCacheEnd) == 0xb0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemCacheWs) == 0xb8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPfnDatabase) == 0xc0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemPtesStart) == 0xc8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemPtesEnd) == 0xd0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSubsectionBase) == 0xd8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmNumberOfPagingFiles) == 0xe0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmLowestPhysicalPage) == 0xe8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmHighestPhysicalPage) == 0xf0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmNumberOfPhysicalPages) == 0xf8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmMaximumNonPagedPoolInBytes) == 0x100);
static_assert(offsetof(KDDEBUGGER_DATA64, MmNonPagedSystemStart) == 0x108);
static_assert(offsetof(KDDEBUGGER_DATA64, MmNonPagedPoolStart) == 0x110);
static_assert(offsetof(KDDEBUGGER_DATA64, MmNonPagedPoolEnd) == 0x118);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPagedPoolStart) == 0x120);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPagedPoolEnd) == 0x128);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPagedPoolInformation) == 0x130);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPageSize) == 0x138);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSizeOfPagedPoolInBytes) == 0x140);
static_assert(offsetof(KDDEBUGGER_DATA64, MmTotalCommitLimit) == 0x148);
static_assert(offsetof(KDDEBUGGER_DATA64, MmTotalCommittedPages) == 0x150);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSharedCommit) == 0x158);
static_assert(offsetof(KDDEBUGGER_DATA64, MmDriverCommit) == 0x160);
static_assert(offsetof(KDDEBUGGER_DATA64, MmProcessCommit) == 0x168);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPagedPoolCommit) == 0x170);
static_assert(offsetof(KDDEBUGGER_DATA64, MmExtendedCommit) == 0x178);
static_assert(offsetof(KDDEBUGGER_DATA64, MmZeroedPageListHead) == 0x180);
static_assert(offsetof(KDDEBUGGER_DATA64, MmFreePageListHead) == 0x188);
static_assert(offsetof(KDDEBUGGER_DATA64, MmStandbyPageListHead) == 0x190);
static_assert(offsetof(KDDEBUGGER_DATA64, MmModifiedPageListHead) == 0x198);
static_assert(offsetof(KDDEBUGGER_DATA64, MmModifiedNoWritePageListHead) == 0x1a0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmAvailablePages) == 0x1a8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmResidentAvailablePages) == 0x1b0);
static_assert(offsetof(KDDEBUGGER_DATA64, PoolTrackTable) == 0x1b8);
static_assert(offsetof(KDDEBUGGER_DATA64, NonPagedPoolDescriptor) == 0x1c0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmHighestUserAddress) == 0x1c8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemRangeStart) == 0x1d0);
static_assert(offsetof(KDDEBUGGER_DATA64, MmUserProbeAddress) == 0x1d8);
static_assert(offsetof(KDDEBUGGER_DATA64, KdPrintCircularBuffer) == 0x1e0);
static_assert(offsetof(KDDEBUGGER_DATA64, KdPrintCircularBufferEnd) == 0x1e8);
static_assert(offsetof(KDDEBUGGER_DATA64, KdPrintWritePointer) == 0x1f0);
static_assert(offsetof(KDDEBUGGER_DATA64, KdPrintRolloverCount) == 0x1f8);
static_assert(offsetof(KDDEBUGGER_DATA64, MmLoadedUserImageList) == 0x200);
static_assert(offsetof(KDDEBUGGER_DATA64, NtBuildLab) == 0x208);
static_assert(offsetof(KDDEBUGGER_DATA64, KiNormalSystemCall) == 0x210);
static_assert(offsetof(KDDEBUGGER_DATA64, KiProcessorBlock) == 0x218);
static_assert(offsetof(KDDEBUGGER_DATA64, MmUnloadedDrivers) == 0x220);
static_assert(offsetof(KDDEBUGGER_DATA64, MmLastUnloadedDriver) == 0x228);
static_assert(offsetof(KDDEBUGGER_DATA64, MmTriageActionTaken) == 0x230);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSpecialPoolTag) == 0x238);
static_assert(offsetof(KDDEBUGGER_DATA64, KernelVerifier) == 0x240);
static_assert(offsetof(KDDEBUGGER_DATA64, MmVerifierData) == 0x248);
static_assert(offsetof(KDDEBUGGER_DATA64, MmAllocatedNonPagedPool) == 0x250);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPeakCommitment) == 0x258);
static_assert(offsetof(KDDEBUGGER_DATA64, MmTotalCommitLimitMaximum) == 0x260);
static_assert(offsetof(KDDEBUGGER_DATA64, CmNtCSDVersion) == 0x268);
static_assert(offsetof(KDDEBUGGER_DATA64, MmPhysicalMemoryBlock) == 0x270);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSessionBase) == 0x278);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSessionSize) == 0x280);
static_assert(offsetof(KDDEBUGGER_DATA64, MmSystemParentTablePage) == 0x288);
static_assert(offsetof(KDDEBUGGER_DATA64, MmVirtualTranslationBase) == 0x290);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadNextProcessor) == 0x298);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadTeb) == 0x29a);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadKernelStack) == 0x29c);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadInitialStack) == 0x29e);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadApcProcess) == 0x2a0);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadState) == 0x2a2);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadBStore) == 0x2a4);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadBStoreLimit) == 0x2a6);
static_assert(offsetof(KDDEBUGGER_DATA64, SizeEProcess) == 0x2a8);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetEprocessPeb) == 0x2aa);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetEprocessParentCID) == 0x2ac);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetEprocessDirectoryTableBase) == 0x2ae);
static_assert(offsetof(KDDEBUGGER_DATA64, SizePrcb) == 0x2b0);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbDpcRoutine) == 0x2b2);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbCurrentThread) == 0x2b4);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbMhz) == 0x2b6);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbCpuType) == 0x2b8);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbVendorString) == 0x2ba);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbProcStateContext) == 0x2bc);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbNumber) == 0x2be);
static_assert(offsetof(KDDEBUGGER_DATA64, SizeEThread) == 0x2c0);
static_assert(offsetof(KDDEBUGGER_DATA64, L1tfHighPhysicalBitIndex) == 0x2c2);
static_assert(offsetof(KDDEBUGGER_DATA64, L1tfSwizzleBitIndex) == 0x2c3);
static_assert(offsetof(KDDEBUGGER_DATA64, Padding0) == 0x2c4);
static_assert(offsetof(KDDEBUGGER_DATA64, KdPrintCircularBufferPtr) == 0x2c8);
static_assert(offsetof(KDDEBUGGER_DATA64, KdPrintBufferSize) == 0x2d0);
static_assert(offsetof(KDDEBUGGER_DATA64, KeLoaderBlock) == 0x2d8);
static_assert(offsetof(KDDEBUGGER_DATA64, SizePcr) == 0x2e0);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrSelfPcr) == 0x2e2);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrCurrentPrcb) == 0x2e4);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrContainedPrcb) == 0x2e6);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrInitialBStore) == 0x2e8);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrBStoreLimit) == 0x2ea);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrInitialStack) == 0x2ec);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPcrStackLimit) == 0x2ee);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbPcrPage) == 0x2f0);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbProcStateSpecialReg) == 0x2f2);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtR0Code) == 0x2f4);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtR0Data) == 0x2f6);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtR0Pcr) == 0x2f8);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtR3Code) == 0x2fa);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtR3Data) == 0x2fc);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtR3Teb) == 0x2fe);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtLdt) == 0x300);
static_assert(offsetof(KDDEBUGGER_DATA64, GdtTss) == 0x302);
static_assert(offsetof(KDDEBUGGER_DATA64, Gdt64R3CmCode) == 0x304);
static_assert(offsetof(KDDEBUGGER_DATA64, Gdt64R3CmTeb) == 0x306);
static_assert(offsetof(KDDEBUGGER_DATA64, IopNumTriageDumpDataBlocks) == 0x308);
static_assert(offsetof(KDDEBUGGER_DATA64, IopTriageDumpDataBlocks) == 0x310);
static_assert(offsetof(KDDEBUGGER_DATA64, VfCrashDataBlock) == 0x318);
static_assert(offsetof(KDDEBUGGER_DATA64, MmBadPagesDetected) == 0x320);
static_assert(offsetof(KDDEBUGGER_DATA64, MmZeroedPageSingleBitErrorsDetected) == 0x328);
static_assert(offsetof(KDDEBUGGER_DATA64, EtwpDebuggerData) == 0x330);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbContext) == 0x338);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbMaxBreakpoints) == 0x33a);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbMaxWatchpoints) == 0x33c);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadStackLimit) == 0x340);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadStackBase) == 0x344);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadQueueListEntry) == 0x348);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetEThreadIrpList) == 0x34c);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbIdleThread) == 0x350);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbNormalDpcState) == 0x352);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbDpcStack) == 0x354);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetPrcbIsrStack) == 0x356);
static_assert(offsetof(KDDEBUGGER_DATA64, SizeKDPC_STACK_FRAME) == 0x358);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKPriQueueThreadListHead) == 0x35a);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetKThreadWaitReason) == 0x35c);
static_assert(offsetof(KDDEBUGGER_DATA64, Padding1) == 0x35e);
static_assert(offsetof(KDDEBUGGER_DATA64, PteBase) == 0x360);
static_assert(offsetof(KDDEBUGGER_DATA64, RetpolineStubFunctionTable) == 0x368);
static_assert(offsetof(KDDEBUGGER_DATA64, RetpolineStubFunctionTableSize) == 0x370);
static_assert(offsetof(KDDEBUGGER_DATA64, RetpolineStubOffset) == 0x374);
static_assert(offsetof(KDDEBUGGER_DATA64, RetpolineStubSize) == 0x378);
static_assert(offsetof(KDDEBUGGER_DATA64, OffsetEProcessMmHotPatchContext) == 0x37c);

// ---- PHYSICAL_MEMORY_DESCRIPTOR (x64) ----
struct PHYSICAL_MEMORY_RUN64 {
    /* 0x00 */ uint64_t BasePage;
    /* 0x08 */ uint64_t PageCount;
};
static_assert(sizeof(PHYSICAL_MEMORY_RUN64) == 16);
struct PHYSICAL_MEMORY_DESCRIPTOR64 {
    /* 0x00 */ uint32_t NumberOfRuns;
    /* 0x08 */ uint64_t NumberOfPages;
    // /* 0x10 */ PHYSICAL_MEMORY_RUN64 Run[NumberOfRuns];
};
static_assert(sizeof(PHYSICAL_MEMORY_DESCRIPTOR64) == 16);

// ---- loaded module list (x64) ----
struct LIST_ENTRY64 {
    /* 0x00 */ uint64_t Flink;
    /* 0x08 */ uint64_t Blink;
};
static_assert(sizeof(LIST_ENTRY64) == 16);

struct UNICODE_STRING64 {
    /* 0x00 */ uint16_t Length;
    /* 0x02 */ uint16_t MaximumLength;
    /* 0x08 */ uint64_t Buffer;
};
static_assert(sizeof(UNICODE_STRING64) == 16);
static_assert(offsetof(UNICODE_STRING64, Buffer) == 8);

struct KLDR_DATA_TABLE_ENTRY64 {
    /* 0x00 */ LIST_ENTRY64 InLoadOrderLinks;
    /* 0x10 */ uint64_t ExceptionTable;
    /* 0x18 */ uint32_t ExceptionTableSize;
    /* 0x20 */ uint64_t GpValue;
    /* 0x28 */ uint64_t NonPagedDebugInfo;
    /* 0x30 */ uint64_t DllBase;
    /* 0x38 */ uint64_t EntryPoint;
    /* 0x40 */ uint32_t SizeOfImage;
    /* 0x48 */ UNICODE_STRING64 FullDllName;
    /* 0x58 */ UNICODE_STRING64 BaseDllName;
    /* 0x68 */ uint32_t Flags;
    /* 0x6C */ uint16_t LoadCount;
    /* 0x6E */ uint16_t SignatureInfo;
    /* 0x70 */ uint64_t SectionPointer;
    /* 0x78 */ uint32_t CheckSum;
    /* 0x7C */ uint32_t CoverageSectionSize;
    /* 0x80 */ uint64_t CoverageSection;
    /* 0x88 */ uint64_t LoadedImports;
    /* 0x90 */ uint64_t Spare;
    /* 0x98 */ uint32_t SizeOfImageNotRounded;
    /* 0x9C */ uint32_t TimeDateStamp;
};
static_assert(sizeof(KLDR_DATA_TABLE_ENTRY64) == 0xA0);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, DllBase) == 0x30);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, EntryPoint) == 0x38);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, SizeOfImage) == 0x40);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, FullDllName) == 0x48);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, BaseDllName) == 0x58);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, CheckSum) == 0x78);
static_assert(offsetof(KLDR_DATA_TABLE_ENTRY64, TimeDateStamp) == 0x9C);

// ---- decode/encode helpers: copy, never overlay ----
template <class T> std::optional<T> kd_decode(std::span<const uint8_t> bytes, size_t offset = 0) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
        return std::nullopt;
    }
    T v;
    std::memcpy(&v, bytes.data() + offset, sizeof(T));
    return v;
}

template <class T> void kd_append(std::vector<uint8_t>& out, const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto bytes = std::bit_cast<std::array<uint8_t, sizeof(T)>>(v);
    out.reserve(out.size() + bytes.size());
    for (uint8_t b : bytes) {
        out.push_back(b);
    }
}

template <class T> T kd_zero() {
    T v;
    std::memset(&v, 0, sizeof(T));
    return v;
}

const char* manipulate_api_name(uint32_t api);
const char* packet_type_name(uint16_t type);

} // namespace kdcart::protocol
