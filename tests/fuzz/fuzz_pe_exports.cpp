// libFuzzer target: PE headers and the export directory as kdcart reads them from target
// memory (engine/PeExports.cpp), and one address's export as the first stop line looks it up
// (engine/PeExportLookup.cpp). The input is the image; reads past its end come back short, as
// unreadable target memory does.
//
//   build-fuzz/bin/fuzz_pe_exports -max_total_time=60 WORKDIR tests/fuzz/corpus/pe_exports
#include "engine/PeExportLookup.h"
#include "engine/PeExports.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

using namespace kdcart::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto read = [&](uint32_t rva, uint32_t n) {
        std::vector<uint8_t> out;
        if (rva < size) {
            const size_t take = std::min<size_t>(n, size - rva);
            out.assign(data + rva, data + rva + take);
        }
        return out;
    };
    auto exports = read_pe_exports(0xfffff80000600000, read);
    if (exports) {
        for (const auto& e : *exports) {
            (void)e.name.size();
        }
    }
    // The export directory's entry where read_pe_exports finds it, and a few addresses.
    uint32_t lfanew = 0, dir_rva = 0, dir_size = 0;
    if (size >= 0x40) {
        std::memcpy(&lfanew, data + 0x3C, 4);
        if (lfanew < size && size - lfanew >= 24 + 0x78) {
            std::memcpy(&dir_rva, data + lfanew + 24 + 0x70, 4);
            std::memcpy(&dir_size, data + lfanew + 24 + 0x74, 4);
        }
    }
    for (uint32_t rva : {0u, 0x1000u, static_cast<uint32_t>(size / 2), dir_rva + 8, 0xFFFFFFFFu}) {
        auto hit = find_pe_export(0xfffff80000600000, {dir_rva, dir_size}, rva, read);
        if (hit && *hit) {
            (void)(*hit)->name.size();
        }
    }
    return 0;
}
