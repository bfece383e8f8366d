// Crash dump files: write -> read round trips for DumpType 1, 5 and 6, resuming interrupted
// captures, refusing to clobber files, the header of a real Windows 10 MEMORY.DMP, and a
// mutation fuzz loop over hostile files (also run under ASan/UBSan).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/DumpFile.h"
#include "engine/DumpWriter.h"

#include <array>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace kdcart;
using namespace kdcart::engine;
namespace fs = std::filesystem;

namespace {

using Page = std::array<uint8_t, 4096>;
using Runs = std::vector<std::pair<uint64_t, uint64_t>>;

// Every 8-byte word of a page holds its own physical address (+ a per-dump salt).
Page pattern_page(uint64_t pfn, uint64_t salt = 0) {
    Page p{};
    for (uint64_t i = 0; i < 512; ++i) {
        uint64_t v = ((pfn << 12) | (i * 8)) ^ salt;
        std::memcpy(&p[i * 8], &v, 8);
    }
    return p;
}

struct TempDir {
    fs::path path;
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base ? base : "/tmp") + "/kdcart_dump_test.XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, ec);
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

DUMP_HEADER64 test_header() {
    DUMP_HEADER64 h{};
    h.MajorVersion = 0xF;
    h.MinorVersion = 19041;
    h.DirectoryTableBase = 0x1aa002; // PCID bits set: readers mask them
    h.PfnDataBase = 0xffffa30000000000;
    h.PsLoadedModuleList = 0xfffff8047a02a2b0;
    h.PsActiveProcessHead = 0xfffff8047a01e090;
    h.MachineImageType = protocol::IMAGE_FILE_MACHINE_AMD64;
    h.NumberProcessors = 2;
    h.BugCheckCode = LIVE_SYSTEM_DUMP;
    h.BugCheckParameter1 = 1;
    h.BugCheckParameter2 = 2;
    h.BugCheckParameter3 = 3;
    h.BugCheckParameter4 = 4;
    h.KdDebuggerDataBlock = 0xfffff80479c00b20;
    h.ContextRecord.ContextFlags = protocol::CONTEXT_ALL;
    h.ContextRecord.MxCsr = 0x1F80;
    h.ContextRecord.FltSave.MxCsr = 0x1F80;
    h.ContextRecord.SegCs = 0x10;
    h.ContextRecord.SegSs = 0x18;
    h.ContextRecord.Rip = 0xfffff80479a1b2c0;
    h.ContextRecord.Rsp = 0xfffff8047d4a7b58;
    h.Exception.ExceptionCode = protocol::STATUS_BREAKPOINT;
    h.Exception.ExceptionAddress = 0xfffff80479a1b2c0;
    h.SystemTime = 0x01da0a1b2c3d4e5f;
    std::strcpy(h.Comment, "kdcart test dump");
    h.ProductType = 1;
    return h;
}

DumpPlan make_plan(DumpKind kind, Runs runs, uint64_t bits = 0) {
    DumpPlan p;
    p.kind = kind;
    p.runs = std::move(runs);
    p.bitmap_bits = bits;
    p.header = test_header();
    p.identity = "19041.1.amd64fre.vb_release.191206-1406";
    return p;
}

std::vector<uint64_t> plan_pfns(const Runs& runs) {
    std::vector<uint64_t> out;
    for (auto [b, c] : runs) {
        for (uint64_t i = 0; i < c; ++i) {
            out.push_back(b + i);
        }
    }
    return out;
}

DumpWriterOptions no_timer(uint32_t pages = 256) {
    DumpWriterOptions o;
    o.checkpoint_pages = pages;
    o.checkpoint_interval = std::chrono::hours(24);
    return o;
}

// Writes pages [from, to) of the plan; PFNs in `unreadable` are given as unreadable.
void write_pages(DumpWriter& w, const std::vector<uint64_t>& pfns, size_t from, size_t to,
                 const std::vector<uint64_t>& unreadable, uint64_t salt = 0) {
    for (size_t i = from; i < to; ++i) {
        uint64_t pfn = pfns[i];
        bool bad = std::find(unreadable.begin(), unreadable.end(), pfn) != unreadable.end();
        Result<void> r;
        if (bad) {
            r = w.write_page(pfn, std::nullopt);
        } else {
            Page p = pattern_page(pfn, salt);
            r = w.write_page(pfn, std::span<const uint8_t, 4096>(p));
        }
        REQUIRE_MESSAGE(r.has_value(), r.error().message);
    }
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

template <class T> void put(std::vector<uint8_t>& b, size_t off, T v) {
    REQUIRE(off + sizeof v <= b.size());
    std::memcpy(&b[off], &v, sizeof v);
}

template <class T> T get(const std::vector<uint8_t>& b, size_t off) {
    T v{};
    std::memcpy(&v, &b[off], sizeof v);
    return v;
}

unsigned file_mode(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

bool page_is(const std::optional<std::span<const uint8_t>>& p, const Page& expect) {
    return p && p->size() == 4096 && std::memcmp(p->data(), expect.data(), 4096) == 0;
}

std::string write_dump(const TempDir& dir, const std::string& name, DumpKind kind, const Runs& runs,
                       uint64_t bits, const std::vector<uint64_t>& unreadable, uint64_t salt = 0) {
    std::string path = dir.file(name);
    auto w = DumpWriter::open(path, make_plan(kind, runs, bits), false, no_timer());
    REQUIRE_MESSAGE(w.has_value(), w.error().message);
    auto pfns = plan_pfns(runs);
    write_pages(**w, pfns, 0, pfns.size(), unreadable, salt);
    auto st = (*w)->finish();
    REQUIRE_MESSAGE(st.has_value(), st.error().message);
    return path;
}

// Invariants every successfully opened dump must satisfy, however hostile its bytes.
bool exercise(const DumpFile& d, std::mt19937_64& rng) {
    bool ok = true;
    uint64_t counted = 0;
    for (const PageRange& r : d.present_ranges()) {
        counted += r.count;
        ok &= r.count > 0;
        ok &= d.page(r.first_pfn).has_value();
        ok &= d.page(r.end_pfn() - 1).has_value();
    }
    ok &= counted == d.present_pages();
    auto check_pfn = [&](uint64_t pfn) {
        auto off = d.page_offset(pfn);
        auto p = d.page(pfn);
        ok &= off.has_value() == p.has_value();
        if (off) {
            ok &= *off >= kDumpHeaderSize && *off + 4096 <= d.file_size();
            volatile uint8_t sink = (*p)[0] ^ (*p)[4095];
            (void)sink;
        }
    };
    for (uint64_t pfn = 0; pfn < 0x60; ++pfn) {
        check_pfn(pfn);
    }
    for (uint64_t v : {uint64_t{0x1000}, uint64_t{0xFFFFFFFF}, kDumpMaxPfn - 1, kDumpMaxPfn,
                       UINT64_MAX, UINT64_MAX >> 12}) {
        check_pfn(v);
    }
    for (int i = 0; i < 8; ++i) {
        check_pfn(rng() % 0x400);
        const uint64_t shift = rng() % 64; // sequenced: the same run with every compiler
        check_pfn(rng() >> shift);
    }
    for (int i = 0; i < 3; ++i) {
        uint64_t pa = rng() % 0x80000;
        size_t size = rng() % 0x3000;
        MemoryBlock m = d.read_physical(pa, size);
        ok &= m.bytes.size() == size && m.valid.size() == size;
    }
    MemoryBlock top = d.read_physical(UINT64_MAX - 10, 100);
    ok &= top.bytes.size() == 100;
    (void)d.comment();
    (void)d.context().Rip;
    (void)d.dump_type_name();
    return ok;
}

} // namespace

TEST_CASE("dump type names and constants") {
    CHECK(dump_type_name(1) == "full");
    CHECK(dump_type_name(5) == "bitmap full");
    CHECK(dump_type_name(6) == "bitmap kernel");
    CHECK(dump_type_name(4) == "triage/small memory");
    CHECK(dump_type_name(0xA) == "complete range");
    CHECK(dump_type_name(0x77) == "unknown");
    CHECK(std::memcmp(&DUMP_SIGNATURE64, "PAGE", 4) == 0);
    CHECK(std::memcmp(&DUMP_VALID_DUMP64, "DU64", 4) == 0);
    CHECK(std::memcmp(&DUMP_SUMMARY_SIGNATURE, "SDMP", 4) == 0);
    CHECK(std::memcmp(&DUMP_FULL_SIGNATURE, "FDMP", 4) == 0);
    CHECK(std::memcmp(&DUMP_SUMMARY_VALID, "DUMP", 4) == 0);
}

TEST_CASE("full dump (type 1): write, read back, layout") {
    TempDir dir;
    Runs runs = {{1, 2}, {0x10, 1}, {0x100, 3}, {0x200, 1}};
    std::string path = dir.file("full.dmp");
    auto w = DumpWriter::open(path, make_plan(DumpKind::Full, runs), false, no_timer(2));
    REQUIRE(w.has_value());
    CHECK_FALSE((*w)->resume().resumed);
    CHECK((*w)->total_pages() == 7);
    CHECK(file_mode(path) == 0600);
    CHECK(fs::exists((*w)->sidecar_path()));
    // Half written: incomplete, readable as far as it goes.
    auto pfns = plan_pfns(runs);
    write_pages(**w, pfns, 0, 3, {});
    {
        auto d = DumpFile::open(path);
        REQUIRE_MESSAGE(d.has_value(), d.error().message);
        CHECK_FALSE((*d)->complete());
        REQUIRE((*d)->warnings().size() >= 1);
        CHECK((*d)->warnings()[0] == "the dump is incomplete (ValidDump is not DU64)");
        CHECK(page_is((*d)->page(1), pattern_page(1)));
        CHECK_FALSE((*d)->page(0x200).has_value());
        CHECK((*d)->missing_pages() > 0);
    }
    write_pages(**w, pfns, 3, pfns.size(), {0x101});
    auto st = (*w)->finish();
    REQUIRE_MESSAGE(st.has_value(), st.error().message);
    CHECK(st->pages_stored == 6);
    CHECK(st->pages_unreadable == 1);
    CHECK(st->file_bytes == 0x2000 + 7 * 0x1000);
    CHECK_FALSE(fs::exists(path + ".kdpart"));
    CHECK(fs::file_size(path) == 0x2000 + 7 * 0x1000);
    CHECK(file_mode(path) == 0600);

    auto d = DumpFile::open(path);
    REQUIRE_MESSAGE(d.has_value(), d.error().message);
    const DumpFile& f = **d;
    CHECK(f.warnings().empty());
    CHECK(f.complete());
    CHECK(f.dump_type() == 1);
    CHECK(f.dump_type_name() == "full");
    CHECK_FALSE(f.is_bitmap());
    CHECK(f.header().RequiredDumpSpace == 0x2000 + 7 * 0x1000);
    CHECK(f.header().PhysicalMemoryBlock.NumberOfRuns == 4);
    CHECK(f.header().PhysicalMemoryBlock.NumberOfPages == 7);
    CHECK(f.build() == 19041);
    CHECK(f.major_version() == 0xF);
    CHECK(f.directory_table_base() == 0x1aa000);
    CHECK(f.header().DirectoryTableBase == 0x1aa002);
    CHECK(f.kd_debugger_data_block() == 0xfffff80479c00b20);
    CHECK(f.ps_loaded_module_list() == 0xfffff8047a02a2b0);
    CHECK(f.ps_active_process_head() == 0xfffff8047a01e090);
    CHECK(f.pfn_database() == 0xffffa30000000000);
    CHECK(f.number_processors() == 2);
    CHECK(f.machine_type() == 0x8664);
    CHECK(f.bugcheck_code() == 0x161);
    CHECK(f.bugcheck_parameters() == std::array<uint64_t, 4>{1, 2, 3, 4});
    CHECK(f.system_time() == 0x01da0a1b2c3d4e5f);
    CHECK(f.comment() == "kdcart test dump");
    CHECK(f.context().Rip == 0xfffff80479a1b2c0);
    CHECK(f.context().Rsp == 0xfffff8047d4a7b58);
    CHECK(f.context().MxCsr == f.context().FltSave.MxCsr);
    CHECK(f.exception().ExceptionCode == protocol::STATUS_BREAKPOINT);
    // pages
    for (uint64_t pfn : {1, 2, 0x10, 0x100, 0x102, 0x200}) {
        CHECK_MESSAGE(page_is(f.page(pfn), pattern_page(pfn)), pfn);
    }
    CHECK(page_is(f.page(0x101), Page{})); // unreadable: zero-filled in a full dump
    for (uint64_t pfn : {0, 3, 0xF, 0x11, 0xFF, 0x103, 0x1FF, 0x201}) {
        CHECK_FALSE(f.page(pfn).has_value());
    }
    CHECK(*f.page_offset(1) == 0x2000);
    CHECK(*f.page_offset(0x10) == 0x4000);
    CHECK(*f.page_offset(0x200) == 0x8000);
    CHECK(f.present_pages() == 7);
    CHECK(f.missing_pages() == 0);
    CHECK(f.present_ranges() == std::vector<PageRange>{{1, 2}, {0x10, 1}, {0x100, 3}, {0x200, 1}});
    // read_physical across a run's end
    MemoryBlock m = f.read_physical(0x2ff8, 16);
    CHECK(m.address == 0x2ff8);
    REQUIRE(m.bytes.size() == 16);
    CHECK(get<uint64_t>(m.bytes, 0) == 0x2ff8);
    CHECK(m.valid[7]);
    CHECK_FALSE(m.valid[8]);
    CHECK(m.readable_prefix() == 8);
    CHECK(get<uint64_t>(m.bytes, 8) == 0);
    MemoryBlock all = f.read_physical(0x100000, 0x3000);
    CHECK(all.all_valid());
    CHECK(get<uint64_t>(all.bytes, 0x2ff8) == 0x102ff8);

    // The on-disk header: Windows' 'PAGE' fill where no field is set.
    auto bytes = slurp(path);
    CHECK(get<uint32_t>(bytes, 0x3C) == DUMP_SIGNATURE64);
    CHECK(get<uint32_t>(bytes, 0x344) == DUMP_SIGNATURE64);
    CHECK(get<uint32_t>(bytes, 0xF9C) == DUMP_SIGNATURE64);
    CHECK(get<uint32_t>(bytes, 0x1FFC) == DUMP_SIGNATURE64);
    CHECK(get<uint64_t>(bytes, 0x98 + 4 * 16) == 0x4547415045474150); // unused run slot
    CHECK(get<uint32_t>(bytes, 0x348 + 0x4D0) == DUMP_SIGNATURE64);   // after CONTEXT
    CHECK(get<uint64_t>(bytes, 0x60) == 0);                           // VersionUser
    CHECK(std::memcmp(bytes.data(), "PAGEDU64", 8) == 0);
}

TEST_CASE("bitmap dumps (types 5 and 6): write, read back, absent pages") {
    for (DumpKind kind : {DumpKind::BitmapFull, DumpKind::BitmapKernel}) {
        CAPTURE(static_cast<int>(kind));
        TempDir dir;
        Runs runs = {{0, 3}, {0x20, 2}, {0x1000, 5}};
        std::string path = write_dump(dir, "bmp.dmp", kind, runs, 0x2345, {1, 0x1002}, /*salt=*/0);
        auto d = DumpFile::open(path);
        REQUIRE_MESSAGE(d.has_value(), d.error().message);
        const DumpFile& f = **d;
        CHECK(f.warnings().empty());
        CHECK(f.is_bitmap());
        const bool full = kind == DumpKind::BitmapFull;
        CHECK(f.dump_type() == (full ? 5u : 6u));
        CHECK(f.bitmap_header().Signature == (full ? DUMP_FULL_SIGNATURE : DUMP_SUMMARY_SIGNATURE));
        CHECK(f.bitmap_header().ValidDump == DUMP_SUMMARY_VALID);
        CHECK(f.bitmap_header().BitmapSize == 0x2345);
        CHECK(f.bitmap_header().Pages == 8);
        CHECK(f.bitmap_header().HeaderSize == 0x3000); // 0x2038 + 0x469 bytes, page-aligned
        CHECK(f.header().RequiredDumpSpace == 0x3000 + 8 * 0x1000);
        CHECK(f.file_size() == 0x3000 + 8 * 0x1000);
        // Windows leaves the run list of bitmap dumps as 'PAGE' fill.
        CHECK(f.header().PhysicalMemoryBlock.NumberOfRuns == DUMP_SIGNATURE64);
        for (uint64_t pfn : {0, 2, 0x20, 0x21, 0x1000, 0x1001, 0x1003, 0x1004}) {
            CHECK_MESSAGE(page_is(f.page(pfn), pattern_page(pfn)), pfn);
        }
        for (uint64_t pfn : {1, 3, 0x1F, 0x22, 0x1002, 0x1005, 0x2344, 0x2345, 0x10000}) {
            CHECK_FALSE(f.page(pfn).has_value());
        }
        CHECK(*f.page_offset(0x1003) == 0x3000 + 6 * 0x1000);
        CHECK(f.present_ranges() ==
              std::vector<PageRange>{{0, 1}, {2, 1}, {0x20, 2}, {0x1000, 2}, {0x1003, 2}});
        CHECK(f.present_pages() == 8);
        MemoryBlock m = f.read_physical(0x1000 - 4, 8); // PFN 0 -> PFN 1 (absent)
        CHECK(m.readable_prefix() == 4);
        CHECK_FALSE(m.valid[4]);
        auto bytes = slurp(path);
        CHECK(get<uint8_t>(bytes, 0x2038) == 0b101); // bits LSB-first
    }
}

TEST_CASE("bitmap rank index across many blocks") {
    TempDir dir;
    // Scattered PFNs over 70000 bits: every 3rd PFN below 2000, a dense run, a far one.
    Runs runs;
    for (uint64_t p = 0; p < 2000; p += 3) {
        runs.emplace_back(p, 1);
    }
    runs.emplace_back(5000, 1500);
    runs.emplace_back(69999, 1);
    std::string path =
        write_dump(dir, "rank.dmp", DumpKind::BitmapKernel, runs, 70000, {3, 5001}, 0x5a5a);
    auto d = DumpFile::open(path);
    REQUIRE_MESSAGE(d.has_value(), d.error().message);
    uint64_t index = 0;
    bool ok = true;
    for (uint64_t pfn : plan_pfns(runs)) {
        if (pfn == 3 || pfn == 5001) {
            ok &= !(*d)->page(pfn).has_value();
            continue;
        }
        ok &= (*d)->page_offset(pfn) == (*d)->bitmap_header().HeaderSize + index * 0x1000;
        ok &= page_is((*d)->page(pfn), pattern_page(pfn, 0x5a5a));
        ++index;
    }
    CHECK(ok);
    CHECK((*d)->present_pages() == index);
}

TEST_CASE("writer argument checks") {
    TempDir dir;
    auto bad = [&](DumpPlan p) {
        auto w = DumpWriter::open(dir.file("x.dmp"), std::move(p), false);
        REQUIRE_FALSE(w.has_value());
        CHECK(w.error().code == Errc::InvalidArgument);
        return w.error().message;
    };
    CHECK(bad(make_plan(DumpKind::Full, {{5, 2}, {4, 1}})).find("ascending") != std::string::npos);
    CHECK(bad(make_plan(DumpKind::BitmapFull, {{5, 2}, {6, 1}})).find("ascending") !=
          std::string::npos);
    Runs many;
    for (uint64_t i = 0; i < 44; ++i) {
        many.emplace_back(i * 2, 1);
    }
    CHECK(bad(make_plan(DumpKind::Full, many)).find("43") != std::string::npos);
    CHECK(bad(make_plan(DumpKind::BitmapKernel, {{0, 0x10}}, 8)).find("bits") != std::string::npos);
    CHECK(bad(make_plan(DumpKind::Full, {{kDumpMaxPfn - 1, 2}})).find("physical") !=
          std::string::npos);
    // Touching runs are merged: 44 adjacent single pages are one run.
    Runs touching;
    for (uint64_t i = 0; i < 44; ++i) {
        touching.emplace_back(i, 1);
    }
    auto w = DumpWriter::open(dir.file("merged.dmp"), make_plan(DumpKind::Full, touching), false);
    REQUIRE(w.has_value());
    write_pages(**w, plan_pfns(touching), 0, 44, {});
    // out of order, past the end, early finish
    Page p = pattern_page(1);
    auto r = (*w)->write_page(1, std::span<const uint8_t, 4096>(p));
    CHECK_FALSE(r.has_value());
    REQUIRE((*w)->finish().has_value());
    auto d = DumpFile::open(dir.file("merged.dmp"));
    REQUIRE(d.has_value());
    CHECK((*d)->header().PhysicalMemoryBlock.NumberOfRuns == 1);

    auto w2 = DumpWriter::open(dir.file("early.dmp"), make_plan(DumpKind::Full, {{0, 4}}), false);
    REQUIRE(w2.has_value());
    CHECK_FALSE((*w2)->write_page(1, std::span<const uint8_t, 4096>(p)).has_value());
    write_pages(**w2, {0, 1, 2, 3}, 0, 1, {});
    auto f = (*w2)->finish();
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().message.find("3 of 4 pages are not written yet") != std::string::npos);
    auto f2 = (*w2)->finish(/*rest_unreadable=*/true);
    REQUIRE(f2.has_value());
    CHECK(f2->pages_stored == 1);
    CHECK(f2->pages_unreadable == 3);
    auto d2 = DumpFile::open(dir.file("early.dmp"));
    REQUIRE(d2.has_value());
    CHECK((*d2)->warnings().empty());
    CHECK(page_is((*d2)->page(0), pattern_page(0)));
    CHECK(page_is((*d2)->page(3), Page{}));

    auto w3 = DumpWriter::open(dir.file("early6.dmp"), make_plan(DumpKind::BitmapKernel, {{0, 4}}),
                               false);
    REQUIRE(w3.has_value());
    write_pages(**w3, {0, 1, 2, 3}, 0, 2, {});
    REQUIRE((*w3)->finish(true).has_value());
    auto d3 = DumpFile::open(dir.file("early6.dmp"));
    REQUIRE(d3.has_value());
    CHECK((*d3)->warnings().empty());
    CHECK((*d3)->present_ranges() == std::vector<PageRange>{{0, 2}});
}

TEST_CASE("existing files: complete dumps and foreign files are not clobbered without /o") {
    TempDir dir;
    std::string path = write_dump(dir, "done.dmp", DumpKind::BitmapKernel, {{0, 2}}, 0, {});
    auto before = slurp(path);
    auto w = DumpWriter::open(path, make_plan(DumpKind::BitmapKernel, {{0, 2}}), false);
    REQUIRE_FALSE(w.has_value());
    CHECK(w.error().message == path + " already exists (use /o to overwrite)");
    CHECK(slurp(path) == before);

    std::string other = dir.file("notes.txt");
    spit(other, {'h', 'e', 'l', 'l', 'o'});
    auto w2 = DumpWriter::open(other, make_plan(DumpKind::Full, {{0, 1}}), false);
    REQUIRE_FALSE(w2.has_value());
    CHECK(w2.error().message == other + " already exists (use /o to overwrite)");
    CHECK(slurp(other).size() == 5);

    // Not complete, but not what this writer leaves behind either (a 32-bit dump): refused.
    std::string dump32 = dir.file("x86.dmp");
    auto b32 = before;
    put<uint32_t>(b32, 4, DUMP_VALID_DUMP32);
    spit(dump32, b32);
    auto w5 = DumpWriter::open(dump32, make_plan(DumpKind::BitmapKernel, {{0, 2}}), false);
    REQUIRE_FALSE(w5.has_value());
    CHECK(w5.error().message == dump32 + " already exists (use /o to overwrite)");

    ::chmod(path.c_str(), 0644);
    auto w3 = DumpWriter::open(path, make_plan(DumpKind::Full, {{0, 2}}), true);
    REQUIRE_MESSAGE(w3.has_value(), w3.error().message);
    CHECK_FALSE((*w3)->resume().resumed);
    CHECK(file_mode(path) == 0600);
    write_pages(**w3, {0, 1}, 0, 2, {}, 7);
    REQUIRE((*w3)->finish().has_value());
    auto d = DumpFile::open(path);
    REQUIRE(d.has_value());
    CHECK((*d)->dump_type() == 1);
    CHECK(page_is((*d)->page(1), pattern_page(1, 7)));

    // An empty file is simply used.
    std::string empty = dir.file("empty.dmp");
    spit(empty, {});
    auto w4 = DumpWriter::open(empty, make_plan(DumpKind::Full, {{0, 1}}), false);
    CHECK(w4.has_value());
}

TEST_CASE("unwritable paths give an error naming the path and the reason") {
    TempDir dir;
    std::string p1 = dir.file("no/such/dir/x.dmp");
    auto w = DumpWriter::open(p1, make_plan(DumpKind::Full, {{0, 1}}), false);
    REQUIRE_FALSE(w.has_value());
    CHECK(w.error().code == Errc::Io);
    CHECK(w.error().message.find(p1) != std::string::npos);
    CHECK(w.error().message.find("No such file or directory") != std::string::npos);

    std::string file = dir.file("plain");
    spit(file, {1});
    std::string p2 = file + "/x.dmp";
    auto w2 = DumpWriter::open(p2, make_plan(DumpKind::Full, {{0, 1}}), false);
    REQUIRE_FALSE(w2.has_value());
    CHECK(w2.error().message.find("Not a directory") != std::string::npos);

    auto w3 = DumpWriter::open(dir.path.string(), make_plan(DumpKind::Full, {{0, 1}}), true);
    REQUIRE_FALSE(w3.has_value());
    CHECK(w3.error().message.find("not a regular file") != std::string::npos);

    if (::geteuid() != 0) { // root ignores directory permissions
        fs::create_directory(dir.path / "ro");
        fs::permissions(dir.path / "ro", fs::perms::owner_read | fs::perms::owner_exec);
        std::string p4 = dir.file("ro/x.dmp");
        auto w4 = DumpWriter::open(p4, make_plan(DumpKind::Full, {{0, 1}}), false);
        REQUIRE_FALSE(w4.has_value());
        CHECK(w4.error().message.find("Permission denied") != std::string::npos);
    }
}

TEST_CASE("a full disk mid-capture: error, partial file kept, resumable") {
    TempDir dir;
    std::string path = dir.file("full-disk.dmp");
    Runs runs = {{0x10, 40}};
    auto pfns = plan_pfns(runs);
    // RLIMIT_FSIZE makes writes past the limit fail (EFBIG) like a disk that fills up.
    struct rlimit old {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    {
        auto w = DumpWriter::open(path, make_plan(DumpKind::Full, runs), false, no_timer(8));
        REQUIRE(w.has_value());
        struct rlimit lim = old;
        lim.rlim_cur = 0x2000 + 21 * 0x1000;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
        Result<void> r;
        size_t i = 0;
        for (; i < pfns.size(); ++i) {
            Page p = pattern_page(pfns[i]);
            r = (*w)->write_page(pfns[i], std::span<const uint8_t, 4096>(p));
            if (!r) {
                break;
            }
        }
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &old) == 0);
        REQUIRE_FALSE(r.has_value());
        CHECK(i == 21);
        CHECK(r.error().code == Errc::Io);
        CHECK(r.error().message.find(path) != std::string::npos);
        CHECK(r.error().message.find("File too large") != std::string::npos);
        // the writer stays failed
        Page p = pattern_page(pfns[i]);
        CHECK_FALSE((*w)->write_page(pfns[i], std::span<const uint8_t, 4096>(p)).has_value());
        CHECK_FALSE((*w)->finish().has_value());
    }
    std::signal(SIGXFSZ, old_handler);
    CHECK(fs::exists(path));
    CHECK(fs::exists(path + ".kdpart"));
    auto w = DumpWriter::open(path, make_plan(DumpKind::Full, runs), false, no_timer(8));
    REQUIRE_MESSAGE(w.has_value(), w.error().message);
    CHECK((*w)->resume().resumed);
    CHECK((*w)->resume().next_index == 16); // the last checkpoint before the failure
    CHECK((*w)->next_pfn() == 0x10 + 16);
    write_pages(**w, pfns, 16, pfns.size(), {});
    REQUIRE((*w)->finish().has_value());
    auto d = DumpFile::open(path);
    REQUIRE(d.has_value());
    bool ok = true;
    for (uint64_t pfn : pfns) {
        ok &= page_is((*d)->page(pfn), pattern_page(pfn));
    }
    CHECK(ok);
}

