// Table-driven KDCOM framing tests: garbage, split reads, bad checksums, over-long counts,
// maximum-size packets, break-in bytes.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/KdcomCodec.h"

#include <doctest/doctest.h>
#include <random>

using namespace kdcart::transport;

namespace {
KdPacket data_packet(uint16_t type, uint32_t id, size_t n, uint8_t seed = 1) {
    KdPacket p;
    p.type = type;
    p.id = id;
    for (size_t i = 0; i < n; ++i) {
        p.payload.push_back(static_cast<uint8_t>(seed + i * 7));
    }
    return p;
}

std::vector<LinkEvent> decode_all(const std::vector<uint8_t>& bytes, size_t chunk = SIZE_MAX) {
    KdcomDecoder d;
    std::vector<LinkEvent> out;
    for (size_t off = 0; off < bytes.size(); off += chunk) {
        size_t n = std::min(chunk, bytes.size() - off);
        d.feed(std::span<const uint8_t>(bytes.data() + off, n), out);
    }
    return out;
}
} // namespace

TEST_CASE("encode: data packet has header, checksum, payload and 0xAA trailer") {
    auto p = data_packet(2, 0x80800000, 56);
    auto bytes = kdcom_encode(p);
    REQUIRE(bytes.size() == 16 + 56 + 1);
    CHECK(bytes[0] == 0x30);
    CHECK(bytes[3] == 0x30);
    CHECK(bytes[4] == 2);
    CHECK(bytes[6] == 56);
    CHECK(bytes[11] == 0x80);
    uint32_t sum = kd_checksum(p.payload.data(), p.payload.size());
    CHECK(bytes[12] == (sum & 0xFF));
    CHECK(bytes[13] == ((sum >> 8) & 0xFF));
    CHECK(bytes.back() == 0xAA);
}

TEST_CASE("encode: control packets are the header alone") {
    KdPacket ack;
    ack.type = 4;
    ack.id = 0x80800001;
    auto bytes = kdcom_encode(ack);
    const std::vector<uint8_t> expected = {0x69, 0x69, 0x69, 0x69, 4, 0, 0, 0,
                                           0x01, 0x00, 0x80, 0x80, 0, 0, 0, 0};
    CHECK(bytes == expected);
}

TEST_CASE("decode: every split of a packet gives the same result") {
    auto p = data_packet(7, 0x80800800, 0xF0);
    auto bytes = kdcom_encode(p);
    for (size_t chunk : {1ul, 2ul, 3ul, 5ul, 16ul, 17ul, 100ul, 4096ul}) {
        CAPTURE(chunk);
        auto ev = decode_all(bytes, chunk);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].kind == LinkEventKind::Packet);
        CHECK(ev[0].packet.type == 7);
        CHECK(ev[0].packet.id == 0x80800800);
        CHECK(ev[0].packet.payload == p.payload);
    }
}

TEST_CASE("decode: garbage before, between and inside leaders is skipped") {
    struct Case {
        const char* name;
        std::vector<uint8_t> prefix;
    };
    const Case cases[] = {
        {"random noise", {0x00, 0xFF, 0x13, 0x37, 0xAA}},
        {"three leader bytes then noise", {0x30, 0x30, 0x30, 0x00}},
        {"mixed leaders", {0x30, 0x30, 0x69, 0x69, 0x69, 0x30}},
        {"trailer bytes", {0xAA, 0xAA}},
    };
    auto p = data_packet(2, 0x80800001, 40);
    auto good = kdcom_encode(p);
    for (const auto& c : cases) {
        CAPTURE(c.name);
        std::vector<uint8_t> bytes = c.prefix;
        bytes.insert(bytes.end(), good.begin(), good.end());
        KdcomDecoder d;
        std::vector<LinkEvent> ev;
        d.feed(bytes, ev);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].kind == LinkEventKind::Packet);
        CHECK(ev[0].packet.payload == p.payload);
        CHECK(d.garbage_bytes() >= 1);
    }
}

TEST_CASE("decode: damaged packets are reported, and the next good one still decodes") {
    auto p = data_packet(2, 0x80800000, 64);
    auto good = kdcom_encode(p);

    SUBCASE("bad checksum") {
        auto bad = good;
        bad[16 + 10] ^= 0x01;
        bad.insert(bad.end(), good.begin(), good.end());
        auto ev = decode_all(bad);
        REQUIRE(ev.size() == 2);
        CHECK(ev[0].kind == LinkEventKind::BadPacket);
        CHECK(ev[0].detail == "bad checksum");
        CHECK(ev[1].kind == LinkEventKind::Packet);
    }
    SUBCASE("missing trailer") {
        auto bad = good;
        bad[bad.size() - 1] = 0x00;
        bad.insert(bad.end(), good.begin(), good.end());
        auto ev = decode_all(bad);
        REQUIRE(ev.size() == 2);
        CHECK(ev[0].kind == LinkEventKind::BadPacket);
        CHECK(ev[0].detail == "missing 0xAA trailer");
        CHECK(ev[1].kind == LinkEventKind::Packet);
    }
    SUBCASE("over-long ByteCount") {
        auto bad = good;
        bad[6] = 0xA1; // 0x0FA1 = 4001
        bad[7] = 0x0F;
        bad.resize(16);
        bad.insert(bad.end(), good.begin(), good.end());
        auto ev = decode_all(bad);
        REQUIRE(ev.size() == 2);
        CHECK(ev[0].kind == LinkEventKind::BadPacket);
        CHECK(ev[1].kind == LinkEventKind::Packet);
        CHECK(ev[1].packet.payload == p.payload);
    }
}

TEST_CASE("decode: maximum-size packet (4000 bytes) is accepted") {
    auto p = data_packet(2, 0x80800001, 4000);
    auto ev = decode_all(kdcom_encode(p), 333);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == LinkEventKind::Packet);
    CHECK(ev[0].packet.payload.size() == 4000);
}

TEST_CASE("decode: a bare 0x62 while hunting is a break-in") {
    std::vector<uint8_t> bytes = {0x62};
    auto ev = decode_all(bytes);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == LinkEventKind::BreakIn);
}

TEST_CASE("decode: a long random stream never crashes and finds every embedded packet") {
    std::mt19937 rng(1234);
    std::vector<uint8_t> stream;
    int embedded = 0;
    for (int i = 0; i < 200; ++i) {
        size_t noise = rng() % 50;
        for (size_t j = 0; j < noise; ++j) {
            uint8_t b = static_cast<uint8_t>(rng());
            if (b == 0x30 || b == 0x69 || b == 0x62) {
                b = 0x00;
            }
            stream.push_back(b);
        }
        auto p = data_packet(static_cast<uint16_t>(2 + rng() % 2), 0x80800000 + (i & 1),
                             rng() % 300, static_cast<uint8_t>(i));
        auto e = kdcom_encode(p);
        stream.insert(stream.end(), e.begin(), e.end());
        ++embedded;
    }
    auto ev = decode_all(stream, 7);
    int good = 0;
    for (auto& e : ev) {
        good += e.kind == LinkEventKind::Packet;
    }
    CHECK(good == embedded);
}
