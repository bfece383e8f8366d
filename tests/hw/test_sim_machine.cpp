// Tests of the simulated Windows x64 machine (hw/SimMachine) and its PE images.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "hw/PeImage.h"
#include "hw/SimMachine.h"
#include "hw/images/sim_abi.h"
#include "protocol/dbgkd_structs.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace kdcart;
using namespace kdcart::hw;
using namespace kdcart::protocol;
using namespace std::chrono_literals;

namespace {

enum class BootPrints { Keep, Drain };

// A booted machine. With Drain, the DbgPrint queued during boot (kdtest's DriverEntry) is
// taken off first, so the next run() executes code. The late driver (kdlate.sys) is off unless
// `tweak` turns it on, so that no LoadSymbols stop turns up in the middle of other tests.
std::unique_ptr<SimMachine> make_machine(uint32_t cpus = 1, BootPrints prints = BootPrints::Drain,
                                         const std::function<void(SimConfig&)>& tweak = {}) {
    SimConfig cfg;
    cfg.cpus = cpus;
    cfg.late_driver.enabled = false;
    if (tweak) {
        tweak(cfg);
    }
    auto m = SimMachine::create(cfg);
    REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
    if (prints == BootPrints::Drain) {
        RunResult r = (*m)->run();
        REQUIRE(r.kind == StopKind::DebugPrint);
        REQUIRE(r.text.rfind("kdtest: DriverEntry", 0) == 0);
    }
    return std::move(*m);
}

template <class T> T read_as(SimMachine& m, uint64_t va) {
    T v{};
    REQUIRE(m.read_virtual(va, {reinterpret_cast<uint8_t*>(&v), sizeof(T)}) == sizeof(T));
    return v;
}

template <class T> void write_as(SimMachine& m, uint64_t va, const T& v) {
    REQUIRE(m.write_virtual(va, {reinterpret_cast<const uint8_t*>(&v), sizeof(T)}) == sizeof(T));
}

std::string read_unicode(SimMachine& m, const UNICODE_STRING64& s) {
    std::vector<uint8_t> raw(s.Length);
    REQUIRE(m.read_virtual(s.Buffer, raw) == raw.size());
    std::string out;
    for (size_t i = 0; i + 1 < raw.size(); i += 2) {
        out.push_back(static_cast<char>(raw[i]));
    }
    return out;
}

std::string read_cstring(SimMachine& m, uint64_t va) {
    std::string out;
    for (;;) {
        uint8_t c = 0;
        REQUIRE(m.read_virtual(va + out.size(), {&c, 1}) == 1);
        if (c == 0) {
            return out;
        }
        out.push_back(static_cast<char>(c));
    }
}

// Runs until `accept` takes a result (returns it) or `timeout` passes (returns nullopt).
std::optional<RunResult> run_until(SimMachine& m,
                                   const std::function<bool(const RunResult&)>& accept,
                                   std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        RunResult r = m.run();
        if (accept(r)) {
            return r;
        }
    }
    return std::nullopt;
}

bool is_stop(const RunResult& r) {
    return r.kind != StopKind::SliceEnd && r.kind != StopKind::Halted &&
           r.kind != StopKind::DebugPrint;
}

// Makes CPU `cpu` call `function(args...)` with a return into nt!DbgBreakPoint, so the call's
// end shows up as a Breakpoint there. `data` is copied below the stack and its address is
// passed wherever an argument equals DATA_ARG (+ offset).
constexpr uint64_t DATA_ARG = 0xDA7A000000000000ULL;

void call_in_guest(SimMachine& m, uint32_t cpu, uint64_t function, std::vector<uint64_t> args,
                   const std::vector<uint8_t>& data = {}) {
    CONTEXT c = m.get_context(cpu);
    uint64_t data_at = ((c.Rsp - 0x800) & ~0xFULL);
    if (!data.empty()) {
        REQUIRE(m.write_virtual(data_at, data) == data.size());
    }
    for (auto& a : args) {
        if ((a & 0xFFFF000000000000ULL) == DATA_ARG) {
            a = data_at + (a & 0xFFFF);
        }
    }
    uint64_t rsp = data_at - 0x100 - 8; // 16n+8 at entry
    write_as<uint64_t>(m, rsp, *m.address_of("nt", "DbgBreakPoint"));
    for (size_t i = 4; i < args.size(); i++) {
        write_as<uint64_t>(m, rsp + 8 + i * 8, args[i]);
    }
    uint64_t* regs[] = {&c.Rcx, &c.Rdx, &c.R8, &c.R9};
    for (size_t i = 0; i < args.size() && i < 4; i++) {
        *regs[i] = args[i];
    }
    c.Rsp = rsp;
    c.Rip = function;
    c.ContextFlags = CONTEXT_CONTROL | CONTEXT_INTEGER;
    m.set_context(cpu, c);
}

} // namespace

TEST_CASE("PE images parse with relocations, exports and imports") {
    auto nt = PeImage::load_file(default_image_dir() / "ntoskrnl.exe");
    REQUIRE_MESSAGE(nt.has_value(), (nt ? std::string() : nt.error().message));
    CHECK(nt->machine() == IMAGE_FILE_MACHINE_AMD64);
    CHECK(nt->relocations().size() > 0);
    CHECK(nt->export_rva("KdDebuggerDataBlock").has_value());
    CHECK(nt->export_rva("RtlpBreakWithStatusInstruction").has_value());
    CHECK(nt->checksum() == PeImage::compute_checksum(nt->file(), nt->checksum_offset()));
    CHECK(nt->checksum() != 0);
    REQUIRE(nt->codeview().has_value());
    CHECK(nt->codeview()->pdb_name == "ntoskrnl.pdb");

    auto drv = PeImage::load_file(default_image_dir() / "kdtest.sys");
    REQUIRE(drv.has_value());
    REQUIRE(drv->imports().size() == 1);
    CHECK(drv->imports()[0].dll == "ntoskrnl.exe");
    CHECK(drv->relocations().size() >= 4); // KdTestInfo's pointers
    for (auto name :
         {"KdTestCompute", "KdTestUpdate", "KdTestCounter", "KdTestLoop", "KdTestPagedFunction",
          "KdTestPagedStartIteration", "KdTestAccess", "KdTestSpin", "KdTestIteration"}) {
        CHECK_MESSAGE(drv->export_rva(name).has_value(), name);
    }
    // KdTestPagedFunction is alone in PAGEKD, a page-aligned executable section.
    const PeSection* paged = nullptr;
    for (const auto& section : drv->sections()) {
        if (section.name == "PAGEKD") {
            paged = &section;
        }
    }
    REQUIRE(paged != nullptr);
    CHECK(paged->executable());
    CHECK(paged->virtual_address % 0x1000 == 0);
    CHECK(*drv->export_rva("KdTestPagedFunction") == paged->virtual_address);
    for (const auto& section : drv->sections()) {
        if (&section != paged) {
            CHECK((section.virtual_address + section.virtual_size <= paged->virtual_address ||
                   section.virtual_address >= paged->virtual_address + 0x1000));
        }
    }

    auto late = PeImage::load_file(default_image_dir() / "kdlate.sys");
    REQUIRE(late.has_value());
    for (auto name :
         {"DriverEntry", "KdLateWork", "KdLateHelper", "KdLateCounter", "KdLateUnload"}) {
        CHECK_MESSAGE(late->export_rva(name).has_value(), name);
    }

    // Garbage and truncation are errors, never crashes.
    std::vector<uint8_t> bytes(drv->file().begin(), drv->file().end());
    for (size_t cut : {size_t{0}, size_t{2}, size_t{0x40}, size_t{0x100}, bytes.size() / 2}) {
        std::vector<uint8_t> part(bytes.begin(), bytes.begin() + static_cast<long>(cut));
        auto r = PeImage::parse(part);
        CHECK_FALSE(r.has_value());
    }
}

TEST_CASE("images load and the module list walks like Windows") {
    auto m = make_machine();
    const auto& mods = m->modules();
    REQUIRE(mods.size() == 4);
    CHECK(mods[0].base_name == "ntoskrnl.exe");
    CHECK(mods[1].base_name == "hal.dll");
    CHECK(mods[2].base_name == "kdcom.dll");
    CHECK(mods[3].base_name == "kdtest.sys");
    CHECK(m->kernel_base() == layout::KERNEL_BASE);
    CHECK(mods[0].base == layout::KERNEL_BASE);
    CHECK(mods[3].base == layout::DRIVER_BASE);

    // Walk PsLoadedModuleList through memory, as a host does.
    uint64_t head = m->ps_loaded_module_list();
    uint64_t at = read_as<uint64_t>(*m, head);
    std::vector<std::string> names;
    while (at != head && names.size() < 10) {
        auto e = read_as<KLDR_DATA_TABLE_ENTRY64>(*m, at);
        size_t i = names.size();
        REQUIRE(i < mods.size());
        CHECK(e.DllBase == mods[i].base);
        CHECK(e.SizeOfImage == mods[i].size);
        CHECK(e.EntryPoint == mods[i].entry_point);
        CHECK(e.CheckSum == mods[i].checksum);
        CHECK(e.TimeDateStamp == mods[i].time_date_stamp);
        CHECK(read_unicode(*m, e.FullDllName) == mods[i].full_name);
        names.push_back(read_unicode(*m, e.BaseDllName));
        // the entry's Blink points back at the previous one
        CHECK(read_as<uint64_t>(*m, e.InLoadOrderLinks.Flink + 8) == at);
        at = e.InLoadOrderLinks.Flink;
    }
    CHECK(names == std::vector<std::string>{"ntoskrnl.exe", "hal.dll", "kdcom.dll", "kdtest.sys"});
    CHECK(mods[0].full_name == "\\SystemRoot\\system32\\ntoskrnl.exe");
    CHECK(mods[3].full_name == "\\SystemRoot\\system32\\drivers\\kdtest.sys");

    // Each image in memory starts with MZ, and the loader relocated absolute pointers.
    for (const auto& mod : mods) {
        CHECK(read_as<uint16_t>(*m, mod.base) == 0x5A4D);
    }
    uint64_t info = *m->address_of("kdtest.sys", "KdTestInfo");
    CHECK(read_as<uint64_t>(*m, info + 8) == *m->address_of("kdtest", "KdTestCounter"));
    CHECK(read_as<uint64_t>(*m, info + 24) == *m->address_of("kdtest", "KdTestCompute"));
    CHECK(read_cstring(*m, read_as<uint64_t>(*m, info)) == "kdtest");
}

