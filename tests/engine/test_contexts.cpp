// Register contexts over a live target: the integer block alone through GetContextEx, the whole
// CONTEXT when asked, write-back of only what changed (SetContextEx), and the fallback to
// GetContext/SetContext, once, when the target refuses GetContextEx (an error status as the
// Windows 10 boot debugger answers, a short reply, a reply for another range). The target is a
// scripted one at the other end of a socketpair, speaking KDCOM.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Contexts.h"
#include "engine/LiveTarget.h"
#include "transport/KdcomCodec.h"

#include <atomic>
#include <cstring>
#include <doctest/doctest.h>
#include <mutex>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/socket.h>
#include <thread>

using namespace kdcart;
using namespace kdcart::engine;
using namespace kdcart::protocol;
using namespace kdcart::transport;

namespace {

// How the scripted target answers GetContextEx (ReadOnly: answers it, refuses SetContextEx).
enum class ExMode { Answer, ErrorStatus, Short, OtherRange, ReadOnly };

struct Seen {
    uint32_t api = 0;
    uint32_t offset = 0; // ContextEx.Offset, or SetContext's ContextFlags
    uint32_t count = 0;  // ContextEx.ByteCount
    std::vector<uint8_t> data;
};

CONTEXT sample_context() {
    CONTEXT c{};
    c.ContextFlags = CONTEXT_ALL;
    c.MxCsr = 0x1f80;
    c.SegCs = 0x10;
    c.SegDs = c.SegEs = 0x2b;
    c.SegFs = 0x53;
    c.SegGs = 0x2b;
    c.SegSs = 0x18;
    c.EFlags = 0x246;
    c.Dr7 = 0x400;
    uint64_t v = 0x1111;
    for (uint64_t* r : {&c.Rax, &c.Rcx, &c.Rdx, &c.Rbx, &c.Rsp, &c.Rbp, &c.Rsi, &c.Rdi, &c.R8,
                        &c.R9, &c.R10, &c.R11, &c.R12, &c.R13, &c.R14, &c.R15}) {
        *r = 0xfffff80000000000ull + v;
        v += 0x1111;
    }
    c.Rip = 0xfffff80000601012ull;
    c.FltSave.MxCsr = 0x1f80;
    c.FltSave.XmmRegisters[0].Low = 0x0123456789abcdefull;
    c.VectorRegister[3].High = 0x55;
    c.LastBranchToRip = 0xfffff80000601000ull;
    return c;
}

std::vector<uint8_t> bytes_of(const CONTEXT& c) {
    std::vector<uint8_t> out;
    kd_append(out, c);
    return out;
}

// Answers manipulate requests like a target would, logging each one.
class ScriptedTarget {
public:
    ScriptedTarget(std::unique_ptr<ByteStream> stream, ExMode mode)
        : m_stream(std::move(stream)), m_mode(mode), m_context(sample_context()) {
        m_thread = std::thread([this] { run(); });
    }
    ~ScriptedTarget() {
        m_stop = true;
        m_thread.join();
    }
    std::vector<Seen> seen() {
        std::lock_guard lock(m_mutex);
        return m_seen;
    }
    std::vector<uint32_t> apis() {
        std::vector<uint32_t> out;
        for (const auto& s : seen()) {
            out.push_back(s.api);
        }
        return out;
    }
    CONTEXT context() {
        std::lock_guard lock(m_mutex);
        return m_context;
    }

private:
    void run() {
        uint8_t buf[8192];
        while (!m_stop) {
            auto n = m_stream->read_some(buf, Millis(20));
            if (!n || *n == 0) {
                continue;
            }
            std::vector<LinkEvent> events;
            m_decoder.feed(std::span<const uint8_t>(buf, *n), events);
            for (const auto& e : events) {
                if (e.kind == LinkEventKind::Packet &&
                    e.packet.type == PACKET_TYPE_KD_STATE_MANIPULATE) {
                    answer(e.packet);
                }
            }
        }
    }
    void send(uint16_t type, uint32_t id, std::vector<uint8_t> payload = {}) {
        KdPacket p;
        p.type = type;
        p.id = id;
        p.payload = std::move(payload);
        (void)m_stream->write_all(kdcom_encode(p));
    }
    void answer(const KdPacket& packet) {
        send(PACKET_TYPE_KD_ACKNOWLEDGE, packet.id & ~SYNC_PACKET_ID);
        auto req = kd_decode<DBGKD_MANIPULATE_STATE64>(packet.payload);
        if (!req) {
            return;
        }
        std::vector<uint8_t> data(packet.payload.begin() + sizeof(DBGKD_MANIPULATE_STATE64),
                                  packet.payload.end());
        DBGKD_MANIPULATE_STATE64 m = *req;
        m.ReturnStatus = STATUS_SUCCESS;
        std::vector<uint8_t> out;
        {
            std::lock_guard lock(m_mutex);
            Seen s{m.ApiNumber, m.u.ContextEx.Offset, m.u.ContextEx.ByteCount, data};
            if (m.ApiNumber == DbgKdSetContextApi) {
                s.offset = m.u.SetContext.ContextFlags;
            }
            m_seen.push_back(s);
            const auto raw = bytes_of(m_context);
            auto& ex = m.u.ContextEx;
            switch (m.ApiNumber) {
            case DbgKdGetContextApi:
                out = raw;
                break;
            case DbgKdSetContextApi:
                if (auto c = kd_decode<CONTEXT>(data)) {
                    m_context = *c;
                }
                break;
            case DbgKdGetContextExApi:
                if (ex.Offset > raw.size() || ex.ByteCount > raw.size() - ex.Offset) {
                    m.ReturnStatus = STATUS_UNSUCCESSFUL;
                    ex.BytesCopied = 0;
                    break;
                }
                switch (m_mode) {
                case ExMode::Answer:
                case ExMode::ReadOnly:
                    ex.BytesCopied = ex.ByteCount;
                    out.assign(raw.begin() + ex.Offset, raw.begin() + ex.Offset + ex.ByteCount);
                    break;
                case ExMode::ErrorStatus: // the Windows 10 boot debugger [V]
                    m.ReturnStatus = STATUS_UNSUCCESSFUL;
                    ex.BytesCopied = 0;
                    break;
                case ExMode::Short:
                    ex.BytesCopied = ex.ByteCount - 8;
                    out.assign(raw.begin() + ex.Offset, raw.begin() + ex.Offset + ex.ByteCount - 8);
                    break;
                case ExMode::OtherRange:
                    ex.BytesCopied = ex.ByteCount;
                    ex.Offset = 0;
                    out.assign(raw.begin(), raw.begin() + ex.ByteCount);
                    break;
                }
                break;
            case DbgKdSetContextExApi:
                if (m_mode != ExMode::Answer || ex.Offset > raw.size() ||
                    data.size() > raw.size() - ex.Offset) {
                    m.ReturnStatus = STATUS_UNSUCCESSFUL;
                    ex.BytesCopied = 0;
                    break;
                }
                std::memcpy(reinterpret_cast<uint8_t*>(&m_context) + ex.Offset, data.data(),
                            data.size());
                ex.BytesCopied = static_cast<uint32_t>(data.size());
                break;
            default:
                m.ReturnStatus = STATUS_UNSUCCESSFUL;
                break;
            }
        }
        std::vector<uint8_t> payload;
        kd_append(payload, m);
        payload.insert(payload.end(), out.begin(), out.end());
        send(PACKET_TYPE_KD_STATE_MANIPULATE, m_next_id, std::move(payload));
        m_next_id ^= 1;
    }

