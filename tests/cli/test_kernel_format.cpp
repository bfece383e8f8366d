// Golden text for the kernel-inspection commands, against the seeds' listings (converted to
// x64 widths where the seed is a 32-bit target).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/KernelFormat.h"

#include <doctest/doctest.h>

using namespace kdcart;
using namespace kdcart::cli;

namespace {

std::string help(uint32_t code, std::array<uint64_t, 4> p) {
    return format_bugcheck_help(code, p, engine::describe_bugcheck(code, p));
}

} // namespace

TEST_CASE("!analyze -show ef: seed 000:110-116") {
    CHECK(help(0xEF, {0xffffd18c66891580ull, 0, 0, 0}) ==
          "CRITICAL_PROCESS_DIED (ef)\n"
          "        A critical system process died\n"
          "Arguments:\n"
          "Arg1: ffffd18c66891580, Process object or thread object\n"
          "Arg2: 0000000000000000, If this is 0, a process died. If this is 1, a thread died.\n"
          "Arg3: 0000000000000000\n"
          "Arg4: 0000000000000000\n");
}

TEST_CASE("!analyze -show c2 and 19 2 1 1 1: seed 003:71-91 (x64 widths)") {
    CHECK(help(0xC2, {0, 0, 0, 0}) ==
          "BAD_POOL_CALLER (c2)\n"
          "The current thread is making a bad pool request.  Typically this is at a bad IRQL "
          "level or double freeing the same allocation, etc.\n"
          "Arguments:\n"
          "Arg1: 0000000000000000, The caller is requesting a zero byte pool allocation.\n"
          "Arg2: 0000000000000000, zero.\n"
          "Arg3: 0000000000000000, the pool type being allocated.\n"
          "Arg4: 0000000000000000, the pool tag being used.\n");
    CHECK(help(0x19, {2, 1, 1, 1}) ==
          "BAD_POOL_HEADER (19)\n"
          "The pool is already corrupt at the time of the current request.\n"
          "This may or may not be due to the caller.\n"
          "The internal pool links must be walked to figure out a possible cause of\n"
          "the problem, and then special pool applied to the suspect tags or the driver\n"
          "verifier to a suspect driver.\n"
          "Arguments:\n"
          "Arg1: 0000000000000002, the verifier pool pattern check failed.  The owner has "
          "likely corrupted the pool block\n"
          "Arg2: 0000000000000001, the pool entry being checked.\n"
          "Arg3: 0000000000000001, size of the block.\n"
          "Arg4: 0000000000000001, 0.\n");
}

TEST_CASE("an unknown code: seed 000:1286-1292") {
    CHECK(help(0xc0000142, {0xffffbc892b3ceaa0ull, 0xffffbc892a8d0f40ull, 0, 0}) ==
          "Unknown bugcheck code (c0000142)\n"
          "Unknown bugcheck description\n"
          "Arguments:\n"
          "Arg1: ffffbc892b3ceaa0\n"
          "Arg2: ffffbc892a8d0f40\n"
          "Arg3: 0000000000000000\n"
          "Arg4: 0000000000000000\n");
}

TEST_CASE("!error 0n-1073741811: seed 001:1935") {
    CHECK(format_error_code(engine::lookup_error(0xc000000d)) ==
          "Error code: (NTSTATUS) 0xc000000d (3221225485) - An invalid parameter was passed to "
          "a service or function.\n");
    CHECK(format_error_code(engine::lookup_error(0x66897700)) ==
          "Error code: (Win32) 0x66897700 (1720284928) - <Unable to get error code text>\n");
    CHECK(format_error_code(engine::lookup_error(5)) ==
          "Error code: (Win32) 0x5 (5) - Access is denied.\n");
}

TEST_CASE("!pte fffff900`c05e0000: seed 001:1397-1405 (the seed's NBSPs and lost blank fixed)") {
    // The seed's entries, at the physical places a walk would have read them.
    engine::PteWalk w;
    w.va = 0xfffff900c05e0000ull;
    const uint64_t raw[4] = {0x000000076245C863ull, 0x0000000762569863ull, 0x000000045FA17863ull,
                             0xF8A000F4F9780400ull};
    for (int i = 0; i < 4; ++i) {
        engine::PteWalkEntry e;
        e.level = 4 - i;
        e.raw = raw[i];
        e.decoded = engine::decode_pte(raw[i], e.level);
        w.entries.push_back(e);
    }
    auto a = engine::paging_structure_addresses(w.va, 0xFFFFF68000000000ull);
    CHECK(format_pte(a, w) ==
          "                                           VA fffff900c05e0000\n"
          "PXE at FFFFF6FB7DBEDF90    PPE at FFFFF6FB7DBF2018    PDE at FFFFF6FB7E403010    "
          "PTE at FFFFF6FC80602F00\n"
          "contains 000000076245C863  contains 0000000762569863  contains 000000045FA17863  "
          "contains F8A000F4F9780400\n"
          "pfn 76245c    ---DA--KWEV  pfn 762569    ---DA--KWEV  pfn 45fa17    ---DA--KWEV  "
          "not valid\n"
          "                                                                                 "
          "Proto: FFFFF8A000F4F978\n");
}

