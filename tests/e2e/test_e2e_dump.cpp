// End to end: crash dumps. The real kdcart captures `.dump /f` and `.dump /k` from the real kdsim
// over a pty and over KDNET, and opens them again with `kdcart -z`. kdsim writes its physical
// memory to a sparse file at every stop (KDSIM_PHYS_SNAPSHOT), so every page of a dump is
// compared byte for byte with what the machine held; `r`, `lm` and `k` on the dump must print
// what they printed live. Also: resuming a capture cut by a silent link, refusals, and `.crash`.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/AddressTranslation.h"
#include "engine/DumpFile.h"
#include "tests/e2e/Block.h"
#include "tests/e2e/Process.h"

#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <sys/stat.h>
#include <thread>

using namespace std::chrono_literals;
using namespace kdcart;
using engine::DumpFile;
using engine::PageState;

namespace {
const std::string kBin = KDCART_BIN_DIR;
constexpr uint64_t kPage = 4096;
// A /f of kdsim (~50 MB) takes 2-5 s unloaded; a loaded machine has been seen 15x slower.
constexpr auto kCaptureTimeout = std::chrono::milliseconds(240s);

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-e2e-dump-XXXXXX";
        if (::mkdtemp(tmpl) != nullptr) {
            path = tmpl;
        }
    }
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) {
            std::filesystem::remove_all(path, ec);
        }
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Sets environment variables for the children spawned while it lives (kdcart --sim passes
// them on to kdsim), and removes them again.
struct ScopedEnv {
    std::vector<std::string> names;
    explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
        for (auto& [name, value] : vars) {
            ::setenv(name.c_str(), value.c_str(), 1);
            names.push_back(name);
        }
    }
    ~ScopedEnv() {
        for (auto& n : names) {
            ::unsetenv(n.c_str());
        }
    }
};

e2e::Process start_sim(std::vector<std::string> extra) {
    std::vector<std::string> argv = {kBin + "/kdcart", "--sim"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {"--kdsim", kBin + "/kdsim", "-b"});
    return e2e::Process(argv);
}

// One command line's output up to the next prompt (a capture may take a while: 60 s).
std::string block(e2e::Process& p, const std::string& command,
                  std::chrono::milliseconds timeout = 60s) {
    return e2e::command_output(p, command, timeout);
}

bool contains(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// kdsim's physical memory at its last stop: FILE (offset = physical address, holes between
// runs) and FILE.runs ("BASEPAGE PAGECOUNT" in hex per line). Read into memory while the target
// is still stopped: once it runs it may stop again and write a newer one.
struct Snapshot {
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    std::vector<uint8_t> bytes;

    bool in_ram(uint64_t pfn) const {
        for (auto [base, count] : runs) {
            if (pfn >= base && pfn < base + count) {
                return true;
            }
        }
        return false;
    }
    uint64_t ram_pages() const {
        uint64_t n = 0;
        for (auto [base, count] : runs) {
            n += count;
        }
        return n;
    }
    const uint8_t* page(uint64_t pfn) const { return bytes.data() + pfn * kPage; }
    std::optional<uint64_t> u64(uint64_t pa) const {
        if (!in_ram(pa / kPage) || pa % kPage > kPage - 8) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, bytes.data() + pa, 8);
        return v;
    }
    // Virtual to physical through the snapshot's own page tables.
    std::optional<uint64_t> translate(uint64_t va, uint64_t dtb) const {
        auto t = engine::translate_va(va, dtb, [this](uint64_t pa) { return u64(pa); });
        if (!t || t->state != PageState::Present) {
            return std::nullopt;
        }
        return t->physical;
    }
    std::optional<uint64_t> read_va_u64(uint64_t va, uint64_t dtb) const {
        auto pa = translate(va, dtb);
        return pa ? u64(*pa) : std::nullopt;
    }
};

