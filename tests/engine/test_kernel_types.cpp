// KernelTypes against kdsim's ntoskrnl.pdb (built by clang-cl/lld-link from hw/images/nt.c): field
// paths resolve to the offsets kdsim's ABI header fixes (which differ from every real build), typed
// reads of a fake object in memory, and LIST_ENTRY walks over healthy, looping, truncated and
// endless lists.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/KernelTypes.h"
#include "engine/Pdb.h"

#include "hw/images/sim_abi.h"

#include <doctest/doctest.h>

#include <cstring>
#include <map>

using namespace kdcart;
using namespace kdcart::engine;

namespace {

// Sparse fake memory: 4 KiB pages that exist or not.
struct FakeMemory {
    std::map<uint64_t, std::vector<uint8_t>> pages;
    void map(uint64_t page) { pages[page & ~uint64_t{0xFFF}].resize(4096); }
    void put(uint64_t address, const void* data, size_t size) {
        const auto* p = static_cast<const uint8_t*>(data);
        for (size_t i = 0; i < size; ++i) {
            const uint64_t a = address + i;
            auto it = pages.find(a & ~uint64_t{0xFFF});
            REQUIRE(it != pages.end());
            it->second[a & 0xFFF] = p[i];
        }
    }
    void put_u64(uint64_t address, uint64_t v) { put(address, &v, 8); }
    void put_u32(uint64_t address, uint32_t v) { put(address, &v, 4); }
    Result<MemoryBlock> read(uint64_t address, size_t size) const {
        MemoryBlock b;
        b.address = address;
        b.bytes.resize(size);
        b.valid.resize(size);
        for (size_t i = 0; i < size; ++i) {
            const uint64_t a = address + i;
            auto it = pages.find(a & ~uint64_t{0xFFF});
            if (it != pages.end()) {
                b.bytes[i] = it->second[a & 0xFFF];
                b.valid[i] = true;
            }
        }
        return b;
    }
};

struct Fixture {
    std::unique_ptr<PdbFile> pdb;
    const PdbTypes* types = nullptr;
    FakeMemory mem;
    Fixture() {
        auto f = PdbFile::open(std::string(KDSIM_IMAGE_DIR) + "/ntoskrnl.pdb");
        REQUIRE_MESSAGE(f.has_value(), (f ? "" : f.error().message));
        pdb = std::move(*f);
        auto t = pdb->types();
        REQUIRE(t.has_value());
        types = *t;
    }
    KernelTypes kt() {
        return KernelTypes(*types, [this](uint64_t a, size_t n) { return mem.read(a, n); });
    }
};

} // namespace

TEST_CASE("field paths resolve through nested structures to kdsim's offsets") {
    Fixture fx;
    auto kt = fx.kt();
    CHECK(kt.offset("_EPROCESS", "Pcb.DirectoryTableBase").value() ==
          SIM_EPROCESS_DIRECTORY_TABLE_BASE);
    CHECK(kt.offset("_EPROCESS", "ActiveProcessLinks").value() ==
          SIM_EPROCESS_ACTIVE_PROCESS_LINKS);
    CHECK(kt.offset("_ETHREAD", "Cid").value() == SIM_ETHREAD_CID);
    CHECK(kt.offset("_ETHREAD", "Tcb.WaitReason").value() == SIM_KTHREAD_WAIT_REASON);
    CHECK(kt.offset("_ETHREAD", "Tcb.ApcState.Process").value() == SIM_KTHREAD_APC_STATE_PROCESS);
    CHECK(kt.offset("_ETHREAD", "Tcb.WaitBlockList").value() == SIM_KTHREAD_WAIT_BLOCK_LIST);
    CHECK(kt.offset("_ETHREAD", "Cid.UniqueThread").value() == SIM_ETHREAD_CID + 8);
    CHECK(kt.size_of("_KTHREAD").value() == SIM_KTHREAD_SIZE);
    CHECK(kt.size_of("_EPROCESS").value() == SIM_EPROCESS_SIZE);

    auto f = kt.field("_KTHREAD", "WaitReason");
    REQUIRE(f);
    CHECK(f->size == 1);
    auto p = kt.field("_KTHREAD", "Process");
    REQUIRE(p);
    CHECK(p->info->kind == PdbType::Kind::Pointer);
    CHECK(p->size == 8);
    auto name = kt.field("_EPROCESS", "ImageFileName");
    REQUIRE(name);
    CHECK(name->info->kind == PdbType::Kind::Array);
    CHECK(name->size == 15);

    // Unknown fields and types: an error naming them, prefixed as WinDbg words it.
    auto bad = kt.offset("_EPROCESS", "Pcb.NoSuchField");
    REQUIRE(!bad);
    CHECK(bad.error().message.find("NT symbols are incorrect") != std::string::npos);
    CHECK(bad.error().message.find("Pcb.NoSuchField") != std::string::npos);
    CHECK(!kt.offset("_NO_SUCH_TYPE", "X"));
    CHECK(!kt.offset("_EPROCESS", "UniqueProcessId.Deeper")); // not a structure
    CHECK(!kt.has_field("_KTHREAD", "NoSuch"));
    CHECK(kt.has_field("_KTHREAD", "State"));
}

