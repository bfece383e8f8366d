// KDNET links over real UDP sockets on 127.0.0.1 (ephemeral ports): host and target links
// handshake and move KD packets both ways, including break-in and a target restart; a scripted
// target built from the crypto functions checks the host's wire behaviour (RESPONSE, RESEND
// for the connection check, seq numbers, replays, reflections, re-keying); a wrong key gives
// the notice; junk floods are dropped, counted, and do not stall receive().
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/KdcomCodec.h"
#include "transport/KdnetCrypto.h"
#include "transport/KdnetLink.h"

#include <arpa/inet.h>
#include <chrono>
#include <cstring>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

using namespace kdcart;
using namespace kdcart::transport;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kKey = "1.2.3.4";

std::unique_ptr<KdnetLink> make_host(Millis notice_after = Millis(5000),
                                     Millis notice_repeat = Millis(30000)) {
    KdnetHostConfig cfg;
    cfg.port = 0;
    cfg.host_ip = "127.0.0.1";
    cfg.key = kKey;
    cfg.notice_after = notice_after;
    cfg.notice_repeat = notice_repeat;
    auto h = KdnetLink::create_host(cfg);
    REQUIRE(h);
    return std::move(*h);
}

std::unique_ptr<KdnetLink> make_target(uint16_t host_port, uint8_t version = 5,
                                       const char* key = kKey, Millis interval = Millis(200)) {
    KdnetTargetConfig cfg;
    cfg.host_ip = "127.0.0.1";
    cfg.port = host_port;
    cfg.key = key;
    cfg.version = version;
    cfg.offer_interval = interval;
    auto t = KdnetLink::create_target(cfg);
    REQUIRE(t);
    return std::move(*t);
}

struct Pair {
    std::unique_ptr<KdnetLink> host;
    std::unique_ptr<KdnetLink> target;
    std::vector<LinkEvent> host_events;
    std::vector<LinkEvent> target_events;

    // Polls both ends (single thread) until `done` or `limit`.
    template <class Pred> bool pump(Pred done, Millis limit = Millis(3000)) {
        const auto end = Clock::now() + limit;
        while (Clock::now() < end) {
            if (done()) {
                return true;
            }
            if (auto e = target->receive(Millis(2)); e) {
                target_events.push_back(std::move(*e));
            }
            if (auto e = host->receive(Millis(2)); e) {
                host_events.push_back(std::move(*e));
            }
        }
        return done();
    }
};

Pair connected_pair(uint8_t version = 5) {
    Pair p;
    p.host = make_host();
    p.target = make_target(p.host->local_port(), version);
    REQUIRE(p.pump([&] { return p.host->connected() && p.target->connected(); }));
    return p;
}

KdPacket data_packet(uint16_t type, uint32_t id, size_t n, uint8_t seed) {
    KdPacket p;
    p.type = type;
    p.id = id;
    for (size_t i = 0; i < n; ++i) {
        p.payload.push_back(static_cast<uint8_t>(seed + i * 13));
    }
    return p;
}

KdPacket control_packet(uint16_t type, uint32_t id) {
    KdPacket p;
    p.type = type;
    p.id = id;
    return p;
}

bool has_notice(const std::vector<std::string>& notices, std::string_view text) {
    for (const auto& n : notices) {
        if (n.find(text) != std::string::npos) {
            return true;
        }
    }
    return false;
}

// A plain UDP socket on 127.0.0.1 that plays a scripted target (or a junk source).
class RawPeer {
  public:
    RawPeer() {
        m_fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        REQUIRE(m_fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&a), &len);
        m_port = ntohs(a.sin_port);
    }
    ~RawPeer() { ::close(m_fd); }
    RawPeer(const RawPeer&) = delete;
    RawPeer& operator=(const RawPeer&) = delete;

    uint16_t port() const { return m_port; }

    void send_to(uint16_t port, const std::vector<uint8_t>& bytes) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        ::sendto(m_fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }

    std::optional<std::vector<uint8_t>> recv(Millis timeout) {
        pollfd pfd{m_fd, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) {
            return std::nullopt;
        }
        std::vector<uint8_t> buf(65536);
        const ssize_t n = ::recv(m_fd, buf.data(), buf.size(), 0);
        if (n < 0) {
            return std::nullopt;
        }
        buf.resize(static_cast<size_t>(n));
        return buf;
    }

  private:
    int m_fd = -1;
    uint16_t m_port = 0;
};

