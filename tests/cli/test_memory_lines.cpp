// The streaming memory formatter (cli/format/MemoryLines) against the whole-block format_memory:
// same text for every fixed-width kind, whatever the pieces and unreadable runs; golden lines for
// df, dD and dyb.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/format/Format.h"
#include "cli/format/MemoryLines.h"

#include <doctest/doctest.h>
#include <random>

using namespace kdcart;
using namespace kdcart::cli;

namespace {

std::string stream(LineKind kind, const engine::MemoryBlock& block, std::mt19937& rng,
                   const std::string& prefix = {}) {
    MemoryLineFormatter f(kind, block.address, prefix);
    std::string out = f.header();
    size_t i = 0;
    while (i < block.bytes.size()) {
        // A piece: a run of one readability, cut at a random length (as requests end).
        const bool readable = block.valid[i];
        size_t j = i;
        const size_t cut = i + 1 + rng() % 70;
        while (j < block.bytes.size() && j < cut && block.valid[j] == readable) {
            ++j;
        }
        engine::MemoryPiece p{block.address + i, j - i, readable, {}};
        if (readable) {
            p.bytes = std::span<const uint8_t>(block.bytes.data() + i, j - i);
        }
        f.feed(p, out);
        i = j;
    }
    f.finish(out);
    return out;
}

engine::MemoryBlock random_block(std::mt19937& rng, uint64_t address, size_t size) {
    engine::MemoryBlock b;
    b.address = address;
    b.bytes.resize(size);
    b.valid.resize(size);
    bool valid = true;
    for (size_t i = 0; i < size; ++i) {
        if (rng() % 23 == 0) {
            valid = !valid;
        }
        b.valid[i] = valid;
        b.bytes[i] = valid ? static_cast<uint8_t>(rng()) : 0;
    }
    return b;
}

engine::MemoryBlock bytes_block(uint64_t address, std::vector<uint8_t> bytes) {
    engine::MemoryBlock b;
    b.address = address;
    b.valid.assign(bytes.size(), true);
    b.bytes = std::move(bytes);
    return b;
}

} // namespace

TEST_CASE("streaming lines equal format_memory for db dw dd dc dq") {
    std::mt19937 rng(7);
    const std::pair<LineKind, DisplayKind> kinds[] = {
        {LineKind::Bytes, DisplayKind::Bytes},   {LineKind::Words, DisplayKind::Words},
        {LineKind::Dwords, DisplayKind::Dwords}, {LineKind::DwordsAscii, DisplayKind::DwordsAscii},
        {LineKind::Qwords, DisplayKind::Qwords},
    };
    for (int round = 0; round < 200; ++round) {
        for (const auto& [lk, dk] : kinds) {
            const size_t es = line_kind_element_size(lk);
            const size_t count = 1 + rng() % 300;
            const uint64_t address = 0xfffff80000600000ull + rng() % 64;
            const auto block = random_block(rng, address, count * es);
            CHECK(stream(lk, block, rng) == format_memory(dk, block));
        }
    }
}

TEST_CASE("names, sizes and default counts") {
    CHECK(line_kind_from_command("dD") == LineKind::Doubles);
    CHECK(line_kind_from_command("dd") == LineKind::Dwords);
    CHECK(line_kind_from_command("df") == LineKind::Floats);
    CHECK(line_kind_from_command("dyb") == LineKind::BinaryBytes);
    CHECK(line_kind_from_command("dp") == LineKind::Qwords);
    CHECK_FALSE(line_kind_from_command("da"));
    CHECK(line_kind_default_count(LineKind::Bytes) == 0x80);
    CHECK(line_kind_default_count(LineKind::Qwords) == 0x10);
    CHECK(line_kind_default_count(LineKind::Floats) == 16);
    CHECK(line_kind_default_count(LineKind::Doubles) == 15);
    CHECK(line_kind_default_count(LineKind::BinaryBytes) == 32);
}

TEST_CASE("df, dD and dyb lines") {
    std::mt19937 rng(1);
    // 1.5, -2, 0, 3.25 as floats
    auto f = bytes_block(0x1000, {0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0, 0, 0, 0, 0x00,
                                  0x00, 0x50, 0x40});
    CHECK(stream(LineKind::Floats, f, rng) ==
          "00000000`00001000              1.5              -2               0            3.25\n");
    // 1.5, 0.1 as doubles
    auto d = bytes_block(
        0x2000, {0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f});
    CHECK(stream(LineKind::Doubles, d, rng) ==
          "00000000`00002000  " + std::string(19, ' ') + "1.5 " + std::string(19, ' ') + "0.1\n");
    auto y = bytes_block(0x3000, {0x4d, 0x5a, 0x90, 0x00, 0x03});
    CHECK(stream(LineKind::BinaryBytes, y, rng) ==
          "                   76543210 76543210 76543210 76543210\n"
          "                   -------- -------- -------- --------\n"
          "00000000`00003000  01001101 01011010 10010000 00000000  4d 5a 90 00\n"
          "00000000`00003004  00000011                             03\n");
    auto bad = y;
    bad.valid[1] = false;
    CHECK(stream(LineKind::BinaryBytes, bad, rng).find("01001101 ???????? 10010000") !=
          std::string::npos);
}

TEST_CASE("physical lines carry the # mark") {
    std::mt19937 rng(3);
    auto b = bytes_block(0x100000, std::vector<uint8_t>(20, 0x41));
    const std::string out = stream(LineKind::Bytes, b, rng, "#");
    CHECK(out ==
          "#00000000`00100000  41 41 41 41 41 41 41 41-41 41 41 41 41 41 41 41  AAAAAAAAAAAAAAAA\n"
          "#00000000`00100010  41 41 41 41                                      AAAA\n");
}