    std::unique_ptr<ByteStream> m_stream;
    KdcomDecoder m_decoder;
    ExMode m_mode;
    std::mutex m_mutex;
    CONTEXT m_context;
    std::vector<Seen> m_seen;
    uint32_t m_next_id = INITIAL_PACKET_ID;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
};

struct Quiet : EngineDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return {}; }
    void on_notice(std::string_view) override {}
};

// The debug log (-v) as text.
struct LogCapture {
    std::ostringstream text;
    std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
    LogCapture() {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
        auto logger = std::make_shared<spdlog::logger>("capture", sink);
        logger->set_level(spdlog::level::debug);
        spdlog::set_default_logger(logger);
    }
    ~LogCapture() { spdlog::set_default_logger(previous); }
    size_t count(std::string_view what) const {
        const std::string s = text.str();
        size_t n = 0;
        for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) {
            ++n;
        }
        return n;
    }
};

struct Fixture {
    Quiet quiet;
    std::unique_ptr<LiveTarget> live;
    std::unique_ptr<ScriptedTarget> target;
    std::unique_ptr<Contexts> contexts;

    explicit Fixture(ExMode mode) {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        SessionOptions o;
        o.ack_timeout = Millis(500);
        o.send_retries = 3;
        o.reply_timeout = Millis(2000);
        live =
            std::make_unique<LiveTarget>(make_kdcom_link(make_fd_stream(sv[0], "host")), &quiet, o);
        target = std::make_unique<ScriptedTarget>(make_fd_stream(sv[1], "target"), mode);
        contexts = std::make_unique<Contexts>(*live);
    }
    ~Fixture() {
        contexts.reset();
        target.reset(); // stops answering before the host end goes
        live.reset();
    }
};

