#include "engine/ThreadState.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"
#include "engine/KernelState.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace kdcart::engine {

namespace {

// Windows' KWAIT_REASON (public in wdm.h and the PDBs), for a PDB without the enum.
const char* const k_wait_reasons[] = {
    "Executive",        "FreePage",          "PageIn",
    "PoolAllocation",   "DelayExecution",    "Suspended",
    "UserRequest",      "WrExecutive",       "WrFreePage",
    "WrPageIn",         "WrPoolAllocation",  "WrDelayExecution",
    "WrSuspended",      "WrUserRequest",     "WrEventPair",
    "WrQueue",          "WrLpcReceive",      "WrLpcReply",
    "WrVirtualMemory",  "WrPageOut",         "WrRendezvous",
    "WrKeyedEvent",     "WrTerminated",      "WrProcessInSwap",
    "WrCpuRateControl", "WrCalloutStack",    "WrKernel",
    "WrResource",       "WrPushLock",        "WrMutex",
    "WrQuantumEnd",     "WrDispatchInt",     "WrPreempted",
    "WrYieldExecution", "WrFastMutex",       "WrGuardedMutex",
    "WrRundown",        "WrAlertByThreadId", "WrDeferredPreempt",
    "WrPhysicalFault",
};

// KUSER_SHARED_DATA: its address and these offsets are the user-mode ABI every x64 Windows
// keeps (TickCountQuad +0x320, SystemTime +0x14), used when nt's PDB lacks the type.
constexpr uint64_t k_kuser_shared_data = 0xFFFFF78000000000ull;

} // namespace

const char* thread_state_name(uint8_t state) {
    static const char* const names[] = {
        "INITIALIZED", "READY",      "RUNNING",       "STANDBY",  "TERMINATED",
        "WAIT",        "TRANSITION", "DEFERREDREADY", "GATEWAIT", "WAITINGFORPROCESSINSWAP"};
    return state < std::size(names) ? names[state] : "UNKNOWN";
}

std::string wait_reason_name(uint8_t reason) {
    if (reason < std::size(k_wait_reasons)) {
        return k_wait_reasons[reason];
    }
    return "Unknown";
}

std::string dispatcher_type_name(uint8_t type) {
    switch (type) {
    case 0:
        return "NotificationEvent";
    case 1:
        return "SynchronizationEvent";
    case 2:
        return "Mutant";
    case 3:
        return "ProcessObject";
    case 4:
        return "QueueObject";
    case 5:
        return "Semaphore";
    case 6:
        return "ThreadObject";
    case 7:
        return "GateObject";
    case 8:
        return "NotificationTimer";
    case 9:
        return "SynchronizationTimer";
    default:
        return "Unknown";
    }
}

uint64_t ThreadState::time_increment() {
    for (const char* name : {"KeMaximumIncrement", "KeTimeIncrement"}) {
        if (auto at = m_dbg.lookup_symbol("nt", name)) {
            if (auto v = m_dbg.memory().read_u32(*at); v && *v != 0) {
                return *v;
            }
        }
    }
    return 156250; // 15.625 ms, the x64 default
}

std::optional<uint64_t> ThreadState::tick_count() {
    uint64_t off = 0x320;
    if (auto o = m_types.try_offset("_KUSER_SHARED_DATA", "TickCountQuad")) {
        off = *o;
    }
    return m_dbg.memory().read_u64(k_kuser_shared_data + off);
}

std::optional<uint64_t> ThreadState::system_time() {
    uint64_t off = 0x14;
    if (auto o = m_types.try_offset("_KUSER_SHARED_DATA", "SystemTime")) {
        off = *o;
    }
    // KSYSTEM_TIME: LowPart, High1Time (High2Time after them).
    auto low = m_dbg.memory().read_u32(k_kuser_shared_data + off);
    auto high = m_dbg.memory().read_u32(k_kuser_shared_data + off + 4);
    if (!low || !high) {
        return std::nullopt;
    }
    return (uint64_t{*high} << 32) | *low;
}

std::string ThreadState::image_of(uint64_t eprocess) {
    if (eprocess == 0) {
        return "";
    }
    return m_types.read_char_array(eprocess, "_EPROCESS", "ImageFileName").value_or("");
}

Result<void> ThreadState::check_dispatcher(uint64_t object, std::string_view type, uint8_t expected,
                                           const char* what) {
    auto t = m_types.read_unsigned(object, type, "Header.Type");
    if (!t) {
        return make_error(Errc::Unreadable, hex(object) + " is not a valid " + what +
                                                " object: its memory cannot be read");
    }
    if ((*t & 0x7F) != expected) {
        return make_error(Errc::InvalidArgument,
                          hex(object) + " is not a " + what + " object (its dispatcher header " +
                              "says type " + std::to_string(*t) + " (" +
                              dispatcher_type_name(static_cast<uint8_t>(*t)) + "), not " +
                              std::to_string(expected) + ")");
    }
    return {};
}

