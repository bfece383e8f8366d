#pragma once
// The IEEE 1394 bus as the 1394 KD link needs it (kd-protocol.md §5): nodes with a config ROM
// and a bus generation, and asynchronous quadlet/block read and write transactions at 48-bit
// addresses of a node. Two implementations: the real one over Linux firewire-core's character
// devices (transport/FwCdev.h) and a client of the simulated bus kdsim serves
// (transport/FwSimBus.h). Everything above (Ieee1394Link) only sees this interface.
//
// Byte order: data goes in and out as bytes in the order the wire carries them, which for
// physical DMA into a PC's RAM is memory order. The config ROM comes as quadlet values (host
// order), as FW_CDEV_IOC_GET_INFO returns it.
#include "transport/ByteStream.h"
#include "transport/Error.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kdcart::transport {

namespace fw {
// Transaction codes and response codes (IEEE 1394; the values of <linux/firewire-constants.h>).
inline constexpr uint32_t kWriteQuadlet = 0x0;
inline constexpr uint32_t kWriteBlock = 0x1;
inline constexpr uint32_t kReadQuadlet = 0x4;
inline constexpr uint32_t kReadBlock = 0x5;
inline constexpr uint32_t kRcodeComplete = 0x0;
inline constexpr uint32_t kRcodeConflictError = 0x4;
inline constexpr uint32_t kRcodeDataError = 0x5;
inline constexpr uint32_t kRcodeTypeError = 0x6;
inline constexpr uint32_t kRcodeAddressError = 0x7;
inline constexpr uint32_t kRcodeSendError = 0x10;
inline constexpr uint32_t kRcodeCancelled = 0x11;
inline constexpr uint32_t kRcodeBusy = 0x12;
inline constexpr uint32_t kRcodeGeneration = 0x13;
inline constexpr uint32_t kRcodeNoAck = 0x14;

// Where a node's config ROM sits in its CSR space (IEEE 1212).
inline constexpr uint64_t CSR_CONFIG_ROM = 0xFFFFF0000400ull;
// Physical DMA reaches the low 4 GiB of the target's memory (OHCI's default physical range).
inline constexpr uint64_t PHYSICAL_DMA_LIMIT = 0x100000000ull;
// Block payload limit at S400, the speed of 1394a ports.
inline constexpr uint32_t MAX_PAYLOAD_S400 = 2048;

const char* rcode_name(uint32_t rcode);
// The Result error for a response code that is not kRcodeComplete: Errc::Resync for
// kRcodeGeneration (a bus reset: read the node's info again and retry), Errc::Unreadable for
// kRcodeAddressError, Errc::Timeout for kRcodeCancelled (no response in the split timeout),
// Errc::Io for the rest. The message names the rcode.
Error rcode_error(uint32_t rcode, const std::string& what);
// Largest block payload for a speed code (0 = S100 ... 3 = S800): 512 << speed.
uint32_t max_payload_for_speed(uint32_t speed);
} // namespace fw

// What the bus says about a node now (FW_CDEV_IOC_GET_INFO).
struct FwNodeInfo {
    std::vector<uint32_t> rom; // config ROM quadlets, host order, from the bus info block on
    uint32_t generation = 0;
    uint32_t node_id = 0;       // 0xFFC0 | physical id
    uint32_t local_node_id = 0; // the controller's own node id
    bool is_local() const { return node_id == local_node_id; }
};

// One node on the bus (a /dev/fwN, or the simulated target).
class FwNode {
  public:
    virtual ~FwNode() = default;
    virtual std::string name() const = 0;
    [[nodiscard]] virtual Result<FwNodeInfo> get_info() = 0;
    // One transaction, with nothing else in flight, waiting at most `timeout` for the response.
    // Reads (TCODE_READ_*) return `length` bytes; writes send `data` and return nothing.
    // `generation` is the bus generation the caller's node id is valid in; after a bus reset
    // the transaction fails with Errc::Resync (see fw::rcode_error).
    [[nodiscard]] virtual Result<std::vector<uint8_t>>
    transact(uint32_t tcode, uint64_t offset, uint32_t length, std::span<const uint8_t> data,
             uint32_t generation, Millis timeout) = 0;
    // Largest block payload one transaction to this node may carry (the link speed's limit).
    virtual uint32_t max_payload() const = 0;
    // Starts a bus reset (every node's generation changes).
    [[nodiscard]] virtual Result<void> initiate_bus_reset() = 0;
};

// Lists and opens the nodes of a bus. Nodes that exist but cannot be opened go into
// `problems` ("/dev/fw1: Permission denied"); an error means no bus at all (no /dev/fw*, no
// simulated bus to connect to) and says what to do about it.
using FwEnumerator =
    std::function<Result<std::vector<std::unique_ptr<FwNode>>>(std::vector<std::string>& problems)>;

// The Windows debugger's entries in a node's config ROM (kd-protocol.md §5.2).
struct FwDebugRom {
    bool bus_info_1394 = false;           // the bus info block says "1394"
    std::optional<uint32_t> vendor;       // key 0x03, module vendor id
    std::optional<uint32_t> debug_vendor; // key 0x1C (Microsoft: 0x0050F2)
    std::optional<uint32_t> debug_kind;   // key 0x1D (0x000002)
    std::optional<uint32_t> debug_block;  // key 0x1E: physical address of DEBUG_1394_CONFIG
    uint32_t max_rec_payload = 0;         // from the bus options' max_rec; 0 = not given
    uint64_t guid = 0;
    bool crc_ok = true; // the root directory's CRC matches (only noted, never required)
    // The node is a Windows kernel-debugging target: the Microsoft debug entry and an address.
    bool is_debug_target() const {
        return debug_vendor && *debug_vendor == 0x0050F2 && debug_block.has_value();
    }
};
inline constexpr uint32_t MICROSOFT_VENDOR_ID = 0x0050F2;
FwDebugRom parse_debug_rom(std::span<const uint32_t> rom);
// The CRC-16 IEEE 1212 puts in directory headers, over `quadlets`.
uint16_t ieee1212_crc16(std::span<const uint32_t> quadlets);

} // namespace kdcart::transport
