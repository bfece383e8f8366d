// kdsim: a simulated Windows x64 kernel (SimMachine) that speaks KDCOM to a kernel debugger
// over a pseudo-terminal, an AF_UNIX socket or TCP on 127.0.0.1.
//
//   kdsim --pty [--baud 115200]   prints "pty: /dev/pts/N" on stdout, then serves that pty
//   kdsim --unix /tmp/kd.sock     listens there (VM "pipe" style)
//   kdsim --tcp 5555              listens on 127.0.0.1:5555
//   kdsim --1394 /tmp/fw.sock     a 1394 debug target (--1394-channel N, default 1) on the
//                                 simulated bus served there (hw/SimFirewireBus.h); prints
//                                 "1394: PATH"; --1394-fault reset-every=N,stuck-mailbox,plain-rom
//
// The machine runs freely (boot, DbgPrint) until a host breaks in. kdsim keeps running when the
// host goes away; a new host can attach later. Logs go to stderr. With --pty, kdsim also exits
// when the process that started it dies (that process holds the other end of the pty).
//
//   --late-driver LOAD,UNLOAD,RELOAD   kdlate.sys schedule in ms (default 5000,20000,5000;
//                                      UNLOAD 0 = never unload), or "off"
//   --dump-on-exit FILE                on exit (SIGTERM, SIGINT), write the code check of every
//                                      loaded image to FILE (default: $KDSIM_DUMP_ON_EXIT)
//   --phys-snapshot FILE               before every state change, write all physical memory to
//                                      FILE (sparse, offset = physical address) and FILE.runs
//   --mute-after-bytes N, --mute-ms M  after N bytes sent, the link is dead for M ms (once)
//   --bugcheck-after SECONDS CODE      kdtest.sys calls KeBugCheckEx(CODE, ...) on CPU 0 after
//                                      SECONDS of guest time (once; continuing it reboots)
//   --corrupt-rate P, --drop-rate P    a bad cable: each byte (KDCOM) or datagram (KDNET) is
//   --stall-ms N --stall-rate P        corrupted (one bit flipped) / lost / delayed N ms with
//   --seed S                           probability P, both ways; S makes a run repeatable
// The last four also come from $KDSIM_PHYS_SNAPSHOT, $KDSIM_MUTE_AFTER_BYTES, $KDSIM_MUTE_MS
// and $KDSIM_BUGCHECK_AFTER ("SECONDS CODE") when not on the command line; the fault options
// from $KDSIM_CORRUPT_RATE, $KDSIM_DROP_RATE, $KDSIM_STALL_MS, $KDSIM_STALL_RATE, $KDSIM_SEED.
#include "hw/KdTarget.h"
#include "hw/SimFirewireBus.h"
#include "hw/SimMachine.h"
#include "transport/ByteStream.h"
#include "transport/FaultInjection.h"
#include "transport/KdnetLink.h"
#include "transport/PacketLink.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>
#include <vector>

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

// "SECONDS CODE": seconds (a decimal fraction allowed), code in hex (0x prefix optional) or
// decimal with the 0n prefix.
bool parse_bugcheck_after(const std::vector<std::string>& args, kdcart::hw::BugCheckAfter& out) {
    if (args.size() != 2) {
        return false;
    }
    double seconds = 0;
    char tail = 0;
    if (std::sscanf(args[0].c_str(), "%lf%c", &seconds, &tail) != 1 || !(seconds >= 0) ||
        seconds > 1e6) {
        return false;
    }
    std::string code_text = args[1];
    int base = 16;
    if (code_text.rfind("0n", 0) == 0) {
        code_text = code_text.substr(2);
        base = 10;
    } else if (code_text.rfind("0x", 0) == 0 || code_text.rfind("0X", 0) == 0) {
        code_text = code_text.substr(2);
    }
    if (code_text.empty() || code_text.size() > 10) {
        return false;
    }
    char* end = nullptr;
    unsigned long long code = std::strtoull(code_text.c_str(), &end, base);
    if (end == nullptr || *end != 0 || code == 0 || code > 0xFFFFFFFFULL) {
        return false;
    }
    out.enabled = true;
    out.after = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0 + 0.5));
    out.code = static_cast<uint32_t>(code);
    return true;
}

