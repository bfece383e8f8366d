#pragma once
// SimMachine: a small simulated Windows x64 machine for testing the host side of kdcart.
//
// - Physical RAM in several runs with holes, described by MmPhysicalMemoryBlock.
// - Real 4-level page tables in that RAM (CR3 = the PML4); translate() walks them. Unicorn
//   runs with paging off and every present virtual page aliased onto the host bytes of its
//   physical page, so the CPU and the page tables always see the same memory.
// - Real PE32+ images (ntoskrnl.exe, hal.dll, kdcom.dll, kdtest.sys, built by clang-cl from
//   hw/images/) loaded, relocated and import-bound by a loader, listed in
//   PsLoadedModuleList, with KDDEBUGGER_DATA64, KPCR/KPRCB, threads and processes filled in
//   as a host finds them on Windows.
// - N virtual CPUs time-sliced on one Unicorn engine. `hlt` sleeps until the next clock tick
//   in real time, so an idle machine costs the host almost nothing.
//
// Everything is synchronous and single-threaded: the caller drives the machine with run().
#include "hw/PeImage.h"
#include "hw/PhysicalMemory.h"
#include "protocol/dbgkd_structs.h"
#include "transport/Error.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct uc_struct;
struct uc_context;

namespace kdcart::hw {

// Where things live in the simulated kernel's address space (close to real Windows x64).
namespace layout {
inline constexpr uint64_t KUSER_SHARED_DATA = 0xFFFFF78000000000ULL;
inline constexpr uint64_t KERNEL_BASE = 0xFFFFF80000600000ULL;      // ntoskrnl.exe
inline constexpr uint64_t DRIVER_BASE = 0xFFFFF88001200000ULL;      // boot drivers (kdtest.sys)
inline constexpr uint64_t LATE_DRIVER_BASE = 0xFFFFF88001400000ULL; // kdlate.sys, after boot
inline constexpr uint64_t STACK_REGION = 0xFFFFF88000400000ULL;
inline constexpr uint64_t STACK_STRIDE = 0x10000;            // one slot per stack, guard below
inline constexpr uint64_t KERNEL_STACK_SIZE = 0x6000;        // 24 KiB, like Windows x64
inline constexpr uint64_t POOL_BASE = 0xFFFFFA8000000000ULL; // nonpaged pool
inline constexpr uint64_t POOL_SIZE = 0x1000000;
inline constexpr uint64_t PFN_DATABASE = 0xFFFFFA0000000000ULL; // MmPfnDatabase (MMPFN array)
inline constexpr uint64_t MMPFN_SIZE = 0x30;
inline constexpr uint64_t PTE_BASE = 0xFFFFF68000000000ULL; // PML4 self-map
inline constexpr uint32_t SELF_MAP_INDEX = 0x1ED;
inline constexpr uint32_t MAX_CPUS = 8;

inline constexpr uint16_t KGDT64_R0_CODE = 0x10;
inline constexpr uint16_t KGDT64_R0_DATA = 0x18;
inline constexpr uint16_t KGDT64_R3_CMCODE = 0x20;
inline constexpr uint16_t KGDT64_R3_DATA = 0x28;
inline constexpr uint16_t KGDT64_R3_CODE = 0x30;
inline constexpr uint16_t KGDT64_SYS_TSS = 0x40;
inline constexpr uint16_t KGDT64_R3_CMTEB = 0x50;
inline constexpr uint16_t SEG_CS = KGDT64_R0_CODE;
inline constexpr uint16_t SEG_SS = KGDT64_R0_DATA;
inline constexpr uint16_t SEG_DS = KGDT64_R3_DATA | 3;  // 0x2b (also es, gs)
inline constexpr uint16_t SEG_FS = KGDT64_R3_CMTEB | 3; // 0x53
} // namespace layout

// The default RAM: 0x1000-0x9F000, 1 MiB-32 MiB, 48 MiB-66 MiB (about 50 MiB with holes).
std::vector<PhysicalRun> default_physical_runs();
// Where the build put the images (the KDSIM_IMAGE_DIR compile definition).
std::filesystem::path default_image_dir();

// The driver loaded after boot (kdlate.sys): loaded `load_after` after boot, unloaded
// `unload_after` after each load finished (0: never), loaded again `reload_after` after each
// unload finished. Times are the guest's interrupt time (real time since boot).
struct LateDriverConfig {
    bool enabled = true;
    std::string file = "kdlate.sys";
    std::chrono::milliseconds load_after{5000};
    std::chrono::milliseconds unload_after{20000};
    std::chrono::milliseconds reload_after{5000};
};

// A bug check on a timer (kdsim --bugcheck-after): `after` of guest interrupt time after boot,
// kdtest's KdTestLoop (CPU 0) calls KeBugCheckEx(code, ...) from kdtest!KdTestRaiseBugCheck.
// Once per machine: after the reboot that ends it, the rebooted machine does not crash again.
struct BugCheckAfter {
    bool enabled = false;
    std::chrono::milliseconds after{0};
    uint32_t code = 0;
};

struct SimConfig {
    uint32_t cpus = 1; // 1..8
    std::filesystem::path image_dir = default_image_dir();
    std::vector<PhysicalRun> memory = default_physical_runs();
    std::chrono::milliseconds tick{10}; // clock interrupt period (wakes hlt)
    LateDriverConfig late_driver;
    // Sections named PAGE* (kdtest's PAGEKD) start paged out, as pageable code does.
    bool page_out_pageable = true;
    BugCheckAfter bugcheck_after;
};

enum class LateDriverState {
    Disabled,  // not configured, or the image is missing
    Waiting,   // not loaded; the next load is due at some time
    Loading,   // mapped, nt is running its load (LoadSymbols, DriverEntry)
    Loaded,    // in PsLoadedModuleList, its timer running
    Unloading, // nt is running its unload (DriverUnload, UnloadSymbols); unmapped after
};

// One image's executable sections, in memory now against the file on disk (mapped at the
// same base, relocated and bound): what `kdsim --dump-on-exit` reports.
struct CodeCheck {
    std::string module; // "kdtest.sys"
    uint64_t base = 0;
    uint32_t size = 0;
    uint64_t code_bytes = 0;  // bytes hashed (executable sections, their virtual sizes)
    uint64_t memory_hash = 0; // FNV-1a 64 of those bytes in memory (paged-out pages too)
    uint64_t file_hash = 0;   // the same from the file
    uint64_t differences = 0; // bytes that differ
    uint64_t first_difference = 0;
    uint8_t memory_byte = 0; // at first_difference
    uint8_t file_byte = 0;
    bool intact() const { return differences == 0 && memory_hash == file_hash; }
};

// A text report of the checks: a line per module and a final "code intact" or
// "code modified at ADDR" line (see hw/README.md).
std::string format_code_report(const std::vector<CodeCheck>& checks);
uint64_t fnv1a64(std::span<const uint8_t> bytes, uint64_t hash = 0xCBF29CE484222325ULL);

enum class StopKind {
    SliceEnd,           // the budget ran out; nothing to report
    Breakpoint,         // int3 executed; pc = the int3, RIP left on it
    DebugPrint,         // DbgPrint (int 0x2d, eax=1); RIP is already past the int3
    LoadSymbols,        // int 0x2d, eax=3
    UnloadSymbols,      // int 0x2d, eax=4
    SingleStep,         // trace flag: one instruction done
    HardwareBreakpoint, // a KernelDr0-3 / KernelDr7 breakpoint hit (dr6 says which)
    Fault,              // an exception the kernel would bugcheck on (access violation, #UD...)
    Reboot,             // a bug check ran to its end (nt!KiSimReturnToFirmware): the owner
                        // "writes the crash dump" and reboots the machine (reboot())
    Halted,             // every CPU slept in hlt for the whole slice
};

const char* stop_kind_name(StopKind kind);

struct SymbolEvent {
    std::string path;
    uint64_t base = 0;
    uint32_t size = 0;
    uint32_t checksum = 0;
};

struct RunResult {
    StopKind kind = StopKind::SliceEnd;
    uint32_t cpu = 0;
    uint64_t pc = 0;     // the CPU's RIP now (for Breakpoint: the int3's address)
    std::string text;    // DebugPrint
    SymbolEvent symbols; // Load/UnloadSymbols
    // What NT would put in the EXCEPTION_RECORD (Breakpoint, SingleStep, HardwareBreakpoint,
    // Fault): code, address, parameters.
    uint32_t exception_code = 0;
    uint64_t exception_address = 0;
    uint32_t number_parameters = 0;
    std::array<uint64_t, 2> exception_information{};
    uint64_t dr6 = 0;             // SingleStep / HardwareBreakpoint: the Dr6 the CPU would show
    bool data_breakpoint = false; // HardwareBreakpoint: a data (trap) one, not an execute one
};

struct RunBudget {
    uint64_t max_instructions = 20000;
    std::chrono::microseconds max_wall{5000};
};

struct ModuleInfo {
    std::string base_name;      // "ntoskrnl.exe"
    std::string full_name;      // "\SystemRoot\system32\ntoskrnl.exe"
    std::filesystem::path file; // the image on the host (its PDB sits next to it)
    uint64_t base = 0;
    uint32_t size = 0;
    uint64_t entry_point = 0;
    uint32_t checksum = 0;
    uint32_t time_date_stamp = 0;
    uint64_t ldr_entry = 0; // the KLDR_DATA_TABLE_ENTRY in kernel memory
    std::optional<PeCodeView> codeview;
};

// What kdsim's kernel holds besides the boot structures, for tests to check a debugger's
// output against (hw/SimObjects.cpp builds it; the layouts are in images/sim_abi.h).
struct SimThread {
    uint64_t ethread = 0;
    uint64_t tid = 0;
    uint8_t state = 0;       // KTHREAD_STATE: 1 Ready, 2 Running, 5 Waiting
    uint8_t wait_reason = 0; // KWAIT_REASON (Waiting only)
    uint8_t wait_mode = 0;   // 0 KernelMode, 1 UserMode
    bool alertable = false;
    uint64_t wait_object = 0; // what it waits on (0 when not waiting)
    uint64_t teb = 0;
};
struct SimProcess {
    uint64_t eprocess = 0;
    uint64_t pid = 0;
    uint64_t parent_pid = 0;
    std::string image; // ImageFileName
    uint64_t directory_table_base = 0;
    uint64_t peb = 0; // user address (in this process's address space), 0 for System/Idle
    std::optional<uint32_t> session;
    uint32_t handle_count = 0;
    std::vector<SimThread> threads;
};
struct SimDevice {
    uint64_t device_object = 0;
    uint64_t driver_object = 0;
    std::string name;         // "KdTest0" (in \Device)
    uint64_t attached_to = 0; // the device below it in the stack (0 at the bottom)
};
struct SimWorkload {
    std::vector<SimProcess> processes; // System first, then the user processes; Idle last
    std::vector<SimDevice> devices;    // bottom of the stack first
    uint64_t pending_irp = 0;          // queued at the top device, its thread waiting on it
    uint64_t pending_irp_thread = 0;
    std::map<std::string, uint64_t> driver_objects; // "\Driver\kdtest" -> DRIVER_OBJECT
    // Object directories by path ("\", "\Driver", "\Device", "\ObjectTypes") and what each
    // holds by name (SimDirectory.cpp).
    std::map<std::string, uint64_t> directories;
    std::map<std::string, std::map<std::string, uint64_t>> directory_entries;
    uint64_t pfn_entries_filled = 0; // MMPFN entries filled from the boot page tables
    uint64_t resource_owner_thread = 0; // owns nt!PiEngineLock and nt!IopDeviceTreeLock
    uint64_t smbios_table = 0;          // physical address (SimResources.cpp)
};

class SimMachine {
  public:
    // Builds and boots the machine: loads the images, builds the kernel structures and runs
    // CPU 0 through the drivers' DriverEntry until the first system thread starts (or the
    // kernel goes idle). Output from the boot (DbgPrint) is returned by the first run() calls.
    [[nodiscard]] static Result<std::unique_ptr<SimMachine>> create(const SimConfig& config);
    ~SimMachine();
    SimMachine(const SimMachine&) = delete;
    SimMachine& operator=(const SimMachine&) = delete;

