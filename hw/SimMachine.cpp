#include "hw/SimMachine.h"

#include "hw/images/sim_abi.h"

#include <spdlog/spdlog.h>
#include <unicorn/unicorn.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

namespace kdcart::hw {

using namespace protocol;

namespace {

constexpr uint64_t PTE_PRESENT = 0x1;
constexpr uint64_t PTE_WRITE = 0x2;
constexpr uint64_t PTE_ACCESSED = 0x20;
constexpr uint64_t PTE_DIRTY = 0x40;
constexpr uint64_t PTE_LARGE = 0x80;
constexpr uint64_t PTE_GLOBAL = 0x100;
constexpr uint64_t PTE_NX = 1ULL << 63;
constexpr uint64_t PTE_PFN_MASK = 0x000FFFFFFFFFF000ULL;
constexpr uint64_t PAGE_MASK = ~(PAGE_SIZE - 1);

constexpr uint64_t DR6_INIT = 0xFFFF0FF0;
constexpr uint64_t DR6_BS = 0x4000;
constexpr uint64_t DR7_INIT = 0x400;
constexpr uint32_t EFLAGS_TF = 0x100;
constexpr uint32_t EFLAGS_RF = 0x10000;
constexpr uint32_t EFLAGS_VM = 0x20000;
constexpr uint32_t EFLAGS_FIXED = 0x2;

constexpr uint64_t QUANTUM = 5000;        // instructions per CPU turn within a slice
constexpr uint64_t BOOT_LIMIT = 50000000; // instructions the boot may take
constexpr uint32_t MAX_PRINT = 4096;      // bytes of one DbgPrint we pass on

constexpr uint32_t STATUS_INTEGER_DIVIDE_BY_ZERO = 0xC0000094;
constexpr uint32_t STATUS_INTEGER_OVERFLOW = 0xC0000095;
constexpr uint32_t STATUS_ARRAY_BOUNDS_EXCEEDED = 0xC000008C;
constexpr uint32_t STATUS_ILLEGAL_INSTRUCTION = 0xC000001D;
constexpr uint32_t STATUS_PRIVILEGED_INSTRUCTION = 0xC0000096;
constexpr uint32_t STATUS_DATATYPE_MISALIGNMENT = 0x80000002;
constexpr uint32_t STATUS_FLOAT_MULTIPLE_TRAPS = 0xC00002B5;

constexpr uint16_t IO_TYPE_DRIVER = 4;
constexpr uint8_t THREAD_STATE_READY = 1;
constexpr uint8_t THREAD_STATE_RUNNING = 2;

constexpr uint64_t CR0_VALUE = 0x80050033; // PG WP NE ET MP PE
constexpr uint64_t CR4_VALUE = 0x00350EF8;
constexpr uint64_t MSR_KERNEL_GS_BASE = 0xC0000102;

bool is_canonical(uint64_t va) {
    return static_cast<uint64_t>(static_cast<int64_t>(va << 16) >> 16) == va;
}

uint64_t align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::u16string to_u16(std::string_view s) {
    return std::u16string(s.begin(), s.end());
}

// A GDT code/data descriptor.
uint64_t segment_descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
    uint64_t d = 0;
    d |= limit & 0xFFFF;
    d |= uint64_t{base & 0xFFFFFF} << 16;
    d |= uint64_t{access} << 40;
    d |= uint64_t{(limit >> 16) & 0xF} << 48;
    d |= static_cast<uint64_t>(flags & 0xF) << 52;
    d |= uint64_t{(base >> 24) & 0xFF} << 56;
    return d;
}

uint32_t fault_code_for_vector(uint32_t vector) {
    switch (vector) {
    case 0:
        return STATUS_INTEGER_DIVIDE_BY_ZERO;
    case 4:
        return STATUS_INTEGER_OVERFLOW;
    case 5:
        return STATUS_ARRAY_BOUNDS_EXCEEDED;
    case 6:
        return STATUS_ILLEGAL_INSTRUCTION;
    case 13:
        return STATUS_PRIVILEGED_INSTRUCTION;
    case 17:
        return STATUS_DATATYPE_MISALIGNMENT;
    case 16:
    case 19:
        return STATUS_FLOAT_MULTIPLE_TRAPS;
    default:
        return STATUS_ACCESS_VIOLATION;
    }
}

uint64_t dr_value(const KSPECIAL_REGISTERS& s, int i) {
    switch (i) {
    case 0:
        return s.KernelDr0;
    case 1:
        return s.KernelDr1;
    case 2:
        return s.KernelDr2;
    default:
        return s.KernelDr3;
    }
}

// Length in bytes of DR7's LENn encoding.
uint64_t dr_length(uint64_t bits) {
    switch (bits & 3) {
    case 0:
        return 1;
    case 1:
        return 2;
    case 2:
        return 8;
    default:
        return 4;
    }
}

} // namespace

// Unicorn callbacks, forwarded to the machine.
struct SimMachineHooks {
    static void code(uc_engine* /*uc*/, uint64_t address, uint32_t size, void* user) {
        static_cast<SimMachine*>(user)->on_code(address, size);
    }
    static void interrupt(uc_engine* /*uc*/, uint32_t number, void* user) {
        static_cast<SimMachine*>(user)->on_interrupt(number);
    }
    static bool invalid(uc_engine* /*uc*/, uc_mem_type type, uint64_t address, int /*size*/,
                        int64_t /*value*/, void* user) {
        return static_cast<SimMachine*>(user)->on_invalid_memory(static_cast<int>(type), address);
    }
    static void memory(uc_engine* /*uc*/, uc_mem_type type, uint64_t address, int size,
                       int64_t /*value*/, void* user) {
        static_cast<SimMachine*>(user)->on_memory(static_cast<int>(type), address, size);
    }
};

// ---------------------------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------------------------

std::vector<PhysicalRun> default_physical_runs() {
    return {
        {0x1000, 0x9F000 - 0x1000},
        {0x100000, 0x2000000 - 0x100000},
        {0x3000000, 0x4200000 - 0x3000000},
    };
}

std::filesystem::path default_image_dir() {
#ifdef KDSIM_IMAGE_DIR
    return KDSIM_IMAGE_DIR;
#else
    return ".";
#endif
}

