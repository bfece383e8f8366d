// Line tables: the look-ups (plain data) and their construction from a PDB's module streams
// through LLVM's CodeView readers (DEBUG_S_LINES blocks, DEBUG_S_FILECHKSMS entries, the
// /names string table). Every LLVM error is consumed; a bad subsection is skipped.
#include "engine/PdbLines.h"
#include "engine/PdbLlvm.h"

#include <llvm/DebugInfo/CodeView/DebugChecksumsSubsection.h>
#include <llvm/DebugInfo/CodeView/DebugLinesSubsection.h>
#include <llvm/DebugInfo/CodeView/DebugSubsectionRecord.h>
#include <llvm/DebugInfo/CodeView/Line.h>
#include <llvm/DebugInfo/MSF/MappedBlockStream.h>
#include <llvm/DebugInfo/PDB/Native/DbiModuleDescriptor.h>
#include <llvm/DebugInfo/PDB/Native/DbiModuleList.h>
#include <llvm/DebugInfo/PDB/Native/DbiStream.h>
#include <llvm/DebugInfo/PDB/Native/ModuleDebugStream.h>
#include <llvm/DebugInfo/PDB/Native/PDBFile.h>
#include <llvm/DebugInfo/PDB/Native/PDBStringTable.h>
#include <llvm/DebugInfo/PDB/Native/RawConstants.h>
#include <llvm/Object/COFF.h>
#include <llvm/Support/BinaryStreamReader.h>
#include <llvm/Support/Error.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace kdcart::engine {

namespace {

char fold(char c) {
    if (c == '\\') {
        return '/';
    }
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

} // namespace

bool is_hidden_line(uint32_t line) {
    return line == 0xfeefee || line == 0xf00f00;
}

bool source_path_matches(std::string_view path, std::string_view typed) {
    if (typed.empty() || typed.size() > path.size()) {
        return false;
    }
    const size_t skip = path.size() - typed.size();
    for (size_t i = 0; i < typed.size(); ++i) {
        if (fold(path[skip + i]) != fold(typed[i])) {
            return false;
        }
    }
    // The whole path, or whole trailing components of it.
    return skip == 0 || fold(path[skip - 1]) == '/' || fold(typed.front()) == '/';
}

PdbLines::PdbLines(std::vector<std::string> files, std::vector<PdbLineEntry> entries)
    : m_files(std::move(files)) {
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const PdbLineEntry& e) {
                                     return e.file >= m_files.size() || e.end < e.rva;
                                 }),
                  entries.end());
    std::stable_sort(entries.begin(), entries.end(),
                     [](const PdbLineEntry& a, const PdbLineEntry& b) { return a.rva < b.rva; });
    m_entries = std::move(entries);
}

std::optional<PdbSourceLine> PdbLines::find(uint32_t rva) const {
    auto it = std::upper_bound(m_entries.begin(), m_entries.end(), rva,
                               [](uint32_t v, const PdbLineEntry& e) { return v < e.rva; });
    // The last entry starting at or below rva whose range holds it (a few back at most:
    // zero-length entries share their address with the next line).
    for (int tries = 0; it != m_entries.begin() && tries < 8; ++tries) {
        --it;
        if (rva < it->end || (it->rva == rva && it->end == rva)) {
            // Identical functions folded by the linker: several modules' lines share the
            // address; the first module's (as DIA answers) wins.
            while (it != m_entries.begin() && std::prev(it)->rva == it->rva &&
                   std::prev(it)->end == it->end) {
                --it;
            }
            return PdbSourceLine{m_files[it->file], it->line, it->rva};
        }
    }
    return std::nullopt;
}

std::vector<uint32_t> PdbLines::matching_files(std::string_view file) const {
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < m_files.size(); ++i) {
        if (source_path_matches(m_files[i], file)) {
            out.push_back(i);
        }
    }
    return out;
}

bool PdbLines::has_file(std::string_view file) const {
    return !matching_files(file).empty();
}

std::optional<PdbLines::LineAddress> PdbLines::address_of(std::string_view file,
                                                          uint32_t line) const {
    const auto files = matching_files(file);
    if (files.empty()) {
        return std::nullopt;
    }
    // The first file that matches (WinDbg takes the first match), then its nearest line at or
    // after the one asked for, then that line's lowest address.
    std::optional<LineAddress> best;
    for (uint32_t f : files) {
        for (const auto& e : m_entries) {
            if (e.file != f || e.line < line || is_hidden_line(e.line)) {
                continue;
            }
            if (!best || e.line < best->line || (e.line == best->line && e.rva < best->rva)) {
                best = LineAddress{e.rva, m_files[f], e.line};
            }
        }
        if (best) {
            return best;
        }
    }
    return best;
}

