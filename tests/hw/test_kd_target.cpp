// The KD target side (hw/KdTarget) driven by a scripted host over a real socket pair with
// KDCOM framing. The host here is written by hand from kd-protocol.md, not with protocol/'s
// client, so the two sides are checked independently.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "hw/KdTarget.h"
#include "hw/SimMachine.h"
#include "protocol/dbgkd_structs.h"
#include "transport/ByteStream.h"
#include "transport/PacketLink.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <sys/socket.h>
#include <thread>

using namespace kdcart;
using namespace kdcart::hw;
using namespace kdcart::protocol;
using namespace kdcart::transport;
using namespace std::chrono_literals;

namespace {

// Runs KdTarget::step() on its own thread; pause() gives the machine back to the test.
class TargetThread {
  public:
    explicit TargetThread(KdTarget& target) : m_target(target) { start(); }
    ~TargetThread() { pause(); }
    void start() {
        m_stop = false;
        m_thread = std::thread([this] {
            while (!m_stop) {
                m_target.step();
            }
        });
    }
    void pause() {
        m_stop = true;
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

  private:
    KdTarget& m_target;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
};

std::pair<std::unique_ptr<PacketLink>, std::unique_ptr<PacketLink>> link_pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    return {make_kdcom_link(make_fd_stream(fds[0], "target end")),
            make_kdcom_link(make_fd_stream(fds[1], "host end"))};
}

// A minimal KDCOM host.
struct Host {
    std::unique_ptr<PacketLink> link;
    uint32_t next_id = INITIAL_PACKET_ID;
    std::optional<uint32_t> last_target_id;
    std::vector<std::string> prints;
    std::vector<KdPacket> controls; // control packets seen while waiting for data

    void send_control(uint16_t type, uint32_t id = 0) {
        KdPacket p;
        p.type = type;
        p.id = id;
        REQUIRE(link->send(p).has_value());
    }

    void ack(uint32_t id) { send_control(PACKET_TYPE_KD_ACKNOWLEDGE, id & ~SYNC_PACKET_ID); }

    // Sends a data packet and waits for its ACK.
    void send_data(uint16_t type, std::vector<uint8_t> payload) {
        KdPacket p;
        p.type = type;
        p.id = next_id;
        p.payload = std::move(payload);
        for (int attempt = 0; attempt < 10; attempt++) {
            REQUIRE(link->send(p).has_value());
            auto deadline = std::chrono::steady_clock::now() + 3s;
            while (std::chrono::steady_clock::now() < deadline) {
                auto ev = link->receive(200ms);
                if (!ev) {
                    continue;
                }
                if (ev->kind != LinkEventKind::Packet) {
                    continue;
                }
                if (ev->packet.type == PACKET_TYPE_KD_ACKNOWLEDGE && ev->packet.id == p.id) {
                    next_id ^= 1;
                    return;
                }
                if (ev->packet.type == PACKET_TYPE_KD_RESEND) {
                    break;
                }
                if (!ev->packet.is_control()) {
                    take_data(ev->packet);
                }
            }
        }
        FAIL("no ACK for host packet");
    }

    std::deque<KdPacket> inbox;

    std::vector<uint32_t> data_ids; // every target data packet, in order

    void take_data(const KdPacket& p) {
        ack(p.id);
        data_ids.push_back(p.id);
        if (last_target_id && *last_target_id == p.id) {
            return; // a resend of what we already have
        }
        last_target_id = p.id;
        if (p.type == PACKET_TYPE_KD_DEBUG_IO) {
            auto io = kd_decode<DBGKD_DEBUG_IO>(p.payload);
            REQUIRE(io.has_value());
            prints.emplace_back(p.payload.begin() + sizeof(DBGKD_DEBUG_IO), p.payload.end());
            return;
        }
        inbox.push_back(p);
    }

