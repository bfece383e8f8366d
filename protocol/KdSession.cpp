#include "protocol/KdSession.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <spdlog/spdlog.h>

namespace kdcart::protocol {

using transport::IdScheme;
using transport::KdPacket;
using transport::LinkEventKind;
using Clock = std::chrono::steady_clock;

namespace {

Millis remaining(Clock::time_point deadline) {
    auto now = Clock::now();
    if (now >= deadline) {
        return Millis(0);
    }
    return std::chrono::duration_cast<Millis>(deadline - now) + Millis(1);
}

template <class T> std::vector<uint8_t> to_bytes(const T& v) {
    std::vector<uint8_t> out;
    kd_append(out, v);
    return out;
}

// APIs whose reply echoes the 8-byte address at the start of the union.
bool echoes_address(uint32_t api) {
    switch (api) {
    case DbgKdReadVirtualMemoryApi:
    case DbgKdWriteVirtualMemoryApi:
    case DbgKdReadPhysicalMemoryApi:
    case DbgKdWritePhysicalMemoryApi:
    case DbgKdReadControlSpaceApi:
    case DbgKdWriteControlSpaceApi:
    case DbgKdWriteBreakPointApi:
        return true;
    default:
        return false;
    }
}

} // namespace

KdSession::KdSession(std::unique_ptr<transport::PacketLink> link, SessionDelegate* delegate,
                     SessionOptions options)
    : m_link(std::move(link)), m_delegate(delegate), m_opt(options), m_next_host_id(0) {
    m_next_host_id = initial_host_id();
}

uint32_t KdSession::initial_host_id() const {
    return m_link->id_scheme() == IdScheme::Kdnet ? KDNET_HOST_INITIAL_ID : INITIAL_PACKET_ID;
}

void KdSession::advance_host_id() {
    switch (m_link->id_scheme()) {
    case IdScheme::Kdcom:
        m_next_host_id = (m_next_host_id ^ 1u) & ~SYNC_PACKET_ID;
        break;
    case IdScheme::Kdnet:
        m_next_host_id += 2;
        break;
    case IdScheme::Kd1394:
        m_next_host_id += 1;
        break;
    }
}

void KdSession::reset_ids() {
    m_next_host_id = initial_host_id();
    m_last_target_id.reset();
    m_reset_since_last_packet = true;
}

Result<void> KdSession::send_control(uint16_t type, uint32_t id) {
    KdPacket p;
    p.type = type;
    p.id = id;
    return m_link->send(p);
}

Result<void> KdSession::send_breakin() {
    return m_link->send_breakin();
}

Result<void> KdSession::reset(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    m_reset_seen = false;
    m_awaiting_reset_reply = true;
    while (!m_reset_seen) {
        reset_ids();
        ++m_counters.resets;
        if (auto r = send_control(PACKET_TYPE_KD_RESET, initial_host_id()); !r) {
            m_awaiting_reset_reply = false;
            return r;
        }
        const auto next = std::min(deadline, Clock::now() + m_opt.reset_interval);
        while (!m_reset_seen && Clock::now() < next) {
            auto r = pump(remaining(next));
            if (!r && r.error().code != Errc::Timeout) {
                m_awaiting_reset_reply = false;
                return r;
            }
        }
        if (!m_reset_seen && Clock::now() >= deadline) {
            m_awaiting_reset_reply = false;
            return make_error(Errc::Timeout, "the target did not answer RESET");
        }
    }
    m_awaiting_reset_reply = false;
    return {};
}

Result<void> KdSession::send_data(uint16_t type, std::vector<uint8_t> payload) {
    if (m_resync_needed && !m_in_send) {
        m_resync_needed = false;
        if (auto r = reset(Millis(3000)); !r) {
            spdlog::debug("session: resync RESET not answered: {}", r.error().message);
        }
    }
    KdPacket pkt;
    pkt.type = type;
    pkt.payload = std::move(payload);
    m_in_send = true;
    struct Done {
        KdSession* s;
        ~Done() {
            s->m_outstanding.reset();
            s->m_in_send = false;
        }
    } done{this};

    int resets_left = 3;
    // Same patience as ack_timeout x (send_retries + 1), but a quiet line gets our packet again
    // sooner than a full ack_timeout.
    const auto give_up = Clock::now() + m_opt.ack_timeout * (m_opt.send_retries + 1);
    for (int attempt = 0;; ++attempt) {
        pkt.id = m_next_host_id;
        m_outstanding = pkt;
        m_ack_seen = false;
        m_reset_seen = false;
        if (attempt > 0) {
            ++m_counters.retransmits;
        }
        if (auto r = m_link->send(pkt); !r) {
            return r;
        }
        if (m_link->id_scheme() == IdScheme::Kd1394) {
            advance_host_id();
            return {};
        }
        const auto sent = Clock::now();
        const auto deadline = std::min(give_up, sent + m_opt.ack_timeout);
        auto quiet_since = sent;
        uint64_t seen = m_link->stats().bytes_in;
        bool answered = false;
        while (!m_ack_seen && !m_reset_seen) {
            const auto quiet_end = quiet_since + nudge_after();
            auto r = pump(remaining(std::min(deadline, quiet_end)));
            if (!r && r.error().code != Errc::Timeout) {
                return r;
            }
            const auto now = Clock::now();
            if (const uint64_t in = m_link->stats().bytes_in; in != seen) {
                seen = in;
                quiet_since = now;
                if (!answered && attempt == 0) {
                    answered = true;
                    note_response_time(now - sent);
                }
            }
            if (now >= deadline || now - quiet_since >= nudge_after()) {
                break;
            }
        }
        if (m_ack_seen) {
            advance_host_id();
            m_outstanding.reset();
            m_in_send = false;
            flush_deferred();
            return {};
        }
        if (m_reset_seen && resets_left-- > 0) {
            continue; // the target reset: send again with the fresh id
        }
        if (Clock::now() >= give_up) {
            break;
        }
    }
    ++m_counters.timeouts;
    return make_error(Errc::Timeout, "the target did not acknowledge our packet");
}

Millis KdSession::nudge_after() const {
    if (m_response_ms < 0) {
        return m_opt.idle_nudge;
    }
    const double ms = 4 * m_response_ms + 20;
    return std::clamp(Millis(static_cast<int64_t>(ms)),
                      std::min(m_opt.nudge_floor, m_opt.idle_nudge), m_opt.idle_nudge);
}

void KdSession::note_response_time(Clock::duration d) {
    const double ms = std::chrono::duration<double, std::milli>(d).count();
    m_response_ms = m_response_ms < 0 ? ms : std::max(ms, m_response_ms * 0.9);
}

Result<void> KdSession::ask_resend() {
    ++m_counters.resends_sent;
    return send_control(PACKET_TYPE_KD_RESEND, 0);
}

uint64_t KdSession::error_events() const {
    const auto& c = m_counters;
    const auto l = m_link->stats();
    return c.resends_sent + c.resends_received + c.retransmits + c.duplicates + c.implausible +
           c.timeouts + c.target_resets + c.lost_requests + l.bad_packets + l.dropped +
           l.garbage_bytes / 512;
}

Result<void> KdSession::pump(Millis timeout) {
    // A packet we could not trust is asked for again while the line stays quiet.
    bool woke_early = false;
    if (m_suspect) {
        const auto due = m_suspect->since + m_opt.idle_nudge;
        const auto left = remaining(due);
        if (left < timeout) {
            timeout = left;
            woke_early = true;
        }
    }
    auto ev = m_link->receive(timeout);
    if (m_suspect && Clock::now() >= m_suspect->since + m_opt.idle_nudge) {
        tend_suspect();
    }
    for (auto& notice : m_link->take_notices()) {
        if (m_delegate) {
            m_delegate->on_link_notice(notice);
        }
    }
    // A new KDNET handshake means a (re)booted target: its ids start again at 0.
    if (const auto hs = m_link->stats().handshakes; hs != m_handshakes_seen) {
        if (m_handshakes_seen != 0 && m_delegate) {
            m_delegate->on_link_notice("Target rebooted (it started a new KDNET session)");
        }
        m_handshakes_seen = hs;
        reset_ids();
        if (m_delegate) {
            m_delegate->on_target_reset();
        }
    }
    if (!ev) {
        if (woke_early && ev.error().code == Errc::Timeout) {
            return {}; // woke for the suspect packet, not because the caller's time is up
        }
        return tl::unexpected(ev.error());
    }
    switch (ev->kind) {
    case LinkEventKind::BreakIn:
        return {}; // only targets act on break-in bytes
    case LinkEventKind::BadPacket:
        spdlog::debug("session: damaged packet ({}), asking for RESEND", ev->detail);
        ++m_counters.resends_sent;
        return send_control(PACKET_TYPE_KD_RESEND, 0);
    case LinkEventKind::Packet:
        break;
    }
    const KdPacket& p = ev->packet;
    if (p.leader == CONTROL_PACKET_LEADER) {
        switch (p.type) {
        case PACKET_TYPE_KD_ACKNOWLEDGE:
            if (m_outstanding) {
                const bool match =
                    m_link->id_scheme() == IdScheme::Kdcom
                        ? (p.id & ~SYNC_PACKET_ID) == (m_outstanding->id & ~SYNC_PACKET_ID)
                        : p.id == m_outstanding->id;
                if (match) {
                    m_ack_seen = true;
                } else {
                    spdlog::debug("session: ACK {:#x} does not match {:#x}", p.id,
                                  m_outstanding->id);
                }
            }
            return {};
        case PACKET_TYPE_KD_RESEND:
            ++m_counters.resends_received;
            if (m_outstanding) {
                return m_link->send(*m_outstanding);
            }
            return {};
        case PACKET_TYPE_KD_RESET: {
            reset_ids();
            m_reset_seen = true;
            m_synced = true;
            if (m_awaiting_reset_reply) {
                m_awaiting_reset_reply = false;
                return {};
            }
            // A RESET we did not ask for is not a new target (a reboot shows as the SYNC bit on
            // a data packet, KDNET's as a new handshake): a target answers every RESET it
            // receives with one, and a damaged packet of ours can read as a RESET (type 4 ->
            // 6 is one bit, and types are outside the checksum). Its ids started over: ours
            // follow. Answering it with a RESET of our own would start a RESET ping-pong that
            // lasts as long as the session; so only when its ids are not known to have
            // started over (no SYNC bit: maybe a damaged ACK of the target's, or KDNET, which
            // keeps its own ids) do we RESET ourselves, and take its answer quietly.
            ++m_counters.target_resets;
            const bool fresh =
                m_link->id_scheme() == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0;
            spdlog::debug("session: RESET from the target (id {:#x}){}", p.id,
                          fresh ? "" : ", answering it");
            if (fresh) {
                return {};
            }
            m_awaiting_reset_reply = true;
            ++m_counters.resets;
            return send_control(PACKET_TYPE_KD_RESET, initial_host_id());
        }
        default:
            spdlog::debug("session: unknown control packet type {}", p.type);
            return {};
        }
    }
    if (p.leader != PACKET_LEADER) {
        return {}; // KDNET's 12-byte conncheck and such are the link's business
    }
    handle_data_packet(p);
    return {};
}

bool KdSession::is_duplicate(const KdPacket& p) const {
    if (m_last_type_payload_valid && m_last_target_type == p.type &&
        m_last_target_payload == p.payload) {
        if (m_last_target_id && *m_last_target_id == p.id) {
            return true; // our ACK was lost
        }
        // After a RESET the target retransmits its pending packet under the SYNC id: the same
        // packet we already accepted under its old id (also when the RESET itself was lost).
        if (m_link->id_scheme() == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0) {
            return true;
        }
    }
    return false;
}

void KdSession::handle_data_packet(const KdPacket& p) {
    const IdScheme scheme = m_link->id_scheme();
    const uint32_t ack_id = scheme == IdScheme::Kdcom ? (p.id & ~SYNC_PACKET_ID) : p.id;
    if (is_duplicate(p)) {
        const bool sync_id = scheme == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0;
        if (sync_id && m_reset_since_last_packet) {
            // The target sends its pending packet again after a RESET, as KDCOM does: after our
            // own RESET (every connect sends one) that is the protocol at work, not a sign of
            // a noisy line, so it does not count as an error.
            ++m_counters.repeats_after_reset;
        } else {
            ++m_counters.duplicates;
        }
        if (sync_id && !m_reset_since_last_packet) {
            m_resync_needed = true; // its ids started over: a RESET from it did not reach us
        }
        if (scheme != IdScheme::Kd1394) {
            (void)send_control(PACKET_TYPE_KD_ACKNOWLEDGE, ack_id);
        }
        return;
    }
    if (auto why = implausible(p); !why.empty()) {
        suspect(p, std::move(why), false);
        return;
    }
    // The SYNC bit says the target's ids started over (a reboot), but ids are outside the
    // checksum: one flipped bit must not pass for a reboot. Such a packet is asked for again; a
    // rebooted target sends it the same way each time.
    const bool same_stop =
        p.type == PACKET_TYPE_KD_STATE_CHANGE64 && m_current_stop && *m_current_stop == p.payload;
    if (scheme == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0 && !m_reset_since_last_packet &&
        !same_stop) {
        suspect(p, "packet id with the SYNC bit: did the target start over?", true);
        return;
    }
    // A stopped target reports no other stop until we resume it: a different one is most
    // likely a damaged copy of this one (two bit flips that cancel in the byte-sum checksum).
    if (p.type == PACKET_TYPE_KD_STATE_CHANGE64 && m_current_stop && !same_stop) {
        suspect(p, "a different stop while the target is stopped", true);
        return;
    }
    m_suspect.reset(); // a good packet: whatever we doubted was a damaged copy of something
    accept_packet(p);
}

std::string KdSession::implausible(const KdPacket& p) const {
    auto hex = [](uint64_t v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
        return std::string(buf);
    };
    if (m_link->id_scheme() == IdScheme::Kdcom) {
        const uint32_t base = p.id & ~SYNC_PACKET_ID;
        if (base != INITIAL_PACKET_ID && base != (INITIAL_PACKET_ID | 1)) {
            return "packet id " + hex(p.id) + " is not a KDCOM id";
        }
    }
    const size_t n = p.payload.size();
    switch (p.type) {
    case PACKET_TYPE_KD_STATE_CHANGE64: {
        if (n < sizeof(DBGKD_ANY_WAIT_STATE_CHANGE)) {
            return "truncated state change (" + std::to_string(n) + " of " +
                   std::to_string(sizeof(DBGKD_ANY_WAIT_STATE_CHANGE)) + " bytes)";
        }
        const auto sc = *kd_decode<DBGKD_ANY_WAIT_STATE_CHANGE>(p.payload);
        if (sc.NewState < DbgKdExceptionStateChange || sc.NewState >= DbgKdMaximumStateChange) {
            return "state change with unknown NewState " + hex(sc.NewState);
        }
        if (sc.NumberProcessors == 0 || sc.NumberProcessors > 4096 ||
            sc.Processor >= sc.NumberProcessors) {
            return "state change from processor " + std::to_string(sc.Processor) + " of " +
                   std::to_string(sc.NumberProcessors);
        }
        if (sc.NewState == DbgKdExceptionStateChange &&
            sc.u.Exception.ExceptionRecord.NumberParameters > 15) {
            return "exception record with " +
                   std::to_string(sc.u.Exception.ExceptionRecord.NumberParameters) + " parameters";
        }
        return {};
    }
    case PACKET_TYPE_KD_STATE_MANIPULATE: {
        auto m = kd_decode<DBGKD_MANIPULATE_STATE64>(p.payload);
        if (!m) {
            return "truncated manipulate reply (" + std::to_string(n) + " bytes)";
        }
        if (m->ApiNumber < DbgKdReadVirtualMemoryApi || m->ApiNumber >= DbgKdMaximumManipulate) {
            return "manipulate reply with unknown ApiNumber " + hex(m->ApiNumber);
        }
        return {};
    }
    case PACKET_TYPE_KD_DEBUG_IO: {
        auto io = kd_decode<DBGKD_DEBUG_IO>(p.payload);
        if (!io) {
            return "truncated DEBUG_IO (" + std::to_string(n) + " bytes)";
        }
        const size_t avail = n - sizeof(DBGKD_DEBUG_IO);
        if (io->ApiNumber == DbgKdPrintStringApi) {
            return io->u.PrintString.LengthOfString <= avail ? std::string()
                                                             : "DbgPrint longer than its packet";
        }
        if (io->ApiNumber == DbgKdGetStringApi) {
            return io->u.GetString.LengthOfPromptString <= avail
                       ? std::string()
                       : "DbgPrompt longer than its packet";
        }
        return "DEBUG_IO with unknown ApiNumber " + hex(io->ApiNumber);
    }
    case PACKET_TYPE_KD_FILE_IO: {
        auto io = kd_decode<DBGKD_FILE_IO>(p.payload);
        if (!io || io->ApiNumber < DbgKdCreateFileApi || io->ApiNumber > DbgKdCloseFileApi) {
            return "FILE_IO that is short or has an unknown ApiNumber";
        }
        return {};
    }
    case PACKET_TYPE_KD_TRACE_IO: {
        auto api = kd_decode<uint32_t>(p.payload);
        return api && *api == DbgKdPrintTraceApi ? std::string() : "TRACE_IO with no trace";
    }
    case PACKET_TYPE_KD_CONTROL_REQUEST:
        return {};
    default:
        // Not something a 64-bit target sends: a corrupted header.
        return "packet type " + std::to_string(p.type);
    }
}

void KdSession::suspect(const KdPacket& p, std::string why, bool plausible) {
    ++m_counters.implausible;
    if (m_suspect && m_suspect->packet.type == p.type && m_suspect->packet.id == p.id &&
        m_suspect->packet.payload == p.payload) {
        ++m_suspect->copies;
    } else {
        m_suspect = Suspect{p, std::move(why), 1, 0, {}, plausible};
    }
    m_suspect->since = Clock::now();
    spdlog::debug("session: {} (copy {}), asking for RESEND", m_suspect->why, m_suspect->copies);
    if (m_suspect->copies >= 3) {
        accept_suspect(); // the target means it: the same bytes three times
        return;
    }
    ++m_counters.resends_sent;
    (void)send_control(PACKET_TYPE_KD_RESEND, 0);
}

// Patient on purpose (idle_nudge, not the learnt nudge_after): taking a damaged packet because
// the good copy was slow would show it as real. A target that resends gets several chances.
void KdSession::tend_suspect() {
    if (!m_suspect) {
        return;
    }
    if (m_suspect->nudges >= 3) {
        // Silence proves nothing about a packet that contradicts what we know (a second stop
        // while the target is stopped, a header bit such as SYNC): a target that means it
        // sends it again, as KDCOM retransmits what is not ACKed, and three identical copies
        // are taken. Taking it on silence would report a damaged copy as real whenever the
        // target is slow to answer a RESEND. It was never ACKed; forget it.
        const bool second_stop =
            m_suspect->packet.type == PACKET_TYPE_KD_STATE_CHANGE64 && m_current_stop;
        if (m_suspect->plausible || second_stop) {
            spdlog::debug("session: {}: not sent again, dropped", m_suspect->why);
            ++m_counters.suspects_dropped;
            m_suspect.reset();
            return;
        }
        accept_suspect(); // the target does not send it again: take what we have
        return;
    }
    ++m_suspect->nudges;
    ++m_counters.nudges;
    m_suspect->since = Clock::now();
    (void)ask_resend();
}

void KdSession::accept_suspect() {
    Suspect s = std::move(*m_suspect);
    m_suspect.reset();
    const KdPacket& p = s.packet;
    if (s.plausible) {
        accept_packet(p); // only its header was in doubt: the target means it
        return;
    }
    if (p.type == PACKET_TYPE_KD_STATE_CHANGE64) {
        if (m_link->id_scheme() != IdScheme::Kd1394) {
            const uint32_t ack_id =
                m_link->id_scheme() == IdScheme::Kdcom ? (p.id & ~SYNC_PACKET_ID) : p.id;
            (void)send_control(PACKET_TYPE_KD_ACKNOWLEDGE, ack_id);
        }
        m_last_target_id = p.id;
        m_last_target_type = p.type;
        m_last_target_payload = p.payload;
        m_last_type_payload_valid = true;
        m_reset_since_last_packet = false;
        deliver_state_change(p, s.why);
        return;
    }
    // Anything else that does not hold together is of no use: take it off the target's hands
    // (so that it stops sending it) and say so.
    if (m_link->id_scheme() != IdScheme::Kd1394) {
        const uint32_t ack_id =
            m_link->id_scheme() == IdScheme::Kdcom ? (p.id & ~SYNC_PACKET_ID) : p.id;
        (void)send_control(PACKET_TYPE_KD_ACKNOWLEDGE, ack_id);
    }
    m_last_target_id = p.id;
    m_last_target_type = p.type;
    m_last_target_payload = p.payload;
    m_last_type_payload_valid = true;
    if (m_delegate) {
        m_delegate->on_link_notice("ignored a packet from the target that makes no sense (" +
                                   s.why + ")");
    }
}

void KdSession::accept_packet(const KdPacket& p) {
    const IdScheme scheme = m_link->id_scheme();
    const uint32_t ack_id = scheme == IdScheme::Kdcom ? (p.id & ~SYNC_PACKET_ID) : p.id;
    if (scheme != IdScheme::Kd1394) {
        (void)send_control(PACKET_TYPE_KD_ACKNOWLEDGE, ack_id);
    }
    if (scheme == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0 && !m_reset_since_last_packet) {
        // Its ids started over although we did not see a RESET: agree on ids before our next
        // request. A new packet means the target rebooted (KDNET says so with a new handshake);
        // the stop we are in, sent again, means only that a RESET from it was lost.
        m_resync_needed = true;
        const bool same_stop = p.type == PACKET_TYPE_KD_STATE_CHANGE64 && m_current_stop &&
                               *m_current_stop == p.payload;
        if (!same_stop && m_delegate) {
            m_delegate->on_link_notice("Target rebooted (its KDCOM packet ids started over)");
            m_delegate->on_target_reset();
        }
    }
    m_last_target_id = p.id;
    m_last_target_type = p.type;
    m_last_target_payload = p.payload;
    m_last_type_payload_valid = true;
    m_reset_since_last_packet = false;

    switch (p.type) {
    case PACKET_TYPE_KD_STATE_CHANGE64:
        deliver_state_change(p, {});
        return;
    case PACKET_TYPE_KD_STATE_MANIPULATE: {
        auto hdr = kd_decode<DBGKD_MANIPULATE_STATE64>(p.payload);
        if (!hdr) {
            return;
        }
        ManipulateReply reply;
        reply.header = *hdr;
        reply.data.assign(p.payload.begin() + sizeof(DBGKD_MANIPULATE_STATE64), p.payload.end());
        if (m_outstanding && m_outstanding->type == PACKET_TYPE_KD_STATE_MANIPULATE) {
            auto out = kd_decode<DBGKD_MANIPULATE_STATE64>(m_outstanding->payload);
            if (out && out->ApiNumber == hdr->ApiNumber) {
                m_ack_seen = true; // the reply implies our request arrived
            }
        }
        m_replies.push_back(std::move(reply));
        return;
    }
    case PACKET_TYPE_KD_DEBUG_IO:
        handle_debug_io(p);
        return;
    case PACKET_TYPE_KD_FILE_IO:
        handle_file_io(p);
        return;
    case PACKET_TYPE_KD_TRACE_IO:
    case PACKET_TYPE_KD_CONTROL_REQUEST:
        spdlog::debug("session: ignoring packet type {}", p.type);
        return;
    default:
        return;
    }
}

void KdSession::deliver_state_change(const KdPacket& p, const std::string& malformed) {
    if (m_current_stop && *m_current_stop == p.payload) {
        ++m_stop_repeats;
        return; // the same stop, sent again after a RESET or a RESEND
    }
    StateChange change;
    // What could be decoded: the bytes that came, zeros for the rest.
    const size_t have = std::min(p.payload.size(), sizeof(DBGKD_ANY_WAIT_STATE_CHANGE));
    std::memcpy(&change.change, p.payload.data(), have);
    if (p.payload.size() > sizeof(DBGKD_ANY_WAIT_STATE_CHANGE)) {
        change.extra.assign(p.payload.begin() + sizeof(DBGKD_ANY_WAIT_STATE_CHANGE),
                            p.payload.end());
    }
    change.malformed = malformed;
    if (!malformed.empty()) {
        ++m_counters.malformed_stops;
        auto& c = change.change;
        if (c.NumberProcessors == 0 || c.NumberProcessors > 4096) {
            c.NumberProcessors = 1;
        }
        if (c.Processor >= c.NumberProcessors) {
            c.Processor = 0;
        }
        constexpr size_t kExceptionEnd =
            offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u.Exception) + sizeof(DBGKM_EXCEPTION64);
        if (c.NewState == DbgKdExceptionStateChange &&
            (have < kExceptionEnd || c.u.Exception.ExceptionRecord.NumberParameters > 15)) {
            c.NewState = 0; // no exception record to speak of: a stop of unknown kind
        }
        if (m_delegate) {
            char pc[32];
            std::snprintf(pc, sizeof pc, "%016llx",
                          static_cast<unsigned long long>(c.ProgramCounter));
            m_delegate->on_link_notice("The target sent a malformed state change (" + malformed +
                                       "); it is reported as a stop with what could be decoded" +
                                       (have >= offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, u)
                                            ? std::string(" (pc ") + pc + ")"
                                            : std::string()));
        }
    }
    m_current_stop = p.payload;
    // (A SYNC id on it was dealt with by accept_packet: after a RESET it is expected, without
    // one it is a rebooted target.)
    m_state_changes.push_back(std::move(change));
}

