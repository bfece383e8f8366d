// End to end: processes and threads through ntoskrnl.pdb's types (kdsim's offsets differ from
// every real build, so only field names read them right): !process 0 7 with each thread's wait
// as kdsim set it up (hw/README.md "Kernel objects": System 8 running, 0x18 WrQueue on a queue,
// 0x1c Executive on an event; smss 0x158 UserRequest UserMode Alertable on csrss's process;
// csrss 0x1cc WrLpcReceive, 0x1d0 DelayExecution Alertable on a timer; services 0x284
// UserRequest; svchost 0x33c Executive on the pending IRP's event with the IRP in its IrpList,
// 0x340 Ready), !thread, type checks on wrong addresses, .process /p + !peb (svchost's command
// line through its own page tables), .thread + r + k, !running; then the same commands on a
// dump captured with .dump /f must print the same text.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "hw/images/sim_abi.h"
#include "tests/e2e/Block.h"
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {
const std::string kBin = KDCART_BIN_DIR;

// One command line's output up to the next prompt, without kdsim's log lines.
std::string block(e2e::Process& p, const std::string& command,
                  std::chrono::milliseconds timeout = 120s) {
    return e2e::command_output(p, command, timeout);
}

bool has(const std::string& text, const std::string& re) {
    return std::regex_search(text, std::regex(re));
}

std::string capture(const std::string& text, const std::string& re) {
    std::smatch m;
    if (std::regex_search(text, m, std::regex(re)) && m.size() > 1) {
        return m[1].str();
    }
    return "";
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-e2e-threads-XXXXXX";
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
};

// The commands whose text must be the same live and on the dump, with their checks.
struct Checks {
    std::string svchost, system_thread, irp_thread;
    std::vector<std::string> commands() const {
        return {"!process 0 7",
                "!thread " + irp_thread,
                "!thread " + svchost,
                "!process " + system_thread + " 0",
                ".process /p " + svchost,
                "!peb",
                ".thread " + system_thread,
                "r",
                "k",
                ".thread",
                "!process 0 0 services.exe",
                "!running"};
    }
};

void check_outputs(const std::vector<std::string>& out, const Checks& c) {
    const std::string& all = out[0];
    INFO(all);
    // Every process, then its threads with the waits kdsim set up.
    for (const char* image : {"System", "smss.exe", "csrss.exe", "services.exe", "svchost.exe"}) {
        CHECK(has(all, std::string("    Image: ") + image + "\n"));
    }
    CHECK(has(all, R"(        THREAD [0-9a-f]{16}  Cid 0004\.0008  Teb: 0{16} Win32Thread: 0{16} )"
                   R"(RUNNING on processor 0\n)"));
    CHECK(has(all, R"(Cid 0004\.0018  .* WAIT: \(WrQueue\) KernelMode Non-Alertable\n)"
                   R"(            [0-9a-f]{16}  QueueObject\n)"));
    CHECK(has(all, R"(Cid 0004\.001c  .* WAIT: \(Executive\) KernelMode Non-Alertable\n)"
                   R"(            [0-9a-f]{16}  NotificationEvent\n)"));
    CHECK(has(all, R"(Cid 0154\.0158  .* WAIT: \(UserRequest\) UserMode Alertable\n)"
                   R"(            [0-9a-f]{16}  ProcessObject\n)"));
    CHECK(has(all, R"(Cid 01c8\.01cc  .* WAIT: \(WrLpcReceive\) )"));
    CHECK(has(all, R"(Cid 01c8\.01d0  .* WAIT: \(DelayExecution\) UserMode Alertable\n)"
                   R"(            [0-9a-f]{16}  \w+Timer\n)"));
    CHECK(has(all, R"(Cid 0280\.0284  .* WAIT: \(UserRequest\) )"));
    CHECK(has(all, R"(Cid 0338\.033c  .* WAIT: \(Executive\) KernelMode Non-Alertable\n)"
                   R"(            [0-9a-f]{16}  NotificationEvent\n)"
                   R"(        IRP List:\n            [0-9a-f]{16}: \(0006,[0-9a-f]{4}\) Flags: )"));
    CHECK(has(all, R"(Cid 0338\.0340  .* READY on processor 0\n)"));
    CHECK(
        has(all,
            R"(        Owning Process            [0-9a-f]{16}       Image:         csrss\.exe\n)"));
    // The running thread's stack through the unwinder, from the live registers.
    CHECK(has(all, R"(Cid 0004\.0008 [^\n]*\n(.*\n)*?        Child-SP          RetAddr           )"
                   R"(Call Site\n        [0-9a-f]{8}`[0-9a-f]{8} [0-9a-f]{8}`[0-9a-f]{8} nt!)"));
    // Flag 1's details.
    CHECK(has(all, R"(    BasePriority                      8\n)"));

    // !thread of the IRP's thread alone: no indent, its owning process.
    CHECK(has(out[1], "(^|\n)THREAD " + c.irp_thread + R"(  Cid 0338\.033c  )"));
    CHECK(has(out[1], R"(\nOwning Process            )" + c.svchost +
                          R"(       Image:         svchost\.exe\n)"));
    CHECK(has(out[1], R"(\nIRP List:\n    [0-9a-f]{16}: \(0006,)"));
    CHECK(has(out[1], R"(\nWait Start TickCount      \d+ +Ticks: \d+)"));
    CHECK(has(out[1], R"(\nStack Init [0-9a-f]{16} Current [0-9a-f]{16}\nBase [0-9a-f]{16} )"
                      R"(Limit [0-9a-f]{16} Call 0\n)"));
    // Wrong addresses: a type check, not a screen of garbage.
    CHECK(has(out[2], c.svchost + " is not a thread object"));
    CHECK(out[2].find("Owning Process") == std::string::npos);
    CHECK(has(out[3], c.system_thread + " is not a process object"));
    // .process /p then !peb: svchost's PEB through its own page tables.
    CHECK(has(out[4], "Implicit process is now "));
    CHECK(has(out[5], "(^|\n)PEB at 000000a033804000\n"));
    CHECK(has(out[5], R"(    Ldr.Initialized:          Yes\n)"));
    CHECK(has(out[5], R"(\n {12}7ff733800000 .* C:\\Windows\\system32\\svchost\.exe\n)"));
    CHECK(has(out[5], R"(\n {12}7ffce5b00000 .* C:\\Windows\\SYSTEM32\\ntdll\.dll\n)"));
    CHECK(has(out[5],
              R"(\n    CommandLine:  'C:\\Windows\\system32\\svchost\.exe -k netsvcs -p'\n)"));
    // .thread: r shows the thread's context, k walks it.
    CHECK(has(out[6], "Implicit thread is now "));
    CHECK(has(out[7], "(^|\n)Last set context:\nrax="));
    CHECK(has(out[8],
              R"((^|\n)Child-SP          RetAddr           Call Site\n[0-9a-f]{8}`[0-9a-f]{8} )"));
    CHECK(has(out[9], "Implicit thread is now "));
    // A name filter.
    CHECK(has(out[10], R"(Cid: 0280 .*\n.*\n    Image: services\.exe\n)"));
    CHECK(out[10].find("svchost") == std::string::npos);
    // !running: processor 0 runs System's thread 8.
    CHECK(has(out[11], R"(\n  0    [0-9a-f]{16}  [0-9a-f]{16} \(\d+\) )"));
}

} // namespace