    // The next data packet (DbgPrints are ACKed and collected on the way).
    std::optional<KdPacket> next_data(std::chrono::milliseconds timeout = 10s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (inbox.empty() && std::chrono::steady_clock::now() < deadline) {
            auto ev = link->receive(100ms);
            if (!ev || ev->kind != LinkEventKind::Packet) {
                continue;
            }
            if (ev->packet.is_control()) {
                controls.push_back(ev->packet);
                continue;
            }
            take_data(ev->packet);
        }
        if (inbox.empty()) {
            return std::nullopt;
        }
        KdPacket p = inbox.front();
        inbox.pop_front();
        return p;
    }

    DBGKD_ANY_WAIT_STATE_CHANGE state_change(std::chrono::milliseconds timeout = 10s,
                                             std::string* path = nullptr) {
        auto p = next_data(timeout);
        REQUIRE_MESSAGE(p.has_value(), "no state change");
        REQUIRE(p->type == PACKET_TYPE_KD_STATE_CHANGE64);
        auto sc = kd_decode<DBGKD_ANY_WAIT_STATE_CHANGE>(p->payload);
        REQUIRE(sc.has_value());
        if (path != nullptr) {
            path->assign(p->payload.begin() + sizeof(DBGKD_ANY_WAIT_STATE_CHANGE),
                         p->payload.end());
        }
        return *sc;
    }

    // A manipulate request and its reply (header + data).
    std::pair<DBGKD_MANIPULATE_STATE64, std::vector<uint8_t>>
    request(DBGKD_MANIPULATE_STATE64 m, std::span<const uint8_t> data = {}) {
        std::vector<uint8_t> payload;
        kd_append(payload, m);
        payload.insert(payload.end(), data.begin(), data.end());
        send_data(PACKET_TYPE_KD_STATE_MANIPULATE, payload);
        auto p = next_data();
        REQUIRE_MESSAGE(p.has_value(), "no reply");
        REQUIRE(p->type == PACKET_TYPE_KD_STATE_MANIPULATE);
        auto reply = kd_decode<DBGKD_MANIPULATE_STATE64>(p->payload);
        REQUIRE(reply.has_value());
        CHECK(reply->ApiNumber == m.ApiNumber);
        return {*reply,
                std::vector<uint8_t>(p->payload.begin() + sizeof(*reply), p->payload.end())};
    }

    void send_no_reply(DBGKD_MANIPULATE_STATE64 m) {
        std::vector<uint8_t> payload;
        kd_append(payload, m);
        send_data(PACKET_TYPE_KD_STATE_MANIPULATE, payload);
    }

    std::vector<uint8_t> read_virtual(uint64_t address, uint32_t count,
                                      uint32_t* status = nullptr) {
        auto m = api(DbgKdReadVirtualMemoryApi);
        m.u.ReadMemory.TargetBaseAddress = address;
        m.u.ReadMemory.TransferCount = count;
        auto [reply, data] = request(m);
        CHECK(reply.u.ReadMemory.ActualBytesRead == data.size());
        if (status != nullptr) {
            *status = reply.ReturnStatus;
        }
        return data;
    }

    template <class T> T read_as(uint64_t address) {
        auto bytes = read_virtual(address, sizeof(T));
        REQUIRE(bytes.size() == sizeof(T));
        T v;
        std::memcpy(&v, bytes.data(), sizeof(T));
        return v;
    }

    CONTEXT get_context(uint16_t cpu = 0) {
        auto m = api(DbgKdGetContextApi);
        m.Processor = cpu;
        auto [reply, data] = request(m);
        REQUIRE(reply.ReturnStatus == STATUS_SUCCESS);
        auto c = kd_decode<CONTEXT>(data);
        REQUIRE(c.has_value());
        return *c;
    }

    void set_context(const CONTEXT& c, uint16_t cpu = 0) {
        auto m = api(DbgKdSetContextApi);
        m.Processor = cpu;
        m.u.SetContext.ContextFlags = c.ContextFlags;
        auto [reply, data] = request(m, {reinterpret_cast<const uint8_t*>(&c), sizeof(c)});
        CHECK(reply.ReturnStatus == STATUS_SUCCESS);
    }

