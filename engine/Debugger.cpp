#include "engine/Debugger.h"
#include "engine/BreakpointFilter.h"
#include "engine/ProcessMemory.h"

#include "engine/Registers.h"

#include <cstring>

namespace kdcart::engine {

using namespace protocol;

Debugger::Debugger(std::unique_ptr<transport::PacketLink> link, EngineDelegate* delegate,
                   SessionOptions options)
    : m_target(std::make_unique<LiveTarget>(std::move(link), delegate, options)),
      m_live(static_cast<LiveTarget*>(m_target.get())), m_memory(*m_target),
      m_contexts(*m_target), m_info(*m_target, m_memory), m_modules(m_memory),
      m_symbols(m_memory, m_modules), m_breakpoints(m_live, m_memory),
      m_stack(m_memory, m_modules) {
    m_run = std::make_unique<RunControl>(RunParts{*m_live, m_memory, m_contexts, m_info, m_modules,
                                                  m_symbols, m_breakpoints, m_stack});
    m_memory.set_running(true); // nothing is readable before the first stop
    wire();
}

Debugger::Debugger(std::unique_ptr<Target> target, StopEvent stop)
    : m_target(std::move(target)), m_memory(*m_target), m_contexts(*m_target),
      m_info(*m_target, m_memory), m_modules(m_memory), m_symbols(m_memory, m_modules),
      m_breakpoints(nullptr, m_memory), m_stack(m_memory, m_modules), m_dump_stop(std::move(stop)) {
    m_dump = dynamic_cast<DumpTarget*>(m_target.get());
    wire();
}

Debugger::~Debugger() = default;

void Debugger::wire() {
    if (m_run) {
        // bp /p /t: the current thread and process at a hit (engine/BreakpointFilter).
        m_run->set_breakpoint_matcher([this](const Breakpoint& bp, const StopEvent& stop) {
            return BreakpointFilter(*this).matches(bp, stop);
        });
    }
    // Deferred breakpoints resolve through the same evaluator the user's commands use.
    m_breakpoints.set_resolver([this](const std::string& text) -> std::optional<uint64_t> {
        auto v = evaluate_expression(text, expression_callbacks());
        if (!v) {
            return std::nullopt;
        }
        return *v;
    });
}

protocol::KdSession& Debugger::session() {
    return m_live->session();
}

protocol::KdClient& Debugger::client() {
    return m_live->client();
}

Result<StopEvent> Debugger::attach(const AttachOptions& options) {
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->attach(options);
}

// ---- breakpoints -----------------------------------------------------------------------------

Result<BreakpointResult> Debugger::set_breakpoint(const BreakpointRequest& request) {
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_breakpoints.set(request);
}

Result<void> Debugger::clear_breakpoint(uint32_t id) {
    return m_breakpoints.clear(id);
}

Result<void> Debugger::enable_breakpoint(uint32_t id, bool enable) {
    return m_breakpoints.enable(id, enable);
}

Result<Translation> Debugger::translate(uint64_t va) {
    if (!stopped()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    return m_memory.translate(va, current_processor());
}

Result<void> Debugger::page_in(uint64_t va) {
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    if (!stopped()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    return m_live->client().page_in(va);
}

Result<std::vector<StackFrame>> Debugger::stack_trace(size_t max_frames) {
    if (m_scope.context) { // .thread / .cxr / .trap
        ensure_modules();
        return m_stack.walk(*m_scope.context, max_frames);
    }
    auto ctx = context(std::nullopt, ContextPart::Integer);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    ensure_modules();
    return m_stack.walk(*ctx, max_frames);
}

std::vector<StackFrame> Debugger::stack_trace_from(const CONTEXT& context, size_t max_frames) {
    ensure_modules();
    return m_stack.walk(context, max_frames);
}

void Debugger::remove_all_breakpoints_from_target() {
    if (m_run) {
        m_run->remove_all_breakpoints_from_target();
    }
}

// ---- run control -----------------------------------------------------------------------------

Result<void> Debugger::go() {
    m_scope.reset();
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->go();
}

Result<void> Debugger::go_until(uint64_t address) {
    m_scope.reset();
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->go_until(address);
}

Result<void> Debugger::step(StepKind kind) {
    m_scope.reset();
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->step(kind);
}

void Debugger::set_break_on_module_load(bool on) {
    if (m_run) {
        m_run->set_break_on_module_load(on);
    }
}

void Debugger::set_exception_policy(uint32_t code, ExceptionPolicy policy) {
    if (m_run) {
        m_run->set_exception_policy(code, policy);
    }
}

ExceptionPolicy Debugger::exception_policy(uint32_t code) const {
    return m_run ? m_run->exception_policy(code) : ExceptionPolicy::Break;
}

Result<StopEvent> Debugger::wait_for_stop(Millis timeout) {
    if (!m_run) {
        return m_dump_stop;
    }
    return m_run->wait_for_stop(timeout);
}

Result<void> Debugger::break_in() {
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->break_in();
}

Result<StopEvent> Debugger::switch_processor(uint16_t cpu, Millis timeout) {
    m_scope.reset();
    if (!m_run) {
        // A dump holds every processor's context: switching is only a change of view.
        if (cpu >= m_dump_stop.num_processors) {
            return make_error(Errc::InvalidArgument,
                              "Processor " + std::to_string(cpu) + " does not exist (" +
                                  std::to_string(m_dump_stop.num_processors) + " processors)");
        }
        if (!m_dump) {
            return tl::unexpected(not_runnable());
        }
        if (auto r = m_dump->set_current_processor(cpu); !r) {
            return tl::unexpected(r.error());
        }
        m_dump_stop.processor = cpu;
        // As on a live target, the stop now stands at that processor's instruction.
        if (auto ctx = m_dump->get_context(cpu); ctx) {
            m_dump_stop.pc = ctx->Rip;
        }
        return m_dump_stop;
    }
    return m_run->switch_processor(cpu, timeout);
}

Result<void> Debugger::reboot() {
    m_scope.reset();
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->reboot();
}

Result<void> Debugger::crash() {
    if (!m_run) {
        return tl::unexpected(not_runnable());
    }
    return m_run->crash();
}

Result<void> Debugger::detach() {
    if (!m_run) {
        return {};
    }
    return m_run->detach();
}

// ---- state while stopped ---------------------------------------------------------------------

Result<CONTEXT> Debugger::context(std::optional<uint16_t> cpu, ContextPart part) {
    const uint16_t p = cpu.value_or(current_processor());
    if (!stopped()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (p >= num_processors()) {
        return make_error(Errc::InvalidArgument, "no processor " + std::to_string(p));
    }
    return m_contexts.get(p, part);
}

Result<void> Debugger::set_context(const CONTEXT& ctx, std::optional<uint16_t> cpu) {
    if (!stopped()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    m_contexts.set(cpu.value_or(current_processor()), ctx);
    return {};
}

Result<MemoryBlock> Debugger::read_virtual(uint64_t address, size_t size) {
    if (m_scope.translate_user && is_user_address(address)) { // .process /p
        return read_process_memory(*this, m_scope.process_dtb, address, size);
    }
    return m_memory.read_virtual(address, size);
}

Result<size_t> Debugger::write_virtual(uint64_t address, std::span<const uint8_t> data) {
    return m_memory.write_virtual(address, data);
}

Result<MemoryBlock> Debugger::read_physical(uint64_t address, size_t size) {
    return m_memory.read_physical(address, size);
}

Result<size_t> Debugger::write_physical(uint64_t address, std::span<const uint8_t> data) {
    return m_memory.write_physical(address, data);
}

Result<TargetInfo> Debugger::target_info() {
    auto info = m_info.get();
    if (info) {
        info->num_processors = num_processors();
    }
    return info;
}

Result<TargetInfo> Debugger::connection_info() {
    auto info = m_info.basic();
    if (info) {
        info->num_processors = num_processors();
    }
    return info;
}

bool Debugger::ensure_modules() {
    if (m_modules.known()) {
        return true;
    }
    return static_cast<bool>(modules());
}

Result<std::vector<Module>> Debugger::modules() {
    if (!stopped()) {
        if (m_modules.known()) {
            return *m_modules.known();
        }
        return make_error(Errc::Unsupported, "the target is running");
    }
    auto info = target_info();
    if (!info) {
        return tl::unexpected(info.error());
    }
    auto list = m_modules.list(info->version.PsLoadedModuleList);
    if (!list) {
        return list;
    }
    m_symbols.annotate(*list);
    return list;
}

Result<std::vector<UnloadedModule>> Debugger::unloaded_modules() {
    if (!stopped()) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    auto info = target_info();
    if (!info) {
        return tl::unexpected(info.error());
    }
    return m_modules.unloaded(*info);
}

// ---- symbols ---------------------------------------------------------------------------------

std::optional<SymbolMatch> Debugger::symbolize(uint64_t address) {
    if (!m_modules.known()) {
        // Only as much of the module list as this address needs: a stop line names one module.
        auto info = stopped() ? connection_info()
                              : Result<TargetInfo>(tl::unexpected(not_runnable()));
        if (!info || !m_modules.find_walking(info->version.PsLoadedModuleList, address)) {
            return std::nullopt;
        }
    }
    return m_symbols.symbolize(address);
}

std::optional<uint64_t> Debugger::module_base(std::string_view module) {
    if (!ensure_modules()) {
        return std::nullopt;
    }
    const Module* m = m_modules.find_by_name(module);
    if (!m) {
        return std::nullopt;
    }
    return m->base;
}

Symbols& Debugger::symbols() {
    if (stopped()) {
        ensure_modules();
    }
    return m_symbols;
}

std::optional<uint64_t> Debugger::lookup_symbol(std::string_view module, std::string_view name) {
    if (!ensure_modules()) {
        return std::nullopt;
    }
    return m_symbols.lookup(module, name);
}

// ---- expressions -----------------------------------------------------------------------------

ExpressionCallbacks Debugger::expression_callbacks() {
    ExpressionCallbacks cb;
    cb.register_value = [this](std::string_view name) -> std::optional<uint64_t> {
        if (!name.empty() && name[0] == '$') {
            return pseudo_register(name);
        }
        auto ctx = context(std::nullopt, ContextPart::Integer);
        if (!ctx) {
            return std::nullopt;
        }
        std::string n = lower_ascii(name);
        if (n == "$ip") {
            return ctx->Rip;
        }
        return get_register(*ctx, n);
    };
    cb.symbol_value = [this](std::string_view name) -> std::optional<uint64_t> {
        auto bang = name.find('!');
        if (bang == std::string_view::npos) {
            return module_base(name);
        }
        return lookup_symbol(name.substr(0, bang), name.substr(bang + 1));
    };
    cb.source_line = [this](std::string_view spec) -> Result<uint64_t> {
        std::optional<uint64_t> pc;
        if (auto ctx = context(std::nullopt, ContextPart::Integer)) {
            pc = ctx->Rip;
        }
        return symbols().source_address(spec, pc);
    };
    cb.read_memory = [this](uint64_t addr, int size) -> std::optional<uint64_t> {
        auto m = read_virtual(addr, static_cast<size_t>(size));
        if (!m || !m->all_valid()) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, m->bytes.data(), static_cast<size_t>(size));
        return v;
    };
    return cb;
}

Result<uint64_t> Debugger::evaluate(std::string_view text) {
    return evaluate_expression(text, expression_callbacks());
}

} // namespace kdcart::engine