TEST_CASE("threads: !process 0 7, !thread, .process /p + !peb, .thread, live and on a dump") {
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string dump = dir.path + "/full.dmp";
    const std::string images = kBin + "/../hw/images";
    Checks c;
    std::vector<std::string> live;
    {
        // An unpaced pty: a 50 MB .dump /f in seconds rather than the hour 115200 baud takes.
        e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "--sim-baud", "0",
                        "-b", "-y", images});
        REQUIRE(p.started());
        EXPECT_OUT(p, "0: kd> ", 120s);
        const std::string svc = block(p, "!process 338 0");
        c.svchost = capture(svc, "PROCESS ([0-9a-f]{16})");
        REQUIRE(!c.svchost.empty());
        const std::string sys = block(p, "!process 4 6");
        c.system_thread = capture(sys, "THREAD ([0-9a-f]{16})  Cid 0004\\.0008");
        REQUIRE(!c.system_thread.empty());
        const std::string svc_threads = block(p, "!process 338 2");
        c.irp_thread = capture(svc_threads, "THREAD ([0-9a-f]{16})  Cid 0338\\.033c");
        REQUIRE(!c.irp_thread.empty());
        for (const auto& command : c.commands()) {
            live.push_back(block(p, command));
        }
        check_outputs(live, c);
        // The implicit context is gone after .thread without arguments.
        CHECK(block(p, "r rip").find("Last set context") == std::string::npos);
        block(p, ".process 0");
        const std::string saved = block(p, ".dump /f " + dump, 300s);
        INFO(saved);
        REQUIRE(std::filesystem::exists(dump));
        // A corrupted thread list: svchost's last thread's Flink into unmapped memory, then
        // back into the list (a loop that misses the head). Walked with a bound, reported at
        // the entry where it broke, the threads before it still shown.
        const std::string last = capture(svc_threads, "THREAD ([0-9a-f]{16})  Cid 0338\\.0340");
        REQUIRE(!last.empty());
        const uint64_t entry = std::stoull(last, nullptr, 16) + SIM_ETHREAD_THREAD_LIST_ENTRY;
        const uint64_t first_entry =
            std::stoull(c.irp_thread, nullptr, 16) + SIM_ETHREAD_THREAD_LIST_ENTRY;
        char edit[96];
        std::snprintf(edit, sizeof edit, "eq %llx fffff8dead000000",
                      static_cast<unsigned long long>(entry));
        block(p, edit);
        std::string broken = block(p, "!process 338 2");
        CHECK(has(broken, "Cid 0338\\.033c"));
        CHECK(has(broken, "Cid 0338\\.0340"));
        CHECK(has(broken, "The thread list is broken: the entry at fffff8dead000000 \\(Flink of "));
        std::snprintf(edit, sizeof edit, "eq %llx %llx", static_cast<unsigned long long>(entry),
                      static_cast<unsigned long long>(first_entry));
        block(p, edit);
        broken = block(p, "!process 338 2");
        CHECK(has(broken, "The thread list is broken: the list loops back to "));
        CHECK(has(broken, "Cid 0338\\.0340"));
        e2e::cmd(p, "q");
        CHECK(p.wait_exit(60s) == 0);
    }
    e2e::Process z({kBin + "/kdcart", "-z", dump, "-y", images});
    REQUIRE(z.started());
    EXPECT_OUT(z, "0: kd> ", 60s);
    std::vector<std::string> offline;
    for (const auto& command : c.commands()) {
        offline.push_back(block(z, command));
    }
    check_outputs(offline, c);
    // The same text as live, command by command.
    for (size_t i = 0; i < live.size(); ++i) {
        INFO(c.commands()[i]);
        CHECK(offline[i] == live[i]);
    }
    e2e::cmd(z, "q");
    CHECK(z.wait_exit(30s) == 0);
}

TEST_CASE("threads: without nt's types every command says so and nothing wrong is printed") {
    e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b"});
    REQUIRE(p.started());
    EXPECT_OUT(p, "0: kd> ", 120s);
    for (const char* command : {"!thread", "!peb", "!running", ".thread fffff80000000000"}) {
        INFO(command);
        const std::string out = block(p, command);
        CHECK(out.find("NT symbols are incorrect, please fix symbols") != std::string::npos);
        CHECK(out.find("THREAD ") == std::string::npos);
    }
    e2e::cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
