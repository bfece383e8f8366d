#pragma once
// Types from a PDB's TPI stream as plain data for `dt` and `dv`: structures with their fields'
// offsets (nested, arrays, bit fields, pointers, enums). The CLI formats them; nothing here
// prints. Built by PdbFile (Pdb.cpp) on first use.
#include "transport/Error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

struct PdbField {
    std::string name;
    uint64_t offset = 0;
    uint32_t type = 0; // type index (a bit field's is the LF_BITFIELD record)
    bool is_static = false;
};

struct PdbEnumerator {
    std::string name;
    int64_t value = 0;
};

struct PdbType {
    enum class Kind : uint8_t {
        Base,     // a built-in type: `base`, size
        Pointer,  // element = pointee
        Struct,   // struct / class / interface: fields
        Union,    // fields
        Enum,     // element = underlying type, enumerators
        Array,    // element, count
        Bitfield, // element = base type, bit_position, bit_length
        Modifier, // const/volatile: element = the modified type
        Function, // a function type: element = return type, params
        Unknown,
    };
    enum class Base : uint8_t {
        None,
        Void,
        Char,  // signed 8-bit character (CHAR)
        UChar, // unsigned char
        WChar, // wchar_t / char16
        Int,   // signed integer of `size` bytes
        UInt,  // unsigned integer of `size` bytes
        Bool,  // C++ bool
        Float, // float / double of `size` bytes
        HResult,
    };
    Kind kind = Kind::Unknown;
    Base base = Base::None;
    std::string name; // structs/unions/enums: their tag; base: "Uint4B"-style name
    uint64_t size = 0;
    uint32_t element = 0;
    uint64_t count = 0;
    uint8_t bit_position = 0;
    uint8_t bit_length = 0;
    bool forward_ref = false; // a declaration whose full definition was not found
    std::vector<PdbField> fields;
    std::vector<PdbEnumerator> enumerators;
    std::vector<uint32_t> params; // function types: parameter types
};

class PdbTypes {
  public:
    virtual ~PdbTypes() = default;
    // The type at `index`, forward references resolved to their definitions. nullptr for an
    // index the PDB does not have.
    virtual const PdbType* get(uint32_t index) const = 0;
    // A named struct/union/enum/typedef'd-by-tag type, case-insensitive (exact case first).
    virtual std::optional<uint32_t> find(std::string_view name) const = 0;
    // Names of the structs/unions/enums that match a '*'/'?' wildcard, case-insensitive, sorted.
    virtual std::vector<std::string> match(std::string_view pattern) const = 0;
    // C-like spelling for messages and `kp`: "unsigned long", "_LIST_ENTRY *", "char [16]".
    virtual std::string c_name(uint32_t index) const = 0;
};

} // namespace kdcart::engine
