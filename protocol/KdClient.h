#pragma once
// The typed client: one call per DbgKd API the debugger uses. Nothing above protocol/ builds or
// parses packets; everything goes through here.
#include "protocol/KdSession.h"

#include <map>

namespace kdcart::protocol {

struct ReadResult {
    std::vector<uint8_t> bytes; // what was read, from the start; shorter than asked = partial
    uint32_t status = 0;        // the failing NTSTATUS when partial
};

enum class PhysCache : uint32_t { Default = 0, Cached = 1, Uncached = 2, WriteCombined = 3 };

// Wire traffic of one manipulate API, counted by the client around each exchange: the link's
// byte counters before and after (request, its ACK, the reply and our ACK of it; retransmits and
// whatever else arrived meanwhile included).
struct ApiTraffic {
    uint64_t requests = 0;
    uint64_t bytes_out = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes() const { return bytes_out + bytes_in; }
};

class KdClient {
public:
    explicit KdClient(KdSession& session) : m_session(session) {}

    [[nodiscard]] Result<DBGKD_GET_VERSION64> get_version();
    [[nodiscard]] Result<ReadResult> read_virtual(uint64_t address, uint32_t size);
    [[nodiscard]] Result<uint32_t> write_virtual(uint64_t address, std::span<const uint8_t> data);
    [[nodiscard]] Result<ReadResult> read_physical(uint64_t address, uint32_t size,
                                                   PhysCache cache = PhysCache::Default);
    [[nodiscard]] Result<uint32_t> write_physical(uint64_t address, std::span<const uint8_t> data,
                                                  PhysCache cache = PhysCache::Default);
    [[nodiscard]] Result<CONTEXT> get_context(uint16_t processor);
    [[nodiscard]] Result<void> set_context(uint16_t processor, const CONTEXT& context);
    // GetContextEx: bytes [offset, offset+count) of the processor's CONTEXT. A reply with an
    // error status is Errc::TargetStatus; a short reply or one for another range is
    // Errc::Malformed (the caller falls back to GetContext).
    [[nodiscard]] Result<std::vector<uint8_t>> get_context_ex(uint16_t processor, uint32_t offset,
                                                              uint32_t count);
    // SetContextEx: writes `bytes` into the processor's CONTEXT at `offset`; same errors.
    [[nodiscard]] Result<void> set_context_ex(uint16_t processor, uint32_t offset,
                                              std::span<const uint8_t> bytes);
    [[nodiscard]] Result<ReadResult> read_control_space(uint16_t processor, uint64_t index,
                                                        uint32_t size);
    [[nodiscard]] Result<uint32_t> write_control_space(uint16_t processor, uint64_t index,
                                                       std::span<const uint8_t> data);
    [[nodiscard]] Result<uint32_t> write_breakpoint(uint64_t address);
    [[nodiscard]] Result<void> restore_breakpoint(uint32_t handle);
    [[nodiscard]] Result<void> continue2(uint32_t status, const AMD64_DBGKD_CONTROL_SET& control);
    [[nodiscard]] Result<void> continue1(uint32_t status);
    [[nodiscard]] Result<void> reboot();
    [[nodiscard]] Result<void> cause_bugcheck();
    [[nodiscard]] Result<void> switch_processor(uint16_t processor);
    // Asks the target to page `address` in when it resumes (.pagein). The request layout is not
    // published [?]: the address goes where memory requests carry theirs.
    [[nodiscard]] Result<void> page_in(uint64_t address);
    [[nodiscard]] Result<void> breakin() { return m_session.send_breakin(); }

    // The processor the current stop came from; requests default to it.
    void set_current_processor(uint16_t p, uint16_t level) {
        m_processor = p;
        m_level = level;
    }
    KdSession& session() { return m_session; }

    // Wire bytes per manipulate API since the last reset_traffic() (state changes, DbgPrint and
    // the like that arrive between requests are not in here).
    const std::map<uint32_t, ApiTraffic>& traffic() const { return m_traffic; }
    void reset_traffic() { m_traffic.clear(); }

private:
    DBGKD_MANIPULATE_STATE64 make(uint32_t api, uint16_t processor) const;
    // Every request goes through these two, which count its traffic.
    [[nodiscard]] Result<ManipulateReply> exchange(const DBGKD_MANIPULATE_STATE64& req,
                                                   std::span<const uint8_t> data = {});
    [[nodiscard]] Result<void> send_only(const DBGKD_MANIPULATE_STATE64& req);
    void count(uint32_t api, const transport::LinkStats& before);
    [[nodiscard]] Result<ReadResult> read_chunked(uint32_t api, uint64_t address, uint32_t size,
                                                  uint32_t flags, uint16_t processor);
    [[nodiscard]] Result<uint32_t> write_chunked(uint32_t api, uint64_t address,
                                                 std::span<const uint8_t> data, uint32_t flags,
                                                 uint16_t processor);

    KdSession& m_session;
    uint16_t m_processor = 0;
    uint16_t m_level = 0;
    std::map<uint32_t, ApiTraffic> m_traffic;
};

} // namespace kdcart::protocol
