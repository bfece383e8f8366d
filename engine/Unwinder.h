#pragma once
// x64 virtual unwinding of one frame from the image's exception directory (RUNTIME_FUNCTION and
// UNWIND_INFO in target memory). Gives the caller's return address and stack pointer.
#include "protocol/dbgkd_structs.h"
#include "transport/Error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace kdcart::engine {

struct UnwindMemory {
    // Reads `size` bytes at a virtual address; fewer (or none) when unreadable.
    std::function<std::vector<uint8_t>(uint64_t address, uint32_t size)> read;
};

struct FrameUnwind {
    uint64_t return_address = 0;
    uint64_t caller_rsp = 0;
    bool leaf = false; // no unwind data: a leaf function, the return address is at [rsp]
};

// `image_base` is the base of the module that holds ctx.Rip (0 when unknown: treated as leaf).
[[nodiscard]] Result<FrameUnwind> unwind_frame(const protocol::CONTEXT& ctx, uint64_t image_base,
                                               const UnwindMemory& mem);

} // namespace kdcart::engine
