#pragma once
// A KD packet as the links move it: the 16-byte header's meaning plus the payload.
#include <cstdint>
#include <string>
#include <vector>

namespace kdcart::transport {

struct KdPacket {
    uint16_t type = 0;   // PACKET_TYPE_*
    uint32_t id = 0;     // PacketId as on the wire
    std::vector<uint8_t> payload;
    uint32_t leader = 0; // filled on receive: 0x30303030, 0x69696969 (or 0 for KDNET conncheck)

    bool is_control() const { return type == 4 || type == 5 || type == 6; }
};

// 32-bit sum of the payload bytes, as KD checksums it.
uint32_t kd_checksum(const uint8_t* data, size_t len);

enum class LinkEventKind {
    Packet,    // a well-formed packet
    BreakIn,   // the break-in byte 0x62 arrived (target side) / a break-in datagram
    BadPacket, // a packet arrived damaged (bad checksum, no trailer, too long): ask RESEND
};

struct LinkEvent {
    LinkEventKind kind = LinkEventKind::Packet;
    KdPacket packet;    // for Packet, and the header fields we saw for BadPacket
    std::string detail; // why a packet was bad
};

// How packet ids behave on a link (kd-protocol.md §1.4, §4.4, §5.2).
enum class IdScheme {
    Kdcom, // 0x80800000 with SYNC bit 0x800; toggles bit 0
    Kdnet, // target from 0 step 2, host from 0x80000000 step 2; no SYNC
    Kd1394 // ids simply increase; no ACK packets
};

struct LinkStats {
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t packets_in = 0;
    uint64_t packets_out = 0;
    uint64_t garbage_bytes = 0; // bytes dropped while hunting for a leader
    uint64_t bad_packets = 0;   // checksum, trailer, length
    uint64_t dropped = 0;       // datagrams dropped (KDNET: bad tag, short, not MDBG)
    uint64_t auth_failures = 0; // KDNET: datagrams whose tag did not verify (also in dropped)
    uint64_t replays = 0;       // KDNET: a seq seen before, or our own datagram reflected
    uint64_t handshakes = 0;    // KDNET: OFFER/RESPONSE exchanges that set a data key
};

} // namespace kdcart::transport
