#include "engine/Unwinder.h"
#include "engine/UnwindInfo.h"

#include <cstring>

namespace kdcart::engine {

namespace {

std::optional<uint64_t> read_u64(const UnwindMemory& mem, uint64_t address) {
    auto b = mem.read(address, 8);
    if (b.size() < 8) {
        return std::nullopt;
    }
    uint64_t v;
    std::memcpy(&v, b.data(), 8);
    return v;
}

// Integer registers in UNWIND_CODE order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
uint64_t& reg(protocol::CONTEXT& c, unsigned n) {
    uint64_t* regs[] = {&c.Rax, &c.Rcx, &c.Rdx, &c.Rbx, &c.Rsp, &c.Rbp, &c.Rsi, &c.Rdi,
                        &c.R8,  &c.R9,  &c.R10, &c.R11, &c.R12, &c.R13, &c.R14, &c.R15};
    return *regs[n & 15];
}

Result<FrameUnwind> from_stack_top(const protocol::CONTEXT& c, const UnwindMemory& mem) {
    auto ra = read_u64(mem, c.Rsp);
    if (!ra) {
        return make_error(Errc::Unreadable, "stack not readable");
    }
    FrameUnwind out;
    out.caller = c;
    out.return_address = *ra;
    out.caller_rsp = c.Rsp + 8;
    out.caller.Rip = *ra;
    out.caller.Rsp = c.Rsp + 8;
    return out;
}

int32_t s32(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The x64 epilogue forms: [add rsp,N | lea rsp,[frame+N]] pop* (ret | rep ret | jmp out).
// When the pc is at one, emulates it and returns the caller's frame.
std::optional<Result<FrameUnwind>> try_epilogue(const protocol::CONTEXT& start, uint64_t fn_begin,
                                                uint64_t fn_end, uint8_t frame_register,
                                                const UnwindMemory& mem) {
    auto code = mem.read(start.Rip, 64);
    const size_t n = code.size();
    if (n == 0) {
        return std::nullopt;
    }
    protocol::CONTEXT c = start;
    size_t i = 0;
    const uint8_t* b = code.data();
    // add rsp, imm8 / imm32
    if (n >= 4 && b[0] == 0x48 && b[1] == 0x83 && b[2] == 0xC4) {
        c.Rsp += static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(b[3])));
        i = 4;
    } else if (n >= 7 && b[0] == 0x48 && b[1] == 0x81 && b[2] == 0xC4) {
        c.Rsp += static_cast<uint64_t>(static_cast<int64_t>(s32(b + 3)));
        i = 7;
    } else if (n >= 4 && frame_register != 0 && (b[0] & 0xFE) == 0x48 && b[1] == 0x8D) {
        // lea rsp,[frame + disp8/disp32]
        const uint8_t modrm = b[2];
        const unsigned rm = (modrm & 7u) | ((b[0] & 1u) << 3);
        const unsigned mod = modrm >> 6;
        if (((modrm >> 3) & 7) != 4 || rm != frame_register || (modrm & 7) == 4 ||
            (mod != 1 && mod != 2)) {
            return std::nullopt;
        }
        const int64_t disp = mod == 1 ? static_cast<int8_t>(b[3]) : (n >= 7 ? s32(b + 3) : 0);
        if (mod == 2 && n < 7) {
            return std::nullopt;
        }
        c.Rsp = reg(c, rm) + static_cast<uint64_t>(disp);
        i = mod == 1 ? 4 : 7;
    }
    std::vector<unsigned> pops;
    while (i < n) {
        if (b[i] >= 0x58 && b[i] <= 0x5F) {
            pops.push_back(b[i] - 0x58u);
            i += 1;
        } else if (i + 1 < n && b[i] == 0x41 && b[i + 1] >= 0x58 && b[i + 1] <= 0x5F) {
            pops.push_back(b[i + 1] - 0x58u + 8);
            i += 2;
        } else {
            break;
        }
    }
    bool ends = false;
    if (i < n && (b[i] == 0xC3 || b[i] == 0xC2)) {
        ends = true;
    } else if (i + 1 < n && b[i] == 0xF3 && b[i + 1] == 0xC3) {
        ends = true;
    } else if (i + 5 <= n && b[i] == 0xE9 && (i > 0)) {
        // A tail jump out of the function ends an epilogue too.
        const uint64_t target = start.Rip + i + 5 + static_cast<uint64_t>(int64_t{s32(b + i + 1)});
        ends = target < fn_begin || target >= fn_end;
    } else if (i + 6 <= n && b[i] == 0xFF && b[i + 1] == 0x25 && i > 0) {
        ends = true; // jmp qword ptr [rip+x]: a tail call through an import
    }
    if (!ends) {
        return std::nullopt;
    }
    for (unsigned r : pops) {
        auto v = read_u64(mem, c.Rsp);
        if (!v) {
            return Result<FrameUnwind>(make_error(Errc::Unreadable, "stack not readable"));
        }
        reg(c, r) = *v;
        c.Rsp += 8;
    }
    auto out = from_stack_top(c, mem);
    if (out) {
        out->in_epilogue = true;
    }
    return out;
}

} // namespace

