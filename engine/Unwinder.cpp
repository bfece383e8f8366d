#include "engine/Unwinder.h"

#include <cstring>

namespace kdcart::engine {

namespace {

template <class T> std::optional<T> get(const std::vector<uint8_t>& b, size_t off) {
    if (off > b.size() || b.size() - off < sizeof(T)) {
        return std::nullopt;
    }
    T v;
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

std::optional<uint64_t> read_u64(const UnwindMemory& mem, uint64_t address) {
    return get<uint64_t>(mem.read(address, 8), 0);
}

// Integer registers in UNWIND_CODE order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
uint64_t& reg(protocol::CONTEXT& c, unsigned n) {
    uint64_t* regs[] = {&c.Rax, &c.Rcx, &c.Rdx, &c.Rbx, &c.Rsp, &c.Rbp, &c.Rsi, &c.Rdi,
                        &c.R8,  &c.R9,  &c.R10, &c.R11, &c.R12, &c.R13, &c.R14, &c.R15};
    return *regs[n & 15];
}

struct RuntimeFunction {
    uint32_t begin, end, unwind;
};

std::optional<RuntimeFunction> lookup(uint64_t base, uint32_t rva, const UnwindMemory& mem) {
    auto hdr = mem.read(base, 0x40);
    auto lfanew = get<uint32_t>(hdr, 0x3C);
    if (!lfanew || *lfanew > 0x10000) {
        return std::nullopt;
    }
    // Exception directory: DataDirectory[3], optional header offset 0x70 + 3*8.
    auto dir = mem.read(base + *lfanew + 24 + 0x70 + 3 * 8, 8);
    auto pdata = get<uint32_t>(dir, 0);
    auto size = get<uint32_t>(dir, 4);
    if (!pdata || !size || *pdata == 0 || *size < 12 || *size > 16 * 1024 * 1024) {
        return std::nullopt;
    }
    auto table = mem.read(base + *pdata, *size);
    const size_t n = table.size() / 12;
    size_t lo = 0, hi = n;
    while (lo < hi) { // binary search: entries are sorted by BeginAddress
        size_t mid = (lo + hi) / 2;
        RuntimeFunction f{*get<uint32_t>(table, mid * 12), *get<uint32_t>(table, mid * 12 + 4),
                          *get<uint32_t>(table, mid * 12 + 8)};
        if (rva < f.begin) {
            hi = mid;
        } else if (rva >= f.end) {
            lo = mid + 1;
        } else {
            return f;
        }
    }
    return std::nullopt;
}

constexpr uint8_t UWOP_PUSH_NONVOL = 0, UWOP_ALLOC_LARGE = 1, UWOP_ALLOC_SMALL = 2,
                  UWOP_SET_FPREG = 3, UWOP_SAVE_NONVOL = 4, UWOP_SAVE_NONVOL_FAR = 5,
                  UWOP_EPILOG = 6, UWOP_SAVE_XMM128 = 8, UWOP_SAVE_XMM128_FAR = 9,
                  UWOP_PUSH_MACHFRAME = 10;
constexpr uint8_t UNW_FLAG_CHAININFO = 0x4;

} // namespace

Result<FrameUnwind> unwind_frame(const protocol::CONTEXT& start, uint64_t image_base,
                                 const UnwindMemory& mem) {
    protocol::CONTEXT c = start;
    FrameUnwind out;
    // At a `ret` the frame is already gone.
    auto at_pc = mem.read(c.Rip, 1);
    std::optional<RuntimeFunction> fn;
    if (image_base != 0 && c.Rip >= image_base && c.Rip - image_base < 0x80000000ull) {
        fn = lookup(image_base, static_cast<uint32_t>(c.Rip - image_base), mem);
    }
    if (!fn || (!at_pc.empty() && at_pc[0] == 0xC3)) {
        auto ra = read_u64(mem, c.Rsp);
        if (!ra) {
            return make_error(Errc::Unreadable, "stack not readable");
        }
        out.return_address = *ra;
        out.caller_rsp = c.Rsp + 8;
        out.leaf = !fn;
        return out;
    }
    uint32_t offset_in_fn = static_cast<uint32_t>(c.Rip - image_base) - fn->begin;
    bool machframe = false;
    for (int chain = 0; chain < 32; ++chain) {
        auto info = mem.read(image_base + fn->unwind, 4);
        if (info.size() < 4) {
            return make_error(Errc::Unreadable, "unwind info not readable");
        }
        const uint8_t flags = info[0] >> 3;
        const uint8_t count = info[2];
        const uint8_t frame_reg = info[3] & 0x0F;
        const uint8_t frame_off = info[3] >> 4;
        auto codes = mem.read(image_base + fn->unwind + 4, count * 2u + 12u);
        if (codes.size() < count * 2u) {
            return make_error(Errc::Unreadable, "unwind codes not readable");
        }
        for (unsigned i = 0; i < count;) {
            const uint8_t code_offset = codes[i * 2];
            const uint8_t op = codes[i * 2 + 1] & 0x0F;
            const uint8_t op_info = codes[i * 2 + 1] >> 4;
            unsigned slots = 1;
            switch (op) {
            case UWOP_ALLOC_LARGE: slots = op_info == 0 ? 2 : 3; break;
            case UWOP_SAVE_NONVOL: slots = 2; break;
            case UWOP_SAVE_NONVOL_FAR: slots = 3; break;
            case UWOP_EPILOG: slots = 2; break;
            case UWOP_SAVE_XMM128: slots = 2; break;
            case UWOP_SAVE_XMM128_FAR: slots = 3; break;
            default: slots = 1; break;
            }
            // Only undo what the prolog has done so far (codes are in reverse order).
            const bool applies = chain > 0 || code_offset <= offset_in_fn;
            if (applies) {
                switch (op) {
                case UWOP_PUSH_NONVOL: {
                    auto v = read_u64(mem, c.Rsp);
                    if (!v) {
                        return make_error(Errc::Unreadable, "stack not readable");
                    }
                    reg(c, op_info) = *v;
                    c.Rsp += 8;
                    break;
                }
                case UWOP_ALLOC_LARGE: {
                    uint32_t size = 0;
                    if (op_info == 0) {
                        size = *get<uint16_t>(codes, (i + 1) * 2) * 8u;
                    } else if (codes.size() >= (i + 3) * 2) {
                        size = *get<uint32_t>(codes, (i + 1) * 2);
                    }
                    c.Rsp += size;
                    break;
                }
                case UWOP_ALLOC_SMALL:
                    c.Rsp += op_info * 8u + 8u;
                    break;
                case UWOP_SET_FPREG:
                    c.Rsp = reg(c, frame_reg) - frame_off * 16u;
                    break;
                case UWOP_SAVE_NONVOL:
                case UWOP_SAVE_NONVOL_FAR: {
                    uint64_t off = op == UWOP_SAVE_NONVOL
                                       ? *get<uint16_t>(codes, (i + 1) * 2) * 8ull
                                       : *get<uint32_t>(codes, (i + 1) * 2);
                    auto v = read_u64(mem, c.Rsp + off);
                    if (v) {
                        reg(c, op_info) = *v;
                    }
                    break;
                }
                case UWOP_PUSH_MACHFRAME: {
                    const uint64_t base = c.Rsp + (op_info ? 8 : 0);
                    auto rip = read_u64(mem, base);
                    auto rsp = read_u64(mem, base + 24);
                    if (!rip || !rsp) {
                        return make_error(Errc::Unreadable, "machine frame not readable");
                    }
                    c.Rip = *rip;
                    c.Rsp = *rsp;
                    machframe = true;
                    break;
                }
                default:
                    break;
                }
            }
            i += slots;
        }
        if ((flags & UNW_FLAG_CHAININFO) == 0) {
            break;
        }
        const size_t chained_at = ((count + 1u) & ~1u) * 2u;
        auto cf = get<uint32_t>(codes, chained_at);
        auto ce = get<uint32_t>(codes, chained_at + 4);
        auto cu = get<uint32_t>(codes, chained_at + 8);
        if (!cf || !ce || !cu) {
            return make_error(Errc::Malformed, "bad chained unwind info");
        }
        fn = RuntimeFunction{*cf, *ce, *cu};
    }
    if (machframe) {
        out.return_address = c.Rip;
        out.caller_rsp = c.Rsp;
        return out;
    }
    auto ra = read_u64(mem, c.Rsp);
    if (!ra) {
        return make_error(Errc::Unreadable, "stack not readable");
    }
    out.return_address = *ra;
    out.caller_rsp = c.Rsp + 8;
    return out;
}

} // namespace kdcart::engine
