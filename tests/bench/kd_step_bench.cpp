// Benchmark (not a test): what a stop costs on a serial cable. Starts kdsim on a pty paced like a
// UART, attaches with -b as kdcart does (up to the first prompt: connection banner, vertarget
// lines, the stop), then runs `t` and `p` through the real command loop, each step printing
// what kdcart prints (registers and the code line). Prints steps/s, wire bytes per step split by
// manipulate API, attach seconds and bytes, and the floor: the time those bytes take at
// baud/10 bytes per second.
//
//   kd_step_bench [--kdsim PATH] [--baud 115200] [--steps 40] [--sympath PATH]
#include "tests/bench/ReplSession.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

using namespace kdcart;
using namespace bench;
using namespace std::chrono;

namespace {

struct Totals {
    double seconds = 0;
    uint64_t bytes = 0;
    std::map<uint32_t, protocol::ApiTraffic> apis;
};

void print_split(const Totals& t, double per, double floor_rate) {
    uint64_t in_apis = 0;
    for (const auto& [api, traffic] : t.apis) {
        in_apis += traffic.bytes();
        std::printf("    %-22s %8.1f requests %8.1f bytes\n", protocol::manipulate_api_name(api),
                    traffic.requests / per, traffic.bytes() / per);
    }
    std::printf("    %-22s %17s %8.1f bytes\n", "(state changes, other)", "",
                (t.bytes - in_apis) / per);
    std::printf("    %-22s %17s %8.1f bytes = %.3f s at %.0f B/s\n", "total", "", t.bytes / per,
                t.bytes / per / floor_rate, floor_rate);
}

// Runs `line` (which leaves the target stopped) and accounts for it.
bool measure(cli::Repl& repl, engine::Debugger& dbg, const std::string& line, Totals& into) {
    const uint64_t b0 = link_bytes(dbg);
    dbg.client().reset_traffic();
    const auto t0 = steady_clock::now();
    repl.execute_line(line);
    into.seconds += duration<double>(steady_clock::now() - t0).count();
    into.bytes += link_bytes(dbg) - b0;
    for (const auto& [api, t] : dbg.client().traffic()) {
        auto& a = into.apis[api];
        a.requests += t.requests;
        a.bytes_in += t.bytes_in;
        a.bytes_out += t.bytes_out;
    }
    return dbg.state() == engine::RunState::Stopped;
}

// Puts the target at the start of kdtest!KdTestUpdate (a call in kdtest's loop).
bool park(cli::Repl& repl, engine::Debugger& dbg, Capture& out) {
    repl.execute_line("bp kdtest!KdTestUpdate");
    repl.execute_line("g");
    repl.execute_line("bc *");
    if (dbg.state() != engine::RunState::Stopped || !dbg.last_stop().breakpoint_id) {
        std::fprintf(stderr, "bench: could not stop in kdtest!KdTestUpdate:\n%s\n",
                     out.text.c_str());
        return false;
    }
    // The stop's registers, as the user would see them before stepping, and nt's export symbols
    // (the attach read only the one its stop line shows; a step into nt would otherwise read the
    // rest): each measured step then pays for its own stop only.
    (void)dbg.context();
    repl.execute_line("x nt!Rtlp*");
    return true;
}

int run(const std::string& kdsim, unsigned baud, int steps, const std::string& sympath) {
    cli::SimOptions so;
    so.kdsim_path = kdsim;
    so.baud = baud;
    auto session = start_repl_session(so, sympath);
    if (!session) {
        return 1;
    }
    cli::Repl& repl = *session->repl;
    engine::Debugger& dbg = *session->dbg;
    Capture& out = session->out;
    Totals attach;
    attach.seconds = session->attach_seconds;
    attach.bytes = link_bytes(dbg);
    attach.apis = dbg.client().traffic();

    const double floor_rate = baud / 10.0; // 8N1: 10 bits per byte
    std::printf("link            : pty paced at %u baud (%.0f bytes/s)\n", baud, floor_rate);
    std::printf("attach (-b)     : %.2f s, %llu wire bytes (floor %.2f s)\n", attach.seconds,
                static_cast<unsigned long long>(attach.bytes), attach.bytes / floor_rate);
    print_split(attach, 1, floor_rate);

    for (const char* cmd : {"t", "p"}) {
        if (!park(repl, dbg, out)) {
            return 1;
        }
        Totals t;
        int calls_stepped_over = 0;
        for (int i = 0; i < steps; ++i) {
            if (!measure(repl, dbg, cmd, t) || !dbg.last_stop().step_complete) {
                std::fprintf(stderr, "bench: `%s` did not complete:\n%s\n", cmd, out.text.c_str());
                return 1;
            }
            if (dbg.client().traffic().count(protocol::DbgKdWriteBreakPointApi)) {
                ++calls_stepped_over;
            }
        }
        std::printf("\n%s x %d        : %.2f s, %.2f steps/s, %.0f wire bytes/step (floor %.3f s "
                    "= %.1f steps/s, %.0f%% of it)\n",
                    cmd, steps, t.seconds, steps / t.seconds, static_cast<double>(t.bytes) / steps,
                    t.bytes / floor_rate / steps, floor_rate * steps / t.bytes,
                    100.0 * (t.bytes / floor_rate) / t.seconds);
        if (calls_stepped_over) {
            std::printf("                  (%d of the steps were over a call: a breakpoint "
                        "written and removed)\n",
                        calls_stepped_over);
        }
        print_split(t, steps, floor_rate);
    }
    if (!sympath.empty()) {
        // Source mode (l+t, kdtest's PDB on the symbol path): p by source line, each a run of
        // quiet instruction steps, one stop display at the end.
        repl.execute_line(".lines -e; l+t");
        if (!park(repl, dbg, out)) {
            return 1;
        }
        const int lines = std::max(1, steps / 4);
        Totals t;
        for (int i = 0; i < lines; ++i) {
            if (!measure(repl, dbg, "p", t) || !dbg.last_stop().step_complete) {
                std::fprintf(stderr, "bench: `p` by line did not complete:\n%s\n",
                             out.text.c_str());
                return 1;
            }
        }
        std::printf("\np by line x %d  : %.2f s, %.2f lines/s, %.0f wire bytes/line (floor %.3f s)"
                    "\n",
                    lines, t.seconds, lines / t.seconds, static_cast<double>(t.bytes) / lines,
                    t.bytes / floor_rate / lines);
        print_split(t, lines, floor_rate);
        repl.execute_line("l-t; .lines -d");
    }
    const auto& c = dbg.session().counters();
    std::printf("\nretransmits %llu, resends %llu, bad packets %llu\n",
                static_cast<unsigned long long>(c.retransmits),
                static_cast<unsigned long long>(c.resends_received),
                static_cast<unsigned long long>(dbg.session().link_stats().bad_packets));
    (void)dbg.detach();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string kdsim = cli::default_kdsim_path();
    unsigned baud = 115200;
    int steps = 40;
    std::string sympath;
    CLI::App app{"Wire bytes and time of attach, t and p over a paced serial link to kdsim"};
    app.add_option("--kdsim", kdsim, "kdsim binary");
    app.add_option("--baud", baud, "line speed")->check(CLI::Range(1, 4000000));
    app.add_option("--steps", steps, "steps of each kind")->check(CLI::Range(1, 100000));
    app.add_option("--sympath", sympath, "symbol path (kdsim's PDBs)");
    CLI11_PARSE(app, argc, argv);
    return run(kdsim, baud, steps, sympath);
}
