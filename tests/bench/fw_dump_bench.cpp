// Benchmark (not a test): dump throughput over the simulated IEEE 1394 bus, reading the
// target's RAM the way .dump does (every page of every RAM run, in requests of the link's
// max_request() = 3944 bytes) once by physical DMA (block reads off the bus, no KD packets)
// and once with DbgKdReadPhysicalMemoryApi packets through the 1394 mailboxes. Both read the
// same bytes (checked). Prints bytes/s, bus transactions and the ratio.
//
//   fw_dump_bench [--kdsim PATH] [--mib N (default: all RAM)] [--kd-seconds S (default 20)]
#include "cli/SimLauncher.h"
#include "protocol/KdClient.h"
#include "transport/FwSimBus.h"
#include "transport/Ieee1394Link.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

using namespace kdcart;
using namespace std::chrono;

namespace {

struct Quiet : protocol::SessionDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return {}; }
    void on_link_notice(std::string_view) override {}
};

// kdsim's RAM (hw/README.md): the runs MmPhysicalMemoryBlock describes.
struct Run {
    uint64_t base;
    uint64_t size;
};
constexpr Run kRuns[] = {
    {0x1000, 0x9F000 - 0x1000},
    {0x100000, 0x2000000 - 0x100000},
    {0x3000000, 0x4200000 - 0x3000000},
};

// kdsim's DEBUG_1394_CONFIG and mailboxes (hw/SimFirewireBus.h): left out of the comparison.
constexpr uint64_t kMailboxes = 0x9C000;

uint64_t fnv(const std::vector<uint8_t>& b, uint64_t h) {
    for (uint8_t c : b) {
        h = (h ^ c) * 0x100000001B3ull;
    }
    return h;
}

struct Pass {
    uint64_t bytes = 0;
    uint64_t requests = 0;
    double seconds = 0;
    uint64_t hash = 0xCBF29CE484222325ull;
    uint64_t transactions = 0;
};

// Reads the runs in `chunk`-byte requests with `read` until `limit` bytes or `max_seconds`.
template <class F> Pass read_runs(uint32_t chunk, uint64_t limit, double max_seconds, F&& read) {
    Pass p;
    const auto t0 = steady_clock::now();
    for (const Run& r : kRuns) {
        for (uint64_t a = r.base; a < r.base + r.size && p.bytes < limit;) {
            const auto n = static_cast<uint32_t>(std::min<uint64_t>(chunk, r.base + r.size - a));
            std::vector<uint8_t> got;
            if (!read(a, n, got) || got.size() != n) {
                std::fprintf(stderr, "bench: read of %u bytes at %#llx failed\n", n,
                             static_cast<unsigned long long>(a));
                std::exit(1);
            }
            if (a + n <= kMailboxes || a >= kMailboxes + 0x3000) {
                p.hash = fnv(got, p.hash); // the debug block and mailboxes change as we go
            }
            p.bytes += n;
            ++p.requests;
            a += n;
            if ((p.requests & 63) == 0 &&
                duration<double>(steady_clock::now() - t0).count() > max_seconds) {
                p.seconds = duration<double>(steady_clock::now() - t0).count();
                return p;
            }
        }
    }
    p.seconds = duration<double>(steady_clock::now() - t0).count();
    return p;
}

void print(const char* what, const Pass& p) {
    const double rate = static_cast<double>(p.bytes) / p.seconds;
    std::printf("%-28s: %6.1f MiB in %6.2f s = %8.2f MiB/s (%llu requests, %llu bus "
                "transactions, %.0f payload bytes per transaction)\n",
                what, static_cast<double>(p.bytes) / 1048576.0, p.seconds, rate / 1048576.0,
                static_cast<unsigned long long>(p.requests),
                static_cast<unsigned long long>(p.transactions),
                p.transactions ? static_cast<double>(p.bytes) / static_cast<double>(p.transactions)
                               : 0.0);
}

} // namespace