    void go(uint32_t trace = 0, uint64_t dr7 = 0x400, uint32_t status = DBG_CONTINUE) {
        auto m = api(DbgKdContinueApi2);
        m.u.Continue2.ContinueStatus = status;
        m.u.Continue2.ControlSet.TraceFlag = trace;
        m.u.Continue2.ControlSet.Dr7 = dr7;
        m.u.Continue2.ControlSet.CurrentSymbolStart = 1;
        send_no_reply(m);
    }

    // Past a hard-coded int3 (the break-in stop): Rip += 1, then go.
    void skip_int3_and_go() {
        CONTEXT c = get_context();
        c.Rip += 1;
        c.ContextFlags = CONTEXT_CONTROL;
        set_context(c);
        go();
    }

    static DBGKD_MANIPULATE_STATE64 api(uint32_t number) {
        auto m = kd_zero<DBGKD_MANIPULATE_STATE64>();
        m.ApiNumber = number;
        m.ReturnStatus = 0x103; // garbage, as WinDbg leaves it
        return m;
    }

    // RESET, expect RESET back.
    void reset() {
        send_control(PACKET_TYPE_KD_RESET, 0);
        next_id = INITIAL_PACKET_ID;
        last_target_id.reset();
        data_ids.clear();
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline) {
            auto ev = link->receive(100ms);
            if (ev && ev->kind == LinkEventKind::Packet) {
                if (ev->packet.type == PACKET_TYPE_KD_RESET) {
                    return;
                }
                if (!ev->packet.is_control()) {
                    take_data(ev->packet);
                }
            }
        }
        FAIL("no RESET answer");
    }

    // Connect as WinDbg does: RESET, then break in, then the state change.
    DBGKD_ANY_WAIT_STATE_CHANGE connect_and_break() {
        reset();
        REQUIRE(link->send_breakin().has_value());
        return state_change();
    }
};

struct Fixture {
    std::unique_ptr<SimMachine> machine;
    std::unique_ptr<KdTarget> target;
    Host host;
    std::unique_ptr<TargetThread> thread;

    explicit Fixture(uint32_t cpus = 1, KdTargetOptions options = {}) {
        SimConfig cfg;
        cfg.cpus = cpus;
        auto m = SimMachine::create(cfg);
        REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
        machine = std::move(*m);
        target = std::make_unique<KdTarget>(*machine, options);
        auto [target_end, host_end] = link_pair();
        target->attach(std::move(target_end));
        host.link = std::move(host_end);
        thread = std::make_unique<TargetThread>(*target);
    }
    ~Fixture() { thread.reset(); }
    uint64_t sym(std::string_view module, std::string_view name) {
        auto a = machine->address_of(module, name);
        REQUIRE(a.has_value());
        return *a;
    }
};

} // namespace

