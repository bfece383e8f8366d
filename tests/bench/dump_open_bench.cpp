// Benchmark (not a test): opening a 64 GiB bitmap crash dump (DumpType 5, every one of the
// 16M pages present) and looking pages up. The page data is a hole (ftruncate), so the file
// costs ~2 MiB of disk. Prints the time of open(), page lookups per second over random PFNs
// and the peak RSS.
//
//   dump_open_bench [--dir DIR] [--gib 64] [--lookups 20000000]
#include "engine/DumpFile.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

using namespace kdcart;
using namespace kdcart::engine;
using Clock = std::chrono::steady_clock;

namespace {

long peak_rss_kib() {
    struct rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool write_all(int fd, const void* p, size_t n, uint64_t off) {
    const auto* b = static_cast<const uint8_t*>(p);
    while (n > 0) {
        ssize_t w = ::pwrite(fd, b, n, static_cast<off_t>(off));
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= static_cast<size_t>(w);
        off += static_cast<uint64_t>(w);
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    uint64_t gib = 64;
    uint64_t lookups = 20'000'000;
    CLI::App app{"Opening a big sparse bitmap dump: time and memory"};
    app.add_option("--dir", dir, "directory for the dump file");
    app.add_option("--gib", gib, "dump size in GiB")->check(CLI::Range(1, 65536));
    app.add_option("--lookups", lookups, "page look-ups to time");
    CLI11_PARSE(app, argc, argv);
    const uint64_t pages = gib << (30 - 12);
    const uint64_t bitmap_bytes = (pages + 7) / 8;
    const uint64_t header_size = (kDumpBitmapOffset + bitmap_bytes + 0xFFF) & ~uint64_t{0xFFF};
    const uint64_t file_size = header_size + pages * kDumpPageSize;
    std::string path = dir + "/kdcart_dump_open_bench.dmp";

    long rss_start = peak_rss_kib();
    {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            std::perror(path.c_str());
            return 1;
        }
        DUMP_HEADER64 h{};
        h.Signature = DUMP_SIGNATURE64;
        h.ValidDump = DUMP_VALID_DUMP64;
        h.MajorVersion = 0xF;
        h.MinorVersion = 19041;
        h.MachineImageType = protocol::IMAGE_FILE_MACHINE_AMD64;
        h.NumberProcessors = 8;
        h.DumpType = DUMP_TYPE_BITMAP_FULL;
        h.RequiredDumpSpace = file_size;
        DUMP_BITMAP_HEADER64 bh{};
        bh.Signature = DUMP_FULL_SIGNATURE;
        bh.ValidDump = DUMP_SUMMARY_VALID;
        bh.HeaderSize = header_size;
        bh.Pages = pages;
        bh.BitmapSize = pages;
        std::vector<uint8_t> bits(bitmap_bytes, 0xFF);
        bool ok = write_all(fd, &h, sizeof h, 0) &&
                  write_all(fd, &bh, sizeof bh, kDumpBitmapHeaderOffset) &&
                  write_all(fd, bits.data(), bits.size(), kDumpBitmapOffset) &&
                  ::ftruncate(fd, static_cast<off_t>(file_size)) == 0;
        ::close(fd);
        if (!ok) {
            std::perror("writing the dump");
            ::unlink(path.c_str());
            return 1;
        }
    }
    long rss_after_create = peak_rss_kib();
    std::printf("dump: %llu GiB bitmap dump, %llu pages, bitmap %llu KiB, file %llu bytes "
                "(sparse)\n",
                static_cast<unsigned long long>(gib), static_cast<unsigned long long>(pages),
                static_cast<unsigned long long>(bitmap_bytes / 1024),
                static_cast<unsigned long long>(file_size));

    // open(): the first one after creation and a few more.
    double best = 1e9, first = 0;
    std::unique_ptr<DumpFile> dump;
    for (int i = 0; i < 5; ++i) {
        dump.reset();
        auto t0 = Clock::now();
        auto d = DumpFile::open(path);
        double s = seconds_since(t0);
        if (!d) {
            std::fprintf(stderr, "open: %s\n", d.error().message.c_str());
            ::unlink(path.c_str());
            return 1;
        }
        if (i == 0) {
            first = s;
        }
        best = std::min(best, s);
        dump = std::move(*d);
    }
    long rss_after_open = peak_rss_kib();
    std::printf("open(): first %.2f ms, best of 5 %.2f ms; %llu pages present, %zu warnings\n",
                first * 1e3, best * 1e3, static_cast<unsigned long long>(dump->present_pages()),
                dump->warnings().size());

    // page lookups over random PFNs (the data itself is not touched)
    std::mt19937_64 rng(42);
    std::vector<uint64_t> pfns(1 << 20);
    for (auto& p : pfns) {
        p = rng() % pages;
    }
    uint64_t found = 0, sum = 0;
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < lookups; ++i) {
        auto p = dump->page_offset(pfns[i & (pfns.size() - 1)]);
        found += p.has_value();
        sum += p.value_or(0);
    }
    double s = seconds_since(t0);
    std::printf("page lookups: %llu in %.3f s = %.1f M/s (%.0f ns each), %llu found "
                "(checksum %llx)\n",
                static_cast<unsigned long long>(lookups), s, lookups / s / 1e6,
                s / static_cast<double>(lookups) * 1e9, static_cast<unsigned long long>(found),
                static_cast<unsigned long long>(sum));

    // read_physical of 4 KiB at random addresses (touches the sparse data: zero pages)
    const int reads = 20000;
    t0 = Clock::now();
    uint64_t valid = 0;
    for (int i = 0; i < reads; ++i) {
        MemoryBlock m = dump->read_physical((rng() % pages) << 12, 4096);
        valid += m.readable_prefix();
    }
    s = seconds_since(t0);
    std::printf("read_physical(4 KiB): %d in %.3f s = %.0f/s (%llu bytes valid)\n", reads, s,
                reads / s, static_cast<unsigned long long>(valid));

    dump.reset();
    ::unlink(path.c_str());
    std::printf("peak RSS: %ld KiB at start, %ld KiB after creating the file (its bitmap "
                "buffer), %ld KiB after open()s, %ld KiB at the end (read_physical maps page "
                "cache)\n",
                rss_start, rss_after_create, rss_after_open, peak_rss_kib());
    return 0;
}