Result<void> ThreadState::check_process(uint64_t eprocess) {
    return check_dispatcher(eprocess, "_KPROCESS", 3, "process");
}

Result<uint64_t> ThreadState::prcb(uint32_t cpu) {
    KernelState ks(m_dbg);
    auto p = ks.processor(cpu);
    if (!p) {
        return tl::unexpected(p.error());
    }
    return p->kprcb;
}

Result<uint64_t> ThreadState::current_thread(uint32_t cpu) {
    auto pr = prcb(cpu);
    if (!pr) {
        return tl::unexpected(pr.error());
    }
    return m_types.read_pointer(*pr, "_KPRCB", "CurrentThread");
}

Result<uint64_t> ThreadState::process_of(uint64_t ethread) {
    return m_types.read_pointer(ethread, "_KTHREAD", "ApcState.Process");
}

Result<ThreadInfo> ThreadState::thread(uint64_t ethread) {
    if (auto ok = check_dispatcher(ethread, "_KTHREAD", 6, "thread"); !ok) {
        return tl::unexpected(ok.error());
    }
    const KernelTypes& t = m_types;
    ThreadInfo info;
    info.ethread = ethread;
    auto pid = t.read_pointer(ethread, "_ETHREAD", "Cid.UniqueProcess");
    auto tid = t.read_pointer(ethread, "_ETHREAD", "Cid.UniqueThread");
    auto state = t.read_unsigned(ethread, "_KTHREAD", "State");
    if (!pid || !tid || !state) {
        return tl::unexpected(!pid ? pid.error() : !tid ? tid.error() : state.error());
    }
    info.pid = *pid;
    info.tid = *tid;
    info.state = static_cast<uint8_t>(*state);
    info.teb = t.read_pointer(ethread, "_KTHREAD", "Teb").value_or(0);
    if (auto w = t.read_pointer(ethread, "_KTHREAD", "Win32Thread")) {
        info.win32_thread = *w;
    }
    auto u8 = [&](std::string_view path) -> std::optional<uint8_t> {
        if (auto v = t.read_unsigned(ethread, "_KTHREAD", path)) {
            return static_cast<uint8_t>(*v);
        }
        return std::nullopt;
    };
    auto u32 = [&](std::string_view path) -> std::optional<uint32_t> {
        if (auto v = t.read_unsigned(ethread, "_KTHREAD", path)) {
            return static_cast<uint32_t>(*v);
        }
        return std::nullopt;
    };
    auto s8 = [&](std::string_view path) -> std::optional<int8_t> {
        if (auto v = t.read_signed(ethread, "_KTHREAD", path)) {
            return static_cast<int8_t>(*v);
        }
        return std::nullopt;
    };
    info.wait_reason = u8("WaitReason");
    info.wait_mode = u8("WaitMode");
    if (auto a = u8("Alertable")) {
        info.alertable = *a != 0;
    }
    if (info.wait_reason) {
        info.wait_reason_name = wait_reason_name(*info.wait_reason);
        if (auto e = t.types().find("_KWAIT_REASON")) {
            if (const PdbType* et = t.types().get(*e); et && et->kind == PdbType::Kind::Enum) {
                for (const auto& en : et->enumerators) {
                    if (en.value == *info.wait_reason) {
                        info.wait_reason_name = en.name;
                    }
                }
            }
        }
    }
    info.wait_time = u32("WaitTime");
    info.context_switches = u32("ContextSwitches");
    info.ideal_processor = u32("IdealProcessor");
    info.next_processor = u32("NextProcessor");
    info.user_time = u32("UserTime");
    info.kernel_time = u32("KernelTime");
    info.priority = s8("Priority");
    info.base_priority = s8("BasePriority");
    info.time_increment = time_increment();
    info.tick_count = tick_count();
    info.stack_init = t.read_pointer(ethread, "_KTHREAD", "InitialStack").value_or(0);
    info.kernel_stack = t.read_pointer(ethread, "_KTHREAD", "KernelStack").value_or(0);
    info.stack_base = t.read_pointer(ethread, "_KTHREAD", "StackBase").value_or(0);
    info.stack_limit = t.read_pointer(ethread, "_KTHREAD", "StackLimit").value_or(0);
    if (auto a = t.read_pointer(ethread, "_ETHREAD", "Win32StartAddress")) {
        info.win32_start_address = *a;
    }
    if (auto a = t.read_pointer(ethread, "_ETHREAD", "StartAddress")) {
        info.start_address = *a;
    }
    // Processes: KTHREAD.Process owns the thread; ApcState.Process is the address space it runs
    // in (another process while attached).
    info.apc_process = t.read_pointer(ethread, "_KTHREAD", "ApcState.Process").value_or(0);
    info.process = t.read_pointer(ethread, "_KTHREAD", "Process").value_or(info.apc_process);
    info.process_image = image_of(info.process);
    info.apc_image =
        info.apc_process == info.process ? info.process_image : image_of(info.apc_process);

    // The wait: the blocks from WaitBlockList. How many: KTHREAD.WaitBlockCount (Windows 8
    // and later), else the KWAIT_BLOCK.NextWaitBlock ring (earlier builds), else one block.
    if (info.state == 5) {
        auto first = t.read_pointer(ethread, "_KTHREAD", "WaitBlockList");
        auto size = t.size_of("_KWAIT_BLOCK");
        if (first && *first != 0 && size) {
            std::vector<uint64_t> blocks;
            if (auto count = t.read_unsigned(ethread, "_KTHREAD", "WaitBlockCount")) {
                for (uint64_t i = 0; i < std::min<uint64_t>(*count, 64); ++i) {
                    blocks.push_back(*first + i * *size);
                }
            } else if (t.has_field("_KWAIT_BLOCK", "NextWaitBlock")) {
                uint64_t block = *first;
                while (blocks.size() < 64) {
                    blocks.push_back(block);
                    auto next = t.read_pointer(block, "_KWAIT_BLOCK", "NextWaitBlock");
                    if (!next || *next == *first || *next == 0) {
                        if (!next) {
                            info.waits_broken =
                                "the wait block at " + hex(block) + " is not readable";
                        }
                        break;
                    }
                    block = *next;
                }
            } else {
                blocks.push_back(*first);
            }
            for (uint64_t block : blocks) {
                auto object = t.read_pointer(block, "_KWAIT_BLOCK", "Object");
                if (!object) {
                    info.waits_broken = "the wait block at " + hex(block) + " is not readable";
                    break;
                }
                WaitObject w;
                w.wait_block = block;
                w.object = *object;
                if (auto dt = t.read_unsigned(*object, "_DISPATCHER_HEADER", "Type")) {
                    w.dispatcher_type = static_cast<uint8_t>(*dt);
                }
                info.waits.push_back(w);
            }
        } else if (!first) {
            info.waits_broken = first.error().message;
        }
    }

    // IRP list: ETHREAD.IrpList of IRP.ThreadListEntry.
    if (t.has_field("_ETHREAD", "IrpList")) {
        auto list =
            t.walk_field_list(ethread, "_ETHREAD", "IrpList", "_IRP", "ThreadListEntry", 256);
        if (list) {
            for (uint64_t irp : list->entries) {
                IrpSummary s;
                s.irp = irp;
                if (auto v = t.read_unsigned(irp, "_IRP", "Type")) {
                    s.type = static_cast<uint16_t>(*v);
                }
                if (auto v = t.read_unsigned(irp, "_IRP", "Size")) {
                    s.size = static_cast<uint16_t>(*v);
                }
                if (auto v = t.read_unsigned(irp, "_IRP", "Flags")) {
                    s.flags = static_cast<uint32_t>(*v);
                }
                if (auto v = t.read_pointer(irp, "_IRP", "MdlAddress")) {
                    s.mdl = *v;
                }
                info.irps.push_back(s);
            }
            info.irps_broken = list->broken;
        } else {
            info.irps_broken = list.error().message;
        }
    }

    // Running: the thread is some processor's current thread.
    if (info.state == 2) {
        for (uint32_t cpu = 0; cpu < m_dbg.num_processors(); ++cpu) {
            if (auto cur = current_thread(cpu); cur && *cur == ethread) {
                info.running_on = cpu;
                break;
            }
        }
    }
    return info;
}

