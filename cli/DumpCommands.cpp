// Crash dumps in the REPL: .dump (capture, with progress on stderr), .crash, .bugcheck, what
// WinDbg prints when it opens a dump, and lm's "Unloaded modules:".
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/DumpCapture.h"

#include <chrono>
#include <cstring>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace kdcart::cli {

namespace {

std::string hex8(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08X", v);
    return buf;
}

std::string plain_hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%" PRIx64, v);
    return buf;
}

std::string duration_text(double seconds) {
    if (seconds < 0 || seconds > 1e9) {
        return "?";
    }
    const uint64_t s = static_cast<uint64_t>(seconds + 0.5);
    char buf[64];
    if (s >= 3600) {
        std::snprintf(buf, sizeof buf, "%" PRIu64 " h %02" PRIu64 " min", s / 3600, s / 60 % 60);
    } else if (s >= 60) {
        std::snprintf(buf, sizeof buf, "%" PRIu64 " min %02" PRIu64 " s", s / 60, s % 60);
    } else {
        std::snprintf(buf, sizeof buf, "%" PRIu64 " s", s);
    }
    return buf;
}

std::string size_text(double bytes) {
    char buf[32];
    if (bytes >= 1024.0 * 1024 * 1024) {
        std::snprintf(buf, sizeof buf, "%.1f GB", bytes / (1024.0 * 1024 * 1024));
    } else if (bytes >= 1024.0 * 1024) {
        std::snprintf(buf, sizeof buf, "%.1f MB", bytes / (1024.0 * 1024));
    } else {
        std::snprintf(buf, sizeof buf, "%.1f KB", bytes / 1024.0);
    }
    return buf;
}

// FILETIME (100 ns since 1601) as WinDbg's session time.
std::string filetime_text(uint64_t ft) {
    if (ft == 0) {
        return "unknown";
    }
    const int64_t unix_s = static_cast<int64_t>(ft / 10000000ull) - 11644473600ll;
    std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S", &tm);
    char out[96];
    std::snprintf(out, sizeof out, "%s.%03u %d (UTC + 0:00)", buf,
                  static_cast<unsigned>(ft / 10000 % 1000), tm.tm_year + 1900);
    return out;
}

std::string uptime_text(uint64_t t100ns) {
    const uint64_t ms = t100ns / 10000;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%" PRIu64 " days %" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
                  ms / 86400000, ms / 3600000 % 24, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
    return buf;
}

} // namespace

void Repl::cmd_bugcheck() {
    const auto& stop = m_dbg->last_stop();
    uint32_t code = stop.bugcheck_code;
    const uint64_t* p = stop.bugcheck_params;
    uint64_t live[4] = {0, 0, 0, 0};
    if (code == 0 && m_dbg->can_run()) {
        // Live: what KiBugCheckData holds (the machine may be in KeBugCheckEx).
        auto info = m_dbg->target_info();
        if (info && info->kddata_found && info->kddata.KiBugcheckData != 0) {
            auto b = m_dbg->read_virtual(info->kddata.KiBugcheckData, 40);
            if (b && b->all_valid()) {
                uint64_t v[5];
                std::memcpy(v, b->bytes.data(), 40);
                code = static_cast<uint32_t>(v[0]);
                for (int i = 0; i < 4; ++i) {
                    live[i] = v[i + 1];
                }
                p = live;
            }
        }
    }
    print("Bugcheck code " + hex8(code) + "\n");
    print("Arguments " + format_address(p[0]) + " " + format_address(p[1]) + " " +
          format_address(p[2]) + " " + format_address(p[3]) + "\n");
}

void Repl::announce_dump() {
    auto* dump = m_dbg->dump();
    if (!dump) {
        return;
    }
    const auto& file = dump->file();
    print(dump->kind_description() + "\n");
    for (const auto& w : file.warnings()) {
        print("WARNING: " + w + "\n");
    }
    print("\n");
    auto info = m_dbg->target_info();
    if (info) {
        print(format_vertarget(*info, ""));
    } else {
        error("Could not read the target's version: " + info.error().message);
    }
    print("Debug session time: " + filetime_text(file.system_time()) + "\n");
    print("System Uptime: " + uptime_text(file.system_up_time()) + "\n");
    const std::string comment = file.comment();
    if (!comment.empty()) {
        print("Comment: '" + comment + "'\n");
    }
    if (auto u = m_dbg->unloaded_modules(); u) {
        print("Loading unloaded module list\n");
    }
    const auto& stop = m_dbg->last_stop();
    print("\nBugcheck Analysis: use !analyze -v to get detailed debugging information.\n\n");
    std::string args;
    for (int i = 0; i < 4; ++i) {
        args += (i ? ", " : "") + plain_hex(stop.bugcheck_params[i]);
    }
    print("BugCheck " + plain_hex(stop.bugcheck_code) + ", {" + args + "}\n\n");
    print(code_line(stop.pc));
}

