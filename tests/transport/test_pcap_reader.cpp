// Capture reading: the real KDNET captures (pcapng.gz and classic pcap), synthetic files in
// every supported byte order, block type and link type, gzip variants, and hostile input
// (truncations, lying lengths, random mutations) that must end in errors, not crashes.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/PcapReader.h"

#include <cstring>
#include <doctest/doctest.h>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace kdcart;
using namespace kdcart::transport;

namespace {

const std::string kVectors = std::string(KDCART_TEST_DATA_DIR) + "/kdnet/";

using Bytes = std::vector<uint8_t>;

// ---- little builders ----
struct Writer {
    Bytes b;
    bool big = false;
    void u8(uint8_t v) { b.push_back(v); }
    void u16(uint16_t v) {
        if (big) {
            b.push_back(static_cast<uint8_t>(v >> 8));
            b.push_back(static_cast<uint8_t>(v));
        } else {
            b.push_back(static_cast<uint8_t>(v));
            b.push_back(static_cast<uint8_t>(v >> 8));
        }
    }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            const int shift = big ? 24 - 8 * i : 8 * i;
            b.push_back(static_cast<uint8_t>(v >> shift));
        }
    }
    void bytes(const Bytes& v) { b.insert(b.end(), v.begin(), v.end()); }
    void pad4() {
        while (b.size() % 4 != 0) {
            b.push_back(0);
        }
    }
};

void be16_into(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
    Bytes u;
    be16_into(u, sport);
    be16_into(u, dport);
    be16_into(u, static_cast<uint16_t>(8 + payload.size()));
    be16_into(u, 0);
    u.insert(u.end(), payload.begin(), payload.end());
    return u;
}

Bytes ipv4(std::array<uint8_t, 4> src, std::array<uint8_t, 4> dst, const Bytes& l4,
           uint16_t frag = 0, uint8_t proto = 17) {
    Bytes ip = {0x45, 0};
    be16_into(ip, static_cast<uint16_t>(20 + l4.size()));
    be16_into(ip, 0x1234);
    be16_into(ip, frag);
    ip.push_back(64);
    ip.push_back(proto);
    be16_into(ip, 0);
    ip.insert(ip.end(), src.begin(), src.end());
    ip.insert(ip.end(), dst.begin(), dst.end());
    ip.insert(ip.end(), l4.begin(), l4.end());
    return ip;
}

Bytes ipv6(const Bytes& l4, uint8_t next = 17, const Bytes& ext = {}) {
    Bytes ip = {0x60, 0, 0, 0};
    be16_into(ip, static_cast<uint16_t>(ext.size() + l4.size()));
    ip.push_back(next);
    ip.push_back(64);
    for (int i = 0; i < 16; ++i) {
        ip.push_back(i == 15 ? 1 : 0); // ::1
    }
    for (int i = 0; i < 16; ++i) {
        ip.push_back(i == 0 ? 0xFE : (i == 1 ? 0x80 : (i == 15 ? 2 : 0))); // fe80::2
    }
    ip.insert(ip.end(), ext.begin(), ext.end());
    ip.insert(ip.end(), l4.begin(), l4.end());
    return ip;
}

Bytes ethernet(uint16_t type, const Bytes& l3, std::vector<uint16_t> vlans = {}) {
    Bytes f(12, 0xAB);
    for (uint16_t tpid : vlans) {
        be16_into(f, tpid);
        be16_into(f, 0x0005);
    }
    be16_into(f, type);
    f.insert(f.end(), l3.begin(), l3.end());
    return f;
}

Bytes classic_pcap(const std::vector<Bytes>& frames, uint32_t link, bool big, bool nano) {
    Writer w;
    w.big = big;
    w.u32(nano ? 0xA1B23C4D : 0xA1B2C3D4);
    w.u16(2);
    w.u16(4);
    w.u32(0);
    w.u32(0);
    w.u32(65535);
    w.u32(link);
    uint32_t t = 1000;
    for (const auto& f : frames) {
        w.u32(t++);
        w.u32(nano ? 5 : 7);
        w.u32(static_cast<uint32_t>(f.size()));
        w.u32(static_cast<uint32_t>(f.size()));
        w.bytes(f);
    }
    return w.b;
}

