// The 1394 KD link's host side over an in-memory bus (FwNode) with a scripted target: discovery
// by config ROM, DEBUG_1394_CONFIG checks (tag, channel), the receive/send mailboxes (Length,
// header, checksum, PENDING written last, status cleared after reading), break-in, no ACK
// packets, identical packets not written twice, a mailbox that never clears (bounded, clear
// message), bus resets in the middle of transfers, request size limits, physical DMA reads
// (pages, holes, the 4 GiB limit), bounded waits when there is no target.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/Ieee1394Link.h"

#include <chrono>
#include <cstring>
#include <doctest/doctest.h>
#include <set>

using namespace kdcart;
using namespace kdcart::transport;
using Clock = std::chrono::steady_clock;
namespace k = kdcart::transport::kd1394;

namespace {

constexpr uint64_t kConfig = 0x9C000;
constexpr uint64_t kSend = 0x9D000;
constexpr uint64_t kRecv = 0x9E000;
constexpr uint64_t kMemSize = 0x200000; // 2 MiB of "RAM"
constexpr uint64_t kHole = 0x150000;    // one page without RAM

uint32_t le32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

std::vector<uint32_t> make_rom(bool debug, uint32_t max_rec = 10) {
    std::vector<uint32_t> rom{0, 0x31333934, max_rec << 12, 0x0050F200, 0x1};
    rom[0] = (4u << 24) | (4u << 16) | ieee1212_crc16(std::span(rom).subspan(1, 4));
    std::vector<uint32_t> e{0x0C0083C0};
    if (debug) {
        e.insert(e.end(),
                 {0x030050F2, 0x1C0050F2, 0x1D000002, 0x1E000000 | static_cast<uint32_t>(kConfig)});
    } else {
        e.push_back(0x03001234);
    }
    rom.push_back(static_cast<uint32_t>(e.size() << 16) | ieee1212_crc16(e));
    rom.insert(rom.end(), e.begin(), e.end());
    return rom;
}

struct Txn {
    uint32_t tcode;
    uint64_t offset;
    uint32_t length;
    uint32_t value; // first quadlet written (writes)
};

// An in-memory bus: the target's RAM, its ROM, the generation, a log of transactions, and a
// hook that runs after each one (the target's side).
struct FakeBus {
    std::vector<uint8_t> mem = std::vector<uint8_t>(kMemSize, 0);
    std::vector<uint32_t> rom = make_rom(true);
    uint32_t generation = 7;
    uint32_t max_payload = 2048;
    std::vector<Txn> log;
    std::set<size_t> reset_at; // transaction numbers a bus reset hits (not carried out)
    std::function<void()> after;
    int in_flight = 0;
    int overlaps = 0;
    uint32_t oversized = 0;
    bool dead = false;

