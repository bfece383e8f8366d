// End to end: dx past one level against what kdsim holds. The real kdcart against the real kdsim
// with the images' PDBs: dx -rN of kdtest's sample (what its DriverEntry wrote: kdtest.c
// KdTestInitSample) with each level 4 spaces further in, a pointer to a structure expanded by
// following it, field access, indexing and '->' in the expression, an array capped at 100
// elements, a pointer into unreadable memory in the middle of a display, the line cap of a huge
// expansion, typos; @$curprocess / @$curthread / @$ip against !process, !thread and r; a cast of
// the current process's EPROCESS and its Pcb's dispatcher header against db.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "tests/e2e/Block.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <regex>
#include <set>
#include <sstream>

using namespace std::chrono_literals;
using e2e::cmd;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kImages = KDSIM_IMAGE_DIR;
const std::string kPrompt = R"(\d+: kd> )";

e2e::Process start_sim() {
    ::unsetenv("_NT_SYMBOL_PATH");
    ::unsetenv("_NT_ALT_SYMBOL_PATH");
    return e2e::Process(
        {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b", "-y", kImages});
}

std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

// What one command printed before the next prompt (e2e::command_output), without the command
// line kdcart echoes.
std::string run(e2e::Process& p, const std::string& command,
                std::chrono::milliseconds timeout = 60s) {
    std::string out = e2e::command_output(p, command, timeout);
    if (out.rfind(command + "\n", 0) == 0) {
        out.erase(0, command.size() + 1);
    }
    return out;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        out.push_back(l);
    }
    return out;
}

// The value "? expr" evaluates to.
uint64_t evaluate(e2e::Process& p, const std::string& expr) {
    const std::string out = run(p, "? " + expr);
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(R"(= ([0-9a-f]{8})`([0-9a-f]{8}))")), out);
    return std::stoull(m[1].str() + m[2].str(), nullptr, 16);
}

// The offset dx shows for `field` at `indent` spaces ("    [+0x038] Links ...").
uint64_t offset_in(const std::string& out, size_t indent, const std::string& field) {
    std::smatch m;
    const std::regex re("\n" + std::string(indent, ' ') + R"(\[\+0x([0-9a-f]+)\] )" + field + " ");
    REQUIRE_MESSAGE(std::regex_search(out, m, re), out);
    return std::stoull(m[1].str(), nullptr, 16);
}

bool has_line(const std::string& out, const std::string& line) {
    for (const auto& l : lines_of(out)) {
        if (l == line) {
            return true;
        }
    }
    return false;
}

// The top line's start: the expression and 16 spaces, as dx prints it.
std::string top(const std::string& expr) {
    return expr + std::string(16, ' ');
}

std::string pad16(std::string s) {
    s.resize(std::max<size_t>(s.size(), 16), ' ');
    return s;
}

} // namespace

