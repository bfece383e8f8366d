// KDNET: the KD packet link over UDP (kd-protocol.md §4), host and target roles.
#include "transport/KdnetLink.h"

#include "transport/KdcomCodec.h"
#include "transport/KdnetCrypto.h"

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <thread>

namespace kdcart::transport {

namespace {

using Clock = std::chrono::steady_clock;
using asio::ip::udp;
using Random = std::array<uint8_t, 32>;

constexpr size_t kRecvBufferSize = 65536;
// No real datagram is longer: a 4000-byte KD payload (PACKET_MAX_SIZE) with its 16-byte header,
// the 8-byte word, at most 15 bytes of padding, the 6-byte header and the tag.
constexpr size_t kMaxDatagram = 6 + 8 + 16 + 4000 + 15 + 16;
constexpr int kBatch = 64;             // datagrams handled between clock checks
constexpr int kDiscardLimit = 4096;    // datagrams discard_input() reads at most
constexpr size_t kOfferBodySize = 344; // §4.5: 352 bytes with the word, 374 on the wire
constexpr size_t kResponseBodySize = 322;
constexpr size_t kRandomOffset = 2;
constexpr size_t kHostRandomOffset = 34;
constexpr size_t kConncheckSize = 12;
constexpr size_t kMaxQueued = 64;   // target role: packets held until the handshake
constexpr size_t kSeenRandoms = 32; // host role: client randoms remembered (replays)
constexpr uint8_t kMsgTag = 0x01;
constexpr uint8_t kMsgOffer = 0x01;
constexpr uint8_t kMsgResponse = 0x02;
constexpr uint8_t kBreakinByte = 0x62;
constexpr uint32_t kDataLeader = 0x30303030;
constexpr uint32_t kControlLeader = 0x69696969;
constexpr uint16_t kTypeResend = 5;
constexpr int kSendRetries = 3;
constexpr size_t kMaxNotices = 32;

enum class Role { Host, Target };

// Sliding replay window over 56-bit sequence numbers: the highest seq seen and a bitmap of the
// 64 below it. Anything older than the window counts as seen.
class SeqWindow {
  public:
    bool fresh(uint64_t seq) const {
        if (!m_any || seq > m_top) {
            return true;
        }
        const uint64_t d = m_top - seq;
        return d < 64 && ((m_bits >> d) & 1u) == 0;
    }
    void mark(uint64_t seq) {
        if (!m_any) {
            m_any = true;
            m_top = seq;
            m_bits = 1;
        } else if (seq > m_top) {
            const uint64_t d = seq - m_top;
            m_bits = d >= 64 ? 0 : m_bits << d;
            m_bits |= 1;
            m_top = seq;
        } else if (m_top - seq < 64) {
            m_bits |= uint64_t{1} << (m_top - seq);
        }
    }
    void reset() { *this = SeqWindow{}; }

  private:
    bool m_any = false;
    uint64_t m_top = 0;
    uint64_t m_bits = 0;
};

uint32_t get_le32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

uint16_t get_le16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | p[1] << 8);
}

std::string endpoint_text(const udp::endpoint& ep) {
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) and a big-endian port at body[off].
void put_mapped_endpoint(std::vector<uint8_t>& body, size_t off, const asio::ip::address& addr,
                         uint16_t port) {
    body[off + 10] = 0xFF;
    body[off + 11] = 0xFF;
    if (addr.is_v4()) {
        const auto b = addr.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), body.begin() + static_cast<std::ptrdiff_t>(off + 12));
    } else if (addr.is_v6()) {
        const auto b = addr.to_v6().to_bytes();
        std::copy(b.begin(), b.end(), body.begin() + static_cast<std::ptrdiff_t>(off));
    }
    body[off + 16] = static_cast<uint8_t>(port >> 8);
    body[off + 17] = static_cast<uint8_t>(port);
}

bool would_block(const asio::error_code& ec) {
    return ec == asio::error::would_block || ec == asio::error::try_again;
}

int poll_ms(Millis left) {
    if (left.count() <= 0) {
        return 0;
    }
    return static_cast<int>(std::min<int64_t>(left.count() + 1, INT_MAX / 2));
}

} // namespace

