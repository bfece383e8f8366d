// Tests of the simulated Windows x64 machine (hw/SimMachine) and its PE images.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "hw/PeImage.h"
#include "hw/SimMachine.h"
#include "hw/images/sim_abi.h"
#include "protocol/dbgkd_structs.h"

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace kdcart;
using namespace kdcart::hw;
using namespace kdcart::protocol;
using namespace std::chrono_literals;

namespace {

enum class BootPrints { Keep, Drain };

// A booted machine. With Drain, the DbgPrint queued during boot (kdtest's DriverEntry) is
// taken off first, so the next run() executes code.
std::unique_ptr<SimMachine> make_machine(uint32_t cpus = 1, BootPrints prints = BootPrints::Drain) {
    SimConfig cfg;
    cfg.cpus = cpus;
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
    for (auto name : {"KdTestCompute", "KdTestUpdate", "KdTestCounter", "KdTestLoop"}) {
        CHECK_MESSAGE(drv->export_rva(name).has_value(), name);
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
    CHECK(read_as<uint64_t>(*m, links) == head);

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
