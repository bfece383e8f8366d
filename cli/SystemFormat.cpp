#include "cli/SystemFormat.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

std::string opt_hex(const std::optional<uint64_t>& v, const char* format) {
    if (!v) {
        return "?";
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, format, *v);
    return buf;
}

} // namespace

std::string format_pfn(const engine::PfnEntry& p) {
    char buf[200];
    std::string out;
    std::snprintf(buf, sizeof buf, "    PFN %08" PRIX64 " at address %016" PRIX64 "\n", p.pfn,
                  p.address);
    out += buf;
    out += "    flink       " + opt_hex(p.flink, "%08" PRIX64) + "  blink / share count " +
           opt_hex(p.blink, "%08" PRIX64) + "  pteaddress " +
           opt_hex(p.pte_address, "%016" PRIX64) + "\n";
    out += "    reference count " + opt_hex(p.reference_count, "%04" PRIX64) +
           "   Cached     color 0   Priority 0\n";
    std::string flags;
    if (p.modified && *p.modified) {
        flags += "M";
    }
    if (p.read_in_progress && *p.read_in_progress) {
        flags += (flags.empty() ? "" : " ") + std::string("R");
    }
    if (p.write_in_progress && *p.write_in_progress) {
        flags += (flags.empty() ? "" : " ") + std::string("W");
    }
    if (p.prototype && *p.prototype) {
        flags += (flags.empty() ? "" : " ") + std::string("P");
    }
    std::string location = p.page_location ? engine::page_location_name(*p.page_location) : "?";
    location.resize(std::max<size_t>(location.size(), 10), ' ');
    out += "    restore pte " + opt_hex(p.original_pte, "%08" PRIX64) + "  containing page " +
           opt_hex(p.pte_frame, "%06" PRIX64) + "  " + location + " " + flags + "\n";
    if (p.modified && *p.modified) {
        out += "    Modified\n";
    }
    return out;
}

std::string format_vm(const engine::VmCounters& vm) {
    std::string out = "\n*** Virtual Memory Usage ***\n";
    auto label = [](const std::string& name) -> std::string {
        if (name == "MmNumberOfPhysicalPages")
            return "Physical Memory:";
        if (name == "MmAvailablePages")
            return "Available Pages:";
        if (name == "MmResidentAvailablePages")
            return "ResAvail Pages:";
        if (name == "MmTotalCommittedPages")
            return "Committed pages:";
        if (name == "MmTotalCommitLimit")
            return "Commit limit:";
        if (name == "MmPeakCommitment")
            return "Peak Commit:";
        if (name == "MmSharedCommit")
            return "Shared Commit:";
        if (name == "MmDriverCommit")
            return "Driver Commit:";
        if (name == "MmProcessCommit")
            return "Process Commit:";
        if (name == "MmPagedPoolCommit")
            return "PagedPool Commit:";
        if (name == "MmLowestPhysicalPage")
            return "Lowest PFN:";
        if (name == "MmHighestPhysicalPage")
            return "Highest PFN:";
        if (name == "MmNumberOfPagingFiles")
            return "Paging files:";
        if (name == "MmNonPagedPoolStart")
            return "NonPagedPool Start:";
        if (name == "MmNonPagedPoolEnd")
            return "NonPagedPool End:";
        if (name == "MmPagedPoolStart")
            return "PagedPool Start:";
        if (name == "MmPagedPoolEnd")
            return "PagedPool End:";
        return name + ":";
    };
    for (const auto& c : vm.counters) {
        std::string l = label(c.name);
        char buf[160];
        if (c.pages && c.name != "MmNumberOfPagingFiles" && c.name != "MmLowestPhysicalPage" &&
            c.name != "MmHighestPhysicalPage") {
            std::snprintf(buf, sizeof buf, "%s%*" PRIu64 " (%10" PRIu64 " Kb)", l.c_str(),
                          static_cast<int>(28 > l.size() ? 28 - l.size() : 1), c.value,
                          c.value * 4);
        } else if (c.pages) {
            std::snprintf(buf, sizeof buf, "%s%*" PRIx64, l.c_str(),
                          static_cast<int>(28 > l.size() ? 28 - l.size() : 1), c.value);
        } else {
            std::snprintf(buf, sizeof buf, "%s %016" PRIx64, l.c_str(), c.value);
        }
        out += "\t  " + std::string(buf) + "\n";
    }
    if (!vm.missing.empty()) {
        std::string list;
        for (const auto& m : vm.missing) {
            list += (list.empty() ? "" : ", ") + m;
        }
        out += "\n(partial: only the counters KDDEBUGGER_DATA64 points to are shown; not "
               "reachable on this target: " +
               list + ")\n";
    }
    return out;
}

std::string format_machine_id(const engine::SmbiosMachineId& id, uint64_t table_pa, uint32_t size) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "Machine ID Information [From Smbios table at %" PRIx64 ", Size=%u]\n", table_pa,
                  size);
    std::string out = buf;
    for (const auto& [name, value] : id.fields) {
        out += name + " = " + value + "\n";
    }
    if (id.broken) {
        out += "(the SMBIOS table is malformed: " + *id.broken + ")\n";
    }
    return out;
}

std::string format_locks(const engine::LockScan& scan,
                         const std::function<std::optional<std::string>(uint64_t)>& symbol) {
    std::string out = "\nKD: Scanning for held locks..\n";
    for (const auto& r : scan.held) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "0x%016" PRIx64, r.address);
        std::string name = symbol(r.address).value_or(addr);
        out += "\nResource @ " + name + " (" + addr + ")    ";
        if (r.exclusive) {
            out += "Exclusively owned\n";
        } else {
            out += "Shared " + std::to_string(r.owners.size()) + " owning threads\n";
        }
        if (r.contention_count != 0) {
            out += "    Contention Count = " + std::to_string(r.contention_count) + "\n";
        }
        if (r.exclusive_waiters != 0) {
            out += "    NumberOfExclusiveWaiters = " + std::to_string(r.exclusive_waiters) + "\n";
        }
        if (r.shared_waiters != 0) {
            out += "    NumberOfSharedWaiters = " + std::to_string(r.shared_waiters) + "\n";
        }
        std::string threads;
        for (const auto& o : r.owners) {
            char t[48];
            std::snprintf(t, sizeof t, "%016" PRIx64 "-%02" PRIx64 "<*>", o.thread, o.count);
            threads += (threads.empty() ? "" : " ") + std::string(t);
        }
        out += "     Threads: " + threads + "\n";
    }
    if (scan.broken) {
        out += "\n(the resource list is broken: " + *scan.broken + ")\n";
    }
    out += "\n" + std::to_string(scan.total) + " total locks, " + std::to_string(scan.held.size()) +
           " locks currently held\n";
    return out;
}

} // namespace kdcart::cli
