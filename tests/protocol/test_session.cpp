// KdSession + KdClient against a scripted target on the other end of a socketpair.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "protocol/KdClient.h"
#include "transport/KdcomCodec.h"

#include <doctest/doctest.h>
#include <future>
#include <sys/socket.h>

using namespace kdcart;
using namespace kdcart::protocol;
using namespace kdcart::transport;

namespace {

struct Recorder : SessionDelegate {
    std::string printed;
    std::vector<std::string> notices;
    void on_debug_print(std::string_view t) override { printed += t; }
    std::string on_debug_prompt(std::string_view) override { return "answer"; }
    void on_link_notice(std::string_view t) override { notices.emplace_back(t); }
};

// The target end: raw bytes plus a KDCOM decoder, so tests can also inject noise.
struct ScriptedTarget {
    std::unique_ptr<ByteStream> stream;
    KdcomDecoder decoder;
    std::deque<LinkEvent> pending;

    LinkEvent next(Millis timeout = Millis(3000)) {
        uint8_t buf[8192];
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (pending.empty()) {
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            auto n = stream->read_some(buf, Millis(100));
            if (!n) {
                continue;
            }
            std::vector<LinkEvent> ev;
            decoder.feed(std::span<const uint8_t>(buf, *n), ev);
            for (auto& e : ev) {
                pending.push_back(std::move(e));
            }
        }
        auto e = std::move(pending.front());
        pending.pop_front();
        return e;
    }
    bool silent_for(Millis t) {
        uint8_t buf[256];
        if (!pending.empty()) {
            return false;
        }
        auto n = stream->read_some(buf, t);
        if (n) {
            std::vector<LinkEvent> ev;
            decoder.feed(std::span<const uint8_t>(buf, *n), ev);
            for (auto& e : ev) {
                pending.push_back(std::move(e));
            }
        }
        return pending.empty();
    }
    KdPacket expect_data(uint16_t type) {
        auto e = next();
        REQUIRE(e.kind == LinkEventKind::Packet);
        REQUIRE(e.packet.type == type);
        return e.packet;
    }
    void expect_ack(uint32_t id) {
        auto e = next();
        REQUIRE(e.kind == LinkEventKind::Packet);
        CHECK(e.packet.type == PACKET_TYPE_KD_ACKNOWLEDGE);
        CHECK(e.packet.id == id);
    }
    void send(uint16_t type, uint32_t id, const std::vector<uint8_t>& payload = {}) {
        KdPacket p;
        p.type = type;
        p.id = id;
        p.payload = payload;
        REQUIRE(stream->write_all(kdcom_encode(p)));
    }
    void raw(const std::vector<uint8_t>& bytes) { REQUIRE(stream->write_all(bytes)); }
};

struct Fixture {
    Recorder rec;
    std::unique_ptr<KdSession> session;
    std::unique_ptr<KdClient> client;
    ScriptedTarget target;

