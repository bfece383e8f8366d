// End to end: every way kdcart ends leaves the target running and clean (issue 13, finding 4).
// `q`, `qq`, `qd`, end of input (while stopped, and arriving while the target runs), `-c "...; g"`
// run to its end, SIGTERM and SIGHUP while the target runs, SIGTERM while attaching, Ctrl+C twice
// while a break-in is pending: each removes the breakpoints (software ones out of memory, the
// debug registers cleared for `ba`) and resumes the target. A lost link (kdsim killed) ends
// kdcart with a message naming the link and a non-zero status, never a hang. After each case a
// fresh kdcart attaches to the same kdsim and sees it running (its DbgPrint ticks arrive, no
// breakpoint stop waiting), DR7 without an enabled breakpoint, and at the end kdsim's own check
// finds every image's code as on disk. Also: a KDCOM target reboot is announced and the
// breakpoints are written again after it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using e2e::cmd;

namespace {
const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";
// Software breakpoints on code kdtest runs every 100 ms (a condition that never holds: each
// hit is a stop the engine resumes at once) and on code it never runs; a data breakpoint on a
// variable nothing writes. All of them set whenever the target runs in these cases.
const std::string kBreakpoints = "bp /w \"@rcx == 0xfedcba98\" kdtest!KdTestCompute; "
                                 "bp kdtest!KdTestSpin; ba w8 kdtest!KdTestSpinCount";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// One kdsim for the whole run, on an AF_UNIX socket (unpaced: the cases stay short), with its
// code check at exit.
struct SharedSim {
    std::string sock = "/tmp/kdcart-e2e-exit-" + std::to_string(::getpid()) + ".sock";
    std::string report = "/tmp/kdcart-e2e-exit-" + std::to_string(::getpid()) + ".txt";
    std::unique_ptr<e2e::Process> proc;
};

SharedSim& sim() {
    static SharedSim s = [] {
        SharedSim x;
        ::unlink(x.sock.c_str());
        ::unlink(x.report.c_str());
        x.proc = std::make_unique<e2e::Process>(std::vector<std::string>{
            kBin + "/kdsim", "--unix", x.sock, "--dump-on-exit", x.report});
        return x;
    }();
    return s;
}

std::vector<std::string> kdcart_args(std::vector<std::string> extra) {
    std::vector<std::string> a{kBin + "/kdcart", "-k", "com:pipe,port=" + sim().sock};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

// kdcart with the breakpoints set, stopped at the prompt.
std::unique_ptr<e2e::Process> stopped_with_breakpoints() {
    auto p = std::make_unique<e2e::Process>(kdcart_args({"-b", "-c", kBreakpoints}));
    REQUIRE(p->started());
    EXPECT_OUT(*p, kPrompt, 90s);
    return p;
}

// kdcart with the breakpoints set and the target running (its ticks arrive).
std::unique_ptr<e2e::Process> running_with_breakpoints() {
    auto p = std::make_unique<e2e::Process>(kdcart_args({"-b", "-c", kBreakpoints + "; g"}));
    REQUIRE(p->started());
    EXPECT_OUT(*p, "kdtest: tick", 90s);
    return p;
}

// What a new debugger finds: the target running (it prints, and no stop is waiting for a
// debugger: a breakpoint left in its code would be one), no breakpoint enabled in DR7.
void expect_left_running_and_clean() {
    INFO("the check after the case");
    e2e::Process v(kdcart_args({}));
    REQUIRE(v.started());
    EXPECT_OUT(v, "kdtest: tick", 90s);
    const size_t before_break = v.mark();
    v.signal(SIGINT);
    EXPECT_OUT(v, R"(Break instruction exception - code 80000003 \(first chance\))", 60s);
    EXPECT_OUT(v, kPrompt, 60s);
    // Only the break-in stopped it: no other exception or breakpoint stop came first.
    const std::string stop = v.since(before_break);
    CHECK(stop.find("nt!RtlpBreakWithStatusInstruction:") != std::string::npos);
    CHECK(stop.find("kdtest!KdTest") == std::string::npos);
    cmd(v, "r dr7");
    std::smatch m;
    REQUIRE(v.expect(R"(dr7=([0-9a-f]{16}))", 30s, &m));
    const uint64_t dr7 = std::stoull(m[1].str(), nullptr, 16);
    CHECK_MESSAGE((dr7 & 0xFF) == 0, "DR7 still enables a breakpoint: " << m[1].str());
    EXPECT_OUT(v, kPrompt, 30s);
    cmd(v, "q");
    EXPECT_OUT(v, "quit:", 60s);
    CHECK(v.wait_exit(60s) == 0);
}

} // namespace

TEST_CASE("kdsim starts") {
    REQUIRE(sim().proc->started());
    EXPECT_OUT(*sim().proc, "listening on", 60s);
}

// WinDbg's KD leaves a target "locked" after q; qd is its user-mode detach. A crash cart must
// not leave a server frozen: all three remove everything and resume it.
TEST_CASE("q qq and qd: breakpoints removed and target resumed (exit 0)") {
    for (const char* word : {"q", "qq", "qd"}) {
        CAPTURE(word);
        auto p = stopped_with_breakpoints();
        cmd(*p, "bl");
        EXPECT_OUT(*p, R"( 2 e [0-9a-f`]+ w 8 0001 \(0001\) kdtest!KdTestSpinCount)", 30s);
        EXPECT_OUT(*p, kPrompt, 30s);
        cmd(*p, word);
        EXPECT_OUT(*p, "quit:", 60s);
        CHECK(p->wait_exit(60s) == 0);
        expect_left_running_and_clean();
    }
}

TEST_CASE("end of input while stopped: as q and said so") {
    auto p = stopped_with_breakpoints();
    // Ctrl+C at a prompt read from a pipe: a fresh prompt, not the end of input.
    p->signal(SIGINT);
    std::this_thread::sleep_for(300ms);
    cmd(*p, "bl");
    EXPECT_OUT(*p, R"( 1 e [0-9a-f`]+     0001 \(0001\) kdtest!KdTestSpin)", 30s);
    EXPECT_OUT(*p, kPrompt, 30s);
    p->close_stdin();
    EXPECT_OUT(*p, "kdcart: end of input; breakpoints removed, target resumed", 60s);
    CHECK(p->wait_exit(60s) == 0);
    expect_left_running_and_clean();
}

// Input that ends while the target runs: kdcart keeps the session until the target stops (a
// `-c "bp ...; g"` session logs until it is told to stop), then leaves it running and clean.
TEST_CASE("end of input while the target runs and -c \"...; g\" run to its end") {
    {
        auto p = std::make_unique<e2e::Process>(kdcart_args({"-b"}));
        REQUIRE(p->started());
        EXPECT_OUT(*p, kPrompt, 90s);
        cmd(*p, kBreakpoints + "; bp kdtest!KdTestUpdate 0n50");
        cmd(*p, "g");
        p->close_stdin();
        EXPECT_OUT(*p, "kdtest: tick", 60s);
        EXPECT_OUT(*p, R"(Breakpoint 3 hit\nkdtest!KdTestUpdate:)", 60s);
        EXPECT_OUT(*p, "kdcart: end of input; breakpoints removed, target resumed", 60s);
        CHECK(p->wait_exit(60s) == 0);
    }
    expect_left_running_and_clean();
    {
        // -c with no input at all: the commands run, the stop comes, the session ends.
        auto p = std::make_unique<e2e::Process>(
            kdcart_args({"-b", "-c", kBreakpoints + "; bp kdtest!KdTestUpdate 0n20; g; bl"}));
        REQUIRE(p->started());
        p->close_stdin();
        EXPECT_OUT(*p, R"(Breakpoint 3 hit\nkdtest!KdTestUpdate:)", 90s);
        EXPECT_OUT(*p, R"( 3 e [0-9a-f`]+ +[0-9a-f]{4} \(0014\) kdtest!KdTestUpdate)", 30s);
        EXPECT_OUT(*p, "kdcart: end of input; breakpoints removed, target resumed", 60s);
        CHECK(p->wait_exit(60s) == 0);
    }
    expect_left_running_and_clean();
}

TEST_CASE(
    "SIGHUP and SIGTERM while the target runs: break in then clean and resume (128 + signal)") {
    for (int sig : {SIGHUP, SIGTERM}) {
        CAPTURE(sig);
        auto p = running_with_breakpoints();
        p->signal(sig);
        EXPECT_OUT(*p, "kdcart: terminated; breakpoints removed, target resumed", 60s);
        CHECK(p->wait_exit(60s) == 128 + sig);
        expect_left_running_and_clean();
    }
}

TEST_CASE("SIGTERM while attaching (the target never stopped): nothing changed and it runs on") {
    auto p = std::make_unique<e2e::Process>(kdcart_args({}));
    REQUIRE(p->started());
    EXPECT_OUT(*p, "kdtest: tick", 90s);
    p->signal(SIGTERM);
    EXPECT_OUT(*p, "terminated before the target stopped: nothing on it was changed", 60s);
    CHECK(p->wait_exit(60s) == 143);
    expect_left_running_and_clean();
}

TEST_CASE("Ctrl+C twice while the break-in is pending: quits once the target stopped and clean") {
    // No breakpoint the target hits here: kdsim is frozen for a while below, and a stop that
    // came just before would be resumed into a frozen link.
    auto p = std::make_unique<e2e::Process>(
        kdcart_args({"-b", "-c", "bp kdtest!KdTestSpin; ba w8 kdtest!KdTestSpinCount; g"}));
    REQUIRE(p->started());
    EXPECT_OUT(*p, "kdtest: tick", 90s);
    // The target cannot answer while kdsim is stopped: the break-in stays pending.
    sim().proc->signal(SIGSTOP);
    p->signal(SIGINT);
    // A second Ctrl+C within a second of the break-in is the same press: press again until
    // kdcart takes it as the second (a loaded machine may be slow to send the first).
    bool noticed = false;
    for (int i = 0; i < 20 && !noticed; ++i) {
        std::this_thread::sleep_for(1500ms);
        p->signal(SIGINT);
        noticed = p->expect(R"(Ctrl\+C again: kdcart quits once the target is stopped)", 1500ms);
    }
    sim().proc->signal(SIGCONT);
    if (!noticed) {
        MESSAGE("transcript:\n" << p->transcript());
    }
    REQUIRE(noticed);
    EXPECT_OUT(*p, R"(Break instruction exception - code 80000003 \(first chance\))", 60s);
    EXPECT_OUT(*p, "kdcart: terminated; breakpoints removed, target resumed", 60s);
    CHECK(p->wait_exit(60s) == 130);
    expect_left_running_and_clean();
}

TEST_CASE("kdsim's code check: every image as on disk after all of the above") {
    sim().proc->signal(SIGTERM);
    CHECK(sim().proc->wait_exit(60s) == 0);
    const std::string text = read_file(sim().report);
    INFO(text);
    CHECK(text.find("kdtest.sys") != std::string::npos);
    CHECK(text.find("modified") == std::string::npos);
    CHECK(text.find("code intact") != std::string::npos);
    ::unlink(sim().report.c_str());
    ::unlink(sim().sock.c_str());
}

// A lost link: kdsim killed under kdcart (its pty closed). kdcart says which link, exits
// non-zero, and never hangs.
TEST_CASE("lost link: kdsim killed while the target runs and while it is stopped") {
    for (int mode : {0, 1, 2}) { // running; stopped, then end of input; stopped, then q
        CAPTURE(mode);
        const bool running = mode == 0;
        e2e::Process target({kBin + "/kdsim", "--pty"});
        REQUIRE(target.started());
        std::smatch m;
        REQUIRE(target.expect(R"(pty: (/dev/pts/\d+))", 60s, &m));
        const std::string pts = m[1].str();
        e2e::Process p({kBin + "/kdcart", "-k", "com:port=" + pts, "-b", "-c",
                        kBreakpoints + (running ? "; g" : "")});
        REQUIRE(p.started());
        if (running) {
            EXPECT_OUT(p, "kdtest: tick", 90s);
            target.signal(SIGKILL);
            target.wait_exit(60s);
            EXPECT_OUT(p, "kdcart: the link to the target is lost \\(serial " + pts, 60s);
            EXPECT_OUT(p, "left running as it was, with 2 software and 1 hardware", 10s);
        } else {
            EXPECT_OUT(p, kPrompt, 90s);
            target.signal(SIGKILL);
            target.wait_exit(60s);
            cmd(p, "db kdtest!KdTestBuffer L10");
            EXPECT_OUT(p, "serial " + pts + " closed", 60s);
            EXPECT_OUT(p, kPrompt, 60s);
            if (mode == 1) {
                p.close_stdin();
                EXPECT_OUT(p, "kdcart: the link to the target is lost \\(serial " + pts, 60s);
            } else {
                cmd(p, "q");
                EXPECT_OUT(p, "Could not resume the target before quitting: serial " + pts, 60s);
                EXPECT_OUT(p, "kdcart: could not resume the target", 30s);
            }
        }
        const int code = p.wait_exit(60s);
        CHECK(code != -1);
        CHECK(code != 0);
    }
}

// Over KDCOM a target that reboots starts its packet ids over: kdcart says so, and the
// breakpoints (software and hardware) are written again and hit in the new boot.
TEST_CASE("KDCOM reboot after .crash: 'Target rebooted' and breakpoints applied again") {
    e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "--sim-baud", "0", "-b",
                    "-c", "bp kdtest!KdTestCompute; ba e1 kdtest!KdTestUpdate"});
    REQUIRE(p.started());
    EXPECT_OUT(p, kPrompt, 120s);
    cmd(p, ".crash");
    EXPECT_OUT(p, "For analysis of this file, run !analyze -v", 60s);
    EXPECT_OUT(p, kPrompt, 60s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Target rebooted \(its KDCOM packet ids started over\))", 90s);
    EXPECT_OUT(p, "kdtest: DriverEntry", 60s);
    // (The symbol warning for the rebooted target's kdtest.sys may come between, on stderr.)
    EXPECT_OUT(p, "Breakpoint 0 hit\n", 90s);
    EXPECT_OUT(p, "kdtest!KdTestCompute:\n", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "g");
    EXPECT_OUT(p, "Breakpoint 1 hit\n", 60s);
    EXPECT_OUT(p, "kdtest!KdTestUpdate:\n", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "r dr7");
    std::smatch m;
    REQUIRE(p.expect(R"(dr7=([0-9a-f]{16}))", 30s, &m));
    CHECK((std::stoull(m[1].str(), nullptr, 16) & 0x3) != 0);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "q");
    EXPECT_OUT(p, "quit:", 60s);
    CHECK(p.wait_exit(60s) == 0);
}
