// The module list: walked only as far as an address needs (a stop line), finished by list(),
// names read in one request when they lie together, loops and broken entries end the walk.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Memory.h"
#include "engine/Modules.h"

#include <doctest/doctest.h>

#include <cstring>
#include <map>

using namespace kdcart;
using namespace kdcart::engine;
using namespace kdcart::protocol;

namespace {

// Sparse memory; every request counted.
class FakeTarget final : public Target {
  public:
    std::map<uint64_t, uint8_t> mem;
    int reads = 0;

    void put(uint64_t at, const void* data, size_t n) {
        const auto* p = static_cast<const uint8_t*>(data);
        for (size_t i = 0; i < n; ++i) {
            mem[at + i] = p[i];
        }
    }
    void put_u64(uint64_t at, uint64_t v) { put(at, &v, 8); }
    void put_utf16(uint64_t at, const std::string& s) {
        for (size_t i = 0; i < s.size(); ++i) {
            const uint16_t c = static_cast<uint8_t>(s[i]);
            put(at + 2 * i, &c, 2);
        }
    }

    bool can_run() const override { return true; }
    std::string describe() const override { return "fake"; }
    Result<DBGKD_GET_VERSION64> version() override { return DBGKD_GET_VERSION64{}; }
    Result<uint64_t> kddebugger_data_address() override { return uint64_t{0}; }
    uint32_t num_processors() const override { return 1; }
    uint16_t current_processor() const override { return 0; }
    Result<ReadResult> read_virtual(uint64_t address, uint32_t size) override {
        ++reads;
        ReadResult r;
        for (uint32_t i = 0; i < size; ++i) {
            auto it = mem.find(address + i);
            if (it == mem.end()) {
                r.status = 0xC0000005;
                break;
            }
            r.bytes.push_back(it->second);
        }
        return r;
    }
    Result<uint32_t> write_virtual(uint64_t, std::span<const uint8_t>) override {
        return make_error(Errc::Unsupported, "no");
    }
    Result<ReadResult> read_physical(uint64_t, uint32_t) override { return ReadResult{}; }
    Result<uint32_t> write_physical(uint64_t, std::span<const uint8_t>) override {
        return make_error(Errc::Unsupported, "no");
    }
    uint32_t max_request() const override { return 3944; }
    Result<CONTEXT> get_context(uint16_t) override { return CONTEXT{}; }
    Result<void> set_context(uint16_t, const CONTEXT&) override { return {}; }
    Result<ReadResult> read_control_space(uint16_t, uint64_t, uint32_t) override {
        return ReadResult{};
    }
    Result<uint32_t> write_control_space(uint16_t, uint64_t, std::span<const uint8_t>) override {
        return make_error(Errc::Unsupported, "no");
    }
    Result<uint64_t> page_directory(uint16_t) override { return uint64_t{0}; }
};

constexpr uint64_t kHead = 0xfffff80000605e80;
constexpr uint64_t kEntries = 0xfffffa8000006000;

// n modules, entry i at kEntries + i*0x1000, image i at 0xfffff80100000000 + i*0x100000 (1 MiB),
// names in one buffer as Windows lays them out (BaseDllName inside FullDllName).
void build_list(FakeTarget& t, int n, bool loop = false) {
    t.put_u64(kHead, n ? kEntries : kHead);
    for (int i = 0; i < n; ++i) {
        const uint64_t at = kEntries + static_cast<uint64_t>(i) * 0x1000;
        KLDR_DATA_TABLE_ENTRY64 e{};
        e.InLoadOrderLinks.Flink = i + 1 < n ? at + 0x1000 : (loop ? kEntries : kHead);
        e.DllBase = 0xfffff80100000000ull + static_cast<uint64_t>(i) * 0x100000;
        e.SizeOfImage = 0x100000;
        const std::string file = "drv" + std::to_string(i) + ".sys";
        const std::string full = "\\SystemRoot\\system32\\drivers\\" + file;
        const uint64_t buf = at + 0x200;
        t.put_utf16(buf, full);
        e.FullDllName.Length = static_cast<uint16_t>(full.size() * 2);
        e.FullDllName.Buffer = buf;
        e.BaseDllName.Length = static_cast<uint16_t>(file.size() * 2);
        e.BaseDllName.Buffer = buf + (full.size() - file.size()) * 2;
        t.put(at, &e, sizeof e);
    }
}

uint64_t image(int i) {
    return 0xfffff80100000000ull + static_cast<uint64_t>(i) * 0x100000;
}

} // namespace