    explicit Fixture(SessionOptions opt = fast_options()) {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        session =
            std::make_unique<KdSession>(make_kdcom_link(make_fd_stream(sv[0], "host")), &rec, opt);
        client = std::make_unique<KdClient>(*session);
        target.stream = make_fd_stream(sv[1], "target");
    }
    static SessionOptions fast_options() {
        SessionOptions o;
        o.ack_timeout = Millis(300);
        o.send_retries = 3;
        o.reply_timeout = Millis(1500);
        o.reset_interval = Millis(200);
        o.nudge_floor = Millis(300); // scripted exchanges take their time: no RESEND between
        return o;
    }
};

std::vector<uint8_t> manip_reply(const DBGKD_MANIPULATE_STATE64& req, uint32_t status,
                                 const std::vector<uint8_t>& data = {}) {
    DBGKD_MANIPULATE_STATE64 r = req;
    r.ReturnStatus = status;
    std::vector<uint8_t> out;
    kd_append(out, r);
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

DBGKD_MANIPULATE_STATE64 as_manip(const KdPacket& p) {
    auto m = kd_decode<DBGKD_MANIPULATE_STATE64>(p.payload);
    REQUIRE(m);
    return *m;
}

std::vector<uint8_t> version_reply(const DBGKD_MANIPULATE_STATE64& req) {
    DBGKD_MANIPULATE_STATE64 r = req;
    r.u.GetVersion64.MajorVersion = 0x000F;
    r.u.GetVersion64.MinorVersion = 19041;
    r.u.GetVersion64.MachineType = IMAGE_FILE_MACHINE_AMD64;
    r.u.GetVersion64.KernBase = 0xfffff80000600000;
    return manip_reply(r, STATUS_SUCCESS);
}

} // namespace

TEST_CASE("request: ids, ACKs both ways, SYNC bit masked in our ACK") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK(req.id == INITIAL_PACKET_ID);
    auto m = as_manip(req);
    CHECK(m.ApiNumber == DbgKdGetVersionApi);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID | SYNC_PACKET_ID,
                  version_reply(m));
    f.target.expect_ack(INITIAL_PACKET_ID);
    auto v = fut.get();
    REQUIRE(v);
    CHECK(v->MinorVersion == 19041);
    CHECK(v->KernBase == 0xfffff80000600000);

    // The next request uses the toggled id.
    auto fut2 = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req2 = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK(req2.id == (INITIAL_PACKET_ID | 1));
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req2.id);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID | 1,
                  version_reply(as_manip(req2)));
    f.target.expect_ack(INITIAL_PACKET_ID | 1);
    REQUIRE(fut2.get());
}

TEST_CASE("RESEND from the target: the same packet again, same id") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto first = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_RESEND, 0);
    auto again = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK(again.id == first.id);
    CHECK(again.payload == first.payload);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, again.id);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID,
                  version_reply(as_manip(again)));
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
    CHECK(f.session->counters().resends_received == 1);
}

TEST_CASE("no ACK: the host retransmits after its timeout") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto first = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    auto again = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE); // after ~300 ms
    CHECK(again.id == first.id);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, again.id);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID,
                  version_reply(as_manip(again)));
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
    CHECK(f.session->counters().retransmits >= 1);
}

TEST_CASE("a silent target gives a Timeout error, not a hang") {
    Fixture f;
    auto t0 = std::chrono::steady_clock::now();
    auto v = f.client->get_version();
    REQUIRE(!v);
    CHECK(v.error().code == Errc::Timeout);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("duplicate reply (our ACK was lost): ACKed again, delivered once") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] {
        auto a = f.client->get_version();
        auto b = f.client->read_virtual(0x1000, 4);
        return std::make_pair(a, b);
    });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    auto reply = version_reply(as_manip(req));
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, reply);
    f.target.expect_ack(INITIAL_PACKET_ID);
    auto req2 = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    // The first reply again, as if our ACK had been lost: ACKed again, not delivered.
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, reply);
    f.target.expect_ack(INITIAL_PACKET_ID);
    auto m2 = as_manip(req2);
    CHECK(m2.ApiNumber == DbgKdReadVirtualMemoryApi);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req2.id);
    m2.u.ReadMemory.ActualBytesRead = 4;
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID | 1,
                  manip_reply(m2, STATUS_SUCCESS, {1, 2, 3, 4}));
    f.target.expect_ack(INITIAL_PACKET_ID | 1);
    auto [a, b] = fut.get();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(b->bytes == std::vector<uint8_t>{1, 2, 3, 4});
    CHECK(f.session->counters().duplicates == 1);
}

TEST_CASE("damaged reply: the host asks RESEND and takes the good copy") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    KdPacket p;
    p.type = PACKET_TYPE_KD_STATE_MANIPULATE;
    p.id = INITIAL_PACKET_ID;
    p.payload = version_reply(as_manip(req));
    auto bytes = kdcom_encode(p);
    bytes[20] ^= 0x40;                // corrupt a payload byte
    f.target.raw({0x00, 0x13, 0x37}); // line noise too
    f.target.raw(bytes);
    auto resend = f.target.next();
    REQUIRE(resend.kind == LinkEventKind::Packet);
    CHECK(resend.packet.type == PACKET_TYPE_KD_RESEND);
    f.target.raw(kdcom_encode(p));
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
}