TEST_CASE("resume after the writer is destroyed mid-way, for each kind") {
    for (DumpKind kind : {DumpKind::Full, DumpKind::BitmapFull, DumpKind::BitmapKernel}) {
        CAPTURE(static_cast<int>(kind));
        TempDir dir;
        std::string path = dir.file("r.dmp");
        Runs runs = {{2, 30}, {0x80, 20}};
        auto pfns = plan_pfns(runs);
        std::vector<uint64_t> bad = {5, 0x81, 0x92};
        {
            auto w = DumpWriter::open(path, make_plan(kind, runs, 0x100), false, no_timer(8));
            REQUIRE(w.has_value());
            write_pages(**w, pfns, 0, 35, bad);
        } // destroyed: a clean stop checkpoints where it is
        CHECK(fs::exists(path + ".kdpart"));
        {
            auto d = DumpFile::open(path); // the partial file reads up to the checkpoint
            REQUIRE_MESSAGE(d.has_value(), d.error().message);
            CHECK_FALSE((*d)->complete());
            CHECK(page_is((*d)->page(0x80), pattern_page(0x80)));
            CHECK_FALSE((*d)->page(0x85).has_value()); // index 35: not written yet
        }
        auto w = DumpWriter::open(path, make_plan(kind, runs, 0x100), false, no_timer(8));
        REQUIRE_MESSAGE(w.has_value(), w.error().message);
        CHECK((*w)->resume().resumed);
        CHECK((*w)->resume().next_index == 35);
        CHECK((*w)->resume().pages_unreadable == 2);
        CHECK((*w)->resume().pages_stored == 33);
        CHECK((*w)->next_pfn() == 0x80 + 5);
        write_pages(**w, pfns, 35, pfns.size(), bad);
        auto st = (*w)->finish();
        REQUIRE(st.has_value());
        CHECK(st->pages_stored == 47);
        CHECK(st->pages_unreadable == 3);
        // Byte-identical to an uninterrupted capture.
        std::string ref = write_dump(dir, "ref.dmp", kind, runs, 0x100, bad);
        CHECK(slurp(path) == slurp(ref));
    }
}