struct KdnetLink::Impl {
    Role role = Role::Host;
    KdnetHostConfig host_cfg;
    KdnetTargetConfig target_cfg;

    asio::io_context io;
    udp::socket socket{io};
    KdnetKey control{};
    KdnetKey hmac{};
    std::optional<KdnetKey> data;
    std::optional<udp::endpoint> peer; // host: the target once known; target: the host
    uint8_t version = 0;
    uint64_t data_seq_out = 1;
    SeqWindow data_in;
    SeqWindow control_in;
    LinkStats stats;
    std::vector<uint8_t> rx = std::vector<uint8_t>(kRecvBufferSize);
    // Busy-wait briefly for the next datagram while a request/reply exchange is under way.
    static constexpr auto kSpinWindow = std::chrono::milliseconds(5);
    static constexpr auto kSpinFor = std::chrono::microseconds(200);
    Clock::time_point last_activity{};
    std::vector<std::string> notices;
    // Fault injection (target role, kdsim): per datagram, each way.
    std::optional<FaultDice> fault_out;
    std::optional<FaultDice> fault_in;
    std::shared_ptr<FaultReport> fault_report;

    // host role
    bool have_session = false;
    Random client_random{};
    std::vector<uint8_t> response_body;
    std::deque<Random> seen_randoms;
    std::optional<Clock::time_point> unauth_since;
    uint64_t unauth_count = 0;
    std::optional<Clock::time_point> wrong_key_noticed;
    std::optional<Clock::time_point> orphan_since;
    std::optional<Clock::time_point> orphan_noticed;
    std::vector<uint8_t> versions_noticed;

    // target role
    asio::ip::address offer_local_address;
    uint64_t control_seq_out = 3;
    Clock::time_point next_offer{};
    std::deque<KdPacket> queued;

    ~Impl() {
        OPENSSL_cleanse(control.data(), control.size());
        OPENSSL_cleanse(hmac.data(), hmac.size());
        if (data) {
            OPENSSL_cleanse(data->data(), data->size());
        }
    }

    // ---- sending ----

    void publish_faults() {
        if (fault_report) {
            fault_report->out = fault_out ? fault_out->counters() : FaultCounters{};
            fault_report->in = fault_in ? fault_in->counters() : FaultCounters{};
        }
    }

    // The injected fate of a datagram about to go out or just in: false = lost.
    bool survives(std::optional<FaultDice>& dice, std::span<uint8_t> datagram) {
        if (!dice) {
            return true;
        }
        const auto v = dice->judge();
        if (v.stall) {
            std::this_thread::sleep_for(dice->config().stall);
        }
        if (!v.drop && v.flip != 0 && !datagram.empty()) {
            datagram[dice->below(datagram.size())] ^= v.flip;
        }
        publish_faults();
        return !v.drop;
    }

    Result<void> send_raw(std::span<const uint8_t> wire_in, const udp::endpoint& to) {
        std::vector<uint8_t> faulty;
        std::span<const uint8_t> wire = wire_in;
        if (fault_out) {
            faulty.assign(wire_in.begin(), wire_in.end());
            if (!survives(fault_out, faulty)) {
                stats.bytes_out += faulty.size(); // sent, and lost on the way
                return {};
            }
            wire = faulty;
        }
        for (int attempt = 0;; ++attempt) {
            asio::error_code ec;
            const size_t n = socket.send_to(asio::buffer(wire.data(), wire.size()), to, 0, ec);
            if (!ec) {
                stats.bytes_out += n;
                last_activity = Clock::now();
                return {};
            }
            if (attempt >= kSendRetries) {
                return make_error(Errc::Io,
                                  "kdnet: send to " + endpoint_text(to) + ": " + ec.message());
            }
            if (would_block(ec)) {
                pollfd pfd{socket.native_handle(), POLLOUT, 0};
                ::poll(&pfd, 1, 1000);
            } else if (ec != asio::error::connection_refused && ec != asio::error::interrupted) {
                // ECONNREFUSED is a stale ICMP error from an earlier datagram: send again.
                return make_error(Errc::Io,
                                  "kdnet: send to " + endpoint_text(to) + ": " + ec.message());
            }
        }
    }

