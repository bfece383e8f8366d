#pragma once
// Parses WinDbg-style -k connection strings:
//   com:port=/dev/ttyS0[,baud=115200]     real serial port or pty
//   com:pipe,port=/path/to/socket          AF_UNIX stream socket (QEMU/VirtualBox "pipe")
//   com:tcp,port=HOST:PORT                 TCP byte stream (VM serial over TCP)
#include "transport/Error.h"

#include <string>

namespace kdcart::cli {

struct ConnectionSpec {
    enum class Kind { Serial, Pipe, Tcp, Net } kind = Kind::Serial;
    std::string port;      // device path, socket path or HOST:PORT
    unsigned baud = 115200;
    std::string key;       // KDNET
    std::string host_ip;   // KDNET
};

[[nodiscard]] Result<ConnectionSpec> parse_connection_string(const std::string& text);

} // namespace kdcart::cli