const char* stop_kind_name(StopKind kind) {
    switch (kind) {
    case StopKind::SliceEnd:
        return "SliceEnd";
    case StopKind::Breakpoint:
        return "Breakpoint";
    case StopKind::DebugPrint:
        return "DebugPrint";
    case StopKind::LoadSymbols:
        return "LoadSymbols";
    case StopKind::UnloadSymbols:
        return "UnloadSymbols";
    case StopKind::SingleStep:
        return "SingleStep";
    case StopKind::HardwareBreakpoint:
        return "HardwareBreakpoint";
    case StopKind::Fault:
        return "Fault";
    case StopKind::Reboot:
        return "Reboot";
    case StopKind::Halted:
        return "Halted";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// construction
// ---------------------------------------------------------------------------------------------

SimMachine::SimMachine(SimConfig config) : m_config(std::move(config)) {}

SimMachine::~SimMachine() {
    teardown();
}

Result<std::unique_ptr<SimMachine>> SimMachine::create(const SimConfig& config) {
    if (config.cpus < 1 || config.cpus > layout::MAX_CPUS) {
        return make_error(Errc::InvalidArgument, "SimMachine: cpus must be 1..8");
    }
    if (config.tick.count() <= 0) {
        return make_error(Errc::InvalidArgument, "SimMachine: tick must be positive");
    }
    std::unique_ptr<SimMachine> machine(new SimMachine(config));
    if (auto r = machine->boot(); !r) {
        return tl::unexpected(r.error());
    }
    return machine;
}

Result<void> SimMachine::reboot() {
    spdlog::debug("sim: reboot");
    if (m_config.bugcheck_after.enabled && !m_bugcheck_after_done) {
        if (auto raised = address_of("kdtest", "KdTestBugCheckRaised")) {
            uint32_t v = 0;
            read_virtual(*raised, {reinterpret_cast<uint8_t*>(&v), sizeof(v)});
            m_bugcheck_after_done = v != 0;
        }
    }
    teardown();
    return boot();
}

void SimMachine::teardown() {
    for (auto& cpu : m_cpus) {
        if (cpu.context != nullptr) {
            uc_context_free(cpu.context);
        }
    }
    m_cpus.clear();
    if (m_uc != nullptr) {
        uc_close(m_uc);
        m_uc = nullptr;
    }
    m_memory.reset();
    m_cr3 = 0;
    m_mapped.clear();
    m_exec_alias.clear();
    m_paged_out.clear();
    m_page_ins = 0;
    m_pool_next = 0;
    m_images.clear();
    m_modules.clear();
    m_loaded_cpu = -1;
    m_exec = ExecState{};
    m_pending.clear();
    m_next_cpu = 0;
    m_priority_cpu.reset();
    m_kernel_base = 0;
    m_ps_loaded_module_list = 0;
    m_debugger_data_list = 0;
    m_kd_debugger_data_block = 0;
    m_break_with_status = 0;
    m_idle_loop = 0;
    m_system_thread_startup = 0;
    m_system_process = 0;
    m_idle_process = 0;
    m_system_thread = 0;
    m_loader_block = 0;
    m_idt = 0;
    m_physical_memory_block = 0;
    m_return_to_firmware = 0;
    m_ticks = 0;
    m_total_instructions = 0;
    m_debug_registers_armed = false;
    m_booted = false;
    m_sim_interrupt = 0;
    m_driver_request = 0;
    m_next_timer_due = 0;
    m_interrupts = 0;
    m_late = LateDriver{};
    m_object_types.clear();
    m_session_spaces.clear();
    m_workload = SimWorkload{};
}

Result<void> SimMachine::boot() {
    auto memory = PhysicalMemory::create(m_config.memory);
    if (!memory) {
        return tl::unexpected(memory.error());
    }
    m_memory.emplace(std::move(*memory));

    if (uc_err e = uc_open(UC_ARCH_X86, UC_MODE_64, &m_uc); e != UC_ERR_OK) {
        return make_error(Errc::Io, std::string("unicorn: ") + uc_strerror(e));
    }
    uc_hook h;
    bool hooks_ok =
        uc_hook_add(m_uc, &h, UC_HOOK_CODE, reinterpret_cast<void*>(&SimMachineHooks::code), this,
                    1, 0) == UC_ERR_OK &&
        uc_hook_add(m_uc, &h, UC_HOOK_INTR, reinterpret_cast<void*>(&SimMachineHooks::interrupt),
                    this, 1, 0) == UC_ERR_OK &&
        uc_hook_add(m_uc, &h, UC_HOOK_MEM_INVALID,
                    reinterpret_cast<void*>(&SimMachineHooks::invalid), this, 1, 0) == UC_ERR_OK &&
        uc_hook_add(m_uc, &h, UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
                    reinterpret_cast<void*>(&SimMachineHooks::memory), this, 1, 0) == UC_ERR_OK;
    if (!hooks_ok) {
        return make_error(Errc::Io, "unicorn: cannot install hooks");
    }

    auto pml4 = allocate_frame();
    if (!pml4) {
        return tl::unexpected(pml4.error());
    }
    m_cr3 = *pml4;
    uint64_t self = m_cr3 | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY | PTE_NX;
    std::memcpy(m_memory->host(m_cr3 + layout::SELF_MAP_INDEX * 8), &self, 8);
    m_pool_next = layout::POOL_BASE;

    m_boot_time = std::chrono::steady_clock::now();
    m_next_tick = m_boot_time + m_config.tick;
    // 100 ns units between 1601-01-01 and the Unix epoch.
    constexpr uint64_t EPOCH_DIFFERENCE = 116444736000000000ULL;
    auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    m_boot_system_time = EPOCH_DIFFERENCE + static_cast<uint64_t>(since_epoch.count()) / 100;

    if (auto r = load_images(); !r) {
        return r;
    }
    if (auto r = build_kernel_structures(); !r) {
        return r;
    }
    spdlog::debug("sim: booting {} cpu(s), {} physical pages, {} used", m_config.cpus,
                  m_memory->total_pages(), m_memory->allocated_pages());
    if (auto r = run_boot(); !r) {
        return r;
    }
    m_booted = true;
    const LateDriverConfig& late = m_config.late_driver;
    std::error_code ec;
    if (late.enabled && m_sim_interrupt != 0 && m_driver_request != 0 &&
        std::filesystem::exists(m_config.image_dir / late.file, ec)) {
        m_late.state = LateDriverState::Waiting;
        m_late.next = m_boot_time + late.load_after;
    } else if (late.enabled) {
        spdlog::debug("sim: no late driver ({} missing)", late.file);
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// page tables and mappings
// ---------------------------------------------------------------------------------------------

Result<uint64_t> SimMachine::allocate_frame() {
    auto pa = m_memory->allocate_page();
    if (!pa) {
        return make_error(Errc::Unsupported, "SimMachine: out of simulated physical memory");
    }
    return *pa;
}

void SimMachine::unicorn_map(uint64_t va, uint64_t pa, uint32_t prot) {
    uc_err e = uc_mem_map_ptr(m_uc, va, PAGE_SIZE, prot, m_memory->host(pa));
    if (e != UC_ERR_OK) {
        spdlog::debug("sim: uc_mem_map_ptr({:#x}) failed: {}", va, uc_strerror(e));
        return;
    }
    m_mapped[va] = MappedPage{pa, prot};
    if ((prot & UC_PROT_EXEC) != 0) {
        m_exec_alias[pa].push_back(va);
        uc_ctl_remove_cache(m_uc, va, va + PAGE_SIZE);
    }
}

void SimMachine::unicorn_unmap(uint64_t va) {
    auto it = m_mapped.find(va);
    if (it == m_mapped.end()) {
        return;
    }
    if ((it->second.prot & UC_PROT_EXEC) != 0) {
        uc_ctl_remove_cache(m_uc, va, va + PAGE_SIZE);
        auto& aliases = m_exec_alias[it->second.pa];
        aliases.erase(std::remove(aliases.begin(), aliases.end(), va), aliases.end());
    }
    uc_mem_unmap(m_uc, va, PAGE_SIZE);
    m_mapped.erase(it);
}

Result<void> SimMachine::map_page(uint64_t va, uint64_t pa, bool writable, bool executable) {
    if (!is_canonical(va) || (va & ~PAGE_MASK) != 0) {
        return make_error(Errc::InvalidArgument, "map_page: bad virtual address");
    }
    uint64_t table = m_cr3;
    for (int shift : {39, 30, 21}) {
        uint64_t entry_pa = table + ((va >> shift) & 511) * 8;
        uint64_t entry;
        std::memcpy(&entry, m_memory->host(entry_pa), 8);
        if ((entry & PTE_PRESENT) == 0) {
            auto frame = allocate_frame();
            if (!frame) {
                return tl::unexpected(frame.error());
            }
            entry = *frame | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED;
            std::memcpy(m_memory->host(entry_pa), &entry, 8);
        } else if ((entry & PTE_LARGE) != 0) {
            return make_error(Errc::InvalidArgument, "map_page: large page in the way");
        }
        table = entry & PTE_PFN_MASK;
    }
    uint64_t pte = pa | PTE_PRESENT | PTE_ACCESSED | PTE_DIRTY | PTE_GLOBAL;
    if (writable) {
        pte |= PTE_WRITE;
    }
    if (!executable) {
        pte |= PTE_NX;
    }
    std::memcpy(m_memory->host(table + ((va >> 12) & 511) * 8), &pte, 8);
    uint32_t prot = UC_PROT_READ | (writable ? UC_PROT_WRITE : 0) | (executable ? UC_PROT_EXEC : 0);
    unicorn_map(va, pa, prot);
    return {};
}

Result<uint64_t> SimMachine::map_new_pages(uint64_t va, uint64_t size, bool writable,
                                           bool executable) {
    for (uint64_t off = 0; off < size; off += PAGE_SIZE) {
        auto frame = allocate_frame();
        if (!frame) {
            return tl::unexpected(frame.error());
        }
        if (auto r = map_page(va + off, *frame, writable, executable); !r) {
            return tl::unexpected(r.error());
        }
    }
    return va;
}

Result<uint64_t> SimMachine::pool_allocate(uint64_t size, uint64_t alignment) {
    uint64_t at = align_up(m_pool_next, alignment);
    uint64_t end = at + size;
    if (end > layout::POOL_BASE + layout::POOL_SIZE) {
        return make_error(Errc::Unsupported, "SimMachine: nonpaged pool exhausted");
    }
    for (uint64_t page = at & PAGE_MASK; page < end; page += PAGE_SIZE) {
        if (m_mapped.find(page) == m_mapped.end()) {
            if (auto r = map_new_pages(page, PAGE_SIZE, true, false); !r) {
                return tl::unexpected(r.error());
            }
        }
    }
    m_pool_next = end;
    return at;
}

std::optional<uint64_t> SimMachine::translate(uint64_t va) const {
    if (!is_canonical(va) || !m_memory) {
        return std::nullopt;
    }
    uint64_t table = m_cr3;
    for (int shift : {39, 30, 21, 12}) {
        uint64_t entry = 0;
        if (m_memory->read(table + ((va >> shift) & 511) * 8,
                           {reinterpret_cast<uint8_t*>(&entry), 8}) != 8) {
            return std::nullopt;
        }
        if ((entry & PTE_PRESENT) == 0) {
            return std::nullopt;
        }
        if ((shift == 30 || shift == 21) && (entry & PTE_LARGE) != 0) {
            uint64_t mask = (1ULL << shift) - 1;
            uint64_t pa = (entry & PTE_PFN_MASK & ~mask) | (va & mask);
            return m_memory->is_ram(pa) ? std::optional<uint64_t>(pa) : std::nullopt;
        }
        table = entry & PTE_PFN_MASK;
    }
    uint64_t pa = table | (va & ~PAGE_MASK);
    return m_memory->is_ram(pa) ? std::optional<uint64_t>(pa) : std::nullopt;
}

std::optional<uint64_t> SimMachine::pte_address(uint64_t va) const {
    if (!is_canonical(va)) {
        return std::nullopt;
    }
    uint64_t table = m_cr3;
    for (int shift : {39, 30, 21}) {
        uint64_t entry = 0;
        if (m_memory->read(table + ((va >> shift) & 511) * 8,
                           {reinterpret_cast<uint8_t*>(&entry), 8}) != 8) {
            return std::nullopt;
        }
        if ((entry & PTE_PRESENT) == 0 || (entry & PTE_LARGE) != 0) {
            return std::nullopt;
        }
        table = entry & PTE_PFN_MASK;
    }
    return table + ((va >> 12) & 511) * 8;
}

void SimMachine::invalidate_code(uint64_t pa, uint64_t length) {
    for (uint64_t page = pa & PAGE_MASK; page < pa + length; page += PAGE_SIZE) {
        auto it = m_exec_alias.find(page);
        if (it == m_exec_alias.end()) {
            continue;
        }
        for (uint64_t va : it->second) {
            uc_ctl_remove_cache(m_uc, va, va + PAGE_SIZE);
        }
    }
}

size_t SimMachine::read_virtual(uint64_t va, std::span<uint8_t> out) const {
    size_t done = 0;
    while (done < out.size()) {
        uint64_t cur = va + done;
        auto pa = translate(cur);
        if (!pa) {
            break;
        }
        size_t n = std::min<size_t>(out.size() - done, PAGE_SIZE - (cur & ~PAGE_MASK));
        size_t got = m_memory->read(*pa, out.subspan(done, n));
        done += got;
        if (got != n) {
            break;
        }
    }
    return done;
}

size_t SimMachine::write_virtual(uint64_t va, std::span<const uint8_t> data) {
    size_t done = 0;
    while (done < data.size()) {
        uint64_t cur = va + done;
        auto pa = translate(cur);
        if (!pa) {
            break;
        }
        size_t n = std::min<size_t>(data.size() - done, PAGE_SIZE - (cur & ~PAGE_MASK));
        size_t put = m_memory->write(*pa, data.subspan(done, n));
        invalidate_code(*pa, put);
        done += put;
        if (put != n) {
            break;
        }
    }
    return done;
}

size_t SimMachine::read_physical(uint64_t pa, std::span<uint8_t> out) const {
    return m_memory->read(pa, out);
}

size_t SimMachine::write_physical(uint64_t pa, std::span<const uint8_t> data) {
    size_t done = m_memory->write(pa, data);
    invalidate_code(pa, done);
    return done;
}

bool SimMachine::mark_paged_out(uint64_t va) {
    uint64_t page = va & PAGE_MASK;
    auto it = m_mapped.find(page);
    auto pte_pa = pte_address(page);
    if (it == m_mapped.end() || !pte_pa) {
        return false;
    }
    uint64_t pte;
    std::memcpy(&pte, m_memory->host(*pte_pa), 8);
    if ((pte & PTE_PRESENT) == 0) {
        return false;
    }
    m_paged_out[page] = PagedOut{pte, it->second.prot};
    // A transition PTE, as NT leaves a page it trimmed to the standby list: not valid, the
    // frame kept, Transition (bit 11) set, the protection in bits 5-9 (MM_EXECUTE_READ).
    uint64_t not_present = (pte & PTE_PFN_MASK) | 0x800 | (3ull << 5);
    std::memcpy(m_memory->host(*pte_pa), &not_present, 8);
    unicorn_unmap(page);
    spdlog::debug("sim: paged out {:#x}", page);
    return true;
}

bool SimMachine::page_in(uint64_t va) {
    uint64_t page = va & PAGE_MASK;
    auto it = m_paged_out.find(page);
    auto pte_pa = pte_address(page);
    if (it == m_paged_out.end() || !pte_pa) {
        return false;
    }
    std::memcpy(m_memory->host(*pte_pa), &it->second.pte, 8);
    unicorn_map(page, it->second.pte & PTE_PFN_MASK, it->second.prot);
    m_paged_out.erase(it);
    m_page_ins++;
    spdlog::debug("sim: paged in {:#x}", page);
    return true;
}

void SimMachine::set_page_in_callback(std::function<void(uint64_t va)> callback) {
    m_page_in_callback = std::move(callback);
}

bool SimMachine::is_paged_out(uint64_t va) const {
    return m_paged_out.count(va & PAGE_MASK) != 0;
}

void SimMachine::unmap_page(uint64_t va) {
    uint64_t page = va & PAGE_MASK;
    m_paged_out.erase(page);
    if (auto pte_pa = pte_address(page)) {
        uint64_t zero = 0;
        std::memcpy(m_memory->host(*pte_pa), &zero, 8);
    }
    unicorn_unmap(page);
}

std::optional<uint64_t> SimMachine::backing_frame(uint64_t page) const {
    auto it = m_paged_out.find(page & PAGE_MASK);
    if (it != m_paged_out.end()) {
        return it->second.pte & PTE_PFN_MASK;
    }
    return translate(page & PAGE_MASK);
}

// ---------------------------------------------------------------------------------------------
// typed helpers on kernel memory
// ---------------------------------------------------------------------------------------------

void SimMachine::put_bytes(uint64_t va, std::span<const uint8_t> bytes) {
    if (write_virtual(va, bytes) != bytes.size()) {
        spdlog::debug("sim: write of {} bytes at {:#x} hit an unmapped page", bytes.size(), va);
    }
}

void SimMachine::put64(uint64_t va, uint64_t value) {
    put_bytes(va, {reinterpret_cast<const uint8_t*>(&value), 8});
}

void SimMachine::put32(uint64_t va, uint32_t value) {
    put_bytes(va, {reinterpret_cast<const uint8_t*>(&value), 4});
}

void SimMachine::put16(uint64_t va, uint16_t value) {
    put_bytes(va, {reinterpret_cast<const uint8_t*>(&value), 2});
}

void SimMachine::put8(uint64_t va, uint8_t value) {
    put_bytes(va, {&value, 1});
}

uint64_t SimMachine::get64(uint64_t va) const {
    uint64_t v = 0;
    read_virtual(va, {reinterpret_cast<uint8_t*>(&v), 8});
    return v;
}

// Writes a UNICODE_STRING at `at` whose buffer is a new pool allocation; returns `at`.
Result<uint64_t> SimMachine::make_unicode_string(uint64_t at, std::u16string_view text) {
    uint64_t bytes = text.size() * 2;
    auto buffer = pool_allocate(bytes + 2, 8);
    if (!buffer) {
        return tl::unexpected(buffer.error());
    }
    put_bytes(*buffer, {reinterpret_cast<const uint8_t*>(text.data()), bytes});
    put16(*buffer + bytes, 0);
    put16(at + 0, static_cast<uint16_t>(bytes));
    put16(at + 2, static_cast<uint16_t>(bytes + 2));
    put64(at + 8, *buffer);
    return at;
}

uint64_t SimMachine::symbol(std::string_view name) const {
    return address_of("ntoskrnl.exe", name).value_or(0);
}

std::optional<uint64_t> SimMachine::address_of(std::string_view module,
                                               std::string_view name) const {
    std::string want = to_lower(module);
    if (want == "nt" || want == "nt.exe") {
        want = "ntoskrnl.exe";
    }
    for (const auto& image : m_images) {
        std::string base = to_lower(image.info.base_name);
        std::string stem = base.substr(0, base.rfind('.'));
        if (want != base && want != stem) {
            continue;
        }
        if (auto rva = image.pe.export_rva(name)) {
            return image.info.base + *rva;
        }
        return std::nullopt;
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// images
// ---------------------------------------------------------------------------------------------

Result<void> SimMachine::load_images() {
    if (auto r = load_image("ntoskrnl.exe", layout::KERNEL_BASE); !r) {
        return r;
    }
    const uint64_t nt_base = m_images.back().info.base;
    uint64_t next = align_up(nt_base + m_images.back().info.size, 0x100000);
    for (const char* name : {"hal.dll", "kdcom.dll"}) {
        if (auto r = load_image(name, next); !r) {
            return r;
        }
        const ModuleInfo& info = m_images.back().info;
        next = align_up(info.base + info.size, 0x10000) + 0x10000;
    }
    if (auto r = load_image("kdtest.sys", layout::DRIVER_BASE); !r) {
        return r;
    }
    m_kernel_base = nt_base;
    if (m_config.page_out_pageable) {
        for (const auto& image : m_images) {
            page_out_pageable_sections(image);
        }
    }
    return {};
}

// Pageable code and data (sections named PAGE*) start out of memory, as on a running system
// whose working set was trimmed; the first access brings them in.
void SimMachine::page_out_pageable_sections(const LoadedImage& image) {
    for (const auto& section : image.pe.sections()) {
        if (section.name.rfind("PAGE", 0) != 0) {
            continue;
        }
        uint64_t start = image.info.base + section.virtual_address;
        for (uint64_t va = start; va < start + section.virtual_size; va += PAGE_SIZE) {
            mark_paged_out(va);
        }
    }
}

ImportResolver SimMachine::import_resolver() const {
    return [this](const std::string& dll, const PeImportSymbol& sym) -> std::optional<uint64_t> {
        std::string want = to_lower(dll);
        for (const auto& image : m_images) {
            if (to_lower(image.info.base_name) != want) {
                continue;
            }
            auto rva = sym.by_ordinal ? image.pe.export_rva_by_ordinal(sym.ordinal)
                                      : image.pe.export_rva(sym.name);
            if (rva) {
                return image.info.base + *rva;
            }
        }
        return std::nullopt;
    };
}

Result<void> SimMachine::load_image(const std::string& file_name, uint64_t base,
                                    std::vector<uint64_t>* reuse_frames) {
    auto path = m_config.image_dir / file_name;
    auto pe = PeImage::load_file(path);
    if (!pe) {
        return tl::unexpected(pe.error());
    }
    if (pe->machine() != IMAGE_FILE_MACHINE_AMD64) {
        return make_error(Errc::Unsupported, file_name + ": not an x64 image");
    }
    auto mapped = pe->map(base, import_resolver());
    if (!mapped) {
        return make_error(mapped.error().code, file_name + ": " + mapped.error().message);
    }
    for (uint32_t rva = 0; rva < pe->size_of_image(); rva += PAGE_SIZE) {
        // A driver loaded again gets the frames of its previous load.
        size_t index = rva / PAGE_SIZE;
        std::optional<uint64_t> frame;
        if (reuse_frames != nullptr && index < reuse_frames->size()) {
            frame = (*reuse_frames)[index];
        } else {
            auto fresh = allocate_frame();
            if (!fresh) {
                return tl::unexpected(fresh.error());
            }
            frame = *fresh;
            if (reuse_frames != nullptr) {
                reuse_frames->push_back(*fresh);
            }
        }
        std::memcpy(m_memory->host(*frame), mapped->data() + rva, PAGE_SIZE);
        uint32_t flags = pe->page_characteristics(rva);
        if (auto r = map_page(base + rva, *frame, (flags & IMAGE_SCN_MEM_WRITE) != 0,
                              (flags & IMAGE_SCN_MEM_EXECUTE) != 0);
            !r) {
            return r;
        }
    }
    ModuleInfo info;
    info.base_name = file_name;
    bool driver =
        file_name.size() > 4 && to_lower(file_name.substr(file_name.size() - 4)) == ".sys";
    info.full_name =
        std::string("\\SystemRoot\\system32\\") + (driver ? "drivers\\" : "") + file_name;
    info.file = path;
    info.base = base;
    info.size = pe->size_of_image();
    info.entry_point = base + pe->entry_point_rva();
    info.checksum = pe->checksum();
    info.time_date_stamp = pe->time_date_stamp();
    info.codeview = pe->codeview();
    spdlog::debug("sim: loaded {} at {:#x} ({:#x} bytes, {} relocations)", file_name, base,
                  info.size, pe->relocations().size());
    m_images.push_back(LoadedImage{std::move(*pe), info});
    return {};
}

// ---------------------------------------------------------------------------------------------
// kernel structures
// ---------------------------------------------------------------------------------------------

Result<void> SimMachine::build_kernel_structures() {
    m_break_with_status = symbol("RtlpBreakWithStatusInstruction");
    m_idle_loop = symbol("KiIdleLoop");
    m_system_thread_startup = symbol("PspSystemThreadStartup");
    m_ps_loaded_module_list = symbol("PsLoadedModuleList");
    m_debugger_data_list = symbol("KdpDebuggerDataListHead");
    m_kd_debugger_data_block = symbol("KdDebuggerDataBlock");
    m_sim_interrupt = symbol("KiSimInterrupt");
    m_driver_request = symbol("KiSimDriverRequest");
    m_next_timer_due = symbol("KiSimNextTimerDue");
    m_return_to_firmware = symbol("KiSimReturnToFirmware");
    for (auto [name, value] : {std::pair{"RtlpBreakWithStatusInstruction", m_break_with_status},
                               {"KiIdleLoop", m_idle_loop},
                               {"PspSystemThreadStartup", m_system_thread_startup},
                               {"PsLoadedModuleList", m_ps_loaded_module_list},
                               {"KdpDebuggerDataListHead", m_debugger_data_list},
                               {"KdDebuggerDataBlock", m_kd_debugger_data_block},
                               {"KiSystemStartup", symbol("KiSystemStartup")}}) {
        if (value == 0) {
            return make_error(Errc::NotFound, std::string("ntoskrnl.exe does not export ") + name);
        }
    }

    // KUSER_SHARED_DATA
    if (auto r = map_new_pages(layout::KUSER_SHARED_DATA, PAGE_SIZE, true, false); !r) {
        return tl::unexpected(r.error());
    }
    uint64_t ku = layout::KUSER_SHARED_DATA;
    put32(ku + SIM_KUSER_TICK_COUNT_MULTIPLIER, static_cast<uint32_t>(m_config.tick.count()) << 24);
    put16(ku + SIM_KUSER_IMAGE_NUMBER_LOW, IMAGE_FILE_MACHINE_AMD64);
    put16(ku + SIM_KUSER_IMAGE_NUMBER_HIGH, IMAGE_FILE_MACHINE_AMD64);
    std::u16string root = u"C:\\Windows";
    put_bytes(ku + SIM_KUSER_NT_SYSTEM_ROOT,
              {reinterpret_cast<const uint8_t*>(root.data()), root.size() * 2});
    put32(ku + SIM_KUSER_NT_BUILD_NUMBER, build_number());
    put32(ku + SIM_KUSER_NT_PRODUCT_TYPE, 1);
    put8(ku + SIM_KUSER_PRODUCT_TYPE_IS_VALID, 1);
    put32(ku + SIM_KUSER_NT_MAJOR_VERSION, 10);
    put32(ku + SIM_KUSER_NT_MINOR_VERSION, 0);
    put8(ku + SIM_KUSER_KD_DEBUGGER_ENABLED, 3);
    put32(ku + SIM_KUSER_ACTIVE_PROCESSOR_COUNT, m_config.cpus);
    update_kuser_time(m_boot_time);

    // Object types, System (pid 4, in PsActiveProcessHead) and Idle (pid 0, not listed):
    // SimObjects.cpp.
    if (auto r = build_system_processes(); !r) {
        return r;
    }

    if (auto r = build_processors(); !r) {
        return r;
    }
    if (auto r = build_loader_entries(); !r) {
        return r;
    }
    // User processes, more threads, the device stack and its pending IRP (SimObjects.cpp).
    if (auto r = build_workload(); !r) {
        return r;
    }

    // MmPhysicalMemoryBlock
    const auto& runs = m_memory->runs();
    auto block = pool_allocate(
        sizeof(PHYSICAL_MEMORY_DESCRIPTOR64) + runs.size() * sizeof(PHYSICAL_MEMORY_RUN64), 16);
    if (!block) {
        return tl::unexpected(block.error());
    }
    m_physical_memory_block = *block;
    put32(*block, static_cast<uint32_t>(runs.size()));
    put64(*block + 8, m_memory->total_pages());
    for (size_t i = 0; i < runs.size(); i++) {
        put64(*block + 16 + i * 16, runs[i].base / PAGE_SIZE);
        put64(*block + 16 + i * 16 + 8, runs[i].size / PAGE_SIZE);
    }
    put64(symbol("MmPhysicalMemoryBlock"), *block);
    put64(symbol("MmNumberOfPhysicalPages"), m_memory->total_pages());
    put64(symbol("MmLowestPhysicalPage"), m_memory->lowest_pfn());
    put64(symbol("MmHighestPhysicalPage"), m_memory->highest_pfn());
    put64(symbol("MmNonPagedPoolStart"), layout::POOL_BASE);
    put64(symbol("MmNonPagedPoolEnd"), layout::POOL_BASE + layout::POOL_SIZE);
    put8(symbol("KeNumberProcessors"), static_cast<uint8_t>(m_config.cpus));
    put8(symbol("KdDebuggerEnabled"), 1);
    if (auto r = build_pfn_database(); !r) {
        return r;
    }

    if (auto r = fill_debugger_data(); !r) {
        return r;
    }

    // \Driver, \Device, \ObjectTypes under nt!ObpRootDirectoryObject; the PFN entries of
    // every page mapped so far (SimDirectory.cpp).
    if (auto r = build_object_directory(); !r) {
        return r;
    }
    if (auto r = build_resources(); !r) {
        return r;
    }
    if (auto r = build_smbios_table(); !r) {
        return r;
    }
    fill_pfn_entries();

    // kdsim --bugcheck-after: kdtest's loop raises it (once per machine, not after the reboot).
    const BugCheckAfter& crash = m_config.bugcheck_after;
    if (crash.enabled && crash.code != 0 && !m_bugcheck_after_done) {
        auto code = address_of("kdtest", "KdTestBugCheckCode");
        auto time = address_of("kdtest", "KdTestBugCheckTime");
        if (!code || !time) {
            return make_error(Errc::NotFound, "kdtest.sys does not export KdTestBugCheckCode");
        }
        put64(*time, static_cast<uint64_t>(crash.after.count()) * 10000);
        put32(*code, crash.code);
    }

    // CPU registers: CPU 0 enters KiSystemStartup(LoaderBlock) on the system thread's stack,
    // the others sit in KiIdleLoop on their idle stacks.
    for (uint32_t i = 0; i < m_config.cpus; i++) {
        uint64_t thread = m_cpus[i].current_thread;
        uint64_t stack_top = get64(thread + SIM_KTHREAD_INITIAL_STACK);
        uint64_t rsp = stack_top - 0x38; // 16n+8 at entry, with home space and a 0 return
        uint64_t rip = i == 0 ? symbol("KiSystemStartup") : m_idle_loop;
        put64(rsp, 0);
        if (auto r = init_cpu_registers(i, rip, rsp, i == 0 ? m_loader_block : 0); !r) {
            return r;
        }
    }
    return {};
}

Result<void> SimMachine::build_processors() {
    // One IDT for everyone: every gate points at nt!KiUnexpectedInterrupt (the simulator
    // intercepts interrupts itself; the table is there for a debugger to look at).
    auto idt = pool_allocate(PAGE_SIZE, PAGE_SIZE);
    if (!idt) {
        return tl::unexpected(idt.error());
    }
    m_idt = *idt;
    uint64_t handler = symbol("KiUnexpectedInterrupt");
    for (uint64_t v = 0; v < 256; v++) {
        uint64_t low = (handler & 0xFFFF) | (uint64_t{layout::KGDT64_R0_CODE} << 16) |
                       (uint64_t{0x8E} << 40) | ((handler >> 16) & 0xFFFF) << 48;
        put64(m_idt + v * 16, low);
        put64(m_idt + v * 16 + 8, handler >> 32);
    }

    // The thread that runs the boot and then kdtest's system thread (CPU 0).
    auto make_thread = [this](uint64_t stack_slot, uint64_t process, uint32_t cpu, uint64_t tid,
                              uint8_t state) -> Result<uint64_t> {
        ThreadSpec spec;
        spec.process = process;
        spec.tid = tid;
        spec.cpu = cpu;
        spec.state = state;
        spec.stack_slot = stack_slot;
        spec.priority = process == m_idle_process ? 0 : 13;
        spec.start_address = m_system_thread_startup;
        return create_thread(spec);
    };
    auto system_thread =
        make_thread(layout::MAX_CPUS, m_system_process, 0, 8, THREAD_STATE_RUNNING);
    if (!system_thread) {
        return tl::unexpected(system_thread.error());
    }
    m_system_thread = *system_thread;

    uint64_t processor_block = symbol("KiProcessorBlock");
    m_cpus.resize(m_config.cpus);
    for (uint32_t i = 0; i < m_config.cpus; i++) {
        CpuState& cpu = m_cpus[i];
        uint8_t idle_state = i == 0 ? THREAD_STATE_READY : THREAD_STATE_RUNNING;
        auto idle = make_thread(i, m_idle_process, i, 0, idle_state);
        if (!idle) {
            return tl::unexpected(idle.error());
        }
        cpu.idle_thread = *idle;
        cpu.current_thread = i == 0 ? m_system_thread : cpu.idle_thread;

        // GDT (0x58 bytes) and TSS (0x68 bytes) share a page per processor.
        auto gdt = pool_allocate(PAGE_SIZE, PAGE_SIZE);
        if (!gdt) {
            return tl::unexpected(gdt.error());
        }
        cpu.gdt = *gdt;
        cpu.tss = *gdt + 0x100;
        put64(cpu.gdt + layout::KGDT64_R0_CODE, segment_descriptor(0, 0, 0x9B, 0x2));
        put64(cpu.gdt + layout::KGDT64_R0_DATA, segment_descriptor(0, 0xFFFFF, 0x93, 0xC));
        put64(cpu.gdt + layout::KGDT64_R3_CMCODE, segment_descriptor(0, 0xFFFFF, 0xFB, 0xC));
        put64(cpu.gdt + layout::KGDT64_R3_DATA, segment_descriptor(0, 0xFFFFF, 0xF3, 0xC));
        put64(cpu.gdt + layout::KGDT64_R3_CODE, segment_descriptor(0, 0, 0xFB, 0x2));
        uint64_t tss = cpu.tss;
        put64(cpu.gdt + layout::KGDT64_SYS_TSS,
              segment_descriptor(static_cast<uint32_t>(tss), 0x67, 0x89, 0x0));
        put64(cpu.gdt + layout::KGDT64_SYS_TSS + 8, tss >> 32);
        put64(cpu.gdt + layout::KGDT64_R3_CMTEB, segment_descriptor(0, 0x3C00, 0xF3, 0x4));
        put64(tss + 4, get64(cpu.current_thread + SIM_KTHREAD_INITIAL_STACK)); // Rsp0

        // KPCR with the KPRCB embedded at +0x180.
        auto pcr = pool_allocate(PAGE_SIZE, PAGE_SIZE);
        if (!pcr) {
            return tl::unexpected(pcr.error());
        }
        cpu.kpcr = *pcr;
        uint64_t prcb = cpu.kpcr + SIM_KPCR_PRCB;
        put64(cpu.kpcr + SIM_KPCR_GDT_BASE, cpu.gdt);
        put64(cpu.kpcr + SIM_KPCR_TSS_BASE, cpu.tss);
        put64(cpu.kpcr + SIM_KPCR_SELF, cpu.kpcr);
        put64(cpu.kpcr + SIM_KPCR_CURRENT_PRCB, prcb);
        put64(cpu.kpcr + SIM_KPCR_IDT_BASE, m_idt);
        put32(prcb + SIM_KPRCB_MXCSR, 0x1F80);
        put8(prcb + SIM_KPRCB_LEGACY_NUMBER, static_cast<uint8_t>(i));
        put64(prcb + SIM_KPRCB_CURRENT_THREAD, cpu.current_thread);
        put64(prcb + SIM_KPRCB_IDLE_THREAD, cpu.idle_thread);
        put32(prcb + SIM_KPRCB_NUMBER, i);
        put8(prcb + SIM_KPRCB_CPU_TYPE, 6);
        put8(prcb + SIM_KPRCB_CPU_ID, 1);
        put16(prcb + SIM_KPRCB_CPU_STEP, 0x9E0A);
        put32(prcb + SIM_KPRCB_MHZ, 3000);
        put_bytes(prcb + SIM_KPRCB_VENDOR_STRING,
                  {reinterpret_cast<const uint8_t*>("GenuineIntel"), 13});
        put64(prcb + SIM_KPRCB_CONTEXT, prcb + SIM_KPRCB_PROC_STATE_CONTEXT);
        put64(prcb + SIM_KPRCB_PCR_PAGE, *translate(cpu.kpcr) / PAGE_SIZE);
        put32(prcb + SIM_KPRCB_MAX_BREAKPOINTS, 4);
        put32(prcb + SIM_KPRCB_MAX_WATCHPOINTS, 4);
        put64(processor_block + i * 8, prcb);

        KSPECIAL_REGISTERS& s = cpu.special;
        s = kd_zero<KSPECIAL_REGISTERS>();
        s.Cr0 = CR0_VALUE;
        s.Cr3 = m_cr3;
        s.Cr4 = CR4_VALUE;
        s.KernelDr6 = DR6_INIT;
        s.KernelDr7 = DR7_INIT;
        s.Gdtr.Limit = 0x57;
        s.Gdtr.Base = cpu.gdt;
        s.Idtr.Limit = 0xFFF;
        s.Idtr.Base = m_idt;
        s.Tr = layout::KGDT64_SYS_TSS;
        s.MxCsr = 0x1F80;
        s.MsrGsBase = cpu.kpcr;
        s.MsrStar = 0x0023001000000000ULL;
        s.MsrLStar = symbol("KiSystemCall64");
        s.MsrSyscallMask = 0x4700;
        s.Xcr0 = 7;
    }
    return {};
}

Result<void> SimMachine::build_loader_entries() {
    uint64_t head = m_ps_loaded_module_list;
    uint64_t prev = head;
    for (auto& image : m_images) {
        ModuleInfo& info = image.info;
        auto entry = pool_allocate(sizeof(KLDR_DATA_TABLE_ENTRY64), 16);
        if (!entry) {
            return tl::unexpected(entry.error());
        }
        info.ldr_entry = *entry;
        fill_loader_entry(*entry, info);
        if (auto r = make_unicode_string(*entry + offsetof(KLDR_DATA_TABLE_ENTRY64, FullDllName),
                                         to_u16(info.full_name));
            !r) {
            return tl::unexpected(r.error());
        }
        if (auto r = make_unicode_string(*entry + offsetof(KLDR_DATA_TABLE_ENTRY64, BaseDllName),
                                         to_u16(info.base_name));
            !r) {
            return tl::unexpected(r.error());
        }
        // Link at the tail: prev <-> entry <-> head.
        put64(prev, *entry);
        put64(*entry + 8, prev);
        put64(*entry, head);
        put64(head + 8, *entry);
        prev = *entry;
        m_modules.push_back(info);
    }

    // The boot drivers (.sys) that KiSystemStartup initialises, with their DRIVER_OBJECTs.
    auto block = pool_allocate(sizeof(SIM_LOADER_BLOCK), 16);
    if (!block) {
        return tl::unexpected(block.error());
    }
    m_loader_block = *block;
    uint64_t count = 0;
    for (const auto& info : m_modules) {
        if (info.full_name.find("\\drivers\\") == std::string::npos ||
            count >= SIM_MAX_BOOT_DRIVERS) {
            continue;
        }
        std::string stem = info.base_name.substr(0, info.base_name.rfind('.'));
        auto driver = allocate_object(SIM_OBJ_TYPE_DRIVER, SIM_DRIVER_OBJECT_SIZE, to_u16(stem));
        auto registry = pool_allocate(16, 16);
        if (!driver || !registry) {
            return make_error(Errc::Unsupported, "SimMachine: nonpaged pool exhausted");
        }
        put16(*driver + 0, IO_TYPE_DRIVER);
        put16(*driver + 2, SIM_DRIVER_OBJECT_SIZE);
        put64(*driver + SIM_DRIVER_OBJECT_DRIVER_START, info.base);
        put32(*driver + SIM_DRIVER_OBJECT_DRIVER_SIZE, info.size);
        put64(*driver + SIM_DRIVER_OBJECT_DRIVER_SECTION, info.ldr_entry);
        put64(*driver + SIM_DRIVER_OBJECT_DRIVER_INIT, info.entry_point);
        if (auto r = make_unicode_string(*driver + SIM_DRIVER_OBJECT_DRIVER_NAME,
                                         to_u16("\\Driver\\" + stem));
            !r) {
            return tl::unexpected(r.error());
        }
        m_workload.driver_objects["\\Driver\\" + stem] = *driver;
        std::string key = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\" + stem;
        if (auto r = make_unicode_string(*registry, to_u16(key)); !r) {
            return tl::unexpected(r.error());
        }
        uint64_t slot = m_loader_block + 8 + count * sizeof(SIM_BOOT_DRIVER);
        put64(slot + offsetof(SIM_BOOT_DRIVER, DriverEntry), info.entry_point);
        put64(slot + offsetof(SIM_BOOT_DRIVER, DriverObject), *driver);
        put64(slot + offsetof(SIM_BOOT_DRIVER, RegistryPath), *registry);
        put64(slot + offsetof(SIM_BOOT_DRIVER, ImageBase), info.base);
        count++;
    }
    put64(m_loader_block, count);
    return {};
}

// The numeric fields of a KLDR_DATA_TABLE_ENTRY (the names are UNICODE_STRINGs set apart).
void SimMachine::fill_loader_entry(uint64_t entry, const ModuleInfo& info) {
    put64(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, DllBase), info.base);
    put64(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, EntryPoint), info.entry_point);
    put32(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, SizeOfImage), info.size);
    put32(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, Flags), 0x49104000);
    put16(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, LoadCount), 1);
    put32(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, CheckSum), info.checksum);
    put32(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, SizeOfImageNotRounded), info.size);
    put32(entry + offsetof(KLDR_DATA_TABLE_ENTRY64, TimeDateStamp), info.time_date_stamp);
}