    // Rebuilds the machine as at power-on (same configuration).
    [[nodiscard]] Result<void> reboot();

    // Runs the CPUs for at most one slice and says why it stopped. CPUs whose trace flag is
    // set run exactly one instruction (the others stay frozen) and report SingleStep.
    RunResult run(const RunBudget& budget = {});
    // What NT does for a debugger break-in from the clock interrupt: the CPU "calls"
    // RtlpBreakWithStatusInstruction (return address pushed), so the next run() reports a
    // Breakpoint at that int3. Rip += 1 then continues into its `ret`.
    void force_break_in(uint32_t cpu);
    // The trace flag stays set until cleared.
    void set_trace_flag(uint32_t cpu, bool on);
    bool trace_flag(uint32_t cpu) const;
    bool halted(uint32_t cpu) const;

    // Memory, as the kernel debugger sees it (write access ignores page protection).
    // Virtual accesses walk the page tables page by page and stop at the first page that is
    // not present; physical accesses stop at a hole. They return the bytes done.
    size_t read_virtual(uint64_t va, std::span<uint8_t> out) const;
    size_t write_virtual(uint64_t va, std::span<const uint8_t> data);
    size_t read_physical(uint64_t pa, std::span<uint8_t> out) const;
    size_t write_physical(uint64_t pa, std::span<const uint8_t> data);
    std::optional<uint64_t> translate(uint64_t va) const;
    // Takes a mapped kernel page out of the page tables and out of the CPU's view, as if
    // paged out; the guest touching it pages it back in (as MmAccessFault would).
    bool mark_paged_out(uint64_t va);
    bool page_in(uint64_t va);
    bool is_paged_out(uint64_t va) const;
    uint64_t page_in_count() const { return m_page_ins; }
    // Removes a page from the page tables and the CPU's view for good (an unloaded image).
    void unmap_page(uint64_t va);
    // Called right after the guest's access paged a page back in, before the faulting
    // instruction restarts (where NT calls KdSetOwedBreakpoints).
    void set_page_in_callback(std::function<void(uint64_t va)> callback);

