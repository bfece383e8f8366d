#pragma once
// What `!analyze -v` says about a bug check, as data: the code and parameters (a dump's header,
// the live stop, or nt!KiBugCheckData), the process and IRQL of the processor that stopped, the
// stack through the images' unwind data with each frame's home space ("Args to Child"), the
// faulting instruction when the bug check's parameters name one, and the "followup" frame.
//
// The followup rule is a stated heuristic, not WinDbg's triage database: the first frame,
// from the top, that is not on the kernel's own bug-check path (nt!KeBugCheck*, KiBugCheck*,
// the debugger break it ends in, the trap and exception dispatch handlers). The result says
// which frame it chose and which frames it passed over.
#include "engine/Types.h"
#include "transport/Error.h"

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct AnalysisFrame {
    StackFrame frame;
    // The four home-space words above the return address (kb's "Args to Child"); nullopt
    // where unreadable.
    std::array<std::optional<uint64_t>, 4> args;
    std::optional<SymbolMatch> symbol;
};

struct BugCheckAnalysis {
    uint32_t code = 0;
    std::array<uint64_t, 4> params{0, 0, 0, 0};
    std::string code_source; // "the dump header", "nt!KiBugCheckData", "the stop"

    std::optional<std::string> process_name; // the current thread's process image
    std::string process_note;                // why not, when nullopt; how, otherwise
    std::optional<uint32_t> irql;
    std::string irql_source; // "KPRCB.DebuggerSavedIRQL (nt's types)", "CR8 saved in the KPRCB"

    std::vector<AnalysisFrame> stack;
    std::string stack_error; // why the stack is empty

    // The instruction a parameter names (0xA/0xD1 P4, 0x1E/0x7E/0x8E P2, 0x3B P2, 0x50 P3).
    std::optional<uint64_t> faulting_ip;
    std::optional<SymbolMatch> faulting_symbol;

    // The followup frame (index into `stack`) and why it was chosen.
    std::optional<size_t> followup;
    std::string followup_reason;

    // Derived from the followup frame (empty without one).
    std::string symbol_name;  // "kdtest!KdTestRaiseBugCheck+1c" (WinDbg: hex offset, no 0x)
    std::string module_name;  // "kdtest"
    std::string image_name;   // "kdtest.sys"
    std::string bucket_id;    // FAILURE_BUCKET_ID
    std::string bugcheck_str; // "0xD1"
};

// True for a frame on the kernel's own bug-check path (the followup rule skips it).
bool on_bugcheck_path(const SymbolMatch& symbol);

// The parameter (0-3) that holds the faulting instruction address for `code`, if any.
std::optional<size_t> faulting_ip_parameter(uint32_t code);

// Picks the followup frame and fills the derived names. `image_of` gives a module's image
// file name ("kdtest.sys") from its module name.
void choose_followup(BugCheckAnalysis& analysis,
                     const std::function<std::string(std::string_view)>& image_of);

class BugCheckAnalyzer {
  public:
    explicit BugCheckAnalyzer(Debugger& dbg) : m_dbg(dbg) {}

    // The bug check the target stopped with (NotFound when it did not stop for one).
    [[nodiscard]] Result<BugCheckAnalysis> analyze(size_t max_frames = 64);
    // Only the code and parameters (cheap: no stack, no types).
    [[nodiscard]] Result<BugCheckAnalysis> bugcheck();

  private:
    void read_process(BugCheckAnalysis& a);
    void read_irql(BugCheckAnalysis& a);
    void read_stack(BugCheckAnalysis& a, size_t max_frames);
    Debugger& m_dbg;
};

} // namespace kdcart::engine
