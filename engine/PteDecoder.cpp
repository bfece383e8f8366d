#include "engine/PteDecoder.h"

namespace kdcart::engine {

namespace {

constexpr uint64_t kPfnMask = 0x000FFFFFFFFFF000ull;
constexpr uint64_t kValid = 1ull << 0;
constexpr uint64_t kWrite = 1ull << 1;
constexpr uint64_t kOwner = 1ull << 2;
constexpr uint64_t kWriteThrough = 1ull << 3;
constexpr uint64_t kCacheDisable = 1ull << 4;
constexpr uint64_t kAccessed = 1ull << 5;
constexpr uint64_t kDirty = 1ull << 6;
constexpr uint64_t kLargePage = 1ull << 7;
constexpr uint64_t kGlobal = 1ull << 8;
constexpr uint64_t kCopyOnWrite = 1ull << 9;
constexpr uint64_t kPrototype = 1ull << 10;
constexpr uint64_t kTransition = 1ull << 11;
constexpr uint64_t kNoExecute = 1ull << 63;
// A prototype PTE whose address field holds this value says "look in the VAD".
constexpr uint64_t kProtoVad = 0xFFFFFFFF0000ull;

uint64_t sign_extend48(uint64_t v) {
    v &= 0x0000FFFFFFFFFFFFull;
    if ((v & (1ull << 47)) != 0) {
        v |= 0xFFFF000000000000ull;
    }
    return v;
}

} // namespace

uint64_t pte_base_from_self_map_index(uint32_t index) {
    return sign_extend48(static_cast<uint64_t>(index & 0x1FF) << 39);
}

uint64_t pte_address(uint64_t va, uint64_t pte_base) {
    return ((va >> 9) & 0x7FFFFFFFF8ull) + pte_base;
}

PagingStructureAddresses paging_structure_addresses(uint64_t va, uint64_t pte_base) {
    PagingStructureAddresses a;
    a.pte = pte_address(va, pte_base);
    a.pde = pte_address(a.pte, pte_base);
    a.ppe = pte_address(a.pde, pte_base);
    a.pxe = pte_address(a.ppe, pte_base);
    return a;
}

std::optional<uint32_t> find_self_map_index(std::span<const uint64_t> pml4, uint64_t dtb) {
    const uint64_t frame = dtb & kPfnMask;
    auto is_self = [&](size_t i) {
        return i < pml4.size() && (pml4[i] & kValid) != 0 && (pml4[i] & kPfnMask) == frame;
    };
    for (size_t i = 256; i < 512; ++i) {
        if (is_self(i)) {
            return static_cast<uint32_t>(i);
        }
    }
    for (size_t i = 0; i < 256; ++i) {
        if (is_self(i)) {
            return static_cast<uint32_t>(i);
        }
    }
    return std::nullopt;
}

DecodedPte decode_pte(uint64_t raw, int level) {
    DecodedPte d;
    d.raw = raw;
    if (raw == 0) {
        d.kind = PteKind::Zero;
        return d;
    }
    if ((raw & kValid) != 0) {
        d.kind = PteKind::Valid;
        d.pfn = (raw & kPfnMask) >> 12;
        d.large = (level == 2 || level == 3) && (raw & kLargePage) != 0;
        return d;
    }
    d.protection = static_cast<uint32_t>((raw >> 5) & 0x1F);
    if ((raw & kPrototype) != 0) {
        d.kind = PteKind::Prototype;
        d.proto_address = sign_extend48(raw >> 16);
        d.proto_vad = (raw >> 16) == kProtoVad;
        return d;
    }
    if ((raw & kTransition) != 0) {
        d.kind = PteKind::Transition;
        d.pfn = (raw & kPfnMask) >> 12;
        return d;
    }
    d.page_file = static_cast<uint32_t>((raw >> 1) & 0xF);
    d.page_file_offset = raw >> 32;
    d.kind = d.page_file_offset == 0 ? PteKind::DemandZero : PteKind::PageFile;
    return d;
}

std::string pte_flags(uint64_t raw, int level) {
    std::string f = "-----------";
    f[0] = (raw & kCopyOnWrite) ? 'C' : '-';
    f[1] = (raw & kGlobal) ? 'G' : '-';
    f[2] = ((level == 2 || level == 3) && (raw & kLargePage)) ? 'L' : '-';
    f[3] = (raw & kDirty) ? 'D' : '-';
    f[4] = (raw & kAccessed) ? 'A' : '-';
    f[5] = (raw & kCacheDisable) ? 'N' : '-';
    f[6] = (raw & kWriteThrough) ? 'T' : '-';
    f[7] = (raw & kOwner) ? 'U' : 'K';
    f[8] = (raw & kWrite) ? 'W' : 'R';
    f[9] = (raw & kNoExecute) ? '-' : 'E';
    f[10] = (raw & kValid) ? 'V' : '-';
    return f;
}

std::string protection_name(uint32_t protection) {
    static const char* const kBase[8] = {"NoAccess",         "ReadOnly",        "Execute",
                                         "ExecuteRead",      "ReadWrite",       "WriteCopy",
                                         "ExecuteReadWrite", "ExecuteWriteCopy"};
    const uint32_t base = protection & 7;
    switch (protection & 0x18) {
    case 0x00:
        return kBase[base];
    case 0x08:
        return std::string("NoCache") + kBase[base];
    case 0x10:
        return base == 0 ? "Decommitted" : std::string("Guard") + kBase[base];
    default:
        return base == 0 ? "NoAccess" : std::string("WriteCombine") + kBase[base];
    }
}

PteWalk walk_page_tables(uint64_t va, uint64_t dtb, const PhysReader& read) {
    PteWalk w;
    w.va = va;
    w.dtb = dtb & kPfnMask;
    uint64_t table = w.dtb;
    for (int level = 4; level >= 1; --level) {
        const int shift = 12 + 9 * (level - 1);
        const uint64_t index = (va >> shift) & 0x1FF;
        const uint64_t where = table + index * 8;
        auto entry = read(where);
        if (!entry) {
            w.unreadable_table = table;
            return w;
        }
        PteWalkEntry e;
        e.level = level;
        e.physical = where;
        e.raw = *entry;
        e.decoded = decode_pte(*entry, level);
        w.entries.push_back(e);
        if (e.decoded.kind != PteKind::Valid) {
            return w;
        }
        if (e.decoded.large) {
            const uint64_t size_mask = (1ull << shift) - 1;
            w.mapped = true;
            w.physical = ((*entry & kPfnMask) & ~size_mask) | (va & size_mask);
            w.page_pfn = w.physical >> 12;
            return w;
        }
        table = *entry & kPfnMask;
    }
    w.mapped = true;
    w.physical = (w.entries.back().raw & kPfnMask) | (va & 0xFFF);
    w.page_pfn = w.physical >> 12;
    return w;
}

} // namespace kdcart::engine