    uint32_t u32(uint64_t a) const { return le32(&mem[a]); }
    void set_u32(uint64_t a, uint32_t v) { std::memcpy(&mem[a], &v, 4); }
    void write_config(uint32_t channel, uint32_t tag = k::CONFIG_TAG) {
        k::DebugConfig c;
        c.tag = tag;
        c.major = 1;
        c.id = channel;
        c.bus_present = 1;
        c.send_packet = kSend;
        c.receive_packet = kRecv;
        auto b = k::encode_config(c);
        std::memcpy(&mem[kConfig], b.data(), b.size());
    }
};

class FakeNode final : public FwNode {
  public:
    FakeNode(FakeBus& bus, uint32_t node_id = 0xFFC1) : m_bus(bus), m_node_id(node_id) {}
    std::string name() const override { return "fake" + std::to_string(m_node_id & 0x3F); }
    uint32_t max_payload() const override { return m_bus.max_payload; }
    Result<FwNodeInfo> get_info() override {
        if (m_bus.dead) {
            return make_error(Errc::Disconnected, "gone");
        }
        FwNodeInfo i;
        i.rom = m_bus.rom;
        i.generation = m_bus.generation;
        i.node_id = m_node_id;
        i.local_node_id = 0xFFC0;
        return i;
    }
    Result<std::vector<uint8_t>> transact(uint32_t tcode, uint64_t offset, uint32_t length,
                                          std::span<const uint8_t> data, uint32_t generation,
                                          Millis) override {
        if (m_bus.in_flight++ != 0) {
            ++m_bus.overlaps;
        }
        struct Done {
            int& n;
            ~Done() { --n; }
        } done{m_bus.in_flight};
        const size_t number = m_bus.log.size();
        Txn t{tcode, offset, length, 0};
        if (!data.empty() && data.size() >= 4) {
            t.value = le32(data.data());
        }
        m_bus.log.push_back(t);
        if (m_bus.dead) {
            return make_error(Errc::Disconnected, "gone");
        }
        if (m_bus.reset_at.count(number) != 0) {
            ++m_bus.generation;
            return tl::unexpected(fw::rcode_error(fw::kRcodeGeneration, "fake"));
        }
        if (generation != m_bus.generation) {
            return tl::unexpected(fw::rcode_error(fw::kRcodeGeneration, "fake"));
        }
        if (length > m_bus.max_payload) {
            ++m_bus.oversized;
            return tl::unexpected(fw::rcode_error(fw::kRcodeTypeError, "fake"));
        }
        const bool read = tcode == fw::kReadQuadlet || tcode == fw::kReadBlock;
        if (offset + length > kMemSize || (offset < kHole + 0x1000 && offset + length > kHole)) {
            return tl::unexpected(fw::rcode_error(fw::kRcodeAddressError, "fake"));
        }
        std::vector<uint8_t> out;
        if (read) {
            out.assign(m_bus.mem.begin() + static_cast<std::ptrdiff_t>(offset),
                       m_bus.mem.begin() + static_cast<std::ptrdiff_t>(offset + length));
        } else {
            REQUIRE(data.size() == length);
            std::memcpy(&m_bus.mem[offset], data.data(), length);
        }
        if (m_bus.after) {
            m_bus.after();
        }
        return out;
    }
    Result<void> initiate_bus_reset() override {
        ++m_bus.generation;
        return {};
    }

  private:
    FakeBus& m_bus;
    uint32_t m_node_id;
};

// The target's side of the mailboxes, run after every transaction.
struct FakeTarget {
    FakeBus& bus;
    bool consume = true;
    std::vector<std::vector<uint8_t>> received; // Packet bytes, Length long
    std::vector<KdPacket> outbox;

    void step() {
        if (consume && bus.u32(kRecv) == k::STATUS_PENDING) {
            const uint32_t len = bus.u32(kRecv + 4);
            received.emplace_back(bus.mem.begin() + kRecv + 8, bus.mem.begin() + kRecv + 8 + len);
            bus.set_u32(kRecv, 0);
        }
        if (!outbox.empty() && bus.u32(kSend) == 0) {
            post(outbox.front());
            outbox.erase(outbox.begin());
        }
    }
    void post(const KdPacket& p, bool corrupt = false) {
        auto h = k::encode_header(p);
        if (corrupt) {
            h[12] ^= 0x01; // checksum
        }
        std::memcpy(&bus.mem[kSend + 4], h.data(), 16);
        bus.set_u32(kSend + 0x14, static_cast<uint32_t>(p.payload.size()));
        if (!p.payload.empty()) {
            std::memcpy(&bus.mem[kSend + 0x18], p.payload.data(), p.payload.size());
        }
        bus.set_u32(kSend, k::STATUS_PENDING);
    }
};

struct Rig {
    FakeBus bus;
    FakeTarget target{bus};
    std::shared_ptr<Ieee1394Port> port;
    std::unique_ptr<PacketLink> link;
    std::vector<std::string> notices;

