#include "hw/KdTarget.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace kdcart::hw {

using namespace protocol;
using transport::KdPacket;
using transport::LinkEvent;
using transport::LinkEventKind;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

namespace {

constexpr uint32_t KD_BREAKPOINT_ACTIVE = KdTarget::BREAKPOINT_ACTIVE;
constexpr uint32_t KD_BREAKPOINT_PENDING = KdTarget::BREAKPOINT_PENDING;
constexpr uint32_t KD_BREAKPOINT_EXPIRED = KdTarget::BREAKPOINT_EXPIRED;
constexpr uint32_t KD_BREAKPOINT_LIFTED = KdTarget::BREAKPOINT_LIFTED;
constexpr uint16_t PROCESSOR_LEVEL = 6; // CPU family, as x64 targets report it
constexpr uint32_t STATUS_NO_SUCH_DEVICE = 0xC000000E;
constexpr uint32_t KMODE_EXCEPTION_NOT_HANDLED = 0x1E;
constexpr uint32_t MANUALLY_INITIATED_CRASH = 0xE2;
constexpr uint64_t DR6_RESERVED_ONES = 0xFFFF0FF0;
constexpr uint8_t INT3 = 0xCC;

template <class T> std::span<const uint8_t> bytes_of(const T& v) {
    return {reinterpret_cast<const uint8_t*>(&v), sizeof(T)};
}

bool is_exception(StopKind kind) {
    return kind == StopKind::Breakpoint || kind == StopKind::SingleStep ||
           kind == StopKind::HardwareBreakpoint || kind == StopKind::Fault;
}

} // namespace

KdTarget::KdTarget(SimMachine& machine, KdTargetOptions options)
    : m_machine(machine), m_options(options) {
    // Owed breakpoints go in as soon as the guest pages their page back in.
    m_machine.set_page_in_callback([this](uint64_t) {
        if (m_owed) {
            set_owed_breakpoints();
        }
    });
    set_debugger_not_present(true);
}

KdTarget::~KdTarget() {
    m_machine.set_page_in_callback({});
}

// Packet ids per link (kd-protocol.md §1.4, §4.4): KDCOM starts at INITIAL|SYNC and toggles
// bit 0; KDNET counts up by 2 from 0 (target) and from 0x80000000 (host), without SYNC.
bool KdTarget::kdnet() const {
    return m_link && m_link->id_scheme() == transport::IdScheme::Kdnet;
}

// 1394 (kd-protocol.md §5.2): ids simply increase; delivery is the host clearing the mailbox,
// which the link reports as an ACK.
bool KdTarget::ieee1394() const {
    return m_link && m_link->id_scheme() == transport::IdScheme::Kd1394;
}

void KdTarget::reset_ids(bool on_reset) {
    if (ieee1394()) {
        m_send_id = INITIAL_PACKET_ID;
        m_recv_id = INITIAL_PACKET_ID;
        return;
    }
    if (kdnet()) {
        // A KDNET RESET resynchronises the host's ids; the target keeps counting its own
        // (the Win8.1 capture answers RESET with id 0x926). A reboot starts from 0.
        if (!on_reset) {
            m_send_id = 0;
        }
        m_recv_id = KDNET_HOST_INITIAL_ID;
        return;
    }
    m_send_id = INITIAL_PACKET_ID | SYNC_PACKET_ID;
    m_recv_id = INITIAL_PACKET_ID;
}

bool KdTarget::ack_matches(uint32_t id) const {
    if (kdnet() || ieee1394()) {
        return id == m_send_id;
    }
    return (id & ~SYNC_PACKET_ID) == (m_send_id & ~SYNC_PACKET_ID);
}

void KdTarget::advance_send_id() {
    if (kdnet()) {
        m_send_id += 2;
    } else if (ieee1394()) {
        m_send_id += 1;
    } else {
        m_send_id = (m_send_id ^ 1) & ~SYNC_PACKET_ID;
    }
}

uint32_t KdTarget::next_recv_id(uint32_t id) const {
    return kdnet() ? id + 2 : ieee1394() ? id + 1 : id ^ 1;
}

bool KdTarget::is_previous_recv_id(uint32_t id) const {
    if (kdnet() || ieee1394()) {
        return id + (kdnet() ? 2 : 1) == m_recv_id;
    }
    return id == (m_recv_id ^ 1);
}

void KdTarget::attach(std::unique_ptr<transport::PacketLink> link) {
    m_link = std::move(link);
    reset_ids(/*on_reset=*/false);
    lose_host(); // until it says something
    if (m_link) {
        spdlog::debug("kd: attached {}", m_link->describe());
    }
}

std::unique_ptr<transport::PacketLink> KdTarget::detach() {
    lose_host();
    if (m_out && m_out->optional) {
        outstanding_done(false);
    }
    return std::move(m_link);
}

void KdTarget::note_host() {
    if (!m_host_present) {
        m_host_present = true;
        set_debugger_not_present(false);
        spdlog::debug("kd: host present");
    }
}

void KdTarget::lose_host() {
    if (m_host_present) {
        m_host_present = false;
        set_debugger_not_present(true);
        spdlog::debug("kd: host gone");
    }
}

void KdTarget::set_debugger_not_present(bool not_present) {
    if (auto va = m_machine.address_of("nt", "KdDebuggerNotPresent")) {
        uint8_t v = not_present ? 1 : 0;
        m_machine.write_virtual(*va, {&v, 1});
    }
}

// ---------------------------------------------------------------------------------------------
// the step loop
// ---------------------------------------------------------------------------------------------