TEST_CASE("DbgPrint and FILE_IO arriving mid-request are handled and answered") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);

    DBGKD_DEBUG_IO io = kd_zero<DBGKD_DEBUG_IO>();
    io.ApiNumber = DbgKdPrintStringApi;
    std::string text = "kdtest: hello\n";
    io.u.PrintString.LengthOfString = static_cast<uint32_t>(text.size());
    std::vector<uint8_t> payload;
    kd_append(payload, io);
    payload.insert(payload.end(), text.begin(), text.end());
    f.target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID | SYNC_PACKET_ID, payload);
    f.target.expect_ack(INITIAL_PACKET_ID);

    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID | 1,
                  version_reply(as_manip(req)));
    f.target.expect_ack(INITIAL_PACKET_ID | 1);
    REQUIRE(fut.get());
    CHECK(f.rec.printed == text);

    // A CreateFile while waiting for a stop: answered with STATUS_NO_SUCH_FILE.
    auto waiter =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(3000)); });
    DBGKD_FILE_IO fio = kd_zero<DBGKD_FILE_IO>();
    fio.ApiNumber = DbgKdCreateFileApi;
    std::vector<uint8_t> fp;
    kd_append(fp, fio);
    f.target.send(PACKET_TYPE_KD_FILE_IO, INITIAL_PACKET_ID, fp);
    f.target.expect_ack(INITIAL_PACKET_ID);
    auto answer = f.target.expect_data(PACKET_TYPE_KD_FILE_IO);
    auto a = kd_decode<DBGKD_FILE_IO>(answer.payload);
    REQUIRE(a);
    CHECK(a->ApiNumber == DbgKdCreateFileApi);
    CHECK(a->Status == STATUS_NO_SUCH_FILE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, answer.id);

    // Then a state change ends the wait.
    auto sc = kd_zero<DBGKD_ANY_WAIT_STATE_CHANGE>();
    sc.NewState = DbgKdExceptionStateChange;
    sc.NumberProcessors = 1;
    sc.ProgramCounter = 0xfffff80000601000;
    sc.u.Exception.ExceptionRecord.ExceptionCode = STATUS_BREAKPOINT;
    std::vector<uint8_t> sp;
    kd_append(sp, sc);
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | 1, sp);
    f.target.expect_ack(INITIAL_PACKET_ID | 1);
    auto got = waiter.get();
    REQUIRE(got);
    CHECK(got->change.ProgramCounter == 0xfffff80000601000);
}

TEST_CASE("read_virtual splits at 3944 bytes and reports a partial read exactly") {
    Fixture f;
    auto fut =
        std::async(std::launch::async, [&] { return f.client->read_virtual(0x10000, 10000); });
    uint32_t tid = INITIAL_PACKET_ID;
    std::vector<uint32_t> sizes;
    for (int i = 0; i < 3; ++i) {
        auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
        f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
        auto m = as_manip(req);
        sizes.push_back(m.u.ReadMemory.TransferCount);
        // The third chunk hits an unmapped page after 100 bytes.
        uint32_t give = i < 2 ? m.u.ReadMemory.TransferCount : 100;
        m.u.ReadMemory.ActualBytesRead = give;
        std::vector<uint8_t> data(give, static_cast<uint8_t>(i + 1));
        f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, tid,
                      manip_reply(m, i < 2 ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL, data));
        f.target.expect_ack(tid);
        tid ^= 1;
    }
    auto r = fut.get();
    REQUIRE(r);
    CHECK(sizes == std::vector<uint32_t>{3944, 3944, 2112});
    CHECK(r->bytes.size() == 3944 + 3944 + 100);
    CHECK(r->status == STATUS_UNSUCCESSFUL);
    CHECK(r->bytes[3944] == 2);
}

