#pragma once
// Reads packet captures: classic pcap (either byte order, microsecond or nanosecond stamps) and
// pcapng (per-section byte order, interface link types, enhanced/simple/obsolete packet
// blocks; unknown blocks skipped), optionally gzip-compressed. Frames are numbered from 1 like
// Wireshark does. extract_udp() finds the UDP payload in Ethernet (with 802.1Q/802.1ad tags),
// raw IPv4/IPv6, BSD loopback and Linux cooked (SLL, SLL2) frames. Every length is checked:
// a hostile file yields an error, never a read out of bounds.
#include "transport/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kdcart::transport {

// LINKTYPE_* values we understand.
inline constexpr uint32_t kLinktypeNull = 0;
inline constexpr uint32_t kLinktypeEthernet = 1;
inline constexpr uint32_t kLinktypeRaw = 101;
inline constexpr uint32_t kLinktypeLoop = 108;
inline constexpr uint32_t kLinktypeLinuxSll = 113;
inline constexpr uint32_t kLinktypeIpv4 = 228;
inline constexpr uint32_t kLinktypeIpv6 = 229;
inline constexpr uint32_t kLinktypeLinuxSll2 = 276;

struct CaptureFrame {
    uint64_t number = 0;       // 1-based, every packet block counts
    uint64_t timestamp_ns = 0; // since the epoch (as stamped; 0 when unknown)
    uint32_t link_type = 0;
    uint32_t original_length = 0;
    std::span<const uint8_t> data; // captured bytes; valid until the next call to next()
};

struct IpEndpoint {
    bool v6 = false;
    std::array<uint8_t, 16> address{}; // IPv4 in the first 4 bytes
    uint16_t port = 0;

    // "192.168.2.1:51111" or "[fe80::1]:51111"
    std::string to_string() const;
    bool operator==(const IpEndpoint&) const = default;
};

struct UdpPayload {
    IpEndpoint source;
    IpEndpoint destination;
    std::span<const uint8_t> payload; // inside the frame passed to extract_udp()
};

// The UDP datagram in a frame of `link_type`, or nullopt (not UDP, truncated, a non-first IP
// fragment, an unknown link type...).
std::optional<UdpPayload> extract_udp(uint32_t link_type, std::span<const uint8_t> frame);

class PcapReader {
  public:
    // Reads the whole file (inflating .gz content, whatever the file name) and checks its header.
    [[nodiscard]] static Result<PcapReader> open(const std::string& path);
    // Same from bytes in memory (gzip-compressed or not).
    [[nodiscard]] static Result<PcapReader> from_bytes(std::vector<uint8_t> bytes);

    // The next frame; nullopt at a clean end of file. Errc::Malformed on a broken structure;
    // after an error the reader stays at its end.
    [[nodiscard]] Result<std::optional<CaptureFrame>> next();

    bool is_pcapng() const { return m_pcapng; }

  private:
    struct Interface {
        uint32_t link_type = 0;
        uint64_t ticks_per_second = 1000000;
    };

    PcapReader() = default;
    [[nodiscard]] Result<void> parse_file_header();
    [[nodiscard]] Result<std::optional<CaptureFrame>> next_classic();
    [[nodiscard]] Result<std::optional<CaptureFrame>> next_pcapng();
    [[nodiscard]] Result<void> read_section_header(size_t block_len);
    [[nodiscard]] Result<void> read_interface(size_t body_off, size_t body_len);
    uint16_t u16(size_t off) const;
    uint32_t u32(size_t off) const;
    tl::unexpected<Error> fail(std::string what);

    std::vector<uint8_t> m_bytes;
    size_t m_off = 0;
    bool m_pcapng = false;
    bool m_swap = false; // file (section) byte order differs from ours
    bool m_failed = false;
    // classic pcap
    uint32_t m_link_type = 0;
    bool m_nanoseconds = false;
    // pcapng
    std::vector<Interface> m_interfaces;
    uint64_t m_frame_count = 0;
};

// Inflates gzip data (concatenated members allowed), refusing to grow beyond `limit` bytes.
[[nodiscard]] Result<std::vector<uint8_t>> gunzip(std::span<const uint8_t> data, size_t limit);

} // namespace kdcart::transport
