// End to end over KDNET: the real kdcart and the real kdsim talk encrypted UDP on 127.0.0.1.
// The same command script must give the same output as over the serial link.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {
const std::string kBin = KDCART_BIN_DIR;


// Deterministic commands: their output does not depend on where the CPU was at break-in.
const char* kScript = "r rip\n"
                      "dq nt!KdDebuggerDataBlock L4\n"
                      "dc nt!KdDebuggerDataBlock+10 L4\n"
                      "lm\n"
                      "vertarget\n"
                      "db kdtest L20\n"
                      "u nt!RtlpBreakWithStatusInstruction L2\n"
                      "? nt+0x10\n"
                      "q\n";

// Runs the script over one link and returns what kdcart printed from the first prompt on.
std::string run_script(const std::string& sim) {
    e2e::Process p({kBin + "/kdcart", "--sim", sim, "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    p.send(kScript);
    const int code = p.wait_exit(120s);
    const std::string all = p.transcript();
    INFO("transcript:\n" << all);
    REQUIRE(code == 0);
    auto first = all.find("0: kd> ");
    REQUIRE(first != std::string::npos);
    // kdsim's own log lines (stderr of the child) are not kdcart's output.
    std::string out;
    size_t pos = first;
    while (pos < all.size()) {
        size_t nl = all.find('\n', pos);
        std::string line = all.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos + 1);
        if (line.find("[kdsim]") == std::string::npos) {
            out += line;
        }
        if (nl == std::string::npos) {
            break;
        }
        pos = nl + 1;
    }
    return out;
}
} // namespace

TEST_CASE("kdnet: attach, break in, r, dq, g with DbgPrint, break in again, q") {
    e2e::Process p({kBin + "/kdcart", "--sim", "net", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(KDNET: target 127\.0\.0\.1:\d+ connected \(KDNET protocol 5\))", 60s);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 60s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    p.send("r\n");
    EXPECT_OUT(p, R"(rax=[0-9a-f]{16} rbx=[0-9a-f]{16} rcx=[0-9a-f]{16}\n)", 30s);
    EXPECT_OUT(p, R"(cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b)", 5s);
    p.send("dq nt!KdDebuggerDataBlock+10 L1\n");
    EXPECT_OUT(p, R"([0-9a-f]{8}`[0-9a-f]{8}  00000380`4742444b)", 30s);
    p.send("r rax=5; g\n");
    EXPECT_OUT(p, "kdtest: tick", 30s);
    p.signal(SIGINT);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, "0: kd> ", 30s);
    p.send("q\n");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("the same script gives the same output over serial and over KDNET") {
    const std::string serial = run_script("com");
    const std::string net = run_script("net");
    CHECK(serial.find("KDBG") != std::string::npos);
    CHECK(serial.find("kdtest") != std::string::npos);
    CHECK(serial == net);
}

TEST_CASE("kdnet: a wrong key is reported within 10 s and kdcart keeps listening") {
    // kdsim offers with one key, kdcart listens with another.
    e2e::Process host({kBin + "/kdcart", "-k", "net:port=50917,hostip=127.0.0.1,key=1.2.3.4", "-b"});
    REQUIRE(host.started());
    e2e::Process sim({kBin + "/kdsim", "--kdnet", "127.0.0.1:50917", "--key", "9.9.9.9"});
    REQUIRE(sim.started());
    EXPECT_OUT(host, R"(OFFERs arrive from 127\.0\.0\.1:\d+ but do not authenticate \(likely a wrong key\))",
               15s);
    CHECK(host.wait_exit(1s) == -1); // still running, still listening
    CHECK(host.transcript().find("9.9.9.9") == std::string::npos);
}
