#include "engine/Debugger.h"

#include <algorithm>
#include <chrono>
#include <spdlog/spdlog.h>

namespace kdcart::engine {

using namespace protocol;
using Clock = std::chrono::steady_clock;

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kUserSharedData = 0xFFFFF78000000000ull;
constexpr size_t kMaxModules = 4096;

std::string narrow_utf16(const std::vector<uint8_t>& b) {
    std::string s;
    for (size_t i = 0; i + 1 < b.size(); i += 2) {
        uint16_t c = static_cast<uint16_t>(b[i] | (b[i + 1] << 8));
        s.push_back(c < 0x80 ? static_cast<char>(c) : '?');
    }
    return s;
}

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return r;
}
} // namespace

Debugger::Debugger(std::unique_ptr<transport::PacketLink> link, EngineDelegate* delegate,
                   SessionOptions options)
    : m_delegate(delegate) {
    SessionDelegate* self = this;
    m_session = std::make_unique<KdSession>(std::move(link), self, options);
    m_client = std::make_unique<KdClient>(*m_session);
}

Debugger::~Debugger() = default;

void Debugger::on_debug_print(std::string_view text) {
    if (m_delegate) {
        m_delegate->on_debug_print(text);
    }
}

std::string Debugger::on_debug_prompt(std::string_view prompt) {
    return m_delegate ? m_delegate->on_debug_prompt(prompt) : std::string();
}

void Debugger::on_target_reset() {
    m_target_was_reset = true;
}

void Debugger::on_link_notice(std::string_view text) {
    if (m_delegate) {
        m_delegate->on_notice(text);
    }
}

Result<StopEvent> Debugger::attach(const AttachOptions& options) {
    const auto start = Clock::now();
    auto timed_out = [&] {
        return options.connect_timeout && Clock::now() - start >= *options.connect_timeout;
    };
    bool said_waiting = false;
    bool breakin_sent = false;
    auto last_breakin = Clock::time_point{};
    for (;;) {
        if (m_session->has_state_change()) {
            break;
        }
        if (options.interrupted && options.interrupted()) {
            if (breakin_sent) {
                return make_error(Errc::Interrupted, "gave up waiting for the target");
            }
            m_breakin_requested = true;
        }
        const bool want_break = options.break_in || m_breakin_requested;
        if (want_break && Clock::now() - last_breakin > std::chrono::seconds(2)) {
            if (auto r = m_session->send_breakin(); !r) {
                return tl::unexpected(r.error());
            }
            m_breakin_requested = true;
            breakin_sent = true;
            last_breakin = Clock::now();
        }
        if (!m_session->synchronized()) {
            auto r = m_session->reset(Millis(1000));
            if (!r && r.error().code != Errc::Timeout) {
                return tl::unexpected(r.error());
            }
            if (!r && !said_waiting && !m_session->has_state_change()) {
                said_waiting = true;
                on_link_notice("Waiting to reconnect...");
            }
        } else {
            auto sc = m_session->wait_state_change(Millis(200));
            if (sc) {
                auto ev = first_stop(*sc);
                if (!ev || ev->kind != StopKind::LoadSymbols || m_break_on_load) {
                    return ev;
                }
                // A module load while nobody asked to stop: take it and keep waiting.
                if (auto r = filter_stop(*ev); !r) {
                    return tl::unexpected(r.error());
                }
                continue;
            }
            if (sc.error().code != Errc::Timeout) {
                return tl::unexpected(sc.error());
            }
        }
        if (timed_out()) {
            return make_error(Errc::Timeout,
                              "the target did not answer on " + m_session->describe_link());
        }
    }
    auto sc = m_session->wait_state_change(Millis(0));
    if (!sc) {
        return tl::unexpected(sc.error());
    }
    auto ev = first_stop(*sc);
    if (ev && ev->kind == StopKind::LoadSymbols && !m_break_on_load) {
        if (auto r = filter_stop(*ev); !r) {
            return tl::unexpected(r.error());
        }
        return attach(options); // the target runs again: keep waiting for a real stop
    }
    return ev;
}

Result<StopEvent> Debugger::first_stop(const StateChange& sc) {
    auto ev = enter_stop(sc);
    if (ev) {
        // As WinDbg does on connect: clear breakpoints an earlier session may have left.
        for (uint32_t handle = 1; handle <= 32; ++handle) {
            (void)m_client->restore_breakpoint(handle);
        }
    }
    return ev;
}