TEST_CASE("resume after a kill: continues from the last checkpoint") {
    for (DumpKind kind : {DumpKind::Full, DumpKind::BitmapKernel}) {
        CAPTURE(static_cast<int>(kind));
        TempDir dir;
        std::string path = dir.file("k.dmp");
        Runs runs = {{0, 64}};
        auto pfns = plan_pfns(runs);
        std::vector<uint64_t> bad = {3, 30};
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            auto w = DumpWriter::open(path, make_plan(kind, runs), false, no_timer(8));
            if (!w) {
                ::_exit(2);
            }
            for (size_t i = 0; i < 29; ++i) {
                Page p = pattern_page(pfns[i]);
                bool unreadable = std::find(bad.begin(), bad.end(), pfns[i]) != bad.end();
                auto r = unreadable ? (*w)->write_page(pfns[i], std::nullopt)
                                    : (*w)->write_page(pfns[i], std::span<const uint8_t, 4096>(p));
                if (!r) {
                    ::_exit(3);
                }
            }
            ::raise(SIGKILL); // no destructor, no final checkpoint
            ::_exit(4);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFSIGNALED(status));
        auto w = DumpWriter::open(path, make_plan(kind, runs), false, no_timer(8));
        REQUIRE_MESSAGE(w.has_value(), w.error().message);
        CHECK((*w)->resume().resumed);
        CHECK((*w)->resume().next_index == 24);
        CHECK((*w)->resume().pages_unreadable == 1);
        write_pages(**w, pfns, 24, pfns.size(), bad);
        REQUIRE((*w)->finish().has_value());
        std::string ref = write_dump(dir, "ref.dmp", kind, runs, 0, bad);
        CHECK(slurp(path) == slurp(ref));
    }
}

