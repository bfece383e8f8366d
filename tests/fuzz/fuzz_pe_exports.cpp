// libFuzzer target: PE headers and the export directory as kdcart reads them from target
// memory (engine/PeExports.cpp). The input is the image; reads past its end come back short, as
// unreadable target memory does.
//
//   build-fuzz/bin/fuzz_pe_exports -max_total_time=60 WORKDIR tests/fuzz/corpus/pe_exports
#include "engine/PeExports.h"

#include <cstddef>
#include <cstdint>

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
    return 0;
}
