#include "engine/MemoryStream.h"

#include <algorithm>
#include <cstdio>

namespace kdcart::engine {

namespace {
constexpr uint64_t kPage = 4096;
// ReadResult::status when the link (not the target) failed part-way through a read
// (STATUS_IO_TIMEOUT, the read verifier's kLinkFailedStatus): the rest is not known to be
// unreadable, so the stream ends there with an error instead of skipping a page.
constexpr uint32_t kLinkFailedStatus = 0xC00000B5;
} // namespace

Result<uint64_t> stream_memory(Memory& memory, AddressSpace space, uint64_t address, uint64_t size,
                               const std::function<bool(const MemoryPiece&)>& sink,
                               const StreamOptions& options) {
    if (!memory.accessible()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (size != 0 && address + (size - 1) < address) {
        return make_error(Errc::InvalidArgument, "range wraps around the address space");
    }
    Target& target = memory.target();
    uint32_t request = options.request_size ? options.request_size : target.max_request();
    if (request == 0) {
        request = static_cast<uint32_t>(kPage);
    }
    uint64_t done = 0;
    while (done < size) {
        if (options.cancelled && options.cancelled()) {
            return make_error(Errc::Interrupted, "interrupted");
        }
        const uint64_t cur = address + done;
        const auto want = static_cast<uint32_t>(std::min<uint64_t>(request, size - done));
        auto r = space == AddressSpace::Virtual ? target.read_virtual(cur, want)
                                                : target.read_physical(cur, want);
        if (!r) {
            return tl::unexpected(r.error());
        }
        const uint64_t got = std::min<uint64_t>(r->bytes.size(), want);
        if (got > 0) {
            MemoryPiece piece{cur, got, true,
                              std::span<const uint8_t>(r->bytes.data(), static_cast<size_t>(got))};
            done += got;
            if (!sink(piece)) {
                return done;
            }
        }
        if (got < want && r->status == kLinkFailedStatus) {
            char at[32];
            std::snprintf(at, sizeof at, "%#llx", static_cast<unsigned long long>(cur + got));
            return make_error(Errc::Timeout,
                              std::string("the link failed during the read (at ") + at + ")");
        }
        if (got < want) {
            // The byte at `bad` failed: the rest of its page is not readable; the next page may be.
            const uint64_t bad = cur + got;
            const uint64_t to_page_end = kPage - (bad & (kPage - 1));
            const uint64_t n = std::min<uint64_t>(to_page_end, size - done);
            MemoryPiece hole{bad, n, false, {}};
            done += n;
            if (!sink(hole)) {
                return done;
            }
        }
    }
    return done;
}

Result<uint64_t>
stream_write(Memory& memory, AddressSpace space, uint64_t address, uint64_t size,
             const std::function<std::span<const uint8_t>(uint64_t offset, uint32_t n)>& source,
             const StreamOptions& options) {
    if (!memory.accessible()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (size != 0 && address + (size - 1) < address) {
        return make_error(Errc::InvalidArgument, "range wraps around the address space");
    }
    uint32_t request = options.request_size ? options.request_size : memory.target().max_request();
    if (request == 0) {
        request = static_cast<uint32_t>(kPage);
    }
    uint64_t done = 0;
    while (done < size) {
        if (options.cancelled && options.cancelled()) {
            return make_error(Errc::Interrupted, "interrupted");
        }
        const auto n = static_cast<uint32_t>(std::min<uint64_t>(request, size - done));
        const auto data = source(done, n);
        if (data.empty()) {
            break;
        }
        auto w = space == AddressSpace::Virtual ? memory.write_virtual(address + done, data)
                                                : memory.write_physical(address + done, data);
        if (!w) {
            return tl::unexpected(w.error());
        }
        done += *w;
        if (*w < data.size()) {
            break;
        }
    }
    return done;
}

} // namespace kdcart::engine