StopEvent Debugger::make_stop(const StateChange& sc) {
    const auto& c = sc.change;
    StopEvent ev;
    ev.processor = c.Processor;
    ev.num_processors = c.NumberProcessors ? c.NumberProcessors : 1;
    ev.thread = c.Thread;
    ev.pc = c.ProgramCounter;
    ev.report = c.ControlReport;
    switch (c.NewState) {
    case DbgKdExceptionStateChange: {
        const auto& rec = c.u.Exception.ExceptionRecord;
        ev.exception_code = rec.ExceptionCode;
        ev.exception_address = rec.ExceptionAddress;
        ev.first_chance = c.u.Exception.FirstChance != 0;
        for (uint32_t i = 0; i < std::min<uint32_t>(rec.NumberParameters, 15); ++i) {
            ev.exception_params.push_back(rec.ExceptionInformation[i]);
        }
        if (rec.ExceptionCode == STATUS_BREAKPOINT) {
            const bool at_break_site =
                m_info && m_info->kddata_found && ev.pc == m_info->kddata.BreakpointWithStatus;
            ev.kind = (m_breakin_requested || at_break_site) ? StopKind::BreakIn
                                                             : StopKind::Breakpoint;
        } else if (rec.ExceptionCode == STATUS_SINGLE_STEP) {
            ev.kind = StopKind::SingleStep;
        } else {
            ev.kind = StopKind::Exception;
        }
        break;
    }
    case DbgKdLoadSymbolsStateChange: {
        ev.kind = StopKind::LoadSymbols;
        ev.unload = c.u.LoadSymbols.UnloadSymbols != 0;
        ev.image_base = c.u.LoadSymbols.BaseOfDll;
        ev.image_size = c.u.LoadSymbols.SizeOfImage;
        size_t n = std::min<size_t>(c.u.LoadSymbols.PathNameLength, sc.extra.size());
        ev.image_path.assign(sc.extra.begin(), sc.extra.begin() + static_cast<long>(n));
        while (!ev.image_path.empty() && ev.image_path.back() == '\0') {
            ev.image_path.pop_back();
        }
        break;
    }
    case DbgKdCommandStringStateChange:
        ev.kind = StopKind::CommandString;
        break;
    default:
        ev.kind = StopKind::Other;
        break;
    }
    return ev;
}

void Debugger::forget_stop_state() {
    m_pages.clear();
    m_contexts.clear();
    m_dirty.clear();
}

Result<StopEvent> Debugger::enter_stop(const StateChange& sc) {
    forget_stop_state();
    m_cr3.reset();
    m_state = RunState::Stopped;
    m_processor = sc.change.Processor;
    m_client->set_current_processor(sc.change.Processor, sc.change.ProcessorLevel);
    // A target that started over may be a different boot: its code bytes, breakpoint handles
    // and debug registers are fresh. Forget the sites without restoring them, learn the
    // target again, and let the next go write everything back.
    const bool was_reset = m_target_was_reset;
    if (was_reset) {
        m_target_was_reset = false;
        m_sites.clear();
        m_info.reset();
        m_modules.reset();
        m_exports.clear();
        m_hw_dirty = true;
        m_programmed_dr7 = 0x400;
    }
    if (!m_info) {
        if (auto r = load_target_info(); !r) {
            on_link_notice("could not read the target's version: " + r.error().message);
        }
    }
    m_stop = make_stop(sc);
    m_breakin_requested = false;
    // WinDbg's model: no breakpoint stays in the target while it is stopped.
    remove_sites();
    if (was_reset) {
        resolve_deferred();
    }
    return m_stop;
}

