// Export-table parsing from (simulated) target memory: a well-formed image, forwarders, and
// hostile or truncated images that must give errors, never crashes.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/PeExports.h"

#include <cstring>
#include <doctest/doctest.h>
#include <random>

using namespace kdcart;
using namespace kdcart::engine;

namespace {

struct Image {
    std::vector<uint8_t> bytes = std::vector<uint8_t>(0x3000, 0);
    void put32(size_t off, uint32_t v) { std::memcpy(&bytes[off], &v, 4); }
    void put16(size_t off, uint16_t v) { std::memcpy(&bytes[off], &v, 2); }
    void str(size_t off, const char* s) { std::memcpy(&bytes[off], s, std::strlen(s) + 1); }
    ImageReader reader() const {
        return [this](uint32_t rva, uint32_t size) {
            if (rva >= bytes.size()) {
                return std::vector<uint8_t>{};
            }
            size_t n = std::min<size_t>(size, bytes.size() - rva);
            return std::vector<uint8_t>(bytes.begin() + rva, bytes.begin() + rva + n);
        };
    }
};

// A PE32+ image exporting three functions and one forwarder.
Image make_image() {
    Image im;
    im.put16(0, 0x5A4D);
    im.put32(0x3C, 0x80);
    im.put32(0x80, 0x00004550);
    im.put16(0x80 + 24, 0x20B);
    const size_t dd = 0x80 + 24 + 0x70;
    im.put32(dd, 0x1000);     // export directory RVA
    im.put32(dd + 4, 0x200);  // size
    im.put32(0x1000 + 20, 4); // NumberOfFunctions
    im.put32(0x1000 + 24, 4); // NumberOfNames
    im.put32(0x1000 + 28, 0x1040);
    im.put32(0x1000 + 32, 0x1060);
    im.put32(0x1000 + 36, 0x1080);
    im.put32(0x1040, 0x2000);
    im.put32(0x1044, 0x2010);
    im.put32(0x1048, 0x2100);
    im.put32(0x104C, 0x1100); // inside the export directory: a forwarder
    im.put32(0x1060, 0x10A0);
    im.put32(0x1064, 0x10B0);
    im.put32(0x1068, 0x10C0);
    im.put32(0x106C, 0x10E0);
    im.put16(0x1080, 0);
    im.put16(0x1082, 1);
    im.put16(0x1084, 2);
    im.put16(0x1086, 3);
    im.str(0x10A0, "KeBugCheckEx");
    im.str(0x10B0, "DbgPrint");
    im.str(0x10C0, "KdDebuggerDataBlock");
    im.str(0x10E0, "Forwarded");
    return im;
}

} // namespace

TEST_CASE("exports of a well-formed image, sorted by address, forwarders skipped") {
    auto im = make_image();
    auto ex = read_pe_exports(0xfffff80000600000, im.reader());
    REQUIRE(ex);
    REQUIRE(ex->size() == 3);
    CHECK((*ex)[0].name == "KeBugCheckEx");
    CHECK((*ex)[0].address == 0xfffff80000602000);
    CHECK((*ex)[1].name == "DbgPrint");
    CHECK((*ex)[2].name == "KdDebuggerDataBlock");
    CHECK((*ex)[2].address == 0xfffff80000602100);
}

TEST_CASE("not an image: clear errors") {
    Image empty;
    auto r = read_pe_exports(0, empty.reader());
    REQUIRE(!r);
    CHECK(r.error().code == Errc::Malformed);

    auto im = make_image();
    im.put16(0x80 + 24, 0x10B); // PE32, not PE32+
    auto r2 = read_pe_exports(0, im.reader());
    REQUIRE(!r2);
}

TEST_CASE("hostile counts and truncated tables are refused") {
    auto im = make_image();
    im.put32(0x1000 + 20, 0xFFFFFFFF);
    CHECK(!read_pe_exports(0, im.reader()));

    auto im2 = make_image();
    im2.put32(0x1000 + 28, 0x2FFE); // function table runs off the end
    CHECK(!read_pe_exports(0, im2.reader()));

    auto im3 = make_image();
    im3.put16(0x1082, 77); // ordinal past NumberOfFunctions: that name is dropped
    auto r = read_pe_exports(0, im3.reader());
    REQUIRE(r);
    CHECK(r->size() == 2);
}

TEST_CASE("random corruption of a valid image never crashes") {
    std::mt19937 rng(42);
    int ok = 0;
    for (int i = 0; i < 3000; ++i) {
        auto im = make_image();
        for (int k = 0; k < 6; ++k) {
            size_t off = rng() % 0x1100;
            im.bytes[off] = static_cast<uint8_t>(rng());
        }
        auto r = read_pe_exports(0x1000, im.reader());
        if (r) {
            ++ok;
            for (const auto& s : *r) {
                CHECK(s.name.size() <= 256);
            }
        }
    }
    CHECK(ok > 0);
}
