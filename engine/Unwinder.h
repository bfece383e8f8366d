#pragma once
// x64 virtual unwinding of one frame from the image's exception directory (RUNTIME_FUNCTION and
// UNWIND_INFO in target memory, chained entries followed). Gives the caller's return address,
// stack pointer and nonvolatile registers. A pc inside an epilogue is unwound by emulating the
// rest of the epilogue (as RtlVirtualUnwind does); a machine frame (UWOP_PUSH_MACHFRAME: an
// interrupt or exception handler) gives the interrupted rip and rsp and is reported as such.
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
    // The image has no exception directory at all: the return address was taken from [rsp] and
    // may be wrong (WinDbg's "Stack unwind information not available").
    bool no_unwind_data = false;
    bool in_epilogue = false; // the pc was inside an epilogue, emulated
    // A machine frame was popped: return_address / caller_rsp are the interrupted rip / rsp and
    // machine_frame the address of the saved rip.
    std::optional<uint64_t> machine_frame;
    protocol::CONTEXT caller{}; // the caller's registers as far as the unwind data restores them
};

// `image_base` is the base of the module that holds ctx.Rip (0 when unknown: treated as leaf).
[[nodiscard]] Result<FrameUnwind> unwind_frame(const protocol::CONTEXT& ctx, uint64_t image_base,
                                               const UnwindMemory& mem);

} // namespace kdcart::engine
