// !thread / !process text from fake engine data: seed 001's thread (253-291) rebuilt field by
// field must print seed 001's lines; times, states, missing fields, broken lists.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/ThreadFormat.h"

#include <doctest/doctest.h>

using namespace kdcart;
using namespace kdcart::cli;

namespace {

// Seed 001:255-285, the x64 thread waiting in an IRP's completion.
engine::ThreadInfo seed_thread() {
    engine::ThreadInfo t;
    t.ethread = 0xfffffa800cd8a040;
    t.pid = 4;
    t.tid = 0x5c;
    t.teb = 0;
    t.win32_thread = 0;
    t.state = 5;
    t.wait_reason = 0;
    t.wait_reason_name = "Executive";
    t.wait_mode = 0;
    t.alertable = false;
    t.waits.push_back({0xfffffa800cd8a140, 0xfffff88002b0f118, 1});
    engine::IrpSummary irp;
    irp.irp = 0xfffffa8016527510;
    irp.type = 6;
    irp.size = 0x310;
    irp.flags = 0;
    irp.mdl = 0;
    t.irps.push_back(irp);
    t.process = 0xfffffa800cd56040;
    t.process_image = "System";
    t.apc_process = t.process;
    t.apc_image = "System";
    t.wait_time = 14791337;
    t.tick_count = 14791337 + 15577;
    t.time_increment = 156000; // 15.6 ms: 15577 ticks = 4:03.002
    t.context_switches = 835317;
    t.ideal_processor = 2;
    t.user_time = 0;
    t.kernel_time = 1722; // 26.863 s at 15.6 ms
    t.win32_start_address = 0xfffff8000188f530;
    t.stack_init = 0xfffff88002b0fc70;
    t.kernel_stack = 0xfffff88002b0ee30;
    t.stack_base = 0xfffff88002b10000;
    t.stack_limit = 0xfffff88002b0a000;
    t.priority = 12;
    t.base_priority = 12;
    return t;
}

SymbolNamer seed_names() {
    return [](uint64_t a) -> std::string {
        if (a == 0xfffff8000188f530) {
            return "nt!ExpWorkerThread";
        }
        return "";
    };
}

} // namespace

TEST_CASE("seed 001's thread, line by line") {
    const std::string text = format_thread(seed_thread(), seed_names(), 0);
    const std::string expected =
        "THREAD fffffa800cd8a040  Cid 0004.005c  Teb: 0000000000000000 Win32Thread: "
        "0000000000000000 WAIT: (Executive) KernelMode Non-Alertable\n"
        "    fffff88002b0f118  SynchronizationEvent\n"
        "IRP List:\n"
        "    fffffa8016527510: (0006,0310) Flags: 00000000  Mdl: 00000000\n"
        "Not impersonating\n"
        "Owning Process            fffffa800cd56040       Image:         System\n"
        "Attached Process          N/A            Image:         N/A\n"
        "Wait Start TickCount      14791337       Ticks: 15577 (0:00:04:03.001)\n"
        "Context Switch Count      835317         IdealProcessor: 2            \n"
        "UserTime                  00:00:00.000\n"
        "KernelTime                00:00:26.863\n"
        "Win32 Start Address nt!ExpWorkerThread (0xfffff8000188f530)\n"
        "Stack Init fffff88002b0fc70 Current fffff88002b0ee30\n"
        "Base fffff88002b10000 Limit fffff88002b0a000 Call 0\n"
        "Priority 12 BasePriority 12\n";
    CHECK(text == expected);
}

TEST_CASE("indent inside !process, running and ready threads, attached process") {
    auto t = seed_thread();
    t.state = 2;
    t.running_on = 1;
    t.waits.clear();
    t.irps.clear();
    t.apc_process = 0xfffffa8000001000;
    t.apc_image = "csrss.exe";
    const std::string text = format_thread(t, nullptr, 8);
    CHECK(text.rfind("        THREAD fffffa800cd8a040  Cid 0004.005c  ", 0) == 0);
    CHECK(text.find("RUNNING on processor 1\n") != std::string::npos);
    CHECK(text.find("IRP List") == std::string::npos);
    CHECK(text.find("        Attached Process          fffffa8000001000       Image:         "
                    "csrss.exe\n") != std::string::npos);
    // Without a name for the start address: the address alone.
    CHECK(text.find("        Win32 Start Address 0xfffff8000188f530\n") != std::string::npos);
    t.state = 1;
    t.next_processor = 0;
    CHECK(format_thread_line(t, 4).find("    THREAD fffffa800cd8a040  ") == 0);
    CHECK(format_thread_line(t, 4).find(" READY on processor 0\n") != std::string::npos);
    t.state = 4;
    CHECK(format_thread_line(t, 0).find(" TERMINATED\n") != std::string::npos);
}