Result<void> Debugger::load_target_info() {
    auto v = m_client->get_version();
    if (!v) {
        return tl::unexpected(v.error());
    }
    TargetInfo info;
    info.version = *v;
    info.num_processors = m_stop.num_processors;
    if (v->DebuggerDataList != 0) {
        auto head = m_client->read_virtual(v->DebuggerDataList, 8);
        if (head && head->bytes.size() == 8) {
            uint64_t p = *kd_decode<uint64_t>(head->bytes);
            auto blk = m_client->read_virtual(p, sizeof(KDDEBUGGER_DATA64));
            if (blk && blk->bytes.size() >= sizeof(DBGKD_DEBUG_DATA_HEADER64)) {
                auto hdr = kd_decode<DBGKD_DEBUG_DATA_HEADER64>(blk->bytes);
                if (hdr && hdr->OwnerTag == KDBG_TAG) {
                    // Fields past the target's own Size (or past what we read) stay zero.
                    auto bytes = blk->bytes;
                    size_t valid = std::min<size_t>(bytes.size(), hdr->Size);
                    bytes.resize(sizeof(KDDEBUGGER_DATA64), 0);
                    std::fill(bytes.begin() + static_cast<long>(valid), bytes.end(), 0);
                    info.kddata = *kd_decode<KDDEBUGGER_DATA64>(bytes);
                    info.kddata_found = true;
                    info.kddata_address = p;
                }
            }
        }
    }
    if (info.kddata_found && info.kddata.NtBuildLab != 0) {
        auto lab = m_client->read_virtual(info.kddata.NtBuildLab, 128);
        if (lab) {
            auto& b = lab->bytes;
            auto nul = std::find(b.begin(), b.end(), 0);
            info.build_lab.assign(b.begin(), nul);
        }
    }
    // KUSER_SHARED_DATA: NtMajorVersion @0x26C, NtMinorVersion @0x270.
    auto usd = m_client->read_virtual(kUserSharedData + 0x26C, 8);
    if (usd && usd->bytes.size() == 8) {
        info.nt_major = *kd_decode<uint32_t>(usd->bytes, 0);
        info.nt_minor = *kd_decode<uint32_t>(usd->bytes, 4);
    }
    m_info = std::move(info);
    return {};
}

Result<TargetInfo> Debugger::target_info() {
    if (!m_info) {
        if (m_state != RunState::Stopped) {
            return make_error(Errc::Unsupported, "the target is running");
        }
        if (auto r = load_target_info(); !r) {
            return tl::unexpected(r.error());
        }
    }
    m_info->num_processors = m_stop.num_processors;
    return *m_info;
}

Result<CONTEXT> Debugger::context(std::optional<uint16_t> cpu) {
    const uint16_t p = cpu.value_or(m_processor);
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (p >= m_stop.num_processors) {
        return make_error(Errc::InvalidArgument, "no processor " + std::to_string(p));
    }
    if (auto it = m_contexts.find(p); it != m_contexts.end()) {
        return it->second;
    }
    auto ctx = m_client->get_context(p);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    m_contexts[p] = *ctx;
    return *ctx;
}

Result<void> Debugger::set_context(const CONTEXT& ctx, std::optional<uint16_t> cpu) {
    const uint16_t p = cpu.value_or(m_processor);
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    m_contexts[p] = ctx;
    m_dirty[p] = true;
    return {};
}

Result<void> Debugger::write_back_contexts() {
    for (auto& [cpu, dirty] : m_dirty) {
        if (!dirty) {
            continue;
        }
        CONTEXT ctx = m_contexts[cpu];
        if (ctx.ContextFlags == 0) {
            ctx.ContextFlags = CONTEXT_FULL;
        }
        // Debug registers belong to the hardware breakpoints, which go through control space
        // and Continue2's Dr7; a stale copy here would overwrite them.
        ctx.ContextFlags &= ~(CONTEXT_DEBUG_REGISTERS & ~CONTEXT_AMD64);
        if (auto r = m_client->set_context(cpu, ctx); !r) {
            return r;
        }
        dirty = false;
    }
    return {};
}

Result<void> Debugger::resume(uint32_t status, bool trace) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    if (auto r = write_back_contexts(); !r) {
        return r;
    }
    AMD64_DBGKD_CONTROL_SET cs{};
    cs.TraceFlag = trace ? 1 : 0;
    cs.Dr7 = m_programmed_dr7 | 0x400; // WinDbg always keeps bit 10 set
    cs.CurrentSymbolStart = 1;
    cs.CurrentSymbolEnd = 0;
    // The control set is 4-byte packed: copy fields out before binding references to them.
    const uint64_t dr7 = cs.Dr7;
    const uint32_t trace_flag = cs.TraceFlag;
    spdlog::debug("engine: Continue2 status {:#x} trace {} dr7 {:#x}", status, trace_flag, dr7);
    if (auto r = m_client->continue2(status, cs); !r) {
        return r;
    }
    forget_stop_state();
    m_state = RunState::Running;
    return {};
}

