#pragma once
// A child process on a pseudo-terminal, for end-to-end tests that need a real terminal: kdcart
// is the session leader with the pty as its controlling terminal, in the foreground process
// group, and the test types on the master as a terminal emulator would (^C becomes SIGINT
// through the line discipline).
#include "tests/e2e/Expect.h"
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <poll.h>
#include <regex>
#include <string>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace e2e {

using namespace std::chrono_literals;

// A child process on a pseudo-terminal: the master is ours, the slave is the child's
// controlling terminal and its stdin, stdout and stderr.
class PtyProcess {
  public:
    PtyProcess(std::vector<std::string> argv, const std::vector<std::string>& env_extra) {
        m_master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m_master < 0 || ::grantpt(m_master) != 0 || ::unlockpt(m_master) != 0) {
            return;
        }
        char name[128];
        if (::ptsname_r(m_master, name, sizeof name) != 0) {
            return;
        }
        winsize ws{};
        ws.ws_row = 50;
        ws.ws_col = 200; // wide enough that libedit never wraps a command line
        ::ioctl(m_master, TIOCSWINSZ, &ws);

        // Everything the child needs is built before fork (only async-signal-safe calls after).
        std::vector<std::string> env_strings;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string entry(*e);
            const std::string key = entry.substr(0, entry.find('='));
            bool overridden = false;
            for (const auto& x : env_extra) {
                overridden = overridden || x.substr(0, x.find('=')) == key;
            }
            if (!overridden) {
                env_strings.push_back(entry);
            }
        }
        env_strings.insert(env_strings.end(), env_extra.begin(), env_extra.end());
        std::vector<char*> envp;
        for (auto& e : env_strings) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);

        m_pid = ::fork();
        if (m_pid == 0) {
            // New session; opening the slave as its leader makes it the controlling terminal,
            // and our process group the terminal's foreground group.
            ::setsid();
            const int slave = ::open(name, O_RDWR);
            if (slave < 0 || ::ioctl(slave, TIOCSCTTY, 0) != 0 || ::dup2(slave, STDIN_FILENO) < 0 ||
                ::dup2(slave, STDOUT_FILENO) < 0 || ::dup2(slave, STDERR_FILENO) < 0) {
                ::_exit(126);
            }
            if (slave > STDERR_FILENO) {
                ::close(slave);
            }
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        m_ok = m_pid > 0;
    }
    ~PtyProcess() {
        if (m_pid > 0 && !m_exited) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
        if (m_master >= 0) {
            ::close(m_master);
        }
    }
    PtyProcess(const PtyProcess&) = delete;
    PtyProcess& operator=(const PtyProcess&) = delete;

    bool started() const { return m_ok; }
    pid_t pid() const { return m_pid; }

    // What a terminal sends when the user types: raw bytes to the master.
    void type(const std::string& bytes) {
        size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::write(m_master, bytes.data() + done, bytes.size() - done);
            if (n <= 0) {
                return;
            }
            done += static_cast<size_t>(n);
        }
    }
    void ctrl_c() { type("\x03"); }
    void line(const std::string& text) { type(text + "\r"); } // Enter sends CR

    // Waits until `pattern` matches output not yet consumed; consumes through the match.
    bool expect(const std::string& pattern, std::chrono::milliseconds timeout) {
        const std::regex re(pattern);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const std::string pending = m_buffer.substr(m_consumed);
            std::smatch m;
            if (std::regex_search(pending, m, re)) {
                m_consumed += static_cast<size_t>(m.position(0) + m.length(0));
                return true;
            }
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                return false;
            }
            pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
        }
    }
    // Output from the current position on, after waiting `quiet` for more of it.
    std::string drain(std::chrono::milliseconds quiet) {
        const auto deadline = std::chrono::steady_clock::now() + quiet;
        for (auto now = std::chrono::steady_clock::now(); now < deadline;
             now = std::chrono::steady_clock::now()) {
            pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
        }
        std::string rest = m_buffer.substr(m_consumed);
        m_consumed = m_buffer.size();
        return rest;
    }
    const std::string& transcript() {
        pump(0ms);
        return m_buffer;
    }

    // The exit code, 128 + signal for a signal, or -1 when it has not exited in time.
    int wait_exit(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            pump(50ms);
            int status = 0;
            if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
                m_exited = true;
                pump(0ms);
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
        }
        return -1;
    }

  private:
    void pump(std::chrono::milliseconds timeout) {
        pollfd pfd{m_master, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(std::min<long>(timeout.count(), 200))) <= 0) {
            return;
        }
        char buf[4096];
        // Once the child has gone the master reads EIO: nothing more to collect.
        ssize_t n = ::read(m_master, buf, sizeof buf);
        if (n > 0) {
            m_buffer.append(buf, static_cast<size_t>(n));
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
            std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(50)));
        }
    }

    int m_master = -1;
    pid_t m_pid = -1;
    bool m_ok = false;
    bool m_exited = false;
    std::string m_buffer;
    size_t m_consumed = 0;
};

} // namespace e2e
