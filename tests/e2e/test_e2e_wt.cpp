// End to end: wt (watch and trace) against kdsim's real code. The instruction counts of a loop
// whose length kdtest!KdTestSpin takes in rcx, a traced call (its tree, rax with -or, the counts
// adding up), a nested call cut by -l, and Ctrl+C ending a long trace with its summary.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

#include <thread>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {

const std::string kBin = KDCART_BIN_DIR;

e2e::Process start() {
    return e2e::Process(
        {kBin + "/kdcart", "--sim", "--sim-baud", "0", "--kdsim", kBin + "/kdsim", "-b"});
}

// The address (as kd prints it, without the backtick) of the first line of `u`/`uf` output that
// matches `instruction`.
std::string find_instruction(e2e::Process& p, const std::string& command,
                             const std::string& instruction) {
    cmd(p, command);
    std::smatch m;
    REQUIRE(p.expect(R"(([0-9a-f]{8})`([0-9a-f]{8}) [0-9a-f]+ +)" + instruction, 60s, &m));
    const std::string at = m[1].str() + m[2].str();
    EXPECT_OUT(p, "0: kd> ", 30s);
    return at;
}

uint64_t number(const std::string& s) {
    return std::stoull(s);
}

} // namespace

TEST_CASE("wt: a loop's instruction count, a call's tree, -l, Ctrl+C") {
    auto p = start();
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);

    // On a call: the call is traced until it returns here. KdTestLoop calls
    // nt!KeQueryInterruptTime through r15; with -or its return line shows rax.
    const std::string call_r15 = find_instruction(p, "uf kdtest!KdTestLoop", "call +r15");
    cmd(p, "bp " + call_r15 + "; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\n)", 60s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "bc *; wt -or");
    EXPECT_OUT(p, R"(Tracing kdtest!KdTestLoop to return address )" + kAddr + "\n", 60s);
    EXPECT_OUT(p, R"(    1     0 \[  0\] kdtest!KdTestLoop\n)", 60s);
    std::smatch m;
    REQUIRE(p.expect(R"( +(\d+)     0 \[  1\]   nt!KeQueryInterruptTime rax = ([0-9a-f]+)\n)", 60s,
                     &m));
    const uint64_t callee = number(m[1].str());
    const std::string rax = m[2].str();
    CHECK(callee > 1);
    REQUIRE(p.expect(R"(    1 +(\d+) \[  0\] kdtest!KdTestLoop\n)", 60s, &m));
    CHECK(number(m[1].str()) == callee);
    EXPECT_OUT(p, "\n" + std::to_string(callee + 1) + " instructions were executed", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "r rax");
    REQUIRE(p.expect(R"(rax=([0-9a-f]{16})\n)", 30s, &m));
    CHECK(std::stoull(m[1].str(), nullptr, 16) == std::stoull(rax, nullptr, 16));

    // A nested call: its depth-2 callees are shown by wt, stepped over by wt -l 1.
    const std::string call_local =
        find_instruction(p, "uf kdtest!KdTestLoop", R"(call +kdtest!KdTestLoop\+0x)");
    cmd(p, "bp " + call_local + "; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\n)", 60s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "bc *; r $t0 = @rip; wt");
    const size_t full_at = p.mark();
    REQUIRE(p.expect(R"(\n(\d+) instructions were executed)", 60s, &m));
    const uint64_t full = number(m[1].str());
    const std::string full_tree = p.since(full_at);
    CHECK(full_tree.find("] kdtest!KdTestLoop\n") != std::string::npos);
    CHECK(full_tree.find(" [  2]     ") != std::string::npos);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "r rip = @$t0; wt -l 1");
    const size_t cut_at = p.mark();
    REQUIRE(p.expect(R"(\n(\d+) instructions were executed)", 60s, &m));
    const uint64_t cut = number(m[1].str());
    const std::string cut_tree = p.since(cut_at);
    CHECK(cut_tree.find(" [  1]   ") != std::string::npos);
    CHECK(cut_tree.find(" [  2]") == std::string::npos);
    CHECK(cut < full);
    EXPECT_OUT(p, "0: kd> ", 30s);

    // KdTestSpin(n): test/je, then inc/dec/jne n times, then ret: 3n + 3 instructions, traced
    // from its first instruction to the return address on the stack. The rip and rsp of
    // the stop in KdTestLoop are put back afterwards.
    cmd(p, "r $t1 = @rip; r $t2 = @rsp");
    for (int n : {3, 7}) {
        // A call from the stop's pc: its return address pushed below the stop's rsp (what
        // happens to lie at the stop's rsp is not code).
        cmd(p, "r rcx=" + std::to_string(n) + ", rip=kdtest!KdTestSpin, rsp=@$t2-8");
        cmd(p, "eq @rsp @$t1");
        cmd(p, "? poi(@rsp)");
        REQUIRE(p.expect(R"(Evaluate expression: -?\d+ = ([0-9a-f]{8}`[0-9a-f]{8}))", 30s, &m));
        const std::string ret = m[1].str();
        cmd(p, "wt");
        EXPECT_OUT(p, "Tracing kdtest!KdTestSpin to return address " + ret + "\n", 60s);
        const std::string count = std::to_string(3 * n + 3);
        char line[128];
        std::snprintf(line, sizeof line, "%5d     0 \\[  0\\] kdtest!KdTestSpin\n", 3 * n + 3);
        EXPECT_OUT(p, line, 60s);
        EXPECT_OUT(p,
                   "\n" + count + " instructions were executed in " + count +
                       " events \\(0 from other threads\\)\n\n"
                       "Function Name                               Invocations MinInst "
                       "MaxInst AvgInst\n",
                   30s);
        std::snprintf(line, sizeof line, "%-44s%11d%8d%8d%8d\n", "kdtest!KdTestSpin", 1, 3 * n + 3,
                      3 * n + 3, 3 * n + 3);
        EXPECT_OUT(p, line, 30s);
        // Stopped at the return address, shown as after a step.
        EXPECT_OUT(p, "rip=" + ret.substr(0, 8) + ret.substr(9), 30s);
        EXPECT_OUT(p, ret + " ", 30s);
        EXPECT_OUT(p, "0: kd> ", 30s);
    }

    cmd(p, "r rip=@$t1, rsp=@$t2");

    // Bad options are refused; the session goes on.
    cmd(p, "wt -q");
    EXPECT_OUT(p, "Unknown option '-q'", 30s);
    cmd(p, "wt -l zz");
    EXPECT_OUT(p, "Bad depth 'zz'", 30s);

    // Ctrl+C ends a long trace after the step under way, with the summary of what was traced.
    cmd(p, "r rcx=0n100000000, rip=kdtest!KdTestSpin, rsp=@$t2; wt; .echo not reached");
    EXPECT_OUT(p, "Tracing kdtest!KdTestSpin", 60s);
    std::this_thread::sleep_for(1500ms);
    p.signal(SIGINT);
    REQUIRE(p.expect(R"(\n(\d+) instructions were executed in)", 60s, &m));
    CHECK(number(m[1].str()) > 3);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, ".echo still here");
    EXPECT_OUT(p, "\nstill here\n", 30s);
    CHECK(p.transcript().find("\nnot reached\n") == std::string::npos);
    cmd(p, "r rip=@$t1, rsp=@$t2");

    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
