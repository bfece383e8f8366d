// End to end: source lines. The real kdcart (started with kd's -lines) against the real kdsim,
// kdtest's PDB from a directory on the symbol path: .lines toggles, a breakpoint set by
// `kdtest!kdtest.c:N` hits there, and the stop line, k, ln and u name hw/images/kdtest.c and
// the lines that hold the code. The expected lines come from the source text (the statements
// themselves), not from numbers written here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Block.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::command_output;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kImages = KDSIM_IMAGE_DIR;
const std::string kSource = KDTEST_SOURCE; // the path clang-cl compiled, as the PDB records it

// The 1-based line of kdtest.c that holds `text` (exactly one).
unsigned line_of(const std::string& text) {
    std::ifstream f(kSource);
    REQUIRE(f.good());
    unsigned n = 0;
    unsigned found = 0;
    for (std::string line; std::getline(f, line);) {
        ++n;
        if (line.find(text) != std::string::npos) {
            REQUIRE_MESSAGE(found == 0, "'" << text << "' is on two lines");
            found = n;
        }
    }
    REQUIRE_MESSAGE(found != 0, "'" << text << "' is not in kdtest.c");
    return found;
}

// " [/path/kdtest.c @ 107]" as a regex.
std::string at_line(unsigned line) {
    return e2e::regex_escape(" [" + kSource + " @ " + std::to_string(line) + "]");
}

// What one command printed, without the echo of the command line itself.
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

} // namespace