StepStatus KdTarget::step() {
    if (m_out && m_out->optional && (!m_link || !m_host_present)) {
        outstanding_done(false); // nobody to print to
    }
    if (m_mode == Mode::Running && !m_out) {
        StepStatus status = StepStatus::Ok;
        if (m_link) {
            status = pump(Millis(1)); // the break-in poll
        }
        if (m_mode == Mode::Running && !m_out) {
            run_machine();
        }
        return status;
    }
    if (!m_link) {
        std::this_thread::sleep_for(Millis(20));
        return StepStatus::LinkDown;
    }
    if (service_outstanding() == StepStatus::LinkDown) {
        return StepStatus::LinkDown;
    }
    if (m_mode == Mode::Running && !m_out) {
        return StepStatus::Ok;
    }
    Millis wait = m_options.wait_slice;
    if (m_out && m_out->sent && m_host_present) {
        auto left = std::chrono::duration_cast<Millis>(m_out->resend_at - Clock::now());
        wait = std::clamp(left, Millis(1), wait);
    }
    return pump(wait);
}

void KdTarget::run_machine() {
    if (m_break_pending) {
        m_break_pending = false;
        m_machine.force_break_in(m_options.break_in_cpu);
    }
    RunResult r = m_machine.run(m_options.budget);
    switch (r.kind) {
    case StopKind::SliceEnd:
    case StopKind::Halted:
        return;
    case StopKind::DebugPrint: {
        if (!m_link || !m_host_present) {
            m_stats.prints_dropped++;
            return;
        }
        size_t room = PACKET_MAX_SIZE - sizeof(DBGKD_DEBUG_IO);
        std::string_view text(r.text);
        text = text.substr(0, room);
        auto io = kd_zero<DBGKD_DEBUG_IO>();
        io.ApiNumber = DbgKdPrintStringApi;
        io.ProcessorLevel = PROCESSOR_LEVEL;
        io.Processor = static_cast<uint16_t>(r.cpu);
        io.u.PrintString.LengthOfString = static_cast<uint32_t>(text.size());
        std::vector<uint8_t> payload;
        kd_append(payload, io);
        payload.insert(payload.end(), text.begin(), text.end());
        queue(OutKind::Print, PACKET_TYPE_KD_DEBUG_IO, std::move(payload), true);
        return;
    }
    case StopKind::LoadSymbols:
    case StopKind::UnloadSymbols:
        if (!m_link || !m_host_present) {
            return; // KdDebuggerNotPresent: not reported
        }
        enter_stop(r);
        return;
    case StopKind::Reboot: {
        // KeBugCheck2 after the debugger let it go: the crash dump, then HalReturnToFirmware.
        auto data = m_machine.bugcheck_data();
        spdlog::info("kdsim: writing crash dump (bug check {:#010x}) to C:\\Windows\\MEMORY.DMP",
                     data[0]);
        m_stats.crash_reboots++;
        reboot_machine();
        return;
    }
    default:
        enter_stop(r);
        return;
    }
}

void KdTarget::enter_stop(const RunResult& stop) {
    m_mode = Mode::Stopped;
    m_stop = stop;
    m_stop_cpu = stop.cpu;
    m_first_chance = true;
    m_switch_stop = false;
    m_break_pending = false;
    m_stats.state_changes++;
    set_owed_breakpoints();
    m_state_change = build_state_change();
    spdlog::debug("kd: stop {} on cpu {} at {:#x}", stop_kind_name(stop.kind), stop.cpu, stop.pc);
    queue_state_change();
}

void KdTarget::queue(OutKind kind, uint16_t type, std::vector<uint8_t> payload, bool optional) {
    Outstanding out;
    out.kind = kind;
    out.packet.type = type;
    out.packet.payload = std::move(payload);
    out.optional = optional;
    out.retries_left = m_options.optional_retries;
    m_out = std::move(out);
    m_wake = true;
}

void KdTarget::queue_state_change() {
    write_snapshot();
    bool optional = m_stop.kind == StopKind::LoadSymbols || m_stop.kind == StopKind::UnloadSymbols;
    queue(OutKind::StateChange, PACKET_TYPE_KD_STATE_CHANGE64, m_state_change, optional);
}

StepStatus KdTarget::service_outstanding() {
    if (!m_out) {
        return StepStatus::Ok;
    }
    if (!m_host_present) {
        if (m_out->optional) {
            outstanding_done(false);
        }
        // State changes and replies wait until the host talks (it will send RESET).
        return StepStatus::Ok;
    }
    auto now = Clock::now();
    if (m_out->sent && now < m_out->resend_at) {
        return StepStatus::Ok;
    }
    if (m_out->sent) {
        if (m_out->optional) {
            if (m_out->retries_left == 0) {
                spdlog::debug("kd: no ACK after {} retries, debugger not present",
                              m_options.optional_retries);
                lose_host();
                outstanding_done(false);
                return StepStatus::Ok;
            }
            m_out->retries_left--;
        }
        spdlog::debug("kd: no ACK in {} ms, sending again", m_options.ack_timeout.count());
        m_stats.resends++;
    }
    if (send_now(m_out->packet) == StepStatus::LinkDown) {
        return StepStatus::LinkDown;
    }
    m_out->sent = true;
    m_out->resend_at = Clock::now() + m_options.ack_timeout;
    return StepStatus::Ok;
}

StepStatus KdTarget::send_now(KdPacket& packet) {
    packet.id = m_send_id;
    auto r = link_send(packet);
    if (!r) {
        spdlog::debug("kd: send failed: {}", r.error().message);
        lose_host();
        return StepStatus::LinkDown;
    }
    m_stats.packets_sent++;
    return StepStatus::Ok;
}

