#pragma once
// Breakpoints from spec to site: what the user asked for (BreakpointTable), where it resolves
// (an address, unresolved for a bu whose module is not loaded, owed when its page is not
// present), and the sites written into a live target. WinDbg's model: every site is removed at
// each stop and written again on go; hardware breakpoints go into every processor's
// KSPECIAL_REGISTERS and Continue2's Dr7.
#include "engine/Breakpoints.h"
#include "engine/LiveTarget.h"
#include "engine/Memory.h"

#include <functional>

namespace kdcart::engine {

struct BreakpointRequest {
    BreakpointKind kind = BreakpointKind::Software;
    bool deferred = false;           // bu
    std::string expression;          // as typed
    std::optional<uint64_t> address; // resolved by the caller (nullopt: unresolved bu)
    HwAccess access = HwAccess::Execute;
    uint8_t length = 1;
    bool one_shot = false;
    uint64_t pass_count = 1;
    std::string command;
    std::string condition; // bp /w "expr"
    // bp /p EPROCESS, bp /t ETHREAD
    std::optional<uint64_t> match_process;
    std::optional<uint64_t> match_thread;
};

struct BreakpointResult {
    uint32_t id = 0;
    bool redefined = false;
    bool converted_to_hardware = false; // .allow_bp_ba_convert turned an owed bp into ba e1
};

class BreakpointManager {
public:
    // `target` is null on a dump: the table can still be listed and edited, nothing is written.
    BreakpointManager(LiveTarget* target, Memory& memory) : m_target(target), m_memory(memory) {}

    [[nodiscard]] Result<BreakpointResult> set(const BreakpointRequest& request);
    [[nodiscard]] Result<void> clear(uint32_t id);
    [[nodiscard]] Result<void> enable(uint32_t id, bool enable);
    BreakpointTable& table() { return m_table; }
    const BreakpointTable& table() const { return m_table; }

    // Evaluates bu expressions again (modules changed); the evaluator does the resolving.
    void set_resolver(std::function<std::optional<uint64_t>(const std::string&)> resolver) {
        m_resolver = std::move(resolver);
    }
    void resolve_deferred();
    // Owed breakpoints whose page is present now are resolved.
    void refresh_owed_states();
    void set_allow_bp_ba_convert(bool allow) { m_allow_bp_ba_convert = allow; }
    bool allow_bp_ba_convert() const { return m_allow_bp_ba_convert; }

    // Temporary breakpoints of run control (p over a call, gu, g ADDR).
    std::vector<uint64_t>& temporaries() { return m_temporaries; }
    bool is_temporary(uint64_t address) const;
    // An enabled software breakpoint of the user's (not unresolved) at `address`.
    Breakpoint* software_at(uint64_t address);

    // Writes every software site except `skip`; failures are told, not fatal.
    [[nodiscard]] Result<void> insert_sites(std::optional<uint64_t> skip);
    void remove_sites();
    // DR0-DR3 and DR7 on every processor, skipping an execute breakpoint at `skip_exec_at`.
    [[nodiscard]] Result<void> program_hardware(std::optional<uint64_t> skip_exec_at,
                                                uint32_t num_processors);
    uint64_t programmed_dr7() const { return m_programmed_dr7; }
    // The target started over: its code bytes and debug registers are fresh.
    void forget_target_state();

private:
    [[nodiscard]] Result<Translation> translate(uint64_t va);

    LiveTarget* m_target;
    Memory& m_memory;
    BreakpointTable m_table;
    std::function<std::optional<uint64_t>(const std::string&)> m_resolver;
    bool m_allow_bp_ba_convert = false;
    struct Site {
        uint64_t address;
        uint32_t handle;
    };
    std::vector<Site> m_sites;
    std::vector<uint64_t> m_temporaries;
    uint64_t m_programmed_dr7 = 0x400;
    bool m_hw_dirty = false;
};

} // namespace kdcart::engine