TEST_CASE("KDDEBUGGER_DATA64 is where GetVersion's DebuggerDataList says") {
    auto m = make_machine(2);
    uint64_t list = m->debugger_data_list();
    uint64_t block = read_as<uint64_t>(*m, list);
    CHECK(block == m->kd_debugger_data_block());
    auto d = read_as<KDDEBUGGER_DATA64>(*m, block);
    CHECK(d.Header.OwnerTag == KDBG_TAG);
    CHECK(d.Header.Size == sizeof(KDDEBUGGER_DATA64));
    CHECK(d.Header.List_Flink == list);
    CHECK(d.Header.List_Blink == list);
    CHECK(read_as<uint64_t>(*m, list + 8) == block);
    CHECK(d.KernBase == m->kernel_base());
    CHECK(d.PsLoadedModuleList == m->ps_loaded_module_list());
    CHECK(d.BreakpointWithStatus == *m->address_of("nt", "RtlpBreakWithStatusInstruction"));
    CHECK(d.BreakpointWithStatus == m->breakpoint_with_status());
    CHECK(read_cstring(*m, d.NtBuildLab).rfind("19041.", 0) == 0);
    CHECK(d.PteBase == layout::PTE_BASE);
    CHECK(d.OffsetPrcbCurrentThread == SIM_KPRCB_CURRENT_THREAD);
    CHECK(d.OffsetPcrContainedPrcb == 0x180);

    // KiProcessorBlock -> KPRCB; KPCR.Self/CurrentPrcb; KPRCB.Number/CurrentThread.
    for (uint32_t cpu = 0; cpu < 2; cpu++) {
        uint64_t prcb = read_as<uint64_t>(*m, d.KiProcessorBlock + cpu * 8);
        CHECK(prcb == m->kprcb(cpu));
        CHECK(prcb == m->kpcr(cpu) + d.OffsetPcrContainedPrcb);
        CHECK(read_as<uint64_t>(*m, m->kpcr(cpu) + d.OffsetPcrSelfPcr) == m->kpcr(cpu));
        CHECK(read_as<uint64_t>(*m, m->kpcr(cpu) + d.OffsetPcrCurrentPrcb) == prcb);
        CHECK(read_as<uint32_t>(*m, prcb + d.OffsetPrcbNumber) == cpu);
        CHECK(read_as<uint64_t>(*m, prcb + d.OffsetPrcbCurrentThread) == m->current_thread(cpu));
        uint64_t process =
            read_as<uint64_t>(*m, m->current_thread(cpu) + d.OffsetKThreadApcProcess);
        CHECK(read_as<uint64_t>(*m, process + d.OffsetEprocessDirectoryTableBase) ==
              m->directory_table_base());
        KSPECIAL_REGISTERS s = m->get_special(cpu);
        CHECK(s.Cr3 == m->directory_table_base());
        CHECK(s.MsrGsBase == m->kpcr(cpu));
    }
    CHECK(read_as<uint8_t>(*m, *m->address_of("nt", "KeNumberProcessors")) == 2);

    // PsActiveProcessHead -> System
    uint64_t head = d.PsActiveProcessHead;
    uint64_t links = read_as<uint64_t>(*m, head);
    uint64_t system = links - SIM_EPROCESS_ACTIVE_PROCESS_LINKS;
    CHECK(read_as<uint64_t>(*m, system + SIM_EPROCESS_UNIQUE_PROCESS_ID) == 4);
    CHECK(read_cstring(*m, system + SIM_EPROCESS_IMAGE_FILE_NAME) == "System");
    CHECK(read_as<uint64_t>(*m, links + 8) == head); // System is first

    // KUSER_SHARED_DATA
    CHECK(read_as<uint32_t>(*m, layout::KUSER_SHARED_DATA + 0x26C) == 10);
    CHECK(read_as<uint32_t>(*m, layout::KUSER_SHARED_DATA + 0x270) == 0);
    CHECK(read_as<uint32_t>(*m, layout::KUSER_SHARED_DATA + 0x260) == 19041);
}

TEST_CASE("physical runs match MmPhysicalMemoryBlock") {
    auto m = make_machine();
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    uint64_t descriptor = read_as<uint64_t>(*m, d.MmPhysicalMemoryBlock);
    auto header = read_as<PHYSICAL_MEMORY_DESCRIPTOR64>(*m, descriptor);
    const auto& runs = m->physical_runs();
    REQUIRE(header.NumberOfRuns == runs.size());
    CHECK(runs.size() >= 3);
    uint64_t pages = 0;
    for (size_t i = 0; i < runs.size(); i++) {
        auto run = read_as<PHYSICAL_MEMORY_RUN64>(*m, descriptor + 16 + i * 16);
        CHECK(run.BasePage * 0x1000 == runs[i].base);
        CHECK(run.PageCount * 0x1000 == runs[i].size);
        pages += run.PageCount;
        // reads inside a run succeed, reads in the hole after it stop there
        std::vector<uint8_t> buf(0x2000);
        CHECK(m->read_physical(runs[i].base, buf) == buf.size());
        uint64_t end = runs[i].base + runs[i].size;
        CHECK(m->read_physical(end - 0x1000, buf) == 0x1000);
        CHECK(m->read_physical(end, buf) == 0);
    }
    CHECK(header.NumberOfPages == pages);
    CHECK(read_as<uint64_t>(*m, d.MmNumberOfPhysicalPages) == pages);
    std::vector<uint8_t> buf(16);
    CHECK(m->read_physical(0, buf) == 0);
}

TEST_CASE("translate walks the real page tables") {
    auto m = make_machine();
    uint64_t cr3 = m->directory_table_base();
    CHECK(cr3 == m->get_special(0).Cr3);
    auto pa = m->translate(m->kernel_base());
    REQUIRE(pa.has_value());
    uint8_t mz[2] = {};
    CHECK(m->read_physical(*pa, mz) == 2);
    CHECK(mz[0] == 'M');
    CHECK(mz[1] == 'Z');
    CHECK_FALSE(m->translate(0).has_value());
    CHECK_FALSE(m->translate(0x0000800000000000ULL).has_value()); // not canonical
    CHECK_FALSE(m->translate(layout::KERNEL_BASE - 0x1000).has_value());

    // Walk by hand from CR3, reading physical memory.
    uint64_t va = *m->address_of("kdtest", "KdTestCompute");
    uint64_t table = cr3;
    uint64_t entry = 0;
    for (int shift : {39, 30, 21, 12}) {
        REQUIRE(m->read_physical(table + ((va >> shift) & 511) * 8,
                                 {reinterpret_cast<uint8_t*>(&entry), 8}) == 8);
        REQUIRE((entry & 1) != 0);
        table = entry & 0x000FFFFFFFFFF000ULL;
    }
    CHECK(table + (va & 0xFFF) == *m->translate(va));
    CHECK((entry >> 63) == 0); // code: executable
    uint64_t data_va = *m->address_of("kdtest", "KdTestCounter");
    auto data_pte_va = layout::PTE_BASE + ((data_va >> 9) & 0x7FFFFFFFF8ULL);
    uint64_t data_pte = read_as<uint64_t>(*m, data_pte_va); // through the self-map
    CHECK((data_pte & 0x000FFFFFFFFFF000ULL) == (*m->translate(data_va) & ~0xFFFULL));
    CHECK((data_pte >> 63) == 1); // data: NX
    CHECK((data_pte & 2) != 0);   // writable

    // A read across a mapped page into an unmapped one stops at the boundary.
    uint64_t last = layout::KUSER_SHARED_DATA + 0xFF0;
    std::vector<uint8_t> buf(0x20);
    CHECK(m->read_virtual(last, buf) == 0x10);
}

TEST_CASE("the CPU and the page tables see the same memory") {
    auto m = make_machine();
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    uint64_t before = read_as<uint64_t>(*m, counter);
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 600ms) {
        m->run();
    }
    uint64_t after = read_as<uint64_t>(*m, counter);
    CHECK(after > before);
    CHECK(after - before >= 3); // ~10 iterations per second of real time
    CHECK(after - before <= 20);
    CHECK(m->ticks() > 30);

    // A host write is seen by the CPU: KdTestUpdate adds 1 to what we store.
    write_as<uint64_t>(*m, counter, 1000000);
    start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 300ms) {
        m->run();
    }
    CHECK(read_as<uint64_t>(*m, counter) > 1000000);
}

TEST_CASE("DbgPrint text arrives through the debug service") {
    auto m = make_machine(1, BootPrints::Keep);
    auto first = run_until(*m, [](const RunResult& r) { return r.kind == StopKind::DebugPrint; });
    REQUIRE(first.has_value());
    CHECK(first->text ==
          "kdtest: DriverEntry \\Registry\\Machine\\System\\CurrentControlSet\\Services\\kdtest "
          "on cpu 0\n");
    auto tick = run_until(*m, [](const RunResult& r) { return r.kind == StopKind::DebugPrint; });
    REQUIRE(tick.has_value());
    CHECK(tick->text == "kdtest: tick 0\n");
    // The CPU is already past the service's int3: the next stop is not at that PC.
    uint8_t before = 0;
    CHECK(m->read_virtual(tick->pc - 1, {&before, 1}) == 1);
    CHECK(before == 0xCC);
    auto next = run_until(
        *m, [](const RunResult& r) { return r.kind == StopKind::DebugPrint; }, 4000ms);
    REQUIRE(next.has_value());
    CHECK(next->text == "kdtest: tick 1\n");

    // The text also lands in the kernel's circular print buffer.
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    std::string log = read_cstring(*m, d.KdPrintCircularBuffer);
    CHECK(log.find("kdtest: tick 1\n") != std::string::npos);
}

TEST_CASE("DbgPrint's formatter") {
    auto m = make_machine();
    uint64_t dbgprint = *m->address_of("nt", "DbgPrint");
    auto format = [&](const std::string& fmt, std::vector<uint64_t> args,
                      const std::string& extra = "") {
        std::vector<uint8_t> data(fmt.begin(), fmt.end());
        data.push_back(0);
        size_t extra_at = data.size();
        data.insert(data.end(), extra.begin(), extra.end());
        data.push_back(0);
        std::vector<uint64_t> all{DATA_ARG};
        for (auto a : args) {
            all.push_back(a == DATA_ARG ? DATA_ARG + extra_at : a);
        }
        call_in_guest(*m, 0, dbgprint, all, data);
        auto r = run_until(*m, [](const RunResult& r) {
            return r.kind != StopKind::SliceEnd && r.kind != StopKind::Halted;
        });
        REQUIRE(r.has_value());
        REQUIRE(r->kind == StopKind::DebugPrint);
        auto back = run_until(*m, is_stop);
        REQUIRE(back.has_value());
        CHECK(back->kind == StopKind::Breakpoint);
        CHECK(back->pc == *m->address_of("nt", "DbgBreakPoint"));
        return r->text;
    };
    // Take the CPU where it is (kdtest's loop) and leave it there afterwards.
    CONTEXT saved = m->get_context(0);
    CHECK(format("%d %u %x %X %c %%", {static_cast<uint64_t>(-42), 42, 0xbeef, 0xbeef, 'Z'}) ==
          "-42 42 beef BEEF Z %");
    CHECK(format("[%5d][%-5d][%05d][%x]", {42, 42, 42, 0xffffffffULL}) ==
          "[   42][42   ][00042][ffffffff]");
    CHECK(format("%ld %lx %llx %I64x %I64d", {0xFFFFFFFFULL, 0x1234, 0x123456789abcdefULL,
                                              0xfedcba9876543210ULL, 0x8000000000000000ULL}) ==
          "-1 1234 123456789abcdef fedcba9876543210 -9223372036854775808");
    CHECK(format("%p", {0xfffff80000600000ULL}) == "FFFFF80000600000");
    CHECK(format("<%s> <%8s> <%.3s>", {DATA_ARG, DATA_ARG, DATA_ARG}, "hello") ==
          "<hello> <   hello> <hel>");
    CHECK(format("%08x|%-4x|%2x", {0xab, 0xab, 0xabcd}) == "000000ab|ab  |abcd");
    m->set_context(0, saved);
}

