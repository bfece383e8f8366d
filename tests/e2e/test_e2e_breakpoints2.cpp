// End to end, part 2: owed breakpoints, .pagein, bp->ba conversion, hardware breakpoints with
// Dr6, deferred breakpoints on a driver that loads later, and the target's code left intact.
// Every case runs over serial and over KDNET.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {
const std::string kBin = KDCART_BIN_DIR;



e2e::Process start(const std::string& sim) {
    return e2e::Process({kBin + "/kdcart", "--sim", sim, "--kdsim", kBin + "/kdsim", "-b"});
}

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void owed_breakpoint(const std::string& sim) {
    auto p = start(sim);
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    // The function's page is paged out until the loop first calls it (~6 s after boot).
    cmd(p, "u kdtest!KdTestPagedFunction L1");
    EXPECT_OUT(p, kAddr + R"( \?\? +\?\?\?)", 30s);
    cmd(p, "bp kdtest!KdTestPagedFunction");
    EXPECT_OUT(p, R"(Breakpoint 0 at )" + kAddr + R"( is owed: its page is not present)", 30s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"(     0001 \(0001\) kdtest!KdTestPagedFunction  \(owed: page not present\))",
               30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestPagedFunction:\n)" + kAddr + " ", 60s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"(     0001 \(0001\) kdtest!KdTestPagedFunction\n)", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

void pagein_and_convert(const std::string& sim) {
    auto p = start(sim);
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, ".allow_bp_ba_convert 1");
    EXPECT_OUT(p, "Converting owed breakpoints to hardware breakpoints is enabled", 30s);
    cmd(p, "bp kdtest!KdTestPagedFunction");
    EXPECT_OUT(p, R"(set as hardware breakpoint \(ba e1\) instead)", 30s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"( e 1 0001 \(0001\) kdtest!KdTestPagedFunction)", 30s);
    cmd(p, "bc *; .pagein kdtest!KdTestPagedFunction");
    EXPECT_OUT(p, R"(You need to continue execution)", 30s);
    cmd(p, "g");
    EXPECT_OUT(p, "kdtest: tick", 30s);
    p.signal(SIGINT);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "db kdtest!KdTestPagedFunction L4");
    EXPECT_OUT(p, kAddr + R"(  [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2} )", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

void hardware_breakpoints(const std::string& sim) {
    auto p = start(sim);
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, "db kdtest!KdTestCompute L1");
    std::smatch m;
    REQUIRE(p.expect(kAddr + R"(  ([0-9a-f]{2}) )", 30s, &m));
    const std::string first_byte = m[1];
    CHECK(first_byte != "cc");
    cmd(p, "ba e1 kdtest!KdTestCompute; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestCompute:\n)", 30s);
    cmd(p, "r dr6");
    EXPECT_OUT(p, R"(dr6=[0-9a-f]{15}[13579bdf]\n)", 30s); // B0
    cmd(p, "bc *; ba w8 kdtest!KdTestCounter; g");
    // A data breakpoint traps after the store: the PC is past it, still in KdTestUpdate.
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestUpdate\+0x[0-9a-f]+:\n)", 30s);
    cmd(p, "r dr6");
    EXPECT_OUT(p, R"(dr6=[0-9a-f]{15}[13579bdf]\n)", 30s);
    cmd(p, "bc *; ba r8 kdtest!KdTestCounter; ba w4 kdtest!KdTestTicks; bd 1; bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"( r 8 0001 \(0001\) kdtest!KdTestCounter\n)", 30s);
    EXPECT_OUT(p, R"( 1 d )" + kAddr + R"( w 4 0001 \(0001\) kdtest!KdTestTicks\n)", 30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestUpdate\+0x[0-9a-f]+:\n)", 30s);
    cmd(p, "bd 0; be 1; g");
    EXPECT_OUT(p, R"(Breakpoint 1 hit\nkdtest!KdTestLoop\+0x[0-9a-f]+:\n)", 30s);
    cmd(p, "r dr6");
    EXPECT_OUT(p, R"(dr6=[0-9a-f]{15}[2367abef]\n)", 30s); // B1
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

void deferred_on_late_driver(const std::string& sim) {
    auto p = start(sim);
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, "lm m kdlate");
    EXPECT_OUT(p, "start             end                 module name\n", 30s);
    cmd(p, "bu kdlate!KdLateWork");
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 eu +0001 \(0001\) \(kdlate!KdLateWork\))", 30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdlate!KdLateWork:\n)" + kAddr + " ", 90s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"(     0001 \(0001\) kdlate!KdLateWork\n)", 30s);
    cmd(p, "lm m kdlate");
    EXPECT_OUT(p, R"(fffff880`01400000 fffff880`[0-9a-f]{8}   kdlate )", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

void code_intact_after_quit(const std::string& sim) {
    const std::string report =
        "/tmp/kdcart-code-" + sim + "-" + std::to_string(::getpid()) + ".txt";
    ::unlink(report.c_str());
    ::setenv("KDSIM_DUMP_ON_EXIT", report.c_str(), 1);
    {
        auto p = start(sim);
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);
        cmd(p, "bp kdtest!KdTestCompute; bp kdtest!KdTestUpdate; ba e1 kdtest!KdTestLoop; "
               "bu kdlate!KdLateWork; g");
        EXPECT_OUT(p, R"(Breakpoint \d hit)", 30s);
        cmd(p, "q");
        CHECK(p.wait_exit(30s) == 0);
    }
    for (int i = 0; i < 50 && read_file(report).find("code ") == std::string::npos; ++i) {
        usleep(100000);
    }
    const std::string clean = read_file(report);
    INFO(clean);
    CHECK(clean.find("code intact") != std::string::npos);

    // SIGTERM while the target runs with breakpoints in it: kdcart breaks in, removes them,
    // resumes the target and exits.
    ::unlink(report.c_str());
    {
        auto p = start(sim);
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);
        cmd(p, "bp kdtest!KdTestPagedFunction+1; bp kdtest!KdTestSpin; ba e1 kdtest!KdTestSpin; g");
        EXPECT_OUT(p, "kdtest: tick", 30s);
        p.signal(SIGTERM);
        EXPECT_OUT(p, "kdcart: terminated; breakpoints removed, target resumed", 30s);
        CHECK(p.wait_exit(30s) == 143);
    }
    for (int i = 0; i < 50 && read_file(report).find("code ") == std::string::npos; ++i) {
        usleep(100000);
    }
    CHECK(read_file(report).find("code intact") != std::string::npos);

    // The check can fail: kill kdcart while its breakpoints are in the running target.
    ::unlink(report.c_str());
    {
        auto p = start(sim);
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);
        cmd(p, "bp kdtest!KdTestPagedFunction+1; bp kdtest!KdTestSpin; g");
        EXPECT_OUT(p, "kdtest: tick", 30s);
        p.signal(SIGKILL);
        p.wait_exit(10s);
    }
    for (int i = 0; i < 50 && read_file(report).find("code ") == std::string::npos; ++i) {
        usleep(100000);
    }
    const std::string dirty = read_file(report);
    INFO(dirty);
    CHECK(dirty.find("code modified at") != std::string::npos);
    ::unsetenv("KDSIM_DUMP_ON_EXIT");
    ::unlink(report.c_str());
}
} // namespace