void KdTarget::send_control(uint16_t type, uint32_t id) {
    if (!m_link) {
        return;
    }
    KdPacket p;
    p.type = type;
    p.id = id;
    if (auto r = link_send(p); !r) {
        spdlog::debug("kd: control send failed: {}", r.error().message);
    }
}

// Every packet goes out here: counted for mute_after_bytes, dropped while muted (a pulled
// cable: the sender never knows).
Result<void> KdTarget::link_send(const KdPacket& packet) {
    if (link_muted()) {
        m_stats.muted_packets_out++;
        return {};
    }
    auto r = m_link->send(packet);
    if (!r) {
        return r;
    }
    // Header, payload and (KDCOM data packets) the trailing 0xAA: what the wire carries.
    uint64_t bytes = 16 + packet.payload.size() + (!kdnet() && !packet.is_control() ? 1 : 0);
    m_stats.bytes_sent += bytes;
    if (m_options.mute_after_bytes != 0 && !m_mute_done &&
        m_stats.bytes_sent >= m_options.mute_after_bytes) {
        m_mute_done = true;
        m_muted = true;
        m_mute_until = Clock::now() + m_options.mute_for;
        spdlog::info("kdsim: link muted for {} ms after {} bytes sent (--mute-after-bytes)",
                     m_options.mute_for.count(), m_stats.bytes_sent);
    }
    return {};
}

bool KdTarget::link_muted() {
    if (m_muted && Clock::now() >= m_mute_until) {
        m_muted = false;
        spdlog::info("kdsim: link back after {} ms muted ({} packets dropped, {} ignored)",
                     m_options.mute_for.count(), m_stats.muted_packets_out,
                     m_stats.muted_events_in);
    }
    return m_muted;
}

void KdTarget::write_snapshot() {
    if (m_options.phys_snapshot.empty() || m_snapshot_current) {
        return;
    }
    if (auto r = m_machine.write_physical_snapshot(m_options.phys_snapshot); !r) {
        spdlog::error("kdsim: physical memory snapshot: {}", r.error().message);
        return;
    }
    m_stats.snapshots++;
    m_snapshot_current = true;
    spdlog::debug("kd: physical memory written to {}", m_options.phys_snapshot.string());
}

// A reboot (DbgKdRebootApi, or a bug check's end): the machine as at power-on, an empty
// breakpoint table, ids from the start (the host resynchronises with RESET).
void KdTarget::reboot_machine() {
    m_snapshot_current = false;
    for (uint32_t c = 0; c < m_machine.num_cpus(); c++) {
        m_machine.set_trace_flag(c, false);
    }
    if (auto r = m_machine.reboot(); !r) {
        spdlog::error("kd: reboot failed: {}", r.error().message);
    }
    m_breakpoints = {};
    m_owed = false;
    m_mode = Mode::Running;
    reset_ids(/*on_reset=*/false);
    if (m_link) {
        m_link->restart(); // KDNET: a rebooted target offers a new session
    }
    set_debugger_not_present(!m_host_present);
}

void KdTarget::outstanding_done(bool acked) {
    if (!m_out) {
        return;
    }
    OutKind kind = m_out->kind;
    m_out.reset();
    m_wake = true;
    switch (kind) {
    case OutKind::Print:
        if (acked) {
            m_stats.prints_sent++;
        } else {
            m_stats.prints_dropped++;
        }
        break;
    case OutKind::StateChange:
        if (!acked) {
            m_mode = Mode::Running; // an optional LoadSymbols nobody took
            m_snapshot_current = false;
        }
        break;
    case OutKind::Reply:
        break;
    }
}

StepStatus KdTarget::pump(Millis timeout) {
    auto deadline = Clock::now() + timeout;
    m_wake = false;
    for (;;) {
        auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
        auto ev = m_link->receive(std::max(left, Millis(1)));
        if (!ev) {
            if (ev.error().code == Errc::Timeout) {
                return StepStatus::Ok;
            }
            spdlog::debug("kd: link: {}", ev.error().message);
            lose_host();
            return StepStatus::LinkDown;
        }
        if (link_muted()) {
            m_stats.muted_events_in++; // deaf: as if it never arrived
            if (Clock::now() >= deadline) {
                return StepStatus::Ok;
            }
            continue;
        }
        handle_event(*ev);
        if (m_wake || Clock::now() >= deadline) {
            return StepStatus::Ok;
        }
    }
}

void KdTarget::handle_event(const LinkEvent& event) {
    switch (event.kind) {
    case LinkEventKind::BreakIn:
        note_host();
        if (m_mode == Mode::Running) {
            m_break_pending = true;
            m_wake = true;
        }
        break;
    case LinkEventKind::BadPacket:
        spdlog::debug("kd: bad packet ({}), asking for a resend", event.detail);
        m_stats.resends_asked++;
        send_control(PACKET_TYPE_KD_RESEND, 0);
        break;
    case LinkEventKind::Packet:
        m_stats.packets_received++;
        handle_packet(event.packet);
        break;
    }
}

