#include "engine/DumpFile.h"
#include "engine/HexText.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kdcart::engine {

namespace {

std::string fourcc(uint32_t v) {
    std::string s;
    for (int i = 0; i < 4; ++i) {
        char c = static_cast<char>((v >> (8 * i)) & 0xFF);
        s += (c >= 0x20 && c < 0x7F) ? c : '.';
    }
    return hex_0x(v) + " '" + s + "'";
}

} // namespace

DumpFile::~DumpFile() {
    if (map_ != nullptr) {
        ::munmap(const_cast<uint8_t*>(map_), size_);
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

Result<std::unique_ptr<DumpFile>> DumpFile::open(const std::string& path) {
    std::unique_ptr<DumpFile> f(new DumpFile());
    f->path_ = path;
    f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f->fd_ < 0) {
        int e = errno;
        return make_error(e == ENOENT ? Errc::NotFound : Errc::Io, path + ": " + std::strerror(e));
    }
    struct stat st {};
    if (::fstat(f->fd_, &st) != 0) {
        return make_error(Errc::Io, path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return make_error(Errc::InvalidArgument, path + ": not a regular file");
    }
    f->size_ = static_cast<uint64_t>(st.st_size);
    if (f->size_ < kDumpHeaderSize) {
        return make_error(Errc::Malformed, path + ": the file is " + std::to_string(f->size_) +
                                               " bytes, smaller than the 0x2000-byte dump header");
    }
    void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, f->fd_, 0);
    if (m == MAP_FAILED) {
        return make_error(Errc::Io, path + ": mmap: " + std::strerror(errno));
    }
    f->map_ = static_cast<const uint8_t*>(m);
    ::madvise(m, f->size_, MADV_RANDOM);
    ::close(f->fd_); // the mapping keeps the file
    f->fd_ = -1;
    std::memcpy(&f->header_, f->map_, sizeof f->header_);
    if (auto r = f->validate(); !r) {
        r.error().message = path + ": " + r.error().message;
        return tl::unexpected(r.error());
    }
    return f;
}

Result<void> DumpFile::validate() {
    if (header_.Signature != DUMP_SIGNATURE64) {
        return make_error(Errc::Malformed, "not a Windows crash dump (signature " +
                                               fourcc(header_.Signature) + ", expected 'PAGE')");
    }
    if (header_.ValidDump == DUMP_VALID_DUMP32) {
        return make_error(Errc::Unsupported, "32-bit (PAGEDUMP) dumps are not supported");
    }
    if (header_.ValidDump != DUMP_VALID_DUMP64) {
        warnings_.push_back("the dump is incomplete (ValidDump is not DU64)");
    }
    switch (header_.DumpType) {
    case DUMP_TYPE_FULL:
        if (auto r = validate_runs(); !r) {
            return r;
        }
        break;
    case DUMP_TYPE_BITMAP_FULL:
    case DUMP_TYPE_BITMAP_KERNEL:
        if (auto r = validate_bitmap(); !r) {
            return r;
        }
        break;
    case DUMP_TYPE_SUMMARY:
    case DUMP_TYPE_HEADER:
    case DUMP_TYPE_TRIAGE:
    case DUMP_TYPE_KERNEL_RANGE:
    case DUMP_TYPE_KERNEL_USER_RANGE:
    case DUMP_TYPE_COMPLETE_RANGE:
        return make_error(Errc::Unsupported,
                          "DumpType " + std::to_string(header_.DumpType) + " (" +
                              std::string(engine::dump_type_name(header_.DumpType)) +
                              ") dumps are not supported yet");
    default:
        return make_error(Errc::Malformed, "unknown DumpType " + hex_0x(header_.DumpType));
    }
    if (header_.MachineImageType != protocol::IMAGE_FILE_MACHINE_AMD64) {
        warnings_.push_back("MachineImageType " + hex_0x(header_.MachineImageType) +
                            " is not x64 (0x8664)");
    }
    return {};
}

Result<void> DumpFile::validate_runs() {
    const auto& pmb = header_.PhysicalMemoryBlock;
    if (pmb.NumberOfRuns == DUMP_SIGNATURE64) {
        return make_error(Errc::Malformed,
                          "the run list of the full dump holds the 'PAGE' fill (NumberOfRuns " +
                              hex_0x(pmb.NumberOfRuns) + ")");
    }
    if (pmb.NumberOfRuns > kDumpMaxRuns) {
        return make_error(Errc::Malformed, "NumberOfRuns " + std::to_string(pmb.NumberOfRuns) +
                                               " exceeds the 43 runs the header can hold");
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < pmb.NumberOfRuns; ++i) {
        const PHYSICAL_MEMORY_RUN64 run = pmb.Run[i];
        if (run.BasePage >= kDumpMaxPfn || run.PageCount > kDumpMaxPfn - run.BasePage) {
            return make_error(Errc::Malformed, "run " + std::to_string(i) + " (BasePage " +
                                                   hex_0x(run.BasePage) + ", PageCount " +
                                                   hex_0x(run.PageCount) +
                                                   ") goes past the largest physical address");
        }
        if (run.PageCount == 0) {
            continue;
        }
        runs_.push_back({run.BasePage, run.PageCount, sum});
        sum += run.PageCount; // at most 43 * 2^40: no overflow
    }
    if (sum != pmb.NumberOfPages) {
        return make_error(Errc::Malformed, "NumberOfPages " + hex_0x(pmb.NumberOfPages) +
                                               " is not the sum of the runs' pages (" +
                                               hex_0x(sum) + ")");
    }
    std::sort(runs_.begin(), runs_.end(),
              [](const Run& a, const Run& b) { return a.base < b.base; });
    for (size_t i = 1; i < runs_.size(); ++i) {
        const Run& a = runs_[i - 1];
        const Run& b = runs_[i];
        if (b.base < a.base + a.count) {
            return make_error(Errc::Malformed, "runs overlap: PFN " + hex_0x(a.base) + "-" +
                                                   hex_0x(a.base + a.count - 1) + " and " +
                                                   hex_0x(b.base) + "-" +
                                                   hex_0x(b.base + b.count - 1));
        }
    }
    data_start_ = kDumpHeaderSize;
    stored_pages_ = sum;
    return check_data_end(data_start_, sum);
}

Result<void> DumpFile::validate_bitmap() {
    bitmap_ = true;
    if (size_ < kDumpBitmapOffset) {
        return make_error(Errc::Malformed, "the file ends inside the bitmap summary header");
    }
    std::memcpy(&bitmap_header_, map_ + kDumpBitmapHeaderOffset, sizeof bitmap_header_);
    const auto& bh = bitmap_header_;
    if (bh.Signature != DUMP_SUMMARY_SIGNATURE && bh.Signature != DUMP_FULL_SIGNATURE) {
        return make_error(Errc::Malformed, "bad bitmap summary signature " + fourcc(bh.Signature) +
                                               " (expected 'SDMP' or 'FDMP')");
    }
    if (bh.ValidDump != DUMP_SUMMARY_VALID) {
        return make_error(Errc::Malformed, "bad bitmap summary ValidDump " + fourcc(bh.ValidDump) +
                                               " (expected 'DUMP')");
    }
    if (bh.BitmapSize > kDumpMaxPfn) {
        return make_error(Errc::Malformed, "BitmapSize " + hex_0x(bh.BitmapSize) +
                                               " covers more than the physical address space");
    }
    bitmap_bits_ = bh.BitmapSize;
    const uint64_t bitmap_bytes = (bitmap_bits_ + 7) / 8;
    const uint64_t bitmap_end = kDumpBitmapOffset + bitmap_bytes;
    if (bitmap_end > size_) {
        return make_error(Errc::Malformed, "the bitmap (" + hex_0x(bitmap_bytes) +
                                               " bytes at 0x2038) runs past the end of the file (" +
                                               hex_0x(size_) + " bytes)");
    }
    if (bh.HeaderSize % kDumpPageSize != 0) {
        return make_error(Errc::Malformed,
                          "HeaderSize " + hex_0x(bh.HeaderSize) + " is not page-aligned");
    }
    if (bh.HeaderSize < bitmap_end) {
        return make_error(Errc::Malformed, "HeaderSize " + hex_0x(bh.HeaderSize) +
                                               " points inside the headers or the bitmap (which "
                                               "end at " +
                                               hex_0x(bitmap_end) + ")");
    }
    if (bh.HeaderSize > size_) {
        return make_error(Errc::Malformed, "HeaderSize " + hex_0x(bh.HeaderSize) +
                                               " is beyond the end of the file (" + hex_0x(size_) +
                                               " bytes)");
    }
    // Copy the bits (the tail past BitmapSize cleared) next to their rank counts.
    const uint8_t* bits = map_ + kDumpBitmapOffset;
    const uint64_t words = (bitmap_bits_ + 63) / 64;
    const uint64_t blocks = (words + kWordsPerBlock - 1) / kWordsPerBlock;
    blocks_.assign(blocks * kBlockStride, 0);
    uint64_t total = 0;
    for (uint64_t b = 0; b < blocks; ++b) {
        uint64_t* block = &blocks_[b * kBlockStride];
        block[0] = total;
        for (uint64_t k = 0; k < kWordsPerBlock; ++k) {
            const uint64_t wi = b * kWordsPerBlock + k;
            const uint64_t off = wi * 8;
            uint64_t w = 0;
            if (off + 8 <= bitmap_bytes) {
                std::memcpy(&w, bits + off, 8);
            } else if (off < bitmap_bytes) {
                std::memcpy(&w, bits + off, bitmap_bytes - off);
            }
            if ((wi + 1) * 64 > bitmap_bits_) {
                const uint64_t keep = wi * 64 < bitmap_bits_ ? bitmap_bits_ - wi * 64 : 0;
                w &= keep == 0 ? 0 : ~uint64_t{0} >> (64 - keep);
            }
            block[1 + k] = w;
            total += static_cast<uint64_t>(std::popcount(w));
        }
    }
    if (total != bh.Pages) {
        std::string msg = "Pages (" + std::to_string(bh.Pages) + ") disagrees with the bitmap's " +
                          std::to_string(total) + " set bits";
        if (complete()) {
            return make_error(Errc::Malformed, msg);
        }
        warnings_.push_back(msg + "; using the bitmap");
    }
    data_start_ = bh.HeaderSize;
    stored_pages_ = total;
    return check_data_end(data_start_, total);
}

Result<void> DumpFile::check_data_end(uint64_t data_start, uint64_t pages) {
    // data_start <= size_ and pages < 2^46 here, so nothing below overflows.
    const uint64_t available = (size_ - data_start) / kDumpPageSize;
    if (pages <= available) {
        present_pages_ = pages;
        missing_pages_ = 0;
        return {};
    }
    const uint64_t expected_end = data_start + pages * kDumpPageSize;
    if (complete() && header_.RequiredDumpSpace != expected_end) {
        return make_error(Errc::Malformed, "the page data would end at " + hex_0x(expected_end) +
                                               ", past the end of the file (" + hex_0x(size_) +
                                               " bytes), and RequiredDumpSpace (" +
                                               hex_0x(header_.RequiredDumpSpace) + ") disagrees");
    }
    present_pages_ = available;
    missing_pages_ = pages - available;
    warnings_.push_back("the file is truncated: it holds " + std::to_string(available) + " of " +
                        std::to_string(pages) + " pages (" + hex_0x(size_) + " of " +
                        hex_0x(expected_end) + " bytes); the other pages read as unreadable");
    return {};
}

std::string DumpFile::comment() const {
    const char* c = header_.Comment;
    size_t n = 0;
    while (n < DUMP_COMMENT_SIZE && c[n] != '\0') {
        ++n;
    }
    if (n == DUMP_COMMENT_SIZE) {
        bool fill = true;
        for (size_t i = 0; i < n && fill; ++i) {
            fill = c[i] == "PAGE"[i % 4];
        }
        if (fill) {
            return {};
        }
    }
    std::string s(c, n);
    for (char& ch : s) {
        if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7F) {
            ch = '?';
        }
    }
    return s;
}