Snapshot load_snapshot(const std::string& path) {
    Snapshot s;
    std::ifstream runs(path + ".runs");
    REQUIRE_MESSAGE(runs.good(), path << ".runs is missing: did kdsim get KDSIM_PHYS_SNAPSHOT?");
    uint64_t base = 0, count = 0;
    while (runs >> std::hex >> base >> count) {
        s.runs.emplace_back(base, count);
    }
    REQUIRE(!s.runs.empty());
    uint64_t end = 0;
    for (auto [b, c] : s.runs) {
        end = std::max(end, b + c);
    }
    s.bytes.assign(end * kPage, 0);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    for (auto [b, c] : s.runs) {
        uint64_t done = 0;
        while (done < c * kPage) {
            ssize_t n = ::pread(fd, s.bytes.data() + b * kPage + done, c * kPage - done,
                                static_cast<off_t>(b * kPage + done));
            REQUIRE(n > 0);
            done += static_cast<uint64_t>(n);
        }
    }
    ::close(fd);
    return s;
}

// Physical byte ranges of each processor's CONTEXT in the KPRCB (KDBG's OffsetPrcbContext
// pointer, else the ProcessorState context), found through the snapshot. kdcart writes the
// registers it shows into these, so only these bytes may differ from the snapshot.
struct Span {
    uint64_t pa = 0;
    uint64_t size = 0;
};

std::vector<std::vector<Span>> context_spans(const Snapshot& snap, const DumpFile& dump) {
    const uint64_t dtb = dump.directory_table_base();
    auto kdbg_pa = snap.translate(dump.kd_debugger_data_block(), dtb);
    REQUIRE(kdbg_pa.has_value());
    REQUIRE(*kdbg_pa + sizeof(protocol::KDDEBUGGER_DATA64) <= snap.bytes.size());
    protocol::KDDEBUGGER_DATA64 kd{};
    std::memcpy(&kd, snap.bytes.data() + *kdbg_pa, sizeof kd);
    REQUIRE(kd.Header.OwnerTag == protocol::KDBG_TAG);
    REQUIRE(kd.KiProcessorBlock != 0);
    std::vector<std::vector<Span>> out;
    for (uint32_t cpu = 0; cpu < dump.number_processors(); ++cpu) {
        auto prcb = snap.read_va_u64(kd.KiProcessorBlock + 8ull * cpu, dtb);
        REQUIRE(prcb.has_value());
        std::optional<uint64_t> va;
        if (kd.OffsetPrcbContext != 0) {
            auto ptr = snap.read_va_u64(*prcb + kd.OffsetPrcbContext, dtb);
            if (ptr && *ptr != 0) {
                va = ptr;
            }
        }
        if (!va) {
            REQUIRE(kd.OffsetPrcbProcStateContext != 0);
            va = *prcb + kd.OffsetPrcbProcStateContext;
        }
        std::vector<Span> spans;
        uint64_t done = 0;
        while (done < sizeof(protocol::CONTEXT)) {
            const uint64_t at = *va + done;
            const uint64_t n =
                std::min<uint64_t>(sizeof(protocol::CONTEXT) - done, kPage - at % kPage);
            auto pa = snap.translate(at, dtb);
            REQUIRE(pa.has_value());
            spans.push_back({*pa, n});
            done += n;
        }
        out.push_back(spans);
    }
    return out;
}

// A processor's CONTEXT as the dump holds it in memory.
std::optional<protocol::CONTEXT> dump_context(const DumpFile& dump, const std::vector<Span>& at) {
    std::vector<uint8_t> bytes;
    for (const auto& s : at) {
        auto m = dump.read_physical(s.pa, s.size);
        if (!m.all_valid()) {
            return std::nullopt;
        }
        bytes.insert(bytes.end(), m.bytes.begin(), m.bytes.end());
    }
    protocol::CONTEXT c{};
    std::memcpy(&c, bytes.data(), sizeof c);
    return c;
}

