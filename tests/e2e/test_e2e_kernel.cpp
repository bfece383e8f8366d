// End to end: the kernel-inspection commands of kdcart against kdsim, each checked against what
// kdsim's kernel holds (hw/SimObjects.cpp: System, smss.exe 0x154, csrss.exe 0x1c8,
// services.exe 0x280, svchost.exe 0x338; the layouts of hw/images/sim_abi.h; the PML4 self-map
// at index 0x1ED).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "hw/images/sim_abi.h"
#include "tests/e2e/Process.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>

using namespace std::chrono_literals;
using e2e::cmd;

namespace {
const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

e2e::Process start_sim(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return e2e::Process(argv);
}

std::string hex(uint64_t v, const char* format = "%" PRIx64) {
    char buf[32];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

// Where kdsim puts a user process's PEB (SimMachine::create_process).
uint64_t peb_of(uint64_t pid) {
    return 0x000000A000000000ull + pid * 0x100000 + 0x4000;
}

// The self-map address of the entry that maps `va` (PTE base of index 0x1ED).
uint64_t pte_of(uint64_t va) {
    return ((va >> 9) & 0x7FFFFFFFF8ull) + 0xFFFFF68000000000ull;
}

} // namespace

TEST_CASE("kernel: !process 0 0 from KDDEBUGGER_DATA64, honestly labelled, and its filters") {
    auto p = start_sim({"-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);

    cmd(p, "!process 0 0");
    EXPECT_OUT(p, "NT symbols are incorrect, please fix symbols\n", 60s);
    EXPECT_OUT(p, "ActiveProcessLinks \\+0x" + hex(SIM_EPROCESS_ACTIVE_PROCESS_LINKS), 10s);
    EXPECT_OUT(p, "UniqueProcessId \\+0x" + hex(SIM_EPROCESS_UNIQUE_PROCESS_ID), 10s);
    EXPECT_OUT(p, "ImageFileName \\+0x" + hex(SIM_EPROCESS_IMAGE_FILE_NAME), 10s);
    EXPECT_OUT(p, R"(\*\*\*\* NT ACTIVE PROCESS DUMP \*\*\*\*\n)", 10s);
    EXPECT_OUT(p,
               R"(PROCESS [0-9a-f]{16}\n    SessionId: <unknown>  Cid: 0004    Peb: 00000000  )"
               R"(ParentCid: 0000\n    DirBase: [0-9a-f]{8}  ObjectTable: <unknown>  )"
               R"(HandleCount: <unknown>\n    Image: System\n\n)",
               30s);
    struct Expected {
        uint64_t pid, parent;
        const char* image;
    };
    for (const Expected& e :
         {Expected{0x154, 0x4, "smss.exe"}, Expected{0x1c8, 0x1bc, "csrss.exe"},
          Expected{0x280, 0x218, "services.exe"}, Expected{0x338, 0x280, "svchost.exe"}}) {
        INFO(e.image);
        EXPECT_OUT(
            p,
            "PROCESS [0-9a-f]{16}\n    SessionId: <unknown>  Cid: " + hex(e.pid, "%04" PRIx64) +
                "    Peb: " + hex(peb_of(e.pid)) + "  ParentCid: " + hex(e.parent, "%04" PRIx64) +
                "\n    DirBase: [0-9a-f]{8}  .*\n    Image: " + e.image + "\n",
            30s);
    }
    EXPECT_OUT(p, kPrompt, 10s);
    // Idle is not in the active process list.
    CHECK(p.transcript().find("Image: Idle") == std::string::npos);

    cmd(p, "!process 338 0");
    EXPECT_OUT(p, "Searching for Process with Cid == 338\n", 30s);
    EXPECT_OUT(p, "Image: svchost.exe\n", 30s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "!process 0 0 csrss.exe");
    EXPECT_OUT(
        p, R"(DUMP \*\*\*\*\nPROCESS [0-9a-f]{16}\n.*Cid: 01c8.*\n.*\n    Image: csrss.exe\n\n)",
        30s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "!process 999 0");
    EXPECT_OUT(p, "Unable to get process with Cid 999\n", 30s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "!process fffff80000600000 0");
    EXPECT_OUT(p, "is not a process in the active process list", 30s);
    EXPECT_OUT(p, kPrompt, 10s);

    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("kernel: !process 0 0 through ntoskrnl.pdb's types (kdsim's offsets, by field name)") {
    // kdsim's EPROCESS differs from every real build: only the PDB's _EPROCESS reads it right.
    auto p = start_sim({"-b", "-y", kBin + "/../hw/images"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    const size_t mark = p.mark();
    cmd(p, "!process 0 0");
    EXPECT_OUT(p,
               R"(\*\*\*\* NT ACTIVE PROCESS DUMP \*\*\*\*\nPROCESS [0-9a-f]{16}\n)"
               R"(    SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000\n)"
               R"(    DirBase: [0-9a-f]{8}  ObjectTable: [0-9a-f]{16}  HandleCount: 320\.\n)"
               R"(    Image: System\n\n)",
               60s);
    EXPECT_OUT(p, R"(    SessionId: none  Cid: 0154 .*\n.*HandleCount: 53\.\n    Image: smss.exe)",
               30s);
    EXPECT_OUT(p,
               R"(    SessionId: 0  Cid: 01c8    Peb: a01c804000  ParentCid: 01bc\n.*)"
               R"(HandleCount: 412\.\n    Image: csrss.exe)",
               30s);
    EXPECT_OUT(p, R"(HandleCount: 657\.\n    Image: svchost.exe\n)", 30s);
    EXPECT_OUT(p, kPrompt, 10s);
    CHECK(p.since(mark).find("NT symbols are incorrect") == std::string::npos);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("kernel: !pte, !vtop, !error, !analyze -show, !irql, ~, .lastevent, !pcr, !prcb") {
    auto p = start_sim({"-b", "--sim-cpus", "2"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(\d: kd> )", 90s);

    // ntoskrnl's headers: a global read-only page; the self-map addresses of the legacy base.
    const uint64_t nt = 0xfffff80000600000ull;
    cmd(p, "!pte " + hex(nt));
    EXPECT_OUT(p, std::string(43, ' ') + "VA " + hex(nt, "%016" PRIx64) + "\n", 60s);
    const uint64_t pte = pte_of(nt), pde = pte_of(pte), ppe = pte_of(pde), pxe = pte_of(ppe);
    EXPECT_OUT(p,
               "PXE at " + hex(pxe, "%016" PRIX64) + "    PPE at " + hex(ppe, "%016" PRIX64) +
                   "    PDE at " + hex(pde, "%016" PRIX64) + "    PTE at " +
                   hex(pte, "%016" PRIX64) + "\n",
               10s);
    EXPECT_OUT(p,
               R"(contains [0-9A-F]{16}  contains [0-9A-F]{16}  contains [0-9A-F]{16}  )"
               R"(contains [0-9A-F]{16}\n)",
               10s);
    EXPECT_OUT(p,
               R"(pfn [0-9a-f]+ +----A--KWEV  pfn [0-9a-f]+ +----A--KWEV  pfn [0-9a-f]+ +)"
               R"(----A--KWEV  pfn [0-9a-f]+ +-G-DA--KR-V\n)",
               10s);
    cmd(p, "!pte 0");
    EXPECT_OUT(p, "contains 0000000000000000\nnot valid\n", 30s);
    cmd(p, "!vtop 0 " + hex(nt));
    EXPECT_OUT(p, "Amd64VtoP: Virt " + hex(nt, "%016" PRIx64) + ", pagedir ", 30s);
    EXPECT_OUT(p, "Virtual address " + hex(nt) + " translates to physical address [0-9a-f]+\\.\n",
               30s);
    cmd(p, "!vtop 0 0");
    EXPECT_OUT(p, "Amd64VtoP: zero PML4E\nVirtual address 0 translation fails, error 0xD0000147.",
               30s);

    cmd(p, "!error 0n-1073741811");
    EXPECT_OUT(p,
               R"(Error code: \(NTSTATUS\) 0xc000000d \(3221225485\) - An invalid parameter was )"
               R"(passed to a service or function\.\n)",
               30s);
    cmd(p, "!analyze -show c2");
    EXPECT_OUT(p,
               R"(BAD_POOL_CALLER \(c2\)\n.*\nArguments:\nArg1: 0000000000000000, The caller is )"
               R"(requesting a zero byte pool allocation\.\n)",
               30s);
    cmd(p, "!analyze -show 0xc0000142 1");
    EXPECT_OUT(p,
               R"(Unknown bugcheck code \(c0000142\)\nUnknown bugcheck description\nArguments:)"
               R"(\nArg1: 0000000000000001\n)",
               30s);

    cmd(p, "!irql");
    EXPECT_OUT(p, R"(CR8 saved for processor 0x0 -- 0 \(LOW_LEVEL\)\n)", 30s);
    cmd(p, "~");
    EXPECT_OUT(p,
               R"(\.  0  KPRCB: [0-9a-f]{8}`[0-9a-f]{8}  Current thread: [0-9a-f]{8}`[0-9a-f]{8}\n)"
               R"(   1  KPRCB: )",
               30s);
    cmd(p, ".lastevent");
    EXPECT_OUT(p, R"(Last event: Break instruction exception - code 80000003 \(first chance\)\n)",
               30s);
    cmd(p, "!pcr 1");
    EXPECT_OUT(p, R"(KPCR for Processor 1 at [0-9a-f]+:\n\t +SelfPcr: [0-9a-f]{16}\n)", 30s);
    EXPECT_OUT(p, "from KDDEBUGGER_DATA64", 10s);
    cmd(p, "!prcb");
    EXPECT_OUT(p,
               R"(PRCB for Processor 0 at [0-9a-f]+:\nThreads--  Current [0-9a-f]{16} Idle )"
               R"([0-9a-f]{16}\nProcessor Number 0  Mhz 3000  CpuType 6  Vendor GenuineIntel\n)",
               30s);
    cmd(p, "!pcr 7");
    EXPECT_OUT(p, R"(Invalid processor number 7 \(the target has 2\))", 30s);
    EXPECT_OUT(p, kPrompt, 10s);

    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("kernel: !analyze after a real bug check (kdsim --bugcheck-after 1 0xD1)") {
    ::setenv("KDSIM_BUGCHECK_AFTER", "1 0xD1", 1);
    auto p = start_sim({"-b"});
    ::unsetenv("KDSIM_BUGCHECK_AFTER");
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(\*\*\* Fatal System Error: 0x000000d1)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "!analyze -v");
    EXPECT_OUT(
        p, R"(\*                        Bugcheck Analysis                                    \*)",
        30s);
    EXPECT_OUT(p, R"(DRIVER_IRQL_NOT_LESS_OR_EQUAL \(d1\)\n)", 30s);
    EXPECT_OUT(p, R"(Arg1: fffff880[0-9a-f]{8}, memory referenced\nArg2: 0000000000000002, IRQL\n)",
               30s);
    EXPECT_OUT(p, R"(Arg3: 0000000000000000, value 0 = read operation, 1 = write operation\n)",
               10s);
    EXPECT_OUT(p,
               R"(Debugging Details:\n------------------\n\n\nBUGCHECK_CODE:  d1\n\n)"
               R"(BUGCHECK_P1: fffff880[0-9a-f]{8}\n\nBUGCHECK_P2: 2\n\nBUGCHECK_P3: 0\n\n)"
               R"(BUGCHECK_P4: fffff880[0-9a-f]{8}\n\nBUGCHECK_STR:  0xD1\n)",
               10s);
    // The rest of the analysis (tests/e2e/test_e2e_objects.cpp checks it in detail).
    EXPECT_OUT(p, R"(SYMBOL_NAME:  kdtest!KdTestRaiseBugCheck\+[0-9a-f]+\n)", 10s);
    cmd(p, "!analyze -show");
    EXPECT_OUT(p, R"(DRIVER_IRQL_NOT_LESS_OR_EQUAL \(d1\)\n)", 30s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
