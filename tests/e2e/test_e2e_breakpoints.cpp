// End to end: breakpoints and run control against kdsim's real code, over serial and KDNET.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {
const std::string kBin = KDCART_BIN_DIR;



void run_control_suite(const std::string& sim) {
    e2e::Process p({kBin + "/kdcart", "--sim", sim, "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);

    // bp + g: hit at the function's first instruction, the instruction shown.
    cmd(p, "bp kdtest!KdTestCompute");
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"(     0001 \(0001\) kdtest!KdTestCompute\n)", 30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestCompute:\n)" + kAddr + R"( [0-9a-f]+ +mov )",
               30s);
    EXPECT_OUT(p, "0: kd> ", 30s);

    // t: the next instruction, with registers.
    cmd(p, "t");
    EXPECT_OUT(p, R"(rip=[0-9a-f]{16} rsp=)", 30s);
    EXPECT_OUT(p, R"(kdtest!KdTestCompute\+0x[0-9a-f]+:\n)", 30s);

    // gu: back in the caller, right after the call.
    cmd(p, "gu");
    EXPECT_OUT(p, R"(kdtest!KdTestLoop\+0x[0-9a-f]+:\n)", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);

    // Redefinition, disable/enable, clear.
    cmd(p, "bp kdtest!KdTestCompute");
    EXPECT_OUT(p, "breakpoint 0 redefined", 30s);
    cmd(p, "bd 0; bl");
    EXPECT_OUT(p, R"( 0 d )" + kAddr, 30s);
    cmd(p, "be 0; bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr, 30s);
    cmd(p, "bc *; bl");
    EXPECT_OUT(p, "0: kd> ", 30s);

    // p over a call: find the call to KdTestUpdate in the loop, run to it, step over it.
    cmd(p, "u kdtest!KdTestLoop L20");
    std::smatch m;
    REQUIRE(p.expect(R"(([0-9a-f]{8})`([0-9a-f]{8}) e8[0-9a-f]{8} +call +kdtest!KdTestUpdate)",
                     30s, &m));
    const uint64_t call_at = std::stoull(m[1].str() + m[2].str(), nullptr, 16);
    char expr[64];
    std::snprintf(expr, sizeof expr, "g %llx", static_cast<unsigned long long>(call_at));
    cmd(p, expr);
    EXPECT_OUT(p, R"(call +kdtest!KdTestUpdate)", 30s);
    cmd(p, "p");
    char rip[64];
    std::snprintf(rip, sizeof rip, "rip=%016llx", static_cast<unsigned long long>(call_at + 5));
    EXPECT_OUT(p, rip, 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);

    // Pass counts and one-shot.
    cmd(p, "bp /1 kdtest!KdTestUpdate; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestUpdate:)", 30s);
    // The stack through the images' unwind data: KdTestLoop called us, a system thread it.
    cmd(p, "kn");
    EXPECT_OUT(p, R"( # Child-SP          RetAddr           Call Site\n)"
                  R"(00 )" + kAddr + " " + kAddr + R"( kdtest!KdTestUpdate\n)"
                  R"(01 )" + kAddr + " " + kAddr + R"( kdtest!KdTestLoop\+0x[0-9a-f]+\n)"
                  R"(02 )" + kAddr + " " + kAddr + R"( nt!PspSystemThreadStartup\+0x[0-9a-f]+\n)",
               30s);
    cmd(p, "bl");
    cmd(p, "? 0n1");
    EXPECT_OUT(p, R"(Evaluate expression: 1 =)", 30s); // bl printed nothing before it

    // Bad input: one clear line each, the session goes on.
    cmd(p, "bp 0");
    EXPECT_OUT(p, R"(Unable to set breakpoint at 00000000`00000000: the address is not mapped)",
               30s);
    cmd(p, "bp 0x8000000000000000");
    EXPECT_OUT(p, R"(not canonical)", 30s);
    cmd(p, "ba w4 kdtest!KdTestCounter+1");
    EXPECT_OUT(p, R"(Data breakpoint must be aligned)", 30s);
    cmd(p, "ba e2 kdtest!KdTestCompute");
    EXPECT_OUT(p, R"(must have length 1)", 30s);
    cmd(p, "bc 99");
    EXPECT_OUT(p, R"(Breakpoint 99 does not exist)", 30s);
    cmd(p, "ba e1 kdtest!KdTestCompute; ba e1 kdtest!KdTestUpdate; ba w8 kdtest!KdTestCounter; "
           "ba r4 kdtest!KdTestTicks");
    cmd(p, "ba e1 kdtest!KdTestLoop");
    EXPECT_OUT(p, R"(No free hardware breakpoint slot)", 30s);
    cmd(p, "bc *");
    cmd(p, "bp nosuchmodule!Foo");
    EXPECT_OUT(p, R"(Bp expression 'nosuchmodule!Foo' could not be resolved, adding deferred bp)",
               30s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 eu +0001 \(0001\) \(nosuchmodule!Foo\))", 30s);
    cmd(p, "bc *");

    // Commands on hit: "r rcx" runs when the breakpoint fires.
    cmd(p, "bp kdtest!KdTestCompute \"r rcx\"; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\n(.*\n){2}rcx=[0-9a-f]{16}\n)", 30s);
    cmd(p, "bc *");

    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}
} // namespace