    explicit Rig(uint32_t channel = 5, Ieee1394Config cfg = {}, bool debug_rom = true,
                 uint32_t target_channel = 5) {
        bus.rom = make_rom(debug_rom);
        bus.write_config(target_channel);
        bus.after = [this] { target.step(); };
        cfg.channel = channel;
        auto enumerate =
            [this](std::vector<std::string>&) -> Result<std::vector<std::unique_ptr<FwNode>>> {
            std::vector<std::unique_ptr<FwNode>> nodes;
            nodes.push_back(std::make_unique<FakeNode>(bus, 0xFFC0)); // our own controller
            nodes.push_back(std::make_unique<FakeNode>(bus, 0xFFC1));
            return nodes;
        };
        auto p = Ieee1394Port::open(enumerate, cfg, "fake bus");
        REQUIRE(p);
        port = *p;
        link = make_ieee1394_link(port);
        take();
    }
    void take() {
        for (auto& n : link->take_notices()) {
            notices.push_back(n);
        }
    }
    bool noticed(const std::string& text) {
        take();
        for (auto& n : notices) {
            if (n.find(text) != std::string::npos) {
                return true;
            }
        }
        return false;
    }
};

KdPacket data_packet(uint32_t id, size_t size, uint8_t fill = 0x41) {
    KdPacket p;
    p.type = 2; // state manipulate
    p.id = id;
    p.payload.assign(size, fill);
    for (size_t i = 0; i < size; ++i) {
        p.payload[i] = static_cast<uint8_t>(fill + i);
    }
    return p;
}

} // namespace

TEST_CASE("config ROM: the debug entries, the bus options and the CRC") {
    auto rom = make_rom(true, 9);
    auto r = parse_debug_rom(rom);
    CHECK(r.bus_info_1394);
    CHECK(r.is_debug_target());
    CHECK(*r.vendor == MICROSOFT_VENDOR_ID);
    CHECK(*r.debug_kind == 2);
    CHECK(*r.debug_block == kConfig);
    CHECK(r.max_rec_payload == 1024);
    CHECK(r.crc_ok);
    rom.back() ^= 1;
    CHECK_FALSE(parse_debug_rom(rom).crc_ok); // noted, not required
    CHECK_FALSE(parse_debug_rom(make_rom(false)).is_debug_target());
    CHECK_FALSE(parse_debug_rom(std::vector<uint32_t>{0x04040000}).is_debug_target());
    // A root directory longer than the ROM is cut, not overrun.
    auto cut = make_rom(true);
    cut.resize(8);
    CHECK_FALSE(parse_debug_rom(cut).is_debug_target());
    // CRC-16 of IEEE 1212 (ITU-T polynomial): a known value.
    const uint32_t q[] = {0x31333934};
    CHECK(ieee1212_crc16(q) != 0);
}

TEST_CASE("discovery: the target on our channel is found, our own controller is skipped") {
    Rig rig;
    REQUIRE(rig.port->located());
    CHECK(rig.port->config_address() == kConfig);
    CHECK(rig.port->send_mailbox() == kSend);
    CHECK(rig.port->receive_mailbox() == kRecv);
    CHECK(rig.port->payload_limit() == 2048);
    CHECK(rig.link->describe() == "1394 channel 5 on fake1");
    CHECK(rig.link->id_scheme() == IdScheme::Kd1394);
    CHECK(rig.link->max_payload() == 4000);
    CHECK(rig.noticed("debug target on fake1"));
    CHECK(rig.noticed("DEBUG_1394_CONFIG at 0x9c000, channel 5"));
}

