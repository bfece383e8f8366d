// End to end: objects, drivers, devices, IRPs, list walks, !pfn, !vm and !analyze -v of the real
// kdcart against the real kdsim, through ntoskrnl.pdb's types (kdsim's offsets differ from every
// Windows build), live and on a `.dump /f` capture opened with `kdcart -z`. Each output is
// checked against what kdsim builds (hw/SimObjects.cpp, hw/SimDirectory.cpp: \Driver\kdtest's
// FDO \Device\KdTest0 on \Driver\PnpManager's PDO \Device\00000034, the pending
// IRP_MJ_DEVICE_CONTROL with IOCTL 0x222003 at the FDO; --bugcheck-after's KeBugCheckEx(0xD1,
// &KdTestPagedFunction, 2, 0, &KdTestRaiseBugCheck) called from kdtest!KdTestRaiseBugCheck).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "hw/images/sim_abi.h"
#include "tests/e2e/Block.h"
#include "tests/e2e/Process.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <regex>
#include <sstream>

using namespace std::chrono_literals;

namespace {
const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

e2e::Process start_sim(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {kBin + "/kdcart", "--sim", "--kdsim",
                                     kBin + "/kdsim",  "-y",    kBin + "/../hw/images"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return e2e::Process(argv);
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-e2e-objects-XXXXXX";
        if (::mkdtemp(tmpl) != nullptr) {
            path = tmpl;
        }
    }
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) {
            std::filesystem::remove_all(path, ec);
        }
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Runs one command and returns what it printed up to the next prompt, without the drivers'
// DbgPrint lines and the echoed command line.
std::string block(e2e::Process& p, const std::string& command,
                  std::chrono::milliseconds timeout = 120s) {
    std::string out;
    std::istringstream in(e2e::command_output(p, command, timeout));
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("kdtest: ", 0) != 0 && line.rfind("kdlate: ", 0) != 0) {
            out += line + "\n";
        }
    }
    // The command line itself (echoed by the REPL when stdin is a pipe) is not output.
    if (out.rfind(command + "\n", 0) == 0) {
        out = out.substr(command.size() + 1);
    }
    return out;
}

// The first capture group of `re` in `text`, else a failed test.
std::string capture(const std::string& text, const std::string& re) {
    std::smatch m;
    const bool ok = std::regex_search(text, m, std::regex(re));
    REQUIRE_MESSAGE(ok, "/" << re << "/ not in:\n" << text);
    return m[1].str();
}

bool has(const std::string& text, const std::string& re) {
    return std::regex_search(text, std::regex(re));
}

uint64_t hex(const std::string& s) {
    return std::stoull(s, nullptr, 16);
}

// The object/driver/device/IRP commands whose text must be the same live and on the dump.
std::vector<std::string> object_commands(const std::string& device, const std::string& irp) {
    return {
        "!object \\Driver",    "!object \\Driver\\kdtest", "!drvobj kdtest 3", "!devobj " + device,
        "!devstack " + device, "!irp " + irp + " 1",       "!object \\Device", "!locks",
        "!sysinfo machineid"};
}

} // namespace

