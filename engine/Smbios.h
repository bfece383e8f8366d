#pragma once
// SMBIOS structure table parsing for `!sysinfo machineid`: the BIOS (type 0), system (type 1)
// and baseboard (type 2) strings. Pure: bytes in, fields out; a malformed table ends the parse
// at the structure that broke, with what came before.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace kdcart::engine {

struct SmbiosMachineId {
    // In WinDbg's order: BiosMajorRelease, BiosMinorRelease, BiosVendor, BiosVersion,
    // BiosReleaseDate, SystemManufacturer, SystemProductName, SystemFamily, SystemVersion,
    // SystemSKU, BaseBoardManufacturer, BaseBoardProduct, BaseBoardVersion.
    std::vector<std::pair<std::string, std::string>> fields;
    std::optional<std::string> broken;
};

SmbiosMachineId parse_smbios(std::span<const uint8_t> table);

} // namespace kdcart::engine
