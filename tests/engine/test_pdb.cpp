// The PE and PDB readers against a real Microsoft-linked PDB (tests/data/pdb: crash.exe,
// crash.pdb, and crash.sym, an independent listing made with Microsoft's DIA SDK), plus
// mutation fuzzing of both entry points: hostile bytes give errors, never crashes.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Pdb.h"
#include "engine/PeImage.h"
#include "engine/SymbolIndex.h"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

using namespace kdcart;
using namespace kdcart::engine;

namespace {

const std::string kDir = KDCART_PDB_DATA_DIR;

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

struct Listing {
    std::string module_key; // GUID + age
    std::string code_id;
    struct Func {
        uint32_t rva, size;
        std::string name;
    };
    std::vector<Func> funcs;
    std::vector<std::pair<uint32_t, std::string>> publics;
};

// crash.sym: MODULE / INFO CODE_ID / FUNC [m] rva size params name / PUBLIC [m] rva params name
Listing read_listing() {
    std::ifstream f(kDir + "/crash.sym");
    REQUIRE(f.good());
    Listing l;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string word;
        in >> word;
        if (word == "MODULE") {
            std::string os, arch;
            in >> os >> arch >> l.module_key;
        } else if (word == "INFO") {
            std::string what;
            in >> what;
            if (what == "CODE_ID") {
                in >> l.code_id;
            }
        } else if (word == "FUNC" || word == "PUBLIC") {
            std::string tok;
            in >> tok;
            if (tok == "m") {
                in >> tok;
            }
            const uint32_t rva = static_cast<uint32_t>(std::stoul(tok, nullptr, 16));
            uint32_t size = 0;
            if (word == "FUNC") {
                in >> tok;
                size = static_cast<uint32_t>(std::stoul(tok, nullptr, 16));
            }
            in >> tok; // parameter size
            std::string name;
            std::getline(in, name);
            name.erase(0, name.find_first_not_of(' '));
            if (word == "FUNC") {
                l.funcs.push_back({rva, size, name});
            } else {
                l.publics.emplace_back(rva, name);
            }
        }
    }
    return l;
}

SymbolIndex index_of(const std::vector<PdbSymbol>& syms) {
    std::vector<SymbolIndex::Input> in;
    for (const auto& s : syms) {
        SymbolKind k = SymbolKind::Public;
        switch (s.kind) {
        case PdbSymbol::Kind::Function:
            k = SymbolKind::Function;
            break;
        case PdbSymbol::Kind::Data:
            k = SymbolKind::Data;
            break;
        case PdbSymbol::Kind::PublicFunction:
            k = SymbolKind::PublicFunction;
            break;
        case PdbSymbol::Kind::Public:
            k = SymbolKind::Public;
            break;
        }
        in.push_back({s.name, s.rva, s.size, s.type_index, k});
    }
    return SymbolIndex(std::move(in));
}

struct Loaded {
    PeImageInfo pe;
    std::unique_ptr<PdbFile> pdb;
    std::vector<PdbSymbol> symbols;
};

Loaded load_crash() {
    auto reader = file_image_reader(slurp(kDir + "/crash.exe"));
    REQUIRE(reader);
    auto pe = read_pe_image(*reader);
    REQUIRE(pe);
    auto pdb = PdbFile::open(kDir + "/crash.pdb");
    REQUIRE(pdb);
    auto syms = (*pdb)->read_symbols();
    REQUIRE(syms);
    return {*pe, std::move(*pdb), std::move(*syms)};
}

} // namespace

