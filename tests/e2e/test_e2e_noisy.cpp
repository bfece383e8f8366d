// End to end on a bad cable (issue 13): kdsim injects faults on its link (KDSIM_CORRUPT_RATE,
// KDSIM_DROP_RATE, KDSIM_SEED through `kdcart --sim`) and writes its physical memory at every
// stop (KDSIM_PHYS_SNAPSHOT). What kdcart shows and writes into a dump must equal that memory
// byte for byte: `??` is allowed only where the page tables say nothing is mapped. And kdcart
// leaves a target it was asked to leave running, clean, on every exit path.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/DumpFile.h"
#include "tests/e2e/Process.h"

#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <sstream>

using namespace std::chrono_literals;
using e2e::cmd;

namespace {
const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// kdsim's physical memory as the snapshot file holds it (sparse: offset = physical address).
struct Snapshot {
    std::string bytes;
    bool byte(uint64_t pa, uint8_t& out) const {
        if (pa >= bytes.size()) {
            return false;
        }
        out = static_cast<uint8_t>(bytes[pa]);
        return true;
    }
    std::optional<uint64_t> qword(uint64_t pa) const {
        if (pa + 8 > bytes.size()) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, bytes.data() + pa, 8);
        return v;
    }
    // x64 4-level translation through the snapshot; nullopt when not present.
    std::optional<uint64_t> translate(uint64_t cr3, uint64_t va) const {
        uint64_t table = cr3 & 0x000FFFFFFFFFF000ull;
        for (int level = 3; level >= 0; --level) {
            const uint64_t index = (va >> (12 + 9 * level)) & 0x1FF;
            auto e = qword(table + index * 8);
            if (!e || (*e & 1) == 0) {
                return std::nullopt;
            }
            if ((level == 1 || level == 2) && (*e & 0x80) != 0) {
                const uint64_t size = uint64_t{1} << (12 + 9 * level);
                return (*e & 0x000FFFFFFFFFF000ull & ~(size - 1)) + (va & (size - 1));
            }
            table = *e & 0x000FFFFFFFFFF000ull;
        }
        return table + (va & 0xFFF);
    }
};

// The lines of a db / !db display: address and 16 byte cells ("??" or two hex digits).
struct Cells {
    std::vector<std::pair<uint64_t, std::string>> cells;
};
Cells parse_display(const std::string& text, bool physical) {
    Cells out;
    std::regex line(
        std::string(physical ? "#" : "") +
        R"(([0-9a-f]{8})`([0-9a-f]{8})  ((?:(?:[0-9a-f]{2}|\?\?)[ -]){15}(?:[0-9a-f]{2}|\?\?)))");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), line);
         it != std::sregex_iterator(); ++it) {
        const uint64_t addr = std::stoull((*it)[1].str() + (*it)[2].str(), nullptr, 16);
        const std::string cells = (*it)[3].str();
        for (int i = 0; i < 16; ++i) {
            out.cells.emplace_back(addr + static_cast<uint64_t>(i), cells.substr(i * 3, 2));
        }
    }
    return out;
}

struct Compare {
    size_t shown = 0;
    size_t wrong = 0;
    size_t unread = 0;
    size_t unread_but_mapped = 0;
};

Compare compare(const Cells& c, const Snapshot& snap, std::optional<uint64_t> cr3) {
    Compare r;
    for (const auto& [addr, cell] : c.cells) {
        std::optional<uint64_t> pa = cr3 ? snap.translate(*cr3, addr) : std::optional(addr);
        uint8_t want = 0;
        const bool exists = pa && snap.byte(*pa, want);
        if (cell == "??") {
            ++r.unread;
            r.unread_but_mapped += exists ? 1 : 0;
            continue;
        }
        ++r.shown;
        if (!exists || std::stoul(cell, nullptr, 16) != want) {
            ++r.wrong;
        }
    }
    return r;
}