TEST_CASE("a stale reply for another address is not taken for ours") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->read_virtual(0x2000, 8); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    auto m = as_manip(req);
    auto stale = m;
    stale.u.ReadMemory.TargetBaseAddress = 0x9999000;
    stale.u.ReadMemory.ActualBytesRead = 8;
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID,
                  manip_reply(stale, 0, std::vector<uint8_t>(8, 0xEE)));
    f.target.expect_ack(INITIAL_PACKET_ID);
    m.u.ReadMemory.ActualBytesRead = 8;
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID | 1,
                  manip_reply(m, 0, std::vector<uint8_t>(8, 0x11)));
    f.target.expect_ack(INITIAL_PACKET_ID | 1);
    auto r = fut.get();
    REQUIRE(r);
    CHECK(r->bytes == std::vector<uint8_t>(8, 0x11));
    CHECK(f.session->counters().stale_replies == 1);
}

TEST_CASE("RESET: host repeats RESET until answered; a target RESET is never a ping-pong") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.session->reset(Millis(3000)); });
    auto r1 = f.target.next();
    REQUIRE(r1.kind == LinkEventKind::Packet);
    CHECK(r1.packet.type == PACKET_TYPE_KD_RESET);
    auto r2 = f.target.next(); // repeated after reset_interval
    CHECK(r2.packet.type == PACKET_TYPE_KD_RESET);
    f.target.send(PACKET_TYPE_KD_RESET, INITIAL_PACKET_ID | SYNC_PACKET_ID);
    REQUIRE(fut.get());
    CHECK(f.session->synchronized());
    // No bounce: nothing more for the answered RESET... (drain further repeats if any raced)
    while (!f.target.silent_for(Millis(300))) {
        auto e = f.target.next();
        CHECK(e.packet.type == PACKET_TYPE_KD_RESET);
    }
    // A target answers every RESET with one: a RESET of its own (ids started over, SYNC bit)
    // is followed, not answered, or the two sides would RESET each other for ever.
    auto waiter =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(800)); });
    f.target.send(PACKET_TYPE_KD_RESET, INITIAL_PACKET_ID | SYNC_PACKET_ID);
    CHECK(f.target.silent_for(Millis(500)));
    CHECK(!waiter.get());
    CHECK(f.session->counters().target_resets == 1);
    // Our ids started over with it: the next request goes out with the initial id.
    auto req = std::async(std::launch::async, [&] {
        auto m = kd_zero<DBGKD_MANIPULATE_STATE64>();
        m.ApiNumber = DbgKdGetVersionApi;
        return f.session->request(m);
    });
    auto e = f.target.next();
    REQUIRE(e.kind == LinkEventKind::Packet);
    CHECK(e.packet.type == PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK(e.packet.id == INITIAL_PACKET_ID);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, INITIAL_PACKET_ID);
    auto reply = kd_zero<DBGKD_MANIPULATE_STATE64>();
    reply.ApiNumber = DbgKdGetVersionApi;
    std::vector<uint8_t> bytes;
    kd_append(bytes, reply);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID | SYNC_PACKET_ID, bytes);
    CHECK(req.get());
    f.target.expect_ack(INITIAL_PACKET_ID);
}

TEST_CASE("a packet the target sends again after our RESET is taken once and is no line error") {
    Fixture f;
    // A DbgPrint is taken and ACKed...
    auto waiter =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(600)); });
    DBGKD_DEBUG_IO io = kd_zero<DBGKD_DEBUG_IO>();
    io.ApiNumber = DbgKdPrintStringApi;
    const std::string text = "kdtest: before the reset\n";
    io.u.PrintString.LengthOfString = static_cast<uint32_t>(text.size());
    std::vector<uint8_t> payload;
    kd_append(payload, io);
    payload.insert(payload.end(), text.begin(), text.end());
    f.target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID | SYNC_PACKET_ID, payload);
    f.target.expect_ack(INITIAL_PACKET_ID);
    CHECK(!waiter.get());
    // ...then we RESET (as every connect does), and the target, as KDCOM does, sends its last
    // packet again under the SYNC id.
    auto fut = std::async(std::launch::async, [&] { return f.session->reset(Millis(3000)); });
    auto r = f.target.next();
    REQUIRE(r.kind == LinkEventKind::Packet);
    CHECK(r.packet.type == PACKET_TYPE_KD_RESET);
    f.target.send(PACKET_TYPE_KD_RESET, INITIAL_PACKET_ID | SYNC_PACKET_ID);
    REQUIRE(fut.get());
    while (!f.target.silent_for(Millis(300))) {
        (void)f.target.next(); // repeated RESETs that raced the answer
    }
    auto waiter2 =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(600)); });
    f.target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID | SYNC_PACKET_ID, payload);
    f.target.expect_ack(INITIAL_PACKET_ID);
    CHECK(!waiter2.get());
    CHECK(f.rec.printed == text); // shown once
    CHECK(f.session->counters().repeats_after_reset == 1);
    CHECK(f.session->counters().duplicates == 0);
    CHECK(f.session->error_events() == 0); // the line is not called noisy for it
}

