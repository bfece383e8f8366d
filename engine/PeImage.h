#pragma once
// The headers of a PE image (PE32 or PE32+): file header, optional header, data directories,
// section table and the CodeView (RSDS) debug record that names the image's PDB. Read through an
// ImageReader, so the same code reads an image mapped in target memory (RVA = offset from the
// base) or a file on disk (file_image_reader maps RVAs to file offsets). Export tables stay in
// PeExports.h. Every offset is bounds-checked: wild headers give an error, never a crash.
#include "engine/PeExports.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

struct PeSection {
    std::string name; // up to 8 characters
    uint32_t virtual_address = 0;
    uint32_t virtual_size = 0;
    uint32_t raw_size = 0;
    uint32_t raw_pointer = 0;
    uint32_t characteristics = 0;
    uint32_t relocations_pointer = 0;
    uint32_t line_numbers_pointer = 0;
    uint16_t relocation_count = 0;
    uint16_t line_number_count = 0;
};

// One IMAGE_DEBUG_DIRECTORY entry (!dh lists them).
struct PeDebugEntry {
    uint32_t timestamp = 0;
    uint16_t major = 0, minor = 0;
    uint32_t type = 0; // 2 CodeView, 13 POGO, 16 REPRO ...
    uint32_t size = 0;
    uint32_t rva = 0;
    uint32_t pointer = 0; // file offset
};

struct PeDataDirectory {
    uint32_t rva = 0;
    uint32_t size = 0;
};

// What a symbol server needs to find the image's PDB.
struct CodeViewRecord {
    std::array<uint8_t, 16> guid{}; // as stored: Data1 LE, Data2 LE, Data3 LE, Data4[8]
    uint32_t age = 0;
    std::string pdb_name; // as written by the linker (may be a full build path)

    // "3249D99D0C4049318610F4E4FB0B6936" (Data1, Data2, Data3 as numbers, then Data4's bytes).
    std::string guid_hex() const;
    // "{3249D99D-0C40-4931-8610-F4E4FB0B6936}"
    std::string guid_string() const;
    // The symbol store's directory name: guid_hex() followed by the age in hex ("...69361").
    std::string store_key() const;
    // The file part of pdb_name ("c:\build\ntkrnlmp.pdb" -> "ntkrnlmp.pdb").
    std::string pdb_file_name() const;
};

inline constexpr uint16_t k_machine_i386 = 0x14C;
inline constexpr uint16_t k_machine_amd64 = 0x8664;
inline constexpr uint16_t k_machine_arm64 = 0xAA64;

struct PeImageInfo {
    // file header
    uint16_t machine = 0;
    uint16_t number_of_sections = 0;
    uint32_t timestamp = 0;
    uint16_t characteristics = 0;
    uint32_t symbol_table_pointer = 0;
    uint32_t symbol_count = 0;
    uint16_t optional_header_size = 0;
    // optional header
    bool pe32_plus = false;
    uint8_t linker_major = 0;
    uint8_t linker_minor = 0;
    uint32_t size_of_code = 0;
    uint32_t size_of_initialized_data = 0;
    uint32_t size_of_uninitialized_data = 0;
    uint32_t base_of_code = 0;
    uint16_t image_major = 0, image_minor = 0;
    uint64_t heap_reserve = 0, heap_commit = 0;
    uint32_t entry_point = 0; // RVA
    uint64_t image_base = 0;
    uint32_t section_alignment = 0;
    uint32_t file_alignment = 0;
    uint16_t os_major = 0, os_minor = 0;
    uint16_t subsystem_major = 0, subsystem_minor = 0;
    uint32_t size_of_image = 0;
    uint32_t size_of_headers = 0;
    uint32_t checksum = 0;
    uint16_t subsystem = 0;
    uint16_t dll_characteristics = 0;
    uint64_t stack_reserve = 0, stack_commit = 0;
    std::vector<PeDataDirectory> directories; // at most 16
    std::vector<PeSection> sections;
    std::optional<CodeViewRecord> codeview;
    std::vector<PeDebugEntry> debug_entries;
    // A REPRO debug entry: the timestamp is a hash of the build, not a time (/Brepro).
    bool reproducible = false;

    const PeDataDirectory* directory(size_t index) const {
        return index < directories.size() ? &directories[index] : nullptr;
    }
    // The section holding `rva`, if any.
    const PeSection* section_of(uint32_t rva) const;
    // Inside a section the loader maps executable (code, not data).
    bool is_code(uint32_t rva) const;
};

inline constexpr size_t k_dir_export = 0;
inline constexpr size_t k_dir_import = 1;
inline constexpr size_t k_dir_exception = 3;
inline constexpr size_t k_dir_debug = 6;

// Which parts past the file and optional headers to read (each costs requests on a serial
// cable): the section table, and the debug directory with its CodeView record.
struct PeReadParts {
    bool sections = true;
    bool debug = true;
    // false: the optional header only through the export directory's entry (one data
    // directory; the checksum and the export table are all an export symbol needs).
    bool directories = true;
};

// Reads the headers through `read` (RVA-addressed; the CodeView record through its RVA). Parts
// left out stay empty.
[[nodiscard]] Result<PeImageInfo> read_pe_image(const ImageReader& read, PeReadParts parts = {});

// An ImageReader over the bytes of a PE file: RVAs inside a section are mapped to the section's
// raw data, header RVAs to the same file offsets. The bytes are shared with the reader.
[[nodiscard]] Result<ImageReader> file_image_reader(std::vector<uint8_t> file);

} // namespace kdcart::engine
