// One REPL command's output, for end-to-end tests that compare what kdcart printed.
#pragma once
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

#include <chrono>
#include <regex>
#include <sstream>
#include <string>

namespace e2e {

// The prompt kdcart prints when it is ready for a command (`0: kd> `).
inline const std::string kPromptRe = R"(\d+: kd> )";

// Runs one command line and returns what was printed up to the next prompt, without kdsim's
// own log lines (they can reach the same stream). Fails the test when no prompt comes.
inline std::string command_output(Process& p, const std::string& command,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    const size_t start = p.mark();
    cmd(p, command);
    std::smatch m;
    const bool ok = p.expect(kPromptRe, timeout, &m);
    if (!ok) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    REQUIRE_MESSAGE(ok, "no prompt after '" << command << "'");
    const size_t end = p.mark() - static_cast<size_t>(m.length(0));
    const std::string raw = p.transcript().substr(start, end - start);
    std::string out;
    std::istringstream in(raw);
    for (std::string line; std::getline(in, line);) {
        if (line.find("[kdsim]") == std::string::npos) {
            out += line + "\n";
        }
    }
    return out;
}

} // namespace e2e