// ---- issue 13: noisy links and malformed packets -----------------------------------------

namespace {

std::vector<uint8_t> break_state_change(uint64_t pc) {
    auto sc = kd_zero<DBGKD_ANY_WAIT_STATE_CHANGE>();
    sc.NewState = DbgKdExceptionStateChange;
    sc.NumberProcessors = 1;
    sc.ProgramCounter = pc;
    sc.u.Exception.ExceptionRecord.ExceptionCode = STATUS_BREAKPOINT;
    sc.u.Exception.ExceptionRecord.ExceptionAddress = pc;
    sc.u.Exception.FirstChance = 1;
    std::vector<uint8_t> out;
    kd_append(out, sc);
    return out;
}

size_t count_resends(ScriptedTarget& t, Millis quiet) {
    size_t n = 0;
    while (!t.silent_for(quiet)) {
        auto e = t.next();
        if (e.kind == LinkEventKind::Packet && e.packet.type == PACKET_TYPE_KD_RESEND) {
            ++n;
        }
    }
    return n;
}

} // namespace

TEST_CASE("a truncated state change (good checksum) is asked for again, then reported as a stop") {
    Fixture f;
    auto t0 = std::chrono::steady_clock::now();
    auto waiter =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(10000)); });
    auto payload = break_state_change(0xfffff80000601234);
    payload.resize(0x40); // cut inside the exception record; the checksum covers what is left
    for (int copy = 0; copy < 3; ++copy) {
        f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | SYNC_PACKET_ID, payload);
        if (copy < 2) {
            auto e = f.target.next(); // not ACKed: RESEND
            REQUIRE(e.kind == LinkEventKind::Packet);
            CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
        }
    }
    f.target.expect_ack(INITIAL_PACKET_ID); // the third identical copy is taken
    auto sc = waiter.get();
    REQUIRE(sc);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    CHECK(sc->malformed.find("truncated state change (64 of 240 bytes)") != std::string::npos);
    CHECK(sc->change.ProgramCounter == 0xfffff80000601234);
    CHECK(sc->change.NewState == 0); // no whole exception record: a stop of unknown kind
    CHECK(sc->change.NumberProcessors == 1);
    REQUIRE(!f.rec.notices.empty());
    CHECK(f.rec.notices.back().find("malformed state change") != std::string::npos);
}

TEST_CASE("an unknown NewState from a target that does not resend ends the wait too") {
    Fixture f;
    auto t0 = std::chrono::steady_clock::now();
    auto waiter =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(10000)); });
    auto payload = break_state_change(0xfffff80000605678);
    payload[0] = 0x99; // NewState 0x3099
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID, payload);
    // RESEND at once, then three more while the target stays silent; then it is taken.
    auto sc = waiter.get();
    REQUIRE(sc);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    CHECK(sc->malformed.find("unknown NewState 0x3099") != std::string::npos);
    CHECK(sc->change.ProgramCounter == 0xfffff80000605678);
    CHECK(count_resends(f.target, Millis(100)) == 4);
    CHECK(f.session->counters().malformed_stops == 1);
}

