// KDCOM: the KD packet link over a byte stream (serial, pty, pipe, TCP).
#include "transport/KdcomCodec.h"
#include "transport/PacketLink.h"

#include <deque>
#include <spdlog/spdlog.h>

namespace kdcart::transport {

namespace {

// A line that goes quiet this long in the middle of a packet has lost bytes: the packet is
// reported damaged (the session asks for it again) and parsing starts over. A UART delivers a
// packet's bytes back to back; even at 9600 baud with a USB adapter's latency timer the gaps
// are a few milliseconds.
constexpr Millis kInterByteGap{200};

class KdcomLink final : public PacketLink {
public:
    explicit KdcomLink(std::unique_ptr<ByteStream> stream) : m_stream(std::move(stream)) {}

    Result<void> send(const KdPacket& packet) override {
        auto bytes = kdcom_encode(packet);
        m_stats.bytes_out += bytes.size();
        ++m_stats.packets_out;
        return m_stream->write_all(bytes);
    }

    Result<void> send_breakin() override {
        const uint8_t b = 0x62;
        ++m_stats.bytes_out;
        return m_stream->write_all(std::span<const uint8_t>(&b, 1));
    }

    Result<LinkEvent> receive(Millis timeout) override {
        using Clock = std::chrono::steady_clock;
        const auto deadline = Clock::now() + timeout;
        uint8_t buf[4096];
        for (;;) {
            if (!m_pending.empty()) {
                LinkEvent ev = std::move(m_pending.front());
                m_pending.pop_front();
                if (ev.kind == LinkEventKind::BadPacket) {
                    ++m_stats.bad_packets;
                } else if (ev.kind == LinkEventKind::Packet) {
                    ++m_stats.packets_in;
                }
                return ev;
            }
            // Quiet is what we saw while waiting for bytes, not the time between our reads:
            // bytes that sat in the OS buffer while nobody read are no gap.
            if (m_decoder.mid_packet() && m_quiet >= kInterByteGap) {
                const bool was_packet = m_decoder.in_packet();
                spdlog::debug("kdcom: line quiet for {} ms mid-packet, starting over",
                              m_quiet.count());
                m_decoder.reset();
                m_quiet = Millis(0);
                m_stats.garbage_bytes = m_decoder.garbage_bytes();
                if (was_packet) {
                    // Bytes were lost: the rest of this packet is not coming. Reported damaged
                    // so that the session asks for it again at once.
                    ++m_stats.bad_packets;
                    return LinkEvent{LinkEventKind::BadPacket, {},
                                     "truncated (line quiet mid-packet)"};
                }
            }
            const auto now = Clock::now();
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no packet from " + m_stream->describe());
            }
            auto wake = deadline;
            if (m_decoder.mid_packet()) {
                wake = std::min(wake, now + (kInterByteGap - m_quiet));
            }
            auto left = std::chrono::duration_cast<Millis>(wake - now) + Millis(1);
            auto n = m_stream->read_some(buf, left);
            if (!n) {
                if (n.error().code == Errc::Timeout) {
                    if (m_decoder.mid_packet()) {
                        m_quiet += std::chrono::duration_cast<Millis>(Clock::now() - now);
                    }
                    continue; // the loop decides: truncated packet, or the caller's time is up
                }
                return tl::unexpected(n.error());
            }
            m_quiet = Millis(0);
            m_stats.bytes_in += *n;
            std::vector<LinkEvent> events;
            m_decoder.feed(std::span<const uint8_t>(buf, *n), events);
            for (auto& e : events) {
                m_pending.push_back(std::move(e));
            }
            m_stats.garbage_bytes = m_decoder.garbage_bytes();
        }
    }

    IdScheme id_scheme() const override { return IdScheme::Kdcom; }
    LinkStats stats() const override { return m_stats; }
    std::string describe() const override { return m_stream->describe(); }

    void discard_input() override {
        m_pending.clear();
        m_decoder.reset();
        m_quiet = Millis(0);
        uint8_t buf[4096];
        while (m_stream->read_some(buf, Millis(0))) {
        }
    }

private:
    std::unique_ptr<ByteStream> m_stream;
    KdcomDecoder m_decoder;
    std::deque<LinkEvent> m_pending;
    LinkStats m_stats;
    Millis m_quiet{0}; // waited without a byte while a packet was under way
};

} // namespace

std::unique_ptr<PacketLink> make_kdcom_link(std::unique_ptr<ByteStream> stream) {
    return std::make_unique<KdcomLink>(std::move(stream));
}

} // namespace kdcart::transport
