// Benchmark (not a test): crash-dump capture and opening, through the engine kdcart uses.
//
//  1. `.dump /k` of kdsim over a pty paced like a 115200-baud UART: capture payload throughput
//     as a ratio to the link's ceiling (a 3944-byte physical read costs 4122 wire bytes at
//     11,520 bytes/s, so 11,022 bytes/s of payload at most). About 1-2 minutes; --skip-serial
//     leaves it out.
//  2. `.dump /f` (and /k) over KDNET on UDP loopback and over an unpaced pty, in MB/s.
//  3. `kdcart -z` on a 64 GiB sparse bitmap dump made from the /f capture (kdsim's pages at
//     their PFNs, the rest of the 64 GiB a hole): DumpTarget::open in this process, and the
//     whole kdcart process (open, WinDbg's opening lines, then lm, k, r, db) with its peak RSS.
//
//   dump_capture_bench [--kdsim PATH] [--dir DIR] [--skip-serial] [--gib 64]
#include "cli/SimLauncher.h"
#include "engine/Debugger.h"
#include "engine/DumpCapture.h"
#include "transport/KdnetLink.h"
#include "transport/PacketLink.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

using namespace kdcart;
using Clock = std::chrono::steady_clock;

namespace {

// KDCOM wire bytes for one full-size physical read: request (16+56+1), ACK (16),
// reply (16+56+3944+1), ACK (16).
constexpr double kPayloadPerRead = 3944;
constexpr double kWirePerRead = (16 + 56 + 1) + 16 + (16 + 56 + 3944 + 1) + 16;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Quiet final : engine::EngineDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return {}; }
    void on_notice(std::string_view) override {}
};

enum class Link { Serial, KdnetLoopback };

struct Capture {
    engine::CaptureKind kind;
    std::string path;
};