TEST_CASE("connect: RESET, break-in, state change, GetVersion, KDDEBUGGER_DATA64") {
    Fixture f;
    uint64_t break_at = f.machine->breakpoint_with_status();
    uint64_t thread0 = f.machine->current_thread(0);
    f.host.reset();
    REQUIRE(f.host.link->send_breakin().has_value());
    auto p = f.host.next_data();
    REQUIRE(p.has_value());
    // The first packet after RESET (a DbgPrint may come before the state change) carries
    // INITIAL|SYNC; after that, bit 0 toggles.
    REQUIRE_FALSE(f.host.data_ids.empty());
    CHECK(f.host.data_ids[0] == (INITIAL_PACKET_ID | SYNC_PACKET_ID));
    for (size_t i = 1; i < f.host.data_ids.size(); i++) {
        CHECK(f.host.data_ids[i] == (INITIAL_PACKET_ID | (i % 2)));
    }
    auto sc = *kd_decode<DBGKD_ANY_WAIT_STATE_CHANGE>(p->payload);
    CHECK(p->payload.size() == sizeof(DBGKD_ANY_WAIT_STATE_CHANGE));
    CHECK(sc.NewState == DbgKdExceptionStateChange);
    CHECK(sc.ProcessorLevel == 6);
    CHECK(sc.Processor == 0);
    CHECK(sc.NumberProcessors == 1);
    CHECK(sc.Thread == thread0);
    CHECK(sc.ProgramCounter == break_at);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionAddress == break_at);
    CHECK(sc.u.Exception.ExceptionRecord.NumberParameters == 1);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionInformation[0] == BREAKPOINT_BREAK);
    CHECK(sc.u.Exception.FirstChance == 1);
    CHECK(sc.ControlReport.Dr6 == 0xFFFF0FF0);
    CHECK(sc.ControlReport.Dr7 == 0x400);
    CHECK((sc.ControlReport.EFlags & 0x202) == 0x202);
    CHECK(sc.ControlReport.InstructionCount == 16);
    CHECK(sc.ControlReport.ReportFlags == 3);
    CHECK(sc.ControlReport.InstructionStream[0] == 0xCC);
    CHECK(sc.ControlReport.InstructionStream[1] == 0xC3);
    CHECK(sc.ControlReport.SegCs == 0x10);
    CHECK(sc.ControlReport.SegDs == 0x2B);
    CHECK(sc.ControlReport.SegEs == 0x2B);
    CHECK(sc.ControlReport.SegFs == 0x53);

    auto [v, extra] = f.host.request(Host::api(DbgKdGetVersionApi));
    CHECK(extra.empty());
    CHECK(v.ReturnStatus == STATUS_SUCCESS);
    const auto& g = v.u.GetVersion64;
    CHECK(g.MajorVersion == 0x000F);
    CHECK(g.MinorVersion == 19041);
    CHECK(g.ProtocolVersion == 6);
    CHECK(g.KdSecondaryVersion == 2);
    CHECK(g.Flags == (DBGKD_VERS_FLAG_DATA | DBGKD_VERS_FLAG_PTR64));
    CHECK(g.MachineType == IMAGE_FILE_MACHINE_AMD64);
    CHECK(g.MaxPacketType == 0x0C);
    CHECK(g.MaxStateChange == 3);
    CHECK(g.MaxManipulate == 0x31);
    CHECK(g.KernBase == f.machine->kernel_base());
    CHECK(g.PsLoadedModuleList == f.machine->ps_loaded_module_list());
    CHECK(g.DebuggerDataList == f.machine->debugger_data_list());

    uint64_t block = f.host.read_as<uint64_t>(g.DebuggerDataList);
    auto kdbg = f.host.read_as<KDDEBUGGER_DATA64>(block);
    CHECK(kdbg.Header.OwnerTag == KDBG_TAG);
    CHECK(kdbg.KernBase == g.KernBase);
    CHECK(kdbg.BreakpointWithStatus == break_at);

    // Reads are clipped to 3944 bytes; a read into an unmapped page is partial + failure.
    uint32_t status = 0;
    auto big = f.host.read_virtual(g.KernBase, 5000, &status);
    CHECK(big.size() == MAX_MANIPULATE_DATA);
    CHECK(status == STATUS_SUCCESS);
    auto partial = f.host.read_virtual(layout::KUSER_SHARED_DATA + 0xFF0, 0x20, &status);
    CHECK(partial.size() == 0x10);
    CHECK(status == STATUS_UNSUCCESSFUL);
    auto nothing = f.host.read_virtual(0x1000, 8, &status);
    CHECK(nothing.empty());
    CHECK(status == STATUS_UNSUCCESSFUL);

    // Physical reads follow the runs.
    auto m = Host::api(DbgKdReadPhysicalMemoryApi);
    m.u.ReadMemory.TargetBaseAddress = f.machine->directory_table_base();
    m.u.ReadMemory.TransferCount = 0x1000;
    auto [phys, phys_data] = f.host.request(m);
    CHECK(phys.ReturnStatus == STATUS_SUCCESS);
    CHECK(phys_data.size() == MAX_MANIPULATE_DATA);
    m.u.ReadMemory.TargetBaseAddress = 0x9F000; // a hole
    auto [hole, hole_data] = f.host.request(m);
    CHECK(hole.ReturnStatus == STATUS_UNSUCCESSFUL);
    CHECK(hole_data.empty());

    // An API the target does not know comes back with STATUS_UNSUCCESSFUL.
    auto [unknown, unknown_data] = f.host.request(Host::api(DbgKdSearchMemoryApi));
    CHECK(unknown.ReturnStatus == STATUS_UNSUCCESSFUL);
    CHECK(unknown_data.empty());
}

