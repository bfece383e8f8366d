#include "protocol/dbgkd_structs.h"

namespace kdcart::protocol {

const char* manipulate_api_name(uint32_t api) {
    switch (api) {
    case DbgKdReadVirtualMemoryApi: return "ReadVirtualMemory";
    case DbgKdWriteVirtualMemoryApi: return "WriteVirtualMemory";
    case DbgKdGetContextApi: return "GetContext";
    case DbgKdSetContextApi: return "SetContext";
    case DbgKdWriteBreakPointApi: return "WriteBreakPoint";
    case DbgKdRestoreBreakPointApi: return "RestoreBreakPoint";
    case DbgKdContinueApi: return "Continue";
    case DbgKdReadControlSpaceApi: return "ReadControlSpace";
    case DbgKdWriteControlSpaceApi: return "WriteControlSpace";
    case DbgKdReadIoSpaceApi: return "ReadIoSpace";
    case DbgKdWriteIoSpaceApi: return "WriteIoSpace";
    case DbgKdRebootApi: return "Reboot";
    case DbgKdContinueApi2: return "Continue2";
    case DbgKdReadPhysicalMemoryApi: return "ReadPhysicalMemory";
    case DbgKdWritePhysicalMemoryApi: return "WritePhysicalMemory";
    case DbgKdQuerySpecialCallsApi: return "QuerySpecialCalls";
    case DbgKdSetSpecialCallApi: return "SetSpecialCall";
    case DbgKdClearSpecialCallsApi: return "ClearSpecialCalls";
    case DbgKdSetInternalBreakPointApi: return "SetInternalBreakPoint";
    case DbgKdGetInternalBreakPointApi: return "GetInternalBreakPoint";
    case DbgKdReadIoSpaceExtendedApi: return "ReadIoSpaceExtended";
    case DbgKdWriteIoSpaceExtendedApi: return "WriteIoSpaceExtended";
    case DbgKdGetVersionApi: return "GetVersion";
    case DbgKdWriteBreakPointExApi: return "WriteBreakPointEx";
    case DbgKdRestoreBreakPointExApi: return "RestoreBreakPointEx";
    case DbgKdCauseBugCheckApi: return "CauseBugCheck";
    case DbgKdSwitchProcessor: return "SwitchProcessor";
    case DbgKdPageInApi: return "PageIn";
    case DbgKdReadMachineSpecificRegister: return "ReadMachineSpecificRegister";
    case DbgKdWriteMachineSpecificRegister: return "WriteMachineSpecificRegister";
    case DbgKdSearchMemoryApi: return "SearchMemory";
    case DbgKdGetBusDataApi: return "GetBusData";
    case DbgKdSetBusDataApi: return "SetBusData";
    case DbgKdCheckLowMemoryApi: return "CheckLowMemory";
    case DbgKdClearAllInternalBreakpointsApi: return "ClearAllInternalBreakpoints";
    case DbgKdFillMemoryApi: return "FillMemory";
    case DbgKdQueryMemoryApi: return "QueryMemory";
    case DbgKdSwitchPartition: return "SwitchPartition";
    case DbgKdWriteCustomBreakpointApi: return "WriteCustomBreakpoint";
    case DbgKdGetContextExApi: return "GetContextEx";
    case DbgKdSetContextExApi: return "SetContextEx";
    case DbgKdPrintStringApi: return "PrintString";
    case DbgKdGetStringApi: return "GetString";
    case DbgKdPrintTraceApi: return "PrintTrace";
    case DbgKdCreateFileApi: return "CreateFile";
    case DbgKdReadFileApi: return "ReadFile";
    case DbgKdWriteFileApi: return "WriteFile";
    case DbgKdCloseFileApi: return "CloseFile";
    case DbgKdExceptionStateChange: return "Exception";
    case DbgKdLoadSymbolsStateChange: return "LoadSymbols";
    case DbgKdCommandStringStateChange: return "CommandString";
    default: return "UnknownApi";
    }
}

const char* packet_type_name(uint16_t type) {
    switch (type) {
    case PACKET_TYPE_UNUSED: return "UNUSED";
    case PACKET_TYPE_KD_STATE_CHANGE32: return "STATE_CHANGE32";
    case PACKET_TYPE_KD_STATE_MANIPULATE: return "STATE_MANIPULATE";
    case PACKET_TYPE_KD_DEBUG_IO: return "DEBUG_IO";
    case PACKET_TYPE_KD_ACKNOWLEDGE: return "ACK";
    case PACKET_TYPE_KD_RESEND: return "RESEND";
    case PACKET_TYPE_KD_RESET: return "RESET";
    case PACKET_TYPE_KD_STATE_CHANGE64: return "STATE_CHANGE64";
    case PACKET_TYPE_KD_POLL_BREAKIN: return "POLL_BREAKIN";
    case PACKET_TYPE_KD_TRACE_IO: return "TRACE_IO";
    case PACKET_TYPE_KD_CONTROL_REQUEST: return "CONTROL_REQUEST";
    case PACKET_TYPE_KD_FILE_IO: return "FILE_IO";
    default: return "UNKNOWN";
    }
}

} // namespace kdcart::protocol
