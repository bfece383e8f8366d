// !error's tables on the codes the seeds show (seed-digest §3.8): c000000d through
// `!error 0n-1073741811` (001:1933-1935), c0000034 (000:477), c0000142 (000:1306), c0000094
// (001:1537), c0000005 (003:2486), c0000017 (000:709), 259 (004:24).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/ErrorCodes.h"

#include <doctest/doctest.h>
#include <string>

using namespace kdcart::engine;

TEST_CASE("0n-1073741811 is c000000d, an NTSTATUS with the seed's text") {
    const auto v = static_cast<uint32_t>(static_cast<int64_t>(-1073741811));
    CHECK(v == 0xc000000du);
    CHECK(v == 3221225485u);
    auto e = lookup_error(v);
    CHECK(e.known);
    CHECK(e.kind == ErrorKind::NtStatus);
    CHECK(e.name == "STATUS_INVALID_PARAMETER");
    CHECK(e.text == "An invalid parameter was passed to a service or function.");
}

TEST_CASE("the seeds' other codes") {
    CHECK(lookup_error(0xc0000034).name == "STATUS_OBJECT_NAME_NOT_FOUND");
    auto dll = lookup_error(0xc0000142);
    CHECK(dll.name == "STATUS_DLL_INIT_FAILED");
    // 000:1306, as !analyze prints it (two blanks where the message has a line break).
    CHECK(dll.text == "{DLL Initialization Failed}  Initialization of the dynamic link library "
                      "%hs failed. The process is terminating abnormally.");
    CHECK(lookup_error(0xc0000094).name == "STATUS_INTEGER_DIVIDE_BY_ZERO");
    CHECK(lookup_error(0xc0000005).name == "STATUS_ACCESS_VIOLATION");
    CHECK(lookup_error(0xc0000017).name == "STATUS_NO_MEMORY");
    // 259 = 0x103: a small value is a Win32 error for !error; as an NTSTATUS (flag 1) it is
    // STATUS_PENDING, what 004:24's ReturnedStatus means.
    CHECK(lookup_error(259).kind == ErrorKind::Win32);
    CHECK(lookup_error(259).name == "ERROR_NO_MORE_ITEMS");
    CHECK(lookup_error(259, true).name == "STATUS_PENDING");
    CHECK(lookup_error(259, true).kind == ErrorKind::NtStatus);
}

TEST_CASE("Win32, HRESULT and unknown values") {
    CHECK(lookup_error(5).text == "Access is denied.");
    CHECK(lookup_error(0x80070005).kind == ErrorKind::HResult);
    CHECK(lookup_error(0x80070005).name == "E_ACCESSDENIED");
    CHECK(lookup_error(0x80070005).text == "Access is denied.");
    CHECK(lookup_error(0x80070002).name == "HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)");
    CHECK(lookup_error(0x80004005).name == "E_FAIL");
    CHECK(lookup_error(0xD0000022).name == "HRESULT_FROM_NT(STATUS_ACCESS_DENIED)");
    auto unknown = lookup_error(0x66897700); // 000's EXCEPTION_CODE: "(Win32) ... <Unable..."
    CHECK_FALSE(unknown.known);
    CHECK(unknown.kind == ErrorKind::Win32);
    CHECK(lookup_error(0xC0FFEE00).kind == ErrorKind::NtStatus);
    CHECK_FALSE(lookup_error(0xC0FFEE00).known);
}

TEST_CASE("tables are sorted and without duplicates") {
    for (auto table : {ntstatus_codes(), win32_codes(), hresult_codes()}) {
        for (size_t i = 1; i < table.size(); ++i) {
            CHECK(table[i - 1].code < table[i].code);
        }
        for (const auto& e : table) {
            CHECK_FALSE(e.name.empty());
            CHECK_FALSE(e.text.empty());
        }
    }
}