bool DumpFile::bit(uint64_t pfn) const {
    return (word(pfn / 64) >> (pfn % 64)) & 1;
}

uint64_t DumpFile::rank(uint64_t pfn) const {
    const uint64_t* block = &blocks_[pfn / 512 * kBlockStride];
    uint64_t r = block[0];
    const uint64_t k = pfn / 64 % kWordsPerBlock;
    for (uint64_t i = 0; i < k; ++i) {
        r += static_cast<uint64_t>(std::popcount(block[1 + i]));
    }
    if (pfn % 64 != 0) {
        r += static_cast<uint64_t>(std::popcount(block[1 + k] & (~uint64_t{0} >> (64 - pfn % 64))));
    }
    return r;
}

std::optional<uint64_t> DumpFile::page_offset(uint64_t pfn) const {
    uint64_t index = 0;
    if (bitmap_) {
        if (pfn >= bitmap_bits_ || !bit(pfn)) {
            return std::nullopt;
        }
        index = rank(pfn);
    } else {
        auto it = std::upper_bound(runs_.begin(), runs_.end(), pfn,
                                   [](uint64_t p, const Run& r) { return p < r.base; });
        if (it == runs_.begin()) {
            return std::nullopt;
        }
        --it;
        if (pfn - it->base >= it->count) {
            return std::nullopt;
        }
        index = it->first_index + (pfn - it->base);
    }
    if (index >= present_pages_) {
        return std::nullopt;
    }
    return data_start_ + index * kDumpPageSize;
}

