#include "cli/SimLauncher.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace kdcart::cli {

std::string default_kdsim_path() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return "kdsim";
    }
    std::string self(buf, static_cast<size_t>(n));
    return self.substr(0, self.rfind('/') + 1) + "kdsim";
}

SimLauncher::~SimLauncher() {
    stop();
}

Result<std::string> SimLauncher::start_pty(const SimOptions& options) {
    return spawn(options, {"--pty", "--baud", std::to_string(options.baud)}, "pty: ");
}

Result<void> SimLauncher::start_kdnet(const SimOptions& options, uint16_t host_port,
                                      const std::string& key) {
    auto r = spawn(options,
                   {"--kdnet", "127.0.0.1:" + std::to_string(host_port), "--key", key}, "kdnet: ");
    if (!r) {
        return tl::unexpected(r.error());
    }
    return {};
}

Result<std::string> SimLauncher::spawn(const SimOptions& options, std::vector<std::string> extra,
                                       const std::string& prefix) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        return make_error(Errc::Io, std::string("pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = {options.kdsim_path, "--cpus", std::to_string(options.cpus)};
    args.insert(args.end(), extra.begin(), extra.end());
    if (options.verbose) {
        args.push_back("-v");
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&m_pid, options.kdsim_path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(pipefd[1]);
    if (rc != 0) {
        ::close(pipefd[0]);
        m_pid = -1;
        return make_error(Errc::NotFound,
                          "cannot start " + options.kdsim_path + ": " + std::strerror(rc));
    }
    // Read the first line: "pty: /dev/pts/N" or "kdnet: ...".
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            ::close(pipefd[0]);
            stop();
            return make_error(Errc::Timeout, "kdsim did not start its link");
        }
        pollfd pfd{pipefd[0], POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
            continue;
        }
        char c[256];
        ssize_t n = ::read(pipefd[0], c, sizeof c);
        if (n <= 0) {
            ::close(pipefd[0]);
            stop();
            return make_error(Errc::Disconnected, "kdsim exited before starting its link");
        }
        line.append(c, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    line = line.substr(0, line.find('\n'));
    if (line.rfind(prefix, 0) != 0) {
        stop();
        return make_error(Errc::Malformed, "unexpected kdsim output: " + line);
    }
    return line.substr(prefix.size());
}

void SimLauncher::stop() {
    if (m_pid <= 0) {
        return;
    }
    ::kill(m_pid, SIGTERM);
    for (int i = 0; i < 50; ++i) {
        int status;
        if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
            m_pid = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
    m_pid = -1;
}

} // namespace kdcart::cli
