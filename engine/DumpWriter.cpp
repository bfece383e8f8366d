#include "engine/DumpWriter.h"
#include "engine/HexText.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kdcart::engine {

namespace {

constexpr const char* kSidecarMagic = "kdcart dump progress v1";
constexpr size_t kSidecarMaxSize = 4096;

struct Fnv {
    uint64_t h = 0xcbf29ce484222325ull;
    void bytes(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        for (size_t i = 0; i < n; ++i) {
            h ^= b[i];
            h *= 0x100000001b3ull;
        }
    }
    void u64(uint64_t v) { bytes(&v, sizeof v); }
};

uint32_t dump_type_of(DumpKind k) {
    switch (k) {
    case DumpKind::Full:
        return DUMP_TYPE_FULL;
    case DumpKind::BitmapFull:
        return DUMP_TYPE_BITMAP_FULL;
    case DumpKind::BitmapKernel:
        return DUMP_TYPE_BITMAP_KERNEL;
    }
    return 0;
}

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) {
        return ".";
    }
    return slash == 0 ? "/" : path.substr(0, slash);
}

// pread of exactly `size` bytes; false on error or end of file.
bool pread_all(int fd, void* data, size_t size, uint64_t offset) {
    auto* p = static_cast<uint8_t*>(data);
    while (size > 0) {
        ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        size -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
    return true;
}

struct Sidecar {
    uint64_t fingerprint = 0;
    uint64_t next_index = 0;
    uint64_t pages_stored = 0;
    uint64_t pages_unreadable = 0;
    uint64_t data_end = 0;
};

std::string sidecar_text(const Sidecar& s) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s\nfingerprint=%016llx\nnext_index=%llu\npages_stored=%llu\n"
                  "pages_unreadable=%llu\ndata_end=%llu\n",
                  kSidecarMagic, static_cast<unsigned long long>(s.fingerprint),
                  static_cast<unsigned long long>(s.next_index),
                  static_cast<unsigned long long>(s.pages_stored),
                  static_cast<unsigned long long>(s.pages_unreadable),
                  static_cast<unsigned long long>(s.data_end));
    std::string text = buf;
    Fnv f;
    f.bytes(text.data(), text.size());
    std::snprintf(buf, sizeof buf, "check=%016llx\n", static_cast<unsigned long long>(f.h));
    return text + buf;
}

std::optional<Sidecar> parse_sidecar(const std::string& text) {
    auto check_pos = text.rfind("check=");
    if (check_pos == std::string::npos) {
        return std::nullopt;
    }
    Fnv f;
    f.bytes(text.data(), check_pos);
    unsigned long long check = 0;
    if (std::sscanf(text.c_str() + check_pos, "check=%16llx\n", &check) != 1 || check != f.h) {
        return std::nullopt;
    }
    Sidecar s;
    unsigned long long fp = 0, next = 0, stored = 0, unreadable = 0, end = 0;
    std::string fmt = std::string(kSidecarMagic) +
                      "\nfingerprint=%16llx\nnext_index=%llu\npages_stored=%llu\n"
                      "pages_unreadable=%llu\ndata_end=%llu\n";
    if (std::sscanf(text.c_str(), fmt.c_str(), &fp, &next, &stored, &unreadable, &end) != 5) {
        return std::nullopt;
    }
    s.fingerprint = fp;
    s.next_index = next;
    s.pages_stored = stored;
    s.pages_unreadable = unreadable;
    s.data_end = end;
    // The text must be exactly what we would write.
    if (sidecar_text(s) != text) {
        return std::nullopt;
    }
    return s;
}

