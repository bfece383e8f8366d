#pragma once
// Bug check codes: names (the 259 codes "documented in WinDbg help" that seed 003 lists, plus a
// few later ones, marked as such), descriptions and parameter meanings for the common codes,
// as `!analyze -show CODE [args]` and `!analyze -v` print them. Data only, no formatting.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kdcart::engine {

struct BugCheckName {
    uint32_t code = 0;
    std::string_view name;
    // true: one of the 259 rows of seed 003's table; false: a code from later Windows releases.
    bool in_seed_table = true;
};

// Every known code, sorted by code.
std::span<const BugCheckName> bugcheck_names();
// The name of a code, or nullopt for an unknown one.
std::optional<std::string_view> bugcheck_name(uint32_t code);

// What `!analyze` prints about a bug check with these parameters.
struct BugCheckDescription {
    bool known = false; // the code is in the table
    std::string name;   // "CRITICAL_PROCESS_DIED", empty when unknown
    // The help text, one entry per line, verbatim (some start with spaces, as WinDbg prints
    // them); empty when there is none for this code.
    std::string description;
    // Per parameter: the meaning ("" = none). Continuation lines are separated by '\n' and
    // already carry their indentation.
    std::array<std::string, 4> parameters;
};

// The meaning may depend on the first parameter (a subcode: 0x19, 0xC2, 0xC4, 0x7F, 0x9F,
// 0x133, 0x139...): `params` picks the matching text.
BugCheckDescription describe_bugcheck(uint32_t code, const std::array<uint64_t, 4>& params);

} // namespace kdcart::engine
