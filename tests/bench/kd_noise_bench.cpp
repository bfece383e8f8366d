// Benchmark (not a test): memory read throughput against kdsim on a bad cable, as a fraction of
// the clean-link figure (issue 13). kdsim injects faults per byte both ways (KDSIM_CORRUPT_RATE
// or KDSIM_DROP_RATE); reads go through the engine's LiveTarget as kdcart's do, so they are
// verified (read until two reads agree) once the link has shown errors. Every read is also
// compared with the clean run's bytes: a wrong byte would be counted.
//
//   kd_noise_bench [--kdsim PATH] [--baud 115200] [--seconds 20] [--rates 0,1e-5,1e-4,1e-3]
#include "cli/SimLauncher.h"
#include "engine/LiveTarget.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string>

using namespace kdcart;
using namespace std::chrono;

namespace {

struct Quiet : engine::EngineDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return {}; }
    void on_notice(std::string_view) override {}
};

constexpr uint32_t kReadSize = 32 * 1024;

struct Figures {
    double rate = 0; // payload bytes/s
    uint64_t wrong = 0;
    uint64_t unread = 0;
    uint64_t reads = 0;
    uint64_t errors = 0;
    bool verified = false;
    uint32_t chunk = 0;      // the request size reads use at the end of the row
    uint64_t resends = 0;    // RESENDs asked (damaged or missing replies)
    uint64_t timeouts = 0;   // requests given up on (a smaller one then asked for)
    uint64_t link_bytes = 0; // bytes on the wire both ways
    uint64_t bytes = 0;      // bytes read
};

// One kdsim with the given fault environment; reads the kernel's first 32 KiB over and over.
bool measure(const std::string& kdsim, unsigned baud, double seconds, const char* env,
             double fault_rate, std::vector<uint8_t>& reference, Figures& out) {
    char rate_text[32];
    std::snprintf(rate_text, sizeof rate_text, "%g", fault_rate);
    if (env != nullptr) {
        ::setenv(env, rate_text, 1);
        ::setenv("KDSIM_SEED", "7", 1);
    }
    cli::SimLauncher sim;
    cli::SimOptions so;
    so.kdsim_path = kdsim;
    so.baud = baud;
    auto pty = sim.start_pty(so);
    if (env != nullptr) {
        ::unsetenv(env);
        ::unsetenv("KDSIM_SEED");
    }
    if (!pty) {
        std::fprintf(stderr, "bench: %s\n", pty.error().message.c_str());
        return false;
    }
    auto stream = transport::open_serial(*pty, baud ? baud : 115200);
    if (!stream) {
        std::fprintf(stderr, "bench: %s\n", stream.error().message.c_str());
        return false;
    }
    Quiet quiet;
    engine::LiveTarget target(transport::make_kdcom_link(std::move(*stream)), &quiet);
    auto& session = target.session();
    std::optional<protocol::StateChange> stop;
    for (int i = 0; i < 60 && !stop; ++i) {
        if (!session.synchronized()) {
            (void)session.reset(milliseconds(1000));
        }
        (void)session.send_breakin();
        auto sc = session.wait_state_change(milliseconds(1000));
        if (sc) {
            stop = *sc;
        }
    }
    if (!stop) {
        std::fprintf(stderr, "bench: the simulated target did not stop\n");
        return false;
    }
    target.set_stop_processor(stop->change.Processor, stop->change.ProcessorLevel,
                              stop->change.NumberProcessors);
    auto v = target.version();
    if (!v) {
        std::fprintf(stderr, "bench: GetVersion: %s\n", v.error().message.c_str());
        return false;
    }
    const uint64_t base = v->KernBase;
    uint64_t bytes = 0;
    const auto t0 = steady_clock::now();
    const auto counters0 = session.counters();
    const auto link0 = session.link_stats();
    while (duration<double>(steady_clock::now() - t0).count() < seconds) {
        auto r = target.read_virtual(base, kReadSize);
        if (!r) {
            ++out.errors;
            continue;
        }
        if (reference.empty() && r->bytes.size() == kReadSize) {
            reference = r->bytes;
        }
        for (size_t i = 0; i < r->bytes.size() && i < reference.size(); ++i) {
            out.wrong += r->bytes[i] != reference[i] ? 1 : 0;
        }
        out.unread += kReadSize - r->bytes.size();
        bytes += r->bytes.size();
        ++out.reads;
    }
    out.bytes = bytes;
    out.rate = bytes / duration<double>(steady_clock::now() - t0).count();
    out.verified = target.reads().health().verified_reads > 0;
    out.chunk = target.reads().health().chunk;
    out.resends = session.counters().resends_sent - counters0.resends_sent;
    out.timeouts = session.counters().timeouts - counters0.timeouts;
    const auto link1 = session.link_stats();
    out.link_bytes = (link1.bytes_in - link0.bytes_in) + (link1.bytes_out - link0.bytes_out);
    protocol::AMD64_DBGKD_CONTROL_SET cs{};
    cs.Dr7 = 0x400;
    cs.CurrentSymbolStart = 1;
    (void)target.client().continue2(protocol::DBG_CONTINUE, cs);
    return true;
}

} // namespace