// The 0x2000-byte header image: the 'PAGE' fill, then the caller's named fields.
std::vector<uint8_t> header_image(const DUMP_HEADER64& h) {
    std::vector<uint8_t> img(kDumpHeaderSize);
    for (size_t i = 0; i < img.size(); i += 4) {
        std::memcpy(&img[i], &DUMP_SIGNATURE64, 4);
    }
    auto put = [&img](size_t off, const void* p, size_t n) { std::memcpy(&img[off], p, n); };
#define KDCART_PUT(field) put(offsetof(DUMP_HEADER64, field), &h.field, sizeof h.field)
    KDCART_PUT(Signature);
    KDCART_PUT(ValidDump);
    KDCART_PUT(MajorVersion);
    KDCART_PUT(MinorVersion);
    KDCART_PUT(DirectoryTableBase);
    KDCART_PUT(PfnDataBase);
    KDCART_PUT(PsLoadedModuleList);
    KDCART_PUT(PsActiveProcessHead);
    KDCART_PUT(MachineImageType);
    KDCART_PUT(NumberProcessors);
    KDCART_PUT(BugCheckCode);
    KDCART_PUT(BugCheckParameter1);
    KDCART_PUT(BugCheckParameter2);
    KDCART_PUT(BugCheckParameter3);
    KDCART_PUT(BugCheckParameter4);
    KDCART_PUT(VersionUser);
    KDCART_PUT(KdDebuggerDataBlock);
    KDCART_PUT(ContextRecord);
    KDCART_PUT(Exception);
    KDCART_PUT(DumpType);
    KDCART_PUT(RequiredDumpSpace);
    KDCART_PUT(SystemTime);
    KDCART_PUT(Comment);
    KDCART_PUT(SystemUpTime);
    KDCART_PUT(MiniDumpFields);
    KDCART_PUT(SecondaryDataState);
    KDCART_PUT(ProductType);
    KDCART_PUT(SuiteMask);
    KDCART_PUT(WriterStatus);
    KDCART_PUT(Unused1);
    KDCART_PUT(KdSecondaryVersion);
    KDCART_PUT(Unused2);
    KDCART_PUT(Attributes);
    KDCART_PUT(BootId);
#undef KDCART_PUT
    return img;
}

} // namespace

Error DumpWriter::io_error(const std::string& what, int err) const {
    return Error(Errc::Io, path_ + ": " + what + ": " + std::strerror(err));
}

Result<void> DumpWriter::pwrite_all(const void* data, size_t size, uint64_t offset) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
        ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return tl::unexpected(io_error("write", errno));
        }
        p += n;
        size -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
    return {};
}

Result<void> DumpWriter::sync(bool metadata) {
    int r = metadata ? ::fsync(fd_) : ::fdatasync(fd_);
    if (r != 0) {
        return tl::unexpected(io_error(metadata ? "fsync" : "fdatasync", errno));
    }
    return {};
}

DumpWriter::~DumpWriter() {
    if (fd_ >= 0) {
        if (!finished_ && !failed_) {
            (void)checkpoint(); // best effort: a clean stop resumes exactly here
        }
        ::close(fd_);
    }
}

