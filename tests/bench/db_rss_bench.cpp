// Benchmark (not a test): what a 16 MiB memory display costs.
//
//  1. The formatter alone, in process: the whole-block format_memory (what `db` used before it
//     streamed) against the streaming MemoryLineFormatter, on the same 16 MiB of bytes, in MB of
//     target memory per second of CPU.
//  2. kdcart end to end against kdsim (KDNET on loopback by default, or the unpaced serial pty
//     with --com): `db` of 16 MiB of virtual memory and `!db` of 16 MiB of RAM, each timed from
//     the command to the next prompt, with kdcart's peak RSS (VmHWM) before and after.
// Figures are printed, not asserted.
//
//   db_rss_bench [--kdcart PATH] [--kdsim PATH] [--com] [--mib N]
#include "cli/format/Format.h"
#include "cli/format/MemoryLines.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <random>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

using namespace kdcart;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void bench_formatters(uint64_t bytes) {
    engine::MemoryBlock block;
    block.address = 0xfffff80000600000ull;
    block.bytes.resize(bytes);
    block.valid.assign(bytes, true);
    std::mt19937_64 rng(1);
    for (auto& b : block.bytes) {
        b = static_cast<uint8_t>(rng());
    }
    const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);

    double t0 = cpu_seconds();
    std::string old_text = cli::format_memory(cli::DisplayKind::Bytes, block);
    const double old_s = cpu_seconds() - t0;

    t0 = cpu_seconds();
    std::string new_text;
    new_text.reserve(old_text.size());
    cli::MemoryLineFormatter lines(cli::LineKind::Bytes, block.address);
    // In link-sized pieces, as the REPL feeds it (KDNET: 0x480 bytes per request).
    for (uint64_t off = 0; off < bytes; off += 0x480) {
        const uint64_t n = std::min<uint64_t>(0x480, bytes - off);
        lines.feed(engine::MemoryPiece{block.address + off, n, true,
                                       std::span<const uint8_t>(block.bytes.data() + off, n)},
                   new_text);
    }
    lines.finish(new_text);
    const double new_s = cpu_seconds() - t0;

    std::printf("formatter, db of %.0f MiB (%.0f MB of text), CPU time:\n", mib,
                static_cast<double>(old_text.size()) / 1e6);
    std::printf("  whole-block format_memory : %7.3f s  %8.1f MB/s of memory\n", old_s,
                static_cast<double>(bytes) / 1e6 / old_s);
    std::printf("  streaming formatter       : %7.3f s  %8.1f MB/s of memory\n", new_s,
                static_cast<double>(bytes) / 1e6 / new_s);
    std::printf("  same text                 : %s\n\n", old_text == new_text ? "yes" : "NO");
}

// kdcart on pipes; only the tail of its output is kept (the display itself is counted).
class Kdcart {
  public:
    explicit Kdcart(std::vector<std::string> argv) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
            return;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        m_ok = ::posix_spawn(&m_pid, args[0], &fa, nullptr, args.data(), environ) == 0;
        posix_spawn_file_actions_destroy(&fa);
        ::close(in[0]);
        ::close(out[1]);
        m_in = in[1];
        m_out = out[0];
    }
    ~Kdcart() {
        if (m_pid > 0) {
            ::kill(m_pid, SIGTERM);
            ::waitpid(m_pid, nullptr, 0);
        }
        ::close(m_in);
        ::close(m_out);
    }
    bool ok() const { return m_ok; }
    void send(const std::string& line) {
        const std::string s = line + "\n";
        (void)!::write(m_in, s.data(), s.size());
    }
    // Reads until the output ends with the kd prompt (after at least `min_bytes`); returns the
    // bytes read, or -1 on timeout.
    long long until_prompt(double timeout_s, size_t min_bytes = 0) {
        const auto t0 = Clock::now();
        long long total = 0;
        char buf[1 << 16];
        while (seconds_since(t0) < timeout_s) {
            pollfd pfd{m_out, POLLIN, 0};
            if (::poll(&pfd, 1, 200) <= 0) {
                continue;
            }
            const ssize_t n = ::read(m_out, buf, sizeof buf);
            if (n <= 0) {
                return -1;
            }
            total += n;
            m_tail.append(buf, static_cast<size_t>(n));
            if (m_tail.size() > 256) {
                m_tail.erase(0, m_tail.size() - 256);
            }
            if (m_tail.size() >= 4 && m_tail.compare(m_tail.size() - 4, 4, "kd> ") == 0 &&
                static_cast<size_t>(total) >= min_bytes) {
                return total;
            }
        }
        return -1;
    }
    long vm_hwm_kb() const {
        std::ifstream f("/proc/" + std::to_string(m_pid) + "/status");
        std::string line;
        while (std::getline(f, line)) {
            if (line.rfind("VmHWM:", 0) == 0) {
                return std::stol(line.substr(6));
            }
        }
        return -1;
    }

  private:
    pid_t m_pid = -1;
    bool m_ok = false;
    int m_in = -1;
    int m_out = -1;
    std::string m_tail;
};

