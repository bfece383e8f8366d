#pragma once
// x64 page-table entries as `!pte` and `!vtop` explain them: the self-map arithmetic that gives
// the PXE/PPE/PDE/PTE addresses of a virtual address from the PTE base (which the caller finds:
// the PML4 self-map entry, KDDEBUGGER_DATA64.PteBase or nt!MmPteBase; Windows 10 1607 and later
// randomise it, so it is never assumed), and the decoding of one entry: hardware (valid) entries
// with WinDbg's flag string, large pages, and the software formats of a not-valid entry
// (prototype, transition, page file, demand zero).
#include "engine/AddressTranslation.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

// ---- the self-map ----

// The PTE base of a self-map at PML4 index `index` (0..511): index << 39, sign-extended.
uint64_t pte_base_from_self_map_index(uint32_t index);
// The address of the PTE that maps `va` in the self-map at `pte_base`:
// ((va >> 9) & 0x7FFFFFFFF8) + pte_base. Applied to a PTE address it gives the PDE's, etc.
uint64_t pte_address(uint64_t va, uint64_t pte_base);

struct PagingStructureAddresses {
    uint64_t pxe = 0; // PML4E
    uint64_t ppe = 0; // PDPTE
    uint64_t pde = 0;
    uint64_t pte = 0;
};
PagingStructureAddresses paging_structure_addresses(uint64_t va, uint64_t pte_base);

// The PML4 entry that maps the PML4 itself (its frame is the DTB's), kernel half first; nullopt
// when there is none (no self-map: the PTE base must then come from elsewhere).
std::optional<uint32_t> find_self_map_index(std::span<const uint64_t> pml4, uint64_t dtb);

// ---- one entry ----

enum class PteKind {
    Zero,       // 0: nothing
    Valid,      // hardware entry, present bit set
    Prototype,  // not valid, Prototype bit (10): points at a prototype PTE
    Transition, // not valid, Transition bit (11): the page is still in memory
    PageFile,   // not valid, in a paging file
    DemandZero, // not valid, no paging file offset yet: a zero page on first touch
};

struct DecodedPte {
    uint64_t raw = 0;
    PteKind kind = PteKind::Zero;
    uint64_t pfn = 0;           // Valid: the entry's frame (bits 12-51); Transition: the frame
    bool large = false;         // Valid PDE/PPE with the page-size bit
    uint32_t protection = 0;    // the software kinds: MM protection (bits 5-9)
    uint64_t proto_address = 0; // Prototype: bits 16-63, sign-extended from 48 bits
    bool proto_vad = false;     // Prototype whose address is 0xFFFFFFFF0000: "described by the VAD"
    uint32_t page_file = 0;     // PageFile: which paging file (bits 1-4)
    uint64_t page_file_offset = 0; // PageFile: bits 32-63, in pages (L1TF swizzling not undone)
};

// `level`: 4 = PXE, 3 = PPE, 2 = PDE, 1 = PTE (the page-size bit means a large page only at 3
// and 2).
DecodedPte decode_pte(uint64_t raw, int level);

// WinDbg's 11-character flag string of a valid entry, e.g. "---DA--KWEV", "-GLDA--KWEV":
// C (copy-on-write, bit 9), G (global, 8), L (large page, 7; levels 3 and 2), D (dirty, 6),
// A (accessed, 5), N (cache disabled, 4), T (write-through, 3), U/K (user bit 2), W/R (hardware
// write bit 1), E/- (execute: bit 63 clear), V (valid). '-' where the bit is clear.
std::string pte_flags(uint64_t raw, int level);

// "ReadWrite", "ExecuteRead", ... for an MM protection value (bits 5-9 of a software PTE).
std::string protection_name(uint32_t protection);

// ---- a walk for !pte and !vtop ----

struct PteWalkEntry {
    int level = 4;         // 4 = PXE ... 1 = PTE
    uint64_t physical = 0; // where the entry is in physical memory
    uint64_t raw = 0;
    DecodedPte decoded;
};

struct PteWalk {
    uint64_t va = 0;
    uint64_t dtb = 0;
    // The entries read, from the PXE down: the walk stops after the first entry that is not
    // valid, or at a large page.
    std::vector<PteWalkEntry> entries;
    // Where the walk could not read a table (physical address), if it could not.
    std::optional<uint64_t> unreadable_table;
    bool mapped = false;   // the address translates
    uint64_t physical = 0; // and to this
    uint64_t page_pfn = 0; // the 4 KiB frame (for a large page: the one inside it)
};

// Walks the tables of `dtb` (low 12 bits ignored) for `va`, reading entries with `read`.
PteWalk walk_page_tables(uint64_t va, uint64_t dtb, const PhysReader& read);

} // namespace kdcart::engine