TEST_CASE("a reply whose id (outside the checksum) was flipped is not ACKed; the good copy is") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    auto reply = version_reply(as_manip(req));
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID ^ 0x00100000, reply);
    auto e = f.target.next();
    REQUIRE(e.kind == LinkEventKind::Packet);
    CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, reply);
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
    CHECK(f.session->counters().implausible == 1);
}

TEST_CASE("a reply with a flipped type bit is not taken for DbgPrint") {
    Fixture f;
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    auto reply = version_reply(as_manip(req));
    f.target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID, reply); // type 2 -> 3
    auto e = f.target.next();
    CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, reply);
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
    CHECK(f.rec.printed.empty());
}

TEST_CASE("a lost reply: the host asks RESEND when the line goes quiet, not after its timeout") {
    SessionOptions opt = Fixture::fast_options();
    opt.reply_timeout = Millis(8000);
    opt.idle_nudge = Millis(300);
    opt.nudge_floor = Millis(300);
    Fixture f(opt);
    auto t0 = std::chrono::steady_clock::now();
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    // The reply goes out but never arrives; the host asks again.
    auto e = f.target.next();
    REQUIRE(e.kind == LinkEventKind::Packet);
    CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, version_reply(as_manip(req)));
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    CHECK(f.session->counters().nudges == 1);
}

TEST_CASE("a reply cut short (bytes dropped, then silence) is asked for again within 0.5 s") {
    SessionOptions opt = Fixture::fast_options();
    opt.reply_timeout = Millis(8000);
    opt.idle_nudge = Millis(2000); // only the link's own gap detection can help in time
    Fixture f(opt);
    auto fut = std::async(std::launch::async, [&] { return f.client->get_version(); });
    auto req = f.target.expect_data(PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, req.id);
    KdPacket p;
    p.type = PACKET_TYPE_KD_STATE_MANIPULATE;
    p.id = INITIAL_PACKET_ID;
    p.payload = version_reply(as_manip(req));
    auto bytes = kdcom_encode(p);
    auto cut = bytes;
    cut.erase(cut.begin() + 30); // one byte lost: the packet never completes
    const auto sent = std::chrono::steady_clock::now();
    f.target.raw(cut);
    auto e = f.target.next();
    REQUIRE(e.kind == LinkEventKind::Packet);
    CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
    CHECK(std::chrono::steady_clock::now() - sent < Millis(500));
    f.target.raw(bytes);
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(fut.get());
}

TEST_CASE("an ACK whose type became RESET (4 -> 6) is not taken for a target reset") {
    struct ResetRecorder : Recorder {
        int resets = 0;
        void on_target_reset() override { ++resets; }
    } rec;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    KdSession session(make_kdcom_link(make_fd_stream(sv[0], "host")), &rec,
                      Fixture::fast_options());
    ScriptedTarget target;
    target.stream = make_fd_stream(sv[1], "target");
    auto waiter =
        std::async(std::launch::async, [&] { return session.wait_state_change(Millis(600)); });
    target.send(PACKET_TYPE_KD_RESET, INITIAL_PACKET_ID | 1); // an ACK's id
    auto back = target.next();
    CHECK(back.packet.type == PACKET_TYPE_KD_RESET); // the target's ids are unknown: agree again
    // Its answer (SYNC id, as a target answers our RESET) ends it: no RESET back.
    target.send(PACKET_TYPE_KD_RESET, INITIAL_PACKET_ID | SYNC_PACKET_ID);
    CHECK(target.silent_for(Millis(400)));
    CHECK(!waiter.get());
    // A RESET is never a new target: breakpoints and symbols stay (a reboot shows as the SYNC
    // bit on its data packets).
    auto waiter2 =
        std::async(std::launch::async, [&] { return session.wait_state_change(Millis(600)); });
    target.send(PACKET_TYPE_KD_RESET, INITIAL_PACKET_ID | SYNC_PACKET_ID);
    CHECK(target.silent_for(Millis(400)));
    CHECK(!waiter2.get());
    CHECK(rec.resets == 0);
    CHECK(rec.notices.empty());
}

