#pragma once
// The one Result<T> of the project: tl::expected with an error code plus context.
#include <cstdint>
#include <string>
#include <tl/expected.hpp>
#include <utility>

namespace kdcart {

enum class Errc {
    Timeout,          // nothing arrived in time
    Disconnected,     // the link closed or failed
    Io,               // an OS call failed
    BadChecksum,      // a packet whose payload sum did not match
    Resync,           // the peer reset the session
    UnexpectedPacket, // a packet that makes no sense here
    TargetStatus,     // the target answered with a failing NTSTATUS
    Unreadable,       // memory that cannot be read
    NotFound,         // no such symbol, module, file...
    InvalidArgument,  // bad input from the user or a caller
    Unsupported,      // the target or link cannot do this
    Interrupted,      // the user interrupted a wait
    Malformed,        // bytes that do not parse
};

const char* errc_name(Errc c);

struct Error {
    Errc code{};
    std::string message;
    uint32_t ntstatus = 0; // set when the target returned a status

    Error() = default;
    Error(Errc c, std::string msg, uint32_t status = 0)
        : code(c), message(std::move(msg)), ntstatus(status) {}
};

template <class T> using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> make_error(Errc c, std::string msg, uint32_t status = 0) {
    return tl::unexpected<Error>(Error(c, std::move(msg), status));
}

} // namespace kdcart
