#pragma once
// The debugger engine over a live target: attach, stop/resume, registers, memory (cached while
// stopped), modules, target info and export symbols. Synchronous and single-threaded. Returns
// data and errors; never prints.
#include "engine/AddressTranslation.h"
#include "engine/Breakpoints.h"
#include "engine/PeExports.h"
#include "engine/Types.h"
#include "protocol/KdClient.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>

namespace kdcart::engine {

using transport::Millis;

// What the engine tells the layer above, as it happens.
class EngineDelegate {
public:
    virtual ~EngineDelegate() = default;
    virtual void on_debug_print(std::string_view text) = 0;
    virtual std::string on_debug_prompt(std::string_view prompt) = 0;
    virtual void on_notice(std::string_view text) = 0;
    // An exception the filters say to report without stopping (sxd first chance, sxn).
    virtual void on_exception_passed(const StopEvent& event) { (void)event; }
};

struct AttachOptions {
    bool break_in = false;                // -b: stop the target as soon as it answers
    std::optional<Millis> connect_timeout; // none: wait until interrupted
    // Polled while waiting; returns true when the user asked to stop waiting (Ctrl+C).
    std::function<bool()> interrupted;
};

enum class RunState { Detached, Running, Stopped };

class Debugger : private protocol::SessionDelegate {
public:
    Debugger(std::unique_ptr<transport::PacketLink> link, EngineDelegate* delegate,
             protocol::SessionOptions options = {});
    ~Debugger() override;

    // Establishes the session. Returns when the target is stopped (the first stop), or an error
    // (Timeout after connect_timeout, Interrupted when the user gave up).
    [[nodiscard]] Result<StopEvent> attach(const AttachOptions& options);

    RunState state() const { return m_state; }
    const StopEvent& last_stop() const { return m_stop; }
    uint16_t current_processor() const { return m_processor; }
    uint32_t num_processors() const { return m_stop.num_processors; }

    // ---- breakpoints ----
    struct BreakpointRequest {
        BreakpointKind kind = BreakpointKind::Software;
        bool deferred = false;        // bu
        std::string expression;       // as typed
        std::optional<uint64_t> address; // resolved by the caller (nullopt: unresolved bu)
        HwAccess access = HwAccess::Execute;
        uint8_t length = 1;
        bool one_shot = false;
        uint64_t pass_count = 1;
        std::string command;
    };
    struct BreakpointResult {
        uint32_t id = 0;
        bool redefined = false;
        bool converted_to_hardware = false; // .allow_bp_ba_convert turned an owed bp into ba e1
    };
    [[nodiscard]] Result<BreakpointResult> set_breakpoint(const BreakpointRequest& request);
    [[nodiscard]] Result<void> clear_breakpoint(uint32_t id);
    [[nodiscard]] Result<void> enable_breakpoint(uint32_t id, bool enable);
    const BreakpointTable& breakpoints() const { return m_breakpoints; }
    // Re-resolves deferred breakpoints; the CLI's expression evaluator does the resolving.
    void set_resolver(std::function<std::optional<uint64_t>(const std::string&)> resolver) {
        m_resolver = std::move(resolver);
    }
    // .allow_bp_ba_convert
    void set_allow_bp_ba_convert(bool allow) { m_allow_bp_ba_convert = allow; }
    bool allow_bp_ba_convert() const { return m_allow_bp_ba_convert; }
    // Where a virtual address stands in the target's page tables (current processor's CR3).
    [[nodiscard]] Result<Translation> translate(uint64_t va);
    // .pagein: the target pages it in when it next runs.
    [[nodiscard]] Result<void> page_in(uint64_t va);
    // Walks the current processor's stack through the images' unwind data (k).
    [[nodiscard]] Result<std::vector<StackFrame>> stack_trace(size_t max_frames);
    // Removes every breakpoint from the target (before quitting).
    void remove_all_breakpoints_from_target();

    // ---- run control ----
    [[nodiscard]] Result<void> go();
    // g ADDR: run until ADDR (or any other stop).
    [[nodiscard]] Result<void> go_until(uint64_t address);
    enum class StepKind { Into, Over, Out };
    // t / p / gu. The stop arrives through wait_for_stop with step_complete set.
    [[nodiscard]] Result<void> step(StepKind kind);
    // sxe/sxd for module loads: stop on LoadSymbols (default: continue silently).
    void set_break_on_module_load(bool on) { m_break_on_load = on; }
    // Exception filters (sxe / sxd / sxn / sxi) by exception code. Break = stop on the first
    // chance (the default); SecondChance = only tell about the first chance; Output = tell,
    // never stop; Ignore = say nothing. Second chances always stop unless ignored.
    enum class ExceptionPolicy { Break, SecondChance, Output, Ignore };
    void set_exception_policy(uint32_t code, ExceptionPolicy policy) {
        m_exception_policy[code] = policy;
    }
    ExceptionPolicy exception_policy(uint32_t code) const {
        auto it = m_exception_policy.find(code);
        return it == m_exception_policy.end() ? ExceptionPolicy::Break : it->second;
    }
    // Waits up to `timeout` for the running target to stop. Errc::Timeout if it did not.
    [[nodiscard]] Result<StopEvent> wait_for_stop(Millis timeout);
    [[nodiscard]] Result<void> break_in();
    // Makes processor `cpu` the current one (SwitchProcessor); returns its stop.
    [[nodiscard]] Result<StopEvent> switch_processor(uint16_t cpu, Millis timeout);
    [[nodiscard]] Result<void> reboot();
    // Leaves the target running (q): writes back state, continues.
    [[nodiscard]] Result<void> detach();