TEST_CASE("owed breakpoint: listed as owed, hits after the page-in (serial)") {
    owed_breakpoint("com");
}
TEST_CASE("owed breakpoint: listed as owed, hits after the page-in (KDNET)") {
    owed_breakpoint("net");
}
TEST_CASE(".allow_bp_ba_convert and .pagein (serial)") {
    pagein_and_convert("com");
}
TEST_CASE(".allow_bp_ba_convert and .pagein (KDNET)") {
    pagein_and_convert("net");
}
TEST_CASE("ba e1 / ba w8 / ba r8 / ba w4 hit with the right Dr6 (serial)") {
    hardware_breakpoints("com");
}
TEST_CASE("ba e1 / ba w8 / ba r8 / ba w4 hit with the right Dr6 (KDNET)") {
    hardware_breakpoints("net");
}
TEST_CASE("bu on a driver that loads later hits (serial)") {
    deferred_on_late_driver("com");
}
TEST_CASE("bu on a driver that loads later hits (KDNET)") {
    deferred_on_late_driver("net");
}
TEST_CASE("after q the target's code bytes equal the originals (serial)") {
    code_intact_after_quit("com");
}
TEST_CASE("after q the target's code bytes equal the originals (KDNET)") {
    code_intact_after_quit("net");
}
