#include "engine/MmState.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::engine {

std::string page_location_name(uint64_t location) {
    static const char* names[] = {"Zeroed",   "Free", "Standby", "Modified",
                                  "ModNoWrt", "Bad",  "Active",  "Transition"};
    return location < 8 ? names[location] : "Location" + std::to_string(location);
}

Result<uint64_t> MmState::pfn_database() {
    uint64_t var = 0;
    if (auto info = m_dbg.target_info(); info && info->kddata_found) {
        var = info->kddata.MmPfnDatabase;
    }
    if (var == 0) {
        var = m_dbg.lookup_symbol("nt", "MmPfnDatabase").value_or(0);
    }
    if (var == 0) {
        return make_error(Errc::NotFound, "the PFN database is unknown (no "
                                          "KDDEBUGGER_DATA64.MmPfnDatabase, no nt!MmPfnDatabase)");
    }
    auto base = m_dbg.memory().read_u64(var);
    if (!base || *base == 0) {
        return make_error(Errc::Unreadable, "nt!MmPfnDatabase at " + hex(var) + " is unreadable");
    }
    return *base;
}

Result<PfnEntry> MmState::pfn(const KernelTypes& kt, uint64_t value) {
    auto base = pfn_database();
    if (!base) {
        return tl::unexpected(base.error());
    }
    auto size = kt.size_of("_MMPFN");
    if (!size || *size == 0) {
        return make_error(Errc::NotFound, std::string(KernelTypes::k_bad_symbols) +
                                              " (nt!_MMPFN is not in the symbols)");
    }
    PfnEntry e;
    if (value >= *base) {
        if ((value - *base) % *size != 0) {
            return make_error(Errc::InvalidArgument,
                              hex(value) + " is not the start of an entry of the PFN database at " +
                                  hex(*base) + " (entries of 0x" + hex(*size) + " bytes)");
        }
        e.pfn = (value - *base) / *size;
    } else {
        e.pfn = value;
    }
    uint64_t highest = 0;
    if (auto info = m_dbg.target_info();
        info && info->kddata_found && info->kddata.MmHighestPhysicalPage != 0) {
        highest = m_dbg.memory().read_u64(info->kddata.MmHighestPhysicalPage).value_or(0);
    }
    if (highest != 0 && e.pfn > highest) {
        return make_error(Errc::InvalidArgument, "page frame " + hex(e.pfn) +
                                                     " is above the highest physical page " +
                                                     hex(highest));
    }
    e.address = *base + e.pfn * *size;
    if (auto b = kt.read_bytes(e.address, static_cast<size_t>(*size)); !b) {
        return make_error(Errc::Unreadable, "the PFN entry of page " + hex(e.pfn) + " at " +
                                                hex(e.address) + " is not readable");
    }
    auto get = [&](std::initializer_list<std::string_view> paths) -> std::optional<uint64_t> {
        for (auto p : paths) {
            if (kt.has_field("_MMPFN", p)) {
                if (auto v = kt.read_unsigned(e.address, "_MMPFN", p)) {
                    return *v;
                }
            }
        }
        return std::nullopt;
    };
    e.flink = get({"u1.Flink", "ListEntry.Flink"});
    e.blink = get({"u2.ShareCount", "u2.Blink", "ListEntry.Blink"});
    e.pte_address = get({"PteAddress"});
    e.reference_count = get({"u3.ReferenceCount", "u3.e2.ReferenceCount"});
    e.page_location = get({"u3.e1.PageLocation"});
    e.modified = get({"u3.e1.Modified"});
    e.read_in_progress = get({"u3.e1.ReadInProgress"});
    e.write_in_progress = get({"u3.e1.WriteInProgress"});
    e.original_pte = get({"OriginalPte", "OriginalPte.u.Long"});
    e.pte_frame = get({"u4.PteFrame"});
    e.prototype = get({"u4.PrototypePte", "u3.e1.PrototypePte"});
    return e;
}

Result<VmCounters> MmState::vm() {
    auto info = m_dbg.target_info();
    if (!info) {
        return tl::unexpected(info.error());
    }
    if (!info->kddata_found) {
        return make_error(Errc::NotFound, "KDDEBUGGER_DATA64 was not found on the target");
    }
    const auto& d = info->kddata;
    VmCounters out;
    struct Field {
        const char* name;
        uint64_t at;
        bool pages;
    };
    const Field fields[] = {
        {"MmNumberOfPhysicalPages", d.MmNumberOfPhysicalPages, true},
        {"MmLowestPhysicalPage", d.MmLowestPhysicalPage, true},
        {"MmHighestPhysicalPage", d.MmHighestPhysicalPage, true},
        {"MmAvailablePages", d.MmAvailablePages, true},
        {"MmResidentAvailablePages", d.MmResidentAvailablePages, true},
        {"MmTotalCommittedPages", d.MmTotalCommittedPages, true},
        {"MmTotalCommitLimit", d.MmTotalCommitLimit, true},
        {"MmPeakCommitment", d.MmPeakCommitment, true},
        {"MmSharedCommit", d.MmSharedCommit, true},
        {"MmDriverCommit", d.MmDriverCommit, true},
        {"MmProcessCommit", d.MmProcessCommit, true},
        {"MmPagedPoolCommit", d.MmPagedPoolCommit, true},
        {"MmNumberOfPagingFiles", d.MmNumberOfPagingFiles, true},
        {"MmNonPagedPoolStart", d.MmNonPagedPoolStart, false},
        {"MmNonPagedPoolEnd", d.MmNonPagedPoolEnd, false},
        {"MmPagedPoolStart", d.MmPagedPoolStart, false},
        {"MmPagedPoolEnd", d.MmPagedPoolEnd, false},
    };
    for (const auto& f : fields) {
        if (f.at == 0) {
            out.missing.emplace_back(f.name);
            continue;
        }
        // MmNumberOfPagingFiles is a ULONG; the others are pointer-sized.
        std::optional<uint64_t> v;
        if (std::string_view(f.name) == "MmNumberOfPagingFiles") {
            if (auto b = m_dbg.read_virtual(f.at, 4); b && b->all_valid()) {
                v = uint64_t{b->bytes[0]} | uint64_t{b->bytes[1]} << 8 |
                    uint64_t{b->bytes[2]} << 16 | uint64_t{b->bytes[3]} << 24;
            }
        } else {
            v = m_dbg.memory().read_u64(f.at);
        }
        if (!v) {
            out.missing.emplace_back(f.name);
            continue;
        }
        out.counters.push_back({f.name, *v, f.pages});
    }
    return out;
}

} // namespace kdcart::engine