    Result<void> send_datagram(const KdnetDatagram& d, const udp::endpoint& to) {
        const KdnetKey& aes = d.channel == kKdnetControlChannel ? control : *data;
        auto wire = kdnet_seal(d, KdnetCipherKeys{aes, hmac});
        if (!wire) {
            return tl::unexpected(wire.error());
        }
        return send_raw(*wire, to);
    }

    // A data-channel datagram to the peer (the caller checked that a session exists).
    Result<void> send_data_body(std::vector<uint8_t> body) {
        KdnetDatagram d;
        d.version = version;
        d.channel = kKdnetDataChannel;
        d.seq = data_seq_out++;
        d.host_to_target = role == Role::Host;
        d.body = std::move(body);
        return send_datagram(d, *peer);
    }

    static std::vector<uint8_t> kd_body(const KdPacket& p) {
        auto body = kdcom_encode(p);
        if (!p.is_control()) {
            body.pop_back(); // KDNET carries no 0xAA trailer
        }
        return body;
    }

    Result<void> send_packet(const KdPacket& p) {
        if (!data || !peer) {
            if (role == Role::Target) {
                if (queued.size() >= kMaxQueued) {
                    queued.pop_front();
                }
                queued.push_back(p);
                return maybe_offer(Clock::now());
            }
            spdlog::debug("kdnet: no target yet, packet type {} id {:#x} not sent", p.type, p.id);
            return {};
        }
        ++stats.packets_out;
        return send_data_body(kd_body(p));
    }

    // ---- notices ----

    void notice(const std::string& text) {
        spdlog::debug("kdnet: {}", text);
        if (notices.size() >= kMaxNotices) {
            notices.erase(notices.begin()); // nobody is reading them: keep the newest
        }
        notices.push_back("KDNET: " + text);
    }

    bool may_repeat(const std::optional<Clock::time_point>& last, Clock::time_point now) const {
        return !last || now - *last >= host_cfg.notice_repeat;
    }

    void note_unauthenticated_offer(const udp::endpoint& from, Clock::time_point now) {
        if (!unauth_since) {
            unauth_since = now;
            unauth_count = 0;
        }
        ++unauth_count;
        if (unauth_count >= 2 && now - *unauth_since >= host_cfg.notice_after &&
            may_repeat(wrong_key_noticed, now)) {
            wrong_key_noticed = now;
            notice("OFFERs arrive from " + endpoint_text(from) +
                   " but do not authenticate (likely a wrong key)");
        }
    }

    void note_orphan_data(const udp::endpoint& from, Clock::time_point now) {
        if (!orphan_since) {
            orphan_since = now;
        }
        if (now - *orphan_since >= host_cfg.notice_after && may_repeat(orphan_noticed, now)) {
            orphan_noticed = now;
            notice("encrypted data packets arrive from " + endpoint_text(from) +
                   " but the target has not offered a session; it is still attached to an "
                   "earlier debugger session and offers again after a reboot");
        }
    }

    // ---- receiving ----

    std::optional<LinkEvent> handle_datagram(std::span<const uint8_t> bytes,
                                             const udp::endpoint& from, Clock::time_point now) {
        stats.bytes_in += bytes.size();
        // Cheap checks first: junk costs no crypto.
        if (bytes.size() > kMaxDatagram || !kdnet_plausible(bytes)) {
            ++stats.dropped;
            return std::nullopt;
        }
        const uint8_t channel = kdnet_channel_of(bytes);
        if (channel == kKdnetControlChannel) {
            if (role == Role::Target && from != *peer) {
                ++stats.dropped;
                return std::nullopt;
            }
            auto r = kdnet_open(bytes, KdnetCipherKeys{control, hmac});
            if (!r.ok) {
                ++stats.dropped;
                if (r.error == KdnetOpenError::BadTag) {
                    ++stats.auth_failures;
                    if (role == Role::Host) {
                        note_unauthenticated_offer(from, now);
                    }
                }
                return std::nullopt;
            }
            unauth_since.reset();
            if (r.datagram.host_to_target != (role == Role::Target)) {
                ++stats.replays; // our own datagram sent back to us
                ++stats.dropped;
                return std::nullopt;
            }
            if (role == Role::Host) {
                handle_offer(r.datagram, from, now);
            } else {
                handle_response(r.datagram);
            }
            return std::nullopt;
        }
        if (channel != kKdnetDataChannel) {
            ++stats.dropped;
            return std::nullopt;
        }
        if (!data) {
            ++stats.dropped;
            if (role == Role::Host) {
                note_orphan_data(from, now);
            }
            return std::nullopt;
        }
        if (from != *peer || kdnet_version_of(bytes) != version) {
            ++stats.dropped;
            return std::nullopt;
        }
        auto r = kdnet_open(bytes, KdnetCipherKeys{*data, hmac});
        if (!r.ok) {
            ++stats.dropped;
            if (r.error == KdnetOpenError::BadTag) {
                ++stats.auth_failures;
            }
            return std::nullopt;
        }
        KdnetDatagram& d = r.datagram;
        if (d.host_to_target != (role == Role::Target) || !data_in.fresh(d.seq)) {
            ++stats.replays;
            ++stats.dropped;
            return std::nullopt;
        }
        data_in.mark(d.seq);
        return handle_data_body(d.body);
    }

