#pragma once
// Starts kdsim for `kdcart --sim` and stops it on exit.
#include "transport/Error.h"

#include <string>
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
    void stop();

private:
    pid_t m_pid = -1;
};

// Where kdsim lives: next to the kdcart executable.
std::string default_kdsim_path();

} // namespace kdcart::cli
