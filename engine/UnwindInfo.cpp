#include "engine/UnwindInfo.h"

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

constexpr uint32_t kMaxTable = 16 * 1024 * 1024;

} // namespace

std::optional<std::pair<uint32_t, uint32_t>> exception_directory(uint64_t base,
                                                                 const UnwindMemory& mem) {
    if (!mem.read) {
        return std::nullopt;
    }
    // Only e_lfanew and the directory entry are trusted (as the loader does for an image it
    // mapped); both bounded.
    auto hdr = mem.read(base, 0x40);
    auto lfanew = get<uint32_t>(hdr, 0x3C);
    if (!lfanew || *lfanew > 0x10000) {
        return std::nullopt;
    }
    auto nt = mem.read(base + *lfanew, 24 + 0x70 + 16 * 8);
    auto rva = get<uint32_t>(nt, 24 + 0x70 + 3 * 8);
    auto size = get<uint32_t>(nt, 24 + 0x70 + 3 * 8 + 4);
    if (!rva || !size || *rva == 0 || *size < 12 || *size > kMaxTable) {
        return std::nullopt;
    }
    return std::make_pair(*rva, *size);
}

std::optional<RuntimeFunction> find_runtime_function(uint64_t base, uint32_t rva,
                                                     const UnwindMemory& mem) {
    auto dir = exception_directory(base, mem);
    if (!dir) {
        return std::nullopt;
    }
    // Binary search, reading one entry at a time: the table can be large and the link slow.
    size_t lo = 0, hi = dir->second / 12;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const uint64_t at = base + dir->first + mid * 12;
        auto e = mem.read(at, 12);
        auto b = get<uint32_t>(e, 0), en = get<uint32_t>(e, 4), u = get<uint32_t>(e, 8);
        if (!b || !en || !u) {
            return std::nullopt;
        }
        if (rva < *b) {
            hi = mid;
        } else if (rva >= *en) {
            lo = mid + 1;
        } else {
            return RuntimeFunction{*b, *en, *u, at};
        }
    }
    return std::nullopt;
}

Result<UnwindInfo> read_unwind_info(uint64_t base, uint32_t rva, const UnwindMemory& mem) {
    UnwindInfo ui;
    ui.address = base + rva;
    auto head = mem.read(ui.address, 4);
    if (head.size() < 4) {
        return make_error(Errc::Unreadable, "unwind info not readable");
    }
    ui.version = head[0] & 7;
    ui.flags = head[0] >> 3;
    ui.prolog_size = head[1];
    ui.count = head[2];
    ui.frame_register = head[3] & 0x0F;
    ui.frame_offset = head[3] >> 4;
    if (ui.version != 1 && ui.version != 2) {
        return make_error(Errc::Malformed, "unwind info version " + std::to_string(ui.version));
    }
    const size_t codes_bytes = ui.count * 2u;
    const size_t padded = ((ui.count + 1u) & ~1u) * 2u;
    auto body = mem.read(ui.address + 4, static_cast<uint32_t>(padded + 12));
    if (body.size() < codes_bytes) {
        return make_error(Errc::Unreadable, "unwind codes not readable");
    }
    ui.size = static_cast<uint32_t>(4 + codes_bytes);
    for (unsigned i = 0; i < ui.count;) {
        UnwindCode c;
        c.offset = body[i * 2];
        c.op = body[i * 2 + 1] & 0x0F;
        c.info = body[i * 2 + 1] >> 4;
        switch (c.op) {
        case k_uwop_alloc_large:
            c.slots = c.info == 0 ? 2 : 3;
            break;
        case k_uwop_save_nonvol:
        case k_uwop_save_xmm128:
        case k_uwop_epilog:
            c.slots = 2;
            break;
        case k_uwop_save_nonvol_far:
        case k_uwop_save_xmm128_far:
        case k_uwop_spare:
            c.slots = 3;
            break;
        default:
            c.slots = 1;
            break;
        }
        if (i + c.slots > ui.count) {
            return make_error(Errc::Malformed, "unwind code runs past the record");
        }
        if (c.slots == 2) {
            uint32_t v = *get<uint16_t>(body, (i + 1) * 2);
            if (c.op == k_uwop_alloc_large || c.op == k_uwop_save_nonvol) {
                v *= 8;
            } else if (c.op == k_uwop_save_xmm128) {
                v *= 16;
            }
            c.value = v;
        } else if (c.slots == 3) {
            c.value = *get<uint32_t>(body, (i + 1) * 2);
        } else if (c.op == k_uwop_alloc_small) {
            c.value = c.info * 8u + 8u;
        }
        ui.codes.push_back(c);
        i += c.slots;
    }
    if (ui.flags & k_unw_flag_chaininfo) {
        auto b = get<uint32_t>(body, padded), e = get<uint32_t>(body, padded + 4),
             u = get<uint32_t>(body, padded + 8);
        if (!b || !e || !u) {
            return make_error(Errc::Malformed, "bad chained unwind info");
        }
        ui.chained = RuntimeFunction{*b, *e, *u, 0};
        ui.size = static_cast<uint32_t>(4 + padded + 12);
    } else if (ui.flags & (k_unw_flag_ehandler | k_unw_flag_uhandler)) {
        if (auto h = get<uint32_t>(body, padded)) {
            ui.handler = *h;
        }
        ui.size = static_cast<uint32_t>(4 + padded + 4);
    }
    return ui;
}

const char* unwind_op_name(uint8_t op) {
    static const char* names[] = {
        "UWOP_PUSH_NONVOL", "UWOP_ALLOC_LARGE",     "UWOP_ALLOC_SMALL",   "UWOP_SET_FPREG",
        "UWOP_SAVE_NONVOL", "UWOP_SAVE_NONVOL_FAR", "UWOP_EPILOG",        "UWOP_SPARE_CODE",
        "UWOP_SAVE_XMM128", "UWOP_SAVE_XMM128_FAR", "UWOP_PUSH_MACHFRAME"};
    return op < sizeof names / sizeof names[0] ? names[op] : "UWOP_UNKNOWN";
}

const char* unwind_register_name(uint8_t reg) {
    static const char* names[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                  "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    return names[reg & 15];
}

} // namespace kdcart::engine
