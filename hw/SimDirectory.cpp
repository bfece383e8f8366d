// The object manager's namespace as far as kdsim has one (\, \Driver, \Device, \ObjectTypes, each
// a Directory object with 37 hash buckets of OBJECT_DIRECTORY_ENTRY chains; every entered
// object's name info points back at its directory), and the PFN database's entries for every
// page the boot page tables map (MMPFN: PteAddress = the entry's self-map address, PteFrame =
// the table's frame, active and valid, Modified from the entry's D bit).
#include "hw/SimMachine.h"
#include "hw/images/sim_abi.h"

#include <cctype>
#include <vector>

namespace kdcart::hw {

namespace {

uint32_t name_hash(std::string_view name) {
    uint32_t h = 0;
    for (char c : name) {
        h = h * 31 + static_cast<uint32_t>(std::toupper(static_cast<unsigned char>(c)));
    }
    return h;
}

std::u16string to16(std::string_view s) {
    return std::u16string(s.begin(), s.end());
}

} // namespace

Result<void> SimMachine::build_object_directory() {
    m_workload.directories.clear();
    m_workload.directory_entries.clear();
    auto make_dir = [this](const std::string& path, std::string_view name) -> Result<uint64_t> {
        auto dir = allocate_object(SIM_OBJ_TYPE_DIRECTORY, SIM_OBJECT_DIRECTORY_SIZE, to16(name));
        if (!dir) {
            return dir;
        }
        m_workload.directories[path] = *dir;
        return dir;
    };
    auto insert = [this](const std::string& dir_path, std::string_view name,
                         uint64_t object) -> Result<void> {
        const uint64_t dir = m_workload.directories[dir_path];
        auto entry = pool_allocate(SIM_OBJECT_DIRECTORY_ENTRY_SIZE, 16);
        if (!entry) {
            return tl::unexpected(entry.error());
        }
        const uint32_t hash = name_hash(name);
        const uint64_t bucket =
            dir + SIM_OBJECT_DIRECTORY_HASH_BUCKETS + (hash % SIM_OBJECT_DIRECTORY_BUCKETS) * 8ull;
        put64(*entry + SIM_OBJECT_DIRECTORY_ENTRY_OBJECT, object);
        put64(*entry + SIM_OBJECT_DIRECTORY_ENTRY_CHAIN_LINK, get64(bucket));
        put32(*entry + SIM_OBJECT_DIRECTORY_ENTRY_HASH_VALUE, hash);
        put64(bucket, *entry);
        // The object's name info (when it has one) says which directory holds it.
        const uint64_t header = object - SIM_OBJECT_HEADER_BODY;
        uint8_t mask = 0;
        if (read_virtual(header + SIM_OBJECT_HEADER_INFO_MASK, {&mask, 1}) == 1 &&
            (mask & 0x02) != 0) {
            put64(header - SIM_OBJECT_HEADER_NAME_INFO_SIZE + SIM_OBJECT_HEADER_NAME_INFO_DIRECTORY,
                  dir);
        }
        m_workload.directory_entries[dir_path][std::string(name)] = object;
        return {};
    };
    auto root = make_dir("\\", "\\");
    if (!root) {
        return tl::unexpected(root.error());
    }
    for (const char* sub : {"Driver", "Device", "ObjectTypes"}) {
        auto d = make_dir(std::string("\\") + sub, sub);
        if (!d) {
            return tl::unexpected(d.error());
        }
        if (auto r = insert("\\", sub, *d); !r) {
            return r;
        }
    }
    for (const auto& [path, driver] : m_workload.driver_objects) {
        const std::string name = path.substr(path.rfind('\\') + 1);
        if (auto r = insert("\\Driver", name, driver); !r) {
            return r;
        }
    }
    for (const auto& dev : m_workload.devices) {
        if (auto r = insert("\\Device", dev.name, dev.device_object); !r) {
            return r;
        }
    }
    for (const auto& [index, type] : m_object_types) {
        (void)index;
        // The type's name: its UNICODE_STRING (ASCII names).
        uint8_t len[2] = {0, 0};
        read_virtual(type + SIM_OBJECT_TYPE_NAME, {len, 2});
        const uint64_t buffer = get64(type + SIM_OBJECT_TYPE_NAME + 8);
        std::string name;
        const uint32_t length = static_cast<uint32_t>(len[0] | (len[1] << 8));
        for (uint32_t i = 0; i + 1 < length && i < 256; i += 2) {
            uint8_t c[2] = {0, 0};
            read_virtual(buffer + i, {c, 2});
            name.push_back(static_cast<char>(c[0]));
        }
        if (auto r = insert("\\ObjectTypes", name, type); !r) {
            return r;
        }
    }
    put64(symbol("ObpRootDirectoryObject"), *root);
    return {};
}

void SimMachine::fill_pfn_entries() {
    constexpr uint64_t kPresent = 1, kDirty = 0x40, kLarge = 0x80, kPrototype = 0x400;
    constexpr uint64_t kTransition = 0x800;
    constexpr uint64_t kFrame = 0x000FFFFFFFFFF000ull;
    const uint64_t pte_base = 0xFFFF000000000000ull | (uint64_t{layout::SELF_MAP_INDEX} << 39);
    auto pte_of = [pte_base](uint64_t va) { return pte_base + ((va >> 9) & 0x7FFFFFFFF8ull); };
    uint64_t filled = 0;
    auto fill = [&](uint64_t pfn, uint64_t entry_va, uint64_t entry, uint64_t table_pfn) {
        if (pfn < m_memory->lowest_pfn() || pfn > m_memory->highest_pfn()) {
            return;
        }
        const uint64_t at = layout::PFN_DATABASE + pfn * SIM_MMPFN_SIZE;
        if (!translate(at)) {
            return; // a frame outside RAM (device memory): no PFN entry
        }
        put64(at + SIM_MMPFN_PTE_ADDRESS, entry_va);
        put64(at + SIM_MMPFN_SHARE_COUNT, 1);
        put16(at + SIM_MMPFN_REFERENCE_COUNT, 1);
        put8(at + SIM_MMPFN_E1, static_cast<uint8_t>(6 | ((entry & kDirty) ? 0x10 : 0)));
        put64(at + SIM_MMPFN_ORIGINAL_PTE, 0x80);
        put64(at + SIM_MMPFN_U4, table_pfn & 0xFFFFFFFFFFull);
        ++filled;
    };
    auto read_table = [this](uint64_t pa, std::vector<uint64_t>& out) {
        out.resize(512);
        return read_physical(pa, {reinterpret_cast<uint8_t*>(out.data()), 4096}) == 4096;
    };
    std::vector<uint64_t> l4, l3, l2, l1;
    const uint64_t pml4 = m_cr3 & kFrame;
    if (!read_table(pml4, l4)) {
        return;
    }
    // The PML4 maps itself: its own entry is at the self-map's PXE base + index * 8.
    const uint64_t self = layout::SELF_MAP_INDEX;
    const uint64_t pxe_base = pte_base | (self << 30) | (self << 21) | (self << 12);
    fill(pml4 >> 12, pxe_base + self * 8, l4[self], pml4 >> 12);
    for (uint64_t i4 = 0; i4 < 512; ++i4) {
        if ((l4[i4] & kPresent) == 0 || i4 == layout::SELF_MAP_INDEX) {
            continue;
        }
        uint64_t va4 = i4 << 39;
        if (i4 >= 256) {
            va4 |= 0xFFFF000000000000ull;
        }
        const uint64_t pdpt = l4[i4] & kFrame;
        fill(pdpt >> 12, pte_of(pte_of(pte_of(va4))), l4[i4], pml4 >> 12);
        if (!read_table(pdpt, l3)) {
            continue;
        }
        for (uint64_t i3 = 0; i3 < 512; ++i3) {
            if ((l3[i3] & kPresent) == 0) {
                continue;
            }
            const uint64_t va3 = va4 | (i3 << 30);
            const uint64_t pd = l3[i3] & kFrame;
            fill(pd >> 12, pte_of(pte_of(va3)), l3[i3], pdpt >> 12);
            if ((l3[i3] & kLarge) != 0 || !read_table(pd, l2)) {
                continue;
            }
            for (uint64_t i2 = 0; i2 < 512; ++i2) {
                if ((l2[i2] & kPresent) == 0) {
                    continue;
                }
                const uint64_t va2 = va3 | (i2 << 21);
                const uint64_t pt = l2[i2] & kFrame;
                fill(pt >> 12, pte_of(va2), l2[i2], pd >> 12);
                if ((l2[i2] & kLarge) != 0 || !read_table(pt, l1)) {
                    continue;
                }
                for (uint64_t i1 = 0; i1 < 512; ++i1) {
                    if ((l1[i1] & kPresent) != 0) {
                        fill((l1[i1] & kFrame) >> 12, pte_of(va2 | (i1 << 12)), l1[i1], pt >> 12);
                    } else if ((l1[i1] & kTransition) != 0 && (l1[i1] & kPrototype) == 0) {
                        // A page paged out to the standby list: its frame still holds it.
                        const uint64_t pfn = (l1[i1] & kFrame) >> 12;
                        fill(pfn, pte_of(va2 | (i1 << 12)), l1[i1], pt >> 12);
                        const uint64_t at = layout::PFN_DATABASE + pfn * SIM_MMPFN_SIZE;
                        if (translate(at)) {
                            put64(at + SIM_MMPFN_SHARE_COUNT, 0);
                            put16(at + SIM_MMPFN_REFERENCE_COUNT, 0);
                            put8(at + SIM_MMPFN_E1, 2); // Standby
                        }
                    }
                }
            }
        }
    }
    m_workload.pfn_entries_filled = filled;
}

} // namespace kdcart::hw