// MmPfnDatabase: an MMPFN (0x30 bytes) per page frame at layout::PFN_DATABASE, mapped where
// RAM is (the pages for holes between runs stay unmapped, as on Windows). The entries are
// zero: the database is there for its address (a dump header's PfnDataBase), not its contents.
Result<void> SimMachine::build_pfn_database() {
    for (const auto& run : m_memory->runs()) {
        uint64_t first = layout::PFN_DATABASE + run.base / PAGE_SIZE * layout::MMPFN_SIZE;
        uint64_t end =
            layout::PFN_DATABASE + (run.base + run.size) / PAGE_SIZE * layout::MMPFN_SIZE;
        for (uint64_t page = first & PAGE_MASK; page < end; page += PAGE_SIZE) {
            if (m_mapped.find(page) != m_mapped.end()) {
                continue; // shared with the run before
            }
            if (auto r = map_new_pages(page, PAGE_SIZE, true, false); !r) {
                return tl::unexpected(r.error());
            }
        }
    }
    put64(symbol("MmPfnDatabase"), layout::PFN_DATABASE);
    return {};
}

Result<void> SimMachine::fill_debugger_data() {
    auto d = kd_zero<KDDEBUGGER_DATA64>();
    d.Header.List_Flink = m_debugger_data_list;
    d.Header.List_Blink = m_debugger_data_list;
    d.Header.OwnerTag = KDBG_TAG;
    d.Header.Size = sizeof(KDDEBUGGER_DATA64);
    d.KernBase = m_kernel_base;
    d.BreakpointWithStatus = m_break_with_status;
    d.PsLoadedModuleList = m_ps_loaded_module_list;
    d.PsActiveProcessHead = symbol("PsActiveProcessHead");
    d.PspCidTable = symbol("PspCidTable");
    d.KeTimeIncrement = symbol("KeTimeIncrement");
    d.KiBugcheckData = symbol("KiBugCheckData");
    d.MmPfnDatabase = symbol("MmPfnDatabase");
    d.ObpRootDirectoryObject = symbol("ObpRootDirectoryObject");
    d.ExpSystemResourcesList = symbol("ExpSystemResourcesList");
    d.MmLowestPhysicalPage = symbol("MmLowestPhysicalPage");
    d.MmHighestPhysicalPage = symbol("MmHighestPhysicalPage");
    d.MmNumberOfPhysicalPages = symbol("MmNumberOfPhysicalPages");
    d.MmNonPagedPoolStart = symbol("MmNonPagedPoolStart");
    d.MmNonPagedPoolEnd = symbol("MmNonPagedPoolEnd");
    d.MmHighestUserAddress = symbol("MmHighestUserAddress");
    d.MmSystemRangeStart = symbol("MmSystemRangeStart");
    d.MmUserProbeAddress = symbol("MmUserProbeAddress");
    d.KdPrintCircularBuffer = symbol("KdPrintDefaultCircularBuffer");
    d.KdPrintCircularBufferEnd = symbol("KdPrintDefaultCircularBuffer") + 0x1000;
    d.KdPrintWritePointer = symbol("KdPrintWritePointer");
    d.KdPrintRolloverCount = symbol("KdPrintRolloverCount");
    d.NtBuildLab = symbol("NtBuildLab");
    d.KiNormalSystemCall = symbol("KiSystemCall64");
    d.KiProcessorBlock = symbol("KiProcessorBlock");
    d.MmUnloadedDrivers = symbol("MmUnloadedDrivers");
    d.MmLastUnloadedDriver = symbol("MmLastUnloadedDriver");
    d.CmNtCSDVersion = symbol("CmNtCSDVersion");
    d.MmPhysicalMemoryBlock = symbol("MmPhysicalMemoryBlock");
    d.OffsetKThreadNextProcessor = SIM_KTHREAD_NEXT_PROCESSOR;
    d.OffsetKThreadTeb = SIM_KTHREAD_TEB;
    d.OffsetKThreadKernelStack = SIM_KTHREAD_KERNEL_STACK;
    d.OffsetKThreadInitialStack = SIM_KTHREAD_INITIAL_STACK;
    d.OffsetKThreadApcProcess = SIM_KTHREAD_APC_STATE_PROCESS;
    d.OffsetKThreadState = SIM_KTHREAD_STATE;
    d.SizeEProcess = SIM_EPROCESS_SIZE;
    d.OffsetEprocessPeb = SIM_EPROCESS_PEB;
    d.OffsetEprocessParentCID = SIM_EPROCESS_INHERITED_FROM_PID;
    d.OffsetEprocessDirectoryTableBase = SIM_EPROCESS_DIRECTORY_TABLE_BASE;
    d.SizePrcb = SIM_KPRCB_SIZE;
    d.OffsetPrcbDpcRoutine = SIM_KPRCB_DPC_ROUTINE;
    d.OffsetPrcbCurrentThread = SIM_KPRCB_CURRENT_THREAD;
    d.OffsetPrcbMhz = SIM_KPRCB_MHZ;
    d.OffsetPrcbCpuType = SIM_KPRCB_CPU_TYPE;
    d.OffsetPrcbVendorString = SIM_KPRCB_VENDOR_STRING;
    d.OffsetPrcbProcStateContext = SIM_KPRCB_PROC_STATE_CONTEXT;
    d.OffsetPrcbNumber = SIM_KPRCB_NUMBER;
    d.SizeEThread = SIM_ETHREAD_SIZE;
    d.KdPrintCircularBufferPtr = symbol("KdPrintCircularBuffer");
    d.KdPrintBufferSize = symbol("KdPrintBufferSize");
    d.KeLoaderBlock = symbol("KeLoaderBlock");
    d.SizePcr = SIM_KPCR_SIZE;
    d.OffsetPcrSelfPcr = SIM_KPCR_SELF;
    d.OffsetPcrCurrentPrcb = SIM_KPCR_CURRENT_PRCB;
    d.OffsetPcrContainedPrcb = SIM_KPCR_PRCB;
    d.OffsetPrcbPcrPage = SIM_KPRCB_PCR_PAGE;
    d.OffsetPrcbProcStateSpecialReg = SIM_KPRCB_PROC_STATE_SPECIAL_REG;
    d.GdtR0Code = layout::KGDT64_R0_CODE;
    d.GdtR0Data = layout::KGDT64_R0_DATA;
    d.GdtR0Pcr = layout::SEG_FS;
    d.GdtR3Code = layout::KGDT64_R3_CODE | 3;
    d.GdtR3Data = layout::SEG_DS;
    d.GdtR3Teb = layout::SEG_FS;
    d.GdtLdt = 0;
    d.GdtTss = layout::KGDT64_SYS_TSS;
    d.Gdt64R3CmCode = layout::KGDT64_R3_CMCODE | 3;
    d.Gdt64R3CmTeb = layout::SEG_FS;
    d.OffsetPrcbContext = SIM_KPRCB_CONTEXT;
    d.OffsetPrcbMaxBreakpoints = SIM_KPRCB_MAX_BREAKPOINTS;
    d.OffsetPrcbMaxWatchpoints = SIM_KPRCB_MAX_WATCHPOINTS;
    d.OffsetKThreadStackLimit = SIM_KTHREAD_STACK_LIMIT;
    d.OffsetKThreadStackBase = SIM_KTHREAD_STACK_BASE;
    d.OffsetKThreadQueueListEntry = SIM_KTHREAD_QUEUE_LIST_ENTRY;
    d.OffsetEThreadIrpList = SIM_ETHREAD_IRP_LIST;
    d.OffsetPrcbIdleThread = SIM_KPRCB_IDLE_THREAD;
    d.OffsetKThreadWaitReason = SIM_KTHREAD_WAIT_REASON;
    d.PteBase = layout::PTE_BASE;
    put_bytes(m_kd_debugger_data_block, {reinterpret_cast<const uint8_t*>(&d), sizeof(d)});
    put64(m_debugger_data_list, m_kd_debugger_data_block);
    put64(m_debugger_data_list + 8, m_kd_debugger_data_block);
    return {};
}

