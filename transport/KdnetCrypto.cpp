#include "transport/KdnetCrypto.h"

#include <cstring>
#include <limits>
#include <memory>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string>

namespace kdcart::transport {

namespace {

constexpr uint8_t kMagic[4] = {'M', 'D', 'B', 'G'};
constexpr size_t kMaxPartChars = 13;
// Bodies beyond any UDP datagram are a caller bug; this also keeps EVP's int lengths safe.
constexpr size_t kMaxBody = 0x10000;

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

int base36_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'Z') {
        return c - 'A' + 10;
    }
    return -1;
}

// AES-256-CBC without padding; in and out may not overlap. len is a multiple of 16.
bool aes_cbc(bool encrypt, const KdnetKey& key, const uint8_t* iv, const uint8_t* in, size_t len,
             uint8_t* out) {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) {
        return false;
    }
    if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, key.data(), iv, encrypt ? 1 : 0) !=
        1) {
        return false;
    }
    EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
    int n1 = 0;
    if (EVP_CipherUpdate(ctx.get(), out, &n1, in, static_cast<int>(len)) != 1) {
        return false;
    }
    int n2 = 0;
    if (EVP_CipherFinal_ex(ctx.get(), out + n1, &n2) != 1) {
        return false;
    }
    return static_cast<size_t>(n1 + n2) == len;
}

// The 16-byte tag of header || plaintext (`data` holds both).
bool compute_tag(const KdnetKey& hmac_key, std::span<const uint8_t> data, uint8_t* tag) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()), data.data(),
             data.size(), mac, &mac_len) == nullptr ||
        mac_len < kKdnetTagSize) {
        return false;
    }
    std::memcpy(tag, mac, kKdnetTagSize);
    OPENSSL_cleanse(mac, sizeof mac);
    return true;
}

} // namespace

Result<KdnetKey> parse_kdnet_key(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                             text.back() == '\r')) {
        text.remove_suffix(1);
    }
    if (text.empty()) {
        return make_error(Errc::InvalidArgument,
                          "the KDNET key is empty (expected four dot-separated base-36 parts, "
                          "w.x.y.z)");
    }
    size_t parts = 1;
    for (char c : text) {
        parts += c == '.' ? 1 : 0;
    }
    if (parts != 4) {
        return make_error(Errc::InvalidArgument, "the KDNET key has " + std::to_string(parts) +
                                                     " dot-separated parts; expected 4 (w.x.y.z)");
    }
    KdnetKey key{};
    size_t index = 0;
    size_t start = 0;
    while (index < 4) {
        size_t end = text.find('.', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const std::string_view part = text.substr(start, end - start);
        const std::string which = "part " + std::to_string(index + 1) + " of the KDNET key";
        if (part.empty()) {
            return make_error(Errc::InvalidArgument, which + " is empty");
        }
        if (part.size() > kMaxPartChars) {
            return make_error(Errc::InvalidArgument, which + " is longer than 13 characters");
        }
        uint64_t value = 0;
        for (char c : part) {
            const int d = base36_digit(c);
            if (d < 0) {
                return make_error(Errc::InvalidArgument,
                                  which + " has a character outside 0-9 and a-z (base 36)");
            }
            if (value > (std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(d)) / 36) {
                return make_error(Errc::InvalidArgument,
                                  which + " is too large (it must fit in 64 bits)");
            }
            value = value * 36 + static_cast<uint64_t>(d);
        }
        for (size_t i = 0; i < 8; ++i) {
            key[index * 8 + i] = static_cast<uint8_t>(value >> (8 * i));
        }
        ++index;
        start = end + 1;
    }
    return key;
}

KdnetKey kdnet_hmac_key(const KdnetKey& control_key) {
    KdnetKey k{};
    for (size_t i = 0; i < k.size(); ++i) {
        k[i] = static_cast<uint8_t>(~control_key[i]);
    }
    return k;
}

KdnetKey kdnet_data_key(const KdnetKey& control_key, std::span<const uint8_t> response_body) {
    std::vector<uint8_t> input;
    input.reserve(control_key.size() + response_body.size());
    input.insert(input.end(), control_key.begin(), control_key.end());
    input.insert(input.end(), response_body.begin(), response_body.end());
    KdnetKey out{};
    unsigned int len = 0;
    EVP_Digest(input.data(), input.size(), out.data(), &len, EVP_sha256(), nullptr);
    OPENSSL_cleanse(input.data(), input.size());
    return out;
}

std::string kdnet_hex(std::span<const uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        s.push_back(kDigits[b >> 4]);
        s.push_back(kDigits[b & 15]);
    }
    return s;
}

