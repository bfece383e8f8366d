// libFuzzer entry point for the crash dump reader: the input is a whole dump file. It is put in
// an in-memory file (memfd) and opened by path, then every accessor the engine uses runs.
//
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//         -DKDCART_FUZZ=ON && cmake --build build-fuzz --target fuzz_dump_file
//   mkdir -p corpus && KDCART_DUMP_CORPUS=corpus build-fuzz/bin/test_dump_file -tc='mutation*'
//   build-fuzz/bin/fuzz_dump_file corpus
// (the second line writes small valid dumps of types 1, 5 and 6 as seeds.)
#include "engine/DumpFile.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

using namespace kdcart::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int fd = ::memfd_create("kdcart_fuzz_dump", MFD_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) {
            ::close(fd);
            return 0;
        }
        done += static_cast<size_t>(n);
    }
    auto dump = DumpFile::open("/proc/self/fd/" + std::to_string(fd));
    ::close(fd);
    if (!dump) {
        return 0;
    }
    const DumpFile& d = **dump;
    volatile uint64_t sink = 0;
    uint64_t counted = 0;
    for (const PageRange& r : d.present_ranges()) {
        counted += r.count;
        auto first = d.page(r.first_pfn);
        auto last = d.page(r.end_pfn() - 1);
        if (!first || !last) {
            __builtin_trap(); // present_ranges and page() disagree
        }
        sink = sink + (*first)[0] + (*last)[4095];
    }
    if (counted != d.present_pages()) {
        __builtin_trap();
    }
    for (uint64_t pfn = 0; pfn < 0x100; ++pfn) {
        if (auto off = d.page_offset(pfn); off && *off + 4096 > d.file_size()) {
            __builtin_trap();
        }
    }
    auto m = d.read_physical(0x1000 - 8, 0x2010);
    sink = sink + m.bytes.size();
    m = d.read_physical(UINT64_MAX - 16, 64);
    sink = sink + d.comment().size() + d.context().Rip + d.warnings().size();
    return 0;
}
