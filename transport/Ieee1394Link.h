#pragma once
// KD over IEEE 1394 (kd-protocol.md §5), the host's side, over any FwNode (FwBus.h).
//
// Ieee1394Port finds the target and moves bytes to and from its memory:
// - discovery: every node of the bus but the cart's own controller is asked for its config ROM;
//   the target is the node whose root directory has the Microsoft debug entry (key 0x1C =
//   0x0050F2) and the address of its DEBUG_1394_CONFIG block (key 0x1E, 24 bits); the block
//   is read and its tag (0xBABABABA) and channel (Id) checked. Until a node qualifies, the port
//   keeps scanning (every rescan_interval) and says why none does (no remote node, no debug
//   entries, another channel, permissions);
// - transactions: one at a time, none longer than the node's payload limit (2048 bytes at
//   S400, less when the node's max_rec says so); a bus reset (RCODE_GENERATION) makes the port
//   read the node's info again (new generation), check that it is still the target (ROM, tag,
//   channel) and retry, up to reset_retries times in a row;
// - physical DMA: read_physical() reads the target's RAM straight off the bus (below 4 GiB,
//   where OHCI's physical unit answers), in naturally aligned payload-sized requests that never
//   cross a page. The rest of the last request is kept for the next read if that one starts
//   where this one ended (a dump reads RAM in order, 3944 bytes at a time): about one request
//   per 2 KiB instead of three per 3944 bytes. The link drops it whenever it sends a packet
//   (only the host's packets let a stopped target change its memory).
//
// The PacketLink (make_ieee1394_link) runs the mailboxes:
// - host -> target: wait until DEBUG_1394_RECEIVE_PACKET.TransferStatus is 0 (the target took
//   the previous packet; at most mailbox_timeout, else a clear error), write Length and the full
//   KD packet (16-byte header, then payload; Length counts both), then TransferStatus =
//   STATUS_PENDING (0x103). A packet identical to the one still waiting there is not written
//   again (the session repeats RESET while the target is silent). Break-in: Packet[0] = 0x62,
//   Length 1; it may replace a control packet of ours the target has not taken.
// - target -> host: poll DEBUG_1394_SEND_PACKET.TransferStatus; when PENDING, read the header,
//   Length and payload, check leader, size (<= 4000) and checksum, then write 0 to the status.
//   A bus reset in the middle of either transfer starts that transfer over.
// - no ACK packets: the session sends none on this link, and any the layer above hands us are
//   dropped. Ids simply increase (IdScheme::Kd1394).
// All waits are bounded; nothing here blocks longer than the timeouts in Ieee1394Config.
#include "transport/FwBus.h"
#include "transport/PacketLink.h"

#include <chrono>

namespace kdcart::transport {

namespace kd1394 {
inline constexpr uint32_t CONFIG_TAG = 0xBABABABA;
inline constexpr uint32_t CONFIG_SIZE = 32;
inline constexpr uint32_t STATUS_PENDING = 0x103;
inline constexpr uint32_t STATUS_SUCCESS = 0;
inline constexpr uint32_t MAILBOX_SIZE = 4096;
inline constexpr uint32_t MAX_PACKET = 4000;
// DEBUG_1394_SEND_PACKET (target -> host)
inline constexpr uint32_t SEND_HEADER = 0x04;
inline constexpr uint32_t SEND_LENGTH = 0x14;
inline constexpr uint32_t SEND_PACKET = 0x18;
// DEBUG_1394_RECEIVE_PACKET (host -> target)
inline constexpr uint32_t RECEIVE_LENGTH = 0x04;
inline constexpr uint32_t RECEIVE_PACKET = 0x08;

// DEBUG_1394_CONFIG (32 bytes, little-endian in the target's memory).
struct DebugConfig {
    uint32_t tag = 0;
    uint16_t major = 0;
    uint16_t minor = 0;
    uint32_t id = 0; // the channel
    uint32_t bus_present = 0;
    uint64_t send_packet = 0;    // physical address of DEBUG_1394_SEND_PACKET
    uint64_t receive_packet = 0; // physical address of DEBUG_1394_RECEIVE_PACKET
};
DebugConfig decode_config(std::span<const uint8_t, CONFIG_SIZE> bytes);
std::vector<uint8_t> encode_config(const DebugConfig& config);
// The 16-byte KD header as both mailboxes carry it.
std::vector<uint8_t> encode_header(const KdPacket& packet);
} // namespace kd1394

struct Ieee1394Config {
    uint32_t channel = 0;
    Millis request_timeout{1000}; // one transaction's response
    Millis mailbox_timeout{5000}; // the target takes our packet from its mailbox within this
    Millis rescan_interval{1000}; // while the target is not found
    uint32_t max_payload = fw::MAX_PAYLOAD_S400; // our own cap on a block request
    int reset_retries = 16;                      // bus resets in a row one operation survives
};

struct Ieee1394Stats {
    uint64_t transactions = 0;
    uint64_t bus_resets = 0; // RCODE_GENERATION answers (each followed by a re-check)
    uint64_t restarts = 0;   // mailbox transfers started over after a bus reset
    uint64_t scans = 0;
    uint64_t dma_requests = 0;
    uint64_t dma_bytes = 0;
    uint64_t largest_request = 0; // bytes in the largest block request made
};

class Ieee1394Port {
  public:
    // Scans the bus once. Fails when there is no bus to look at (no /dev/fw*, no simulated bus)
    // or when nodes could not be opened for lack of permission and no target was found among
    // the others (the message names the nodes and the udev rule). A bus without the target
    // (yet) is not an error: the port keeps looking and its notices say why.
    [[nodiscard]] static Result<std::shared_ptr<Ieee1394Port>>
    open(FwEnumerator enumerate, const Ieee1394Config& config, std::string bus_name);