void Repl::print_unloaded_modules() {
    auto u = m_dbg->unloaded_modules();
    if (!u || u->empty()) {
        return;
    }
    print("\nUnloaded modules:\n");
    for (const auto& m : *u) {
        print(format_address(m.start) + " " + format_address(m.end) + "   " + m.name + "\n");
    }
}

void Repl::cmd_crash() {
    if (!m_dbg->can_run()) {
        error("       ^ No runnable debuggees error in '.crash'");
        return;
    }
    // KD's CauseBugCheck: the target bug checks with MANUALLY_INITIATED_CRASH and writes the
    // dump it is configured for, at disk speed; its bug check stop comes back to us first.
    if (auto r = m_dbg->crash(); !r) {
        error("Could not make the target bug check: " + r.error().message);
        return;
    }
    print("The target bug checks (MANUALLY_INITIATED_CRASH, 0xE2); continue it with g and it "
          "writes its configured dump to its own disk.\n");
    (void)wait_while_running();
}

void Repl::cmd_dump(std::string_view args) {
    if (!m_dbg->can_run()) {
        error("       ^ No runnable debuggees error in '.dump'");
        return;
    }
    // .dump [/f | /k | /ka | /m] [/o] [/c "comment"] FILE
    engine::CaptureOptions opt;
    opt.kind = engine::CaptureKind::Kernel;
    bool kind_given = false;
    std::string rest(trim(args));
    while (!rest.empty() && rest[0] == '/') {
        size_t end = 1;
        while (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end]))) {
            ++end;
        }
        std::string flag = lower(rest.substr(1, end - 1));
        static const char* kFlags[] = {"f", "fa", "k", "ka", "o", "c", "m", "ma", "mf", "mh"};
        bool known = false;
        for (const char* f : kFlags) {
            known = known || flag == f;
        }
        if (!known && flag.find('/') != std::string::npos) {
            break; // an absolute path such as /tmp/x.dmp, not an option
        }
        rest = std::string(trim(std::string_view(rest).substr(end)));
        if (flag == "f" || flag == "fa") {
            opt.kind = engine::CaptureKind::Complete;
            kind_given = true;
        } else if (flag == "k" || flag == "ka") {
            opt.kind = engine::CaptureKind::Kernel;
            kind_given = true;
        } else if (flag == "o") {
            opt.overwrite = true;
        } else if (flag == "c") {
            if (!rest.empty() && rest[0] == '"') {
                auto close = rest.find('"', 1);
                if (close == std::string::npos) {
                    error("Missing closing quote in .dump /c");
                    return;
                }
                opt.comment = rest.substr(1, close - 1);
                rest = std::string(trim(std::string_view(rest).substr(close + 1)));
            } else {
                auto sp = rest.find_first_of(" \t");
                opt.comment = rest.substr(0, sp);
                rest = sp == std::string::npos ? "" : std::string(trim(rest.substr(sp)));
            }
        } else if (flag == "m" || flag.rfind("m", 0) == 0) {
            error(".dump /m (small memory dump) is not supported yet: use /k (kernel memory) or "
                  "/f (complete memory)");
            return;
        } else {
            error("Unknown option '/" + flag + "' for .dump (use /f, /k, /ka, /o, /c)");
            return;
        }
    }
    if (rest.empty()) {
        error("Usage: .dump [/f | /k] [/o] [/c \"comment\"] FILE");
        return;
    }
    opt.path = rest;
    if (opt.path.size() >= 2 && opt.path.front() == '"' && opt.path.back() == '"') {
        opt.path = opt.path.substr(1, opt.path.size() - 2);
    }
    if (!kind_given) {
        print("(no /f or /k: writing a kernel memory dump, as /k)\n");
    }
    opt.cancelled = [] { return g_interrupt.load(); };
    if (!opt.overwrite) {
        // A finished dump is never overwritten by accident (checked before any page is read).
        if (auto existing = engine::DumpFile::open(opt.path); existing && (*existing)->complete()) {
            error("Unable to write the dump: " + opt.path +
                  " already exists and is complete (use /o to overwrite)");
            return;
        }
    }

    auto plan = engine::plan_capture(*m_dbg, opt.kind, opt.comment, opt.cancelled);
    if (!plan) {
        if (plan.error().code == Errc::Interrupted) {
            g_interrupt.store(false);
            error("^C: .dump interrupted");
        } else {
            error("Unable to write the dump: " + plan.error().message);
        }
        return;
    }
    const double bytes = static_cast<double>(plan->pages) * 4096.0;
    std::string what = opt.kind == engine::CaptureKind::Complete ? "complete memory" : "kernel memory";
    print("Creating " + opt.path + " - " + what + " dump (" + std::to_string(plan->pages) +
          " pages, " + size_text(bytes) + ")\n");
    if (plan->seconds_estimate > 0) {
        std::string est = "Estimated time: about " + duration_text(plan->seconds_estimate) +
                          " at " + size_text(plan->payload_rate) + "/s on this link";
        if (opt.kind == engine::CaptureKind::Complete && plan->seconds_estimate > 3600) {
            est += " (.dump /k is much smaller; .crash lets the target write its own dump at "
                   "disk speed)";
        } else if (plan->seconds_estimate > 3600) {
            est += " (.crash lets the target write its own dump at disk speed)";
        }
        print(est + "\n");
    }

    const bool show_progress = ::isatty(STDERR_FILENO) != 0;
    auto last = std::chrono::steady_clock::now();
    bool progress_shown = false;
    opt.progress = [&](const engine::CaptureProgress& p) {
        auto now = std::chrono::steady_clock::now();
        if (!show_progress || now - last < std::chrono::milliseconds(500) || p.seconds < 2.0) {
            return;
        }
        last = now;
        progress_shown = true;
        const double rate = p.seconds > 0 ? static_cast<double>(p.bytes_this_run) / p.seconds : 0;
        const double left = rate > 0 ? static_cast<double>(p.pages_total - p.pages_done) * 4096.0 / rate
                                     : -1;
        std::fprintf(stderr, "\r  %" PRIu64 "/%" PRIu64 " pages (%.0f%%), %s/s, ETA %s   ",
                     p.pages_done, p.pages_total,
                     p.pages_total ? 100.0 * static_cast<double>(p.pages_done) /
                                         static_cast<double>(p.pages_total)
                                   : 100.0,
                     size_text(rate).c_str(), duration_text(left).c_str());
        std::fflush(stderr);
    };
    auto res = engine::run_capture(*m_dbg, *plan, opt);
    if (progress_shown) {
        std::fprintf(stderr, "\n");
    }
    if (!res) {
        if (res.error().code == Errc::Interrupted) {
            g_interrupt.store(false); // the Ctrl+C was for this command, not a break-in
            error("^C: .dump interrupted; run the same .dump again to continue where it stopped");
        } else {
            // The writer keeps FILE.kdpart next to a file it can resume; without one (the file
            // could not even be created) there is nothing to resume.
            const bool resumable = ::access((opt.path + ".kdpart").c_str(), F_OK) == 0;
            error("Unable to write the dump: " + res.error().message +
                  (resumable ? " (the partial file is kept: run the same .dump again to resume)"
                             : ""));
        }
        return;
    }
    if (res->resumed) {
        print("Resumed an interrupted capture at page " + std::to_string(res->progress.resumed_at) +
              " of " + std::to_string(res->progress.pages_total) + "\n");
    } else if (!res->note.empty()) {
        print(res->note + "\n");
    }
    if (res->stats.pages_unreadable > 0) {
        print(std::to_string(res->stats.pages_unreadable) + " pages could not be read (" +
              (res->kind == engine::DumpKind::Full ? "written as zeros" : "left out of the dump") +
              ")\n");
    }
    char rate[96];
    const double secs = std::max(res->progress.seconds, 1e-6);
    std::snprintf(rate, sizeof rate, "%s in %.1f s (%s/s)",
                  size_text(static_cast<double>(res->stats.file_bytes)).c_str(), secs,
                  size_text(static_cast<double>(res->progress.bytes_this_run) / secs).c_str());
    print("Dump successfully written: " + std::string(rate) + "\n");
}

} // namespace kdcart::cli