    // Processors.
    uint32_t num_cpus() const { return static_cast<uint32_t>(m_cpus.size()); }
    protocol::CONTEXT get_context(uint32_t cpu);
    // Applies the parts ContextFlags selects (CONTROL, INTEGER, FLOATING_POINT,
    // DEBUG_REGISTERS; SEGMENTS are kept as they are). EFlags.TF sets the trace flag.
    void set_context(uint32_t cpu, const protocol::CONTEXT& context);
    protocol::KSPECIAL_REGISTERS get_special(uint32_t cpu) const;
    void set_special(uint32_t cpu, const protocol::KSPECIAL_REGISTERS& special);
    uint64_t kpcr(uint32_t cpu) const;
    uint64_t kprcb(uint32_t cpu) const;
    uint64_t current_thread(uint32_t cpu) const;
    // The processes, threads, devices and pending IRP kdsim built (see SimWorkload).
    const SimWorkload& workload() const { return m_workload; }
    uint64_t rip(uint32_t cpu);
    void set_rip(uint32_t cpu, uint64_t rip);
    // Makes the CPU call nt!KeBugCheckEx(code, p1..p4) from where it is (as KD does for
    // DbgKdCauseBugCheckApi, or an unhandled kernel exception does).
    void bugcheck(uint32_t cpu, uint32_t code, uint64_t p1 = 0, uint64_t p2 = 0, uint64_t p3 = 0,
                  uint64_t p4 = 0);