TEST_CASE("discovery: wrong channel, no debug entries, bad tag keep looking and say why") {
    {
        Ieee1394Config cfg;
        cfg.request_timeout = Millis(100);
        Rig rig(7, cfg, true, 5);
        CHECK_FALSE(rig.port->located());
        CHECK(rig.noticed("no 1394 debug target on channel 7: fake1 is a Windows 1394 debug "
                          "target on channel 5"));
        // Bounded: receive() comes back in about its timeout.
        const auto t0 = Clock::now();
        auto ev = rig.link->receive(Millis(150));
        CHECK_FALSE(ev);
        CHECK(ev.error().code == Errc::Timeout);
        CHECK(Clock::now() - t0 < std::chrono::seconds(2));
        // Sending to nobody loses the packet, it does not fail or hang.
        CHECK(rig.link->send(data_packet(1, 10)));
        CHECK(rig.link->send_breakin());
        // The target switches to our channel (a reboot with new settings): found on rescan,
        // and the break-in asked for meanwhile is delivered.
        rig.bus.write_config(7);
        rig.port->locate_if_due();
        CHECK_FALSE(rig.port->located()); // not due yet (rescan_interval)
        CHECK(rig.port->locate());
        (void)rig.link->receive(Millis(10));
        REQUIRE(rig.target.received.size() == 1);
        CHECK(rig.target.received[0] == std::vector<uint8_t>{0x62});
    }
    {
        Rig rig(5, {}, false);
        CHECK_FALSE(rig.port->located());
        CHECK(rig.noticed("no node on the 1394 bus has the Windows debug entries"));
        CHECK(rig.noticed("fake1 (vendor 001234)"));
        CHECK(rig.noticed("bcdedit /dbgsettings 1394 channel:5"));
    }
    {
        FakeBus bus;
        bus.write_config(5, 0x12345678);
        auto enumerate =
            [&bus](std::vector<std::string>&) -> Result<std::vector<std::unique_ptr<FwNode>>> {
            std::vector<std::unique_ptr<FwNode>> nodes;
            nodes.push_back(std::make_unique<FakeNode>(bus));
            return nodes;
        };
        Ieee1394Config cfg;
        cfg.channel = 5;
        auto port = Ieee1394Port::open(enumerate, cfg, "fake");
        REQUIRE(port);
        CHECK_FALSE((*port)->located());
        auto n = (*port)->take_notices();
        REQUIRE(n.size() == 1);
        CHECK(n[0].find("has tag 0x12345678, not 0xbabababa") != std::string::npos);
    }
}

TEST_CASE("discovery: no bus at all, or nodes we may not open, fail at once") {
    Ieee1394Config cfg;
    auto none = [](std::vector<std::string>&) -> Result<std::vector<std::unique_ptr<FwNode>>> {
        return make_error(Errc::NotFound, "no FireWire device nodes (/dev/fw*)");
    };
    auto r = Ieee1394Port::open(none, cfg, "x");
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("/dev/fw*") != std::string::npos);

    FakeBus bus;
    auto local_only =
        [&bus](std::vector<std::string>& problems) -> Result<std::vector<std::unique_ptr<FwNode>>> {
        problems.push_back("/dev/fw1: permission denied");
        std::vector<std::unique_ptr<FwNode>> nodes;
        nodes.push_back(std::make_unique<FakeNode>(bus, 0xFFC0));
        return nodes;
    };
    auto d = Ieee1394Port::open(local_only, cfg, "x");
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::Unsupported);
    CHECK(d.error().message.find("/dev/fw1") != std::string::npos);
    CHECK(d.error().message.find("SUBSYSTEM==\"firewire\"") != std::string::npos);

    cfg.channel = 63;
    CHECK_FALSE(Ieee1394Port::open(local_only, cfg, "x"));
}

TEST_CASE("host -> target: Length and the whole packet, then PENDING; no ACKs; one request at "
          "a time") {
    Rig rig;
    rig.bus.log.clear();
    KdPacket p = data_packet(0x80800000, 100);
    REQUIRE(rig.link->send(p));
    REQUIRE(rig.target.received.size() == 1);
    const auto& got = rig.target.received[0];
    REQUIRE(got.size() == 116);
    CHECK(le32(&got[0]) == 0x30303030);
    CHECK((got[4] | got[5] << 8) == 2);
    CHECK((got[6] | got[7] << 8) == 100);
    CHECK(le32(&got[8]) == 0x80800000);
    CHECK(le32(&got[12]) == kd_checksum(p.payload.data(), p.payload.size()));
    CHECK(std::equal(p.payload.begin(), p.payload.end(), got.begin() + 16));
    // The status poll first, PENDING last.
    REQUIRE(rig.bus.log.size() >= 3);
    CHECK(rig.bus.log.front().tcode == fw::kReadQuadlet);
    CHECK(rig.bus.log.front().offset == kRecv);
    CHECK(rig.bus.log.back().tcode == fw::kWriteQuadlet);
    CHECK(rig.bus.log.back().offset == kRecv);
    CHECK(rig.bus.log.back().value == k::STATUS_PENDING);
    CHECK(rig.bus.overlaps == 0);

    // A control packet: header only, Length 16.
    KdPacket reset;
    reset.type = 6;
    reset.id = 0x80800000;
    REQUIRE(rig.link->send(reset));
    REQUIRE(rig.target.received.size() == 2);
    CHECK(rig.target.received[1].size() == 16);
    CHECK(le32(&rig.target.received[1][0]) == 0x69696969);

    // ACKs never go on the wire.
    const size_t before = rig.bus.log.size();
    KdPacket ack;
    ack.type = 4;
    ack.id = 1;
    REQUIRE(rig.link->send(ack));
    CHECK(rig.bus.log.size() == before);
    CHECK(rig.target.received.size() == 2);

    // Too big for a 1394 mailbox.
    CHECK_FALSE(rig.link->send(data_packet(1, 4001)));
}