TEST_CASE("LoadSymbols and UnloadSymbols debug services") {
    auto m = make_machine();
    const ModuleInfo& kdtest = m->modules()[3];
    std::string path = "\\SystemRoot\\system32\\drivers\\kdtest.sys";
    // STRING { Length, MaximumLength, Buffer } followed by the text.
    std::vector<uint8_t> data(16);
    uint16_t len = static_cast<uint16_t>(path.size());
    std::memcpy(data.data(), &len, 2);
    std::memcpy(data.data() + 2, &len, 2);
    data.insert(data.end(), path.begin(), path.end());
    CONTEXT saved = m->get_context(0);
    for (auto [fn, kind] : {std::pair{"DbgLoadImageSymbols", StopKind::LoadSymbols},
                            std::pair{"DbgUnLoadImageSymbols", StopKind::UnloadSymbols}}) {
        std::vector<uint8_t> d = data;
        // patch the Buffer pointer after we know where the data lands: pass DATA_ARG+16
        call_in_guest(*m, 0, *m->address_of("nt", fn), {DATA_ARG, kdtest.base, 0}, d);
        CONTEXT c = m->get_context(0);
        uint64_t data_at = c.Rcx;
        write_as<uint64_t>(*m, data_at + 8, data_at + 16);
        auto r = run_until(*m, [](const RunResult& r) {
            return r.kind == StopKind::LoadSymbols || r.kind == StopKind::UnloadSymbols;
        });
        REQUIRE(r.has_value());
        CHECK(r->kind == kind);
        CHECK(r->symbols.path == path);
        CHECK(r->symbols.base == kdtest.base);
        CHECK(r->symbols.size == kdtest.size);
        CHECK(r->symbols.checksum == kdtest.checksum);
        auto back = run_until(*m, is_stop);
        REQUIRE(back.has_value());
        CHECK(back->pc == *m->address_of("nt", "DbgBreakPoint"));
    }
    m->set_context(0, saved);
}

TEST_CASE("force_break_in stops at RtlpBreakWithStatusInstruction and Rip+1 resumes") {
    auto m = make_machine();
    m->run();
    CONTEXT before = m->get_context(0);
    m->force_break_in(0);
    RunResult r = m->run();
    REQUIRE(r.kind == StopKind::Breakpoint);
    CHECK(r.cpu == 0);
    CHECK(r.pc == m->breakpoint_with_status());
    CHECK(r.exception_code == STATUS_BREAKPOINT);
    CHECK(r.exception_address == r.pc);
    CHECK(r.number_parameters == 1);
    CHECK(r.exception_information[0] == BREAKPOINT_BREAK);
    CONTEXT c = m->get_context(0);
    CHECK(c.Rip == r.pc);
    CHECK(c.Rsp == before.Rsp - 8);
    CHECK(read_as<uint64_t>(*m, c.Rsp) == before.Rip);
    CHECK(c.SegCs == 0x10);
    CHECK(c.SegSs == 0x18);
    CHECK(c.SegDs == 0x2b);
    CHECK(c.SegEs == 0x2b);
    CHECK(c.SegGs == 0x2b);
    CHECK(c.SegFs == 0x53);
    CHECK((c.EFlags & 0x202) == 0x202);

    // The processor state is in the KPRCB where KDDEBUGGER_DATA64 says.
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    auto saved = read_as<CONTEXT>(*m, m->kprcb(0) + d.OffsetPrcbProcStateContext);
    CHECK(saved.Rip == r.pc);
    auto special = read_as<KSPECIAL_REGISTERS>(*m, m->kprcb(0) + d.OffsetPrcbProcStateSpecialReg);
    CHECK(special.Cr3 == m->directory_table_base());

    // Continuing unchanged traps again at the same int3.
    RunResult again = m->run();
    CHECK(again.kind == StopKind::Breakpoint);
    CHECK(again.pc == r.pc);

    // Rip += 1: the ret returns to the interrupted code.
    c.Rip += 1;
    c.ContextFlags = CONTEXT_CONTROL;
    m->set_context(0, c);
    m->set_trace_flag(0, true);
    RunResult step = m->run();
    m->set_trace_flag(0, false);
    CHECK(step.kind == StopKind::SingleStep);
    CHECK(step.pc == before.Rip);
    CHECK(m->get_context(0).Rsp == before.Rsp);
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    uint64_t n = read_as<uint64_t>(*m, counter);
    auto later = run_until(
        *m, [&](const RunResult&) { return read_as<uint64_t>(*m, counter) > n; }, 2000ms);
    CHECK(later.has_value());
}

TEST_CASE("software breakpoints written by the host trap, with RIP left on the int3") {
    auto m = make_machine();
    uint64_t compute = *m->address_of("kdtest", "KdTestCompute");
    uint8_t original = 0;
    REQUIRE(m->read_virtual(compute, {&original, 1}) == 1);
    m->run(); // make sure the function has been translated already
    uint8_t cc = 0xCC;
    REQUIRE(m->write_virtual(compute, {&cc, 1}) == 1);
    auto hit = run_until(*m, is_stop, 3000ms);
    REQUIRE(hit.has_value());
    CHECK(hit->kind == StopKind::Breakpoint);
    CHECK(hit->pc == compute);
    CHECK(m->get_context(0).Rip == compute);
    // Restore, step over, re-insert: the next iteration hits again.
    REQUIRE(m->write_virtual(compute, {&original, 1}) == 1);
    m->set_trace_flag(0, true);
    RunResult step = m->run();
    m->set_trace_flag(0, false);
    CHECK(step.kind == StopKind::SingleStep);
    CHECK(step.pc != compute);
    CHECK(step.dr6 == (0xFFFF0FF0 | 0x4000));
    REQUIRE(m->write_virtual(compute, {&cc, 1}) == 1);
    auto hit2 = run_until(*m, is_stop, 3000ms);
    REQUIRE(hit2.has_value());
    CHECK(hit2->kind == StopKind::Breakpoint);
    CHECK(hit2->pc == compute);
}

TEST_CASE("single steps walk through KdTestCompute") {
    auto m = make_machine();
    uint64_t compute = *m->address_of("kdtest", "KdTestCompute");
    uint8_t cc = 0xCC;
    uint8_t original = 0;
    REQUIRE(m->read_virtual(compute, {&original, 1}) == 1);
    REQUIRE(m->write_virtual(compute, {&cc, 1}) == 1);
    auto hit = run_until(*m, is_stop, 3000ms);
    REQUIRE(hit.has_value());
    REQUIRE(m->write_virtual(compute, {&original, 1}) == 1);
    m->set_trace_flag(0, true);
    uint64_t pc = compute;
    uint64_t instructions_before = m->instructions_executed();
    for (int i = 0; i < 10; i++) {
        RunResult s = m->run();
        REQUIRE(s.kind == StopKind::SingleStep);
        CHECK(s.pc != pc);
        CHECK(s.pc == m->get_context(0).Rip);
        pc = s.pc;
    }
    CHECK(m->instructions_executed() - instructions_before == 10);
    m->set_trace_flag(0, false);
}

TEST_CASE("hardware execute and write breakpoints through KernelDr0-3/KernelDr7") {
    auto m = make_machine();
    uint64_t update = *m->address_of("kdtest", "KdTestUpdate");
    KSPECIAL_REGISTERS s = m->get_special(0);
    s.KernelDr0 = update;
    s.KernelDr7 = 0x400 | 0x1; // L0, execute, length 1
    m->set_special(0, s);
    auto hit = run_until(*m, is_stop, 3000ms);
    REQUIRE(hit.has_value());
    CHECK(hit->kind == StopKind::HardwareBreakpoint);
    CHECK(hit->pc == update);
    CHECK(hit->exception_code == STATUS_SINGLE_STEP);
    CHECK((hit->dr6 & 0xF) == 0x1);
    CHECK(m->get_special(0).KernelDr6 == hit->dr6);
    // Resuming from the breakpoint (RF) does not re-trigger at once; the next call does.
    auto hit2 = run_until(*m, is_stop, 3000ms);
    REQUIRE(hit2.has_value());
    CHECK(hit2->kind == StopKind::HardwareBreakpoint);
    CHECK(hit2->pc == update);
    CHECK(read_as<uint64_t>(*m, *m->address_of("kdtest", "KdTestCounter")) > 0);

    // A write watchpoint on KdTestCounter (8 bytes): a trap after the storing instruction.
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    s = m->get_special(0);
    s.KernelDr0 = 0;
    s.KernelDr1 = counter;
    s.KernelDr7 = 0x400 | (1 << 2) | (1ULL << 20) | (2ULL << 22); // L1, write, 8 bytes
    m->set_special(0, s);
    uint64_t value_before = read_as<uint64_t>(*m, counter);
    auto w = run_until(*m, is_stop, 3000ms);
    REQUIRE(w.has_value());
    CHECK(w->kind == StopKind::HardwareBreakpoint);
    CHECK((w->dr6 & 0xF) == 0x2);
    CHECK(read_as<uint64_t>(*m, counter) == value_before + 1);
    CHECK(w->pc > update);
    CHECK(w->pc < update + 0x40);
    s.KernelDr7 = 0x400;
    m->set_special(0, s);
}

TEST_CASE("get_context and set_context round trip") {
    auto m = make_machine(2);
    m->force_break_in(1);
    RunResult r = m->run();
    REQUIRE(r.kind == StopKind::Breakpoint);
    CHECK(r.cpu == 1);
    CONTEXT c = m->get_context(1);
    c.Rax = 0x1111111111111111ULL;
    c.R15 = 0xF15F15F15F15F15FULL;
    c.FltSave.XmmRegisters[3].Low = 0x0123456789abcdefULL;
    c.ContextFlags = CONTEXT_FULL;
    m->set_context(1, c);
    CONTEXT back = m->get_context(1);
    CHECK(back.Rax == 0x1111111111111111ULL);
    CHECK(back.R15 == 0xF15F15F15F15F15FULL);
    CHECK(back.FltSave.XmmRegisters[3].Low == 0x0123456789abcdefULL);
    CHECK(back.Rip == c.Rip);
    // CPU 0 is untouched.
    CHECK(m->get_context(0).Rax != 0x1111111111111111ULL);
    // Flags without CONTEXT_AMD64 select nothing, as on NT.
    CONTEXT other = back;
    other.Rax = 5;
    other.ContextFlags = 0x1003F;
    m->set_context(1, other);
    CHECK(m->get_context(1).Rax == 0x1111111111111111ULL);
}

