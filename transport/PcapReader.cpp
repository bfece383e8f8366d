#include "transport/PcapReader.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <zlib.h>

namespace kdcart::transport {

namespace {

// Captures (and what they inflate to) are read into memory; refuse anything bigger.
constexpr size_t kMaxCaptureBytes = size_t{1} << 30;
constexpr uint32_t kPcapMagicMicro = 0xA1B2C3D4;
constexpr uint32_t kPcapMagicNano = 0xA1B23C4D;
constexpr uint32_t kBlockSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kBlockInterface = 1;
constexpr uint32_t kBlockObsoletePacket = 2;
constexpr uint32_t kBlockSimplePacket = 3;
constexpr uint32_t kBlockEnhancedPacket = 6;
constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr uint16_t kOptEnd = 0;
constexpr uint16_t kOptTsResol = 9;
constexpr int kMaxVlanTags = 4;
constexpr int kMaxIpv6ExtHeaders = 8;

uint16_t be16(std::span<const uint8_t> b, size_t off) {
    return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

uint32_t le32_raw(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

uint64_t ticks_to_ns(uint64_t ticks, uint64_t per_second) {
    if (per_second == 0) {
        return 0;
    }
    const uint64_t sec = ticks / per_second;
    const uint64_t rem = ticks % per_second;
    uint64_t frac = 0;
    if (rem < UINT64_MAX / 1000000000ull) {
        frac = rem * 1000000000ull / per_second;
    } else {
        frac = static_cast<uint64_t>(static_cast<long double>(rem) * 1e9L /
                                     static_cast<long double>(per_second));
    }
    return sec * 1000000000ull + frac;
}

std::optional<UdpPayload> parse_udp(std::span<const uint8_t> l4, UdpPayload out) {
    if (l4.size() < 8) {
        return std::nullopt;
    }
    const uint16_t len = be16(l4, 4);
    if (len < 8 || len > l4.size()) {
        return std::nullopt;
    }
    out.source.port = be16(l4, 0);
    out.destination.port = be16(l4, 2);
    out.payload = l4.subspan(8, len - 8u);
    return out;
}

std::optional<UdpPayload> parse_ipv4(std::span<const uint8_t> ip) {
    if (ip.size() < 20 || (ip[0] >> 4) != 4) {
        return std::nullopt;
    }
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0F) * 4;
    const size_t total = be16(ip, 2);
    if (ihl < 20 || total < ihl || total > ip.size()) {
        return std::nullopt;
    }
    const uint16_t frag = be16(ip, 6);
    if ((frag & 0x2000) != 0 || (frag & 0x1FFF) != 0) {
        return std::nullopt; // a fragment: KDNET never fragments, and we do not reassemble
    }
    if (ip[9] != 17) {
        return std::nullopt;
    }
    UdpPayload out;
    std::memcpy(out.source.address.data(), ip.data() + 12, 4);
    std::memcpy(out.destination.address.data(), ip.data() + 16, 4);
    return parse_udp(ip.subspan(ihl, total - ihl), out);
}

std::optional<UdpPayload> parse_ipv6(std::span<const uint8_t> ip) {
    if (ip.size() < 40 || (ip[0] >> 4) != 6) {
        return std::nullopt;
    }
    const size_t payload_len = be16(ip, 4);
    if (payload_len == 0 || 40 + payload_len > ip.size()) {
        return std::nullopt; // jumbograms and truncated packets
    }
    UdpPayload out;
    out.source.v6 = true;
    out.destination.v6 = true;
    std::memcpy(out.source.address.data(), ip.data() + 8, 16);
    std::memcpy(out.destination.address.data(), ip.data() + 24, 16);
    uint8_t next = ip[6];
    std::span<const uint8_t> rest = ip.subspan(40, payload_len);
    for (int i = 0; i < kMaxIpv6ExtHeaders; ++i) {
        if (next == 17) {
            return parse_udp(rest, out);
        }
        if (rest.size() < 8) {
            return std::nullopt;
        }
        size_t len = 0;
        switch (next) {
        case 0:  // hop-by-hop
        case 43: // routing
        case 60: // destination options
            len = (static_cast<size_t>(rest[1]) + 1) * 8;
            break;
        case 44: { // fragment: only an unfragmented "atomic" one carries a whole datagram
            const uint16_t off_m = be16(rest, 2);
            if ((off_m & 0xFFF9) != 0) {
                return std::nullopt;
            }
            len = 8;
            break;
        }
        case 51: // authentication header
            len = (static_cast<size_t>(rest[1]) + 2) * 4;
            break;
        default:
            return std::nullopt;
        }
        if (len > rest.size()) {
            return std::nullopt;
        }
        next = rest[0];
        rest = rest.subspan(len);
    }
    return std::nullopt;
}

std::optional<UdpPayload> parse_by_ethertype(uint16_t type, std::span<const uint8_t> l3) {
    if (type == 0x0800) {
        return parse_ipv4(l3);
    }
    if (type == 0x86DD) {
        return parse_ipv6(l3);
    }
    return std::nullopt;
}

std::optional<UdpPayload> parse_by_version(std::span<const uint8_t> l3) {
    if (l3.empty()) {
        return std::nullopt;
    }
    const int v = l3[0] >> 4;
    if (v == 4) {
        return parse_ipv4(l3);
    }
    if (v == 6) {
        return parse_ipv6(l3);
    }
    return std::nullopt;
}

} // namespace

std::string IpEndpoint::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!v6) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", address[0], address[1], address[2],
                      address[3]);
        return std::string(buf) + ":" + std::to_string(port);
    }
    if (inet_ntop(AF_INET6, address.data(), buf, sizeof buf) == nullptr) {
        return "[?]:" + std::to_string(port);
    }
    return "[" + std::string(buf) + "]:" + std::to_string(port);
}