Result<ThreadList> ThreadState::threads_of(uint64_t eprocess) {
    Result<ListWalk> w = make_error(Errc::NotFound, "");
    if (m_types.has_field("_EPROCESS", "ThreadListHead") &&
        m_types.has_field("_ETHREAD", "ThreadListEntry")) {
        w = m_types.walk_field_list(eprocess, "_EPROCESS", "ThreadListHead", "_ETHREAD",
                                    "ThreadListEntry");
    } else {
        w = m_types.walk_field_list(eprocess, "_KPROCESS", "ThreadListHead", "_KTHREAD",
                                    "ThreadListEntry");
    }
    if (!w) {
        return tl::unexpected(w.error());
    }
    ThreadList out;
    out.threads = std::move(w->entries);
    out.broken = std::move(w->broken);
    return out;
}

Result<ProcessDetail> ThreadState::process_detail(uint64_t eprocess) {
    const KernelTypes& t = m_types;
    ProcessDetail d;
    d.eprocess = eprocess;
    if (auto v = t.read_unsigned(eprocess, "_EPROCESS", "Token.Value")) {
        d.token = *v & ~uint64_t{0xF}; // EX_FAST_REF: the low bits are a reference count
    } else if (auto v2 = t.read_pointer(eprocess, "_EPROCESS", "Token")) {
        d.token = *v2 & ~uint64_t{0xF};
    }
    if (auto v = t.read_unsigned(eprocess, "_EPROCESS", "CreateTime.QuadPart")) {
        d.create_time = *v;
    }
    d.system_time = system_time();
    if (auto v = t.read_unsigned(eprocess, "_KPROCESS", "UserTime")) {
        d.user_time = static_cast<uint32_t>(*v);
    }
    if (auto v = t.read_unsigned(eprocess, "_KPROCESS", "KernelTime")) {
        d.kernel_time = static_cast<uint32_t>(*v);
    }
    if (auto v = t.read_signed(eprocess, "_KPROCESS", "BasePriority")) {
        d.base_priority = static_cast<int8_t>(*v);
    }
    if (auto v = t.read_unsigned(eprocess, "_EPROCESS", "ActiveThreads")) {
        d.active_threads = static_cast<uint32_t>(*v);
    }
    if (auto v = t.read_pointer(eprocess, "_EPROCESS", "DeviceMap")) {
        d.device_map = *v;
    }
    d.time_increment = time_increment();
    return d;
}

