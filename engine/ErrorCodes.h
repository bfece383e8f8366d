#pragma once
// Status and error codes by value: NTSTATUS, Win32 and HRESULT names and message texts (the
// common codes; the texts as FormatMessage gives them, line breaks shown as two blanks, which is
// how WinDbg's !error prints them: 000:1306, 001:1935). Data only.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kdcart::engine {

enum class ErrorKind { NtStatus, Win32, HResult };

struct ErrorCodeEntry {
    uint32_t code = 0;
    std::string_view name; // "STATUS_INVALID_PARAMETER", "ERROR_ACCESS_DENIED", "E_FAIL"
    std::string_view text; // the message
};

std::span<const ErrorCodeEntry> ntstatus_codes();
std::span<const ErrorCodeEntry> win32_codes();
std::span<const ErrorCodeEntry> hresult_codes(); // HRESULTs of their own (not 0x8007xxxx)

std::optional<ErrorCodeEntry> find_ntstatus(uint32_t code);
std::optional<ErrorCodeEntry> find_win32(uint32_t code);
std::optional<ErrorCodeEntry> find_hresult(uint32_t code);

struct ErrorLookup {
    ErrorKind kind = ErrorKind::Win32;
    uint32_t value = 0;
    bool known = false;
    std::string name; // empty when unknown
    std::string text; // empty when unknown
};

// What a value is, the way !error decides (no flag):
//  - a value up to 0xFFFF is a Win32 error (0x103 = ERROR_NO_MORE_ITEMS, not STATUS_PENDING);
//  - 0x8007xxxx is an HRESULT wrapping Win32 error xxxx (its text), other HRESULTs by table;
//  - an NTSTATUS by table; 0xD.../0x9... (FACILITY_NT_BIT) is an HRESULT wrapping one;
//  - unknown values are labelled by their top bits: 11 NTSTATUS, 10 HRESULT, else Win32.
// `as_ntstatus` (!error VALUE 1) looks the value up as an NTSTATUS only.
ErrorLookup lookup_error(uint32_t value, bool as_ntstatus = false);

} // namespace kdcart::engine