Result<std::unique_ptr<PdbLines>> make_llvm_pdb_lines(llvm::pdb::PDBFile& file,
                                                      const std::vector<uint32_t>& section_rva) {
    using namespace llvm::codeview;
    using namespace llvm::pdb;
    if (!file.hasPDBDbiStream()) {
        return std::make_unique<PdbLines>();
    }
    auto dbi = file.getPDBDbiStream();
    if (!dbi) {
        return make_error(Errc::Malformed, llvm_error_text(dbi.takeError()));
    }
    const PDBStringTable* strings = nullptr;
    if (auto st = file.getStringTable()) {
        strings = &*st;
    } else {
        consumeError(st.takeError());
    }
    std::vector<std::string> files;
    std::unordered_map<std::string, uint32_t> file_index;
    std::vector<PdbLineEntry> entries;

    const DbiModuleList& modules = dbi->modules();
    const uint32_t count = modules.getModuleCount();
    for (uint32_t i = 0; i < count && strings; ++i) {
        auto opened = open_module_stream(file, modules, i);
        if (!opened) {
            continue;
        }
        ModuleDebugStreamRef& mod = **opened;
        if (!mod.hasDebugSubsections()) {
            continue;
        }
        // The module's file checksums: offset of each entry -> index in `files`.
        std::map<uint32_t, uint32_t> by_offset;
        for (const DebugSubsectionRecord& r : mod.subsections()) {
            if (r.kind() != DebugSubsectionKind::FileChecksums) {
                continue;
            }
            DebugChecksumsSubsectionRef sums;
            if (auto e = sums.initialize(r.getRecordData())) {
                consumeError(std::move(e));
                continue;
            }
            const auto& array = sums.getArray();
            bool had_error = false;
            for (auto it = array.begin(&had_error); it != array.end(); ++it) {
                auto name = strings->getStringForID(it->FileNameOffset);
                if (!name) {
                    consumeError(name.takeError());
                    continue;
                }
                std::string path = name->str();
                auto [where, added] = file_index.emplace(path, static_cast<uint32_t>(files.size()));
                if (added) {
                    files.push_back(std::move(path));
                }
                by_offset[it.offset()] = where->second;
            }
            break; // one checksums subsection per module
        }
        if (by_offset.empty()) {
            continue;
        }
        for (const DebugSubsectionRecord& r : mod.subsections()) {
            if (r.kind() != DebugSubsectionKind::Lines) {
                continue;
            }
            DebugLinesSubsectionRef lines;
            if (auto e = lines.initialize(llvm::BinaryStreamReader(r.getRecordData()))) {
                consumeError(std::move(e));
                continue;
            }
            const LineFragmentHeader* h = lines.header();
            if (!h || h->RelocSegment == 0 || h->RelocSegment > section_rva.size()) {
                continue;
            }
            const uint64_t base =
                uint64_t{section_rva[h->RelocSegment - 1]} + uint32_t{h->RelocOffset};
            const uint64_t limit = base + uint32_t{h->CodeSize};
            if (limit > 0xffffffffull) {
                continue;
            }
            for (auto it = lines.begin(); it != lines.end(); ++it) {
                const LineColumnEntry& block = *it;
                auto f = by_offset.find(block.NameIndex);
                if (f == by_offset.end()) {
                    continue;
                }
                const size_t first = entries.size();
                for (const LineNumberEntry& n : block.LineNumbers) {
                    const LineInfo info(n.Flags);
                    const uint32_t line = info.getStartLine();
                    const uint64_t rva = base + uint32_t{n.Offset};
                    // Hidden lines (0xfeefee, 0xf00f00) are kept: they end the line before.
                    if (line == 0 || rva >= limit) {
                        continue;
                    }
                    entries.push_back({static_cast<uint32_t>(rva), static_cast<uint32_t>(limit),
                                       f->second, line});
                }
                // Each line's code runs to the next line's start (the block is in address
                // order; out-of-order entries keep the block's end).
                std::stable_sort(
                    entries.begin() + static_cast<long>(first), entries.end(),
                    [](const PdbLineEntry& a, const PdbLineEntry& b) { return a.rva < b.rva; });
                for (size_t k = first; k + 1 < entries.size(); ++k) {
                    entries[k].end = entries[k + 1].rva;
                }
            }
        }
    }
    return std::make_unique<PdbLines>(std::move(files), std::move(entries));
}

} // namespace kdcart::engine