void KdSession::handle_debug_io(const KdPacket& p) {
    auto io = kd_decode<DBGKD_DEBUG_IO>(p.payload);
    if (!io) {
        return;
    }
    const size_t avail = p.payload.size() - sizeof(DBGKD_DEBUG_IO);
    const char* text = reinterpret_cast<const char*>(p.payload.data() + sizeof(DBGKD_DEBUG_IO));
    if (io->ApiNumber == DbgKdPrintStringApi) {
        size_t len = std::min<size_t>(io->u.PrintString.LengthOfString, avail);
        if (m_delegate) {
            m_delegate->on_debug_print(std::string_view(text, len));
        }
        return;
    }
    if (io->ApiNumber == DbgKdGetStringApi) {
        size_t len = std::min<size_t>(io->u.GetString.LengthOfPromptString, avail);
        std::string answer =
            m_delegate ? m_delegate->on_debug_prompt(std::string_view(text, len)) : std::string();
        const size_t room = io->u.GetString.LengthOfStringRead;
        if (room != 0 && answer.size() > room) {
            answer.resize(room);
        }
        DBGKD_DEBUG_IO reply = *io;
        reply.u.GetString.LengthOfPromptString = 0;
        reply.u.GetString.LengthOfStringRead = static_cast<uint32_t>(answer.size());
        auto bytes = to_bytes(reply);
        bytes.insert(bytes.end(), answer.begin(), answer.end());
        m_deferred.emplace_back(PACKET_TYPE_KD_DEBUG_IO, std::move(bytes));
        flush_deferred();
    }
}

