#pragma once
// `kdcart --decode FILE --key K`: decrypts the KDNET datagrams of a capture (pcap, pcapng,
// optionally .gz) and renders one line per datagram, in the style of
// shared/vectors/kdnet/windbg-uncut.decoded.txt:
//
//   12 192.168.2.72:51111->192.168.2.1:51111 udp=102 v=4 ch=0 hmac=ok seq=0x6 dir=0 pad=0
//      KD leader=0x30303030 STATE_MANIPULATE len=56 id=0x4 csum=ok api=GetVersion ret=0x0
//      u=[0x20206295a040f,0x320c8664,0x59] extra=0 major=0x40f minor=10586 ...
//
// (one line in the output). Control-channel lines show the OFFER or RESPONSE and, for a
// RESPONSE, the data key derived from it; the data key then opens the data channel.
#include "transport/Error.h"
#include "transport/KdnetCrypto.h"
#include "transport/PcapReader.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::cli {

struct KdnetDecodeSummary {
    uint64_t frames = 0;               // frames in the capture
    uint64_t datagrams = 0;            // UDP payloads starting with "MDBG"
    uint64_t decrypted = 0;            // datagrams whose HMAC verified
    uint64_t hmac_failures = 0;        // datagrams whose HMAC did not verify
    uint64_t no_data_key = 0;          // data-channel datagrams before any RESPONSE
    uint64_t malformed = 0;            // MDBG payloads of impossible length
    uint64_t handshakes = 0;           // RESPONSEs seen (data keys derived)
    uint64_t kd_packets = 0;           // KD packets inside decrypted datagrams
    uint64_t kd_checksum_failures = 0; // of those, bad checksums or lengths

    // "955 KDNET datagrams in 955 frames: 955 decrypted, 0 HMAC failures, ..."
    std::string to_string() const;
};

struct KdnetDecodeResult {
    std::vector<std::string> lines; // one per KDNET datagram, capture order
    KdnetDecodeSummary summary;
};

// Decodes datagrams one at a time; keeps the data keys the RESPONSEs define.
class KdnetDecoder {
  public:
    explicit KdnetDecoder(const transport::KdnetKey& control_key);

    // The line for one UDP payload that starts with "MDBG".
    std::string decode(uint64_t frame, const transport::IpEndpoint& source,
                       const transport::IpEndpoint& destination, std::span<const uint8_t> payload);
    const KdnetDecodeSummary& summary() const { return m_summary; }
    KdnetDecodeSummary& summary() { return m_summary; }

  private:
    std::string decode_control(const transport::KdnetDatagram& d);
    std::string decode_data(const transport::KdnetDatagram& d);

    transport::KdnetKey m_control;
    transport::KdnetKey m_hmac;
    std::vector<transport::KdnetKey> m_data_keys; // newest last
    KdnetDecodeSummary m_summary;
};

// Reads the capture at `path` and decodes every KDNET datagram in it with `key` ("w.x.y.z").
// Errors: a bad key (the message never contains it), an unreadable or malformed capture.
[[nodiscard]] Result<KdnetDecodeResult> kdnet_decode_capture(const std::string& path,
                                                             std::string_view key);

} // namespace kdcart::cli
