#pragma once
// A child process with piped stdin/stdout+stderr, driven like pexpect: send lines, expect
// regexes with timeouts, send signals. For end-to-end tests of the real kdcart binary.
#include "tests/e2e/Expect.h"
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <regex>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace e2e {

// `s` as a regular expression that matches exactly `s` (paths, URLs, symbol names).
inline std::string regex_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (std::string(R"(\^$.|?*+()[]{})").find(c) != std::string::npos) {
            out += '\\';
        }
        out += c;
    }
    return out;
}

class Process {
  public:
    explicit Process(std::vector<std::string> argv) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
            return;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        m_ok = ::posix_spawn(&m_pid, args[0], &fa, nullptr, args.data(), environ) == 0;
        posix_spawn_file_actions_destroy(&fa);
        ::close(in[0]);
        ::close(out[1]);
        m_in = in[1];
        m_out = out[0];
        ::fcntl(m_out, F_SETFL, ::fcntl(m_out, F_GETFL) | O_NONBLOCK);
    }
    ~Process() {
        if (m_pid > 0 && !m_exited) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
        if (m_in >= 0) {
            ::close(m_in);
        }
        if (m_out >= 0) {
            ::close(m_out);
        }
    }
    bool started() const { return m_ok; }

    void send(const std::string& text) {
        size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(m_in, text.data() + done, text.size() - done);
            if (n <= 0) {
                return;
            }
            done += static_cast<size_t>(n);
        }
    }
    void close_stdin() {
        ::close(m_in);
        m_in = -1;
    }
    void signal(int sig) { ::kill(m_pid, sig); }

    // Waits until `pattern` matches the output not yet consumed. Consumes through the match.
    // `match` stays valid until the next expect().
    bool expect(const std::string& pattern, std::chrono::milliseconds timeout,
                std::smatch* match = nullptr) {
        std::regex re(pattern);
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            std::smatch m;
            // The match refers into this member, so it stays valid for the caller.
            m_pending = m_buffer.substr(m_consumed);
            if (std::regex_search(m_pending, m, re)) {
                m_consumed += static_cast<size_t>(m.position(0) + m.length(0));
                if (match) {
                    *match = m;
                }
                return true;
            }
            auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                return false;
            }
            pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
        }
    }
    // Everything the process printed so far.
    const std::string& transcript() {
        pump(std::chrono::milliseconds(0));
        return m_buffer;
    }
    std::string since(size_t pos) { return m_buffer.substr(pos); }
    size_t mark() const { return m_consumed; }

    // Waits for exit; returns the exit code, or -1 on timeout.
    int wait_exit(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            pump(std::chrono::milliseconds(50));
            int status = 0;
            if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
                m_exited = true;
                pump(std::chrono::milliseconds(0));
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
        }
        return -1;
    }

  private:
    void pump(std::chrono::milliseconds timeout) {
        pollfd pfd{m_out, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(std::min<long>(timeout.count(), 200))) <= 0) {
            return;
        }
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(m_out, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            m_buffer.append(buf, static_cast<size_t>(n));
        }
    }

    pid_t m_pid = -1;
    bool m_ok = false;
    bool m_exited = false;
    int m_in = -1;
    int m_out = -1;
    std::string m_buffer;
    std::string m_pending;
    size_t m_consumed = 0;
};

// Sends one kd command line.
inline void cmd(Process& p, const std::string& c) {
    p.send(c + "\n");
}

// An address as kd prints it.
inline const std::string kAddr = R"([0-9a-f]{8}`[0-9a-f]{8})";

} // namespace e2e
