// The line-table reader (engine/PdbLines) against two PDBs: kdsim's kdtest.pdb (lld-link; the
// expected lines come from the text of hw/images/kdtest.c) and the Microsoft-linked crash.pdb
// of tests/data/pdb, whose every line record is compared with crash.sym (Breakpad's dump_syms
// through Microsoft's DIA SDK: an independent reading of the same line tables).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Pdb.h"
#include "engine/PdbLines.h"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

using namespace kdcart;
using namespace kdcart::engine;

namespace {

std::vector<std::string> source_lines(const std::string& path) {
    std::ifstream f(path);
    REQUIRE(f.good());
    std::vector<std::string> out{""}; // 1-based
    std::string line;
    while (std::getline(f, line)) {
        out.push_back(line);
    }
    return out;
}

std::string lower(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

uint32_t rva_of(const std::vector<PdbSymbol>& syms, std::string_view name) {
    for (const auto& s : syms) {
        if (s.name == name && s.kind == PdbSymbol::Kind::Function) {
            return s.rva;
        }
    }
    FAIL("no function " << name);
    return 0;
}

} // namespace

TEST_CASE("kdtest.pdb: addresses map to the lines of hw/images/kdtest.c that hold them") {
    auto pdb = PdbFile::open(std::string(KDSIM_IMAGE_DIR) + "/kdtest.pdb");
    REQUIRE(pdb);
    auto syms = (*pdb)->read_symbols();
    REQUIRE(syms);
    auto lines = (*pdb)->lines();
    REQUIRE(lines);
    const PdbLines& l = **lines;
    REQUIRE_FALSE(l.empty());
    const auto src = source_lines(KDTEST_SOURCE);

    // Each function's first line is the line of its definition (the name is on it or on the
    // line before, for definitions whose return type stands alone on the line above).
    for (std::string_view fn : {"KdTestCompute", "KdTestUpdate", "KdTestPagedFunction"}) {
        CAPTURE(fn);
        const uint32_t rva = rva_of(*syms, fn);
        auto at = l.find(rva);
        REQUIRE(at);
        CHECK(source_path_matches(at->file, "kdtest.c"));
        CHECK(at->file == KDTEST_SOURCE); // as recorded: the path clang-cl compiled
        REQUIRE(at->line < src.size());
        const bool named = src[at->line].find(std::string(fn) + "(") != std::string::npos ||
                           src[at->line - 1].find(std::string(fn) + "(") != std::string::npos;
        CHECK(named);
        // The way back: bp `kdtest.c:N` on that line is the function's first address.
        auto back = l.address_of("kdtest.c", at->line);
        REQUIRE(back);
        CHECK(back->rva == rva);
        CHECK(back->line == at->line);
    }

    // A line inside KdTestCompute: the statement "acc ^= acc >> 29;" has code of its own.
    size_t xorshift = 0;
    for (size_t i = 1; i < src.size(); ++i) {
        if (src[i].find("acc ^= acc >> 29;") != std::string::npos) {
            xorshift = i;
        }
    }
    REQUIRE(xorshift != 0);
    auto a = l.address_of("KDTEST.C", static_cast<uint32_t>(xorshift));
    REQUIRE(a);
    CHECK(a->line == xorshift);
    const uint32_t compute = rva_of(*syms, "KdTestCompute");
    CHECK(a->rva > compute);
    auto back = l.find(a->rva);
    REQUIRE(back);
    CHECK(back->line == xorshift);
    CHECK(back->line_rva == a->rva);
    // Every address of that line's code maps back to it.
    for (const auto& e : l.entries()) {
        if (e.line == xorshift && e.end > e.rva) {
            CHECK(l.find(e.end - 1)->line == xorshift);
        }
    }

    // A comment line has no code: the nearest following line that has some is taken.
    size_t comment = 0;
    for (size_t i = 1; i < src.size(); ++i) {
        if (src[i].rfind("/* A little arithmetic", 0) == 0) {
            comment = i;
        }
    }
    REQUIRE(comment != 0);
    auto next = l.address_of("kdtest.c", static_cast<uint32_t>(comment));
    REQUIRE(next);
    CHECK(next->line > comment);
    CHECK(next->rva == compute);

    // Paths: the whole path, trailing components, '/' or '\', any case; not a partial name.
    CHECK(l.has_file("images/kdtest.c"));
    CHECK(l.has_file("hw\\images\\KDTEST.C"));
    CHECK_FALSE(l.has_file("test.c"));
    CHECK_FALSE(l.has_file("kdtest.h"));
    CHECK_FALSE(l.address_of("nosuchfile.c", 10));
    CHECK_FALSE(l.address_of("kdtest.c", 1000000));
    // Outside the code: nothing.
    CHECK_FALSE(l.find(0));
}

TEST_CASE("crash.pdb (Microsoft linker): every line record agrees with DIA's crash.sym") {
    auto pdb = PdbFile::open(std::string(KDCART_PDB_DATA_DIR) + "/crash.pdb");
    REQUIRE(pdb);
    auto lines = (*pdb)->lines();
    REQUIRE(lines);
    const PdbLines& l = **lines;

    std::ifstream f(std::string(KDCART_PDB_DATA_DIR) + "/crash.sym");
    REQUIRE(f.good());
    std::map<uint32_t, std::string> files;
    struct Rec {
        uint32_t rva, size, line, file;
    };
    std::vector<Rec> recs;
    std::string text;
    bool in_func = false;
    while (std::getline(f, text)) {
        std::istringstream in(text);
        std::string word;
        in >> word;
        if (word == "FILE") {
            uint32_t n = 0;
            in >> n;
            std::string rest;
            std::getline(in, rest);
            files[n] = rest.substr(1);
            in_func = false;
        } else if (word == "FUNC") {
            in_func = true;
        } else if (word == "PUBLIC" || word == "STACK" || word == "MODULE" || word == "INFO") {
            in_func = false;
        } else if (in_func) {
            Rec r{};
            std::istringstream rec(text);
            rec >> std::hex >> r.rva >> r.size >> std::dec >> r.line >> r.file;
            if (rec) {
                recs.push_back(r);
            }
        }
    }
    REQUIRE(recs.size() > 500);
    size_t agree = 0;
    for (const auto& r : recs) {
        CAPTURE(r.rva);
        CAPTURE(r.line);
        if (r.size == 0) {
            // A line without code of its own (a function's opening brace, at the same address
            // as the next line): no address maps to it, but bp on it takes that address.
            bool found = false;
            for (const auto& e : l.entries()) {
                found = found || (e.rva == r.rva && e.end == r.rva && e.line == r.line);
            }
            CHECK(found);
            ++agree;
            continue;
        }
        auto at = l.find(r.rva);
        REQUIRE(at);
        if (at->line != r.line || lower(at->file) != lower(files[r.file])) {
            // Code the linker folded (identical COMDATs): several modules' lines name the
            // same bytes and DIA picked another one. That line must be among them.
            bool folded = false;
            for (const auto& e : l.entries()) {
                folded = folded || (e.rva == r.rva && e.line == r.line &&
                                    lower(l.files()[e.file]) == lower(files[r.file]));
            }
            CHECK(folded);
            continue;
        }
        CHECK(at->line_rva == r.rva);
        auto last = l.find(r.rva + r.size - 1);
        REQUIRE(last);
        CHECK(last->line == r.line);
        ++agree;
    }
    // All but the few folded addresses.
    CHECK(agree + 4 >= recs.size());
    MESSAGE(agree << " of " << recs.size() << " line records agree with crash.sym");
    // crash.exe's own source, by file name alone.
    CHECK(l.has_file("client_info.cc"));
}

TEST_CASE("PdbLines: hostile entries (bad file index, inverted range) are dropped") {
    PdbLines l({"c:\\src\\a.c"},
               {{0x1000, 0x1010, 0, 10}, {0x1010, 0x1000, 0, 11}, {0x1020, 0x1030, 7, 12}});
    CHECK(l.entries().size() == 1);
    CHECK(l.find(0x100f)->line == 10);
    CHECK_FALSE(l.find(0x1010));
    CHECK(l.address_of("A.C", 1)->rva == 0x1000);
    CHECK(source_path_matches("c:\\src\\a.c", "src/a.c"));
    CHECK_FALSE(source_path_matches("c:\\src\\a.c", "ra.c"));
}

TEST_CASE("a named stream map key outside its names (LLVM strlen()s it) is refused") {
    // Found by fuzz_pdb_file once it read the line tables (PDBFile::getStringTable looks up
    // "/names" through the map); engine/MsfGuard.cpp checks the keys now.
    auto pdb = PdbFile::open(std::string(KDCART_FUZZ_CORPUS_DIR) +
                             "/pdb_file/llvm_overflow_named_stream_key.pdb");
    REQUIRE(!pdb);
    CHECK(pdb.error().message.find("not a valid PDB") != std::string::npos);
}