TEST_CASE("crash.exe: PE32 headers and the CodeView record the listing names") {
    const Listing l = read_listing();
    auto reader = file_image_reader(slurp(kDir + "/crash.exe"));
    REQUIRE(reader);
    auto pe = read_pe_image(*reader);
    REQUIRE(pe);
    CHECK(pe->machine == k_machine_i386);
    CHECK_FALSE(pe->pe32_plus);
    CHECK(pe->image_base == 0x400000);
    REQUIRE(pe->codeview);
    CHECK(pe->codeview->store_key() == l.module_key);
    CHECK(pe->codeview->pdb_file_name() == "crash.pdb");
    char code_id[32];
    std::snprintf(code_id, sizeof code_id, "%08X%x", pe->timestamp, pe->size_of_image);
    CHECK(std::string(code_id) == l.code_id);
    CHECK(pe->codeview->guid_string() == "{3249D99D-0C40-4931-8610-F4E4FB0B6936}");
    CHECK(pe->section_of(0x1000) != nullptr);
    CHECK(pe->section_of(0x1000)->name == ".text");
}

TEST_CASE("crash.pdb matches crash.exe by GUID and age; a different age is refused") {
    Loaded c = load_crash();
    CHECK(c.pdb->machine() == k_machine_i386);
    CHECK(c.pdb->matches(*c.pe.codeview));
    CodeViewRecord other = *c.pe.codeview;
    other.age += 1;
    CHECK_FALSE(c.pdb->matches(other));
    CHECK(c.pdb->mismatch_reason(other).find("age 2") != std::string::npos);
    other = *c.pe.codeview;
    other.guid[3] ^= 1;
    CHECK_FALSE(c.pdb->matches(other));
}

TEST_CASE("every FUNC of the independent listing: found by name at its address with its size") {
    const Listing l = read_listing();
    Loaded c = load_crash();
    CHECK(c.pdb->has_private_symbols());
    const SymbolIndex index = index_of(c.symbols);
    REQUIRE(l.funcs.size() == 92);
    for (const auto& f : l.funcs) {
        const std::string name = strip_parameters(f.name);
        CAPTURE(f.name);
        const auto hits = index.find(name);
        bool found = false;
        for (const auto* e : hits) {
            found =
                found || (e->rva == f.rva && e->size == f.size && e->kind == SymbolKind::Function);
        }
        CHECK(found);
        // ln at the start, in the middle and at the last byte: that function, that offset.
        for (uint32_t off : {0u, f.size / 2, f.size - 1}) {
            const SymbolEntry* e = index.lookup(f.rva + off);
            REQUIRE(e);
            CHECK(e->rva == f.rva);
            CHECK(e->kind == SymbolKind::Function);
        }
    }
}

TEST_CASE("every PUBLIC of the independent listing: found by its undecorated name") {
    const Listing l = read_listing();
    Loaded c = load_crash();
    const SymbolIndex index = index_of(c.symbols);
    REQUIRE(l.publics.size() == 35);
    for (const auto& [rva, name] : l.publics) {
        CAPTURE(name);
        bool found = false;
        for (const auto* e : index.find(name)) {
            found = found || e->rva == rva;
        }
        CHECK(found);
        const SymbolEntry* e = index.lookup(rva);
        REQUIRE(e);
        CHECK(e->rva == rva);
    }
}

TEST_CASE("name index: case-insensitive, exact case first, wildcards narrowed by prefix") {
    SymbolIndex idx({{"KeBugCheckEx", 0x100, 0x20, 0, SymbolKind::Function},
                     {"kebugcheckex", 0x200, 0, 0, SymbolKind::Public},
                     {"KeSetEvent", 0x300, 0x10, 0, SymbolKind::Function},
                     {"KiSwapContext", 0x400, 0x10, 0, SymbolKind::Function},
                     {"_KiSwapContext", 0x400, 0, 0, SymbolKind::Public}});
    auto hits = idx.find("KEBUGCHECKEX");
    REQUIRE(hits.size() == 2);
    hits = idx.find("kebugcheckex");
    REQUIRE(hits.size() == 2);
    CHECK(hits[0]->rva == 0x200);
    std::vector<std::string> names;
    idx.match("ke*", [&](const SymbolEntry& e) { names.emplace_back(idx.name(e)); });
    CHECK(names == std::vector<std::string>{"KeBugCheckEx", "kebugcheckex", "KeSetEvent"});
    names.clear();
    idx.match("*swap*", [&](const SymbolEntry& e) { names.emplace_back(idx.name(e)); });
    CHECK(names == std::vector<std::string>{"KiSwapContext"}); // the public is an alias
    CHECK(idx.find("_KiSwapContext").size() == 1);
    CHECK(idx.lookup(0x0ff) == nullptr);
    CHECK(idx.lookup(0x410)->rva == 0x400);
    CHECK(idx.name(*idx.lookup(0x410)) == "KiSwapContext");
    CHECK(idx.next_after(0x100)->rva == 0x200);
    CHECK(idx.next_after(0x400) == nullptr);
}

