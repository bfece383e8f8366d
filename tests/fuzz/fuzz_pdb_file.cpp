// libFuzzer target: a PDB file as kdcart reads it (engine/Pdb.cpp, engine/PdbTypesLlvm.cpp over
// LLVM 14's native reader): the MSF container, the info and DBI streams, every symbol with an
// address, the locals of the first functions, the types with their C names, and the line
// tables (engine/PdbLines.cpp). A hostile file
// must give an error, never a crash or a hang.
//
//   build-fuzz/bin/fuzz_pdb_file -max_total_time=60 WORKDIR tests/fuzz/corpus/pdb_file
#include "engine/Pdb.h"

#include <cstddef>
#include <cstdint>

using namespace kdcart::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto pdb = PdbFile::open_bytes(std::vector<uint8_t>(data, data + size), "fuzz.pdb");
    if (!pdb) {
        return 0;
    }
    PdbFile& f = **pdb;
    (void)f.guid();
    if (auto syms = f.read_symbols()) {
        int frames = 0;
        for (const auto& s : *syms) {
            if (s.kind == PdbSymbol::Kind::Function && frames++ < 16) {
                (void)f.function_frame(s.rva);
            }
        }
    }
    if (auto types = f.types()) {
        const PdbTypes* t = *types;
        for (uint32_t i = 0x1000; i < 0x1400; ++i) {
            if (const PdbType* ty = t->get(i)) {
                (void)t->c_name(i);
                (void)ty->fields.size();
            }
        }
        (void)t->match("*");
        (void)t->find("_KDTEST_SAMPLE");
    }
    if (auto lines = f.lines()) {
        const PdbLines* l = *lines;
        for (const auto& e : l->entries()) {
            (void)l->find(e.rva);
        }
        (void)l->find(0x1000);
        (void)l->address_of("kdtest.c", 1);
    }
    return 0;
}