Result<void> SimMachine::init_cpu_registers(uint32_t cpu, uint64_t rip, uint64_t rsp,
                                            uint64_t rcx) {
    CpuState& state = m_cpus[cpu];
    if (uc_context_alloc(m_uc, &state.context) != UC_ERR_OK) {
        return make_error(Errc::Io, "unicorn: cannot allocate a CPU context");
    }
    uc_x86_mmr gdtr{};
    gdtr.base = state.gdt;
    gdtr.limit = 0x57;
    uc_x86_mmr idtr{};
    idtr.base = m_idt;
    idtr.limit = 0xFFF;
    bool ok = uc_reg_write(m_uc, UC_X86_REG_GDTR, &gdtr) == UC_ERR_OK &&
              uc_reg_write(m_uc, UC_X86_REG_IDTR, &idtr) == UC_ERR_OK;
    // Loading selectors in 64-bit mode reads their descriptors from the GDT above.
    for (auto [id, value] : {std::pair{UC_X86_REG_CS, uint64_t{layout::SEG_CS}},
                             {UC_X86_REG_SS, uint64_t{layout::SEG_SS}},
                             {UC_X86_REG_DS, uint64_t{layout::SEG_DS}},
                             {UC_X86_REG_ES, uint64_t{layout::SEG_DS}},
                             {UC_X86_REG_FS, uint64_t{layout::SEG_FS}},
                             {UC_X86_REG_GS, uint64_t{layout::SEG_DS}}}) {
        ok = ok && uc_reg_write(m_uc, id, &value) == UC_ERR_OK;
    }
    if (!ok) {
        return make_error(Errc::Io, "unicorn: cannot load the segment registers");
    }
    set_reg(UC_X86_REG_GS_BASE, state.kpcr);
    set_reg(UC_X86_REG_FS_BASE, 0);
    uc_x86_msr swap{static_cast<uint32_t>(MSR_KERNEL_GS_BASE), 0};
    uc_reg_write(m_uc, UC_X86_REG_MSR, &swap);
    for (int id : {UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RDX, UC_X86_REG_RSI, UC_X86_REG_RDI,
                   UC_X86_REG_RBP, UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
                   UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15}) {
        set_reg(id, 0);
    }
    uint64_t zero[2] = {0, 0};
    for (int i = 0; i < 16; i++) {
        uc_reg_write(m_uc, UC_X86_REG_XMM0 + i, zero);
    }
    set_reg(UC_X86_REG_MXCSR, 0x1F80);
    set_reg(UC_X86_REG_FPCW, 0x27F);
    set_reg(UC_X86_REG_RCX, rcx);
    set_reg(UC_X86_REG_RSP, rsp);
    set_reg(UC_X86_REG_RIP, rip);
    set_reg(UC_X86_REG_EFLAGS, 0x202);
    uc_context_save(m_uc, state.context);
    m_loaded_cpu = static_cast<int>(cpu);
    return {};
}

