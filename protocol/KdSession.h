#pragma once
// The host side of a KD session (kd-protocol.md §1.3-§1.5, §2.7, §8): packet ids, ACK, RESEND,
// RESET, duplicate detection, timeouts and bounded retries, and the unsolicited packets a target
// sends (DbgPrint, DbgPrompt, FILE_IO, state changes). One outstanding request at a time.
#include "protocol/dbgkd_structs.h"
#include "transport/PacketLink.h"

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kdcart::protocol {

using transport::Millis;

// Asynchronous target events reach the layer above through this one delegate.
class SessionDelegate {
  public:
    virtual ~SessionDelegate() = default;
    // DbgPrint text from the target, as it arrives.
    virtual void on_debug_print(std::string_view text) = 0;
    // DbgPrompt: return the line to send back.
    virtual std::string on_debug_prompt(std::string_view prompt) = 0;
    // Link-level news worth telling the user (resync, target reset, noise).
    virtual void on_link_notice(std::string_view text) = 0;
    // The target started over (reboot, its own RESET, a new KDNET session): whatever the layer
    // above wrote into it (breakpoints, handles) is gone.
    virtual void on_target_reset() {}
};

struct StateChange {
    DBGKD_ANY_WAIT_STATE_CHANGE change{};
    std::vector<uint8_t> extra; // bytes after the 0xF0 body (LoadSymbols path, command string)
    // Non-empty when the target kept sending a state change that does not hold together
    // (truncated, unknown NewState...): what is wrong with it. `change` then holds what could
    // be decoded (missing bytes are zero; NewState 0 when the exception record is cut off).
    std::string malformed;
};

struct ManipulateReply {
    DBGKD_MANIPULATE_STATE64 header{};
    std::vector<uint8_t> data; // bytes after the 56-byte header
};

struct SessionOptions {
    Millis ack_timeout{2000};   // per attempt, for the ACK of one of our packets
    int send_retries = 6;       // resends before giving up on an ACK
    Millis reply_timeout{8000}; // from ACK to the manipulate reply
    Millis reset_interval{1000};
    // A line that stays quiet while we wait for an ACK or a reply is not going to deliver it:
    // our packet is sent again (no ACK), or the target is asked to RESEND (no reply, or a
    // packet we could not trust). "Quiet" is learnt from how fast the target answers (four
    // times its recent slowest answer plus 20 ms), at least nudge_floor and at most idle_nudge.
    // Bounded by ack_timeout x (send_retries + 1) and reply_timeout in all.
    Millis idle_nudge{400};
    Millis nudge_floor{100};
};

struct SessionCounters {
    uint64_t resends_sent = 0;        // RESEND we asked for
    uint64_t resends_received = 0;    // RESEND the target asked for
    uint64_t retransmits = 0;         // our packets sent again after a timeout
    uint64_t duplicates = 0;          // target packets seen twice (our ACK was lost)
    uint64_t repeats_after_reset = 0; // its pending packet sent again after a RESET (no error)
    uint64_t resets = 0;
    uint64_t target_resets = 0; // RESETs the target sent that we had not asked for
    uint64_t lost_requests = 0; // requests ACKed but never answered, sent again
    uint64_t stale_replies = 0;
    uint64_t file_io_answered = 0;
    uint64_t nudges = 0;          // RESENDs sent because a reply did not come (in resends_sent)
    uint64_t implausible = 0;     // packets whose unchecked header or contents made no sense
    uint64_t malformed_stops = 0; // state changes taken with what could be decoded
    uint64_t suspects_dropped = 0; // doubtful packets the target did not send again: not taken
    uint64_t timeouts = 0;        // requests that got no ACK or no reply in the end
};

class KdSession {
  public:
    KdSession(std::unique_ptr<transport::PacketLink> link, SessionDelegate* delegate,
              SessionOptions options = {});

    // RESET exchange: sends RESET every reset_interval until the target answers with RESET or
    // `timeout` passes. Returns Timeout when the target stays silent (it may be running).
    [[nodiscard]] Result<void> reset(Millis timeout);
    // Bare break-in request (0x62 on KDCOM).
    [[nodiscard]] Result<void> send_breakin();

    // A manipulate request and its reply (same ApiNumber; address-carrying APIs must echo it).
    [[nodiscard]] Result<ManipulateReply> request(const DBGKD_MANIPULATE_STATE64& req,
                                                  std::span<const uint8_t> data = {});
    // A manipulate packet that gets only an ACK (Continue, Continue2, Reboot, CauseBugCheck,
    // SwitchProcessor).
    [[nodiscard]] Result<void> send_no_reply(const DBGKD_MANIPULATE_STATE64& req);

    // Processes incoming packets for at most `timeout` and returns the next state change;
    // Errc::Timeout when none came.
    [[nodiscard]] Result<StateChange> wait_state_change(Millis timeout);
    // True when a state change is queued (arrived while doing something else).
    bool has_state_change() const { return !m_state_changes.empty(); }
    // Called by the layer above when the target is resumed: forget the current stop.
    void on_resumed();
    // True once the ids are known to agree with the target's (a RESET exchange happened).
    bool synchronized() const { return m_synced; }

    // Asks the target to send its pending packet again (a RESEND): a stopped target that is
    // waiting for us sends its state change again. Harmless to a running target.
    [[nodiscard]] Result<void> ask_resend();
    // How many times request() asks for a reply again (RESEND after a damaged or missing
    // reply) before it gives up with Errc::Timeout; 0 (the default): until reply_timeout. A
    // reader that can ask for fewer bytes sets it: on a noisy line a smaller reply gets
    // through where the same large one is damaged again and again.
    void set_reply_retry_limit(int limit) { m_reply_retry_limit = limit; }
    int reply_retry_limit() const { return m_reply_retry_limit; }

    const SessionCounters& counters() const { return m_counters; }
    // Everything that says the link is damaging traffic, summed: RESENDs both ways,
    // retransmits, duplicates, implausible packets, timeouts, bad packets, dropped datagrams and
    // garbage (one per 512 bytes: a packet cut short is thrown away whole).
    uint64_t error_events() const;
    transport::LinkStats link_stats() const { return m_link->stats(); }
    uint32_t max_transfer() const {
        return m_link->max_payload() - sizeof(DBGKD_MANIPULATE_STATE64);
    }
    std::string describe_link() const { return m_link->describe(); }
    transport::IdScheme id_scheme() const { return m_link->id_scheme(); }

  private:
    enum class SendOutcome { Acked, Reset };
    [[nodiscard]] Result<void> send_data(uint16_t type, std::vector<uint8_t> payload);
    [[nodiscard]] Result<void> send_control(uint16_t type, uint32_t id);
    // Reads one link event and handles it. Sets m_ack_seen when the outstanding packet is ACKed.
    [[nodiscard]] Result<void> pump(Millis timeout);
    void handle_data_packet(const transport::KdPacket& p);
    void handle_debug_io(const transport::KdPacket& p);
    void handle_file_io(const transport::KdPacket& p);
    void reset_ids();
    uint32_t initial_host_id() const;
    void advance_host_id();
    bool is_duplicate(const transport::KdPacket& p) const;
    // Why a packet with a good checksum still cannot be trusted (ids and types are outside the
    // checksum; contents must agree with the type); empty when it can.
    std::string implausible(const transport::KdPacket& p) const;
    void accept_packet(const transport::KdPacket& p);
    void deliver_state_change(const transport::KdPacket& p, const std::string& malformed);
    // A packet that failed the checks: asked for again; taken as it is once the target keeps
    // sending the same bytes or stops answering RESEND.
    // `plausible`: its contents hold together, only its header is in doubt.
    void suspect(const transport::KdPacket& p, std::string why, bool plausible);
    void accept_suspect();
    void tend_suspect();
    // How long a quiet line is waited for before acting (see SessionOptions::idle_nudge).
    Millis nudge_after() const;
    void note_response_time(std::chrono::steady_clock::duration d);
    void flush_deferred();

    std::unique_ptr<transport::PacketLink> m_link;
    SessionDelegate* m_delegate;
    SessionOptions m_opt;
    SessionCounters m_counters;

    uint32_t m_next_host_id;
    // The packet waiting for its ACK, if any.
    std::optional<transport::KdPacket> m_outstanding;
    bool m_ack_seen = false;
    bool m_reset_seen = false;
    bool m_awaiting_reset_reply = false;
    bool m_resync_needed = false;
    uint64_t m_handshakes_seen = 0;
    bool m_synced = false;

    // Last accepted target packet (duplicate detection).
    std::optional<uint32_t> m_last_target_id;
    std::vector<uint8_t> m_last_target_payload;
    uint16_t m_last_target_type = 0;
    bool m_last_type_payload_valid = false;
    bool m_reset_since_last_packet = true; // no packet yet counts as "just reset"

    // The stop we are in (to absorb the re-sent state change that follows a RESET).
    std::optional<std::vector<uint8_t>> m_current_stop;
    uint64_t m_stop_repeats = 0; // copies of the current stop received

    std::deque<StateChange> m_state_changes;
    std::deque<ManipulateReply> m_replies;
    // Answers (DbgPrompt, FILE_IO) that must wait until the current send completes.
    std::deque<std::pair<uint16_t, std::vector<uint8_t>>> m_deferred;
    bool m_in_send = false;

    struct Suspect {
        transport::KdPacket packet;
        std::string why;
        int copies = 0;
        int nudges = 0;
        std::chrono::steady_clock::time_point since{};
        bool plausible = false;
    };
    std::optional<Suspect> m_suspect;
    // The target's recent slowest answer to a packet of ours (ms, decaying); < 0: none yet.
    double m_response_ms = -1;
    int m_reply_retry_limit = 0;
};

} // namespace kdcart::protocol
