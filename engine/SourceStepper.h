#pragma once
// Source-mode stepping (l+t): what `t` / `p` do after each single instruction step while they
// step by source line. The caller (the REPL) steps the target one instruction at a time with the
// existing step machinery (p steps over calls, t traces into them) and asks after_step() what to
// do next; this class only looks at line tables and symbols, it never runs the target.
//
// The rules (WinDbg's source stepping as documented; the details are kdcart's choice):
//  - a step ends when the pc leaves the starting line and lands at the first instruction of a
//    piece of another line (PdbSourceLine::line_rva), or lands anywhere in another line of a
//    different function (returning into the middle of the caller's line counts);
//  - code without line information (or with a hidden line, 0xfeefee) that a `t` entered through
//    a call is stepped out of (the caller runs to the return address, then stepping goes on);
//    such code of the same function is stepped through; reached any other way (returning into
//    a caller without lines, a jump) the step ends there;
//  - at most kMaxSteps instructions, then the caller gives up with a message.
#include "engine/Symbols.h"

#include <cstdint>
#include <optional>

namespace kdcart::engine {

class Debugger;

class SourceStepper {
  public:
    static constexpr uint64_t kMaxSteps = 4000;

    enum class Next {
        Step,    // step one more instruction
        StepOut, // run to the return address of the function just entered (gu), then go on
        Stop,    // the step is complete: show this stop
        GiveUp,  // kMaxSteps instructions without reaching another line
    };

    // The line `pc` is on; nullopt when it has none (line support off, no PDB, no line record,
    // a hidden line): then the step is an ordinary instruction step.
    static std::optional<SourceStepper> start(Debugger& dbg, uint64_t pc);

    // After one instruction step (or a step out) left the pc at `pc`. `entered_by_call`: the
    // step was a `t` on a call instruction.
    Next after_step(uint64_t pc, bool entered_by_call);

    const SourceLocation& line() const { return m_line; }
    uint64_t steps() const { return m_steps; }

  private:
    SourceStepper(Debugger& dbg, SourceLocation line, std::optional<uint64_t> function)
        : m_dbg(&dbg), m_line(std::move(line)), m_function(function) {}

    Debugger* m_dbg;
    SourceLocation m_line;
    std::optional<uint64_t> m_function; // start of the function the step began in
    uint64_t m_steps = 0;
};

} // namespace kdcart::engine