// Every page the dump holds must be RAM and byte-identical to the snapshot, except the bytes of
// the processors' CONTEXTs. Returns the number of pages compared.
uint64_t check_pages(const DumpFile& dump, const Snapshot& snap,
                     const std::vector<std::vector<Span>>& contexts) {
    uint64_t compared = 0, mismatched = 0;
    std::string first;
    auto excluded = [&](uint64_t pa) {
        for (const auto& spans : contexts) {
            for (const auto& s : spans) {
                if (pa >= s.pa && pa < s.pa + s.size) {
                    return true;
                }
            }
        }
        return false;
    };
    for (const auto& range : dump.present_ranges()) {
        for (uint64_t pfn = range.first_pfn; pfn < range.end_pfn(); ++pfn) {
            auto page = dump.page(pfn);
            if (!snap.in_ram(pfn) || !page) {
                FAIL("the dump lists PFN " << std::hex << pfn << ", which is not RAM");
            }
            ++compared;
            if (std::memcmp(page->data(), snap.page(pfn), kPage) == 0) {
                continue;
            }
            for (uint64_t off = 0; off < kPage; ++off) {
                if ((*page)[off] != snap.page(pfn)[off] && !excluded(pfn * kPage + off)) {
                    if (mismatched++ == 0) {
                        std::ostringstream os;
                        os << "PFN " << std::hex << pfn << " offset " << off << ": dump "
                           << int((*page)[off]) << ", memory " << int(snap.page(pfn)[off]);
                        first = os.str();
                    }
                    break;
                }
            }
        }
    }
    INFO("first difference: " << first);
    CHECK(mismatched == 0);
    return compared;
}

// How many of the snapshot's RAM pages the dump does not hold (a complete dump holds all).
uint64_t missing_ram_pages(const DumpFile& dump, const Snapshot& snap) {
    uint64_t missing = 0;
    for (auto [base, count] : snap.runs) {
        for (uint64_t pfn = base; pfn < base + count; ++pfn) {
            missing += dump.page(pfn).has_value() ? 0 : 1;
        }
    }
    return missing;
}

// What every dump kdcart writes has in its header, and what the file looks like on disk.
void check_common_header(const DumpFile& dump, const std::string& path) {
    const auto& h = dump.header();
    CHECK(h.Signature == engine::DUMP_SIGNATURE64);
    CHECK(h.ValidDump == engine::DUMP_VALID_DUMP64);
    CHECK(dump.complete());
    CHECK(h.MachineImageType == 0x8664);
    CHECK(h.KdDebuggerDataBlock != 0);
    CHECK(h.DirectoryTableBase != 0);
    CHECK(h.PsLoadedModuleList != 0);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(h.RequiredDumpSpace == static_cast<uint64_t>(st.st_size));
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(dump.warnings().empty());
    CHECK(!std::filesystem::exists(path + ".kdpart"));
}

// The registers kdcart wrote into the dump's in-memory CONTEXT of the crash processor are the
// header's (= what `r` showed live, compared as text elsewhere).
void check_cpu0_context(const DumpFile& dump, const std::vector<std::vector<Span>>& contexts) {
    auto c = dump_context(dump, contexts.at(0));
    REQUIRE(c.has_value());
    const auto& h = dump.context();
    CHECK(c->Rip == h.Rip);
    CHECK(c->Rsp == h.Rsp);
    CHECK(c->Rbp == h.Rbp);
    CHECK(c->Rax == h.Rax);
    CHECK(c->R15 == h.R15);
    CHECK(c->EFlags == h.EFlags);
}

// `? nt!KdDebuggerDataBlock` -> the address it evaluates to.
uint64_t evaluated(const std::string& text) {
    std::smatch m;
    static const std::regex re(R"(Evaluate expression: -?\d+ = ([0-9a-f]{8})`([0-9a-f]{8}))");
    REQUIRE_MESSAGE(std::regex_search(text, m, re), "no value in: " << text);
    return std::stoull(m[1].str() + m[2].str(), nullptr, 16);
}