TEST_CASE("!pte: a large page and a not-valid PDE") {
    engine::PteWalk w;
    w.va = 0xfffff80000812345ull;
    const uint64_t raw[3] = {0x0000000000002063ull, 0x0000000000003063ull, 0x0000000000a000e3ull};
    for (int i = 0; i < 3; ++i) {
        engine::PteWalkEntry e;
        e.level = 4 - i;
        e.raw = raw[i];
        e.decoded = engine::decode_pte(raw[i], e.level);
        w.entries.push_back(e);
    }
    w.mapped = true;
    w.physical = 0xa12345;
    w.page_pfn = 0xa12;
    auto a = engine::paging_structure_addresses(w.va, 0xFFFFF68000000000ull);
    const std::string text = format_pte(a, w);
    CHECK(text.find("\npfn 2         ---DA--KWEV  pfn 3         ---DA--KWEV  pfn a00       "
                    "--LDA--KWEV  LARGE PAGE pfn a12\n") != std::string::npos);
    w.entries.pop_back();
    engine::PteWalkEntry e;
    e.level = 2;
    e.raw = 0x00003B7E00000080ull;
    e.decoded = engine::decode_pte(e.raw, 2);
    w.entries.push_back(e);
    w.mapped = false;
    const std::string text2 = format_pte(a, w);
    CHECK(text2.find("---DA--KWEV  not valid\n" + std::string(54, ' ') + "PageFile: 0\n" +
                     std::string(54, ' ') + "Offset: 3b7e\n" + std::string(54, ' ') +
                     "Protect: 4 - ReadWrite\n") != std::string::npos);
}

TEST_CASE("!vtop: mapped and failing") {
    engine::PteWalk w;
    w.va = 0xfffff78000000000ull;
    w.dtb = 0x1aa000;
    const uint64_t raw[4] = {0x0000000000d1f063ull, 0x0000000000d20063ull, 0x0000000000d21063ull,
                             0x8000000000fa9163ull};
    const uint64_t where[4] = {0x1aaf78, 0xd1f000, 0xd20000, 0xd21000};
    for (int i = 0; i < 4; ++i) {
        engine::PteWalkEntry e;
        e.level = 4 - i;
        e.raw = raw[i];
        e.physical = where[i];
        e.decoded = engine::decode_pte(raw[i], e.level);
        w.entries.push_back(e);
    }
    w.mapped = true;
    w.physical = 0xfa9000;
    CHECK(format_vtop(w) == "Amd64VtoP: Virt fffff78000000000, pagedir 00000000001aa000\n"
                            "Amd64VtoP: PML4E 00000000001aaf78\n"
                            "Amd64VtoP: PDPE 0000000000d1f000\n"
                            "Amd64VtoP: PDE 0000000000d20000\n"
                            "Amd64VtoP: PTE 0000000000d21000\n"
                            "Amd64VtoP: Mapped phys 0000000000fa9000\n"
                            "Virtual address fffff78000000000 translates to physical address "
                            "fa9000.\n");
    w.entries.resize(1);
    w.entries[0].raw = 0;
    w.entries[0].decoded = engine::decode_pte(0, 4);
    w.mapped = false;
    CHECK(format_vtop(w) == "Amd64VtoP: Virt fffff78000000000, pagedir 00000000001aa000\n"
                            "Amd64VtoP: PML4E 00000000001aaf78\n"
                            "Amd64VtoP: zero PML4E\n"
                            "Virtual address fffff78000000000 translation fails, error "
                            "0xD0000147.\n");
}

TEST_CASE("!analyze -v's Debugging Details without types: seed 000:117-135's field layout") {
    CHECK(format_analyze_details(0xEF, {0xffffd18c66891580ull, 0, 0, 0}) ==
          "Debugging Details:\n------------------\n\n\n"
          "BUGCHECK_CODE:  ef\n\n"
          "BUGCHECK_P1: ffffd18c66891580\n\n"
          "BUGCHECK_P2: 0\n\n"
          "BUGCHECK_P3: 0\n\n"
          "BUGCHECK_P4: 0\n\n"
          "BUGCHECK_STR:  0xEF\n\n");
}
