#pragma once
// Starts kdsim for `kdcart --sim` and stops it on exit.
//
// kdsim runs in a session of its own, so the terminal's signals (Ctrl+C, Ctrl+Z, hang-up) and
// libedit's kill(0, SIGINT) reach only kdcart; kdcart stops kdsim explicitly (stop(), the
// destructor), and kdsim gets SIGTERM from the kernel if kdcart dies without doing so. kdsim's
// log goes to a file (log_path()) unless `verbose` is set, when it goes to kdcart's stderr.
#include "transport/Error.h"

#include <cstdint>
#include <string>
#include <vector>
#include <sys/types.h>

namespace kdcart::cli {

struct SimOptions {
    std::string kdsim_path;
    unsigned baud = 115200;
    unsigned cpus = 1;
    // kdsim logs at debug level to kdcart's stderr instead of to the log file.
    bool verbose = false;
};

class SimLauncher {
public:
    ~SimLauncher();
    // Starts `kdsim --pty` and returns the pty path it printed.
    [[nodiscard]] Result<std::string> start_pty(const SimOptions& options);
    // Starts `kdsim --kdnet 127.0.0.1:PORT --key KEY`: a KDNET target offering to our port.
    [[nodiscard]] Result<void> start_kdnet(const SimOptions& options, uint16_t host_port,
                                           const std::string& key);
    // Starts `kdsim --1394 PATH --1394-channel N`, PATH a fresh socket in $XDG_RUNTIME_DIR or
    // /tmp: a 1394 debug target on a simulated bus. Returns PATH.
    [[nodiscard]] Result<std::string> start_1394(const SimOptions& options, uint32_t channel);
    // Stops kdsim (SIGTERM, then SIGKILL after a second). Removes the log file after a clean
    // exit; otherwise says on stderr how kdsim ended and where its log is.
    void stop();
    // The file kdsim's log goes to; empty when it goes to kdcart's stderr (verbose).
    [[nodiscard]] const std::string& log_path() const { return m_log_path; }

private:
    // Spawns kdsim with `args` and returns the rest of its first stdout line after `prefix`.
    [[nodiscard]] Result<std::string> spawn(const SimOptions& options,
                                            std::vector<std::string> args,
                                            const std::string& prefix);
    // " (see LOGFILE)" for error messages, or nothing when the log goes to stderr.
    [[nodiscard]] std::string log_hint() const;
    // Ends kdsim and reaps it; returns its wait status.
    int terminate();
    pid_t m_pid = -1;
    std::string m_log_path;
};

// Where kdsim lives: next to the kdcart executable.
std::string default_kdsim_path();

} // namespace kdcart::cli
