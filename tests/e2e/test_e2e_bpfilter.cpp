// End to end: process- and thread-filtered breakpoints (bp /t ETHREAD, bp /p EPROCESS). kdsim
// with three processors: CPU 0 runs kdtest's system thread (System process), CPUs 1 and 2 sit in
// nt!KiIdleLoop, each in its own idle thread of the Idle process, so a breakpoint on the loop's
// `hlt` is hit by both idle processors every clock tick. Every address comes from kdcart's own
// output (`~`, `!thread`, `!process 0 0`). Serial and KDNET.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Block.h"

#include <algorithm>
#include <csignal>
#include <doctest/doctest.h>
#include <regex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::command_output;
using e2e::kAddr;

namespace {
const std::string kBin = KDCART_BIN_DIR;

e2e::Process start(const std::string& sim, bool symbols = true) {
    std::vector<std::string> args = {kBin + "/kdcart", "--sim",      sim, "--kdsim",
                                     kBin + "/kdsim",  "--sim-cpus", "3", "-b"};
    if (symbols) {
        args.insert(args.end(), {"-y", kBin + "/../hw/images"});
    }
    return e2e::Process(args);
}

// The first capture of `re` in `text`, "" when it is not there.
std::string capture(const std::string& text, const std::string& re) {
    std::smatch m;
    if (std::regex_search(text, m, std::regex(re))) {
        return m[1];
    }
    return {};
}

// "fffffa80`00009038" -> "fffffa8000009038" (how !thread and !process print addresses).
std::string plain(std::string addr) {
    addr.erase(std::remove(addr.begin(), addr.end(), '`'), addr.end());
    return addr;
}
// The other way round.
std::string ticked(const std::string& addr) {
    return addr.size() == 16 ? addr.substr(0, 8) + "`" + addr.substr(8) : addr;
}

void filtered_breakpoints(const std::string& sim) {
    auto p = start(sim);
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 120s);

    // Processor 2's thread (an idle thread), as `~` shows it.
    const std::string procs = command_output(p, "~");
    INFO(procs);
    const std::string idle2 = capture(
        procs, R"(\n +2 +KPRCB: )" + kAddr + R"( +Current thread: ()" + kAddr + R"() \(idle\))");
    const std::string thread0 =
        capture(procs, R"(\. +0 +KPRCB: )" + kAddr + R"( +Current thread: ()" + kAddr + ")");
    REQUIRE(!idle2.empty());
    REQUIRE(!thread0.empty());
    CHECK(idle2 != thread0);

    // Its process (Idle) from !thread; System's EPROCESS from !process 0 0.
    const std::string t2 = command_output(p, "!thread " + idle2);
    INFO(t2);
    const std::string idle_process = capture(t2, R"(Owning Process +([0-9a-f]{16}) +Image: +Idle)");
    REQUIRE(!idle_process.empty());
    const std::string list = command_output(p, "!process 0 0");
    const std::string system_process =
        capture(list, R"(PROCESS ([0-9a-f]{16})\n[^\n]*\n[^\n]*\n +Image: System\n)");
    REQUIRE(!system_process.empty());
    CHECK(system_process != idle_process);
    // @$thread and @$proc name the current (CPU 0's) thread and its process.
    CHECK(command_output(p, "? @$thread").find(thread0) != std::string::npos);
    CHECK(command_output(p, "? @$proc").find(ticked(system_process)) != std::string::npos);

    // bp /t: only processor 2's idle thread stops, hit after hit.
    command_output(p, "bp /t " + idle2 + " nt!KiIdleLoop");
    const std::string bl = command_output(p, "bl");
    CHECK(bl.find(" 0 e ") != std::string::npos);
    CHECK(bl.find("nt!KiIdleLoop\n     Match thread data " + idle2 + "\n") != std::string::npos);
    for (int i = 0; i < 3; ++i) {
        cmd(p, "g");
        EXPECT_OUT(p, R"(Breakpoint 0 hit\nnt!KiIdleLoop:\n)" + kAddr + R"( f4 +hlt\n2: kd> )",
                   120s);
        const std::string th = command_output(p, "!thread");
        INFO(th);
        CHECK(th.find("THREAD " + plain(idle2) + " ") != std::string::npos);
        CHECK(th.find("RUNNING on processor 2") != std::string::npos);
        CHECK(command_output(p, "? @$thread").find(idle2) != std::string::npos);
        CHECK(command_output(p, ".thread").find("Implicit thread is now " + idle2 + "\n") !=
              std::string::npos);
    }

    // ba e1 with /t after the size (WinDbg's place for options): the hardware breakpoint is
    // in every processor's debug registers, processor 1's hits are passed over.
    command_output(p, "bc *; ba e1 /t " + idle2 + " nt!KiIdleLoop");
    CHECK(command_output(p, "bl").find(" e 1 0001 (0001) nt!KiIdleLoop\n     Match thread data " +
                                       idle2 + "\n") != std::string::npos);
    for (int i = 0; i < 2; ++i) {
        cmd(p, "g");
        EXPECT_OUT(p, R"(Breakpoint 0 hit\nnt!KiIdleLoop:\n)" + kAddr + R"( f4 +hlt\n2: kd> )",
                   120s);
        CHECK(command_output(p, "? @$thread").find(idle2) != std::string::npos);
    }