TEST_CASE("an interrupted capture with a different plan, or a bad sidecar, starts over") {
    TempDir dir;
    std::string path = dir.file("p.dmp");
    Runs runs = {{0, 20}};
    {
        auto w =
            DumpWriter::open(path, make_plan(DumpKind::BitmapKernel, runs), false, no_timer(4));
        REQUIRE(w.has_value());
        write_pages(**w, plan_pfns(runs), 0, 10, {});
    }
    SUBCASE("different runs") {
        auto w = DumpWriter::open(path, make_plan(DumpKind::BitmapKernel, {{0, 21}}), false);
        REQUIRE(w.has_value());
        CHECK_FALSE((*w)->resume().resumed);
        CHECK((*w)->resume().note == "the partial dump is of a different target or plan");
        CHECK((*w)->next_index() == 0);
    }
    SUBCASE("different kind") {
        auto w = DumpWriter::open(path, make_plan(DumpKind::BitmapFull, runs), false);
        REQUIRE(w.has_value());
        CHECK_FALSE((*w)->resume().resumed);
    }
    SUBCASE("different target (DTB)") {
        DumpPlan p = make_plan(DumpKind::BitmapKernel, runs);
        p.header.DirectoryTableBase = 0x4d2000;
        auto w = DumpWriter::open(path, std::move(p), false);
        REQUIRE(w.has_value());
        CHECK_FALSE((*w)->resume().resumed);
    }
    SUBCASE("different identity") {
        DumpPlan p = make_plan(DumpKind::BitmapKernel, runs);
        p.identity = "another build";
        auto w = DumpWriter::open(path, std::move(p), false);
        REQUIRE(w.has_value());
        CHECK_FALSE((*w)->resume().resumed);
    }
    SUBCASE("corrupted sidecar") {
        auto side = slurp(path + ".kdpart");
        side[side.size() / 2] ^= 1;
        spit(path + ".kdpart", side);
        auto w = DumpWriter::open(path, make_plan(DumpKind::BitmapKernel, runs), false);
        REQUIRE(w.has_value());
        CHECK_FALSE((*w)->resume().resumed);
        CHECK((*w)->resume().note.find("corrupted progress file") != std::string::npos);
    }
    SUBCASE("missing sidecar") {
        fs::remove(path + ".kdpart");
        auto w = DumpWriter::open(path, make_plan(DumpKind::BitmapKernel, runs), false);
        REQUIRE(w.has_value());
        CHECK_FALSE((*w)->resume().resumed);
    }
    SUBCASE("same plan resumes") {
        auto w = DumpWriter::open(path, make_plan(DumpKind::BitmapKernel, runs), false);
        REQUIRE(w.has_value());
        CHECK((*w)->resume().resumed);
        CHECK((*w)->next_index() == 10);
    }
}