struct Ng {
    Writer w;
    explicit Ng(bool big) { w.big = big; }
    void block(uint32_t type, const Bytes& body) {
        Writer tmp;
        tmp.big = w.big;
        tmp.bytes(body);
        tmp.pad4();
        const uint32_t len = static_cast<uint32_t>(12 + tmp.b.size());
        w.u32(type);
        w.u32(len);
        w.bytes(tmp.b);
        w.u32(len);
    }
    Writer body() const {
        Writer b;
        b.big = w.big;
        return b;
    }
    void shb() {
        Writer b = body();
        b.u32(0x1A2B3C4D);
        b.u16(1);
        b.u16(0);
        b.u32(0xFFFFFFFF);
        b.u32(0xFFFFFFFF);
        block(0x0A0D0D0A, b.b);
    }
    void idb(uint16_t link, int tsresol = -1) {
        Writer b = body();
        b.u16(link);
        b.u16(0);
        b.u32(0);
        if (tsresol >= 0) {
            b.u16(9);
            b.u16(1);
            b.u8(static_cast<uint8_t>(tsresol));
            b.pad4();
        }
        b.u16(0);
        b.u16(0);
        block(1, b.b);
    }
    void epb(uint32_t ifc, uint64_t ts, const Bytes& frame) {
        Writer b = body();
        b.u32(ifc);
        b.u32(static_cast<uint32_t>(ts >> 32));
        b.u32(static_cast<uint32_t>(ts));
        b.u32(static_cast<uint32_t>(frame.size()));
        b.u32(static_cast<uint32_t>(frame.size()));
        b.bytes(frame);
        block(6, b.b);
    }
    void spb(const Bytes& frame) {
        Writer b = body();
        b.u32(static_cast<uint32_t>(frame.size()));
        b.bytes(frame);
        block(3, b.b);
    }
};

uint32_t crc32(const Bytes& data) {
    uint32_t c = 0xFFFFFFFF;
    for (uint8_t byte : data) {
        c ^= byte;
        for (int k = 0; k < 8; ++k) {
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        }
    }
    return ~c;
}

// A gzip member holding `data` in stored (uncompressed) deflate blocks.
Bytes gzip_stored(const Bytes& data) {
    Bytes g = {0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF};
    size_t off = 0;
    do {
        const size_t n = std::min<size_t>(65535, data.size() - off);
        const bool last = off + n == data.size();
        g.push_back(last ? 1 : 0);
        g.push_back(static_cast<uint8_t>(n));
        g.push_back(static_cast<uint8_t>(n >> 8));
        g.push_back(static_cast<uint8_t>(~n));
        g.push_back(static_cast<uint8_t>(~n >> 8));
        g.insert(g.end(), data.begin() + static_cast<long>(off),
                 data.begin() + static_cast<long>(off + n));
        off += n;
    } while (off < data.size());
    const uint32_t crc = crc32(data);
    for (int i = 0; i < 4; ++i) {
        g.push_back(static_cast<uint8_t>(crc >> (8 * i)));
    }
    const uint32_t size = static_cast<uint32_t>(data.size());
    for (int i = 0; i < 4; ++i) {
        g.push_back(static_cast<uint8_t>(size >> (8 * i)));
    }
    return g;
}

struct Seen {
    uint64_t number;
    uint64_t ts;
    uint32_t link;
    Bytes data;
};

Result<std::vector<Seen>> read_all(Bytes bytes) {
    auto r = PcapReader::from_bytes(std::move(bytes));
    if (!r) {
        return tl::unexpected(r.error());
    }
    std::vector<Seen> out;
    for (;;) {
        auto f = r->next();
        if (!f) {
            return tl::unexpected(f.error());
        }
        if (!*f) {
            return out;
        }
        out.push_back(Seen{(*f)->number, (*f)->timestamp_ns, (*f)->link_type,
                           Bytes((*f)->data.begin(), (*f)->data.end())});
    }
}

const Bytes kPayload = {'M', 'D', 'B', 'G', 4, 0, 1, 2, 3};

} // namespace

// ---------------------------------------------------------------- real captures