// The scripted target: knows the key, builds datagrams with kdnet_seal.
struct ScriptedTarget {
    RawPeer sock;
    KdnetKey control = *parse_kdnet_key(kKey);
    KdnetKey hmac = kdnet_hmac_key(control);
    KdnetKey data{};
    std::array<uint8_t, 32> random{};
    uint16_t host_port = 0;
    uint8_t version = 5;

    std::vector<uint8_t> offer(uint64_t seq, uint8_t first_random_byte) {
        random.fill(0x5A);
        random[0] = first_random_byte;
        KdnetDatagram d;
        d.version = version;
        d.channel = kKdnetControlChannel;
        d.seq = seq;
        d.body.assign(344, 0);
        d.body[0] = 1;
        d.body[1] = 1;
        std::copy(random.begin(), random.end(), d.body.begin() + 2);
        return *kdnet_seal(d, KdnetCipherKeys{control, hmac});
    }
    std::vector<uint8_t> data_datagram(uint64_t seq, std::vector<uint8_t> body, bool dir = false) {
        KdnetDatagram d;
        d.version = version;
        d.channel = kKdnetDataChannel;
        d.seq = seq;
        d.host_to_target = dir;
        d.body = std::move(body);
        return *kdnet_seal(d, KdnetCipherKeys{data, hmac});
    }
    void send(const std::vector<uint8_t>& wire) { sock.send_to(host_port, wire); }

    // Receives and opens the next datagram from the host.
    std::optional<KdnetDatagram> expect(uint8_t channel, Millis timeout = Millis(1000)) {
        auto wire = sock.recv(timeout);
        if (!wire) {
            return std::nullopt;
        }
        if (wire->size() < 6 || (*wire)[5] != channel) {
            return std::nullopt;
        }
        const KdnetKey& aes = channel == kKdnetControlChannel ? control : data;
        auto r = kdnet_open(*wire, KdnetCipherKeys{aes, hmac});
        if (!r.ok) {
            return std::nullopt;
        }
        last_wire = *wire;
        return r.datagram;
    }
    std::vector<uint8_t> last_wire;
};

std::vector<uint8_t> kd_bytes(const KdPacket& p) {
    auto b = kdcom_encode(p);
    if (!p.is_control()) {
        b.pop_back();
    }
    return b;
}

// Lets the host link process what is queued; returns the events it surfaced.
std::vector<LinkEvent> drain(KdnetLink& host, Millis each = Millis(30), int rounds = 3) {
    std::vector<LinkEvent> out;
    for (int i = 0; i < rounds; ++i) {
        auto e = host.receive(each);
        if (e) {
            out.push_back(std::move(*e));
            i = -1; // keep going while events come
        } else {
            REQUIRE(e.error().code == Errc::Timeout);
        }
    }
    return out;
}

} // namespace