void KdTarget::handle_packet(const KdPacket& p) {
    note_host();
    switch (p.type) {
    case PACKET_TYPE_KD_ACKNOWLEDGE:
        if (m_out && m_out->sent && ack_matches(p.id)) {
            advance_send_id();
            outstanding_done(true);
        }
        return;
    case PACKET_TYPE_KD_RESEND:
        spdlog::debug("kd: RESEND from host");
        handle_reset_or_resend(false);
        return;
    case PACKET_TYPE_KD_RESET:
        spdlog::debug("kd: RESET from host");
        m_stats.resets++;
        reset_ids(/*on_reset=*/true);
        send_control(PACKET_TYPE_KD_RESET, m_send_id);
        handle_reset_or_resend(true);
        return;
    default:
        break;
    }
    if (p.leader == CONTROL_PACKET_LEADER) {
        return; // an unknown control packet
    }
    if (ieee1394() && p.id != m_recv_id && !is_previous_recv_id(p.id)) {
        m_recv_id = p.id; // the mailbox delivers in order: take the host's numbering
    }
    if (p.id == m_recv_id) {
        send_control(PACKET_TYPE_KD_ACKNOWLEDGE, p.id);
        m_recv_id = next_recv_id(m_recv_id);
    } else if (is_previous_recv_id(p.id)) {
        // Our ACK was lost and the host sent it again.
        send_control(PACKET_TYPE_KD_ACKNOWLEDGE, p.id);
        m_stats.duplicates++;
        return;
    } else {
        spdlog::debug("kd: unexpected packet id {:#x} (want {:#x})", p.id, m_recv_id);
        m_stats.resends_asked++;
        send_control(PACKET_TYPE_KD_RESEND, 0);
        return;
    }
    if (p.type != PACKET_TYPE_KD_STATE_MANIPULATE) {
        spdlog::debug("kd: ignoring host packet type {}", p.type);
        return;
    }
    if (m_out && m_out->sent && m_out->kind != OutKind::Print) {
        // A new request means the host has our last packet; its ACK got lost.
        advance_send_id();
        outstanding_done(true);
    }
    if (m_mode != Mode::Stopped || (m_out && m_out->kind == OutKind::StateChange)) {
        spdlog::debug("kd: manipulate request while not stopped, ignored");
        return;
    }
    handle_manipulate(p.payload);
}

void KdTarget::handle_reset_or_resend(bool reset) {
    (void)reset;
    m_wake = true;
    if (m_out) {
        if (m_out->sent) {
            m_out->sent = false; // send again now (with the new id after a RESET)
            m_stats.resends++;
        }
        return;
    }
    if (m_mode == Mode::Stopped) {
        // As KdpSendWaitContinue: back to sending the state change.
        queue_state_change();
    }
}

// ---------------------------------------------------------------------------------------------
// state change
// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> KdTarget::build_state_change() {
    uint32_t cpu = m_stop_cpu;
    CONTEXT ctx = m_machine.get_context(cpu);
    auto sc = kd_zero<DBGKD_ANY_WAIT_STATE_CHANGE>();
    sc.ProcessorLevel = PROCESSOR_LEVEL;
    sc.Processor = static_cast<uint16_t>(cpu);
    sc.NumberProcessors = m_machine.num_cpus();
    sc.Thread = m_machine.current_thread(cpu);
    sc.ProgramCounter = ctx.Rip;
    std::string path;
    if (m_stop.kind == StopKind::LoadSymbols || m_stop.kind == StopKind::UnloadSymbols) {
        path = m_stop.symbols.path;
        sc.NewState = DbgKdLoadSymbolsStateChange;
        sc.u.LoadSymbols.PathNameLength = static_cast<uint32_t>(path.size() + 1);
        sc.u.LoadSymbols.BaseOfDll = m_stop.symbols.base;
        sc.u.LoadSymbols.ProcessId = 0;
        sc.u.LoadSymbols.CheckSum = m_stop.symbols.checksum;
        sc.u.LoadSymbols.SizeOfImage = m_stop.symbols.size;
        sc.u.LoadSymbols.UnloadSymbols = m_stop.kind == StopKind::UnloadSymbols ? 1 : 0;
    } else {
        sc.NewState = DbgKdExceptionStateChange;
        auto& rec = sc.u.Exception.ExceptionRecord;
        rec.ExceptionCode = m_stop.exception_code;
        rec.ExceptionAddress = m_stop.exception_address;
        rec.NumberParameters = m_stop.number_parameters;
        rec.ExceptionInformation[0] = m_stop.exception_information[0];
        rec.ExceptionInformation[1] = m_stop.exception_information[1];
        sc.u.Exception.FirstChance = m_first_chance ? 1 : 0;
    }
    // KdpSetCommonState: KD's own breakpoints in the reported window come out of memory (and
    // so out of the reported bytes). An image being unloaded loses all of them.
    lift_breakpoints_in(ctx.Rip, ctx.Rip + 16);
    if (m_stop.kind == StopKind::UnloadSymbols) {
        lift_breakpoints_in(m_stop.symbols.base, m_stop.symbols.base + m_stop.symbols.size);
    }
    KSPECIAL_REGISTERS s = m_machine.get_special(cpu);
    auto& cr = sc.ControlReport;
    cr.Dr6 = s.KernelDr6 | DR6_RESERVED_ONES;
    cr.Dr7 = s.KernelDr7;
    cr.EFlags = ctx.EFlags;
    cr.InstructionCount =
        static_cast<uint16_t>(m_machine.read_virtual(ctx.Rip, cr.InstructionStream));
    cr.ReportFlags = AMD64_REPORT_INCLUDES_SEGS | AMD64_REPORT_STANDARD_CS;
    cr.SegCs = ctx.SegCs;
    cr.SegDs = ctx.SegDs;
    cr.SegEs = ctx.SegEs;
    cr.SegFs = ctx.SegFs;
    std::vector<uint8_t> payload;
    kd_append(payload, sc);
    if (!path.empty() || sc.NewState == DbgKdLoadSymbolsStateChange) {
        payload.insert(payload.end(), path.begin(), path.end());
        payload.push_back(0);
    }
    return payload;
}

// ---------------------------------------------------------------------------------------------
// manipulate requests
// ---------------------------------------------------------------------------------------------