// Opens FILE with `kdcart -z`, runs `commands` and returns their outputs; checks the opening
// lines and the exit status.
std::vector<std::string> run_on_dump(const std::string& file,
                                     const std::vector<std::string>& commands,
                                     const std::string& kind_line) {
    e2e::Process z({kBin + "/kdcart", "-z", file});
    REQUIRE(z.started());
    EXPECT_OUT(z, "Loading Dump File \\[" + file + "\\]", 30s);
    EXPECT_OUT(z, kind_line, 30s);
    EXPECT_OUT(z, "0: kd> ", 30s);
    std::vector<std::string> out;
    for (const auto& c : commands) {
        out.push_back(block(z, c));
    }
    e2e::cmd(z, "q");
    CHECK(z.wait_exit(30s) == 0);
    return out;
}

// The round trip over one link: live r/lm/k, .dump /f and /k, then both dumps opened with -z.
void round_trip(const std::vector<std::string>& link, const std::vector<std::string>& commands) {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string snap_path = dir / "phys.bin";
    const std::string full = dir / "full.dmp";
    const std::string kernel = dir / "kernel.dmp";
    const std::string comment = "kdcart e2e round trip";
    std::vector<std::string> live;
    Snapshot snap;
    {
        ScopedEnv env({{"KDSIM_PHYS_SNAPSHOT", snap_path}});
        auto p = start_sim(link);
        REQUIRE(p.started());
        EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 90s);
        EXPECT_OUT(p, "0: kd> ", 30s);
        for (const auto& c : commands) {
            live.push_back(block(p, c));
            INFO("live '" << c << "':\n" << live.back());
            CHECK(!live.back().empty());
        }
        auto f = block(p, ".dump /f /c \"" + comment + "\" " + full, kCaptureTimeout);
        INFO(f);
        REQUIRE(contains(f, "Creating " + full + " - complete memory dump ("));
        REQUIRE(contains(f, "Dump successfully written"));
        auto k = block(p, ".dump /k " + kernel, kCaptureTimeout);
        INFO(k);
        REQUIRE(contains(k, "Creating " + kernel + " - kernel memory dump ("));
        REQUIRE(contains(k, "Dump successfully written"));
        snap = load_snapshot(snap_path); // before the target runs again
        e2e::cmd(p, "q");
        CHECK(p.wait_exit(30s) == 0);
    }

    // The same commands print the same on both dumps.
    const std::vector<std::pair<std::string, std::string>> dumps = {
        {full, "Kernel (Complete|Bitmap Full) Dump File: Full address space is available"},
        {kernel, "Kernel Bitmap Dump File: Kernel address space is available"}};
    for (const auto& [file, kind_line] : dumps) {
        auto out = run_on_dump(file, commands, kind_line);
        for (size_t i = 0; i < commands.size(); ++i) {
            INFO(file << ": '" << commands[i] << "'");
            CHECK(out[i] == live[i]);
        }
    }
    const uint64_t kdbg_live = evaluated(live.at(0));

    // /f: every RAM page, byte-identical.
    {
        auto d = DumpFile::open(full);
        REQUIRE_MESSAGE(d.has_value(), d.error().message);
        const DumpFile& dump = **d;
        check_common_header(dump, full);
        CHECK((dump.dump_type() == engine::DUMP_TYPE_FULL ||
               (dump.dump_type() == engine::DUMP_TYPE_BITMAP_FULL &&
                dump.bitmap_header().Signature == engine::DUMP_FULL_SIGNATURE)));
        CHECK(dump.bugcheck_code() == engine::LIVE_SYSTEM_DUMP);
        CHECK(dump.kd_debugger_data_block() == kdbg_live);
        CHECK(dump.comment() == comment);
        CHECK(dump.present_pages() == snap.ram_pages());
        CHECK(missing_ram_pages(dump, snap) == 0);
        auto contexts = context_spans(snap, dump);
        CHECK(check_pages(dump, snap, contexts) == snap.ram_pages());
        check_cpu0_context(dump, contexts);
    }
    // /k: what it holds is byte-identical; the page tables' root and nt's first page are there.
    {
        auto d = DumpFile::open(kernel);
        REQUIRE_MESSAGE(d.has_value(), d.error().message);
        const DumpFile& dump = **d;
        check_common_header(dump, kernel);
        CHECK(dump.dump_type() == engine::DUMP_TYPE_BITMAP_KERNEL);
        CHECK(dump.bitmap_header().Signature == engine::DUMP_SUMMARY_SIGNATURE);
        CHECK(dump.bugcheck_code() == engine::LIVE_SYSTEM_DUMP);
        CHECK(dump.kd_debugger_data_block() == kdbg_live);
        CHECK(dump.comment().empty());
        const uint64_t dtb = dump.directory_table_base();
        CHECK(dump.page(dtb / kPage).has_value());
        auto kdbg_pa = snap.translate(kdbg_live, dtb);
        REQUIRE(kdbg_pa.has_value());
        auto kernbase = snap.u64(*kdbg_pa + offsetof(protocol::KDDEBUGGER_DATA64, KernBase));
        REQUIRE(kernbase.has_value());
        auto nt_pa = snap.translate(*kernbase, dtb);
        REQUIRE(nt_pa.has_value());
        CHECK(dump.page(*nt_pa / kPage).has_value());
        CHECK(dump.present_pages() > 20);
        CHECK(dump.present_pages() < snap.ram_pages() / 4);
        auto contexts = context_spans(snap, dump);
        const uint64_t compared = check_pages(dump, snap, contexts);
        CHECK(compared == dump.present_pages());
        check_cpu0_context(dump, contexts);
    }
}

} // namespace

