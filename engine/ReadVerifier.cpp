#include "engine/ReadVerifier.h"
#include "engine/HexText.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace kdcart::engine {

using protocol::ReadResult;

namespace {

// Error events decay by half for every this many bytes of traffic: a link is noisy while it
// has shown about one error in the last 128-256 KB.
constexpr double kWindowBytes = 256.0 * 1024;
// Reads of the same range before giving up on two of them agreeing.
constexpr int kMaxReads = 6;
// Wire bytes a request and its reply cost besides the data (KDCOM: request 16+56+1, its ACK 16,
// the reply's header 16+56+1, our ACK 16).
constexpr double kRequestOverhead = 178;
// RESENDs of one damaged reply before it is given up on for a smaller request.
constexpr int kReplyRetries = 3;

} // namespace

std::string ReadVerifier::error_summary() const {
    // What made it noisy, as counted so far: every kind error_events() sums that happened.
    const auto s = m_session.counters();
    const auto l = m_session.link_stats();
    const std::pair<uint64_t, const char*> kinds[] = {
        {l.bad_packets, "bad packets"},
        {s.resends_sent, "RESENDs asked"},
        {s.resends_received, "RESENDs received"},
        {s.retransmits, "retransmits"},
        {s.duplicates, "duplicate packets"},
        {s.implausible, "implausible packets"},
        {s.target_resets, "RESETs from the target"},
        {s.timeouts, "timeouts"},
        {l.dropped, "datagrams lost"},
        {l.garbage_bytes, "garbage bytes"},
    };
    std::string out;
    for (const auto& [n, what] : kinds) {
        if (n != 0) {
            out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + what;
        }
    }
    return out.empty() ? "errors seen" : out;
}

ReadVerifier::ReadVerifier(protocol::KdSession& session, Notice notice)
    : m_session(session), m_notice(std::move(notice)), m_sizer(session.max_transfer()) {}

void ReadVerifier::update_health() {
    const auto st = m_session.link_stats();
    const uint64_t bytes = st.bytes_in + st.bytes_out;
    const uint64_t errors = m_session.error_events();
    // Errors from before the first read count too: a session whose first read is its big one
    // must not read it unverified on a line that already showed damage while connecting.
    m_started = true;
    m_recent_bytes += static_cast<double>(bytes - m_seen_bytes);
    m_recent_errors += static_cast<double>(errors - m_seen_errors);
    m_seen_bytes = bytes;
    m_seen_errors = errors;
    while (m_recent_bytes > kWindowBytes) {
        m_recent_bytes *= 0.5;
        m_recent_errors *= 0.5;
    }
}

LinkHealth ReadVerifier::health() {
    update_health();
    LinkHealth h = m_last;
    h.noisy = m_recent_errors >= 1.0;
    h.recent_errors = m_recent_errors;
    h.recent_bytes = m_recent_bytes;
    // A damaged packet shows as about two events (the bad packet and the RESEND for it).
    h.byte_error_rate = m_recent_bytes > 0 ? (m_recent_errors / 2) / m_recent_bytes : 0;
    h.session = m_session.counters();
    h.link = m_session.link_stats();
    h.chunk = chunk_size();
    return h;
}

bool ReadVerifier::verifying() {
    update_health();
    const bool noisy = m_recent_errors >= 1.0;
    switch (m_mode) {
    case VerifyMode::On:
        return true;
    case VerifyMode::Off:
        return m_for_dump && noisy;
    case VerifyMode::Auto:
        break;
    }
    return noisy;
}

uint32_t ReadVerifier::chunk_size() {
    const uint32_t max = std::max<uint32_t>(m_session.max_transfer(), 1);
    m_sizer.set_max(max);
    if (m_session.id_scheme() != transport::IdScheme::Kdcom) {
        return max; // KDNET loses whole datagrams: smaller ones do not help
    }
    return m_sizer.size();
}

