// End to end: Ctrl+C typed on a real terminal. kdcart --sim runs on a pseudo-terminal as the
// session leader with the pty as its controlling terminal, in the foreground process group, and
// the test writes the ^C byte (0x03) to the master as a terminal emulator would: the line
// discipline turns it into SIGINT for the foreground group. kdcart (libedit at the prompt) must
// break in at a running target, shrug off a ^C at the prompt, and keep kdsim, which lives in a
// session of its own, out of all of it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <regex>
#include <sstream>
#include <string>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

extern char** environ;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

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

#define EXPECT_PTY(p, re, t)                                                                       \
    do {                                                                                           \
        bool ok_ = (p).expect((re), (t));                                                          \
        if (!ok_) {                                                                                \
            MESSAGE("transcript:\n" << (p).transcript());                                          \
        }                                                                                          \
        REQUIRE_MESSAGE(ok_, "expected /" << (re) << "/");                                         \
    } while (0)

// The children of `pid` (its threads' children, from /proc).
std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t c = 0;
    while (f >> c) {
        out.push_back(c);
    }
    return out;
}

// The one-letter state of a process ('R', 'S', 'Z', ...), or 0 when it no longer exists.
char proc_state(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() ? 0 : stat[paren + 2];
}

bool alive(pid_t pid) {
    const char s = proc_state(pid);
    return s != 0 && s != 'Z' && s != 'X';
}

// Waits until kdsim, kdcart's only child, has started; 0 on timeout.
pid_t wait_for_kdsim(pid_t kdcart, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto kids = children_of(kdcart);
        if (kids.size() == 1) {
            return kids[0];
        }
        std::this_thread::sleep_for(20ms);
    }
    return 0;
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!alive(pid)) {
            return true;
        }
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// A private directory for kdsim's log file ($XDG_RUNTIME_DIR of the child).
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-ctrlc-XXXXXX";
        if (::mkdtemp(tmpl) != nullptr) {
            path = tmpl;
        }
    }
    ~TempDir() {
        if (!path.empty()) {
            std::string cmd = "rm -rf '" + path + "'";
            (void)!std::system(cmd.c_str());
        }
    }
};

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("ctrl+c on a terminal: break in, ^C at the prompt is harmless, kdsim survives, q") {
    TempDir run_dir;
    REQUIRE(!run_dir.path.empty());
    PtyProcess p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim"},
                 {"TERM=dumb", "XDG_RUNTIME_DIR=" + run_dir.path});
    REQUIRE(p.started());

    const pid_t kdsim = wait_for_kdsim(p.pid(), 30s);
    REQUIRE_MESSAGE(kdsim > 0, "kdsim did not start; transcript:\n" << p.transcript());

    // The target runs (no -b): wait for its DbgPrint, then Ctrl+C.
    EXPECT_PTY(p, "kdtest: tick", 60s);
    // kdsim lives in a session of its own: the terminal's signals are not for it.
    CHECK(::getsid(kdsim) == kdsim);
    CHECK(::getsid(kdsim) != ::getsid(p.pid()));
    p.ctrl_c();
    EXPECT_PTY(p, "Connected to Windows", 30s);
    EXPECT_PTY(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_PTY(p, kPrompt, 30s);
    CHECK(alive(kdsim));

    // ^C at the prompt (libedit): a fresh prompt, nobody dies.
    p.ctrl_c();
    EXPECT_PTY(p, kPrompt, 10s);
    std::this_thread::sleep_for(300ms);
    CHECK(alive(p.pid()));
    CHECK(alive(kdsim));

    // The target survived and answers.
    p.line("r");
    EXPECT_PTY(p, R"(rax=[0-9a-f]{16} rbx=[0-9a-f]{16} rcx=[0-9a-f]{16})", 30s);
    EXPECT_PTY(p, R"(cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b +efl=[0-9a-f]{8})", 10s);
    EXPECT_PTY(p, kPrompt, 10s);

    // The ^C at the prompt is spent: g runs the target (no immediate break-in), a new ^C stops it.
    p.line("g");
    EXPECT_PTY(p, "kdtest: tick", 30s);
    p.ctrl_c();
    EXPECT_PTY(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_PTY(p, kPrompt, 30s);
    p.line("r rip");
    EXPECT_PTY(p, R"(rip=[0-9a-f]{16})", 30s);
    EXPECT_PTY(p, kPrompt, 10s);

    // kdsim's log went to its file, not to the terminal.
    const std::string log_path = run_dir.path + "/kdsim-" + std::to_string(p.pid()) + ".log";
    CHECK(read_file(log_path).find("machine up") != std::string::npos);
    CHECK(p.transcript().find("machine up") == std::string::npos);

    p.line("q");
    const int rc = p.wait_exit(30s);
    if (rc != 0) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    CHECK(rc == 0);
    // kdsim is not in kdcart's process group any more: kdcart must have stopped it itself.
    CHECK(wait_gone(kdsim, 10s));
    // After a clean run the log file is removed.
    CHECK(::access(log_path.c_str(), F_OK) != 0);
}

TEST_CASE("ctrl+c on a terminal: kdsim goes when kdcart is killed outright") {
    TempDir run_dir;
    REQUIRE(!run_dir.path.empty());
    PtyProcess p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim"},
                 {"TERM=dumb", "XDG_RUNTIME_DIR=" + run_dir.path});
    REQUIRE(p.started());
    const pid_t kdsim = wait_for_kdsim(p.pid(), 30s);
    REQUIRE_MESSAGE(kdsim > 0, "kdsim did not start; transcript:\n" << p.transcript());
    EXPECT_PTY(p, "kdtest: tick", 60s);

    ::kill(p.pid(), SIGKILL);
    CHECK(p.wait_exit(10s) == 128 + SIGKILL);
    CHECK(wait_gone(kdsim, 10s));
}
