// End to end: breakpoint command strings and WinDbg scripts against kdsim's real code. A logging
// breakpoint that hits 1,000 times, conditional breakpoints (bp /w, j ... 'gc'), bm; a script
// file run with $$>< and $$>a< (aliases, loops, .printf, j); .logopen; unknown commands.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {

const std::string kBin = KDCART_BIN_DIR;

e2e::Process start() {
    return e2e::Process(
        {kBin + "/kdcart", "--sim", "--sim-baud", "0", "--kdsim", kBin + "/kdsim", "-b"});
}

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++n;
    }
    return n;
}

// A fresh directory for the test's files.
std::string temp_dir() {
    char tmpl[] = "/tmp/kdcart-script-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return d;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// kdtest!KdTestSpin's loop: "inc qword ptr [KdTestSpinCount]" runs once per iteration, "ret"
// after the last one. Their addresses, read from `u`.
struct SpinLoop {
    std::string body;
    std::string ret;
};

SpinLoop find_spin_loop(e2e::Process& p) {
    cmd(p, "u kdtest!KdTestSpin L6");
    std::smatch m;
    REQUIRE(p.expect(
        R"(([0-9a-f]{8})`([0-9a-f]{8}) [0-9a-f]+ +inc +qword ptr \[kdtest!KdTestSpinCount)", 30s,
        &m));
    SpinLoop loop;
    loop.body = m[1].str() + m[2].str();
    REQUIRE(p.expect(R"(([0-9a-f]{8})`([0-9a-f]{8}) c3 +ret)", 30s, &m));
    loop.ret = m[1].str() + m[2].str();
    EXPECT_OUT(p, "0: kd> ", 30s);
    return loop;
}

} // namespace

