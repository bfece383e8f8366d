// End to end: stacks and code through kdsim's images. The real kdcart against the real kdsim,
// symbols from the images' PDBs: k through a machine frame (kdtest's soft interrupt: TrapFrame @
// and the interrupted frames) and a function with chained unwind info, checked against the
// machine frame on the stack and the image's own .pdata; k variants (kn N, kL, k = rbp rsp rip,
// kc); a stop inside an epilogue; .fnent against the .pdata entries read from the image file; uf
// and uf /c against the PDB's functions; !dh against the file's headers; dx -r1 of a typed global
// and a cast pointer against what kdtest's DriverEntry wrote.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Pdb.h"
#include "engine/PeImage.h"
#include "hw/images/sim_abi.h"
#include "tests/e2e/Process.h"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>

using namespace std::chrono_literals;
using e2e::cmd;
using e2e::kAddr;

namespace {

const std::string kBin = KDCART_BIN_DIR;
const std::string kImages = KDSIM_IMAGE_DIR;
const std::string kPrompt = R"(\d+: kd> )";
const std::string kFrame = "([0-9a-f]{8}`[0-9a-f]{8}) ([0-9a-f]{8}`[0-9a-f]{8}) ";

std::vector<uint8_t> file_bytes(const std::string& name) {
    std::ifstream f(kImages + "/" + name, std::ios::binary);
    REQUIRE(f.good());
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

uint64_t addr(const std::string& a) {
    return std::stoull(a.substr(0, 8) + a.substr(9), nullptr, 16);
}

std::string windbg(uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "%08llx`%08llx", static_cast<unsigned long long>(v >> 32),
                  static_cast<unsigned long long>(v & 0xffffffffu));
    return b;
}

// The image file, its headers and symbols, for the facts the commands must show.
struct Image {
    std::vector<uint8_t> file;
    kdcart::engine::ImageReader reader;
    kdcart::engine::PeImageInfo pe;
    std::vector<kdcart::engine::PdbSymbol> symbols;

    explicit Image(const std::string& name) : file(file_bytes(name)) {
        auto r = kdcart::engine::file_image_reader(file);
        REQUIRE(r);
        reader = *r;
        auto h = kdcart::engine::read_pe_image(reader);
        REQUIRE(h);
        pe = *h;
        const std::string pdb_name = name.substr(0, name.find('.')) + ".pdb";
        auto pdb = kdcart::engine::PdbFile::open(kImages + "/" + pdb_name);
        REQUIRE(pdb);
        auto s = (*pdb)->read_symbols();
        REQUIRE(s);
        symbols = *s;
    }
    const kdcart::engine::PdbSymbol& symbol(const std::string& name) const {
        for (const auto& s : symbols) {
            if (s.name == name) {
                return s;
            }
        }
        FAIL("no symbol " << name);
        throw std::logic_error("unreachable");
    }
    uint32_t u32(uint32_t rva) const {
        auto b = reader(rva, 4);
        REQUIRE(b.size() == 4);
        uint32_t v;
        std::memcpy(&v, b.data(), 4);
        return v;
    }
    // The .pdata entry holding `rva`, read from the file: begin, end, unwind.
    std::array<uint32_t, 3> pdata(uint32_t rva) const {
        const auto* d = pe.directory(kdcart::engine::k_dir_exception);
        REQUIRE(d);
        for (uint32_t e = d->rva; e + 12 <= d->rva + d->size; e += 12) {
            if (rva >= u32(e) && rva < u32(e + 4)) {
                return {u32(e), u32(e + 4), u32(e + 8)};
            }
        }
        FAIL("no .pdata entry for rva " << rva);
        throw std::logic_error("unreachable");
    }
};

e2e::Process start_sim() {
    ::unsetenv("_NT_SYMBOL_PATH");
    ::unsetenv("_NT_ALT_SYMBOL_PATH");
    return e2e::Process(
        {kBin + "/kdcart", "--sim", "--kdsim", kBin + "/kdsim", "-b", "-y", kImages});
}

std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
}

} // namespace

