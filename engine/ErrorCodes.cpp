// The common NTSTATUS, Win32 and HRESULT codes with their names and messages (public facts of
// ntstatus.h, winerror.h and the system message tables). Sorted by code within each table.
#include "engine/ErrorCodes.h"

#include <algorithm>

namespace kdcart::engine {

namespace {

constexpr ErrorCodeEntry kNtStatus[] = {
    {0x00000000, "STATUS_SUCCESS", "STATUS_SUCCESS"},
    {0x00000103, "STATUS_PENDING", "The operation that was requested is pending completion."},
    {0x40000015, "STATUS_FATAL_APP_EXIT", "{Fatal Application Exit}  %hs"},
    {0x80000001, "STATUS_GUARD_PAGE_VIOLATION",
     "{EXCEPTION}  Guard Page Exception  A page of memory that marks the end of a data "
     "structure, such as a stack or an array, has been accessed."},
    {0x80000002, "STATUS_DATATYPE_MISALIGNMENT",
     "{EXCEPTION}  Alignment Fault  A datatype misalignment was detected in a load or store "
     "instruction."},
    {0x80000003, "STATUS_BREAKPOINT", "{EXCEPTION}  Breakpoint  A breakpoint has been reached."},
    {0x80000004, "STATUS_SINGLE_STEP",
     "{EXCEPTION}  Single Step  A single step or trace operation has just been completed."},
    {0x80000005, "STATUS_BUFFER_OVERFLOW",
     "{Buffer Overflow}  The data was too large to fit into the specified buffer."},
    {0x80000006, "STATUS_NO_MORE_FILES",
     "{No More Files}  No more files were found which match the file specification."},
    {0x8000001A, "STATUS_NO_MORE_ENTRIES",
     "{No More Entries}  No more entries are available from an enumeration operation."},
    {0xC0000001, "STATUS_UNSUCCESSFUL",
     "{Operation Failed}  The requested operation was unsuccessful."},
    {0xC0000002, "STATUS_NOT_IMPLEMENTED",
     "{Not Implemented}  The requested operation is not implemented."},
    {0xC0000003, "STATUS_INVALID_INFO_CLASS",
     "{Invalid Parameter}  The specified information class is not a valid information class "
     "for the specified object."},
    {0xC0000004, "STATUS_INFO_LENGTH_MISMATCH",
     "The specified information record length does not match the length required for the "
     "specified information class."},
    {0xC0000005, "STATUS_ACCESS_VIOLATION",
     "The instruction at 0x%p referenced memory at 0x%p. The memory could not be %s."},
    {0xC0000006, "STATUS_IN_PAGE_ERROR",
     "The instruction at 0x%p referenced memory at 0x%p. The required data was not placed into "
     "memory because of an I/O error status of 0x%x."},
    {0xC0000008, "STATUS_INVALID_HANDLE", "An invalid HANDLE was specified."},
    {0xC000000D, "STATUS_INVALID_PARAMETER",
     "An invalid parameter was passed to a service or function."},
    {0xC000000E, "STATUS_NO_SUCH_DEVICE", "A device which does not exist was specified."},
    {0xC000000F, "STATUS_NO_SUCH_FILE", "{File Not Found}  The file %hs does not exist."},
    {0xC0000010, "STATUS_INVALID_DEVICE_REQUEST",
     "The specified request is not a valid operation for the target device."},
    {0xC0000011, "STATUS_END_OF_FILE",
     "The end-of-file marker has been reached. There is no valid data in the file beyond this "
     "marker."},
    {0xC0000017, "STATUS_NO_MEMORY",
     "{Not Enough Quota}  Not enough virtual memory or paging file quota is available to "
     "complete the specified operation."},
    {0xC0000018, "STATUS_CONFLICTING_ADDRESSES",
     "{Conflicting Address Range}  The specified address range conflicts with the address "
     "space."},
    {0xC000001D, "STATUS_ILLEGAL_INSTRUCTION",
     "{EXCEPTION}  Illegal Instruction  An attempt was made to execute an illegal "
     "instruction."},
    {0xC0000022, "STATUS_ACCESS_DENIED",
     "{Access Denied}  A process has requested access to an object, but has not been granted "
     "those access rights."},
    {0xC0000023, "STATUS_BUFFER_TOO_SMALL",
     "{Buffer Too Small}  The buffer is too small to contain the entry. No information has "
     "been written to the buffer."},
    {0xC0000024, "STATUS_OBJECT_TYPE_MISMATCH",
     "{Wrong Type}  There is a mismatch between the type of object required by the requested "
     "operation and the type of object that is specified in the request."},
    {0xC0000025, "STATUS_NONCONTINUABLE_EXCEPTION",
     "{EXCEPTION}  Cannot Continue  Windows cannot continue from this exception."},
    {0xC0000026, "STATUS_INVALID_DISPOSITION",
     "An invalid exception disposition was returned by an exception handler."},
    {0xC0000033, "STATUS_OBJECT_NAME_INVALID", "Object Name invalid."},
    {0xC0000034, "STATUS_OBJECT_NAME_NOT_FOUND", "Object Name not found."},
    {0xC0000035, "STATUS_OBJECT_NAME_COLLISION", "Object Name already exists."},
    {0xC000003A, "STATUS_OBJECT_PATH_NOT_FOUND", "{Path Not Found}  The path %hs does not exist."},
    {0xC0000043, "STATUS_SHARING_VIOLATION",
     "A file cannot be opened because the share access flags are incompatible."},
    {0xC0000045, "STATUS_INVALID_PAGE_PROTECTION", "The specified page protection was not valid."},
    {0xC0000054, "STATUS_FILE_LOCK_CONFLICT",
     "A requested read/write cannot be granted due to a conflicting file lock."},
    {0xC000008C, "STATUS_ARRAY_BOUNDS_EXCEEDED", "{EXCEPTION}  Array bounds exceeded."},
    {0xC000008D, "STATUS_FLOAT_DENORMAL_OPERAND", "{EXCEPTION}  Floating-point denormal operand."},
    {0xC000008E, "STATUS_FLOAT_DIVIDE_BY_ZERO", "{EXCEPTION}  Floating-point division by zero."},
    {0xC000008F, "STATUS_FLOAT_INEXACT_RESULT", "{EXCEPTION}  Floating-point inexact result."},
    {0xC0000090, "STATUS_FLOAT_INVALID_OPERATION",
     "{EXCEPTION}  Floating-point invalid operation."},
    {0xC0000091, "STATUS_FLOAT_OVERFLOW", "{EXCEPTION}  Floating-point overflow."},
    {0xC0000092, "STATUS_FLOAT_STACK_CHECK", "{EXCEPTION}  Floating-point stack check."},
    {0xC0000093, "STATUS_FLOAT_UNDERFLOW", "{EXCEPTION}  Floating-point underflow."},
    {0xC0000094, "STATUS_INTEGER_DIVIDE_BY_ZERO", "{EXCEPTION}  Integer division by zero."},
    {0xC0000095, "STATUS_INTEGER_OVERFLOW", "{EXCEPTION}  Integer overflow."},
    {0xC0000096, "STATUS_PRIVILEGED_INSTRUCTION", "{EXCEPTION}  Privileged instruction."},
    {0xC000009A, "STATUS_INSUFFICIENT_RESOURCES",
     "Insufficient system resources exist to complete the API."},
    {0xC00000B5, "STATUS_IO_TIMEOUT",
     "{Device Timeout}  The specified I/O operation on %hs was not completed before the "
     "time-out period expired."},
    {0xC00000BB, "STATUS_NOT_SUPPORTED", "The request is not supported."},
    {0xC00000E5, "STATUS_INTERNAL_ERROR", "An internal error occurred."},
    {0xC00000FD, "STATUS_STACK_OVERFLOW", "A new guard page for the stack cannot be created."},
    {0xC0000102, "STATUS_FILE_CORRUPT_ERROR",
     "{Corrupt File}  The file or directory %hs is corrupt and unreadable.  Please run the "
     "Chkdsk utility."},
    {0xC0000120, "STATUS_CANCELLED", "The I/O request was canceled."},
    {0xC0000135, "STATUS_DLL_NOT_FOUND",
     "{Unable To Locate Component}  This application has failed to start because %hs was not "
     "found. Re-installing the application may fix this problem."},
    {0xC0000139, "STATUS_ENTRYPOINT_NOT_FOUND",
     "{Entry Point Not Found}  The procedure entry point %hs could not be located in the "
     "dynamic link library %hs."},
    {0xC0000142, "STATUS_DLL_INIT_FAILED",
     "{DLL Initialization Failed}  Initialization of the dynamic link library %hs failed. The "
     "process is terminating abnormally."},
    {0xC0000185, "STATUS_IO_DEVICE_ERROR", "The I/O device reported an I/O error."},
    {0xC000021A, "STATUS_SYSTEM_PROCESS_TERMINATED",
     "{Fatal System Error}  The %hs system process terminated unexpectedly with a status of "
     "0x%08x (0x%08x 0x%08x).  The system has been shut down."},
    {0xC0000221, "STATUS_IMAGE_CHECKSUM_MISMATCH",
     "{Bad Image Checksum}  The image %hs is possibly corrupt. The header checksum does not "
     "match the computed checksum."},
    {0xC0000374, "STATUS_HEAP_CORRUPTION", "A heap has been corrupted."},
    {0xC0000409, "STATUS_STACK_BUFFER_OVERRUN",
     "The system detected an overrun of a stack-based buffer in this application. This "
     "overrun could potentially allow a malicious user to gain control of this application."},
};

constexpr ErrorCodeEntry kWin32[] = {
    {0, "ERROR_SUCCESS", "The operation completed successfully."},
    {1, "ERROR_INVALID_FUNCTION", "Incorrect function."},
    {2, "ERROR_FILE_NOT_FOUND", "The system cannot find the file specified."},
    {3, "ERROR_PATH_NOT_FOUND", "The system cannot find the path specified."},
    {4, "ERROR_TOO_MANY_OPEN_FILES", "The system cannot open the file."},
    {5, "ERROR_ACCESS_DENIED", "Access is denied."},
    {6, "ERROR_INVALID_HANDLE", "The handle is invalid."},
    {8, "ERROR_NOT_ENOUGH_MEMORY",
     "Not enough memory resources are available to process this command."},
    {13, "ERROR_INVALID_DATA", "The data is invalid."},
    {14, "ERROR_OUTOFMEMORY",
     "Not enough memory resources are available to complete this operation."},
    {15, "ERROR_INVALID_DRIVE", "The system cannot find the drive specified."},
    {18, "ERROR_NO_MORE_FILES", "There are no more files."},
    {19, "ERROR_WRITE_PROTECT", "The media is write protected."},
    {21, "ERROR_NOT_READY", "The device is not ready."},
    {31, "ERROR_GEN_FAILURE", "A device attached to the system is not functioning."},
    {32, "ERROR_SHARING_VIOLATION",
     "The process cannot access the file because it is being used by another process."},
    {33, "ERROR_LOCK_VIOLATION",
     "The process cannot access the file because another process has locked a portion of the "
     "file."},
    {38, "ERROR_HANDLE_EOF", "Reached the end of the file."},
    {50, "ERROR_NOT_SUPPORTED", "The request is not supported."},
    {53, "ERROR_BAD_NETPATH", "The network path was not found."},
    {64, "ERROR_NETNAME_DELETED", "The specified network name is no longer available."},
    {80, "ERROR_FILE_EXISTS", "The file exists."},
    {87, "ERROR_INVALID_PARAMETER", "The parameter is incorrect."},
    {109, "ERROR_BROKEN_PIPE", "The pipe has been ended."},
    {112, "ERROR_DISK_FULL", "There is not enough space on the disk."},
    {120, "ERROR_CALL_NOT_IMPLEMENTED", "This function is not supported on this system."},
    {122, "ERROR_INSUFFICIENT_BUFFER", "The data area passed to a system call is too small."},
    {123, "ERROR_INVALID_NAME",
     "The filename, directory name, or volume label syntax is incorrect."},
    {126, "ERROR_MOD_NOT_FOUND", "The specified module could not be found."},
    {127, "ERROR_PROC_NOT_FOUND", "The specified procedure could not be found."},
    {183, "ERROR_ALREADY_EXISTS", "Cannot create a file when that file already exists."},
    {193, "ERROR_BAD_EXE_FORMAT", "%1 is not a valid Win32 application."},
    {203, "ERROR_ENVVAR_NOT_FOUND",
     "The system could not find the environment option that was entered."},
    {206, "ERROR_FILENAME_EXCED_RANGE", "The filename or extension is too long."},
    {231, "ERROR_PIPE_BUSY", "All pipe instances are busy."},
    {232, "ERROR_NO_DATA", "The pipe is being closed."},
    {234, "ERROR_MORE_DATA", "More data is available."},
    {258, "WAIT_TIMEOUT", "The wait operation timed out."},
    {259, "ERROR_NO_MORE_ITEMS", "No more data is available."},
    {267, "ERROR_DIRECTORY", "The directory name is invalid."},
    {487, "ERROR_INVALID_ADDRESS", "Attempt to access invalid address."},
    {995, "ERROR_OPERATION_ABORTED",
     "The I/O operation has been aborted because of either a thread exit or an application "
     "request."},
    {996, "ERROR_IO_INCOMPLETE", "Overlapped I/O event is not in a signaled state."},
    {997, "ERROR_IO_PENDING", "Overlapped I/O operation is in progress."},
    {998, "ERROR_NOACCESS", "Invalid access to memory location."},
    {1008, "ERROR_NO_TOKEN", "An attempt was made to reference a token that does not exist."},
    {1053, "ERROR_SERVICE_REQUEST_TIMEOUT",
     "The service did not respond to the start or control request in a timely fashion."},
    {1056, "ERROR_SERVICE_ALREADY_RUNNING", "An instance of the service is already running."},
    {1060, "ERROR_SERVICE_DOES_NOT_EXIST",
     "The specified service does not exist as an installed service."},
    {1062, "ERROR_SERVICE_NOT_ACTIVE", "The service has not been started."},
    {1114, "ERROR_DLL_INIT_FAILED", "A dynamic link library (DLL) initialization routine failed."},
    {1168, "ERROR_NOT_FOUND", "Element not found."},
    {1223, "ERROR_CANCELLED", "The operation was canceled by the user."},
    {1314, "ERROR_PRIVILEGE_NOT_HELD", "A required privilege is not held by the client."},
    {1326, "ERROR_LOGON_FAILURE", "The user name or password is incorrect."},
    {1392, "ERROR_FILE_CORRUPT", "The file or directory is corrupted and unreadable."},
    {1450, "ERROR_NO_SYSTEM_RESOURCES",
     "Insufficient system resources exist to complete the requested service."},
    {1460, "ERROR_TIMEOUT", "This operation returned because the timeout period expired."},
    {1722, "RPC_S_SERVER_UNAVAILABLE", "The RPC server is unavailable."},
    {10054, "WSAECONNRESET", "An existing connection was forcibly closed by the remote host."},
    {10060, "WSAETIMEDOUT",
     "A connection attempt failed because the connected party did not properly respond after a "
     "period of time, or established connection failed because connected host has failed to "
     "respond."},
    {10061, "WSAECONNREFUSED",
     "No connection could be made because the target machine actively refused it."},
};

constexpr ErrorCodeEntry kHResult[] = {
    {0x80004001, "E_NOTIMPL", "Not implemented"},
    {0x80004002, "E_NOINTERFACE", "No such interface supported"},
    {0x80004003, "E_POINTER", "Invalid pointer"},
    {0x80004004, "E_ABORT", "Operation aborted"},
    {0x80004005, "E_FAIL", "Unspecified error"},
    {0x8000FFFF, "E_UNEXPECTED", "Catastrophic failure"},
    {0x80010106, "RPC_E_CHANGED_MODE", "Cannot change thread mode after it is set."},
    {0x80040154, "REGDB_E_CLASSNOTREG", "Class not registered"},
    {0x800401F0, "CO_E_NOTINITIALIZED", "CoInitialize has not been called."},
};

// HRESULT names of some wrapped Win32 errors (0x8007xxxx).
struct WrappedName {
    uint32_t code;
    std::string_view name;
};
constexpr WrappedName kWrappedNames[] = {
    {0x80070005, "E_ACCESSDENIED"},
    {0x80070006, "E_HANDLE"},
    {0x8007000E, "E_OUTOFMEMORY"},
    {0x80070057, "E_INVALIDARG"},
};

std::optional<ErrorCodeEntry> find_in(std::span<const ErrorCodeEntry> table, uint32_t code) {
    auto it = std::lower_bound(table.begin(), table.end(), code,
                               [](const ErrorCodeEntry& e, uint32_t c) { return e.code < c; });
    if (it == table.end() || it->code != code) {
        return std::nullopt;
    }
    return *it;
}

ErrorLookup known(ErrorKind kind, uint32_t value, std::string_view name, std::string_view text) {
    ErrorLookup r;
    r.kind = kind;
    r.value = value;
    r.known = true;
    r.name = std::string(name);
    r.text = std::string(text);
    return r;
}

} // namespace

std::span<const ErrorCodeEntry> ntstatus_codes() {
    return kNtStatus;
}
std::span<const ErrorCodeEntry> win32_codes() {
    return kWin32;
}
std::span<const ErrorCodeEntry> hresult_codes() {
    return kHResult;
}

std::optional<ErrorCodeEntry> find_ntstatus(uint32_t code) {
    return find_in(kNtStatus, code);
}
std::optional<ErrorCodeEntry> find_win32(uint32_t code) {
    return find_in(kWin32, code);
}
std::optional<ErrorCodeEntry> find_hresult(uint32_t code) {
    return find_in(kHResult, code);
}

ErrorLookup lookup_error(uint32_t value, bool as_ntstatus) {
    ErrorLookup r;
    r.value = value;
    if (as_ntstatus) {
        r.kind = ErrorKind::NtStatus;
        if (auto e = find_ntstatus(value)) {
            return known(ErrorKind::NtStatus, value, e->name, e->text);
        }
        return r;
    }
    if (value <= 0xFFFF) {
        r.kind = ErrorKind::Win32;
        if (auto e = find_win32(value)) {
            return known(ErrorKind::Win32, value, e->name, e->text);
        }
        return r;
    }
    if ((value & 0xFFFF0000u) == 0x80070000u) {
        r.kind = ErrorKind::HResult;
        if (auto e = find_win32(value & 0xFFFF)) {
            std::string_view name;
            for (const auto& w : kWrappedNames) {
                if (w.code == value) {
                    name = w.name;
                }
            }
            if (name.empty()) {
                auto wrapped = known(ErrorKind::HResult, value, "", e->text);
                wrapped.name = "HRESULT_FROM_WIN32(" + std::string(e->name) + ")";
                return wrapped;
            }
            return known(ErrorKind::HResult, value, name, e->text);
        }
        return r;
    }
    if (auto e = find_hresult(value)) {
        return known(ErrorKind::HResult, value, e->name, e->text);
    }
    if (auto e = find_ntstatus(value)) {
        return known(ErrorKind::NtStatus, value, e->name, e->text);
    }
    if ((value & 0x10000000u) != 0) {
        if (auto e = find_ntstatus(value & ~0x10000000u)) {
            auto wrapped = known(ErrorKind::HResult, value, "", e->text);
            wrapped.name = "HRESULT_FROM_NT(" + std::string(e->name) + ")";
            return wrapped;
        }
    }
    switch (value >> 30) {
    case 3:
        r.kind = ErrorKind::NtStatus;
        break;
    case 2:
        r.kind = ErrorKind::HResult;
        break;
    default:
        r.kind = ErrorKind::Win32;
        break;
    }
    return r;
}

} // namespace kdcart::engine