Result<void> SimMachine::run_boot() {
    uint64_t total = 0;
    for (;;) {
        if (m_cpus[0].halted) {
            std::this_thread::sleep_until(m_next_tick);
            process_timer(std::chrono::steady_clock::now());
        }
        m_exec.boot = true;
        RunResult r = execute(0, 200000);
        ExecStop why = m_exec.stop;
        m_exec.boot = false;
        total += m_exec.executed;
        if (why == ExecStop::BootDone) {
            break;
        }
        if (r.kind == StopKind::DebugPrint || r.kind == StopKind::LoadSymbols ||
            r.kind == StopKind::UnloadSymbols) {
            m_pending.push_back(std::move(r));
            continue;
        }
        if (r.kind != StopKind::SliceEnd && r.kind != StopKind::Halted) {
            // A stop during boot (a breakpoint in DriverEntry, a fault): leave the machine
            // there for the host.
            spdlog::debug("sim: boot stopped: {} at {:#x}", stop_kind_name(r.kind), r.pc);
            flush_all_processor_states();
            m_pending.push_back(std::move(r));
            break;
        }
        if (total > BOOT_LIMIT) {
            return make_error(Errc::Unsupported, "SimMachine: boot did not reach a system thread");
        }
    }
    spdlog::debug("sim: boot done after {} instructions, {} message(s) queued", total,
                  m_pending.size());
    return {};
}

// ---------------------------------------------------------------------------------------------
// execution
// ---------------------------------------------------------------------------------------------

uint64_t SimMachine::reg(int id) {
    uint64_t v = 0;
    uc_reg_read(m_uc, id, &v);
    return v;
}

void SimMachine::set_reg(int id, uint64_t value) {
    uc_reg_write(m_uc, id, &value);
}

void SimMachine::activate(uint32_t cpu) {
    if (m_loaded_cpu == static_cast<int>(cpu)) {
        return;
    }
    if (m_loaded_cpu >= 0) {
        uc_context_save(m_uc, m_cpus[m_loaded_cpu].context);
    }
    uc_context_restore(m_uc, m_cpus[cpu].context);
    m_loaded_cpu = static_cast<int>(cpu);
}

RunResult SimMachine::execute(uint32_t cpu, uint64_t budget) {
    activate(cpu);
    bool boot = m_exec.boot;
    m_exec = ExecState{};
    m_exec.cpu = cpu;
    m_exec.budget = budget;
    m_exec.boot = boot;
    RunResult result;
    result.kind = StopKind::SliceEnd;
    result.cpu = cpu;
    for (int attempt = 0;; attempt++) {
        m_exec.stop = ExecStop::None;
        uint64_t start = reg(UC_X86_REG_RIP);
        uc_err err = uc_emu_start(m_uc, start, 0, 0, 0);
        if (m_exec.stop == ExecStop::PageIn && attempt < 8) {
            // The guest touched a paged-out page: bring it in and restart the instruction.
            page_in(m_exec.fault_address);
            if (m_page_in_callback) {
                m_page_in_callback(m_exec.fault_address);
            }
            if (m_exec.executed > 0) {
                m_exec.executed--;
            }
            continue;
        }
        switch (m_exec.stop) {
        case ExecStop::Halt:
            set_reg(UC_X86_REG_RIP, m_exec.halt_at + 1);
            m_cpus[cpu].halted = true;
            result.kind = StopKind::SliceEnd;
            break;
        case ExecStop::Event:
            result = m_exec.event;
            break;
        case ExecStop::PageIn:
        case ExecStop::Fault: {
            int type = m_exec.fault_type;
            uint64_t access = (type == UC_MEM_WRITE_UNMAPPED || type == UC_MEM_WRITE_PROT)   ? 1
                              : (type == UC_MEM_FETCH_UNMAPPED || type == UC_MEM_FETCH_PROT) ? 8
                                                                                             : 0;
            result.kind = StopKind::Fault;
            result.exception_code = STATUS_ACCESS_VIOLATION;
            result.number_parameters = 2;
            result.exception_information = {access, m_exec.fault_address};
            break;
        }
        case ExecStop::None:
            if (err != UC_ERR_OK) {
                result.kind = StopKind::Fault;
                result.exception_code = err == UC_ERR_INSN_INVALID ? STATUS_ILLEGAL_INSTRUCTION
                                                                   : STATUS_ACCESS_VIOLATION;
                spdlog::debug("sim: cpu {} emulation error: {}", cpu, uc_strerror(err));
            }
            break;
        case ExecStop::Budget:
        case ExecStop::BootDone:
            break;
        }
        break;
    }
    result.cpu = cpu;
    uint64_t now_rip = reg(UC_X86_REG_RIP);
    if (result.kind != StopKind::Breakpoint) {
        result.pc = now_rip;
    }
    if (result.kind == StopKind::Fault || result.kind == StopKind::HardwareBreakpoint) {
        result.exception_address = now_rip;
    }
    m_total_instructions += m_exec.executed;
    return result;
}

void SimMachine::on_code(uint64_t address, uint32_t size) {
    ExecState& ex = m_exec;
    if (ex.stop != ExecStop::None) {
        uc_emu_stop(m_uc);
        return;
    }
    if (ex.executed >= ex.budget) {
        ex.stop = ExecStop::Budget;
        uc_emu_stop(m_uc);
        return;
    }
    if (ex.boot && (address == m_system_thread_startup || address == m_idle_loop)) {
        ex.stop = ExecStop::BootDone;
        uc_emu_stop(m_uc);
        return;
    }
    if (address == m_return_to_firmware && address != 0) {
        // The end of a bug check: the owner writes the "crash dump" and reboots the machine.
        ex.event = RunResult{};
        ex.event.kind = StopKind::Reboot;
        ex.stop = ExecStop::Event;
        uc_emu_stop(m_uc);
        return;
    }
    CpuState& cpu = m_cpus[ex.cpu];
    if (m_debug_registers_armed && !(ex.first && cpu.resume_flag)) {
        uint64_t dr7 = cpu.special.KernelDr7;
        for (int i = 0; i < 4; i++) {
            bool enabled = ((dr7 >> (i * 2)) & 3) != 0;
            bool execute = ((dr7 >> (16 + i * 4)) & 3) == 0;
            if (enabled && execute && dr_value(cpu.special, i) == address) {
                cpu.special.KernelDr6 = DR6_INIT | (1ULL << i);
                cpu.resume_flag = true; // as the CPU sets RF when the debugger resumes
                ex.event = RunResult{};
                ex.event.kind = StopKind::HardwareBreakpoint;
                ex.event.exception_code = STATUS_SINGLE_STEP;
                ex.event.dr6 = cpu.special.KernelDr6;
                ex.stop = ExecStop::Event;
                uc_emu_stop(m_uc);
                return;
            }
        }
    }
    ex.first = false;
    cpu.resume_flag = false; // RF covers one instruction
    if (size == 1) {
        uint8_t opcode = 0;
        uc_mem_read(m_uc, address, &opcode, 1);
        if (opcode == 0xF4) { // hlt: sleep until the next clock tick
            ex.stop = ExecStop::Halt;
            ex.halt_at = address;
            uc_emu_stop(m_uc);
            return;
        }
    }
    ex.executed++;
}