Result<CONTEXT> ThreadState::saved_context(const ThreadInfo& thread) {
    if (thread.running_on) {
        return m_dbg.context(static_cast<uint16_t>(*thread.running_on));
    }
    // x64 KiSwapContext leaves a _KSWITCH_FRAME at KernelStack: the return address into the
    // switching function and the saved rbp; rsp is just past the frame.
    auto ret = m_types.offset("_KSWITCH_FRAME", "Return");
    auto size = m_types.size_of("_KSWITCH_FRAME");
    if (!ret || !size) {
        return make_error(Errc::NotFound,
                          "the thread's saved stack needs nt!_KSWITCH_FRAME, which is not in the "
                          "symbols");
    }
    if (thread.kernel_stack == 0) {
        return make_error(Errc::NotFound, "the thread has no saved kernel stack");
    }
    auto rip = m_types.read_u64(thread.kernel_stack + *ret);
    if (!rip) {
        return make_error(Errc::Unreadable,
                          "the switch frame at " + hex(thread.kernel_stack) + " is not readable");
    }
    if (*rip == 0) {
        return make_error(Errc::NotFound, "the switch frame at " + hex(thread.kernel_stack) +
                                              " holds no return address (the thread has not "
                                              "switched out yet)");
    }
    CONTEXT c{};
    c.Rip = *rip;
    c.Rsp = thread.kernel_stack + *size;
    if (auto rbp = m_types.offset("_KSWITCH_FRAME", "Rbp")) {
        c.Rbp = m_types.read_u64(thread.kernel_stack + *rbp).value_or(0);
    }
    c.SegCs = 0x10;
    c.SegSs = 0x18;
    return c;
}

Result<std::vector<ThreadState::ReadyQueue>> ThreadState::ready_lists(uint32_t cpu) {
    auto pr = prcb(cpu);
    if (!pr) {
        return tl::unexpected(pr.error());
    }
    auto heads = m_types.field("_KPRCB", "DispatcherReadyListHead");
    if (!heads) {
        return tl::unexpected(heads.error());
    }
    auto entry = m_types.offset("_KTHREAD", "WaitListEntry");
    if (!entry) {
        return tl::unexpected(entry.error());
    }
    const uint64_t count = heads->info->kind == PdbType::Kind::Array && heads->info->count != 0
                               ? heads->info->count
                               : 32;
    const uint64_t stride = heads->size / (count == 0 ? 1 : count);
    std::vector<ReadyQueue> out;
    for (uint64_t i = count; i-- > 0;) {
        ListWalk w = m_types.walk_list(*pr + heads->offset + i * (stride ? stride : 16), 1024);
        if (w.entries.empty() && !w.broken) {
            continue;
        }
        ReadyQueue q;
        q.priority = static_cast<uint32_t>(i);
        for (uint64_t e : w.entries) {
            q.threads.push_back(e - *entry);
        }
        q.broken = w.broken;
        out.push_back(std::move(q));
    }
    return out;
}

} // namespace kdcart::engine
