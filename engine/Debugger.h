#pragma once
// The debugger: one façade over a target, live (LiveTarget over the KD client) or a crash dump
// (DumpTarget). It composes the engine's parts, each in its own file: Memory (cache and address
// translation), Contexts, KernelInfo, Modules, Symbols, BreakpointManager, StackWalker and, on a
// live target, RunControl. The CLI talks only to this class. Synchronous and single-threaded;
// returns data and errors, never prints.
#include "engine/BreakpointManager.h"
#include "engine/Contexts.h"
#include "engine/DumpTarget.h"
#include "engine/Expression.h"
#include "engine/ImplicitScope.h"
#include "engine/KernelInfo.h"
#include "engine/LiveTarget.h"
#include "engine/Memory.h"
#include "engine/Modules.h"
#include "engine/PseudoRegisters.h"
#include "engine/RunControl.h"
#include "engine/StackWalker.h"
#include "engine/Symbols.h"

#include <memory>

namespace kdcart::engine {

class Debugger {
public:
    // A live target at the end of `link`.
    Debugger(std::unique_ptr<transport::PacketLink> link, EngineDelegate* delegate,
             protocol::SessionOptions options = {});
    // Any other target (a dump): stopped for good at `stop`.
    Debugger(std::unique_ptr<Target> target, StopEvent stop);
    ~Debugger();

    Target& target() { return *m_target; }
    bool can_run() const { return m_target->can_run(); }

    // Establishes the session. Returns when the target is stopped (the first stop), or an error
    // (Timeout after connect_timeout, Interrupted when the user gave up).
    [[nodiscard]] Result<StopEvent> attach(const AttachOptions& options);

    RunState state() const { return m_run ? m_run->state() : RunState::Stopped; }
    const StopEvent& last_stop() const { return m_run ? m_run->last_stop() : m_dump_stop; }
    uint16_t current_processor() const { return m_target->current_processor(); }
    uint32_t num_processors() const { return last_stop().num_processors; }

    // ---- breakpoints ----
    using BreakpointRequest = engine::BreakpointRequest;
    using BreakpointResult = engine::BreakpointResult;
    [[nodiscard]] Result<BreakpointResult> set_breakpoint(const BreakpointRequest& request);
    [[nodiscard]] Result<void> clear_breakpoint(uint32_t id);
    [[nodiscard]] Result<void> enable_breakpoint(uint32_t id, bool enable);
    const BreakpointTable& breakpoints() const { return m_breakpoints.table(); }
    // Re-resolves deferred breakpoints with the engine's own expression evaluator.
    void set_allow_bp_ba_convert(bool allow) { m_breakpoints.set_allow_bp_ba_convert(allow); }
    bool allow_bp_ba_convert() const { return m_breakpoints.allow_bp_ba_convert(); }
    // Where a virtual address stands in the target's page tables (current processor's CR3).
    [[nodiscard]] Result<Translation> translate(uint64_t va);
    // .pagein: the target pages it in when it next runs.
    [[nodiscard]] Result<void> page_in(uint64_t va);
    // Walks the current processor's stack through the images' unwind data (k).
    [[nodiscard]] Result<std::vector<StackFrame>> stack_trace(size_t max_frames);
    // The same from given registers (k = rbp rsp rip).
    [[nodiscard]] std::vector<StackFrame> stack_trace_from(const CONTEXT& context,
                                                           size_t max_frames);
    // Removes every breakpoint from the target (before quitting).
    void remove_all_breakpoints_from_target();

    // ---- run control (live targets only: "No runnable debuggees" otherwise) ----
    [[nodiscard]] Result<void> go();
    [[nodiscard]] Result<void> go_until(uint64_t address);
    using StepKind = engine::StepKind;
    [[nodiscard]] Result<void> step(StepKind kind);
    void set_break_on_module_load(bool on);
    using ExceptionPolicy = engine::ExceptionPolicy;
    void set_exception_policy(uint32_t code, ExceptionPolicy policy);
    ExceptionPolicy exception_policy(uint32_t code) const;
    [[nodiscard]] Result<StopEvent> wait_for_stop(Millis timeout);
    [[nodiscard]] Result<void> break_in();
    [[nodiscard]] Result<StopEvent> switch_processor(uint16_t cpu, Millis timeout);
    [[nodiscard]] Result<void> reboot();
    [[nodiscard]] Result<void> crash();
    [[nodiscard]] Result<void> detach();

