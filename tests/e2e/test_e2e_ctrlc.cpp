// End to end: Ctrl+C typed on a real terminal. kdcart --sim runs on a pseudo-terminal as the
// session leader with the pty as its controlling terminal, in the foreground process group, and
// the test writes the ^C byte (0x03) to the master as a terminal emulator would: the line
// discipline turns it into SIGINT for the foreground group. kdcart (libedit at the prompt) must
// break in at a running target, shrug off a ^C at the prompt, and keep kdsim, which lives in a
// session of its own, out of all of it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/PtyProcess.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

using e2e::PtyProcess;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kPrompt = R"(\d+: kd> )";

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
    EXPECT_OUT(p, "kdtest: tick", 60s);
    // kdsim lives in a session of its own: the terminal's signals are not for it.
    CHECK(::getsid(kdsim) == kdsim);
    CHECK(::getsid(kdsim) != ::getsid(p.pid()));
    p.ctrl_c();
    EXPECT_OUT(p, "Connected to Windows", 30s);
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    CHECK(alive(kdsim));

    // ^C at the prompt (libedit): a fresh prompt, nobody dies.
    p.ctrl_c();
    EXPECT_OUT(p, kPrompt, 10s);
    std::this_thread::sleep_for(300ms);
    CHECK(alive(p.pid()));
    CHECK(alive(kdsim));

    // The target survived and answers.
    p.line("r");
    EXPECT_OUT(p, R"(rax=[0-9a-f]{16} rbx=[0-9a-f]{16} rcx=[0-9a-f]{16})", 30s);
    EXPECT_OUT(p, R"(cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b +efl=[0-9a-f]{8})", 10s);
    EXPECT_OUT(p, kPrompt, 10s);

    // The ^C at the prompt is spent: g runs the target (no immediate break-in), a new ^C stops it.
    p.line("g");
    EXPECT_OUT(p, "kdtest: tick", 30s);
    p.ctrl_c();
    EXPECT_OUT(p, R"(Break instruction exception - code 80000003 \(first chance\))", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    p.line("r rip");
    EXPECT_OUT(p, R"(rip=[0-9a-f]{16})", 30s);
    EXPECT_OUT(p, kPrompt, 10s);

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
    EXPECT_OUT(p, "kdtest: tick", 60s);

    ::kill(p.pid(), SIGKILL);
    CHECK(p.wait_exit(10s) == 128 + SIGKILL);
    CHECK(wait_gone(kdsim, 10s));
}
