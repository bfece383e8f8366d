#include "cli/SimLauncher.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
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
    auto r = spawn(options, {"--kdnet", "127.0.0.1:" + std::to_string(host_port), "--key", key},
                   "kdnet: ");
    if (!r) {
        return tl::unexpected(r.error());
    }
    return {};
}

Result<std::string> SimLauncher::start_1394(const SimOptions& options, uint32_t channel) {
    std::string dir = "/tmp";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR");
        xdg != nullptr && xdg[0] == '/' && ::access(xdg, W_OK | X_OK) == 0) {
        dir = xdg;
    }
    const std::string path = dir + "/kdsim-1394-" + std::to_string(::getpid()) + ".sock";
    return spawn(options, {"--1394", path, "--1394-channel", std::to_string(channel)}, "1394: ");
}

namespace {

// Where kdsim's log goes: $XDG_RUNTIME_DIR (private to the user) or /tmp, one file per kdcart.
std::string kdsim_log_path() {
    std::string dir = "/tmp";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR");
        xdg != nullptr && xdg[0] == '/' && ::access(xdg, W_OK | X_OK) == 0) {
        dir = xdg;
    }
    return dir + "/kdsim-" + std::to_string(::getpid()) + ".log";
}

// Creates the log file afresh; never follows a link planted in a shared directory.
int open_log(const std::string& path) {
    ::unlink(path.c_str()); // a previous kdcart with the same pid; fails harmlessly otherwise
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

} // namespace

Result<std::string> SimLauncher::spawn(const SimOptions& options, std::vector<std::string> extra,
                                       const std::string& prefix) {
    // Everything the child needs is prepared here: between fork and exec it may only make
    // async-signal-safe calls.
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

    int log_fd = -1;
    m_log_path.clear();
    if (!options.verbose) {
        m_log_path = kdsim_log_path();
        log_fd = open_log(m_log_path);
        if (log_fd < 0) {
            spdlog::warn("cannot create {}: {}; kdsim's log is discarded", m_log_path,
                         std::strerror(errno));
            m_log_path.clear();
            log_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        }
    }
    int pipefd[2];
    int errpipe[2]; // the child reports a failed exec here; closed on a successful one
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        if (log_fd >= 0) {
            ::close(log_fd);
        }
        return make_error(Errc::Io, std::string("pipe: ") + std::strerror(errno));
    }
    if (::pipe2(errpipe, O_CLOEXEC) != 0) {
        const int e = errno;
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        if (log_fd >= 0) {
            ::close(log_fd);
        }
        return make_error(Errc::Io, std::string("pipe: ") + std::strerror(e));
    }
    const pid_t parent = ::getpid();
    m_pid = ::fork();
    if (m_pid == 0) {
        // A session of its own: no controlling terminal, not in the terminal's foreground
        // process group, so Ctrl+C and libedit's kill(0, SIGINT) do not reach it.
        ::setsid();
        // SIGTERM when kdcart dies, even by SIGKILL (kdcart stops it itself otherwise).
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) {
            ::_exit(127); // kdcart died before the line above
        }
        const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in < 0 || ::dup2(in, STDIN_FILENO) < 0 || ::dup2(pipefd[1], STDOUT_FILENO) < 0 ||
            (log_fd >= 0 && ::dup2(log_fd, STDERR_FILENO) < 0)) {
            const int e = errno;
            (void)!::write(errpipe[1], &e, sizeof e);
            ::_exit(127);
        }
        ::execve(argv[0], argv.data(), environ);
        const int e = errno;
        (void)!::write(errpipe[1], &e, sizeof e);
        ::_exit(127);
    }
    const int fork_errno = errno;
    ::close(pipefd[1]);
    ::close(errpipe[1]);
    if (log_fd >= 0) {
        ::close(log_fd);
    }
    if (m_pid < 0) {
        ::close(pipefd[0]);
        ::close(errpipe[0]);
        m_pid = -1;
        return make_error(Errc::Io, std::string("fork: ") + std::strerror(fork_errno));
    }
    int exec_errno = 0;
    ssize_t got;
    do {
        got = ::read(errpipe[0], &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    ::close(errpipe[0]);
    if (got == static_cast<ssize_t>(sizeof exec_errno)) {
        ::close(pipefd[0]);
        ::waitpid(m_pid, nullptr, 0);
        m_pid = -1;
        if (!m_log_path.empty()) {
            ::unlink(m_log_path.c_str()); // empty: kdsim never ran
            m_log_path.clear();
        }
        return make_error(Errc::NotFound,
                          "cannot start " + options.kdsim_path + ": " + std::strerror(exec_errno));
    }
    spdlog::debug("kdsim started (pid {}){}", m_pid,
                  m_log_path.empty() ? std::string() : ", log in " + m_log_path);
    // Read the first line: "pty: /dev/pts/N" or "kdnet: ...".
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            ::close(pipefd[0]);
            (void)terminate();
            return make_error(Errc::Timeout, "kdsim did not start its link" + log_hint());
        }
        pollfd pfd{pipefd[0], POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
            continue;
        }
        char c[256];
        ssize_t n = ::read(pipefd[0], c, sizeof c);
        if (n <= 0) {
            ::close(pipefd[0]);
            (void)terminate();
            return make_error(Errc::Disconnected,
                              "kdsim exited before starting its link" + log_hint());
        }
        line.append(c, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    line = line.substr(0, line.find('\n'));
    if (line.rfind(prefix, 0) != 0) {
        (void)terminate();
        return make_error(Errc::Malformed, "unexpected kdsim output: " + line + log_hint());
    }
    return line.substr(prefix.size());
}

std::string SimLauncher::log_hint() const {
    return m_log_path.empty() ? std::string() : " (see " + m_log_path + ")";
}

void SimLauncher::stop() {
    if (m_pid <= 0) {
        return;
    }
    const int status = terminate();
    if (m_log_path.empty()) {
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        // A clean run: nothing worth keeping.
        ::unlink(m_log_path.c_str());
    } else {
        const std::string how =
            WIFEXITED(status)
                ? "exited with code " + std::to_string(WEXITSTATUS(status))
                : std::string("was killed by signal ") + std::to_string(WTERMSIG(status));
        std::fprintf(stderr, "kdcart: kdsim %s; its log is %s\n", how.c_str(), m_log_path.c_str());
    }
    m_log_path.clear();
}

int SimLauncher::terminate() {
    int status = 0;
    // kdsim is in a session of its own: nothing but this stops it (or kdcart's death).
    if (::waitpid(m_pid, &status, WNOHANG) != m_pid) {
        ::kill(m_pid, SIGTERM);
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {
            gone = ::waitpid(m_pid, &status, WNOHANG) == m_pid;
            if (!gone) {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        }
        if (!gone) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, &status, 0);
        }
    }
    m_pid = -1;
    return status;
}

} // namespace kdcart::cli