int main(int argc, char** argv) {
    std::string kdsim = cli::default_kdsim_path();
    double seconds = 20;
    unsigned baud = 115200;
    std::vector<double> rates = {0, 1e-5, 1e-4, 1e-3};
    if (std::getenv("KD_NOISE_BENCH_DEBUG") != nullptr) {
        spdlog::set_level(spdlog::level::debug); // the session's and link's decisions, on stderr
    }
    CLI::App app{"Read throughput against kdsim's injected line faults"};
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_option("--seconds", seconds, "seconds per row")->check(CLI::Range(0.1, 3600.0));
    app.add_option("--baud", baud, "line speed (0 = unpaced)");
    app.add_option("--rates", rates, "fault rates, e.g. 0,1e-5,1e-4,1e-3")->delimiter(',');
    CLI11_PARSE(app, argc, argv);
    std::printf("kdsim on a pty %s, 32 KiB reads of the kernel image for %.0f s per row\n",
                baud ? ("paced at " + std::to_string(baud) + " baud").c_str() : "unpaced", seconds);
    std::vector<uint8_t> reference;
    Figures clean;
    if (!measure(kdsim, baud, seconds, nullptr, 0, reference, clean)) {
        return 1;
    }
    std::printf("%-8s %-8s %10s %9s %9s %7s %7s %6s %7s %6s %8s %s\n", "fault", "rate", "bytes/s",
                "fraction", "verified", "wrong", "unread", "reads", "request", "RESEND", "timeouts",
                "wire/byte");
    auto row = [&](const char* fault, const char* rate, const Figures& f) {
        const double read_bytes = static_cast<double>(f.bytes);
        std::printf(
            "%-8s %-8s %10.0f %9.2f %9s %7llu %7llu %6llu %7u %6llu %8llu %9.2f%s\n", fault, rate,
            f.rate, f.rate / clean.rate, f.verified ? "yes" : "no",
            static_cast<unsigned long long>(f.wrong), static_cast<unsigned long long>(f.unread),
            static_cast<unsigned long long>(f.reads), f.chunk,
            static_cast<unsigned long long>(f.resends), static_cast<unsigned long long>(f.timeouts),
            read_bytes > 0 ? static_cast<double>(f.link_bytes) / read_bytes : 0.0,
            f.errors ? (" (" + std::to_string(f.errors) + " failed)").c_str() : "");
        std::fflush(stdout);
    };
    row("none", "0", clean);
    for (const char* env : {"KDSIM_CORRUPT_RATE", "KDSIM_DROP_RATE"}) {
        for (double r : rates) {
            if (r == 0) {
                continue;
            }
            Figures f;
            if (!measure(kdsim, baud, seconds, env, r, reference, f)) {
                return 1;
            }
            char rate_text[32];
            std::snprintf(rate_text, sizeof rate_text, "%g", r);
            row(std::string(env).find("CORRUPT") != std::string::npos ? "corrupt" : "drop",
                rate_text, f);
        }
    }
    return 0;
}
