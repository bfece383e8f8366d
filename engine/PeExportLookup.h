#pragma once
// One address's export name without reading the whole export table: the export directory, the
// address table (to find the nearest exported RVA at or below the address), the ordinal table
// (to find which names point at it) and those names only. On a serial cable this is what the
// first stop line needs: on a real ntoskrnl (some 3,000 exports) the address and ordinal tables
// are ~18 KB where the whole directory with its name strings is several times that.
// Gives the same answer as read_pe_exports + SymbolIndex::lookup: forwarders, null entries and
// unnamed ordinals are skipped, and of several names at one address the smallest wins.
#include "engine/PeExports.h"

namespace kdcart::engine {

struct ExportDirectorySpan {
    uint32_t rva = 0;
    uint32_t size = 0;
};

// The named export at the highest RVA <= `rva` (nullopt when no named export lies below it).
// An error when the directory or its tables are malformed or unreadable: the caller falls back
// to read_pe_exports, which says why.
[[nodiscard]] Result<std::optional<ExportSymbol>>
find_pe_export(uint64_t base, ExportDirectorySpan dir, uint32_t rva, const ImageReader& read);

} // namespace kdcart::engine