TEST_CASE("a flipped SYNC bit is not a reboot; a target that means it is one") {
    struct ResetRecorder : Recorder {
        int resets = 0;
        void on_target_reset() override { ++resets; }
    } rec;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    KdSession session(make_kdcom_link(make_fd_stream(sv[0], "host")), &rec,
                      Fixture::fast_options());
    ScriptedTarget target;
    target.stream = make_fd_stream(sv[1], "target");
    auto print = [](const std::string& text) {
        auto io = kd_zero<DBGKD_DEBUG_IO>();
        io.ApiNumber = DbgKdPrintStringApi;
        io.u.PrintString.LengthOfString = static_cast<uint32_t>(text.size());
        std::vector<uint8_t> out;
        kd_append(out, io);
        out.insert(out.end(), text.begin(), text.end());
        return out;
    };
    // The session is under way: a first packet taken (the SYNC bit is expected then).
    auto w1 =
        std::async(std::launch::async, [&] { return session.wait_state_change(Millis(400)); });
    target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID | SYNC_PACKET_ID, print("one\n"));
    target.expect_ack(INITIAL_PACKET_ID);
    CHECK(!w1.get());
    // The next packet's id with the SYNC bit flipped on the line: asked for again, and the
    // good copy is taken; no reboot.
    auto w2 =
        std::async(std::launch::async, [&] { return session.wait_state_change(Millis(800)); });
    target.send(PACKET_TYPE_KD_DEBUG_IO, (INITIAL_PACKET_ID | 1) | SYNC_PACKET_ID, print("two\n"));
    auto e = target.next();
    REQUIRE(e.kind == LinkEventKind::Packet);
    CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
    target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID | 1, print("two\n"));
    target.expect_ack(INITIAL_PACKET_ID | 1);
    CHECK(!w2.get());
    CHECK(rec.resets == 0);
    CHECK(rec.printed == "one\ntwo\n");
    // A rebooted target sends its first packet with the SYNC bit every time it is asked.
    auto w3 =
        std::async(std::launch::async, [&] { return session.wait_state_change(Millis(1500)); });
    for (int copy = 0; copy < 3; ++copy) {
        target.send(PACKET_TYPE_KD_DEBUG_IO, INITIAL_PACKET_ID | SYNC_PACKET_ID, print("boot\n"));
        if (copy < 2) {
            auto r = target.next();
            REQUIRE(r.kind == LinkEventKind::Packet);
            CHECK(r.packet.type == PACKET_TYPE_KD_RESEND);
        }
    }
    target.expect_ack(INITIAL_PACKET_ID);
    CHECK(!w3.get());
    CHECK(rec.resets == 1);
    CHECK(rec.printed == "one\ntwo\nboot\n");
    REQUIRE(!rec.notices.empty());
    CHECK(rec.notices.back().find("Target rebooted") != std::string::npos);
}

TEST_CASE("a request ACKed and then dropped by the target is sent again at once") {
    Fixture f;
    // Stopped: the session has taken a stop.
    auto w =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(2000)); });
    const auto stop = break_state_change(0xfffff80000601000);
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | SYNC_PACKET_ID, stop);
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(w.get());
    auto t0 = std::chrono::steady_clock::now();
    auto req = std::async(std::launch::async, [&] {
        auto m = kd_zero<DBGKD_MANIPULATE_STATE64>();
        m.ApiNumber = DbgKdGetVersionApi;
        return f.session->request(m);
    });
    auto first = f.target.next();
    REQUIRE(first.kind == LinkEventKind::Packet);
    CHECK(first.packet.type == PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, first.packet.id); // ACKed, then lost (its type)
    // The host asks for the reply; the target has none and sends its stop again.
    auto nudge = f.target.next();
    REQUIRE(nudge.kind == LinkEventKind::Packet);
    CHECK(nudge.packet.type == PACKET_TYPE_KD_RESEND);
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | 1, stop);
    f.target.expect_ack(INITIAL_PACKET_ID | 1);
    auto again = f.target.next();
    REQUIRE(again.kind == LinkEventKind::Packet);
    CHECK(again.packet.type == PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK(again.packet.payload == first.packet.payload);
    CHECK(again.packet.id != first.packet.id);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, again.packet.id);
    auto reply = kd_zero<DBGKD_MANIPULATE_STATE64>();
    reply.ApiNumber = DbgKdGetVersionApi;
    std::vector<uint8_t> bytes;
    kd_append(bytes, reply);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, bytes);
    auto r = req.get();
    CHECK(r);
    CHECK(std::chrono::steady_clock::now() - t0 < Millis(1500)); // before reply_timeout
    CHECK(f.session->counters().lost_requests == 1);
}

