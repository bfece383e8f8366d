// The text of !analyze -v's body, !object, !drvobj, !devobj, !devstack, !irp, !pfn, !vm,
// !sysinfo machineid and !locks from fake engine data, against the seeds' listings where they
// have one (000:103-253, 001:1209-1234, 003:1550-1586, 003:7-15, 001:223-244), and the followup
// rule of engine/BugCheckAnalysis on a seed-like stack.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/AnalyzeFormat.h"
#include "cli/ObjectFormat.h"
#include "cli/SystemFormat.h"

#include <cstring>
#include <doctest/doctest.h>

using namespace kdcart;
using namespace kdcart::cli;

namespace {

engine::AnalysisFrame frame(uint64_t sp, uint64_t ret, uint64_t pc, std::string module,
                            std::string name, uint64_t disp,
                            std::array<std::optional<uint64_t>, 4> args = {0, 0, 0, 0}) {
    engine::AnalysisFrame f;
    f.frame.child_sp = sp;
    f.frame.return_address = ret;
    f.frame.pc = pc;
    f.args = args;
    f.symbol = engine::SymbolMatch{std::move(module), std::move(name), pc - disp, disp};
    return f;
}

// Seed 000's STACK_TEXT (000:164-174).
engine::BugCheckAnalysis seed_000() {
    engine::BugCheckAnalysis a;
    a.code = 0xEF;
    a.params = {0xffffd18c66891580ull, 0, 0, 0};
    a.stack = {
        frame(0xffffbc88eeb10938ull, 0xfffff800a7187101ull, 0xfffff800a6bb2490ull, "nt",
              "KeBugCheckEx", 0, {0xef, 0xffffd18c66891580ull, 0, 0}),
        frame(0xffffbc88eeb10940ull, 0xfffff800a70c818dull, 0xfffff800a7187101ull, "nt",
              "PspCatchCriticalBreak", 0xfd),
        frame(0xffffbc88eeb109e0ull, 0xfffff800a6fb6488ull, 0xfffff800a70c818dull, "nt",
              "PspTerminateAllThreads", 0x112471),
        frame(0xffffbc88eeb10a50ull, 0xfffff800a6fb7fd1ull, 0xfffff800a6fb6488ull, "nt",
              "PspTerminateProcess", 0xe0),
        frame(0xffffbc88eeb10a90ull, 0xfffff800a6bc2b43ull, 0xfffff800a6fb7fd1ull, "nt",
              "NtTerminateProcess", 0xa9),
        frame(0xffffbc88eeb10b00ull, 0x00007ff9cbf2a474ull, 0xfffff800a6bc2b43ull, "nt",
              "KiSystemServiceCopyEnd", 0x13),
        frame(0x000000235136f6c8ull, 0x00007ff6eb571704ull, 0x00007ff9cbf2a474ull, "ntdll",
              "NtTerminateProcess", 0x14),
    };
    return a;
}

std::string image_of(std::string_view m) {
    return m == "nt" ? "ntkrnlmp.exe" : std::string(m) + (m == "ntdll" ? ".dll" : ".sys");
}

} // namespace

TEST_CASE("!analyze -v: STACK_TEXT lines in the seed's columns (000:164-165)") {
    auto a = seed_000();
    CHECK(format_analyze_stack_line(a.stack[0]) ==
          "ffffbc88`eeb10938 fffff800`a7187101 : 00000000`000000ef ffffd18c`66891580 "
          "00000000`00000000 00000000`00000000 : nt!KeBugCheckEx\n");
    a.stack[1].args = {std::nullopt, 1, 2, 3};
    CHECK(format_analyze_stack_line(a.stack[1]) ==
          "ffffbc88`eeb10940 fffff800`a70c818d : ????????`???????? 00000000`00000001 "
          "00000000`00000002 00000000`00000003 : nt!PspCatchCriticalBreak+0xfd\n");
}