// "off", or "LOAD,UNLOAD,RELOAD" in milliseconds.
bool parse_late_driver(const std::string& spec, kdcart::hw::LateDriverConfig& out) {
    if (spec == "off") {
        out.enabled = false;
        return true;
    }
    unsigned long long v[3] = {0, 0, 0};
    char tail = 0;
    if (std::sscanf(spec.c_str(), "%llu,%llu,%llu%c", &v[0], &v[1], &v[2], &tail) != 3) {
        return false;
    }
    out.enabled = true;
    out.load_after = std::chrono::milliseconds(v[0]);
    out.unload_after = std::chrono::milliseconds(v[1]);
    out.reload_after = std::chrono::milliseconds(v[2]);
    return true;
}

// Writes the report next to `path` first and renames it, so a reader never sees half of it.
void write_code_report(const kdcart::hw::SimMachine& machine, const std::string& path) {
    auto checks = machine.check_code();
    std::string report = kdcart::hw::format_code_report(checks);
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << report;
        if (!out) {
            spdlog::error("cannot write {}", tmp);
            return;
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        spdlog::error("cannot rename {} to {}", tmp, path);
        return;
    }
    // The last line says it all: "code intact" or "code modified at ...".
    std::string last = report.substr(0, report.size() - 1);
    last = last.substr(last.rfind('\n') + 1);
    spdlog::info("{} (report in {})", last, path);
}

} // namespace

