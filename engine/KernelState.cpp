#include "engine/KernelState.h"
#include "engine/Debugger.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>

namespace kdcart::engine {

namespace {

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%" PRIx64, v);
    return buf;
}

} // namespace

Result<TargetInfo> KernelState::kddata() {
    auto info = m_dbg.target_info();
    if (!info) {
        return tl::unexpected(info.error());
    }
    if (!info->kddata_found) {
        return make_error(Errc::NotFound, "KDDEBUGGER_DATA64 was not found on the target");
    }
    return info;
}

Result<ProcessorInfo> KernelState::processor(uint32_t index) {
    auto info = kddata();
    if (!info) {
        return tl::unexpected(info.error());
    }
    const auto& d = info->kddata;
    if (index >= m_dbg.num_processors()) {
        return make_error(Errc::InvalidArgument,
                          "processor " + std::to_string(index) + " does not exist");
    }
    if (d.KiProcessorBlock == 0) {
        return make_error(Errc::NotFound, "KDDEBUGGER_DATA64.KiProcessorBlock is 0");
    }
    auto& mem = m_dbg.memory();
    auto prcb = mem.read_u64(d.KiProcessorBlock + uint64_t{index} * 8);
    if (!prcb || *prcb == 0) {
        return make_error(Errc::Unreadable, "KiProcessorBlock[" + std::to_string(index) + "] at " +
                                                hex(d.KiProcessorBlock + index * 8) +
                                                " is not readable");
    }
    ProcessorInfo p;
    p.index = index;
    p.kprcb = *prcb;
    if (d.OffsetPcrContainedPrcb != 0 && *prcb > d.OffsetPcrContainedPrcb) {
        p.kpcr = *prcb - d.OffsetPcrContainedPrcb;
        if (d.OffsetPcrSelfPcr != 0) {
            p.kpcr_self = mem.read_u64(p.kpcr + d.OffsetPcrSelfPcr).value_or(0);
        }
        if (d.OffsetPcrCurrentPrcb != 0) {
            p.kpcr_prcb = mem.read_u64(p.kpcr + d.OffsetPcrCurrentPrcb).value_or(0);
        }
    }
    if (d.OffsetPrcbCurrentThread != 0) {
        p.current_thread = mem.read_u64(p.kprcb + d.OffsetPrcbCurrentThread).value_or(0);
    }
    if (d.OffsetPrcbIdleThread != 0) {
        p.idle_thread = mem.read_u64(p.kprcb + d.OffsetPrcbIdleThread).value_or(0);
    }
    if (d.OffsetPrcbNumber != 0) {
        if (auto n = mem.read_u16(p.kprcb + d.OffsetPrcbNumber)) {
            p.number = *n;
        }
    }
    if (d.OffsetPrcbMhz != 0) {
        p.mhz = mem.read_u32(p.kprcb + d.OffsetPrcbMhz);
    }
    if (d.OffsetPrcbCpuType != 0) {
        if (auto b = m_dbg.read_virtual(p.kprcb + d.OffsetPrcbCpuType, 1); b && b->all_valid()) {
            p.cpu_type = b->bytes[0];
        }
    }
    if (d.OffsetPrcbVendorString != 0) {
        if (auto b = m_dbg.read_virtual(p.kprcb + d.OffsetPrcbVendorString, 13)) {
            for (size_t i = 0; i < 13 && b->valid[i] && b->bytes[i] != 0; ++i) {
                p.vendor.push_back(static_cast<char>(b->bytes[i]));
            }
        }
    }
    if (d.OffsetPrcbProcStateSpecialReg != 0) {
        p.cr8 = mem.read_u64(p.kprcb + d.OffsetPrcbProcStateSpecialReg +
                             offsetof(protocol::KSPECIAL_REGISTERS, Cr8));
    }
    if (d.OffsetPrcbContext != 0) {
        p.context = mem.read_u64(p.kprcb + d.OffsetPrcbContext).value_or(0);
    }
    return p;
}

Result<std::vector<ProcessorInfo>> KernelState::processors() {
    std::vector<ProcessorInfo> out;
    for (uint32_t i = 0; i < m_dbg.num_processors(); ++i) {
        auto p = processor(i);
        if (!p) {
            return tl::unexpected(p.error());
        }
        out.push_back(*p);
    }
    return out;
}