TEST_CASE("!analyze -v: the followup rule skips the bug-check path and says so") {
    auto a = seed_000();
    engine::choose_followup(a, image_of);
    REQUIRE(a.followup.has_value());
    CHECK(*a.followup == 1); // PspCatchCriticalBreak: the first frame past KeBugCheckEx
    CHECK(a.symbol_name == "nt!PspCatchCriticalBreak+fd");
    CHECK(a.module_name == "nt");
    CHECK(a.image_name == "ntkrnlmp.exe");
    CHECK(a.bucket_id == "0xEF_nt!PspCatchCriticalBreak");
    CHECK(a.followup_reason.find("frame 01") == 0);
    CHECK(a.followup_reason.find("passed over: nt!KeBugCheckEx") != std::string::npos);

    // kdsim's live stop: the debugger break, KeBugCheckEx, then the driver.
    engine::BugCheckAnalysis k;
    k.code = 0xD1;
    k.stack = {
        frame(0x1000, 0x2000, 0xfffff80000601000ull, "nt", "RtlpBreakWithStatusInstruction", 0),
        frame(0x1008, 0x3000, 0xfffff80000601230ull, "nt", "KeBugCheckEx", 0x30),
        frame(0x1050, 0x4000, 0xfffff8800120101cull, "kdtest", "KdTestRaiseBugCheck", 0x1c),
        frame(0x1090, 0x5000, 0xfffff88001201100ull, "kdtest", "KdTestLoop", 0x40)};
    engine::choose_followup(k, image_of);
    REQUIRE(k.followup.has_value());
    CHECK(*k.followup == 2);
    CHECK(k.symbol_name == "kdtest!KdTestRaiseBugCheck+1c");
    CHECK(k.image_name == "kdtest.sys");
    CHECK(k.bucket_id == "0xD1_kdtest!KdTestRaiseBugCheck");

    // Only the bug check path: no followup, and it says why.
    engine::BugCheckAnalysis only;
    only.code = 0xE2;
    only.stack = {k.stack[0], k.stack[1]};
    engine::choose_followup(only, image_of);
    CHECK_FALSE(only.followup.has_value());
    CHECK(only.bucket_id == "MANUALLY_INITIATED_CRASH");
    CHECK(only.followup_reason.find("bug-check path") != std::string::npos);

    CHECK(engine::on_bugcheck_path({"nt", "KiPageFault", 0, 0x3f}));
    CHECK(engine::on_bugcheck_path({"nt", "KiGeneralProtectionFault", 0, 0}));
    CHECK_FALSE(engine::on_bugcheck_path({"nt", "KiSystemServiceCopyEnd", 0, 0}));
    CHECK_FALSE(engine::on_bugcheck_path({"kdtest", "KeBugCheckEx", 0, 0}));
}

TEST_CASE("!analyze -v: the FOLLOWUP_IP block in the seed's text (000:186-208)") {
    auto a = seed_000();
    a.followup = 6;
    a.symbol_name = "ntdll!NtTerminateProcess+14";
    a.module_name = "ntdll";
    a.image_name = "ntdll.dll";
    a.bucket_id = "0xEF_ntdll!NtTerminateProcess";
    a.process_name = "csrss.exe";
    a.irql = 0;
    a.followup_reason = "frame 06";
    AnalyzeCode code;
    code.followup_instruction = "00007ff9`cbf2a474 c3              ret";
    code.fault_instr_code = 0xc32ecdc3;
    const std::string body = format_analyze_body(a, code);
    CHECK(body.find("PROCESS_NAME:  csrss.exe\n\nCURRENT_IRQL:  0\n\n") == 0);
    CHECK(body.find("LAST_CONTROL_TRANSFER:  from fffff800a7187101 to fffff800a6bb2490\n") !=
          std::string::npos);
    CHECK(body.find("STACK_TEXT:  \nffffbc88`eeb10938 fffff800`a7187101 : ") != std::string::npos);
    CHECK(body.find("ntdll!NtTerminateProcess+0x14\n\n\nSTACK_COMMAND:  kb\n\n") !=
          std::string::npos);
    CHECK(body.find("FOLLOWUP_IP: \nntdll!NtTerminateProcess+14\n00007ff9`cbf2a474 c3        "
                    "      ret\n\nFAULT_INSTR_CODE:  c32ecdc3\n\nSYMBOL_STACK_INDEX:  6\n\n"
                    "SYMBOL_NAME:  ntdll!NtTerminateProcess+14\n\nFOLLOWUP_NAME:  MachineOwner\n\n"
                    "MODULE_NAME: ntdll\n\nIMAGE_NAME:  ntdll.dll\n\n") != std::string::npos);
    CHECK(body.find("FAILURE_BUCKET_ID:  0xEF_ntdll!NtTerminateProcess\n") != std::string::npos);
    const std::string tail = "Followup:     MachineOwner\n---------\n\n";
    REQUIRE(body.size() > tail.size());
    CHECK(body.substr(body.size() - tail.size()) == tail);

    // What could not be read is said, not guessed.
    a.process_name.reset();
    a.process_note = "no types";
    a.irql.reset();
    a.irql_source = "no KPRCB";
    const std::string unknown = format_analyze_body(a, code);
    CHECK(unknown.find("PROCESS_NAME:  <unknown: no types>\n") == 0);
    CHECK(unknown.find("CURRENT_IRQL:  <unknown: no KPRCB>\n") != std::string::npos);
}

