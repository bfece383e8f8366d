#include "engine/SourceStepper.h"
#include "engine/Debugger.h"
#include "engine/PdbLines.h"

namespace kdcart::engine {

std::optional<SourceLocation> SourceStepper::line_at(uint64_t pc) {
    auto at = m_dbg->known_symbols().source_line(pc);
    if (!at || is_hidden_line(at->line)) {
        return std::nullopt;
    }
    return at;
}

std::optional<uint64_t> SourceStepper::function_at(uint64_t pc) {
    auto sym = m_dbg->symbolize(pc);
    if (!sym || sym->name.empty()) {
        return std::nullopt;
    }
    return sym->address;
}

std::optional<SourceStepper> SourceStepper::start(Debugger& dbg, uint64_t pc) {
    if (!dbg.known_symbols().load_lines()) {
        return std::nullopt;
    }
    auto at = dbg.known_symbols().source_line(pc);
    if (!at || is_hidden_line(at->line)) {
        return std::nullopt;
    }
    std::optional<uint64_t> function;
    if (auto sym = dbg.symbolize(pc); sym && !sym->name.empty()) {
        function = sym->address;
    }
    return SourceStepper(dbg, std::move(*at), function);
}

SourceStepper::Next SourceStepper::after_step(uint64_t pc, bool entered_by_call) {
    if (++m_steps >= kMaxSteps) {
        return Next::GiveUp;
    }
    const std::optional<uint64_t> function = function_at(pc);
    const bool same_function = function && m_function && *function == *m_function;
    const auto at = line_at(pc);
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
