#include "engine/PseudoRegisters.h"
#include "engine/BreakpointFilter.h"
#include "engine/Debugger.h"

#include <cctype>
#include <string>

namespace kdcart::engine {

namespace {

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return r;
}

// Decimal digits after `prefix`, at most two, no leading zero unless the number is 0.
std::optional<unsigned> number_after(std::string_view name, std::string_view prefix) {
    std::string n = lower(name);
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) {
        return std::nullopt;
    }
    std::string_view digits = std::string_view(n).substr(prefix.size());
    if (digits.size() > 4 || (digits.size() > 1 && digits[0] == '0')) {
        return std::nullopt;
    }
    unsigned v = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v;
}

} // namespace

std::optional<unsigned> PseudoRegisters::user_index(std::string_view name) {
    auto v = number_after(name, "$t");
    if (!v || *v >= k_user_count) {
        return std::nullopt;
    }
    return v;
}

std::optional<uint32_t> PseudoRegisters::breakpoint_index(std::string_view name) {
    auto v = number_after(name, "$bp");
    if (!v) {
        return std::nullopt;
    }
    return *v;
}

bool PseudoRegisters::is_automatic(std::string_view name) {
    static constexpr std::string_view names[] = {
        "$ip",       "$ra",  "$ptrsize", "$pagesize", "$exentry", "$retreg",
        "$retreg64", "$csp", "$scopeip", "$thread",   "$proc",
    };
    const std::string n = lower(name);
    for (auto a : names) {
        if (n == a) {
            return true;
        }
    }
    return breakpoint_index(name).has_value();
}

} // namespace kdcart::engine

// ---- the Debugger's side: automatic pseudo-registers from the target's state ----------------

namespace kdcart::engine {

namespace {

std::optional<uint64_t> read_u32(Debugger& dbg, uint64_t address) {
    auto m = dbg.read_virtual(address, 4);
    if (!m || !m->all_valid()) {
        return std::nullopt;
    }
    return static_cast<uint64_t>(m->bytes[0]) | static_cast<uint64_t>(m->bytes[1]) << 8 |
           static_cast<uint64_t>(m->bytes[2]) << 16 | static_cast<uint64_t>(m->bytes[3]) << 24;
}

} // namespace

std::optional<uint64_t> Debugger::pseudo_register(std::string_view name) {
    if (auto t = PseudoRegisters::user_index(name)) {
        return m_pseudo.user(*t);
    }
    const std::string n = lower(name);
    if (n == "$ptrsize") {
        return 8;
    }
    if (n == "$pagesize") {
        return 0x1000;
    }
    if (auto id = PseudoRegisters::breakpoint_index(n)) {
        for (const auto* bp : breakpoints().all()) {
            if (bp->id == *id && bp->address) {
                return *bp->address;
            }
        }
        return std::nullopt;
    }
    if (n == "$thread" || n == "$proc") {
        // The implicit thread / process (.thread, .process), else the current processor's
        // running thread and its KTHREAD.ApcState.Process (engine/BreakpointFilter).
        if (n == "$thread" && m_scope.thread) {
            return *m_scope.thread;
        }
        if (n == "$proc" && m_scope.process) {
            return *m_scope.process;
        }
        BreakpointFilter current(*this);
        auto thread = current.current_thread(current_processor(), last_stop());
        if (!thread || n == "$thread") {
            return thread ? std::optional<uint64_t>(*thread) : std::nullopt;
        }
        auto process = current.process_of(*thread);
        return process ? std::optional<uint64_t>(*process) : std::nullopt;
    }
    if (n == "$exentry") {
        // Kernel debugging: the entry point of the kernel image (AddressOfEntryPoint).
        auto base = module_base("nt");
        if (!base) {
            return std::nullopt;
        }
        auto lfanew = read_u32(*this, *base + 0x3c);
        if (!lfanew || *lfanew > 0x1000) {
            return std::nullopt;
        }
        auto entry = read_u32(*this, *base + *lfanew + 0x28);
        if (!entry) {
            return std::nullopt;
        }
        return *base + *entry;
    }
    auto ctx = context();
    if (!ctx) {
        return std::nullopt;
    }
    if (n == "$ip" || n == "$scopeip") {
        return ctx->Rip;
    }
    if (n == "$retreg" || n == "$retreg64") {
        return ctx->Rax;
    }
    if (n == "$csp") {
        return ctx->Rsp;
    }
    if (n == "$ra") {
        auto frames = stack_trace(1);
        if (!frames || frames->empty() || (*frames)[0].return_address == 0) {
            return std::nullopt;
        }
        return (*frames)[0].return_address;
    }
    return std::nullopt;
}

} // namespace kdcart::engine
