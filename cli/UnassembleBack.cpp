// ub [ADDR] [L count]: the count instructions that end just before ADDR (8 by default, ADDR the
// current instruction by default), in u's layout. x64 cannot be decoded backwards, so the
// instructions are found going forwards: from the start of the function ADDR is in when a symbol
// says where that is, otherwise from the farthest point before ADDR from which decoding lands
// exactly on ADDR (x64 decoding falls into step within a few instructions).
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/InstructionInfo.h"

#include <algorithm>

namespace kdcart::cli {

namespace {

constexpr uint64_t kMaxInstruction = 15;
constexpr uint64_t kMaxFromSymbol = 0x4000; // decode at most this far from a function's start

// Instruction starts from `from` up to `to` in `mem`, or nothing when decoding does not land
// exactly on `to`.
std::vector<uint64_t> starts_between(const engine::MemoryBlock& mem, uint64_t from, uint64_t to) {
    std::vector<uint64_t> starts;
    uint64_t a = from;
    while (a < to) {
        const size_t off = static_cast<size_t>(a - mem.address);
        size_t n = 0;
        while (off + n < mem.bytes.size() && n < kMaxInstruction && mem.valid[off + n]) {
            ++n;
        }
        auto info = engine::decode_instruction(std::span<const uint8_t>(mem.bytes.data() + off, n));
        if (!info || info->length == 0) {
            return {};
        }
        starts.push_back(a);
        a += info->length;
    }
    if (a != to) {
        return {};
    }
    return starts;
}

} // namespace

void Repl::cmd_unassemble_back(std::string_view args) {
    auto cb = m_dbg->expression_callbacks();
    uint64_t end = 0;
    uint64_t count = 8;
    if (trim(args).empty()) {
        auto ctx = m_dbg->context(std::nullopt, engine::ContextPart::Integer);
        if (!ctx) {
            error(ctx.error().message);
            return;
        }
        end = ctx->Rip;
    } else {
        auto range = parse_range(args, cb, 8, 1);
        if (!range) {
            error(range.error().message);
            return;
        }
        end = range->start;
        count = std::clamp<uint64_t>(range->count, 1, 512);
    }
    // From the function's start when a symbol places ADDR in one, not too far away.
    std::vector<uint64_t> starts;
    uint64_t lowest = end - std::min<uint64_t>(end, count * kMaxInstruction + 64);
    std::optional<uint64_t> function;
    if (auto sym = m_dbg->symbolize(end > 0 ? end - 1 : 0);
        sym && !sym->name.empty() && sym->displacement < kMaxFromSymbol) {
        function = end - 1 - sym->displacement;
        lowest = std::min(lowest, *function);
    }
    auto mem = m_dbg->read_virtual(lowest, static_cast<size_t>(end - lowest + kMaxInstruction));
    if (!mem) {
        error("Memory read failed: " + mem.error().message);
        return;
    }
    // The farthest start before `to` that decodes onto it.
    auto landing_on = [&](uint64_t to) {
        std::vector<uint64_t> found;
        for (uint64_t from = lowest; from < to && found.empty(); ++from) {
            found = starts_between(*mem, from, to);
        }
        return found;
    };
    if (function) {
        starts = starts_between(*mem, *function, end);
        if (!starts.empty() && starts.size() < count && *function > lowest) {
            // Too few in this function: the ones before it too, as WinDbg shows them.
            auto before = landing_on(*function);
            starts.insert(starts.begin(), before.begin(), before.end());
        }
    }
    if (starts.empty()) {
        starts = landing_on(end);
    }
    if (starts.empty()) {
        error("No instructions decode onto " + format_address(end));
        return;
    }
    if (starts.size() > count) {
        starts.erase(starts.begin(), starts.end() - static_cast<long>(count));
    }
    auto symbolizer = [this](uint64_t a) -> std::optional<std::string> {
        if (auto s = m_dbg->symbolize(a); s && !s->name.empty()) {
            return format_symbol(*s);
        }
        return std::nullopt;
    };
    std::string out;
    if (auto sym = m_dbg->symbolize(starts.front())) {
        out += format_symbol(*sym) + ":\n";
    }
    for (size_t i = 0; i < starts.size(); ++i) {
        const uint64_t a = starts[i];
        const uint64_t next = i + 1 < starts.size() ? starts[i + 1] : end;
        const size_t off = static_cast<size_t>(a - mem->address);
        size_t len = 0;
        out +=
            format_instruction(
                a, std::span<const uint8_t>(mem->bytes.data() + off, static_cast<size_t>(next - a)),
                &len, symbolizer) +
            "\n";
    }
    print(out);
}

} // namespace kdcart::cli