TEST_CASE("undecorated names as WinDbg shows them") {
    CHECK(undecorate_symbol("_main", k_machine_i386) == "main");
    CHECK(undecorate_symbol("_CxxThrowException@8", k_machine_i386) == "CxxThrowException");
    CHECK(undecorate_symbol("@KfAcquireSpinLock@4", k_machine_i386) == "KfAcquireSpinLock");
    CHECK(undecorate_symbol("_main", k_machine_amd64) == "_main");
    CHECK(undecorate_symbol("??0bad_alloc@std@@QAE@ABV01@@Z", k_machine_i386) ==
          "std::bad_alloc::bad_alloc");
    CHECK(strip_parameters("Foo::operator()(int) const") == "Foo::operator()");
    CHECK(strip_parameters("main") == "main");
}

TEST_CASE("types: _EXCEPTION_RECORD from crash.pdb, fields with offsets, pointers, arrays") {
    Loaded c = load_crash();
    auto types = c.pdb->types();
    REQUIRE(types);
    const PdbTypes& t = **types;
    auto idx = t.find("_exception_record"); // case-insensitive
    REQUIRE(idx);
    const PdbType* rec = t.get(*idx);
    REQUIRE(rec);
    CHECK(rec->kind == PdbType::Kind::Struct);
    CHECK(rec->name == "_EXCEPTION_RECORD");
    CHECK(rec->size == 0x50);
    REQUIRE(rec->fields.size() == 6);
    CHECK(rec->fields[0].name == "ExceptionCode");
    CHECK(rec->fields[0].offset == 0);
    CHECK(rec->fields[2].name == "ExceptionRecord");
    CHECK(rec->fields[2].offset == 8);
    CHECK(t.c_name(rec->fields[2].type) == "struct _EXCEPTION_RECORD *");
    CHECK(rec->fields[5].name == "ExceptionInformation");
    CHECK(rec->fields[5].offset == 0x14);
    const PdbType* arr = t.get(rec->fields[5].type);
    REQUIRE(arr);
    CHECK(arr->kind == PdbType::Kind::Array);
    CHECK(arr->size == 60);
    CHECK(t.c_name(rec->fields[5].type) == "unsigned long [15]");
    auto names = t.match("_EXCEPTION_R*");
    CHECK(std::find(names.begin(), names.end(), "_EXCEPTION_RECORD") != names.end());
}