    std::optional<LinkEvent> handle_data_body(const std::vector<uint8_t>& body) {
        if (body.size() == 1 && body[0] == kBreakinByte) {
            if (role == Role::Target) {
                LinkEvent ev;
                ev.kind = LinkEventKind::BreakIn;
                return ev;
            }
            spdlog::debug("kdnet: ignoring a break-in datagram from the target");
            return std::nullopt;
        }
        if (role == Role::Host && body.size() == kConncheckSize && get_le32(body.data()) == 0) {
            // The connection check (§4.5 step 4): leader 0, type 0, id = our IPv4 address.
            const uint32_t id = get_le32(body.data() + 8);
            spdlog::debug("kdnet: connection check (host address {}.{}.{}.{}), answering RESEND",
                          id >> 24, (id >> 16) & 0xFF, (id >> 8) & 0xFF, id & 0xFF);
            KdPacket resend;
            resend.type = kTypeResend;
            resend.id = 0;
            if (auto r = send_data_body(kd_body(resend)); !r) {
                spdlog::debug("kdnet: RESEND for the connection check failed: {}",
                              r.error().message);
            }
            return std::nullopt;
        }
        LinkEvent ev;
        if (body.size() < 16) {
            ev.kind = LinkEventKind::BadPacket;
            ev.detail =
                "KDNET body of " + std::to_string(body.size()) + " bytes is not a KD packet";
            ++stats.bad_packets;
            return ev;
        }
        KdPacket& p = ev.packet;
        p.leader = get_le32(body.data());
        p.type = get_le16(body.data() + 4);
        const uint16_t count = get_le16(body.data() + 6);
        p.id = get_le32(body.data() + 8);
        const uint32_t checksum = get_le32(body.data() + 12);
        if (p.leader == kControlLeader) {
            ++stats.packets_in;
            return ev;
        }
        if (p.leader != kDataLeader) {
            ev.kind = LinkEventKind::BadPacket;
            ev.detail = "unknown KD leader in a KDNET datagram";
            ++stats.bad_packets;
            return ev;
        }
        if (count > body.size() - 16) {
            ev.kind = LinkEventKind::BadPacket;
            ev.detail = "KD ByteCount runs past the KDNET datagram";
            ++stats.bad_packets;
            return ev;
        }
        p.payload.assign(body.begin() + 16, body.begin() + 16 + count);
        if (kd_checksum(p.payload.data(), p.payload.size()) != checksum) {
            ev.kind = LinkEventKind::BadPacket;
            ev.detail = "bad checksum";
            ++stats.bad_packets;
            return ev;
        }
        ++stats.packets_in;
        return ev;
    }

