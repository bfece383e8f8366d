// One address's export name (find_pe_export, what the first stop line reads on a serial cable)
// against the whole export table (read_pe_exports + SymbolIndex, what every other command uses):
// the same name and address for every RVA of random images with aliases, forwarders, null
// entries and unnamed ordinals; fewer bytes read on a large table; errors on broken tables.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/PeExportLookup.h"
#include "engine/SymbolIndex.h"

#include <cstring>
#include <doctest/doctest.h>
#include <random>

using namespace kdcart;
using namespace kdcart::engine;

namespace {

constexpr uint64_t kBase = 0xfffff80000600000ull;

struct Image {
    std::vector<uint8_t> bytes;
    mutable uint64_t bytes_read = 0;
    mutable int reads = 0;
    void put32(size_t off, uint32_t v) { std::memcpy(&bytes[off], &v, 4); }
    void put16(size_t off, uint16_t v) { std::memcpy(&bytes[off], &v, 2); }
    ImageReader reader() const {
        return [this](uint32_t rva, uint32_t size) {
            ++reads;
            if (rva >= bytes.size()) {
                return std::vector<uint8_t>{};
            }
            const size_t n = std::min<size_t>(size, bytes.size() - rva);
            bytes_read += n;
            return std::vector<uint8_t>(bytes.begin() + rva, bytes.begin() + rva + n);
        };
    }
};

struct Layout {
    uint32_t dir = 0, dir_size = 0;
};

// A PE32+ image with `n_funcs` address table entries and `n_names` names laid out as linkers
// do (directory, address table, name pointers, ordinals, strings) after the code (RVAs from
// 0x1000).
Image make_image(std::mt19937& rng, uint32_t n_funcs, uint32_t n_names, Layout& lay) {
    Image im;
    const uint32_t code_end = 0x1000 + n_funcs * 8;
    const uint32_t dir = (code_end + 0xFF) & ~0xFFu;
    const uint32_t eat = dir + 40;
    const uint32_t npt = eat + n_funcs * 4;
    const uint32_t ot = npt + n_names * 4;
    const uint32_t strings = ot + n_names * 2;
    im.bytes.assign(strings + n_names * 24 + 0x100, 0);
    im.put16(0, 0x5A4D);
    im.put32(0x3C, 0x80);
    im.put32(0x80, 0x00004550);
    im.put16(0x80 + 24, 0x20B);
    im.put32(dir + 20, n_funcs);
    im.put32(dir + 24, n_names);
    im.put32(dir + 28, eat);
    im.put32(dir + 32, npt);
    im.put32(dir + 36, ot);
    std::uniform_int_distribution<uint32_t> code(0x1000, code_end - 1);
    for (uint32_t f = 0; f < n_funcs; ++f) {
        const uint32_t pick = rng() % 10;
        uint32_t rva = code(rng);
        if (pick == 0) {
            rva = 0; // a hole in the ordinals
        } else if (pick == 1) {
            rva = dir + 8; // a forwarder: inside the directory
        } else if (pick == 2 && f > 0) {
            std::memcpy(&rva, &im.bytes[eat + (f - 1) * 4], 4); // an alias of the previous one
        }
        im.put32(eat + f * 4, rva);
    }
    uint32_t s = strings;
    for (uint32_t i = 0; i < n_names; ++i) {
        const std::string name = "Fn" + std::to_string(rng() % 100000) + "_" + std::to_string(i);
        std::memcpy(&im.bytes[s], name.c_str(), name.size() + 1);
        im.put32(npt + i * 4, s);
        im.put16(ot + i * 2, static_cast<uint16_t>(rng() % n_funcs));
        s += static_cast<uint32_t>(name.size()) + 1;
    }
    lay.dir = dir;
    lay.dir_size = s - dir;
    const size_t dd = 0x80 + 24 + 0x70;
    im.put32(dd, lay.dir);
    im.put32(dd + 4, lay.dir_size);
    return im;
}

SymbolIndex whole_index(const Image& im) {
    auto ex = read_pe_exports(kBase, im.reader());
    REQUIRE(ex);
    std::vector<SymbolIndex::Input> in;
    for (auto& e : *ex) {
        in.push_back({e.name, static_cast<uint32_t>(e.address - kBase), 0, 0, SymbolKind::Export});
    }
    return SymbolIndex(std::move(in));
}

} // namespace

TEST_CASE("find_pe_export names every address as the whole export table does") {
    std::mt19937 rng(11);
    for (int round = 0; round < 20; ++round) {
        const uint32_t n_funcs = 1 + rng() % 300;
        const uint32_t n_names = 1 + rng() % 300;
        Layout lay;
        Image im = make_image(rng, n_funcs, n_names, lay);
        const SymbolIndex index = whole_index(im);
        for (uint32_t rva = 0xF00; rva < 0x1000 + n_funcs * 8 + 16; rva += 1 + rng() % 5) {
            auto hit = find_pe_export(kBase, {lay.dir, lay.dir_size}, rva, im.reader());
            REQUIRE(hit);
            const SymbolEntry* e = index.lookup(rva);
            CHECK(hit->has_value() == (e != nullptr));
            if (e && *hit) {
                CHECK((*hit)->name == index.name(*e));
                CHECK((*hit)->address == kBase + e->rva);
            }
        }
    }
}

TEST_CASE("find_pe_export reads the tables, not the name strings, of a large table") {
    std::mt19937 rng(5);
    Layout lay;
    Image im = make_image(rng, 3000, 3000, lay);
    (void)read_pe_exports(kBase, im.reader());
    const uint64_t whole = im.bytes_read;
    im.bytes_read = 0;
    im.reads = 0;
    auto hit = find_pe_export(kBase, {lay.dir, lay.dir_size}, 0x1000 + 3000 * 4, im.reader());
    REQUIRE(hit);
    CHECK(hit->has_value());
    // Directory, address table, ordinal table, one name pointer, one name (plus aliases).
    CHECK(im.bytes_read < 3000 * 6 + 40 + 4 * 64 + 64);
    CHECK(im.bytes_read < whole / 2);
    MESSAGE("whole table " << whole << " bytes, one address " << im.bytes_read << " bytes in "
                           << im.reads << " reads");
}

TEST_CASE("find_pe_export: no directory, a broken one, unreadable tables") {
    std::mt19937 rng(7);
    Layout lay;
    Image im = make_image(rng, 50, 40, lay);
    auto none = find_pe_export(kBase, {0, 0}, 0x1100, im.reader());
    REQUIRE(none);
    CHECK(!none->has_value());
    // Below every export.
    auto below = find_pe_export(kBase, {lay.dir, lay.dir_size}, 0x10, im.reader());
    REQUIRE(below);
    CHECK(!below->has_value());
    // Absurd counts.
    Image bad = im;
    bad.put32(lay.dir + 20, 0x7FFFFFFF);
    CHECK(!find_pe_export(kBase, {lay.dir, lay.dir_size}, 0x1100, bad.reader()));
    // The ordinal table past the end of the image.
    Image cut = im;
    cut.put32(lay.dir + 36, static_cast<uint32_t>(cut.bytes.size() - 10));
    CHECK(!find_pe_export(kBase, {lay.dir, lay.dir_size}, 0x1100, cut.reader()));
    // A directory past the image.
    CHECK(!find_pe_export(kBase, {0x7FFFFFF0, 40}, 0x1100, im.reader()));
}