Result<ProcessList> KernelState::processes() {
    auto info = kddata();
    if (!info) {
        return tl::unexpected(info.error());
    }
    const auto& d = info->kddata;
    auto& mem = m_dbg.memory();
    if (d.PsActiveProcessHead == 0) {
        return make_error(Errc::NotFound, "KDDEBUGGER_DATA64.PsActiveProcessHead is 0");
    }
    const uint64_t head = d.PsActiveProcessHead;
    auto first = mem.read_u64(head);
    if (!first) {
        return make_error(Errc::Unreadable,
                          "PsActiveProcessHead at " + hex(head) + " is not readable");
    }
    ProcessList list;
    if (*first == head) {
        return list; // empty
    }
    // ActiveProcessLinks: KDDEBUGGER_DATA64 has no offset for it. The first entry of the list
    // is the System process, which nt exports as PsInitialSystemProcess.
    auto sys_var = m_dbg.lookup_symbol("nt", "PsInitialSystemProcess");
    if (!sys_var) {
        return make_error(Errc::NotFound,
                          "without the kernel's PDB types, the process list needs "
                          "nt!PsInitialSystemProcess (an export) to locate ActiveProcessLinks, "
                          "and it is not known");
    }
    auto system = mem.read_u64(*sys_var);
    const uint64_t size = d.SizeEProcess != 0 ? d.SizeEProcess : 0x1000;
    if (!system || *system == 0 || *first <= *system || *first - *system >= size ||
        (*first - *system) % 8 != 0) {
        return make_error(Errc::Unsupported, "PsActiveProcessHead's first entry " + hex(*first) +
                                                 " is not inside the System process " +
                                                 hex(system.value_or(0)) +
                                                 ": cannot locate ActiveProcessLinks "
                                                 "without the kernel's PDB types");
    }
    const uint64_t apl = *first - *system;
    list.sources.push_back("ActiveProcessLinks +0x" + hex(apl) +
                           ": PsActiveProcessHead's first entry minus nt!PsInitialSystemProcess");
    // UniqueProcessId sits right before ActiveProcessLinks in every x64 EPROCESS; the System
    // process must say 4 there.
    const uint64_t pid_off = apl - 8;
    if (mem.read_u64(*system + pid_off).value_or(0) != 4) {
        return make_error(Errc::Unsupported,
                          "the System process does not hold pid 4 right before "
                          "ActiveProcessLinks: cannot locate UniqueProcessId without the "
                          "kernel's PDB types");
    }
    list.sources.push_back("UniqueProcessId +0x" + hex(pid_off) +
                           ": right before ActiveProcessLinks (the System process holds 4)");
    // ImageFileName: where the System process's EPROCESS holds "System\0".
    std::optional<uint64_t> name_off;
    if (auto body = m_dbg.read_virtual(*system, size)) {
        static const char kSystem[] = "System";
        for (size_t i = 0; i + sizeof kSystem <= body->bytes.size(); ++i) {
            if (std::memcmp(body->bytes.data() + i, kSystem, sizeof kSystem) == 0 &&
                body->valid[i]) {
                name_off = i;
                break;
            }
        }
    }
    if (name_off) {
        list.sources.push_back("ImageFileName +0x" + hex(*name_off) +
                               ": where the System process's EPROCESS says \"System\"");
    } else {
        list.sources.push_back("ImageFileName: not found (no \"System\" in the System process)");
    }
    list.sources.push_back("InheritedFromUniqueProcessId +0x" + hex(d.OffsetEprocessParentCID) +
                           ", Peb +0x" + hex(d.OffsetEprocessPeb) + ", DirectoryTableBase +0x" +
                           hex(d.OffsetEprocessDirectoryTableBase) + ": KDDEBUGGER_DATA64");

    std::set<uint64_t> seen{head};
    uint64_t entry = *first;
    while (entry != head) {
        if (list.processes.size() >= k_max_list_entries) {
            list.broken = "more than " + std::to_string(k_max_list_entries) +
                          " entries: the walk stopped at " + hex(entry);
            break;
        }
        if (!seen.insert(entry).second) {
            list.broken = "the list loops back to " + hex(entry) + " (not to its head)";
            break;
        }
        const uint64_t ep = entry - apl;
        auto next = mem.read_u64(entry);
        if (!next) {
            list.broken =
                "the entry at " + hex(entry) + " (process " + hex(ep) + ") is not readable";
            break;
        }
        ProcessInfo p;
        p.eprocess = ep;
        p.pid = mem.read_u64(ep + pid_off).value_or(0);
        if (d.OffsetEprocessParentCID != 0) {
            p.parent_pid = mem.read_u64(ep + d.OffsetEprocessParentCID).value_or(0);
        }
        if (d.OffsetEprocessPeb != 0) {
            p.peb = mem.read_u64(ep + d.OffsetEprocessPeb).value_or(0);
        }
        if (d.OffsetEprocessDirectoryTableBase != 0) {
            p.directory_table_base =
                mem.read_u64(ep + d.OffsetEprocessDirectoryTableBase).value_or(0);
        }
        if (name_off) {
            if (auto b = m_dbg.read_virtual(ep + *name_off, 15)) {
                for (size_t i = 0; i < 15 && b->valid[i] && b->bytes[i] != 0; ++i) {
                    p.image.push_back(static_cast<char>(b->bytes[i]));
                }
            }
        }
        list.processes.push_back(p);
        entry = *next;
    }
    return list;
}

} // namespace kdcart::engine