void KdTarget::reply(const DBGKD_MANIPULATE_STATE64& header, std::span<const uint8_t> data) {
    std::vector<uint8_t> payload;
    kd_append(payload, header);
    payload.insert(payload.end(), data.begin(), data.end());
    queue(OutKind::Reply, PACKET_TYPE_KD_STATE_MANIPULATE, std::move(payload), false);
}

void KdTarget::handle_manipulate(std::span<const uint8_t> payload) {
    auto request = kd_decode<DBGKD_MANIPULATE_STATE64>(payload);
    if (!request) {
        spdlog::debug("kd: manipulate request of {} bytes, too short", payload.size());
        return;
    }
    auto data = payload.subspan(sizeof(DBGKD_MANIPULATE_STATE64));
    DBGKD_MANIPULATE_STATE64 m = *request;
    m.ReturnStatus = STATUS_SUCCESS;
    m_stats.requests++;
    spdlog::debug("kd: {} ({:#x}) processor {}", manipulate_api_name(m.ApiNumber), m.ApiNumber,
                  m.Processor);
    switch (m.ApiNumber) {
    case DbgKdGetVersionApi:
    case DbgKdReadVirtualMemoryApi:
    case DbgKdReadPhysicalMemoryApi:
    case DbgKdGetContextApi:
    case DbgKdGetContextExApi:
    case DbgKdReadControlSpaceApi:
    case DbgKdReadMachineSpecificRegister:
    case DbgKdSearchMemoryApi:
    case DbgKdQueryMemoryApi:
        break;
    default:
        m_snapshot_current = false; // it may write memory or resume the machine
        break;
    }
    switch (m.ApiNumber) {
    case DbgKdGetVersionApi:
        reply_get_version(m);
        break;
    case DbgKdReadVirtualMemoryApi:
        reply_read_memory(m, false);
        break;
    case DbgKdWriteVirtualMemoryApi:
        reply_write_memory(m, data, false);
        break;
    case DbgKdReadPhysicalMemoryApi:
        reply_read_memory(m, true);
        break;
    case DbgKdWritePhysicalMemoryApi:
        reply_write_memory(m, data, true);
        break;
    case DbgKdGetContextApi:
        reply_get_context(m, false);
        break;
    case DbgKdSetContextApi:
        reply_set_context(m, data, false);
        break;
    case DbgKdGetContextExApi:
        reply_get_context(m, true);
        break;
    case DbgKdSetContextExApi:
        reply_set_context(m, data, true);
        break;
    case DbgKdReadControlSpaceApi:
        reply_read_control_space(m);
        break;
    case DbgKdWriteControlSpaceApi:
        reply_write_control_space(m, data);
        break;
    case DbgKdWriteBreakPointApi:
        reply_write_breakpoint(m);
        break;
    case DbgKdRestoreBreakPointApi:
        reply_restore_breakpoint(m);
        break;
    case DbgKdReadMachineSpecificRegister:
        reply_msr(m, false);
        break;
    case DbgKdWriteMachineSpecificRegister:
        reply_msr(m, true);
        break;
    case DbgKdPageInApi:
        reply_page_in(m);
        break;
    case DbgKdContinueApi:
        do_continue(m.u.Continue.ContinueStatus, nullptr);
        break;
    case DbgKdContinueApi2: {
        AMD64_DBGKD_CONTROL_SET control = m.u.Continue2.ControlSet;
        do_continue(m.u.Continue2.ContinueStatus, &control);
        break;
    }
    case DbgKdRebootApi:
        spdlog::debug("kd: reboot");
        reboot_machine();
        break;
    case DbgKdCauseBugCheckApi:
        for (uint32_t c = 0; c < m_machine.num_cpus(); c++) {
            m_machine.set_trace_flag(c, false);
        }
        m_machine.bugcheck(m_stop_cpu, MANUALLY_INITIATED_CRASH);
        m_mode = Mode::Running;
        break;
    case DbgKdSwitchProcessor:
        if (m.Processor >= m_machine.num_cpus()) {
            reply_unsupported(m);
            break;
        }
        // The chosen processor reports in with a state change of its own: a break at its
        // current PC (nothing to dispatch when continued).
        m_stop = RunResult{};
        m_stop.kind = StopKind::Breakpoint;
        m_stop.cpu = m.Processor;
        m_stop.pc = m_machine.rip(m.Processor);
        m_stop.exception_code = STATUS_BREAKPOINT;
        m_stop.exception_address = m_stop.pc;
        m_stop.number_parameters = 1;
        m_stop.exception_information = {BREAKPOINT_BREAK, 0};
        m_stop_cpu = m.Processor;
        m_first_chance = true;
        m_switch_stop = true;
        m_state_change = build_state_change();
        m_stats.state_changes++;
        queue_state_change();
        break;
    default:
        reply_unsupported(m);
        break;
    }
}

void KdTarget::reply_unsupported(DBGKD_MANIPULATE_STATE64 m) {
    m.ReturnStatus = STATUS_UNSUCCESSFUL;
    reply(m);
}

void KdTarget::reply_get_version(DBGKD_MANIPULATE_STATE64 m) {
    std::memset(&m.u, 0, sizeof(m.u));
    auto& v = m.u.GetVersion64;
    v.MajorVersion = 0x000F;
    v.MinorVersion = m_machine.build_number();
    v.ProtocolVersion = 6;
    v.KdSecondaryVersion = 2;
    v.Flags = DBGKD_VERS_FLAG_DATA | DBGKD_VERS_FLAG_PTR64;
    if (m_machine.num_cpus() > 1) {
        v.Flags |= DBGKD_VERS_FLAG_MP;
    }
    v.MachineType = IMAGE_FILE_MACHINE_AMD64;
    v.MaxPacketType = PACKET_TYPE_MAX;
    v.MaxStateChange = static_cast<uint8_t>(DbgKdMaximumStateChange - DbgKdExceptionStateChange);
    v.MaxManipulate = static_cast<uint8_t>(DbgKdMaximumManipulate - DbgKdReadVirtualMemoryApi);
    v.Simulation = 0;
    v.KernBase = m_machine.kernel_base();
    v.PsLoadedModuleList = m_machine.ps_loaded_module_list();
    v.DebuggerDataList = m_machine.debugger_data_list();
    reply(m);
}