std::optional<std::span<const uint8_t>> DumpFile::page(uint64_t pfn) const {
    auto off = page_offset(pfn);
    if (!off) {
        return std::nullopt;
    }
    return std::span<const uint8_t>(map_ + *off, kDumpPageSize);
}

MemoryBlock DumpFile::read_physical(uint64_t pa, size_t size) const {
    MemoryBlock m;
    m.address = pa;
    m.bytes.assign(size, 0);
    m.valid.assign(size, false);
    size_t done = 0;
    while (done < size) {
        if (done > UINT64_MAX - pa) {
            break; // past the top of the address space
        }
        const uint64_t a = pa + done;
        const uint64_t in_page = a & (kDumpPageSize - 1);
        const size_t n =
            static_cast<size_t>(std::min<uint64_t>(size - done, kDumpPageSize - in_page));
        if (auto p = page(a >> kDumpPageShift)) {
            std::memcpy(m.bytes.data() + done, p->data() + in_page, n);
            std::fill(m.valid.begin() + static_cast<ptrdiff_t>(done),
                      m.valid.begin() + static_cast<ptrdiff_t>(done + n), true);
        }
        done += n;
    }
    return m;
}

std::vector<PageRange> DumpFile::present_ranges() const {
    std::vector<PageRange> out;
    auto add = [&out](uint64_t first, uint64_t count) {
        if (count == 0) {
            return;
        }
        if (!out.empty() && out.back().end_pfn() == first) {
            out.back().count += count;
        } else {
            out.push_back({first, count});
        }
    };
    if (!bitmap_) {
        for (const Run& r : runs_) {
            if (r.first_index < present_pages_) {
                add(r.base, std::min(r.count, present_pages_ - r.first_index));
            }
        }
        return out;
    }
    uint64_t left = present_pages_; // the first present_pages_ set bits are in the file
    const uint64_t words = (bitmap_bits_ + 63) / 64;
    for (uint64_t wi = 0; wi < words && left > 0; ++wi) {
        uint64_t w = word(wi);
        while (w != 0 && left > 0) {
            const unsigned start = static_cast<unsigned>(std::countr_zero(w));
            const unsigned ones = static_cast<unsigned>(std::countr_one(w >> start));
            const uint64_t take = std::min<uint64_t>(ones, left);
            add(wi * 64 + start, take);
            left -= take;
            if (start + ones >= 64) {
                break;
            }
            w &= ~uint64_t{0} << (start + ones);
        }
    }
    return out;
}

} // namespace kdcart::engine