TEST_CASE("breakpoints and stepping over serial") {
    run_control_suite("com");
}

TEST_CASE("breakpoints and stepping over KDNET") {
    run_control_suite("net");
}

TEST_CASE("a target that reboots mid-session gets its breakpoints back") {
    e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, "bp kdtest!KdTestCompute; bu kdtest!KdTestUpdate; bd 1");
    cmd(p, ".reboot");
    EXPECT_OUT(p, "Waiting to reconnect...", 30s);
    EXPECT_OUT(p, "kdtest: tick", 60s);
    p.signal(SIGINT);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003)", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"(     0001 \(0001\) kdtest!KdTestCompute\n)", 30s);
    EXPECT_OUT(p, R"( 1 d )" + kAddr + R"(     0001 \(0001\) kdtest!KdTestUpdate\n)", 30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestCompute:)", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("exceptions: first and second chance, sxd av passes the first chance") {
    e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    // Make the CPU store to address 0 through kdtest!KdTestAccess(0, 8, write).
    cmd(p, "r rcx=0, rdx=8, r8=1, rip=kdtest!KdTestAccess; g");
    EXPECT_OUT(p, R"(Access violation - code c0000005 \(first chance\)\n)"
                  R"(First chance exceptions are reported before any exception handling\.\n)",
               30s);
    EXPECT_OUT(p, R"(kdtest!KdTestAccess\+0x[0-9a-f]+:\n)" + kAddr + R"( [0-9a-f]+ +mov +qword ptr \[rcx\])",
               30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Access violation - code c0000005 \(!!! second chance !!!\))", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);

    e2e::Process q({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(q.started());
    EXPECT_OUT(q, "0: kd> ", 90s);
    cmd(q, "sxd av");
    EXPECT_OUT(q, R"(Access violation - code c0000005: break on second chance)", 30s);
    cmd(q, "r rcx=0, rdx=8, r8=1, rip=kdtest!KdTestAccess; g");
    // The first chance is told about, not stopped at; the second chance stops.
    EXPECT_OUT(q, R"(Access violation - code c0000005 \(first chance\)\n)"
                  R"(Access violation - code c0000005 \(!!! second chance !!!\))",
               30s);
    EXPECT_OUT(q, "0: kd> ", 30s);
    cmd(q, "sxe bogus");
    EXPECT_OUT(q, R"(Unknown event 'bogus')", 30s);
    cmd(q, "q");
    CHECK(q.wait_exit(30s) == 0);
}
