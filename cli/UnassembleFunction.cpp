// uf [/c] [/o] ADDR: the whole function that holds ADDR, found by following its control flow
// from its start (the PDB's function record, else the image's .pdata entry, chained entries
// followed to the primary one), in address order, each basic block under a label as WinDbg
// prints it ("kdtest!KdTestLoop+0x1c:"), blocks separated by a blank line. Jumps to the start of
// another function are tail calls and are not followed; cold parts whose unwind data chains to
// this function are. /c lists only the calls.
#include "cli/CodeCommands.h"
#include "cli/Repl.h"
#include "cli/SourceLines.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/FunctionFlow.h"

namespace kdcart::cli {

namespace {

struct FunctionRange {
    uint64_t start = 0;
    uint64_t end = 0; // 0 when unknown
};

// The primary RUNTIME_FUNCTION of the code at `address` (chained entries followed).
std::optional<engine::RuntimeFunction> primary_entry(uint64_t base, uint64_t address,
                                                     const engine::UnwindMemory& um) {
    auto rf = engine::find_runtime_function(base, static_cast<uint32_t>(address - base), um);
    for (int i = 0; rf && i < 32; ++i) {
        auto info = engine::read_unwind_info(base, rf->unwind, um);
        if (!info || !info->chained) {
            return rf;
        }
        rf = info->chained;
    }
    return rf;
}

FunctionRange function_of(engine::Debugger& dbg, uint64_t address, const engine::UnwindMemory& um) {
    if (auto n = dbg.symbols().near(address);
        n && n->below && n->below->size != 0 && address - n->below->address < n->below->size) {
        return {n->below->address, n->below->address + n->below->size};
    }
    if (auto base = module_base_of(dbg, address)) {
        if (auto rf = primary_entry(*base, address, um)) {
            return {*base + rf->begin, *base + rf->end};
        }
    }
    return {address, 0};
}

std::string symbol_or_address(engine::Debugger& dbg, uint64_t a) {
    if (auto s = dbg.symbolize(a); s && !s->name.empty()) {
        return format_symbol(*s);
    }
    return format_address(a);
}

} // namespace

void cmd_unassemble_function(engine::Debugger& dbg, Output& out, std::string_view args) {
    bool calls_only = false;
    args = trim(args);
    while (args.size() >= 2 && args[0] == '/') {
        const char f = static_cast<char>(std::tolower(static_cast<unsigned char>(args[1])));
        if (f == 'c') {
            calls_only = true;
        } else if (f != 'o' && f != 'i' && f != 'm') {
            out.write("Unknown option '" + std::string(args.substr(0, 2)) + "'\n");
            return;
        }
        args = trim(args.substr(2));
    }
    if (args.empty()) {
        out.write("No function given: uf [/c] address\n");
        return;
    }
    auto addr = dbg.evaluate(args);
    if (!addr) {
        out.write(addr.error().message + "\n");
        return;
    }
    const engine::UnwindMemory um = unwind_memory_of(dbg);
    const FunctionRange fn = function_of(dbg, *addr, um);
    const auto base = module_base_of(dbg, fn.start);

    engine::FlowOptions opt;
    opt.read = um.read;
    opt.cancel = &g_interrupt;
    opt.contains = [&](uint64_t a) {
        if (fn.end == 0 || (a >= fn.start && a < fn.end)) {
            return true;
        }
        if (base) {
            if (auto rf = primary_entry(*base, a, um); rf && *base + rf->begin == fn.start) {
                return true;
            }
        }
        return false;
    };
    opt.follow = [&](uint64_t t) {
        if (t >= fn.start && (fn.end == 0 || t < fn.end)) {
            return true;
        }
        // A cold part whose unwind data chains to this function belongs to it.
        if (base && fn.end != 0) {
            if (auto rf = primary_entry(*base, t, um); rf && *base + rf->begin == fn.start) {
                return true;
            }
        }
        // The start of another function: a tail call.
        if (auto s = dbg.symbolize(t); s && !s->name.empty() && s->displacement == 0) {
            return false;
        }
        return base && module_base_of(dbg, t) == base;
    };
    const engine::FunctionFlow flow = engine::trace_function(fn.start, opt);
    if (flow.interrupted) {
        g_interrupt.store(false);
    }
    if (flow.instructions.empty()) {
        out.write("No code found at " + format_address(fn.start) + "\n");
        return;
    }

    auto symbolizer = [&dbg](uint64_t a) -> std::optional<std::string> {
        if (auto s = dbg.symbolize(a); s && !s->name.empty()) {
            return format_symbol(*s);
        }
        return std::nullopt;
    };
    std::string s;
    if (calls_only) {
        s += symbol_or_address(dbg, fn.start) + " (" + format_address(fn.start) + ")\n";
    }
    bool first = true;
    for (const auto& fi : flow.instructions) {
        if (calls_only) {
            if (fi.kind != engine::FlowInstruction::Kind::Call) {
                continue;
            }
            s += "  " + symbol_or_address(dbg, fi.address) + " (" + format_address(fi.address) +
                 "):\n";
            std::optional<uint64_t> target = fi.target;
            if (!target && fi.memory_target) {
                if (auto slot = dbg.read_virtual(*fi.memory_target, 8);
                    slot && slot->readable_prefix() == 8) {
                    uint64_t v = 0;
                    for (int b = 7; b >= 0; --b) {
                        v = (v << 8) | slot->bytes[static_cast<size_t>(b)];
                    }
                    target = v;
                }
            }
            if (target) {
                s += "    call to " + symbol_or_address(dbg, *target) + " (" +
                     format_address(*target) + ")\n";
            } else {
                auto mem = dbg.read_virtual(fi.address, fi.length);
                size_t len = 0;
                std::string text =
                    mem ? format_instruction(
                              fi.address,
                              std::span<const uint8_t>(mem->bytes.data(), mem->readable_prefix()),
                              &len, symbolizer)
                        : std::string();
                // The instruction without its address and bytes.
                const size_t mn = text.size() > 34 ? text.find_first_not_of(' ', 34) : text.npos;
                s += "    unresolvable call: " + (mn == text.npos ? text : text.substr(mn)) + "\n";
            }
            continue;
        }
        if (flow.block_starts.count(fi.address)) {
            if (!first) {
                s += "\n";
            }
            s += symbol_or_address(dbg, fi.address) + source_suffix(dbg, fi.address) + ":\n";
        }
        first = false;
        s += line_number_column(dbg, fi.address); // "   18 " with .lines on
        auto mem = dbg.read_virtual(fi.address, fi.length);
        if (!mem) {
            s += format_address(fi.address) + " ??              ???\n";
            continue;
        }
        size_t len = 0;
        s += format_instruction(fi.address,
                                std::span<const uint8_t>(mem->bytes.data(), mem->readable_prefix()),
                                &len, symbolizer) +
             "\n";
    }
    if (flow.truncated) {
        s += "(stopped after " + std::to_string(flow.instructions.size()) + " instructions)\n";
    }
    out.write(s);
}

} // namespace kdcart::cli
