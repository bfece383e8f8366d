// End to end: symbols. The real kdcart against the real kdsim, its images' PDBs served by a small
// HTTP symbol server in the test (the symbol-store layout, kdcom's PDB left out so that it
// falls back to its exports), downloaded into a cache, then used by lm, x, ln, k, dt, dps.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Pdb.h"
#include "engine/PeImage.h"
#include "tests/e2e/Process.h"
#include "tests/support/TinyHttpServer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;
namespace fs = std::filesystem;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kImages = KDSIM_IMAGE_DIR;
const std::string kPrompt = R"(\d+: kd> )";

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-e2e-sym-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string str(const std::string& sub = "") const { return (path / sub).string(); }
};

kdcart::engine::CodeViewRecord codeview_of(const std::string& image) {
    std::ifstream f(kImages + "/" + image, std::ios::binary);
    REQUIRE(f.good());
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    auto reader = kdcart::engine::file_image_reader(std::move(bytes));
    REQUIRE(reader);
    auto pe = kdcart::engine::read_pe_image(*reader);
    REQUIRE(pe);
    REQUIRE(pe->codeview);
    return *pe->codeview;
}

// name.pdb/KEY/name.pdb under `store` for each image; returns the key of each.
std::map<std::string, std::string> make_store(const std::string& store,
                                              const std::vector<std::string>& images) {
    std::map<std::string, std::string> keys;
    for (const auto& image : images) {
        const auto cv = codeview_of(image);
        const fs::path dir = fs::path(store) / cv.pdb_file_name() / cv.store_key();
        fs::create_directories(dir);
        fs::copy_file(kImages + "/" + cv.pdb_file_name(), dir / cv.pdb_file_name());
        keys[image] = cv.store_key();
    }
    return keys;
}

e2e::Process start_sim(std::vector<std::string> extra) {
    std::vector<std::string> argv = {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return e2e::Process(argv);
}

} // namespace

