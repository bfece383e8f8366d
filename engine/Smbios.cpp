#include "engine/Smbios.h"

#include <map>

namespace kdcart::engine {

SmbiosMachineId parse_smbios(std::span<const uint8_t> t) {
    SmbiosMachineId out;
    std::map<std::string, std::string> found;
    size_t at = 0;
    while (at + 4 <= t.size()) {
        const uint8_t type = t[at];
        const uint8_t length = t[at + 1];
        if (length < 4 || at + length > t.size()) {
            out.broken = "structure at offset " + std::to_string(at) + " has a bad length";
            break;
        }
        // The strings follow the formatted area, each NUL-terminated, the set ends with a NUL.
        std::vector<std::string> strings;
        size_t s = at + length;
        bool ended = false;
        if (s + 1 < t.size() && t[s] == 0 && t[s + 1] == 0) {
            s += 2; // no strings
            ended = true;
        } else {
            while (s < t.size()) {
                std::string cur;
                while (s < t.size() && t[s] != 0) {
                    cur.push_back(static_cast<char>(t[s++]));
                }
                if (s >= t.size()) {
                    break;
                }
                strings.push_back(std::move(cur));
                ++s; // its NUL
                if (s < t.size() && t[s] == 0) {
                    ++s; // the set's NUL
                    ended = true;
                    break;
                }
            }
        }
        if (!ended) {
            out.broken = "structure at offset " + std::to_string(at) + " has unterminated strings";
            break;
        }
        auto str = [&](size_t offset) -> std::string {
            if (offset >= length) {
                return {};
            }
            const uint8_t index = t[at + offset];
            return index >= 1 && index <= strings.size() ? strings[index - 1] : std::string();
        };
        auto byte = [&](size_t offset) -> std::optional<uint8_t> {
            return offset < length ? std::optional<uint8_t>(t[at + offset]) : std::nullopt;
        };
        if (type == 0 && !found.count("BiosVendor")) {
            if (auto b = byte(0x14)) {
                found["BiosMajorRelease"] = std::to_string(*b);
            }
            if (auto b = byte(0x15)) {
                found["BiosMinorRelease"] = std::to_string(*b);
            }
            found["BiosVendor"] = str(0x04);
            found["BiosVersion"] = str(0x05);
            found["BiosReleaseDate"] = str(0x08);
        } else if (type == 1 && !found.count("SystemManufacturer")) {
            found["SystemManufacturer"] = str(0x04);
            found["SystemProductName"] = str(0x05);
            found["SystemVersion"] = str(0x06);
            found["SystemSKU"] = str(0x19);
            found["SystemFamily"] = str(0x1A);
        } else if (type == 2 && !found.count("BaseBoardManufacturer")) {
            found["BaseBoardManufacturer"] = str(0x04);
            found["BaseBoardProduct"] = str(0x05);
            found["BaseBoardVersion"] = str(0x06);
        } else if (type == 127) {
            break; // end of table
        }
        at = s;
    }
    for (const char* name :
         {"BiosMajorRelease", "BiosMinorRelease", "BiosVendor", "BiosVersion", "BiosReleaseDate",
          "SystemManufacturer", "SystemProductName", "SystemFamily", "SystemVersion", "SystemSKU",
          "BaseBoardManufacturer", "BaseBoardProduct", "BaseBoardVersion"}) {
        if (auto it = found.find(name); it != found.end()) {
            out.fields.emplace_back(name, it->second);
        }
    }
    return out;
}

} // namespace kdcart::engine