TEST_CASE("!analyze banner: 000:104-109") {
    CHECK(format_analyze_banner() ==
          "*******************************************************************************\n"
          "*                                                                             *\n"
          "*                        Bugcheck Analysis                                    *\n"
          "*                                                                             *\n"
          "*******************************************************************************\n\n");
}

TEST_CASE("!object: a named object and a directory") {
    engine::ObjectHeaderInfo o;
    o.object = 0xfffffa8000123450ull;
    o.header = o.object - 0x38;
    o.type_object = 0xfffffa8000001000ull;
    o.type_name = "Driver";
    o.pointer_count = 2;
    o.handle_count = 1;
    o.name = "kdtest";
    o.directory = 0xfffffa8000200000ull;
    CHECK(format_object(o, nullptr) == "Object: fffffa8000123450  Type: (fffffa8000001000) Driver\n"
                                       "    ObjectHeader: fffffa8000123418 (new version)\n"
                                       "    HandleCount: 1  PointerCount: 2\n"
                                       "    Directory Object: fffffa8000200000  Name: kdtest\n");
    engine::DirectoryListing dir;
    dir.entries = {{3, 0xfffffa8000123450ull, "Driver", "kdtest"},
                   {3, 0xfffffa8000123990ull, "Driver", "PnpManager"},
                   {20, 0xfffffa8000124000ull, "Device", "KdTest0"}};
    o.type_name = "Directory";
    const std::string text = format_object(o, &dir);
    CHECK(text.find("\n    Hash Address          Type                      Name\n"
                    "    ---- -------          ----                      ----\n"
                    "     03  fffffa8000123450 Driver                    kdtest\n"
                    "         fffffa8000123990 Driver                    PnpManager\n"
                    "     20  fffffa8000124000 Device                    KdTest0\n") !=
          std::string::npos);
}

TEST_CASE("!devobj and !devstack: 001:1209-1234 in x64 widths") {
    engine::DeviceInfo top;
    top.object = 0xfffffa804a3b0060ull;
    top.driver = 0xfffffa80491fb7c0ull;
    top.driver_name = "\\FileSystem\\FltMgr";
    top.device_type = 8;
    top.flags = 0x40000;
    top.device_extension = 0xfffffa804a3b01b0ull;
    top.devobj_extension = 0xfffffa804a3b0208ull;
    top.attached_to = 0xfffffa804a3b1030ull;
    const std::string d = format_device(top);
    CHECK(d.find("Device object (fffffa804a3b0060) is for:\n  \\FileSystem\\FltMgr DriverObject "
                 "fffffa80491fb7c0\n") == 0);
    CHECK(d.find("Current Irp 00000000 RefCount 0 Type 00000008 Flags 00040000\n") !=
          std::string::npos);
    CHECK(d.find("DevExt fffffa804a3b01b0 DevObjExt fffffa804a3b0208 \n") != std::string::npos);
    CHECK(d.find("AttachedTo (Lower) fffffa804a3b1030\n") != std::string::npos);
    CHECK(d.find("Device queue is not busy.\n") != std::string::npos);
    engine::DeviceInfo below;
    below.object = 0xfffffa804a3b1030ull;
    below.driver_name = "\\FileSystem\\Ntfs";
    below.device_extension = 0xfffffa804a3b1180ull;
    CHECK(format_device_stack({top, below}, top.object) ==
          "  !DevObj           !DrvObj            !DevExt           ObjectName\n"
          "> fffffa804a3b0060  \\FileSystem\\FltMgr fffffa804a3b01b0  \n"
          "  fffffa804a3b1030  \\FileSystem\\Ntfs   fffffa804a3b1180  \n");
}