TEST_CASE("dump round trip over a pty: .dump /f and /k, -z shows what live showed, pages "
          "identical to the machine's memory") {
    round_trip({"--sim-baud", "0"}, {"? nt!KdDebuggerDataBlock", "r", "lm", "k"});
}

TEST_CASE("dump round trip over KDNET with two processors: ~1 on the dump too") {
    round_trip({"net", "--sim-cpus", "2"},
               {"? nt!KdDebuggerDataBlock", "r", "lm", "k", "~1", "r", "k", "~0", "r"});
}

TEST_CASE("resume: the link goes silent mid-capture, .dump fails and keeps the partial file, "
          "the same .dump again continues and completes") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string snap_path = dir / "phys.bin";
    const std::string file = dir / "resumed.dmp";
    Snapshot snap;
    {
        // Over serial kdcart gives up on a request after 7 tries 2 s apart (14 s; a missing
        // reply after 8 s), so a 17 s silence fails the capture; /f of kdsim is ~50 MB, so 10 MB
        // falls inside it. The unpaced pty rather than KDNET: it keeps its speed on a loaded
        // machine (KDNET's 1152-byte round trips have been seen 20x slower).
        ScopedEnv env({{"KDSIM_PHYS_SNAPSHOT", snap_path},
                       {"KDSIM_MUTE_AFTER_BYTES", "10000000"},
                       {"KDSIM_MUTE_MS", "17000"}});
        auto p = start_sim({"--sim-baud", "0"});
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);
        auto first = block(p, ".dump /f " + file, kCaptureTimeout);
        INFO(first);
        CHECK(contains(first, "Creating " + file + " - complete memory dump ("));
        CHECK(contains(first, "Unable to write the dump: "));
        CHECK(contains(first, "(the partial file is kept: run the same .dump again to resume)"));
        CHECK(!contains(first, "Dump successfully written"));
        CHECK(std::filesystem::exists(file + ".kdpart"));
        {
            auto partial = DumpFile::open(file);
            REQUIRE_MESSAGE(partial.has_value(), partial.error().message);
            CHECK(!(*partial)->complete()); // not 'DU64' until finished
        }
        // The silence ends at most 9 s after the failure; a .dump started before that is
        // retried by the session until the link is back (or fails the same way and stays
        // resumable: a few tries are allowed).
        std::this_thread::sleep_for(2s);
        std::string second;
        for (int attempt = 0; attempt < 3; ++attempt) {
            second = block(p, ".dump /f " + file, kCaptureTimeout);
            if (!contains(second, "Unable to write the dump")) {
                break;
            }
        }
        INFO(second);
        std::smatch m;
        static const std::regex re(R"(Resumed an interrupted capture at page (\d+) of (\d+))");
        REQUIRE(std::regex_search(second, m, re));
        const uint64_t at = std::stoull(m[1].str());
        const uint64_t total = std::stoull(m[2].str());
        CHECK(at > 0);
        CHECK(at < total);
        CHECK(contains(second, "Dump successfully written"));
        snap = load_snapshot(snap_path);
        e2e::cmd(p, "q");
        CHECK(p.wait_exit(30s) == 0);
    }
    auto d = DumpFile::open(file);
    REQUIRE_MESSAGE(d.has_value(), d.error().message);
    const DumpFile& dump = **d;
    check_common_header(dump, file);
    CHECK(dump.present_pages() == snap.ram_pages());
    CHECK(missing_ram_pages(dump, snap) == 0);
    auto contexts = context_spans(snap, dump);
    CHECK(check_pages(dump, snap, contexts) == snap.ram_pages());
    check_cpu0_context(dump, contexts);
}