// Starts kdsim on `link`, breaks in and runs the captures in turn; prints one block per capture.
int run_link(const std::string& kdsim, Link link, unsigned baud,
             const std::vector<Capture>& captures) {
    cli::SimLauncher sim;
    cli::SimOptions so;
    so.kdsim_path = kdsim;
    so.baud = baud;
    std::unique_ptr<transport::PacketLink> packets;
    protocol::SessionOptions session_options;
    std::string what;
    if (link == Link::KdnetLoopback) {
        transport::KdnetHostConfig cfg;
        cfg.port = 0;
        cfg.host_ip = "127.0.0.1";
        cfg.key = "bench.1.2.3";
        auto host = transport::KdnetLink::create_host(cfg);
        if (!host) {
            std::fprintf(stderr, "bench: %s\n", host.error().message.c_str());
            return 1;
        }
        if (auto r = sim.start_kdnet(so, (*host)->local_port(), cfg.key); !r) {
            std::fprintf(stderr, "bench: %s\n", r.error().message.c_str());
            return 1;
        }
        packets = std::move(*host);
        // As kdcart does on KDNET.
        session_options.ack_timeout = std::chrono::milliseconds(500);
        session_options.send_retries = 10;
        what = "KDNET over UDP 127.0.0.1 (AES-256-CBC + HMAC)";
    } else {
        auto pty = sim.start_pty(so);
        if (!pty) {
            std::fprintf(stderr, "bench: %s\n", pty.error().message.c_str());
            return 1;
        }
        auto stream = transport::open_serial(*pty, baud ? baud : 115200);
        if (!stream) {
            std::fprintf(stderr, "bench: %s\n", stream.error().message.c_str());
            return 1;
        }
        packets = transport::make_kdcom_link(std::move(*stream));
        what = baud ? "pty paced at " + std::to_string(baud) + " baud" : "pty, unpaced";
    }
    Quiet quiet;
    engine::Debugger dbg(std::move(packets), &quiet, session_options);
    engine::AttachOptions ao;
    ao.break_in = true;
    ao.connect_timeout = std::chrono::seconds(60);
    if (auto stop = dbg.attach(ao); !stop) {
        std::fprintf(stderr, "bench: attach: %s\n", stop.error().message.c_str());
        return 1;
    }
    // The link's rate right now for plain full-size physical reads of one place (no file, no
    // planning): the capture's own overhead shows against this, whatever the machine's load.
    double baseline = 0;
    {
        const uint64_t at = 0x100000; // kdsim's RAM (PFNs 0x100-0x1fff)
        const uint32_t chunk = dbg.target().max_request();
        const double seconds = link == Link::Serial && baud != 0 ? 10 : 3;
        uint64_t bytes = 0;
        const auto t0 = Clock::now();
        while (seconds_since(t0) < seconds) {
            auto r = dbg.target().read_physical(at, chunk);
            if (!r || r->bytes.size() != chunk) {
                std::fprintf(stderr, "bench: baseline read failed\n");
                return 1;
            }
            bytes += r->bytes.size();
        }
        baseline = static_cast<double>(bytes) / seconds_since(t0);
    }
    for (const auto& c : captures) {
        ::unlink(c.path.c_str());
        ::unlink((c.path + ".kdpart").c_str());
        const char* name = c.kind == engine::CaptureKind::Complete ? "/f" : "/k";
        const auto t0 = Clock::now();
        auto plan = engine::plan_capture(dbg, c.kind, "dump_capture_bench");
        const double plan_s = seconds_since(t0);
        if (!plan) {
            std::fprintf(stderr, "bench: plan %s: %s\n", name, plan.error().message.c_str());
            return 1;
        }
        engine::CaptureOptions opt;
        opt.path = c.path;
        opt.kind = c.kind;
        opt.overwrite = true;
        const auto t1 = Clock::now();
        auto res = engine::run_capture(dbg, *plan, opt);
        const double run_s = seconds_since(t1);
        if (!res) {
            std::fprintf(stderr, "bench: capture %s: %s\n", name, res.error().message.c_str());
            return 1;
        }
        const double payload = static_cast<double>(res->progress.bytes_this_run);
        const double rate = payload / run_s;
        std::printf("link            : %s\n", what.c_str());
        std::printf("capture         : .dump %s, %llu pages (%llu page-table pages found), file "
                    "%.1f MB\n",
                    name, static_cast<unsigned long long>(plan->pages),
                    static_cast<unsigned long long>(plan->page_tables),
                    static_cast<double>(res->stats.file_bytes) / 1e6);
        std::printf("planning        : %.2f s (KDBG, runs, probe read%s)\n", plan_s,
                    c.kind == engine::CaptureKind::Kernel ? ", page-table walk" : "");
        std::printf("pages           : %.0f bytes in %.2f s = %.0f bytes/s (%.2f MB/s)\n", payload,
                    run_s, rate, rate / 1e6);
        std::printf("plain reads     : %.0f bytes/s (%u-byte physical reads of one place just "
                    "before); the capture's page reads run at %.1f%% of that\n",
                    baseline, dbg.target().max_request(), 100.0 * rate / baseline);
        if (link == Link::Serial && baud != 0) {
            const double ceiling = (baud / 10.0) * kPayloadPerRead / kWirePerRead;
            std::printf("ceiling         : %.0f bytes/s (3944 payload per %.0f wire bytes, 10 "
                        "bits per byte)\n",
                        ceiling, kWirePerRead);
            std::printf("ratio           : %.1f%% of the ceiling for the page reads, %.1f%% "
                        "including planning\n",
                        100.0 * rate / ceiling, 100.0 * payload / (plan_s + run_s) / ceiling);
        }
        const auto& counters = dbg.session().counters();
        std::printf("session         : %llu retransmits, %llu resends asked, %llu asked by the "
                    "target\n\n",
                    static_cast<unsigned long long>(counters.retransmits),
                    static_cast<unsigned long long>(counters.resends_sent),
                    static_cast<unsigned long long>(counters.resends_received));
        std::fflush(stdout);
    }
    (void)dbg.detach();
    return 0;
}

