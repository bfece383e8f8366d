#pragma once
// Breakpoints as WinDbg numbers and shows them. A Breakpoint is what the user asked for (an
// address, a `module!symbol+off` expression, or a hardware {address, length, access}) with its
// options; its location is the resolved address; sites (what is written into the target) are
// managed by the Debugger, which removes them all at each stop and writes them again on go.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

enum class BreakpointKind { Software, Hardware };

// DR7 R/W encodings.
enum class HwAccess : uint8_t { Execute = 0, Write = 1, Io = 2, ReadWrite = 3 };

enum class LocationState {
    Resolved,   // an address, inserted at each go
    Unresolved, // a deferred (bu) breakpoint whose module is not loaded
    Owed,       // the address is known, but its page is not present: the target arms it later
};

struct Breakpoint {
    uint32_t id = 0;
    BreakpointKind kind = BreakpointKind::Software;
    bool deferred = false;     // bu: re-resolved from `expression` when modules change
    std::string expression;    // what the user typed for the address
    std::optional<uint64_t> address;
    LocationState state = LocationState::Resolved;
    // hardware
    HwAccess access = HwAccess::Execute;
    uint8_t length = 1;
    int slot = -1; // DR0..DR3 while the breakpoint holds one
    // options
    bool enabled = true;
    bool one_shot = false;
    uint64_t pass_count = 1; // hit on the Nth pass (WinDbg's "0001 (0001)")
    uint64_t passes_left = 1;
    std::string command;     // run on hit
    std::string condition;   // bp /w "expr": the CLI resumes when it evaluates to zero
    // bp /p EPROCESS, bp /t ETHREAD (kernel mode): a hit counts only in that process / thread
    // (engine/BreakpointFilter); elsewhere the target is resumed without a word.
    std::optional<uint64_t> match_process;
    std::optional<uint64_t> match_thread;
    uint64_t hits = 0;
};

class BreakpointTable {
public:
    // Adds a breakpoint and returns its id (the lowest free number, as WinDbg does).
    Breakpoint& add(Breakpoint bp);
    Breakpoint* find(uint32_t id);
    // The breakpoint already defined at `address` with the same kind, if any (for "redefined").
    Breakpoint* find_at(uint64_t address, BreakpointKind kind);
    Breakpoint* find_deferred(const std::string& expression);
    bool remove(uint32_t id);
    std::vector<Breakpoint*> all();
    std::vector<const Breakpoint*> all() const;
    size_t size() const { return m_bps.size(); }

    // Hardware slots in use (bit i = DR i).
    unsigned used_slots() const;
    std::optional<int> free_slot() const;

private:
    std::map<uint32_t, Breakpoint> m_bps;
};

// DR7 for the enabled hardware breakpoints (local enable bits, R/W and LEN fields); bit 10 set.
uint64_t compute_dr7(const BreakpointTable& table);
// LEN field encoding for a length of 1, 2, 4 or 8 bytes.
uint64_t dr7_len_bits(uint8_t length);

// Parses WinDbg id lists: "*", "3", "1-4", "1 3 5", "1,3". Returns nullopt on a syntax error.
std::optional<std::vector<uint32_t>> parse_breakpoint_ids(const std::string& text,
                                                          const BreakpointTable& table);

} // namespace kdcart::engine
