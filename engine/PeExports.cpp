#include "engine/PeExports.h"
#include "engine/ByteLoad.h"

#include <algorithm>
#include <cstring>

namespace kdcart::engine {

namespace {
constexpr uint32_t kMaxExportSweep = 1024 * 1024;
} // namespace

Result<std::vector<ExportSymbol>> read_pe_exports(uint64_t base, const ImageReader& read) {
    auto dos = read(0, 0x40);
    auto mz = load<uint16_t>(dos, 0);
    auto lfanew = load<uint32_t>(dos, 0x3C);
    if (!mz || *mz != 0x5A4D || !lfanew || *lfanew > 0x10000) {
        return make_error(Errc::Malformed, "no MZ header");
    }
    // PE signature + file header (20) + optional header up to the data directories.
    auto nt = read(*lfanew, 4 + 20 + 0x70 + 16);
    auto sig = load<uint32_t>(nt, 0);
    auto magic = load<uint16_t>(nt, 24);
    if (!sig || *sig != 0x00004550 || !magic || *magic != 0x20B) {
        return make_error(Errc::Malformed, "not a PE32+ image");
    }
    // Export directory = DataDirectory[0] at optional header offset 0x70.
    auto exp_rva = load<uint32_t>(nt, 24 + 0x70);
    auto exp_size = load<uint32_t>(nt, 24 + 0x74);
    if (!exp_rva || !exp_size || *exp_rva == 0) {
        return std::vector<ExportSymbol>{};
    }
    // The directory, its three arrays and the name strings lie together in [rva, rva+size)
    // as linkers lay them out: one sweep (into the reader's cache) instead of five requests.
    if (*exp_size <= kMaxExportSweep) {
        (void)read(*exp_rva, *exp_size);
    }
    auto dir = read(*exp_rva, 40);
    auto n_funcs = load<uint32_t>(dir, 20);
    auto n_names = load<uint32_t>(dir, 24);
    auto funcs_rva = load<uint32_t>(dir, 28);
    auto names_rva = load<uint32_t>(dir, 32);
    auto ords_rva = load<uint32_t>(dir, 36);
    if (!n_funcs || !n_names || !funcs_rva || !names_rva || !ords_rva || *n_funcs > kMaxExports ||
        *n_names > kMaxExports) {
        return make_error(Errc::Malformed, "bad export directory");
    }
    auto funcs = read(*funcs_rva, *n_funcs * 4);
    auto names = read(*names_rva, *n_names * 4);
    auto ords = read(*ords_rva, *n_names * 2);
    if (funcs.size() < *n_funcs * 4ull || names.size() < *n_names * 4ull ||
        ords.size() < *n_names * 2ull) {
        return make_error(Errc::Unreadable, "export tables not readable");
    }
    // Read the name strings in one sweep over their span.
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t i = 0; i < *n_names; ++i) {
        uint32_t r = *load<uint32_t>(names, i * 4);
        lo = std::min(lo, r);
        hi = std::max(hi, r);
    }
    std::vector<uint8_t> strings;
    if (*n_names > 0 && hi >= lo && hi - lo < 16 * 1024 * 1024) {
        // The last name ends within 256 bytes, and within the directory when it lies there.
        uint64_t stop = uint64_t{hi} + kMaxExportName;
        const uint64_t dir_end = uint64_t{*exp_rva} + *exp_size;
        if (lo >= *exp_rva && hi < dir_end) {
            stop = std::min(stop, dir_end);
        }
        strings = read(lo, static_cast<uint32_t>(stop - lo));
    }
    std::vector<ExportSymbol> out;
    out.reserve(*n_names);
    for (uint32_t i = 0; i < *n_names; ++i) {
        uint32_t name_rva = *load<uint32_t>(names, i * 4);
        uint16_t ord = *load<uint16_t>(ords, i * 2);
        if (ord >= *n_funcs || name_rva < lo) {
            continue;
        }
        uint32_t fn_rva = *load<uint32_t>(funcs, ord * 4u);
        if (fn_rva == 0 || (fn_rva >= *exp_rva && fn_rva < *exp_rva + *exp_size)) {
            continue; // forwarder
        }
        size_t off = name_rva - lo;
        if (off >= strings.size()) {
            continue;
        }
        size_t end = off;
        while (end < strings.size() && strings[end] != 0 && end - off < kMaxExportName) {
            ++end;
        }
        out.push_back({std::string(strings.begin() + static_cast<long>(off),
                                   strings.begin() + static_cast<long>(end)),
                       base + fn_rva});
    }
    std::sort(out.begin(), out.end(),
              [](const ExportSymbol& a, const ExportSymbol& b) { return a.address < b.address; });
    return out;
}

} // namespace kdcart::engine