    // bp /p Idle: an idle processor stops, in Idle's process; the pass count works as usual.
    cmd(p, "bc *; bp /p " + idle_process + " nt!KiIdleLoop");
    EXPECT_OUT(p, R"(\d: kd> )", 60s);
    const std::string blp = command_output(p, "bl");
    CHECK(blp.find("nt!KiIdleLoop\n     Match process data " + ticked(idle_process) + "\n") !=
          std::string::npos);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nnt!KiIdleLoop:\n)" + kAddr + R"( f4 +hlt\n[12]: kd> )",
               120s);
    const std::string thp = command_output(p, "!thread");
    CHECK(thp.find("Owning Process            " + idle_process) != std::string::npos);
    CHECK(command_output(p, "? @$proc").find(ticked(idle_process)) != std::string::npos);

    // bp /p System on the idle loop: hit every tick by the idle processors, never reported.
    // After ~2 s of running, the break-in is what stops the target and the pass count has not
    // moved. Both filters at once (System's thread, Idle's process) never match either.
    cmd(p, "bc *; bp /p " + system_process + " nt!KiIdleLoop 5; bp /t " + thread0 + " /p " +
               idle_process + " nt!KiIdleLoop+1");
    EXPECT_OUT(p, R"(\d: kd> )", 60s);
    const std::string bls = command_output(p, "bl");
    INFO(bls);
    CHECK(bls.find("0005 (0005) nt!KiIdleLoop\n     Match process data " + ticked(system_process) +
                   "\n") != std::string::npos);
    CHECK(bls.find("nt!KiIdleLoop+0x1\n     Match thread data " + thread0 +
                   "  Match process data " + ticked(idle_process) + "\n") != std::string::npos);
    const size_t before = p.mark();
    cmd(p, "g");
    std::this_thread::sleep_for(2500ms);
    p.signal(SIGINT);
    // The break-in may be taken at one of the filtered-out stops: any processor.
    EXPECT_OUT(p, R"(\d: kd> )", 120s);
    const std::string run = p.since(before);
    INFO(run);
    CHECK(run.find("Breakpoint 0 hit") == std::string::npos);
    CHECK(run.find("Breakpoint 1 hit") == std::string::npos);
    CHECK(run.find("Break instruction exception - code 80000003") != std::string::npos);
    CHECK(command_output(p, "bl").find("0005 (0005) nt!KiIdleLoop\n") != std::string::npos);

    // An address that does not evaluate is refused, nothing is set.
    const std::string bad = command_output(p, "bp /p nosuchmodule!nothing nt!KiIdleLoop");
    CHECK(bad.find("Bad process address 'nosuchmodule!nothing'") != std::string::npos);
    CHECK(command_output(p, "bl").find(" 2 e ") == std::string::npos);

    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
// Without nt's PDB the process of a thread cannot be read: a /p hit stops and says why (never a
// stop dropped in silence); /t needs no read and still filters.
void without_symbols(const std::string& sim) {
    auto p = start(sim, false);
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 120s);
    const std::string procs = command_output(p, "~");
    const std::string idle1 = capture(
        procs, R"(\n +1 +KPRCB: )" + kAddr + R"( +Current thread: ()" + kAddr + R"() \(idle\))");
    REQUIRE(!idle1.empty());
    command_output(p, "bp /t " + idle1 + " nt!KiIdleLoop");
    for (int i = 0; i < 2; ++i) {
        cmd(p, "g");
        EXPECT_OUT(p, R"(Breakpoint 0 hit\nnt!KiIdleLoop:\n)" + kAddr + R"( f4 +hlt\n1: kd> )",
                   120s);
    }
    // Any process: the check cannot be made, so the first hit stops, with the reason.
    command_output(p, "bc *; bp /p 0xfffffa8000000648 nt!KiIdleLoop");
    cmd(p, "g");
    EXPECT_OUT(p,
               R"(Breakpoint 0: cannot tell the current thread or process \(NT symbols are )"
               R"(incorrect, please fix symbols\); stopping)",
               120s);
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nnt!KiIdleLoop:\n)", 60s);
    EXPECT_OUT(p, R"([12]: kd> )", 60s);
    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
} // namespace

TEST_CASE("without nt's PDB, bp /t still filters and bp /p stops saying why (serial)") {
    without_symbols("com");
}
TEST_CASE("bp /t and bp /p stop only in their thread and process (serial)") {
    filtered_breakpoints("com");
}
TEST_CASE("bp /t and bp /p stop only in their thread and process (KDNET)") {
    filtered_breakpoints("net");
}