TEST_CASE("host -> target: the full 4000 bytes in payload-sized pieces") {
    Ieee1394Config cfg;
    cfg.max_payload = 512; // a slow link
    Rig rig(5, cfg);
    CHECK(rig.port->payload_limit() == 512);
    KdPacket p = data_packet(9, 4000);
    REQUIRE(rig.link->send(p));
    REQUIRE(rig.target.received.size() == 1);
    CHECK(rig.target.received[0].size() == 4016);
    CHECK(std::equal(p.payload.begin(), p.payload.end(), rig.target.received[0].begin() + 16));
    CHECK(rig.bus.oversized == 0);
    CHECK(rig.port->stats().largest_request <= 512);
}

TEST_CASE("the node's max_rec lowers the request size") {
    FakeBus bus;
    bus.rom = make_rom(true, 8); // 512 bytes
    bus.write_config(5);
    auto enumerate =
        [&bus](std::vector<std::string>&) -> Result<std::vector<std::unique_ptr<FwNode>>> {
        std::vector<std::unique_ptr<FwNode>> nodes;
        nodes.push_back(std::make_unique<FakeNode>(bus));
        return nodes;
    };
    Ieee1394Config cfg;
    cfg.channel = 5;
    auto port = Ieee1394Port::open(enumerate, cfg, "fake");
    REQUIRE(port);
    CHECK((*port)->payload_limit() == 512);
}

TEST_CASE("host -> target: waits for the target to take the previous packet; a mailbox that "
          "never clears fails within mailbox_timeout, naming the mailbox") {
    Ieee1394Config cfg;
    cfg.mailbox_timeout = Millis(200);
    Rig rig(5, cfg);
    rig.target.consume = false;
    REQUIRE(rig.link->send(data_packet(1, 8)));
    CHECK(rig.bus.u32(kRecv) == k::STATUS_PENDING);
    // The same packet again (the session repeating itself) is not written twice.
    const size_t before = rig.bus.log.size();
    REQUIRE(rig.link->send(data_packet(1, 8)));
    CHECK(rig.bus.log.size() == before + 1); // one status read
    // Another packet waits, then gives up.
    const auto t0 = Clock::now();
    auto r = rig.link->send(data_packet(2, 8));
    const auto took = Clock::now() - t0;
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Io);
    CHECK(r.error().message.find("has not taken our last packet from its receive mailbox "
                                 "(DEBUG_1394_RECEIVE_PACKET at 0x9e000, TransferStatus "
                                 "0x103) for 0.2 s") != std::string::npos);
    CHECK(took >= Millis(190));
    CHECK(took < std::chrono::seconds(3));
    // Once it takes it, the next one goes.
    rig.target.consume = true;
    rig.target.step();
    REQUIRE(rig.link->send(data_packet(2, 8)));
    CHECK(rig.target.received.size() == 2);
}

TEST_CASE("break-in: Packet[0] = 0x62, Length 1; it replaces a RESET the target has not taken") {
    Rig rig;
    REQUIRE(rig.link->send_breakin());
    REQUIRE(rig.target.received.size() == 1);
    CHECK(rig.target.received[0] == std::vector<uint8_t>{0x62});

    rig.target.consume = false;
    KdPacket reset;
    reset.type = 6;
    reset.id = 0x80800000;
    REQUIRE(rig.link->send(reset));
    REQUIRE(rig.link->send_breakin());
    CHECK(rig.bus.u32(kRecv) == k::STATUS_PENDING);
    CHECK(rig.bus.u32(kRecv + 4) == 1);
    CHECK(rig.bus.mem[kRecv + 8] == 0x62);
}