Result<std::vector<uint8_t>> kdnet_seal(const KdnetDatagram& d, KdnetCipherKeys keys) {
    if (d.seq > kKdnetMaxSeq) {
        return make_error(Errc::InvalidArgument, "KDNET sequence number wider than 56 bits");
    }
    if (d.body.size() > kMaxBody) {
        return make_error(Errc::InvalidArgument, "KDNET body too large for one datagram");
    }
    const size_t m = d.body.size();
    const size_t pad = (16 - (kKdnetWordSize + m) % 16) % 16;
    const size_t plain_len = kKdnetWordSize + m + pad;

    // header || plaintext, the HMAC input
    std::vector<uint8_t> clear(kKdnetHeaderSize + plain_len, 0);
    std::memcpy(clear.data(), kMagic, 4);
    clear[4] = d.version;
    clear[5] = d.channel;
    const uint64_t word = (d.seq << 8) | (d.host_to_target ? 0x80u : 0u) | pad;
    for (size_t i = 0; i < 8; ++i) {
        clear[kKdnetHeaderSize + i] = static_cast<uint8_t>(word >> (56 - 8 * i));
    }
    if (m > 0) {
        std::memcpy(clear.data() + kKdnetHeaderSize + kKdnetWordSize, d.body.data(), m);
    }

    uint8_t tag[kKdnetTagSize];
    if (!compute_tag(keys.hmac, clear, tag)) {
        return make_error(Errc::Io, "KDNET: HMAC-SHA256 failed");
    }
    std::vector<uint8_t> out(kKdnetHeaderSize + plain_len + kKdnetTagSize);
    std::memcpy(out.data(), clear.data(), kKdnetHeaderSize);
    if (!aes_cbc(true, keys.aes, tag, clear.data() + kKdnetHeaderSize, plain_len,
                 out.data() + kKdnetHeaderSize)) {
        return make_error(Errc::Io, "KDNET: AES-256-CBC encryption failed");
    }
    std::memcpy(out.data() + kKdnetHeaderSize + plain_len, tag, kKdnetTagSize);
    OPENSSL_cleanse(clear.data(), clear.size());
    return out;
}

bool kdnet_plausible(std::span<const uint8_t> datagram) {
    if (datagram.size() < kKdnetMinDatagram) {
        return false;
    }
    if ((datagram.size() - kKdnetHeaderSize - kKdnetTagSize) % 16 != 0) {
        return false;
    }
    return std::memcmp(datagram.data(), kMagic, 4) == 0;
}

KdnetOpenResult kdnet_open(std::span<const uint8_t> datagram, KdnetCipherKeys keys) {
    KdnetOpenResult r;
    if (!kdnet_plausible(datagram) || datagram.size() > kMaxBody + 64) {
        r.error = KdnetOpenError::Malformed;
        return r;
    }
    const size_t plain_len = datagram.size() - kKdnetHeaderSize - kKdnetTagSize;
    const uint8_t* tag = datagram.data() + kKdnetHeaderSize + plain_len;

    std::vector<uint8_t> clear(kKdnetHeaderSize + plain_len);
    std::memcpy(clear.data(), datagram.data(), kKdnetHeaderSize);
    if (!aes_cbc(false, keys.aes, tag, datagram.data() + kKdnetHeaderSize, plain_len,
                 clear.data() + kKdnetHeaderSize)) {
        r.error = KdnetOpenError::Crypto;
        return r;
    }
    uint8_t expected[kKdnetTagSize];
    if (!compute_tag(keys.hmac, clear, expected)) {
        OPENSSL_cleanse(clear.data(), clear.size());
        r.error = KdnetOpenError::Crypto;
        return r;
    }
    if (CRYPTO_memcmp(expected, tag, kKdnetTagSize) != 0) {
        OPENSSL_cleanse(clear.data(), clear.size());
        r.error = KdnetOpenError::BadTag;
        return r;
    }
    // Authenticated: now (and only now) the plaintext may be parsed.
    uint64_t word = 0;
    for (size_t i = 0; i < 8; ++i) {
        word = (word << 8) | clear[kKdnetHeaderSize + i];
    }
    const size_t pad = word & 0x7F;
    if (pad > 15 || kKdnetWordSize + pad > plain_len) {
        r.error = KdnetOpenError::Malformed;
        return r;
    }
    KdnetDatagram& d = r.datagram;
    d.version = clear[4];
    d.channel = clear[5];
    d.seq = word >> 8;
    d.host_to_target = (word & 0x80) != 0;
    d.pad = static_cast<uint8_t>(pad);
    const auto body_begin = clear.begin() + kKdnetHeaderSize + kKdnetWordSize;
    d.body.assign(body_begin, clear.end() - static_cast<std::ptrdiff_t>(pad));
    OPENSSL_cleanse(clear.data(), clear.size());
    r.ok = true;
    return r;
}

} // namespace kdcart::transport