    // Host role: an authenticated control datagram from a target.
    void handle_offer(const KdnetDatagram& d, const udp::endpoint& from, Clock::time_point now) {
        const auto& body = d.body;
        if (body.size() < kRandomOffset + 32 || body[0] != kMsgTag || body[1] != kMsgOffer) {
            spdlog::debug("kdnet: control message {:#x}/{:#x} ignored", body.empty() ? 0 : body[0],
                          body.size() < 2 ? 0 : body[1]);
            ++stats.dropped;
            return;
        }
        (void)now;
        Random random{};
        std::copy_n(body.begin() + kRandomOffset, random.size(), random.begin());
        const bool fresh = control_in.fresh(d.seq);
        if (have_session && random == client_random) {
            // The same OFFER again: a duplicate (v5 sends each twice) or a retransmission
            // because our RESPONSE was lost. Answer a retransmission with the same RESPONSE,
            // so the session key does not change under the target's feet.
            if (!fresh) {
                ++stats.replays;
                ++stats.dropped;
                return;
            }
            control_in.mark(d.seq);
            peer = from;
            send_response(d.seq);
            return;
        }
        if (std::find(seen_randoms.begin(), seen_randoms.end(), random) != seen_randoms.end()) {
            ++stats.replays; // an OFFER of an earlier session
            ++stats.dropped;
            return;
        }
        // A new session: the first one, or the target rebooted (its seq numbers restarted).
        if (!fresh) {
            control_in.reset();
        }
        control_in.mark(d.seq);
        seen_randoms.push_back(random);
        if (seen_randoms.size() > kSeenRandoms) {
            seen_randoms.pop_front();
        }
        if (d.version != 2 && d.version != 4 && d.version != 5 &&
            std::find(versions_noticed.begin(), versions_noticed.end(), d.version) ==
                versions_noticed.end()) {
            versions_noticed.push_back(d.version);
            notice("the target speaks KDNET protocol version " + std::to_string(d.version) +
                   ", which kdcart knows only as 2, 4 and 5; answering anyway");
        }
        std::vector<uint8_t> resp(kResponseBodySize, 0);
        resp[0] = kMsgTag;
        resp[1] = kMsgResponse;
        std::copy(random.begin(), random.end(), resp.begin() + kRandomOffset);
        if (RAND_bytes(resp.data() + kHostRandomOffset, 32) != 1) {
            spdlog::debug("kdnet: RAND_bytes failed; OFFER left unanswered");
            return;
        }
        const bool rekey = have_session;
        const auto old_peer = peer;
        data = kdnet_data_key(control, resp);
        response_body = std::move(resp);
        client_random = random;
        have_session = true;
        peer = from;
        version = d.version;
        data_seq_out = 1;
        data_in.reset();
        orphan_since.reset();
        ++stats.handshakes;
        send_response(d.seq);
        if (rekey) {
            notice("target " + endpoint_text(from) +
                   " offered a new session (it restarted); new session key" +
                   (old_peer && *old_peer != from ? " (was " + endpoint_text(*old_peer) + ")"
                                                  : std::string()));
        } else {
            notice("target " + endpoint_text(from) + " connected (KDNET protocol " +
                   std::to_string(d.version) + ")");
        }
    }

    void send_response(uint64_t seq) {
        KdnetDatagram r;
        r.version = version;
        r.channel = kKdnetControlChannel;
        r.seq = seq;
        r.host_to_target = true;
        r.body = response_body;
        if (auto s = send_datagram(r, *peer); !s) {
            spdlog::debug("kdnet: RESPONSE not sent: {}", s.error().message);
        }
    }

    // Target role: an authenticated control datagram from the host.
    void handle_response(const KdnetDatagram& d) {
        const auto& body = d.body;
        if (data || body.size() < kHostRandomOffset + 32 || body[0] != kMsgTag ||
            body[1] != kMsgResponse ||
            !std::equal(client_random.begin(), client_random.end(), body.begin() + kRandomOffset)) {
            ++stats.dropped; // a duplicate, a RESPONSE to an older OFFER, or not a RESPONSE
            return;
        }
        if (!control_in.fresh(d.seq)) {
            ++stats.replays;
            ++stats.dropped;
            return;
        }
        control_in.mark(d.seq);
        data = kdnet_data_key(control, body);
        data_seq_out = 1;
        data_in.reset();
        ++stats.handshakes;
        notice("host " + endpoint_text(*peer) + " answered; KDNET session keyed");
        // The connection check: leader 0, type 0, ByteCount 0, id = host IPv4 address.
        std::vector<uint8_t> check(kConncheckSize, 0);
        uint32_t host_ip = 0;
        if (peer->address().is_v4()) {
            host_ip = peer->address().to_v4().to_uint();
        }
        for (int i = 0; i < 4; ++i) {
            check[8 + i] = static_cast<uint8_t>(host_ip >> (8 * i));
        }
        if (auto r = send_data_body(std::move(check)); !r) {
            spdlog::debug("kdnet: connection check not sent: {}", r.error().message);
        }
        while (!queued.empty()) {
            KdPacket p = std::move(queued.front());
            queued.pop_front();
            if (auto r = send_packet(p); !r) {
                spdlog::debug("kdnet: queued packet not sent: {}", r.error().message);
            }
        }
    }