Result<ReadResult> ReadVerifier::fetch_once(const Fetch& fetch, uint64_t address, uint32_t size) {
    Result<ReadResult> r = make_error(Errc::Timeout, "no attempt");
    m_ask_smaller = false;
    const bool kdcom = m_session.id_scheme() == transport::IdScheme::Kdcom;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const uint64_t before = m_session.link_stats().bytes_in;
        const uint64_t errors_before = m_session.error_events();
        const auto c0 = m_session.counters();
        // A reply damaged again and again is given up on while a smaller request can be made
        // (it then gets through where this one does not); at the smallest size the session
        // asks for it until its reply_timeout.
        const bool resizable = kdcom && m_resizable && size > m_sizer.min();
        m_session.set_reply_retry_limit(resizable ? kReplyRetries : 0);
        r = fetch(address, size);
        m_session.set_reply_retry_limit(0);
        ++m_read_requests;
        if (kdcom) {
            // Each damaged attempt of this exchange shows as a packet sent again: a RESEND we
            // asked for (a damaged or missing reply), one the target asked for (a damaged
            // request) or our request sent again (its ACK lost).
            const auto c = m_session.counters();
            const uint64_t errors = m_session.error_events() - errors_before;
            const uint64_t attempts = (c.resends_sent + c.resends_received + c.retransmits) -
                                      (c0.resends_sent + c0.resends_received + c0.retransmits);
            const uint32_t damaged =
                errors == 0 ? 0 : static_cast<uint32_t>(std::max<uint64_t>(attempts, 1));
            if (r || damaged != 0) {
                m_sizer.record(size, damaged, r.has_value());
            }
        }
        if (r || r.error().code != Errc::Timeout) {
            return r;
        }
        if (m_session.link_stats().bytes_in == before) {
            return r; // not a byte came back: the line is dead, asking again will not help
        }
        if (resizable && m_sizer.size() < size) {
            m_ask_smaller = true; // the line is alive: ask for fewer bytes
            return r;
        }
        // The line is alive but this exchange was lost: a new request.
    }
    return r;
}

Result<ReadResult> ReadVerifier::fetch_verified(const Fetch& fetch, uint64_t address,
                                                uint32_t size) {
    std::vector<ReadResult> reads;
    for (int i = 0; i < kMaxReads; ++i) {
        auto r = fetch_once(fetch, address, size);
        if (!r) {
            return r;
        }
        for (const auto& prev : reads) {
            if (prev.bytes == r->bytes) {
                return r; // two reads agree byte for byte
            }
        }
        if (!reads.empty()) {
            ++m_read_disagreements;
        }
        reads.push_back(std::move(*r));
    }
    // No two reads agree in full: keep the prefix of bytes two reads agree on (and no other two
    // on something else).
    ReadResult out;
    out.status = kLinkFailedStatus;
    for (size_t i = 0;; ++i) {
        std::array<int, 256> votes{};
        for (const auto& rd : reads) {
            if (i < rd.bytes.size()) {
                ++votes[rd.bytes[i]];
            }
        }
        int best = -1;
        int best_votes = 1;
        bool tie = false;
        for (int v = 0; v < 256; ++v) {
            if (votes[v] > best_votes) {
                best = v;
                best_votes = votes[v];
                tie = false;
            } else if (votes[v] == best_votes && best_votes >= 2) {
                tie = true;
            }
        }
        if (best < 0 || tie) {
            break;
        }
        out.bytes.push_back(static_cast<uint8_t>(best));
    }
    if (m_notice) {
        m_notice("Memory at " + hex(address + out.bytes.size()) + ": no two of " +
                 std::to_string(kMaxReads) + " reads agreed; " +
                 std::to_string(size - out.bytes.size()) +
                 " bytes from there are not shown (the link is too noisy or the memory changes)");
    }
    return out;
}

