#include "cli/KdnetDecode.h"

#include "protocol/dbgkd_structs.h"
#include "transport/KdPacket.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace kdcart::cli {

namespace {

using transport::KdnetDatagram;
using transport::KdnetKey;
namespace proto = kdcart::protocol;

constexpr size_t kMaxDataKeys = 8;       // sessions remembered (a datagram may be late)
constexpr size_t kMaxPrintedString = 80; // DbgPrint text shown per line

uint32_t le32(std::span<const uint8_t> b, size_t off) {
    uint32_t v = 0;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}

// Python's repr() of a bytes object, which is what the reference decode uses for strings.
std::string bytes_repr(std::span<const uint8_t> s) {
    const bool has_single = std::find(s.begin(), s.end(), '\'') != s.end();
    const bool has_double = std::find(s.begin(), s.end(), '"') != s.end();
    const char quote = has_single && !has_double ? '"' : '\'';
    std::string out = "b";
    out.push_back(quote);
    for (uint8_t c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == static_cast<uint8_t>(quote)) {
            out.push_back('\\');
            out.push_back(quote);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c >= 0x20 && c < 0x7F) {
            out.push_back(static_cast<char>(c));
        } else {
            out += fmt::format("\\x{:02x}", c);
        }
    }
    out.push_back(quote);
    return out;
}

// An IPv4-mapped IPv6 address plus big-endian port (the OFFER's address fields).
std::string mapped_endpoint(std::span<const uint8_t> b) {
    transport::IpEndpoint ep;
    const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(b.data(), mapped_prefix, 12) == 0) {
        std::memcpy(ep.address.data(), b.data() + 12, 4);
    } else {
        ep.v6 = true;
        std::memcpy(ep.address.data(), b.data(), 16);
    }
    ep.port = static_cast<uint16_t>(b[16] << 8 | b[17]);
    return ep.to_string();
}

// UTF-16LE text as ASCII ('?' for anything else), up to a NUL.
std::string utf16_ascii(std::span<const uint8_t> b) {
    std::string s;
    for (size_t i = 0; i + 1 < b.size(); i += 2) {
        const uint16_t c = static_cast<uint16_t>(b[i] | b[i + 1] << 8);
        if (c == 0) {
            break;
        }
        s.push_back(c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '?');
    }
    return s;
}

std::string manipulate_fields(std::span<const uint8_t> payload, bool from_target) {
    auto m = proto::kd_decode<proto::DBGKD_MANIPULATE_STATE64>(payload);
    if (!m) {
        return fmt::format(" api=? short={}", payload.size());
    }
    uint64_t u0 = 0;
    std::memcpy(&u0, m->u.Raw, 8);
    uint32_t u1 = 0;
    uint32_t u2 = 0;
    std::memcpy(&u1, m->u.Raw + 8, 4);
    std::memcpy(&u2, m->u.Raw + 12, 4);
    std::string s = fmt::format(" api={} ret={:#x} u=[{:#x},{:#x},{:#x}] extra={}",
                                proto::manipulate_api_name(m->ApiNumber), m->ReturnStatus, u0, u1,
                                u2, payload.size() - sizeof(proto::DBGKD_MANIPULATE_STATE64));
    if (m->ApiNumber == proto::DbgKdGetVersionApi && from_target && m->ReturnStatus == 0) {
        const auto& v = m->u.GetVersion64;
        s += fmt::format(" major={:#x} minor={} proto={} machine={:#x} kernbase={:#x} "
                         "psloaded={:#x} ddl={:#x}",
                         v.MajorVersion, v.MinorVersion, v.ProtocolVersion, v.MachineType,
                         v.KernBase, v.PsLoadedModuleList, v.DebuggerDataList);
    } else if (m->ApiNumber == proto::DbgKdContinueApi2) {
        const auto& c = m->u.Continue2;
        s += fmt::format(" status={:#x} trace={} dr7={:#x}", c.ContinueStatus,
                         c.ControlSet.TraceFlag, c.ControlSet.Dr7);
    }
    return s;
}

std::string state_change_fields(std::span<const uint8_t> payload) {
    auto w = proto::kd_decode<proto::DBGKD_ANY_WAIT_STATE_CHANGE>(payload);
    if (!w) {
        return fmt::format(" api=StateChange:? short={}", payload.size());
    }
    std::string s = fmt::format(" api=StateChange:{} cpu={}/{} thread={:#x} pc={:#x}",
                                proto::manipulate_api_name(w->NewState), w->Processor,
                                w->NumberProcessors, w->Thread, w->ProgramCounter);
    if (w->NewState == proto::DbgKdExceptionStateChange) {
        const auto& e = w->u.Exception;
        s += fmt::format(" code={:#x} addr={:#x} first={}", e.ExceptionRecord.ExceptionCode,
                         e.ExceptionRecord.ExceptionAddress, e.FirstChance);
    } else if (w->NewState == proto::DbgKdLoadSymbolsStateChange) {
        const auto& l = w->u.LoadSymbols;
        const auto extra = payload.subspan(sizeof(proto::DBGKD_ANY_WAIT_STATE_CHANGE));
        const auto nul = std::find(extra.begin(), extra.end(), uint8_t{0});
        s += fmt::format(" base={:#x} size={:#x} unload={} path=", l.BaseOfDll, l.SizeOfImage,
                         l.UnloadSymbols);
        s.append(extra.begin(), nul);
    }
    return s;
}