bool same_block(const CONTEXT& a, const CONTEXT& b) {
    return std::memcmp(reinterpret_cast<const uint8_t*>(&a) + 0x30,
                       reinterpret_cast<const uint8_t*>(&b) + 0x30, 0xD0) == 0;
}
bool same(const CONTEXT& a, const CONTEXT& b) {
    return bytes_of(a) == bytes_of(b);
}

} // namespace

TEST_CASE("integer block through GetContextEx, the whole CONTEXT only when asked") {
    Fixture f(ExMode::Answer);
    auto c = f.contexts->get(0, ContextPart::Integer);
    REQUIRE(c);
    auto seen = f.target->seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].api == DbgKdGetContextExApi);
    CHECK(seen[0].offset == 0x30); // 16-byte aligned, inside the CONTEXT
    CHECK(seen[0].count == 0xD0);
    CHECK(same_block(*c, sample_context()));
    CHECK(c->FltSave.XmmRegisters[0].Low == 0); // not fetched

    // Asked again: from the cache.
    REQUIRE(f.contexts->get(0, ContextPart::Integer));
    CHECK(f.target->seen().size() == 1);

    // The whole CONTEXT, as WinDbg asks for it (offset 0, 0x4D0 bytes).
    auto full = f.contexts->get(0, ContextPart::Full);
    REQUIRE(full);
    seen = f.target->seen();
    REQUIRE(seen.size() == 2);
    CHECK(seen[1].api == DbgKdGetContextExApi);
    CHECK(seen[1].offset == 0);
    CHECK(seen[1].count == sizeof(CONTEXT));
    CHECK(same(*full, sample_context()));
    CHECK(f.live->context_ex_supported());
}

TEST_CASE("write-back: nothing when nothing changed, only the changed bytes otherwise") {
    Fixture f(ExMode::Answer);
    auto c = f.contexts->get(0, ContextPart::Integer);
    REQUIRE(c);
    f.contexts->set(0, *c); // the same values
    CHECK(!f.contexts->dirty());
    REQUIRE(f.contexts->write_back());
    CHECK(f.target->seen().size() == 1);

    // A debug register alone: hardware breakpoints own them, nothing is written.
    CONTEXT d = *c;
    d.Dr0 = 0x1234;
    f.contexts->set(0, d);
    CHECK(!f.contexts->dirty());
    REQUIRE(f.contexts->write_back());
    CHECK(f.target->seen().size() == 1);

    // Rip over an int3: one SetContextEx of Rip's 8 bytes.
    CONTEXT m = *c;
    m.Rip += 1;
    f.contexts->set(0, m);
    CHECK(f.contexts->dirty());
    REQUIRE(f.contexts->write_back());
    auto seen = f.target->seen();
    REQUIRE(seen.size() == 2);
    CHECK(seen[1].api == DbgKdSetContextExApi);
    CHECK(seen[1].offset == offsetof(CONTEXT, Rip));
    CHECK(seen[1].count == 8);
    CHECK(f.target->context().Rip == sample_context().Rip + 1);
    CHECK(!f.contexts->dirty());
    REQUIRE(f.contexts->write_back()); // written: nothing more
    CHECK(f.target->seen().size() == 2);

    // EFlags and two integer registers: one write each side of the debug registers.
    m.EFlags |= 0x100;
    m.Rax = 5;
    m.Rbx = 6;
    f.contexts->set(0, m);
    REQUIRE(f.contexts->write_back());
    seen = f.target->seen();
    REQUIRE(seen.size() == 4);
    CHECK(seen[2].api == DbgKdSetContextExApi);
    CHECK(seen[2].offset == offsetof(CONTEXT, EFlags));
    CHECK(seen[2].count == 4);
    CHECK(seen[3].api == DbgKdSetContextExApi);
    CHECK(seen[3].offset == offsetof(CONTEXT, Rax));
    CHECK(seen[3].count == offsetof(CONTEXT, Rbx) + 8 - offsetof(CONTEXT, Rax));
    const CONTEXT t = f.target->context();
    CHECK(t.EFlags == (sample_context().EFlags | 0x100));
    CHECK(t.Rax == 5);
    CHECK(t.Rbx == 6);
    CHECK(t.Rcx == sample_context().Rcx);
    CHECK(t.Dr0 == 0); // never written
    CHECK(t.FltSave.XmmRegisters[0].Low == sample_context().FltSave.XmmRegisters[0].Low);
}