Result<ReadResult> ReadVerifier::read(const Fetch& fetch, uint64_t address, uint32_t size,
                                      bool split) {
    bool verify = verifying();
    if (m_mode == VerifyMode::Auto || m_for_dump) {
        if (verify && !m_said_noisy && m_notice) {
            m_notice("The link is noisy (" + error_summary() +
                     " so far): memory is read twice and compared until two reads agree, about "
                     "half as fast or slower (.kdverify off|on|auto)");
        }
        m_said_noisy = verify;
    }
    const auto before = m_session.link_stats();
    m_read_requests = 0;
    m_read_disagreements = 0;
    m_resizable = split;
    ReadResult out;
    out.bytes.reserve(size);
    while (out.bytes.size() < size) {
        const uint32_t done = static_cast<uint32_t>(out.bytes.size());
        // Sized again for every request: how the last ones fared says what the line carries.
        const uint32_t n =
            split ? std::min(chunk_size(), size - done) : std::max<uint32_t>(size, 1);
        // The line's health is judged again for every chunk: a read that starts on a clean line
        // is verified from the first chunk during which the line shows errors (that chunk is
        // read again, verified), so a long read never runs on unverified.
        const bool may_verify = m_mode != VerifyMode::Off || m_for_dump;
        if (!verify && may_verify && done != 0) {
            verify = verifying();
        }
        const uint64_t errors_before = m_session.error_events();
        auto r = verify ? fetch_verified(fetch, address + done, n)
                        : fetch_once(fetch, address + done, n);
        if (!verify && may_verify && r && m_session.error_events() != errors_before) {
            verify = verifying();
            if (verify) {
                continue; // this chunk is read again, verified (in a request sized anew)
            }
        }
        if (!r && m_ask_smaller) {
            continue; // its reply kept being damaged: the same bytes in a smaller request
        }
        if (!r) {
            if (done == 0 || m_for_dump || r.error().code != Errc::Timeout) {
                return r;
            }
            if (m_notice) {
                m_notice("The link failed while reading at " + hex(address + done) + " (" +
                         std::to_string(done) + " of " + std::to_string(size) +
                         " bytes read): " + r.error().message);
            }
            out.status = kLinkFailedStatus;
            break;
        }
        out.bytes.insert(out.bytes.end(), r->bytes.begin(), r->bytes.end());
        if (r->bytes.size() < n) {
            out.status = r->status;
            if (m_for_dump && r->status == kLinkFailedStatus) {
                return make_error(Errc::Timeout, "memory at " + hex(address + out.bytes.size()) +
                                                     " could not be read consistently");
            }
            break;
        }
    }
    if (verify) {
        const auto after = m_session.link_stats();
        const double wire = static_cast<double>((after.bytes_in - before.bytes_in) +
                                                (after.bytes_out - before.bytes_out));
        const double max = std::max<uint32_t>(m_session.max_transfer(), 1);
        // A clean read of the same range: the bytes that came, one request per full chunk.
        const double clean = static_cast<double>(out.bytes.size()) +
                             kRequestOverhead * std::max(1.0, std::ceil(size / max));
        m_last.last_bytes = size;
        m_last.last_requests = m_read_requests;
        m_last.last_disagreements = m_read_disagreements;
        m_last.last_slowdown = wire / clean;
        ++m_last.verified_reads;
        m_last.disagreements += m_read_disagreements;
        m_pending.bytes += out.bytes.size();
        m_pending.requests += m_read_requests;
        m_pending.disagreements += m_read_disagreements;
        m_pending_wire += wire;
        m_pending_clean += clean;
    }
    return out;
}

std::optional<VerifySummary> ReadVerifier::take_summary(uint64_t min_bytes) {
    VerifySummary s = m_pending;
    s.slowdown = m_pending_clean > 0 ? m_pending_wire / m_pending_clean : 0;
    m_pending = {};
    m_pending_wire = 0;
    m_pending_clean = 0;
    if (s.bytes < min_bytes || s.bytes == 0) {
        return std::nullopt;
    }
    return s;
}

} // namespace kdcart::engine