    bool located() const { return m_node != nullptr; }
    // Scans now. Errc::NotFound (with why) when no node is the target on our channel.
    [[nodiscard]] Result<void> locate();
    // Scans if rescan_interval has passed since the last scan.
    void locate_if_due();
    std::string describe() const;
    const Ieee1394Config& config() const { return m_config; }

    // The target's RAM by physical DMA: bytes from `address` on; fewer than `size` means the
    // byte after the last one returned cannot be read this way (no RAM there, or at or above
    // 4 GiB). Errors: the bus failed (the caller may fall back to KD packets).
    [[nodiscard]] Result<std::vector<uint8_t>> read_physical(uint64_t address, uint32_t size);
    // Forgets the bytes read ahead (the target may change its memory from now on).
    void forget_read_ahead() { m_ahead.clear(); }

    // Transactions at the target's addresses, split into payload-sized requests (lengths are
    // rounded to whole quadlets; writes are padded with zeros), bus resets handled.
    [[nodiscard]] Result<std::vector<uint8_t>> read(uint64_t address, uint32_t size);
    [[nodiscard]] Result<void> write(uint64_t address, std::span<const uint8_t> data);
    // A little-endian 32-bit value of target memory, by a quadlet transaction.
    [[nodiscard]] Result<uint32_t> read_u32(uint64_t address);
    [[nodiscard]] Result<void> write_u32(uint64_t address, uint32_t value);

    uint64_t send_mailbox() const { return m_debug.send_packet; }
    uint64_t receive_mailbox() const { return m_debug.receive_packet; }
    uint64_t config_address() const { return m_config_address; }
    // Bumped by every bus reset the port recovered from: a transfer of several transactions
    // that sees it change starts over.
    uint64_t reset_epoch() const { return m_epoch; }
    uint32_t payload_limit() const { return m_payload; }
    Ieee1394Stats stats() const { return m_stats; }
    // The link started a mailbox transfer over after a bus reset.
    void count_restart() { ++m_stats.restarts; }
    std::vector<std::string> take_notices();
    void notice(std::string text);

  private:
    Ieee1394Port(FwEnumerator enumerate, const Ieee1394Config& config, std::string bus_name);
    [[nodiscard]] Result<std::vector<uint8_t>>
    transact(uint32_t tcode, uint64_t address, uint32_t length, std::span<const uint8_t> data);
    [[nodiscard]] Result<void> refresh();
    void lose(const std::string& why);

    FwEnumerator m_enumerate;
    Ieee1394Config m_config;
    std::string m_bus_name;
    std::unique_ptr<FwNode> m_node;
    uint32_t m_generation = 0;
    uint32_t m_node_id = 0;
    uint64_t m_config_address = 0;
    kd1394::DebugConfig m_debug;
    uint32_t m_payload = fw::MAX_PAYLOAD_S400;
    uint64_t m_epoch = 0;
    uint64_t m_ahead_address = 0; // physical address of m_ahead[0]
    std::vector<uint8_t> m_ahead; // read by DMA past the end of the last read_physical()
    std::chrono::steady_clock::time_point m_last_scan{};
    std::string m_last_scan_result;
    bool m_no_bus = false; // the last scan could not even list the bus's nodes
    std::vector<std::string> m_notices;
    Ieee1394Stats m_stats;
};

// The KD packet link over the port's mailboxes (IdScheme::Kd1394, 4000-byte packets).
std::unique_ptr<PacketLink> make_ieee1394_link(std::shared_ptr<Ieee1394Port> port);

} // namespace kdcart::transport
