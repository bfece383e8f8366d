#pragma once
// KdTarget: the target side of the Windows kernel debugger protocol (what NT's kd and kdcom
// do), driving a SimMachine over a PacketLink.
//
// - Packet ids as KDCOM targets do them (kd-protocol.md §1.4): INITIAL|SYNC first, SYNC
//   cleared on the first ACK, bit 0 toggled on every ACKed packet. Host packets with the
//   expected id are ACKed and taken, duplicates are ACKed again and dropped, anything else
//   gets a RESEND. RESET resets both ids, is answered with RESET, and the pending packet (or,
//   while stopped, the state change) is sent again.
// - While the machine runs, the link is polled for the break-in byte; DbgPrint goes out as
//   DEBUG_IO PrintString. Optional packets (DbgPrint, LoadSymbols) are retried 20 times, state
//   changes forever.
// - When the machine stops (breakpoint, single step, fault...) a DBGKD_ANY_WAIT_STATE_CHANGE
//   goes out and manipulate requests are served until Continue/Continue2.
//
// Single-threaded: the owner calls step() in a loop.
#include "hw/SimMachine.h"
#include "protocol/dbgkd_structs.h"
#include "transport/PacketLink.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace kdcart::hw {

struct KdTargetOptions {
    std::chrono::milliseconds ack_timeout{1000}; // resend a packet not ACKed by then
    uint32_t optional_retries = 20;              // KdpDefaultRetries for DbgPrint/LoadSymbols
    RunBudget budget{};                          // one machine slice per step()
    std::chrono::milliseconds wait_slice{100};   // longest wait on the link in one step()
    uint32_t break_in_cpu = 0;                   // the CPU that takes the break-in
    // kdsim --phys-snapshot: right before each state change goes out (every time the target
    // reports a stop, or reports it again), all of physical memory is written to this file as
    // a sparse image, with FILE.runs (SimMachine::write_physical_snapshot). Empty: off.
    std::filesystem::path phys_snapshot;
    // kdsim --mute-after-bytes/--mute-ms: once the target has sent this many bytes in all (KD
    // packets as framed: 16-byte header, payload, KDCOM's 0xAA trailer on data packets), the
    // link goes dead for mute_for: whatever the target would send is dropped and whatever
    // arrives is ignored, as if the cable were pulled and plugged back. Once per KdTarget;
    // 0 = never.
    uint64_t mute_after_bytes = 0;
    std::chrono::milliseconds mute_for{15000};
};

enum class StepStatus {
    Ok,
    LinkDown, // the link reported the peer gone (or there is no link)
};

struct KdTargetStats {
    uint64_t packets_sent = 0;
    uint64_t packets_received = 0;
    uint64_t resends = 0;       // packets sent again (timeout, RESEND or RESET)
    uint64_t resends_asked = 0; // RESENDs we sent for bad or unexpected host packets
    uint64_t resets = 0;        // RESETs from the host
    uint64_t duplicates = 0;    // host data packets seen twice
    uint64_t prints_sent = 0;
    uint64_t prints_dropped = 0; // no host, or retries exhausted
    uint64_t state_changes = 0;
    uint64_t requests = 0;          // manipulate requests served
    uint64_t bytes_sent = 0;        // KD packet bytes that went out (what mute_after counts)
    uint64_t muted_packets_out = 0; // packets dropped while muted
    uint64_t muted_events_in = 0;   // packets and break-ins ignored while muted
    uint64_t snapshots = 0;         // physical memory snapshots written
    uint64_t crash_reboots = 0;     // bug checks that ran to their end (crash dump, reboot)
};

class KdTarget {
  public:
    explicit KdTarget(SimMachine& machine, KdTargetOptions options = {});
    ~KdTarget();
    KdTarget(const KdTarget&) = delete;
    KdTarget& operator=(const KdTarget&) = delete;

    // A host connection. Packet ids are kept (a new host resynchronises with RESET).
    void attach(std::unique_ptr<transport::PacketLink> link);
    std::unique_ptr<transport::PacketLink> detach();
    bool attached() const { return m_link != nullptr; }
    // A host has talked to us since the link last failed (optional packets only go out then).
    bool host_present() const { return m_host_present; }
    // The machine is stopped in the debugger.
    bool stopped() const { return m_mode == Mode::Stopped; }
    // The link is muted now (mute_after_bytes reached, mute_for not over).
    bool muted() const { return m_muted; }

    // One bounded unit of work: a machine slice while running, otherwise one wait on the link
    // (at most wait_slice) with whatever sending is due.
    StepStatus step();

    const KdTargetStats& stats() const { return m_stats; }
    SimMachine& machine() { return m_machine; }

    static constexpr uint32_t BREAKPOINT_TABLE_SIZE = 32; // KD_BREAKPOINT_MAX
    // KdpBreakpointTable entry flags. ACTIVE, PENDING (owed) and EXPIRED are NT's; LIFTED is
    // ours: the target took the 0xCC out itself (a stop's 16-byte window, an unloaded image)
    // and keeps the handle until the host restores it (see hw/README.md).
    static constexpr uint32_t BREAKPOINT_ACTIVE = 0x01;
    static constexpr uint32_t BREAKPOINT_PENDING = 0x02;
    static constexpr uint32_t BREAKPOINT_EXPIRED = 0x08;
    static constexpr uint32_t BREAKPOINT_LIFTED = 0x10;
    struct Breakpoint {
        uint32_t flags = 0; // 0 = free slot
        uint64_t address = 0;
        uint8_t content = 0; // the original byte
    };
    // The table as it is (slot i has handle i + 1).
    const std::array<Breakpoint, BREAKPOINT_TABLE_SIZE>& breakpoint_table() const {
        return m_breakpoints;
    }