TEST_CASE("objects: !object, !drvobj, !devobj, !devstack, !irp, !list, !pfn live and on a "
          ".dump /f") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string file = dir / "objects.dmp";
    std::vector<std::string> live;
    std::string device, irp;
    {
        auto p = start_sim({"-b", "--sim-baud", "0"});
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 90s);

        // The root directory and \Driver, as kdsim filled them.
        auto root = block(p, "!object \\");
        CHECK(has(root, R"(Object: [0-9a-f]{16}  Type: \([0-9a-f]{16}\) Directory\n)"));
        for (const char* sub : {"Driver", "Device", "ObjectTypes"}) {
            CHECK_MESSAGE(has(root, std::string("[0-9a-f]{16} Directory {17}") + sub + "\n"),
                          sub << " in:\n"
                              << root);
        }
        auto drivers = block(p, "!object \\Driver");
        const std::string kdtest = capture(drivers, R"(([0-9a-f]{16}) Driver {20}kdtest\n)");
        const std::string pnp = capture(drivers, R"(([0-9a-f]{16}) Driver {20}PnpManager\n)");
        auto named = block(p, "!object \\Driver\\kdtest");
        CHECK(named.find("Object: " + kdtest + "  Type: (") == 0);
        CHECK(has(named, R"(\) Driver\n    ObjectHeader: [0-9a-f]{16} \(new version\)\n)"));
        CHECK(has(named, "Directory Object: [0-9a-f]{16}  Name: kdtest\n"));

        // The driver: its device, its dispatch table (every entry nt!IopInvalidDeviceRequest).
        auto drv = block(p, "!drvobj kdtest 2");
        CHECK(drv.find("Driver object (" + kdtest + ") is for:\n \\Driver\\kdtest\n") == 0);
        device = capture(drv, R"(Device Object list:\n([0-9a-f]{16})  \n)");
        CHECK(has(drv, R"(DriverEntry:   [0-9a-f]{16}\tkdtest!DriverEntry\n)"));
        CHECK(has(drv, R"(\[0e\] IRP_MJ_DEVICE_CONTROL {14}[0-9a-f]{16}\t)"
                       R"(nt!IopInvalidDeviceRequest\n)"));
        CHECK(has(drv, R"(\[1b\] IRP_MJ_PNP {25}[0-9a-f]{16}\tnt!IopInvalidDeviceRequest\n)"));
        CHECK(block(p, "!drvobj " + kdtest) == block(p, "!drvobj \\Driver\\kdtest"));

        // The FDO: named KdTest0, the pending IRP as its current IRP, attached to the PDO.
        auto dev = block(p, "!devobj " + device);
        CHECK(dev.find("Device object (" + device +
                       ") is for:\n KdTest0 \\Driver\\kdtest "
                       "DriverObject " +
                       kdtest + "\n") == 0);
        irp = capture(dev, R"(Current Irp ([0-9a-f]+) RefCount 1 Type 00000022 Flags 00002044\n)");
        const std::string pdo = capture(dev, R"(AttachedTo \(Lower\) ([0-9a-f]{16})\n)");
        CHECK(dev.find("Device queue is busy.\n") != std::string::npos);
        CHECK(block(p, "!devobj KdTest0") == dev);
        auto pdo_text = block(p, "!devobj " + pdo);
        CHECK(pdo_text.find(" 00000034 \\Driver\\PnpManager DriverObject " + pnp + "\n") !=
              std::string::npos);
        CHECK(has(pdo_text, "AttachedDevice \\(Upper\\) " + device + "\n"));

        // The stack from either device: the FDO on top, '>' at the one asked for.
        auto stack = block(p, "!devstack " + pdo);
        CHECK(has(stack, "  " + device + R"(  \\Driver\\kdtest     [0-9a-f]{16}  KdTest0\n)" +
                             "> " + pdo + R"(  \\Driver\\PnpManager [0-9a-f]{16}  00000034\n)"));

        // The IRP: two stack locations, the FDO's current, IOCTL 0x222003 from svchost.
        auto irp_text = block(p, "!irp " + irp);
        CHECK(has(irp_text, R"(^Irp is active with 2 stacks 2 is current \(= 0x[0-9a-f]{16}\)\n)"));
        CHECK(has(irp_text,
                  R"(\n>\[IRP_MJ_DEVICE_CONTROL\(e\), N/A\(0\)\]\n {12}0  1 )" + device +
                      R"( 0{16} 0{16}-0{16}    pending\n\t       \\Driver\\kdtest\n)"
                      R"(\t\t\tArgs: 0000000000000100 0000000000000020 0000000000222003 )"));
        CHECK(has(irp_text, R"(\n \[IRP_MJ_CREATE\(0\), N/A\(0\)\]\n)"));
        auto irp_detail = block(p, "!irp " + irp + " 1");
        CHECK(has(irp_detail, "RequestorMode = 00000001\n"));
        CHECK(has(irp_detail, "Flags = 00060070\n"));

        // Type checks: each command refuses what is not its object, and says why.
        CHECK(has(block(p, "!devobj " + kdtest),
                  "is not a Device object: its object header says Driver\n"));
        CHECK(has(block(p, "!drvobj " + device),
                  "is not a Driver object: its object header says Device\n"));
        CHECK(has(block(p, "!irp " + device),
                  R"(IRP signature does not match, probably not an IRP \()"));
        CHECK(has(block(p, "!object fffff80000600000"), "is not an object"));
        CHECK(has(block(p, "!object \\NoSuchDirectory"),
                  R"(\\NoSuchDirectory is not in the object directory)"));
        CHECK(has(block(p, "!drvobj nosuchdriver"), "Driver object nosuchdriver not found"));

        // !list over the active process list: the head and the five processes, then back.
        auto list = block(p, "!list -x \"dq @$extret l1\" nt!PsActiveProcessHead");
        const std::regex entry(R"([0-9a-f]{8}`[0-9a-f]{8}  [0-9a-f]{8}`[0-9a-f]{8}\n)");
        const auto lines = std::distance(std::sregex_iterator(list.begin(), list.end(), entry),
                                         std::sregex_iterator());
        CHECK(lines == 6);

        // !pfn of the page !pte names: the PFN entry points back at that PTE, inside that
        // page table's frame.
        auto pte = block(p, "!pte fffff80000600000");
        const std::string pte_at = capture(pte, R"(PTE at ([0-9A-F]{16})\n)");
        std::smatch pfns;
        REQUIRE(std::regex_search(
            pte, pfns,
            std::regex(R"(pfn ([0-9a-f]+) +\S+  pfn ([0-9a-f]+) +\S+  pfn ([0-9a-f]+) +\S+  )"
                       R"(pfn ([0-9a-f]+) +\S+\n)")));
        auto pfn = block(p, "!pfn " + pfns[4].str());
        CHECK(has(pfn, "pteaddress " + pte_at + "\n"));
        char page[16];
        std::snprintf(page, sizeof page, "%06" PRIX64, hex(pfns[3].str()));
        CHECK(has(pfn, std::string("containing page ") + page + "  Active"));
        CHECK(has(block(p, "!pfn 99999999"), "is above the highest physical page"));

        // !vm: the counters KDDEBUGGER_DATA64 reaches (kdsim's 12702 pages), labelled partial.
        auto vm = block(p, "!vm");
        CHECK(has(vm, "Physical Memory: +12702 \\(     50808 Kb\\)\n"));
        CHECK(has(vm, "\\(partial: only the counters KDDEBUGGER_DATA64 points to are shown"));
        // !sysinfo machineid: kdsim's SMBIOS table, read physically.
        auto id = block(p, "!sysinfo machineid");
        CHECK(has(id, "^Machine ID Information \\[From Smbios table at [0-9a-f]+, Size=\\d+\\]\n"));
        CHECK(id.find(std::string("BiosMajorRelease = ") + std::to_string(SIM_SMBIOS_BIOS_MAJOR) +
                      "\nBiosMinorRelease = " + std::to_string(SIM_SMBIOS_BIOS_MINOR) +
                      "\nBiosVendor = " SIM_SMBIOS_BIOS_VENDOR
                      "\nBiosVersion = " SIM_SMBIOS_BIOS_VERSION
                      "\nBiosReleaseDate = " SIM_SMBIOS_BIOS_DATE
                      "\nSystemManufacturer = " SIM_SMBIOS_SYSTEM_MANUFACTURER
                      "\nSystemProductName = " SIM_SMBIOS_SYSTEM_PRODUCT
                      "\nSystemFamily = " SIM_SMBIOS_SYSTEM_FAMILY
                      "\nSystemVersion = " SIM_SMBIOS_SYSTEM_VERSION
                      "\nSystemSKU = " SIM_SMBIOS_SYSTEM_SKU
                      "\nBaseBoardManufacturer = " SIM_SMBIOS_BOARD_MANUFACTURER
                      "\nBaseBoardProduct = " SIM_SMBIOS_BOARD_PRODUCT
                      "\nBaseBoardVersion = " SIM_SMBIOS_BOARD_VERSION "\n") != std::string::npos);
        // !locks: PiEngineLock exclusive with its contention, IopDeviceTreeLock shared, both
        // owned by the thread running on CPU 0 (System's kdtest loop), CmpRegistryLock free.
        const std::string current = capture(
            block(p, "~"), R"(\.  0  KPRCB: [0-9a-f`]{17}  Current thread: ([0-9a-f`]{17}))");
        std::string owner = current;
        owner.erase(owner.find('`'), 1);
        auto locks = block(p, "!locks");
        CHECK(has(locks, R"(Resource @ nt!PiEngineLock \(0x[0-9a-f]{16}\)    Exclusively owned\n)"
                         "    Contention Count = " +
                             std::to_string(SIM_ERESOURCE_PI_ENGINE_CONTENTION) +
                             "\n     Threads: " + owner + "-01<\\*>\n"));
        CHECK(has(locks, R"(Resource @ nt!IopDeviceTreeLock \(0x[0-9a-f]{16}\)    Shared 1 owning )"
                         "threads\n     Threads: " +
                             owner + "-01<\\*>\n"));
        CHECK(locks.find("CmpRegistryLock") == std::string::npos);
        CHECK(has(locks, "\n3 total locks, 2 locks currently held\n"));

        for (const auto& c : object_commands(device, irp)) {
            live.push_back(block(p, c));
        }
        auto d = block(p, ".dump /f " + file, 600s);
        CHECK(d.find("Dump successfully written") != std::string::npos);
        e2e::cmd(p, "q");
        CHECK(p.wait_exit(60s) == 0);
    }

    // The same objects in the dump, read through the dump's page tables.
    e2e::Process z({kBin + "/kdcart", "-z", file, "-y", kBin + "/../hw/images"});
    REQUIRE(z.started());
    EXPECT_OUT(z, "0: kd> ", 60s);
    const auto commands = object_commands(device, irp);
    for (size_t i = 0; i < commands.size(); ++i) {
        INFO(commands[i]);
        CHECK(block(z, commands[i]) == live[i]);
    }
    // .cache decodeptes: kdtest's PAGEKD page is paged out (a transition PTE: the target never
    // ran) and reads as ???????? until PTEs are decoded; then it reads what its frame holds.
    auto pte = block(z, "!pte kdtest!KdTestPagedFunction");
    const std::string frame = capture(pte, R"(\n +Transition: ([0-9a-f]+)\n)");
    CHECK(has(pte, "Protect: 3 - ExecuteRead\n"));
    auto standby = block(z, "!pfn " + frame);
    CHECK(has(standby, "containing page [0-9A-F]{6}  Standby"));
    const std::string unread = block(z, "db kdtest!KdTestPagedFunction L8");
    CHECK(has(unread, R"(  \?\? \?\? \?\? \?\? \?\? \?\? \?\? \?\?)"));
    const std::string physical = capture(block(z, "!db " + frame + "000 L8"),
                                         R"(#[0-9a-f`]+  ((?:[0-9a-f]{2}[ -]){7}[0-9a-f]{2}))");
    CHECK(has(block(z, ".cache decodeptes"), "Will decode PTEs"));
    const std::string decoded = capture(block(z, "db kdtest!KdTestPagedFunction L8"),
                                        R"(`[0-9a-f]{8}  ((?:[0-9a-f]{2}[ -]){7}[0-9a-f]{2}))");
    CHECK(decoded == physical);
    CHECK(has(block(z, ".cache nodecodeptes"), "Will not decode PTEs"));
    CHECK(block(z, "db kdtest!KdTestPagedFunction L8") == unread);
    e2e::cmd(z, "q");
    CHECK(z.wait_exit(30s) == 0);
}