// ---- the reader against hand-broken files ----

namespace {

// A valid small dump of the given kind, as bytes.
std::vector<uint8_t> valid_dump(const TempDir& dir, DumpKind kind) {
    Runs runs = {{1, 2}, {0x10, 3}, {0x30, 1}};
    std::string path = write_dump(dir, "valid.dmp", kind, runs, 0x40, {0x11});
    auto b = slurp(path);
    fs::remove(path);
    return b;
}

Result<std::unique_ptr<DumpFile>> open_bytes(const TempDir& dir, const std::vector<uint8_t>& b) {
    std::string path = dir.file("case.dmp");
    spit(path, b);
    return DumpFile::open(path);
}

// The same through an in-memory file (fast: the fuzz loop opens thousands).
Result<std::unique_ptr<DumpFile>> open_memfd(const std::vector<uint8_t>& b) {
    int fd = ::memfd_create("kdcart_dump_fuzz", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    size_t done = 0;
    while (done < b.size()) {
        ssize_t n = ::write(fd, b.data() + done, b.size() - done);
        REQUIRE(n > 0);
        done += static_cast<size_t>(n);
    }
    auto d = DumpFile::open("/proc/self/fd/" + std::to_string(fd));
    ::close(fd);
    return d;
}

std::string open_error(const TempDir& dir, const std::vector<uint8_t>& b, Errc code) {
    auto d = open_bytes(dir, b);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().code == code);
    return d.error().message;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("reader: structural errors are reported, not crashed on") {
    TempDir dir;
    const auto full = valid_dump(dir, DumpKind::Full);
    const auto bmp = valid_dump(dir, DumpKind::BitmapKernel);
    REQUIRE(open_bytes(dir, full).has_value());
    REQUIRE(open_bytes(dir, bmp).has_value());

    CHECK(contains(
        open_error(dir, std::vector<uint8_t>(full.begin(), full.begin() + 0x1fff), Errc::Malformed),
        "smaller than the 0x2000-byte dump header"));
    CHECK(DumpFile::open(dir.file("nope.dmp")).error().code == Errc::NotFound);
    CHECK(DumpFile::open(dir.path.string()).error().code == Errc::InvalidArgument);
    {
        auto b = full;
        put<uint32_t>(b, 0, 0x12345678);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "not a Windows crash dump"));
        put<uint32_t>(b, 0, DUMP_SIGNATURE64);
        put<uint32_t>(b, 4, DUMP_VALID_DUMP32);
        CHECK(contains(open_error(dir, b, Errc::Unsupported), "32-bit"));
    }
    for (uint32_t t : {2u, 3u, 4u, 8u, 9u, 0xAu}) {
        auto b = full;
        put<uint32_t>(b, 0xF98, t);
        std::string msg = open_error(dir, b, Errc::Unsupported);
        std::string expect = "DumpType " + std::to_string(t) + " (" +
                             std::string(dump_type_name(t)) + ") dumps are not supported yet";
        CHECK_MESSAGE(contains(msg, expect), msg);
    }
    {
        auto b = full;
        put<uint32_t>(b, 0xF98, 7);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "unknown DumpType 0x7"));
    }
    // ---- runs ----
    {
        auto b = full;
        put<uint32_t>(b, 0x88, DUMP_SIGNATURE64);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "'PAGE' fill"));
        put<uint32_t>(b, 0x88, 44);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "NumberOfRuns 44 exceeds"));
    }
    {
        auto b = full;
        put<uint64_t>(b, 0x90, 7);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "NumberOfPages 0x7 is not the sum"));
    }
    {
        auto b = full;
        put<uint64_t>(b, 0x98 + 16, 2); // run 1 now starts inside run 0
        CHECK(contains(open_error(dir, b, Errc::Malformed), "runs overlap"));
    }
    {
        auto b = full;
        put<uint64_t>(b, 0x98 + 16, UINT64_MAX - 1); // base + count overflows
        CHECK(contains(open_error(dir, b, Errc::Malformed), "largest physical address"));
    }
    {
        // Runs pointing far past the end of the file, RequiredDumpSpace not agreeing.
        auto b = full;
        put<uint64_t>(b, 0xA0 + 32, 0x100000); // run 2: 1 -> 0x100000 pages
        put<uint64_t>(b, 0x90, 5 + 0x100000);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "past the end of the file"));
        // ...which an incomplete dump is allowed (a capture in progress)
        put<uint32_t>(b, 4, 0);
        auto d = open_bytes(dir, b);
        REQUIRE(d.has_value());
        CHECK((*d)->missing_pages() == 0x100000 - 1);
    }
    {
        // A complete dump cut short, header self-consistent: opened, missing pages flagged.
        auto b = full;
        b.resize(b.size() - 0x1800);
        auto d = open_bytes(dir, b);
        REQUIRE_MESSAGE(d.has_value(), d.error().message);
        REQUIRE((*d)->warnings().size() == 1);
        CHECK(contains((*d)->warnings()[0], "the file is truncated: it holds 4 of 6 pages"));
        CHECK((*d)->present_pages() == 4);
        CHECK((*d)->missing_pages() == 2);
        CHECK(page_is((*d)->page(0x10), pattern_page(0x10)));
        CHECK_FALSE((*d)->page(0x12).has_value()); // the 5th page of the file's order
        CHECK_FALSE((*d)->page(0x30).has_value());
        CHECK((*d)->present_ranges() == std::vector<PageRange>{{1, 2}, {0x10, 2}});
    }
    {
        auto b = full;
        put<uint32_t>(b, 4, 0x11111111);
        auto d = open_bytes(dir, b);
        REQUIRE(d.has_value());
        CHECK((*d)->warnings() ==
              std::vector<std::string>{"the dump is incomplete (ValidDump is not DU64)"});
    }
    // ---- bitmaps ----
    {
        auto b = bmp;
        put<uint32_t>(b, 0x2000, 0x41414141);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "bad bitmap summary signature"));
    }
    {
        auto b = bmp;
        put<uint32_t>(b, 0x2004, 0);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "ValidDump"));
    }
    {
        auto b = bmp;
        put<uint64_t>(b, 0x2030, uint64_t{1} << 30); // 128 MiB of bitmap
        CHECK(contains(open_error(dir, b, Errc::Malformed), "runs past the end of the file"));
        put<uint64_t>(b, 0x2030, UINT64_MAX);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "BitmapSize"));
    }
    {
        auto b = bmp;
        put<uint64_t>(b, 0x2020, 0x3008);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "not page-aligned"));
        put<uint64_t>(b, 0x2020, 0x2000);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "inside the headers"));
        put<uint64_t>(b, 0x2020, 0x100000);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "beyond the end of the file"));
    }
    {
        auto b = bmp;
        put<uint64_t>(b, 0x2028, 9);
        CHECK(contains(open_error(dir, b, Errc::Malformed),
                       "Pages (9) disagrees with the bitmap's 5 set bits"));
        put<uint32_t>(b, 4, 0); // incomplete: warned, the bitmap wins
        auto d = open_bytes(dir, b);
        REQUIRE(d.has_value());
        CHECK((*d)->present_pages() == 5);
        CHECK((*d)->warnings().size() == 2);
    }
    {
        // extra bits set past the stored data, RequiredDumpSpace disagreeing: refused
        auto b = bmp;
        b[0x2038 + 4] = 0xFF; // PFNs 0x20..0x27
        put<uint64_t>(b, 0x2028, 13);
        CHECK(contains(open_error(dir, b, Errc::Malformed), "past the end of the file"));
    }
    {
        // bits past BitmapSize in the last byte are ignored
        auto b = bmp;
        put<uint64_t>(b, 0x2030, 0x33); // 0x30..0x32 covered; byte 6 has PFN 0x30 set
        b[0x2038 + 6] |= 0xF0;
        auto d = open_bytes(dir, b);
        REQUIRE_MESSAGE(d.has_value(), d.error().message);
        CHECK((*d)->present_pages() == 5);
    }
}