std::string debug_io_fields(std::span<const uint8_t> payload) {
    auto io = proto::kd_decode<proto::DBGKD_DEBUG_IO>(payload);
    if (!io) {
        return fmt::format(" api=? short={}", payload.size());
    }
    auto text = payload.subspan(sizeof(proto::DBGKD_DEBUG_IO));
    if (io->ApiNumber == proto::DbgKdPrintStringApi) {
        text = text.first(std::min<size_t>(text.size(), io->u.PrintString.LengthOfString));
    }
    text = text.first(std::min(text.size(), kMaxPrintedString));
    const char* what = io->ApiNumber == proto::DbgKdGetStringApi ? "prompt" : "str";
    return fmt::format(" api={} {}={}", proto::manipulate_api_name(io->ApiNumber), what,
                       bytes_repr(text));
}

std::string file_io_fields(std::span<const uint8_t> payload, bool from_target) {
    auto f = proto::kd_decode<proto::DBGKD_FILE_IO>(payload);
    if (!f) {
        return fmt::format(" api=? short={}", payload.size());
    }
    std::string s =
        fmt::format(" api={} status={:#x}", proto::manipulate_api_name(f->ApiNumber), f->Status);
    if (f->ApiNumber == proto::DbgKdCreateFileApi) {
        if (from_target) {
            s += " name=" + utf16_ascii(payload.subspan(sizeof(proto::DBGKD_FILE_IO)));
        } else {
            s += fmt::format(" handle={:#x} length={:#x}", f->u.CreateFile.Handle,
                             f->u.CreateFile.Length);
        }
    }
    return s;
}

} // namespace

std::string KdnetDecodeSummary::to_string() const {
    return fmt::format("{} KDNET datagrams in {} frames: {} decrypted, {} HMAC failures, {} "
                       "without a data key, {} malformed; {} handshakes; {} KD packets, {} KD "
                       "checksum failures",
                       datagrams, frames, decrypted, hmac_failures, no_data_key, malformed,
                       handshakes, kd_packets, kd_checksum_failures);
}

KdnetDecoder::KdnetDecoder(const KdnetKey& control_key)
    : m_control(control_key), m_hmac(transport::kdnet_hmac_key(control_key)) {}

std::string KdnetDecoder::decode(uint64_t frame, const transport::IpEndpoint& source,
                                 const transport::IpEndpoint& destination,
                                 std::span<const uint8_t> payload) {
    ++m_summary.datagrams;
    std::string line = fmt::format("{} {}->{} udp={}", frame, source.to_string(),
                                   destination.to_string(), payload.size());
    if (!transport::kdnet_plausible(payload)) {
        ++m_summary.malformed;
        return line + " malformed (not MDBG with whole cipher blocks)";
    }
    const uint8_t version = transport::kdnet_version_of(payload);
    const uint8_t channel = transport::kdnet_channel_of(payload);
    line += fmt::format(" v={} ch={}", version, channel);

    transport::KdnetOpenResult opened;
    if (channel == transport::kKdnetControlChannel) {
        opened = transport::kdnet_open(payload, transport::KdnetCipherKeys{m_control, m_hmac});
    } else {
        if (m_data_keys.empty()) {
            ++m_summary.no_data_key;
            return line + " hmac=? (no data key: no RESPONSE seen yet)";
        }
        for (auto it = m_data_keys.rbegin(); it != m_data_keys.rend(); ++it) {
            opened = transport::kdnet_open(payload, transport::KdnetCipherKeys{*it, m_hmac});
            if (opened.ok || opened.error != transport::KdnetOpenError::BadTag) {
                break;
            }
        }
    }
    if (!opened.ok) {
        if (opened.error == transport::KdnetOpenError::BadTag) {
            ++m_summary.hmac_failures;
            return line + " hmac=BAD";
        }
        ++m_summary.malformed;
        return line + " hmac=ok malformed (bad pad)";
    }
    ++m_summary.decrypted;
    const KdnetDatagram& d = opened.datagram;
    line += fmt::format(" hmac=ok seq={:#x} dir={} pad={}", d.seq, d.host_to_target ? 1 : 0, d.pad);
    if (channel == transport::kKdnetControlChannel) {
        return line + decode_control(d);
    }
    return line + decode_data(d);
}

