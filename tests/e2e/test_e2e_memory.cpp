// End to end: memory commands against kdsim. A long `db` over the paced 115200-baud link
// streams, and a Ctrl+C typed on a real terminal stops it within a request and is then
// forgotten (the next `g` runs); s finds what eb/ea/eu planted and a string in kdtest.sys; f,
// .writemem and .readmem round-trip; dD/df/dyb and the control registers answer. sxe ld / sxe
// ud over a WinDbg-style pipe connection string stop on loads only / unloads only.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Process.h"
#include "tests/e2e/PtyProcess.h"

#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-mem-XXXXXX";
        if (::mkdtemp(tmpl) != nullptr) {
            path = tmpl;
        }
    }
    ~TempDir() {
        if (!path.empty()) {
            std::string c = "rm -rf '" + path + "'";
            (void)!std::system(c.c_str());
        }
    }
};

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("ctrl+c during a long db on a 115200-baud link: streams, stops within a request, "
          "is forgotten") {
    TempDir run_dir;
    REQUIRE(!run_dir.path.empty());
    e2e::PtyProcess p({kBin + "/kdcart", "--sim", "-b", "--kdsim", kBin + "/kdsim"},
                      {"TERM=dumb", "XDG_RUNTIME_DIR=" + run_dir.path});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    // 16 MiB from the kernel's image on: about 25 minutes of serial link. The first lines
    // show up as their request completes, long before the rest is read.
    const auto t0 = std::chrono::steady_clock::now();
    p.line("db nt L1000000");
    EXPECT_OUT(p, R"(fffff800`00600000  4d 5a [0-9a-f ]{2}[ -])", 10s);
    EXPECT_OUT(p, R"(fffff800`00601ff0  )", 30s); // two requests' worth of lines
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);

    // ^C: the display stops before its next request (one request is ~0.4 s at 115200 baud)
    // and the prompt comes back.
    p.ctrl_c();
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_OUT(p, kPrompt, 5s);
    CHECK(std::chrono::steady_clock::now() - t1 < 3s);
    // Nothing more of the display after the prompt.
    const std::string after = p.drain(1500ms);
    CHECK(after.find("fffff800`006") == std::string::npos);

    // The session goes on.
    p.line("r rip");
    EXPECT_OUT(p, R"(rip=fffff8[0-9a-f]{10})", 20s);
    EXPECT_OUT(p, kPrompt, 10s);

    // The ^C was spent on db: g runs the target (it prints its ticks) instead of breaking in.
    p.line("g");
    EXPECT_OUT(p, "kdtest: tick", 30s);
    const std::string running = p.drain(2500ms);
    CHECK(running.find("Break instruction exception") == std::string::npos);
    p.ctrl_c();
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, kPrompt, 30s);

    p.line("q");
    const int rc = p.wait_exit(30s);
    if (rc != 0) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    CHECK(rc == 0);
}