TEST_CASE("host and target links: handshake, KD packets both ways, break-in") {
    auto host = make_host();
    auto target = make_target(host->local_port());
    CHECK(host->id_scheme() == IdScheme::Kdnet);
    CHECK(host->max_payload() == 0x480 + 0x38);
    CHECK_FALSE(host->connected());
    CHECK(host->describe().find("waiting for the target's OFFER") != std::string::npos);

    // Sent before the handshake: the target queues it, the host drops it silently.
    auto early = data_packet(3, 0, 46, 7);
    REQUIRE(target->send(early));
    REQUIRE(host->send(control_packet(6, 0x80000000)));
    REQUIRE(host->send_breakin());
    CHECK(host->stats().packets_out == 0);

    Pair p{std::move(host), std::move(target), {}, {}};
    REQUIRE(p.pump([&] { return p.host->connected() && !p.host_events.empty(); }));
    CHECK(p.target->connected());
    CHECK(p.host->protocol_version() == 5);
    CHECK(p.target->protocol_version() == 5);
    // The connection check never reaches the session; the queued packet comes first.
    REQUIRE(p.host_events.size() == 1);
    CHECK(p.host_events[0].kind == LinkEventKind::Packet);
    CHECK(p.host_events[0].packet.type == 3);
    CHECK(p.host_events[0].packet.leader == 0x30303030);
    CHECK(p.host_events[0].packet.payload == early.payload);
    // The target saw the host's RESEND answer to its connection check.
    REQUIRE(p.pump([&] { return !p.target_events.empty(); }));
    CHECK(p.target_events[0].packet.type == 5);
    CHECK(p.target_events[0].packet.id == 0);
    CHECK(p.target_events[0].packet.leader == 0x69696969);

    auto notices = p.host->take_notices();
    CHECK(has_notice(notices, "connected (KDNET protocol 5)"));
    CHECK(p.host->take_notices().empty());
    CHECK(has_notice(p.target->take_notices(), "answered"));
    CHECK(p.host->describe().find("<-> target 127.0.0.1:" +
                                  std::to_string(p.target->local_port())) != std::string::npos);

    // Host -> target: a maximum-size manipulate packet and an ACK.
    p.host_events.clear();
    p.target_events.clear();
    auto big = data_packet(2, 0x80000000, p.host->max_payload(), 3);
    REQUIRE(p.host->send(big));
    REQUIRE(p.host->send(control_packet(4, 0)));
    REQUIRE(p.pump([&] { return p.target_events.size() >= 2; }));
    CHECK(p.target_events[0].kind == LinkEventKind::Packet);
    CHECK(p.target_events[0].packet.type == 2);
    CHECK(p.target_events[0].packet.id == 0x80000000);
    CHECK(p.target_events[0].packet.payload == big.payload);
    CHECK(p.target_events[1].packet.type == 4);
    CHECK(p.target_events[1].packet.payload.empty());

    // Target -> host: a 1288-byte GetContext-sized reply and an ACK.
    auto reply = data_packet(2, 2, 1288, 9);
    REQUIRE(p.target->send(reply));
    REQUIRE(p.target->send(control_packet(4, 0x80000000)));
    REQUIRE(p.pump([&] { return p.host_events.size() >= 2; }));
    CHECK(p.host_events[0].packet.payload == reply.payload);
    CHECK(p.host_events[0].packet.id == 2);
    CHECK(p.host_events[1].packet.type == 4);
    CHECK(p.host_events[1].packet.id == 0x80000000);

    // Break-in reaches the target as an event of its own.
    p.target_events.clear();
    REQUIRE(p.host->send_breakin());
    REQUIRE(p.pump([&] { return !p.target_events.empty(); }));
    CHECK(p.target_events[0].kind == LinkEventKind::BreakIn);
    CHECK(p.target->send_breakin().error().code == Errc::Unsupported);

    const auto hs = p.host->stats();
    CHECK(hs.handshakes == 1);
    CHECK(hs.packets_in == 3);
    CHECK(hs.packets_out == 2);
    CHECK(hs.auth_failures == 0);
    CHECK(hs.bad_packets == 0);
    CHECK(p.target->stats().handshakes == 1);
}

TEST_CASE("the host echoes protocol versions 2 and 4; other versions connect with a notice") {
    for (uint8_t v : {uint8_t{2}, uint8_t{4}}) {
        CAPTURE(int(v));
        auto p = connected_pair(v);
        CHECK(p.host->protocol_version() == v);
        auto n = p.host->take_notices();
        CHECK_FALSE(has_notice(n, "knows only"));
        REQUIRE(p.host->send(control_packet(4, 0)));
        REQUIRE(p.pump(
            [&] { return !p.target_events.empty() && p.target_events.back().packet.type == 4; }));
    }
    auto p = connected_pair(7);
    CHECK(p.host->protocol_version() == 7);
    CHECK(has_notice(p.host->take_notices(), "protocol version 7"));
}

TEST_CASE("a rebooting target offers again and gets a new session key") {
    auto p = connected_pair();
    (void)p.host->take_notices();
    p.target->restart_handshake();
    CHECK_FALSE(p.target->connected());
    REQUIRE(p.pump([&] { return p.target->connected() && p.host->stats().handshakes == 2; }));
    CHECK(has_notice(p.host->take_notices(), "offered a new session"));
    p.host_events.clear();
    p.target_events.clear();
    auto pkt = data_packet(7, 0, 240, 1);
    REQUIRE(p.target->send(pkt));
    REQUIRE(p.host->send(control_packet(4, 0)));
    REQUIRE(p.pump([&] {
        return !p.host_events.empty() && p.target_events.size() >= 2; // RESEND, then ACK
    }));
    CHECK(p.host_events[0].packet.payload == pkt.payload);
    CHECK(p.target_events.back().packet.type == 4);
}