void SimMachine::on_interrupt(uint32_t number) {
    ExecState& ex = m_exec;
    uint64_t rip = reg(UC_X86_REG_RIP);
    RunResult ev;
    ev.cpu = ex.cpu;
    switch (number) {
    case 3: {
        // RIP is past the int3; NT reports (and leaves) the PC at the int3 itself.
        uint8_t bytes[2] = {0, 0};
        uc_mem_read(m_uc, rip - 2, bytes, 2);
        uint64_t pc = (bytes[1] == 0xCC) ? rip - 1 : (bytes[0] == 0xCD ? rip - 2 : rip - 1);
        set_reg(UC_X86_REG_RIP, pc);
        ev.kind = StopKind::Breakpoint;
        ev.pc = pc;
        ev.exception_code = STATUS_BREAKPOINT;
        ev.exception_address = pc;
        ev.number_parameters = 1;
        ev.exception_information = {BREAKPOINT_BREAK, 0};
        break;
    }
    case 0x2D: {
        // Debug service: step over the int3 that follows, return STATUS_SUCCESS in eax.
        uint32_t service = static_cast<uint32_t>(reg(UC_X86_REG_RAX));
        uint64_t arg1 = reg(UC_X86_REG_RCX);
        uint64_t arg2 = reg(UC_X86_REG_RDX);
        uint8_t next = 0;
        uc_mem_read(m_uc, rip, &next, 1);
        set_reg(UC_X86_REG_RIP, next == 0xCC ? rip + 1 : rip);
        set_reg(UC_X86_REG_RAX, 0);
        if (service == SIM_BREAKPOINT_PRINT) {
            uint32_t length = static_cast<uint32_t>(std::min<uint64_t>(arg2, MAX_PRINT));
            std::string text(length, '\0');
            size_t got = read_virtual(arg1, {reinterpret_cast<uint8_t*>(text.data()), length});
            text.resize(got);
            ev.kind = StopKind::DebugPrint;
            ev.text = std::move(text);
        } else if (service == SIM_BREAKPOINT_LOAD_SYMBOLS ||
                   service == SIM_BREAKPOINT_UNLOAD_SYMBOLS) {
            std::string path;
            for (uint64_t i = 0; i < 512; i++) {
                uint8_t c = 0;
                if (read_virtual(arg1 + i, {&c, 1}) != 1 || c == 0) {
                    break;
                }
                path.push_back(static_cast<char>(c));
            }
            SIM_SYMBOL_INFO info{};
            read_virtual(arg2, {reinterpret_cast<uint8_t*>(&info), sizeof(info)});
            ev.kind = service == SIM_BREAKPOINT_LOAD_SYMBOLS ? StopKind::LoadSymbols
                                                             : StopKind::UnloadSymbols;
            ev.symbols = SymbolEvent{path, info.BaseOfDll, info.SizeOfImage, info.CheckSum};
        } else {
            spdlog::debug("sim: cpu {} ignores debug service {}", ex.cpu, service);
            return; // not a stop
        }
        break;
    }
    case 1:
        ev.kind = StopKind::SingleStep;
        ev.exception_code = STATUS_SINGLE_STEP;
        ev.exception_address = rip;
        ev.dr6 = DR6_INIT | DR6_BS;
        break;
    default:
        ev.kind = StopKind::Fault;
        ev.exception_code = fault_code_for_vector(number);
        ev.exception_address = rip;
        spdlog::debug("sim: cpu {} exception vector {} at {:#x}", ex.cpu, number, rip);
        break;
    }
    ex.event = std::move(ev);
    ex.stop = ExecStop::Event;
    uc_emu_stop(m_uc);
}

bool SimMachine::on_invalid_memory(int type, uint64_t address) {
    ExecState& ex = m_exec;
    ex.fault_address = address;
    ex.fault_type = type;
    // Mapping from inside this hook breaks Unicorn 2.0.1's code-cache invalidation for the
    // new page, so page-ins happen after uc_emu_start returns and the instruction restarts.
    if (m_paged_out.count(address & PAGE_MASK) != 0) {
        ex.stop = ExecStop::PageIn;
    } else {
        ex.stop = ExecStop::Fault;
        spdlog::debug("sim: cpu {} invalid access type {} at {:#x}", ex.cpu, type, address);
    }
    return false;
}

void SimMachine::on_memory(int type, uint64_t address, int size) {
    ExecState& ex = m_exec;
    if (!m_debug_registers_armed) {
        return;
    }
    // A second access of the same instruction may match another breakpoint: its bit joins.
    bool more = ex.stop == ExecStop::Event && ex.event.kind == StopKind::HardwareBreakpoint &&
                ex.event.data_breakpoint;
    if (ex.stop != ExecStop::None && !more) {
        return;
    }
    CpuState& cpu = m_cpus[ex.cpu];
    uint64_t dr7 = cpu.special.KernelDr7;
    uint64_t hits = 0;
    for (int i = 0; i < 4; i++) {
        bool enabled = ((dr7 >> (i * 2)) & 3) != 0;
        uint64_t rw = (dr7 >> (16 + i * 4)) & 3;
        if (!enabled || (rw != 1 && rw != 3)) {
            continue;
        }
        if (rw == 1 && type != UC_MEM_WRITE) {
            continue;
        }
        // LENn also gives the alignment: the low address bits are ignored, as on the CPU.
        uint64_t length = dr_length(dr7 >> (18 + i * 4));
        uint64_t base = dr_value(cpu.special, i) & ~(length - 1);
        if (address < base + length && base < address + static_cast<uint64_t>(size)) {
            hits |= 1ULL << i;
        }
    }
    if (hits == 0) {
        return;
    }
    // A data breakpoint is a trap: the instruction completes and the stop comes before the
    // next one. Stopping from this hook would leave RIP on the accessing instruction (Unicorn
    // ends the slice in the middle of it), so the code hook of the next instruction stops.
    if (more) {
        cpu.special.KernelDr6 |= hits;
        ex.event.dr6 = cpu.special.KernelDr6;
        return;
    }
    cpu.special.KernelDr6 = DR6_INIT | hits;
    ex.event = RunResult{};
    ex.event.kind = StopKind::HardwareBreakpoint;
    ex.event.exception_code = STATUS_SINGLE_STEP;
    ex.event.dr6 = cpu.special.KernelDr6;
    ex.event.data_breakpoint = true;
    ex.stop = ExecStop::Event;
}

void SimMachine::arm_debug_registers() {
    m_debug_registers_armed = false;
    for (const auto& cpu : m_cpus) {
        if ((cpu.special.KernelDr7 & 0xFF) != 0) {
            m_debug_registers_armed = true;
        }
    }
}

void SimMachine::update_kuser_time(std::chrono::steady_clock::time_point now) {
    auto since_boot = std::chrono::duration_cast<std::chrono::nanoseconds>(now - m_boot_time);
    uint64_t interrupt_time = static_cast<uint64_t>(since_boot.count()) / 100;
    uint64_t system_time = m_boot_system_time + interrupt_time;
    auto put_time = [this](uint64_t at, uint64_t value) {
        put32(at + 8, static_cast<uint32_t>(value >> 32)); // High2Time first
        put32(at + 0, static_cast<uint32_t>(value));
        put32(at + 4, static_cast<uint32_t>(value >> 32)); // then High1Time
    };
    uint64_t ku = layout::KUSER_SHARED_DATA;
    put_time(ku + SIM_KUSER_INTERRUPT_TIME, interrupt_time);
    put_time(ku + SIM_KUSER_SYSTEM_TIME, system_time);
    put_time(ku + SIM_KUSER_TICK_COUNT, m_ticks);
    put32(ku + 0, static_cast<uint32_t>(m_ticks));
}

void SimMachine::process_timer(std::chrono::steady_clock::time_point now) {
    if (now < m_next_tick) {
        return;
    }
    auto late = now - m_next_tick;
    auto missed = static_cast<uint64_t>(late / m_config.tick);
    m_ticks += missed + 1;
    m_next_tick += m_config.tick * static_cast<int64_t>(missed + 1);
    update_kuser_time(now);
    if (m_booted) {
        service_interrupts(now);
    }
    for (auto& cpu : m_cpus) {
        cpu.halted = false; // the clock interrupt wakes every halted processor
    }
}

// ---------------------------------------------------------------------------------------------
// simulated interrupts and the driver loaded after boot
// ---------------------------------------------------------------------------------------------

// At a clock tick: move the late driver along, then interrupt the interrupt processor if it is
// halted and nt has work (a driver request, an expired timer). Processors being stepped freeze
// the rest of the machine, so nothing happens while any trace flag is set.
void SimMachine::service_interrupts(std::chrono::steady_clock::time_point now) {
    for (const auto& cpu : m_cpus) {
        if (cpu.trace) {
            return;
        }
    }
    late_driver_step(now);
    if (m_sim_interrupt == 0) {
        return;
    }
    uint32_t cpu = interrupt_cpu();
    if (!m_cpus[cpu].halted) {
        return;
    }
    bool request =
        (m_late.state == LateDriverState::Loading || m_late.state == LateDriverState::Unloading) &&
        !m_late.delivered;
    bool timer = false;
    if (m_next_timer_due != 0) {
        auto since_boot = std::chrono::duration_cast<std::chrono::nanoseconds>(now - m_boot_time);
        uint64_t interrupt_time = static_cast<uint64_t>(since_boot.count()) / 100;
        uint64_t due = get64(m_next_timer_due);
        timer = due != SIM_TIMER_NONE && interrupt_time >= due;
    }
    if (request || timer) {
        if (request) {
            m_late.delivered = true;
        }
        deliver_interrupt(cpu);
    }
}

// As an interrupt taken at the hlt: the return address (the instruction after the hlt) goes on
// the stack and the processor continues in nt!KiSimInterrupt.
void SimMachine::deliver_interrupt(uint32_t cpu) {
    activate(cpu);
    uint64_t rsp = reg(UC_X86_REG_RSP) - 8;
    uint64_t rip = reg(UC_X86_REG_RIP);
    if (write_virtual(rsp, {reinterpret_cast<const uint8_t*>(&rip), 8}) != 8) {
        spdlog::debug("sim: interrupt on cpu {}: stack at {:#x} not writable", cpu, rsp);
        return;
    }
    set_reg(UC_X86_REG_RSP, rsp);
    set_reg(UC_X86_REG_RIP, m_sim_interrupt);
    m_cpus[cpu].halted = false;
    m_cpus[cpu].resume_flag = false;
    m_interrupts++;
}

void SimMachine::late_driver_step(std::chrono::steady_clock::time_point now) {
    const LateDriverConfig& config = m_config.late_driver;
    auto operation = [this] {
        return get64(m_driver_request + offsetof(SIM_DRIVER_REQUEST, Operation));
    };
    switch (m_late.state) {
    case LateDriverState::Disabled:
        return;
    case LateDriverState::Waiting:
        if (now >= m_late.next) {
            if (auto r = late_driver_begin_load(); !r) {
                spdlog::debug("sim: cannot load {}: {}", config.file, r.error().message);
                m_late.state = LateDriverState::Disabled;
            }
        }
        return;
    case LateDriverState::Loading:
        if (operation() == SIM_DRIVER_OP_NONE) {
            m_late.state = LateDriverState::Loaded;
            m_late.loads++;
            m_late.next = now + config.unload_after;
            spdlog::debug("sim: {} loaded", config.file);
        }
        return;
    case LateDriverState::Loaded:
        if (config.unload_after.count() > 0 && now >= m_late.next) {
            uint64_t request = m_driver_request;
            put64(request + offsetof(SIM_DRIVER_REQUEST, Operation), SIM_DRIVER_OP_UNLOAD);
            m_late.delivered = false;
            m_late.state = LateDriverState::Unloading;
        }
        return;
    case LateDriverState::Unloading:
        if (operation() == SIM_DRIVER_OP_NONE) {
            late_driver_finish_unload();
            m_late.state = LateDriverState::Waiting;
            m_late.unloads++;
            m_late.next = now + config.reload_after;
            spdlog::debug("sim: {} unloaded", config.file);
        }
        return;
    }
}

