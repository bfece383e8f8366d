// Benchmark (not a test): bulk ReadVirtualMemory throughput against kdsim over a pty paced
// like a UART at the given baud, unpaced, and over KDNET on UDP loopback. Prints payload
// bytes/s, requests/s and, for serial, the ratio to the protocol's ceiling at that baud.
//
//   kd_read_bench [--kdsim PATH] [--baud 115200 | --kdnet] [--seconds 20]
#include "cli/SimLauncher.h"
#include "protocol/KdClient.h"
#include "transport/KdnetLink.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

using namespace kdcart;
using namespace std::chrono;

namespace {

struct Quiet : protocol::SessionDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return {}; }
    void on_link_notice(std::string_view) override {}
};

// Wire bytes for one full-size read on KDCOM: request (16+56+1), ACK (16),
// reply (16+56+3944+1), ACK (16).
constexpr double kPayloadPerRead = 3944;
constexpr double kWirePerRead = (16 + 56 + 1) + 16 + (16 + 56 + 3944 + 1) + 16;

// baud > 0: pty paced at that rate; 0: pty unpaced; kKdnet: KDNET over UDP loopback.
constexpr unsigned kKdnet = ~0u;

int run(const std::string& kdsim, unsigned baud, double seconds) {
    cli::SimLauncher sim;
    cli::SimOptions so;
    so.kdsim_path = kdsim;
    so.baud = baud == kKdnet ? 0 : baud;
    std::unique_ptr<transport::PacketLink> link;
    if (baud == kKdnet) {
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
        link = std::move(*host);
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
        link = transport::make_kdcom_link(std::move(*stream));
    }
    Quiet quiet;
    protocol::SessionOptions opt;
    if (baud == kKdnet) {
        opt.ack_timeout = milliseconds(500);
    }
    protocol::KdSession session(std::move(link), &quiet, opt);
    protocol::KdClient client(session);
    // Break in and wait for the stop.
    std::optional<protocol::StateChange> stop;
    for (int i = 0; i < 20 && !stop; ++i) {
        (void)session.send_breakin();
        auto sc = session.wait_state_change(milliseconds(1000));
        if (sc) {
            stop = *sc;
        }
    }
    if (!stop) {
        std::fprintf(stderr, "bench: the simulated target did not stop\n");
        return 1;
    }
    client.set_current_processor(stop->change.Processor, stop->change.ProcessorLevel);
    auto v = client.get_version();
    if (!v) {
        std::fprintf(stderr, "bench: GetVersion: %s\n", v.error().message.c_str());
        return 1;
    }
    const uint64_t base = v->KernBase;
    const uint32_t chunk = session.max_transfer(); // 3944 on KDCOM, 0x480 on KDNET
    uint64_t bytes = 0;
    uint64_t requests = 0;
    const auto t0 = steady_clock::now();
    while (duration<double>(steady_clock::now() - t0).count() < seconds) {
        auto r = client.read_virtual(base, chunk);
        if (!r || r->bytes.size() != chunk) {
            std::fprintf(stderr, "bench: read failed\n");
            return 1;
        }
        bytes += r->bytes.size();
        ++requests;
    }
    const double dt = duration<double>(steady_clock::now() - t0).count();
    const double rate = bytes / dt;
    const std::string what = baud == kKdnet
                                 ? std::string("KDNET over UDP 127.0.0.1 (AES-256-CBC + HMAC)")
                             : baud ? "pty paced at " + std::to_string(baud) + " baud"
                                    : std::string("pty, unpaced");
    std::printf("link            : %s\n", what.c_str());
    std::printf("reads           : %llu x %u bytes in %.2f s (%.1f requests/s)\n",
                static_cast<unsigned long long>(requests), chunk, dt, requests / dt);
    std::printf("payload         : %.0f bytes/s (%.2f KB/s)\n", rate, rate / 1000.0);
    if (baud && baud != kKdnet) {
        const double ceiling = (baud / 10.0) * kPayloadPerRead / kWirePerRead;
        std::printf("ceiling         : %.0f bytes/s (3944 payload per %.0f wire bytes, 10 bits "
                    "per byte)\n",
                    ceiling, kWirePerRead);
        std::printf("ratio           : %.1f%% of the ceiling\n", 100.0 * rate / ceiling);
    }
    std::printf("retransmits %llu, resends %llu, bad packets %llu\n",
                static_cast<unsigned long long>(session.counters().retransmits),
                static_cast<unsigned long long>(session.counters().resends_received),
                static_cast<unsigned long long>(session.link_stats().bad_packets));
    // Let the target run again.
    protocol::AMD64_DBGKD_CONTROL_SET cs{};
    cs.Dr7 = 0x400;
    cs.CurrentSymbolStart = 1;
    (void)client.continue2(protocol::DBG_CONTINUE, cs);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string kdsim = cli::default_kdsim_path();
    double seconds = 15;
    std::vector<unsigned> bauds = {115200, 0, kKdnet};
    CLI::App app{"Read throughput of full-size requests against kdsim"};
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_option("--seconds", seconds, "seconds per link")->check(CLI::Range(0.1, 3600.0));
    std::optional<unsigned> baud;
    bool kdnet = false;
    app.add_option("--baud", baud, "only this serial speed (0 = unpaced)");
    app.add_flag("--kdnet", kdnet, "only KDNET over loopback");
    CLI11_PARSE(app, argc, argv);
    if (baud) {
        bauds = {*baud};
    } else if (kdnet) {
        bauds = {kKdnet};
    }
    for (unsigned b : bauds) {
        if (int rc = run(kdsim, b, seconds); rc != 0) {
            return rc;
        }
        std::printf("\n");
    }
    return 0;
}