TEST_CASE("hostile PDBs: mutated, truncated and garbage files give errors, never crashes") {
    const std::vector<uint8_t> good = slurp(kDir + "/crash.pdb");
    std::mt19937 rng(8);
    uint32_t block_size = 0, dir_block = 0;
    std::memcpy(&block_size, good.data() + 32, 4);
    std::memcpy(&dir_block, good.data() + 52, 4);
    REQUIRE(block_size == 4096);
    auto exercise = [](std::vector<uint8_t> bytes) {
        auto pdb = PdbFile::open_bytes(std::move(bytes), "mutant.pdb");
        if (!pdb) {
            CHECK_FALSE(pdb.error().message.empty());
            return;
        }
        auto syms = (*pdb)->read_symbols();
        if (syms) {
            index_of(*syms);
        }
        auto types = (*pdb)->types();
        if (types) {
            size_t n = 0;
            for (const auto& name : (*types)->match("*")) {
                if (++n > 200) {
                    break;
                }
                if (auto i = (*types)->find(name)) {
                    if (const PdbType* ty = (*types)->get(*i)) {
                        for (const auto& f : ty->fields) {
                            (*types)->c_name(f.type);
                        }
                    }
                }
            }
        }
    };
    for (int round = 0; round < 120; ++round) {
        std::vector<uint8_t> m = good;
        const int edits = 1 + static_cast<int>(rng() % 8);
        for (int e = 0; e < edits; ++e) {
            size_t at = 0;
            switch (rng() % 3) {
            case 0: // the superblock
                at = rng() % 64;
                break;
            case 1: // the block map and stream directory
                at = (static_cast<size_t>(dir_block) * block_size + rng() % (2 * block_size)) %
                     m.size();
                break;
            default:
                at = rng() % m.size();
                break;
            }
            const uint32_t v = rng() % 2 ? rng() : rng() % 256;
            const size_t n = std::min<size_t>(rng() % 2 ? 4 : 1, m.size() - at);
            std::memcpy(m.data() + at, &v, n);
        }
        exercise(std::move(m));
    }
    for (size_t cut :
         {size_t{0}, size_t{31}, size_t{56}, size_t{4096}, good.size() / 2, good.size() - 1}) {
        exercise(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(cut)));
    }
    exercise(std::vector<uint8_t>(8192, 0xFF));
    CHECK_FALSE(PdbFile::open(kDir + "/no-such.pdb"));
}

TEST_CASE("hostile PE headers: mutated images give errors or sane data, never crashes") {
    const std::vector<uint8_t> good = slurp(kDir + "/crash.exe");
    std::mt19937 rng(88);
    for (int round = 0; round < 2000; ++round) {
        std::vector<uint8_t> m = good;
        const int edits = 1 + static_cast<int>(rng() % 6);
        for (int e = 0; e < edits; ++e) {
            const size_t at = rng() % 0x400; // the headers and section table
            const uint32_t v = rng() % 2 ? rng() : rng() % 256;
            std::memcpy(m.data() + at, &v, rng() % 2 ? 4 : 1);
        }
        auto reader = file_image_reader(m);
        if (!reader) {
            continue;
        }
        auto pe = read_pe_image(*reader);
        if (pe) {
            CHECK(pe->sections.size() <= 96);
            if (pe->codeview) {
                CHECK(pe->codeview->pdb_name.size() <= 4096);
            }
        }
        (void)read_pe_exports(0x400000, *reader);
    }
}

TEST_CASE("PDBs that crashed LLVM 14's reader are refused or read safely (engine/MsfGuard.cpp)") {
    const std::string dir = KDCART_FUZZ_CORPUS_DIR "/pdb_file/";
    for (const char* name : {"llvm_oom_named_stream_map.pdb", "llvm_segv_module_count.pdb",
                             "llvm_segv_no_file_info.pdb"}) {
        CAPTURE(name);
        auto pdb = PdbFile::open(dir + name);
        REQUIRE(!pdb);
        CHECK(pdb.error().message.find("not a valid PDB") != std::string::npos);
    }
    // A deleted DBI stream is a stream of size 0 for LLVM (it read through a null block list
    // before): the PDB opens without a DBI stream, so without module streams and their
    // functions (kdtest.pdb, which it was made from, has them).
    auto pdb = PdbFile::open(dir + "llvm_segv_deleted_dbi.pdb");
    REQUIRE(pdb);
    (void)(*pdb)->read_symbols();
    CHECK(!(*pdb)->has_private_symbols());
    auto original = PdbFile::open(dir + "kdtest.pdb");
    REQUIRE(original);
    REQUIRE((*original)->read_symbols());
    CHECK((*original)->has_private_symbols());
}
