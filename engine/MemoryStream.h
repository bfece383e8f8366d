#pragma once
// Long memory reads that stream: a range is read in the largest requests the link carries and
// each piece goes to the caller as soon as its request completes, so a 16 MiB `db` neither waits
// for the whole range nor holds it (nor fills the page cache: these reads go to the target
// directly). The caller can stop between two requests (Ctrl+C).
#include "engine/Memory.h"

#include <functional>
#include <span>

namespace kdcart::engine {

enum class AddressSpace { Virtual, Physical };

// A piece of the range: `size` bytes at `address`, either all read (`bytes` holds them) or all
// unreadable (`bytes` is empty).
struct MemoryPiece {
    uint64_t address = 0;
    uint64_t size = 0;
    bool readable = false;
    std::span<const uint8_t> bytes;
};

struct StreamOptions {
    // Asked before every request; true stops the read with Errc::Interrupted.
    std::function<bool()> cancelled;
    // Bytes per request; 0 = the largest the link carries (Target::max_request()).
    uint32_t request_size = 0;
};

// Reads [address, address + size) and hands the pieces to `sink` in address order. A virtual
// read that stops short marks the rest of that page unreadable and goes on at the next page (as
// Memory::read_virtual does); `sink` returning false stops early (not an error). Returns the
// number of bytes delivered, readable or not.
[[nodiscard]] Result<uint64_t> stream_memory(Memory& memory, AddressSpace space, uint64_t address,
                                             uint64_t size,
                                             const std::function<bool(const MemoryPiece&)>& sink,
                                             const StreamOptions& options = {});

// Writes `data` repeated over [address, address + size) in link-sized requests (`f`, `.readmem`
// through `source`): `source(offset, n)` returns the n bytes for range offset `offset`. Returns
// the bytes written; a short write stops there (the count tells where).
[[nodiscard]] Result<uint64_t>
stream_write(Memory& memory, AddressSpace space, uint64_t address, uint64_t size,
             const std::function<std::span<const uint8_t>(uint64_t offset, uint32_t n)>& source,
             const StreamOptions& options = {});

} // namespace kdcart::engine