// One session on a bad line: a 64 KiB virtual db, a 64 KiB physical !db and a .dump /k, each
// compared with kdsim's memory.
void noisy_session(const char* what, const char* rate, const char* seed, bool dump) {
    const std::string tag = std::string(what) + "-" + seed + "-" + std::to_string(::getpid());
    const std::string snap_path = "/tmp/kdcart-noisy-snap-" + tag;
    const std::string dump_path = "/tmp/kdcart-noisy-" + tag + ".dmp";
    ::unlink(snap_path.c_str());
    ::unlink(dump_path.c_str());
    ::setenv(std::string(what) == "corrupt" ? "KDSIM_CORRUPT_RATE" : "KDSIM_DROP_RATE", rate, 1);
    ::setenv("KDSIM_SEED", seed, 1);
    ::setenv("KDSIM_PHYS_SNAPSHOT", snap_path.c_str(), 1);
    // Unpaced: the faults are per byte whatever the speed, and the test stays short.
    e2e::Process p(
        {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "--sim-baud", "0", "-b"});
    ::unsetenv("KDSIM_CORRUPT_RATE");
    ::unsetenv("KDSIM_DROP_RATE");
    ::unsetenv("KDSIM_SEED");
    ::unsetenv("KDSIM_PHYS_SNAPSHOT");
    REQUIRE(p.started());
    EXPECT_OUT(p, kPrompt, 120s);

    const size_t m1 = p.mark();
    cmd(p, "db nt L10000");
    EXPECT_OUT(p, kPrompt, 180s);
    const std::string virt = p.since(m1);
    const size_t m2 = p.mark();
    cmd(p, "!db 100000 L10000");
    EXPECT_OUT(p, kPrompt, 180s);
    const std::string phys = p.since(m2);
    // The page tables' root, for the virtual display's bytes (the dump header has it too).
    const size_t m3 = p.mark();
    cmd(p, "r cr3");
    EXPECT_OUT(p, kPrompt, 60s);
    std::smatch cr3_match;
    const std::string cr3_text = p.since(m3);
    REQUIRE(std::regex_search(cr3_text, cr3_match, std::regex(R"(cr3=([0-9a-f]{16}))")));
    const uint64_t cr3 = std::stoull(cr3_match[1].str(), nullptr, 16);
    if (dump) {
        cmd(p, ".dump /k " + dump_path);
        EXPECT_OUT(p, "Dump successfully written", 300s);
        EXPECT_OUT(p, kPrompt, 30s);
    }
    cmd(p, ".kdverify");
    EXPECT_OUT(p, "Read verification: auto", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
    INFO(p.transcript().substr(p.transcript().size() > 3000 ? p.transcript().size() - 3000 : 0));

    Snapshot snap{read_file(snap_path)};
    REQUIRE(snap.bytes.size() > 0x200000);

    // Physical: every byte shown, each equal to kdsim's.
    auto pc = compare(parse_display(phys, true), snap, std::nullopt);
    CHECK(pc.shown == 0x10000);
    CHECK(pc.wrong == 0);

    // Virtual: through the target's page tables in the snapshot; `??` only where nothing is
    // mapped.
    auto vc = compare(parse_display(virt, false), snap, cr3);
    CHECK(vc.shown + vc.unread == 0x10000);
    CHECK(vc.shown > 0x4000);
    CHECK(vc.wrong == 0);
    CHECK(vc.unread_but_mapped == 0);
    if (!dump) {
        ::unlink(snap_path.c_str());
        ::unlink((snap_path + ".runs").c_str());
        return;
    }
    auto file = kdcart::engine::DumpFile::open(dump_path);
    REQUIRE(file);
    const auto& df = **file;
    CHECK(df.complete());
    CHECK(df.directory_table_base() == cr3);

    // The dump: every page as kdsim has it, except the processor's CONTEXT written into its
    // KPRCB (what the debugger showed, as Windows' own dumps hold it): one page, one CONTEXT.
    size_t pages = 0;
    size_t differing_pages = 0;
    size_t spread = 0;
    for (const auto& range : df.present_ranges()) {
        for (uint64_t pfn = range.first_pfn; pfn < range.end_pfn(); ++pfn) {
            auto page = df.page(pfn);
            REQUIRE(page);
            ++pages;
            const uint64_t pa = pfn * 4096;
            REQUIRE(pa + 4096 <= snap.bytes.size());
            const auto* want = reinterpret_cast<const uint8_t*>(snap.bytes.data() + pa);
            size_t first = 4096;
            size_t last = 0;
            for (size_t i = 0; i < 4096; ++i) {
                if ((*page)[i] != want[i]) {
                    first = std::min(first, i);
                    last = i;
                }
            }
            if (first != 4096) {
                ++differing_pages;
                spread = std::max(spread, last - first + 1);
            }
        }
    }
    CHECK(pages > 100);
    CHECK(differing_pages <= 1);
    CHECK(spread <= sizeof(kdcart::protocol::CONTEXT));
    ::unlink(snap_path.c_str());
    ::unlink((snap_path + ".runs").c_str());
    ::unlink(dump_path.c_str());
}

} // namespace