TEST_CASE("!irp: 003:2694-2708's layout with x64 widths and names") {
    engine::IrpInfo r;
    r.irp = 0xfffffa8000300000ull;
    r.stack_count = 2;
    r.current_location = 2;
    r.current_stack_location = 0xfffffa8000300148ull;
    r.thread = 0xfffffa8000400000ull;
    r.system_buffer = 0x000000a033808000ull;
    engine::IrpStackLocation l1;
    l1.number = 1;
    engine::IrpStackLocation l2;
    l2.number = 2;
    l2.major = 0x0e;
    l2.control = 0xe1;
    l2.device = 0xfffffa8000500000ull;
    l2.driver_name = "\\Driver\\kdtest";
    l2.completion = 0xfffff88001201234ull;
    l2.args = {0x100, 0x20, 0x222003, 0xa033808000ull};
    r.locations = {l1, l2};
    const std::string t = format_irp(r, false, [](uint64_t a) -> std::optional<std::string> {
        if (a == 0xfffff88001201234ull) {
            return "kdtest!KdTestComplete";
        }
        return std::nullopt;
    });
    CHECK(t.find("Irp is active with 2 stacks 2 is current (= 0xfffffa8000300148)\n No Mdl: "
                 "System buffer=000000a033808000: Thread fffffa8000400000:  Irp stack trace.  \n"
                 "     cmd  flg cl Device   File     Completion-Context\n"
                 " [IRP_MJ_CREATE(0), N/A(0)]\n") == 0);
    CHECK(t.find(">[IRP_MJ_DEVICE_CONTROL(e), N/A(0)]\n            0 e1 fffffa8000500000 "
                 "0000000000000000 fffff88001201234-0000000000000000    Success Error Cancel "
                 "pending\n\t       \\Driver\\kdtest\tkdtest!KdTestComplete\n\t\t\tArgs: "
                 "0000000000000100 0000000000000020 0000000000222003 000000a033808000\n") !=
          std::string::npos);
    CHECK(irp_minor_name(0x1b, 0x07) == "IRP_MN_QUERY_DEVICE_RELATIONS");
    CHECK(irp_minor_name(0x16, 0x02) == "IRP_MN_SET_POWER");
    CHECK(irp_major_name(0x1b) == "IRP_MJ_PNP");
    CHECK(irp_major_name(0x30) == "IRP_MJ_0x30");
    // !irp ADDR 1: the fields first.
    const std::string d = format_irp(r, true, [](uint64_t) { return std::nullopt; });
    CHECK(d.find("Flags = 00000000\nThreadListEntry.Flink = ") != std::string::npos);
}

TEST_CASE("!drvobj with flag 2: dispatch routines with symbols") {
    engine::DriverInfo d;
    d.object = 0xfffffa8000600000ull;
    d.name = "\\Driver\\kdtest";
    d.devices = {0xfffffa8000500000ull};
    d.driver_init = 0xfffff88001201000ull;
    d.major_functions.assign(28, 0xfffff80000601234ull);
    auto sym = [](uint64_t a) -> std::optional<std::string> {
        if (a == 0xfffff80000601234ull) {
            return "nt!IopInvalidDeviceRequest";
        }
        return std::nullopt;
    };
    CHECK(format_driver(d, 1, sym) == "Driver object (fffffa8000600000) is for:\n"
                                      " \\Driver\\kdtest\n\n"
                                      "Driver Extension List: (id , addr)\n\n"
                                      "Device Object list:\nfffffa8000500000  \n");
    const std::string full = format_driver(d, 3, sym);
    CHECK(full.find("DriverEntry:   fffff88001201000\t\n") != std::string::npos);
    CHECK(full.find("AddDevice:     <unknown>\t\n") != std::string::npos);
    CHECK(full.find("[0e] IRP_MJ_DEVICE_CONTROL              fffff80000601234\t"
                    "nt!IopInvalidDeviceRequest\n") != std::string::npos);
    CHECK(full.find("[1b] IRP_MJ_PNP") != std::string::npos);
}

