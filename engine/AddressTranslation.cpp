#include "engine/AddressTranslation.h"

namespace kdcart::engine {

namespace {
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kLargePage = 1ull << 7;
constexpr uint64_t kPfnMask = 0x000FFFFFFFFFF000ull;
} // namespace

bool is_canonical(uint64_t va) {
    const uint64_t top = va >> 47;
    return top == 0 || top == 0x1FFFF;
}

Result<Translation> translate_va(uint64_t va, uint64_t cr3, const PhysReader& read) {
    if (!is_canonical(va)) {
        return make_error(Errc::InvalidArgument, "non-canonical address");
    }
    uint64_t table = cr3 & kPfnMask;
    Translation t;
    for (int level = 4; level >= 1; --level) {
        const int shift = 12 + 9 * (level - 1);
        const uint64_t index = (va >> shift) & 0x1FF;
        auto entry = read(table + index * 8);
        if (!entry) {
            return make_error(Errc::Unreadable, "page table not readable");
        }
        t.pte = *entry;
        t.level = level;
        if ((*entry & kPresent) == 0) {
            t.state = *entry == 0 ? PageState::Unmapped : PageState::NotPresent;
            // An empty upper-level entry means nothing is mapped below it.
            if (level > 1 && *entry != 0) {
                t.state = PageState::NotPresent;
            }
            return t;
        }
        if ((level == 2 || level == 3) && (*entry & kLargePage) != 0) {
            const uint64_t size_mask = (1ull << shift) - 1;
            t.state = PageState::Present;
            t.physical = ((*entry & kPfnMask) & ~size_mask) | (va & size_mask);
            return t;
        }
        table = *entry & kPfnMask;
    }
    t.state = PageState::Present;
    t.physical = (t.pte & kPfnMask) | (va & 0xFFF);
    return t;
}

} // namespace kdcart::engine