Result<std::unique_ptr<DumpWriter>> DumpWriter::open(const std::string& path, DumpPlan plan,
                                                     bool overwrite, DumpWriterOptions options) {
    std::unique_ptr<DumpWriter> w(new DumpWriter());
    w->path_ = path;
    w->options_ = options;
    w->bitmap_ = plan.kind != DumpKind::Full;

    // ---- the plan: ascending, disjoint runs; touching runs merged ----
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    for (auto [base, count] : plan.runs) {
        if (count == 0) {
            continue;
        }
        if (base >= kDumpMaxPfn || count > kDumpMaxPfn - base) {
            return make_error(Errc::InvalidArgument,
                              "dump plan: run at PFN " + hex_0x(base) + " (" + hex_0x(count) +
                                  " pages) goes past the largest physical address");
        }
        if (!runs.empty()) {
            uint64_t prev_end = runs.back().first + runs.back().second;
            if (base < prev_end) {
                return make_error(Errc::InvalidArgument,
                                  "dump plan: runs must be ascending and disjoint (PFN " +
                                      hex_0x(base) + " follows " + hex_0x(prev_end - 1) + ")");
            }
            if (base == prev_end) {
                runs.back().second += count;
                continue;
            }
        }
        runs.emplace_back(base, count);
    }
    plan.runs = std::move(runs);
    if (plan.kind == DumpKind::Full && plan.runs.size() > kDumpMaxRuns) {
        return make_error(Errc::InvalidArgument,
                          "dump plan: " + std::to_string(plan.runs.size()) +
                              " discontiguous runs do not fit in a full dump's 43-entry run "
                              "list; use a bitmap dump");
    }
    const uint64_t last_end =
        plan.runs.empty() ? 0 : plan.runs.back().first + plan.runs.back().second;
    if (w->bitmap_) {
        if (plan.bitmap_bits == 0) {
            plan.bitmap_bits = last_end;
        }
        if (plan.bitmap_bits < last_end) {
            return make_error(Errc::InvalidArgument,
                              "dump plan: bitmap of " + hex_0x(plan.bitmap_bits) +
                                  " bits does not cover the runs (which end at PFN " +
                                  hex_0x(last_end) + ")");
        }
        if (plan.bitmap_bits > kDumpMaxPfn) {
            return make_error(Errc::InvalidArgument,
                              "dump plan: bitmap of " + hex_0x(plan.bitmap_bits) +
                                  " bits covers more than the physical address space");
        }
        uint64_t bitmap_bytes = (plan.bitmap_bits + 7) / 8;
        w->data_start_ =
            (kDumpBitmapOffset + bitmap_bytes + kDumpPageSize - 1) & ~(kDumpPageSize - 1);
        w->bits_.assign((plan.bitmap_bits + 63) / 64, 0);
    } else {
        plan.bitmap_bits = 0;
        w->data_start_ = kDumpHeaderSize;
    }
    for (auto& r : plan.runs) {
        w->total_pages_ += r.second;
    }

    Fnv f;
    f.u64(static_cast<uint64_t>(plan.kind));
    f.u64(plan.bitmap_bits);
    f.u64(plan.runs.size());
    for (auto& r : plan.runs) {
        f.u64(r.first);
        f.u64(r.second);
    }
    f.u64(plan.identity.size());
    f.bytes(plan.identity.data(), plan.identity.size());
    const DUMP_HEADER64& h = plan.header;
    for (uint64_t v : {h.DirectoryTableBase, h.KdDebuggerDataBlock, uint64_t{h.MajorVersion},
                       uint64_t{h.MinorVersion}, uint64_t{h.MachineImageType},
                       uint64_t{h.NumberProcessors}, h.PsLoadedModuleList, h.PfnDataBase}) {
        f.u64(v);
    }
    w->fingerprint_ = f.h;
    w->plan_ = std::move(plan);

    // ---- the file ----
    struct stat st {};
    bool exists = ::stat(path.c_str(), &st) == 0;
    bool incomplete_dump = false;
    if (exists) {
        if (!S_ISREG(st.st_mode)) {
            return make_error(Errc::InvalidArgument, path + ": not a regular file");
        }
        if (st.st_size > 0) {
            uint32_t sig[2] = {0, 0};
            int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (rfd >= 0) {
                if (pread_all(rfd, sig, sizeof sig, 0)) {
                    // What this writer leaves behind until finish(): ValidDump 0.
                    incomplete_dump = sig[0] == DUMP_SIGNATURE64 && sig[1] == 0;
                }
                ::close(rfd);
            }
            if (!incomplete_dump && !overwrite) {
                return make_error(Errc::InvalidArgument,
                                  path + " already exists (use /o to overwrite)");
            }
        }
    }
    int flags = O_RDWR | O_CLOEXEC | (exists ? 0 : O_CREAT | O_EXCL);
    w->fd_ = ::open(path.c_str(), flags, 0600);
    if (w->fd_ < 0) {
        return tl::unexpected(w->io_error("open", errno));
    }
    if (incomplete_dump) {
        std::string why_not;
        if (auto r = w->try_resume(why_not); !r) {
            w->failed_ = r.error(); // no checkpoint from the destructor
            return tl::unexpected(r.error());
        }
        if (w->resume_.resumed) {
            return w;
        }
        w->resume_.note = why_not;
    }
    if (auto r = w->start_over(); !r) {
        w->failed_ = r.error();
        return tl::unexpected(r.error());
    }
    return w;
}

Result<void> DumpWriter::write_header() {
    DUMP_HEADER64 h = plan_.header;
    h.Signature = DUMP_SIGNATURE64;
    h.ValidDump = 0; // 'DU64' only once finish() has made every page durable
    h.DumpType = dump_type_of(plan_.kind);
    h.RequiredDumpSpace = bitmap_ ? 0 : data_start_ + total_pages_ * kDumpPageSize;
    std::vector<uint8_t> img = header_image(h);
    if (!bitmap_) {
        PHYSICAL_MEMORY_DESCRIPTOR64 pmb{};
        std::memset(&pmb, 0, sizeof pmb);
        pmb.NumberOfRuns = static_cast<uint32_t>(plan_.runs.size());
        pmb.NumberOfPages = total_pages_;
        for (size_t i = 0; i < plan_.runs.size(); ++i) {
            pmb.Run[i] = {plan_.runs[i].first, plan_.runs[i].second};
        }
        // Unused run slots keep the fill, as in Windows' own dumps.
        size_t used = offsetof(PHYSICAL_MEMORY_DESCRIPTOR64, Run) +
                      plan_.runs.size() * sizeof(PHYSICAL_MEMORY_RUN64);
        std::memcpy(&img[offsetof(DUMP_HEADER64, PhysicalMemoryBlock)], &pmb, used);
    }
    if (auto r = pwrite_all(img.data(), img.size(), 0); !r) {
        return r;
    }
    if (bitmap_) {
        DUMP_BITMAP_HEADER64 bh{};
        std::memset(&bh, 0, sizeof bh);
        bh.Signature =
            plan_.kind == DumpKind::BitmapFull ? DUMP_FULL_SIGNATURE : DUMP_SUMMARY_SIGNATURE;
        bh.ValidDump = DUMP_SUMMARY_VALID;
        bh.HeaderSize = data_start_;
        bh.Pages = stored_;
        bh.BitmapSize = plan_.bitmap_bits;
        if (auto r = pwrite_all(&bh, sizeof bh, kDumpBitmapHeaderOffset); !r) {
            return r;
        }
    }
    return {};
}