TEST_CASE(".lines, -lines, bp `kdtest.c:N`, and the lines in the stop line, k, ln, u and uf") {
    ::unsetenv("_NT_SYMBOL_PATH");
    ::unsetenv("_NT_ALT_SYMBOL_PATH");
    const unsigned inner = line_of("KdTestSample.Values[Value & 3] = Value;");
    const unsigned middle = line_of("return KdTestInnerStep(Value + scratch");
    const unsigned outer = line_of("return KdTestMiddleStep(Value + 3) + 2;");
    const unsigned loop = line_of("KdTestSample.Values[3] = KdTestOuterStep(iteration);");
    const unsigned comment = line_of("/* A little arithmetic: a few rounds");
    const unsigned compute = line_of("ULONG64 KdTestCompute(ULONG64 Input) {");
    REQUIRE(compute == comment + 1);

    e2e::Process p(
        {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b", "-y", kImages, "-lines"});
    REQUIRE(p.started());
    // The break-in stops in nt's assembly (module-level asm: no line records): no line.
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n)", 120s);
    EXPECT_OUT(p, e2e::kPromptRe, 60s);

    // -lines turned it on: .lines toggles it off, then on again; -d / -e / -t.
    CHECK(output_of(p, ".lines") == "Line number information will not be loaded\n");
    CHECK(output_of(p, ".lines") == "Line number information will be loaded\n");
    CHECK(output_of(p, ".lines -d") == "Line number information will not be loaded\n");
    CHECK(output_of(p, ".lines -t") == "Line number information will be loaded\n");
    CHECK(output_of(p, ".lines -e") == "Line number information will be loaded\n");

    // A line that has no code of its own: the breakpoint goes to the next line that has.
    const std::string bl0 =
        output_of(p, "bp `kdtest!kdtest.c:" + std::to_string(comment) + "`; bl");
    CHECK_MESSAGE(
        contains(bl0, R"( 0 e fffff880`[0-9a-f]{8}     0001 \(0001\) kdtest!KdTestCompute\n)"),
        bl0);
    const std::string bad = output_of(p, "bp `kdtest.c:999999`");
    CHECK_MESSAGE(contains(bad, "Couldn't resolve"), bad);
    CHECK(output_of(p, "bc *").empty());

    // The file name alone, no module: the first statement of KdTestInnerStep.
    cmd(p, "bp `kdtest.c:" + std::to_string(inner) + "`");
    EXPECT_OUT(p, e2e::kPromptRe, 60s);
    cmd(p, "g");
    EXPECT_OUT(p,
               "Breakpoint 0 hit\nkdtest!KdTestInnerStep(\\+0x[0-9a-f]+)?" + at_line(inner) + ":\n",
               120s);
    EXPECT_OUT(p, e2e::kPromptRe, 60s);

    // k: each frame names the line of its call (frame 0 the line of the pc).
    const std::string k = output_of(p, "k");
    CHECK_MESSAGE(contains(k, "kdtest!KdTestInnerStep(\\+0x[0-9a-f]+)?" + at_line(inner) + " \n"),
                  k);
    CHECK_MESSAGE(contains(k, "kdtest!KdTestMiddleStep\\+0x[0-9a-f]+" + at_line(middle) + " \n"),
                  k);
    CHECK_MESSAGE(contains(k, "kdtest!KdTestOuterStep\\+0x[0-9a-f]+" + at_line(outer) + " \n"), k);
    CHECK_MESSAGE(contains(k, "kdtest!KdTestLoop\\+0x[0-9a-f]+" + at_line(loop) + " \n"), k);
    // kL hides them.
    const std::string kl = output_of(p, "kL");
    CHECK_MESSAGE(contains(kl, "kdtest!KdTestMiddleStep\\+0x[0-9a-f]+\n"), kl);
    CHECK(kl.find(" @ ") == std::string::npos);

    // ln: " [file @ line] (address)   symbol   |  (address)   next".
    const std::string ln = output_of(p, "ln @rip");
    CHECK_MESSAGE(contains(ln, "^" + at_line(inner) +
                                   R"( \(fffff880`[0-9a-f]{8}\)   kdtest!KdTestInnerStep)"),
                  ln);
    // u's header, uf's first label.
    const std::string u = output_of(p, "u @rip L1");
    CHECK_MESSAGE(contains(u, "^kdtest!KdTestInnerStep(\\+0x[0-9a-f]+)?" + at_line(inner) + ":\n"),
                  u);
    const std::string uf = output_of(p, "uf kdtest!KdTestMiddleStep");
    // uf: each instruction after its line number ("  114 fffff880`..."); the call is on the
    // line that holds it.
    CHECK_MESSAGE(
        contains(uf, "\n *" + std::to_string(middle) +
                         R"( fffff880`[0-9a-f]{8} e8[0-9a-f]{8} +call +kdtest!KdTestInnerStep)"),
        uf);
    {
        std::istringstream in(uf);
        size_t instructions = 0;
        for (std::string line; std::getline(in, line);) {
            if (line.find("fffff880`") != std::string::npos && line.rfind("kdtest!", 0) != 0) {
                ++instructions;
                CHECK_MESSAGE(contains(line, R"(^ {0,4}\d+ fffff880`)"), line);
            }
        }
        CHECK(instructions > 5);
    }
    CHECK_MESSAGE(
        contains(uf, "^kdtest!KdTestMiddleStep \\[" + e2e::regex_escape(kSource) + " @ \\d+\\]:\n"),
        uf);

    // Source-line expressions elsewhere: without a file, the pc's file (kdtest.c here);
    // without a line, the file's first code address.
    const std::string compute_at = output_of(p, "? kdtest!KdTestCompute");
    CHECK(contains(compute_at, "^Evaluate expression: "));
    CHECK(output_of(p, "? `:" + std::to_string(comment) + "`") == compute_at);
    CHECK(output_of(
              p, "? `kdtest!kdtest.c:0x" + [&] {
                  char hex[16];
                  std::snprintf(hex, sizeof hex, "%x", comment);
                  return std::string(hex);
              }() + "`") == compute_at);
    const std::string first = output_of(p, "? `kdtest.c`");
    CHECK_MESSAGE(contains(first, "^Evaluate expression: "), first);
    // A line number that is not one: an error naming it, and the session goes on.
    for (const char* bad : {"12x", "0x", "0", "99999999999999999999"}) {
        const std::string spec = std::string("kdtest!kdtest.c:") + bad;
        const std::string out = output_of(p, "? `" + spec + "`");
        CHECK_MESSAGE(out.find("Bad line number in '" + spec + "'") != std::string::npos, out);
        CHECK_MESSAGE(out.find("Evaluate expression") == std::string::npos, out);
    }

    // Off: no lines anywhere.
    output_of(p, ".lines -d");
    const std::string k2 = output_of(p, "k");
    CHECK(k2.find(" @ ") == std::string::npos);
    CHECK(contains(k2, "kdtest!KdTestMiddleStep\\+0x[0-9a-f]+\n"));
    const std::string off = output_of(p, "bp `kdtest.c:" + std::to_string(inner) + "`");
    CHECK_MESSAGE(contains(off, "not loaded"), off);

    // And the comment line's breakpoint stops in KdTestCompute, at its first line with code.
    output_of(p, ".lines -e; bc *");
    cmd(p, "bp `kdtest!kdtest.c:" + std::to_string(comment) + "`; g");
    EXPECT_OUT(p,
               "Breakpoint 0 hit\nkdtest!KdTestCompute \\[" + e2e::regex_escape(kSource) +
                   " @ \\d+\\]:\n",
               120s);
    EXPECT_OUT(p, e2e::kPromptRe, 60s);
    output_of(p, "bc *");
    cmd(p, "q");
    CHECK(p.wait_exit(60s) == 0);
}