    // Target role: send an OFFER when one is due.
    Result<void> maybe_offer(Clock::time_point now) {
        if (role != Role::Target || data || now < next_offer) {
            return {};
        }
        next_offer = now + target_cfg.offer_interval;
        std::vector<uint8_t> body(kOfferBodySize, 0);
        body[0] = kMsgTag;
        body[1] = kMsgOffer;
        std::copy(client_random.begin(), client_random.end(), body.begin() + kRandomOffset);
        put_mapped_endpoint(body, 34, offer_local_address, local_port());
        put_mapped_endpoint(body, 52, peer->address(), peer->port());
        if (version == 4) {
            put_mapped_endpoint(body, 70, asio::ip::address_v4::any(), 0);
        } else {
            put_mapped_endpoint(body, 70, peer->address(), peer->port());
        }
        KdnetDatagram d;
        d.version = version;
        d.channel = kKdnetControlChannel;
        d.seq = control_seq_out;
        control_seq_out += 3;
        d.host_to_target = false;
        d.body = std::move(body);
        return send_datagram(d, *peer);
    }

    uint16_t local_port() const {
        asio::error_code ec;
        const auto ep = socket.local_endpoint(ec);
        return ec ? 0 : ep.port();
    }

    bool new_client_random() { return RAND_bytes(client_random.data(), 32) == 1; }

    Result<LinkEvent> receive(Millis timeout) {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            auto now = Clock::now();
            if (auto r = maybe_offer(now); !r) {
                spdlog::debug("kdnet: OFFER not sent: {}", r.error().message);
            }
            bool drained = false;
            for (int i = 0; i < kBatch; ++i) {
                udp::endpoint from;
                asio::error_code ec;
                const size_t n = socket.receive_from(asio::buffer(rx), from, 0, ec);
                if (ec) {
                    if (would_block(ec)) {
                        drained = true;
                        break;
                    }
                    if (ec == asio::error::connection_refused || ec == asio::error::interrupted) {
                        continue; // an ICMP error for an earlier send: nothing to read
                    }
                    return make_error(Errc::Io, "kdnet: receive: " + ec.message());
                }
                last_activity = now;
                if (!survives(fault_in, std::span<uint8_t>(rx.data(), n))) {
                    continue;
                }
                if (auto ev = handle_datagram(std::span<const uint8_t>(rx.data(), n), from, now)) {
                    return std::move(*ev);
                }
            }
            now = Clock::now();
            // In the middle of an exchange the answer usually comes within microseconds: wait
            // for it awake for a moment instead of paying a sleep and wake-up per datagram.
            if (drained && now < deadline && now - last_activity < kSpinWindow) {
                const auto spin_end = std::min(deadline, now + kSpinFor);
                bool ready = false;
                while (!ready && Clock::now() < spin_end) {
                    pollfd pfd{socket.native_handle(), POLLIN, 0};
                    ready = ::poll(&pfd, 1, 0) > 0;
                }
                if (ready) {
                    continue;
                }
                now = Clock::now();
            }
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no KDNET packet from " + peer_text());
            }
            if (!drained) {
                continue; // more datagrams are waiting: handle the next batch
            }
            auto wake = deadline;
            if (role == Role::Target && !data) {
                wake = std::min(wake, next_offer);
            }
            pollfd pfd{socket.native_handle(), POLLIN, 0};
            const int rc = ::poll(&pfd, 1, poll_ms(std::chrono::duration_cast<Millis>(wake - now)));
            if (rc < 0 && errno != EINTR) {
                return make_error(Errc::Io, std::string("kdnet: poll: ") + std::strerror(errno));
            }
        }
    }

    std::string peer_text() const {
        if (role == Role::Host) {
            return peer ? "target " + endpoint_text(*peer) : "the target (no OFFER yet)";
        }
        return "host " + endpoint_text(*peer);
    }
};