Result<void> DumpWriter::write_bitmap_range(uint64_t first_word, uint64_t end_word) {
    end_word = std::min<uint64_t>(end_word, bits_.size());
    const uint64_t bitmap_bytes = (plan_.bitmap_bits + 7) / 8;
    if (first_word < end_word) {
        uint64_t off = first_word * 8;
        uint64_t len = std::min<uint64_t>(end_word * 8, bitmap_bytes) - off;
        if (auto r = pwrite_all(reinterpret_cast<const uint8_t*>(bits_.data()) + off, len,
                                kDumpBitmapOffset + off);
            !r) {
            return r;
        }
    }
    return pwrite_all(&stored_, sizeof stored_,
                      kDumpBitmapHeaderOffset + offsetof(DUMP_BITMAP_HEADER64, Pages));
}

Result<void> DumpWriter::write_sidecar() {
    Sidecar s{fingerprint_, next_index_, stored_, unreadable_, data_end_};
    std::string text = sidecar_text(s);
    std::string side = sidecar_path();
    std::string tmp = side + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return make_error(Errc::Io, tmp + ": open: " + std::strerror(errno));
    }
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            ::close(fd);
            return make_error(Errc::Io, tmp + ": write: " + std::strerror(e));
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        return make_error(Errc::Io, tmp + ": fsync: " + std::strerror(e));
    }
    ::close(fd);
    if (::rename(tmp.c_str(), side.c_str()) != 0) {
        return make_error(Errc::Io, side + ": rename: " + std::strerror(errno));
    }
    int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd); // the rename's durability; not fatal where directories cannot sync
        ::close(dfd);
    }
    return {};
}

void DumpWriter::seek_index(uint64_t index) {
    next_index_ = index;
    run_ = 0;
    run_offset_ = index;
    while (run_ < plan_.runs.size() && run_offset_ >= plan_.runs[run_].second) {
        run_offset_ -= plan_.runs[run_].second;
        ++run_;
    }
}

std::optional<uint64_t> DumpWriter::next_pfn() const {
    if (run_ >= plan_.runs.size()) {
        return std::nullopt;
    }
    return plan_.runs[run_].first + run_offset_;
}

DumpStats DumpWriter::stats() const {
    return {stored_, unreadable_, data_end_};
}

Result<void> DumpWriter::start_over() {
    if (::ftruncate(fd_, 0) != 0) {
        return tl::unexpected(io_error("truncate", errno));
    }
    if (::fchmod(fd_, 0600) != 0) {
        return tl::unexpected(io_error("chmod", errno));
    }
    seek_index(0);
    stored_ = 0;
    unreadable_ = 0;
    data_end_ = data_start_;
    std::fill(bits_.begin(), bits_.end(), 0);
    if (auto r = write_header(); !r) {
        return r;
    }
    if (::ftruncate(fd_, static_cast<off_t>(data_start_)) != 0) {
        return tl::unexpected(io_error("truncate", errno));
    }
    if (auto r = sync(true); !r) {
        return r;
    }
    if (auto r = write_sidecar(); !r) {
        return r;
    }
    last_checkpoint_ = std::chrono::steady_clock::now();
    resume_.resumed = false;
    resume_.next_index = 0;
    resume_.pages_stored = 0;
    resume_.pages_unreadable = 0;
    return {};
}

