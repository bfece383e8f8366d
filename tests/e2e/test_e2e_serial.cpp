// End to end: the real kdcart drives the real kdsim over a pty pair paced like a 115200-baud
// null-modem. Asserts on what the user sees.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {
const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

e2e::Process start_sim(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return e2e::Process(argv);
}

} // namespace

TEST_CASE("serial: break in, r, dq KDBG, lm, g with DbgPrint, break in again, q") {
    auto p = start_sim({"-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "Connected to Windows", 60s);
    EXPECT_OUT(p, R"(Kernel base = 0xfffff8[0-9a-f]{2}`[0-9a-f]{8} PsLoadedModuleList)", 30s);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n[0-9a-f]{8}`[0-9a-f]{8} cc +int +3)", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);

    e2e::cmd(p, "r");
    EXPECT_OUT(p, R"(rax=[0-9a-f]{16} rbx=[0-9a-f]{16} rcx=[0-9a-f]{16}\n)", 30s);
    EXPECT_OUT(p, R"( r8=[0-9a-f]{16}  r9=[0-9a-f]{16} r10=)", 5s);
    EXPECT_OUT(p, R"(iopl=0 +\w\w \w\w ei)", 5s);
    EXPECT_OUT(p, R"(cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b +efl=[0-9a-f]{8})", 5s);
    EXPECT_OUT(p, kPrompt, 10s);

    // The debugger data block through the kernel's export: tag 'KDBG' in the third qword.
    e2e::cmd(p, "dq nt!KdDebuggerDataBlock L4");
    EXPECT_OUT(p, R"([0-9a-f]{8}`[0-9a-f]{8}  [0-9a-f]{8}`[0-9a-f]{8} [0-9a-f]{8}`[0-9a-f]{8}\n)",
               30s);
    EXPECT_OUT(p, R"([0-9a-f]{8}`[0-9a-f]{8}  [0-9a-f]{8}`4742444b [0-9a-f]{8}`[0-9a-f]{8}\n)", 5s);
    EXPECT_OUT(p, kPrompt, 10s);
    e2e::cmd(p, "dc nt!KdDebuggerDataBlock+10 L4");
    EXPECT_OUT(p, R"(4742444b [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8}  KDBG)", 30s);

    e2e::cmd(p, "lm");
    EXPECT_OUT(p, "start             end                 module name\n", 30s);
    EXPECT_OUT(p, R"(fffff8[0-9a-f]{2}`[0-9a-f]{8} fffff8[0-9a-f]{2}`[0-9a-f]{8}   nt  )", 30s);
    EXPECT_OUT(p, R"(   kdtest )", 30s);
    EXPECT_OUT(p, kPrompt, 10s);

    e2e::cmd(p, "g");
    EXPECT_OUT(p, "kdtest: tick", 30s);
    p.signal(SIGINT);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, kPrompt, 30s);

    e2e::cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("serial: typos and unreadable memory get one clear line and the session goes on") {
    auto p = start_sim({"-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    e2e::cmd(p, "frobnicate 12");
    EXPECT_OUT(p, R"(\^ Syntax error in 'frobnicate 12')", 10s);
    e2e::cmd(p, "db 0 L10");
    EXPECT_OUT(p, R"(00000000`00000000  \?\? \?\? \?\? \?\? \?\? \?\? \?\? \?\?-\?\? \?\?)", 30s);
    e2e::cmd(p, "dq nosuchmodule!Foo");
    EXPECT_OUT(p, R"(Couldn't resolve error at 'nosuchmodule!Foo')", 30s);
    e2e::cmd(p, "r nosuchreg");
    EXPECT_OUT(p, R"(Bad register error)", 10s);
    e2e::cmd(p, "r rax=1234; r rax");
    EXPECT_OUT(p, R"(rax=0000000000001234)", 30s);
    e2e::cmd(p, "eb nt!KdDebuggerDataBlock+10 4b; db nt!KdDebuggerDataBlock+10 L4");
    EXPECT_OUT(p, R"(4b 44 42 47)", 30s);
    e2e::cmd(p, "vertarget");
    EXPECT_OUT(p, R"(Kernel Version \d+ (UP|MP))", 30s);
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("serial: commands from a pipe, -c, and exit status 0 after q") {
    auto p = start_sim({"-b", "-c", "r rip; ? 0n10"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(rip=fffff8[0-9a-f]{10})", 90s);
    EXPECT_OUT(p, R"(Evaluate expression: 10 = 00000000`0000000a)", 30s);
    p.send("lm m kd*\nq\n");
    EXPECT_OUT(p, R"(kdtest)", 30s);
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("a target that never answers: clear message and non-zero exit") {
    std::string path = "/tmp/kdcart-silent-" + std::to_string(::getpid()) + ".sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    e2e::Process p(
        {kBin + "/kdcart", "-k", "com:pipe,port=" + path, "-b", "--connect-timeout", "3"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "Waiting to reconnect...", 10s);
    int code = p.wait_exit(20s);
    CHECK(code != 0);
    CHECK(code != -1);
    CHECK(p.transcript().find("did not answer") != std::string::npos);
    ::close(fd);
    ::unlink(path.c_str());
}

TEST_CASE("serial: two processors, ~1 switches to the idle CPU and back") {
    auto p = start_sim({"-b", "--sim-cpus", "2"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(Kernel Version \d+ MP \(2 procs\))", 90s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    e2e::cmd(p, "~1");
    // Processor 1 idles in KiIdleLoop's "hlt; jmp": frozen at the hlt, or at the jmp when an
    // interrupt woke it just before the freeze (as a real idle processor can be).
    EXPECT_OUT(
        p,
        R"(nt!KiIdleLoop(\+0x[0-9a-f]+)?:\n[0-9a-f]{8}`[0-9a-f]{8} (f4 +hlt|eb[0-9a-f]{2} +jmp +nt!KiIdleLoop))",
        30s);
    EXPECT_OUT(p, "1: kd> ", 30s);
    e2e::cmd(p, "~0");
    EXPECT_OUT(p, "nt!RtlpBreakWithStatusInstruction:", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    e2e::cmd(p, "~7");
    EXPECT_OUT(p, R"(Processor 7 does not exist)", 10s);
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("serial: .reboot, the target comes back, break in again") {
    auto p = start_sim({"-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    e2e::cmd(p, ".reboot");
    EXPECT_OUT(p, R"(Shutdown occurred at \(.*\)\.\.\.unloading all symbol tables\.)", 30s);
    EXPECT_OUT(p, "kdtest: DriverEntry", 60s);
    EXPECT_OUT(p, "kdtest: tick", 30s);
    p.signal(SIGINT);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    e2e::cmd(p, "dq nt!KdDebuggerDataBlock+10 L1");
    EXPECT_OUT(p, R"(00000380`4742444b)", 30s);
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("serial: attach without -b, DbgPrint flows, Ctrl+C breaks in") {
    auto p = start_sim({});
    REQUIRE(p.started());
    EXPECT_OUT(p, "kdtest: tick 3", 60s); // kdlate's load at ~5 s is taken without stopping
    EXPECT_OUT(p, "kdtest: tick 4", 60s);
    p.signal(SIGINT);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}