void KdTarget::reply_read_memory(DBGKD_MANIPULATE_STATE64 m, bool physical) {
    uint64_t address = m.u.ReadMemory.TargetBaseAddress;
    uint32_t count = std::min(m.u.ReadMemory.TransferCount, MAX_MANIPULATE_DATA);
    std::vector<uint8_t> buffer(count);
    size_t got = physical ? m_machine.read_physical(address, buffer)
                          : m_machine.read_virtual(address, buffer);
    buffer.resize(got);
    m.u.ReadMemory.ActualBytesRead = static_cast<uint32_t>(got);
    m.ReturnStatus = got == count ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
    reply(m, buffer);
}

void KdTarget::reply_write_memory(DBGKD_MANIPULATE_STATE64 m, std::span<const uint8_t> data,
                                  bool physical) {
    uint64_t address = m.u.WriteMemory.TargetBaseAddress;
    uint32_t wanted = m.u.WriteMemory.TransferCount;
    uint32_t count = static_cast<uint32_t>(std::min<size_t>(wanted, data.size()));
    size_t done = physical ? m_machine.write_physical(address, data.first(count))
                           : m_machine.write_virtual(address, data.first(count));
    m.u.WriteMemory.ActualBytesWritten = static_cast<uint32_t>(done);
    m.ReturnStatus = done == wanted ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
    reply(m);
}

void KdTarget::reply_get_context(DBGKD_MANIPULATE_STATE64 m, bool extended) {
    if (m.Processor >= m_machine.num_cpus()) {
        reply_unsupported(m);
        return;
    }
    CONTEXT c = m_machine.get_context(m.Processor);
    auto raw = bytes_of(c);
    if (!extended) {
        reply(m, raw);
        return;
    }
    auto& ex = m.u.ContextEx;
    if (ex.Offset > raw.size()) {
        ex.BytesCopied = 0;
        m.ReturnStatus = STATUS_UNSUCCESSFUL;
        reply(m);
        return;
    }
    size_t n = std::min<size_t>({ex.ByteCount, raw.size() - ex.Offset, MAX_MANIPULATE_DATA});
    ex.BytesCopied = static_cast<uint32_t>(n);
    reply(m, raw.subspan(ex.Offset, n));
}

void KdTarget::reply_set_context(DBGKD_MANIPULATE_STATE64 m, std::span<const uint8_t> data,
                                 bool extended) {
    if (m.Processor >= m_machine.num_cpus()) {
        reply_unsupported(m);
        return;
    }
    if (!extended) {
        auto c = kd_decode<CONTEXT>(data);
        if (!c) {
            reply_unsupported(m);
            return;
        }
        m_machine.set_context(m.Processor, *c);
        reply(m);
        return;
    }
    auto& ex = m.u.ContextEx;
    CONTEXT c = m_machine.get_context(m.Processor);
    if (ex.Offset > sizeof(CONTEXT)) {
        ex.BytesCopied = 0;
        m.ReturnStatus = STATUS_UNSUCCESSFUL;
        reply(m);
        return;
    }
    size_t n = std::min<size_t>({ex.ByteCount, data.size(), sizeof(CONTEXT) - ex.Offset});
    std::memcpy(reinterpret_cast<uint8_t*>(&c) + ex.Offset, data.data(), n);
    m_machine.set_context(m.Processor, c);
    ex.BytesCopied = static_cast<uint32_t>(n);
    reply(m);
}

void KdTarget::reply_read_control_space(DBGKD_MANIPULATE_STATE64 m) {
    uint32_t cpu = m.Processor;
    uint64_t index = m.u.ReadMemory.TargetBaseAddress;
    uint32_t count = std::min(m.u.ReadMemory.TransferCount, MAX_MANIPULATE_DATA);
    std::vector<uint8_t> out;
    bool ok = cpu < m_machine.num_cpus();
    if (ok) {
        uint64_t pointer = 0;
        switch (index) {
        case AMD64_DEBUG_CONTROL_SPACE_KPCR:
            pointer = m_machine.kpcr(cpu);
            break;
        case AMD64_DEBUG_CONTROL_SPACE_KPRCB:
            pointer = m_machine.kprcb(cpu);
            break;
        case AMD64_DEBUG_CONTROL_SPACE_KTHREAD:
            pointer = m_machine.current_thread(cpu);
            break;
        case AMD64_DEBUG_CONTROL_SPACE_KSPECIAL: {
            KSPECIAL_REGISTERS s = m_machine.get_special(cpu);
            auto raw = bytes_of(s);
            out.assign(raw.begin(), raw.begin() + std::min<size_t>(count, raw.size()));
            break;
        }
        default:
            ok = false;
            break;
        }
        if (index != AMD64_DEBUG_CONTROL_SPACE_KSPECIAL && ok) {
            if (count < sizeof(pointer)) {
                ok = false;
            } else {
                auto raw = bytes_of(pointer);
                out.assign(raw.begin(), raw.end());
            }
        }
    }
    m.u.ReadMemory.ActualBytesRead = static_cast<uint32_t>(out.size());
    m.ReturnStatus = ok ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
    reply(m, out);
}