// The header of a real Windows 10 1803 (build 17134) kernel dump after a CRITICAL_PROCESS_DIED
// bug check, as `hexdump -C -n 1000 MEMORY.dmp` showed it (public blog post, seed 000).
static const char* kSeedHexdump = R"(
00000000  50 41 47 45 44 55 36 34  0f 00 00 00 ee 42 00 00  |PAGEDU64.....B..|
00000010  00 00 f0 55 01 00 00 00  00 00 00 00 80 80 ff ff  |...U............|
00000020  90 b2 03 2f 02 f8 ff ff  10 44 03 2f 02 f8 ff ff  |.../.....D./....|
00000030  64 86 00 00 04 00 00 00  ef 00 00 00 50 41 47 45  |d...........PAGE|
00000040  80 a5 8b 61 08 b9 ff ff  00 00 00 00 00 00 00 00  |...a............|
00000050  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000080  20 45 02 2f 02 f8 ff ff  50 41 47 45 50 41 47 45  | E./....PAGEPAGE|
00000090  50 41 47 45 50 41 47 45  50 41 47 45 50 41 47 45  |PAGEPAGEPAGEPAGE|
*
00000340  50 41 47 45 50 41 47 45  00 00 00 00 00 00 00 00  |PAGEPAGE........|
00000350  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000370  00 00 00 00 00 00 00 00  0f 00 10 00 80 1f 00 00  |................|
00000380  10 00 2b 00 2b 00 53 00  2b 00 18 00 46 02 00 00  |..+.+.S.+...F...|
00000390  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
000003c0  00 27 e5 5d 08 b9 ff ff  ef 00 00 00 00 00 00 00  |.'.]............|
000003d0  80 a5 8b 61 08 b9 ff ff  03 a5 8b 61 08 b9 ff ff  |...a.......a....|
000003e0  38 89 0d e0 0d fe ff ff                           |8.......|
)";

