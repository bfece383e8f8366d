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

#include "hw/PeImage.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

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

    std::pair<uint32_t, uint32_t> write_bp(uint64_t address) { // status, handle
        auto m = api(DbgKdWriteBreakPointApi);
        m.u.WriteBreakPoint.BreakPointAddress = address;
        auto [reply, data] = request(m);
        CHECK(data.empty());
        return {reply.ReturnStatus, reply.u.WriteBreakPoint.BreakPointHandle};
    }

    uint32_t restore_bp(uint32_t handle) {
        auto m = api(DbgKdRestoreBreakPointApi);
        m.u.RestoreBreakPoint.BreakPointHandle = handle;
        return request(m).first.ReturnStatus;
    }

    // As WinDbg after each stop: RestoreBreakPoint for every handle.
    void restore_all() {
        for (uint32_t h = 1; h <= 32; h++) {
            restore_bp(h);
        }
    }

    uint32_t write_virtual(uint64_t address, std::span<const uint8_t> bytes) {
        auto m = api(DbgKdWriteVirtualMemoryApi);
        m.u.WriteMemory.TargetBaseAddress = address;
        m.u.WriteMemory.TransferCount = static_cast<uint32_t>(bytes.size());
        return request(m, bytes).first.ReturnStatus;
    }

    template <class T> uint32_t write_as(uint64_t address, const T& v) {
        return write_virtual(address, {reinterpret_cast<const uint8_t*>(&v), sizeof(T)});
    }

    KSPECIAL_REGISTERS read_special(uint16_t cpu) {
        auto m = api(DbgKdReadControlSpaceApi);
        m.Processor = cpu;
        m.u.ReadMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KSPECIAL;
        m.u.ReadMemory.TransferCount = KSPECIAL_REGISTERS_WINDBG_SIZE;
        auto [reply, data] = request(m);
        REQUIRE(reply.ReturnStatus == STATUS_SUCCESS);
        REQUIRE(data.size() == KSPECIAL_REGISTERS_WINDBG_SIZE);
        KSPECIAL_REGISTERS s{};
        std::memcpy(&s, data.data(), data.size());
        return s;
    }

    void write_special(uint16_t cpu, const KSPECIAL_REGISTERS& s) {
        auto m = api(DbgKdWriteControlSpaceApi);
        m.Processor = cpu;
        m.u.WriteMemory.TargetBaseAddress = AMD64_DEBUG_CONTROL_SPACE_KSPECIAL;
        m.u.WriteMemory.TransferCount = KSPECIAL_REGISTERS_WINDBG_SIZE;
        auto [reply, data] =
            request(m, {reinterpret_cast<const uint8_t*>(&s), KSPECIAL_REGISTERS_WINDBG_SIZE});
        CHECK(reply.ReturnStatus == STATUS_SUCCESS);
    }

    uint32_t page_in(uint64_t address) {
        auto m = api(DbgKdPageInApi);
        std::memcpy(m.u.Raw, &address, sizeof(address));
        return request(m).first.ReturnStatus;
    }

    // The base names in PsLoadedModuleList, read through the link.
    std::vector<std::string> module_names(uint64_t head) {
        std::vector<std::string> names;
        uint64_t at = read_as<uint64_t>(head);
        while (at != head && names.size() < 16) {
            auto e = read_as<KLDR_DATA_TABLE_ENTRY64>(at);
            auto raw = read_virtual(e.BaseDllName.Buffer, e.BaseDllName.Length);
            std::string name;
            for (size_t i = 0; i + 1 < raw.size(); i += 2) {
                name.push_back(static_cast<char>(raw[i]));
            }
            names.push_back(name);
            at = e.InLoadOrderLinks.Flink;
        }
        return names;
    }

    // Reads (and ACKs) whatever the running target sends for `duration`: a DbgPrint nobody
    // ACKs holds the machine, as on NT.
    void pump(std::chrono::milliseconds duration) {
        auto deadline = std::chrono::steady_clock::now() + duration;
        while (std::chrono::steady_clock::now() < deadline) {
            next_data(20ms);
        }
    }

    // Waits for a DbgPrint that starts with `prefix` (collected on the way).
    bool wait_print(const std::string& prefix, std::chrono::milliseconds timeout = 10s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        size_t seen = 0;
        while (std::chrono::steady_clock::now() < deadline) {
            for (; seen < prints.size(); seen++) {
                if (prints[seen].rfind(prefix, 0) == 0) {
                    return true;
                }
            }
            next_data(100ms);
        }
        return false;
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

    // The late driver is off unless `tweak` turns it on (no LoadSymbols stops otherwise).
    explicit Fixture(uint32_t cpus = 1, KdTargetOptions options = {},
                     const std::function<void(SimConfig&)>& tweak = {}) {
        SimConfig cfg;
        cfg.cpus = cpus;
        cfg.late_driver.enabled = false;
        if (tweak) {
            tweak(cfg);
        }
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
    // KdpSetCommonState took it out of memory; the handle stays ours until restored.
    CHECK(restored.ReturnStatus == STATUS_SUCCESS);
    auto [again, again_data] = f.host.request(rb);
    CHECK(again.ReturnStatus == STATUS_UNSUCCESSFUL); // now it is free
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
    // Stopped means every processor is frozen: nothing moves while the host looks.
    uint64_t counter = f.sym("kdtest", "KdTestCounter");
    uint64_t before = f.host.read_as<uint64_t>(counter);
    CONTEXT c0 = f.host.get_context(0);
    std::this_thread::sleep_for(300ms);
    CHECK(f.host.read_as<uint64_t>(counter) == before);
    CHECK(f.host.get_context(0).Rip == c0.Rip);
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

// ---------------------------------------------------------------------------------------------
// breakpoints and run control, as a host (bp, bu, ba, owed, t/p/gu) sees them
// ---------------------------------------------------------------------------------------------

namespace {

// The first `call rel32` in [from, from + length) whose target is `target`, read by the host.
uint64_t find_call(Host& host, uint64_t from, uint32_t length, uint64_t target) {
    auto code = host.read_virtual(from, length);
    REQUIRE(code.size() == length);
    for (size_t i = 0; i + 5 <= code.size(); i++) {
        int32_t rel;
        std::memcpy(&rel, &code[i + 1], 4);
        if (code[i] == 0xE8 && from + i + 5 + static_cast<int64_t>(rel) == target) {
            return from + i;
        }
    }
    FAIL("no call found");
    return 0;
}

void skip_int3(Host& host) {
    CONTEXT c = host.get_context();
    c.Rip += 1;
    c.ContextFlags = CONTEXT_CONTROL;
    host.set_context(c);
}

bool all_code_intact(SimMachine& machine) {
    bool ok = true;
    for (const auto& c : machine.check_code()) {
        CHECK_MESSAGE(c.intact(), c.module << " modified at " << std::hex << c.first_difference);
        ok = ok && c.intact();
    }
    return ok;
}

void tweak_late(SimConfig& c, std::chrono::milliseconds load, std::chrono::milliseconds unload,
                std::chrono::milliseconds reload) {
    c.late_driver.enabled = true;
    c.late_driver.load_after = load;
    c.late_driver.unload_after = unload;
    c.late_driver.reload_after = reload;
}

constexpr uint32_t BP_ACTIVE = KdTarget::BREAKPOINT_ACTIVE;
constexpr uint32_t BP_PENDING = KdTarget::BREAKPOINT_PENDING;
constexpr uint32_t BP_LIFTED = KdTarget::BREAKPOINT_LIFTED;

} // namespace

TEST_CASE("breakpoint table: 32 handles, 0xCC in memory as it is, original bytes back") {
    Fixture f;
    f.host.connect_and_break();
    // KdTestAccess never runs on its own: 32 breakpoints there are never hit.
    uint64_t access = f.sym("kdtest", "KdTestAccess");
    auto original = f.host.read_virtual(access, 33);
    REQUIRE(original.size() == 33);
    for (uint32_t i = 0; i < 32; i++) {
        auto [status, handle] = f.host.write_bp(access + i);
        CHECK(status == STATUS_SUCCESS);
        CHECK(handle == i + 1); // handle = table index + 1
    }
    auto full = f.host.write_bp(access + 32);
    CHECK(full.first == STATUS_UNSUCCESSFUL);
    CHECK(full.second == 0);
    // ReadVirtual shows memory as it is: the host hides its own breakpoints itself.
    auto now = f.host.read_virtual(access, 32);
    CHECK(now == std::vector<uint8_t>(32, 0xCC));
    f.thread->pause();
    for (uint32_t i = 0; i < 32; i++) {
        const auto& e = f.target->breakpoint_table()[i];
        CHECK(e.flags == BP_ACTIVE);
        CHECK(e.address == access + i);
        CHECK(e.content == original[i]);
    }
    f.thread->start();
    // A duplicate fails; a restored slot is the next one handed out.
    CHECK(f.host.write_bp(access + 7).first == STATUS_UNSUCCESSFUL);
    CHECK(f.host.restore_bp(5) == STATUS_SUCCESS);
    CHECK(f.host.read_as<uint8_t>(access + 4) == original[4]);
    CHECK(f.host.restore_bp(5) == STATUS_UNSUCCESSFUL); // free now
    auto [st, h] = f.host.write_bp(access + 32);
    CHECK(st == STATUS_SUCCESS);
    CHECK(h == 5);
    CHECK(f.host.restore_bp(0) == STATUS_UNSUCCESSFUL);
    CHECK(f.host.restore_bp(33) == STATUS_UNSUCCESSFUL);
    f.host.restore_all();
    CHECK(f.host.read_virtual(access, 33) == original);
    f.thread->pause();
    for (const auto& e : f.target->breakpoint_table()) {
        CHECK(e.flags == 0);
    }
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("bp hit: PC = address = the 0xCC, window lifted; WinDbg's restore/step/rewrite") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    uint64_t update = f.sym("kdtest", "KdTestUpdate");
    auto compute_bytes = f.host.read_virtual(compute, 16);
    uint8_t update_byte = f.host.read_as<uint8_t>(update);
    auto [s1, h1] = f.host.write_bp(compute);
    auto [s2, h2] = f.host.write_bp(compute + 5); // inside the 16 reported bytes
    auto [s3, h3] = f.host.write_bp(update);      // outside them
    REQUIRE(s1 == STATUS_SUCCESS);
    REQUIRE(s2 == STATUS_SUCCESS);
    REQUIRE(s3 == STATUS_SUCCESS);
    f.host.skip_int3_and_go();
    auto sc = f.host.state_change();
    CHECK(sc.NewState == DbgKdExceptionStateChange);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(sc.ProgramCounter == compute);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionAddress == compute);
    CHECK(f.host.get_context().Rip == compute); // not stepped over
    CHECK(sc.ControlReport.InstructionCount == 16);
    CHECK(std::vector<uint8_t>(sc.ControlReport.InstructionStream,
                               sc.ControlReport.InstructionStream + 16) == compute_bytes);
    // NT takes KD's breakpoints in the window out of memory; the one outside stays.
    CHECK(f.host.read_virtual(compute, 16) == compute_bytes);
    CHECK(f.host.read_as<uint8_t>(update) == 0xCC);
    f.thread->pause();
    CHECK(f.target->breakpoint_table()[h1 - 1].flags == (BP_ACTIVE | BP_LIFTED));
    CHECK(f.target->breakpoint_table()[h2 - 1].flags == (BP_ACTIVE | BP_LIFTED));
    CHECK(f.target->breakpoint_table()[h3 - 1].flags == BP_ACTIVE);
    f.thread->start();

    // WinDbg: restore every handle at the stop. Ours succeed, the others fail harmlessly.
    for (uint32_t h = 1; h <= 32; h++) {
        bool ours = h == h1 || h == h2 || h == h3;
        CHECK(f.host.restore_bp(h) == (ours ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL));
    }
    CHECK(f.host.read_as<uint8_t>(update) == update_byte);

    // On go from a breakpoint address: one step with nothing in, then all back in.
    f.host.go(1);
    auto step = f.host.state_change();
    CHECK(step.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(step.ProgramCounter > compute);
    CHECK(step.ProgramCounter < compute + 16);
    f.host.restore_all();
    CHECK(f.host.write_bp(compute).second == 1);
    CHECK(f.host.write_bp(update).second == 2);
    f.host.go();
    auto at_update = f.host.state_change();
    CHECK(at_update.ProgramCounter == update);
    CHECK(at_update.u.Exception.ExceptionRecord.ExceptionAddress == update);

    // Writing everything back in without the step: the target does not step over the 0xCC
    // at PC, so the same breakpoint reports again at once.
    f.host.restore_all();
    f.host.write_bp(compute);
    f.host.write_bp(update);
    f.host.go();
    auto again = f.host.state_change();
    CHECK(again.ProgramCounter == update);
    CHECK(again.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);

    // The proper cycle again: the next iteration's KdTestCompute.
    f.host.restore_all();
    f.host.go(1);
    CHECK(f.host.state_change().u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    f.host.restore_all();
    f.host.write_bp(compute);
    f.host.write_bp(update);
    f.host.go();
    CHECK(f.host.state_change().ProgramCounter == compute);

    // Quit as a debugger does: everything out, go. The code is as it was.
    f.host.restore_all();
    f.host.go();
    std::this_thread::sleep_for(300ms);
    f.thread->pause();
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("a host that keeps its breakpoints: lifted handles stay reserved until restored") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    uint64_t update = f.sym("kdtest", "KdTestUpdate");
    uint64_t access = f.sym("kdtest", "KdTestAccess");
    uint64_t spin = f.sym("kdtest", "KdTestSpin");
    // 16 in the window at KdTestCompute, 16 more where nothing runs: the table is full.
    for (uint32_t i = 0; i < 16; i++) {
        CHECK(f.host.write_bp(compute + i).second == i + 1);
    }
    for (uint32_t i = 0; i < 16; i++) {
        CHECK(f.host.write_bp(access + i).second == 17 + i);
    }
    f.host.skip_int3_and_go();
    auto sc = f.host.state_change();
    REQUIRE(sc.ProgramCounter == compute);
    CHECK(sc.ControlReport.InstructionStream[0] != 0xCC);
    // Handles 1..16 are lifted, not freed: a new breakpoint does not take handle 1 from
    // under the host... unless the table has nothing else (then a lifted slot is reused).
    auto [st, reused] = f.host.write_bp(spin);
    CHECK(st == STATUS_SUCCESS);
    CHECK(reused >= 1);
    CHECK(reused <= 16);
    CHECK(f.host.read_as<uint8_t>(spin) == 0xCC);
    CHECK(f.host.restore_bp(reused) == STATUS_SUCCESS); // now means the new one
    CHECK(f.host.read_as<uint8_t>(spin) != 0xCC);
    // With room in the table, new breakpoints get free slots; lifted ones stay reserved.
    CHECK(f.host.restore_bp(20) == STATUS_SUCCESS);
    auto [st2, fresh] = f.host.write_bp(update);
    CHECK(st2 == STATUS_SUCCESS);
    CHECK(fresh == reused); // the slot just restored is the lowest free one
    CHECK(f.host.restore_bp(fresh) == STATUS_SUCCESS);
    auto [st3, next] = f.host.write_bp(update);
    CHECK(next == reused);
    CHECK(f.host.restore_bp(next) == STATUS_SUCCESS);
    // Writing a lifted breakpoint's address again gives its own handle back, 0xCC in place.
    uint32_t h_compute = 1;
    CHECK(f.host.write_bp(compute).second == h_compute);
    CHECK(f.host.read_as<uint8_t>(compute) == 0xCC);
    CHECK(f.host.restore_bp(h_compute) == STATUS_SUCCESS);
    CHECK(f.host.read_as<uint8_t>(compute) == sc.ControlReport.InstructionStream[0]);
    f.host.restore_all();
    f.thread->pause();
    for (const auto& e : f.target->breakpoint_table()) {
        CHECK(e.flags == 0);
    }
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("owed breakpoint on kdtest!KdTestPagedFunction; DbgKdPageInApi") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t paged = f.sym("kdtest", "KdTestPagedFunction");
    uint32_t status = 0;
    CHECK(f.host.read_virtual(paged, 1, &status).empty());
    CHECK(status == STATUS_UNSUCCESSFUL);
    auto [st, h] = f.host.write_bp(paged);
    CHECK(st == STATUS_SUCCESS);
    REQUIRE(h != 0);
    f.thread->pause();
    CHECK(f.target->breakpoint_table()[h - 1].flags == (BP_ACTIVE | BP_PENDING));
    CHECK(f.machine->is_paged_out(paged));
    f.thread->start();
    // WinDbg restores and re-writes at every stop: still owed, same handle.
    CHECK(f.host.restore_bp(h) == STATUS_SUCCESS);
    CHECK(f.host.write_bp(paged).second == h);
    // The loop calls it from iteration 60 (~6 s); make that sooner.
    uint64_t start_at = f.sym("kdtest", "KdTestPagedStartIteration");
    CHECK(f.host.read_as<uint32_t>(start_at) == 60);
    auto iteration = f.host.read_as<uint64_t>(f.sym("kdtest", "KdTestIteration"));
    CHECK(f.host.write_as<uint32_t>(start_at, static_cast<uint32_t>(iteration + 3)) ==
          STATUS_SUCCESS);
    f.host.skip_int3_and_go();
    auto sc = f.host.state_change(15s);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(sc.ProgramCounter == paged);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionAddress == paged);
    auto in_memory = f.host.read_virtual(paged, 16, &status);
    CHECK(status == STATUS_SUCCESS);
    CHECK(in_memory == std::vector<uint8_t>(sc.ControlReport.InstructionStream,
                                            sc.ControlReport.InstructionStream + 16));
    CHECK(in_memory[0] != 0xCC);
    f.thread->pause();
    CHECK(f.target->breakpoint_table()[h - 1].flags == (BP_ACTIVE | BP_LIFTED));
    CHECK_FALSE(f.machine->is_paged_out(paged));
    f.thread->start();
    CHECK(f.host.restore_bp(h) == STATUS_SUCCESS);

    // .pagein: the page comes in (at once here) and the owed breakpoint is written.
    uint64_t spin = f.sym("kdtest", "KdTestSpin");
    uint8_t spin_byte = f.host.read_as<uint8_t>(spin);
    f.thread->pause();
    REQUIRE(f.machine->mark_paged_out(spin));
    f.thread->start();
    auto [st2, h2] = f.host.write_bp(spin);
    CHECK(st2 == STATUS_SUCCESS);
    f.thread->pause();
    CHECK(f.target->breakpoint_table()[h2 - 1].flags == (BP_ACTIVE | BP_PENDING));
    f.thread->start();
    CHECK(f.host.page_in(spin) == STATUS_SUCCESS);
    CHECK(f.host.read_as<uint8_t>(spin) == 0xCC);
    f.thread->pause();
    CHECK(f.target->breakpoint_table()[h2 - 1].flags == BP_ACTIVE);
    CHECK(f.target->breakpoint_table()[h2 - 1].content == spin_byte);
    f.thread->start();
    CHECK(f.host.restore_bp(h2) == STATUS_SUCCESS);
    CHECK(f.host.read_as<uint8_t>(spin) == spin_byte);
    CHECK(f.host.page_in(spin) == STATUS_SUCCESS);        // present already: nothing to do
    CHECK(f.host.page_in(0x1000) == STATUS_UNSUCCESSFUL); // nothing there at all
    f.thread->pause();
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("hardware breakpoints via control space on every CPU: ba w8, ba r8, ba e1, step") {
    Fixture f(2);
    f.host.connect_and_break();
    uint64_t counter = f.sym("kdtest", "KdTestCounter");
    uint64_t update = f.sym("kdtest", "KdTestUpdate");
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    uint8_t compute_byte = f.host.read_as<uint8_t>(compute);
    auto set_dr = [&](int n, uint64_t address) {
        for (uint16_t cpu = 0; cpu < 2; cpu++) {
            KSPECIAL_REGISTERS s = f.host.read_special(cpu);
            uint64_t* dr[] = {&s.KernelDr0, &s.KernelDr1, &s.KernelDr2, &s.KernelDr3};
            *dr[n] = address;
            f.host.write_special(cpu, s);
        }
    };
    // ba w8 kdtest!KdTestCounter: Dr1, L1, RW1 = 01, LEN1 = 10 (8 bytes).
    set_dr(1, counter);
    uint64_t dr7_w8 = 0x400 | (1 << 2) | (1ULL << 20) | (2ULL << 22);
    uint64_t before = f.host.read_as<uint64_t>(counter);
    skip_int3(f.host);
    f.host.go(0, dr7_w8);
    auto w = f.host.state_change();
    CHECK(w.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(w.Processor == 0);
    CHECK(w.u.Exception.ExceptionRecord.ExceptionAddress == w.ProgramCounter);
    CHECK((w.ControlReport.Dr6 & 0xF) == 2);
    CHECK((w.ControlReport.Dr6 & 0x4000) == 0);
    CHECK(w.ControlReport.Dr7 == dr7_w8);
    CHECK(w.ProgramCounter > update);
    CHECK(w.ProgramCounter < update + 0x40);
    CHECK(f.host.read_as<uint64_t>(counter) == before + 1); // reported after the store
    CHECK(f.host.read_special(0).KernelDr6 == (0xFFFF0FF0 | 2));

    // ba r8 (RW = 11): the load at the start of the next KdTestUpdate, before its store.
    uint64_t dr7_r8 = 0x400 | (1 << 2) | (3ULL << 20) | (2ULL << 22);
    f.host.go(0, dr7_r8);
    auto r = f.host.state_change();
    CHECK(r.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK((r.ControlReport.Dr6 & 0xF) == 2);
    CHECK(r.ProgramCounter > update);
    CHECK(r.ProgramCounter < w.ProgramCounter);
    CHECK(f.host.read_as<uint64_t>(counter) == before + 1);

    // ba e1 kdtest!KdTestCompute: before the instruction, and no 0xCC anywhere.
    set_dr(0, compute);
    f.host.go(0, 0x401);
    auto e = f.host.state_change();
    CHECK(e.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(e.ProgramCounter == compute);
    CHECK(e.u.Exception.ExceptionRecord.ExceptionAddress == compute);
    CHECK((e.ControlReport.Dr6 & 0xF) == 1);
    CHECK(e.ControlReport.InstructionStream[0] == compute_byte);
    CHECK(f.host.read_as<uint8_t>(compute) == compute_byte);
    // A step from there (RF: the breakpoint does not fire again): BS.
    f.host.go(1, 0x401);
    auto t = f.host.state_change();
    CHECK(t.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK((t.ControlReport.Dr6 & 0x4000) != 0);
    CHECK((t.ControlReport.Dr6 & 0xF) == 0);
    CHECK(t.ProgramCounter > compute);
    // ... and it fires on the next call.
    f.host.go(0, 0x401);
    CHECK(f.host.state_change().ProgramCounter == compute);

    // Continue2 with Dr7 0x400 turns them all off on every processor.
    f.host.go(0, 0x400);
    std::this_thread::sleep_for(300ms);
    REQUIRE(f.host.link->send_breakin().has_value());
    auto brk = f.host.state_change();
    CHECK(brk.ProgramCounter == f.machine->breakpoint_with_status());
    for (uint16_t cpu = 0; cpu < 2; cpu++) {
        KSPECIAL_REGISTERS s = f.host.read_special(cpu);
        CHECK(s.KernelDr7 == 0x400);
        CHECK(s.KernelDr6 == 0);
        CHECK(s.KernelDr0 == compute); // the addresses stay where the host put them
    }
    f.thread->pause();
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("t into a call, gu through a breakpoint on the return address, p over a call") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t loop = f.sym("kdtest", "KdTestLoop");
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    uint64_t update = f.sym("kdtest", "KdTestUpdate");
    uint64_t counter = f.sym("kdtest", "KdTestCounter");
    uint64_t call = find_call(f.host, loop, 0x80, compute);
    uint64_t call_update = find_call(f.host, loop, 0x80, update);
    auto [st, h] = f.host.write_bp(call);
    REQUIRE(st == STATUS_SUCCESS);
    f.host.skip_int3_and_go();
    auto at_call = f.host.state_change();
    REQUIRE(at_call.ProgramCounter == call);
    f.host.restore_all();
    CONTEXT c = f.host.get_context();

    // t: the callee's first instruction, return address pushed, no TF left in the flags.
    f.host.go(1);
    auto in = f.host.state_change();
    CHECK(in.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
    CHECK(in.ProgramCounter == compute);
    CHECK((in.ControlReport.Dr6 & 0x4000) != 0);
    CHECK((in.ControlReport.EFlags & 0x100) == 0);
    CONTEXT inside = f.host.get_context();
    CHECK(inside.Rip == compute);
    CHECK(inside.Rsp == c.Rsp - 8);
    CHECK((inside.EFlags & 0x100) == 0);
    CHECK(f.host.read_as<uint64_t>(inside.Rsp) == call + 5);

    // gu: a breakpoint on the return address, go.
    CHECK(f.host.write_bp(call + 5).first == STATUS_SUCCESS);
    f.host.go();
    auto out = f.host.state_change();
    CHECK(out.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(out.ProgramCounter == call + 5);
    CHECK(f.host.get_context().Rsp == c.Rsp);
    f.host.restore_all();

    // Step to the call of KdTestUpdate, then p: a breakpoint after it, go.
    uint64_t pc = out.ProgramCounter;
    for (int i = 0; i < 10 && pc != call_update; i++) {
        f.host.go(1);
        pc = f.host.state_change().ProgramCounter;
    }
    REQUIRE(pc == call_update);
    uint64_t n = f.host.read_as<uint64_t>(counter);
    CHECK(f.host.write_bp(call_update + 5).first == STATUS_SUCCESS);
    f.host.go();
    auto over = f.host.state_change();
    CHECK(over.ProgramCounter == call_update + 5);
    CHECK(f.host.read_as<uint64_t>(counter) == n + 1); // the call ran
    f.host.restore_all();

    // g: runs freely again (no trace flag left behind).
    f.host.go();
    f.host.pump(500ms);
    REQUIRE(f.host.link->send_breakin().has_value());
    auto brk = f.host.state_change();
    CHECK(brk.ProgramCounter == f.machine->breakpoint_with_status());
    CHECK(f.host.read_as<uint64_t>(counter) > n + 2);
    f.thread->pause();
    CHECK_FALSE(f.machine->trace_flag(0));
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("kdlate.sys after boot: LoadSymbols, bu KdLateWork on CPU 1, step with CPU 0 frozen") {
    Fixture f(2, {}, [](SimConfig& c) { tweak_late(c, 2000ms, 3500ms, 500ms); });
    auto first = f.host.connect_and_break();
    REQUIRE(first.NewState == DbgKdExceptionStateChange); // before the load
    auto pe = PeImage::load_file(default_image_dir() / "kdlate.sys");
    REQUIRE(pe.has_value());
    const std::string path = "\\SystemRoot\\system32\\drivers\\kdlate.sys";
    uint64_t base = layout::LATE_DRIVER_BASE;
    uint64_t work = base + *pe->export_rva("KdLateWork");
    uint64_t helper = base + *pe->export_rva("KdLateHelper");
    uint64_t entry = base + *pe->export_rva("DriverEntry");
    uint32_t status = 0;
    CHECK(f.host.read_virtual(work, 1, &status).empty()); // not loaded yet

    f.host.skip_int3_and_go();
    std::string extra;
    auto load = f.host.state_change(10s, &extra);
    REQUIRE(load.NewState == DbgKdLoadSymbolsStateChange);
    CHECK(load.Processor == 1);
    CHECK(load.NumberProcessors == 2);
    CHECK(load.u.LoadSymbols.PathNameLength == path.size() + 1);
    CHECK(extra == path + std::string(1, '\0'));
    CHECK(load.u.LoadSymbols.BaseOfDll == base);
    CHECK(load.u.LoadSymbols.SizeOfImage == pe->size_of_image());
    CHECK(load.u.LoadSymbols.CheckSum == pe->checksum());
    CHECK(load.u.LoadSymbols.UnloadSymbols == 0);
    auto names = f.host.module_names(f.machine->ps_loaded_module_list());
    CHECK(names == std::vector<std::string>{"ntoskrnl.exe", "hal.dll", "kdcom.dll", "kdtest.sys",
                                            "kdlate.sys"});
    uint8_t entry_byte = f.host.read_as<uint8_t>(entry);
    // bu kdlate!KdLateWork resolves now; DriverEntry's breakpoint stays in until the unload.
    auto [st, h_work] = f.host.write_bp(work);
    CHECK(st == STATUS_SUCCESS);
    CHECK(f.host.read_as<uint8_t>(work) == 0xCC);
    // Continue a LoadSymbols stop as it is (no Rip change).
    f.host.go();
    auto hit = f.host.state_change();
    CHECK(hit.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(hit.ProgramCounter == work);
    CHECK(hit.Processor == 1);
    CHECK(hit.Thread == f.machine->current_thread(1));
    bool hello = false;
    for (const auto& p : f.host.prints) {
        hello = hello || p.rfind("kdlate: DriverEntry", 0) == 0;
    }
    CHECK(hello);
    f.host.restore_all();

    // Step CPU 1 through KdLateWork into KdLateHelper; CPU 0 stays frozen meanwhile.
    CONTEXT cpu0 = f.host.get_context(0);
    uint64_t kdtest_counter = f.sym("kdtest", "KdTestCounter");
    uint64_t loops = f.host.read_as<uint64_t>(kdtest_counter);
    bool entered_helper = false;
    for (int i = 0; i < 12 && !entered_helper; i++) {
        f.host.go(1);
        auto s = f.host.state_change();
        CHECK(s.Processor == 1);
        CHECK(s.u.Exception.ExceptionRecord.ExceptionCode == STATUS_SINGLE_STEP);
        entered_helper = s.ProgramCounter == helper;
        std::this_thread::sleep_for(30ms);
    }
    CHECK(entered_helper);
    CONTEXT cpu0_after = f.host.get_context(0);
    CHECK(cpu0_after.Rip == cpu0.Rip);
    CHECK(cpu0_after.Rsp == cpu0.Rsp);
    CHECK(f.host.read_as<uint64_t>(kdtest_counter) == loops);

    // A breakpoint on DriverEntry is still in when the driver goes: the UnloadSymbols stop
    // takes it out of the image, and its handle restores fine.
    auto [st2, h_entry] = f.host.write_bp(entry);
    CHECK(st2 == STATUS_SUCCESS);
    f.host.go();
    auto unload = f.host.state_change(10s, &extra);
    REQUIRE(unload.NewState == DbgKdLoadSymbolsStateChange);
    CHECK(unload.u.LoadSymbols.UnloadSymbols == 1);
    CHECK(unload.u.LoadSymbols.BaseOfDll == base);
    CHECK(extra == path + std::string(1, '\0'));
    CHECK(f.host.read_as<uint8_t>(entry) == entry_byte);
    f.thread->pause();
    CHECK(f.target->breakpoint_table()[h_entry - 1].flags == (BP_ACTIVE | BP_LIFTED));
    f.thread->start();
    CHECK(f.host.restore_bp(h_entry) == STATUS_SUCCESS);
    f.host.go();
    // Loaded again later at the same base, with fresh code.
    auto reload = f.host.state_change(10s);
    REQUIRE(reload.NewState == DbgKdLoadSymbolsStateChange);
    CHECK(reload.u.LoadSymbols.UnloadSymbols == 0);
    CHECK(f.host.read_as<uint8_t>(entry) == entry_byte);
    f.thread->pause();
    CHECK(all_code_intact(*f.machine));
}

TEST_CASE("LoadSymbols while no host has talked is dropped; the module list has it") {
    Fixture f(1, {}, [](SimConfig& c) { tweak_late(c, 200ms, 0ms, 0ms); });
    std::this_thread::sleep_for(1200ms);
    auto sc = f.host.connect_and_break();
    CHECK(sc.NewState == DbgKdExceptionStateChange);
    CHECK(sc.ProgramCounter == f.machine->breakpoint_with_status());
    auto names = f.host.module_names(f.machine->ps_loaded_module_list());
    CHECK(names.size() == 5);
    CHECK(names.back() == "kdlate.sys");
    for (const auto& p : f.host.prints) {
        CHECK(p.rfind("kdlate:", 0) != 0);
    }
    f.thread->pause();
    CHECK(f.machine->late_driver_loads() == 1);
    CHECK(f.target->stats().prints_dropped >= 1);
}

TEST_CASE("RESET in mid-session keeps the stop and the table; Reboot restores the code") {
    Fixture f;
    f.host.connect_and_break();
    uint64_t compute = f.sym("kdtest", "KdTestCompute");
    uint64_t update = f.sym("kdtest", "KdTestUpdate");
    uint64_t access = f.sym("kdtest", "KdTestAccess");
    uint8_t update_byte = f.host.read_as<uint8_t>(update);
    auto [s1, h1] = f.host.write_bp(compute);
    auto [s2, h2] = f.host.write_bp(access);
    f.host.skip_int3_and_go();
    auto sc = f.host.state_change();
    REQUIRE(sc.ProgramCounter == compute);
    // The host resynchronises (a RESET, as after reopening the port): the same stop again.
    f.host.reset();
    auto again = f.host.state_change();
    REQUIRE_FALSE(f.host.data_ids.empty());
    CHECK(f.host.data_ids[0] == (INITIAL_PACKET_ID | SYNC_PACKET_ID));
    CHECK(again.ProgramCounter == compute);
    CHECK(again.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(f.host.read_as<uint8_t>(access) == 0xCC); // the table survives a RESET
    CHECK(f.host.restore_bp(h1) == STATUS_SUCCESS);
    CHECK(f.host.restore_bp(h2) == STATUS_SUCCESS);

    // Reboot with a breakpoint in: the machine comes back with the code from disk and an
    // empty table.
    auto [s3, h3] = f.host.write_bp(update);
    REQUIRE(s3 == STATUS_SUCCESS);
    f.host.prints.clear();
    f.host.send_no_reply(Host::api(DbgKdRebootApi));
    f.host.reset(); // as WinDbg reconnects: RESET until the rebooted target answers
    REQUIRE(f.host.wait_print("kdtest: DriverEntry"));
    REQUIRE(f.host.link->send_breakin().has_value());
    auto after = f.host.state_change();
    CHECK(after.ProgramCounter == f.machine->breakpoint_with_status());
    CHECK(f.host.read_as<uint8_t>(update) == update_byte);
    CHECK(f.host.restore_bp(h3) == STATUS_UNSUCCESSFUL);
    f.thread->pause();
    for (const auto& e : f.target->breakpoint_table()) {
        CHECK(e.flags == 0);
    }
    CHECK(all_code_intact(*f.machine));
}

namespace {

// kdsim as a process on an AF_UNIX socket, for what only the program does (exit reports).
struct KdsimProcess {
    pid_t pid = -1;
    std::string socket_path;

    // kdsim's log (stderr) goes to `log_path`, or nowhere.
    KdsimProcess(std::vector<std::string> args, const std::vector<std::string>& env_extra = {},
                 const std::string& log_path = {}) {
        socket_path = "/tmp/kdsim-test-" + std::to_string(::getpid()) + "-" +
                      std::to_string(counter()++) + ".sock";
        ::unlink(socket_path.c_str());
        args.insert(args.begin(), {std::string(KDCART_BIN_DIR) + "/kdsim", "--unix", socket_path});
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        std::vector<std::string> env_strings(env_extra);
        for (char** e = environ; *e != nullptr; e++) {
            env_strings.emplace_back(*e);
        }
        std::vector<char*> envp;
        for (auto& e : env_strings) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 2,
                                         log_path.empty() ? "/dev/null" : log_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644); // its log
        int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        REQUIRE(rc == 0);
    }
    ~KdsimProcess() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        ::unlink(socket_path.c_str());
    }
    static int& counter() {
        static int n = 0;
        return n;
    }

    std::unique_ptr<PacketLink> connect() {
        for (int i = 0; i < 200; i++) {
            int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
                return make_kdcom_link(make_fd_stream(fd, "kdsim"));
            }
            ::close(fd);
            std::this_thread::sleep_for(50ms);
        }
        FAIL("kdsim did not listen");
        return nullptr;
    }

    // Waits for kdsim to exit on its own (a bad command line): its exit status.
    int wait_exit() {
        int status = 0;
        for (int i = 0; i < 100; i++) {
            if (::waitpid(pid, &status, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            std::this_thread::sleep_for(50ms);
        }
        return -2;
    }

    int terminate() {
        ::kill(pid, SIGTERM);
        int status = 0;
        for (int i = 0; i < 100; i++) {
            if (::waitpid(pid, &status, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            std::this_thread::sleep_for(50ms);
        }
        return -2;
    }
};

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

} // namespace

TEST_CASE("kdsim --dump-on-exit: 'code modified at' with a breakpoint left in, else intact") {
    auto kdtest = PeImage::load_file(default_image_dir() / "kdtest.sys");
    REQUIRE(kdtest.has_value());
    uint64_t access = layout::DRIVER_BASE + *kdtest->export_rva("KdTestAccess");
    uint64_t compute = layout::DRIVER_BASE + *kdtest->export_rva("KdTestCompute");
    std::string report = "/tmp/kdsim-code-" + std::to_string(::getpid()) + ".txt";

    for (int run = 0; run < 2; run++) {
        CAPTURE(run);
        ::unlink(report.c_str());
        // Run 0 names the file on the command line, run 1 through the environment.
        std::vector<std::string> args = {"--late-driver", "off"};
        std::vector<std::string> env;
        if (run == 0) {
            args.insert(args.end(), {"--dump-on-exit", report});
        } else {
            env.push_back("KDSIM_DUMP_ON_EXIT=" + report);
        }
        KdsimProcess sim(args, env);
        Host host;
        host.link = sim.connect();
        host.connect_and_break();
        auto [st, h] = host.write_bp(access);
        REQUIRE(st == STATUS_SUCCESS);
        CHECK(host.write_bp(compute).first == STATUS_SUCCESS);
        host.skip_int3_and_go();
        CHECK(host.state_change().ProgramCounter == compute);
        if (run == 1) {
            host.restore_all(); // a debugger that cleans up when it quits
        }
        host.go();
        std::this_thread::sleep_for(200ms);
        CHECK(sim.terminate() == 0);
        std::string text = read_file(report);
        CHECK(text.find("module kdtest.sys base fffff88001200000") != std::string::npos);
        char want[64];
        std::snprintf(want, sizeof(want), "code modified at %016llx (kdtest.sys)\n",
                      static_cast<unsigned long long>(access));
        if (run == 0) {
            CHECK(text.find(want) != std::string::npos);
            CHECK(text.find(" modified 1 byte(s), first at ") != std::string::npos);
        } else {
            CHECK(text.size() >= 12);
            CHECK(text.substr(text.size() - 12) == "code intact\n");
        }
    }
    ::unlink(report.c_str());
}

// ---------------------------------------------------------------------------------------------
// crash-dump capture support: physical snapshots, a link that goes dead, bug checks
// ---------------------------------------------------------------------------------------------

namespace {

// Every RAM page of the machine against the snapshot file (offset = physical address).
void check_snapshot(SimMachine& m, const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    std::vector<uint8_t> file_page(0x1000);
    std::vector<uint8_t> memory_page(0x1000);
    size_t differing = 0;
    for (const auto& run : m.physical_runs()) {
        for (uint64_t pa = run.base; pa < run.base + run.size; pa += 0x1000) {
            REQUIRE(::pread(fd, file_page.data(), 0x1000, static_cast<off_t>(pa)) == 0x1000);
            REQUIRE(m.read_physical(pa, memory_page) == 0x1000);
            differing += file_page != memory_page ? 1 : 0;
        }
    }
    ::close(fd);
    CHECK(differing == 0);
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

} // namespace

TEST_CASE("phys_snapshot: all physical memory, written before each state change goes out") {
    std::string path = "/tmp/kdsim-phys-" + std::to_string(::getpid()) + ".raw";
    ::unlink(path.c_str());
    KdTargetOptions options;
    options.phys_snapshot = path;
    Fixture f(2, options);
    f.host.connect_and_break();
    // The host sees the stop: the snapshot is there already, whole.
    CHECK(std::filesystem::exists(path));
    CHECK(slurp(path + ".runs") == "1 9e\n100 1f00\n3000 1200\n");
    f.thread->pause();
    CHECK(f.target->stats().snapshots == 1);
    check_snapshot(*f.machine, path);
    f.thread->start();

    // The machine runs on and changes memory; the next stop has a new snapshot.
    uint64_t counter = f.sym("kdtest", "KdTestCounter");
    uint64_t before = f.host.read_as<uint64_t>(counter);
    f.host.skip_int3_and_go();
    std::this_thread::sleep_for(400ms);
    REQUIRE(f.host.link->send_breakin().has_value());
    f.host.state_change();
    f.thread->pause();
    CHECK(f.target->stats().snapshots == 2);
    uint64_t after = 0;
    REQUIRE(f.machine->read_virtual(counter, {reinterpret_cast<uint8_t*>(&after), 8}) == 8);
    CHECK(after > before);
    check_snapshot(*f.machine, path);
    f.thread->start();
    // SwitchProcessor reports another state change: another snapshot.
    auto m = Host::api(DbgKdSwitchProcessor);
    m.Processor = 1;
    f.host.send_no_reply(m);
    CHECK(f.host.state_change().Processor == 1);
    f.thread->pause();
    CHECK(f.target->stats().snapshots == 3);
    f.thread->start();
    // The same stop sent again (a RESEND) is not written again: nothing changed. A host write
    // changes memory: the stop sent after it comes with a new snapshot that has the write.
    f.host.read_as<uint64_t>(counter);
    f.host.send_control(PACKET_TYPE_KD_RESEND);
    CHECK(f.host.state_change().Processor == 1);
    f.thread->pause();
    CHECK(f.target->stats().snapshots == 3);
    f.thread->start();
    REQUIRE(f.host.write_as<uint64_t>(counter, 0x1122334455667788ull) == STATUS_SUCCESS);
    f.host.send_control(PACKET_TYPE_KD_RESEND);
    CHECK(f.host.state_change().Processor == 1);
    f.thread->pause();
    CHECK(f.target->stats().snapshots == 4);
    check_snapshot(*f.machine, path);
    f.thread->start();
    ::unlink(path.c_str());
    ::unlink((path + ".runs").c_str());
}

TEST_CASE("mute_after_bytes: once, the link goes dead for mute_for, then the session goes on") {
    KdTargetOptions options;
    options.mute_after_bytes = 6000;
    options.mute_for = 2000ms;
    Fixture f(1, options);
    f.host.connect_and_break();
    uint64_t base = layout::DRIVER_BASE;
    auto first = f.host.read_virtual(base, 0x800);
    REQUIRE(first.size() == 0x800);
    int slow = 0;
    for (int i = 0; i < 8; i++) {
        CAPTURE(i);
        auto start = std::chrono::steady_clock::now();
        auto data = f.host.read_virtual(base, 0x800);
        auto took = std::chrono::steady_clock::now() - start;
        CHECK(data == first);
        if (took > 1500ms) {
            slow++;
            CHECK(took > 1900ms); // nothing got through for mute_for
        }
    }
    CHECK(slow == 1);
    f.thread->pause();
    const auto& st = f.target->stats();
    CHECK_FALSE(f.target->muted());
    CHECK(st.bytes_sent > 8 * 0x800);
    CHECK(st.muted_events_in > 0);   // the host's ACK and request, at least
    CHECK(st.muted_packets_out > 0); // the reply sent again while dead
    f.thread->start();
    f.host.skip_int3_and_go();
}

TEST_CASE("bug check on a timer and .crash: the stop, then the crash dump and a reboot") {
    Fixture f(1, {}, [](SimConfig& c) {
        c.bugcheck_after.enabled = true;
        c.bugcheck_after.after = 1000ms;
        c.bugcheck_after.code = 0xD1;
    });
    f.host.reset();
    auto sc = f.host.state_change(10s);
    CHECK(sc.NewState == DbgKdExceptionStateChange);
    CHECK(sc.Processor == 0);
    CHECK(sc.ProgramCounter == f.machine->breakpoint_with_status());
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
    CHECK(sc.u.Exception.ExceptionRecord.ExceptionAddress == f.machine->breakpoint_with_status());
    CHECK(sc.u.Exception.FirstChance == 1);
    REQUIRE_FALSE(f.host.prints.empty());
    CHECK(f.host.prints.back().find("\n*** Fatal System Error: 0x000000d1\n") == 0);
    uint64_t block = f.host.read_as<uint64_t>(f.machine->debugger_data_list());
    auto kdbg = f.host.read_as<KDDEBUGGER_DATA64>(block);
    CHECK(f.host.read_as<uint64_t>(kdbg.KiBugcheckData) == 0xD1);
    CHECK(f.host.read_as<uint64_t>(kdbg.KiBugcheckData + 16) == 2); // IRQL
    CHECK(f.host.read_as<uint64_t>(kdbg.KiBugcheckData + 32) ==
          f.sym("kdtest", "KdTestRaiseBugCheck"));

    // Continued past the int3: "writing crash dump", a reboot; the host sees a new boot.
    f.host.prints.clear();
    f.host.skip_int3_and_go();
    f.host.last_target_id.reset();
    REQUIRE(f.host.wait_print("kdtest: DriverEntry"));
    f.thread->pause();
    CHECK(f.target->stats().crash_reboots == 1);
    CHECK(f.machine->bugcheck_data()[0] == 0);
    f.thread->start();

    // Once per machine: the rebooted one stays up. Then .crash does the same with 0xE2.
    f.host.connect_and_break();
    CHECK(f.host.read_as<uint32_t>(f.sym("kdtest", "KdTestBugCheckCode")) == 0);
    f.host.prints.clear();
    f.host.send_no_reply(Host::api(DbgKdCauseBugCheckApi));
    auto crash = f.host.state_change();
    CHECK(crash.ProgramCounter == f.machine->breakpoint_with_status());
    REQUIRE_FALSE(f.host.prints.empty());
    CHECK(f.host.prints.back() == "\n*** Fatal System Error: 0x000000e2\n"
                                  "                       (0x0000000000000000,0x0000000000000000,"
                                  "0x0000000000000000,0x0000000000000000)\n\n");
    f.host.prints.clear();
    f.host.skip_int3_and_go();
    f.host.last_target_id.reset();
    REQUIRE(f.host.wait_print("kdtest: DriverEntry"));
    f.thread->pause();
    CHECK(f.target->stats().crash_reboots == 2);
    f.thread->start();
}

TEST_CASE("kdsim --bugcheck-after, KDSIM_PHYS_SNAPSHOT: the stop, the snapshot, the dump line") {
    std::string snapshot = "/tmp/kdsim-phys-" + std::to_string(::getpid()) + "-p.raw";
    std::string log = "/tmp/kdsim-log-" + std::to_string(::getpid()) + ".txt";
    ::unlink(snapshot.c_str());
    {
        // The snapshot file through the environment (as through `kdcart --sim`).
        KdsimProcess sim(
            {"--late-driver", "off", "--bugcheck-after", "1.5", "0xD1", "--mute-after-bytes", "0"},
            {"KDSIM_PHYS_SNAPSHOT=" + snapshot}, log);
        Host host;
        host.link = sim.connect();
        host.reset();
        auto sc = host.state_change(15s);
        CHECK(sc.ProgramCounter == sc.u.Exception.ExceptionRecord.ExceptionAddress);
        CHECK(sc.u.Exception.ExceptionRecord.ExceptionCode == STATUS_BREAKPOINT);
        REQUIRE(std::filesystem::exists(snapshot));
        CHECK(slurp(snapshot + ".runs") == "1 9e\n100 1f00\n3000 1200\n");
        // Physical memory read through the link equals the snapshot.
        auto m = Host::api(DbgKdReadPhysicalMemoryApi);
        m.u.ReadMemory.TargetBaseAddress = 0x100000;
        m.u.ReadMemory.TransferCount = 0x800;
        auto [reply, data] = host.request(m);
        REQUIRE(data.size() == 0x800);
        std::string raw = slurp(snapshot);
        REQUIRE(raw.size() == 0x4200000);
        CHECK(std::equal(data.begin(), data.end(), raw.begin() + 0x100000));
        host.prints.clear();
        host.skip_int3_and_go();
        host.last_target_id.reset();
        REQUIRE(host.wait_print("kdtest: DriverEntry"));
        CHECK(sim.terminate() == 0);
    }
    std::string text = slurp(log);
    CHECK(
        text.find("kdsim: writing crash dump (bug check 0x000000d1) to C:\\Windows\\MEMORY.DMP") !=
        std::string::npos);
    // A bad CODE is refused, on the command line or from the environment.
    KdsimProcess bad({"--bugcheck-after", "1", "0"});
    CHECK(bad.wait_exit() == 2);
    KdsimProcess bad_env({}, {"KDSIM_BUGCHECK_AFTER=1 zz"});
    CHECK(bad_env.wait_exit() == 2);
    ::unlink(snapshot.c_str());
    ::unlink((snapshot + ".runs").c_str());
    ::unlink(log.c_str());
}