TEST_CASE("several CPUs: the others idle, each has its own KPCR and thread") {
    auto m = make_machine(4);
    CHECK(m->num_cpus() == 4);
    for (int i = 0; i < 20; i++) {
        m->run();
    }
    for (uint32_t cpu = 1; cpu < 4; cpu++) {
        CHECK(m->kpcr(cpu) != m->kpcr(0));
        CHECK(m->current_thread(cpu) != m->current_thread(0));
        CONTEXT c = m->get_context(cpu);
        uint64_t idle = *m->address_of("nt", "KiIdleLoop");
        CHECK(c.Rip >= idle);
        CHECK(c.Rip < idle + 0x10);
    }
    m->force_break_in(3);
    RunResult r = m->run();
    CHECK(r.kind == StopKind::Breakpoint);
    CHECK(r.cpu == 3);
    CHECK(r.pc == m->breakpoint_with_status());
    // The kernel code reads its own processor number through gs.
    CONTEXT c = m->get_context(3);
    call_in_guest(*m, 3, *m->address_of("nt", "KeGetCurrentProcessorNumber"), {});
    auto back = run_until(
        *m, [](const RunResult& r) { return r.kind == StopKind::Breakpoint && r.cpu == 3; });
    REQUIRE(back.has_value());
    CHECK(m->get_context(3).Rax == 3);
    m->set_context(3, c);
}

TEST_CASE("paged-out pages vanish from both views and come back on access") {
    auto m = make_machine();
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    REQUIRE(m->mark_paged_out(counter));
    CHECK(m->is_paged_out(counter));
    CHECK_FALSE(m->translate(counter).has_value());
    uint64_t v = 0;
    CHECK(m->read_virtual(counter, {reinterpret_cast<uint8_t*>(&v), 8}) == 0);
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 400ms) {
        RunResult r = m->run();
        REQUIRE(r.kind != StopKind::Fault);
    }
    CHECK(m->page_in_count() >= 1);
    CHECK_FALSE(m->is_paged_out(counter));
    CHECK(read_as<uint64_t>(*m, counter) > 0);

    // Paged-out code comes back too, and a host page_in works.
    uint64_t compute = *m->address_of("kdtest", "KdTestCompute");
    REQUIRE(m->mark_paged_out(compute));
    CHECK_FALSE(m->translate(compute).has_value());
    CHECK(m->page_in(compute));
    CHECK(m->translate(compute).has_value());
    REQUIRE(m->mark_paged_out(compute));
    start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 400ms) {
        RunResult r = m->run();
        REQUIRE(r.kind != StopKind::Fault);
    }
    CHECK(m->translate(compute).has_value());
}

TEST_CASE("invalid accesses are faults") {
    auto m = make_machine();
    CONTEXT c = m->get_context(0);
    c.Rip = 0xFFFFF80012340000ULL; // nothing mapped there
    c.ContextFlags = CONTEXT_CONTROL;
    m->set_context(0, c);
    auto r = run_until(*m, is_stop, 2000ms);
    REQUIRE(r.has_value());
    CHECK(r->kind == StopKind::Fault);
    CHECK(r->exception_code == STATUS_ACCESS_VIOLATION);
    CHECK(r->exception_information[0] == 8);
    CHECK(r->exception_information[1] == 0xFFFFF80012340000ULL);
}

TEST_CASE("reboot returns to power-on state") {
    auto m = make_machine(1, BootPrints::Keep);
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    write_as<uint64_t>(*m, counter, 5000);
    REQUIRE(m->run().kind == StopKind::DebugPrint); // DriverEntry's, queued at boot
    m->force_break_in(0);
    REQUIRE(m->run().kind == StopKind::Breakpoint);
    REQUIRE(m->reboot().has_value());
    CHECK(read_as<uint64_t>(*m, counter) < 5000);
    CHECK(m->modules().size() == 4);
    auto first = run_until(*m, [](const RunResult& r) { return r.kind == StopKind::DebugPrint; });
    REQUIRE(first.has_value());
    CHECK(first->text.rfind("kdtest: DriverEntry", 0) == 0);
}

TEST_CASE("an idle machine sleeps") {
    auto m = make_machine(2);
    auto wall = std::chrono::steady_clock::now();
    std::clock_t cpu_start = std::clock();
    while (std::chrono::steady_clock::now() - wall < 500ms) {
        m->run();
    }
    double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    CHECK(cpu_seconds < 0.25);
}

TEST_CASE("bugcheck: KeBugCheckEx prints and breaks at RtlpBreakWithStatusInstruction") {
    auto m = make_machine();
    m->run();
    m->bugcheck(0, 0xE2, 1, 2, 3, 4);
    auto print = run_until(*m, [](const RunResult& r) {
        return r.kind != StopKind::SliceEnd && r.kind != StopKind::Halted;
    });
    REQUIRE(print.has_value());
    REQUIRE(print->kind == StopKind::DebugPrint);
    CHECK(print->text.find("*** Fatal System Error: 0x000000e2") != std::string::npos);
    CHECK(print->text.find("(0x0000000000000001,0x0000000000000002,0x0000000000000003,"
                           "0x0000000000000004)") != std::string::npos);
    auto stop = run_until(*m, is_stop);
    REQUIRE(stop.has_value());
    CHECK(stop->kind == StopKind::Breakpoint);
    CHECK(stop->pc == m->breakpoint_with_status());
    CHECK(m->get_context(0).Rax == SIM_DBG_STATUS_BUGCHECK_FIRST);
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    CHECK(read_as<uint64_t>(*m, d.KiBugcheckData) == 0xE2);
    CHECK(read_as<uint64_t>(*m, d.KiBugcheckData + 32) == 4);
}

// ---------------------------------------------------------------------------------------------
// run control: pageable code, data breakpoints, stepping, the late driver, the code check
// ---------------------------------------------------------------------------------------------

namespace {

// The address of the first `call rel32` in [from, from + length) that targets `target`.
uint64_t find_call(SimMachine& m, uint64_t from, size_t length, uint64_t target) {
    std::vector<uint8_t> code(length);
    REQUIRE(m.read_virtual(from, code) == length);
    for (size_t i = 0; i + 5 <= length; i++) {
        if (code[i] != 0xE8) {
            continue;
        }
        int32_t rel;
        std::memcpy(&rel, &code[i + 1], 4);
        if (from + i + 5 + static_cast<int64_t>(rel) == target) {
            return from + i;
        }
    }
    FAIL("no call found");
    return 0;
}

// DR7 bits for breakpoint `n`: enabled (Ln), RW (0 execute, 1 write, 3 read/write), LEN bytes.
uint64_t dr7_for(int n, uint64_t rw, uint64_t length) {
    uint64_t len_bits = length == 1 ? 0 : length == 2 ? 1 : length == 8 ? 2 : 3;
    return (1ULL << (n * 2)) | (rw << (16 + n * 4)) | (len_bits << (18 + n * 4));
}

void set_debug_registers(SimMachine& m, uint32_t cpu, std::array<uint64_t, 4> dr, uint64_t dr7) {
    KSPECIAL_REGISTERS s = m.get_special(cpu);
    s.KernelDr0 = dr[0];
    s.KernelDr1 = dr[1];
    s.KernelDr2 = dr[2];
    s.KernelDr3 = dr[3];
    s.KernelDr6 = 0xFFFF0FF0;
    s.KernelDr7 = 0x400 | dr7;
    m.set_special(cpu, s);
}

// Calls kdtest!KdTestAccess(address, size, write, value) on CPU 0 and returns the first stop:
// a HardwareBreakpoint inside KdTestAccess, or the Breakpoint at nt!DbgBreakPoint it returns
// to when nothing hit. CPU 0 is put back where it was. `at_stop` gets the context at the stop.
RunResult guest_access(SimMachine& m, uint64_t address, uint64_t size, bool write,
                       uint64_t value = 0, CONTEXT* at_stop = nullptr) {
    CONTEXT saved = m.get_context(0);
    saved.ContextFlags = CONTEXT_CONTROL | CONTEXT_INTEGER;
    call_in_guest(m, 0, *m.address_of("kdtest", "KdTestAccess"),
                  {address, size, write ? 1ULL : 0ULL, value});
    auto r = run_until(m, is_stop, 3000ms);
    REQUIRE(r.has_value());
    CONTEXT c = m.get_context(0);
    CHECK(c.Rip == r->pc);
    if (at_stop != nullptr) {
        *at_stop = c;
    }
    if (r->kind == StopKind::HardwareBreakpoint) {
        auto back = run_until(m, is_stop, 3000ms);
        REQUIRE(back.has_value());
        CHECK(back->kind == StopKind::Breakpoint);
    }
    m.set_context(0, saved);
    return *r;
}

} // namespace

TEST_CASE("kdtest's PAGEKD page starts paged out; the loop's first call brings it in") {
    auto m = make_machine();
    uint64_t paged = *m->address_of("kdtest", "KdTestPagedFunction");
    CHECK(paged % 0x1000 == 0);
    CHECK(m->is_paged_out(paged));
    CHECK_FALSE(m->translate(paged).has_value());
    uint8_t b = 0;
    CHECK(m->read_virtual(paged, {&b, 1}) == 0);
    // The loop calls it from KdTestPagedStartIteration (60 by default, ~6 s) on.
    uint64_t start_at = *m->address_of("kdtest", "KdTestPagedStartIteration");
    CHECK(read_as<uint32_t>(*m, start_at) == SIM_KDTEST_PAGED_START_ITERATION);
    CHECK(SIM_KDTEST_PAGED_START_ITERATION == 60);
    uint64_t iteration = *m->address_of("kdtest", "KdTestIteration");
    uint64_t calls = *m->address_of("kdtest", "KdTestPagedCalls");
    auto now = read_as<uint64_t>(*m, iteration);
    write_as<uint32_t>(*m, start_at, static_cast<uint32_t>(now + 3));
    uint64_t page_ins = m->page_in_count();
    auto r = run_until(
        *m,
        [&](const RunResult& r) {
            REQUIRE(r.kind != StopKind::Fault);
            return read_as<uint64_t>(*m, calls) > 0;
        },
        3000ms);
    REQUIRE(r.has_value());
    CHECK(read_as<uint64_t>(*m, iteration) >= now + 3);
    CHECK_FALSE(m->is_paged_out(paged));
    CHECK(m->translate(paged).has_value());
    CHECK(m->page_in_count() == page_ins + 1);
    // It stays in and keeps being called.
    auto more = run_until(
        *m, [&](const RunResult&) { return read_as<uint64_t>(*m, calls) >= 3; }, 3000ms);
    CHECK(more.has_value());
}

