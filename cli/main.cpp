// kdcart: a Linux crash cart for the Windows kernel debugger protocol.
#include "cli/ConnectionString.h"
#include "cli/KdnetDecode.h"
#include "cli/Repl.h"
#include "cli/SimLauncher.h"
#include "transport/FwCdev.h"
#include "transport/FwSimBus.h"
#include "transport/Ieee1394Link.h"
#include "transport/KdnetLink.h"
#include "transport/PacketLink.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <functional>
#include <cstdio>
#include <editline/readline.h>
#include <iostream>
#include <random>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <poll.h>
#include <unistd.h>

using namespace kdcart;

namespace {

// -y PATH: the symbol search path (else _NT_SYMBOL_PATH).
std::string g_symbol_path;
// -lines: source line support on from the start (kd's default is off; .lines toggles it).
bool g_load_lines = false;
// -srcpath: the source search path (.srcpath); default _NT_SOURCE_PATH, as in kd.
std::string g_source_path;

class StdOutput final : public cli::Output {
public:
    void write(std::string_view text) override {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    }
};

void on_sigint(int) {
    cli::g_interrupt.store(true);
}

// The signal that asked us to leave (SIGTERM, SIGHUP): the exit status is 128 + it.
volatile std::sig_atomic_t g_terminate_signal = 0;

void on_sigterm(int sig) {
    g_terminate_signal = sig;
    cli::g_terminate.store(true);
}

void install_sigint() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: blocking reads return so loops see the flag
    sigaction(SIGINT, &sa, nullptr);
    struct sigaction st {};
    st.sa_handler = on_sigterm;
    sigemptyset(&st.sa_mask);
    sigaction(SIGTERM, &st, nullptr);
    sigaction(SIGHUP, &st, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

Result<std::unique_ptr<transport::PacketLink>> open_link(const cli::ConnectionSpec& spec) {
    using Kind = cli::ConnectionSpec::Kind;
    Result<std::unique_ptr<transport::ByteStream>> stream;
    switch (spec.kind) {
    case Kind::Serial:
        stream = transport::open_serial(spec.port, spec.baud);
        break;
    case Kind::Pipe:
        stream = transport::connect_unix(spec.port);
        break;
    case Kind::Tcp:
        stream = transport::connect_tcp(spec.port);
        break;
    case Kind::Net: {
        transport::KdnetHostConfig cfg;
        try {
            size_t used = 0;
            unsigned long port = std::stoul(spec.port, &used, 10);
            if (used != spec.port.size() || port == 0 || port > 65535) {
                throw std::out_of_range(spec.port);
            }
            cfg.port = static_cast<uint16_t>(port);
        } catch (...) {
            return make_error(Errc::InvalidArgument, "bad KDNET port '" + spec.port + "'");
        }
        if (!spec.host_ip.empty()) {
            cfg.host_ip = spec.host_ip;
        }
        if (spec.key.empty()) {
            return make_error(Errc::InvalidArgument, "-k net: needs key=w.x.y.z");
        }
        cfg.key = spec.key;
        return transport::make_kdnet_host_link(cfg);
    }
    case Kind::Ieee1394:
        return make_error(Errc::InvalidArgument, "1394 links are opened by open_1394_link");
    }
    if (!stream) {
        return tl::unexpected(stream.error());
    }
    return transport::make_kdcom_link(std::move(*stream));
}

// 1394: the mailbox link, and in `port` the target's memory for physical DMA.
Result<std::unique_ptr<transport::PacketLink>>
open_1394_link(const cli::ConnectionSpec& spec, std::shared_ptr<transport::Ieee1394Port>& port) {
    transport::Ieee1394Config cfg;
    cfg.channel = spec.channel;
    const bool sim = !spec.sim_bus.empty();
    auto enumerate = sim ? transport::make_sim_enumerator(spec.sim_bus)
                         : transport::make_cdev_enumerator(spec.device);
    std::string where = sim ? "simulated bus " + spec.sim_bus
                            : "looking on " + (spec.device.empty() ? "/dev/fw*" : spec.device);
    auto opened = transport::Ieee1394Port::open(std::move(enumerate), cfg, where);
    if (!opened) {
        return tl::unexpected(opened.error());
    }
    port = *opened;
    return transport::make_ieee1394_link(port);
}

// A fresh KDNET key for the simulated target: four random base-36 parts.
std::string random_kdnet_key() {
    std::random_device rd;
    std::string key;
    for (int part = 0; part < 4; ++part) {
        uint64_t v = (static_cast<uint64_t>(rd()) << 32 | rd()) % 2821109907456ull; // 36^8
        std::string digits;
        do {
            digits.insert(digits.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
            v /= 36;
        } while (v != 0);
        key += (part ? "." : "") + digits;
    }
    return key;
}

// libedit's character source. A Ctrl+C that lands between the prompt being drawn and libedit's
// read() would otherwise be lost until the next key; polling lets it end the line at once (the
// line then reads as empty, and read_command discards whatever was typed).
int interruptible_getc(FILE* in) {
    const int fd = ::fileno(in);
    for (;;) {
        if (cli::g_interrupt.load() || cli::g_terminate.load()) {
            return -1;
        }
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, 100);
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (r <= 0) {
            continue;
        }
        unsigned char c = 0;
        const ssize_t n = ::read(fd, &c, 1);
        if (n == 1) {
            return c;
        }
        if (n == 0 || errno != EINTR) {
            return -1;
        }
    }
}

// Reads one command line: libedit on a terminal, plain lines otherwise.
std::optional<std::string> read_command(cli::Repl& repl, bool interactive) {
    if (interactive) {
        for (;;) {
            char* line = readline(repl.prompt().c_str());
            if (cli::g_terminate.load()) {
                std::free(line);
                return std::nullopt;
            }
            if (line == nullptr) {
                if (cli::g_interrupt.exchange(false)) {
                    std::fputs("\n", stdout);
                    continue; // Ctrl+C at the prompt: a fresh prompt, like kd
                }
                return std::nullopt;
            }
            std::string s(line);
            std::free(line);
            if (cli::g_interrupt.exchange(false)) {
                std::fputs("\n", stdout); // Ctrl+C while typing: the line is dropped
                continue;
            }
            if (!s.empty()) {
                add_history(s.c_str());
            }
            return s;
        }
    }
    std::string s;
    std::cout << repl.prompt() << std::flush;
    while (!std::getline(std::cin, s)) {
        // Ctrl+C at the prompt interrupts the read (EINTR): a fresh prompt, not end of input.
        if (std::feof(stdin) || cli::g_terminate.load() || !cli::g_interrupt.exchange(false)) {
            std::cout << "\n";
            return std::nullopt;
        }
        std::cin.clear();
        std::clearerr(stdin);
        std::cout << "\n" << repl.prompt() << std::flush;
    }
    std::cout << s << "\n" << std::flush;
    return s;
}

std::function<std::optional<std::string>(const std::string&)> make_line_reader(bool interactive) {
    return [interactive](const std::string& prompt) -> std::optional<std::string> {
        if (interactive) {
            char* line = readline(prompt.c_str());
            if (line == nullptr) {
                return std::nullopt;
            }
            std::string s(line);
            std::free(line);
            return s;
        }
        std::cout << prompt << std::flush;
        std::string s;
        if (!std::getline(std::cin, s)) {
            return std::nullopt;
        }
        std::cout << s << "\n" << std::flush;
        return s;
    };
}

// What kdcart leaves behind when it exits, however it exits: a target with none of our
// breakpoints in memory, its debug registers clear, running - or a plain sentence saying why
// not. Returns the exit status.
int leave_target(engine::Debugger& dbg, cli::Repl& repl, cli::Output& out) {
    const int sig = g_terminate_signal;
    const bool terminated = cli::g_terminate.load();
    // No signal recorded: a second Ctrl+C while a break-in was pending (Repl) asked to leave.
    const int code = terminated ? 128 + (sig != 0 ? sig : SIGINT) : repl.exit_code();
    size_t software = 0;
    size_t hardware = 0;
    for (const auto* bp : dbg.breakpoints().all()) {
        if (bp->enabled && bp->address) {
            (bp->kind == engine::BreakpointKind::Hardware ? hardware : software)++;
        }
    }
    const std::string what = std::to_string(software) + " software and " +
                             std::to_string(hardware) + " hardware breakpoint(s)";
    if (dbg.state() == engine::RunState::Running) {
        // The target did not stop when asked (or the link failed while it ran): one more try.
        std::string why = "the target did not stop when asked";
        if (auto r = dbg.break_in(); !r) {
            why = "the link to the target is lost (" + r.error().message + ")";
        } else {
            for (int i = 0; i < 50 && dbg.state() == engine::RunState::Running; ++i) {
                auto stop = dbg.wait_for_stop(std::chrono::milliseconds(200));
                if (!stop && stop.error().code != Errc::Timeout) {
                    why = "the link to the target is lost (" + stop.error().message + ")";
                    break;
                }
            }
        }
        if (dbg.state() == engine::RunState::Running) {
            out.write("kdcart: " + why + ", so it is left running as it was, with " + what +
                      " still set (a software breakpoint it hits will wait for a debugger)\n");
            if (why.rfind("the target did not stop", 0) == 0) {
                out.write("kdcart: the break-in sent to it may still stop it later; it then waits "
                          "for a debugger\n");
            }
            return code != 0 ? code : 1;
        }
    }
    if (dbg.state() == engine::RunState::Stopped) {
        // q tried already and said why it failed: not twice.
        auto r = repl.quit_requested() ? Result<void>(make_error(Errc::Timeout, "see above"))
                                       : dbg.detach();
        if (!r) {
            // q cleared the table before it failed: the count is gone, not zero.
            const std::string registers =
                repl.quit_requested()
                    ? "its debug registers keep what the last resume programmed"
                    : std::to_string(hardware) +
                          " hardware breakpoint(s) stay in its debug registers until it runs";
            if (r.error().code == Errc::Disconnected) {
                out.write("kdcart: the link to the target is lost (" + r.error().message +
                          "), so the target could not be resumed: it waits, stopped, for a "
                          "debugger; breakpoints are out of its memory while it is stopped, " +
                          registers + "\n");
            } else {
                out.write("kdcart: could not resume the target (" + r.error().message +
                          "): it is left stopped in the debugger; breakpoints are out of its "
                          "memory while it is stopped, " +
                          registers + "\n");
            }
            return code != 0 ? code : 1;
        }
        if (terminated) {
            out.write("kdcart: terminated; breakpoints removed, target resumed\n");
        } else if (!repl.quit_requested()) {
            out.write("kdcart: end of input; breakpoints removed, target resumed\n");
        }
    }
    return code;
}

// -z FILE: the same REPL over a dump target.
int run_dump(const std::string& path, const std::string& initial_commands) {
    install_sigint();
    StdOutput out;
    out.write("kdcart " KDCART_VERSION " - Windows kernel debugger for Linux\n\n");
    out.write("Loading Dump File [" + path + "]\n");
    auto target = engine::DumpTarget::open(path);
    if (!target) {
        // The reader's messages name the file already; the others get it here.
        const std::string& msg = target.error().message;
        if (msg.rfind(path + ":", 0) == 0) {
            std::fprintf(stderr, "kdcart: %s\n", msg.c_str());
        } else {
            std::fprintf(stderr, "kdcart: %s: %s\n", path.c_str(), msg.c_str());
        }
        return 1;
    }
    engine::StopEvent stop = (*target)->stop_event();
    cli::Repl repl(out);
    engine::Debugger dbg(std::move(*target), stop);
    repl.set_debugger(&dbg);
    cli::configure_symbol_path(dbg, g_symbol_path);
    dbg.symbols().set_load_lines(g_load_lines);
    repl.set_source_path(g_source_path);
    repl.announce_dump();
    const bool interactive = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
    repl.set_line_reader(make_line_reader(interactive));
    if (!initial_commands.empty()) {
        if (repl.execute_line(initial_commands) == cli::Repl::Flow::Quit) {
            return repl.exit_code();
        }
    }
    for (;;) {
        auto line = read_command(repl, interactive);
        if (!line || repl.execute_line(*line) == cli::Repl::Flow::Quit ||
            cli::g_terminate.load()) {
            return repl.exit_code();
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kdcart: Windows kernel debugging from Linux (WinDbg commands over KDCOM)"};
    std::string kstring;
    std::string sim;
    bool break_in = false;
    std::string initial_commands;
    bool verbose = false;
    double connect_timeout = 0;
    std::string kdsim_path = cli::default_kdsim_path();
    unsigned sim_baud = 115200;
    unsigned sim_cpus = 1;

    auto* k = app.add_option("-k", kstring,
                             "Connection: com:port=/dev/ttyS0[,baud=115200] | "
                             "com:pipe,port=/path/to/socket | com:tcp,port=HOST:PORT | "
                             "net:port=50000,key=w.x.y.z[,hostip=A.B.C.D] | "
                             "1394:channel=N[,device=/dev/fwX | ,bus=sim:PATH]");
    auto* s = app.add_option("--sim", sim,
                             "Start the simulated target (kdsim) and attach: com = virtual null-modem at "
                             "115200 baud, net = KDNET on 127.0.0.1, 1394 = a simulated 1394 "
                             "bus")
                  ->expected(0, 1)
                  ->default_str("com");
    k->excludes(s);
    std::string dump_path;
    auto* z = app.add_option("-z", dump_path, "Open a crash dump file (MEMORY.DMP: full or bitmap)");
    z->excludes(k)->excludes(s);
    app.add_flag("-b", break_in, "Break in as soon as the target answers");
    app.add_option("-c", initial_commands, "Commands to run at the first stop (\"cmd; cmd\")");
    app.add_option("-y", g_symbol_path,
                   "Symbol search path: DIR;srv*CACHE*URL;... (default: _NT_SYMBOL_PATH)");
    app.add_flag("--lines", g_load_lines,
                 "Source line support on (as kd's -lines, which is accepted too; .lines toggles)");
    if (const char* env = std::getenv("_NT_SOURCE_PATH")) {
        g_source_path = env;
    }
    app.add_option("--srcpath", g_source_path,
                   "Source search path DIR;DIR (as kd's -srcpath, accepted too; .srcpath)");
    app.add_flag("-v,--verbose", verbose, "Debug logging to stderr");
    app.add_option("--connect-timeout", connect_timeout,
                   "Give up when the target has not answered after this many seconds "
                   "(default: keep waiting)");
    app.add_option("--kdsim", kdsim_path, "Path of the kdsim program (for --sim)");
    app.add_option("--sim-baud", sim_baud, "Simulated UART speed for --sim (0 = unpaced)");
    app.add_option("--sim-cpus", sim_cpus, "Processors of the simulated target");
    std::string decode_path;
    std::string decode_key;
    app.add_option("--decode", decode_path,
                   "Decrypt and print a KDNET capture (pcap/pcapng, optionally .gz), one line per "
                   "datagram");
    app.add_option("--key", decode_key, "KDNET key w.x.y.z for --decode");
    // kd's single-dash "-lines" (CLI11 takes one-dash names as one letter).
    std::vector<std::string> kd_args(argv + 1, argv + argc);
    for (auto& a : kd_args) {
        a = a == "-lines" ? "--lines" : a;
        a = a == "-srcpath" ? "--srcpath" : a;
    }
    std::reverse(kd_args.begin(), kd_args.end()); // CLI11 wants them last first
    try {
        app.parse(kd_args);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    spdlog::set_default_logger(spdlog::stderr_color_st("kdcart"));
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);

    if (!decode_path.empty()) {
        if (decode_key.empty()) {
            std::fprintf(stderr, "kdcart: --decode needs --key w.x.y.z\n");
            return 2;
        }
        auto result = cli::kdnet_decode_capture(decode_path, decode_key);
        if (!result) {
            std::fprintf(stderr, "kdcart: %s\n", result.error().message.c_str());
            return 1;
        }
        for (const auto& line : result->lines) {
            std::printf("%s\n", line.c_str());
        }
        std::printf("%s\n", result->summary.to_string().c_str());
        return 0;
    }

    if (!dump_path.empty()) {
        return run_dump(dump_path, initial_commands);
    }
    if (kstring.empty() && s->count() == 0) {
        std::fprintf(stderr, "kdcart: give -k CONNECTION, --sim or -z DUMPFILE (see --help)\n");
        return 2;
    }

    cli::SimLauncher launcher;
    cli::ConnectionSpec spec;
    std::unique_ptr<transport::PacketLink> sim_link;
    if (s->count() > 0) {
        if (sim.empty()) {
            sim = "com";
        }
        cli::SimOptions so;
        so.kdsim_path = kdsim_path;
        so.baud = sim_baud;
        so.cpus = sim_cpus;
        so.verbose = verbose;
        if (sim == "com") {
            auto pty = launcher.start_pty(so);
            if (!pty) {
                std::fprintf(stderr, "kdcart: %s\n", pty.error().message.c_str());
                return 1;
            }
            spec.kind = cli::ConnectionSpec::Kind::Serial;
            spec.port = *pty;
            spec.baud = sim_baud ? sim_baud : 115200;
        } else if (sim == "net") {
            // Our end binds a free loopback port; kdsim offers to it with a fresh key.
            spec.kind = cli::ConnectionSpec::Kind::Net;
            spec.key = random_kdnet_key();
            transport::KdnetHostConfig cfg;
            cfg.port = 0;
            cfg.host_ip = "127.0.0.1";
            cfg.key = spec.key;
            auto host = transport::KdnetLink::create_host(cfg);
            if (!host) {
                std::fprintf(stderr, "kdcart: %s\n", host.error().message.c_str());
                return 1;
            }
            if (auto r = launcher.start_kdnet(so, (*host)->local_port(), spec.key); !r) {
                std::fprintf(stderr, "kdcart: %s\n", r.error().message.c_str());
                return 1;
            }
            sim_link = std::move(*host);
        } else if (sim == "1394") {
            auto path = launcher.start_1394(so, 1);
            if (!path) {
                std::fprintf(stderr, "kdcart: %s\n", path.error().message.c_str());
                return 1;
            }
            spec.kind = cli::ConnectionSpec::Kind::Ieee1394;
            spec.channel = 1;
            spec.sim_bus = *path;
        } else {
            std::fprintf(stderr, "kdcart: --sim %s is not in this build (com, net, 1394)\n",
                         sim.c_str());
            return 2;
        }
    } else {
        auto parsed = cli::parse_connection_string(kstring);
        if (!parsed) {
            std::fprintf(stderr, "kdcart: %s\n", parsed.error().message.c_str());
            return 2;
        }
        spec = *parsed;
    }

    std::shared_ptr<transport::Ieee1394Port> fw_port;
    auto link = sim_link ? Result<std::unique_ptr<transport::PacketLink>>(std::move(sim_link))
                : spec.kind == cli::ConnectionSpec::Kind::Ieee1394 ? open_1394_link(spec, fw_port)
                                                                    : open_link(spec);
    if (!link) {
        std::fprintf(stderr, "kdcart: %s\n", link.error().message.c_str());
        return 1;
    }

    install_sigint();
    StdOutput out;
    cli::Repl repl(out);
    protocol::SessionOptions session_options;
    if (spec.kind == cli::ConnectionSpec::Kind::Net) {
        // WinDbg retransmits after about 0.5 s on KDNET [kd-protocol.md §4.6].
        session_options.ack_timeout = std::chrono::milliseconds(500);
        session_options.send_retries = 10;
    }
    engine::Debugger dbg(std::move(*link), &repl, session_options);
    repl.set_debugger(&dbg);
    cli::configure_symbol_path(dbg, g_symbol_path);
    dbg.symbols().set_load_lines(g_load_lines);
    repl.set_source_path(g_source_path);
    if (fw_port && spec.dma && dbg.live() != nullptr) {
        // 1394: physical memory (!db, .dump) straight off the bus, not in KD packets.
        dbg.live()->set_physical_reader([fw_port](uint64_t address, uint32_t size) {
            return fw_port->read_physical(address, size);
        });
    }

    out.write("kdcart " KDCART_VERSION " - Windows kernel debugger for Linux\n");
    out.write("Opened " + dbg.session().describe_link() + "\n");

    const bool interactive = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
    repl.set_line_reader(make_line_reader(interactive));
    std::string history_path;
    if (interactive) {
        rl_getc_function = interruptible_getc; // before libedit's first readline()
        if (const char* home = std::getenv("HOME")) {
            history_path = std::string(home) + "/.kdcart_history";
            using_history();
            read_history(history_path.c_str());
        }
    }
    struct HistorySaver {
        std::string path;
        ~HistorySaver() {
            if (!path.empty()) {
                write_history(path.c_str());
            }
        }
    } history_saver{history_path};

    engine::AttachOptions ao;
    ao.break_in = break_in;
    if (connect_timeout > 0) {
        ao.connect_timeout = std::chrono::milliseconds(static_cast<long>(connect_timeout * 1000));
    }
    ao.interrupted = [] { return cli::g_interrupt.exchange(false); };
    ao.terminated = [] { return cli::g_terminate.load(); };
    auto first = dbg.attach(ao);
    if (!first) {
        std::fprintf(stderr, "kdcart: %s\n", first.error().message.c_str());
        if (cli::g_terminate.load()) {
            return 128 + (g_terminate_signal != 0 ? g_terminate_signal : SIGTERM);
        }
        return first.error().code == Errc::Interrupted ? 130 : 1;
    }
    if (cli::g_terminate.load()) {
        return leave_target(dbg, repl, out); // a signal while attaching: the stop it brought
    }
    repl.announce_connection(*first);

    // Every way out goes through leave_target: -c finished with q, end of input, q, a signal,
    // a lost link.
    if (!initial_commands.empty()) {
        if (repl.execute_line(initial_commands) == cli::Repl::Flow::Quit ||
            cli::g_terminate.load()) {
            return leave_target(dbg, repl, out);
        }
    }
    for (;;) {
        auto line = read_command(repl, interactive);
        if (!line) {
            return leave_target(dbg, repl, out); // end of input: as q
        }
        if (repl.execute_line(*line) == cli::Repl::Flow::Quit || cli::g_terminate.load()) {
            return leave_target(dbg, repl, out);
        }
    }
}
