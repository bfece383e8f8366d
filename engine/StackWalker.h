#pragma once
// Walks a stack from a register context through the images' unwind data (k, gu).
#include "engine/Memory.h"
#include "engine/Modules.h"
#include "engine/Unwinder.h"

namespace kdcart::engine {

class StackWalker {
public:
    StackWalker(Memory& memory, Modules& modules) : m_memory(memory), m_modules(modules) {}

    // Frames from `context` outwards, at most max_frames. The module list must be known.
    [[nodiscard]] std::vector<StackFrame> walk(const CONTEXT& context, size_t max_frames);
    // The caller of the frame `context` is in (gu).
    [[nodiscard]] Result<FrameUnwind> unwind_one(const CONTEXT& context);

private:
    UnwindMemory unwind_memory();
    std::optional<uint64_t> image_base_of(uint64_t address) const;

    Memory& m_memory;
    Modules& m_modules;
};

} // namespace kdcart::engine