    // The kernel, as GetVersion and KDDEBUGGER_DATA64 describe it.
    uint64_t kernel_base() const { return m_kernel_base; }
    uint64_t ps_loaded_module_list() const { return m_ps_loaded_module_list; }
    uint64_t debugger_data_list() const { return m_debugger_data_list; }
    uint64_t kd_debugger_data_block() const { return m_kd_debugger_data_block; }
    uint64_t directory_table_base() const { return m_cr3; }
    uint16_t build_number() const { return 19041; }
    uint64_t breakpoint_with_status() const { return m_break_with_status; }
    const std::vector<ModuleInfo>& modules() const { return m_modules; }
    // Export `symbol` of module `module` ("kdtest.sys", "kdtest", "nt" or "ntoskrnl.exe").
    std::optional<uint64_t> address_of(std::string_view module, std::string_view symbol) const;
    const std::vector<PhysicalRun>& physical_runs() const { return m_memory->runs(); }
    const SimConfig& config() const { return m_config; }
    uint64_t instructions_executed() const { return m_total_instructions; }
    uint64_t ticks() const { return m_ticks; }

    // Simulated interrupts (timers, driver loads) go to this processor when it is halted.
    uint32_t interrupt_cpu() const { return num_cpus() - 1; }
    uint64_t interrupts_delivered() const { return m_interrupts; }
    // The driver loaded after boot.
    LateDriverState late_driver_state() const { return m_late.state; }
    uint64_t late_driver_loads() const { return m_late.loads; }     // loads completed
    uint64_t late_driver_unloads() const { return m_late.unloads; } // unloads completed
    // Each image's executable sections in memory against its file (see CodeCheck).
    std::vector<CodeCheck> check_code() const;
    // nt!KiBugCheckData: the bug check code and its four parameters (all 0 before one).
    std::array<uint64_t, 5> bugcheck_data() const;
    // The value of nt!MmPfnDatabase.
    uint64_t pfn_database() const { return layout::PFN_DATABASE; }
    // Writes all of physical memory to `file` as a sparse raw image (file offset = physical
    // address, holes left as holes) and `file`.runs ("BASEPAGE PAGECOUNT" in hex, a line per
    // RAM run), each through a .tmp file and a rename; the runs file is in place first.
    [[nodiscard]] Result<void> write_physical_snapshot(const std::filesystem::path& file) const;