TEST_CASE("a damaged copy of the stop is not taken for a new stop, however slow the target") {
    // The target has no reply for us and sends its stop again; that copy comes with two byte
    // changes that cancel in the checksum. Then the target is slow to answer our RESENDs (a
    // loaded machine): silence must not make the damaged copy a second stop.
    SessionOptions o = Fixture::fast_options();
    o.idle_nudge = Millis(100);
    o.reply_timeout = Millis(5000);
    Fixture f(o);
    auto w =
        std::async(std::launch::async, [&] { return f.session->wait_state_change(Millis(2000)); });
    const auto stop = break_state_change(0xfffff80000601000);
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | SYNC_PACKET_ID, stop);
    f.target.expect_ack(INITIAL_PACKET_ID);
    REQUIRE(w.get());
    auto req = std::async(std::launch::async, [&] {
        auto m = kd_zero<DBGKD_MANIPULATE_STATE64>();
        m.ApiNumber = DbgKdGetVersionApi;
        return f.session->request(m);
    });
    auto first = f.target.next();
    REQUIRE(first.kind == LinkEventKind::Packet);
    REQUIRE(first.packet.type == PACKET_TYPE_KD_STATE_MANIPULATE);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, first.packet.id); // ACKed, then lost
    auto damaged = stop;
    const size_t pc = offsetof(DBGKD_ANY_WAIT_STATE_CHANGE, ProgramCounter);
    damaged[pc + 1] = static_cast<uint8_t>(damaged[pc + 1] + 1);
    damaged[pc + 2] = static_cast<uint8_t>(damaged[pc + 2] - 1);
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | 1, damaged);
    // A second of silence: far more than the session's patience with a doubtful packet
    // (three RESENDs, idle_nudge apart). Nothing is ACKed meanwhile, only RESENDs asked.
    const auto quiet_until = std::chrono::steady_clock::now() + Millis(1000);
    size_t resends = 0;
    while (std::chrono::steady_clock::now() < quiet_until) {
        if (f.target.silent_for(Millis(50))) {
            continue;
        }
        auto e = f.target.next();
        REQUIRE(e.kind == LinkEventKind::Packet);
        CHECK(e.packet.type == PACKET_TYPE_KD_RESEND);
        ++resends;
    }
    CHECK(resends >= 3);
    // The good copy at last: ACKed, and the lost request is sent again and answered.
    f.target.send(PACKET_TYPE_KD_STATE_CHANGE64, INITIAL_PACKET_ID | 1, stop);
    std::optional<KdPacket> again;
    while (!again) {
        auto e = f.target.next();
        REQUIRE(e.kind == LinkEventKind::Packet);
        if (e.packet.type == PACKET_TYPE_KD_STATE_MANIPULATE) {
            again = e.packet;
        }
    }
    CHECK(again->payload == first.packet.payload);
    f.target.send(PACKET_TYPE_KD_ACKNOWLEDGE, again->id);
    auto reply = kd_zero<DBGKD_MANIPULATE_STATE64>();
    reply.ApiNumber = DbgKdGetVersionApi;
    std::vector<uint8_t> bytes;
    kd_append(bytes, reply);
    f.target.send(PACKET_TYPE_KD_STATE_MANIPULATE, INITIAL_PACKET_ID, bytes);
    auto r = req.get();
    CHECK(r);
    CHECK(!f.session->has_state_change());
    CHECK(f.session->counters().suspects_dropped >= 1);
    CHECK(f.session->counters().malformed_stops == 0);
}
