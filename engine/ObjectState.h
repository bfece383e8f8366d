#pragma once
// The object manager's view of kernel memory, through nt's PDB types by field name: an object's
// _OBJECT_HEADER (counts, type through nt!ObTypeIndexTable, the header cookie when nt has one),
// its name (_OBJECT_HEADER_NAME_INFO, found from InfoMask), directory objects' entries
// (_OBJECT_DIRECTORY hash buckets) and path look-up from the root directory
// (KDDEBUGGER_DATA64.ObpRootDirectoryObject / nt!ObpRootDirectoryObject). Chains are walked
// with a bound; a broken one is reported, never followed forever.
#include "engine/KernelTypes.h"

#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct ObjectHeaderInfo {
    uint64_t object = 0; // the body
    uint64_t header = 0;
    uint8_t type_index = 0; // decoded (header cookie applied)
    uint64_t type_object = 0;
    std::string type_name;
    int64_t pointer_count = 0;
    int64_t handle_count = 0;
    uint8_t info_mask = 0;
    std::optional<std::string> name;
    uint64_t directory = 0; // the name info's Directory
};

struct DirectoryEntry {
    uint32_t bucket = 0;
    uint64_t object = 0;
    std::string type_name;
    std::string name;
};

struct DirectoryListing {
    std::vector<DirectoryEntry> entries;
    std::optional<std::string> broken; // a chain that could not be followed
};

class ObjectState {
  public:
    ObjectState(Debugger& dbg, const KernelTypes& types) : m_dbg(dbg), m_types(types) {}

    // The header of the object whose body is at `object`. A pointer that is no object (unreadable
    // header, type index not in ObTypeIndexTable, type object whose own type is not "Type") is
    // refused with a message that says which check failed.
    [[nodiscard]] Result<ObjectHeaderInfo> header(uint64_t object);
    // The entries of a directory object.
    [[nodiscard]] Result<DirectoryListing> directory(uint64_t directory_object);
    // "\Driver\kdtest" -> the object (case-insensitive, from the root directory).
    [[nodiscard]] Result<uint64_t> lookup(std::string_view path);
    [[nodiscard]] Result<uint64_t> root_directory();

    static constexpr size_t k_max_directory_entries = 4096;

  private:
    [[nodiscard]] Result<uint64_t> type_object(uint8_t index);
    Debugger& m_dbg;
    const KernelTypes& m_types;
};

} // namespace kdcart::engine