TEST_CASE("module list: a stop in the first module reads only that entry") {
    FakeTarget t;
    build_list(t, 50);
    Memory mem(t);
    Modules mods(mem);
    const Module* m = mods.find_walking(kHead, image(0) + 0x1234);
    REQUIRE(m != nullptr);
    CHECK(m->name == "nt");
    CHECK(m->file_name == "drv0.sys");
    CHECK(m->full_path == "\\SystemRoot\\system32\\drivers\\drv0.sys");
    // The head, the entry, the two names in one request.
    CHECK(t.reads == 3);
    CHECK_FALSE(mods.known());

    // Further on: the walk goes on from there, nothing read twice.
    t.reads = 0;
    m = mods.find_walking(kHead, image(3) + 8);
    REQUIRE(m != nullptr);
    CHECK(m->name == "drv3");
    CHECK(t.reads == 3 * 2);
    CHECK_FALSE(mods.known());

    // list() finishes the walk: 50 modules, in order, the first still named nt.
    t.reads = 0;
    auto all = mods.list(kHead);
    REQUIRE(all);
    REQUIRE(all->size() == 50);
    CHECK(t.reads == 46 * 2);
    CHECK((*all)[0].name == "nt");
    CHECK((*all)[49].name == "drv49");
    CHECK(mods.known());
    // Known now: no more reads.
    t.reads = 0;
    CHECK(mods.find_walking(kHead, image(49)) != nullptr);
    CHECK(mods.list(kHead));
    CHECK(t.reads == 0);
}

TEST_CASE("module list: an address in no module walks everything once, then the list is known") {
    FakeTarget t;
    build_list(t, 5);
    Memory mem(t);
    Modules mods(mem);
    CHECK(mods.find_walking(kHead, 0x1000) == nullptr);
    CHECK(mods.known());
    CHECK(mods.known()->size() == 5);
    const int after = t.reads;
    CHECK(mods.find_walking(kHead, 0x2000) == nullptr);
    CHECK(t.reads == after);
}

TEST_CASE("module list: a loop or a broken entry ends the walk") {
    FakeTarget t;
    build_list(t, 4, /*loop=*/true);
    Memory mem(t);
    Modules mods(mem);
    auto all = mods.list(kHead);
    REQUIRE(all);
    CHECK(all->size() == 4);

    FakeTarget broken;
    build_list(broken, 4);
    for (uint64_t i = 0; i < sizeof(KLDR_DATA_TABLE_ENTRY64); ++i) {
        broken.mem.erase(kEntries + 2 * 0x1000 + i); // the third entry is not readable
    }
    Memory mem2(broken);
    Modules mods2(mem2);
    CHECK(mods2.find_walking(kHead, image(3)) == nullptr);
    auto part = mods2.list(kHead);
    REQUIRE(part);
    CHECK(part->size() == 2);

    FakeTarget empty;
    Memory mem3(empty);
    Modules mods3(mem3);
    CHECK_FALSE(mods3.list(kHead));
    CHECK_FALSE(mods3.list(0));
}

TEST_CASE("module list: invalidate starts a new walk") {
    FakeTarget t;
    build_list(t, 3);
    Memory mem(t);
    Modules mods(mem);
    REQUIRE(mods.find_walking(kHead, image(1)) != nullptr);
    mods.invalidate();
    mem.invalidate();
    build_list(t, 6);
    auto all = mods.list(kHead);
    REQUIRE(all);
    CHECK(all->size() == 6);
}