Result<StopEvent> Debugger::wait_for_stop(Millis timeout) {
    if (m_state == RunState::Stopped) {
        return m_stop;
    }
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const auto now = Clock::now();
        const auto left = now >= deadline ? Millis(0)
                                          : std::chrono::duration_cast<Millis>(deadline - now);
        auto sc = m_session->wait_state_change(left);
        if (!sc) {
            return tl::unexpected(sc.error());
        }
        auto ev = enter_stop(*sc);
        if (!ev) {
            return ev;
        }
        auto decided = filter_stop(*ev);
        if (!decided) {
            return tl::unexpected(decided.error());
        }
        if (*decided) {
            m_stop = **decided;
            return m_stop;
        }
        // Handled inside the engine (a step off a breakpoint, a pass count, a module load):
        // the target is running again.
    }
}

Result<void> Debugger::break_in() {
    m_breakin_requested = true;
    return m_session->send_breakin();
}

Result<StopEvent> Debugger::switch_processor(uint16_t cpu, Millis timeout) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (cpu >= m_stop.num_processors) {
        return make_error(Errc::InvalidArgument,
                          "Processor " + std::to_string(cpu) + " does not exist (" +
                              std::to_string(m_stop.num_processors) + " processors)");
    }
    if (cpu == m_processor) {
        return m_stop;
    }
    if (auto r = write_back_contexts(); !r) {
        return tl::unexpected(r.error());
    }
    const StopEvent previous = m_stop;
    if (auto r = m_client->switch_processor(cpu); !r) {
        return tl::unexpected(r.error());
    }
    m_state = RunState::Running;
    auto sc = m_session->wait_state_change(timeout);
    if (!sc) {
        return tl::unexpected(sc.error());
    }
    auto ev = enter_stop(*sc);
    if (ev && ev->kind == StopKind::Breakpoint && previous.kind == StopKind::BreakIn) {
        m_stop.kind = StopKind::BreakIn; // the switched-to CPU reports the same break-in
    }
    return ev;
}

Result<void> Debugger::reboot() {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is not stopped");
    }
    if (auto r = m_client->reboot(); !r) {
        return r;
    }
    m_sites.clear(); // the reboot restored every code byte
    m_hw_dirty = true;
    forget_stop_state();
    m_info.reset();
    m_modules.reset();
    m_exports.clear();
    m_state = RunState::Running;
    return {};
}

Result<void> Debugger::detach() {
    if (m_state == RunState::Stopped) {
        // Leave nothing behind: the target runs on clean (sites are already out while stopped;
        // hardware breakpoints are cleared here).
        std::vector<uint32_t> ids;
        for (const auto* bp : m_breakpoints.all()) {
            ids.push_back(bp->id);
        }
        for (uint32_t id : ids) {
            (void)clear_breakpoint(id);
        }
        m_internal.clear();
        if (auto r = go(); !r) {
            return r;
        }
    }
    m_state = RunState::Detached;
    return {};
}

Result<MemoryBlock> Debugger::read_virtual(uint64_t address, size_t size) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (size > 256ull * 1024 * 1024 || address + size < address) {
        return make_error(Errc::InvalidArgument, "range too large");
    }
    return read_cached(address, size);
}