std::optional<UdpPayload> extract_udp(uint32_t link_type, std::span<const uint8_t> frame) {
    switch (link_type) {
    case kLinktypeEthernet: {
        if (frame.size() < 14) {
            return std::nullopt;
        }
        uint16_t type = be16(frame, 12);
        size_t off = 14;
        for (int i = 0; i < kMaxVlanTags && (type == 0x8100 || type == 0x88A8 || type == 0x9100);
             ++i) {
            if (frame.size() < off + 4) {
                return std::nullopt;
            }
            type = be16(frame, off + 2);
            off += 4;
        }
        return parse_by_ethertype(type, frame.subspan(off));
    }
    case kLinktypeLinuxSll:
        if (frame.size() < 16) {
            return std::nullopt;
        }
        return parse_by_ethertype(be16(frame, 14), frame.subspan(16));
    case kLinktypeLinuxSll2:
        if (frame.size() < 20) {
            return std::nullopt;
        }
        return parse_by_ethertype(be16(frame, 0), frame.subspan(20));
    case kLinktypeNull:
    case kLinktypeLoop:
        // A 4-byte address family (host order for NULL, network order for LOOP); the IP
        // version nibble tells the rest, whichever OS wrote it.
        if (frame.size() < 4) {
            return std::nullopt;
        }
        return parse_by_version(frame.subspan(4));
    case kLinktypeRaw:
    case 12: // DLT_RAW on some BSDs
    case 14:
        return parse_by_version(frame);
    case kLinktypeIpv4:
        return parse_ipv4(frame);
    case kLinktypeIpv6:
        return parse_ipv6(frame);
    default:
        return std::nullopt;
    }
}