TEST_CASE("scripted target: RESPONSE, RESEND, seq numbers, replays, reflections, re-keying") {
    auto host = make_host();
    ScriptedTarget t;
    t.host_port = host->local_port();

    const auto offer = t.offer(0x9cc, 0x11);
    t.send(offer);
    CHECK(drain(*host).empty());
    auto resp = t.expect(kKdnetControlChannel);
    REQUIRE(resp);
    CHECK(resp->version == 5);
    CHECK(resp->seq == 0x9cc);
    CHECK(resp->host_to_target);
    CHECK(resp->pad == 6);
    REQUIRE(resp->body.size() == 322);
    CHECK(resp->body[0] == 1);
    CHECK(resp->body[1] == 2);
    CHECK(std::equal(t.random.begin(), t.random.end(), resp->body.begin() + 2));
    CHECK(std::all_of(resp->body.begin() + 66, resp->body.end(), [](uint8_t b) { return b == 0; }));
    CHECK(t.sock.recv(Millis(0)) == std::nullopt);
    t.data = kdnet_data_key(t.control, resp->body);
    CHECK(host->connected());
    CHECK(has_notice(host->take_notices(), "connected"));

    // The same OFFER again (v5 sends each twice): a replay, no second RESPONSE.
    t.send(offer);
    CHECK(drain(*host).empty());
    CHECK(t.sock.recv(Millis(100)) == std::nullopt);
    CHECK(host->stats().replays == 1);
    CHECK(host->stats().handshakes == 1);

    // Connection check: answered by the link with RESEND id 0, data seq 1, dir 1.
    t.send(t.data_datagram(1, {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 127}));
    CHECK(drain(*host).empty());
    auto resend = t.expect(kKdnetDataChannel);
    REQUIRE(resend);
    CHECK(resend->seq == 1);
    CHECK(resend->host_to_target);
    CHECK(kdnet_hex(resend->body) == "69696969050000000000000000000000");
    const auto resend_wire = t.last_wire;

    // A KD packet; then the same datagram again (replay) and the host's own datagram sent
    // back (reflection): both dropped.
    auto print = data_packet(3, 0, 46, 5);
    const auto print_wire = t.data_datagram(2, kd_bytes(print));
    t.send(print_wire);
    auto ev = drain(*host);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].packet.payload == print.payload);
    t.send(print_wire);
    t.send(resend_wire);
    CHECK(drain(*host).empty());
    CHECK(host->stats().replays == 3);

    // Out-of-order but unseen seqs are accepted.
    t.send(t.data_datagram(5, kd_bytes(control_packet(4, 0x80000000))));
    t.send(t.data_datagram(4, kd_bytes(control_packet(4, 0x80000002))));
    ev = drain(*host);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].packet.id == 0x80000000);
    CHECK(ev[1].packet.id == 0x80000002);

    // Host -> target: ACK with seq 2, then break-in with seq 3 (pad 7).
    REQUIRE(host->send(control_packet(4, 0)));
    auto ack = t.expect(kKdnetDataChannel);
    REQUIRE(ack);
    CHECK(ack->seq == 2);
    CHECK(ack->pad == 8);
    CHECK(kdnet_hex(ack->body) == "69696969040000000000000000000000");
    REQUIRE(host->send_breakin());
    auto brk = t.expect(kKdnetDataChannel);
    REQUIRE(brk);
    CHECK(brk->seq == 3);
    CHECK(brk->pad == 7);
    CHECK(brk->body == std::vector<uint8_t>{0x62});

    // Damaged KD packets inside authentic datagrams are BadPacket events.
    auto bad = kd_bytes(data_packet(2, 4, 56, 1));
    bad[12] ^= 0x01; // checksum
    t.send(t.data_datagram(6, bad));
    auto cut = kd_bytes(data_packet(2, 4, 56, 1));
    cut.resize(40); // ByteCount says 56
    t.send(t.data_datagram(7, cut));
    t.send(t.data_datagram(8, {1, 2, 3}));
    ev = drain(*host);
    REQUIRE(ev.size() == 3);
    for (const auto& e : ev) {
        CHECK(e.kind == LinkEventKind::BadPacket);
    }
    CHECK(host->stats().bad_packets == 3);

    // Reboot: a fresh OFFER with a lower seq and a new random. New key, data seq from 1.
    const KdnetKey old_key = t.data;
    t.send(t.offer(3, 0x22));
    CHECK(drain(*host).empty());
    auto resp2 = t.expect(kKdnetControlChannel);
    REQUIRE(resp2);
    CHECK(resp2->seq == 3);
    t.data = kdnet_data_key(t.control, resp2->body);
    CHECK(t.data != old_key);
    CHECK(host->stats().handshakes == 2);
    CHECK(has_notice(host->take_notices(), "offered a new session"));
    // An old-session OFFER replayed now is dropped too (its random was seen).
    t.send(offer);
    CHECK(drain(*host).empty());
    CHECK(t.sock.recv(Millis(100)) == std::nullopt);
    REQUIRE(host->send(control_packet(4, 0)));
    auto ack2 = t.expect(kKdnetDataChannel);
    REQUIRE(ack2);
    CHECK(ack2->seq == 1);
    // Data under the old key no longer authenticates; seq 1 is fresh in the new session.
    const auto auth_before = host->stats().auth_failures;
    KdnetKey saved = t.data;
    t.data = old_key;
    t.send(t.data_datagram(9, kd_bytes(control_packet(4, 1))));
    t.data = saved;
    t.send(t.data_datagram(1, kd_bytes(control_packet(4, 2))));
    ev = drain(*host);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].packet.id == 2);
    CHECK(host->stats().auth_failures == auth_before + 1);
}