TEST_CASE("data breakpoints: write and read/write, lengths 1/2/4/8 with alignment, traps") {
    auto m = make_machine();
    uint64_t access = *m->address_of("kdtest", "KdTestAccess");
    uint64_t buf = *m->address_of("kdtest", "KdTestBuffer") + 64; // 16-aligned scratch
    REQUIRE(buf % 16 == 0);
    auto hit = [&](const RunResult& r, uint64_t bits) {
        CHECK(r.kind == StopKind::HardwareBreakpoint);
        CHECK(r.exception_code == STATUS_SINGLE_STEP);
        CHECK(r.data_breakpoint);
        CHECK((r.dr6 & 0xF) == bits);
        CHECK((r.dr6 & 0x4000) == 0);
        // A trap: reported after the access, inside KdTestAccess, at the next instruction.
        CHECK(r.pc > access);
        CHECK(r.pc < access + 0x100);
        CHECK(r.exception_address == r.pc);
        // The instruction after the access: KdTestAccess's accesses are each followed by
        // a jmp, a ret or a movz (see the disassembly), never by another access.
        uint8_t next = read_as<uint8_t>(*m, r.pc);
        CHECK((next == 0xEB || next == 0xC3 || next == 0x0F || next == 0x31));
    };
    auto miss = [&](const RunResult& r) {
        CHECK(r.kind == StopKind::Breakpoint);
        CHECK(r.pc == *m->address_of("nt", "DbgBreakPoint"));
    };

    // w1 on buf+3.
    set_debug_registers(*m, 0, {buf + 3, 0, 0, 0}, dr7_for(0, 1, 1));
    RunResult r = guest_access(*m, buf + 3, 1, true, 0xAB);
    hit(r, 1);
    CHECK(read_as<uint8_t>(*m, buf + 3) == 0xAB); // the store completed before the stop
    miss(guest_access(*m, buf + 4, 1, true, 0xCD));
    miss(guest_access(*m, buf + 3, 1, false)); // a read does not hit a write breakpoint
    // An 8-byte store over it hits too.
    hit(guest_access(*m, buf, 8, true, 0x1122334455667788ULL), 1);

    // w2 on buf+5: LEN 2 ignores address bit 0, so it covers buf+4..buf+5.
    set_debug_registers(*m, 0, {0, buf + 5, 0, 0}, dr7_for(1, 1, 2));
    hit(guest_access(*m, buf + 4, 1, true), 2);
    hit(guest_access(*m, buf + 5, 1, true), 2);
    miss(guest_access(*m, buf + 6, 2, true));
    miss(guest_access(*m, buf + 3, 1, true));

    // w4 on buf+8 (buf+8..buf+11) and w8 on buf+16 (buf+16..buf+23).
    set_debug_registers(*m, 0, {0, 0, buf + 8, buf + 16}, dr7_for(2, 1, 4) | dr7_for(3, 1, 8));
    hit(guest_access(*m, buf + 10, 2, true), 4);
    miss(guest_access(*m, buf, 8, true));
    miss(guest_access(*m, buf + 12, 4, true));
    hit(guest_access(*m, buf + 23, 1, true), 8);
    miss(guest_access(*m, buf + 24, 8, true));
    // One access that covers both: both bits.
    hit(guest_access(*m, buf + 8, 8, true), 4);
    // An 8-byte store at buf+10 covers buf+10..buf+17: Dr2's and Dr3's ranges.
    hit(guest_access(*m, buf + 10, 8, true), 4 | 8);

    // RW = 11 (read/write) on buf+32, 4 bytes: loads and stores hit.
    set_debug_registers(*m, 0, {buf + 32, 0, 0, 0}, dr7_for(0, 3, 4));
    write_as<uint32_t>(*m, buf + 32, 0x5A5A5A5A);
    CONTEXT loaded{};
    hit(guest_access(*m, buf + 32, 4, false, 0, &loaded), 1);
    CHECK(static_cast<uint32_t>(loaded.Rax) == 0x5A5A5A5A); // the load completed
    hit(guest_access(*m, buf + 34, 1, false), 1);
    hit(guest_access(*m, buf + 35, 1, true), 1);
    miss(guest_access(*m, buf + 36, 4, false));

    // G bits enable too; Dr7 without enable bits does nothing.
    set_debug_registers(*m, 0, {buf + 32, 0, 0, 0}, (dr7_for(0, 3, 4) & ~1ULL) | 2);
    hit(guest_access(*m, buf + 32, 4, false), 1);
    set_debug_registers(*m, 0, {buf + 32, 0, 0, 0}, dr7_for(0, 3, 4) & ~3ULL);
    miss(guest_access(*m, buf + 32, 4, false));
}

TEST_CASE("execute breakpoints do not write memory; stepping a data hit gives Bn and BS") {
    auto m = make_machine();
    uint64_t compute = *m->address_of("kdtest", "KdTestCompute");
    std::vector<uint8_t> before(64);
    REQUIRE(m->read_virtual(compute, before) == before.size());
    set_debug_registers(*m, 0, {compute, 0, 0, 0}, dr7_for(0, 0, 1));
    auto r = run_until(*m, is_stop, 3000ms);
    REQUIRE(r.has_value());
    CHECK(r->kind == StopKind::HardwareBreakpoint);
    CHECK_FALSE(r->data_breakpoint);
    CHECK(r->pc == compute);
    std::vector<uint8_t> after(64);
    REQUIRE(m->read_virtual(compute, after) == after.size());
    CHECK(after == before);
    for (const auto& c : m->check_code()) {
        CHECK_MESSAGE(c.intact(), c.module);
    }

    // A write watchpoint on KdTestCounter; single-step until the store: Dr6 = B1 | BS.
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    set_debug_registers(*m, 0, {0, counter, 0, 0}, dr7_for(1, 1, 8));
    m->set_trace_flag(0, true);
    std::optional<RunResult> data_hit;
    for (int i = 0; i < 3000 && !data_hit; i++) {
        RunResult s = m->run();
        if (s.kind == StopKind::HardwareBreakpoint) {
            data_hit = s;
        } else {
            REQUIRE(s.kind == StopKind::SingleStep);
            CHECK((s.dr6 & 0xF) == 0);
        }
    }
    m->set_trace_flag(0, false);
    REQUIRE(data_hit.has_value());
    CHECK((data_hit->dr6 & 0x4002) == 0x4002);
    set_debug_registers(*m, 0, {0, 0, 0, 0}, 0);
}

TEST_CASE("single step into a call lands on the callee's first instruction, int3-free") {
    auto m = make_machine();
    uint64_t loop = *m->address_of("kdtest", "KdTestLoop");
    uint64_t compute = *m->address_of("kdtest", "KdTestCompute");
    uint64_t call = find_call(*m, loop, 0x60, compute);
    set_debug_registers(*m, 0, {call, 0, 0, 0}, dr7_for(0, 0, 1));
    auto at_call = run_until(*m, is_stop, 3000ms);
    REQUIRE(at_call.has_value());
    REQUIRE(at_call->kind == StopKind::HardwareBreakpoint);
    REQUIRE(at_call->pc == call);
    set_debug_registers(*m, 0, {0, 0, 0, 0}, 0);
    CONTEXT c = m->get_context(0);
    m->set_trace_flag(0, true);
    RunResult step = m->run();
    CHECK(step.kind == StopKind::SingleStep);
    CHECK(step.pc == compute);
    CHECK(step.exception_address == compute);
    CHECK(step.dr6 == (0xFFFF0FF0 | 0x4000));
    CONTEXT in = m->get_context(0);
    CHECK(in.Rsp == c.Rsp - 8);
    CHECK(read_as<uint64_t>(*m, in.Rsp) == call + 5);
    CHECK((in.EFlags & 0x100) == 0); // TF is not part of the reported flags
    // Step to the ret and over it: back at the instruction after the call.
    uint64_t pc = step.pc;
    for (int i = 0; i < 100 && pc != call + 5; i++) {
        RunResult s = m->run();
        REQUIRE(s.kind == StopKind::SingleStep);
        pc = s.pc;
    }
    CHECK(pc == call + 5);
    CHECK(m->get_context(0).Rsp == c.Rsp);
    m->set_trace_flag(0, false);
    CHECK_FALSE(m->trace_flag(0));
    // Nothing was written into the code.
    for (const auto& check : m->check_code()) {
        CHECK_MESSAGE(check.intact(), check.module);
    }
    // And the machine runs freely again.
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    uint64_t n = read_as<uint64_t>(*m, counter);
    CHECK(run_until(
              *m, [&](const RunResult&) { return read_as<uint64_t>(*m, counter) > n + 1; }, 2000ms)
              .has_value());
}

TEST_CASE("stepping one CPU leaves the other frozen") {
    auto m = make_machine(2);
    // CPU 1 spins in kdtest!KdTestSpin (a long loop), CPU 0 runs kdtest's loop.
    uint64_t spin_count = *m->address_of("kdtest", "KdTestSpinCount");
    call_in_guest(*m, 1, *m->address_of("kdtest", "KdTestSpin"), {~0ULL});
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 200ms) {
        m->run();
    }
    uint64_t spun = read_as<uint64_t>(*m, spin_count);
    CHECK(spun > 0);
    CONTEXT cpu1 = m->get_context(1);
    uint64_t counter = *m->address_of("kdtest", "KdTestCounter");
    uint64_t loops = read_as<uint64_t>(*m, counter);
    m->set_trace_flag(0, true);
    for (int i = 0; i < 100; i++) {
        RunResult s = m->run();
        CHECK(s.cpu == 0);
        if (s.kind == StopKind::Halted) {
            continue; // asleep in hlt until the next tick: nothing ran
        }
        CHECK(s.kind == StopKind::SingleStep);
        if (i % 25 == 0) {
            std::this_thread::sleep_for(10ms); // clock ticks pass; CPU 1 still does not run
        }
    }
    CHECK(read_as<uint64_t>(*m, spin_count) == spun);
    CONTEXT still = m->get_context(1);
    CHECK(still.Rip == cpu1.Rip);
    CHECK(still.Rsp == cpu1.Rsp);
    CHECK(still.Rax == cpu1.Rax);
    CHECK(read_as<uint64_t>(*m, counter) <= loops + 1);
    m->set_trace_flag(0, false);
    // Now CPU 1 is stepped and CPU 0 stays where it is.
    CONTEXT cpu0 = m->get_context(0);
    m->set_trace_flag(1, true);
    for (int i = 0; i < 50; i++) {
        RunResult s = m->run();
        CHECK(s.cpu == 1);
        CHECK(s.kind == StopKind::SingleStep);
    }
    m->set_trace_flag(1, false);
    CHECK(read_as<uint64_t>(*m, spin_count) > spun);
    CHECK(m->get_context(0).Rip == cpu0.Rip);
    CHECK(m->get_context(0).Rsp == cpu0.Rsp);
}

