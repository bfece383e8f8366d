#pragma once
// KDNET datagram crypto (kd-protocol.md §4.2-§4.5): the "w.x.y.z" key, the HMAC and data keys,
// and sealing/opening one datagram. Everything here is a pure function of its inputs, so the
// link, the capture decoder and the tests share it.
//
// Datagram: "MDBG" | version | channel | AES-256-CBC(plaintext, iv = tag) | tag
// Plaintext: big-endian u64 W = seq << 8 | dir << 7 | pad, then the body, then pad zero bytes.
// Tag: the first 16 bytes of HMAC-SHA256(NOT control key, 6-byte header || plaintext).
#include "transport/Error.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::transport {

using KdnetKey = std::array<uint8_t, 32>;

inline constexpr uint8_t kKdnetDataChannel = 0;
inline constexpr uint8_t kKdnetControlChannel = 1;
inline constexpr size_t kKdnetHeaderSize = 6; // "MDBG", version, channel
inline constexpr size_t kKdnetTagSize = 16;   // truncated HMAC-SHA256, also the CBC IV
inline constexpr size_t kKdnetWordSize = 8;   // the big-endian seq/dir/pad word
// The smallest datagram: header, one cipher block, tag.
inline constexpr size_t kKdnetMinDatagram = kKdnetHeaderSize + 16 + kKdnetTagSize;
// seq is 56 bits wide (the word keeps 8 bits for dir and pad).
inline constexpr uint64_t kKdnetMaxSeq = (uint64_t{1} << 56) - 1;

// Parses the bcdedit key "w.x.y.z": four base-36 parts (0-9, a-z, either case), at most 13
// characters each, each fitting an unsigned 64-bit value, stored little-endian one after the
// other. Errors say what is wrong and in which part, never the key text itself.
[[nodiscard]] Result<KdnetKey> parse_kdnet_key(std::string_view text);

// The HMAC key: the bytewise NOT of the control key (both channels use it).
KdnetKey kdnet_hmac_key(const KdnetKey& control_key);

// The session data key: SHA-256(control key || the 322-byte RESPONSE body).
KdnetKey kdnet_data_key(const KdnetKey& control_key, std::span<const uint8_t> response_body);

// Lower-case hex, for logs and decoders (never call it on a control key in a log).
std::string kdnet_hex(std::span<const uint8_t> bytes);

// The meaning of one datagram, either direction.
struct KdnetDatagram {
    uint8_t version = 0;
    uint8_t channel = 0;
    uint64_t seq = 0;
    bool host_to_target = false; // the dir bit
    uint8_t pad = 0;             // zero bytes after the body (set by kdnet_seal)
    std::vector<uint8_t> body;   // the KD packet or control message, without padding
};

// The keys a datagram needs: AES (control key on channel 1, data key on channel 0), HMAC.
// Holds references: build it in the call, do not keep it.
struct KdnetCipherKeys {
    const KdnetKey& aes;
    const KdnetKey& hmac;
};

// Encrypts and authenticates `d` (d.pad is computed, not read). Fails only on a seq wider than
// 56 bits or an OpenSSL failure.
[[nodiscard]] Result<std::vector<uint8_t>> kdnet_seal(const KdnetDatagram& d, KdnetCipherKeys keys);

// Cheap checks that need no key: length, "MDBG", whole cipher blocks. Junk fails here.
[[nodiscard]] bool kdnet_plausible(std::span<const uint8_t> datagram);

// Reason a datagram did not open.
enum class KdnetOpenError {
    Malformed, // too short, not MDBG, not whole blocks, or a bad pad after a good tag
    BadTag,    // the HMAC did not match: wrong key, wrong channel key, or tampering
    Crypto,    // OpenSSL failed
};

struct KdnetOpenResult {
    bool ok = false;
    KdnetOpenError error = KdnetOpenError::Malformed;
    KdnetDatagram datagram; // valid only when ok
};

// Decrypts, then verifies the tag over header || plaintext in constant time, and only then
// parses the word and the body. On failure nothing of the plaintext is returned.
[[nodiscard]] KdnetOpenResult kdnet_open(std::span<const uint8_t> datagram, KdnetCipherKeys keys);

// The two header bytes of a datagram that passed kdnet_plausible().
inline uint8_t kdnet_version_of(std::span<const uint8_t> datagram) {
    return datagram[4];
}
inline uint8_t kdnet_channel_of(std::span<const uint8_t> datagram) {
    return datagram[5];
}

} // namespace kdcart::transport
