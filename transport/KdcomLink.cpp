// KDCOM: the KD packet link over a byte stream (serial, pty, pipe, TCP).
#include "transport/KdcomCodec.h"
#include "transport/PacketLink.h"

#include <algorithm>
#include <deque>
#include <spdlog/spdlog.h>

namespace kdcart::transport {

namespace {

// A line that goes quiet in the middle of a packet has lost bytes: the packet is reported
// damaged (the session asks for it again) and parsing starts over. How long is "quiet" is
// learnt from the line: four times the longest recent pause inside a packet plus 50 ms, between
// 50 ms (a USB serial adapter delivers in bursts every 16 ms, a loaded host schedules late) and
// 200 ms (where it starts, and
// plenty for a UART: even at 9600 baud with a USB adapter's 16 ms latency timer the pauses are
// a few milliseconds). A pause longer than the limit on a slow line costs one RESEND, not data.
constexpr Millis kMinGap{50};
constexpr Millis kMaxGap{200};

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
            const Millis gap = quiet_limit();
            if (m_decoder.mid_packet() && m_quiet >= gap) {
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
                wake = std::min(wake, now + (gap - m_quiet));
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
            const auto arrived = Clock::now();
            if (m_decoder.in_packet()) {
                // A pause inside a packet that then went on: how this line delivers. (Bytes
                // that waited in the OS buffer only make it look longer: the safe side.)
                const double pause =
                    std::chrono::duration<double, std::milli>(arrived - m_last_data).count();
                m_recent_pause = std::max(pause, m_recent_pause);
            }
            m_last_data = arrived;
            m_quiet = Millis(0);
            m_stats.bytes_in += *n;
            std::vector<LinkEvent> events;
            m_decoder.feed(std::span<const uint8_t>(buf, *n), events);
            for (auto& e : events) {
                if (e.kind == LinkEventKind::Packet) {
                    m_recent_pause *= 0.9; // forget old pauses, packet by packet
                }
                m_pending.push_back(std::move(e));
            }
            m_stats.garbage_bytes = m_decoder.garbage_bytes();
        }
    }

    Millis quiet_limit() const {
        const double ms = 4 * m_recent_pause + static_cast<double>(kMinGap.count());
        return Millis(static_cast<int64_t>(std::clamp(ms, static_cast<double>(kMinGap.count()),
                                                      static_cast<double>(kMaxGap.count()))));
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
    // The longest recent pause inside a packet that went on (ms), decaying per packet; starts
    // high, so the limit starts at kMaxGap until the line has shown how it delivers.
    double m_recent_pause = 45;
    std::chrono::steady_clock::time_point m_last_data{};
};

} // namespace

std::unique_ptr<PacketLink> make_kdcom_link(std::unique_ptr<ByteStream> stream) {
    return std::make_unique<KdcomLink>(std::move(stream));
}

} // namespace kdcart::transport
