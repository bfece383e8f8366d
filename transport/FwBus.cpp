// IEEE 1394 helpers shared by the real and the simulated bus: response codes, the config ROM's
// debug entries (IEEE 1212 directories, kd-protocol.md §5.2), the directory CRC.
#include "transport/FwBus.h"

#include <algorithm>

namespace kdcart::transport {

namespace fw {

const char* rcode_name(uint32_t rcode) {
    switch (rcode) {
    case kRcodeComplete:
        return "complete";
    case kRcodeConflictError:
        return "conflict error";
    case kRcodeDataError:
        return "data error";
    case kRcodeTypeError:
        return "type error";
    case kRcodeAddressError:
        return "address error";
    case kRcodeSendError:
        return "send error";
    case kRcodeCancelled:
        return "cancelled (no response)";
    case kRcodeBusy:
        return "busy";
    case kRcodeGeneration:
        return "generation (bus reset)";
    case kRcodeNoAck:
        return "no ack";
    default:
        return "unknown response code";
    }
}

Error rcode_error(uint32_t rcode, const std::string& what) {
    std::string msg = what + ": " + rcode_name(rcode);
    switch (rcode) {
    case kRcodeGeneration:
        return Error(Errc::Resync, msg);
    case kRcodeAddressError:
        return Error(Errc::Unreadable, msg);
    case kRcodeCancelled:
        return Error(Errc::Timeout, msg);
    default:
        return Error(Errc::Io, msg);
    }
}

uint32_t max_payload_for_speed(uint32_t speed) {
    return 512u << std::min<uint32_t>(speed, 3);
}

} // namespace fw

uint16_t ieee1212_crc16(std::span<const uint32_t> quadlets) {
    // CRC-16/ITU-T (polynomial 0x1021, initial value 0) over the quadlets' big-endian bytes.
    uint16_t crc = 0;
    for (uint32_t q : quadlets) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            crc = static_cast<uint16_t>(crc ^ (((q >> shift) & 0xFF) << 8));
            for (int bit = 0; bit < 8; ++bit) {
                crc = static_cast<uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
            }
        }
    }
    return crc;
}

FwDebugRom parse_debug_rom(std::span<const uint32_t> rom) {
    FwDebugRom out;
    if (rom.size() < 2) {
        return out;
    }
    const size_t info_length = rom[0] >> 24;
    out.bus_info_1394 = rom[1] == 0x31333934; // "1394"
    if (info_length >= 2 && rom.size() > 2) {
        const uint32_t max_rec = (rom[2] >> 12) & 0xF;
        if (max_rec >= 1 && max_rec <= 13) {
            out.max_rec_payload = 2u << max_rec; // 2^(max_rec + 1) bytes
        }
    }
    if (info_length >= 4 && rom.size() > 4) {
        out.guid = (uint64_t{rom[3]} << 32) | rom[4];
    }
    const size_t root = 1 + info_length;
    if (root >= rom.size()) {
        return out;
    }
    const size_t declared = rom[root] >> 16;
    const size_t length = std::min(declared, rom.size() - root - 1);
    out.crc_ok =
        length == declared && ieee1212_crc16(rom.subspan(root + 1, length)) == (rom[root] & 0xFFFF);
    for (size_t i = 1; i <= length; ++i) {
        const uint32_t q = rom[root + i];
        const uint32_t value = q & 0xFFFFFF;
        switch (q >> 24) {
        case 0x03: // immediate: module vendor id
            out.vendor = value;
            break;
        case 0x1C:
            out.debug_vendor = value;
            break;
        case 0x1D:
            out.debug_kind = value;
            break;
        case 0x1E:
            out.debug_block = value;
            break;
        default:
            break;
        }
    }
    return out;
}

} // namespace kdcart::transport