  private:
    struct CpuState {
        uc_context* context = nullptr;
        protocol::KSPECIAL_REGISTERS special{};
        uint64_t kpcr = 0;
        uint64_t idle_thread = 0;
        uint64_t current_thread = 0;
        uint64_t gdt = 0;
        uint64_t tss = 0;
        bool halted = false;
        bool trace = false;
        bool resume_flag = false; // EFLAGS.RF: skip execute breakpoints for one instruction
    };
    struct MappedPage {
        uint64_t pa = 0;
        uint32_t prot = 0; // UC_PROT_*
    };
    struct PagedOut {
        uint64_t pte = 0;
        uint32_t prot = 0;
    };
    enum class ExecStop { None, Budget, Halt, Event, BootDone, PageIn, Fault };
    struct ExecState {
        uint32_t cpu = 0;
        uint64_t budget = 0;
        uint64_t executed = 0;
        bool first = true;
        ExecStop stop = ExecStop::None;
        uint64_t halt_at = 0;
        RunResult event;
        uint64_t fault_address = 0;
        int fault_type = 0;
        bool boot = false;
    };
    struct LoadedImage {
        PeImage pe;
        ModuleInfo info;
    };
    struct LateDriver {
        LateDriverState state = LateDriverState::Disabled;
        std::chrono::steady_clock::time_point next{};
        std::vector<uint64_t> frames; // reused by every load
        uint64_t ldr_entry = 0;
        uint64_t driver_object = 0;
        uint64_t registry_path = 0;
        uint64_t image_name = 0; // ANSI STRING
        bool delivered = false;  // the current request has had its interrupt
        uint64_t loads = 0;
        uint64_t unloads = 0;
    };

