#include "cli/ConnectionString.h"

#include <sstream>

namespace kdcart::cli {

Result<ConnectionSpec> parse_connection_string(const std::string& text) {
    auto colon = text.find(':');
    if (colon == std::string::npos) {
        return make_error(Errc::InvalidArgument,
                          "connection string '" + text + "' has no transport (com:, net:)");
    }
    const std::string kind = text.substr(0, colon);
    ConnectionSpec spec;
    if (kind == "com") {
        spec.kind = ConnectionSpec::Kind::Serial;
    } else if (kind == "net") {
        spec.kind = ConnectionSpec::Kind::Net;
    } else {
        return make_error(Errc::InvalidArgument, "unknown transport '" + kind +
                                                     "' (this build knows com:)");
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