Result<std::vector<uint8_t>> gunzip(std::span<const uint8_t> data, size_t limit) {
    z_stream zs{};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        return make_error(Errc::Io, "zlib: inflateInit2 failed");
    }
    struct End {
        z_stream* z;
        ~End() { inflateEnd(z); }
    } end{&zs};
    std::vector<uint8_t> out;
    size_t consumed = 0;
    constexpr size_t kChunk = 1 << 16;
    constexpr size_t kMaxIn = 1u << 30;
    for (;;) {
        if (zs.avail_in == 0 && consumed < data.size()) {
            const size_t n = std::min(kMaxIn, data.size() - consumed);
            zs.next_in = const_cast<Bytef*>(data.data() + consumed);
            zs.avail_in = static_cast<uInt>(n);
            consumed += n;
        }
        if (out.size() > limit) {
            return make_error(Errc::Malformed, "compressed capture inflates beyond the size limit");
        }
        const size_t before = out.size();
        out.resize(before + kChunk);
        zs.next_out = out.data() + before;
        zs.avail_out = static_cast<uInt>(kChunk);
        const int rc = inflate(&zs, Z_NO_FLUSH);
        out.resize(before + (kChunk - zs.avail_out));
        if (out.size() > limit) {
            return make_error(Errc::Malformed, "compressed capture inflates beyond the size limit");
        }
        if (rc == Z_STREAM_END) {
            const size_t left = zs.avail_in + (data.size() - consumed);
            const uint8_t* next = zs.next_in;
            if (left >= 2 && zs.avail_in >= 2 && next[0] == 0x1F && next[1] == 0x8B) {
                if (inflateReset(&zs) != Z_OK) {
                    return make_error(Errc::Io, "zlib: inflateReset failed");
                }
                continue; // another gzip member
            }
            return out; // trailing bytes that are not gzip are ignored, as gzip(1) does
        }
        if (rc == Z_OK) {
            continue;
        }
        if (rc == Z_BUF_ERROR) {
            if (zs.avail_in == 0 && consumed >= data.size()) {
                return make_error(Errc::Malformed, "gzip data is truncated");
            }
            continue;
        }
        return make_error(Errc::Malformed,
                          std::string("gzip data is corrupt: ") + (zs.msg ? zs.msg : "zlib error"));
    }
}

Result<PcapReader> PcapReader::open(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        return make_error(Errc::NotFound, "cannot open capture " + path);
    }
    f.seekg(0, std::ios::end);
    const auto size = f.tellg();
    if (size < 0) {
        return make_error(Errc::Io, "cannot read capture " + path);
    }
    if (static_cast<uint64_t>(size) > kMaxCaptureBytes) {
        return make_error(Errc::Unsupported, "capture " + path + " is larger than 1 GiB");
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    f.seekg(0, std::ios::beg);
    if (!bytes.empty() && !f.read(reinterpret_cast<char*>(bytes.data()),
                                  static_cast<std::streamsize>(bytes.size()))) {
        return make_error(Errc::Io, "cannot read capture " + path);
    }
    auto r = from_bytes(std::move(bytes));
    if (!r) {
        return make_error(r.error().code, path + ": " + r.error().message);
    }
    return r;
}

Result<PcapReader> PcapReader::from_bytes(std::vector<uint8_t> bytes) {
    PcapReader r;
    if (bytes.size() >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B) {
        auto inflated = gunzip(bytes, kMaxCaptureBytes);
        if (!inflated) {
            return tl::unexpected(inflated.error());
        }
        r.m_bytes = std::move(*inflated);
    } else {
        r.m_bytes = std::move(bytes);
    }
    if (auto h = r.parse_file_header(); !h) {
        return tl::unexpected(h.error());
    }
    return r;
}

uint16_t PcapReader::u16(size_t off) const {
    uint16_t v;
    std::memcpy(&v, m_bytes.data() + off, 2);
    return m_swap ? static_cast<uint16_t>((v >> 8) | (v << 8)) : v;
}

uint32_t PcapReader::u32(size_t off) const {
    const uint32_t v = le32_raw(m_bytes.data() + off);
    return m_swap ? __builtin_bswap32(v) : v;
}

tl::unexpected<Error> PcapReader::fail(std::string what) {
    m_failed = true;
    m_off = m_bytes.size();
    return make_error(Errc::Malformed, std::move(what));
}