TEST_CASE("!analyze -v after a real 0xD1 bug check: live and on its dump") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string file = dir / "d1.dmp";
    ::setenv("KDSIM_BUGCHECK_AFTER", "1 0xD1", 1);
    auto p = start_sim({"-b", "--sim-baud", "0"});
    ::unsetenv("KDSIM_BUGCHECK_AFTER");
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    e2e::cmd(p, "g");
    // The target's DbgPrint, then kd's own words for a bug check stop (not the break-in box).
    EXPECT_OUT(p, R"(\*\*\* Fatal System Error: 0x000000d1\n)", 120s);
    EXPECT_OUT(p,
               R"(Break instruction exception - code 80000003 \(first chance\)\n\n)"
               R"(A fatal system error has occurred\.\n)"
               R"(Debugger entered on first try; Bugcheck callbacks have not been invoked\.\n\n)"
               R"(A fatal system error has occurred\.\n\nFor analysis of this file, run )"
               R"(!analyze -v\nnt!RtlpBreakWithStatusInstruction:\n)",
               30s);
    EXPECT_OUT(p, kPrompt, 30s);
    CHECK(p.transcript().find("THIS IS NOT A BUG OR A SYSTEM CRASH") ==
          p.transcript().rfind("THIS IS NOT A BUG OR A SYSTEM CRASH")); // only the -b break-in

    const std::string faulting =
        capture(block(p, "? kdtest!KdTestRaiseBugCheck"), R"(= ([0-9a-f]{8}`[0-9a-f]{8}))");
    auto v = block(p, "!analyze -v");
    CHECK(has(v, R"(DRIVER_IRQL_NOT_LESS_OR_EQUAL \(d1\)\n)"));
    CHECK(has(v, R"(\nPROCESS_NAME:  System\n\nCURRENT_IRQL:  0\n\n)"));
    // P4 is kdtest!KdTestRaiseBugCheck: the faulting IP and its instruction.
    CHECK(has(v, "\nFAULTING_IP: \nkdtest!KdTestRaiseBugCheck\\+0\n" + faulting + " "));
    // The unwinder's stack in kb's columns: the break, KeBugCheckEx, then kdtest.
    CHECK(has(v, R"(\nSTACK_TEXT:  \n)"
                 R"([0-9a-f`]{17} [0-9a-f`]{17} : [0-9a-f`]{17} [0-9a-f`]{17} [0-9a-f`]{17} )"
                 R"([0-9a-f`]{17} : nt!RtlpBreakWithStatusInstruction\n)"
                 R"(.* : nt!KeBugCheckEx\+0x[0-9a-f]+\n)"
                 R"(.* : kdtest!KdTestRaiseBugCheck\+0x([0-9a-f]+)\n)"
                 R"(.* : kdtest!KdTestLoop\+0x[0-9a-f]+\n)"));
    const std::string offset = capture(v, R"(: kdtest!KdTestRaiseBugCheck\+0x([0-9a-f]+)\n)");
    // The followup: frame 2, the first outside the bug-check path, and the output says so.
    CHECK(has(v, "\nFOLLOWUP_IP: \nkdtest!KdTestRaiseBugCheck\\+" + offset + "\n"));
    CHECK(has(v, "\nSYMBOL_STACK_INDEX:  2\n\nSYMBOL_NAME:  kdtest!KdTestRaiseBugCheck\\+" +
                     offset +
                     "\n\nFOLLOWUP_NAME:  MachineOwner\n\nMODULE_NAME: kdtest\n\n"
                     "IMAGE_NAME:  kdtest.sys\n"));
    CHECK(has(v, "\nFAILURE_BUCKET_ID:  0xD1_kdtest!KdTestRaiseBugCheck\n"));
    CHECK(has(v, R"(\nFOLLOWUP_RULE:  frame 02, the first frame outside the kernel's bug-check )"
                 R"(path .*; passed over: nt!RtlpBreakWithStatusInstruction, )"
                 R"(nt!KeBugCheckEx\+[0-9a-f]+\n)"));
    CHECK(has(v, "\nFollowup:     MachineOwner\n---------\n"));
    auto brief = block(p, "!analyze");
    CHECK(has(brief, R"(BugCheck D1, \{fffff880[0-9a-f]{8}, 2, 0, fffff880[0-9a-f]{8}\})"));
    CHECK(has(brief, "Probably caused by : kdtest.sys \\( kdtest!KdTestRaiseBugCheck\\+" + offset +
                         " \\)\n"));

    auto d = block(p, ".dump /f " + file, 600s);
    CHECK(d.find("Dump successfully written") != std::string::npos);
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);

    // On the dump: the header's bug check, the same analysis.
    e2e::Process z({kBin + "/kdcart", "-z", file, "-y", kBin + "/../hw/images"});
    REQUIRE(z.started());
    EXPECT_OUT(z, "0: kd> ", 60s);
    auto dv = block(z, "!analyze -v");
    const auto body = [](const std::string& text) {
        return text.substr(text.find("BUGCHECK_CODE"));
    };
    REQUIRE(dv.find("BUGCHECK_CODE") != std::string::npos);
    REQUIRE(v.find("BUGCHECK_CODE") != std::string::npos);
    CHECK(body(dv) == body(v));
    e2e::cmd(z, "q");
    CHECK(z.wait_exit(30s) == 0);
}

