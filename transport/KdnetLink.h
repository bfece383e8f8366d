#pragma once
// KDNET (kd-protocol.md §4): the KD packet link over encrypted UDP datagrams. Synchronous and
// single-threaded: every call does its socket work itself, with poll() for timeouts.
//
// Host role (kdcart): binds [hostip:]port, learns the target from its first authenticated
// OFFER, answers with a RESPONSE and derives the data key, answers the target's 12-byte
// connection check with RESEND itself, then moves KD packets (no 0xAA trailer). A target that
// reboots offers again and gets a new session key. Until the handshake is done, packets the
// session sends are dropped as if lost on the wire (the KD layer retries).
//
// Target role (kdsim): sends OFFERs to hostip:port every offer_interval until a RESPONSE
// authenticates, derives the data key, sends the connection check, then moves KD packets.
// Packets sent before that are queued. A datagram whose KD body is the single byte 0x62 is
// reported as LinkEventKind::BreakIn.
//
// Dropped (and counted in LinkStats::dropped): short or non-MDBG datagrams, bad tags
// (auth_failures), replays or reflections (replays), data from anyone but the peer.
#include "transport/FaultInjection.h"
#include "transport/PacketLink.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace kdcart::transport {

struct KdnetHostConfig {
    uint16_t port = 50000;              // 0 picks a free port (tests)
    std::optional<std::string> host_ip; // bind address; all IPv4 addresses when unset
    std::string key;                    // "w.x.y.z"
    // OFFERs that keep failing to authenticate this long produce the wrong-key notice (and
    // data packets without a session, the "attached to an earlier debugger" notice)...
    Millis notice_after{5000};
    // ...which is queued again at most this often.
    Millis notice_repeat{30000};
};

struct KdnetTargetConfig {
    std::string host_ip; // IPv4 address of the debugger host
    uint16_t port = 50000;
    std::string key;     // "w.x.y.z"
    uint8_t version = 5; // protocol byte: 2 (Win8), 4 (Win10 boot debugger), 5 (Win10 19041)
    std::optional<uint16_t> local_port; // unset: an ephemeral port
    Millis offer_interval{3000};
    // kdsim's fault injection, per datagram each way (FaultInjection.h); off by default.
    FaultConfig faults;
    std::shared_ptr<FaultReport> fault_report;
};

class KdnetLink final : public PacketLink {
  public:
    [[nodiscard]] static Result<std::unique_ptr<KdnetLink>>
    create_host(const KdnetHostConfig& config);
    [[nodiscard]] static Result<std::unique_ptr<KdnetLink>>
    create_target(const KdnetTargetConfig& config);
    ~KdnetLink() override;
    KdnetLink(const KdnetLink&) = delete;
    KdnetLink& operator=(const KdnetLink&) = delete;

    [[nodiscard]] Result<void> send(const KdPacket& packet) override;
    [[nodiscard]] Result<void> send_breakin() override;
    [[nodiscard]] Result<LinkEvent> receive(Millis timeout) override;
    IdScheme id_scheme() const override { return IdScheme::Kdnet; }
    LinkStats stats() const override;
    std::string describe() const override;
    void discard_input() override;
    // One KD packet per datagram on a 1500-byte MTU without IP fragmentation: 0x480 bytes of
    // memory data (rizin's KD_MAX_PAYLOAD, kd-protocol.md §4.6) plus the 0x38-byte manipulate
    // header. The datagram is then 6 + 16 (tag) + 8 (word) + 16 (KD header) + 0x4B8 + at most
    // 15 bytes of padding = 1269 bytes, 1297 with the IPv4 and UDP headers.
    uint32_t max_payload() const override { return 0x480 + 0x38; }
    std::vector<std::string> take_notices() override;

    // The UDP port this end is bound to.
    uint16_t local_port() const;
    // True once a data key is set (the handshake completed).
    bool connected() const;
    // The protocol byte in use (the target's, echoed by the host); 0 before a handshake.
    uint8_t protocol_version() const;
    // Target role: forget the session and offer again, as a rebooting target does.
    void restart_handshake();
    void restart() override { restart_handshake(); }

  private:
    struct Impl;
    explicit KdnetLink(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

[[nodiscard]] Result<std::unique_ptr<PacketLink>>
make_kdnet_host_link(const KdnetHostConfig& config);
[[nodiscard]] Result<std::unique_ptr<PacketLink>>
make_kdnet_target_link(const KdnetTargetConfig& config);

} // namespace kdcart::transport