TEST_CASE("a wrong key: OFFERs are dropped and the notice appears once per repeat window") {
    auto host = make_host(Millis(500), Millis(60000));
    auto target = make_target(host->local_port(), 5, "1.2.3.5", Millis(100));
    Pair p{std::move(host), std::move(target), {}, {}};
    std::vector<std::string> notices;
    p.pump(
        [&] {
            for (auto& n : p.host->take_notices()) {
                notices.push_back(n);
            }
            return false;
        },
        Millis(1500));
    CHECK_FALSE(p.host->connected());
    CHECK_FALSE(p.target->connected());
    CHECK(p.host_events.empty());
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].find("OFFERs arrive from 127.0.0.1:") != std::string::npos);
    CHECK(notices[0].find("but do not authenticate (likely a wrong key)") != std::string::npos);
    CHECK(notices[0].find("1.2.3") == std::string::npos); // never the key
    const auto s = p.host->stats();
    CHECK(s.packets_in == 0);
    CHECK(s.auth_failures >= 5);
    CHECK(s.dropped >= s.auth_failures);
    CHECK(s.handshakes == 0);
}

TEST_CASE("the wrong-key notice repeats no more often than notice_repeat") {
    auto host = make_host(Millis(200), Millis(600));
    auto target = make_target(host->local_port(), 5, "9.9.9.9", Millis(50));
    Pair p{std::move(host), std::move(target), {}, {}};
    size_t count = 0;
    p.pump(
        [&] {
            count += p.host->take_notices().size();
            return false;
        },
        Millis(1700));
    CHECK(count >= 2);
    CHECK(count <= 3);
}