// The vectors README says 956 frames; the file holds 955 enhanced packet blocks, all MDBG
// (tooling.md agrees: 955 datagrams).
TEST_CASE("windbg-uncut.pcapng.gz: 955 frames, all KDNET datagrams on port 51111") {
    auto r = PcapReader::open(kVectors + "windbg-uncut.pcapng.gz");
    REQUIRE(r);
    CHECK(r->is_pcapng());
    uint64_t frames = 0;
    uint64_t mdbg = 0;
    uint64_t to_host = 0;
    uint64_t last_ts = 0;
    for (;;) {
        auto f = r->next();
        REQUIRE(f);
        if (!*f) {
            break;
        }
        ++frames;
        CHECK((*f)->number == frames);
        CHECK((*f)->link_type == kLinktypeEthernet);
        CHECK((*f)->timestamp_ns >= last_ts);
        last_ts = (*f)->timestamp_ns;
        auto u = extract_udp((*f)->link_type, (*f)->data);
        if (!u || u->payload.size() < 4 || std::memcmp(u->payload.data(), "MDBG", 4) != 0) {
            continue;
        }
        ++mdbg;
        CHECK(u->source.port == 51111);
        CHECK(u->destination.port == 51111);
        if (u->destination.to_string() == "192.168.2.1:51111") {
            CHECK(u->source.to_string() == "192.168.2.72:51111");
            ++to_host;
        } else {
            CHECK(u->destination.to_string() == "192.168.2.72:51111");
            CHECK(u->source.to_string() == "192.168.2.1:51111");
        }
    }
    CHECK(frames == 955);
    CHECK(mdbg == 955);
    CHECK(to_host > 0);
    CHECK(last_ts > 1400000000ull * 1000000000ull); // a plausible wall-clock stamp
}

TEST_CASE("aeroctf2021-kek.pcap: classic pcap, 704 datagrams, 10 control OFFERs") {
    auto r = PcapReader::open(kVectors + "aeroctf2021-kek.pcap");
    REQUIRE(r);
    CHECK_FALSE(r->is_pcapng());
    uint64_t frames = 0;
    uint64_t mdbg = 0;
    uint64_t control = 0;
    for (;;) {
        auto f = r->next();
        REQUIRE(f);
        if (!*f) {
            break;
        }
        ++frames;
        auto u = extract_udp((*f)->link_type, (*f)->data);
        REQUIRE(u);
        CHECK(u->source.port == 50000);
        CHECK(u->destination.port == 50000);
        if (u->payload.size() >= 6 && std::memcmp(u->payload.data(), "MDBG", 4) == 0) {
            ++mdbg;
            CHECK(u->payload[4] == 5);
            if (u->payload[5] == 1) {
                ++control;
                CHECK(u->payload.size() == 374);
                CHECK(u->source.to_string() == "192.168.1.105:50000");
                CHECK(u->destination.to_string() == "192.168.1.101:50000");
            }
        }
    }
    CHECK(frames == 704);
    CHECK(mdbg == 704);
    CHECK(control == 10);
}

TEST_CASE("missing and non-capture files are errors") {
    CHECK_FALSE(PcapReader::open(kVectors + "no-such-file.pcap"));
    CHECK_FALSE(PcapReader::open(kVectors + "README.md"));
    CHECK_FALSE(PcapReader::from_bytes({}));
    CHECK_FALSE(PcapReader::from_bytes({0xD4, 0xC3, 0xB2}));
    CHECK_FALSE(PcapReader::from_bytes({0xD4, 0xC3, 0xB2, 0xA1, 2, 0})); // header cut short
}

// ---------------------------------------------------------------- synthetic files

TEST_CASE("classic pcap: both byte orders, micro- and nanoseconds") {
    const Bytes frame = ethernet(0x0800, ipv4({10, 0, 0, 1}, {10, 0, 0, 2}, udp(5, 6, kPayload)));
    for (bool big : {false, true}) {
        for (bool nano : {false, true}) {
            CAPTURE(big);
            CAPTURE(nano);
            auto all = read_all(classic_pcap({frame, frame}, kLinktypeEthernet, big, nano));
            REQUIRE(all);
            REQUIRE(all->size() == 2);
            CHECK((*all)[0].number == 1);
            CHECK((*all)[1].number == 2);
            CHECK((*all)[0].ts == 1000ull * 1000000000ull + (nano ? 5 : 7000));
            CHECK((*all)[1].ts == 1001ull * 1000000000ull + (nano ? 5 : 7000));
            CHECK((*all)[0].data == frame);
            auto u = extract_udp((*all)[0].link, (*all)[0].data);
            REQUIRE(u);
            CHECK(u->source.to_string() == "10.0.0.1:5");
            CHECK(u->destination.to_string() == "10.0.0.2:6");
            CHECK(Bytes(u->payload.begin(), u->payload.end()) == kPayload);
        }
    }
}

