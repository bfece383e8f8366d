// End to end over IEEE 1394, on the simulated bus: the real kdcart finds kdsim's node by its
// config ROM, checks DEBUG_1394_CONFIG, runs the KD session through the mailboxes and reads
// physical memory by DMA. Covered: attach with break-in, r, dq, !dd (DMA), bp/g, .dump /k
// (every page checked against kdsim's physical memory at the stop), the same over a bus that
// resets every few dozen transactions, the figures with and without DMA, and bad input: wrong
// channel, a node without the debug entries, a mailbox the target never empties, no bus, no
// such /dev/fw*, malformed -k.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/DumpFile.h"
#include "tests/e2e/Process.h"

#include <cstdlib>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {

const std::string kBin = KDCART_BIN_DIR;
constexpr uint64_t kPage = 4096;

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-e2e-1394-XXXXXX";
        if (::mkdtemp(tmpl) != nullptr) {
            path = tmpl;
        }
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Environment for the children started while it lives (kdcart --sim hands it to kdsim).
struct ScopedEnv {
    std::vector<std::string> names;
    explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
        for (auto& [n, v] : vars) {
            ::setenv(n.c_str(), v.c_str(), 1);
            names.push_back(n);
        }
    }
    ~ScopedEnv() {
        for (auto& n : names) {
            ::unsetenv(n.c_str());
        }
    }
};

// kdsim's RAM at its last stop (KDSIM_PHYS_SNAPSHOT): offset = physical address.
struct Snapshot {
    std::vector<std::pair<uint64_t, uint64_t>> runs; // first pfn, count
    std::vector<uint8_t> bytes;
    bool in_ram(uint64_t pfn) const {
        for (auto [b, c] : runs) {
            if (pfn >= b && pfn < b + c) {
                return true;
            }
        }
        return false;
    }
};

Snapshot load_snapshot(const std::string& path) {
    Snapshot s;
    std::ifstream runs(path + ".runs");
    REQUIRE_MESSAGE(runs.good(), path << ".runs missing");
    uint64_t b = 0, c = 0, end = 0;
    while (runs >> std::hex >> b >> c) {
        s.runs.emplace_back(b, c);
        end = std::max(end, b + c);
    }
    REQUIRE(!s.runs.empty());
    s.bytes.assign(end * kPage, 0);
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    f.read(reinterpret_cast<char*>(s.bytes.data()), static_cast<std::streamsize>(s.bytes.size()));
    return s;
}

// Every page of the dump is RAM and equal to the snapshot, except the bytes kdcart writes on
// purpose: each processor's CONTEXT (0x4d0 bytes, on at most two pages). Returns pages checked.
uint64_t check_dump_against(const std::string& dump_path, const Snapshot& snap, uint32_t cpus) {
    auto dump = kdcart::engine::DumpFile::open(dump_path);
    REQUIRE_MESSAGE(dump, (dump ? "" : dump.error().message));
    CHECK((*dump)->complete());
    CHECK((*dump)->warnings().empty());
    uint64_t pages = 0, differing_pages = 0, differing_bytes = 0;
    for (const auto& range : (*dump)->present_ranges()) {
        for (uint64_t pfn = range.first_pfn; pfn < range.end_pfn(); ++pfn) {
            REQUIRE_MESSAGE(snap.in_ram(pfn), "PFN " << pfn << " is not RAM");
            auto page = (*dump)->page(pfn);
            REQUIRE(page.has_value());
            ++pages;
            const uint8_t* mem = snap.bytes.data() + pfn * kPage;
            if (std::memcmp(page->data(), mem, kPage) == 0) {
                continue;
            }
            ++differing_pages;
            for (uint64_t i = 0; i < kPage; ++i) {
                differing_bytes += (*page)[i] != mem[i] ? 1 : 0;
            }
        }
    }
    CHECK(differing_pages <= 2 * cpus);
    CHECK(differing_bytes <= 0x4d0 * cpus);
    return pages;
}

// What kdcart printed for one command line, up to the next prompt.
std::string block(e2e::Process& p, const std::string& command,
                  std::chrono::milliseconds timeout = 120s) {
    const size_t start = p.mark();
    cmd(p, command);
    std::smatch m;
    const bool ok = p.expect(R"(\d: kd> )", timeout, &m);
    if (!ok) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    REQUIRE_MESSAGE(ok, "no prompt after " << command);
    return p.transcript().substr(start, p.mark() - start);
}

