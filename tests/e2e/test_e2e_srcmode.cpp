// End to end: source mode. The real kdcart (kd's -lines and -srcpath) against the real kdsim,
// kdtest's PDB from the image directory and its source from hw/images: .srcpath, l+/l-, the
// listings (lsa, ls, lsc, lsf, lsf-, lsp) compared with kdtest.c as the test reads it, and
// stepping by source line (l+t): p lands on the next line that has code (the line table says
// which, through `file.c:N` expressions and ln), t into a call enters the callee's first line,
// returning lands back in the caller's line, l+s / l+o show the source at the stop.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Block.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::command_output;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kImages = KDSIM_IMAGE_DIR;
const std::string kSource = KDTEST_SOURCE;        // the path the PDB records
const std::string kSourceDir = KDTEST_SOURCE_DIR; // hw/images

std::vector<std::string> source_lines() {
    std::ifstream f(kSource);
    REQUIRE(f.good());
    std::vector<std::string> lines;
    for (std::string line; std::getline(f, line);) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        lines.push_back(line);
    }
    return lines;
}

unsigned line_of(const std::vector<std::string>& lines, const std::string& text) {
    unsigned found = 0;
    for (unsigned i = 0; i < lines.size(); ++i) {
        if (lines[i].find(text) != std::string::npos) {
            REQUIRE_MESSAGE(found == 0, "'" << text << "' is on two lines");
            found = i + 1;
        }
    }
    REQUIRE_MESSAGE(found != 0, "'" << text << "' is not in kdtest.c");
    return found;
}

// WinDbg's listing of lines [first, last] of the file, `mark` marked with '>'.
std::string listing(const std::vector<std::string>& lines, unsigned first, unsigned last,
                    unsigned mark) {
    std::string out;
    for (unsigned i = std::max(first, 1u); i <= last && i <= lines.size(); ++i) {
        char head[16];
        std::snprintf(head, sizeof head, "%c%5u: ", i == mark ? '>' : ' ', i);
        out += head + lines[i - 1] + "\n";
    }
    return out;
}

std::string output_of(e2e::Process& p, const std::string& command) {
    std::string out = command_output(p, command);
    if (out.rfind(command + "\n", 0) == 0) {
        out.erase(0, command.size() + 1);
    }
    return out;
}

bool contains(const std::string& text, const std::string& re) {
    return std::regex_search(text, std::regex(re));
}

// The line `ln ADDR` names (" [path @ N] ...").
unsigned ln_line(e2e::Process& p, const std::string& address) {
    const std::string out = output_of(p, "ln " + address);
    std::smatch m;
    const std::regex re(e2e::regex_escape(" [" + kSource + " @ ") + R"((\d+)\])");
    REQUIRE_MESSAGE(std::regex_search(out, m, re), out);
    return static_cast<unsigned>(std::stoul(m[1].str()));
}

// The value of an expression ("Evaluate expression: N = ...").
std::string value_of(e2e::Process& p, const std::string& expression) {
    const std::string out = output_of(p, "? " + expression);
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(R"(Evaluate expression: (-?\d+) =)")),
                    out);
    return m[1].str();
}

} // namespace