TEST_CASE("kdlate.sys: loaded after boot, KdLateWork from its timer, unloaded, loaded again") {
    auto m = make_machine(2, BootPrints::Drain, [](SimConfig& c) {
        c.late_driver.enabled = true;
        c.late_driver.load_after = 300ms;
        c.late_driver.unload_after = 1500ms;
        c.late_driver.reload_after = 300ms;
    });
    CHECK(m->late_driver_state() == LateDriverState::Waiting);
    CHECK(m->interrupt_cpu() == 1);
    CHECK_FALSE(m->address_of("kdlate", "KdLateWork").has_value());
    CHECK_FALSE(m->translate(layout::LATE_DRIVER_BASE).has_value());
    auto pe = PeImage::load_file(default_image_dir() / "kdlate.sys");
    REQUIRE(pe.has_value());
    const std::string path = "\\SystemRoot\\system32\\drivers\\kdlate.sys";

    auto module_names = [&] {
        std::vector<std::string> names;
        uint64_t head = m->ps_loaded_module_list();
        uint64_t at = read_as<uint64_t>(*m, head);
        while (at != head && names.size() < 10) {
            auto e = read_as<KLDR_DATA_TABLE_ENTRY64>(*m, at);
            names.push_back(read_unicode(*m, e.BaseDllName));
            at = e.InLoadOrderLinks.Flink;
        }
        return names;
    };
    auto kind_is = [](StopKind k) { return [k](const RunResult& r) { return r.kind == k; }; };
    auto late_print = [](const RunResult& r) {
        return r.kind == StopKind::DebugPrint && r.text.rfind("kdlate:", 0) == 0;
    };

    for (int round = 0; round < 2; round++) {
        CAPTURE(round);
        auto load = run_until(*m, kind_is(StopKind::LoadSymbols), 3000ms);
        REQUIRE(load.has_value());
        CHECK(load->cpu == 1);
        CHECK(load->symbols.path == path);
        CHECK(load->symbols.base == layout::LATE_DRIVER_BASE);
        CHECK(load->symbols.size == pe->size_of_image());
        CHECK(load->symbols.checksum == pe->checksum());
        CHECK(m->late_driver_state() == LateDriverState::Loading);
        // nt linked the entry before telling the debugger; DriverEntry has not run yet.
        auto names = module_names();
        CHECK(names == std::vector<std::string>{"ntoskrnl.exe", "hal.dll", "kdcom.dll",
                                                "kdtest.sys", "kdlate.sys"});
        REQUIRE(m->modules().size() == 5);
        CHECK(m->modules()[4].full_name == path);
        uint64_t work = *m->address_of("kdlate", "KdLateWork");
        CHECK(work == layout::LATE_DRIVER_BASE + *pe->export_rva("KdLateWork"));
        uint64_t counter = *m->address_of("kdlate", "KdLateCounter");
        CHECK(read_as<uint64_t>(*m, counter) == 0);
        auto hello = run_until(*m, late_print, 3000ms);
        REQUIRE(hello.has_value());
        CHECK(hello->text ==
              "kdlate: DriverEntry "
              "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\kdlate on cpu 1\n");
        auto worked = run_until(
            *m, [&](const RunResult&) { return read_as<uint64_t>(*m, counter) >= 2; }, 3000ms);
        REQUIRE(worked.has_value());
        CHECK(m->late_driver_state() == LateDriverState::Loaded);
        CHECK(m->late_driver_loads() == static_cast<uint64_t>(round + 1));
        CHECK(read_as<uint32_t>(*m, *m->address_of("kdlate", "KdLateLastProcessor")) == 1);
        CHECK(m->interrupts_delivered() >= 3);

        // NT's order: DriverUnload, then DbgUnLoadImageSymbols, then the image goes.
        auto bye = run_until(*m, late_print, 4000ms);
        REQUIRE(bye.has_value());
        CHECK(bye->text.rfind("kdlate: DriverUnload after ", 0) == 0);
        auto unload = run_until(*m, kind_is(StopKind::UnloadSymbols), 3000ms);
        REQUIRE(unload.has_value());
        CHECK(unload->cpu == 1);
        CHECK(unload->symbols.path == path);
        CHECK(unload->symbols.base == layout::LATE_DRIVER_BASE);
        CHECK(m->translate(work).has_value()); // still mapped while nt reports it
        auto gone = run_until(
            *m,
            [&](const RunResult&) { return m->late_driver_state() == LateDriverState::Waiting; },
            3000ms);
        REQUIRE(gone.has_value());
        CHECK(m->late_driver_unloads() == static_cast<uint64_t>(round + 1));
        CHECK_FALSE(m->translate(work).has_value());
        CHECK_FALSE(m->address_of("kdlate", "KdLateWork").has_value());
        CHECK(m->modules().size() == 4);
        CHECK(module_names().size() == 4);
    }
    // The other CPU kept its loop going all along.
    CHECK(read_as<uint64_t>(*m, *m->address_of("kdtest", "KdTestCounter")) > 10);
}

TEST_CASE("kdlate.sys on one CPU: the timer DPC runs inside kdtest's wait") {
    auto m = make_machine(1, BootPrints::Drain, [](SimConfig& c) {
        c.late_driver.enabled = true;
        c.late_driver.load_after = 100ms;
        c.late_driver.unload_after = 0ms; // stays
    });
    auto load = run_until(*m, [](const RunResult& r) { return r.kind == StopKind::LoadSymbols; });
    REQUIRE(load.has_value());
    CHECK(load->cpu == 0);
    uint64_t counter = *m->address_of("kdlate", "KdLateCounter");
    uint64_t kdtest = *m->address_of("kdtest", "KdTestCounter");
    uint64_t loops = read_as<uint64_t>(*m, kdtest);
    auto worked = run_until(
        *m, [&](const RunResult&) { return read_as<uint64_t>(*m, counter) >= 3; }, 4000ms);
    REQUIRE(worked.has_value());
    CHECK(read_as<uint64_t>(*m, kdtest) > loops + 5);
    CHECK(m->late_driver_state() == LateDriverState::Loaded);
}

TEST_CASE("check_code: memory against the files, paged-out pages included") {
    auto m = make_machine();
    auto checks = m->check_code();
    REQUIRE(checks.size() == 4);
    for (const auto& c : checks) {
        CHECK_MESSAGE(c.intact(), c.module);
        CHECK(c.code_bytes > 0);
    }
    CHECK(checks[3].module == "kdtest.sys");
    CHECK(m->is_paged_out(*m->address_of("kdtest", "KdTestPagedFunction")));
    std::string report = format_code_report(checks);
    CHECK(report.find("module kdtest.sys base fffff88001200000") != std::string::npos);
    CHECK(report.size() >= 12);
    CHECK(report.substr(report.size() - 12) == "code intact\n");

    uint64_t update = *m->address_of("kdtest", "KdTestUpdate");
    uint8_t original = read_as<uint8_t>(*m, update);
    write_as<uint8_t>(*m, update + 2, 0xCC);
    checks = m->check_code();
    CHECK_FALSE(checks[3].intact());
    CHECK(checks[3].differences == 1);
    CHECK(checks[3].first_difference == update + 2);
    CHECK(checks[3].memory_byte == 0xCC);
    CHECK(checks[0].intact());
    report = format_code_report(checks);
    char want[64];
    std::snprintf(want, sizeof(want), "code modified at %016llx (kdtest.sys)\n",
                  static_cast<unsigned long long>(update + 2));
    CHECK(report.find(want) != std::string::npos);
    write_as<uint8_t>(*m, update + 2, checks[3].file_byte);
    CHECK(m->check_code()[3].intact());

    // A byte changed inside the paged-out page counts as well.
    uint64_t paged = *m->address_of("kdtest", "KdTestPagedFunction");
    REQUIRE(m->page_in(paged));
    uint8_t p0 = read_as<uint8_t>(*m, paged);
    write_as<uint8_t>(*m, paged, 0xCC);
    REQUIRE(m->mark_paged_out(paged));
    CHECK(m->check_code()[3].first_difference == paged);
    REQUIRE(m->page_in(paged));
    write_as<uint8_t>(*m, paged, p0);
    CHECK(m->check_code()[3].intact());

    // A reboot brings every original byte back.
    write_as<uint8_t>(*m, update, 0xCC);
    CHECK_FALSE(m->check_code()[3].intact());
    REQUIRE(m->reboot().has_value());
    for (const auto& c : m->check_code()) {
        CHECK_MESSAGE(c.intact(), c.module);
    }
    CHECK(read_as<uint8_t>(*m, update) == original);
}

// ---------------------------------------------------------------------------------------------
// what crash-dump capture relies on: unloaded drivers, KDDEBUGGER_DATA64, bug checks, snapshot
// ---------------------------------------------------------------------------------------------

TEST_CASE("MmUnloadedDrivers: kdlate.sys's unload is remembered as Windows does") {
    auto m = make_machine(2, BootPrints::Drain, [](SimConfig& c) {
        c.late_driver.enabled = true;
        c.late_driver.load_after = 100ms;
        c.late_driver.unload_after = 300ms;
        c.late_driver.reload_after = 100ms;
    });
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    CHECK(d.MmUnloadedDrivers == *m->address_of("nt", "MmUnloadedDrivers"));
    CHECK(d.MmLastUnloadedDriver == *m->address_of("nt", "MmLastUnloadedDriver"));
    uint64_t array = read_as<uint64_t>(*m, d.MmUnloadedDrivers);
    REQUIRE(array != 0);
    CHECK(read_as<uint32_t>(*m, d.MmLastUnloadedDriver) == 0);
    CHECK(read_as<uint64_t>(*m, array + 0x10) == 0); // slot 0 empty
    // The whole array (50 entries of 0x28 bytes) is readable.
    std::vector<uint8_t> all(SIM_MAX_UNLOADED_DRIVERS * SIM_UNLOADED_DRIVERS_SIZE);
    CHECK(m->read_virtual(array, all) == all.size());

    auto pe = PeImage::load_file(default_image_dir() / "kdlate.sys");
    REQUIRE(pe.has_value());
    uint64_t before = read_as<uint64_t>(*m, layout::KUSER_SHARED_DATA + SIM_KUSER_SYSTEM_TIME);
    for (uint64_t round = 1; round <= 2; round++) {
        CAPTURE(round);
        auto unloaded = run_until(
            *m, [&](const RunResult&) { return m->late_driver_unloads() == round; }, 5000ms);
        REQUIRE(unloaded.has_value());
        CHECK(read_as<uint32_t>(*m, d.MmLastUnloadedDriver) == round);
        uint64_t slot = array + (round - 1) * SIM_UNLOADED_DRIVERS_SIZE;
        auto name = read_as<UNICODE_STRING64>(*m, slot);
        CHECK(name.Length == 20);
        CHECK(name.MaximumLength >= name.Length);
        CHECK(read_unicode(*m, name) == "kdlate.sys");
        uint64_t start = read_as<uint64_t>(*m, slot + 0x10);
        uint64_t end = read_as<uint64_t>(*m, slot + 0x18);
        uint64_t time = read_as<uint64_t>(*m, slot + 0x20);
        CHECK(start == layout::LATE_DRIVER_BASE);
        CHECK(end == start + pe->size_of_image());
        uint64_t now = read_as<uint64_t>(*m, layout::KUSER_SHARED_DATA + SIM_KUSER_SYSTEM_TIME);
        CHECK(time >= before); // a FILETIME of the unload
        CHECK(time <= now);
        before = time;
    }
}

TEST_CASE("KDDEBUGGER_DATA64 for dumps: PFN database, KiBugCheckData, KPRCB contexts") {
    auto m = make_machine(2);
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    CHECK(d.MmPfnDatabase == *m->address_of("nt", "MmPfnDatabase"));
    uint64_t pfn = read_as<uint64_t>(*m, d.MmPfnDatabase);
    CHECK(pfn == layout::PFN_DATABASE);
    CHECK(pfn == m->pfn_database());
    // An MMPFN for every RAM page frame is mapped; the hole between runs is not.
    for (const auto& run : m->physical_runs()) {
        uint64_t first = run.base / 0x1000;
        uint64_t last = (run.base + run.size) / 0x1000 - 1;
        CHECK(m->translate(pfn + first * layout::MMPFN_SIZE).has_value());
        CHECK(m->translate(pfn + last * layout::MMPFN_SIZE + layout::MMPFN_SIZE - 1).has_value());
    }
    CHECK_FALSE(m->translate(pfn + 0x2800 * layout::MMPFN_SIZE).has_value());
    CHECK(d.KiBugcheckData == *m->address_of("nt", "KiBugCheckData"));
    CHECK(d.PsActiveProcessHead == *m->address_of("nt", "PsActiveProcessHead"));
    CHECK(d.KiProcessorBlock == *m->address_of("nt", "KiProcessorBlock"));
    CHECK(d.MmPhysicalMemoryBlock == *m->address_of("nt", "MmPhysicalMemoryBlock"));
    CHECK(d.OffsetPrcbContext == SIM_KPRCB_CONTEXT);
    CHECK(m->bugcheck_data() == std::array<uint64_t, 5>{});

    // Each KPRCB's Context points at a CONTEXT that holds the processor's state at a stop.
    m->force_break_in(0);
    auto stop = run_until(*m, is_stop);
    REQUIRE(stop.has_value());
    for (uint32_t cpu = 0; cpu < 2; cpu++) {
        uint64_t prcb = read_as<uint64_t>(*m, d.KiProcessorBlock + cpu * 8);
        uint64_t context = read_as<uint64_t>(*m, prcb + d.OffsetPrcbContext);
        CHECK(context == prcb + SIM_KPRCB_PROC_STATE_CONTEXT);
        auto c = read_as<CONTEXT>(*m, context);
        CONTEXT live = m->get_context(cpu);
        CHECK(c.Rip == live.Rip);
        CHECK(c.Rsp == live.Rsp);
        CHECK(c.SegCs == 0x10);
        CHECK(c.MxCsr == c.FltSave.MxCsr);
    }
}