Result<void> PcapReader::parse_file_header() {
    if (m_bytes.size() < 4) {
        return make_error(Errc::Malformed, "not a capture file (too short)");
    }
    const uint32_t magic = le32_raw(m_bytes.data());
    if (magic == kBlockSectionHeader) {
        m_pcapng = true;
        m_off = 0;
        return {}; // the section header is read as the first block
    }
    if (magic == kPcapMagicMicro || magic == kPcapMagicNano) {
        m_swap = false;
    } else if (magic == __builtin_bswap32(kPcapMagicMicro) ||
               magic == __builtin_bswap32(kPcapMagicNano)) {
        m_swap = true;
    } else {
        return make_error(Errc::Malformed, "not a pcap or pcapng file (unknown magic)");
    }
    if (m_bytes.size() < 24) {
        return make_error(Errc::Malformed, "pcap file header is truncated");
    }
    m_nanoseconds = u32(0) == kPcapMagicNano;
    m_link_type = u32(20) & 0xFFFF;
    m_off = 24;
    return {};
}

Result<std::optional<CaptureFrame>> PcapReader::next() {
    if (m_failed || m_off >= m_bytes.size()) {
        return std::optional<CaptureFrame>{};
    }
    return m_pcapng ? next_pcapng() : next_classic();
}

Result<std::optional<CaptureFrame>> PcapReader::next_classic() {
    const size_t left = m_bytes.size() - m_off;
    const uint64_t number = m_frame_count + 1;
    if (left < 16) {
        return fail("pcap record header of frame " + std::to_string(number) + " is truncated");
    }
    const uint32_t sec = u32(m_off);
    const uint32_t frac = u32(m_off + 4);
    const uint32_t incl = u32(m_off + 8);
    const uint32_t orig = u32(m_off + 12);
    if (incl > left - 16) {
        return fail("pcap frame " + std::to_string(number) + " claims " + std::to_string(incl) +
                    " bytes; only " + std::to_string(left - 16) + " remain");
    }
    CaptureFrame f;
    f.number = number;
    f.timestamp_ns = uint64_t{sec} * 1000000000ull + (m_nanoseconds ? frac : uint64_t{frac} * 1000);
    f.link_type = m_link_type;
    f.original_length = orig;
    f.data = std::span<const uint8_t>(m_bytes.data() + m_off + 16, incl);
    m_off += 16 + size_t{incl};
    m_frame_count = number;
    return std::optional<CaptureFrame>(f);
}

Result<void> PcapReader::read_section_header(size_t block_len) {
    // Called with m_off at the block; the byte-order magic decides how to read the rest.
    if (block_len < 28) {
        return fail("pcapng section header block is too short");
    }
    m_interfaces.clear();
    return {};
}

Result<void> PcapReader::read_interface(size_t body_off, size_t body_len) {
    if (body_len < 8) {
        return fail("pcapng interface description block is too short");
    }
    Interface ifc;
    ifc.link_type = u16(body_off);
    size_t off = body_off + 8;
    const size_t end = body_off + body_len;
    while (off + 4 <= end) {
        const uint16_t code = u16(off);
        const uint16_t len = u16(off + 2);
        const size_t padded = (size_t{len} + 3) & ~size_t{3};
        if (code == kOptEnd) {
            break;
        }
        if (off + 4 + padded > end) {
            return fail("pcapng interface option runs past its block");
        }
        if (code == kOptTsResol && len >= 1) {
            const uint8_t v = m_bytes[off + 4];
            const unsigned exp = v & 0x7F;
            uint64_t tps = 1;
            if (v & 0x80) {
                if (exp > 63) {
                    return fail("pcapng if_tsresol out of range");
                }
                tps = uint64_t{1} << exp;
            } else {
                if (exp > 19) {
                    return fail("pcapng if_tsresol out of range");
                }
                for (unsigned i = 0; i < exp; ++i) {
                    tps *= 10;
                }
            }
            ifc.ticks_per_second = tps;
        }
        off += 4 + padded;
    }
    m_interfaces.push_back(ifc);
    return {};
}

