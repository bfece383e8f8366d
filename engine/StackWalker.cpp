#include "engine/StackWalker.h"

namespace kdcart::engine {

UnwindMemory StackWalker::unwind_memory() {
    UnwindMemory um;
    um.read = [this](uint64_t a, uint32_t size) -> std::vector<uint8_t> {
        auto blk = m_memory.read_virtual(a, size);
        if (!blk) {
            return {};
        }
        blk->bytes.resize(blk->readable_prefix());
        return blk->bytes;
    };
    return um;
}

std::optional<uint64_t> StackWalker::image_base_of(uint64_t address) const {
    const Module* m = m_modules.find_by_address(address);
    if (!m) {
        return std::nullopt;
    }
    return m->base;
}

Result<FrameUnwind> StackWalker::unwind_one(const CONTEXT& context) {
    return unwind_frame(context, image_base_of(context.Rip).value_or(0), unwind_memory());
}

std::vector<StackFrame> StackWalker::walk(const CONTEXT& context, size_t max_frames) {
    const UnwindMemory um = unwind_memory();
    std::vector<StackFrame> frames;
    CONTEXT c = context;
    while (frames.size() < max_frames) {
        auto base = image_base_of(c.Rip);
        auto f = unwind_frame(c, base.value_or(0), um);
        StackFrame frame;
        frame.child_sp = c.Rsp;
        frame.pc = c.Rip;
        frame.context = c;
        if (!f) {
            frames.push_back(frame);
            break;
        }
        frame.return_address = f->return_address;
        frame.caller_sp = f->caller_rsp;
        frame.machine_frame = f->machine_frame;
        frame.unwind_guessed = f->no_unwind_data;
        frames.push_back(frame);
        // The walk ends at a return address outside every module, or when the stack does not
        // move up (a broken frame). A machine frame's interrupted pc is shown whatever it is
        // (a system call's user-mode pc, as WinDbg shows it), its stack may be another one.
        const bool interrupted = f->machine_frame.has_value();
        if (f->return_address == 0 ||
            (!interrupted && (!image_base_of(f->return_address) || f->caller_rsp <= c.Rsp))) {
            break;
        }
        c = f->caller; // nonvolatile registers too: outer frame-pointer frames need them
        c.Rip = f->return_address;
        c.Rsp = f->caller_rsp;
    }
    return frames;
}

} // namespace kdcart::engine