void KdTarget::reply_write_control_space(DBGKD_MANIPULATE_STATE64 m,
                                         std::span<const uint8_t> data) {
    uint32_t cpu = m.Processor;
    uint64_t index = m.u.WriteMemory.TargetBaseAddress;
    if (cpu >= m_machine.num_cpus() || index != AMD64_DEBUG_CONTROL_SPACE_KSPECIAL) {
        m.u.WriteMemory.ActualBytesWritten = 0;
        m.ReturnStatus = STATUS_UNSUCCESSFUL;
        reply(m);
        return;
    }
    KSPECIAL_REGISTERS s = m_machine.get_special(cpu);
    size_t n = std::min<size_t>({m.u.WriteMemory.TransferCount, data.size(), sizeof(s)});
    std::memcpy(&s, data.data(), n);
    m_machine.set_special(cpu, s);
    m.u.WriteMemory.ActualBytesWritten = static_cast<uint32_t>(n);
    reply(m);
}

void KdTarget::reply_write_breakpoint(DBGKD_MANIPULATE_STATE64 m) {
    uint32_t handle = add_breakpoint(m.u.WriteBreakPoint.BreakPointAddress);
    m.u.WriteBreakPoint.BreakPointHandle = handle;
    m.ReturnStatus = handle != 0 ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
    reply(m);
}

void KdTarget::reply_restore_breakpoint(DBGKD_MANIPULATE_STATE64 m) {
    bool ok = delete_breakpoint(m.u.RestoreBreakPoint.BreakPointHandle);
    m.ReturnStatus = ok ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
    reply(m);
}

void KdTarget::reply_msr(DBGKD_MANIPULATE_STATE64 m, bool write) {
    uint32_t cpu = m.Processor < m_machine.num_cpus() ? m.Processor : m_stop_cpu;
    KSPECIAL_REGISTERS s = m_machine.get_special(cpu);
    auto& msr = m.u.ReadWriteMsr;
    uint64_t efer = 0xD01; // SCE LME LMA NXE
    uint64_t* slot = nullptr;
    bool writable = true;
    switch (msr.Msr) {
    case 0xC0000080:
        slot = &efer;
        writable = false;
        break;
    case 0xC0000081:
        slot = &s.MsrStar;
        break;
    case 0xC0000082:
        slot = &s.MsrLStar;
        break;
    case 0xC0000083:
        slot = &s.MsrCStar;
        break;
    case 0xC0000084:
        slot = &s.MsrSyscallMask;
        break;
    case 0xC0000100:
        slot = &s.MsrFsBase;
        writable = false;
        break;
    case 0xC0000101:
        slot = &s.MsrGsBase;
        writable = false; // the KPCR stays where it is
        break;
    case 0xC0000102:
        slot = &s.MsrGsSwap;
        break;
    case 0x1D9:
        slot = &s.DebugControl;
        break;
    default:
        break;
    }
    if (slot == nullptr) {
        m.ReturnStatus = STATUS_NO_SUCH_DEVICE;
    } else if (!write) {
        msr.DataValueLow = static_cast<uint32_t>(*slot);
        msr.DataValueHigh = static_cast<uint32_t>(*slot >> 32);
    } else if (!writable) {
        m.ReturnStatus = STATUS_UNSUCCESSFUL;
    } else {
        *slot = (uint64_t{msr.DataValueHigh} << 32) | msr.DataValueLow;
        m_machine.set_special(cpu, s);
    }
    reply(m);
}

// .pagein: NT queues the page-in and does it once the target runs again; here the page comes
// in at once (the effect a host sees after its next go is the same). Owed breakpoints on it
// are written right away.
void KdTarget::reply_page_in(DBGKD_MANIPULATE_STATE64 m) {
    uint64_t address = 0;
    std::memcpy(&address, m.u.Raw, sizeof(address));
    bool ok = m_machine.translate(address).has_value() || m_machine.page_in(address);
    if (ok) {
        set_owed_breakpoints();
    }
    m.ReturnStatus = ok ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
    reply(m);
}

void KdTarget::do_continue(uint32_t status, const AMD64_DBGKD_CONTROL_SET* control) {
    uint32_t n = m_machine.num_cpus();
    for (uint32_t c = 0; c < n; c++) {
        bool trace = control != nullptr && c == m_stop_cpu && control->TraceFlag != 0;
        m_machine.set_trace_flag(c, trace);
        if (control != nullptr) {
            // KdpGetStateChange: every processor takes the host's Dr7; Dr6 starts clean.
            KSPECIAL_REGISTERS s = m_machine.get_special(c);
            s.KernelDr7 = control->Dr7;
            s.KernelDr6 = 0;
            m_machine.set_special(c, s);
        }
    }
    spdlog::debug("kd: continue {:#x}{}", status,
                  control != nullptr && control->TraceFlag != 0 ? " (trace)" : "");
    bool handled = static_cast<int32_t>(status) >= 0;
    if (!handled && is_exception(m_stop.kind) && !m_switch_stop) {
        m_machine.set_trace_flag(m_stop_cpu, false);
        if (m_first_chance) {
            // KiDispatchException: no handler in the kernel either, so the debugger gets the
            // exception again, second chance.
            m_first_chance = false;
            m_state_change = build_state_change();
            m_stats.state_changes++;
            queue_state_change();
            return;
        }
        // Nobody handles a kernel-mode exception: KMODE_EXCEPTION_NOT_HANDLED.
        m_machine.bugcheck(m_stop_cpu, KMODE_EXCEPTION_NOT_HANDLED, m_stop.exception_code,
                           m_stop.exception_address, m_stop.exception_information[0],
                           m_stop.exception_information[1]);
    }
    m_mode = Mode::Running;
    m_wake = true;
}