TEST_CASE("dx -rN of kdtest's sample: levels, pointers, arrays, indexing, unreadable memory") {
    auto p = start_sim();
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    const uint64_t sample = evaluate(p, "kdtest!KdTestSample");
    const uint64_t compute = evaluate(p, "kdtest!KdTestCompute");

    // No -r: the object and its children, as -r1.
    const std::string r1 = run(p, "dx kdtest!KdTestSample");
    CHECK(r1.rfind(top("kdtest!KdTestSample") + " [Type: _KDTEST_SAMPLE]\n", 0) == 0);
    CHECK(
        has_line(r1, "    [+0x000] " + pad16("Signature") + " : 0x5354444b [Type: unsigned int]"));
    const uint64_t links = offset_in(r1, 4, "Links");
    const uint64_t values = offset_in(r1, 4, "Values");
    const uint64_t self = offset_in(r1, 4, "Self");
    const uint64_t info = offset_in(r1, 4, "Info");
    for (const auto& l : lines_of(r1)) {
        CHECK_MESSAGE(l.rfind("        ", 0) != 0, "-r1 shows one level: " << l);
    }
    CHECK(run(p, "dx -r0 kdtest!KdTestSample") ==
          top("kdtest!KdTestSample") + " [Type: _KDTEST_SAMPLE]\n");

    // -r2: each structure's fields 8 spaces in; the list head points at itself (kdtest.c), Self
    // is followed into the sample again.
    const std::string r2 = run(p, "dx -r2 kdtest!KdTestSample");
    char links_field[48];
    std::snprintf(links_field, sizeof links_field, "    [+0x%03llx] ",
                  static_cast<unsigned long long>(links));
    CHECK(has_line(r2, links_field + pad16("Links") + " [Type: _LIST_ENTRY]"));
    CHECK(has_line(r2, "        [+0x000] " + pad16("Flink") + " : " + hex(sample + links) +
                           " [Type: _LIST_ENTRY *]"));
    CHECK(has_line(r2, "        [+0x008] " + pad16("Blink") + " : " + hex(sample + links) +
                           " [Type: _LIST_ENTRY *]"));
    CHECK(has_line(r2, "        [+0x000] " + pad16("Signature") +
                           " : 0x5354444b [Type: unsigned int]"));
    CHECK(has_line(r2, "        [+0x000] " + pad16("Name") + " : " +
                           hex(evaluate(p, "poi(kdtest!KdTestSample+" + hex(info) + ")")) +
                           " : \"kdtest\" [Type: char *]"));
    CHECK(r2.find(" : " + hex(compute) + " : kdtest!KdTestCompute (") != std::string::npos);
    CHECK(has_line(r2, "        [0]              : 0x73 [Type: unsigned char]")); // 's'
    CHECK(has_line(r2, "        [5]              : 0x65 [Type: unsigned char]")); // 'e'
    for (const auto& l : lines_of(r2)) {
        CHECK_MESSAGE(l.rfind("            ", 0) != 0, "-r2 shows two levels: " << l);
    }
    CHECK(offset_in(r2, 4, "Self") == self);
    // -r3: Self -> Links -> Flink, 12 spaces in.
    const std::string r3 = run(p, "dx -r3 kdtest!KdTestSample");
    CHECK(has_line(r3, "            [+0x000] " + pad16("Flink") + " : " + hex(sample + links) +
                           " [Type: _LIST_ENTRY *]"));

    // Indexing, '.', '->' and a cast, against dq after eq.
    run(p, "eq kdtest!KdTestSample+" + hex(values + 16) + " 0x1234abcd");
    CHECK(run(p, "dx kdtest!KdTestSample.Values[2]") ==
          top("kdtest!KdTestSample.Values[2]") + " : 0x1234abcd [Type: unsigned __int64]\n");
    CHECK(run(p, "dq kdtest!KdTestSample+" + hex(values + 16) + " L1").find("00000000`1234abcd") !=
          std::string::npos);
    CHECK(run(p, "dx ((kdtest!_KDTEST_SAMPLE *)" + hex(sample) + ")->Self->Values[2]") ==
          top("((kdtest!_KDTEST_SAMPLE *)" + hex(sample) + ")->Self->Values[2]") +
              " : 0x1234abcd [Type: unsigned __int64]\n");
    const std::string name =
        run(p, "dx -r1 (*((kdtest!_KDTEST_SAMPLE *)" + hex(sample) + ")).Name");
    CHECK(name.find(top(".Name") + " : \"kdtest sample\" [Type: _UNICODE_STRING]\n") !=
          std::string::npos);
    CHECK(has_line(name, "    [+0x000] " + pad16("Length") + " : 0x1a [Type: unsigned short]"));

    // Casts to C++ base types (CodeView's simple types): the same bytes.
    CHECK(run(p, "dx *(unsigned int *)&kdtest!KdTestSample") ==
          top("*(unsigned int *)&kdtest!KdTestSample") + " : 0x5354444b [Type: unsigned int]\n");
    const std::string qwords =
        "((unsigned __int64 *)&kdtest!KdTestSample)[" + std::to_string(values / 8 + 2) + "]";
    CHECK(run(p, "dx " + qwords) == top(qwords) + " : 0x1234abcd [Type: unsigned __int64]\n");
    const std::string tag0 = "*(char *)(kdtest!KdTestSample+" + hex(offset_in(r1, 4, "Tag")) + ")";
    CHECK(run(p, "dx " + tag0) == top(tag0) + " : 115 's' [Type: char]\n");

    // A pointer into unreadable memory in the middle of a display: that child says so, the rest
    // is shown.
    run(p, "eq kdtest!KdTestSample+" + hex(values) + " 0x10 0x1234abcd");
    const std::string bad =
        run(p, "dx -r2 ((kdtest!_LIST_ENTRY *)(kdtest!KdTestSample+" + hex(values) + "))");
    const auto bl = lines_of(bad);
    REQUIRE(bl.size() == 7);
    CHECK(bl[1] == "    [+0x000] " + pad16("Flink") + " : 0x10 [Type: _LIST_ENTRY *]");
    CHECK(bl[2] ==
          "        [+0x000] " + pad16("Flink") + " : Unable to read memory at Address 0x10");
    CHECK(bl[3] ==
          "        [+0x008] " + pad16("Blink") + " : Unable to read memory at Address 0x18");
    CHECK(bl[4] == "    [+0x008] " + pad16("Blink") + " : 0x1234abcd [Type: _LIST_ENTRY *]");
    CHECK(bl[5] ==
          "        [+0x000] " + pad16("Flink") + " : Unable to read memory at Address 0x1234abcd");
    CHECK(bl[6] ==
          "        [+0x008] " + pad16("Blink") + " : Unable to read memory at Address 0x1234abd5");

    // An array of 256 shows 100 elements and [...]; the elements are what db reads.
    const std::string buf = run(p, "dx kdtest!KdTestBuffer");
    const auto bufl = lines_of(buf);
    REQUIRE(bufl.size() == 102);
    CHECK(bufl[0] == top("kdtest!KdTestBuffer") + " [Type: unsigned char [256]]");
    CHECK(bufl[101] == "    [...]");
    const std::string db = run(p, "db kdtest!KdTestBuffer L4");
    std::smatch m;
    REQUIRE(std::regex_search(
        db, m, std::regex(R"(  ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) )")));
    for (int i = 0; i < 4; ++i) {
        CHECK(bufl[1 + i] == "    " + pad16("[" + std::to_string(i) + "]") + " : " +
                                 hex(std::stoul(m[1 + i].str(), nullptr, 16)) +
                                 " [Type: unsigned char]");
    }

    // A huge expansion (every list head points back at itself) stops at the line cap and the
    // session goes on.
    cmd(p, "dx -r60 kdtest!KdTestSample.Links");
    EXPECT_OUT(p, R"(\.\.\. dx output stopped after 20000 lines)", 600s);
    EXPECT_OUT(p, kPrompt, 60s);
    CHECK(evaluate(p, "kdtest!KdTestSample") == sample);

    // Typos.
    CHECK(run(p, "dx kdtest!KdTestSample.Signatur") ==
          "Error: No field 'Signatur' in _KDTEST_SAMPLE\n");
    CHECK(run(p, "dx kdtest!KdTestSample.Values[") == "Error: Unexpected end of expression\n");
    CHECK(run(p, "dx kdtest!KdTestSampel") ==
          "Error: Couldn't resolve error at 'kdtest!KdTestSampel'\n");
    CHECK(run(p, "dx -r2 ((kdtest!_KDTEST_SAMPLE *)0x10)->Nope") ==
          "Error: No field 'Nope' in _KDTEST_SAMPLE\n");
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("dx @$curprocess, @$curthread, @$ip against !process, !thread and r") {
    auto p = start_sim();
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    // What kdsim's kernel holds, as !process and !thread read it.
    const std::string proc = run(p, "!process -1 2");
    std::smatch m;
    REQUIRE_MESSAGE(
        std::regex_search(proc, m, std::regex(R"(PROCESS ([0-9a-f]+)[\s\S]*?Cid: ([0-9a-f]+))")),
        proc);
    const uint64_t eprocess = std::stoull(m[1].str(), nullptr, 16);
    const uint64_t pid = std::stoull(m[2].str(), nullptr, 16);
    REQUIRE(std::regex_search(proc, m, std::regex(R"(Image: (\S+))")));
    const std::string image = m[1].str();
    std::set<std::string> tids;
    const std::regex thread_re(R"(THREAD [0-9a-f]+\s+Cid [0-9a-f]+\.([0-9a-f]+))");
    for (auto it = std::sregex_iterator(proc.begin(), proc.end(), thread_re);
         it != std::sregex_iterator(); ++it) {
        tids.insert(hex(std::stoull((*it)[1].str(), nullptr, 16)));
    }
    REQUIRE(!tids.empty());
    const uint64_t rip = evaluate(p, "@rip");
    const std::string thread = run(p, "!thread -1 0");
    REQUIRE_MESSAGE(std::regex_search(thread, m, std::regex(R"(Cid [0-9a-f]+\.([0-9a-f]+))")),
                    thread);
    const uint64_t tid = std::stoull(m[1].str(), nullptr, 16);

    const auto cp = lines_of(run(p, "dx @$curprocess"));
    REQUIRE(cp.size() == 6);
    CHECK(cp[0] == top("@$curprocess") + " : " + image + " [Switch To]");
    CHECK(cp[1] == "    " + pad16("KernelObject") + " [Type: _EPROCESS]");
    CHECK(cp[2] == "    " + pad16("Name") + " : " + image);
    CHECK(cp[3] == "    " + pad16("Id") + " : " + hex(pid));
    CHECK(cp[4] == "    " + pad16("Handle") + " : 0xf0f0f0f0");
    CHECK(cp[5] == "    " + pad16("Threads"));

    // -r2: every thread !process lists, by id, and the EPROCESS's own fields.
    const std::string cp2 = run(p, "dx -r2 @$curprocess");
    for (const auto& t : tids) {
        CHECK_MESSAGE(cp2.find("\n        " + pad16("[" + t + "]") + " : ") != std::string::npos,
                      t);
    }
    char pid_field[96];
    std::snprintf(pid_field, sizeof pid_field, "        [+0x%03llx] ",
                  static_cast<unsigned long long>(
                      offset_in(run(p, "dx @$curprocess.KernelObject"), 4, "UniqueProcessId")));
    CHECK(
        has_line(cp2, pid_field + pad16("UniqueProcessId") + " : " + hex(pid) + " [Type: void *]"));
    CHECK(run(p, "dx @$curprocess.KernelObject.UniqueProcessId") ==
          top("@$curprocess.KernelObject.UniqueProcessId") + " : " + hex(pid) +
              " [Type: void *]\n");

    // A cast of the EPROCESS: its Pcb, and the dispatcher header's type byte as db reads it.
    const std::string pcb = run(p, "dx -r2 ((nt!_EPROCESS *)" + hex(eprocess) + ")->Pcb");
    CHECK(pcb.rfind(top("((nt!_EPROCESS *)" + hex(eprocess) + ")->Pcb") + " [Type: _KPROCESS]\n",
                    0) == 0);
    CHECK(has_line(pcb, "    [+0x000] " + pad16("Header") + " [Type: _DISPATCHER_HEADER]"));
    const std::string db = run(p, "db " + hex(eprocess) + " L1");
    REQUIRE(std::regex_search(db, m, std::regex(R"(  ([0-9a-f]{2}) )")));
    CHECK(has_line(pcb, "        [+0x000] " + pad16("Type") + " : " +
                            hex(std::stoul(m[1].str(), nullptr, 16)) + " [Type: unsigned char]"));

    // The current thread, by id, and the threads list indexed by id.
    const auto ct = lines_of(run(p, "dx @$curthread"));
    REQUIRE(ct.size() == 3);
    // Where it stopped, then two spaces, as dx lists threads.
    CHECK(ct[0] == top("@$curthread") + " : nt!RtlpBreakWithStatusInstruction (" +
                       run(p, "? @rip").substr(run(p, "? @rip").find("= ") + 2, 17) +
                       ")  [Switch To]");
    // The same text in the process's thread list.
    CHECK(cp2.find("\n        " + pad16("[" + hex(tid) + "]") +
                   ct[0].substr(top("@$curthread").size()) + "\n") != std::string::npos);
    CHECK(ct[1] == "    " + pad16("KernelObject") + " [Type: _ETHREAD]");
    CHECK(ct[2] == "    " + pad16("Id") + " : " + hex(tid));
    CHECK(lines_of(run(p, "dx @$curprocess.Threads[" + hex(tid) + "]"))[2] == ct[2]);
    CHECK(run(p, "dx @$ip") == top("@$ip") + " : " + hex(rip) + " [Type: unsigned __int64]\n");
    CHECK(run(p, "dx @$curprocess.Nope") == "Error: No property 'Nope' on the process object\n");
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}