TEST_CASE("pcapng: byte orders, EPB/SPB, tsresol, unknown blocks, several sections") {
    const Bytes eth = ethernet(0x0800, ipv4({1, 2, 3, 4}, {5, 6, 7, 8}, udp(100, 200, kPayload)));
    const Bytes raw = ipv4({9, 9, 9, 9}, {8, 8, 8, 8}, udp(1, 2, kPayload));
    for (bool big : {false, true}) {
        CAPTURE(big);
        Ng ng(big);
        ng.shb();
        ng.idb(kLinktypeEthernet);       // microseconds by default
        ng.idb(kLinktypeRaw, 9);         // nanoseconds
        ng.block(0x00000BAD, {1, 2, 3}); // unknown: skipped
        ng.epb(0, 1234567, eth);
        ng.epb(1, 42, raw);
        ng.spb(eth);
        ng.block(5, Bytes(16, 0)); // interface statistics: skipped
        // A second section with its own interfaces, in the other byte order.
        Ng second(!big);
        second.shb();
        second.idb(kLinktypeIpv4, 0x80 | 10); // 2^-10 s
        second.epb(0, 2048, raw);
        Bytes file = ng.w.b;
        file.insert(file.end(), second.w.b.begin(), second.w.b.end());

        auto all = read_all(file);
        REQUIRE(all);
        REQUIRE(all->size() == 4);
        CHECK((*all)[0].link == kLinktypeEthernet);
        CHECK((*all)[0].ts == 1234567000ull);
        CHECK((*all)[1].link == kLinktypeRaw);
        CHECK((*all)[1].ts == 42);
        CHECK((*all)[2].link == kLinktypeEthernet);
        CHECK((*all)[2].data == eth);
        CHECK((*all)[3].link == kLinktypeIpv4);
        CHECK((*all)[3].ts == 2000000000ull);
        for (size_t i = 0; i < all->size(); ++i) {
            CHECK((*all)[i].number == i + 1);
            auto u = extract_udp((*all)[i].link, (*all)[i].data);
            REQUIRE(u);
            CHECK(Bytes(u->payload.begin(), u->payload.end()) == kPayload);
        }
    }
}

TEST_CASE("link layers: VLAN tags, SLL, SLL2, NULL, raw IPv6 with extension headers") {
    const Bytes l4 = udp(51111, 51112, kPayload);
    const Bytes v4 = ipv4({192, 168, 2, 72}, {192, 168, 2, 1}, l4);
    struct Case {
        const char* name;
        uint32_t link;
        Bytes frame;
    };
    Bytes sll(14, 0);
    sll[0] = 0;
    sll.push_back(0x08);
    sll.push_back(0x00);
    sll.insert(sll.end(), v4.begin(), v4.end());
    Bytes sll2 = {0x08, 0x00};
    sll2.resize(20, 0);
    sll2.insert(sll2.end(), v4.begin(), v4.end());
    Bytes null_le = {2, 0, 0, 0};
    null_le.insert(null_le.end(), v4.begin(), v4.end());
    Bytes loop_v6 = {0, 0, 0, 30};
    const Bytes v6 = ipv6(l4);
    loop_v6.insert(loop_v6.end(), v6.begin(), v6.end());
    // hop-by-hop (8 bytes) then an atomic fragment header (offset 0, M = 0) before UDP
    const Bytes ext = {44, 0, 1, 4, 0, 0, 0, 0, /* fragment: */ 17, 0, 0, 0, 0, 0, 0, 1};
    const Bytes v6_ext = ipv6(l4, 0, ext);

    const Case cases[] = {
        {"ethernet", kLinktypeEthernet, ethernet(0x0800, v4)},
        {"802.1Q", kLinktypeEthernet, ethernet(0x0800, v4, {0x8100})},
        {"QinQ", kLinktypeEthernet, ethernet(0x0800, v4, {0x88A8, 0x8100})},
        {"ethernet ipv6", kLinktypeEthernet, ethernet(0x86DD, v6)},
        {"sll", kLinktypeLinuxSll, sll},
        {"sll2", kLinktypeLinuxSll2, sll2},
        {"null", kLinktypeNull, null_le},
        {"loop ipv6", kLinktypeLoop, loop_v6},
        {"raw ipv4", kLinktypeRaw, v4},
        {"raw ipv6", kLinktypeRaw, v6},
        {"ipv4", kLinktypeIpv4, v4},
        {"ipv6 ext", kLinktypeIpv6, v6_ext},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto u = extract_udp(c.link, c.frame);
        REQUIRE(u);
        CHECK(Bytes(u->payload.begin(), u->payload.end()) == kPayload);
        CHECK(u->source.port == 51111);
        CHECK(u->destination.port == 51112);
        if (u->source.v6) {
            CHECK(u->source.to_string() == "[::1]:51111");
            CHECK(u->destination.to_string() == "[fe80::2]:51112");
        } else {
            CHECK(u->source.to_string() == "192.168.2.72:51111");
        }
    }
}