TEST_CASE("k through a machine frame and a chained function; k variants; .fnent; uf") {
    const Image kdtest("kdtest.sys");
    auto p = start_sim();
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "bp kdtest!KdTestTrapWork; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\nkdtest!KdTestTrapWork:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    // The interrupt handler's frame says TrapFrame @, its return address is the interrupted
    // rip in KdTestRaiseSoftTrap, and the cold part unwinds through its primary's prolog.
    cmd(p, "kn");
    std::smatch m;
    const bool ok = p.expect(
        R"( # Child-SP          RetAddr           Call Site\n)"
        "00 " +
            kFrame +
            R"(kdtest!KdTestTrapWork\n)"
            "01 " +
            kFrame +
            R"(kdtest!KdTestSoftInterrupt\+0x([0-9a-f]+) \(TrapFrame @ ([0-9a-f]{8}`[0-9a-f]{8})\)\n)"
            "02 " +
            kFrame +
            R"(kdtest!KdTestRaiseSoftTrap\+0x([0-9a-f]+)\n)"
            "03 " +
            kFrame +
            R"(kdtest!KdTestSplitFunctionCold\+0x([0-9a-f]+)\n)"
            "04 " +
            kFrame +
            R"(kdtest!KdTestLoop\+0x([0-9a-f]+)\n)"
            "05 " +
            kFrame + R"(nt!PspSystemThreadStartup\+0x[0-9a-f]+\n)",
        60s, &m);
    if (!ok) {
        MESSAGE("transcript:\n" << p.transcript());
    }
    REQUIRE(ok);
    const uint64_t sp1 = addr(m[3]), ret1 = addr(m[4]), trap = addr(m[6]);
    const uint64_t sp2 = addr(m[7]), ret2 = addr(m[8]), off2 = std::stoull(m[9], nullptr, 16);
    const uint64_t sp3 = addr(m[10]), ret3 = addr(m[11]), off3 = std::stoull(m[12], nullptr, 16);
    const uint64_t sp4 = addr(m[13]), off4 = std::stoull(m[15], nullptr, 16);
    // The trap frame is where nt!_KTRAP_FRAME's Rip would be the machine frame's rip (the
    // machine frame is at sp1 + 0x28, below), as WinDbg places it.
    CHECK(trap == sp1 + 0x28 - SIM_KTRAP_FRAME_RIP);
    // The machine frame the handler's unwind codes describe (push rbp; sub rsp,20h): rip, cs,
    // rflags, rsp, ss right above them. It holds frame 01's return address and frame 02's rsp.
    cmd(p, "dq " + windbg(sp1 + 0x28) + " L5");
    EXPECT_OUT(p,
               windbg(sp1 + 0x28) + "  " + windbg(ret1) + R"( 00000000`00000010\n)" + kAddr + "  " +
                   kAddr + " " + windbg(sp2) + "\n",
               30s);
    // Return addresses are where the next frame executes.
    cmd(p, "? kdtest!KdTestRaiseSoftTrap+0x" + hex(off2));
    EXPECT_OUT(p, "= " + windbg(ret1) + "\n", 30s);
    cmd(p, "? kdtest!KdTestSplitFunctionCold+0x" + hex(off3));
    EXPECT_OUT(p, "= " + windbg(ret2) + "\n", 30s);
    cmd(p, "? kdtest!KdTestLoop+0x" + hex(off4));
    EXPECT_OUT(p, "= " + windbg(ret3) + "\n", 30s);
    // KdTestRaiseSoftTrap allocates 0x28; the cold part has no codes of its own, its primary
    // pushed rbx and allocated 0x20: the chained entry's codes were applied.
    CHECK(sp3 - sp2 == 0x30);
    CHECK(sp4 - sp3 == 0x30);

    // .frame /r 4: KdTestLoop's registers as the unwind data restores them: rsp, rip, and rbx
    // from where the split function's primary part pushed it (above its 0x20 bytes).
    cmd(p, "dq " + windbg(sp3 + 0x20) + " L1");
    std::smatch q;
    REQUIRE(p.expect(windbg(sp3 + 0x20) + R"(  ([0-9a-f]{8})`([0-9a-f]{8})\n)", 30s, &q));
    const std::string saved_rbx = q[1].str() + q[2].str();
    cmd(p, ".frame /r 4");
    EXPECT_OUT(p,
               "04 " + windbg(sp4) + " " + kAddr + R"( kdtest!KdTestLoop\+0x)" + hex(off4) +
                   "\nrax=[0-9a-f]{16} rbx=" + saved_rbx +
                   " rcx=[0-9a-f]{16}\n.*\nrip=" + windbg(ret3).erase(8, 1) +
                   " rsp=" + windbg(sp4).erase(8, 1) + " rbp=[0-9a-f]{16}\n",
               30s);
    EXPECT_OUT(p, "efl=[0-9a-f]{8}\n" + windbg(ret3) + R"( [0-9a-f]+ +\w+)", 30s);
    cmd(p, ".frame 0");
    EXPECT_OUT(p, kPrompt, 30s);

    // kc: the call sites only; kn 2 / kL 3 / k 1: the count.
    cmd(p, "kc 3");
    EXPECT_OUT(p,
               R"( # Call Site\n00 kdtest!KdTestTrapWork\n01 kdtest!KdTestSoftInterrupt\+0x)" +
                   hex(std::stoull(m[5], nullptr, 16)) + R"( \(TrapFrame @ )" + windbg(trap) +
                   R"(\)\n02 kdtest!KdTestRaiseSoftTrap\+0x)" + hex(off2) + "\n" + kPrompt,
               30s);
    const size_t before = p.mark();
    cmd(p, "kL 3");
    cmd(p, "? 0x5a5a1");
    EXPECT_OUT(p, "Evaluate expression: 370081 = ", 30s);
    const std::string kl = p.since(before);
    CHECK(kl.find("kdtest!KdTestRaiseSoftTrap+0x" + hex(off2) + "\n") != std::string::npos);
    CHECK(kl.find("KdTestSplitFunctionCold") == std::string::npos);
    // k = rbp rsp rip: a walk from given registers, here frame 02's.
    cmd(p, "k = 0 " + windbg(sp2) + " " + windbg(ret1) + " 2");
    EXPECT_OUT(p,
               "Child-SP          RetAddr           Call Site\n" + windbg(sp2) + " " +
                   windbg(ret2) + R"( kdtest!KdTestRaiseSoftTrap\+0x)" + hex(off2) + "\n" +
                   windbg(sp3) + " " + windbg(ret3) + R"( kdtest!KdTestSplitFunctionCold\+0x)" +
                   hex(off3) + "\n" + kPrompt,
               30s);
    cmd(p, "k = 1 2");
    EXPECT_OUT(p, "Please specify the frame \\(rbp\\), stack \\(rsp\\) and instruction", 30s);

    // .fnent: the cold part's entry and its chained parent, as the image's .pdata holds them.
    const auto cold = kdtest.pdata(kdtest.symbol("KdTestSplitFunctionCold").rva);
    const auto primary = kdtest.pdata(kdtest.symbol("KdTestSplitFunction").rva);
    cmd(p, ".fnent kdtest!KdTestSplitFunctionCold");
    EXPECT_OUT(p,
               "Debugger function entry " + kAddr + " for:\n\\(" + kAddr +
                   R"(\)   kdtest!KdTestSplitFunctionCold   \|  \()" + kAddr +
                   R"(\)   kdtest!\w+\n)"
                   "\nBeginAddress      = " +
                   windbg(cold[0]) + "\nEndAddress        = " + windbg(cold[1]) +
                   "\nUnwindInfoAddress = " + windbg(cold[2]) + "\n\nUnwind info at " + kAddr +
                   ", 10 bytes\n  version 1, flags 4, prolog 0, codes 0\n\nChained info:\n"
                   "BeginAddress      = " +
                   windbg(primary[0]) + "\nEndAddress        = " + windbg(primary[1]) +
                   "\nUnwindInfoAddress = " + windbg(primary[2]) + "\n\nUnwind info at " + kAddr +
                   ", 8 bytes\n  version 1, flags 0, prolog 5, codes 2\n"
                   "  00: offs 5, unwind op 2, op info 3      UWOP_ALLOC_SMALL.\n"
                   "  01: offs 1, unwind op 0, op info 3      UWOP_PUSH_NONVOL reg: rbx.\n",
               30s);
    cmd(p, ".fnent kdtest!KdTestSoftInterrupt");
    EXPECT_OUT(p, "  02: offs 0, unwind op a, op info 0      UWOP_PUSH_MACHFRAME.\n", 30s);
    cmd(p, ".fnent 0x1234");
    EXPECT_OUT(p, "No function entry for 00000000`00001234\n", 30s);

    // uf follows the jump into the cold part and shows it under its own label.
    cmd(p, "uf kdtest!KdTestSplitFunction");
    EXPECT_OUT(p,
               "kdtest!KdTestSplitFunction:\n" + kAddr + R"( 53              push    rbx\n)" +
                   kAddr + R"( 4883ec20        sub     rsp,20h\n)",
               30s);
    EXPECT_OUT(p,
               R"(\n\nkdtest!KdTestSplitFunctionCold:\n)" + kAddr +
                   R"( 4889d9          mov     rcx,rbx\n)" + kAddr +
                   R"( e8[0-9a-f]{8}      call    kdtest!KdTestRaiseSoftTrap \()" + kAddr +
                   R"(\)\n)",
               30s);
    EXPECT_OUT(p, R"(c3              ret\n)" + kPrompt, 30s);
    // uf /c KdTestLoop: every direct call of the loop, none of the functions after it.
    const size_t uf_mark = p.mark();
    cmd(p, "uf /c kdtest!KdTestLoop");
    cmd(p, "? 0x5a5a2");
    EXPECT_OUT(p, "Evaluate expression: 370082 = ", 30s);
    const std::string calls = p.since(uf_mark);
    for (const char* callee : {"KdTestCompute", "KdTestUpdate", "KdTestPagedFunction",
                               "KdTestOuterStep", "KdTestSplitFunction", "KdTestRaiseBugCheck"}) {
        CAPTURE(callee);
        CHECK(calls.find(std::string("    call to kdtest!") + callee + " (") != std::string::npos);
    }
    CHECK(calls.find("call to nt!KeQueryInterruptTime (") != std::string::npos);
    CHECK(calls.find("KdTestMiddleStep") == std::string::npos);
    CHECK(calls.find("kdtest!KdTestLoop (") != std::string::npos);
    cmd(p, "bc *");
    EXPECT_OUT(p, kPrompt, 30s);

    // Stopped in an epilogue: on "add rsp,268h" and then on the ret of KdTestMiddleStep.
    const auto& middle = kdtest.symbol("KdTestMiddleStep");
    auto tail = kdtest.reader(middle.rva + middle.size - 8, 8);
    REQUIRE(tail.size() == 8);
    CHECK(tail[7] == 0xC3);
    REQUIRE((tail[0] == 0x48 && tail[1] == 0x81 && tail[2] == 0xC4)); // add rsp,imm32
    cmd(p, "bp kdtest!KdTestMiddleStep+0x" + hex(middle.size - 8) + "; g");
    EXPECT_OUT(p, R"(Breakpoint 0 hit\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);
    for (int step = 0; step < 2; ++step) {
        cmd(p, "kn 2");
        const bool in_epilogue = p.expect(R"( # Child-SP          RetAddr           Call Site\n)"
                                          "00 " +
                                              kFrame +
                                              R"(kdtest!KdTestMiddleStep\+0x[0-9a-f]+\n)"
                                              "01 " +
                                              kFrame + R"(kdtest!KdTestOuterStep\+0x([0-9a-f]+)\n)",
                                          30s, &m);
        REQUIRE(in_epilogue);
        const std::string ret = m[2];
        cmd(p, "? kdtest!KdTestOuterStep+0x" + m[5].str());
        EXPECT_OUT(p, "= " + ret + "\n", 30s);
        cmd(p, "p");
        EXPECT_OUT(p, kPrompt, 30s);
    }
    cmd(p, "bc *");
    EXPECT_OUT(p, kPrompt, 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}

TEST_CASE("!dh and dx -r1 against the image file and kdtest's sample") {
    const Image kdtest("kdtest.sys");
    auto p = start_sim();
    REQUIRE(p.started());
    EXPECT_OUT(p, R"(nt!RtlpBreakWithStatusInstruction:\n)", 60s);
    EXPECT_OUT(p, kPrompt, 30s);

    cmd(p, "!dh kdtest");
    EXPECT_OUT(p, "\nFile Type: EXECUTABLE IMAGE\nFILE HEADER VALUES\n    8664 machine \\(X64\\)\n",
               30s);
    char n[64];
    std::snprintf(n, sizeof n, "%8X number of sections\n", kdtest.pe.number_of_sections);
    EXPECT_OUT(p, n, 10s);
    std::snprintf(n, sizeof n, "%8X address of entry point\n", kdtest.pe.entry_point);
    EXPECT_OUT(p, n, 10s);
    std::snprintf(n, sizeof n, "%8X \\[%8X\\] address \\[size\\] of Exception Directory\n",
                  kdtest.pe.directories[3].rva, kdtest.pe.directories[3].size);
    EXPECT_OUT(p, n, 10s);
    for (const auto& s : kdtest.pe.sections) {
        std::snprintf(n, sizeof n, "%8s name\n", s.name.c_str());
        EXPECT_OUT(p, n, 10s);
    }
    REQUIRE(kdtest.pe.codeview);
    EXPECT_OUT(p,
               "\tcv +[0-9a-f]+ +[0-9a-f]+ +[0-9a-f]+\tFormat: RSDS, \\" +
                   kdtest.pe.codeview->guid_string().substr(0, 37) + "\\}, " +
                   std::to_string(kdtest.pe.codeview->age) + ", kdtest.pdb\n",
               10s);
    EXPECT_OUT(p, kPrompt, 10s);
    cmd(p, "!dh -s 0x1000");
    EXPECT_OUT(p, "Unable to read the image headers at 00000000`00001000", 30s);

    // dx: the sample DriverEntry filled in (kdtest.c: KdTestInitSample).
    cmd(p, "? kdtest!KdTestSample");
    std::smatch m;
    REQUIRE(p.expect(R"(= ([0-9a-f]{8})`([0-9a-f]{8})\n)", 30s, &m));
    const uint64_t sample = std::stoull(m[1].str() + m[2].str(), nullptr, 16);
    cmd(p, "dx -r1 kdtest!KdTestSample");
    EXPECT_OUT(p,
               R"(kdtest!KdTestSample {17}\[Type: _KDTEST_SAMPLE\]\n)"
               R"(    \[\+0x000\] Signature        : 0x5354444b \[Type: unsigned int\]\n)"
               R"(    \[\+0x004 \( 0: 0\)\] Enabled          : 0x1 \[Type: unsigned int\]\n)"
               R"(    \[\+0x004 \( 3: 1\)\] Level            : 0x5 \[Type: unsigned int\]\n)",
               30s);
    EXPECT_OUT(p,
               R"(    \[\+0x008\] State            : KdTestRunning \(1\) \[Type: _KDTEST_STATE\]\n)"
               R"(    \[\+0x00c\] Tag              \[Type: unsigned char \[8\]\]\n)"
               R"(    \[\+0x018\] Values           \[Type: unsigned __int64 \[4\]\]\n)"
               R"(    \[\+0x038\] Links            \[Type: _LIST_ENTRY\]\n)",
               10s);
    EXPECT_OUT(p,
               R"(    \[\+0x080\] Self             : 0x)" + hex(sample) +
                   R"( \[Type: _KDTEST_SAMPLE \*\]\n)",
               10s);
    cmd(p, "dx -r1 ((kdtest!_KDTEST_SAMPLE *)&kdtest!KdTestSample)");
    EXPECT_OUT(p,
               R"(\(\(kdtest!_KDTEST_SAMPLE \*\)&kdtest!KdTestSample\) {17}: 0x)" + hex(sample) +
                   R"( \[Type: _KDTEST_SAMPLE \*\]\n)"
                   R"(    \[\+0x000\] Signature        : 0x5354444b)",
               30s);
    cmd(p, "dx -r1 (*((kdtest!_KDTEST_SAMPLE *)0x10))");
    EXPECT_OUT(p,
               R"(\(\*\(\(kdtest!_KDTEST_SAMPLE \*\)0x10\)\) {17}\[Type: _KDTEST_SAMPLE\]\n)"
               R"(    \[\+0x000\] Signature        : Unable to read memory at Address 0x10\n)",
               30s);
    cmd(p, "dx kdtest!KdTestNoSuchThing");
    EXPECT_OUT(p, "Error: Couldn't resolve error at 'kdtest!KdTestNoSuchThing'\n", 30s);
    cmd(p, "dx -r1 ((kdtest!_NO_SUCH_TYPE *)0)");
    EXPECT_OUT(p, "Error: Couldn't resolve type 'kdtest!_NO_SUCH_TYPE'\n", 30s);
    cmd(p, "q");
    CHECK(p.wait_exit(30s) == 0);
}
