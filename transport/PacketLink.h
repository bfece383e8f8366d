#pragma once
// The transport interface: moves KD packets, not bytes. KDCOM over a byte stream, KDNET over
// UDP and 1394 mailboxes all implement it; the session never knows which one it has.
#include "transport/ByteStream.h"
#include "transport/KdPacket.h"
#include <memory>
#include <string>
#include <vector>

namespace kdcart::transport {

class PacketLink {
public:
    virtual ~PacketLink() = default;
    [[nodiscard]] virtual Result<void> send(const KdPacket& packet) = 0;
    // Host side: ask the target to stop (a bare 0x62 on KDCOM).
    [[nodiscard]] virtual Result<void> send_breakin() = 0;
    // Waits at most `timeout` for the next event: Errc::Timeout if none.
    [[nodiscard]] virtual Result<LinkEvent> receive(Millis timeout) = 0;
    virtual IdScheme id_scheme() const = 0;
    virtual LinkStats stats() const = 0;
    virtual std::string describe() const = 0;
    // Drop anything buffered but not yet parsed (used when resynchronising).
    virtual void discard_input() {}
    // The local side restarted (a simulated target rebooted): links with a handshake redo it.
    virtual void restart() {}
    // Largest KD payload (manipulate header + data) one packet may carry on this link.
    virtual uint32_t max_payload() const { return 4000; }
    // Link-level news for the user that is not a packet (KDNET: "OFFERs arrive but do not
    // authenticate (likely a wrong key)", "target connected"). Each notice is returned once.
    virtual std::vector<std::string> take_notices() { return {}; }
};

// KDCOM framing over any byte stream.
std::unique_ptr<PacketLink> make_kdcom_link(std::unique_ptr<ByteStream> stream);

} // namespace kdcart::transport
