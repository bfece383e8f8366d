#include "transport/Error.h"

namespace kdcart {

const char* errc_name(Errc c) {
    switch (c) {
    case Errc::Timeout: return "timeout";
    case Errc::Disconnected: return "disconnected";
    case Errc::Io: return "I/O error";
    case Errc::BadChecksum: return "bad checksum";
    case Errc::Resync: return "resync";
    case Errc::UnexpectedPacket: return "unexpected packet";
    case Errc::TargetStatus: return "target status";
    case Errc::Unreadable: return "unreadable";
    case Errc::NotFound: return "not found";
    case Errc::InvalidArgument: return "invalid argument";
    case Errc::Unsupported: return "unsupported";
    case Errc::Interrupted: return "interrupted";
    case Errc::Malformed: return "malformed";
    }
    return "error";
}

} // namespace kdcart
