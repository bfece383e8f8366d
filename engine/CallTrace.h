#pragma once
// wt's bookkeeping (watch and trace): fed one executed instruction at a time, it keeps the call
// tree WinDbg prints - a line each time a function is left (by a call, a return, or a jump into
// another function such as an import thunk) with the instructions it executed itself so far,
// those its callees executed, and its depth - and the per-function statistics of the summary.
// No target here: the CLI steps the target and says what each instruction was.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

struct CallTraceLine {
    uint64_t own = 0;      // instructions the function executed itself, this invocation so far
    uint64_t children = 0; // instructions its callees executed
    uint32_t depth = 0;    // 0 = the function wt started in
    std::string function;  // module!name (or an address when no symbol is known)
    bool returned = false; // the line of a return (the value of rax is known then)
    uint64_t return_value = 0;
};

struct CallTraceStats {
    uint64_t invocations = 0;
    uint64_t min = 0;
    uint64_t max = 0;
    uint64_t total = 0;
};

class CallTrace {
  public:
    enum class Kind { Other, Call, Return };

    explicit CallTrace(std::string function);

    // One instruction executed in the current function. `next_function` is where the pc is now
    // (after it); `rax` the return value when kind is Return. Returns the line to show, if any.
    std::optional<CallTraceLine> executed(Kind kind, const std::string& next_function,
                                          uint64_t rax = 0);
    // The function wt started in has returned: nothing more to trace.
    bool finished() const { return m_stack.empty(); }
    // Depth of the function executing now (0 = where wt started).
    uint32_t depth() const { return m_stack.empty() ? 0 : m_stack.back().depth; }
    // The function executing now, as a line (the last line of a trace that ends at a call's
    // return, in the function it started in).
    CallTraceLine current() const {
        return m_stack.empty() ? CallTraceLine{} : line_of(m_stack.back());
    }
    // Ends the trace early (Ctrl+C, a breakpoint): the functions still open count as invocations
    // with what they executed so far.
    void stop();

    uint64_t instructions() const { return m_total; }
    // Summary rows by function name (ASCII order).
    const std::map<std::string, CallTraceStats>& stats() const { return m_stats; }

  private:
    struct Frame {
        std::string function;
        uint64_t own = 0;
        uint64_t children = 0;
        uint64_t carried = 0; // instructions of frames this one replaced (jumps between functions)
        uint32_t depth = 0;
    };
    CallTraceLine line_of(const Frame& f) const;
    void record(const Frame& f);

    std::vector<Frame> m_stack;
    std::map<std::string, CallTraceStats> m_stats;
    uint64_t m_total = 0;
};

} // namespace kdcart::engine
