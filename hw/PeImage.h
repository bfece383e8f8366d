#pragma once
// A PE32+ (x64) image file: headers, sections, exports, imports, base relocations and the
// CodeView record, parsed with bounds checks; plus the loader step that lays the image out
// at a chosen base with relocations applied and imports bound.
#include "transport/Error.h"
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::hw {

inline constexpr uint32_t IMAGE_SCN_MEM_EXECUTE = 0x20000000;
inline constexpr uint32_t IMAGE_SCN_MEM_READ = 0x40000000;
inline constexpr uint32_t IMAGE_SCN_MEM_WRITE = 0x80000000;

struct PeSection {
    std::string name;
    uint32_t virtual_address = 0;
    uint32_t virtual_size = 0; // never 0: SizeOfRawData when the header says 0
    uint32_t raw_offset = 0;
    uint32_t raw_size = 0;
    uint32_t characteristics = 0;

    bool executable() const { return (characteristics & IMAGE_SCN_MEM_EXECUTE) != 0; }
    bool writable() const { return (characteristics & IMAGE_SCN_MEM_WRITE) != 0; }
};

struct PeExport {
    std::string name; // empty for ordinal-only exports
    uint32_t ordinal = 0;
    uint32_t rva = 0;
    std::string forwarder; // "DLL.Name" when the export forwards elsewhere
};

struct PeImportSymbol {
    std::string name; // empty when imported by ordinal
    uint16_t ordinal = 0;
    uint16_t hint = 0;
    bool by_ordinal = false;
    uint32_t iat_rva = 0; // where the loader writes the address
};

struct PeImportModule {
    std::string dll;
    std::vector<PeImportSymbol> symbols;
};

struct PeRelocation {
    uint32_t rva = 0;
    uint8_t type = 0; // IMAGE_REL_BASED_DIR64 (10) or HIGHLOW (3)
};

struct PeCodeView {
    std::string pdb_name;
    std::array<uint8_t, 16> guid{};
    uint32_t age = 0;
};

// Resolves one import to an absolute address, or nullopt when it cannot.
using ImportResolver =
    std::function<std::optional<uint64_t>(const std::string& dll, const PeImportSymbol& symbol)>;

class PeImage {
  public:
    [[nodiscard]] static Result<PeImage> parse(std::vector<uint8_t> file);
    [[nodiscard]] static Result<PeImage> load_file(const std::filesystem::path& path);

    uint16_t machine() const { return m_machine; }
    uint16_t characteristics() const { return m_characteristics; }
    uint64_t image_base() const { return m_image_base; }
    uint32_t size_of_image() const { return m_size_of_image; }
    uint32_t size_of_headers() const { return m_size_of_headers; }
    uint32_t entry_point_rva() const { return m_entry_point_rva; }
    uint32_t checksum() const { return m_checksum; }
    uint32_t time_date_stamp() const { return m_time_date_stamp; }
    uint16_t subsystem() const { return m_subsystem; }
    std::span<const uint8_t> file() const { return m_file; }
    const std::vector<PeSection>& sections() const { return m_sections; }
    const std::vector<PeExport>& exports() const { return m_exports; }
    const std::string& export_dll_name() const { return m_export_dll_name; }
    const std::vector<PeImportModule>& imports() const { return m_imports; }
    const std::vector<PeRelocation>& relocations() const { return m_relocations; }
    const std::optional<PeCodeView>& codeview() const { return m_codeview; }

    std::optional<uint32_t> export_rva(std::string_view name) const;
    std::optional<uint32_t> export_rva_by_ordinal(uint32_t ordinal) const;

    // Section characteristics (IMAGE_SCN_MEM_*) of the 4 KiB page at `rva`: the union over
    // the sections that overlap it; the header page is read-only.
    uint32_t page_characteristics(uint32_t rva) const;

    // The image as a loader maps it at `base`: SizeOfImage bytes with headers and sections at
    // their RVAs, base relocations applied (and OptionalHeader.ImageBase updated), and every
    // import written into its IAT slot through `resolve`.
    [[nodiscard]] Result<std::vector<uint8_t>> map(uint64_t base,
                                                   const ImportResolver& resolve) const;

    // File offset of OptionalHeader.CheckSum.
    size_t checksum_offset() const { return m_checksum_offset; }
    // The standard PE checksum (CheckSumMappedFile): 16-bit one's-complement-style sum of
    // the file with the CheckSum field taken as zero, plus the file length.
    static uint32_t compute_checksum(std::span<const uint8_t> file, size_t checksum_offset);

  private:
    PeImage() = default;
    std::optional<size_t> rva_to_offset(uint32_t rva, size_t length) const;
    std::optional<std::string> string_at_rva(uint32_t rva, size_t max_length = 512) const;
    Result<void> parse_headers();
    Result<void> parse_exports(uint32_t rva, uint32_t size);
    Result<void> parse_imports(uint32_t rva, uint32_t size);
    Result<void> parse_relocations(uint32_t rva, uint32_t size);
    void parse_debug_directory(uint32_t rva, uint32_t size);

    std::vector<uint8_t> m_file;
    uint16_t m_machine = 0;
    uint16_t m_characteristics = 0;
    uint16_t m_subsystem = 0;
    uint64_t m_image_base = 0;
    uint32_t m_size_of_image = 0;
    uint32_t m_size_of_headers = 0;
    uint32_t m_entry_point_rva = 0;
    uint32_t m_checksum = 0;
    uint32_t m_time_date_stamp = 0;
    size_t m_checksum_offset = 0;
    size_t m_image_base_offset = 0;
    std::vector<PeSection> m_sections;
    std::vector<PeExport> m_exports;
    std::string m_export_dll_name;
    std::vector<PeImportModule> m_imports;
    std::vector<PeRelocation> m_relocations;
    std::optional<PeCodeView> m_codeview;
};

} // namespace kdcart::hw
