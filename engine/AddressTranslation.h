#pragma once
// x64 4-level address translation through the target's own page tables, read with physical
// reads: tells present pages from paged-out ones (non-zero PTE without the present bit) and from
// addresses with no mapping at all. Used to tell an owed breakpoint from a bad address.
#include "transport/Error.h"

#include <cstdint>
#include <functional>
#include <optional>

namespace kdcart::engine {

enum class PageState {
    Present,   // the CPU can use it
    NotPresent,// a non-zero PTE without the present bit: paged out, in transition...
    Unmapped,  // no page table entry at some level
};

struct Translation {
    PageState state = PageState::Unmapped;
    uint64_t physical = 0; // valid when Present
    uint64_t pte = 0;      // the last entry looked at
    int level = 0;         // 4 = PML4E ... 1 = PTE (2/3 for large pages)
};

bool is_canonical(uint64_t va);

// Reads one 8-byte entry of physical memory; nullopt when it cannot.
using PhysReader = std::function<std::optional<uint64_t>(uint64_t pa)>;

[[nodiscard]] Result<Translation> translate_va(uint64_t va, uint64_t cr3, const PhysReader& read);

} // namespace kdcart::engine