// MmLoadSystemImage's part, done by the simulator: map the image (relocated, imports bound),
// build its loader entry, DRIVER_OBJECT and names, then ask nt (KiSimDriverRequest) for the
// rest: PsLoadedModuleList, DbgLoadImageSymbols, DriverEntry.
Result<void> SimMachine::late_driver_begin_load() {
    const std::string& file = m_config.late_driver.file;
    if (auto r = load_image(file, layout::LATE_DRIVER_BASE, &m_late.frames); !r) {
        return r;
    }
    LoadedImage& image = m_images.back();
    if (m_config.page_out_pageable) {
        page_out_pageable_sections(image);
    }
    ModuleInfo& info = image.info;
    std::string stem = info.base_name.substr(0, info.base_name.rfind('.'));
    if (m_late.ldr_entry == 0) {
        auto entry = pool_allocate(sizeof(KLDR_DATA_TABLE_ENTRY64), 16);
        auto driver = allocate_object(SIM_OBJ_TYPE_DRIVER, SIM_DRIVER_OBJECT_SIZE, to_u16(stem));
        auto registry = pool_allocate(16, 16);
        auto name = pool_allocate(16 + info.full_name.size() + 1, 16);
        if (!entry || !driver || !registry || !name) {
            return make_error(Errc::Unsupported, "SimMachine: nonpaged pool exhausted");
        }
        uint64_t full_name = *entry + offsetof(KLDR_DATA_TABLE_ENTRY64, FullDllName);
        uint64_t base_name = *entry + offsetof(KLDR_DATA_TABLE_ENTRY64, BaseDllName);
        std::string key = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\" + stem;
        if (auto r = make_unicode_string(full_name, to_u16(info.full_name)); !r) {
            return tl::unexpected(r.error());
        }
        if (auto r = make_unicode_string(base_name, to_u16(info.base_name)); !r) {
            return tl::unexpected(r.error());
        }
        if (auto r = make_unicode_string(*registry, to_u16(key)); !r) {
            return tl::unexpected(r.error());
        }
        if (auto r = make_unicode_string(*driver + SIM_DRIVER_OBJECT_DRIVER_NAME,
                                         to_u16("\\Driver\\" + stem));
            !r) {
            return tl::unexpected(r.error());
        }
        m_workload.driver_objects["\\Driver\\" + stem] = *driver;
        // The ANSI STRING DbgLoadImageSymbols takes, with its text right after it.
        auto length = static_cast<uint16_t>(info.full_name.size());
        put16(*name, length);
        put16(*name + 2, static_cast<uint16_t>(length + 1));
        put64(*name + 8, *name + 16);
        put_bytes(*name + 16,
                  {reinterpret_cast<const uint8_t*>(info.full_name.c_str()), length + 1u});
        m_late.ldr_entry = *entry;
        m_late.driver_object = *driver;
        m_late.registry_path = *registry;
        m_late.image_name = *name;
    }
    info.ldr_entry = m_late.ldr_entry;
    fill_loader_entry(m_late.ldr_entry, info);
    put64(m_late.ldr_entry, m_late.ldr_entry); // not linked yet: nt links it
    put64(m_late.ldr_entry + 8, m_late.ldr_entry);
    uint64_t driver = m_late.driver_object;
    put16(driver + 0, IO_TYPE_DRIVER);
    put16(driver + 2, SIM_DRIVER_OBJECT_SIZE);
    put64(driver + SIM_DRIVER_OBJECT_DRIVER_START, info.base);
    put32(driver + SIM_DRIVER_OBJECT_DRIVER_SIZE, info.size);
    put64(driver + SIM_DRIVER_OBJECT_DRIVER_SECTION, info.ldr_entry);
    put64(driver + SIM_DRIVER_OBJECT_DRIVER_INIT, info.entry_point);
    put64(driver + SIM_DRIVER_OBJECT_DRIVER_UNLOAD, 0);
    m_modules.push_back(info);

    uint64_t request = m_driver_request;
    put64(request + offsetof(SIM_DRIVER_REQUEST, LdrEntry), m_late.ldr_entry);
    put64(request + offsetof(SIM_DRIVER_REQUEST, DriverObject), driver);
    put64(request + offsetof(SIM_DRIVER_REQUEST, RegistryPath), m_late.registry_path);
    put64(request + offsetof(SIM_DRIVER_REQUEST, ImageName), m_late.image_name);
    put64(request + offsetof(SIM_DRIVER_REQUEST, Status), 0);
    put64(request + offsetof(SIM_DRIVER_REQUEST, Operation), SIM_DRIVER_OP_LOAD);
    m_late.delivered = false;
    m_late.state = LateDriverState::Loading;
    spdlog::debug("sim: loading {} at {:#x}", file, info.base);
    // The new pages are in memory now: owed breakpoints on them can go in (the page-in path).
    if (m_page_in_callback) {
        m_page_in_callback(info.base);
    }
    return {};
}

// MmUnloadSystemImage's last part: the image leaves the address space.
void SimMachine::late_driver_finish_unload() {
    for (size_t i = 0; i < m_images.size(); i++) {
        if (m_images[i].info.base != layout::LATE_DRIVER_BASE) {
            continue;
        }
        uint64_t base = m_images[i].info.base;
        for (uint64_t off = 0; off < m_images[i].info.size; off += PAGE_SIZE) {
            unmap_page(base + off);
        }
        m_images.erase(m_images.begin() + static_cast<long>(i));
        break;
    }
    m_modules.erase(std::remove_if(m_modules.begin(), m_modules.end(),
                                   [](const ModuleInfo& info) {
                                       return info.base == layout::LATE_DRIVER_BASE;
                                   }),
                    m_modules.end());
}

// ---------------------------------------------------------------------------------------------
// bug check data, physical memory snapshot
// ---------------------------------------------------------------------------------------------

std::array<uint64_t, 5> SimMachine::bugcheck_data() const {
    std::array<uint64_t, 5> data{};
    if (uint64_t at = symbol("KiBugCheckData"); at != 0) {
        read_virtual(at, {reinterpret_cast<uint8_t*>(data.data()), sizeof(data)});
    }
    return data;
}

namespace {

Result<void> io_error(const std::string& what, const std::filesystem::path& path) {
    return make_error(Errc::Io, what + " " + path.string() + ": " + std::strerror(errno));
}

// Writes `bytes` at `offset`, through short writes and EINTR.
bool pwrite_all(int fd, const uint8_t* bytes, uint64_t size, uint64_t offset) {
    while (size > 0) {
        ssize_t n =
            ::pwrite(fd, bytes, std::min<uint64_t>(size, 1ULL << 30), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        bytes += n;
        size -= static_cast<uint64_t>(n);
        offset += static_cast<uint64_t>(n);
    }
    return true;
}

// Writes `file` through `file`.tmp and a rename; `fill` writes into the descriptor.
Result<void> write_through_rename(const std::filesystem::path& file,
                                  const std::function<bool(int)>& fill) {
    std::filesystem::path tmp = file;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return io_error("cannot create", tmp);
    }
    if (!fill(fd)) {
        auto error = io_error("cannot write", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return error;
    }
    if (::close(fd) != 0) {
        auto error = io_error("cannot write", tmp);
        ::unlink(tmp.c_str());
        return error;
    }
    if (std::rename(tmp.c_str(), file.c_str()) != 0) {
        return io_error("cannot rename to", file);
    }
    return {};
}

} // namespace

Result<void> SimMachine::write_physical_snapshot(const std::filesystem::path& file) const {
    if (!m_memory) {
        return make_error(Errc::InvalidArgument, "SimMachine: no physical memory");
    }
    const auto& runs = m_memory->runs();
    std::string text;
    for (const auto& run : runs) {
        char line[64];
        std::snprintf(line, sizeof(line), "%llx %llx\n",
                      static_cast<unsigned long long>(run.base / PAGE_SIZE),
                      static_cast<unsigned long long>(run.size / PAGE_SIZE));
        text += line;
    }
    std::filesystem::path runs_file = file;
    runs_file += ".runs";
    if (auto r = write_through_rename(runs_file,
                                      [&](int fd) {
                                          return pwrite_all(
                                              fd, reinterpret_cast<const uint8_t*>(text.data()),
                                              text.size(), 0);
                                      });
        !r) {
        return r;
    }
    return write_through_rename(file, [&](int fd) {
        for (const auto& run : runs) {
            if (!pwrite_all(fd, m_memory->host(run.base), run.size, run.base)) {
                return false;
            }
        }
        return true;
    });
}

// ---------------------------------------------------------------------------------------------
// code check
// ---------------------------------------------------------------------------------------------

uint64_t fnv1a64(std::span<const uint8_t> bytes, uint64_t hash) {
    for (uint8_t b : bytes) {
        hash ^= b;
        hash *= 0x100000001B3ULL;
    }
    return hash;
}

std::vector<CodeCheck> SimMachine::check_code() const {
    std::vector<CodeCheck> checks;
    for (const auto& image : m_images) {
        CodeCheck c;
        c.module = image.info.base_name;
        c.base = image.info.base;
        c.size = image.info.size;
        c.memory_hash = fnv1a64({});
        c.file_hash = c.memory_hash;
        auto mapped = image.pe.map(image.info.base, import_resolver());
        if (!mapped) {
            c.differences = 1;
            c.first_difference = image.info.base;
            checks.push_back(c);
            continue;
        }
        for (const auto& section : image.pe.sections()) {
            if (!section.executable()) {
                continue;
            }
            uint64_t start = image.info.base + section.virtual_address;
            uint64_t end = start + section.virtual_size;
            for (uint64_t va = start; va < end;) {
                uint64_t n = std::min<uint64_t>(end - va, PAGE_SIZE - (va & ~PAGE_MASK));
                std::vector<uint8_t> memory(n, 0);
                if (auto frame = backing_frame(va)) {
                    m_memory->read(*frame + (va & ~PAGE_MASK), memory);
                }
                std::span<const uint8_t> file(mapped->data() + (va - image.info.base), n);
                c.memory_hash = fnv1a64(memory, c.memory_hash);
                c.file_hash = fnv1a64(file, c.file_hash);
                for (uint64_t i = 0; i < n; i++) {
                    if (memory[i] != file[i]) {
                        if (c.differences == 0) {
                            c.first_difference = va + i;
                            c.memory_byte = memory[i];
                            c.file_byte = file[i];
                        }
                        c.differences++;
                    }
                }
                c.code_bytes += n;
                va += n;
            }
        }
        checks.push_back(c);
    }
    return checks;
}

std::string format_code_report(const std::vector<CodeCheck>& checks) {
    std::string out = "# kdsim code check: FNV-1a 64 of each image's executable sections, "
                      "in memory and from the file\n";
    const CodeCheck* first_bad = nullptr;
    for (const auto& c : checks) {
        char line[512];
        std::snprintf(line, sizeof(line),
                      "module %s base %016llx size %08x code %llu memory %016llx file %016llx",
                      c.module.c_str(), static_cast<unsigned long long>(c.base), c.size,
                      static_cast<unsigned long long>(c.code_bytes),
                      static_cast<unsigned long long>(c.memory_hash),
                      static_cast<unsigned long long>(c.file_hash));
        out += line;
        if (c.intact()) {
            out += " intact\n";
        } else {
            std::snprintf(
                line, sizeof(line), " modified %llu byte(s), first at %016llx: %02x, file %02x\n",
                static_cast<unsigned long long>(c.differences),
                static_cast<unsigned long long>(c.first_difference), c.memory_byte, c.file_byte);
            out += line;
            if (first_bad == nullptr) {
                first_bad = &c;
            }
        }
    }
    if (first_bad == nullptr) {
        out += "code intact\n";
    } else {
        char line[128];
        std::snprintf(line, sizeof(line), "code modified at %016llx (%s)\n",
                      static_cast<unsigned long long>(first_bad->first_difference),
                      first_bad->module.c_str());
        out += line;
    }
    return out;
}

RunResult SimMachine::finish(RunResult result) {
    if (result.kind != StopKind::SliceEnd && result.kind != StopKind::Halted) {
        flush_all_processor_states();
        spdlog::debug("sim: stop {} on cpu {} at {:#x}", stop_kind_name(result.kind), result.cpu,
                      result.pc);
    }
    return result;
}

RunResult SimMachine::run(const RunBudget& budget) {
    if (!m_pending.empty()) {
        RunResult r = std::move(m_pending.front());
        m_pending.pop_front();
        return finish(std::move(r));
    }
    auto now = std::chrono::steady_clock::now();
    auto deadline = now + budget.max_wall;
    process_timer(now);
    uint32_t n = num_cpus();

    // A CPU with the trace flag runs alone, one instruction.
    for (uint32_t c = 0; c < n; c++) {
        if (!m_cpus[c].trace) {
            continue;
        }
        if (m_cpus[c].halted) {
            std::this_thread::sleep_until(std::min(m_next_tick, deadline));
            process_timer(std::chrono::steady_clock::now());
            if (m_cpus[c].halted) {
                RunResult r;
                r.kind = StopKind::Halted;
                r.cpu = c;
                return r;
            }
        }
        RunResult r = execute(c, 1);
        if (r.kind == StopKind::HardwareBreakpoint && r.data_breakpoint) {
            // The stepped instruction completed and hit a data breakpoint: one debug trap
            // with both the breakpoint's Bn and BS in Dr6.
            m_cpus[c].special.KernelDr6 |= DR6_BS;
            r.dr6 = m_cpus[c].special.KernelDr6;
        }
        if (r.kind != StopKind::SliceEnd) {
            return finish(std::move(r));
        }
        m_cpus[c].special.KernelDr6 = DR6_INIT | DR6_BS;
        r.kind = StopKind::SingleStep;
        r.exception_code = STATUS_SINGLE_STEP;
        r.exception_address = r.pc;
        r.dr6 = m_cpus[c].special.KernelDr6;
        return finish(std::move(r));
    }

    uint64_t remaining = budget.max_instructions;
    bool any_ran = false;
    uint32_t start = m_next_cpu % n;
    if (m_priority_cpu) {
        start = *m_priority_cpu;
        m_priority_cpu.reset();
    }
    for (;;) {
        bool ran = false;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t c = (start + k) % n;
            if (m_cpus[c].halted) {
                continue;
            }
            ran = true;
            any_ran = true;
            RunResult r = execute(c, std::min(remaining, QUANTUM));
            remaining -= std::min(remaining, m_exec.executed);
            if (r.kind != StopKind::SliceEnd) {
                m_next_cpu = (c + 1) % n;
                return finish(std::move(r));
            }
            if (remaining == 0) {
                m_next_cpu = (c + 1) % n;
                return finish(RunResult{});
            }
        }
        start = 0;
        now = std::chrono::steady_clock::now();
        process_timer(now);
        if (now >= deadline) {
            RunResult r;
            r.kind = any_ran ? StopKind::SliceEnd : StopKind::Halted;
            return r;
        }
        if (!ran) {
            std::this_thread::sleep_until(std::min(m_next_tick, deadline));
            process_timer(std::chrono::steady_clock::now());
        }
    }
}

