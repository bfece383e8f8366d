#pragma once
// The simulated IEEE 1394 bus: a small message protocol over an AF_UNIX stream socket between
// kdcart (the host's side of the bus: a FwNode) and kdsim (the target's OHCI controller, which
// answers from the simulated machine's physical memory). kdsim listens (`kdsim --1394 PATH`),
// kdcart connects (`-k 1394:channel=N,bus=sim:PATH`); a new connection is a cable plugged in,
// so it costs a bus reset, as on a real bus.
//
// Every message is a 32-bit little-endian body length, then the body (all fields little-endian):
//
//   host -> bus (24-byte header, then `length` data bytes for writes)
//     u8  op          1 = GET_INFO, 2 = TRANSACTION, 3 = BUS_RESET (start one)
//     u8  tcode       TRANSACTION: TCODE_READ/WRITE_QUADLET/BLOCK_REQUEST
//     u16 0
//     u32 tag         echoed in the answer (a closure)
//     u32 generation  the bus generation the request was made in
//     u32 length      bytes to read, or data bytes that follow
//     u64 offset      48-bit destination address
//
//   bus -> host (24-byte header, then `length` data bytes)
//     u8  op          0x81 = INFO, 0x82 = RESPONSE, 0x83 = BUS_RESET event (unsolicited)
//     u8  rcode       RESPONSE: RCODE_*
//     u16 0
//     u32 tag
//     u32 generation  the bus generation now
//     u32 node_id     the target node's id
//     u32 local_id    the host controller's node id
//     u32 length
//     data            INFO: the config ROM as big-endian quadlets (as on the wire);
//                     RESPONSE to a read: the bytes read
//
// The bus answers requests one at a time, in order. A TRANSACTION made in an old generation
// fails with RCODE_GENERATION and is not carried out; a block longer than the bus's payload
// limit fails with RCODE_TYPE_ERROR; an address with no memory behind it with
// RCODE_ADDRESS_ERROR.
#include "transport/FwBus.h"

#include <deque>

namespace kdcart::transport {

namespace fwsim {
inline constexpr uint8_t OP_GET_INFO = 1;
inline constexpr uint8_t OP_TRANSACTION = 2;
inline constexpr uint8_t OP_BUS_RESET = 3;
inline constexpr uint8_t OP_INFO = 0x81;
inline constexpr uint8_t OP_RESPONSE = 0x82;
inline constexpr uint8_t OP_BUS_RESET_EVENT = 0x83;
inline constexpr size_t HEADER_SIZE = 24;
inline constexpr uint32_t MAX_BODY = HEADER_SIZE + 4096;

struct Request {
    uint8_t op = 0;
    uint8_t tcode = 0;
    uint32_t tag = 0;
    uint32_t generation = 0;
    uint32_t length = 0;
    uint64_t offset = 0;
    std::vector<uint8_t> data; // writes
};

struct Reply {
    uint8_t op = 0;
    uint8_t rcode = 0;
    uint32_t tag = 0;
    uint32_t generation = 0;
    uint32_t node_id = 0;
    uint32_t local_node_id = 0;
    std::vector<uint8_t> data;
};

// Whole messages, length prefix included.
std::vector<uint8_t> encode(const Request& r);
std::vector<uint8_t> encode(const Reply& r);
[[nodiscard]] Result<Request> decode_request(std::span<const uint8_t> body);
[[nodiscard]] Result<Reply> decode_reply(std::span<const uint8_t> body);

// Splits a byte stream into message bodies.
class Framer {
  public:
    void feed(std::span<const uint8_t> bytes);
    // The next whole body; nullopt when more bytes are needed. A declared length above
    // MAX_BODY makes the stream bad() for good.
    std::optional<std::vector<uint8_t>> next();
    bool bad() const { return m_bad; }
    void clear() {
        m_buf.clear();
        m_bad = false;
    }

  private:
    std::vector<uint8_t> m_buf;
    bool m_bad = false;
};
} // namespace fwsim

// The host's side of the simulated bus at `socket_path`: one remote node (the target).
// Connecting fails with a message naming the path when kdsim is not listening there.
FwEnumerator make_sim_enumerator(std::string socket_path);
[[nodiscard]] Result<std::unique_ptr<FwNode>> connect_sim_node(const std::string& socket_path);

} // namespace kdcart::transport