Result<FrameUnwind> unwind_frame(const protocol::CONTEXT& start, uint64_t image_base,
                                 const UnwindMemory& mem) {
    protocol::CONTEXT c = start;
    std::optional<RuntimeFunction> fn;
    bool no_directory = false;
    if (image_base != 0 && c.Rip >= image_base && c.Rip - image_base < 0x80000000ull) {
        if (!exception_directory(image_base, mem)) {
            no_directory = true;
        } else {
            fn = find_runtime_function(image_base, static_cast<uint32_t>(c.Rip - image_base), mem);
        }
    }
    if (!fn) {
        auto out = from_stack_top(c, mem);
        if (out) {
            out->leaf = true;
            out->no_unwind_data = no_directory;
        }
        return out;
    }
    auto first = read_unwind_info(image_base, fn->unwind, mem);
    if (!first) {
        return tl::unexpected(first.error());
    }
    // Inside an epilogue the prolog's work is being undone: emulate the rest of it.
    if (auto e = try_epilogue(c, image_base + fn->begin, image_base + fn->end,
                              first->frame_register, mem)) {
        return std::move(*e);
    }
    FrameUnwind out;
    uint32_t offset_in_fn = static_cast<uint32_t>(c.Rip - image_base) - fn->begin;
    std::optional<uint64_t> machframe;
    UnwindInfo info = std::move(*first);
    for (int chain = 0; chain < 32; ++chain) {
        // Frame-pointer based frames are located through the frame register once the prolog has
        // set it.
        for (const UnwindCode& code : info.codes) {
            // Only undo what the prolog has done so far (codes are in reverse order).
            if (chain == 0 && code.offset > offset_in_fn) {
                continue;
            }
            switch (code.op) {
            case k_uwop_push_nonvol: {
                auto v = read_u64(mem, c.Rsp);
                if (!v) {
                    return make_error(Errc::Unreadable, "stack not readable");
                }
                reg(c, code.info) = *v;
                c.Rsp += 8;
                break;
            }
            case k_uwop_alloc_large:
            case k_uwop_alloc_small:
                c.Rsp += code.value;
                break;
            case k_uwop_set_fpreg:
                c.Rsp = reg(c, info.frame_register) - info.frame_offset * 16u;
                break;
            case k_uwop_save_nonvol:
            case k_uwop_save_nonvol_far:
                if (auto v = read_u64(mem, c.Rsp + code.value)) {
                    reg(c, code.info) = *v;
                }
                break;
            case k_uwop_push_machframe: {
                const uint64_t base = c.Rsp + (code.info ? 8 : 0);
                auto rip = read_u64(mem, base);
                auto rsp = read_u64(mem, base + 24);
                if (!rip || !rsp) {
                    return make_error(Errc::Unreadable, "machine frame not readable");
                }
                c.Rip = *rip;
                c.Rsp = *rsp;
                machframe = base;
                break;
            }
            default:
                break;
            }
        }
        if (!info.chained) {
            break;
        }
        auto next = read_unwind_info(image_base, info.chained->unwind, mem);
        if (!next) {
            return tl::unexpected(next.error());
        }
        info = std::move(*next);
    }
    if (machframe) {
        out.caller = c;
        out.return_address = c.Rip;
        out.caller_rsp = c.Rsp;
        out.machine_frame = machframe;
        return out;
    }
    return from_stack_top(c, mem);
}

} // namespace kdcart::engine