// The session every good-path case runs. Returns the ".dump" result line.
std::string full_session(e2e::Process& p, const TempDir& dir, bool dma) {
    EXPECT_OUT(p,
               R"(1394: debug target on simulated bus \S+ \(node 0xffc1, generation \d+\): )"
               R"(DEBUG_1394_CONFIG at 0x9c000, channel 1, mailboxes at 0x9d000 and 0x9e000, )"
               R"(requests of up to 2048 bytes)",
               60s);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 60s);
    EXPECT_OUT(p, R"(\d: kd> )", 60s);

    std::string r = block(p, "r");
    CHECK_MESSAGE(std::regex_search(r, std::regex(R"(rax=[0-9a-f]{16} rbx=[0-9a-f]{16})")), r);
    CHECK_MESSAGE(
        r.find("cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b") != std::string::npos, r);
    std::string dq = block(p, "dq nt!KdDebuggerDataBlock+10 L1");
    CHECK_MESSAGE(std::regex_search(dq, std::regex(kAddr + R"(  00000380`4742444b)")), dq);
    // Physical memory: the debug block itself (tag, version 1.0, channel 1, BusPresent, the
    // mailboxes' addresses), by DMA unless nodma.
    std::string dd = block(p, "!dd 9c000 L8");
    CHECK_MESSAGE(std::regex_search(dd, std::regex(R"(#[0-9a-f`]*9c000\s+babababa 00000001 )"
                                                   R"(00000001 00000001\s*\n#[0-9a-f`]*9c010\s+)"
                                                   R"(0009d000 00000000 0009e000 00000000)")),
                  dd);
    std::string db = block(p, "!db 9c000 L4");
    CHECK_MESSAGE(db.find("ba ba ba ba") != std::string::npos, db);

    // bp / g: the breakpoint hits and is reported as on the other links.
    cmd(p, "bp kdtest!KdTestCompute");
    cmd(p, "g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestCompute:\n)" + kAddr, 60s);
    EXPECT_OUT(p, R"(\d: kd> )", 30s);
    block(p, "bc *");
    std::string k = block(p, "k");
    CHECK_MESSAGE(k.find("kdtest!KdTestCompute") != std::string::npos, k);

    // .dump /k, unpaced (DMA or packets).
    const std::string dump = dir / (dma ? "dma.dmp" : "kd.dmp");
    std::string out = block(p, ".dump /k /o " + dump, 300s);
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(R"(Dump successfully written: .*)")), out);
    return m.str(0);
}

} // namespace