// ---------------------------------------------------------------------------------------------
// breakpoint table (KdpBreakpointTable)
// ---------------------------------------------------------------------------------------------

// Reads the original byte and writes the 0xCC; false when the page is not in memory.
bool KdTarget::write_int3(Breakpoint& bp) {
    uint8_t original = 0;
    const uint8_t cc = INT3;
    if (m_machine.read_virtual(bp.address, {&original, 1}) != 1 ||
        m_machine.write_virtual(bp.address, {&cc, 1}) != 1) {
        return false;
    }
    bp.content = original;
    return true;
}

uint32_t KdTarget::add_breakpoint(uint64_t address) {
    for (uint32_t i = 0; i < BREAKPOINT_TABLE_SIZE; i++) {
        Breakpoint& bp = m_breakpoints[i];
        if ((bp.flags & KD_BREAKPOINT_ACTIVE) == 0 || bp.address != address ||
            (bp.flags & KD_BREAKPOINT_EXPIRED) != 0) {
            continue;
        }
        if ((bp.flags & KD_BREAKPOINT_LIFTED) != 0) {
            // The host writes again what we lifted at a stop: same slot, same handle.
            bp.flags = KD_BREAKPOINT_ACTIVE;
            if (!write_int3(bp)) {
                bp.flags |= KD_BREAKPOINT_PENDING;
                m_owed = true;
            }
            return i + 1;
        }
        // NT: a second write at the same address only succeeds for an owed one.
        return (bp.flags & KD_BREAKPOINT_PENDING) != 0 ? i + 1 : 0;
    }
    // A free slot; failing that, one whose breakpoint we lifted and the host never restored.
    std::optional<uint32_t> slot;
    for (uint32_t i = 0; i < BREAKPOINT_TABLE_SIZE && !slot; i++) {
        if (m_breakpoints[i].flags == 0) {
            slot = i;
        }
    }
    for (uint32_t i = 0; i < BREAKPOINT_TABLE_SIZE && !slot; i++) {
        if (m_breakpoints[i].flags == (KD_BREAKPOINT_ACTIVE | KD_BREAKPOINT_LIFTED)) {
            slot = i;
        }
    }
    if (!slot) {
        return 0;
    }
    Breakpoint& bp = m_breakpoints[*slot];
    bp = Breakpoint{};
    bp.address = address;
    bp.flags = KD_BREAKPOINT_ACTIVE;
    if (!write_int3(bp)) {
        // Not readable now (paged out): owed, written when the page comes in.
        bp.flags |= KD_BREAKPOINT_PENDING;
        m_owed = true;
        spdlog::debug("kd: breakpoint {} at {:#x} is owed", *slot + 1, address);
    }
    return *slot + 1;
}

bool KdTarget::delete_breakpoint(uint32_t handle) {
    if (handle == 0 || handle > BREAKPOINT_TABLE_SIZE) {
        return false;
    }
    Breakpoint& bp = m_breakpoints[handle - 1];
    if ((bp.flags & KD_BREAKPOINT_ACTIVE) == 0 || (bp.flags & KD_BREAKPOINT_EXPIRED) != 0) {
        return false;
    }
    if ((bp.flags & (KD_BREAKPOINT_PENDING | KD_BREAKPOINT_LIFTED)) == 0) {
        uint8_t current = 0;
        if (m_machine.read_virtual(bp.address, {&current, 1}) == 1) {
            if (current == INT3) {
                m_machine.write_virtual(bp.address, {&bp.content, 1});
            }
        } else if (m_machine.is_paged_out(bp.address)) {
            // The page went out with our 0xCC in it: restore it when it comes back
            // (KD_BREAKPOINT_EXPIRED, as NT does); the handle is free for the host already.
            bp.flags |= KD_BREAKPOINT_EXPIRED;
            m_owed = true;
            return true;
        }
    }
    bp = Breakpoint{};
    return true;
}

void KdTarget::lift_breakpoints_in(uint64_t low, uint64_t high) {
    for (auto& bp : m_breakpoints) {
        if (bp.flags != KD_BREAKPOINT_ACTIVE || bp.address < low || bp.address >= high) {
            continue;
        }
        uint8_t current = 0;
        if (m_machine.read_virtual(bp.address, {&current, 1}) == 1 && current == INT3) {
            m_machine.write_virtual(bp.address, {&bp.content, 1});
        }
        bp.flags |= KD_BREAKPOINT_LIFTED;
    }
}

// KdSetOwedBreakpoints: on every page-in (and at each stop) expired entries get their original
// byte back, then owed ones get their 0xCC.
void KdTarget::set_owed_breakpoints() {
    bool still_owed = false;
    for (auto& bp : m_breakpoints) {
        if ((bp.flags & KD_BREAKPOINT_EXPIRED) == 0) {
            continue;
        }
        uint8_t current = 0;
        if (m_machine.read_virtual(bp.address, {&current, 1}) == 1) {
            if (current == INT3) {
                m_machine.write_virtual(bp.address, {&bp.content, 1});
            }
            bp = Breakpoint{};
        } else {
            still_owed = true;
        }
    }
    for (auto& bp : m_breakpoints) {
        if ((bp.flags & KD_BREAKPOINT_PENDING) == 0) {
            continue;
        }
        if (write_int3(bp)) {
            bp.flags &= ~KD_BREAKPOINT_PENDING;
            spdlog::debug("kd: owed breakpoint at {:#x} written", bp.address);
        } else {
            still_owed = true;
        }
    }
    m_owed = still_owed;
}

} // namespace kdcart::hw