    // ---- state while stopped ----
    // The registers of a processor. Integer: only the integer/control block is fetched
    // (GetContextEx on a live target; what r, the step line and the unwinder show and use), the
    // rest of the CONTEXT is zero unless known. Full: all of it (x87/SSE, vector registers).
    [[nodiscard]] Result<CONTEXT> context(std::optional<uint16_t> cpu = std::nullopt,
                                          ContextPart part = ContextPart::Full);
    [[nodiscard]] Result<void> set_context(const CONTEXT& ctx,
                                           std::optional<uint16_t> cpu = std::nullopt);
    [[nodiscard]] Result<MemoryBlock> read_virtual(uint64_t address, size_t size);
    [[nodiscard]] Result<size_t> write_virtual(uint64_t address, std::span<const uint8_t> data);
    [[nodiscard]] Result<MemoryBlock> read_physical(uint64_t address, size_t size);
    [[nodiscard]] Result<size_t> write_physical(uint64_t address, std::span<const uint8_t> data);
    [[nodiscard]] Result<TargetInfo> target_info();
    // Only what the connection banner and a stop line need (KernelInfo::basic): fewer bytes on
    // the first stop; KDDEBUGGER_DATA64 past BreakpointWithStatus may be zero in it.
    [[nodiscard]] Result<TargetInfo> connection_info();
    [[nodiscard]] Result<std::vector<Module>> modules();
    [[nodiscard]] Result<std::vector<UnloadedModule>> unloaded_modules();

    // ---- symbols ----
    std::optional<SymbolMatch> symbolize(uint64_t address);
    std::optional<uint64_t> lookup_symbol(std::string_view module, std::string_view name);
    std::optional<uint64_t> module_base(std::string_view module);
    // The symbol engine (path, !sym noisy, .reload, x, ln, dt); reads the module list first
    // when the target is stopped.
    Symbols& symbols();
    // The same without reading the module list: for look-ups of addresses whose module is
    // already known (symbolize() walks the list only as far as it must). A stop line's source
    // line must not cost the whole module list and KDDEBUGGER_DATA64 on a serial cable.
    Symbols& known_symbols() { return m_symbols; }

    // ---- expressions ----
    // Registers of the current processor, symbols and memory for the MASM evaluator.
    ExpressionCallbacks expression_callbacks();
    [[nodiscard]] Result<uint64_t> evaluate(std::string_view text);
    // $t0..$t19 (set by `r $t0 = ...`), and the automatic pseudo-registers by name ("$ip",
    // "$ra", "$ptrsize", "$pagesize", "$exentry", "$retreg", "$csp", "$bp0"...; no '@'),
    // nullopt when unknown or not computable now (PseudoRegisters.cpp).
    PseudoRegisters& pseudo_registers() { return m_pseudo; }
    std::optional<uint64_t> pseudo_register(std::string_view name);

    // The live parts (nullptr / error on a dump).
    LiveTarget* live() { return m_live; }
    // The dump (nullptr on a live target).
    DumpTarget* dump() { return m_dump; }
    protocol::KdSession& session();
    protocol::KdClient& client();

    Memory& memory() { return m_memory; }
    // .process / .thread / .cxr / .trap state (cleared when the target runs or switches
    // processor); read_virtual and stack_trace honour it.
    ImplicitScope& scope() { return m_scope; }

private:
    void wire();
    bool stopped() const { return state() == RunState::Stopped; }
    bool ensure_modules();

    std::unique_ptr<Target> m_target;
    LiveTarget* m_live = nullptr;
    DumpTarget* m_dump = nullptr;
    Memory m_memory;
    Contexts m_contexts;
    KernelInfo m_info;
    Modules m_modules;
    Symbols m_symbols;
    BreakpointManager m_breakpoints;
    StackWalker m_stack;
    std::unique_ptr<RunControl> m_run;
    StopEvent m_dump_stop;
    PseudoRegisters m_pseudo;
    ImplicitScope m_scope;
};

} // namespace kdcart::engine