TEST_CASE("corrupt 1e-3: db, !db and .dump /k are byte-identical to kdsim's memory") {
    noisy_session("corrupt", "1e-3", "11", true);
}

// A lost byte costs the quiet-line limit (at least 50 ms) and a RESEND, so at 1e-3 the 1 MB
// .dump /k takes minutes: it is part of this session only with KDCART_E2E_LONG=1 (5 min on the
// 2-core machine, 2026-12-07), to keep CI inside its budget; the corrupt session always has it.
TEST_CASE("drop 1e-3: db and !db (and .dump /k with KDCART_E2E_LONG=1) complete, and are right") {
    noisy_session("drop", "1e-3", "12", std::getenv("KDCART_E2E_LONG") != nullptr);
}

TEST_CASE("SIGTERM under -c leaves kdsim running with its code intact") {
    const std::string tag = std::to_string(::getpid());
    const std::string sock = "/tmp/kdcart-e2e-term-" + tag + ".sock";
    const std::string report = "/tmp/kdcart-e2e-term-" + tag + ".txt";
    ::unlink(sock.c_str());
    ::unlink(report.c_str());
    e2e::Process sim({kBin + "/kdsim", "--unix", sock, "--dump-on-exit", report});
    REQUIRE(sim.started());
    EXPECT_OUT(sim, "listening on", 30s);
    {
        e2e::Process p({kBin + "/kdcart", "-k", "com:pipe,port=" + sock, "-b", "-c",
                        "bp kdtest!KdTestPagedFunction+1; bp kdtest!KdTestSpin; "
                        "ba e1 kdtest!KdTestSpin; g"});
        REQUIRE(p.started());
        EXPECT_OUT(p, "kdtest: tick", 90s);
        p.signal(SIGTERM);
        EXPECT_OUT(p, "kdcart: terminated; breakpoints removed, target resumed", 30s);
        CHECK(p.wait_exit(30s) == 143);
    }
    // kdsim is still there, and its machine runs: a new debugger sees it print.
    CHECK(sim.wait_exit(500ms) == -1);
    {
        e2e::Process p({kBin + "/kdcart", "-k", "com:pipe,port=" + sock});
        REQUIRE(p.started());
        EXPECT_OUT(p, "kdtest: tick", 30s);
        p.close_stdin();
        p.signal(SIGTERM);
        p.wait_exit(30s);
    }
    sim.signal(SIGTERM);
    CHECK(sim.wait_exit(30s) == 0);
    const std::string text = read_file(report);
    INFO(text);
    CHECK(text.find("code intact") != std::string::npos);
    ::unlink(report.c_str());
    ::unlink(sock.c_str());
}

TEST_CASE("end of input after -c, and a Q with punctuation that is not a quit") {
    auto p = e2e::Process(
        {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b", "-c", "Q,; r al=100; r al"});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(Syntax error in 'Q,')", 120s);
    EXPECT_OUT(p, R"(Overflow error in 'r al=100')", 30s);
    EXPECT_OUT(p, R"(al=[0-9a-f]{2})", 30s);
    p.close_stdin();
    CHECK(p.wait_exit(60s) == 0);
}
