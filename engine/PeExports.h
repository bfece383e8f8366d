#pragma once
// Export-table symbols of a PE image read from target memory: the symbols every kernel
// image carries even without a PDB.
#include "transport/Error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kdcart::engine {

// Limits on what a (possibly hostile) export directory may claim: at most this many functions
// or names, each name at most kMaxExportName bytes.
inline constexpr uint32_t kMaxExports = 65536;
inline constexpr uint32_t kMaxExportName = 256;

struct ExportSymbol {
    std::string name;
    uint64_t address = 0;
};

// Reads `size` bytes at image RVA `rva`; returns fewer on failure. Reads of bytes read before
// should be cheap (a cache): the export directory is read whole first, then parsed piecewise.
using ImageReader = std::function<std::vector<uint8_t>(uint32_t rva, uint32_t size)>;

// Parses the export directory of a PE32+ image at `base`. Bounds-checked; a broken or hostile
// image gives an error, never a crash. Results sorted by address.
[[nodiscard]] Result<std::vector<ExportSymbol>> read_pe_exports(uint64_t base,
                                                                const ImageReader& read);

} // namespace kdcart::engine
