#include "cli/ConnectionString.h"

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

} // namespace

Result<ConnectionSpec> parse_connection_string(const std::string& text) {
    auto colon = text.find(':');
    if (colon == std::string::npos) {
        return make_error(Errc::InvalidArgument,
                          "connection string '" + text +
                              "' has no transport (com:, net:, 1394:)");
    }
    const std::string kind = text.substr(0, colon);
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
    while (std::getline(ss, item, ',')) {
        if (item.empty()) {
            continue;
        }
        auto eq = item.find('=');
        std::string k = item.substr(0, eq);
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
        } else if (k == "key") {
            spec.key = v;
        } else if (k == "hostip") {
            spec.host_ip = v;
        } else if (k == "reconnect" || k == "resets") {
            // accepted for WinDbg compatibility; kdcart always reconnects
        } else {
            return make_error(Errc::InvalidArgument, "unknown option '" + item + "' in -k");
        }
    }
    if (!have_port) {
        return make_error(Errc::InvalidArgument, "-k " + text + ": port= is required");
    }
    return spec;
}

} // namespace kdcart::cli