void SimMachine::force_break_in(uint32_t cpu) {
    if (cpu >= num_cpus()) {
        return;
    }
    activate(cpu);
    uint64_t rsp = reg(UC_X86_REG_RSP) - 8;
    uint64_t rip = reg(UC_X86_REG_RIP);
    if (write_virtual(rsp, {reinterpret_cast<const uint8_t*>(&rip), 8}) != 8) {
        spdlog::debug("sim: break-in on cpu {}: stack at {:#x} not writable", cpu, rsp);
        return;
    }
    set_reg(UC_X86_REG_RSP, rsp);
    set_reg(UC_X86_REG_RIP, m_break_with_status);
    m_cpus[cpu].halted = false;
    m_cpus[cpu].resume_flag = false;
    m_priority_cpu = cpu;
}

void SimMachine::bugcheck(uint32_t cpu, uint32_t code, uint64_t p1, uint64_t p2, uint64_t p3,
                          uint64_t p4) {
    uint64_t function = symbol("KeBugCheckEx");
    if (cpu >= num_cpus() || function == 0) {
        return;
    }
    activate(cpu);
    // A call from the current RIP: home space for four arguments, the fifth on the stack.
    uint64_t rsp = ((reg(UC_X86_REG_RSP) - 0x40) & ~0xFULL) - 8;
    uint64_t frame[6] = {reg(UC_X86_REG_RIP), 0, 0, 0, 0, p4};
    if (write_virtual(rsp, {reinterpret_cast<const uint8_t*>(frame), sizeof(frame)}) !=
        sizeof(frame)) {
        spdlog::debug("sim: bugcheck on cpu {}: stack at {:#x} not writable", cpu, rsp);
        return;
    }
    set_reg(UC_X86_REG_RSP, rsp);
    set_reg(UC_X86_REG_RCX, code);
    set_reg(UC_X86_REG_RDX, p1);
    set_reg(UC_X86_REG_R8, p2);
    set_reg(UC_X86_REG_R9, p3);
    set_reg(UC_X86_REG_RIP, function);
    m_cpus[cpu].halted = false;
    m_cpus[cpu].trace = false;
    m_cpus[cpu].resume_flag = false;
    m_priority_cpu = cpu;
}

void SimMachine::set_trace_flag(uint32_t cpu, bool on) {
    if (cpu < num_cpus()) {
        m_cpus[cpu].trace = on;
    }
}

bool SimMachine::trace_flag(uint32_t cpu) const {
    return cpu < num_cpus() && m_cpus[cpu].trace;
}

bool SimMachine::halted(uint32_t cpu) const {
    return cpu < num_cpus() && m_cpus[cpu].halted;
}

// ---------------------------------------------------------------------------------------------
// processor state
// ---------------------------------------------------------------------------------------------

uint64_t SimMachine::rip(uint32_t cpu) {
    activate(cpu);
    return reg(UC_X86_REG_RIP);
}

void SimMachine::set_rip(uint32_t cpu, uint64_t value) {
    activate(cpu);
    set_reg(UC_X86_REG_RIP, value);
    m_cpus[cpu].resume_flag = false;
}

CONTEXT SimMachine::get_context(uint32_t cpu) {
    auto c = kd_zero<CONTEXT>();
    if (cpu >= num_cpus()) {
        return c;
    }
    activate(cpu);
    const KSPECIAL_REGISTERS& s = m_cpus[cpu].special;
    c.ContextFlags = CONTEXT_ALL;
    c.MxCsr = static_cast<uint32_t>(reg(UC_X86_REG_MXCSR));
    c.SegCs = static_cast<uint16_t>(reg(UC_X86_REG_CS));
    c.SegDs = static_cast<uint16_t>(reg(UC_X86_REG_DS));
    c.SegEs = static_cast<uint16_t>(reg(UC_X86_REG_ES));
    c.SegFs = static_cast<uint16_t>(reg(UC_X86_REG_FS));
    c.SegGs = static_cast<uint16_t>(reg(UC_X86_REG_GS));
    c.SegSs = static_cast<uint16_t>(reg(UC_X86_REG_SS));
    c.EFlags = static_cast<uint32_t>(reg(UC_X86_REG_EFLAGS));
    c.Dr0 = s.KernelDr0;
    c.Dr1 = s.KernelDr1;
    c.Dr2 = s.KernelDr2;
    c.Dr3 = s.KernelDr3;
    c.Dr6 = s.KernelDr6;
    c.Dr7 = s.KernelDr7;
    c.Rax = reg(UC_X86_REG_RAX);
    c.Rcx = reg(UC_X86_REG_RCX);
    c.Rdx = reg(UC_X86_REG_RDX);
    c.Rbx = reg(UC_X86_REG_RBX);
    c.Rsp = reg(UC_X86_REG_RSP);
    c.Rbp = reg(UC_X86_REG_RBP);
    c.Rsi = reg(UC_X86_REG_RSI);
    c.Rdi = reg(UC_X86_REG_RDI);
    c.R8 = reg(UC_X86_REG_R8);
    c.R9 = reg(UC_X86_REG_R9);
    c.R10 = reg(UC_X86_REG_R10);
    c.R11 = reg(UC_X86_REG_R11);
    c.R12 = reg(UC_X86_REG_R12);
    c.R13 = reg(UC_X86_REG_R13);
    c.R14 = reg(UC_X86_REG_R14);
    c.R15 = reg(UC_X86_REG_R15);
    c.Rip = reg(UC_X86_REG_RIP);
    c.FltSave.ControlWord = static_cast<uint16_t>(reg(UC_X86_REG_FPCW));
    c.FltSave.StatusWord = static_cast<uint16_t>(reg(UC_X86_REG_FPSW));
    uint64_t tags = reg(UC_X86_REG_FPTAG);
    uint8_t abridged = 0;
    for (int i = 0; i < 8; i++) {
        if (((tags >> (i * 2)) & 3) != 3) {
            abridged |= static_cast<uint8_t>(1u << i);
        }
    }
    c.FltSave.TagWord = abridged;
    c.FltSave.MxCsr = c.MxCsr;
    c.FltSave.MxCsr_Mask = 0xFFFF;
    for (int i = 0; i < 8; i++) {
        uint8_t st[16] = {};
        uc_reg_read(m_uc, UC_X86_REG_ST0 + i, st);
        std::memcpy(&c.FltSave.FloatRegisters[i], st, 10);
    }
    for (int i = 0; i < 16; i++) {
        uint64_t xmm[2] = {0, 0};
        uc_reg_read(m_uc, UC_X86_REG_XMM0 + i, xmm);
        c.FltSave.XmmRegisters[i].Low = xmm[0];
        c.FltSave.XmmRegisters[i].High = static_cast<int64_t>(xmm[1]);
    }
    return c;
}

void SimMachine::set_context(uint32_t cpu, const CONTEXT& c) {
    if (cpu >= num_cpus()) {
        return;
    }
    activate(cpu);
    CpuState& state = m_cpus[cpu];
    // As KeContextToKframes: each part applies only when its flag (with CONTEXT_AMD64) is set.
    auto has = [&](uint32_t flag) { return (c.ContextFlags & flag) == flag; };
    if (has(CONTEXT_CONTROL)) {
        uint64_t old_rip = reg(UC_X86_REG_RIP);
        set_reg(UC_X86_REG_RIP, c.Rip);
        set_reg(UC_X86_REG_RSP, c.Rsp);
        uint32_t eflags = c.EFlags;
        state.trace = (eflags & EFLAGS_TF) != 0 || state.trace;
        if (c.Rip != old_rip) {
            state.resume_flag = false;
        }
        if ((eflags & EFLAGS_RF) != 0) {
            state.resume_flag = true;
        }
        eflags &= ~(EFLAGS_TF | EFLAGS_RF | EFLAGS_VM);
        set_reg(UC_X86_REG_EFLAGS, eflags | EFLAGS_FIXED);
    }
    if (has(CONTEXT_INTEGER)) {
        set_reg(UC_X86_REG_RAX, c.Rax);
        set_reg(UC_X86_REG_RCX, c.Rcx);
        set_reg(UC_X86_REG_RDX, c.Rdx);
        set_reg(UC_X86_REG_RBX, c.Rbx);
        set_reg(UC_X86_REG_RBP, c.Rbp);
        set_reg(UC_X86_REG_RSI, c.Rsi);
        set_reg(UC_X86_REG_RDI, c.Rdi);
        set_reg(UC_X86_REG_R8, c.R8);
        set_reg(UC_X86_REG_R9, c.R9);
        set_reg(UC_X86_REG_R10, c.R10);
        set_reg(UC_X86_REG_R11, c.R11);
        set_reg(UC_X86_REG_R12, c.R12);
        set_reg(UC_X86_REG_R13, c.R13);
        set_reg(UC_X86_REG_R14, c.R14);
        set_reg(UC_X86_REG_R15, c.R15);
    }
    if (has(CONTEXT_FLOATING_POINT)) {
        set_reg(UC_X86_REG_MXCSR, c.MxCsr & 0xFFFF);
        set_reg(UC_X86_REG_FPCW, c.FltSave.ControlWord);
        set_reg(UC_X86_REG_FPSW, c.FltSave.StatusWord);
        for (int i = 0; i < 16; i++) {
            uint64_t xmm[2] = {c.FltSave.XmmRegisters[i].Low,
                               static_cast<uint64_t>(c.FltSave.XmmRegisters[i].High)};
            uc_reg_write(m_uc, UC_X86_REG_XMM0 + i, xmm);
        }
    }
    if (has(CONTEXT_DEBUG_REGISTERS)) {
        state.special.KernelDr0 = c.Dr0;
        state.special.KernelDr1 = c.Dr1;
        state.special.KernelDr2 = c.Dr2;
        state.special.KernelDr3 = c.Dr3;
        state.special.KernelDr6 = c.Dr6;
        state.special.KernelDr7 = c.Dr7;
        arm_debug_registers();
    }
    flush_processor_state(cpu);
}

KSPECIAL_REGISTERS SimMachine::get_special(uint32_t cpu) const {
    if (cpu >= num_cpus()) {
        return kd_zero<KSPECIAL_REGISTERS>();
    }
    return m_cpus[cpu].special;
}

void SimMachine::set_special(uint32_t cpu, const KSPECIAL_REGISTERS& special) {
    if (cpu >= num_cpus()) {
        return;
    }
    m_cpus[cpu].special = special;
    arm_debug_registers();
    flush_processor_state(cpu);
}

uint64_t SimMachine::kpcr(uint32_t cpu) const {
    return cpu < num_cpus() ? m_cpus[cpu].kpcr : 0;
}

uint64_t SimMachine::kprcb(uint32_t cpu) const {
    return cpu < num_cpus() ? m_cpus[cpu].kpcr + SIM_KPCR_PRCB : 0;
}

uint64_t SimMachine::current_thread(uint32_t cpu) const {
    return cpu < num_cpus() ? m_cpus[cpu].current_thread : 0;
}

// KPRCB.ProcessorState, as NT saves it for every processor while the debugger has them.
void SimMachine::flush_processor_state(uint32_t cpu) {
    uint64_t prcb = kprcb(cpu);
    const KSPECIAL_REGISTERS& s = m_cpus[cpu].special;
    put_bytes(prcb + SIM_KPRCB_PROC_STATE_SPECIAL_REG,
              {reinterpret_cast<const uint8_t*>(&s), sizeof(s)});
    CONTEXT c = get_context(cpu);
    put_bytes(prcb + SIM_KPRCB_PROC_STATE_CONTEXT,
              {reinterpret_cast<const uint8_t*>(&c), sizeof(c)});
}

void SimMachine::flush_all_processor_states() {
    for (uint32_t i = 0; i < num_cpus(); i++) {
        flush_processor_state(i);
    }
}

} // namespace kdcart::hw