int main(int argc, char** argv) {
    using namespace kdcart;
    CLI::App app{"kdsim: a simulated Windows x64 kernel for kernel-debugger hosts (KDCOM)"};
    bool use_pty = false;
    std::string unix_path;
    int tcp_port = 0;
    unsigned baud = 0;
    unsigned cpus = 1;
    std::string image_dir;
    bool verbose = false;
    auto* pty_opt = app.add_flag("--pty", use_pty,
                                 "serve a new pseudo-terminal; its path is printed on stdout");
    auto* unix_opt = app.add_option("--unix", unix_path, "listen on this AF_UNIX socket path");
    auto* tcp_opt =
        app.add_option("--tcp", tcp_port, "listen on 127.0.0.1:PORT")->check(CLI::Range(1, 65535));
    pty_opt->excludes(unix_opt)->excludes(tcp_opt);
    unix_opt->excludes(tcp_opt);
    std::string kdnet_host;
    std::string kdnet_key;
    unsigned kdnet_version = 5;
    auto* kdnet_opt = app.add_option("--kdnet", kdnet_host,
                                     "be a KDNET target talking to the debugger at HOSTIP:PORT");
    app.add_option("--key", kdnet_key, "KDNET key w.x.y.z (with --kdnet)");
    app.add_option("--kdnet-version", kdnet_version, "KDNET protocol byte: 2, 4 or 5")
        ->check(CLI::IsMember({2, 4, 5}))
        ->capture_default_str();
    kdnet_opt->excludes(pty_opt)->excludes(unix_opt)->excludes(tcp_opt);
    std::string fw_socket;
    std::string fw_faults;
    hw::Sim1394Options fw_options;
    auto* fw_opt = app.add_option("--1394", fw_socket,
                                  "be a 1394 debug target on the simulated bus served at this "
                                  "AF_UNIX socket path");
    app.add_option("--1394-channel", fw_options.channel, "1394 debug channel (0-62)")
        ->check(CLI::Range(0, 62))
        ->capture_default_str();
    app.add_option("--1394-fault", fw_faults,
                   "simulated bus faults: reset-every=N, stuck-mailbox, plain-rom")
        ->envname("KDSIM_1394_FAULT");
    fw_opt->excludes(pty_opt)->excludes(unix_opt)->excludes(tcp_opt)->excludes(kdnet_opt);
    app.add_option("--baud", baud, "pace the line like a UART at this rate (0 = unpaced)")
        ->capture_default_str();
    app.add_option("--cpus", cpus, "number of processors")
        ->check(CLI::Range(1, 8))
        ->capture_default_str();
    app.add_option("--image-dir", image_dir,
                   "directory with ntoskrnl.exe, hal.dll, kdcom.dll, kdtest.sys")
        ->check(CLI::ExistingDirectory);
    std::string late_driver;
    app.add_option("--late-driver", late_driver,
                   "kdlate.sys schedule: LOAD,UNLOAD,RELOAD in ms (UNLOAD 0 = stay), or off")
        ->default_str("5000,20000,5000");
    std::string dump_on_exit;
    app.add_option("--dump-on-exit", dump_on_exit,
                   "on exit, write the code check of the loaded images to this file "
                   "(default: $KDSIM_DUMP_ON_EXIT)");
    std::string phys_snapshot;
    app.add_option("--phys-snapshot", phys_snapshot,
                   "before every state change, write all physical memory to this file (sparse, "
                   "file offset = physical address) and FILE.runs (BASEPAGE PAGECOUNT in hex)")
        ->envname("KDSIM_PHYS_SNAPSHOT");
    uint64_t mute_after_bytes = 0;
    unsigned mute_ms = 15000;
    app.add_option("--mute-after-bytes", mute_after_bytes,
                   "after sending this many bytes, drop everything sent and received for "
                   "--mute-ms, then carry on (once; 0 = never)")
        ->envname("KDSIM_MUTE_AFTER_BYTES")
        ->capture_default_str();
    app.add_option("--mute-ms", mute_ms, "how long --mute-after-bytes keeps the link dead")
        ->envname("KDSIM_MUTE_MS")
        ->capture_default_str();
    std::vector<std::string> bugcheck_after;
    app.add_option("--bugcheck-after", bugcheck_after,
                   "SECONDS CODE: kdtest.sys calls KeBugCheckEx(CODE, ...) on CPU 0 after "
                   "SECONDS of guest time (once per run; continuing the stop reboots)")
        ->expected(2)
        ->type_name("SECONDS CODE");
    transport::FaultConfig faults;
    unsigned stall_ms = 0;
    app.add_option("--corrupt-rate", faults.corrupt_rate,
                   "flip one bit of each byte (KDCOM) or datagram (KDNET) with this probability, "
                   "both ways")
        ->envname("KDSIM_CORRUPT_RATE")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--drop-rate", faults.drop_rate,
                   "lose each byte (KDCOM) or datagram (KDNET) with this probability, both ways")
        ->envname("KDSIM_DROP_RATE")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--stall-ms", stall_ms, "how long a stall (--stall-rate) holds the line")
        ->envname("KDSIM_STALL_MS")
        ->check(CLI::Range(0u, 600000u));
    app.add_option("--stall-rate", faults.stall_rate,
                   "stall the line before a byte (KDCOM) or datagram (KDNET) with this "
                   "probability, both ways")
        ->envname("KDSIM_STALL_RATE")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--seed", faults.seed, "seed of the fault injection (repeatable runs)")
        ->envname("KDSIM_SEED")
        ->capture_default_str();
    app.add_flag("-v,--verbose", verbose, "debug logging on stderr");
    CLI11_PARSE(app, argc, argv);

    auto logger = spdlog::stderr_color_mt("kdsim");
    spdlog::set_default_logger(logger);
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);

    if (!use_pty && unix_path.empty() && tcp_port == 0 && kdnet_host.empty() &&
        fw_socket.empty()) {
        spdlog::error("choose a link: --pty, --unix PATH, --tcp PORT, --kdnet HOSTIP:PORT or "
                      "--1394 PATH");
        return 2;
    }
    if (std::string fw_error; !hw::parse_1394_faults(fw_faults, fw_options, fw_error)) {
        spdlog::error("--1394-fault: {}", fw_error);
        return 2;
    }

    std::signal(SIGPIPE, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    hw::SimConfig config;
    config.cpus = cpus;
    if (!late_driver.empty() && !parse_late_driver(late_driver, config.late_driver)) {
        spdlog::error("--late-driver wants LOAD,UNLOAD,RELOAD (milliseconds) or off");
        return 2;
    }
    if (bugcheck_after.empty()) {
        // "SECONDS CODE" from the environment (it passes through `kdcart --sim`).
        if (const char* env = std::getenv("KDSIM_BUGCHECK_AFTER"); env != nullptr && *env != 0) {
            std::istringstream words(env);
            for (std::string w; words >> w;) {
                bugcheck_after.push_back(w);
            }
        }
    }
    if (!bugcheck_after.empty() && !parse_bugcheck_after(bugcheck_after, config.bugcheck_after)) {
        spdlog::error("--bugcheck-after wants SECONDS CODE (e.g. 3 0xD1; CODE in hex, non-zero)");
        return 2;
    }
    if (dump_on_exit.empty()) {
        if (const char* env = std::getenv("KDSIM_DUMP_ON_EXIT"); env != nullptr) {
            dump_on_exit = env;
        }
    }
    if (!image_dir.empty()) {
        config.image_dir = image_dir;
    }
    auto machine = hw::SimMachine::create(config);
    if (!machine) {
        spdlog::error("cannot build the machine: {}", machine.error().message);
        return 1;
    }
    spdlog::info("machine up: {} cpu(s), kernel at {:#x}, images from {}", cpus,
                 (*machine)->kernel_base(), config.image_dir.string());

    faults.stall = std::chrono::milliseconds(stall_ms);
    auto fault_report = std::make_shared<transport::FaultReport>();
    if (faults.active()) {
        spdlog::info("kdsim: fault injection on the link: {}", faults.describe());
    }
    // KDCOM: every byte each way passes the dice (outside the UART pacing).
    auto kdcom_link = [&](std::unique_ptr<transport::ByteStream> stream) {
        stream = transport::make_paced_stream(std::move(stream), baud);
        if (faults.active()) {
            stream = transport::make_faulty_stream(std::move(stream), faults, fault_report);
        }
        return transport::make_kdcom_link(std::move(stream));
    };

    hw::KdTargetOptions target_options;
    target_options.phys_snapshot = phys_snapshot;
    target_options.mute_after_bytes = mute_after_bytes;
    target_options.mute_for = std::chrono::milliseconds(mute_ms);
    if (config.bugcheck_after.enabled) {
        spdlog::info("bug check {:#010x} due {} ms after boot (kdtest!KdTestRaiseBugCheck)",
                     config.bugcheck_after.code, config.bugcheck_after.after.count());
    }
    hw::KdTarget target(**machine, target_options);
    std::unique_ptr<transport::StreamListener> listener;
    if (use_pty || !kdnet_host.empty() || !fw_socket.empty()) {
        // Whoever started us (kdcart --sim) owns the other end: when it dies without stopping
        // us, leave too instead of lingering as an orphan.
        pid_t parent = ::getppid();
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) {
            return 0;
        }
    }
    if (use_pty) {
        auto pair = transport::open_pty_master();
        if (!pair) {
            spdlog::error("cannot open a pty: {}", pair.error().message);
            return 1;
        }
        std::printf("pty: %s\n", pair->slave_path.c_str());
        std::fflush(stdout);
        target.attach(kdcom_link(std::move(pair->master)));
    } else if (!kdnet_host.empty()) {
        auto colon = kdnet_host.rfind(':');
        transport::KdnetTargetConfig kc;
        kc.host_ip = kdnet_host.substr(0, colon);
        try {
            kc.port = static_cast<uint16_t>(std::stoul(kdnet_host.substr(colon + 1)));
        } catch (...) {
            colon = std::string::npos;
        }
        if (colon == std::string::npos || kdnet_key.empty()) {
            spdlog::error("--kdnet needs HOSTIP:PORT and --key w.x.y.z");
            return 2;
        }
        kc.key = kdnet_key;
        kc.version = static_cast<uint8_t>(kdnet_version);
        kc.faults = faults;
        kc.fault_report = fault_report;
        auto link = transport::make_kdnet_target_link(kc);
        if (!link) {
            spdlog::error("cannot start KDNET: {}", link.error().message);
            return 1;
        }
        std::printf("kdnet: %s\n", (*link)->describe().c_str());
        std::fflush(stdout);
        target.attach(std::move(*link));
    } else if (!fw_socket.empty()) {
        fw_options.socket_path = fw_socket;
        auto link = hw::make_sim_1394_target_link(**machine, fw_options);
        if (!link) {
            spdlog::error("cannot serve the simulated 1394 bus: {}", link.error().message);
            return 1;
        }
        std::printf("1394: %s\n", fw_socket.c_str());
        std::fflush(stdout);
        target.attach(std::move(*link));
    } else {
        auto l = unix_path.empty() ? transport::listen_tcp(static_cast<uint16_t>(tcp_port))
                                   : transport::listen_unix(unix_path);
        if (!l) {
            spdlog::error("cannot listen: {}", l.error().message);
            return 1;
        }
        listener = std::move(*l);
        spdlog::info("listening on {}", listener->describe());
    }

    while (g_stop == 0) {
        if (listener && !target.attached()) {
            auto stream = listener->accept(transport::Millis(0));
            if (stream) {
                spdlog::info("host connected: {}", (*stream)->describe());
                target.attach(kdcom_link(std::move(*stream)));
            }
        }
        hw::StepStatus status = target.step();
        if (status == hw::StepStatus::LinkDown && listener && target.attached()) {
            spdlog::info("host disconnected");
            target.detach();
        }
    }
    if (!dump_on_exit.empty()) {
        write_code_report(**machine, dump_on_exit);
    }
    const auto& s = target.stats();
    spdlog::info("exiting: {} packets out, {} in, {} state changes, {} prints sent, {} dropped",
                 s.packets_sent, s.packets_received, s.state_changes, s.prints_sent,
                 s.prints_dropped);
    if (faults.active()) {
        spdlog::info("kdsim: faults injected: {}", fault_report->summary());
    }
    return 0;
}
