// PDB benchmark: generates a PE image with N functions and N globals (default 100000 each, so
// ~200k public + private symbols) with clang-cl and lld-link, then measures what kdcart does
// with its PDB: open + read every symbol + build the address and name indexes (the cost of a
// module's first use), address look-ups per second (what `k`, `u`, `dps` do per value), exact
// name look-ups per second, and one wildcard search. Prints figures; not a test.
//
//   pdb_bench [--functions N] [--keep DIR]
#include "engine/Pdb.h"
#include "engine/SymbolIndex.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using namespace kdcart::engine;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU time of this process: the figures hold on a machine busy with other work too.
double cpu_seconds() {
    return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

int run(const std::string& cmd) {
    std::printf("  $ %s\n", cmd.c_str());
    std::fflush(stdout);
    return std::system((cmd + " > /dev/null").c_str());
}

SymbolKind kind_of(PdbSymbol::Kind k) {
    switch (k) {
    case PdbSymbol::Kind::Function:
        return SymbolKind::Function;
    case PdbSymbol::Kind::Data:
        return SymbolKind::Data;
    case PdbSymbol::Kind::PublicFunction:
        return SymbolKind::PublicFunction;
    default:
        return SymbolKind::Public;
    }
}

} // namespace

int main(int argc, char** argv) {
    size_t n = 100000;
    std::string keep;
    CLI::App app{"PDB load and symbol look-ups on a generated PDB"};
    app.add_option("--functions", n, "functions (and globals) in the generated image")
        ->check(CLI::Range(1, 10000000));
    app.add_option("--keep", keep, "directory that keeps the generated image and PDB");
    CLI11_PARSE(app, argc, argv);
    const fs::path dir =
        keep.empty() ? fs::temp_directory_path() / "kdcart-pdb-bench" : fs::path(keep);
    fs::create_directories(dir);
    const fs::path pdb_path = dir / ("big" + std::to_string(n) + ".pdb");

    if (!fs::exists(pdb_path)) {
        std::printf("generating a PE image with %zu functions and %zu globals...\n", n, n);
        // Several translation units: clang-cl's time grows with the size of one.
        const size_t per_tu = 25000;
        std::string objs;
        auto t0 = Clock::now();
        for (size_t first = 0, tu = 0; first < n; first += per_tu, ++tu) {
            const fs::path c = dir / ("big" + std::to_string(tu) + ".c");
            std::ofstream src(c);
            src << "typedef unsigned long long u64;\n";
            for (size_t i = first; i < std::min(n, first + per_tu); ++i) {
                src << "u64 BenchData" << i << " = " << i << ";\n";
                src << "u64 BenchFunction" << i << "(u64 x) { return x * " << (i | 1)
                    << " + BenchData" << i << "; }\n";
            }
            src.close();
            const fs::path obj = dir / ("big" + std::to_string(tu) + ".obj");
            if (run(std::string(KDCART_CLANG_CL) +
                    " --target=x86_64-pc-windows-msvc /nologo /c /Z7 /Od /GS- /Zl " + c.string() +
                    " /Fo" + obj.string()) != 0) {
                std::fprintf(stderr, "clang-cl failed\n");
                return 1;
            }
            objs += " " + obj.string();
        }
        if (run(std::string(KDCART_LLD_LINK) +
                " /nologo /dll /noentry /nodefaultlib /debug /opt:noref /machine:x64 /pdb:" +
                pdb_path.string() + " /out:" + (dir / "big.dll").string() + objs) != 0) {
            std::fprintf(stderr, "lld-link failed\n");
            return 1;
        }
        std::printf("generated in %.1f s: %s (%.1f MB)\n\n", seconds_since(t0),
                    pdb_path.string().c_str(), static_cast<double>(fs::file_size(pdb_path)) / 1e6);
    }

    // The first use of a module: open, read every symbol, index.
    const int rounds = 3;
    double best = 1e9;
    SymbolIndex index;
    size_t symbols = 0;
    double best_cpu = 1e9;
    for (int r = 0; r < rounds; ++r) {
        auto t = Clock::now();
        const double c0 = cpu_seconds();
        auto pdb = PdbFile::open(pdb_path.string());
        if (!pdb) {
            std::fprintf(stderr, "%s\n", pdb.error().message.c_str());
            return 1;
        }
        auto syms = (*pdb)->read_symbols();
        if (!syms) {
            std::fprintf(stderr, "%s\n", syms.error().message.c_str());
            return 1;
        }
        const double read_s = seconds_since(t);
        std::vector<SymbolIndex::Input> in;
        in.reserve(syms->size());
        for (auto& s : *syms) {
            in.push_back({std::move(s.name), s.rva, s.size, s.type_index, kind_of(s.kind)});
        }
        symbols = in.size();
        index.build(std::move(in));
        const double total = seconds_since(t);
        const double cpu = cpu_seconds() - c0;
        std::printf("open + read %zu symbols: %.3f s, + index: %.3f s (CPU %.3f s)\n", symbols,
                    read_s, total, cpu);
        best = std::min(best, total);
        best_cpu = std::min(best_cpu, cpu);
    }
    std::printf("PDB load and index (best of %d): %.3f s wall, %.3f s CPU for %zu symbols "
                "(goal < 1 s for 100k)\n\n",
                rounds, best, best_cpu, symbols);

    // Address look-ups: random RVAs across the code.
    uint32_t lo = UINT32_MAX, hi = 0;
    index.for_each_by_address([&](const SymbolEntry& e) {
        lo = std::min(lo, e.rva);
        hi = std::max(hi, e.rva + e.size);
    });
    std::mt19937 rng(1);
    std::vector<uint32_t> probes(1 << 20);
    for (auto& p : probes) {
        p = lo + rng() % (hi - lo + 1);
    }
    const size_t lookups = 10'000'000;
    uint64_t sink = 0;
    double c = cpu_seconds();
    for (size_t i = 0; i < lookups; ++i) {
        if (const SymbolEntry* e = index.lookup(probes[i & (probes.size() - 1)])) {
            sink += e->rva;
        }
    }
    double s = cpu_seconds() - c;
    std::printf("address look-ups: %.2f M/s of CPU time (%zu in %.3f s; goal >= 1 M/s)\n",
                static_cast<double>(lookups) / s / 1e6, lookups, s);

    // Exact name look-ups (case-insensitive).
    std::vector<std::string> names;
    for (size_t i = 0; i < 4096; ++i) {
        names.push_back("benchfunction" + std::to_string(rng() % n));
    }
    const size_t finds = 2'000'000;
    c = cpu_seconds();
    for (size_t i = 0; i < finds; ++i) {
        sink += index.find(names[i & 4095]).size();
    }
    s = cpu_seconds() - c;
    std::printf("name look-ups: %.2f M/s of CPU time (%zu in %.3f s)\n",
                static_cast<double>(finds) / s / 1e6, finds, s);

    // x module!BenchFunction12* and x module!*Data99*
    for (const char* pattern : {"BenchFunction12*", "*Data99*"}) {
        size_t hits = 0;
        c = cpu_seconds();
        index.match(pattern, [&](const SymbolEntry&) { ++hits; });
        std::printf("wildcard %-18s %6zu matches in %.2f ms of CPU time\n", pattern, hits,
                    (cpu_seconds() - c) * 1e3);
    }
    return sink == 42 ? 2 : 0;
}