TEST_CASE("bug check on a timer: kdtest raises it, the break, then Reboot; once per machine") {
    auto m = make_machine(1, BootPrints::Drain, [](SimConfig& c) {
        c.bugcheck_after.enabled = true;
        c.bugcheck_after.after = 500ms;
        c.bugcheck_after.code = 0xD1;
    });
    uint64_t paged = *m->address_of("kdtest", "KdTestPagedFunction");
    uint64_t raise = *m->address_of("kdtest", "KdTestRaiseBugCheck");
    auto print = run_until(
        *m,
        [](const RunResult& r) {
            return r.kind == StopKind::DebugPrint &&
                   r.text.find("Fatal System Error") != std::string::npos;
        },
        5000ms);
    REQUIRE(print.has_value());
    char want[256];
    std::snprintf(want, sizeof(want),
                  "\n*** Fatal System Error: 0x000000d1\n"
                  "                       (0x%016llX,0x0000000000000002,0x0000000000000000,"
                  "0x%016llX)\n\n",
                  static_cast<unsigned long long>(paged), static_cast<unsigned long long>(raise));
    CHECK(print->text == want);
    CHECK(print->cpu == 0);
    auto stop = run_until(*m, is_stop);
    REQUIRE(stop.has_value());
    CHECK(stop->kind == StopKind::Breakpoint);
    CHECK(stop->pc == m->breakpoint_with_status());
    CHECK(stop->exception_code == 0x80000003);
    CHECK(m->bugcheck_data() == std::array<uint64_t, 5>{0xD1, paged, 2, 0, raise});
    // The stack has kdtest's frames under KeBugCheckEx: a return address into
    // KdTestRaiseBugCheck and one into KdTestLoop.
    uint64_t loop = *m->address_of("kdtest", "KdTestLoop");
    const ModuleInfo* kdtest = nullptr;
    for (const auto& mod : m->modules()) {
        if (mod.base_name == "kdtest.sys") {
            kdtest = &mod;
        }
    }
    REQUIRE(kdtest != nullptr);
    CONTEXT c = m->get_context(0);
    std::vector<uint64_t> stack(0x80);
    size_t got = m->read_virtual(c.Rsp, {reinterpret_cast<uint8_t*>(stack.data()), 0x400});
    REQUIRE(got >= 0x40); // up to the top of the stack
    stack.resize(got / 8);
    bool in_raise = false;
    bool in_loop = false;
    for (uint64_t q : stack) {
        in_raise = in_raise || (q > raise && q < raise + 0x40);
        in_loop = in_loop || (q > loop && q < loop + 0x200 && q < kdtest->base + kdtest->size);
    }
    CHECK(in_raise);
    CHECK(in_loop);

    // Continued past the int3 (as a debugger does): the dump is written, the machine reboots.
    m->set_rip(0, stop->pc + 1);
    auto end = run_until(*m, is_stop);
    REQUIRE(end.has_value());
    CHECK(end->kind == StopKind::Reboot);
    CHECK(end->cpu == 0);
    CHECK(end->pc == *m->address_of("nt", "KiSimReturnToFirmware"));
    REQUIRE(m->reboot().has_value());
    CHECK(m->bugcheck_data() == std::array<uint64_t, 5>{});
    CHECK(read_as<uint32_t>(*m, *m->address_of("kdtest", "KdTestBugCheckCode")) == 0);
    // A reboot before the bug check came keeps it armed.
    auto again = make_machine(1, BootPrints::Drain, [](SimConfig& c) {
        c.bugcheck_after.enabled = true;
        c.bugcheck_after.after = 60000ms;
        c.bugcheck_after.code = 0xE2;
    });
    REQUIRE(again->reboot().has_value());
    CHECK(read_as<uint32_t>(*again, *again->address_of("kdtest", "KdTestBugCheckCode")) == 0xE2);
    CHECK(read_as<uint64_t>(*again, *again->address_of("kdtest", "KdTestBugCheckTime")) ==
          600000000ULL);
}

TEST_CASE("write_physical_snapshot: a sparse image equal to physical memory, and the runs") {
    auto m = make_machine();
    m->run();
    std::string path = "/tmp/kdsim-snapshot-" + std::to_string(::getpid()) + ".raw";
    REQUIRE(m->write_physical_snapshot(path).has_value());
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    const auto& runs = m->physical_runs();
    std::fseek(f, 0, SEEK_END);
    CHECK(static_cast<uint64_t>(std::ftell(f)) == runs.back().base + runs.back().size);
    std::vector<uint8_t> file_page(0x1000);
    std::vector<uint8_t> memory_page(0x1000);
    uint64_t pages = 0;
    for (const auto& run : runs) {
        for (uint64_t pa = run.base; pa < run.base + run.size; pa += 0x1000) {
            std::fseek(f, static_cast<long>(pa), SEEK_SET);
            REQUIRE(std::fread(file_page.data(), 1, 0x1000, f) == 0x1000);
            REQUIRE(m->read_physical(pa, memory_page) == 0x1000);
            if (file_page != memory_page) {
                FAIL("page " << pa / 0x1000 << " differs");
            }
            pages++;
        }
    }
    CHECK(pages == read_as<uint64_t>(*m, *m->address_of("nt", "MmNumberOfPhysicalPages")));
    // The holes read as zeros (and are holes where the file system keeps them so).
    std::fseek(f, 0, SEEK_SET);
    REQUIRE(std::fread(file_page.data(), 1, 0x1000, f) == 0x1000);
    CHECK(file_page == std::vector<uint8_t>(0x1000, 0));
    std::fclose(f);
    std::FILE* r = std::fopen((path + ".runs").c_str(), "r");
    REQUIRE(r != nullptr);
    char text[256] = {};
    size_t n = std::fread(text, 1, sizeof(text) - 1, r);
    std::fclose(r);
    CHECK(std::string(text, n) == "1 9e\n100 1f00\n3000 1200\n");
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    CHECK_FALSE(std::filesystem::exists(path + ".runs.tmp"));
    std::remove(path.c_str());
    std::remove((path + ".runs").c_str());
}

// ---- the workload: processes, threads, objects, the device stack (hw/SimObjects.cpp) ----

namespace {

// A virtual address through another page-table root (a user process's), read physically.
std::optional<uint64_t> translate_with(SimMachine& m, uint64_t dtb, uint64_t va) {
    uint64_t table = dtb & 0x000FFFFFFFFFF000ull;
    for (int shift : {39, 30, 21, 12}) {
        uint64_t entry = 0;
        m.read_physical(table + ((va >> shift) & 511) * 8,
                        {reinterpret_cast<uint8_t*>(&entry), sizeof(entry)});
        if ((entry & 1) == 0) {
            return std::nullopt;
        }
        table = entry & 0x000FFFFFFFFFF000ull;
    }
    return table | (va & 0xFFF);
}

template <class T> T read_user(SimMachine& m, uint64_t dtb, uint64_t va) {
    T v{};
    auto pa = translate_with(m, dtb, va);
    REQUIRE(pa.has_value());
    m.read_physical(*pa, {reinterpret_cast<uint8_t*>(&v), sizeof(v)});
    return v;
}

std::u16string read_user_ustring(SimMachine& m, uint64_t dtb, uint64_t at) {
    auto length = read_user<uint16_t>(m, dtb, at);
    auto buffer = read_user<uint64_t>(m, dtb, at + 8);
    std::u16string s(length / 2, u'\0');
    for (size_t i = 0; i < s.size(); ++i) {
        s[i] = read_user<char16_t>(m, dtb, buffer + i * 2);
    }
    return s;
}

} // namespace

TEST_CASE("workload: PsActiveProcessHead lists System and the user processes, with threads") {
    auto m = make_machine(2);
    const auto& w = m->workload();
    auto d = read_as<KDDEBUGGER_DATA64>(*m, m->kd_debugger_data_block());
    REQUIRE(w.processes.size() == 6);
    CHECK(w.processes.front().image == "System");
    CHECK(w.processes.back().image == "Idle");
    // The list, in order, is the workload minus Idle.
    std::vector<uint64_t> listed;
    for (uint64_t e = read_as<uint64_t>(*m, d.PsActiveProcessHead); e != d.PsActiveProcessHead;
         e = read_as<uint64_t>(*m, e)) {
        listed.push_back(e - SIM_EPROCESS_ACTIVE_PROCESS_LINKS);
        REQUIRE(listed.size() < 16);
    }
    REQUIRE(listed.size() == 5);
    for (size_t i = 0; i < listed.size(); ++i) {
        const auto& p = w.processes[i];
        INFO(p.image);
        CHECK(listed[i] == p.eprocess);
        CHECK(read_as<uint64_t>(*m, p.eprocess + SIM_EPROCESS_UNIQUE_PROCESS_ID) == p.pid);
        CHECK(read_as<uint64_t>(*m, p.eprocess + d.OffsetEprocessParentCID) == p.parent_pid);
        CHECK(read_as<uint64_t>(*m, p.eprocess + d.OffsetEprocessPeb) == p.peb);
        CHECK(read_as<uint64_t>(*m, p.eprocess + d.OffsetEprocessDirectoryTableBase) ==
              p.directory_table_base);
        CHECK(read_cstring(*m, p.eprocess + SIM_EPROCESS_IMAGE_FILE_NAME) == p.image);
        // The object header in front: the Process type.
        const uint64_t header = p.eprocess - SIM_OBJECT_HEADER_BODY;
        uint8_t index = read_as<uint8_t>(*m, header + SIM_OBJECT_HEADER_TYPE_INDEX);
        CHECK(index == SIM_OBJ_TYPE_PROCESS);
        uint64_t type = read_as<uint64_t>(*m, *m->address_of("nt", "ObTypeIndexTable") + index * 8);
        CHECK(type == read_as<uint64_t>(*m, *m->address_of("nt", "PsProcessType")));
        // Its threads, through EPROCESS.ThreadListHead, are the workload's.
        std::vector<uint64_t> threads;
        const uint64_t head = p.eprocess + SIM_EPROCESS_THREAD_LIST_HEAD;
        for (uint64_t e = read_as<uint64_t>(*m, head); e != head; e = read_as<uint64_t>(*m, e)) {
            threads.push_back(e - SIM_ETHREAD_THREAD_LIST_ENTRY);
            REQUIRE(threads.size() < 16);
        }
        REQUIRE(threads.size() == p.threads.size());
        for (size_t t = 0; t < threads.size(); ++t) {
            const auto& th = p.threads[t];
            CHECK(threads[t] == th.ethread);
            CHECK(read_as<uint64_t>(*m, th.ethread + SIM_ETHREAD_CID) == p.pid);
            CHECK(read_as<uint64_t>(*m, th.ethread + SIM_ETHREAD_CID + 8) == th.tid);
            CHECK(read_as<uint8_t>(*m, th.ethread + SIM_KTHREAD_STATE) == th.state);
            CHECK(read_as<uint64_t>(*m, th.ethread + d.OffsetKThreadApcProcess) == p.eprocess);
            if (th.wait_object != 0) {
                CHECK(th.state == 5);
                CHECK(read_as<uint8_t>(*m, th.ethread + d.OffsetKThreadWaitReason) ==
                      th.wait_reason);
                uint64_t block = read_as<uint64_t>(*m, th.ethread + SIM_KTHREAD_WAIT_BLOCK_LIST);
                CHECK(read_as<uint64_t>(*m, block + SIM_KWAIT_BLOCK_OBJECT) == th.wait_object);
                CHECK(read_as<uint64_t>(*m, block + SIM_KWAIT_BLOCK_THREAD) == th.ethread);
            }
        }
    }
    // System: the running kdtest thread and two waiting ones; different wait reasons overall.
    CHECK(w.processes[0].threads.size() == 3);
    std::set<uint8_t> reasons;
    for (const auto& p : w.processes) {
        for (const auto& t : p.threads) {
            if (t.state == 5) {
                reasons.insert(t.wait_reason);
            }
        }
    }
    CHECK(reasons.size() >= 5);
}

