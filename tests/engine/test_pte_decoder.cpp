// The PTE decoder: the seed 001 vector (001:1395-1405, seed-digest §3.4), the self-map found in
// a synthetic PML4 at a non-legacy index, walks through large, transition, page-file and
// demand-zero entries.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/PteDecoder.h"

#include <doctest/doctest.h>
#include <map>
#include <vector>

using namespace kdcart::engine;

TEST_CASE("seed 001: the four table addresses of fffff900`c05e0000 with the legacy PTE base") {
    const uint64_t base = 0xFFFFF68000000000ull;
    CHECK(pte_base_from_self_map_index(0x1ED) == base);
    auto a = paging_structure_addresses(0xfffff900c05e0000ull, base);
    CHECK(a.pxe == 0xFFFFF6FB7DBEDF90ull);
    CHECK(a.ppe == 0xFFFFF6FB7DBF2018ull);
    CHECK(a.pde == 0xFFFFF6FB7E403010ull);
    CHECK(a.pte == 0xFFFFF6FC80602F00ull);
}

TEST_CASE("seed 001: the entries' pfns, flags and the prototype address") {
    const uint64_t pxe = 0x000000076245C863ull, ppe = 0x0000000762569863ull,
                   pde = 0x000000045FA17863ull, pte = 0xF8A000F4F9780400ull;
    auto x = decode_pte(pxe, 4);
    CHECK(x.kind == PteKind::Valid);
    CHECK(x.pfn == 0x76245c);
    CHECK(pte_flags(pxe, 4) == "---DA--KWEV");
    CHECK(decode_pte(ppe, 3).pfn == 0x762569);
    CHECK(pte_flags(ppe, 3) == "---DA--KWEV");
    CHECK(decode_pte(pde, 2).pfn == 0x45fa17);
    CHECK_FALSE(decode_pte(pde, 2).large);
    CHECK(pte_flags(pde, 2) == "---DA--KWEV");
    auto p = decode_pte(pte, 1);
    CHECK(p.kind == PteKind::Prototype);
    CHECK(p.proto_address == 0xFFFFF8A000F4F978ull);
    CHECK_FALSE(p.proto_vad);
}

TEST_CASE("flags: global, large, user, read-only, no-execute, cache bits") {
    CHECK(pte_flags(0x00000000040009E3ull, 2) == "-GLDA--KWEV");
    CHECK(pte_flags(0x00000000040009E3ull, 1) == "-G-DA--KWEV"); // bit 7 is PAT in a PTE
    CHECK(pte_flags(0x89000000059C5121ull, 1) == "-G--A--KR-V");
    CHECK(pte_flags(0x8000000000001025ull, 1) == "----A--UR-V");
    CHECK(pte_flags(0x000000000000123Full, 1) == "C---ANTUWEV");
}

TEST_CASE("software entries: transition, page file, demand zero, VAD prototype, zero") {
    // Transition, protection 4 (ReadWrite), frame 0x1234.
    auto t = decode_pte(0x0000000001234880ull, 1);
    CHECK(t.kind == PteKind::Transition);
    CHECK(t.pfn == 0x1234);
    CHECK(t.protection == 4);
    CHECK(protection_name(t.protection) == "ReadWrite");
    // Paging file 0, offset 0x3b7e, protection 4.
    auto f = decode_pte(0x00003B7E00000080ull, 1);
    CHECK(f.kind == PteKind::PageFile);
    CHECK(f.page_file == 0);
    CHECK(f.page_file_offset == 0x3b7e);
    auto z = decode_pte(0x0000000000000080ull, 1);
    CHECK(z.kind == PteKind::DemandZero);
    CHECK(z.protection == 4);
    auto v = decode_pte(0xFFFFFFFF00000420ull, 1);
    CHECK(v.kind == PteKind::Prototype);
    CHECK(v.proto_vad);
    CHECK(v.protection == 1);
    CHECK(decode_pte(0, 1).kind == PteKind::Zero);
    CHECK(protection_name(3) == "ExecuteRead");
    CHECK(protection_name(0x18) == "NoAccess");
}