TEST_CASE("a logging breakpoint runs for 1,000 hits; bp /w and j conditions; bm") {
    auto p = start();
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    const SpinLoop loop = find_spin_loop(p);

    // CPU 0 runs KdTestSpin(1000): the logging breakpoint on its loop body prints rcx at every
    // hit and goes on; the one on its ret stops. No nesting limit: all 1,000 hits are logged.
    cmd(p, "r rcx=0n1000, rip=kdtest!KdTestSpin");
    cmd(p, "bp " + loop.body + " \"r rcx; g\"");
    cmd(p, "bp " + loop.ret);
    const size_t before = p.mark();
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 1 hit\nkdtest!KdTestSpin\+0x[0-9a-f]+:\n)" + kAddr + R"( c3 +ret)",
               120s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    const std::string run = p.since(before);
    CHECK(count(run, "Breakpoint 0 hit\n") == 1000);
    CHECK(count(run, "\nrcx=") == 1000);
    CHECK(run.find("rcx=00000000000003e8\n") != std::string::npos); // the first hit
    CHECK(run.find("rcx=0000000000000001\n") != std::string::npos); // the last one
    CHECK(run.find("nested") == std::string::npos);
    cmd(p, "? qwo(kdtest!KdTestSpinCount)");
    EXPECT_OUT(p, R"(Evaluate expression: 1000 = 00000000`000003e8)", 30s);

    // bp /w "condition": the target stops only when it is true.
    cmd(p, "bc *; r rcx=0n1000, rip=kdtest!KdTestSpin");
    cmd(p, "bp /w \"@rcx == 0n500\" " + loop.body);
    cmd(p, "bl");
    EXPECT_OUT(p,
               R"( 0 e )" + kAddr +
                   R"(     0001 \(0001\) kdtest!KdTestSpin\+0x[0-9a-f]+ /w "@rcx == 0n500")",
               30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\n)", 60s);
    cmd(p, "r rcx");
    EXPECT_OUT(p, R"(rcx=00000000000001f4\n)", 30s);

    // The older form: j in the command string, gc when the condition is false.
    cmd(p, "bc *; bp " + loop.body + " \"j (@rcx == 0n400) '.echo four hundred' ; 'gc'\"; g");
    EXPECT_OUT(p, R"(four hundred\n)", 60s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "r rcx");
    EXPECT_OUT(p, R"(rcx=0000000000000190\n)", 30s);

    // bm: one breakpoint per matching function (exported data would not count).
    cmd(p, "bc *; bm kdtest!KdTestUp*");
    EXPECT_OUT(p, R"(  0: )" + kAddr + R"( @!"kdtest!KdTestUpdate"\n)", 30s);
    cmd(p, "bm kdtest!NoSuchThing*");
    EXPECT_OUT(p, R"(No matching symbols found, no breakpoints set\.)", 30s);
    cmd(p, "bl");
    EXPECT_OUT(p, R"( 0 e )" + kAddr + R"(     0001 \(0001\) kdtest!KdTestUpdate\n)", 30s);

    // Ctrl+C ends a storm of logging hits: the target stays stopped, the prompt comes back.
    cmd(p, "bc *; r rcx=0n1000000, rip=kdtest!KdTestSpin");
    cmd(p, "bp " + loop.body + " \"r rcx; g\"; g");
    EXPECT_OUT(p, R"((Breakpoint 0 hit\n[^\n]*\n[^\n]*\nrcx=[0-9a-f]+\n){20})", 60s);
    p.signal(SIGINT);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, ".echo still here");
    EXPECT_OUT(p, "\nstill here\n", 30s);

    cmd(p, "bc *; q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("a WinDbg script with $$>< and $$>a<: aliases, loops, .printf, j; .logopen") {
    const std::string dir = temp_dir();
    // The shape of seed 002's cmcallbacks.wbs: aliases at the top, used inside .block, deleted
    // with ${/v:} at the end; its .if/.else, .for and j over kdtest's globals.
    write_file(
        dir + "/walk.wbs",
        "$$ walk.wbs: loops, aliases, .printf and j over kdtest's globals\n"
        ".echo ***** kdtest walk *****\n"
        "aS Counter kdtest!KdTestCounter;\n"
        "aS i \"@$t1\";\n"
        "aS total @$t2;\n"
        "$$ The .block makes the aliases above visible.\n"
        ".block\n"
        "{\n"
        "    r ${total} = 0\n"
        "    .for (r ${i} = 0; ${i} < 5; r ${i} = ${i} + 1)\n"
        "    {\n"
        "        r ${total} = ${total} + ${i}\n"
        "        .printf \"i=%d total=%d\\n\", ${i}, ${total}\n"
        "    }\n"
        "    .if (${total} == 0n10)\n"
        "    {\n"
        "        .echo sum ok\n"
        "    }\n"
        "    .else\n"
        "    {\n"
        "        .echo sum wrong\n"
        "    }\n"
        "    r $t3 = 0\n"
        "    .while (1)\n"
        "    {\n"
        "        r $t3 = @$t3 + 1\n"
        "        .if (@$t3 == 2) { .continue }\n"
        "        .if (@$t3 > 3) { .break }\n"
        "        .printf \"while %d\\n\", @$t3\n"
        "    }\n"
        "    .printf \"counter at %y\\n\", ${Counter}\n"
        "    j (${total} == 0n10 and qwo(${Counter}) >= 0) '.echo j: ten'; '.echo j: not ten'\n"
        "}\n"
        "ad ${/v:Counter};\n"
        "ad ${/v:i};\n"
        "ad ${/v:total};\n"
        "al\n"
        ".echo walk done\n");
    write_file(dir + "/args.wbs", ".printf \"%d+%d=%d\\n\", ${$arg1}, ${$arg2}, ${$arg1} + "
                                  "${$arg2}\n.echo third=${$arg3}\n");

    auto p = start();
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, ".logopen " + dir + "/session.log");
    EXPECT_OUT(p, "Opened log file '" + dir + "/session.log'\n", 30s);

    cmd(p, "$$>< " + dir + "/walk.wbs");
    EXPECT_OUT(p,
               R"(\*\*\*\*\* kdtest walk \*\*\*\*\*\n)"
               R"(i=0 total=0\ni=1 total=1\ni=2 total=3\ni=3 total=6\ni=4 total=10\n)"
               R"(sum ok\nwhile 1\nwhile 3\n)",
               30s);
    EXPECT_OUT(p, R"(counter at kdtest!KdTestCounter \()" + kAddr + R"(\)\n)", 30s);
    EXPECT_OUT(p, R"(j: ten\nNo aliases\nwalk done\n0: kd> )", 30s);

    // Arguments: ${$argN}, and those not given stay as they are; a ';' ends the arguments.
    cmd(p, "$$>a< " + dir + "/args.wbs 0n3 0n4; .echo after");
    EXPECT_OUT(p, R"(3\+4=7\nthird=\$\{\$arg3\}\nafter\n)", 30s);

    // Typos and gaps in a script are reported and the session goes on.
    cmd(p, "$$>< " + dir + "/missing.wbs");
    EXPECT_OUT(p, "Couldn't open script file '" + dir + "/missing.wbs'", 30s);
    cmd(p, ".if (nosuch) { .echo x }");
    EXPECT_OUT(p, R"(Couldn't resolve error at 'nosuch')", 30s);
    cmd(p, ".logclose");
    EXPECT_OUT(p, "Closing open log file " + dir + "/session.log\n", 30s);
    cmd(p, "? 1");
    EXPECT_OUT(p, "Evaluate expression: 1 = ", 30s);

    // The log has the commands as typed and their output.
    const std::string log = read_file(dir + "/session.log");
    CHECK(log.find("Opened log file '" + dir + "/session.log'\n") != std::string::npos);
    CHECK(log.find("0: kd> $$>< " + dir + "/walk.wbs\n") != std::string::npos);
    CHECK(log.find("i=4 total=10\n") != std::string::npos);
    CHECK(log.find("3+4=7\n") != std::string::npos);
    CHECK(log.find("Closing open log file") != std::string::npos);
    CHECK(log.find("Evaluate expression: 1") == std::string::npos); // after .logclose

    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
    std::remove((dir + "/walk.wbs").c_str());
    std::remove((dir + "/args.wbs").c_str());
    std::remove((dir + "/session.log").c_str());
    ::rmdir(dir.c_str());
}