Result<MemoryBlock> Debugger::read_cached(uint64_t address, size_t size) {
    // Collect the byte ranges no cached page can answer, page by page, coalescing neighbours.
    std::vector<std::pair<uint64_t, uint64_t>> missing; // [start, end)
    const uint64_t end = address + size;
    for (uint64_t page = address & ~(kPage - 1); page < end; page += kPage) {
        Page& pg = m_pages[page];
        const uint64_t lo = std::max(address, page) - page;
        const uint64_t hi = std::min(end, page + kPage) - page;
        for (uint64_t off = lo; off < hi; ++off) {
            if (pg.valid[off] || off >= pg.unreadable_from) {
                continue;
            }
            const uint64_t va = page + off;
            if (!missing.empty() && missing.back().second == va) {
                missing.back().second = va + 1;
            } else {
                missing.emplace_back(va, va + 1);
            }
        }
        if (page + kPage < page) {
            break; // top of the address space
        }
    }
    for (auto [start, stop] : missing) {
        uint64_t cur = start;
        while (cur < stop) {
            const uint64_t len = stop - cur;
            auto r = m_client->read_virtual(cur, static_cast<uint32_t>(std::min<uint64_t>(len, 1u << 30)));
            if (!r) {
                return tl::unexpected(r.error());
            }
            const auto& got = r->bytes;
            for (size_t i = 0; i < got.size(); ++i) {
                const uint64_t va = cur + i;
                Page& pg = m_pages[va & ~(kPage - 1)];
                pg.data[va & (kPage - 1)] = got[i];
                pg.valid[va & (kPage - 1)] = true;
            }
            cur += got.size();
            if (cur >= stop) {
                break;
            }
            // The byte at `cur` failed: the rest of its page is not readable. Go on at the next
            // page, which may be present.
            Page& bad = m_pages[cur & ~(kPage - 1)];
            bad.unreadable_from = std::min<uint32_t>(bad.unreadable_from,
                                                     static_cast<uint32_t>(cur & (kPage - 1)));
            const uint64_t next = (cur & ~(kPage - 1)) + kPage;
            if (next <= cur) {
                break;
            }
            cur = next;
        }
    }
    MemoryBlock out;
    out.address = address;
    out.bytes.resize(size);
    out.valid.resize(size);
    for (size_t i = 0; i < size; ++i) {
        const uint64_t va = address + i;
        const Page& pg = m_pages[va & ~(kPage - 1)];
        const uint64_t off = va & (kPage - 1);
        if (pg.valid[off]) {
            out.bytes[i] = pg.data[off];
            out.valid[i] = true;
        }
    }
    return out;
}

Result<size_t> Debugger::write_virtual(uint64_t address, std::span<const uint8_t> data) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    auto r = m_client->write_virtual(address, data);
    for (uint64_t page = address & ~(kPage - 1); page < address + data.size(); page += kPage) {
        m_pages.erase(page);
    }
    if (!r) {
        return tl::unexpected(r.error());
    }
    return static_cast<size_t>(*r);
}

Result<MemoryBlock> Debugger::read_physical(uint64_t address, size_t size) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (size > 256ull * 1024 * 1024) {
        return make_error(Errc::InvalidArgument, "range too large");
    }
    MemoryBlock out;
    out.address = address;
    out.bytes.resize(size);
    out.valid.resize(size);
    uint64_t cur = address;
    const uint64_t end = address + size;
    while (cur < end) {
        auto r = m_client->read_physical(cur, static_cast<uint32_t>(end - cur));
        if (!r) {
            return tl::unexpected(r.error());
        }
        for (size_t i = 0; i < r->bytes.size(); ++i) {
            out.bytes[cur - address + i] = r->bytes[i];
            out.valid[cur - address + i] = true;
        }
        cur += r->bytes.size();
        if (cur < end) {
            cur = (cur & ~(kPage - 1)) + kPage; // skip the hole's page
        }
    }
    return out;
}

Result<size_t> Debugger::write_physical(uint64_t address, std::span<const uint8_t> data) {
    if (m_state != RunState::Stopped) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    m_pages.clear(); // a physical write can change any virtual view
    auto r = m_client->write_physical(address, data);
    if (!r) {
        return tl::unexpected(r.error());
    }
    return static_cast<size_t>(*r);
}

