// libFuzzer target: KDCOM framing and the session's packet handling, on bytes from the line.
//
// The input is what the target side of a serial line delivers. It is (1) decoded whole and in
// pieces, which must give the same packets; (2) fed through a KdcomLink into a KdSession that
// waits for a stop and makes a request, as kdcart does, with every timeout at zero so that an
// input costs microseconds. Whatever the bytes, nothing may crash, hang or trip a sanitizer.
//
//   build-fuzz/bin/fuzz_kdcom_session -max_total_time=60 WORKDIR tests/fuzz/corpus/kdcom_session
#include "protocol/KdClient.h"
#include "transport/KdcomCodec.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>

using namespace kdcart;
using namespace kdcart::transport;

namespace {

// The line: the input in pieces, then silence (a Timeout at once, never a wait).
class ScriptedStream final : public ByteStream {
public:
    explicit ScriptedStream(std::deque<std::vector<uint8_t>> pieces) : m_pieces(std::move(pieces)) {}
    Result<size_t> read_some(std::span<uint8_t> buf, Millis) override {
        if (m_pieces.empty()) {
            return make_error(Errc::Timeout, "quiet");
        }
        auto& p = m_pieces.front();
        const size_t n = std::min(buf.size(), p.size());
        std::memcpy(buf.data(), p.data(), n);
        p.erase(p.begin(), p.begin() + static_cast<long>(n));
        if (p.empty()) {
            m_pieces.pop_front();
        }
        return n;
    }
    Result<void> write_all(std::span<const uint8_t> data) override {
        m_written += data.size();
        return {};
    }
    std::string describe() const override { return "fuzz"; }
    bool drained() const { return m_pieces.empty(); }

private:
    std::deque<std::vector<uint8_t>> m_pieces;
    size_t m_written = 0;
};

struct Quiet : protocol::SessionDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return "fuzz"; }
    void on_link_notice(std::string_view) override {}
};

bool same(const LinkEvent& a, const LinkEvent& b) {
    return a.kind == b.kind && a.packet.type == b.packet.type && a.packet.id == b.packet.id &&
           a.packet.payload == b.packet.payload && a.packet.leader == b.packet.leader;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::span<const uint8_t> all(data, size);

    // (1) The decoder: whole and split at every 7th byte give the same packets.
    std::vector<LinkEvent> whole;
    {
        KdcomDecoder d;
        d.feed(all, whole);
    }
    std::vector<LinkEvent> split;
    {
        KdcomDecoder d;
        for (size_t off = 0; off < size; off += 7) {
            d.feed(all.subspan(off, std::min<size_t>(7, size - off)), split);
        }
    }
    if (whole.size() != split.size()) {
        std::abort();
    }
    for (size_t i = 0; i < whole.size(); ++i) {
        if (!same(whole[i], split[i])) {
            std::abort();
        }
    }

    // (2) The session, with pieces cut where the input's first byte says.
    std::deque<std::vector<uint8_t>> pieces;
    const size_t step = 1 + data[0] % 64;
    for (size_t off = 1; off < size; off += step) {
        pieces.emplace_back(data + off, data + std::min(size, off + step));
    }
    auto stream = std::make_unique<ScriptedStream>(std::move(pieces));
    ScriptedStream* line = stream.get();
    Quiet quiet;
    protocol::SessionOptions opt;
    opt.ack_timeout = Millis(0);
    opt.send_retries = 1;
    opt.reply_timeout = Millis(0);
    opt.idle_nudge = Millis(0);
    opt.reset_interval = Millis(0);
    protocol::KdSession session(make_kdcom_link(std::move(stream)), &quiet, opt);
    protocol::KdClient client(session);
    for (int round = 0; round < 64 && !line->drained(); ++round) {
        if (auto sc = session.wait_state_change(Millis(0)); sc) {
            client.set_current_processor(sc->change.Processor, sc->change.ProcessorLevel);
        }
        switch (round % 4) {
        case 0:
            (void)client.read_virtual(0xfffff80000600000, 0x100);
            break;
        case 1:
            (void)client.get_version();
            break;
        case 2:
            (void)client.get_context(0);
            break;
        default:
            (void)session.reset(Millis(0));
            break;
        }
    }
    (void)session.error_events();
    return 0;
}
