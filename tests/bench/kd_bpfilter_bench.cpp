// Benchmark (not a test): what a filtered-out hit of `bp /p` or `bp /t` costs on a serial cable.
// Starts kdsim with three processors on a pty paced like a UART, attaches, sets a breakpoint on
// nt!KiIdleLoop's `hlt` (hit by both idle processors every 10 ms tick) filtered to the System
// process (`bp /p @$proc`, then `bp /t @$thread`: CPU 0's thread), lets the target run for a
// while and breaks in. Every hit is filtered out: a stop, the filter's check, the step off the
// breakpoint and the resume. Prints hits/s, wire bytes per hit split by manipulate API, and the
// floor: the time those bytes take at baud/10 bytes per second.
//
//   kd_bpfilter_bench [--kdsim PATH] [--baud 115200] [--seconds 10] [--sympath PATH]
#include "tests/bench/ReplSession.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

using namespace kdcart;
using namespace bench;
using namespace std::chrono;

namespace {

// Runs with `bp_line` set for `run_for`, breaks in, and prints what the filtered hits cost.
bool measure(cli::Repl& repl, engine::Debugger& dbg, Capture& out, const std::string& bp_line,
             seconds run_for, double floor_rate) {
    repl.execute_line("bc *");
    repl.execute_line(bp_line);
    if (dbg.breakpoints().size() != 1) {
        std::fprintf(stderr, "bench: '%s' did not set a breakpoint:\n%s\n", bp_line.c_str(),
                     out.text.c_str());
        return false;
    }
    dbg.client().reset_traffic();
    const uint64_t b0 = link_bytes(dbg);
    const auto t0 = steady_clock::now();
    if (auto r = dbg.go(); !r) {
        std::fprintf(stderr, "bench: g: %s\n", r.error().message.c_str());
        return false;
    }
    while (steady_clock::now() - t0 < run_for) {
        auto stop = dbg.wait_for_stop(milliseconds(100));
        if (stop) {
            std::fprintf(stderr, "bench: the filtered breakpoint stopped the target:\n%s\n",
                         out.text.c_str());
            return false;
        }
        if (stop.error().code != Errc::Timeout) {
            std::fprintf(stderr, "bench: %s\n", stop.error().message.c_str());
            return false;
        }
    }
    if (auto r = dbg.break_in(); !r) {
        std::fprintf(stderr, "bench: break-in: %s\n", r.error().message.c_str());
        return false;
    }
    auto stop = dbg.wait_for_stop(seconds(30));
    if (!stop || stop->breakpoint_id) {
        std::fprintf(stderr, "bench: no break-in stop\n");
        return false;
    }
    const double secs = duration<double>(steady_clock::now() - t0).count();
    const uint64_t bytes = link_bytes(dbg) - b0;
    const auto traffic = dbg.client().traffic();
    // Each filtered-out hit resumes twice: off the breakpoint with the trace flag, then on.
    auto it = traffic.find(protocol::DbgKdContinueApi2);
    const uint64_t continues = it == traffic.end() ? 0 : it->second.requests;
    const double hits = continues / 2.0;
    if (hits < 1) {
        std::fprintf(stderr, "bench: no hit was filtered out\n");
        return false;
    }
    std::printf("\n%s\n  %.1f s running, %.0f filtered-out hits, %.1f hits/s, %.0f wire bytes "
                "per hit (floor %.3f s = %.1f hits/s, %.0f%% of the time on the wire)\n",
                bp_line.c_str(), secs, hits, hits / secs, bytes / hits, bytes / hits / floor_rate,
                floor_rate * hits / bytes, 100.0 * (bytes / floor_rate) / secs);
    uint64_t in_apis = 0;
    for (const auto& [api, t] : traffic) {
        in_apis += t.bytes();
        std::printf("    %-22s %8.2f requests %8.1f bytes\n", protocol::manipulate_api_name(api),
                    t.requests / hits, t.bytes() / hits);
    }
    std::printf("    %-22s %17s %8.1f bytes\n", "(state changes, other)", "",
                (bytes - in_apis) / hits);
    return true;
}

int run(const std::string& kdsim, unsigned baud, int run_seconds, const std::string& sympath) {
    cli::SimOptions so;
    so.kdsim_path = kdsim;
    so.baud = baud;
    so.cpus = 3;
    auto session = start_repl_session(so, sympath);
    if (!session) {
        return 1;
    }
    cli::Repl& repl = *session->repl;
    engine::Debugger& dbg = *session->dbg;
    Capture& out = session->out;
    // nt's types (for KTHREAD.ApcState.Process) loaded before measuring.
    repl.execute_line("? @$proc");
    const double floor_rate = baud / 10.0;
    std::printf("link: pty paced at %u baud (%.0f bytes/s), kdsim with 3 processors\n", baud,
                floor_rate);
    // Stopped on CPU 0: @$proc is System, @$thread kdtest's system thread.
    for (const char* line : {"bp /p @$proc nt!KiIdleLoop", "bp /t @$thread nt!KiIdleLoop"}) {
        if (!measure(repl, dbg, out, line, seconds(run_seconds), floor_rate)) {
            return 1;
        }
        if (dbg.current_processor() != 0) {
            repl.execute_line("~0"); // @$proc / @$thread of CPU 0 again
        }
    }
    repl.execute_line("bc *");
    (void)dbg.detach();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string kdsim = cli::default_kdsim_path();
    unsigned baud = 115200;
    int run_seconds = 10;
    std::string sympath;
    CLI::App app{"What a filtered-out hit of bp /p or bp /t costs on a serial cable"};
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_option("--baud", baud, "line speed")->check(CLI::Range(1, 4000000));
    app.add_option("--seconds", run_seconds, "run time per case")->check(CLI::Range(1, 3600));
    app.add_option("--sympath", sympath, "symbol path (default: kdsim's PDBs)");
    CLI11_PARSE(app, argc, argv);
    if (sympath.empty()) {
        // kdsim's images and PDBs sit next to it in the build tree.
        const auto slash = kdsim.rfind('/');
        sympath = (slash == std::string::npos ? std::string(".") : kdsim.substr(0, slash)) +
                  "/../hw/images";
    }
    return run(kdsim, baud, run_seconds, sympath);
}
