#include "protocol/KdSession.h"

#include <chrono>
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
    for (int attempt = 0; attempt <= m_opt.send_retries; ++attempt) {
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
        const auto deadline = Clock::now() + m_opt.ack_timeout;
        while (!m_ack_seen && !m_reset_seen) {
            auto r = pump(remaining(deadline));
            if (!r) {
                if (r.error().code == Errc::Timeout) {
                    break;
                }
                return r;
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
            --attempt; // the target reset: send again with the fresh id
        }
    }
    return make_error(Errc::Timeout, "the target did not acknowledge our packet");
}

Result<void> KdSession::pump(Millis timeout) {
    auto ev = m_link->receive(timeout);
    for (auto& notice : m_link->take_notices()) {
        if (m_delegate) {
            m_delegate->on_link_notice(notice);
        }
    }
    // A new KDNET handshake means a (re)booted target: its ids start again at 0.
    if (const auto hs = m_link->stats().handshakes; hs != m_handshakes_seen) {
        m_handshakes_seen = hs;
        reset_ids();
        if (m_delegate) {
            m_delegate->on_target_reset();
        }
    }
    if (!ev) {
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
                const bool match = m_link->id_scheme() == IdScheme::Kdcom
                                       ? (p.id & ~SYNC_PACKET_ID) ==
                                             (m_outstanding->id & ~SYNC_PACKET_ID)
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
        case PACKET_TYPE_KD_RESET:
            reset_ids();
            m_reset_seen = true;
            m_synced = true;
            if (m_awaiting_reset_reply) {
                m_awaiting_reset_reply = false;
                return {};
            }
            // The target reset on its own (reboot, resync): answer and say so.
            if (m_delegate) {
                m_delegate->on_link_notice("the target reset the link (RESET)");
                m_delegate->on_target_reset();
            }
            ++m_counters.resets;
            return send_control(PACKET_TYPE_KD_RESET, initial_host_id());
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
        // packet we already accepted under its old id.
        if (m_link->id_scheme() == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0 &&
            m_reset_since_last_packet) {
            return true;
        }
    }
    return false;
}

void KdSession::handle_data_packet(const KdPacket& p) {
    const IdScheme scheme = m_link->id_scheme();
    const uint32_t ack_id = scheme == IdScheme::Kdcom ? (p.id & ~SYNC_PACKET_ID) : p.id;
    if (is_duplicate(p)) {
        ++m_counters.duplicates;
        if (scheme != IdScheme::Kd1394) {
            (void)send_control(PACKET_TYPE_KD_ACKNOWLEDGE, ack_id);
        }
        return;
    }
    if (p.type >= PACKET_TYPE_MAX || p.type == PACKET_TYPE_UNUSED ||
        p.type == PACKET_TYPE_KD_STATE_CHANGE32) {
        // Not something a 64-bit target sends: a corrupted header. Ask again.
        ++m_counters.resends_sent;
        (void)send_control(PACKET_TYPE_KD_RESEND, 0);
        return;
    }
    if (scheme != IdScheme::Kd1394) {
        (void)send_control(PACKET_TYPE_KD_ACKNOWLEDGE, ack_id);
    }
    m_last_target_id = p.id;
    m_last_target_type = p.type;
    m_last_target_payload = p.payload;
    m_last_type_payload_valid = true;
    m_reset_since_last_packet = false;

    switch (p.type) {
    case PACKET_TYPE_KD_STATE_CHANGE64: {
        auto sc = kd_decode<DBGKD_ANY_WAIT_STATE_CHANGE>(p.payload);
        if (!sc) {
            if (m_delegate) {
                m_delegate->on_link_notice("ignored a short state-change packet");
            }
            return;
        }
        if (m_current_stop && *m_current_stop == p.payload) {
            return; // the same stop, sent again after a RESET
        }
        m_current_stop = p.payload;
        if (scheme == IdScheme::Kdcom && (p.id & SYNC_PACKET_ID) != 0) {
            // A freshly initialised target (boot, reboot): its receive id is unknown to us.
            // Agree on ids with a RESET before our next request.
            m_resync_needed = true;
            if (m_delegate) {
                m_delegate->on_target_reset();
            }
        }
        StateChange change;
        change.change = *sc;
        change.extra.assign(p.payload.begin() + sizeof(DBGKD_ANY_WAIT_STATE_CHANGE),
                            p.payload.end());
        m_state_changes.push_back(std::move(change));
        return;
    }
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
    if (auto r = send_data(PACKET_TYPE_KD_STATE_MANIPULATE, std::move(payload)); !r) {
        return tl::unexpected(r.error());
    }
    const auto deadline = Clock::now() + m_opt.reply_timeout;
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
        auto r = pump(remaining(deadline));
        if (!r) {
            if (r.error().code == Errc::Timeout) {
                return make_error(Errc::Timeout, std::string("no reply from the target to ") +
                                                     manipulate_api_name(req.ApiNumber));
            }
            return tl::unexpected(r.error());
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