TEST_CASE("target -> host: the packet comes out whole and the status is cleared") {
    Rig rig;
    KdPacket p = data_packet(0x80800001, 3944 + 56);
    rig.target.post(p);
    auto ev = rig.link->receive(Millis(500));
    REQUIRE(ev);
    CHECK(ev->kind == LinkEventKind::Packet);
    CHECK(ev->packet.leader == 0x30303030);
    CHECK(ev->packet.type == 2);
    CHECK(ev->packet.id == 0x80800001);
    CHECK(ev->packet.payload == p.payload);
    CHECK(rig.bus.u32(kSend) == 0);
    CHECK(rig.bus.oversized == 0);
    CHECK(rig.bus.overlaps == 0);
    CHECK(rig.link->stats().packets_in == 1);

    // A control packet (RESET, Length 0).
    KdPacket reset;
    reset.type = 6;
    reset.id = 0x80800000;
    rig.target.post(reset);
    ev = rig.link->receive(Millis(500));
    REQUIRE(ev);
    CHECK(ev->packet.leader == 0x69696969);
    CHECK(ev->packet.type == 6);
    CHECK(ev->packet.payload.empty());

    // Nothing there: a bounded wait.
    const auto t0 = Clock::now();
    ev = rig.link->receive(Millis(100));
    REQUIRE_FALSE(ev);
    CHECK(ev.error().code == Errc::Timeout);
    CHECK(Clock::now() - t0 < std::chrono::seconds(1));
}

TEST_CASE("target -> host: a bad checksum or an oversized ByteCount is a BadPacket, taken out") {
    Rig rig;
    rig.target.post(data_packet(3, 40), /*corrupt=*/true);
    auto ev = rig.link->receive(Millis(500));
    REQUIRE(ev);
    CHECK(ev->kind == LinkEventKind::BadPacket);
    CHECK(ev->detail == "bad checksum");
    CHECK(rig.bus.u32(kSend) == 0);

    rig.target.post(data_packet(4, 10));
    rig.bus.mem[kSend + 4 + 6] = 0xA1; // ByteCount 0x0FA1 = 4001
    rig.bus.mem[kSend + 4 + 7] = 0x0F;
    ev = rig.link->receive(Millis(500));
    REQUIRE(ev);
    CHECK(ev->kind == LinkEventKind::BadPacket);
    CHECK(ev->detail.find("4001") != std::string::npos);
    CHECK(rig.link->stats().bad_packets == 2);
}

TEST_CASE("bus resets in the middle of transfers: the port re-reads the node and the transfer "
          "starts over; nothing is lost or doubled") {
    // Receiving 2500 bytes in 1024-byte pieces: status, head, 3 pieces, clear (0-5); with a
    // second reset two transactions after the first (the refresh's own read counts).
    for (size_t hit = 0; hit < 12; ++hit) {
        CAPTURE(hit);
        const bool twice = hit >= 6;
        const size_t at = hit % 6;
        Ieee1394Config cfg;
        cfg.max_payload = 1024; // several pieces per packet
        Rig rig(5, cfg);
        const uint32_t gen0 = rig.bus.generation;
        rig.bus.log.clear();
        rig.bus.reset_at = {at};
        if (twice) {
            rig.bus.reset_at.insert(at + 2);
        }
        KdPacket p = data_packet(0x80800002, 2500, 0x10);
        rig.target.post(p);
        auto ev = rig.link->receive(Millis(1000));
        REQUIRE(ev);
        CHECK(ev->kind == LinkEventKind::Packet);
        CHECK(ev->packet.payload == p.payload);
        CHECK(rig.bus.u32(kSend) == 0);
        const uint32_t resets = twice ? 2 : 1;
        CHECK(rig.bus.generation == gen0 + resets);
        CHECK(rig.port->stats().bus_resets == resets);

        rig.bus.log.clear();
        rig.bus.reset_at = {at};
        KdPacket q = data_packet(0x80800003, 3000, 0x20);
        REQUIRE(rig.link->send(q));
        REQUIRE(rig.target.received.size() == 1);
        CHECK(rig.target.received[0].size() == 3016);
        CHECK(std::equal(q.payload.begin(), q.payload.end(), rig.target.received[0].begin() + 16));
        CHECK(rig.bus.overlaps == 0);
    }
}

