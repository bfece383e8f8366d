#include "cli/LinkCommands.h"

#include "cli/Repl.h"

#include <cstdio>

namespace kdcart::cli {

namespace {

std::string fixed(double v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string kilobytes(double bytes) {
    return fixed(bytes / 1024, bytes < 10 * 1024 ? 1 : 0) + " KB";
}

const char* mode_text(engine::VerifyMode mode) {
    switch (mode) {
    case engine::VerifyMode::On:
        return "on (every memory read is read again until two reads agree)";
    case engine::VerifyMode::Off:
        return "off (reads are not verified; a dump still is on a noisy link)";
    case engine::VerifyMode::Auto:
        break;
    }
    return "auto (memory is read twice and compared while the link is noisy)";
}

void show(engine::ReadVerifier& v, Output& out) {
    const auto h = v.health();
    out.write(std::string("Read verification: ") + mode_text(v.mode()) + "\n");
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1e", h.byte_error_rate);
    out.write(std::string("Link: ") + (h.noisy ? "noisy" : "clean") + " - " +
              fixed(h.recent_errors, 1) + " error events in the last " + kilobytes(h.recent_bytes) +
              " (about " + rate + " damaged bytes per byte); reads go in requests of " +
              std::to_string(h.chunk) + " bytes\n");
    const auto& s = h.session;
    const auto& l = h.link;
    out.write("  bad packets " + std::to_string(l.bad_packets) + ", RESENDs asked " +
              std::to_string(s.resends_sent) + " (" + std::to_string(s.nudges) +
              " for lost replies), RESENDs from the target " + std::to_string(s.resends_received) +
              ", retransmits " + std::to_string(s.retransmits) + ", duplicates " +
              std::to_string(s.duplicates) + ",\n  implausible packets " +
              std::to_string(s.implausible) + " (" + std::to_string(s.suspects_dropped) +
              " not sent again, dropped), timeouts " + std::to_string(s.timeouts) +
              ", garbage bytes " + std::to_string(l.garbage_bytes) + ", dropped datagrams " +
              std::to_string(l.dropped) + ", malformed stops " + std::to_string(s.malformed_stops) +
              ",\n  RESETs from the target " + std::to_string(s.target_resets) +
              ", requests lost after their ACK " + std::to_string(s.lost_requests) + "\n");
    if (h.verified_reads != 0) {
        out.write(
            "Verified reads: " + std::to_string(h.verified_reads) + " (" +
            std::to_string(h.disagreements) + " reads disagreed and were read again); the last, " +
            std::to_string(h.last_bytes) + " bytes in " + std::to_string(h.last_requests) +
            " requests, cost " + fixed(h.last_slowdown, 1) + "x the wire time of one clean read\n");
    }
}

} // namespace

bool run_link_command(engine::Debugger& dbg, Output& out, std::string_view word,
                      std::string_view args) {
    if (word != ".kdverify") {
        return false;
    }
    auto* live = dbg.live();
    if (live == nullptr) {
        out.write("Read verification: not used (a dump file is read from disk)\n");
        return true;
    }
    auto& v = live->reads();
    if (args == "on") {
        v.set_mode(engine::VerifyMode::On);
    } else if (args == "off") {
        v.set_mode(engine::VerifyMode::Off);
    } else if (args == "auto") {
        v.set_mode(engine::VerifyMode::Auto);
    } else if (!args.empty()) {
        out.write("Usage: .kdverify [on|off|auto]\n");
        return true;
    }
    show(v, out);
    return true;
}

void note_verified_reads(engine::Debugger& dbg, Output& out) {
    auto* live = dbg.live();
    if (live == nullptr) {
        return;
    }
    auto s = live->reads().take_summary(16 * 1024);
    if (!s) {
        return;
    }
    out.write("Noisy link: " + kilobytes(static_cast<double>(s->bytes)) +
              " verified by reading twice, " + std::to_string(s->requests) + " requests, " +
              fixed(s->slowdown, 1) + "x the wire time of a clean read" +
              (s->disagreements != 0 ? " (" + std::to_string(s->disagreements) +
                                           " reads disagreed and were read again)"
                                     : std::string()) +
              "\n");
}

} // namespace kdcart::cli