TEST_CASE("a WinDbg command kdcart lacks says so; a typo gets the syntax error; ? lists") {
    auto p = start();
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    cmd(p, "!chkimg nt");
    EXPECT_OUT(p, "!chkimg is not supported yet\n", 30s);
    cmd(p, ".foreach (x {k}) { .echo x }");
    EXPECT_OUT(p, ".foreach is not supported yet\n", 30s);
    cmd(p, "!nosuchextension 1");
    EXPECT_OUT(p, "No export nosuchextension found\n", 30s);
    cmd(p, "xyzzy 12");
    EXPECT_OUT(p, R"(       \^ Syntax error in 'xyzzy 12'\n)", 30s);
    cmd(p, "?");
    EXPECT_OUT(p, R"(kdcart commands \(WinDbg syntax and output)", 30s);
    EXPECT_OUT(p, R"(\$\$>a<file args)", 30s);
    cmd(p, ".help");
    EXPECT_OUT(p, R"(kdcart commands)", 30s);
    // Pseudo-registers and .formats.
    cmd(p, "r $t0 = 5; r $t1 = @$t0 * 2 + @$ptrsize; r $t1");
    EXPECT_OUT(p, R"(\$t1=0000000000000012\n)", 30s);
    cmd(p, "? @$ip == @rip; ? @$pagesize");
    EXPECT_OUT(p, R"(Evaluate expression: 1 = 00000000`00000001\n)", 30s);
    EXPECT_OUT(p, R"(Evaluate expression: 4096 = 00000000`00001000\n)", 30s);
    cmd(p, ".formats 0n10");
    EXPECT_OUT(p, R"(Evaluate expression:\n  Hex:     00000000`0000000a\n  Decimal: 10\n)", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}