TEST_CASE("source mode: .srcpath, l+/l-, lsa/ls/lsc/lsf/lsp, stepping by line") {
    ::unsetenv("_NT_SYMBOL_PATH");
    ::unsetenv("_NT_ALT_SYMBOL_PATH");
    ::unsetenv("_NT_SOURCE_PATH");
    const std::vector<std::string> src = source_lines();
    const unsigned middle_call = line_of(src, "return KdTestInnerStep(Value + scratch");

    e2e::Process p({kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b", "-y", kImages,
                    "-lines", "-srcpath", kSourceDir});
    REQUIRE(p.started());
    EXPECT_OUT(p, e2e::kPromptRe, 120s);

    // .srcpath: shown, appended, replaced.
    CHECK(output_of(p, ".srcpath") == "Source search path is: " + kSourceDir + "\n");
    CHECK(output_of(p, ".srcpath+ /nonexistent-src") ==
          "Source search path is: " + kSourceDir + ";/nonexistent-src\n");
    CHECK(output_of(p, ".srcpath " + kSourceDir) == "Source search path is: " + kSourceDir + "\n");

    // l+ / l-: off by default except l (= .lines, on through -lines).
    CHECK(output_of(p, "l+") == "Source options are 2:\n     2/l - List source line at prompt\n");
    CHECK(output_of(p, "l-l") == "Source options are 0:\n    None\n");
    CHECK(output_of(p, ".lines") == "Line number information will be loaded\n");
    CHECK(output_of(p, "l+t") == "Source options are 3:\n     1/t - Step/trace by source line\n"
                                 "     2/l - List source line at prompt\n");
    CHECK(output_of(p, "l-t") == "Source options are 2:\n     2/l - List source line at prompt\n");
    CHECK(contains(output_of(p, "l+lst"), "Syntax error"));

    // lsa: from four lines before the function's line, 20 lines, that line marked.
    const unsigned middle = ln_line(p, "kdtest!KdTestMiddleStep");
    const std::string lsa = output_of(p, "lsa kdtest!KdTestMiddleStep");
    CHECK_MESSAGE(lsa == listing(src, middle - 4, middle + 15, middle), lsa);
    // ls goes on where it stopped; lsc says where that is.
    CHECK(output_of(p, "ls") == listing(src, middle + 16, middle + 35, 0));
    CHECK(output_of(p, "lsc") == "Current: " + kSource + "(" + std::to_string(middle + 36) + ")\n");
    CHECK(output_of(p, "ls 1, 3") == listing(src, 1, 3, 0));
    // lsa with first and count (first relative to the address's line, as WinDbg's engine).
    CHECK(output_of(p, "lsa kdtest!KdTestMiddleStep, 0, 2") ==
          listing(src, middle, middle + 1, middle));
    // Past the end of the file: the listing stops with the last line.
    const unsigned n = static_cast<unsigned>(src.size());
    CHECK(output_of(p, "ls " + std::to_string(n - 1) + ", 10") == listing(src, n - 1, n, 0));
    CHECK(output_of(p, "ls").empty());

    // lsf: a file found through the source path by its name; lsf- forgets it.
    CHECK(output_of(p, "lsf kdtest.c").empty());
    CHECK(output_of(p, "lsc") == "Current: kdtest.c(1)\n");
    CHECK(output_of(p, "ls , 2") == listing(src, 1, 2, 0));
    CHECK(output_of(p, "lsf- kdtest.c") == "Unloaded 'kdtest.c'\n");
    // A file that is nowhere: WinDbg's messages, and the session goes on.
    CHECK(output_of(p, "lsf no_such_source.c") ==
          "No source found for 'no_such_source.c'\nUnable to load 'no_such_source.c'\n");
    // lsf- took the current file with it.
    CHECK(output_of(p, "lsc") == "No current source file\n");
    CHECK(output_of(p, "ls") == "No current source file\n");
    // lsp: the lines a stop shows with l+s.
    CHECK(output_of(p, "lsp 2") == "WARNING: Source line display is disabled\n"
                                   "At the prompt, display 1 source lines before and 1 after\n");
    CHECK(output_of(p, "lsp 0 1") == "WARNING: Source line display is disabled\n"
                                     "At the prompt, display 0 source lines before and 1 after\n");

    // Stepping by line. Stop at KdTestMiddleStep's first instruction.
    cmd(p, "bp kdtest!KdTestMiddleStep; g");
    EXPECT_OUT(p, "Breakpoint 0 hit\n", 120s);
    EXPECT_OUT(p, e2e::kPromptRe, 60s);
    output_of(p, "bc *");
    output_of(p, "l+t");
    unsigned line = ln_line(p, "@rip");
    CHECK(line == middle);
    // p: the next line with code, and the first address of that line.
    for (int guard = 0; line != middle_call && guard < 10; ++guard) {
        const std::string out = output_of(p, "p");
        const unsigned next = ln_line(p, "@rip");
        // One stop display: one register block and one code line.
        CHECK_MESSAGE(std::count(out.begin(), out.end(), '\n') < 12, out);
        CHECK(contains(
            out, "\nkdtest!KdTestMiddleStep\\+0x[0-9a-f]+ " +
                     e2e::regex_escape("[" + kSource + " @ " + std::to_string(next) + "]:\n")));
        CHECK(next > line);
        // The line table's next line with code after `line` is `next`, and the pc its start.
        CHECK(value_of(p, "`kdtest.c:" + std::to_string(line + 1) + "`") == value_of(p, "@rip"));
        line = next;
    }
    REQUIRE(line == middle_call);
    // t on the line with the call: into KdTestInnerStep's first line.
    const unsigned inner = ln_line(p, "kdtest!KdTestInnerStep");
    const std::string into = output_of(p, "t");
    CHECK_MESSAGE(contains(into, "\nkdtest!KdTestInnerStep " +
                                     e2e::regex_escape("[" + kSource + " @ " +
                                                       std::to_string(inner) + "]:\n")),
                  into);
    CHECK(value_of(p, "@rip") == value_of(p, "kdtest!KdTestInnerStep"));

    // l+s: the stop shows its source line (lsp 0 1); l+o: only that.
    output_of(p, "l+s");
    const std::string with_source = output_of(p, "p");
    line = ln_line(p, "@rip");
    CHECK(line > inner);
    CHECK_MESSAGE(with_source.rfind(listing(src, line, line, line), 0) == 0, with_source);
    CHECK(contains(with_source, "\nrax="));
    output_of(p, "l+o");
    // p until the function returns into the caller's line (the middle of it).
    std::string back;
    for (int guard = 0; guard < 6; ++guard) {
        back = output_of(p, "p");
        line = ln_line(p, "@rip");
        if (line == middle_call) {
            break;
        }
        CHECK_MESSAGE(back == listing(src, line, line, line), back);
    }
    CHECK(line == middle_call);
    CHECK_MESSAGE(back == listing(src, middle_call, middle_call, middle_call), back);
    CHECK(contains(output_of(p, "u @rip L1"), "KdTestMiddleStep\\+0x"));

    // l-t: p is one instruction again (the whole display comes back with l-s).
    output_of(p, "l-o; l-s; l-t");
    const std::string before = value_of(p, "@rip");
    const std::string one = output_of(p, "p");
    CHECK(contains(one, "(^|\n)rax="));
    CHECK(value_of(p, "@rip") != before);

    output_of(p, "bc *");
    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