// Continues an interrupted capture when FILE.kdpart describes this plan and the file agrees.
// Only I/O errors while rewriting the file are errors; anything that does not match leaves
// resume_.resumed false with the reason in why_not.
Result<void> DumpWriter::try_resume(std::string& why_not) {
    std::string side = sidecar_path();
    int sfd = ::open(side.c_str(), O_RDONLY | O_CLOEXEC);
    if (sfd < 0) {
        why_not = "no progress file " + side;
        return {};
    }
    std::string text(kSidecarMaxSize, '\0');
    ssize_t n = ::read(sfd, text.data(), text.size());
    ::close(sfd);
    if (n <= 0 || static_cast<size_t>(n) >= kSidecarMaxSize) {
        why_not = "unreadable progress file " + side;
        return {};
    }
    text.resize(static_cast<size_t>(n));
    auto s = parse_sidecar(text);
    if (!s) {
        why_not = "corrupted progress file " + side;
        return {};
    }
    if (s->fingerprint != fingerprint_) {
        why_not = "the partial dump is of a different target or plan";
        return {};
    }
    if (s->next_index > total_pages_ || s->pages_stored + s->pages_unreadable != s->next_index ||
        s->data_end != data_start_ + (bitmap_ ? s->pages_stored : s->next_index) * kDumpPageSize) {
        why_not = "inconsistent progress file " + side;
        return {};
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        return tl::unexpected(io_error("stat", errno));
    }
    if (static_cast<uint64_t>(st.st_size) < s->data_end) {
        why_not = "the partial dump is shorter than its progress file says";
        return {};
    }
    DUMP_HEADER64 old{};
    if (!pread_all(fd_, &old, sizeof old, 0) || old.Signature != DUMP_SIGNATURE64 ||
        old.ValidDump == DUMP_VALID_DUMP64 || old.DumpType != dump_type_of(plan_.kind)) {
        why_not = "the partial dump's header does not match";
        return {};
    }
    seek_index(s->next_index);
    if (bitmap_) {
        DUMP_BITMAP_HEADER64 bh{};
        if (!pread_all(fd_, &bh, sizeof bh, kDumpBitmapHeaderOffset) ||
            bh.HeaderSize != data_start_ || bh.BitmapSize != plan_.bitmap_bits) {
            why_not = "the partial dump's bitmap header does not match";
            return {};
        }
        std::vector<uint64_t> disk(bits_.size(), 0);
        const uint64_t bitmap_bytes = (plan_.bitmap_bits + 7) / 8;
        if (!pread_all(fd_, disk.data(), bitmap_bytes, kDumpBitmapOffset)) {
            why_not = "the partial dump's bitmap is unreadable";
            return {};
        }
        // Take only the bits of pages before the resume point; later ones are rewritten.
        std::fill(bits_.begin(), bits_.end(), 0);
        uint64_t left = s->next_index;
        uint64_t count = 0;
        for (auto [base, len] : plan_.runs) {
            uint64_t take = std::min(len, left);
            for (uint64_t p = base; p < base + take; ++p) {
                uint64_t bit = (disk[p / 64] >> (p % 64)) & 1;
                bits_[p / 64] |= bit << (p % 64);
                count += bit;
            }
            left -= take;
            if (left == 0) {
                break;
            }
        }
        if (count != s->pages_stored) {
            why_not = "the partial dump's bitmap disagrees with its progress file";
            std::fill(bits_.begin(), bits_.end(), 0);
            seek_index(0);
            return {};
        }
    }
    stored_ = s->pages_stored;
    unreadable_ = s->pages_unreadable;
    data_end_ = s->data_end;
    // Pages written after the last checkpoint are written again.
    if (::ftruncate(fd_, static_cast<off_t>(data_end_)) != 0) {
        return tl::unexpected(io_error("truncate", errno));
    }
    if (::fchmod(fd_, 0600) != 0) {
        return tl::unexpected(io_error("chmod", errno));
    }
    if (auto r = write_header(); !r) {
        return r;
    }
    if (bitmap_) {
        if (auto r = write_bitmap_range(0, bits_.size()); !r) {
            return r;
        }
    }
    if (auto r = sync(true); !r) {
        return r;
    }
    last_checkpoint_ = std::chrono::steady_clock::now();
    resume_.resumed = true;
    resume_.next_index = next_index_;
    resume_.pages_stored = stored_;
    resume_.pages_unreadable = unreadable_;
    return {};
}