    explicit SimMachine(SimConfig config);
    Result<void> boot();
    void teardown();

    // page tables and mappings
    Result<uint64_t> allocate_frame();
    Result<void> map_page(uint64_t va, uint64_t pa, bool writable, bool executable);
    Result<uint64_t> map_new_pages(uint64_t va, uint64_t size, bool writable, bool executable);
    Result<uint64_t> pool_allocate(uint64_t size, uint64_t alignment = 16);
    std::optional<uint64_t> pte_address(uint64_t va) const; // physical address of the PTE
    void invalidate_code(uint64_t pa, uint64_t length);
    void unicorn_map(uint64_t va, uint64_t pa, uint32_t prot);
    void unicorn_unmap(uint64_t va);

    // boot steps
    Result<void> load_images();
    Result<void> load_image(const std::string& file_name, uint64_t base,
                            std::vector<uint64_t>* reuse_frames = nullptr);
    ImportResolver import_resolver() const;
    void page_out_pageable_sections(const LoadedImage& image);
    void fill_loader_entry(uint64_t entry, const ModuleInfo& info);
    Result<void> build_kernel_structures();
    Result<void> build_processors();
    // objects, processes and threads (SimObjects.cpp)
    struct ThreadSpec {
        uint64_t process = 0;
        uint64_t tid = 0;
        uint32_t cpu = 0;
        uint8_t state = 0;
        uint64_t stack_slot = 0;
        uint8_t wait_reason = 0;
        uint8_t wait_mode = 0;
        bool alertable = false;
        uint64_t wait_object = 0; // a dispatcher object (0: not waiting)
        uint64_t teb = 0;
        int8_t priority = 8;
        uint64_t start_address = 0;
    };
    struct ProcessSpec {
        uint64_t pid = 0;
        uint64_t parent_pid = 0;
        std::string image;
        std::optional<uint32_t> session;
        uint32_t handle_count = 0;
        bool user = false; // its own address space and a PEB
        std::u16string image_path;
        std::u16string command_line;
        uint64_t create_delay_100ns = 0; // after boot
        bool listed = true;              // in PsActiveProcessHead (Idle is not)
    };
    Result<uint64_t> allocate_object(uint8_t type_index, uint64_t body_size,
                                     std::u16string_view name = {});
    Result<uint64_t> create_process(const ProcessSpec& spec);
    Result<uint64_t> create_thread(const ThreadSpec& spec);
    Result<uint64_t> create_dispatcher_object(uint8_t type_index, uint8_t dispatcher_type,
                                              uint64_t size);
    Result<uint64_t> create_address_space();
    Result<void> map_user_page(uint64_t pml4, uint64_t va, uint64_t pa);
    Result<void> build_peb(uint64_t pml4, uint64_t eprocess, const ProcessSpec& spec,
                           uint64_t peb_va);
    Result<void> build_object_types();
    Result<void> build_system_processes();
    Result<void> build_workload();
    Result<void> build_device_stack();
    // The object directories and the PFN entries of mapped pages (SimDirectory.cpp).
    Result<void> build_object_directory();
    void fill_pfn_entries();
    // Executive resources and the SMBIOS table (SimResources.cpp).
    Result<void> build_resources();
    Result<void> build_smbios_table();
    SimProcess* workload_process(uint64_t eprocess);
    Result<void> build_loader_entries();
    Result<void> build_pfn_database();
    Result<void> fill_debugger_data();
    Result<void> init_cpu_registers(uint32_t cpu, uint64_t rip, uint64_t rsp, uint64_t rcx);
    Result<void> run_boot();
    uint64_t symbol(std::string_view name) const;               // nt export (0 if missing)
    std::optional<uint64_t> backing_frame(uint64_t page) const; // present or paged out

    // simulated interrupts and the late driver
    void service_interrupts(std::chrono::steady_clock::time_point now);
    void deliver_interrupt(uint32_t cpu);
    void late_driver_step(std::chrono::steady_clock::time_point now);
    Result<void> late_driver_begin_load();
    void late_driver_finish_unload();