  private:
    bool kdnet() const;
    bool ieee1394() const; // 1394 mailboxes: ids count up by 1, no ACK packets
    void reset_ids(bool on_reset);
    bool ack_matches(uint32_t id) const;
    void advance_send_id();
    uint32_t next_recv_id(uint32_t id) const;
    bool is_previous_recv_id(uint32_t id) const;
    enum class Mode { Running, Stopped };
    enum class OutKind { Print, StateChange, Reply };
    struct Outstanding {
        OutKind kind = OutKind::Reply;
        transport::KdPacket packet;
        bool optional = false;
        bool sent = false;
        uint32_t retries_left = 0;
        std::chrono::steady_clock::time_point resend_at{};
    };
    void run_machine();
    void enter_stop(const RunResult& stop);
    void queue(OutKind kind, uint16_t type, std::vector<uint8_t> payload, bool optional);
    void queue_state_change();
    StepStatus service_outstanding();
    void outstanding_done(bool acked);
    StepStatus pump(std::chrono::milliseconds timeout);
    void handle_event(const transport::LinkEvent& event);
    void handle_packet(const transport::KdPacket& packet);
    void handle_reset_or_resend(bool reset);
    void note_host();
    void lose_host();
    void send_control(uint16_t type, uint32_t id);
    StepStatus send_now(transport::KdPacket& packet);
    Result<void> link_send(const transport::KdPacket& packet);
    bool link_muted();
    void write_snapshot();
    void reboot_machine();

    std::vector<uint8_t> build_state_change();
    void handle_manipulate(std::span<const uint8_t> payload);
    void reply(const protocol::DBGKD_MANIPULATE_STATE64& header,
               std::span<const uint8_t> data = {});
    void do_continue(uint32_t status, const protocol::AMD64_DBGKD_CONTROL_SET* control);
    void reply_get_version(protocol::DBGKD_MANIPULATE_STATE64 m);
    void reply_read_memory(protocol::DBGKD_MANIPULATE_STATE64 m, bool physical);
    void reply_write_memory(protocol::DBGKD_MANIPULATE_STATE64 m, std::span<const uint8_t> data,
                            bool physical);
    void reply_get_context(protocol::DBGKD_MANIPULATE_STATE64 m, bool extended);
    void reply_set_context(protocol::DBGKD_MANIPULATE_STATE64 m, std::span<const uint8_t> data,
                           bool extended);
    void reply_read_control_space(protocol::DBGKD_MANIPULATE_STATE64 m);
    void reply_write_control_space(protocol::DBGKD_MANIPULATE_STATE64 m,
                                   std::span<const uint8_t> data);
    void reply_write_breakpoint(protocol::DBGKD_MANIPULATE_STATE64 m);
    void reply_restore_breakpoint(protocol::DBGKD_MANIPULATE_STATE64 m);
    void reply_msr(protocol::DBGKD_MANIPULATE_STATE64 m, bool write);
    void reply_page_in(protocol::DBGKD_MANIPULATE_STATE64 m);
    void reply_unsupported(protocol::DBGKD_MANIPULATE_STATE64 m);

    uint32_t add_breakpoint(uint64_t address);
    bool delete_breakpoint(uint32_t handle);
    void lift_breakpoints_in(uint64_t low, uint64_t high);
    bool write_int3(Breakpoint& bp);
    void set_owed_breakpoints();
    void set_debugger_not_present(bool not_present);

    SimMachine& m_machine;
    KdTargetOptions m_options;
    std::unique_ptr<transport::PacketLink> m_link;
    uint32_t m_send_id = protocol::INITIAL_PACKET_ID | protocol::SYNC_PACKET_ID;
    uint32_t m_recv_id = protocol::INITIAL_PACKET_ID;
    bool m_host_present = false;
    // The physical memory snapshot on disk (KDSIM_PHYS_SNAPSHOT) equals memory: not rewritten
    // for a stop sent again after a RESEND, only after the machine ran or the host wrote.
    bool m_snapshot_current = false;
    bool m_break_pending = false;
    bool m_wake = false;
    Mode m_mode = Mode::Running;
    std::optional<Outstanding> m_out;
    RunResult m_stop;
    uint32_t m_stop_cpu = 0;
    bool m_first_chance = true; // the stop's exception is reported first chance
    bool m_switch_stop = false; // the stop came from SwitchProcessor, not an exception
    std::vector<uint8_t> m_state_change;
    std::array<Breakpoint, BREAKPOINT_TABLE_SIZE> m_breakpoints{};
    bool m_owed = false;
    bool m_muted = false;
    bool m_mute_done = false; // the one mute has started
    std::chrono::steady_clock::time_point m_mute_until{};
    KdTargetStats m_stats;
};

} // namespace kdcart::hw