KdnetLink::KdnetLink(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
KdnetLink::~KdnetLink() = default;

Result<std::unique_ptr<KdnetLink>> KdnetLink::create_host(const KdnetHostConfig& config) {
    auto key = parse_kdnet_key(config.key);
    if (!key) {
        return tl::unexpected(key.error());
    }
    auto impl = std::make_unique<Impl>();
    impl->role = Role::Host;
    impl->host_cfg = config;
    impl->host_cfg.key.clear();
    impl->control = *key;
    impl->hmac = kdnet_hmac_key(*key);
    OPENSSL_cleanse(key->data(), key->size());

    asio::error_code ec;
    asio::ip::address bind_addr = asio::ip::address_v4::any();
    if (config.host_ip && !config.host_ip->empty()) {
        bind_addr = asio::ip::make_address(*config.host_ip, ec);
        if (ec) {
            return make_error(Errc::InvalidArgument,
                              "kdnet: '" + *config.host_ip + "' is not an IP address");
        }
    }
    const udp::endpoint local(bind_addr, config.port);
    impl->socket.open(local.protocol(), ec);
    if (!ec) {
        impl->socket.bind(local, ec);
    }
    if (ec) {
        return make_error(Errc::Io,
                          "kdnet: cannot bind udp " + endpoint_text(local) + ": " + ec.message());
    }
    impl->socket.non_blocking(true, ec);
    if (ec) {
        return make_error(Errc::Io, "kdnet: cannot make the socket non-blocking: " + ec.message());
    }
    asio::error_code ignored;
    impl->socket.set_option(asio::socket_base::receive_buffer_size(1 << 20), ignored);
    return std::unique_ptr<KdnetLink>(new KdnetLink(std::move(impl)));
}

Result<std::unique_ptr<KdnetLink>> KdnetLink::create_target(const KdnetTargetConfig& config) {
    auto key = parse_kdnet_key(config.key);
    if (!key) {
        return tl::unexpected(key.error());
    }
    if (config.version == 0) {
        return make_error(Errc::InvalidArgument, "kdnet: protocol version 0 is not valid");
    }
    asio::error_code ec;
    const auto host_addr = asio::ip::make_address(config.host_ip, ec);
    if (ec || !host_addr.is_v4()) {
        return make_error(Errc::InvalidArgument,
                          "kdnet: the host address '" + config.host_ip + "' is not IPv4");
    }
    if (config.port == 0) {
        return make_error(Errc::InvalidArgument, "kdnet: the host port must not be 0");
    }
    auto impl = std::make_unique<Impl>();
    impl->role = Role::Target;
    impl->target_cfg = config;
    impl->target_cfg.key.clear();
    impl->control = *key;
    impl->hmac = kdnet_hmac_key(*key);
    OPENSSL_cleanse(key->data(), key->size());
    impl->version = config.version;
    impl->peer = udp::endpoint(host_addr, config.port);
    if (config.faults.active()) {
        impl->fault_out.emplace(config.faults, 1);
        impl->fault_in.emplace(config.faults, 2);
        impl->fault_report = config.fault_report;
    }

    const udp::endpoint local(asio::ip::address_v4::any(), config.local_port.value_or(0));
    impl->socket.open(udp::v4(), ec);
    if (!ec) {
        impl->socket.bind(local, ec);
    }
    if (ec) {
        return make_error(Errc::Io,
                          "kdnet: cannot bind udp " + endpoint_text(local) + ": " + ec.message());
    }
    impl->socket.non_blocking(true, ec);
    if (ec) {
        return make_error(Errc::Io, "kdnet: cannot make the socket non-blocking: " + ec.message());
    }
    // The address the OFFER names as ours: the one the route to the host leaves from.
    {
        udp::socket probe(impl->io);
        asio::error_code pec;
        probe.open(udp::v4(), pec);
        if (!pec) {
            probe.connect(*impl->peer, pec);
        }
        impl->offer_local_address = pec ? asio::ip::address(asio::ip::address_v4::any())
                                        : probe.local_endpoint(pec).address();
    }
    if (!impl->new_client_random()) {
        return make_error(Errc::Io, "kdnet: no random numbers (RAND_bytes failed)");
    }
    impl->next_offer = Clock::now(); // the first OFFER goes out on the first send/receive
    return std::unique_ptr<KdnetLink>(new KdnetLink(std::move(impl)));
}

Result<void> KdnetLink::send(const KdPacket& packet) {
    return m_impl->send_packet(packet);
}

Result<void> KdnetLink::send_breakin() {
    if (m_impl->role == Role::Target) {
        return make_error(Errc::Unsupported, "kdnet: only the host sends break-in");
    }
    if (!m_impl->data || !m_impl->peer) {
        spdlog::debug("kdnet: no target yet, break-in not sent");
        return {};
    }
    return m_impl->send_data_body({kBreakinByte});
}

Result<LinkEvent> KdnetLink::receive(Millis timeout) {
    return m_impl->receive(timeout);
}

LinkStats KdnetLink::stats() const {
    return m_impl->stats;
}

std::string KdnetLink::describe() const {
    const auto& m = *m_impl;
    asio::error_code ec;
    const auto local = m.socket.local_endpoint(ec);
    const std::string here = ec ? std::string("udp") : "udp " + endpoint_text(local);
    if (m.role == Role::Host) {
        if (!m.peer) {
            return "kdnet " + here + " (waiting for the target's OFFER)";
        }
        return "kdnet " + here + " <-> target " + endpoint_text(*m.peer) + " (protocol " +
               std::to_string(m.version) + (m.data ? ")" : ", no session)");
    }
    return "kdnet target " + here + " -> host " + endpoint_text(*m.peer) +
           (m.data ? "" : " (offering)");
}

void KdnetLink::discard_input() {
    auto& m = *m_impl;
    const auto now = Clock::now();
    for (int i = 0; i < kDiscardLimit; ++i) {
        udp::endpoint from;
        asio::error_code ec;
        const size_t n = m.socket.receive_from(asio::buffer(m.rx), from, 0, ec);
        if (ec) {
            if (ec == asio::error::connection_refused || ec == asio::error::interrupted) {
                continue;
            }
            break;
        }
        // Handshake traffic is still handled; KD packets are dropped.
        (void)m.handle_datagram(std::span<const uint8_t>(m.rx.data(), n), from, now);
    }
}

std::vector<std::string> KdnetLink::take_notices() {
    std::vector<std::string> out;
    out.swap(m_impl->notices);
    return out;
}

uint16_t KdnetLink::local_port() const {
    return m_impl->local_port();
}

bool KdnetLink::connected() const {
    return m_impl->data.has_value();
}

uint8_t KdnetLink::protocol_version() const {
    return m_impl->data ? m_impl->version : 0;
}

void KdnetLink::restart_handshake() {
    auto& m = *m_impl;
    if (m.role != Role::Target) {
        return;
    }
    m.data.reset();
    m.queued.clear();
    m.data_in.reset();
    m.control_in.reset();
    m.data_seq_out = 1;
    m.control_seq_out = 3;
    if (!m.new_client_random()) {
        spdlog::debug("kdnet: RAND_bytes failed; reusing the client random");
    }
    m.next_offer = Clock::now();
}

Result<std::unique_ptr<PacketLink>> make_kdnet_host_link(const KdnetHostConfig& config) {
    auto link = KdnetLink::create_host(config);
    if (!link) {
        return tl::unexpected(link.error());
    }
    return std::unique_ptr<PacketLink>(std::move(*link));
}

Result<std::unique_ptr<PacketLink>> make_kdnet_target_link(const KdnetTargetConfig& config) {
    auto link = KdnetLink::create_target(config);
    if (!link) {
        return tl::unexpected(link.error());
    }
    return std::unique_ptr<PacketLink>(std::move(*link));
}

} // namespace kdcart::transport