namespace {

// Sparse physical memory of 8-byte entries.
struct Phys {
    std::map<uint64_t, uint64_t> q;
    void set(uint64_t table, uint64_t index, uint64_t value) { q[table + index * 8] = value; }
    PhysReader reader() {
        return [this](uint64_t pa) -> std::optional<uint64_t> {
            if (pa >= 0x100000000ull) {
                return std::nullopt; // "unreadable"
            }
            auto it = q.find(pa);
            return it == q.end() ? 0 : it->second;
        };
    }
};

} // namespace

TEST_CASE("the self-map at a randomised index is found from the PML4, not assumed") {
    const uint64_t dtb = 0x1aa000;
    std::vector<uint64_t> pml4(512, 0);
    pml4[0x1F0] = 0x5000 | 0x63;                     // some kernel table
    pml4[0x1A3] = dtb | 0x8000000000000063ull;       // the self-map, NX as on Windows 10
    pml4[0x010] = 0x7000 | 0x67;                     // a user table
    auto idx = find_self_map_index(pml4, dtb | 0x2); // a PCID in the low bits is ignored
    REQUIRE(idx.has_value());
    CHECK(*idx == 0x1A3);
    CHECK(pte_base_from_self_map_index(*idx) == 0xFFFFD18000000000ull);
    pml4[0x1A3] = 0;
    CHECK_FALSE(find_self_map_index(pml4, dtb).has_value());
}

TEST_CASE("walks: 4 KiB page, 2 MiB page, not-valid PTE, unreadable table") {
    Phys m;
    const uint64_t dtb = 0x1000;
    const uint64_t va = 0xfffff80000612345ull; // PML4 0x1f0, PDPT 0, PD 3, PT 0x12
    m.set(dtb, 0x1F0, 0x2000 | 0x63);
    m.set(0x2000, 0, 0x3000 | 0x63);
    m.set(0x3000, 3, 0x4000 | 0x63);
    m.set(0x4000, 0x12, 0x8000000000abc163ull);
    auto w = walk_page_tables(va, dtb, m.reader());
    REQUIRE(w.entries.size() == 4);
    CHECK(w.mapped);
    CHECK(w.physical == 0xabc345);
    CHECK(w.page_pfn == 0xabc);
    CHECK(w.entries[0].physical == dtb + 0x1F0 * 8);
    CHECK(w.entries[3].physical == 0x4000 + 0x12 * 8);

    // A large page at PD index 4.
    m.set(0x3000, 4, 0x0000000000a000e3ull);
    auto l = walk_page_tables(0xfffff80000812345ull, dtb, m.reader());
    REQUIRE(l.entries.size() == 3);
    CHECK(l.entries[2].decoded.large);
    CHECK(l.mapped);
    CHECK(l.physical == 0xa12345);
    CHECK(l.page_pfn == 0xa12);

    // A transition PTE: the walk stops there, not mapped.
    m.set(0x4000, 0x13, 0x0000000001234880ull);
    auto t = walk_page_tables(0xfffff80000613000ull, dtb, m.reader());
    REQUIRE(t.entries.size() == 4);
    CHECK_FALSE(t.mapped);
    CHECK(t.entries[3].decoded.kind == PteKind::Transition);

    // Nothing at the PXE.
    auto z = walk_page_tables(0x0000000012340000ull, dtb, m.reader());
    REQUIRE(z.entries.size() == 1);
    CHECK(z.entries[0].decoded.kind == PteKind::Zero);

    // A table the reader cannot read.
    m.set(dtb, 0x1F1, 0x100000000ull | 0x63);
    auto u = walk_page_tables(0xfffff88000000000ull, dtb, m.reader());
    CHECK(u.entries.size() == 1);
    REQUIRE(u.unreadable_table.has_value());
    CHECK(*u.unreadable_table == 0x100000000ull);
}
