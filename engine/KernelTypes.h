#pragma once
// The kernel's structures by field name, from nt's PDB types at run time: the offset of a field
// path ("Pcb.DirectoryTableBase", "Tcb.WaitBlockList", "ApcState.Process"), a field's size and
// type, a type's size, typed reads of an object's fields (pointers, integers and enums, bit
// fields, UNICODE_STRING, CHAR arrays, LIST_ENTRY heads) and a LIST_ENTRY walk with a bound,
// loop detection and the entry where the list broke. No offset of any Windows build is known
// here: everything comes from the PDB. Without nt's types every question fails with WinDbg's
// "NT symbols are incorrect, please fix symbols".
#include "engine/PdbTypes.h"
#include "engine/Types.h"
#include "transport/Error.h"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

class Debugger;

// A field found by path: its offset from the start of the outer type and its resolved type.
struct KernelField {
    uint64_t offset = 0;
    uint32_t type = 0;             // type index, const/volatile stripped
    const PdbType* info = nullptr; // the type record (never null in a returned field)
    uint64_t size = 0;             // bytes (a bit field: its base type's size)
    uint8_t bit_position = 0;      // bit fields only (bit_length 0: not a bit field)
    uint8_t bit_length = 0;
};

// A LIST_ENTRY chain walked from its head.
struct ListWalk {
    std::vector<uint64_t> entries; // the LIST_ENTRY addresses, head excluded, in Flink order
    // Set when the walk stopped before coming back to the head; `entries` holds what came
    // before. `broken_at` is the entry whose Flink could not be followed.
    std::optional<std::string> broken;
    uint64_t broken_at = 0;
};

class KernelTypes {
  public:
    // Reads target memory: unreadable bytes are marked invalid (MemoryBlock::valid).
    using Reader = std::function<Result<MemoryBlock>(uint64_t address, size_t size)>;

    KernelTypes(const PdbTypes& types, Reader read, std::string module = "nt");

    // nt's types on the debugger's target; WinDbg's error when nt has no PDB types.
    [[nodiscard]] static Result<KernelTypes> of_nt(Debugger& dbg);
    static constexpr const char* k_bad_symbols = "NT symbols are incorrect, please fix symbols";
    // The default bound of walk_list.
    static constexpr size_t k_max_list_entries = 4096;

    // ---- layout ----
    [[nodiscard]] Result<KernelField> field(std::string_view type, std::string_view path) const;
    [[nodiscard]] Result<uint64_t> offset(std::string_view type, std::string_view path) const;
    std::optional<uint64_t> try_offset(std::string_view type, std::string_view path) const;
    bool has_field(std::string_view type, std::string_view path) const {
        return try_offset(type, path).has_value();
    }
    [[nodiscard]] Result<uint64_t> size_of(std::string_view type) const;
    bool has_type(std::string_view type) const { return m_types->find(type).has_value(); }
    // "nt!_KTHREAD"
    std::string qualified(std::string_view type) const;

    // ---- typed reads of the object of `type` at `object` ----
    // A pointer field.
    [[nodiscard]] Result<uint64_t> read_pointer(uint64_t object, std::string_view type,
                                                std::string_view path) const;
    // An integer, enum, boolean, bit field or pointer field, zero-extended.
    [[nodiscard]] Result<uint64_t> read_unsigned(uint64_t object, std::string_view type,
                                                 std::string_view path) const;
    // The same, sign-extended from the field's size.
    [[nodiscard]] Result<int64_t> read_signed(uint64_t object, std::string_view type,
                                              std::string_view path) const;
    // A UNICODE_STRING field (its Length/Buffer by name), as UTF-8; at most `max_chars`.
    [[nodiscard]] Result<std::string> read_unicode_string(uint64_t object, std::string_view type,
                                                          std::string_view path,
                                                          size_t max_chars = 0x2000) const;
    // A UNICODE_STRING at `address` (not a field).
    [[nodiscard]] Result<std::string> read_unicode_string_at(uint64_t address,
                                                             size_t max_chars = 0x2000) const;
    // A CHAR/UCHAR array field (ImageFileName) up to its first NUL.
    [[nodiscard]] Result<std::string> read_char_array(uint64_t object, std::string_view type,
                                                      std::string_view path) const;
    // Raw reads (all bytes readable, else Unreadable).
    [[nodiscard]] Result<uint64_t> read_u64(uint64_t address) const;
    [[nodiscard]] Result<std::vector<uint8_t>> read_bytes(uint64_t address, size_t size) const;

    // ---- lists ----
    // The LIST_ENTRY at `head`: every entry until the Flinks come back to the head, at most
    // `bound` of them; a loop that misses the head, a Flink into unreadable memory or a null
    // Flink ends the walk and says where.
    ListWalk walk_list(uint64_t head, size_t bound = k_max_list_entries) const;
    // The same for a LIST_ENTRY field of an object; entries converted to the containing
    // objects (entry - offset of `entry_type.entry_path`).
    [[nodiscard]] Result<ListWalk> walk_field_list(uint64_t object, std::string_view type,
                                                   std::string_view head_path,
                                                   std::string_view entry_type,
                                                   std::string_view entry_path,
                                                   size_t bound = k_max_list_entries) const;

    const PdbTypes& types() const { return *m_types; }
    const Reader& reader() const { return m_read; }

  private:
    const PdbTypes* m_types;
    Reader m_read;
    std::string m_module;
};

// UTF-16LE bytes to UTF-8 (unpaired surrogates become U+FFFD).
std::string utf16_to_utf8(const uint8_t* data, size_t bytes);

} // namespace kdcart::engine
