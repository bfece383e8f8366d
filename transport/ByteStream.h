#pragma once
// A bidirectional byte stream: serial port, pty, AF_UNIX or TCP socket.
#include "transport/Error.h"
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace kdcart::transport {

using Millis = std::chrono::milliseconds;

class ByteStream {
public:
    virtual ~ByteStream() = default;
    // Waits at most `timeout` for data; returns how many bytes were read (>= 1),
    // Errc::Timeout when nothing came, Errc::Disconnected when the peer is gone.
    [[nodiscard]] virtual Result<size_t> read_some(std::span<uint8_t> buf, Millis timeout) = 0;
    // Writes everything (handles partial writes), or fails.
    [[nodiscard]] virtual Result<void> write_all(std::span<const uint8_t> data) = 0;
    // Human-readable name of the link ("pty /dev/pts/3", "tcp 127.0.0.1:5555").
    virtual std::string describe() const = 0;
    // A pollable fd, or -1.
    virtual int native_handle() const { return -1; }
};

// Wraps a descriptor (pty master/slave, socket). Takes ownership.
std::unique_ptr<ByteStream> make_fd_stream(int fd, std::string description);

// Opens a terminal device (real UART node or a pty slave) raw 8N1, no flow control, with plain
// termios. libserialport refuses ptys (it looks devices up in sysfs), so ptys come here.
[[nodiscard]] Result<std::unique_ptr<ByteStream>> open_termios(const std::string& path,
                                                               unsigned baud);
// Opens a real serial port through libserialport (raw 8N1, no flow control).
[[nodiscard]] Result<std::unique_ptr<ByteStream>> open_serial_port(const std::string& path,
                                                                   unsigned baud);
// Opens `path` as a serial link: libserialport for real ports, termios for ptys.
[[nodiscard]] Result<std::unique_ptr<ByteStream>> open_serial(const std::string& path,
                                                              unsigned baud);
// Connects to an AF_UNIX stream socket (VM "pipe" serial ports).
[[nodiscard]] Result<std::unique_ptr<ByteStream>> connect_unix(const std::string& path);
// Connects to HOST:PORT over TCP.
[[nodiscard]] Result<std::unique_ptr<ByteStream>> connect_tcp(const std::string& host_port);

// Server side (used by kdsim): listen, then accept one peer.
class StreamListener {
public:
    virtual ~StreamListener() = default;
    [[nodiscard]] virtual Result<std::unique_ptr<ByteStream>> accept(Millis timeout) = 0;
    virtual std::string describe() const = 0;
};
[[nodiscard]] Result<std::unique_ptr<StreamListener>> listen_unix(const std::string& path);
[[nodiscard]] Result<std::unique_ptr<StreamListener>> listen_tcp(uint16_t port);

// A pseudo-terminal pair: the master end as a stream plus the slave's path.
struct PtyPair {
    std::unique_ptr<ByteStream> master;
    std::string slave_path;
};
[[nodiscard]] Result<PtyPair> open_pty_master();

// Paces a stream like a UART at `baud` 8N1: baud/10 bytes per second each way.
std::unique_ptr<ByteStream> make_paced_stream(std::unique_ptr<ByteStream> inner, unsigned baud);

} // namespace kdcart::transport
