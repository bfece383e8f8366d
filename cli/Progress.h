#pragma once
// Progress of a long command on stderr: "db: 1.2 MB of 16.0 MB (7%), 11.3 KB/s, ETA 23 min 10 s",
// drawn in place once the command has run for a couple of seconds, and only when stderr is a
// terminal. The command's own output (stdout, maybe the same terminal) is written between
// hide() and the next update(), so the two never share a line.
#include <chrono>
#include <cstdint>
#include <string>

namespace kdcart::cli {

class Progress {
  public:
    // `total` bytes (0 = unknown: no percentage or ETA).
    Progress(std::string what, uint64_t total);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    // Redraws when due: after ~2 s, then every half second (at once after a hide()).
    void update(uint64_t done);
    // Erases the line if it is shown (before the caller writes to stdout).
    void hide();
    bool shown() const { return m_visible; }

    // "16.0 MB", "512.0 KB": what the progress line and summaries print.
    static std::string size_text(double bytes);
    // "23 min 10 s", "1 h 05 min", "7 s"; "?" when unknown.
    static std::string duration_text(double seconds);

  private:
    using Clock = std::chrono::steady_clock;
    std::string m_what;
    uint64_t m_total;
    bool m_enabled;
    bool m_visible = false;
    Clock::time_point m_start;
    Clock::time_point m_last_draw;
};

} // namespace kdcart::cli