Result<void> DumpWriter::write_page(uint64_t pfn,
                                    std::optional<std::span<const uint8_t, 4096>> data) {
    if (failed_) {
        return tl::unexpected(*failed_);
    }
    if (finished_) {
        return make_error(Errc::InvalidArgument, path_ + ": the dump is already finished");
    }
    auto expected = next_pfn();
    if (!expected) {
        return make_error(Errc::InvalidArgument,
                          path_ + ": every page of the plan is already written");
    }
    if (pfn != *expected) {
        return make_error(Errc::InvalidArgument, path_ + ": page " + hex_0x(pfn) +
                                                     " written out of order (expected " +
                                                     hex_0x(*expected) + ")");
    }
    static const uint8_t kZeroPage[kDumpPageSize] = {};
    if (data || !bitmap_) {
        const uint8_t* bytes = data ? data->data() : kZeroPage;
        if (auto r = pwrite_all(bytes, kDumpPageSize, data_end_); !r) {
            failed_ = r.error();
            return r;
        }
        data_end_ += kDumpPageSize;
    }
    if (data) {
        ++stored_;
        if (bitmap_) {
            bits_[pfn / 64] |= uint64_t{1} << (pfn % 64);
            dirty_first_word_ = std::min(dirty_first_word_, pfn / 64);
            dirty_end_word_ = std::max(dirty_end_word_, pfn / 64 + 1);
        }
    } else {
        ++unreadable_;
    }
    ++next_index_;
    if (++run_offset_ == plan_.runs[run_].second) {
        ++run_;
        run_offset_ = 0;
    }
    if (++since_checkpoint_ >= options_.checkpoint_pages ||
        std::chrono::steady_clock::now() - last_checkpoint_ >= options_.checkpoint_interval) {
        return checkpoint();
    }
    return {};
}

Result<void> DumpWriter::checkpoint() {
    if (failed_) {
        return tl::unexpected(*failed_);
    }
    if (finished_) {
        return {};
    }
    auto fail = [this](Result<void> r) {
        failed_ = r.error();
        return r;
    };
    if (auto r = sync(false); !r) {
        return fail(r);
    }
    if (bitmap_) {
        // Bits are only ever set for pages already made durable above.
        uint64_t first = dirty_first_word_ == UINT64_MAX ? 0 : dirty_first_word_;
        if (auto r = write_bitmap_range(first, dirty_end_word_); !r) {
            return fail(r);
        }
        if (auto r = sync(false); !r) {
            return fail(r);
        }
        dirty_first_word_ = UINT64_MAX;
        dirty_end_word_ = 0;
    }
    if (auto r = write_sidecar(); !r) {
        return fail(r);
    }
    since_checkpoint_ = 0;
    last_checkpoint_ = std::chrono::steady_clock::now();
    return {};
}

Result<DumpStats> DumpWriter::finish(bool rest_unreadable) {
    if (failed_) {
        return tl::unexpected(*failed_);
    }
    if (finished_) {
        return stats();
    }
    auto fail = [this](Error e) {
        failed_ = e;
        return tl::unexpected(std::move(e));
    };
    if (next_index_ < total_pages_) {
        if (!rest_unreadable) {
            return make_error(Errc::InvalidArgument,
                              path_ + ": " + std::to_string(total_pages_ - next_index_) + " of " +
                                  std::to_string(total_pages_) + " pages are not written yet");
        }
        const uint64_t rest = total_pages_ - next_index_;
        unreadable_ += rest;
        if (!bitmap_) {
            data_end_ += rest * kDumpPageSize; // zeros, by extending the file below
        }
        seek_index(total_pages_);
    }
    if (bitmap_) {
        if (auto r = write_bitmap_range(0, bits_.size()); !r) {
            return fail(r.error());
        }
    }
    if (::ftruncate(fd_, static_cast<off_t>(data_end_)) != 0) {
        return fail(io_error("truncate", errno));
    }
    if (auto r =
            pwrite_all(&data_end_, sizeof data_end_, offsetof(DUMP_HEADER64, RequiredDumpSpace));
        !r) {
        return fail(r.error());
    }
    if (auto r = sync(false); !r) {
        return fail(r.error());
    }
    const uint32_t valid = DUMP_VALID_DUMP64;
    if (auto r = pwrite_all(&valid, sizeof valid, offsetof(DUMP_HEADER64, ValidDump)); !r) {
        return fail(r.error());
    }
    if (auto r = sync(true); !r) {
        return fail(r.error());
    }
    finished_ = true;
    if (::unlink(sidecar_path().c_str()) != 0 && errno != ENOENT) {
        return make_error(Errc::Io, sidecar_path() + ": unlink: " + std::strerror(errno));
    }
    return stats();
}

} // namespace kdcart::engine