TEST_CASE("context, control space, go, DbgPrint and another break-in") {
    Fixture f;
    f.host.connect_and_break();
    CONTEXT c = f.host.get_context();
    CHECK(c.Rip == f.machine->breakpoint_with_status());
    CHECK(c.SegCs == 0x10);
    CHECK(c.SegSs == 0x18);

    auto m = Host::api(DbgKdReadControlSpaceApi);
    m.u.ReadMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KSPECIAL;
    m.u.ReadMemory.TransferCount = KSPECIAL_REGISTERS_WINDBG_SIZE;
    auto [r, data] = f.host.request(m);
    CHECK(r.ReturnStatus == STATUS_SUCCESS);
    REQUIRE(data.size() == KSPECIAL_REGISTERS_WINDBG_SIZE);
    KSPECIAL_REGISTERS s{};
    std::memcpy(&s, data.data(), data.size());
    CHECK(s.Cr3 == f.machine->directory_table_base());
    CHECK(s.KernelDr7 == 0x400);
    for (uint64_t index : {AMD64_DEBUG_CONTROL_SPACE_KPCR, AMD64_DEBUG_CONTROL_SPACE_KPRCB,
                           AMD64_DEBUG_CONTROL_SPACE_KTHREAD}) {
        m.u.ReadMemory.TargetBaseAddress = index;
        m.u.ReadMemory.TransferCount = 8;
        auto [rr, dd] = f.host.request(m);
        REQUIRE(dd.size() == 8);
        uint64_t value;
        std::memcpy(&value, dd.data(), 8);
        uint64_t want = index == 0   ? f.machine->kpcr(0)
                        : index == 1 ? f.machine->kprcb(0)
                                     : f.machine->current_thread(0);
        CHECK(value == want);
    }
    m.u.ReadMemory.TargetBaseAddress = 7;
    auto [bad, bad_data] = f.host.request(m);
    CHECK(bad.ReturnStatus == STATUS_UNSUCCESSFUL);
    // Only KSPECIAL_REGISTERS is writable.
    auto w = Host::api(DbgKdWriteControlSpaceApi);
    w.u.WriteMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KPCR;
    w.u.WriteMemory.TransferCount = 8;
    uint64_t zero = 0;
    auto [wr, wd] = f.host.request(w, {reinterpret_cast<uint8_t*>(&zero), 8});
    CHECK(wr.ReturnStatus == STATUS_UNSUCCESSFUL);

    // Rip += 1 and go: kdtest runs and prints.
    f.host.prints.clear();
    f.host.skip_int3_and_go();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (f.host.prints.empty() && std::chrono::steady_clock::now() < deadline) {
        f.host.next_data(200ms);
    }
    REQUIRE_FALSE(f.host.prints.empty());
    CHECK(f.host.prints[0].rfind("kdtest: tick", 0) == 0);

    // Break in again: a fresh state change at the same place.
    REQUIRE(f.host.link->send_breakin().has_value());
    auto sc = f.host.state_change();
    CHECK(sc.ProgramCounter == f.machine->breakpoint_with_status());
}