TEST_CASE("workload: a user process has its own address space with a PEB and loader list") {
    auto m = make_machine();
    const auto& w = m->workload();
    const SimProcess* svchost = nullptr;
    for (const auto& p : w.processes) {
        if (p.image == "svchost.exe") {
            svchost = &p;
        }
    }
    REQUIRE(svchost != nullptr);
    const uint64_t dtb = svchost->directory_table_base;
    CHECK(dtb != m->directory_table_base());
    CHECK(svchost->peb != 0);
    CHECK_FALSE(m->translate(svchost->peb).has_value()); // not in the kernel's tables
    // The kernel half is shared; the self-map points at the process's own PML4.
    CHECK(translate_with(*m, dtb, m->kernel_base()) == m->translate(m->kernel_base()));
    uint64_t self = 0;
    m->read_physical(dtb + layout::SELF_MAP_INDEX * 8,
                     {reinterpret_cast<uint8_t*>(&self), sizeof(self)});
    CHECK((self & 0x000FFFFFFFFFF000ull) == dtb);
    const uint64_t peb = svchost->peb;
    CHECK(read_user<uint16_t>(*m, dtb, peb + SIM_PEB_OS_BUILD_NUMBER) == 19041);
    const uint64_t params = read_user<uint64_t>(*m, dtb, peb + SIM_PEB_PROCESS_PARAMETERS);
    CHECK(read_user_ustring(*m, dtb, params + SIM_PROCESS_PARAMETERS_COMMAND_LINE) ==
          u"C:\\Windows\\system32\\svchost.exe -k netsvcs -p");
    const uint64_t ldr = read_user<uint64_t>(*m, dtb, peb + SIM_PEB_LDR);
    const uint64_t first = read_user<uint64_t>(*m, dtb, ldr + SIM_PEB_LDR_DATA_IN_LOAD_ORDER);
    CHECK(read_user_ustring(*m, dtb, first + SIM_LDR_ENTRY_BASE_DLL_NAME) == u"svchost.exe");
    const uint64_t second = read_user<uint64_t>(*m, dtb, first);
    CHECK(read_user_ustring(*m, dtb, second + SIM_LDR_ENTRY_BASE_DLL_NAME) == u"ntdll.dll");
    CHECK(read_user<uint64_t>(*m, dtb, second) == ldr + SIM_PEB_LDR_DATA_IN_LOAD_ORDER);
}

TEST_CASE("workload: kdtest's device on the PnP manager's PDO, with a pending IRP") {
    auto m = make_machine();
    const auto& w = m->workload();
    REQUIRE(w.devices.size() == 2);
    const auto& pdo = w.devices[0];
    const auto& fdo = w.devices[1];
    CHECK(fdo.name == "KdTest0");
    CHECK(fdo.attached_to == pdo.device_object);
    CHECK(fdo.driver_object == w.driver_objects.at("\\Driver\\kdtest"));
    CHECK(read_as<uint64_t>(*m, pdo.device_object + SIM_DEVICE_OBJECT_ATTACHED_DEVICE) ==
          fdo.device_object);
    uint64_t ext =
        read_as<uint64_t>(*m, fdo.device_object + SIM_DEVICE_OBJECT_DEVICE_OBJECT_EXTENSION);
    CHECK(read_as<uint64_t>(*m, ext + SIM_DEVOBJ_EXTENSION_ATTACHED_TO) == pdo.device_object);
    CHECK(read_as<uint64_t>(*m, fdo.driver_object + SIM_DRIVER_OBJECT_DEVICE_OBJECT) ==
          fdo.device_object);
    // The kdtest DRIVER_OBJECT describes kdtest.sys.
    uint64_t kdtest_base = 0;
    for (const auto& mod : m->modules()) {
        if (mod.base_name == "kdtest.sys") {
            kdtest_base = mod.base;
        }
    }
    CHECK(kdtest_base != 0);
    CHECK(read_as<uint64_t>(*m, fdo.driver_object + SIM_DRIVER_OBJECT_DRIVER_START) == kdtest_base);
    // The IRP: current at the FDO, in the waiting thread's IRP list.
    const uint64_t irp = w.pending_irp;
    REQUIRE(irp != 0);
    CHECK(read_as<uint64_t>(*m, fdo.device_object + SIM_DEVICE_OBJECT_CURRENT_IRP) == irp);
    CHECK(read_as<uint64_t>(*m, irp + SIM_IRP_TAIL_OVERLAY_THREAD) == w.pending_irp_thread);
    uint64_t location = read_as<uint64_t>(*m, irp + SIM_IRP_TAIL_OVERLAY_CURRENT_STACK_LOCATION);
    CHECK(read_as<uint8_t>(*m, location + SIM_IO_STACK_LOCATION_MAJOR_FUNCTION) == 0x0E);
    CHECK(read_as<uint64_t>(*m, location + SIM_IO_STACK_LOCATION_DEVICE_OBJECT) ==
          fdo.device_object);
    CHECK(read_as<uint64_t>(*m, w.pending_irp_thread + SIM_ETHREAD_IRP_LIST) ==
          irp + SIM_IRP_THREAD_LIST_ENTRY);
    // The thread waits on the IRP's UserEvent.
    uint64_t event = read_as<uint64_t>(*m, irp + SIM_IRP_USER_EVENT);
    uint64_t block = read_as<uint64_t>(*m, w.pending_irp_thread + SIM_KTHREAD_WAIT_BLOCK_LIST);
    CHECK(read_as<uint64_t>(*m, block + SIM_KWAIT_BLOCK_OBJECT) == event);
}

TEST_CASE("workload: nt parks the waiting and ready threads: switch frames, trap frames, ready "
          "lists") {
    auto m = make_machine(2);
    const auto& w = m->workload();
    const auto swap_context = m->address_of("nt", "SwapContext");
    const auto parked_count = m->address_of("nt", "KiSimParkedCount");
    REQUIRE(swap_context);
    REQUIRE(parked_count);
    uint32_t parked = 0;
    std::array<uint32_t, 2> summary{};
    for (const auto& p : w.processes) {
        for (const auto& t : p.threads) {
            if (t.tid == 0 || (t.state != 5 && t.state != 1)) {
                continue;
            }
            INFO(p.image << " thread " << t.tid);
            ++parked;
            const uint64_t top = read_as<uint64_t>(*m, t.ethread + SIM_KTHREAD_INITIAL_STACK);
            const uint64_t limit = read_as<uint64_t>(*m, t.ethread + SIM_KTHREAD_STACK_LIMIT);
            const uint64_t frame = read_as<uint64_t>(*m, t.ethread + SIM_KTHREAD_KERNEL_STACK);
            REQUIRE(frame > limit);
            REQUIRE(frame + SIM_KSWITCH_FRAME_SIZE <= top);
            // The switch frame returns right after a `call nt!SwapContext` (e8 rel32), as
            // Windows x64's returns into KiSwapContext.
            const uint64_t ret = read_as<uint64_t>(*m, frame + SIM_KSWITCH_FRAME_RETURN);
            CHECK(read_as<uint8_t>(*m, ret - 5) == 0xE8);
            CHECK(ret + static_cast<int64_t>(read_as<int32_t>(*m, ret - 4)) == *swap_context);
            const uint64_t trap = read_as<uint64_t>(*m, t.ethread + SIM_KTHREAD_TRAP_FRAME);
            if (t.state == 5 && t.wait_mode == 1) {
                // A user-mode wait: the system call's trap frame at the top of the stack.
                CHECK(trap == top - SIM_KTRAP_FRAME_SIZE);
                CHECK(read_as<uint64_t>(*m, trap + SIM_KTRAP_FRAME_RIP) == SIM_USER_SYSCALL_RIP);
                CHECK(read_as<uint16_t>(*m, trap + SIM_KTRAP_FRAME_SEG_CS) == 0x33);
                CHECK(read_as<uint8_t>(*m, trap + SIM_KTRAP_FRAME_PREVIOUS_MODE) == 1);
            } else {
                CHECK(trap == 0);
            }
            if (t.state == 1) {
                // A ready thread: in its processor's list at its priority.
                const uint32_t cpu = read_as<uint32_t>(*m, t.ethread + SIM_KTHREAD_NEXT_PROCESSOR);
                REQUIRE(cpu < 2);
                const uint8_t pri = read_as<uint8_t>(*m, t.ethread + SIM_KTHREAD_PRIORITY);
                summary[cpu] |= 1u << pri;
                const uint64_t head =
                    m->kprcb(cpu) + SIM_KPRCB_DISPATCHER_READY_LIST_HEAD + uint64_t{pri} * 16;
                CHECK(read_as<uint64_t>(*m, head) == t.ethread + SIM_KTHREAD_WAIT_LIST_ENTRY);
                CHECK(read_as<uint64_t>(*m, t.ethread + SIM_KTHREAD_WAIT_LIST_ENTRY) == head);
            }
        }
    }
    CHECK(parked == 9);
    CHECK(read_as<uint32_t>(*m, *parked_count) == parked);
    for (uint32_t cpu = 0; cpu < 2; ++cpu) {
        CHECK(read_as<uint32_t>(*m, m->kprcb(cpu) + SIM_KPRCB_READY_SUMMARY) == summary[cpu]);
    }
    CHECK(summary[0] == 1u << 10);
    CHECK(summary[1] == 1u << 8);
}
