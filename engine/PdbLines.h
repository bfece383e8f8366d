#pragma once
// A PDB's line tables as plain data: every module stream's C13 lines subsections (code ranges,
// each line's first offset), resolved to file paths through the module's file checksums and
// the PDB string table. Answers address -> {file, line} (ln, k, u's header, the stop line) and
// {file, line} -> address (bp `file.c:42`). Built by PdbFile::lines() on first use (the LLVM
// side lives in PdbLines.cpp); corrupt line data gives fewer lines, never a crash.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

// One source line's code: [rva, end) belongs to `line` of files()[file].
struct PdbLineEntry {
    uint32_t rva = 0;
    uint32_t end = 0;
    uint32_t file = 0;
    uint32_t line = 0;
};

// What an address maps to.
struct PdbSourceLine {
    std::string file;      // the path as the PDB records it
    uint32_t line = 0;     // 1-based
    uint32_t line_rva = 0; // where this line's code (the piece holding the address) starts
};

class PdbLines {
  public:
    PdbLines() = default;
    // Takes the entries in any order; entries whose file index is out of range are dropped.
    PdbLines(std::vector<std::string> files, std::vector<PdbLineEntry> entries);

    // The line whose code holds `rva`; nullopt when no line table covers it. A hidden line
    // (is_hidden_line) is returned as recorded, as DIA returns it and WinDbg shows it.
    std::optional<PdbSourceLine> find(uint32_t rva) const;

    // bp `file.c:42`: the first code address of `line` in the file `file` names (the whole
    // recorded path, or its last components: "kdtest.c", "images\kdtest.c"; '/' and '\' alike,
    // case-insensitive), or of the nearest following line of that file that has code.
    struct LineAddress {
        uint32_t rva = 0;
        std::string file;  // the recorded path that matched
        uint32_t line = 0; // the line the address belongs to (>= the one asked for)
    };
    std::optional<LineAddress> address_of(std::string_view file, uint32_t line) const;
    // True when some recorded path matches `file` as address_of matches it.
    bool has_file(std::string_view file) const;

    const std::vector<std::string>& files() const { return m_files; }
    const std::vector<PdbLineEntry>& entries() const { return m_entries; }
    bool empty() const { return m_entries.empty(); }

  private:
    std::vector<uint32_t> matching_files(std::string_view file) const;

    std::vector<std::string> m_files;
    std::vector<PdbLineEntry> m_entries; // by rva
};

// 0xfeefee and 0xf00f00: the line numbers compilers give code that belongs to no line.
bool is_hidden_line(uint32_t line);
// Does the recorded `path` match what the user typed (see address_of)?
bool source_path_matches(std::string_view path, std::string_view typed);

} // namespace kdcart::engine
