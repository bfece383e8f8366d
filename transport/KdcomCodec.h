#pragma once
// KDCOM framing (kd-protocol.md §1.2): leader, 12 header bytes, payload, 0xAA trailer on data
// packets. The decoder is incremental: feed it whatever the line delivered, in any split.
#include "transport/KdPacket.h"
#include <cstdint>
#include <span>
#include <vector>

namespace kdcart::transport {

// Bytes on the wire for one packet (data packets get the 0xAA trailer; control packets do not).
std::vector<uint8_t> kdcom_encode(const KdPacket& packet);

class KdcomDecoder {
public:
    // Consumes bytes and appends what they completed to `out`.
    void feed(std::span<const uint8_t> bytes, std::vector<LinkEvent>& out);
    // Forgets a partially received packet (after a long gap on the line).
    void reset();
    bool mid_packet() const { return m_state != State::Leader || m_leader_count > 0; }
    // Past a whole leader: a packet has begun.
    bool in_packet() const { return m_state != State::Leader; }
    uint64_t garbage_bytes() const { return m_garbage; }

private:
    enum class State { Leader, Header, Payload, Trailer };
    void finish(std::vector<LinkEvent>& out, bool trailer_ok);

    State m_state = State::Leader;
    uint8_t m_leader_byte = 0;
    int m_leader_count = 0;
    uint8_t m_header[12] = {};
    size_t m_header_len = 0;
    KdPacket m_packet;
    size_t m_need = 0;
    uint64_t m_garbage = 0;
};

} // namespace kdcart::transport