long peak_rss_kib() {
    struct rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

bool write_all(int fd, const void* p, size_t n, uint64_t off) {
    const auto* b = static_cast<const uint8_t*>(p);
    while (n > 0) {
        ssize_t w = ::pwrite(fd, b, n, static_cast<off_t>(off));
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= static_cast<size_t>(w);
        off += static_cast<uint64_t>(w);
    }
    return true;
}

// A `gib` GiB bitmap dump (DumpType 5, every PFN present) with the header and the pages of
// `source` at their PFNs; the rest of the page data is a hole.
bool make_big_dump(const std::string& source, const std::string& path, uint64_t gib) {
    using namespace engine;
    auto src = DumpFile::open(source);
    if (!src) {
        std::fprintf(stderr, "bench: %s\n", src.error().message.c_str());
        return false;
    }
    const uint64_t pages = gib << (30 - 12);
    const uint64_t bitmap_bytes = (pages + 7) / 8;
    const uint64_t header_size = (kDumpBitmapOffset + bitmap_bytes + 0xFFF) & ~uint64_t{0xFFF};
    const uint64_t file_size = header_size + pages * kDumpPageSize;
    DUMP_HEADER64 h = (*src)->header();
    h.DumpType = DUMP_TYPE_BITMAP_FULL;
    h.RequiredDumpSpace = file_size;
    for (size_t i = 0; i < DUMP_PHYSICAL_MEMORY_BLOCK_SIZE; i += 4) {
        std::memcpy(h.PhysicalMemoryBlockBuffer + i, "PAGE", 4); // unused in bitmap dumps
    }
    DUMP_BITMAP_HEADER64 bh{};
    bh.Signature = DUMP_FULL_SIGNATURE;
    bh.ValidDump = DUMP_SUMMARY_VALID;
    bh.HeaderSize = header_size;
    bh.Pages = pages;
    bh.BitmapSize = pages;
    std::vector<uint8_t> bits(bitmap_bytes, 0xFF);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        std::perror(path.c_str());
        return false;
    }
    bool ok = write_all(fd, &h, sizeof h, 0) &&
              write_all(fd, &bh, sizeof bh, kDumpBitmapHeaderOffset) &&
              write_all(fd, bits.data(), bits.size(), kDumpBitmapOffset) &&
              ::ftruncate(fd, static_cast<off_t>(file_size)) == 0;
    for (const auto& r : (*src)->present_ranges()) {
        for (uint64_t pfn = r.first_pfn; ok && pfn < r.end_pfn() && pfn < pages; ++pfn) {
            auto page = (*src)->page(pfn);
            ok = page &&
                 write_all(fd, page->data(), kDumpPageSize, header_size + pfn * kDumpPageSize);
        }
    }
    ::close(fd);
    if (!ok) {
        std::perror("writing the big dump");
    }
    return ok;
}

// Peak resident set of a live process (VmHWM: its address space since exec; wait4's ru_maxrss
// would also count this process's memory, which a vfork-spawned child shares until exec).
long vm_hwm_kib(pid_t pid) {
    FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
    if (!f) {
        return -1;
    }
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "VmHWM:", 6) == 0) {
            kib = std::strtol(line + 6, nullptr, 10);
        }
    }
    std::fclose(f);
    return kib;
}

struct ZRun {
    double to_prompt = 0; // open and WinDbg's opening lines, until the first prompt
    double to_end = 0;    // and every command
    long hwm_kib = 0;
};

// Runs `kdcart -z FILE`, sends `commands` one per line, waits for the prompt after each (at most
// 60 s in all), notes the peak RSS, then quits.
bool run_kdcart_z(const std::string& kdcart, const std::string& file,
                  const std::vector<std::string>& commands, ZRun& out) {
    int in[2], res[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(res, O_CLOEXEC) != 0) {
        return false;
    }
    std::vector<std::string> argv = {kdcart, "-z", file};
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, res[1], STDOUT_FILENO);
    pid_t pid = -1;
    const auto t0 = Clock::now();
    const int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(res[1]);
    if (rc != 0) {
        std::fprintf(stderr, "bench: cannot run %s: %s\n", kdcart.c_str(), std::strerror(rc));
        ::close(in[1]);
        ::close(res[0]);
        return false;
    }
    std::string text;
    size_t prompts = 0;
    bool ok = true;
    auto wait_prompt = [&] {
        char buf[65536];
        while (ok) {
            const size_t at = text.find("kd> ", 0);
            size_t count = 0;
            for (size_t p = at; p != std::string::npos; p = text.find("kd> ", p + 4)) {
                ++count;
            }
            if (count > prompts) {
                prompts = count;
                return;
            }
            pollfd pfd{res[0], POLLIN, 0};
            if (seconds_since(t0) > 60 || ::poll(&pfd, 1, 1000) < 0) {
                ok = false;
                return;
            }
            ssize_t n = ::read(res[0], buf, sizeof buf);
            if (n <= 0) {
                ok = false;
                return;
            }
            text.append(buf, static_cast<size_t>(n));
        }
    };
    wait_prompt();
    out.to_prompt = seconds_since(t0);
    for (const auto& c : commands) {
        const std::string line = c + "\n";
        ok = ok && ::write(in[1], line.data(), line.size()) == static_cast<ssize_t>(line.size());
        wait_prompt();
    }
    out.to_end = seconds_since(t0);
    out.hwm_kib = vm_hwm_kib(pid);
    ok = ok && ::write(in[1], "q\n", 2) == 2;
    ::close(in[1]);
    char drain[4096];
    while (::read(res[0], drain, sizeof drain) > 0) {
    }
    ::close(res[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "bench: kdcart -z failed (status %d):\n%s\n", status, text.c_str());
        return false;
    }
    return true;
}