    // typed helpers on kernel virtual memory (boot-time construction)
    void put64(uint64_t va, uint64_t value);
    void put32(uint64_t va, uint32_t value);
    void put16(uint64_t va, uint16_t value);
    void put8(uint64_t va, uint8_t value);
    void put_bytes(uint64_t va, std::span<const uint8_t> bytes);
    uint64_t get64(uint64_t va) const;
    Result<uint64_t> make_unicode_string(uint64_t at, std::u16string_view text);

    // execution
    void activate(uint32_t cpu);
    RunResult execute(uint32_t cpu, uint64_t budget);
    void process_timer(std::chrono::steady_clock::time_point now);
    void update_kuser_time(std::chrono::steady_clock::time_point now);
    void flush_processor_state(uint32_t cpu);
    void flush_all_processor_states();
    RunResult finish(RunResult result);
    uint64_t reg(int id);
    void set_reg(int id, uint64_t value);
    void on_code(uint64_t address, uint32_t size);
    void on_interrupt(uint32_t number);
    bool on_invalid_memory(int type, uint64_t address);
    void on_memory(int type, uint64_t address, int size);
    void arm_debug_registers();

    friend struct SimMachineHooks;

    SimConfig m_config;
    std::optional<PhysicalMemory> m_memory;
    uc_struct* m_uc = nullptr;
    uint64_t m_cr3 = 0;
    std::map<uint64_t, MappedPage> m_mapped;                          // va page -> mapping
    std::unordered_map<uint64_t, std::vector<uint64_t>> m_exec_alias; // pa page -> exec va pages
    std::map<uint64_t, PagedOut> m_paged_out;
    uint64_t m_page_ins = 0;
    std::function<void(uint64_t)> m_page_in_callback;
    uint64_t m_pool_next = 0;

    std::vector<LoadedImage> m_images;
    std::vector<ModuleInfo> m_modules;
    std::vector<CpuState> m_cpus;
    int m_loaded_cpu = -1;
    ExecState m_exec;
    std::deque<RunResult> m_pending;
    uint32_t m_next_cpu = 0;
    std::optional<uint32_t> m_priority_cpu;

    uint64_t m_kernel_base = 0;
    uint64_t m_ps_loaded_module_list = 0;
    uint64_t m_debugger_data_list = 0;
    uint64_t m_kd_debugger_data_block = 0;
    uint64_t m_break_with_status = 0;
    uint64_t m_idle_loop = 0;
    uint64_t m_system_thread_startup = 0;
    uint64_t m_system_process = 0;
    uint64_t m_idle_process = 0;
    uint64_t m_system_thread = 0;
    std::map<uint8_t, uint64_t> m_object_types;    // ObTypeIndexTable slot -> OBJECT_TYPE
    std::map<uint64_t, uint64_t> m_session_spaces; // session id -> MM_SESSION_SPACE
    SimWorkload m_workload;
    uint64_t m_loader_block = 0;
    uint64_t m_idt = 0;
    uint64_t m_physical_memory_block = 0;
    uint64_t m_return_to_firmware = 0;  // nt!KiSimReturnToFirmware
    bool m_bugcheck_after_done = false; // kept across reboots: --bugcheck-after fired

    std::chrono::steady_clock::time_point m_boot_time;
    std::chrono::steady_clock::time_point m_next_tick;
    uint64_t m_boot_system_time = 0; // 100 ns since 1601
    uint64_t m_ticks = 0;
    uint64_t m_total_instructions = 0;
    bool m_debug_registers_armed = false;

    bool m_booted = false;
    uint64_t m_sim_interrupt = 0;  // nt!KiSimInterrupt
    uint64_t m_driver_request = 0; // nt!KiSimDriverRequest
    uint64_t m_next_timer_due = 0; // nt!KiSimNextTimerDue
    uint64_t m_interrupts = 0;
    LateDriver m_late;
};

} // namespace kdcart::hw