TEST_CASE("extract_udp: Ethernet padding is trimmed; fragments, TCP and truncation are not UDP") {
    const Bytes v4 = ipv4({1, 1, 1, 1}, {2, 2, 2, 2}, udp(7, 8, {0x55}));
    Bytes padded = ethernet(0x0800, v4);
    padded.resize(60, 0xEE); // minimum Ethernet frame
    auto u = extract_udp(kLinktypeEthernet, padded);
    REQUIRE(u);
    CHECK(u->payload.size() == 1);

    CHECK_FALSE(extract_udp(kLinktypeEthernet,
                            ethernet(0x0800, ipv4({1, 1, 1, 1}, {2, 2, 2, 2}, udp(7, 8, {1}),
                                                  0x2000)))); // more fragments
    CHECK_FALSE(extract_udp(kLinktypeEthernet,
                            ethernet(0x0800, ipv4({1, 1, 1, 1}, {2, 2, 2, 2}, udp(7, 8, {1}),
                                                  0x0010)))); // a later fragment
    CHECK_FALSE(extract_udp(kLinktypeEthernet,
                            ethernet(0x0800, ipv4({1, 1, 1, 1}, {2, 2, 2, 2}, Bytes(20, 0), 0,
                                                  6))));                         // TCP
    CHECK_FALSE(extract_udp(kLinktypeEthernet, ethernet(0x0806, Bytes(28, 0)))); // ARP
    CHECK_FALSE(extract_udp(999, v4));                                           // unknown link
    for (size_t cut = 0; cut < padded.size(); ++cut) {
        Bytes part(padded.begin(), padded.begin() + static_cast<long>(cut));
        if (cut < 14 + v4.size()) {
            CAPTURE(cut);
            CHECK_FALSE(extract_udp(kLinktypeEthernet, part));
        }
    }
    Bytes bad_udp_len = v4;
    bad_udp_len[20 + 4] = 0xFF; // UDP length beyond the packet
    CHECK_FALSE(extract_udp(kLinktypeRaw, bad_udp_len));
    Bytes bad_ihl = v4;
    bad_ihl[0] = 0x4F; // 60-byte header in a 29-byte packet
    CHECK_FALSE(extract_udp(kLinktypeRaw, bad_ihl));
}

TEST_CASE("gzip: stored blocks, concatenated members, truncation and corruption") {
    const Bytes frame = ethernet(0x0800, ipv4({10, 0, 0, 1}, {10, 0, 0, 2}, udp(5, 6, kPayload)));
    const Bytes file = classic_pcap({frame, frame, frame}, kLinktypeEthernet, false, false);
    auto all = read_all(gzip_stored(file));
    REQUIRE(all);
    CHECK(all->size() == 3);

    // Two members that concatenate to the file.
    const Bytes a(file.begin(), file.begin() + 50);
    const Bytes b(file.begin() + 50, file.end());
    Bytes two = gzip_stored(a);
    const Bytes gb = gzip_stored(b);
    two.insert(two.end(), gb.begin(), gb.end());
    auto both = read_all(two);
    REQUIRE(both);
    CHECK(both->size() == 3);

    Bytes gz = gzip_stored(file);
    const Bytes truncated(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2));
    CHECK_FALSE(PcapReader::from_bytes(truncated));
    Bytes corrupt = gz;
    corrupt[gz.size() - 5] ^= 0xFF; // CRC
    CHECK_FALSE(PcapReader::from_bytes(corrupt));
    auto direct = gunzip(gz, 10);
    CHECK_FALSE(direct); // beyond the size limit
}