TEST_CASE("!analyze -v after .crash: MANUALLY_INITIATED_CRASH, no followup outside the path") {
    auto p = start_sim({"-b", "--sim-baud", "0"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    CHECK(has(block(p, "!analyze -v"), "No bug check to analyze"));
    e2e::cmd(p, ".crash");
    EXPECT_OUT(p, R"(For analysis of this file, run !analyze -v\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    auto v = block(p, "!analyze -v");
    CHECK(has(v, R"(MANUALLY_INITIATED_CRASH \(e2\)\n)"));
    CHECK(has(v, R"(STACK_TEXT:  \n.*nt!RtlpBreakWithStatusInstruction\n.*nt!KeBugCheckEx)"));
    CHECK(has(v, "FAILURE_BUCKET_ID:  MANUALLY_INITIATED_CRASH"));
    CHECK(has(v, "FOLLOWUP_RULE:  "));
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}

TEST_CASE("objects: corrupted structures are reported where they broke, the session goes on") {
    auto p = start_sim({"-b", "--sim-baud", "0"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 90s);
    auto drivers = block(p, "!object \\Driver");
    const std::string kdtest = capture(drivers, R"(([0-9a-f]{16}) Driver {20}kdtest\n)");
    const std::string pnp = capture(drivers, R"(([0-9a-f]{16}) Driver {20}PnpManager\n)");
    const std::string fdo =
        capture(block(p, "!drvobj kdtest"), R"(Device Object list:\n([0-9a-f]{16})  \n)");
    const std::string irp =
        capture(block(p, "!devobj " + fdo), R"(Current Irp ([0-9a-f]+) RefCount)");
    auto hex_of = [](uint64_t v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%" PRIx64, v);
        return std::string(buf);
    };

    // A device list that loops: the device is listed once and the loop named.
    block(p, "eq " + fdo + "+" + hex_of(SIM_DEVICE_OBJECT_NEXT_DEVICE) + " " + fdo);
    auto drv = block(p, "!drvobj kdtest");
    CHECK(drv.find("Device Object list:\n" + fdo + "  \n") != std::string::npos);
    CHECK(has(drv, "the device list is broken: the NextDevice chain loops at " + fdo));

    // A device object whose Size is smaller than _DEVICE_OBJECT (kdsim: USHORT Size at +2).
    block(p, "ew " + fdo + "+2 8");
    CHECK(has(block(p, "!devobj " + fdo), "_DEVICE_OBJECT.Size is 8, not >= [0-9a-f]+\n"));

    // An IRP whose StackCount does not fit its Size is refused.
    block(p, "eb " + irp + "+" + hex_of(SIM_IRP_STACK_COUNT) + " 7f");
    CHECK(has(block(p, "!irp " + irp),
              "is probably not an IRP: 127 stack locations do not fit its Size"));

    // An object whose header names no type: the directory still lists the others, and the
    // object itself is refused with the check that failed.
    block(p, "eb " + pnp + "-" + hex_of(SIM_OBJECT_HEADER_BODY) + "+" +
                 hex_of(SIM_OBJECT_HEADER_TYPE_INDEX) + " 3f");
    auto broken = block(p, "!object \\Driver");
    CHECK(has(broken, kdtest + R"( Driver {20}kdtest\n)"));
    CHECK(has(broken, pnp + " \\? +<" + pnp +
                          " is not an object: type index 63 is not an "
                          "object type>\n"));
    CHECK(has(block(p, "!drvobj " + pnp), "is not an object: type index 63 is not an object type"));

    // A LIST_ENTRY chain that loops without coming back to its head: bounded and reported.
    auto list = block(p, "!list -x \"dq @$extret l1\" nt!PsActiveProcessHead");
    std::vector<std::string> entries;
    const std::regex entry(R"(([0-9a-f]{8})`([0-9a-f]{8})  [0-9a-f]{8}`[0-9a-f]{8}\n)");
    for (auto it = std::sregex_iterator(list.begin(), list.end(), entry);
         it != std::sregex_iterator(); ++it) {
        entries.push_back((*it)[1].str() + (*it)[2].str());
    }
    REQUIRE(entries.size() == 6);
    block(p, "eq " + entries[3] + " " + entries[2]);
    auto looped = block(p, "!list -x \"dq @$extret l1\" nt!PsActiveProcessHead");
    CHECK(has(looped, "The list loops at " + entries[2].substr(entries[2].find_first_not_of('0')) +
                          " \\(it does not come back to "));
    // The session goes on.
    CHECK(has(block(p, "? 1+1"), "Evaluate expression: 2 = "));
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
