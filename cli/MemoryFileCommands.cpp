// .writemem (target memory to a file) and .readmem (a file into target memory).
#include "cli/MemoryCommandSupport.h"
#include "cli/Repl.h"

namespace kdcart::cli {

using namespace memcmd;
using engine::AddressSpace;
using engine::MemoryPiece;
// ---- .writemem / .readmem ----------------------------------------------------------------------

void Repl::cmd_writemem(std::string_view args) {
    std::string file;
    std::string_view rest;
    if (!split_file_arg(args, file, rest) || rest.empty()) {
        error("Usage: .writemem FILE RANGE");
        return;
    }
    auto cb = m_dbg->expression_callbacks();
    auto range = parse_range(rest, cb, 0, 1);
    if (!range) {
        error(range.error().message);
        return;
    }
    if (!range->count_given) {
        error("Range error in '.writemem " + std::string(args) +
              "' (give L count or an end "
              "address)");
        return;
    }
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error("Unable to create file '" + file + "': " + std::strerror(errno));
        return;
    }
    const uint64_t total = range->count;
    print("Writing " + hex(total) + " bytes");
    Progress progress(".writemem", total);
    uint64_t done = 0;
    uint64_t dots = 0;
    std::optional<uint64_t> unreadable;
    std::string write_error;
    auto sink = [&](const MemoryPiece& piece) {
        if (!piece.readable) {
            unreadable = piece.address;
            return false;
        }
        size_t off = 0;
        while (off < piece.bytes.size()) {
            const ssize_t n = ::write(fd, piece.bytes.data() + off, piece.bytes.size() - off);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                write_error = std::strerror(errno);
                return false;
            }
            off += static_cast<size_t>(n);
        }
        done += piece.size;
        // A dot per 64 KiB, as WinDbg marks progress on this line.
        std::string marks;
        while (dots < done / 0x10000) {
            marks += '.';
            ++dots;
        }
        if (!marks.empty()) {
            progress.hide();
            print(marks);
        }
        progress.update(done);
        return true;
    };
    auto r = engine::stream_memory(m_dbg->memory(), AddressSpace::Virtual, range->start, total,
                                   sink, cancellable());
    progress.hide();
    ::close(fd);
    print("\n");
    if (!r) {
        if (r.error().code == Errc::Interrupted) {
            error("Interrupted after 0x" + hex(done) + " bytes; " + file + " is incomplete");
        } else {
            error("Memory read failed: " + r.error().message);
        }
        return;
    }
    if (!write_error.empty()) {
        error("Unable to write '" + file + "': " + write_error);
        return;
    }
    if (unreadable) {
        error("Unable to read memory at " + format_address(*unreadable) + ", file is incomplete");
    }
}

void Repl::cmd_readmem(std::string_view args) {
    std::string file;
    std::string_view rest;
    if (!split_file_arg(args, file, rest) || rest.empty()) {
        error("Usage: .readmem FILE RANGE");
        return;
    }
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error("Unable to open file '" + file + "': " + std::strerror(errno));
        return;
    }
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    const off_t file_size = ::lseek(fd, 0, SEEK_END);
    ::lseek(fd, 0, SEEK_SET);
    auto cb = m_dbg->expression_callbacks();
    auto range = parse_range(rest, cb, 0, 1);
    if (!range) {
        error(range.error().message);
        return;
    }
    uint64_t total = file_size > 0 ? static_cast<uint64_t>(file_size) : 0;
    if (range->count_given) {
        total = std::min(total, range->count);
    }
    if (total == 0) {
        error("Nothing to read from '" + file + "'");
        return;
    }
    print("Reading " + hex(total) + " bytes");
    Progress progress(".readmem", total);
    std::vector<uint8_t> chunk;
    uint64_t dots = 0;
    std::string read_error;
    auto source = [&](uint64_t offset, uint32_t n) -> std::span<const uint8_t> {
        chunk.resize(n);
        size_t got = 0;
        while (got < n) {
            const ssize_t k =
                ::pread(fd, chunk.data() + got, n - got, static_cast<off_t>(offset + got));
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                read_error = k < 0 ? std::strerror(errno) : "file shorter than expected";
                return {};
            }
            got += static_cast<size_t>(k);
        }
        std::string marks;
        while (dots < offset / 0x10000) {
            marks += '.';
            ++dots;
        }
        if (!marks.empty()) {
            progress.hide();
            print(marks);
        }
        progress.update(offset);
        return std::span<const uint8_t>(chunk);
    };
    auto r = engine::stream_write(m_dbg->memory(), AddressSpace::Virtual, range->start, total,
                                  source, cancellable());
    progress.hide();
    print("\n");
    if (!r) {
        if (r.error().code == Errc::Interrupted) {
            error("Interrupted; memory is written only in part");
        } else {
            error("Memory write failed: " + r.error().message);
        }
        return;
    }
    if (!read_error.empty()) {
        error("Unable to read '" + file + "': " + read_error);
        return;
    }
    if (*r < total) {
        error("Memory access error at '" + format_address(range->start + *r) + "'");
    }
}

} // namespace kdcart::cli