std::string KdnetDecoder::decode_control(const KdnetDatagram& d) {
    const auto& b = d.body;
    if (b.size() >= 2 && b[0] == 0x01 && b[1] == 0x01 && b.size() >= 70) {
        return fmt::format(" ctrl: OFFER client_random={} target={} host={}",
                           transport::kdnet_hex(std::span(b).subspan(2, 32)),
                           mapped_endpoint(std::span(b).subspan(34, 18)),
                           mapped_endpoint(std::span(b).subspan(52, 18)));
    }
    if (b.size() >= 66 && b[0] == 0x01 && b[1] == 0x02) {
        const KdnetKey key = transport::kdnet_data_key(m_control, b);
        m_data_keys.push_back(key);
        if (m_data_keys.size() > kMaxDataKeys) {
            m_data_keys.erase(m_data_keys.begin());
        }
        ++m_summary.handshakes;
        return fmt::format(" ctrl: RESPONSE client_random={} host_random={} -> data_key={}",
                           transport::kdnet_hex(std::span(b).subspan(2, 32)),
                           transport::kdnet_hex(std::span(b).subspan(34, 32)),
                           transport::kdnet_hex(key));
    }
    return fmt::format(" ctrl: b8={:#x} b9={:#x} len={}", b.empty() ? 0 : b[0],
                       b.size() < 2 ? 0 : b[1], b.size());
}

std::string KdnetDecoder::decode_data(const KdnetDatagram& d) {
    const auto& b = d.body;
    if (b.size() == 1 && b[0] == proto::BREAKIN_PACKET_BYTE) {
        return " KD break-in (0x62)";
    }
    if (b.size() == 12 && le32(b, 0) == 0) {
        const uint32_t ip = le32(b, 8);
        return fmt::format(" KD conncheck host={}.{}.{}.{} raw={}", ip >> 24, (ip >> 16) & 0xFF,
                           (ip >> 8) & 0xFF, ip & 0xFF, transport::kdnet_hex(b));
    }
    if (b.size() < sizeof(proto::KD_PACKET)) {
        return " KD short raw=" + transport::kdnet_hex(b);
    }
    ++m_summary.kd_packets;
    const auto h = *proto::kd_decode<proto::KD_PACKET>(b);
    const size_t avail = b.size() - sizeof(proto::KD_PACKET);
    std::string s = fmt::format(" KD leader={:#x} {} len={} id={:#x}", h.PacketLeader,
                                proto::packet_type_name(h.PacketType), h.ByteCount, h.PacketId);
    if (h.ByteCount > avail) {
        ++m_summary.kd_checksum_failures;
        return s + fmt::format(" csum=BAD (ByteCount beyond the datagram's {} bytes)", avail);
    }
    const std::span<const uint8_t> payload(b.data() + sizeof(proto::KD_PACKET), h.ByteCount);
    const bool ok = transport::kd_checksum(payload.data(), payload.size()) == h.Checksum;
    if (!ok) {
        ++m_summary.kd_checksum_failures;
    }
    s += ok ? " csum=ok" : " csum=BAD";
    if (h.PacketLeader != proto::PACKET_LEADER) {
        return s;
    }
    const bool from_target = !d.host_to_target;
    switch (h.PacketType) {
    case proto::PACKET_TYPE_KD_STATE_MANIPULATE:
        return s + manipulate_fields(payload, from_target);
    case proto::PACKET_TYPE_KD_STATE_CHANGE64:
        return s + state_change_fields(payload);
    case proto::PACKET_TYPE_KD_DEBUG_IO:
        return s + debug_io_fields(payload);
    case proto::PACKET_TYPE_KD_FILE_IO:
        return s + file_io_fields(payload, from_target);
    default:
        if (payload.size() >= 4) {
            s += fmt::format(" api={}", proto::manipulate_api_name(le32(payload, 0)));
        }
        return s;
    }
}

Result<KdnetDecodeResult> kdnet_decode_capture(const std::string& path, std::string_view key) {
    auto control = transport::parse_kdnet_key(key);
    if (!control) {
        return tl::unexpected(control.error());
    }
    auto reader = transport::PcapReader::open(path);
    if (!reader) {
        return tl::unexpected(reader.error());
    }
    KdnetDecoder decoder(*control);
    KdnetDecodeResult result;
    for (;;) {
        auto frame = reader->next();
        if (!frame) {
            // Keep what decoded so far; say where the capture broke.
            result.lines.push_back(fmt::format("! capture damaged after frame {}: {}",
                                               decoder.summary().frames, frame.error().message));
            break;
        }
        if (!*frame) {
            break;
        }
        ++decoder.summary().frames;
        auto udp = transport::extract_udp((*frame)->link_type, (*frame)->data);
        if (!udp || udp->payload.size() < 4 || std::memcmp(udp->payload.data(), "MDBG", 4) != 0) {
            continue;
        }
        result.lines.push_back(
            decoder.decode((*frame)->number, udp->source, udp->destination, udp->payload));
    }
    result.summary = decoder.summary();
    return result;
}

} // namespace kdcart::cli
