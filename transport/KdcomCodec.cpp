#include "transport/KdcomCodec.h"

#include <cstring>

namespace kdcart::transport {

namespace {
constexpr uint8_t kDataLeader = 0x30;
constexpr uint8_t kControlLeader = 0x69;
constexpr uint8_t kBreakIn = 0x62;
constexpr uint8_t kTrailer = 0xAA;
constexpr uint32_t kMaxPayload = 4000;

void put32(std::vector<uint8_t>& v, uint32_t x) {
    for (int i = 0; i < 4; ++i) {
        v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    }
}
void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x));
    v.push_back(static_cast<uint8_t>(x >> 8));
}
} // namespace

uint32_t kd_checksum(const uint8_t* data, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i < len; ++i) {
        sum += data[i];
    }
    return sum;
}

std::vector<uint8_t> kdcom_encode(const KdPacket& packet) {
    std::vector<uint8_t> out;
    out.reserve(16 + packet.payload.size() + 1);
    const bool control = packet.is_control();
    put32(out, control ? 0x69696969u : 0x30303030u);
    put16(out, packet.type);
    put16(out, static_cast<uint16_t>(control ? 0 : packet.payload.size()));
    put32(out, packet.id);
    put32(out, control ? 0 : kd_checksum(packet.payload.data(), packet.payload.size()));
    if (!control) {
        out.insert(out.end(), packet.payload.begin(), packet.payload.end());
        out.push_back(kTrailer);
    }
    return out;
}

void KdcomDecoder::reset() {
    if (m_state != State::Leader) {
        m_garbage += 4 + m_header_len + m_packet.payload.size();
    }
    m_state = State::Leader;
    m_leader_count = 0;
    m_header_len = 0;
    m_packet = {};
}

void KdcomDecoder::finish(std::vector<LinkEvent>& out, bool trailer_ok) {
    LinkEvent ev;
    const uint32_t expected = [&] {
        uint32_t c;
        std::memcpy(&c, m_header + 8, 4);
        return c;
    }();
    const uint32_t actual = kd_checksum(m_packet.payload.data(), m_packet.payload.size());
    if (!trailer_ok) {
        ev.kind = LinkEventKind::BadPacket;
        ev.detail = "missing 0xAA trailer";
    } else if (expected != actual) {
        ev.kind = LinkEventKind::BadPacket;
        ev.detail = "bad checksum";
    } else {
        ev.kind = LinkEventKind::Packet;
    }
    ev.packet = std::move(m_packet);
    out.push_back(std::move(ev));
    m_packet = {};
    m_state = State::Leader;
    m_leader_count = 0;
    m_header_len = 0;
}

void KdcomDecoder::feed(std::span<const uint8_t> bytes, std::vector<LinkEvent>& out) {
    size_t i = 0;
    while (i < bytes.size()) {
        const uint8_t b = bytes[i];
        switch (m_state) {
        case State::Leader:
            ++i;
            if (b == kDataLeader || b == kControlLeader) {
                if (m_leader_count > 0 && b == m_leader_byte) {
                    ++m_leader_count;
                } else {
                    m_garbage += static_cast<uint64_t>(m_leader_count);
                    m_leader_byte = b;
                    m_leader_count = 1;
                }
                if (m_leader_count == 4) {
                    m_state = State::Header;
                    m_header_len = 0;
                    m_packet = {};
                    m_packet.leader = b == kDataLeader ? 0x30303030u : 0x69696969u;
                }
            } else if (b == kBreakIn) {
                m_garbage += static_cast<uint64_t>(m_leader_count);
                m_leader_count = 0;
                out.push_back(LinkEvent{LinkEventKind::BreakIn, {}, {}});
            } else {
                m_garbage += static_cast<uint64_t>(m_leader_count) + 1;
                m_leader_count = 0;
            }
            break;
        case State::Header: {
            // More than four leader bytes in a row: the packet starts later. PacketType's low
            // byte is never 0x30 or 0x69, so sliding is safe.
            if (m_header_len == 0 && b == m_leader_byte) {
                ++m_garbage;
                ++i;
                break;
            }
            size_t take = std::min(sizeof m_header - m_header_len, bytes.size() - i);
            std::memcpy(m_header + m_header_len, bytes.data() + i, take);
            m_header_len += take;
            i += take;
            if (m_header_len < sizeof m_header) {
                break;
            }
            uint16_t count;
            std::memcpy(&m_packet.type, m_header + 0, 2);
            std::memcpy(&count, m_header + 2, 2);
            std::memcpy(&m_packet.id, m_header + 4, 4);
            if (m_packet.leader == 0x69696969u) {
                // Control packets are the header alone; ByteCount should be 0. A non-zero
                // count is ignored rather than swallowing what follows.
                out.push_back(LinkEvent{LinkEventKind::Packet, std::move(m_packet), {}});
                m_packet = {};
                m_state = State::Leader;
                m_leader_count = 0;
                break;
            }
            if (count > kMaxPayload) {
                LinkEvent ev{LinkEventKind::BadPacket, std::move(m_packet),
                             "ByteCount " + std::to_string(count) + " over 4000"};
                out.push_back(std::move(ev));
                m_packet = {};
                m_garbage += 16;
                m_state = State::Leader;
                m_leader_count = 0;
                break;
            }
            m_need = count;
            m_packet.payload.reserve(count);
            m_state = count ? State::Payload : State::Trailer;
            break;
        }
        case State::Payload: {
            size_t take = std::min(m_need, bytes.size() - i);
            m_packet.payload.insert(m_packet.payload.end(), bytes.begin() + static_cast<long>(i),
                                    bytes.begin() + static_cast<long>(i + take));
            m_need -= take;
            i += take;
            if (m_need == 0) {
                m_state = State::Trailer;
            }
            break;
        }
        case State::Trailer:
            ++i;
            finish(out, b == kTrailer);
            break;
        }
    }
}

} // namespace kdcart::transport
