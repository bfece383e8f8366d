// .fnent ADDR: the function table entry (RUNTIME_FUNCTION) for the code at ADDR and its unwind
// info with every unwind code, chained entries after "Chained info:", as seed 001 shows it.
// WinDbg's first line names where its own copy of the entry lives in the debugger's memory; kdcart
// prints where the entry is in the target (the image's .pdata), which is the useful address.
#include "cli/CodeCommands.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

#include <cstdio>

namespace kdcart::cli {

namespace {

std::string entry_fields(const engine::RuntimeFunction& rf) {
    return "BeginAddress      = " + format_address(rf.begin) + "\n" +
           "EndAddress        = " + format_address(rf.end) + "\n" +
           "UnwindInfoAddress = " + format_address(rf.unwind) + "\n";
}

std::string code_line(size_t slot, const engine::UnwindCode& c) {
    char head[80];
    std::snprintf(head, sizeof head, "  %02zx: offs %x, unwind op %x, op info %x      ", slot,
                  c.offset, c.op, c.info);
    std::string s = std::string(head) + engine::unwind_op_name(c.op);
    switch (c.op) {
    case engine::k_uwop_push_nonvol:
        s += std::string(" reg: ") + engine::unwind_register_name(c.info);
        break;
    case engine::k_uwop_alloc_large:
        s += " FrameOffset: " + hex_digits(c.value);
        break;
    case engine::k_uwop_save_nonvol:
    case engine::k_uwop_save_nonvol_far:
        s += " FrameOffset: " + hex_digits(c.value) +
             " reg: " + engine::unwind_register_name(c.info);
        break;
    case engine::k_uwop_save_xmm128:
    case engine::k_uwop_save_xmm128_far:
        s += " FrameOffset: " + hex_digits(c.value) + " reg: xmm" + std::to_string(c.info);
        break;
    default:
        break;
    }
    return s + ".\n";
}

std::string symbol_or_plain(engine::Debugger& dbg, uint64_t a) {
    if (auto s = dbg.symbolize(a); s && !s->name.empty()) {
        return format_symbol(*s) + " (" + format_address(a) + ")";
    }
    return format_address(a);
}

} // namespace

void cmd_function_entry(engine::Debugger& dbg, Output& out, std::string_view args) {
    args = trim(args);
    uint64_t addr = 0;
    if (args.empty()) {
        auto ctx = dbg.context(std::nullopt, engine::ContextPart::Integer);
        if (!ctx) {
            out.write(ctx.error().message + "\n");
            return;
        }
        addr = ctx->Rip;
    } else {
        auto v = dbg.evaluate(args);
        if (!v) {
            out.write(v.error().message + "\n");
            return;
        }
        addr = *v;
    }
    const engine::UnwindMemory um = unwind_memory_of(dbg);
    const auto base = module_base_of(dbg, addr);
    std::optional<engine::RuntimeFunction> rf;
    if (base) {
        rf = engine::find_runtime_function(*base, static_cast<uint32_t>(addr - *base), um);
    }
    if (!rf) {
        out.write("No function entry for " + format_address(addr) + "\n");
        return;
    }
    std::string s = "Debugger function entry " + format_address(rf->entry_address) + " for:\n";
    const std::string near = nearest_symbols_line(dbg, addr);
    s += (near.empty() ? format_address(addr) : near) + "\n\n";
    s += entry_fields(*rf);
    // The entry's unwind info, then each chained entry's.
    uint32_t unwind = rf->unwind;
    for (int depth = 0; depth < 32; ++depth) {
        auto info = engine::read_unwind_info(*base, unwind, um);
        if (!info) {
            s += "\nUnwind info at " + format_address(*base + unwind) + ": " +
                 info.error().message + "\n";
            break;
        }
        char head[96];
        std::snprintf(head, sizeof head, "  version %u, flags %x, prolog %x, codes %x\n",
                      info->version, info->flags, info->prolog_size, info->count);
        s += "\nUnwind info at " + format_address(info->address) + ", " + hex_digits(info->size) +
             " bytes\n" + head;
        if (info->frame_register != 0) {
            char fr[64];
            std::snprintf(fr, sizeof fr, "  frame reg %x, frame offs %x\n", info->frame_register,
                          info->frame_offset);
            s += fr;
        }
        size_t slot = 0;
        for (const auto& c : info->codes) {
            s += code_line(slot, c);
            slot += c.slots;
        }
        if (info->handler) {
            s += "  handler routine: " + symbol_or_plain(dbg, *base + *info->handler) + "\n";
        }
        if (!info->chained) {
            break;
        }
        s += "\nChained info:\n" + entry_fields(*info->chained);
        unwind = info->chained->unwind;
    }
    out.write(s);
}

} // namespace kdcart::cli