TEST_CASE("1394 (simulated bus): attach, break in, r, dq, !dd, bp/g, k, .dump /k checked page by "
          "page, q") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    ScopedEnv env({{"KDSIM_PHYS_SNAPSHOT", dir / "phys"}});
    e2e::Process p({kBin + "/kdcart", "--sim", "1394", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    const std::string line = full_session(p, dir, true);
    MESSAGE(".dump /k by physical DMA: " << line);
    // The snapshot is the machine at this stop (the bp): read it before the target runs.
    const Snapshot snap = load_snapshot(dir / "phys");
    const uint64_t pages = check_dump_against(dir / "dma.dmp", snap, 1);
    CHECK(pages > 100);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
    // The dump opens and shows the kernel's data.
    e2e::Process z(
        {kBin + "/kdcart", "-z", dir / "dma.dmp", "-c", "dq nt!KdDebuggerDataBlock+10 L1; q"});
    REQUIRE(z.started());
    EXPECT_OUT(z, kAddr + R"(  00000380`4742444b)", 60s);
    CHECK(z.wait_exit(30s) == 0);
}

TEST_CASE("1394 with nodma: the same session moves physical memory in KD packets") {
    TempDir dir;
    ScopedEnv env({{"KDSIM_PHYS_SNAPSHOT", dir / "phys"}});
    // kdsim by hand, kdcart with -k, to pass nodma.
    const std::string sock = dir / "bus.sock";
    e2e::Process sim({kBin + "/kdsim", "--1394", sock});
    REQUIRE(sim.started());
    EXPECT_OUT(sim, "1394: " + sock, 60s);
    e2e::Process p({kBin + "/kdcart", "-k", "1394:channel=1,nodma,bus=sim:" + sock, "-b"});
    REQUIRE(p.started());
    const std::string line = full_session(p, dir, false);
    MESSAGE(".dump /k in KD packets: " << line);
    const Snapshot snap = load_snapshot(dir / "phys");
    CHECK(check_dump_against(dir / "kd.dmp", snap, 1) > 100);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("1394: a bus that resets every 37 transactions, in the middle of packets and DMA") {
    TempDir dir;
    ScopedEnv env({{"KDSIM_PHYS_SNAPSHOT", dir / "phys"}, {"KDSIM_1394_FAULT", "reset-every=37"}});
    e2e::Process p({kBin + "/kdcart", "--sim", "1394", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    full_session(p, dir, true);
    const Snapshot snap = load_snapshot(dir / "phys");
    CHECK(check_dump_against(dir / "dma.dmp", snap, 1) > 100);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("1394: the target on another channel is named, kdcart waits, then gives up in time") {
    TempDir dir;
    const std::string sock = dir / "bus.sock";
    e2e::Process sim({kBin + "/kdsim", "--1394", sock, "--1394-channel", "3"});
    REQUIRE(sim.started());
    EXPECT_OUT(sim, "1394: " + sock, 60s);
    const auto t0 = std::chrono::steady_clock::now();
    e2e::Process p(
        {kBin + "/kdcart", "-k", "1394:channel=7,bus=sim:" + sock, "-b", "--connect-timeout", "4"});
    REQUIRE(p.started());
    EXPECT_OUT(p,
               R"(no 1394 debug target on channel 7: simulated bus \S+ is a Windows 1394 debug )"
               R"(target on channel 3 \(give that channel in -k 1394:channel=N, or set the )"
               R"(target's with 'bcdedit /dbgsettings 1394 channel:7'\))",
               30s);
    const int code = p.wait_exit(60s);
    CHECK(code != 0);
    CHECK(code != -1);
    CHECK(std::chrono::steady_clock::now() - t0 < 60s);
}

TEST_CASE("1394: a node without the Windows debug entries") {
    TempDir dir;
    const std::string sock = dir / "bus.sock";
    e2e::Process sim({kBin + "/kdsim", "--1394", sock, "--1394-fault", "plain-rom"});
    REQUIRE(sim.started());
    EXPECT_OUT(sim, "1394: " + sock, 60s);
    e2e::Process p(
        {kBin + "/kdcart", "-k", "1394:channel=1,bus=sim:" + sock, "-b", "--connect-timeout", "3"});
    REQUIRE(p.started());
    EXPECT_OUT(p,
               R"(no node on the 1394 bus has the Windows debug entries in its config ROM \(keys )"
               R"(0x1C = 0x0050F2 and 0x1E\): found simulated bus \S+ \(vendor 001234\)\. Is the )"
               R"(target booted with 'bcdedit /debug on' and 'bcdedit /dbgsettings 1394 )"
               R"(channel:1', and the cable plugged in\?)",
               30s);
    const int code = p.wait_exit(60s);
    CHECK(code != 0);
    CHECK(code != -1);
}

TEST_CASE("1394: a target that never empties its receive mailbox: a clear error, no hang") {
    TempDir dir;
    const std::string sock = dir / "bus.sock";
    e2e::Process sim({kBin + "/kdsim", "--1394", sock, "--1394-fault", "stuck-mailbox"});
    REQUIRE(sim.started());
    EXPECT_OUT(sim, "1394: " + sock, 60s);
    const auto t0 = std::chrono::steady_clock::now();
    e2e::Process p({kBin + "/kdcart", "-k", "1394:channel=1,bus=sim:" + sock, "-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p,
               R"(the target has not taken our last packet from its receive mailbox )"
               R"(\(DEBUG_1394_RECEIVE_PACKET at 0x9e000, TransferStatus 0x103\) for 5\.0 s: it )"
               R"(is not servicing the kernel debugger)",
               60s);
    const int code = p.wait_exit(60s);
    CHECK(code == 1);
    CHECK(std::chrono::steady_clock::now() - t0 < 60s);
}

TEST_CASE("1394: no bus, no such device, bad connection strings") {
    {
        e2e::Process p({kBin + "/kdcart", "-k", "1394:channel=1,bus=sim:/nonexistent/kd.sock"});
        REQUIRE(p.started());
        EXPECT_OUT(p,
                   R"(kdcart: no simulated 1394 bus at /nonexistent/kd\.sock \(.*\): start it )"
                   R"(with 'kdsim --1394 /nonexistent/kd\.sock')",
                   30s);
        CHECK(p.wait_exit(30s) == 1);
    }
    {
        e2e::Process p({kBin + "/kdcart", "-k", "1394:channel=1,device=/dev/fw-kdcart-none"});
        REQUIRE(p.started());
        EXPECT_OUT(p, R"(kdcart: no FireWire device /dev/fw-kdcart-none)", 30s);
        CHECK(p.wait_exit(30s) == 1);
    }
    bool any_fw = false;
    for (const auto& e : std::filesystem::directory_iterator("/dev")) {
        const std::string n = e.path().filename().string();
        any_fw = any_fw || (n.rfind("fw", 0) == 0 && n.size() > 2 && std::isdigit(n[2]));
    }
    if (!any_fw) {
        // This machine has no FireWire controller: the message says what to check.
        e2e::Process p({kBin + "/kdcart", "-k", "1394:channel=1"});
        REQUIRE(p.started());
        EXPECT_OUT(p,
                   R"(kdcart: no FireWire device nodes \(/dev/fw\*\): no IEEE 1394 )"
                   R"(controller is driven by firewire-ohci here)",
                   30s);
        CHECK(p.wait_exit(30s) == 1);
    }
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"1394:", "channel= is required"},
        {"1394:channel=63", "bad 1394 channel '63' \\(0 to 62\\)"},
        {"1394:channel=x", "bad 1394 channel 'x'"},
        {"1394:channel=1,speed=400", "unknown option 'speed=400'"},
        {"1394:channel=1,device=/dev/fw1,bus=sim:/x", "device= or bus=, not both"},
    };
    for (const auto& [k, msg] : bad) {
        CAPTURE(k);
        e2e::Process p({kBin + "/kdcart", "-k", k});
        REQUIRE(p.started());
        EXPECT_OUT(p, msg, 30s);
        CHECK(p.wait_exit(30s) == 2);
    }
}