TEST_CASE("a bus that keeps resetting, or a target that leaves, is an error, not a hang") {
    Ieee1394Config cfg;
    cfg.reset_retries = 4;
    Rig rig(5, cfg);
    for (size_t i = 0; i < 200; ++i) {
        rig.bus.reset_at.insert(rig.bus.log.size() + i);
    }
    auto r = rig.port->read_u32(kSend);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("keeps resetting") != std::string::npos);

    Rig gone;
    gone.bus.rom = make_rom(false); // after a reset the node is something else
    gone.bus.reset_at = {gone.bus.log.size()};
    auto g = gone.port->read_u32(kSend);
    REQUIRE_FALSE(g);
    CHECK(g.error().code == Errc::Disconnected);
    CHECK_FALSE(gone.port->located());
    CHECK(gone.noticed("lost the debug target on fake1"));
}

TEST_CASE("physical DMA: a dump's sequential 3944-byte reads cost one request per 2 KiB; what "
          "was read ahead is dropped once a packet goes to the target") {
    Rig rig;
    for (size_t i = 0x20000; i < 0x40000; ++i) {
        rig.bus.mem[i] = static_cast<uint8_t>(i ^ (i >> 8));
    }
    rig.bus.log.clear();
    std::vector<uint8_t> all;
    for (uint64_t a = 0x20000; a < 0x40000;) {
        const auto n = static_cast<uint32_t>(std::min<uint64_t>(3944, 0x40000 - a));
        auto r = rig.port->read_physical(a, n);
        REQUIRE(r);
        REQUIRE(r->size() == n);
        all.insert(all.end(), r->begin(), r->end());
        a += n;
    }
    CHECK(std::equal(all.begin(), all.end(), rig.bus.mem.begin() + 0x20000));
    CHECK(rig.bus.log.size() == 0x20000 / 2048);
    for (const auto& t : rig.bus.log) {
        CHECK(t.offset % 2048 == 0);
        CHECK(t.length == 2048);
    }
    // 0x20f68.. was read ahead with the first request; the target changes it after a packet.
    auto first = rig.port->read_physical(0x20000, 3944);
    REQUIRE(first);
    rig.bus.mem[0x20000 + 3944] = 0xEE;
    auto cached = rig.port->read_physical(0x20000 + 3944, 8);
    REQUIRE(cached);
    CHECK((*cached)[0] != 0xEE); // from the read-ahead: the bus was not asked
    REQUIRE(rig.link->send(data_packet(1, 8)));
    auto fresh = rig.port->read_physical(0x20000 + 3944, 8);
    REQUIRE(fresh);
    CHECK((*fresh)[0] == 0xEE);
}

TEST_CASE("physical DMA: page-bounded requests, holes end the read, nothing at or above 4 GiB") {
    Rig rig;
    for (size_t i = 0; i < kMemSize; ++i) {
        rig.bus.mem[i] = static_cast<uint8_t>(i * 7 + (i >> 12));
    }
    rig.bus.write_config(5); // the fill overwrote it
    rig.bus.log.clear();
    auto r = rig.port->read_physical(0x10003, 0x3001);
    REQUIRE(r);
    REQUIRE(r->size() == 0x3001);
    CHECK(std::equal(r->begin(), r->end(), rig.bus.mem.begin() + 0x10003));
    for (const auto& t : rig.bus.log) {
        CHECK(t.offset % 4 == 0);
        CHECK(t.length <= 2048);
        CHECK(t.offset / 0x1000 == (t.offset + t.length - 1) / 0x1000);
    }
    // Up to the hole.
    auto h = rig.port->read_physical(kHole - 0x800, 0x2000);
    REQUIRE(h);
    CHECK(h->size() == 0x800);
    // Above 4 GiB physical DMA does not reach (the caller falls back to KD).
    auto hi = rig.port->read_physical(0x100000000ull, 0x1000);
    REQUIRE(hi);
    CHECK(hi->empty());
    CHECK(rig.port->stats().dma_bytes == 0x3001 + 0x800);
}
