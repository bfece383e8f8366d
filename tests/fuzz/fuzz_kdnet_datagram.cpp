// libFuzzer target: KDNET datagrams.
//
// (1) The input as a datagram off the wire, opened with a fixed key: the checks before the
// tag (length, MDBG, blocks) and the tag itself must turn away anything forged. (2) The input as
// the fields of a datagram (version, channel, seq, direction, body): sealed, then opened, it must
// come back the same. (3) The input as datagrams sent to a KDNET host link over UDP loopback:
// the link's own handling of what arrives (OFFERs, data without a session, replays, junk).
//
//   build-fuzz/bin/fuzz_kdnet_datagram -max_total_time=60 WORKDIR tests/fuzz/corpus/kdnet_datagram
#include "transport/KdnetCrypto.h"
#include "transport/KdnetLink.h"

#include <arpa/inet.h>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace kdcart;
using namespace kdcart::transport;

namespace {

const char* kKey = "fuzz.key.1.2";

struct Env {
    KdnetKey control{};
    KdnetKey hmac{};
    std::unique_ptr<KdnetLink> host;
    int sock = -1;
    sockaddr_in to{};

    Env() {
        control = *parse_kdnet_key(kKey);
        hmac = kdnet_hmac_key(control);
        KdnetHostConfig cfg;
        cfg.port = 0;
        cfg.host_ip = "127.0.0.1";
        cfg.key = kKey;
        auto h = KdnetLink::create_host(cfg);
        if (!h) {
            std::abort();
        }
        host = std::move(*h);
        sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        to.sin_family = AF_INET;
        to.sin_port = htons(host->local_port());
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
};

Env& env() {
    static Env e;
    return e;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Env& e = env();
    const std::span<const uint8_t> in(data, size);

    // (1) Off the wire, with a key the sender does not have.
    (void)kdnet_plausible(in);
    auto opened = kdnet_open(in, KdnetCipherKeys{e.control, e.hmac});
    (void)opened;

    // (2) Seal and open again.
    if (size >= 10) {
        KdnetDatagram d;
        d.version = data[0];
        d.channel = data[1] & 1;
        d.host_to_target = (data[1] & 2) != 0;
        uint64_t seq = 0;
        for (int i = 0; i < 8; ++i) {
            seq = seq << 8 | data[2 + i];
        }
        d.seq = seq & ((uint64_t{1} << 56) - 1);
        d.body.assign(data + 10, data + size);
        auto wire = kdnet_seal(d, KdnetCipherKeys{e.control, e.hmac});
        if (wire) {
            auto back = kdnet_open(*wire, KdnetCipherKeys{e.control, e.hmac});
            if (!back.ok || back.datagram.body != d.body || back.datagram.seq != d.seq ||
                back.datagram.channel != d.channel || back.datagram.version != d.version) {
                std::abort();
            }
        }
    }

    // (3) To a live host link: datagrams split at 0xFF 0xFF markers, at most 8.
    size_t start = 0;
    int sent = 0;
    for (size_t i = 0; i <= size && sent < 8; ++i) {
        if (i == size || (i + 1 < size && data[i] == 0xFF && data[i + 1] == 0xFF)) {
            if (i > start) {
                (void)::sendto(e.sock, data + start, i - start, 0,
                               reinterpret_cast<const sockaddr*>(&e.to), sizeof e.to);
                ++sent;
            }
            start = i + 2;
            ++i;
        }
    }
    for (int i = 0; i < sent + 1; ++i) {
        (void)e.host->receive(Millis(0));
    }
    (void)e.host->take_notices();
    return 0;
}
