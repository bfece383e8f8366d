#include "engine/SourceStepper.h"
#include "engine/Debugger.h"

namespace kdcart::engine {

namespace {

// The start of the function holding `pc`; nullopt without a symbol.
std::optional<uint64_t> function_at(Debugger& dbg, uint64_t pc) {
    auto sym = dbg.symbolize(pc);
    if (!sym || sym->name.empty()) {
        return std::nullopt;
    }
    return sym->address;
}

} // namespace

std::optional<SourceStepper> SourceStepper::start(Debugger& dbg, uint64_t pc) {
    auto at = dbg.known_symbols().visible_source_line(pc);
    if (!at) {
        return std::nullopt;
    }
    return SourceStepper(dbg, std::move(*at), function_at(dbg, pc));
}

SourceStepper::Next SourceStepper::after_step(uint64_t pc, bool entered_by_call) {
    if (++m_steps >= kMaxSteps) {
        return Next::GiveUp;
    }
    const std::optional<uint64_t> function = function_at(*m_dbg, pc);
    const bool same_function = function && m_function && *function == *m_function;
    const auto at = m_dbg->known_symbols().visible_source_line(pc);
    if (!at) {
        if (entered_by_call) {
            return Next::StepOut;
        }
        return same_function ? Next::Step : Next::Stop;
    }
    if (at->file == m_line.file && at->line == m_line.line) {
        return Next::Step;
    }
    if (pc == at->line_address || !same_function) {
        return Next::Stop;
    }
    return Next::Step;
}

} // namespace kdcart::engine