TEST_CASE("!pfn and !vm text") {
    engine::PfnEntry p;
    p.pfn = 0x1234;
    p.address = 0xfffffa0000036cc0ull;
    p.flink = 0;
    p.blink = 1;
    p.pte_address = 0xfffff6fb7dbed000ull;
    p.reference_count = 1;
    p.page_location = 6;
    p.modified = 1;
    p.original_pte = 0x80;
    p.pte_frame = 0x187;
    CHECK(format_pfn(p) ==
          "    PFN 00001234 at address FFFFFA0000036CC0\n"
          "    flink       00000000  blink / share count 00000001  pteaddress FFFFF6FB7DBED000\n"
          "    reference count 0001   Cached     color 0   Priority 0\n"
          "    restore pte 00000080  containing page 000187  Active     M\n"
          "    Modified\n");
    engine::VmCounters vm;
    vm.counters = {{"MmNumberOfPhysicalPages", 12580300, true},
                   {"MmAvailablePages", 4606721, true}};
    vm.missing = {"MmTotalCommitLimit"};
    const std::string v = format_vm(vm);
    // 001:97-107's columns.
    CHECK(v.find("\t  Physical Memory:    12580300 (  50321200 Kb)\n") != std::string::npos);
    CHECK(v.find("\t  Available Pages:     4606721 (  18426884 Kb)\n") != std::string::npos);
    CHECK(v.find("not reachable on this target: MmTotalCommitLimit") != std::string::npos);
}

TEST_CASE("!sysinfo machineid: SMBIOS types 0, 1, 2 (003:7-15)") {
    std::vector<uint8_t> t;
    // Type 0: vendor 1, version 2, date 3, releases 3.1
    std::vector<uint8_t> bios(0x18, 0);
    bios[0] = 0;
    bios[1] = 0x18;
    bios[4] = 1;
    bios[5] = 2;
    bios[8] = 3;
    bios[0x14] = 3;
    bios[0x15] = 1;
    t.insert(t.end(), bios.begin(), bios.end());
    for (const char* s : {"Xen", "3.1.0", "01/01/2008"}) {
        t.insert(t.end(), s, s + std::strlen(s) + 1);
    }
    t.push_back(0);
    std::vector<uint8_t> sys(0x1b, 0);
    sys[0] = 1;
    sys[1] = 0x1b;
    sys[4] = 1;
    sys[5] = 2;
    sys[6] = 3;
    t.insert(t.end(), sys.begin(), sys.end());
    for (const char* s : {"Xen", "HVM domU", "3.1.0"}) {
        t.insert(t.end(), s, s + std::strlen(s) + 1);
    }
    t.push_back(0);
    t.insert(t.end(), {127, 4, 0, 0, 0, 0});
    auto id = engine::parse_smbios(t);
    CHECK_FALSE(id.broken.has_value());
    const std::string text = format_machine_id(id, 0xf0000, static_cast<uint32_t>(t.size()));
    CHECK(text.find("BiosMajorRelease = 3\nBiosMinorRelease = 1\nBiosVendor = Xen\n"
                    "BiosVersion = 3.1.0\nBiosReleaseDate = 01/01/2008\n"
                    "SystemManufacturer = Xen\nSystemProductName = HVM domU\nSystemFamily = \n"
                    "SystemVersion = 3.1.0\n") != std::string::npos);
    // A truncated table: what came before, and where it broke.
    std::vector<uint8_t> cut(t.begin(), t.begin() + 0x18 + 5);
    auto broken = engine::parse_smbios(cut);
    CHECK(broken.broken.has_value());
}

TEST_CASE("!locks text: 001:223-244 in x64 widths") {
    engine::LockScan scan;
    scan.total = 84372;
    engine::HeldResource shared;
    shared.address = 0xfffff80001a81c80ull;
    shared.active_count = 1;
    shared.owners = {{0xfffffa800cd8a040ull, 1}};
    engine::HeldResource excl = shared;
    excl.address = 0xfffff80001a81b80ull;
    excl.exclusive = true;
    excl.contention_count = 6;
    scan.held = {shared, excl};
    const std::string t = format_locks(scan, [](uint64_t a) -> std::optional<std::string> {
        return a == 0xfffff80001a81c80ull ? std::optional<std::string>("nt!IopDeviceTreeLock")
                                          : std::nullopt;
    });
    CHECK(t.find("Resource @ nt!IopDeviceTreeLock (0xfffff80001a81c80)    Shared 1 owning "
                 "threads\n     Threads: fffffa800cd8a040-01<*>\n") != std::string::npos);
    CHECK(t.find("Resource @ 0xfffff80001a81b80 (0xfffff80001a81b80)    Exclusively owned\n"
                 "    Contention Count = 6\n") != std::string::npos);
    CHECK(t.find("84372 total locks, 2 locks currently held\n") != std::string::npos);
}