TEST_CASE("typed reads of an object's fields") {
    Fixture fx;
    auto kt = fx.kt();
    const uint64_t ep = 0xFFFFA00000010000;
    fx.mem.map(ep);
    fx.mem.map(ep + 0x1000);
    const uint64_t str = 0xFFFFA00000020000;
    fx.mem.map(str);
    fx.mem.put_u64(ep + SIM_EPROCESS_UNIQUE_PROCESS_ID, 0x338);
    fx.mem.put(ep + SIM_EPROCESS_IMAGE_FILE_NAME, "svchost.exe", 12);
    fx.mem.put_u64(ep + SIM_EPROCESS_DIRECTORY_TABLE_BASE, 0x1ab000);
    CHECK(kt.read_pointer(ep, "_EPROCESS", "UniqueProcessId").value() == 0x338);
    CHECK(kt.read_unsigned(ep, "_EPROCESS", "Pcb.DirectoryTableBase").value() == 0x1ab000);
    CHECK(kt.read_char_array(ep, "_EPROCESS", "ImageFileName").value() == "svchost.exe");
    // A 1-byte signed field.
    const uint64_t th = ep; // reuse the pages as a thread
    fx.mem.put(th + SIM_KTHREAD_PRIORITY, "\xfe", 1);
    CHECK(kt.read_signed(th, "_KTHREAD", "Priority").value() == -2);
    CHECK(kt.read_unsigned(th, "_KTHREAD", "Priority").value() == 0xFE);
    // UNICODE_STRING: Length bytes of UTF-16 at Buffer.
    const char16_t text[] = u"C:\\Windows\\\u00e9x";
    const uint64_t us = str + 0x100;
    fx.mem.put(str, text, sizeof text);
    uint16_t len = static_cast<uint16_t>((sizeof text) - 2);
    fx.mem.put(us, &len, 2);
    fx.mem.put(us + 2, &len, 2);
    fx.mem.put_u64(us + 8, str);
    CHECK(kt.read_unicode_string_at(us).value() == "C:\\Windows\\\xc3\xa9x");
    CHECK(kt.read_unicode_string_at(us, 3).value() == "C:\\");
    // A buffer in unmapped memory: an error, not garbage.
    fx.mem.put_u64(us + 8, 0xFFFFB00000000000);
    auto bad = kt.read_unicode_string_at(us);
    REQUIRE(!bad);
    CHECK(bad.error().code == Errc::Unreadable);
    // A field of an object in unmapped memory.
    auto unread = kt.read_pointer(0xFFFFC00000000000, "_EPROCESS", "Peb");
    REQUIRE(!unread);
    CHECK(unread.error().message.find("_EPROCESS.Peb") != std::string::npos);
    // Not a pointer.
    CHECK(!kt.read_pointer(ep, "_EPROCESS", "ImageFileName"));
}

TEST_CASE("LIST_ENTRY walks: healthy, looping, unreadable, null, bounded") {
    Fixture fx;
    auto kt = fx.kt();
    const uint64_t base = 0xFFFFA00000100000;
    fx.mem.map(base);
    const uint64_t head = base;
    const uint64_t e[4] = {base + 0x100, base + 0x200, base + 0x300, base + 0x400};
    auto link = [&](uint64_t from, uint64_t to) { fx.mem.put_u64(from, to); };
    link(head, e[0]);
    link(e[0], e[1]);
    link(e[1], e[2]);
    link(e[2], head);
    auto w = kt.walk_list(head);
    CHECK(!w.broken);
    CHECK(w.entries == std::vector<uint64_t>{e[0], e[1], e[2]});

    // A loop that misses the head: stops at the entry that points back.
    link(e[2], e[1]);
    w = kt.walk_list(head);
    REQUIRE(w.broken);
    CHECK(w.broken_at == e[2]);
    CHECK(w.entries.size() == 3);
    CHECK(w.broken->find("loops") != std::string::npos);

    // A Flink into unmapped memory.
    link(e[2], 0xFFFFDEAD00000000);
    w = kt.walk_list(head);
    REQUIRE(w.broken);
    CHECK(w.broken_at == 0xFFFFDEAD00000000);
    CHECK(w.entries.size() == 3);
    CHECK(w.broken->find("not readable") != std::string::npos);

    // A null Flink.
    link(e[2], 0);
    w = kt.walk_list(head);
    REQUIRE(w.broken);
    CHECK(w.broken_at == e[2]);

    // The bound.
    link(e[2], head);
    w = kt.walk_list(head, 2);
    REQUIRE(w.broken);
    CHECK(w.entries.size() == 2);

    // An empty list and an unreadable head.
    link(e[3], e[3]);
    w = kt.walk_list(e[3]);
    CHECK(!w.broken);
    CHECK(w.entries.empty());
    w = kt.walk_list(0xFFFFDEAD00000000);
    CHECK(w.broken);

    // As a field list: KPROCESS.ThreadListHead of KTHREAD.ThreadListEntry, entries as threads.
    const uint64_t proc = base + 0x800;
    const uint64_t thread = 0xFFFFA00000200000;
    fx.mem.map(thread);
    const uint64_t entry = thread + SIM_KTHREAD_THREAD_LIST_ENTRY;
    link(proc + SIM_KPROCESS_THREAD_LIST_HEAD, entry);
    link(entry, proc + SIM_KPROCESS_THREAD_LIST_HEAD);
    auto fw =
        kt.walk_field_list(proc, "_KPROCESS", "ThreadListHead", "_KTHREAD", "ThreadListEntry");
    REQUIRE(fw);
    CHECK(fw->entries == std::vector<uint64_t>{thread});
}

TEST_CASE("UTF-16 to UTF-8") {
    const uint8_t pair[] = {0x3D, 0xD8, 0x00, 0xDE, 'A', 0}; // U+1F600, 'A'
    CHECK(utf16_to_utf8(pair, sizeof pair) == "\xF0\x9F\x98\x80"
                                              "A");
    const uint8_t lone[] = {0x00, 0xD8, 'B', 0};
    CHECK(utf16_to_utf8(lone, sizeof lone) == "\xEF\xBF\xBD"
                                              "B");
}