TEST_CASE("software breakpoints, single step, hardware breakpoints") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    uint64_t update = f.sym("kdtest", "KdTestUpdate");
    uint8_t original = f.host.read_as<uint8_t>(compute);

    auto wb = Host::api(DbgKdWriteBreakPointApi);
    wb.u.WriteBreakPoint.BreakPointAddress = compute;
    auto [bp, bp_data] = f.host.request(wb);
    CHECK(bp.ReturnStatus == STATUS_SUCCESS);
    uint32_t handle = bp.u.WriteBreakPoint.BreakPointHandle;
    CHECK(handle >= 1);
    CHECK(handle <= 32);
    CHECK(f.host.read_as<uint8_t>(compute) == 0xCC);
    // A second breakpoint at the same address fails.
    auto [bp2, bp2_data] = f.host.request(wb);
    CHECK(bp2.ReturnStatus == STATUS_UNSUCCESSFUL);

    f.host.skip_int3_and_go();
    auto sc = f.host.state_change();
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(sc.ProgramCounter == compute);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionAddress == compute);
    // KD's own breakpoint is gone from the reported bytes (and from memory).
    CHECK(sc.ControlReport.InstructionStream[0] == original);
    CHECK(f.host.read_as<uint8_t>(compute) == original);
    auto rb = Host::api(DbgKdRestoreBreakPointApi);
    rb.u.RestoreBreakPoint.BreakPointHandle = handle;
    auto [restored, rd] = f.host.request(rb);
    CHECK(restored.ReturnStatus == STATUS_UNSUCCESSFUL); // KdpSetCommonState deleted it
    rb.u.RestoreBreakPoint.BreakPointHandle = 33;
    auto [out_of_range, od] = f.host.request(rb);
    CHECK(out_of_range.ReturnStatus == STATUS_UNSUCCESSFUL);

    // Single step: STATUS_SINGLE_STEP with Dr6.BS, PC moves on.
    f.host.go(1);
    auto step = f.host.state_change();
    CHECK(step.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(step.ProgramCounter != compute);
    CHECK((step.ControlReport.Dr6 & 0x4000) != 0);
    uint64_t pc = step.ProgramCounter;
    f.host.go(1);
    auto step2 = f.host.state_change();
    CHECK(step2.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(step2.ProgramCounter != pc);

    // Hardware execute breakpoint through KernelDr0 + Continue2's Dr7.
    auto rc = Host::api(DbgKdReadControlSpaceApi);
    rc.u.ReadMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KSPECIAL;
    rc.u.ReadMemory.TransferCount = KSPECIAL_REGISTERS_WINDBG_SIZE;
    auto [rcr, special_bytes] = f.host.request(rc);
    KSPECIAL_REGISTERS s{};
    std::memcpy(&s, special_bytes.data(), special_bytes.size());
    s.KernelDr0 = update;
    auto wc = Host::api(DbgKdWriteControlSpaceApi);
    wc.u.WriteMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KSPECIAL;
    wc.u.WriteMemory.TransferCount = KSPECIAL_REGISTERS_WINDBG_SIZE;
    auto [wcr, wcd] =
        f.host.request(wc, {reinterpret_cast<uint8_t*>(&s), KSPECIAL_REGISTERS_WINDBG_SIZE});
    CHECK(wcr.ReturnStatus == STATUS_SUCCESS);
    CHECK(wcr.u.WriteMemory.ActualBytesWritten == KSPECIAL_REGISTERS_WINDBG_SIZE);
    f.host.go(0, 0x401);
    auto hw = f.host.state_change();
    CHECK(hw.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(hw.ProgramCounter == update);
    CHECK((hw.ControlReport.Dr6 & 0xF) == 1);
    CHECK(hw.ControlReport.Dr7 == 0x401);
    // Continue2 with Dr7 = 0x400 disarms it: the next stop is our break-in.
    f.host.go(0, 0x400);
    std::this_thread::sleep_for(300ms);
    REQUIRE(f.host.link->send_breakin().has_value());
    auto brk = f.host.state_change();
    CHECK(brk.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(brk.ProgramCounter == f.machine->breakpoint_with_status());
}

TEST_CASE("packet ids: duplicates, bad packets, RESEND, and a host that comes back") {
    Fixture f;
    auto first = f.host.connect_and_break();
    // A duplicate request (our ACK "lost"): ACKed again, answered once.
    auto m = Host::api(DbgKdGetVersionApi);
    std::vector<uint8_t> payload;
    kd_append(payload, m);
    KdPacket p;
    p.type = PACKET_TYPE_KD_STATE_MANIPULATE;
    p.id = f.host.next_id;
    p.payload = payload;
    REQUIRE(f.host.link->send(p).has_value());
    REQUIRE(f.host.link->send(p).has_value());
    f.host.next_id ^= 1;
    auto reply = f.host.next_data();
    REQUIRE(reply.has_value());
    CHECK(reply->type == PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK_FALSE(f.host.next_data(500ms).has_value());
    int acks = 0;
    for (const auto& c : f.host.controls) {
        acks += c.type == PACKET_TYPE_KD_ACKNOWLEDGE && c.id == p.id ? 1 : 0;
    }
    CHECK(acks == 2);

    // A packet with a wrong id gets a RESEND.
    f.host.controls.clear();
    p.id = 0x12345678;
    REQUIRE(f.host.link->send(p).has_value());
    CHECK_FALSE(f.host.next_data(500ms).has_value());
    REQUIRE_FALSE(f.host.controls.empty());
    CHECK(f.host.controls.back().type == PACKET_TYPE_KD_RESEND);

    // RESEND while the target waits for a request: the state change again.
    f.host.send_control(PACKET_TYPE_KD_RESEND);
    auto again = f.host.state_change();
    CHECK(again.ProgramCounter == first.ProgramCounter);

    // The host goes away while the target is stopped; a new one connects and resets.
    f.thread->pause();
    auto [target_end, host_end] = link_pair();
    f.target->detach();
    f.target->attach(std::move(target_end));
    f.host.link = std::move(host_end);
    f.host.inbox.clear();
    f.thread->start();
    CHECK_FALSE(f.host.next_data(1500ms).has_value()); // it waits for the host to talk
    f.host.reset();
    auto resent = f.host.state_change();
    CHECK(resent.ProgramCounter == first.ProgramCounter);
    auto [v, vd] = f.host.request(Host::api(DbgKdGetVersionApi));
    CHECK(v.ReturnStatus == STATUS_SUCCESS);
}

TEST_CASE("owed breakpoint on a paged-out page is written when the guest pages it in") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    f.thread->pause();
    REQUIRE(f.machine->mark_paged_out(compute));
    f.thread->start();
    uint32_t status = 0;
    auto bytes = f.host.read_virtual(compute, 1, &status);
    CHECK(bytes.empty());
    CHECK(status == STATUS_UNSUCCESSFUL);
    auto wb = Host::api(DbgKdWriteBreakPointApi);
    wb.u.WriteBreakPoint.BreakPointAddress = compute;
    auto [bp, bpd] = f.host.request(wb);
    CHECK(bp.ReturnStatus == STATUS_SUCCESS); // owed, but a valid handle
    CHECK(bp.u.WriteBreakPoint.BreakPointHandle != 0);
    f.host.skip_int3_and_go();
    auto sc = f.host.state_change();
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(sc.ProgramCounter == compute);
}

TEST_CASE("CauseBugCheck, not-handled exceptions and Reboot") {
    Fixture f;
    f.host.connect_and_break();
    f.host.prints.clear();
    f.host.send_no_reply(Host::api(DbgKdCauseBugCheckApi));
    auto sc = f.host.state_change();
    CHECK(sc.ProgramCounter == f.machine->breakpoint_with_status());
    REQUIRE_FALSE(f.host.prints.empty());
    CHECK(f.host.prints.back().find("Fatal System Error: 0x000000e2") != std::string::npos);
    auto kdbg_list = f.machine->debugger_data_list();
    uint64_t block = f.host.read_as<uint64_t>(kdbg_list);
    auto kdbg = f.host.read_as<KDDEBUGGER_DATA64>(block);
    CHECK(f.host.read_as<uint64_t>(kdbg.KiBugcheckData) == 0xE2);

    // Continue the (bugcheck) breakpoint as not handled: the same exception comes back
    // second chance; not handled again, KMODE_EXCEPTION_NOT_HANDLED.
    CHECK(sc.u.Exception.FirstChance == 1);
    f.host.go(0, 0x400, DBG_EXCEPTION_NOT_HANDLED);
    auto second = f.host.state_change();
    CHECK(second.u.Exception.FirstChance == 0);
    CHECK(second.ProgramCounter == sc.ProgramCounter);
    CHECK(second.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    f.host.prints.clear();
    f.host.go(0, 0x400, DBG_EXCEPTION_NOT_HANDLED);
    auto sc2 = f.host.state_change();
    CHECK(sc2.u.Exception.FirstChance == 1);
    CHECK(sc2.ProgramCounter == f.machine->breakpoint_with_status());
    REQUIRE_FALSE(f.host.prints.empty());
    CHECK(f.host.prints.back().find("Fatal System Error: 0x0000001e") != std::string::npos);
    CHECK(f.host.read_as<uint64_t>(kdbg.KiBugcheckData) == 0x1E);

    // Reboot: no reply; the machine comes back and prints from its boot.
    f.host.prints.clear();
    f.host.send_no_reply(Host::api(DbgKdRebootApi));
    f.host.last_target_id.reset(); // a rebooted target starts its ids over
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (f.host.prints.empty() && std::chrono::steady_clock::now() < deadline) {
        f.host.next_data(200ms);
    }
    REQUIRE_FALSE(f.host.prints.empty());
    CHECK(f.host.prints[0].rfind("kdtest: DriverEntry", 0) == 0);
}

TEST_CASE("multiprocessor: MP flag, other processors' contexts, SwitchProcessor") {
    Fixture f(3);
    auto sc = f.host.connect_and_break();
    CHECK(sc.NumberProcessors == 3);
    auto [v, vd] = f.host.request(Host::api(DbgKdGetVersionApi));
    CHECK((v.u.GetVersion64.Flags & DBGKD_VERS_FLAG_MP) != 0);
    uint64_t idle = f.sym("nt", "KiIdleLoop");
    CONTEXT c2 = f.host.get_context(2);
    CHECK(c2.Rip >= idle);
    CHECK(c2.Rip < idle + 0x10);
    auto m = Host::api(DbgKdReadControlSpaceApi);
    m.Processor = 2;
    m.u.ReadMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KPRCB;
    m.u.ReadMemory.TransferCount = 8;
    auto [r, d] = f.host.request(m);
    uint64_t prcb;
    std::memcpy(&prcb, d.data(), 8);
    CHECK(prcb == f.machine->kprcb(2));
    // Continue2 puts Dr7 into every processor's KernelDr7.
    auto sw = Host::api(DbgKdSwitchProcessor);
    sw.Processor = 1;
    f.host.send_no_reply(sw);
    auto sc1 = f.host.state_change();
    CHECK(sc1.Processor == 1);
    CHECK(sc1.Thread == f.machine->current_thread(1));
    CHECK(sc1.ProgramCounter >= idle); // its own PC, in the idle loop
    CHECK(sc1.ProgramCounter < idle + 0x10);
    CHECK(sc1.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    // Continuing the switched-to processor "not handled" does not bugcheck it.
    f.host.go(0, 0x400, DBG_EXCEPTION_NOT_HANDLED);
    std::this_thread::sleep_for(200ms);
    REQUIRE(f.host.link->send_breakin().has_value());
    auto back = f.host.state_change();
    CHECK(back.Processor == 0);
    CHECK(back.u.Exception.FirstChance == 1);
    CHECK(f.host.get_context(1).Rip >= idle);
    CHECK(f.host.get_context(1).Rip < idle + 0x10);
    auto bad = Host::api(DbgKdGetContextApi);
    bad.Processor = 5;
    auto [br, bd] = f.host.request(bad);
    CHECK(br.ReturnStatus == STATUS_UNSUCCESSFUL);
    CHECK(bd.empty());

    // Continue2's Dr7 goes into every processor's KernelDr7, and KernelDr6 is cleared.
    f.host.go(0, 0x410); // L2 on, KernelDr2 = 0: armed but never hit
    std::this_thread::sleep_for(200ms);
    REQUIRE(f.host.link->send_breakin().has_value());
    f.host.state_change();
    for (uint16_t cpu = 0; cpu < 3; cpu++) {
        auto rc = Host::api(DbgKdReadControlSpaceApi);
        rc.Processor = cpu;
        rc.u.ReadMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KSPECIAL;
        rc.u.ReadMemory.TransferCount = KSPECIAL_REGISTERS_WINDBG_SIZE;
        auto [rr, bytes] = f.host.request(rc);
        KSPECIAL_REGISTERS s{};
        std::memcpy(&s, bytes.data(), bytes.size());
        CHECK(s.KernelDr7 == 0x410);
        CHECK(s.KernelDr6 == 0);
    }
}
