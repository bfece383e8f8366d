#pragma once
// Starts kdsim for `kdcart --sim` and stops it on exit.
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
    void stop();

private:
    // Spawns kdsim with `args` and returns the rest of its first stdout line after `prefix`.
    [[nodiscard]] Result<std::string> spawn(const SimOptions& options,
                                            std::vector<std::string> args,
                                            const std::string& prefix);
    pid_t m_pid = -1;
};

// Where kdsim lives: next to the kdcart executable.
std::string default_kdsim_path();

} // namespace kdcart::cli