int main(int argc, char** argv) {
    std::string kdsim = cli::default_kdsim_path();
    uint64_t limit = ~uint64_t{0};
    double kd_seconds = 20;
    uint64_t mib = 0;
    CLI::App app{"Reading kdsim's RAM over the simulated 1394 bus, and over KD for comparison"};
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_option("--mib", mib, "MiB to read (default: all)")->check(CLI::Range(1, 1048576));
    app.add_option("--kd-seconds", kd_seconds, "seconds of the KD comparison");
    CLI11_PARSE(app, argc, argv);
    if (mib != 0) {
        limit = mib << 20;
    }
    cli::SimLauncher sim;
    cli::SimOptions so;
    so.kdsim_path = kdsim;
    auto path = sim.start_1394(so, 1);
    if (!path) {
        std::fprintf(stderr, "bench: %s\n", path.error().message.c_str());
        return 1;
    }
    transport::Ieee1394Config cfg;
    cfg.channel = 1;
    auto port = transport::Ieee1394Port::open(transport::make_sim_enumerator(*path), cfg,
                                              "simulated bus " + *path);
    if (!port || !(*port)->located()) {
        std::fprintf(stderr, "bench: no 1394 target: %s\n",
                     port ? "not found" : port.error().message.c_str());
        return 1;
    }
    Quiet quiet;
    protocol::KdSession session(transport::make_ieee1394_link(*port), &quiet);
    protocol::KdClient client(session);
    std::optional<protocol::StateChange> stop;
    for (int i = 0; i < 20 && !stop; ++i) {
        (void)session.send_breakin();
        if (auto sc = session.wait_state_change(milliseconds(1000))) {
            stop = *sc;
        }
    }
    if (!stop) {
        std::fprintf(stderr, "bench: the simulated target did not stop\n");
        return 1;
    }
    client.set_current_processor(stop->change.Processor, stop->change.ProcessorLevel);
    const uint32_t chunk = session.max_transfer(); // 3944: what .dump asks for per request
    std::printf("link                        : %s, %u-byte requests (.dump's request size), "
                "%u-byte bus payloads\n",
                (*port)->describe().c_str(), chunk, (*port)->payload_limit());

    auto t_before = (*port)->stats().transactions;
    Pass dma = read_runs(chunk, limit, 1e9, [&](uint64_t a, uint32_t n, std::vector<uint8_t>& out) {
        auto r = (*port)->read_physical(a, n);
        if (!r) {
            return false;
        }
        out = std::move(*r);
        return true;
    });
    dma.transactions = (*port)->stats().transactions - t_before;

    t_before = (*port)->stats().transactions;
    Pass kd = read_runs(chunk, std::min(limit, dma.bytes), kd_seconds,
                        [&](uint64_t a, uint32_t n, std::vector<uint8_t>& out) {
                            auto r = client.read_physical(a, n);
                            if (!r) {
                                return false;
                            }
                            out = std::move(r->bytes);
                            return true;
                        });
    kd.transactions = (*port)->stats().transactions - t_before;

    print("physical DMA", dma);
    print("KD ReadPhysicalMemory", kd);
    const double ratio = (static_cast<double>(dma.bytes) / dma.seconds) /
                         (static_cast<double>(kd.bytes) / kd.seconds);
    std::printf("DMA / KD packets            : %.1fx\n", ratio);
    if (kd.bytes == dma.bytes) {
        std::printf("same bytes                  : %s\n", kd.hash == dma.hash ? "yes" : "NO");
    } else {
        // The KD pass stopped early: compare what both read.
        Pass again =
            read_runs(chunk, kd.bytes, 1e9, [&](uint64_t a, uint32_t n, std::vector<uint8_t>& out) {
                auto r = (*port)->read_physical(a, n);
                if (!r) {
                    return false;
                }
                out = std::move(*r);
                return true;
            });
        std::printf("same bytes                  : %s (first %.1f MiB)\n",
                    again.hash == kd.hash ? "yes" : "NO",
                    static_cast<double>(kd.bytes) / 1048576.0);
    }
    std::printf("bus resets %llu, restarts %llu\n",
                static_cast<unsigned long long>((*port)->stats().bus_resets),
                static_cast<unsigned long long>((*port)->stats().restarts));
    protocol::AMD64_DBGKD_CONTROL_SET cs{};
    cs.Dr7 = 0x400;
    (void)client.continue2(protocol::DBG_CONTINUE, cs);
    return 0;
}