TEST_CASE("refusals: a complete dump is not overwritten without /o, unwritable paths give an "
          "error and the session goes on, a dump cannot run, bad files are refused") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string file = dir / "k.dmp";
    const std::string regular = dir / "regular";
    std::ofstream(regular) << "not a directory\n";
    {
        auto p = start_sim({"--sim-baud", "0"});
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);
        auto first = block(p, ".dump /k /c first " + file);
        REQUIRE(contains(first, "Dump successfully written"));

        auto again = block(p, ".dump /f " + file);
        CHECK(contains(again, "Unable to write the dump: " + file +
                                  " already exists and is complete (use /o to overwrite)"));
        CHECK(!contains(again, "Creating"));
        {
            auto d = DumpFile::open(file);
            REQUIRE(d.has_value());
            CHECK((*d)->comment() == "first");
        }
        auto over = block(p, ".dump /k /o /c second " + file);
        CHECK(contains(over, "Dump successfully written"));
        {
            auto d = DumpFile::open(file);
            REQUIRE(d.has_value());
            CHECK((*d)->complete());
            CHECK((*d)->comment() == "second");
        }

        auto proc = block(p, ".dump /k /proc/kdcart-e2e.dmp");
        CHECK(contains(proc, "Unable to write the dump: /proc/kdcart-e2e.dmp"));
        CHECK(!contains(proc, "partial file is kept")); // nothing was written
        CHECK(!contains(proc, "Dump successfully written"));
        auto under = block(p, ".dump /k " + regular + "/x.dmp");
        CHECK(contains(under, "Unable to write the dump: " + regular + "/x.dmp"));
        CHECK(contains(under, "Not a directory"));
        CHECK(!contains(under, "partial file is kept"));

        auto r = block(p, "r rip");
        CHECK(std::regex_search(r, std::regex("rip=fffff8[0-9a-f]{10}")));
        e2e::cmd(p, "q");
        CHECK(p.wait_exit(30s) == 0);
    }
    {
        e2e::Process z({kBin + "/kdcart", "-z", file});
        REQUIRE(z.started());
        EXPECT_OUT(z, "Comment: 'second'", 30s);
        EXPECT_OUT(z, "0: kd> ", 30s);
        CHECK(contains(block(z, "g"), "No runnable debuggees error in 'g'"));
        CHECK(contains(block(z, ".dump /k " + (dir / "again.dmp")),
                       "No runnable debuggees error in '.dump /k "));
        CHECK(std::regex_search(block(z, "r rip"), std::regex("rip=fffff8[0-9a-f]{10}")));
        e2e::cmd(z, "q");
        CHECK(z.wait_exit(30s) == 0);
    }

    // Files that are not (whole) dumps: one clear line and a non-zero exit.
    std::vector<uint8_t> good;
    {
        std::ifstream in(file, std::ios::binary);
        good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    REQUIRE(good.size() > 0x3000);
    auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
        std::ofstream(dir / name, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::streamsize>(bytes.size()));
        return dir / name;
    };
    std::vector<uint8_t> garbage(100000);
    uint32_t x = 12345;
    for (auto& b : garbage) {
        x = x * 1103515245u + 12345u;
        b = static_cast<uint8_t>(x >> 16);
    }
    const std::vector<std::pair<std::string, std::string>> bad = {
        {write("header.dmp", {good.begin(), good.begin() + 5000}),
         "smaller than the 0x2000-byte dump header"},
        {write("bitmap.dmp", {good.begin(), good.begin() + 0x2040}), "bitmap"},
        {write("garbage.dmp", garbage), "not a Windows crash dump"},
        {dir / "missing.dmp", "No such file or directory"},
    };
    for (const auto& [path, message] : bad) {
        e2e::Process z({kBin + "/kdcart", "-z", path});
        REQUIRE(z.started());
        z.close_stdin();
        const int code = z.wait_exit(30s);
        INFO(path << ":\n" << z.transcript());
        CHECK(code != 0);
        CHECK(code != -1);
        CHECK(contains(z.transcript(), "kdcart: " + path + ": "));
        CHECK(!contains(z.transcript(), path + ": " + path)); // the file is named once
        CHECK(contains(z.transcript(), message));
        CHECK(!contains(z.transcript(), "kd> "));
    }
    // Cut inside the page data: it opens, says so, and the pages that are there read.
    const std::string cut = write("cut.dmp", {good.begin(), good.begin() + good.size() / 2});
    {
        e2e::Process z({kBin + "/kdcart", "-z", cut});
        REQUIRE(z.started());
        EXPECT_OUT(z, R"(WARNING: the file is truncated: it holds \d+ of \d+ pages)", 30s);
        EXPECT_OUT(z, "0: kd> ", 30s);
        e2e::cmd(z, "q");
        CHECK(z.wait_exit(30s) == 0);
    }
}