TEST_CASE("a change outside the integer block writes the whole CONTEXT") {
    Fixture f(ExMode::Answer);
    auto full = f.contexts->get(0, ContextPart::Full);
    REQUIRE(full);
    CONTEXT m = *full;
    m.FltSave.XmmRegisters[1].High = 7;
    f.contexts->set(0, m);
    REQUIRE(f.contexts->write_back());
    auto seen = f.target->seen();
    REQUIRE(seen.size() == 2);
    CHECK(seen[1].api == DbgKdSetContextApi);
    CHECK((seen[1].offset & 0x10) == 0); // never CONTEXT_DEBUG_REGISTERS
    CHECK(f.target->context().FltSave.XmmRegisters[1].High == 7);
}

TEST_CASE(
    "a target that refuses GetContextEx: GetContext from then on, said once, same registers") {
    for (auto mode : {ExMode::ErrorStatus, ExMode::Short, ExMode::OtherRange}) {
        CAPTURE(static_cast<int>(mode));
        LogCapture log;
        Fixture f(mode);
        auto c = f.contexts->get(0, ContextPart::Integer);
        REQUIRE(c);
        CHECK(f.target->apis() == std::vector<uint32_t>{DbgKdGetContextExApi, DbgKdGetContextApi});
        CHECK(same(*c, sample_context())); // the whole CONTEXT came: all of it is known
        CHECK(!f.live->context_ex_supported());

        // The next stop: GetContext straight away; the whole CONTEXT is there already.
        f.contexts->forget();
        auto again = f.contexts->get(0, ContextPart::Integer);
        REQUIRE(again);
        REQUIRE(f.contexts->get(0, ContextPart::Full));
        CHECK(f.target->apis() ==
              std::vector<uint32_t>{DbgKdGetContextExApi, DbgKdGetContextApi, DbgKdGetContextApi});
        CHECK(same(*again, sample_context()));

        // Writing back: SetContext of the whole CONTEXT, without the debug registers.
        CONTEXT m = *again;
        m.Rip += 1;
        f.contexts->set(0, m);
        REQUIRE(f.contexts->write_back());
        auto seen = f.target->seen();
        REQUIRE(seen.size() == 4);
        CHECK(seen[3].api == DbgKdSetContextApi);
        CHECK(seen[3].offset == (CONTEXT_ALL & ~0x10u));
        CHECK(f.target->context().Rip == sample_context().Rip + 1);
        CHECK(log.count("GetContextEx refused") == 1);
    }
}

TEST_CASE("a target that takes GetContextEx but refuses SetContextEx") {
    LogCapture log;
    Fixture f(ExMode::ReadOnly);
    auto c = f.contexts->get(0, ContextPart::Integer);
    REQUIRE(c);
    CONTEXT m = *c;
    m.Rip += 1;
    f.contexts->set(0, m);
    REQUIRE(f.contexts->write_back());
    // Refused: the rest of the CONTEXT is fetched (GetContext from now on) and written whole.
    CHECK(f.target->apis() == std::vector<uint32_t>{DbgKdGetContextExApi, DbgKdSetContextExApi,
                                                    DbgKdGetContextApi, DbgKdSetContextApi});
    CHECK(!f.live->context_ex_supported());
    const CONTEXT t = f.target->context();
    CHECK(t.Rip == sample_context().Rip + 1);
    CHECK(t.FltSave.XmmRegisters[0].Low == sample_context().FltSave.XmmRegisters[0].Low);
    CHECK(log.count("SetContextEx refused") == 1);
}