Result<std::vector<Module>> Debugger::modules() {
    if (m_state != RunState::Stopped) {
        if (m_modules) {
            return *m_modules;
        }
        return make_error(Errc::Unsupported, "the target is running");
    }
    auto info = target_info();
    if (!info) {
        return tl::unexpected(info.error());
    }
    const uint64_t head = info->version.PsLoadedModuleList;
    if (head == 0) {
        return make_error(Errc::NotFound, "the target reports no PsLoadedModuleList");
    }
    auto rd = [&](uint64_t va, size_t n) -> std::optional<std::vector<uint8_t>> {
        auto m = read_virtual(va, n);
        if (!m || !m->all_valid()) {
            return std::nullopt;
        }
        return m->bytes;
    };
    std::vector<Module> mods;
    auto first = rd(head, 8);
    if (!first) {
        return make_error(Errc::Unreadable, "PsLoadedModuleList is not readable");
    }
    uint64_t entry = *kd_decode<uint64_t>(*first);
    while (entry != head && entry != 0 && mods.size() < kMaxModules) {
        auto raw = rd(entry, sizeof(KLDR_DATA_TABLE_ENTRY64));
        if (!raw) {
            break; // a broken list ends the walk; what we have is still useful
        }
        auto e = *kd_decode<KLDR_DATA_TABLE_ENTRY64>(*raw);
        Module m;
        m.base = e.DllBase;
        m.size = e.SizeOfImage;
        m.checksum = e.CheckSum;
        m.timestamp = e.TimeDateStamp;
        m.entry_point = e.EntryPoint;
        auto str = [&](const UNICODE_STRING64& u) -> std::string {
            if (u.Length == 0 || u.Buffer == 0) {
                return {};
            }
            auto b = rd(u.Buffer, std::min<uint16_t>(u.Length, 1024));
            return b ? narrow_utf16(*b) : std::string();
        };
        m.file_name = str(e.BaseDllName);
        m.full_path = str(e.FullDllName);
        std::string stem = m.file_name.substr(0, m.file_name.rfind('.'));
        m.name = mods.empty() ? "nt" : lower(stem);
        if (auto it = m_exports.find(m.base); it != m_exports.end()) {
            m.symbols = Module::SymbolState::Exports;
        }
        mods.push_back(std::move(m));
        entry = e.InLoadOrderLinks.Flink;
        for (const auto& prev : mods) {
            if (prev.base == entry) {
                entry = 0; // a loop in the list
            }
        }
    }
    m_modules = mods;
    return mods;
}

const std::vector<ExportSymbol>* Debugger::exports_for(const Module& m) {
    if (auto it = m_exports.find(m.base); it != m_exports.end()) {
        return &it->second;
    }
    if (m_state != RunState::Stopped) {
        return nullptr;
    }
    auto reader = [&](uint32_t rva, uint32_t size) -> std::vector<uint8_t> {
        if (size > 16 * 1024 * 1024 || rva >= m.size) {
            return {};
        }
        auto blk = read_virtual(m.base + rva, size);
        if (!blk) {
            return {};
        }
        auto n = blk->readable_prefix();
        blk->bytes.resize(n);
        return blk->bytes;
    };
    auto ex = read_pe_exports(m.base, reader);
    auto& slot = m_exports[m.base];
    if (ex) {
        slot = std::move(*ex);
    }
    if (m_modules) {
        for (auto& mm : *m_modules) {
            if (mm.base == m.base) {
                mm.symbols = Module::SymbolState::Exports;
            }
        }
    }
    return &slot;
}

std::optional<SymbolMatch> Debugger::symbolize(uint64_t address) {
    if (!m_modules) {
        if (!modules()) {
            return std::nullopt;
        }
    }
    for (const auto& m : *m_modules) {
        if (address < m.base || address >= m.end()) {
            continue;
        }
        SymbolMatch match;
        match.module = m.name;
        match.address = m.base;
        match.displacement = address - m.base;
        const auto* ex = exports_for(m);
        if (ex && !ex->empty()) {
            auto it = std::upper_bound(
                ex->begin(), ex->end(), address,
                [](uint64_t a, const ExportSymbol& s) { return a < s.address; });
            if (it != ex->begin()) {
                --it;
                match.name = it->name;
                match.address = it->address;
                match.displacement = address - it->address;
            }
        }
        return match;
    }
    return std::nullopt;
}

std::optional<uint64_t> Debugger::module_base(std::string_view module) {
    if (!m_modules && !modules()) {
        return std::nullopt;
    }
    const std::string want = lower(module);
    for (const auto& m : *m_modules) {
        if (m.name == want || lower(m.file_name) == want) {
            return m.base;
        }
    }
    return std::nullopt;
}

std::optional<uint64_t> Debugger::lookup_symbol(std::string_view module, std::string_view name) {
    if (!m_modules && !modules()) {
        return std::nullopt;
    }
    const std::string want = lower(module);
    for (const auto& m : *m_modules) {
        if (m.name != want && lower(m.file_name) != want) {
            continue;
        }
        const auto* ex = exports_for(m);
        if (!ex) {
            return std::nullopt;
        }
        const std::string lname = lower(name);
        for (const auto& s : *ex) {
            if (s.name == name) {
                return s.address;
            }
        }
        for (const auto& s : *ex) {
            if (lower(s.name) == lname) {
                return s.address; // WinDbg symbol lookup is case-insensitive
            }
        }
        return std::nullopt;
    }
    return std::nullopt;
}

} // namespace kdcart::engine