TEST_CASE(".crash: the bug check stop, .bugcheck E2, a /k dump with bug check 0xE2 in its "
          "header, -z shows it") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string file = dir / "crash.dmp";
    {
        auto p = start_sim({"--sim-baud", "0"});
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);
        e2e::cmd(p, ".crash");
        EXPECT_OUT(p, R"(\*\*\* Fatal System Error: 0x000000e2)", 30s);
        EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
        EXPECT_OUT(p, "0: kd> ", 30s);
        auto bc = block(p, ".bugcheck");
        CHECK(contains(bc, "Bugcheck code 000000E2\n"));
        auto k = block(p, ".dump /k " + file, kCaptureTimeout);
        CHECK(contains(k, "Dump successfully written"));
        e2e::cmd(p, "q");
        CHECK(p.wait_exit(30s) == 0);
    }
    auto d = DumpFile::open(file);
    REQUIRE_MESSAGE(d.has_value(), d.error().message);
    check_common_header(**d, file);
    CHECK((*d)->bugcheck_code() == 0xE2);

    e2e::Process z({kBin + "/kdcart", "-z", file});
    REQUIRE(z.started());
    EXPECT_OUT(z, R"(BugCheck e2, \{0, 0, 0, 0\})", 30s);
    EXPECT_OUT(z, "0: kd> ", 30s);
    CHECK(contains(block(z, ".bugcheck"), "Bugcheck code 000000E2\n"));
    e2e::cmd(z, "q");
    CHECK(z.wait_exit(30s) == 0);
}
