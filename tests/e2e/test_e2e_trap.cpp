// End to end: threads that are not running, through nt's _KSWITCH_FRAME, _KTRAP_FRAME and
// _KPRCB.DispatcherReadyListHead by field name. kdsim's nt parks its waiting and ready threads
// at boot (hw/README.md "Threads that are not running"): a waiting thread's KernelStack holds a
// switch frame whose return address is in nt!KiSwapContext, a user-mode wait entered through
// nt!KiSimSystemCall with a trap frame (KTHREAD.TrapFrame), a ready thread was preempted through
// nt!KiDpcInterrupt (a trap frame) and sits in its processor's ready list. Checked: !thread /
// !process 0 7 / .thread + k stacks named by symbol against the switch frame in memory; .trap's
// registers against the trap frame in memory, then k from it; !ready by priority against
// KPRCB.ReadySummary; a broken ready list reported where it broke.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "hw/images/sim_abi.h"
#include "tests/e2e/Block.h"
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {
const std::string kBin = KDCART_BIN_DIR;
const std::string kA = R"(([0-9a-f]{8}`[0-9a-f]{8}))"; // a WinDbg address, captured
const std::string kH = R"(([0-9a-f]{16}))";            // 16 hex digits, captured

// One command line's output up to the next prompt, without kdsim's log lines.
std::string block(e2e::Process& p, const std::string& command,
                  std::chrono::milliseconds timeout = 120s) {
    return e2e::command_output(p, command, timeout);
}

bool match(const std::string& text, const std::string& re, std::smatch* m = nullptr) {
    std::smatch local;
    return std::regex_search(text, m ? *m : local, std::regex(re));
}

uint64_t num(const std::string& s) {
    std::string digits;
    for (char c : s) {
        if (c != '`') {
            digits += c;
        }
    }
    return std::stoull(digits, nullptr, 16);
}

std::string hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string h16(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string windbg(uint64_t v) {
    std::string s = h16(v);
    return s.substr(0, 8) + "`" + s.substr(8);
}

// `? expr` as a number.
uint64_t eval(e2e::Process& p, const std::string& expr) {
    const std::string out = block(p, "? " + expr);
    std::smatch m;
    REQUIRE_MESSAGE(match(out, "= " + kA + "\n", &m), out);
    return num(m[1]);
}

// One quadword of target memory (`dq ADDR L1`).
uint64_t qword(e2e::Process& p, uint64_t addr) {
    const std::string out = block(p, "dq " + windbg(addr) + " L1");
    std::smatch m;
    REQUIRE_MESSAGE(match(out, windbg(addr) + "  " + kA + "\n", &m), out);
    return num(m[1]);
}

// The ETHREAD of thread `tid` of process `pid` (`!process PID 2`).
std::string thread_of(e2e::Process& p, const char* pid, const char* cid) {
    const std::string out = block(p, std::string("!process ") + pid + " 2");
    std::smatch m;
    REQUIRE_MESSAGE(match(out, "THREAD " + kH + "  Cid " + cid + "  ", &m), out);
    return m[1].str();
}

} // namespace

TEST_CASE("threads that are not running: switch frames, trap frames, ready lists") {
    const std::string images = kBin + "/../hw/images";
    e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "--sim-baud", "0", "-b",
                    "-y", images});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 120s);

    // ---- a kernel-mode wait: System's WrQueue worker ------------------------------------
    const std::string worker = thread_of(p, "4", "0004\\.0018");
    std::string out = block(p, "!thread " + worker);
    INFO(out);
    std::smatch m;
    REQUIRE(match(out, "\nStack Init " + kH + " Current " + kH + "\n", &m));
    const uint64_t kernel_stack = num(m[2]);
    REQUIRE(match(out,
                  "\nChild-SP          RetAddr           Call Site\n" + kA + " " + kA +
                      R"( nt!KiSwapContext\+0x([0-9a-f]+)\n)" + kA + " " + kA +
                      R"( nt!KiSwapThread\+0x([0-9a-f]+)\n)" + kA + " " + kA +
                      R"( nt!KeWaitForSingleObject\+0x([0-9a-f]+)\n)" + kA +
                      R"( 00000000`00000000 nt!KiSimThreadWait\+0x([0-9a-f]+)\n)",
                  &m));
    const uint64_t sp0 = num(m[1]), ret0 = num(m[2]), off0 = num(m[3]);
    const uint64_t ret1 = num(m[5]), off1 = num(m[6]), ret2 = num(m[8]), off2 = num(m[9]);
    const uint64_t off3 = num(m[11]);
    // Frame 0 is where the switch frame at KTHREAD.KernelStack returns to, its stack pointer
    // just past that frame; each return address is where the next frame executes.
    CHECK(qword(p, kernel_stack + SIM_KSWITCH_FRAME_RETURN) ==
          eval(p, "nt!KiSwapContext+0x" + hex(off0)));
    CHECK(sp0 == kernel_stack + SIM_KSWITCH_FRAME_SIZE);
    CHECK(ret0 == eval(p, "nt!KiSwapThread+0x" + hex(off1)));
    CHECK(ret1 == eval(p, "nt!KeWaitForSingleObject+0x" + hex(off2)));
    CHECK(ret2 == eval(p, "nt!KiSimThreadWait+0x" + hex(off3)));
    // .thread + k: the same frames.
    CHECK(match(block(p, ".thread " + worker), "Implicit thread is now "));
    out = block(p, "k");
    CHECK(match(out, "  \\*\\*\\* Stack trace for last set context - .thread/.cxr resets it\n"
                     "Child-SP          RetAddr           Call Site\n" +
                         windbg(sp0) + " " + windbg(ret0) + " nt!KiSwapContext\\+0x" + hex(off0) +
                         "\n"));
    block(p, ".thread");

    // Every waiting and ready thread's stack in !process 0 7 starts in KiSwapContext; the ready
    // ones were switched out from KiDispatchInterrupt.
    out = block(p, "!process 0 7");
    size_t waits = 0, swaps = 0, readies = 0, preempted = 0;
    for (size_t at = 0; (at = out.find(" WAIT: (", at)) != std::string::npos; ++at) {
        ++waits;
    }
    for (size_t at = 0; (at = out.find("Call Site\n        ", at)) != std::string::npos; ++at) {
        const size_t eol = out.find('\n', at + 10);
        const std::string first = out.substr(at + 10, eol - at - 10);
        swaps += first.find(" nt!KiSwapContext+0x") != std::string::npos;
        const size_t eol2 = out.find('\n', eol + 1);
        preempted +=
            out.substr(eol, eol2 - eol).find(" nt!KiDispatchInterrupt+0x") != std::string::npos;
    }
    for (size_t at = 0; (at = out.find(" READY on processor ", at)) != std::string::npos; ++at) {
        ++readies;
    }
    CHECK(waits == 7);
    CHECK(swaps == waits + readies);
    CHECK(readies == 2);
    CHECK(preempted == readies);
    CHECK(out.find("Unable to get the thread's stack") == std::string::npos);

    // ---- a user-mode wait: smss's thread entered through a system call --------------------
    const std::string smss = thread_of(p, "154", "0154\\.0158");
    out = block(p, "!thread " + smss);
    REQUIRE_MESSAGE(match(out,
                          R"( nt!NtWaitForSingleObject\+0x[0-9a-f]+\n)" + kA + " " + kA +
                              R"( nt!KiSimSystemCall\+0x[0-9a-f]+ \(TrapFrame @ )" + kA + "\\)\n",
                          &m),
                    out);
    const uint64_t user_rip = num(m[2]), syscall_trap = num(m[3]);
    const std::string smss_stack = out;
    // The trap frame is the one nt recorded in KTHREAD.TrapFrame.
    out = block(p, "dt nt!_KTHREAD " + smss + " TrapFrame");
    CHECK(match(out, "TrapFrame +: 0x" + windbg(syscall_trap) + " "));
    CHECK(user_rip == qword(p, syscall_trap + SIM_KTRAP_FRAME_RIP));
    const uint64_t user_rsp = qword(p, syscall_trap + SIM_KTRAP_FRAME_RSP);
    const uint64_t r10 = qword(p, syscall_trap + SIM_KTRAP_FRAME_R10);
    // The walk goes on past the machine frame: the user-mode pc on the user stack (not mapped
    // here: no return address), as WinDbg shows a system call's caller.
    CHECK(match(smss_stack, R"(\(TrapFrame @ )" + windbg(syscall_trap) + "\\)\n" +
                                windbg(user_rsp) + " 00000000`00000000 0x" + hex(user_rip) + "\n"));
    out = block(p, ".trap " + windbg(syscall_trap));
    CHECK(match(out, "(^|\n)NOTE: The trap frame does not contain all registers.\n"
                     "Some register values may be zeroed or incorrect.\nrax="));
    CHECK(match(out, "\nrip=" + h16(user_rip) + " rsp=" + h16(user_rsp) + " rbp="));
    CHECK(match(out, " r10=" + h16(r10) + "\n"));
    CHECK(match(out, "\niopl=[^\n]*\n" + windbg(user_rip) + R"( \?\? +\?\?\?\n$)"));
    CHECK(out.find("cs=") == std::string::npos);
    out = block(p, "k");
    CHECK(match(out, "Call Site\n" + windbg(user_rsp) + " [0-9a-f]{8}`[0-9a-f]{8} 0x" +
                         hex(user_rip) + "\n"));

    // ---- a ready thread: services' 0x288, preempted in nt!KiSimBusyThread -----------------
    const std::string ready = thread_of(p, "280", "0280\\.0288");
    out = block(p, "!thread " + ready);
    REQUIRE_MESSAGE(match(out,
                          "Call Site\n" + kA + " " + kA + R"( nt!KiSwapContext\+0x[0-9a-f]+\n)" +
                              kA + " " + kA + R"( nt!KiDispatchInterrupt\+0x[0-9a-f]+\n)" + kA +
                              " " + kA + R"( nt!KiDpcInterrupt\+0x[0-9a-f]+ \(TrapFrame @ )" + kA +
                              "\\)\n" + kA +
                              R"( 00000000`00000000 nt!KiSimBusyThread\+0x([0-9a-f]+)\n)",
                          &m),
                    out);
    const uint64_t busy_rip = num(m[6]), dpc_trap = num(m[7]), busy_sp = num(m[8]);
    const uint64_t busy_off = num(m[9]);
    CHECK(busy_rip == eval(p, "nt!KiSimBusyThread+0x" + hex(busy_off)));
    CHECK(busy_rip == qword(p, dpc_trap + SIM_KTRAP_FRAME_RIP));
    CHECK(busy_sp == qword(p, dpc_trap + SIM_KTRAP_FRAME_RSP));
    out = block(p, ".trap " + windbg(dpc_trap));
    CHECK(match(out, "(^|\n)NOTE: The trap frame does not contain all registers.\n"));
    CHECK(match(out, "\nrip=" + h16(busy_rip) + " rsp=" + h16(busy_sp) + " rbp="));
    CHECK(match(out, "\nnt!KiSimBusyThread\\+0x" + hex(busy_off) + ":\n" + windbg(busy_rip) +
                         R"( [0-9a-f]+ +\w+)"));
    out = block(p, "kn");
    CHECK(match(out, "  \\*\\*\\* Stack trace for last set context - .thread/.cxr resets it\n"
                     " # Child-SP          RetAddr           Call Site\n00 " +
                         windbg(busy_sp) + " 00000000`00000000 nt!KiSimBusyThread\\+0x" +
                         hex(busy_off) + "\n"));
    // .trap without an address ends it.
    block(p, ".trap");
    CHECK(block(p, "r rip").find("Last set context") == std::string::npos);
    // A trap frame that cannot be read: an error, the session goes on.
    out = block(p, ".trap fffff8de`ad000000");
    CHECK(out.find("rip=") == std::string::npos);
    CHECK(match(out, "fffff8dead000"));

    // ---- !ready: processor 0's lists by priority, highest first ---------------------------
    const std::string svchost_ready = thread_of(p, "338", "0338\\.0340");
    out = block(p, "!ready");
    CHECK_MESSAGE(match(out, "(^|\n)Processor 0: Ready Threads at priority 10\n"
                             "    THREAD " +
                                 ready +
                                 "  Cid 0280\\.0288  Teb: [0-9a-f]{16} Win32Thread: 0{16} READY "
                                 "on processor 0\n"
                                 "Processor 0: Ready Threads at priority 8\n"
                                 "    THREAD " +
                                 svchost_ready +
                                 "  Cid 0338\\.0340  [^\n]* READY on processor 0\n\\s*$"),
                  out);
    // What kdsim's nt holds: ReadySummary has bits 10 and 8.
    out = block(p, "!running");
    REQUIRE(match(out, "\n  0    " + kH + "  ", &m));
    const uint64_t prcb = num(m[1]);
    out = block(p, "dt nt!_KPRCB " + h16(prcb) + " ReadySummary");
    CHECK_MESSAGE(match(out, "ReadySummary +: 0x500\n"), out);
    // A broken list: priority 8's head points into unmapped memory. Reported, the rest shown.
    const uint64_t head = prcb + SIM_KPRCB_DISPATCHER_READY_LIST_HEAD + 8 * 16;
    const uint64_t flink = qword(p, head);
    block(p, "eq " + windbg(head) + " fffff8de`ad000000");
    out = block(p, "!ready");
    CHECK(match(out, "Cid 0280\\.0288"));
    CHECK(match(out, "The ready list is broken"));
    block(p, "eq " + windbg(head) + " " + windbg(flink));
    CHECK(match(block(p, "!ready"), "Cid 0338\\.0340"));

    // The same text from a dump: .dump /f, then kdcart -z.
    const std::vector<std::string> commands = {"!ready",
                                               "!thread " + worker,
                                               "!thread " + smss,
                                               "!thread " + ready,
                                               ".trap " + windbg(dpc_trap),
                                               "k",
                                               ".trap " + windbg(syscall_trap),
                                               ".thread " + worker,
                                               "k"};
    std::vector<std::string> live;
    for (const auto& c : commands) {
        live.push_back(block(p, c));
    }
    block(p, ".thread");
    char tmpl[] = "/tmp/kdcart-e2e-trap-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    const std::string dump = dir + "/full.dmp";
    const std::string saved = block(p, ".dump /f " + dump, 300s);
    INFO(saved);
    REQUIRE(std::filesystem::exists(dump));
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);

    e2e::Process z({kBin + "/kdcart", "-z", dump, "-y", images});
    REQUIRE(z.started());
    EXPECT_OUT(z, "0: kd> ", 60s);
    for (size_t i = 0; i < commands.size(); ++i) {
        INFO(commands[i]);
        CHECK(block(z, commands[i]) == live[i]);
    }
    e2e::cmd(z, "q");
    CHECK(z.wait_exit(30s) == 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}