TEST_CASE("hostile structures are errors") {
    const Bytes frame = ethernet(0x0800, ipv4({10, 0, 0, 1}, {10, 0, 0, 2}, udp(5, 6, kPayload)));
    // classic: a record that claims more than the file holds
    Bytes lying = classic_pcap({frame}, kLinktypeEthernet, false, false);
    lying[24 + 8] = 0xFF;
    lying[24 + 11] = 0x7F;
    auto r = read_all(lying);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Malformed);
    // classic: a record header cut in half
    Bytes cut = classic_pcap({frame}, kLinktypeEthernet, false, false);
    cut.resize(24 + 8);
    CHECK_FALSE(read_all(cut));

    auto ng_file = [&](auto&& mutate) {
        Ng ng(false);
        ng.shb();
        ng.idb(kLinktypeEthernet);
        ng.epb(0, 1, frame);
        Bytes b = ng.w.b;
        mutate(b);
        return b;
    };
    const size_t shb_len = 28;
    const size_t idb_len = 20 + 4;
    const size_t epb = shb_len + idb_len;
    CHECK(read_all(ng_file([](Bytes&) {})));
    // EPB total length huge
    CHECK_FALSE(read_all(ng_file([&](Bytes& b) { b[epb + 7] = 0x7F; })));
    // EPB total length below the minimum
    CHECK_FALSE(read_all(ng_file([&](Bytes& b) {
        b[epb + 4] = 8;
        b[epb + 5] = 0;
    })));
    // trailing length disagrees
    CHECK_FALSE(read_all(ng_file([&](Bytes& b) { b[b.size() - 4] ^= 4; })));
    // captured length beyond the block
    CHECK_FALSE(read_all(ng_file([&](Bytes& b) {
        b[epb + 20] = 0xFF;
        b[epb + 21] = 0xFF;
    })));
    // undeclared interface
    CHECK_FALSE(read_all(ng_file([&](Bytes& b) { b[epb + 8] = 3; })));
    // bad byte-order magic
    CHECK_FALSE(read_all(ng_file([&](Bytes& b) { b[8] = 0x00; })));
    // a file that does not start with a section header is not pcapng at all
    const Bytes whole = ng_file([](Bytes&) {});
    CHECK_FALSE(PcapReader::from_bytes(Bytes(whole.begin() + 28, whole.end())));
}

TEST_CASE("random mutations and truncations never crash") {
    std::mt19937 rng(1234);
    const Bytes frame =
        ethernet(0x0800, ipv4({10, 0, 0, 1}, {10, 0, 0, 2}, udp(5, 6, kPayload)), {0x8100});
    Ng ng(false);
    ng.shb();
    ng.idb(kLinktypeEthernet, 6);
    ng.idb(kLinktypeLinuxSll);
    ng.epb(0, 1, frame);
    ng.spb(frame);
    ng.epb(1, 2, Bytes(30, 0x45));
    const std::vector<Bytes> seeds = {
        ng.w.b,
        classic_pcap({frame, frame}, kLinktypeEthernet, true, false),
        gzip_stored(classic_pcap({frame}, kLinktypeEthernet, false, true)),
    };
    size_t frames_seen = 0;
    for (const auto& seed : seeds) {
        for (int iter = 0; iter < 3000; ++iter) {
            Bytes b = seed;
            const int edits = 1 + static_cast<int>(rng() % 4);
            for (int e = 0; e < edits; ++e) {
                const size_t pos = rng() % b.size();
                switch (rng() % 3) {
                case 0:
                    b[pos] = static_cast<uint8_t>(rng());
                    break;
                case 1:
                    b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
                    break;
                default:
                    b.resize(pos + 1);
                    break;
                }
            }
            auto r = PcapReader::from_bytes(std::move(b));
            if (!r) {
                continue;
            }
            for (int n = 0; n < 100; ++n) {
                auto f = r->next();
                if (!f || !*f) {
                    break;
                }
                ++frames_seen;
                (void)extract_udp((*f)->link_type, (*f)->data);
            }
        }
    }
    CHECK(frames_seen > 0);
}