TEST_CASE("s, f, ea/eu/eza, .writemem/.readmem, dD/df/dyb, r cr0/gdtr/xmm0 against kdsim") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    e2e::Process p(
        {kBin + "/kdcart", "--sim", "-b", "--sim-baud", "0", "--kdsim", kBin + "/kdsim"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    // A string kdsim's kdtest.sys carries (its DbgPrint format).
    cmd(p, "s -a kdtest L20000 \"kdtest: tick\"");
    EXPECT_OUT(
        p,
        R"(fffff880`012[0-9a-f]{5}  6b 64 74 65 73 74 3a 20-74 69 63 6b [0-9a-f ]{11}  kdtest: tick)",
        30s);
    EXPECT_OUT(p, kPrompt, 10s);

    // Plant a pattern with eb, find it with s -b (and only there).
    cmd(p, "f kdtest!KdTestBuffer L100 0");
    EXPECT_OUT(p, "Filled 0x100 bytes", 30s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "eb kdtest!KdTestBuffer+0x41 de ad be ef");
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "s -b kdtest!KdTestBuffer L100 de ad be ef");
    std::smatch m;
    REQUIRE(p.expect(
        R"((fffff880`012[0-9a-f]{5})  de ad be ef 00 00 00 00-00 00 00 00 00 00 00 00  \.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\n)",
        30s, &m));
    const std::string hit = m[1].str();
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "? kdtest!KdTestBuffer+0x41");
    EXPECT_OUT(p, "= " + hit, 10s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "s -[1]b kdtest!KdTestBuffer L100 ad be");
    EXPECT_OUT(p, R"(\n(fffff880`012[0-9a-f]{5})\n)" + kPrompt, 30s);
    // Dwords are searched at dword alignment and shown as dc.
    cmd(p, "ed kdtest!KdTestBuffer+0x80 12345678");
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "s -d kdtest!KdTestBuffer L40 12345678");
    EXPECT_OUT(p, R"(fffff880`012[0-9a-f]{5}  12345678 00000000 00000000 00000000  xV4\.)", 30s);
    EXPECT_OUT(p, kPrompt, 10s);

    // Strings: ea writes no NUL, eza does; eu/s -u in UTF-16.
    cmd(p, "eza kdtest!KdTestBuffer+0x90 \"crash cart\"");
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "da kdtest!KdTestBuffer+0x90");
    EXPECT_OUT(p, R"(  "crash cart"\n)", 10s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "eu kdtest!KdTestBuffer+0xc0 \"kd\"");
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "s -u kdtest!KdTestBuffer L80 \"kd\"");
    EXPECT_OUT(p, R"(  6b 00 64 00 00 00 00 00-00 00 00 00 00 00 00 00  k\.d\.)", 30s);
    EXPECT_OUT(p, kPrompt, 10s);

    // f repeats its pattern.
    cmd(p, "f kdtest!KdTestBuffer L10 'a' 'b' 'c'");
    EXPECT_OUT(p, "Filled 0x10 bytes", 10s);
    cmd(p, "db kdtest!KdTestBuffer L10");
    EXPECT_OUT(p, R"(  61 62 63 61 62 63 61 62-63 61 62 63 61 62 63 61  abcabcabcabcabca\n)", 10s);
    EXPECT_OUT(p, kPrompt, 10s);

    // .writemem writes the range to a file; .readmem puts a file into memory.
    const std::string image = dir.path + "/nt.bin";
    cmd(p, ".writemem " + image + " nt L2000");
    EXPECT_OUT(p, "Writing 2000 bytes", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    const std::string bytes = slurp(image);
    CHECK(bytes.size() == 0x2000);
    CHECK(bytes.substr(0, 2) == "MZ");
    const std::string patch = dir.path + "/patch.bin";
    {
        std::ofstream f(patch, std::ios::binary);
        f << "KDCART!";
    }
    cmd(p, ".readmem " + patch + " kdtest!KdTestBuffer");
    EXPECT_OUT(p, "Reading 7 bytes", 30s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "db kdtest!KdTestBuffer L8");
    EXPECT_OUT(p, R"(  4b 44 43 41 52 54 21 62  +KDCART!b\n)", 10s);
    EXPECT_OUT(p, kPrompt, 10s);

    // Floating-point and binary displays.
    cmd(p, "eq kdtest!KdTestBuffer 3ff8000000000000 4000000040400000");
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "dD kdtest!KdTestBuffer L1");
    EXPECT_OUT(p, kAddr + R"( +1\.5\n)", 10s);
    cmd(p, "df kdtest!KdTestBuffer+8 L2");
    EXPECT_OUT(p, kAddr + R"( +3 +2\n)", 10s);
    cmd(p, "dyb kdtest!KdTestBuffer+8 L4");
    EXPECT_OUT(p,
               R"( +76543210 76543210 76543210 76543210\n +-------- -------- -------- --------\n)",
               10s);
    EXPECT_OUT(p, kAddr + R"(  00000000 00000000 01000000 01000000  00 00 40 40\n)", 10s);
    EXPECT_OUT(p, kPrompt, 10s);

    // Control, descriptor and SSE registers.
    cmd(p, "r cr0, cr3, gdtr, idtl, xmm0:uq, mxcsr");
    EXPECT_OUT(p, R"(cr0=00000000[0-9a-f]{8}\ncr3=[0-9a-f]{16}\ngdtr=fffff[0-9a-f]{11}\n)", 20s);
    EXPECT_OUT(p, R"(idtl=[0-9a-f]{4}\nxmm0=[0-9a-f]{16} [0-9a-f]{16}\nmxcsr=[0-9a-f]{8}\n)", 10s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "rM 0x80");
    EXPECT_OUT(p, R"(cr0=[0-9a-f]{16} cr2=[0-9a-f]{16} cr3=[0-9a-f]{16}\ncr8=[0-9a-f]{16}\n)", 20s);
    EXPECT_OUT(p, kPrompt, 10s);

    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("sxe ld stops on loads only with WinDbg's ModLoad line, sxe ud on unloads; "
          "com:pipe,port=PATH,resets=0,reconnect") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string sock = dir.path + "/kd.sock";
    // kdlate.sys: loaded 3 s after boot, unloaded 2 s after each load, loaded again 2 s after.
    e2e::Process sim({kBin + "/kdsim", "--unix", sock, "--late-driver", "3000,2000,2000"});
    REQUIRE(sim.started());
    for (int i = 0; i < 300 && ::access(sock.c_str(), F_OK) != 0; ++i) {
        std::this_thread::sleep_for(100ms);
    }
    REQUIRE(::access(sock.c_str(), F_OK) == 0);
    e2e::Process p({kBin + "/kdcart", "-k", "com:pipe,port=" + sock + ",resets=0,reconnect", "-b",
                    "-c", "sxe ld; g"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(ld - Load module - break\n)", 60s);
    // The next stop is a load (an unload in between runs on): ModLoad, then where it stopped.
    std::smatch m;
    const bool stopped = p.expect(R"((ModLoad|Unload module)[^\n]*\n)", 60s, &m);
    if (!stopped) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    REQUIRE(stopped);
    CHECK(m[1].str() == "ModLoad");
    CHECK(m[0].str().find("ModLoad: fffff880`01400000 fffff880`014") == 0);
    CHECK(m[0].str().find("   \\SystemRoot\\system32\\drivers\\kdlate.sys\n") != std::string::npos);
    EXPECT_OUT(p, "\n" + kAddr + " [0-9a-f]+ +[a-z]", 30s); // the code line where it stopped
    EXPECT_OUT(p, kPrompt, 30s);

    cmd(p, "sxd ld; sxe ud; g");
    EXPECT_OUT(p, R"(ud - Unload module - break\n)", 30s);
    const bool unloaded = p.expect(R"((ModLoad|Unload module)[^\n]*\n)", 60s, &m);
    if (!unloaded) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    REQUIRE(unloaded);
    CHECK(m[0].str() ==
          "Unload module \\SystemRoot\\system32\\drivers\\kdlate.sys at fffff880`01400000\n");
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "sxd ud");
    EXPECT_OUT(p, R"(ud - Unload module - ignore\n)", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("pa steps to an address showing every step, tc traces to the next call") {
    e2e::Process p(
        {kBin + "/kdcart", "--sim", "-b", "--sim-baud", "0", "--kdsim", kBin + "/kdsim"});
    REQUIRE(p.started());
    EXPECT_OUT(p, kPrompt, 60s);
    cmd(p, "bp kdtest!KdTestCompute");
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestCompute:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "bc *");
    EXPECT_OUT(p, kPrompt, 30s);
    // To the return address: every step shows the registers; the last one is in the caller.
    cmd(p, "pa poi(@rsp)");
    EXPECT_OUT(p, R"(rip=fffff880012[0-9a-f]{5})", 30s);
    EXPECT_OUT(p, R"(rip=fffff880012[0-9a-f]{5})", 30s);
    EXPECT_OUT(p, R"(kdtest!KdTestLoop\+0x[0-9a-f]+:\n)" + kAddr + " ", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    // To the next call: only the stop at the call instruction is shown.
    cmd(p, "tc");
    EXPECT_OUT(p, R"(rip=[0-9a-f]{16})", 30s);
    EXPECT_OUT(p, "\n" + kAddr + R"( [0-9a-f]+ +call +)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}