void KdSession::handle_file_io(const KdPacket& p) {
    auto io = kd_decode<DBGKD_FILE_IO>(p.payload);
    if (!io) {
        return;
    }
    // No .kdfiles map: every file the target asks for does not exist, as WinDbg answers.
    DBGKD_FILE_IO reply = kd_zero<DBGKD_FILE_IO>();
    reply.ApiNumber = io->ApiNumber;
    reply.Status = io->ApiNumber == DbgKdCreateFileApi ? STATUS_NO_SUCH_FILE : 0xC0000008u;
    ++m_counters.file_io_answered;
    m_deferred.emplace_back(PACKET_TYPE_KD_FILE_IO, to_bytes(reply));
    flush_deferred();
}

void KdSession::flush_deferred() {
    while (!m_in_send && !m_deferred.empty()) {
        auto [type, bytes] = std::move(m_deferred.front());
        m_deferred.pop_front();
        if (auto r = send_data(type, std::move(bytes)); !r && m_delegate) {
            m_delegate->on_link_notice("could not answer the target: " + r.error().message);
        }
    }
}

Result<ManipulateReply> KdSession::request(const DBGKD_MANIPULATE_STATE64& req,
                                           std::span<const uint8_t> data) {
    std::vector<uint8_t> payload = to_bytes(req);
    payload.insert(payload.end(), data.begin(), data.end());
    // max_payload() sizes read replies; a request itself may use the whole packet (SetContext
    // is 1288 bytes, more than a KDNET read chunk, and WinDbg sends it in one datagram).
    if (payload.size() > PACKET_MAX_SIZE) {
        return make_error(Errc::InvalidArgument, "request larger than one packet");
    }
    m_replies.clear();
    const size_t stops_before = m_state_changes.size();
    if (auto r = send_data(PACKET_TYPE_KD_STATE_MANIPULATE, payload); !r) {
        return tl::unexpected(r.error());
    }
    // A stopped target that answers our RESEND with its stop again has no reply for us: our
    // request was ACKed but then dropped (its type is outside the checksum: one flipped bit
    // makes it a packet the target ACKs and ignores). Sent again at once rather than after
    // reply_timeout, unless sending it twice would do something twice.
    uint64_t repeats = m_stop_repeats;
    int requests_left =
        req.ApiNumber == DbgKdWriteBreakPointApi || req.ApiNumber == DbgKdWriteBreakPointExApi ? 0
                                                                                               : 3;
    auto deadline = Clock::now() + m_opt.reply_timeout;
    auto quiet_since = Clock::now();
    uint64_t seen = m_link->stats().bytes_in;
    uint64_t resends_before = m_counters.resends_sent;
    for (;;) {
        while (!m_replies.empty()) {
            ManipulateReply reply = std::move(m_replies.front());
            m_replies.pop_front();
            bool match = reply.header.ApiNumber == req.ApiNumber;
            if (match && echoes_address(req.ApiNumber)) {
                match = std::memcmp(reply.header.u.Raw, req.u.Raw, 8) == 0;
            }
            if (match) {
                return reply;
            }
            ++m_counters.stale_replies;
        }
        if (m_state_changes.size() > stops_before) {
            return make_error(Errc::Resync, "the target reported a new stop instead of replying");
        }
        if (m_stop_repeats != repeats && requests_left > 0) {
            --requests_left;
            ++m_counters.lost_requests;
            spdlog::debug("session: the target has no reply pending, sending {} again",
                          manipulate_api_name(req.ApiNumber));
            if (auto r = send_data(PACKET_TYPE_KD_STATE_MANIPULATE, payload); !r) {
                return tl::unexpected(r.error());
            }
            repeats = m_stop_repeats;
            deadline = Clock::now() + m_opt.reply_timeout;
            quiet_since = Clock::now();
            resends_before = m_counters.resends_sent;
            continue;
        }
        if (m_reply_retry_limit > 0 &&
            m_counters.resends_sent - resends_before > static_cast<uint64_t>(m_reply_retry_limit)) {
            ++m_counters.timeouts;
            return make_error(Errc::Timeout,
                              std::string("the reply to ") + manipulate_api_name(req.ApiNumber) +
                                  " was damaged or lost " +
                                  std::to_string(m_reply_retry_limit + 1) + " times");
        }
        auto r = pump(remaining(std::min(deadline, quiet_since + nudge_after())));
        if (!r && r.error().code != Errc::Timeout) {
            return tl::unexpected(r.error());
        }
        const auto now = Clock::now();
        if (!m_replies.empty()) {
            continue;
        }
        if (now >= deadline) {
            ++m_counters.timeouts;
            return make_error(Errc::Timeout, std::string("no reply from the target to ") +
                                                 manipulate_api_name(req.ApiNumber));
        }
        if (const uint64_t in = m_link->stats().bytes_in; in != seen) {
            seen = in;
            quiet_since = now;
        } else if (now - quiet_since >= nudge_after() && m_link->id_scheme() != IdScheme::Kd1394) {
            // Our request was ACKed but its reply is lost (or stuck half-way): ask again
            // instead of waiting for the target's own retransmission.
            ++m_counters.nudges;
            if (auto a = ask_resend(); !a) {
                return tl::unexpected(a.error());
            }
            quiet_since = now;
        }
    }
}

Result<void> KdSession::send_no_reply(const DBGKD_MANIPULATE_STATE64& req) {
    return send_data(PACKET_TYPE_KD_STATE_MANIPULATE, to_bytes(req));
}

Result<StateChange> KdSession::wait_state_change(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (!m_state_changes.empty()) {
            StateChange sc = std::move(m_state_changes.front());
            m_state_changes.pop_front();
            return sc;
        }
        auto r = pump(remaining(deadline));
        if (!r) {
            return tl::unexpected(r.error());
        }
        if (Clock::now() >= deadline && m_state_changes.empty()) {
            return make_error(Errc::Timeout, "no state change");
        }
    }
}

void KdSession::on_resumed() {
    m_current_stop.reset();
}

} // namespace kdcart::protocol