TEST_CASE("junk floods are dropped cheaply and receive() keeps its timeout") {
    auto host = make_host(Millis(100000));
    ScriptedTarget t;
    t.host_port = host->local_port();
    t.send(t.offer(1, 0x33));
    CHECK(drain(*host).empty());
    auto resp = t.expect(kKdnetControlChannel);
    REQUIRE(resp);
    t.data = kdnet_data_key(t.control, resp->body);

    RawPeer junk;
    std::mt19937 rng(99);
    const auto start_dropped = host->stats().dropped;
    size_t sent = 0;
    for (int i = 0; i < 20000; ++i) {
        std::vector<uint8_t> b;
        switch (i % 4) {
        case 0: // random bytes
            b.resize(1 + rng() % 1400);
            for (auto& x : b) {
                x = static_cast<uint8_t>(rng());
            }
            break;
        case 1: // plausible data-channel datagrams from a stranger
        case 2: // plausible control-channel datagrams (fake OFFERs)
            b.resize(22 + 16 * (1 + rng() % 80));
            for (auto& x : b) {
                x = static_cast<uint8_t>(rng());
            }
            std::memcpy(b.data(), "MDBG", 4);
            b[4] = 5;
            b[5] = i % 4 == 1 ? 0 : 1;
            break;
        default: // forged data-channel datagrams from the target's own address
            b.resize(22 + 16 * 4, 0x41);
            std::memcpy(b.data(), "MDBG", 4);
            b[4] = 5;
            b[5] = 0;
            t.send(b);
            ++sent;
            continue;
        }
        junk.send_to(t.host_port, b);
        ++sent;
    }
    // Every receive() returns within its timeout (plus scheduling slack) and surfaces nothing;
    // stop after a call that found nothing to drop during its whole timeout.
    for (int calls = 0;; ++calls) {
        REQUIRE(calls < 200);
        const auto before = host->stats().dropped;
        const auto t0 = Clock::now();
        auto e = host->receive(Millis(50));
        const auto took = std::chrono::duration_cast<Millis>(Clock::now() - t0);
        CHECK(took.count() < 400);
        REQUIRE_FALSE(e);
        CHECK(e.error().code == Errc::Timeout);
        if (host->stats().dropped == before) {
            break;
        }
    }
    const auto s = host->stats();
    CHECK(s.dropped > start_dropped + 100);
    CHECK(s.dropped - start_dropped <= sent);
    CHECK(s.auth_failures > 0);
    CHECK(s.packets_in == 0);
    CHECK(s.handshakes == 1); // no fake OFFER authenticated
    CHECK(host->connected());
    // receive(0) is a poll.
    const auto t0 = Clock::now();
    CHECK_FALSE(host->receive(Millis(0)));
    CHECK(std::chrono::duration_cast<Millis>(Clock::now() - t0).count() < 50);

    // The real target still gets through.
    t.send(t.data_datagram(1, kd_bytes(control_packet(4, 0x80000000))));
    auto ev = drain(*host);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].packet.id == 0x80000000);
}

TEST_CASE("data without a handshake: dropped, with the earlier-session notice") {
    auto host = make_host(Millis(150));
    ScriptedTarget t;
    t.host_port = host->local_port();
    t.data.fill(0x42);
    for (int i = 0; i < 5; ++i) {
        t.send(t.data_datagram(static_cast<uint64_t>(i + 1), {0x62}));
        CHECK(drain(*host, Millis(40), 1).empty());
    }
    CHECK(host->stats().dropped == 5);
    CHECK(host->stats().auth_failures == 0); // no key to try: dropped before any crypto
    CHECK(has_notice(host->take_notices(), "has not offered a session"));
}

TEST_CASE("factory errors") {
    KdnetHostConfig h;
    h.port = 0;
    h.key = "abc.def";
    auto r = make_kdnet_host_link(h);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("abc") == std::string::npos);
    h.key = kKey;
    h.host_ip = "not-an-ip";
    CHECK_FALSE(make_kdnet_host_link(h));
    // A port already in use.
    auto first = make_host();
    h.host_ip = "127.0.0.1";
    h.port = first->local_port();
    auto clash = make_kdnet_host_link(h);
    REQUIRE_FALSE(clash);
    CHECK(clash.error().code == Errc::Io);

    KdnetTargetConfig t;
    t.host_ip = "::1";
    t.port = 50000;
    t.key = kKey;
    CHECK_FALSE(make_kdnet_target_link(t)); // IPv4 only
    t.host_ip = "127.0.0.1";
    t.port = 0;
    CHECK_FALSE(make_kdnet_target_link(t));
    t.port = 50000;
    t.key = "1.2.3.4.5";
    CHECK_FALSE(make_kdnet_target_link(t));
    t.key = kKey;
    auto ok = make_kdnet_target_link(t);
    REQUIRE(ok);
    CHECK((*ok)->describe().find("-> host 127.0.0.1:50000 (offering)") != std::string::npos);
}
