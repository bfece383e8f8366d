#include "cli/ConnectionString.h"

#include <cctype>
#include <sstream>

namespace kdcart::cli {

namespace {

// 1394:channel=N[,device=/dev/fwX][,bus=sim:PATH][,nodma]
Result<ConnectionSpec> parse_1394(const std::string& text, const std::string& options) {
    ConnectionSpec spec;
    spec.kind = ConnectionSpec::Kind::Ieee1394;
    std::stringstream ss(options);
    std::string item;
    bool have_channel = false;
    while (std::getline(ss, item, ',')) {
        auto eq = item.find('=');
        std::string k = item.substr(0, eq);
        std::string v = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (k == "channel" && !v.empty()) {
            size_t used = 0;
            unsigned long c = 0;
            try {
                c = std::stoul(v, &used, 10);
            } catch (...) {
                used = 0;
            }
            if (used != v.size() || c > 62) {
                return make_error(Errc::InvalidArgument,
                                  "bad 1394 channel '" + v + "' (0 to 62)");
            }
            spec.channel = static_cast<uint32_t>(c);
            have_channel = true;
        } else if (k == "device" && !v.empty()) {
            spec.device = v;
        } else if (k == "bus" && v.rfind("sim:", 0) == 0 && v.size() > 4) {
            spec.sim_bus = v.substr(4);
        } else if (k == "nodma" && eq == std::string::npos) {
            spec.dma = false;
        } else if (!item.empty()) {
            return make_error(Errc::InvalidArgument,
                              "unknown option '" + item + "' in -k (1394 takes channel=N, "
                              "device=/dev/fwX, bus=sim:PATH, nodma)");
        }
    }
    if (!have_channel) {
        return make_error(Errc::InvalidArgument, "-k " + text + ": channel= is required");
    }
    if (!spec.device.empty() && !spec.sim_bus.empty()) {
        return make_error(Errc::InvalidArgument, "-k " + text + ": device= or bus=, not both");
    }
    return spec;
}

std::string lower_ascii(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// WinDbg names serial ports COM1, com2 or \\.\COM10; here they are /dev/ttyS0, /dev/ttyS1...
// (what Linux calls the built-in UARTs). Anything else (/dev/ttyUSB0, a pty) is taken as it is.
std::string serial_device(const std::string& port) {
    std::string p = port;
    if (p.rfind("\\\\.\\", 0) == 0) {
        p = p.substr(4);
    }
    const std::string l = lower_ascii(p);
    if (l.size() > 3 && l.size() <= 6 && l.rfind("com", 0) == 0 &&
        l.find_first_not_of("0123456789", 3) == std::string::npos) {
        const unsigned long n = std::stoul(l.substr(3));
        if (n >= 1 && n <= 256) {
            return "/dev/ttyS" + std::to_string(n - 1);
        }
    }
    return port;
}

} // namespace

Result<ConnectionSpec> parse_connection_string(const std::string& text) {
    auto colon = text.find(':');
    if (colon == std::string::npos) {
        return make_error(Errc::InvalidArgument,
                          "connection string '" + text +
                              "' has no transport (com:, net:, 1394:)");
    }
    const std::string kind = lower_ascii(text.substr(0, colon)); // WinDbg: case does not matter
    if (kind == "1394") {
        return parse_1394(text, text.substr(colon + 1));
    }
    ConnectionSpec spec;
    if (kind == "com") {
        spec.kind = ConnectionSpec::Kind::Serial;
    } else if (kind == "net") {
        spec.kind = ConnectionSpec::Kind::Net;
    } else {
        return make_error(Errc::InvalidArgument, "unknown transport '" + kind +
                                                     "' (this build knows com:, net:, 1394:)");
    }
    std::stringstream ss(text.substr(colon + 1));
    std::string item;
    bool have_port = false;
    std::string ipport; // com:ipport=P,port=HOST: serial over TCP (WinDbg's spelling)
    while (std::getline(ss, item, ',')) {
        if (item.empty()) {
            continue;
        }
        auto eq = item.find('=');
        std::string k = lower_ascii(item.substr(0, eq));
        std::string v = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (k == "pipe" && eq == std::string::npos) {
            spec.kind = ConnectionSpec::Kind::Pipe;
        } else if (k == "tcp" && eq == std::string::npos) {
            spec.kind = ConnectionSpec::Kind::Tcp;
        } else if (k == "port" && !v.empty()) {
            spec.port = v;
            have_port = true;
        } else if (k == "baud" && !v.empty()) {
            try {
                size_t used = 0;
                unsigned long b = std::stoul(v, &used, 10);
                if (used != v.size() || b == 0 || b > 4000000) {
                    throw std::invalid_argument(v);
                }
                spec.baud = static_cast<unsigned>(b);
            } catch (...) {
                return make_error(Errc::InvalidArgument, "bad baud rate '" + v + "'");
            }
        } else if (k == "ipport" && !v.empty() && spec.kind != ConnectionSpec::Kind::Net) {
            ipport = v;
        } else if (k == "key") {
            spec.key = v;
        } else if (k == "hostip") {
            spec.host_ip = v;
        } else if (k == "target" && spec.kind == ConnectionSpec::Kind::Net && !v.empty()) {
            spec.target = v;
        } else if (k == "reconnect" || k == "resets") {
            // accepted for WinDbg compatibility; kdcart always reconnects
        } else {
            return make_error(Errc::InvalidArgument, "unknown option '" + item + "' in -k");
        }
    }
    if (!have_port) {
        return make_error(Errc::InvalidArgument, "-k " + text + ": port= is required");
    }
    if (!ipport.empty()) {
        if (ipport.find_first_not_of("0123456789") != std::string::npos) {
            return make_error(Errc::InvalidArgument, "bad ipport '" + ipport + "'");
        }
        spec.kind = ConnectionSpec::Kind::Tcp;
        const bool v6 = spec.port.find(':') != std::string::npos && spec.port.front() != '[';
        spec.port = (v6 ? "[" + spec.port + "]" : spec.port) + ":" + ipport;
    } else if (spec.kind == ConnectionSpec::Kind::Serial) {
        spec.port = serial_device(spec.port);
    } else if (spec.kind == ConnectionSpec::Kind::Pipe && spec.port.rfind("\\\\", 0) == 0) {
        return make_error(Errc::InvalidArgument,
                          "-k " + text + ": " + spec.port +
                              " is a Windows pipe name; give the path of the socket the VM "
                              "serves the port on (e.g. QEMU -serial unix:/tmp/kd.sock,server)");
    }
    return spec;
}

} // namespace kdcart::cli