TEST_CASE("fields the types lack are left out, broken lists are said") {
    auto t = seed_thread();
    t.wait_time.reset();
    t.context_switches.reset();
    t.user_time.reset();
    t.kernel_time.reset();
    t.win32_start_address.reset();
    t.priority.reset();
    t.irps_broken = "the entry at ffff0000dead0000 (Flink of fffffa8016527510) is not readable";
    t.waits.front().dispatcher_type.reset();
    const std::string text = format_thread(t, nullptr, 0);
    CHECK(text.find("Wait Start") == std::string::npos);
    CHECK(text.find("Context Switch") == std::string::npos);
    CHECK(text.find("UserTime") == std::string::npos);
    CHECK(text.find("Win32 Start") == std::string::npos);
    CHECK(text.find("Priority") == std::string::npos);
    CHECK(text.find("    fffff88002b0f118  <unreadable object>\n") != std::string::npos);
    CHECK(text.find("    (the IRP list is broken: the entry at ffff0000dead0000") !=
          std::string::npos);
    // Ticks 0: no age.
    t = seed_thread();
    t.tick_count = t.wait_time;
    CHECK(format_thread(t, nullptr, 0).find("Ticks: 0\n") != std::string::npos);
}

TEST_CASE("durations as WinDbg writes them") {
    CHECK(format_duration(0) == "00:00:00.000");
    CHECK(format_duration(150000) == "00:00:00.015");
    // 003:1907: ElapsedTime 1 Day 00:16:11.706
    const uint64_t day = 86400ull * 10000000;
    CHECK(format_duration(day + (16 * 60 + 11) * 10000000ull + 7060000) == "1 Day 00:16:11.706");
    CHECK(format_duration(3 * day) == "3 Days 00:00:00.000");
    CHECK(format_tick_age((4 * 60 + 3) * 10000000ull + 20000) == "(0:00:04:03.002)");
    CHECK(format_tick_age(day + 3600 * 10000000ull) == "(1:01:00:00.000)");
}

TEST_CASE("!process flag 1 details and the stack header") {
    engine::ProcessDetail d;
    d.token = 0xffffc00012345670;
    d.create_time = 1000;
    d.system_time = 1000 + 150000;
    d.user_time = 1;
    d.kernel_time = 2;
    d.time_increment = 156250;
    d.base_priority = 8;
    const std::string text = format_process_detail(d);
    CHECK(text == "    Token                             ffffc00012345670\n"
                  "    ElapsedTime                       00:00:00.015\n"
                  "    UserTime                          00:00:00.015\n"
                  "    KernelTime                        00:00:00.031\n"
                  "    BasePriority                      8\n");
    std::vector<engine::StackFrame> frames(1);
    frames[0].child_sp = 0xfffff88002b0ee70;
    frames[0].return_address = 0xfffff8000187ba32;
    frames[0].pc = 0xfffff800018ae7ba;
    const std::string stack = format_thread_stack(
        frames, [](uint64_t) { return std::string("nt!KiSwapContext+0x7a"); }, 0);
    CHECK(stack == "Child-SP          RetAddr           Call Site\n"
                   "fffff880`02b0ee70 fffff800`0187ba32 nt!KiSwapContext+0x7a\n");
}

TEST_CASE("a thread's stack through a system call: TrapFrame @ and the user-mode pc") {
    std::vector<engine::StackFrame> frames(2);
    frames[0].child_sp = 0xfffff88004bfee60;
    frames[0].return_address = 0x00007ffce5b9d0f4;
    frames[0].pc = 0xfffff80000601249;
    frames[0].machine_frame = 0xfffff88004bfefd8;
    frames[1].child_sp = 0x000000a0153ffca8;
    frames[1].pc = 0x00007ffce5b9d0f4;
    const auto name = [](uint64_t a) {
        return a >> 63 ? std::string("nt!KiSimSystemCall+0x19") : std::string();
    };
    // The trap frame from nt!_KTRAP_FRAME.Rip's offset when given, else the frame's rsp.
    CHECK(
        format_thread_stack(frames, name, 4,
                            [](const engine::StackFrame& f) { return *f.machine_frame - 0x178; }) ==
        "    Child-SP          RetAddr           Call Site\n"
        "    fffff880`04bfee60 00007ffc`e5b9d0f4 nt!KiSimSystemCall+0x19 (TrapFrame @ "
        "fffff880`04bfee60)\n"
        "    000000a0`153ffca8 00000000`00000000 0x7ffce5b9d0f4\n");
    CHECK(format_thread_stack(frames, name, 0).find("(TrapFrame @ fffff880`04bfee60)\n") !=
          std::string::npos);
}