int bench_kdcart(const std::string& kdcart, const std::string& kdsim, bool com, uint64_t bytes) {
    std::vector<std::string> argv = {kdcart, "--sim", com ? "com" : "net", "-b", "--kdsim", kdsim};
    if (com) {
        argv.insert(argv.end(), {"--sim-baud", "0"});
    }
    Kdcart k(argv);
    if (!k.ok() || k.until_prompt(120) < 0) {
        std::fprintf(stderr, "bench: kdcart did not reach its prompt\n");
        return 1;
    }
    char count[32];
    std::snprintf(count, sizeof count, "%llx", static_cast<unsigned long long>(bytes));
    std::printf("kdcart over %s, %.0f MiB displays:\n",
                com ? "the serial pty, unpaced" : "KDNET on loopback",
                static_cast<double>(bytes) / (1024.0 * 1024.0));
    // Virtual: from the start of nonpaged pool (what is not mapped prints ??); physical: RAM.
    const std::string cmds[] = {std::string("db fffffa8000000000 L") + count,
                                std::string("!db 100000 L") + count};
    for (const auto& c : cmds) {
        const long before = k.vm_hwm_kb();
        const auto t0 = Clock::now();
        k.send(c);
        const long long out = k.until_prompt(1800, c.size() + 100);
        const double dt = seconds_since(t0);
        const long after = k.vm_hwm_kb();
        if (out < 0) {
            std::fprintf(stderr, "bench: '%s' did not finish\n", c.c_str());
            return 1;
        }
        std::printf("  %-28s %7.2f s  %6.2f MB/s of memory  %6.1f MB of text  peak RSS %ld KB "
                    "(%+ld KB over the %ld KB before it)\n",
                    c.c_str(), dt, static_cast<double>(bytes) / 1e6 / dt,
                    static_cast<double>(out) / 1e6, after, after - before, before);
    }
    k.send("q");
    (void)k.until_prompt(5);
    std::printf("\n");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string bin_dir = "bin";
    if (const char* slash = std::strrchr(argv[0], '/')) {
        bin_dir = std::string(argv[0], static_cast<size_t>(slash - argv[0]));
    }
    std::string kdcart = bin_dir + "/kdcart";
    std::string kdsim = bin_dir + "/kdsim";
    bool com = false;
    uint64_t mib = 16;
    CLI::App app{"Memory and time of a large db display, in kdcart and in the formatters"};
    app.add_option("--kdcart", kdcart, "kdcart binary");
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_flag("--com", com, "over a serial pty instead of the default link");
    app.add_option("--mib", mib, "MiB to display")->check(CLI::Range(1, 65536));
    CLI11_PARSE(app, argc, argv);
    bench_formatters(mib * 1024 * 1024);
    return bench_kdcart(kdcart, kdsim, com, mib * 1024 * 1024);
}
