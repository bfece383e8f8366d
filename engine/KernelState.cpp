#include "engine/KernelState.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"
#include "engine/KernelTypes.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>

namespace kdcart::engine {

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

std::optional<KernelState::ProcessLayout>
KernelState::layout_from_types(std::vector<std::string>& sources) {
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return std::nullopt;
    }
    auto type_field = [&kt](std::string_view type, std::string_view path) {
        return kt->try_offset(type, path);
    };
    ProcessLayout l;
    auto links = type_field("_EPROCESS", "ActiveProcessLinks");
    auto pid = type_field("_EPROCESS", "UniqueProcessId");
    auto name = type_field("_EPROCESS", "ImageFileName");
    auto parent = type_field("_EPROCESS", "InheritedFromUniqueProcessId");
    auto peb = type_field("_EPROCESS", "Peb");
    auto dtb = type_field("_EPROCESS", "Pcb.DirectoryTableBase");
    if (!links || !pid || !name || !parent || !peb || !dtb) {
        return std::nullopt;
    }
    l.links = *links;
    l.pid = *pid;
    l.name = *name;
    l.parent = *parent;
    l.peb = *peb;
    l.dtb = *dtb;
    l.object_table = type_field("_EPROCESS", "ObjectTable");
    l.handle_count = type_field("_HANDLE_TABLE", "HandleCount");
    l.session = type_field("_EPROCESS", "Session");
    l.session_id = type_field("_MM_SESSION_SPACE", "SessionId");
    sources.push_back("nt!_EPROCESS: ActiveProcessLinks +0x" + hex(l.links) +
                      ", UniqueProcessId +0x" + hex(l.pid) + ", ImageFileName +0x" + hex(*l.name) +
                      ", Peb +0x" + hex(l.peb) + " (the kernel's PDB types)");
    return l;
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
    ProcessLayout layout;
    if (auto typed = layout_from_types(list.sources)) {
        layout = *typed;
        list.from_types = true;
    } else if (auto found = layout_from_kddata(*info, *first, list.sources); !found) {
        return tl::unexpected(found.error());
    } else {
        layout = *found;
    }
    return walk_processes(head, *first, layout, std::move(list));
}

Result<KernelState::ProcessLayout>
KernelState::layout_from_kddata(const TargetInfo& info, uint64_t first,
                                std::vector<std::string>& sources) {
    const auto& d = info.kddata;
    auto& mem = m_dbg.memory();
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
    if (!system || *system == 0 || first <= *system || first - *system >= size ||
        (first - *system) % 8 != 0) {
        return make_error(Errc::Unsupported, "PsActiveProcessHead's first entry " + hex(first) +
                                                 " is not inside the System process " +
                                                 hex(system.value_or(0)) +
                                                 ": cannot locate ActiveProcessLinks "
                                                 "without the kernel's PDB types");
    }
    ProcessLayout layout;
    layout.links = first - *system;
    sources.push_back("ActiveProcessLinks +0x" + hex(layout.links) +
                      ": PsActiveProcessHead's first entry minus nt!PsInitialSystemProcess");
    // UniqueProcessId sits right before ActiveProcessLinks in every x64 EPROCESS; the System
    // process must say 4 there.
    layout.pid = layout.links - 8;
    if (mem.read_u64(*system + layout.pid).value_or(0) != 4) {
        return make_error(Errc::Unsupported,
                          "the System process does not hold pid 4 right before "
                          "ActiveProcessLinks: cannot locate UniqueProcessId without the "
                          "kernel's PDB types");
    }
    sources.push_back("UniqueProcessId +0x" + hex(layout.pid) +
                      ": right before ActiveProcessLinks (the System process holds 4)");
    // ImageFileName: where the System process's EPROCESS holds "System\0".
    if (auto body = m_dbg.read_virtual(*system, size)) {
        static const char kSystem[] = "System";
        for (size_t i = 0; i + sizeof kSystem <= body->bytes.size(); ++i) {
            if (std::memcmp(body->bytes.data() + i, kSystem, sizeof kSystem) == 0 &&
                body->valid[i]) {
                layout.name = i;
                break;
            }
        }
    }
    if (layout.name) {
        sources.push_back("ImageFileName +0x" + hex(*layout.name) +
                          ": where the System process's EPROCESS says \"System\"");
    } else {
        sources.push_back("ImageFileName: not found (no \"System\" in the System process)");
    }
    layout.parent = d.OffsetEprocessParentCID;
    layout.peb = d.OffsetEprocessPeb;
    layout.dtb = d.OffsetEprocessDirectoryTableBase;
    sources.push_back("InheritedFromUniqueProcessId +0x" + hex(layout.parent) + ", Peb +0x" +
                      hex(layout.peb) + ", DirectoryTableBase +0x" + hex(layout.dtb) +
                      ": KDDEBUGGER_DATA64");
    return layout;
}

Result<ProcessList> KernelState::walk_processes(uint64_t head, uint64_t first,
                                                const ProcessLayout& layout, ProcessList list) {
    auto& mem = m_dbg.memory();
    std::set<uint64_t> seen{head};
    uint64_t entry = first;
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
        const uint64_t ep = entry - layout.links;
        auto next = mem.read_u64(entry);
        if (!next) {
            list.broken =
                "the entry at " + hex(entry) + " (process " + hex(ep) + ") is not readable";
            break;
        }
        ProcessInfo p;
        p.eprocess = ep;
        p.pid = mem.read_u64(ep + layout.pid).value_or(0);
        if (layout.parent != 0) {
            p.parent_pid = mem.read_u64(ep + layout.parent).value_or(0);
        }
        if (layout.peb != 0) {
            p.peb = mem.read_u64(ep + layout.peb).value_or(0);
        }
        if (layout.dtb != 0) {
            p.directory_table_base = mem.read_u64(ep + layout.dtb).value_or(0);
        }
        if (layout.name) {
            if (auto b = m_dbg.read_virtual(ep + *layout.name, 15)) {
                for (size_t i = 0; i < 15 && b->valid[i] && b->bytes[i] != 0; ++i) {
                    p.image.push_back(static_cast<char>(b->bytes[i]));
                }
            }
        }
        if (layout.object_table) {
            p.object_table = mem.read_u64(ep + *layout.object_table);
            if (p.object_table && *p.object_table != 0 && layout.handle_count) {
                if (auto n = mem.read_u32(*p.object_table + *layout.handle_count)) {
                    p.handle_count = static_cast<int32_t>(*n);
                }
            }
        }
        if (layout.session) {
            if (auto session = mem.read_u64(ep + *layout.session)) {
                p.session_known = *session == 0 || layout.session_id.has_value();
                if (*session != 0 && layout.session_id) {
                    p.session_id = mem.read_u32(*session + *layout.session_id);
                    p.session_known = p.session_id.has_value();
                }
            }
        }
        list.processes.push_back(p);
        entry = *next;
    }
    return list;
}

} // namespace kdcart::engine
