#include "cli/Progress.h"

#include <cinttypes>
#include <cstdio>
#include <unistd.h>

namespace kdcart::cli {

namespace {
constexpr auto kFirstDraw = std::chrono::seconds(2);
constexpr auto kRedraw = std::chrono::milliseconds(500);
} // namespace

Progress::Progress(std::string what, uint64_t total)
    : m_what(std::move(what)), m_total(total), m_enabled(::isatty(STDERR_FILENO) != 0),
      m_start(Clock::now()), m_last_draw(m_start) {}

Progress::~Progress() {
    hide();
}

void Progress::update(uint64_t done) {
    if (!m_enabled) {
        return;
    }
    const auto now = Clock::now();
    if (now - m_start < kFirstDraw) {
        return;
    }
    if (m_visible && now - m_last_draw < kRedraw) {
        return;
    }
    const double secs = std::chrono::duration<double>(now - m_start).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    std::string line = "\r" + m_what + ": " + size_text(static_cast<double>(done));
    if (m_total > 0) {
        char pct[32];
        std::snprintf(pct, sizeof pct, " (%.0f%%)",
                      100.0 * static_cast<double>(done) / static_cast<double>(m_total));
        line += " of " + size_text(static_cast<double>(m_total)) + pct;
    }
    line += ", " + size_text(rate) + "/s";
    if (m_total > 0 && done <= m_total) {
        line +=
            ", ETA " + duration_text(rate > 0 ? static_cast<double>(m_total - done) / rate : -1);
    }
    line += "\033[K";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    m_visible = true;
    m_last_draw = now;
}

void Progress::hide() {
    if (!m_visible) {
        return;
    }
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    m_visible = false;
}

std::string Progress::size_text(double bytes) {
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

std::string Progress::duration_text(double seconds) {
    if (seconds < 0 || seconds > 1e9) {
        return "?";
    }
    const auto s = static_cast<uint64_t>(seconds + 0.5);
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

} // namespace kdcart::cli
