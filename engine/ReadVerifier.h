#pragma once
// Memory reads a live target's link can be trusted with (issue 13).
//
// KDCOM's checksum is a byte sum: two bit flips that cancel pass it, and packet headers are not
// covered at all. So the link's health is tracked (RESENDs, bad packets, retransmits,
// implausible packets, timeouts, garbage bytes), and on a link that has shown errors every read
// is verified: the same range is read again until two reads agree byte for byte (a byte no two
// reads agree on is not shown). Requests are sized by RequestSizer from how each one fared
// (the line's error rate estimated from the damaged attempts; the size with the least line time
// per byte at that rate), a request whose reply keeps
// being damaged is given up on for a smaller one, and a request that fails on the link is sent
// again. A read that still fails half-way
// returns what came before the failure with status kLinkFailedStatus (not an unreadable page:
// the rest may be readable once the line is better).
//
// Modes (.kdverify): auto (verify while the link is noisy; the default), on (always), off
// (never) - except that the dump writer always has its reads verified on a noisy link.
#include "engine/RequestSizer.h"
#include "engine/Target.h"
#include "protocol/KdSession.h"

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace kdcart::engine {

enum class VerifyMode { Auto, On, Off };

// What .kdverify shows about the link.
struct LinkHealth {
    bool noisy = false;
    double recent_errors = 0;   // error events, decayed over the last ~256 KB of traffic
    double recent_bytes = 0;    // bytes those were counted over
    double byte_error_rate = 0; // estimate: damaged bytes per byte on the wire
    uint32_t chunk = 0;         // the request size reads use now
    protocol::SessionCounters session;
    transport::LinkStats link;
    // The last verified read: how many requests it took and what it cost on the wire compared
    // with one clean read of the same size.
    uint64_t last_bytes = 0;
    uint64_t last_requests = 0;
    uint64_t last_disagreements = 0;
    double last_slowdown = 0;
    uint64_t verified_reads = 0;
    uint64_t disagreements = 0; // reads that differed from another read of the same range
};

// What verification cost over a stretch of reads (one command's, say).
struct VerifySummary {
    uint64_t bytes = 0;
    uint64_t requests = 0;
    uint64_t disagreements = 0;
    double slowdown = 0; // wire bytes spent / what one clean read of the same bytes costs
};

class ReadVerifier {
  public:
    // One request of at most max_transfer() bytes (ReadVirtual, ReadPhysical, control space).
    using Fetch = std::function<Result<protocol::ReadResult>(uint64_t address, uint32_t size)>;
    using Notice = std::function<void(std::string_view)>;

    ReadVerifier(protocol::KdSession& session, Notice notice);

    // Reads [address, address+size) in requests, verified when the mode says so. `split`
    // false: one request (control space, where the address is an index).
    [[nodiscard]] Result<protocol::ReadResult> read(const Fetch& fetch, uint64_t address,
                                                    uint32_t size, bool split = true);

    void set_mode(VerifyMode mode) { m_mode = mode; }
    VerifyMode mode() const { return m_mode; }
    // The dump writer's reads: verified on a noisy link whatever the mode, and a link failure
    // is an error (never a short page in a dump).
    void set_for_dump(bool on) { m_for_dump = on; }
    bool verifying();
    LinkHealth health();
    // What verified reads cost since the last call; nullopt when fewer than `min_bytes` were
    // verified (the counts start over either way).
    std::optional<VerifySummary> take_summary(uint64_t min_bytes);

  private:
    // "3 bad packets, 5 RESENDs asked, ..." (only the kinds that happened).
    std::string error_summary() const;
    void update_health();
    uint32_t chunk_size();
    // One request (sent again while the line is alive but the exchange was lost). Its outcome
    // teaches m_sizer; a request given up on because its reply kept being damaged sets
    // m_ask_smaller when a smaller request is now due (the caller then asks for fewer bytes).
    [[nodiscard]] Result<protocol::ReadResult> fetch_once(const Fetch& fetch, uint64_t address,
                                                          uint32_t size);
    [[nodiscard]] Result<protocol::ReadResult> fetch_verified(const Fetch& fetch, uint64_t address,
                                                              uint32_t size);

    protocol::KdSession& m_session;
    Notice m_notice;
    VerifyMode m_mode = VerifyMode::Auto;
    bool m_for_dump = false;
    bool m_started = false;
    uint64_t m_seen_bytes = 0;
    uint64_t m_seen_errors = 0;
    double m_recent_bytes = 0;
    double m_recent_errors = 0;
    bool m_said_noisy = false;
    LinkHealth m_last;
    VerifySummary m_pending; // verified reads not summarised yet
    double m_pending_wire = 0;
    double m_pending_clean = 0;
    uint64_t m_read_requests = 0;      // requests made by the read under way
    uint64_t m_read_disagreements = 0; // its reads that disagreed
    RequestSizer m_sizer;
    bool m_ask_smaller = false;
    bool m_resizable = true; // the read under way may be split into smaller requests
};

// ReadResult::status for "the link failed here" (STATUS_IO_TIMEOUT): not the target's answer.
inline constexpr uint32_t kLinkFailedStatus = 0xC00000B5;

} // namespace kdcart::engine