int open_big(const std::string& kdcart, const std::string& source, const std::string& dir,
             uint64_t gib) {
    const std::string path = dir + "/kdcart_dump_capture_bench_big.dmp";
    if (!make_big_dump(source, path, gib)) {
        ::unlink(path.c_str());
        return 1;
    }
    struct stat st {};
    ::stat(path.c_str(), &st);
    std::printf("-z on a %llu GiB bitmap dump (FDMP, %llu pages; kdsim's pages from the /f "
                "capture, the rest a hole): file %llu bytes, %llu MB on disk\n",
                static_cast<unsigned long long>(gib),
                static_cast<unsigned long long>(gib << (30 - 12)),
                static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_blocks * 512 / 1000000));
    const long rss_before = peak_rss_kib();
    double best = 1e9, first = 0;
    for (int i = 0; i < 5; ++i) {
        const auto t0 = Clock::now();
        auto t = engine::DumpTarget::open(path);
        const double s = seconds_since(t0);
        if (!t) {
            std::fprintf(stderr, "bench: DumpTarget::open: %s\n", t.error().message.c_str());
            ::unlink(path.c_str());
            return 1;
        }
        first = i == 0 ? s : first;
        best = std::min(best, s);
    }
    std::printf("DumpTarget::open: first %.2f ms, best of 5 %.2f ms (this process's peak RSS "
                "%ld KiB before, %ld KiB after)\n",
                first * 1e3, best * 1e3, rss_before, peak_rss_kib());
    ZRun z;
    if (run_kdcart_z(kdcart, path, {}, z)) {
        std::printf("kdcart -z: first prompt after %.3f s (process start, open, opening lines), "
                    "peak RSS %ld KiB\n",
                    z.to_prompt, z.hwm_kib);
    }
    if (run_kdcart_z(kdcart, path, {"lm", "k", "r", "db nt L80", "!db 1000 L80"}, z)) {
        std::printf("kdcart -z, then lm, k, r, db, !db: %.3f s in all, peak RSS %ld KiB\n",
                    z.to_end, z.hwm_kib);
    }
    ::unlink(path.c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string kdsim = cli::default_kdsim_path();
    std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    bool serial = true;
    uint64_t gib = 64;
    CLI::App app{"Crash dump capture over serial and KDNET, and opening a big dump"};
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_option("--dir", dir, "directory for the dump files");
    app.add_flag("!--skip-serial", serial, "skip the 115200-baud capture");
    app.add_option("--gib", gib, "size of the big dump to open (0: skip)");
    CLI11_PARSE(app, argc, argv);
    const std::string kdcart = kdsim.substr(0, kdsim.rfind('/') + 1) + "kdcart";
    const std::string full = dir + "/kdcart_dump_capture_bench_f.dmp";
    const std::string kernel = dir + "/kdcart_dump_capture_bench_k.dmp";
    int rc = 0;
    if (serial) {
        rc = run_link(kdsim, Link::Serial, 115200, {{engine::CaptureKind::Kernel, kernel}});
    }
    if (rc == 0) {
        rc = run_link(
            kdsim, Link::KdnetLoopback, 0,
            {{engine::CaptureKind::Complete, full}, {engine::CaptureKind::Kernel, kernel}});
    }
    if (rc == 0) {
        rc = run_link(kdsim, Link::Serial, 0, {{engine::CaptureKind::Complete, full}});
    }
    if (rc == 0 && gib > 0) {
        rc = open_big(kdcart, full, dir, gib);
    }
    ::unlink(full.c_str());
    ::unlink(kernel.c_str());
    return rc;
}
