// Shared by the benchmarks that drive kdcart's command loop against kdsim on a pty paced like a
// UART (kd_step_bench, kd_bpfilter_bench): kdsim started, the link opened, the REPL and the
// debugger made and attached with a break-in, the connection banner printed.
#pragma once
#include "cli/Repl.h"
#include "cli/SimLauncher.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

namespace bench {

// Keeps the tail of what kdcart would print, so that a failing run can say why.
struct Capture : kdcart::cli::Output {
    std::string text;
    void write(std::string_view t) override {
        text += t;
        if (text.size() > 64 * 1024) {
            text.erase(0, text.size() - 16 * 1024);
        }
    }
};

// Bytes on the wire so far, both ways.
inline uint64_t link_bytes(kdcart::engine::Debugger& dbg) {
    const auto s = dbg.session().link_stats();
    return s.bytes_in + s.bytes_out;
}

struct ReplSession {
    kdcart::cli::SimLauncher sim;
    Capture out;
    std::unique_ptr<kdcart::cli::Repl> repl;
    std::unique_ptr<kdcart::engine::Debugger> dbg;
    double attach_seconds = 0; // opening the link to the first prompt
};

// Starts kdsim as `so` says (its baud rate paces the pty), attaches with -b and the symbol path
// `sympath` (none when empty). nullptr, after saying why on stderr, when that fails.
inline std::unique_ptr<ReplSession> start_repl_session(const kdcart::cli::SimOptions& so,
                                                       const std::string& sympath) {
    using namespace kdcart;
    auto s = std::make_unique<ReplSession>();
    auto pty = s->sim.start_pty(so);
    if (!pty) {
        std::fprintf(stderr, "bench: %s\n", pty.error().message.c_str());
        return nullptr;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto stream = transport::open_serial(*pty, so.baud);
    if (!stream) {
        std::fprintf(stderr, "bench: %s\n", stream.error().message.c_str());
        return nullptr;
    }
    s->repl = std::make_unique<cli::Repl>(s->out);
    s->dbg = std::make_unique<engine::Debugger>(transport::make_kdcom_link(std::move(*stream)),
                                                s->repl.get());
    s->repl->set_debugger(s->dbg.get());
    if (!sympath.empty()) {
        s->dbg->symbols().set_path(engine::SymbolPath::parse(sympath, ""));
    }
    engine::AttachOptions ao;
    ao.break_in = true;
    ao.connect_timeout = std::chrono::seconds(60);
    auto first = s->dbg->attach(ao);
    if (!first) {
        std::fprintf(stderr, "bench: attach: %s\n", first.error().message.c_str());
        return nullptr;
    }
    s->repl->announce_connection(*first);
    s->attach_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

} // namespace bench