namespace {

// `hexdump -C` text back to bytes ("*" repeats the previous line up to the next offset).
std::vector<uint8_t> parse_hexdump(const char* text) {
    std::vector<uint8_t> out;
    std::vector<uint8_t> prev;
    bool repeat = false;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) {
            continue;
        }
        if (line == "*") {
            repeat = true;
            continue;
        }
        size_t offset = std::stoul(line.substr(0, 8), nullptr, 16);
        if (repeat) {
            while (out.size() < offset) {
                out.insert(out.end(), prev.begin(), prev.end());
            }
            repeat = false;
        }
        REQUIRE(out.size() == offset);
        std::string hexpart = line.substr(
            8, line.find('|') == std::string::npos ? std::string::npos : line.find('|') - 8);
        std::istringstream hs(hexpart);
        std::string tok;
        prev.clear();
        while (hs >> tok) {
            prev.push_back(static_cast<uint8_t>(std::stoul(tok, nullptr, 16)));
        }
        out.insert(out.end(), prev.begin(), prev.end());
    }
    return out;
}

} // namespace

TEST_CASE("seed 000: a real Windows 10 MEMORY.DMP header parses to the values it shows") {
    auto bytes = parse_hexdump(kSeedHexdump);
    REQUIRE(bytes.size() == 1000);
    DUMP_HEADER64 h{};
    std::memcpy(&h, bytes.data(), bytes.size());
    CHECK(h.Signature == DUMP_SIGNATURE64);
    CHECK(h.ValidDump == DUMP_VALID_DUMP64);
    CHECK(h.MajorVersion == 0xF);
    CHECK(h.MinorVersion == 17134);
    CHECK(h.DirectoryTableBase == 0x155f00000);
    CHECK(h.PfnDataBase == 0xffff808000000000);
    CHECK(h.PsLoadedModuleList == 0xfffff8022f03b290);
    CHECK(h.PsActiveProcessHead == 0xfffff8022f034410);
    CHECK(h.MachineImageType == 0x8664);
    CHECK(h.NumberProcessors == 4);
    CHECK(h.BugCheckCode == 0xEF); // CRITICAL_PROCESS_DIED
    CHECK(h.Padding0 == DUMP_SIGNATURE64);
    CHECK(h.BugCheckParameter1 == 0xffffb908618ba580);
    CHECK(h.BugCheckParameter2 == 0);
    CHECK(h.BugCheckParameter3 == 0);
    CHECK(h.BugCheckParameter4 == 0);
    CHECK(h.KdDebuggerDataBlock == 0xfffff8022f024520);
    CHECK(h.PhysicalMemoryBlock.NumberOfRuns == DUMP_SIGNATURE64); // 'PAGE' fill: bitmap dump
    CHECK(h.PhysicalMemoryBlock.NumberOfPages == 0x4547415045474150);
    const CONTEXT& c = h.ContextRecord;
    CHECK(c.P1Home == 0);
    CHECK(c.ContextFlags == 0x10000F);
    CHECK(c.MxCsr == 0x1F80);
    CHECK(c.SegCs == 0x10);
    CHECK(c.SegDs == 0x2B);
    CHECK(c.SegEs == 0x2B);
    CHECK(c.SegFs == 0x53);
    CHECK(c.SegGs == 0x2B);
    CHECK(c.SegSs == 0x18);
    CHECK(c.EFlags == 0x246);
    CHECK(c.Dr7 == 0);
    CHECK(c.Rax == 0xffffb9085de52700);
    CHECK(c.Rcx == 0xEF); // KeBugCheckEx(code, param1, ...)
    CHECK(c.Rdx == 0xffffb908618ba580);
    CHECK(c.Rbx == 0xffffb908618ba503);
    CHECK(c.Rsp == 0xfffffe0de00d8938);

    // Completed as a type-6 dump with one page, the reader returns the same values.
    std::vector<uint8_t> file(0x4000, 0);
    std::memcpy(file.data(), bytes.data(), bytes.size());
    put<uint32_t>(file, 0xF98, DUMP_TYPE_BITMAP_KERNEL);
    put<uint64_t>(file, 0xFA0, 0x4000);
    put<uint32_t>(file, 0x2000, DUMP_SUMMARY_SIGNATURE);
    put<uint32_t>(file, 0x2004, DUMP_SUMMARY_VALID);
    put<uint64_t>(file, 0x2020, 0x3000);
    put<uint64_t>(file, 0x2028, 1);
    put<uint64_t>(file, 0x2030, 0x1000);
    file[0x2038 + 0x10] = 0x04; // PFN 0x82
    file[0x3000] = 0xAB;
    TempDir dir;
    auto d = open_bytes(dir, file);
    REQUIRE_MESSAGE(d.has_value(), d.error().message);
    const DumpFile& f = **d;
    CHECK(f.warnings().empty());
    CHECK(f.dump_type_name() == "bitmap kernel");
    CHECK(f.build() == 17134);
    CHECK(f.directory_table_base() == 0x155f00000);
    CHECK(f.bugcheck_code() == 0xEF);
    CHECK(f.bugcheck_parameters()[0] == 0xffffb908618ba580);
    CHECK(f.kd_debugger_data_block() == 0xfffff8022f024520);
    CHECK(f.ps_loaded_module_list() == 0xfffff8022f03b290);
    CHECK(f.number_processors() == 4);
    CHECK(f.context().Rsp == 0xfffffe0de00d8938);
    CHECK(f.context().EFlags == 0x246);
    CHECK(f.present_ranges() == std::vector<PageRange>{{0x82, 1}});
    CHECK(f.read_physical(0x82000, 1).bytes[0] == 0xAB);
}