TEST_CASE("symbols from a local symbol server: lm, x, ln, k, dt, dps, and a 404 falls back") {
    ::unsetenv("_NT_SYMBOL_PATH");
    ::unsetenv("_NT_ALT_SYMBOL_PATH");
    TempDir tmp;
    const auto keys =
        make_store(tmp.str("store"), {"ntoskrnl.exe", "hal.dll", "kdtest.sys", "kdlate.sys"});
    const auto kdcom_key = codeview_of("kdcom.dll").store_key();
    kdcart::test::TinyHttpServer server(tmp.str("store"));
    const std::string cache = tmp.str("cache");
    auto p = start_sim({"-y", "srv*" + cache + "*" + server.url()});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    // nt was needed for the break-in line: its PDB came from the server into the cache. The
    // others wait for their first use.
    cmd(p, "lm");
    EXPECT_OUT(p,
               "   nt         \\(private pdb symbols\\)  " +
                   e2e::regex_escape(cache + "/ntoskrnl.pdb/" + keys.at("ntoskrnl.exe") +
                                     "/ntoskrnl.pdb") +
                   "\n",
               30s);
    EXPECT_OUT(p, R"(   kdtest     \(deferred\)\n)", 10s);
    EXPECT_OUT(p, kPrompt, 10s);
    CHECK(fs::exists(cache + "/ntoskrnl.pdb/" + keys.at("ntoskrnl.exe") + "/ntoskrnl.pdb"));

    // .reload /f loads every module now; kdcom's PDB is not on the server: its exports, and
    // WinDbg's warning.
    cmd(p, ".reload /f");
    EXPECT_OUT(p, "Loading Kernel Symbols\n", 30s);
    EXPECT_OUT(
        p,
        R"(\*\*\* ERROR: Symbol file could not be found.  Defaulted to export symbols for kdcom.dll - )",
        30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "lm");
    EXPECT_OUT(p, R"(   kdcom      \(export symbols\)       kdcom.dll\n)", 30s);
    EXPECT_OUT(
        p,
        "   kdtest     \\(private pdb symbols\\)  " +
            e2e::regex_escape(cache + "/kdtest.pdb/" + keys.at("kdtest.sys") + "/kdtest.pdb") +
            "\n",
        10s);
    EXPECT_OUT(p, kPrompt, 10s);
    CHECK(fs::exists(cache + "/kdtest.pdb/" + keys.at("kdtest.sys") + "/kdtest.pdb"));

    // x kdtest!* lists every function of the PDB, the private (static) ones included.
    auto pdb = kdcart::engine::PdbFile::open(kImages + "/kdtest.pdb");
    REQUIRE(pdb);
    auto syms = (*pdb)->read_symbols();
    REQUIRE(syms);
    const size_t mark = p.mark();
    cmd(p, "x kdtest!*");
    cmd(p, "? 0x1234abcd"); // marks the end of the listing
    EXPECT_OUT(p, "Evaluate expression: 305441741 = 00000000`1234abcd", 30s);
    const std::string listing = p.since(mark);
    size_t functions = 0;
    for (const auto& s : *syms) {
        if (s.kind == kdcart::engine::PdbSymbol::Kind::Function) {
            ++functions;
            CHECK_MESSAGE(
                std::regex_search(
                    listing, std::regex(kAddr + " kdtest!" + e2e::regex_escape(s.name) + R"( \()")),
                s.name);
        }
    }
    CHECK(functions >= 10);
    CHECK(listing.find("kdtest!KdTestMiddleStep (unsigned int64)") != std::string::npos);
    CHECK(listing.find("kdtest!KdTestSample = struct _KDTEST_SAMPLE") != std::string::npos);

    // ln inside a private function.
    cmd(p, "ln kdtest!KdTestMiddleStep+0x10");
    EXPECT_OUT(p,
               R"(\()" + kAddr + R"(\)   kdtest!KdTestMiddleStep\+0x10   \|  \()" + kAddr +
                   R"(\)   kdtest!KdTestInnerStep\n)",
               30s);
    cmd(p, "ln kdtest!KdTestInnerStep");
    EXPECT_OUT(p, R"(Exact matches:\n    kdtest!KdTestInnerStep \(unsigned int64\)\n)", 30s);

    // k three private calls deep: the names only the PDB knows, each return address where the
    // next frame's call site is.
    cmd(p, "bp kdtest!KdTestInnerStep; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestInnerStep:\n)", 30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "kn");
    std::smatch m;
    const std::string frame = "([0-9a-f]{8}`[0-9a-f]{8}) ([0-9a-f]{8}`[0-9a-f]{8}) ";
    const bool ok = p.expect(R"( # Child-SP          RetAddr           Call Site\n)"
                             "00 " +
                                 frame +
                                 R"(kdtest!KdTestInnerStep\n)"
                                 "01 " +
                                 frame +
                                 R"(kdtest!KdTestMiddleStep\+(0x[0-9a-f]+)\n)"
                                 "02 " +
                                 frame +
                                 R"(kdtest!KdTestOuterStep\+(0x[0-9a-f]+)\n)"
                                 "03 " +
                                 frame +
                                 R"(kdtest!KdTestLoop\+0x[0-9a-f]+\n)"
                                 "04 " +
                                 frame + R"(nt!PspSystemThreadStartup\+0x[0-9a-f]+\n)",
                             30s, &m);
    if (!ok) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    REQUIRE(ok);
    const std::string ret0 = m[2].str(), middle_off = m[5].str();
    const std::string ret1 = m[4].str(), outer_off = m[8].str();
    const std::string child1 = m[3].str(), child2 = m[6].str();
    cmd(p, "? kdtest!KdTestMiddleStep+" + middle_off);
    EXPECT_OUT(p, "Evaluate expression: -?[0-9]+ = " + ret0 + "\n", 30s);
    cmd(p, "? kdtest!KdTestOuterStep+" + outer_off);
    EXPECT_OUT(p, "Evaluate expression: -?[0-9]+ = " + ret1 + "\n", 30s);
    // The middle function's frame is large (a 0x240-byte local array).
    auto sp = [](const std::string& a) {
        return std::stoull(a.substr(0, 8) + a.substr(9), nullptr, 16);
    };
    CHECK(sp(child2) - sp(child1) >= 0x240);
    // kb: the four home-space words of each frame; kp: parameters from the PDB; .frame and dv:
    // the locals of an outer frame, found through its stack pointer.
    cmd(p, "kb 2");
    EXPECT_OUT(p,
               "Child-SP          RetAddr           : Args to Child" + std::string(58, ' ') +
                   " "
                   ": Call Site\n" +
                   kAddr + " " + ret0 + " : " + kAddr + " " + kAddr + " " + kAddr + " " + kAddr +
                   " : kdtest!KdTestInnerStep\n",
               30s);
    cmd(p, "kp 2");
    EXPECT_OUT(p,
               R"(kdtest!KdTestInnerStep\(unsigned int64 Value = (0x[0-9a-f`]+|0)\)\n)" + kAddr +
                   " " + kAddr + R"( kdtest!KdTestMiddleStep\(unsigned int64 Value = [^)]+\)\+)" +
                   middle_off + "\n",
               30s);
    cmd(p, "dv");
    EXPECT_OUT(p, R"(\n +Value = (0x[0-9a-f`]+|0)\n)", 30s);
    cmd(p, ".frame 1");
    EXPECT_OUT(p, "01 " + child1 + " " + ret1 + R"( kdtest!KdTestMiddleStep\+)" + middle_off + "\n",
               30s);
    cmd(p, "dv /v");
    EXPECT_OUT(p, R"(prv local  )" + kAddr + R"( @rsp\+0x[0-9a-f]+ +scratch = \[576\])", 30s);
    cmd(p, ".frame 0");
    EXPECT_OUT(p, R"(00 )" + kAddr + " " + ret0 + R"( kdtest!KdTestInnerStep\n)", 30s);

    // dps over the stack: the return address is named.
    cmd(p, "dps @rsp L1");
    EXPECT_OUT(p, kAddr + "  " + ret0 + R"( kdtest!KdTestMiddleStep\+)" + middle_off + "\n", 30s);

    // dt: a structure of the driver, its layout and an instance.
    cmd(p, "dt kdtest!_KDTEST_SAMPLE");
    EXPECT_OUT(p,
               R"(   \+0x000 Signature        : Uint4B\n)"
               R"(   \+0x004 Enabled          : Pos 0, 1 Bit\n)"
               R"(   \+0x004 Level            : Pos 1, 3 Bits\n)"
               R"(   \+0x004 Reserved         : Pos 4, 28 Bits\n)"
               R"(   \+0x008 State            : _KDTEST_STATE\n)"
               R"(   \+0x00c Tag              : \[8\] UChar\n)"
               R"(   \+0x018 Values           : \[4\] Uint8B\n)"
               R"(   \+0x038 Links            : _LIST_ENTRY\n)"
               R"(   \+0x048 Name             : _UNICODE_STRING\n)"
               R"(   \+0x058 Info             : _KDTEST_INFO\n)"
               R"(   \+0x080 Self             : Ptr64 _KDTEST_SAMPLE\n)",
               30s);
    cmd(p, "dt kdtest!KdTestSample");
    EXPECT_OUT(p,
               R"(   \+0x000 Signature        : 0x5354444b\n)"
               R"(   \+0x004 Enabled          : 0y1\n)"
               R"(   \+0x004 Level            : 0y101\n)",
               30s);
    EXPECT_OUT(p,
               R"(   \+0x008 State            : 0n1 \( KdTestRunning \)\n)"
               R"(   \+0x00c Tag              : \[8\]  "sample"\n)",
               10s);
    EXPECT_OUT(p,
               R"(   \+0x038 Links            : _LIST_ENTRY \[ 0x)" + kAddr + " - 0x" + kAddr +
                   R"( \]\n   \+0x048 Name             : _UNICODE_STRING "kdtest sample"\n)",
               10s);
    cmd(p, "dps kdtest!KdTestSample+0x70 L2");
    EXPECT_OUT(p,
               kAddr + "  " + kAddr + " kdtest!KdTestCompute\n" + kAddr + "  " + kAddr +
                   " kdtest!KdTestUpdate\n",
               30s);

    // !sym noisy: the probe for kdcom's PDB, one line for the 404.
    cmd(p, "bc *; !sym noisy");
    EXPECT_OUT(p, "noisy mode - symbol prompts off\n", 30s);
    cmd(p, ".reload /f kdcom.dll");
    EXPECT_OUT(p,
               "SYMSRV:  HTTPGET: " + e2e::regex_escape(server.url()) + "/kdcom.pdb/" + kdcom_key +
                   R"(/kdcom.pdb - HTTP 404 \(80190194 - HTTP_STATUS_NOT_FOUND\)\n)",
               30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("no symbol path: WinDbg's banner once, export symbols, and lm says so") {
    ::unsetenv("_NT_SYMBOL_PATH");
    ::unsetenv("_NT_ALT_SYMBOL_PATH");
    auto p = start_sim({});
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(\* Symbols can not be loaded because symbol path is not initialized\. \*)",
               60s);
    EXPECT_OUT(
        p,
        R"(\*\*\* ERROR: Symbol file could not be found.  Defaulted to export symbols for ntoskrnl.exe - \n)"
        R"(nt!RtlpBreakWithStatusInstruction:\n)",
        30s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, ".sympath");
    EXPECT_OUT(p, "Symbol search path is: <empty>\n", 30s);
    cmd(p, "lm m nt");
    EXPECT_OUT(p, R"(   nt         \(export symbols\)       ntoskrnl.exe\n)", 30s);
    // A path given later takes effect at the next .reload.
    cmd(p, ".sympath " + kImages);
    EXPECT_OUT(p, "Symbol search path is: " + e2e::regex_escape(kImages) + "\n", 30s);
    EXPECT_OUT(p, "OK {45}" + e2e::regex_escape(kImages) + "\n", 30s);
    cmd(p, ".reload /f nt");
    cmd(p, "lm m nt");
    EXPECT_OUT(p,
               "   nt         \\(private pdb symbols\\)  " +
                   e2e::regex_escape(kImages + "/ntoskrnl.pdb") + "\n",
               30s);
    const size_t before = p.mark();
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
    CHECK(p.since(before).find("Symbols can not be loaded") == std::string::npos);
}
