// The kernel objects kdsim's nt holds for a debugger to inspect: object types
// (ObTypeIndexTable), processes (System, Idle and a few user processes with their own address
// space and a PEB), threads in different states and waits, a driver with a device stack and a
// pending IRP. The layouts are sim_abi.h's; nt.c declares the same structures under Microsoft's
// names, so its PDB describes what is built here. The result is listed in SimWorkload for tests.
#include "hw/SimMachine.h"
#include "hw/images/sim_abi.h"

#include <algorithm>
#include <cstring>

namespace kdcart::hw {

namespace {

constexpr uint64_t PTE_PRESENT = 0x1;
constexpr uint64_t PTE_WRITE = 0x2;
constexpr uint64_t PTE_USER = 0x4;
constexpr uint64_t PTE_ACCESSED = 0x20;
constexpr uint64_t PTE_DIRTY = 0x40;
constexpr uint64_t PTE_NX = 1ULL << 63;
constexpr uint64_t PTE_PFN_MASK = 0x000FFFFFFFFFF000ULL;

constexpr uint8_t DISPATCHER_NOTIFICATION_EVENT = 0;
constexpr uint8_t DISPATCHER_SYNCHRONIZATION_EVENT = 1;
constexpr uint8_t DISPATCHER_PROCESS = 3;
constexpr uint8_t DISPATCHER_QUEUE = 4;
constexpr uint8_t DISPATCHER_THREAD = 6;
constexpr uint8_t DISPATCHER_TIMER = 8;

constexpr uint8_t THREAD_READY = 1;
constexpr uint8_t THREAD_WAITING = 5;
constexpr uint8_t KERNEL_MODE = 0;
constexpr uint8_t USER_MODE = 1;
// KWAIT_REASON
constexpr uint8_t WAIT_EXECUTIVE = 0;
constexpr uint8_t WAIT_DELAY_EXECUTION = 4;
constexpr uint8_t WAIT_USER_REQUEST = 6;
constexpr uint8_t WAIT_WR_QUEUE = 15;
constexpr uint8_t WAIT_WR_LPC_RECEIVE = 16;
constexpr uint8_t WAIT_BLOCK_ACTIVE = 4;

constexpr uint16_t IO_TYPE_DEVICE = 3;
constexpr uint16_t IO_TYPE_DRIVER = 4;
constexpr uint16_t IO_TYPE_IRP = 6;
constexpr uint16_t IO_TYPE_DEVICE_OBJECT_EXTENSION = 13;
constexpr uint32_t FILE_DEVICE_UNKNOWN = 0x22;
constexpr uint8_t IRP_MJ_DEVICE_CONTROL = 0x0E;
constexpr uint32_t IRP_MJ_MAXIMUM = 28;

std::u16string u16(std::string_view s) {
    return std::u16string(s.begin(), s.end());
}

// Four characters as the object manager keeps a type's pool key ('Proc' = 0x636f7250).
uint32_t tag(const char (&t)[5]) {
    return static_cast<uint32_t>(static_cast<uint8_t>(t[0])) |
           static_cast<uint32_t>(static_cast<uint8_t>(t[1])) << 8 |
           static_cast<uint32_t>(static_cast<uint8_t>(t[2])) << 16 |
           static_cast<uint32_t>(static_cast<uint8_t>(t[3])) << 24;
}

} // namespace

SimProcess* SimMachine::workload_process(uint64_t eprocess) {
    for (auto& p : m_workload.processes) {
        if (p.eprocess == eprocess) {
            return &p;
        }
    }
    return nullptr;
}

// [OBJECT_HEADER_NAME_INFO when named][OBJECT_HEADER][body]; returns the body.
Result<uint64_t> SimMachine::allocate_object(uint8_t type_index, uint64_t body_size,
                                             std::u16string_view name) {
    const uint64_t name_size = name.empty() ? 0 : SIM_OBJECT_HEADER_NAME_INFO_SIZE;
    auto block = pool_allocate(name_size + SIM_OBJECT_HEADER_BODY + body_size, 16);
    if (!block) {
        return tl::unexpected(block.error());
    }
    const uint64_t header = *block + name_size;
    if (!name.empty()) {
        if (auto r = make_unicode_string(*block + SIM_OBJECT_HEADER_NAME_INFO_NAME, name); !r) {
            return tl::unexpected(r.error());
        }
        put32(*block + 0x18, 1); // ReferenceCount
    }
    put64(header + SIM_OBJECT_HEADER_POINTER_COUNT, 2);
    put64(header + SIM_OBJECT_HEADER_HANDLE_COUNT, 1);
    put8(header + SIM_OBJECT_HEADER_TYPE_INDEX, type_index);
    put8(header + SIM_OBJECT_HEADER_INFO_MASK, name.empty() ? 0 : 0x02);
    put8(header + SIM_OBJECT_HEADER_FLAGS, 0x02); // OB_FLAG_KERNEL_OBJECT... (informative)
    if (auto type = m_object_types.find(type_index); type != m_object_types.end()) {
        const uint64_t counts = get64(type->second + SIM_OBJECT_TYPE_TOTAL_OBJECTS);
        put32(type->second + SIM_OBJECT_TYPE_TOTAL_OBJECTS, static_cast<uint32_t>(counts) + 1);
        put32(type->second + SIM_OBJECT_TYPE_TOTAL_HANDLES,
              static_cast<uint32_t>(counts >> 32) + 1);
    }
    return header + SIM_OBJECT_HEADER_BODY;
}

Result<void> SimMachine::build_object_types() {
    struct TypeDef {
        uint8_t index;
        const char* name;
        const char (&key)[5];
        const char* export_name;
    };
    static const TypeDef kTypes[] = {
        {SIM_OBJ_TYPE_TYPE, "Type", "ObjT", nullptr},
        {SIM_OBJ_TYPE_DIRECTORY, "Directory", "Dire", nullptr},
        {SIM_OBJ_TYPE_PROCESS, "Process", "Proc", "PsProcessType"},
        {SIM_OBJ_TYPE_THREAD, "Thread", "Thre", "PsThreadType"},
        {SIM_OBJ_TYPE_EVENT, "Event", "Even", "ExEventObjectType"},
        {SIM_OBJ_TYPE_DEVICE, "Device", "Devi", "IoDeviceObjectType"},
        {SIM_OBJ_TYPE_DRIVER, "Driver", "Driv", "IoDriverObjectType"},
        {SIM_OBJ_TYPE_FILE, "File", "File", "IoFileObjectType"},
    };
    const uint64_t table = symbol("ObTypeIndexTable");
    for (const auto& t : kTypes) {
        auto type = allocate_object(SIM_OBJ_TYPE_TYPE, SIM_OBJECT_TYPE_SIZE, u16(t.name));
        if (!type) {
            return tl::unexpected(type.error());
        }
        m_object_types[t.index] = *type;
        if (auto r = make_unicode_string(*type + SIM_OBJECT_TYPE_NAME, u16(t.name)); !r) {
            return tl::unexpected(r.error());
        }
        put64(*type + SIM_OBJECT_TYPE_TYPE_LIST, *type + SIM_OBJECT_TYPE_TYPE_LIST);
        put64(*type + SIM_OBJECT_TYPE_TYPE_LIST + 8, *type + SIM_OBJECT_TYPE_TYPE_LIST);
        put32(*type + SIM_OBJECT_TYPE_KEY, tag(t.key));
        put8(*type + SIM_OBJECT_TYPE_INDEX, t.index);
        if (table != 0) {
            put64(table + t.index * 8ull, *type);
        }
        if (t.export_name != nullptr) {
            if (uint64_t var = symbol(t.export_name); var != 0) {
                put64(var, *type);
            }
        }
    }
    // The "Type" type was created before it was known: count the types as its objects.
    put32(m_object_types[SIM_OBJ_TYPE_TYPE] + SIM_OBJECT_TYPE_TOTAL_OBJECTS,
          static_cast<uint32_t>(std::size(kTypes)));
    return {};
}

// A dispatcher object (event, queue, timer) with an empty wait list; type_index 0 = no object
// header (an object embedded in something else, as queues and timers are).
Result<uint64_t> SimMachine::create_dispatcher_object(uint8_t type_index, uint8_t dispatcher_type,
                                                      uint64_t size) {
    auto object = type_index != 0 ? allocate_object(type_index, size) : pool_allocate(size, 16);
    if (!object) {
        return tl::unexpected(object.error());
    }
    put8(*object + 0, dispatcher_type);
    put8(*object + 2, static_cast<uint8_t>(size / 4));
    put64(*object + 8, *object + 8);
    put64(*object + 16, *object + 8);
    return *object;
}

// A user process's page tables: the kernel half of the boot PML4 (entries 256-511: the tables
// below them are shared, so later kernel mappings in those slots show in every process), the
// self-map pointing at the new PML4, an empty user half.
Result<uint64_t> SimMachine::create_address_space() {
    auto pml4 = allocate_frame();
    if (!pml4) {
        return tl::unexpected(pml4.error());
    }
    std::memcpy(m_memory->host(*pml4 + 256 * 8), m_memory->host(m_cr3 + 256 * 8), 256 * 8);
    const uint64_t self = *pml4 | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY | PTE_NX;
    std::memcpy(m_memory->host(*pml4 + layout::SELF_MAP_INDEX * 8), &self, 8);
    return *pml4;
}

// Maps a user page in `pml4`'s tables only (the CPUs never run user code: no Unicorn mapping).
Result<void> SimMachine::map_user_page(uint64_t pml4, uint64_t va, uint64_t pa) {
    uint64_t table = pml4;
    for (int shift : {39, 30, 21}) {
        const uint64_t at = table + ((va >> shift) & 511) * 8;
        uint64_t entry;
        std::memcpy(&entry, m_memory->host(at), 8);
        if ((entry & PTE_PRESENT) == 0) {
            auto frame = allocate_frame();
            if (!frame) {
                return tl::unexpected(frame.error());
            }
            entry = *frame | PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED;
            std::memcpy(m_memory->host(at), &entry, 8);
        }
        table = entry & PTE_PFN_MASK;
    }
    const uint64_t pte =
        pa | PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_NX;
    std::memcpy(m_memory->host(table + ((va >> 12) & 511) * 8), &pte, 8);
    return {};
}

// The PEB and what it points to, in two user pages at peb_va: PEB (+0), PEB_LDR_DATA (+0x800),
// two LDR_DATA_TABLE_ENTRYs (+0x880 the image, +0x9A0 ntdll.dll), RTL_USER_PROCESS_PARAMETERS
// (+0x1000) and the strings (+0x1400 on).
Result<void> SimMachine::build_peb(uint64_t pml4, uint64_t eprocess, const ProcessSpec& spec,
                                   uint64_t peb_va) {
    uint64_t frames[2];
    for (int i = 0; i < 2; ++i) {
        auto f = allocate_frame();
        if (!f) {
            return tl::unexpected(f.error());
        }
        frames[i] = *f;
        if (auto r = map_user_page(pml4, peb_va + i * PAGE_SIZE, *f); !r) {
            return r;
        }
    }
    auto host = [&](uint64_t va) {
        return m_memory->host(frames[(va - peb_va) / PAGE_SIZE] + (va - peb_va) % PAGE_SIZE);
    };
    auto w64 = [&](uint64_t va, uint64_t v) { std::memcpy(host(va), &v, 8); };
    auto w32 = [&](uint64_t va, uint32_t v) { std::memcpy(host(va), &v, 4); };
    auto w16 = [&](uint64_t va, uint16_t v) { std::memcpy(host(va), &v, 2); };
    uint64_t strings = peb_va + 0x1400;
    auto ustr = [&](uint64_t at, std::u16string_view text) {
        const auto bytes = static_cast<uint16_t>(text.size() * 2);
        std::memcpy(host(strings), text.data(), bytes);
        w16(at, bytes);
        w16(at + 2, static_cast<uint16_t>(bytes + 2));
        w64(at + 8, strings);
        strings += (bytes + 2 + 7) & ~7ull;
    };
    auto link = [&](uint64_t head, std::initializer_list<uint64_t> entries) {
        uint64_t prev = head;
        for (uint64_t e : entries) {
            w64(prev, e);
            w64(e + 8, prev);
            prev = e;
        }
        w64(prev, head);
        w64(head + 8, prev);
    };

    const uint64_t pid = spec.pid;
    const uint64_t image_base = 0x00007FF700000000ull + pid * 0x100000;
    const uint64_t ntdll_base = 0x00007FFCE5B00000ull;
    const uint64_t ldr = peb_va + 0x800;
    const uint64_t exe = peb_va + 0x880;
    const uint64_t ntdll = peb_va + 0x9A0;
    const uint64_t params = peb_va + 0x1000;

    w64(peb_va + SIM_PEB_IMAGE_BASE_ADDRESS, image_base);
    w64(peb_va + SIM_PEB_LDR, ldr);
    w64(peb_va + SIM_PEB_PROCESS_PARAMETERS, params);
    w64(peb_va + SIM_PEB_PROCESS_HEAP, 0x000001F000000000ull + pid * 0x100000);
    w32(peb_va + SIM_PEB_NUMBER_OF_PROCESSORS, m_config.cpus);
    w32(peb_va + SIM_PEB_OS_MAJOR_VERSION, 10);
    w32(peb_va + SIM_PEB_OS_MINOR_VERSION, 0);
    w16(peb_va + SIM_PEB_OS_BUILD_NUMBER, build_number());
    w32(peb_va + SIM_PEB_OS_BUILD_NUMBER + 4, 2); // OSPlatformId: VER_PLATFORM_WIN32_NT
    w32(peb_va + SIM_PEB_SESSION_ID, spec.session.value_or(0));

    w32(ldr + 0, SIM_PEB_LDR_DATA_SIZE);
    *host(ldr + SIM_PEB_LDR_DATA_INITIALIZED) = 1;
    link(ldr + SIM_PEB_LDR_DATA_IN_LOAD_ORDER,
         {exe + SIM_LDR_ENTRY_IN_LOAD_ORDER, ntdll + SIM_LDR_ENTRY_IN_LOAD_ORDER});
    link(ldr + SIM_PEB_LDR_DATA_IN_MEMORY_ORDER,
         {exe + SIM_LDR_ENTRY_IN_MEMORY_ORDER, ntdll + SIM_LDR_ENTRY_IN_MEMORY_ORDER});
    link(ldr + SIM_PEB_LDR_DATA_IN_INIT_ORDER, {ntdll + SIM_LDR_ENTRY_IN_INIT_ORDER});

    const std::u16string exe_name = u16(spec.image);
    w64(exe + SIM_LDR_ENTRY_DLL_BASE, image_base);
    w64(exe + SIM_LDR_ENTRY_ENTRY_POINT, image_base + 0x1010);
    w32(exe + SIM_LDR_ENTRY_SIZE_OF_IMAGE, 0x2A000);
    ustr(exe + SIM_LDR_ENTRY_FULL_DLL_NAME, spec.image_path);
    ustr(exe + SIM_LDR_ENTRY_BASE_DLL_NAME, exe_name);
    w64(ntdll + SIM_LDR_ENTRY_DLL_BASE, ntdll_base);
    w64(ntdll + SIM_LDR_ENTRY_ENTRY_POINT, 0);
    w32(ntdll + SIM_LDR_ENTRY_SIZE_OF_IMAGE, 0x1F5000);
    ustr(ntdll + SIM_LDR_ENTRY_FULL_DLL_NAME, u"C:\\Windows\\SYSTEM32\\ntdll.dll");
    ustr(ntdll + SIM_LDR_ENTRY_BASE_DLL_NAME, u"ntdll.dll");

    w32(params + 0, SIM_PROCESS_PARAMETERS_SIZE);
    w32(params + 4, SIM_PROCESS_PARAMETERS_SIZE);
    w32(params + 8, 1); // RTL_USER_PROC_PARAMS_NORMALIZED
    ustr(params + SIM_PROCESS_PARAMETERS_IMAGE_PATH_NAME, spec.image_path);
    ustr(params + SIM_PROCESS_PARAMETERS_COMMAND_LINE, spec.command_line);

    put64(eprocess + SIM_EPROCESS_PEB, peb_va);
    return {};
}

Result<uint64_t> SimMachine::create_process(const ProcessSpec& spec) {
    auto ep = allocate_object(SIM_OBJ_TYPE_PROCESS, SIM_EPROCESS_SIZE);
    if (!ep) {
        return tl::unexpected(ep.error());
    }
    const uint64_t p = *ep;
    put8(p + 0, DISPATCHER_PROCESS);
    put8(p + 2, static_cast<uint8_t>(SIM_KPROCESS_SIZE / 8));
    put64(p + 8, p + 8);
    put64(p + 16, p + 8);
    uint64_t dtb = m_cr3;
    if (spec.user) {
        auto space = create_address_space();
        if (!space) {
            return tl::unexpected(space.error());
        }
        dtb = *space;
    }
    put64(p + SIM_EPROCESS_DIRECTORY_TABLE_BASE, dtb);
    for (uint64_t head :
         {uint64_t{SIM_KPROCESS_THREAD_LIST_HEAD}, uint64_t{SIM_EPROCESS_THREAD_LIST_HEAD}}) {
        put64(p + head, p + head);
        put64(p + head + 8, p + head);
    }
    put8(p + SIM_KPROCESS_BASE_PRIORITY, 8);
    put64(p + SIM_EPROCESS_UNIQUE_PROCESS_ID, spec.pid);
    put64(p + SIM_EPROCESS_INHERITED_FROM_PID, spec.parent_pid);
    put64(p + SIM_EPROCESS_CREATE_TIME, m_boot_system_time + spec.create_delay_100ns);
    std::string name = spec.image.substr(0, 15);
    name.resize(15, '\0');
    put_bytes(p + SIM_EPROCESS_IMAGE_FILE_NAME,
              {reinterpret_cast<const uint8_t*>(name.data()), name.size()});
    put8(p + SIM_EPROCESS_IMAGE_FILE_NAME + 15, 2); // PriorityClass: NORMAL
    if (spec.listed) {
        auto table = pool_allocate(SIM_HANDLE_TABLE_SIZE, 16);
        if (!table) {
            return tl::unexpected(table.error());
        }
        put32(*table + 0, (spec.handle_count + 1) * 4); // NextHandleNeedingPool
        put64(*table + 0x10, p);                        // QuotaProcess
        put32(*table + 0x18, static_cast<uint32_t>(spec.pid));
        put32(*table + SIM_HANDLE_TABLE_HANDLE_COUNT, spec.handle_count);
        put64(p + SIM_EPROCESS_OBJECT_TABLE, *table);
    }
    if (spec.session) {
        auto& space = m_session_spaces[*spec.session];
        if (space == 0) {
            auto s = pool_allocate(SIM_MM_SESSION_SPACE_SIZE, 16);
            if (!s) {
                return tl::unexpected(s.error());
            }
            space = *s;
            put32(space + SIM_MM_SESSION_SPACE_SESSION_ID, *spec.session);
        }
        put32(space, static_cast<uint32_t>(get64(space)) + 1); // ReferenceCount
        put64(p + SIM_EPROCESS_SESSION, space);
    }
    uint64_t peb = 0;
    if (spec.user) {
        // Where a PEB lands in a Windows 10 process: low in the 47-bit space, page-aligned.
        peb = 0x000000A000000000ull + spec.pid * 0x100000 + 0x4000;
        if (auto r = build_peb(dtb, p, spec, peb); !r) {
            return tl::unexpected(r.error());
        }
    }
    if (spec.listed) {
        const uint64_t head = symbol("PsActiveProcessHead");
        const uint64_t links = p + SIM_EPROCESS_ACTIVE_PROCESS_LINKS;
        const uint64_t last = get64(head + 8);
        put64(links, head);
        put64(links + 8, last);
        put64(last, links);
        put64(head + 8, links);
    }
    SimProcess record;
    record.eprocess = p;
    record.pid = spec.pid;
    record.parent_pid = spec.parent_pid;
    record.image = spec.image;
    record.directory_table_base = dtb;
    record.peb = peb;
    record.session = spec.session;
    record.handle_count = spec.handle_count;
    m_workload.processes.push_back(record);
    return p;
}

Result<uint64_t> SimMachine::create_thread(const ThreadSpec& spec) {
    const uint64_t stack_top = layout::STACK_REGION + (spec.stack_slot + 1) * layout::STACK_STRIDE;
    const uint64_t stack_limit = stack_top - layout::KERNEL_STACK_SIZE;
    if (auto r = map_new_pages(stack_limit, layout::KERNEL_STACK_SIZE, true, false); !r) {
        return tl::unexpected(r.error());
    }
    auto thread = allocate_object(SIM_OBJ_TYPE_THREAD, SIM_ETHREAD_SIZE);
    if (!thread) {
        return tl::unexpected(thread.error());
    }
    const uint64_t t = *thread;
    const uint64_t process = spec.process;
    put8(t + 0, DISPATCHER_THREAD);
    put64(t + 8, t + 8);
    put64(t + 16, t + 8);
    put64(t + SIM_KTHREAD_INITIAL_STACK, stack_top);
    put64(t + SIM_KTHREAD_STACK_LIMIT, stack_limit);
    put64(t + SIM_KTHREAD_STACK_BASE, stack_top);
    put64(t + SIM_KTHREAD_KERNEL_STACK, stack_top - 0x100);
    for (uint64_t list : {uint64_t{0}, uint64_t{16}}) {
        put64(t + SIM_KTHREAD_APC_STATE + list, t + SIM_KTHREAD_APC_STATE + list);
        put64(t + SIM_KTHREAD_APC_STATE + list + 8, t + SIM_KTHREAD_APC_STATE + list);
    }
    put64(t + SIM_KTHREAD_APC_STATE_PROCESS, process);
    put64(t + SIM_KTHREAD_PROCESS, process);
    put64(t + SIM_KTHREAD_TEB, spec.teb);
    put8(t + SIM_KTHREAD_STATE, spec.state);
    put8(t + SIM_KTHREAD_PRIORITY, static_cast<uint8_t>(spec.priority));
    put8(t + SIM_KTHREAD_BASE_PRIORITY, static_cast<uint8_t>(spec.priority));
    put32(t + SIM_KTHREAD_NEXT_PROCESSOR, spec.cpu);
    put64(t + SIM_KTHREAD_QUEUE_LIST_ENTRY, t + SIM_KTHREAD_QUEUE_LIST_ENTRY);
    put64(t + SIM_KTHREAD_QUEUE_LIST_ENTRY + 8, t + SIM_KTHREAD_QUEUE_LIST_ENTRY);
    const uint64_t pid = process != 0 ? get64(process + SIM_EPROCESS_UNIQUE_PROCESS_ID) : 0;
    put64(t + SIM_ETHREAD_CID, pid);
    put64(t + SIM_ETHREAD_CID + 8, spec.tid);
    put64(t + SIM_ETHREAD_CREATE_TIME, get64(process + SIM_EPROCESS_CREATE_TIME));
    put64(t + SIM_ETHREAD_START_ADDRESS, spec.start_address);
    put64(t + SIM_ETHREAD_WIN32_START_ADDRESS, spec.start_address);
    put64(t + SIM_ETHREAD_IRP_LIST, t + SIM_ETHREAD_IRP_LIST);
    put64(t + SIM_ETHREAD_IRP_LIST + 8, t + SIM_ETHREAD_IRP_LIST);
    // Both thread lists of the process, at the tail.
    auto append = [this](uint64_t head, uint64_t entry) {
        const uint64_t last = get64(head + 8);
        put64(entry, head);
        put64(entry + 8, last);
        put64(last, entry);
        put64(head + 8, entry);
    };
    append(process + SIM_KPROCESS_THREAD_LIST_HEAD, t + SIM_KTHREAD_THREAD_LIST_ENTRY);
    append(process + SIM_EPROCESS_THREAD_LIST_HEAD, t + SIM_ETHREAD_THREAD_LIST_ENTRY);
    put32(process + SIM_EPROCESS_ACTIVE_THREADS,
          static_cast<uint32_t>(get64(process + SIM_EPROCESS_ACTIVE_THREADS)) + 1);
    if (spec.wait_object != 0) {
        const uint64_t block = t + SIM_KTHREAD_WAIT_BLOCK;
        put64(t + SIM_KTHREAD_WAIT_BLOCK_LIST, block);
        put8(block + SIM_KWAIT_BLOCK_WAIT_TYPE, 1); // WaitAny
        put8(block + SIM_KWAIT_BLOCK_BLOCK_STATE, WAIT_BLOCK_ACTIVE);
        put64(block + SIM_KWAIT_BLOCK_OBJECT, spec.wait_object);
        put64(block + SIM_KWAIT_BLOCK_THREAD, t);
        append(spec.wait_object + 8, block + SIM_KWAIT_BLOCK_WAIT_LIST_ENTRY);
        put8(t + SIM_KTHREAD_WAIT_REASON, spec.wait_reason);
        put8(t + SIM_KTHREAD_WAIT_MODE, spec.wait_mode);
        put8(t + SIM_KTHREAD_ALERTABLE, spec.alertable ? 1 : 0);
        put32(t + SIM_KTHREAD_WAIT_TIME, 0); // the tick count at boot
    }
    if (SimProcess* owner = workload_process(process)) {
        SimThread record;
        record.ethread = t;
        record.tid = spec.tid;
        record.state = spec.state;
        record.wait_reason = spec.wait_object != 0 ? spec.wait_reason : 0;
        record.wait_mode = spec.wait_object != 0 ? spec.wait_mode : 0;
        record.alertable = spec.wait_object != 0 && spec.alertable;
        record.wait_object = spec.wait_object;
        record.teb = spec.teb;
        owner->threads.push_back(record);
    }
    return t;
}

// Object types, then System (pid 4, the first in PsActiveProcessHead) and Idle (pid 0, not
// listed), before the processors' threads are built.
Result<void> SimMachine::build_system_processes() {
    const uint64_t head = symbol("PsActiveProcessHead");
    put64(head, head);
    put64(head + 8, head);
    if (auto r = build_object_types(); !r) {
        return r;
    }
    ProcessSpec system;
    system.pid = 4;
    system.image = "System";
    system.handle_count = 320;
    auto s = create_process(system);
    if (!s) {
        return tl::unexpected(s.error());
    }
    ProcessSpec idle;
    idle.pid = 0;
    idle.image = "Idle";
    idle.listed = false;
    auto i = create_process(idle);
    if (!i) {
        return tl::unexpected(i.error());
    }
    m_system_process = *s;
    m_idle_process = *i;
    put64(symbol("PsInitialSystemProcess"), m_system_process);
    put64(symbol("PsIdleProcess"), m_idle_process);
    return {};
}

// The rest of the workload: two more System threads, four user processes with threads in
// different waits, and the device stack with its pending IRP.
Result<void> SimMachine::build_workload() {
    uint64_t slot = layout::MAX_CPUS + 1; // stack slots after the idle threads and System's
    const uint64_t start = m_system_thread_startup;
    auto event = [this](uint8_t dispatcher_type) {
        return create_dispatcher_object(SIM_OBJ_TYPE_EVENT, dispatcher_type, 0x18);
    };

    // System: a worker waiting on its queue, a thread waiting on a notification event.
    auto queue = create_dispatcher_object(0, DISPATCHER_QUEUE, 0x40);
    auto system_event = event(DISPATCHER_NOTIFICATION_EVENT);
    if (!queue || !system_event) {
        return make_error(Errc::Unsupported, "SimMachine: nonpaged pool exhausted");
    }
    ThreadSpec worker{
        m_system_process, 0x18, 0,  THREAD_WAITING, slot++, WAIT_WR_QUEUE, KERNEL_MODE, false,
        *queue,           0,    13, start};
    ThreadSpec waiter{
        m_system_process, 0x1c, 0, THREAD_WAITING, slot++, WAIT_EXECUTIVE, KERNEL_MODE, false,
        *system_event,    0,    8, start};
    for (const auto& spec : {worker, waiter}) {
        if (auto r = create_thread(spec); !r) {
            return tl::unexpected(r.error());
        }
    }

    struct UserProcess {
        uint64_t pid;
        uint64_t parent;
        const char* image;
        std::optional<uint32_t> session;
        uint32_t handles;
        const char16_t* path;
        const char16_t* command_line;
    };
    const UserProcess kProcesses[] = {
        {0x154, 4, "smss.exe", std::nullopt, 53, u"\\SystemRoot\\System32\\smss.exe",
         u"\\SystemRoot\\System32\\smss.exe"},
        {0x1c8, 0x1bc, "csrss.exe", 0, 412, u"C:\\Windows\\system32\\csrss.exe",
         u"%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows "
         u"SharedSection=1024,20480,768 "
         u"Windows=On SubSystemType=Windows ServerDll=basesrv,1 "
         u"ServerDll=winsrv:UserServerDllInitialization,3 "
         u"ServerDll=sxssrv,4 ProfileControl=Off MaxRequestThreads=16"},
        {0x280, 0x218, "services.exe", 0, 301, u"C:\\Windows\\system32\\services.exe",
         u"C:\\Windows\\system32\\services.exe"},
        {0x338, 0x280, "svchost.exe", 0, 657, u"C:\\Windows\\system32\\svchost.exe",
         u"C:\\Windows\\system32\\svchost.exe -k netsvcs -p"},
    };
    std::vector<uint64_t> user;
    uint64_t delay = 0;
    for (const auto& u : kProcesses) {
        ProcessSpec spec;
        spec.pid = u.pid;
        spec.parent_pid = u.parent;
        spec.image = u.image;
        spec.session = u.session;
        spec.handle_count = u.handles;
        spec.user = true;
        spec.image_path = u.path;
        spec.command_line = u.command_line;
        delay += 15000000; // 1.5 s apart
        spec.create_delay_100ns = delay;
        auto p = create_process(spec);
        if (!p) {
            return tl::unexpected(p.error());
        }
        user.push_back(*p);
    }
    const uint64_t smss = user[0], csrss = user[1], services = user[2], svchost = user[3];
    auto teb = [this](uint64_t process, int n) {
        const SimProcess* p = workload_process(process);
        return (p ? p->peb : 0) + 0x2000 + static_cast<uint64_t>(n) * 0x2000;
    };
    auto lpc_event = event(DISPATCHER_SYNCHRONIZATION_EVENT);
    auto delay_timer = create_dispatcher_object(0, DISPATCHER_TIMER, 0x40);
    auto services_event = event(DISPATCHER_NOTIFICATION_EVENT);
    auto io_event = event(DISPATCHER_NOTIFICATION_EVENT);
    if (!lpc_event || !delay_timer || !services_event || !io_event) {
        return make_error(Errc::Unsupported, "SimMachine: nonpaged pool exhausted");
    }
    const uint64_t user_start = 0x00007FFCE5B2A2D0ull; // ntdll!RtlUserThreadStart's place
    const ThreadSpec threads[] = {
        // smss waits for csrss (a process object: signalled when it exits).
        {smss, 0x158, 0, THREAD_WAITING, slot++, WAIT_USER_REQUEST, USER_MODE, true, csrss,
         teb(smss, 0), 11, user_start},
        {csrss, 0x1cc, 0, THREAD_WAITING, slot++, WAIT_WR_LPC_RECEIVE, USER_MODE, false, *lpc_event,
         teb(csrss, 0), 14, user_start},
        {csrss, 0x1d0, 0, THREAD_WAITING, slot++, WAIT_DELAY_EXECUTION, USER_MODE, true,
         *delay_timer, teb(csrss, 1), 13, user_start},
        {services, 0x284, 0, THREAD_WAITING, slot++, WAIT_USER_REQUEST, USER_MODE, false,
         *services_event, teb(services, 0), 9, user_start},
        // services: one thread ready (preempted) on processor 0, at priority 10.
        {services, 0x288, 0, THREAD_READY, slot++, 0, 0, false, 0, teb(services, 1), 10,
         user_start},
        // svchost: one thread waits for its device I/O (the pending IRP), one is ready.
        {svchost, 0x33c, 0, THREAD_WAITING, slot++, WAIT_EXECUTIVE, KERNEL_MODE, false, *io_event,
         teb(svchost, 0), 8, user_start},
        {svchost, 0x340, m_config.cpus - 1, THREAD_READY, slot++, 0, 0, false, 0, teb(svchost, 1),
         8, user_start},
    };
    uint64_t io_thread = 0;
    for (const auto& spec : threads) {
        auto t = create_thread(spec);
        if (!t) {
            return tl::unexpected(t.error());
        }
        if (spec.tid == 0x33c) {
            io_thread = *t;
        }
    }
    m_workload.pending_irp_thread = io_thread;
    if (auto r = build_device_stack(); !r) {
        return r;
    }
    // Idle last in the list of processes (it is not in PsActiveProcessHead).
    std::stable_partition(m_workload.processes.begin(), m_workload.processes.end(),
                          [this](const SimProcess& p) { return p.eprocess != m_idle_process; });
    // The pending IRP's UserEvent is the event the I/O thread waits on.
    put64(m_workload.pending_irp + SIM_IRP_USER_EVENT, *io_event);
    // nt parks the waiting and ready threads at boot (KiSimParkThreads): their switch frames,
    // trap frames and the ready lists are built by nt's own code on their stacks.
    const uint64_t park = symbol("KiSimParkList");
    uint64_t parked = 0;
    for (const auto& p : m_workload.processes) {
        for (const auto& t : p.threads) {
            if (park != 0 && t.tid != 0 && parked < SIM_MAX_PARKED_THREADS &&
                (t.state == THREAD_WAITING || t.state == THREAD_READY)) {
                put64(park + 8 * parked++, t.ethread);
            }
        }
    }
    return {};
}

// \Driver\PnpManager's PDO (\Device\00000034) with kdtest's FDO (\Device\KdTest0) attached on
// top, and an IRP_MJ_DEVICE_CONTROL from svchost pending at the FDO (its CurrentIrp).
Result<void> SimMachine::build_device_stack() {
    const uint64_t invalid_request = symbol("IopInvalidDeviceRequest");
    auto kdtest = m_workload.driver_objects.find("\\Driver\\kdtest");
    if (kdtest == m_workload.driver_objects.end()) {
        return {}; // no kdtest.sys: no device stack
    }
    auto pnp = allocate_object(SIM_OBJ_TYPE_DRIVER, SIM_DRIVER_OBJECT_SIZE, u"PnpManager");
    if (!pnp) {
        return tl::unexpected(pnp.error());
    }
    put16(*pnp + 0, IO_TYPE_DRIVER);
    put16(*pnp + 2, SIM_DRIVER_OBJECT_SIZE);
    put32(*pnp + SIM_DRIVER_OBJECT_FLAGS, 0x12);
    if (auto r = make_unicode_string(*pnp + SIM_DRIVER_OBJECT_DRIVER_NAME, u"\\Driver\\PnpManager");
        !r) {
        return tl::unexpected(r.error());
    }
    m_workload.driver_objects["\\Driver\\PnpManager"] = *pnp;
    for (uint64_t driver : {*pnp, kdtest->second}) {
        for (uint32_t i = 0; i < IRP_MJ_MAXIMUM; ++i) {
            put64(driver + SIM_DRIVER_OBJECT_MAJOR_FUNCTION + i * 8ull, invalid_request);
        }
    }

    struct DeviceDef {
        uint64_t driver;
        const char16_t* name;
        uint32_t flags;
        uint32_t characteristics;
        uint8_t stack_size;
    };
    const DeviceDef defs[] = {
        {*pnp, u"00000034", 0x00001040, 0x00000080, 1},          // PDO
        {kdtest->second, u"KdTest0", 0x00002044, 0x00000100, 2}, // FDO
    };
    uint64_t below = 0;
    for (const auto& d : defs) {
        auto dev = allocate_object(SIM_OBJ_TYPE_DEVICE, SIM_DEVICE_OBJECT_SIZE + 0x40, d.name);
        auto ext = pool_allocate(SIM_DEVOBJ_EXTENSION_SIZE, 16);
        if (!dev || !ext) {
            return make_error(Errc::Unsupported, "SimMachine: nonpaged pool exhausted");
        }
        put16(*dev + 0, IO_TYPE_DEVICE);
        put16(*dev + 2, SIM_DEVICE_OBJECT_SIZE + 0x40);
        put32(*dev + SIM_DEVICE_OBJECT_REFERENCE_COUNT, below == 0 ? 0 : 1);
        put64(*dev + SIM_DEVICE_OBJECT_DRIVER_OBJECT, d.driver);
        put32(*dev + SIM_DEVICE_OBJECT_FLAGS, d.flags);
        put32(*dev + SIM_DEVICE_OBJECT_CHARACTERISTICS, d.characteristics);
        put64(*dev + SIM_DEVICE_OBJECT_DEVICE_EXTENSION, *dev + SIM_DEVICE_OBJECT_SIZE);
        put32(*dev + SIM_DEVICE_OBJECT_DEVICE_TYPE, FILE_DEVICE_UNKNOWN);
        put8(*dev + SIM_DEVICE_OBJECT_STACK_SIZE, d.stack_size);
        put64(*dev + SIM_DEVICE_OBJECT_DEVICE_OBJECT_EXTENSION, *ext);
        put16(*ext + 0, IO_TYPE_DEVICE_OBJECT_EXTENSION);
        put16(*ext + 2, SIM_DEVOBJ_EXTENSION_SIZE);
        put64(*ext + SIM_DEVOBJ_EXTENSION_DEVICE_OBJECT, *dev);
        put64(*ext + SIM_DEVOBJ_EXTENSION_ATTACHED_TO, below);
        if (below != 0) {
            put64(below + SIM_DEVICE_OBJECT_ATTACHED_DEVICE, *dev);
        }
        put64(d.driver + SIM_DRIVER_OBJECT_DEVICE_OBJECT, *dev);
        SimDevice record;
        record.device_object = *dev;
        record.driver_object = d.driver;
        record.name = std::string(d.name, d.name + std::char_traits<char16_t>::length(d.name));
        record.attached_to = below;
        m_workload.devices.push_back(record);
        below = *dev;
    }
    const uint64_t fdo = below;

    // The IRP and its two stack locations; the FDO's (the second) is current.
    const uint64_t size = SIM_IRP_SIZE + 2 * SIM_IO_STACK_LOCATION_SIZE;
    auto irp = pool_allocate(size, 16);
    if (!irp) {
        return tl::unexpected(irp.error());
    }
    const uint64_t i = *irp;
    const uint64_t thread = m_workload.pending_irp_thread;
    const uint64_t user_buffer = 0x000000A000000000ull + 0x338 * 0x100000 + 0x8000;
    put16(i + 0, IO_TYPE_IRP);
    put16(i + 2, static_cast<uint16_t>(size));
    put32(i + SIM_IRP_FLAGS, 0x00060070);
    put64(i + SIM_IRP_ASSOCIATED_IRP, user_buffer);
    put8(i + SIM_IRP_REQUESTOR_MODE, USER_MODE);
    put8(i + SIM_IRP_PENDING_RETURNED, 1);
    put8(i + SIM_IRP_STACK_COUNT, 2);
    put8(i + SIM_IRP_CURRENT_LOCATION, 2);
    put64(i + SIM_IRP_USER_IOSB, user_buffer - 0x20);
    put64(i + SIM_IRP_USER_BUFFER, user_buffer);
    put64(i + SIM_IRP_TAIL_OVERLAY_THREAD, thread);
    const uint64_t current = i + SIM_IRP_SIZE + SIM_IO_STACK_LOCATION_SIZE;
    put64(i + SIM_IRP_TAIL_OVERLAY_CURRENT_STACK_LOCATION, current);
    put8(current + SIM_IO_STACK_LOCATION_MAJOR_FUNCTION, IRP_MJ_DEVICE_CONTROL);
    put8(current + SIM_IO_STACK_LOCATION_CONTROL, 0x01);                // SL_PENDING_RETURNED
    put32(current + SIM_IO_STACK_LOCATION_PARAMETERS + 0x00, 0x100);    // OutputBufferLength
    put32(current + SIM_IO_STACK_LOCATION_PARAMETERS + 0x08, 0x20);     // InputBufferLength
    put32(current + SIM_IO_STACK_LOCATION_PARAMETERS + 0x10, 0x222003); // IoControlCode
    put64(current + SIM_IO_STACK_LOCATION_PARAMETERS + 0x18, user_buffer);
    put64(current + SIM_IO_STACK_LOCATION_DEVICE_OBJECT, fdo);
    // In the thread's IRP list, and the FDO's current IRP.
    if (thread != 0) {
        const uint64_t head = thread + SIM_ETHREAD_IRP_LIST;
        put64(i + SIM_IRP_THREAD_LIST_ENTRY, head);
        put64(i + SIM_IRP_THREAD_LIST_ENTRY + 8, head);
        put64(head, i + SIM_IRP_THREAD_LIST_ENTRY);
        put64(head + 8, i + SIM_IRP_THREAD_LIST_ENTRY);
    }
    put64(fdo + SIM_DEVICE_OBJECT_CURRENT_IRP, i);
    m_workload.pending_irp = i;
    return {};
}

} // namespace kdcart::hw