TEST_CASE("mutation fuzz: hostile variants of valid dumps never crash the reader") {
    TempDir dir;
    std::mt19937_64 rng(0x6b64636172742121ull); // fixed seed: reproducible
    const int per_kind = std::getenv("KDCART_FUZZ_ITERATIONS")
                             ? std::atoi(std::getenv("KDCART_FUZZ_ITERATIONS"))
                             : 3000;
    const std::vector<size_t> fields = {0x0,    0x4,    0x88,   0x8C,   0x90,   0x98,  0xA0,
                                        0xA8,   0xB0,   0xB8,   0xC0,   0xF98,  0xFA0, 0x2000,
                                        0x2004, 0x2020, 0x2028, 0x2030, 0x2038, 0x2040};
    int opened = 0, refused = 0;
    bool invariants = true;
    for (DumpKind kind : {DumpKind::Full, DumpKind::BitmapFull, DumpKind::BitmapKernel}) {
        const auto base = valid_dump(dir, kind);
        if (const char* corpus = std::getenv("KDCART_DUMP_CORPUS")) {
            spit(std::string(corpus) + "/seed_type" +
                     std::to_string(kind == DumpKind::Full         ? 1
                                    : kind == DumpKind::BitmapFull ? 5
                                                                   : 6) +
                     ".dmp",
                 base);
        }
        for (int it = 0; it < per_kind; ++it) {
            auto b = base;
            const int mutations = 1 + static_cast<int>(rng() % 3);
            for (int m = 0; m < mutations; ++m) {
                switch (rng() % 5) {
                case 0: { // bit flips, mostly in the headers
                    int flips = 1 + static_cast<int>(rng() % 8);
                    for (int i = 0; i < flips && !b.empty(); ++i) {
                        size_t limit = rng() % 4 ? std::min<size_t>(b.size(), 0x2100) : b.size();
                        size_t at = rng() % limit;
                        b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
                    }
                    break;
                }
                case 1: // truncation
                    b.resize(rng() % 2 ? rng() % (b.size() + 1)
                                       : b.size() - std::min<size_t>(b.size(), rng() % 0x2000));
                    break;
                case 2:
                case 3: { // a field overwritten with an extreme value
                    const uint64_t extremes[] = {0,
                                                 1,
                                                 0x7FFFFFFF,
                                                 0xFFFFFFFF,
                                                 0x80000000,
                                                 DUMP_SIGNATURE64,
                                                 0x4547415045474150,
                                                 uint64_t{1} << 63,
                                                 UINT64_MAX,
                                                 kDumpMaxPfn,
                                                 kDumpMaxPfn - 1,
                                                 b.size(),
                                                 b.size() + 1,
                                                 b.size() / 0x1000,
                                                 0x1000,
                                                 0x3000,
                                                 43,
                                                 44,
                                                 rng()};
                    size_t at = fields[rng() % fields.size()];
                    if (rng() % 4 == 0) {
                        const uint64_t slot = rng() % 44;
                        at = 0x98 + 16 * slot + 8 * (rng() % 2);
                    }
                    uint64_t v = extremes[rng() % std::size(extremes)];
                    size_t width = rng() % 2 ? 8 : 4;
                    if (at + width <= b.size()) {
                        std::memcpy(&b[at], &v, width);
                    }
                    break;
                }
                case 4: { // growth
                    const size_t grow = rng() % 0x3000;
                    b.resize(b.size() + grow, static_cast<uint8_t>(rng()));
                    break;
                }
                }
            }
            auto d = open_memfd(b);
            if (!d) {
                ++refused;
                if (std::getenv("KDCART_FUZZ_VERBOSE")) {
                    std::fprintf(stderr, "%s\n", d.error().message.c_str());
                }
                invariants &= !d.error().message.empty();
                continue;
            }
            ++opened;
            bool ok = exercise(**d, rng);
            if (!ok) {
                MESSAGE("invariant broken at kind " << static_cast<int>(kind) << " iteration "
                                                    << it);
            }
            invariants &= ok;
        }
    }
    MESSAGE("fuzz: " << opened << " opened, " << refused << " refused");
    CHECK(invariants);
    CHECK(opened > 0);
    CHECK(refused > 0);
}