Result<std::optional<CaptureFrame>> PcapReader::next_pcapng() {
    while (m_off < m_bytes.size()) {
        const size_t left = m_bytes.size() - m_off;
        if (left < 12) {
            return fail("pcapng block header is truncated");
        }
        // The section header's type is a palindrome; its byte-order magic sets the order of
        // everything up to the next section header.
        const bool section = le32_raw(m_bytes.data() + m_off) == kBlockSectionHeader;
        if (section) {
            const uint32_t bom = le32_raw(m_bytes.data() + m_off + 8);
            if (bom == kByteOrderMagic) {
                m_swap = false;
            } else if (bom == __builtin_bswap32(kByteOrderMagic)) {
                m_swap = true;
            } else {
                return fail("pcapng section header has an unknown byte-order magic");
            }
        } else if (m_off == 0) {
            return fail("pcapng file does not start with a section header");
        }
        const uint32_t type = section ? kBlockSectionHeader : u32(m_off);
        const uint32_t len = u32(m_off + 4);
        if (len < 12 || len % 4 != 0 || len > left) {
            return fail("pcapng block at offset " + std::to_string(m_off) + " has a bad length " +
                        std::to_string(len));
        }
        if (u32(m_off + len - 4) != len) {
            return fail("pcapng block at offset " + std::to_string(m_off) +
                        " has mismatched lengths");
        }
        const size_t block = m_off;
        const size_t body = block + 8;
        const size_t body_len = len - 12;
        m_off += len;

        auto interface_of = [&](uint32_t id) -> const Interface* {
            return id < m_interfaces.size() ? &m_interfaces[id] : nullptr;
        };

        switch (type) {
        case kBlockSectionHeader:
            if (auto r = read_section_header(len); !r) {
                return tl::unexpected(r.error());
            }
            continue;
        case kBlockInterface:
            if (auto r = read_interface(body, body_len); !r) {
                return tl::unexpected(r.error());
            }
            continue;
        case kBlockEnhancedPacket:
        case kBlockObsoletePacket: {
            if (body_len < 20) {
                return fail("pcapng packet block is too short");
            }
            uint32_t if_id = 0;
            if (type == kBlockEnhancedPacket) {
                if_id = u32(body);
            } else {
                if_id = u16(body);
            }
            const uint64_t ts = (uint64_t{u32(body + 4)} << 32) | u32(body + 8);
            const uint32_t cap = u32(body + 12);
            const uint32_t orig = u32(body + 16);
            const Interface* ifc = interface_of(if_id);
            const uint64_t number = m_frame_count + 1;
            if (ifc == nullptr) {
                return fail("pcapng frame " + std::to_string(number) +
                            " names an undeclared interface");
            }
            if (cap > body_len - 20) {
                return fail("pcapng frame " + std::to_string(number) + " is longer than its block");
            }
            CaptureFrame f;
            f.number = number;
            f.timestamp_ns = ticks_to_ns(ts, ifc->ticks_per_second);
            f.link_type = ifc->link_type;
            f.original_length = orig;
            f.data = std::span<const uint8_t>(m_bytes.data() + body + 20, cap);
            m_frame_count = number;
            return std::optional<CaptureFrame>(f);
        }
        case kBlockSimplePacket: {
            if (body_len < 4) {
                return fail("pcapng simple packet block is too short");
            }
            const Interface* ifc = interface_of(0);
            const uint64_t number = m_frame_count + 1;
            if (ifc == nullptr) {
                return fail("pcapng frame " + std::to_string(number) +
                            " comes before any interface");
            }
            const uint32_t orig = u32(body);
            const size_t cap = std::min<size_t>(orig, body_len - 4);
            CaptureFrame f;
            f.number = number;
            f.link_type = ifc->link_type;
            f.original_length = orig;
            f.data = std::span<const uint8_t>(m_bytes.data() + body + 4, cap);
            m_frame_count = number;
            return std::optional<CaptureFrame>(f);
        }
        default:
            continue; // name resolution, statistics, custom blocks...
        }
    }
    return std::optional<CaptureFrame>{};
}

} // namespace kdcart::transport