    // ---- state while stopped ----
    [[nodiscard]] Result<CONTEXT> context(std::optional<uint16_t> cpu = std::nullopt);
    [[nodiscard]] Result<void> set_context(const CONTEXT& ctx,
                                           std::optional<uint16_t> cpu = std::nullopt);
    [[nodiscard]] Result<MemoryBlock> read_virtual(uint64_t address, size_t size);
    [[nodiscard]] Result<size_t> write_virtual(uint64_t address, std::span<const uint8_t> data);
    [[nodiscard]] Result<MemoryBlock> read_physical(uint64_t address, size_t size);
    [[nodiscard]] Result<size_t> write_physical(uint64_t address, std::span<const uint8_t> data);
    [[nodiscard]] Result<TargetInfo> target_info();
    [[nodiscard]] Result<std::vector<Module>> modules();

    // ---- symbols (export tables) ----
    std::optional<SymbolMatch> symbolize(uint64_t address);
    std::optional<uint64_t> lookup_symbol(std::string_view module, std::string_view name);
    std::optional<uint64_t> module_base(std::string_view module);

    protocol::KdSession& session() { return *m_session; }
    protocol::KdClient& client() { return *m_client; }

private:
    // SessionDelegate
    void on_debug_print(std::string_view text) override;
    std::string on_debug_prompt(std::string_view prompt) override;
    void on_link_notice(std::string_view text) override;
    void on_target_reset() override;

    StopEvent make_stop(const protocol::StateChange& sc);
    [[nodiscard]] Result<StopEvent> enter_stop(const protocol::StateChange& sc);
    [[nodiscard]] Result<StopEvent> first_stop(const protocol::StateChange& sc);
    [[nodiscard]] Result<void> load_target_info();
    [[nodiscard]] Result<void> write_back_contexts();
    [[nodiscard]] Result<void> resume(uint32_t status, bool trace);
    void forget_stop_state();
    const std::vector<ExportSymbol>* exports_for(const Module& m);
    [[nodiscard]] Result<MemoryBlock> read_cached(uint64_t address, size_t size);

    // breakpoints and run control (DebuggerRun.cpp)
    enum class Phase { None, SteppingOffBreakpoint };
    [[nodiscard]] Result<void> resume_with_breakpoints(bool trace, uint32_t status);
    [[nodiscard]] Result<void> go_impl(std::optional<uint64_t> until);
    [[nodiscard]] Result<void> insert_sites(std::optional<uint64_t> skip);
    void remove_sites();
    [[nodiscard]] Result<void> program_hardware(std::optional<uint64_t> skip_exec_at);
    // Decides what a raw stop means; nullopt = handled internally, keep running.
    [[nodiscard]] Result<std::optional<StopEvent>> filter_stop(StopEvent ev);
    void refresh_owed_states();
    void resolve_deferred();
    std::optional<uint64_t> image_base_of(uint64_t address);
    uint64_t continue_status_for_stop() const;

    BreakpointTable m_breakpoints;
    std::function<std::optional<uint64_t>(const std::string&)> m_resolver;
    bool m_allow_bp_ba_convert = false;
    bool m_break_on_load = false;
    std::map<uint32_t, ExceptionPolicy> m_exception_policy;
    struct Site {
        uint64_t address;
        uint32_t handle;
    };
    std::vector<Site> m_sites;
    uint64_t m_programmed_dr7 = 0x400;
    bool m_hw_dirty = false;
    std::vector<uint64_t> m_internal; // temporary breakpoints of p / gu / g ADDR
    std::optional<uint64_t> m_step_out_rsp;  // gu: stop only when the frame is gone
    bool m_stepping = false;                 // t (or p on a non-call): a trace step is under way
    Phase m_phase = Phase::None;
    uint32_t m_resume_status = protocol::DBG_CONTINUE;
    std::optional<uint64_t> m_cr3;
    bool m_target_was_reset = false;

    EngineDelegate* m_delegate;
    std::unique_ptr<protocol::KdSession> m_session;
    std::unique_ptr<protocol::KdClient> m_client;
    RunState m_state = RunState::Detached;
    StopEvent m_stop;
    uint16_t m_processor = 0;
    bool m_breakin_requested = false;

    std::optional<TargetInfo> m_info;
    std::optional<std::vector<Module>> m_modules;
    std::map<uint64_t, std::vector<ExportSymbol>> m_exports; // by module base
    std::map<uint16_t, CONTEXT> m_contexts;
    std::map<uint16_t, bool> m_dirty;

    struct Page {
        std::vector<uint8_t> data = std::vector<uint8_t>(4096);
        std::vector<bool> valid = std::vector<bool>(4096);
        bool unreadable_from_known = false;
        uint32_t unreadable_from = 4096; // bytes at and after this offset failed
    };
    std::map<uint64_t, Page> m_pages; // virtual page cache, cleared on resume
};

} // namespace kdcart::engine
