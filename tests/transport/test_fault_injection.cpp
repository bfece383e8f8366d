// kdsim's link fault injection: a faulty byte stream corrupts, drops and stalls bytes each way
// at the rates asked, the same way for the same seed.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/FaultInjection.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <thread>

using namespace kdcart;
using namespace kdcart::transport;

namespace {

struct Pair {
    std::unique_ptr<ByteStream> faulty;
    std::unique_ptr<ByteStream> clean;
    std::shared_ptr<FaultReport> report = std::make_shared<FaultReport>();
    explicit Pair(const FaultConfig& cfg) {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        faulty = make_faulty_stream(make_fd_stream(sv[0], "faulty"), cfg, report);
        clean = make_fd_stream(sv[1], "clean");
    }
};

std::vector<uint8_t> pattern(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(i * 7 + 3);
    }
    return v;
}

std::vector<uint8_t> drain(ByteStream& s, size_t at_most) {
    std::vector<uint8_t> out;
    uint8_t buf[8192];
    while (out.size() < at_most) {
        auto n = s.read_some(buf, Millis(200));
        if (!n) {
            break;
        }
        out.insert(out.end(), buf, buf + *n);
    }
    return out;
}

// Writes `data` in 4 KiB pieces from another thread while `reader` reads.
std::vector<uint8_t> pass(ByteStream& writer, ByteStream& reader, const std::vector<uint8_t>& data) {
    std::thread t([&] {
        for (size_t off = 0; off < data.size(); off += 4096) {
            const size_t n = std::min<size_t>(4096, data.size() - off);
            REQUIRE(writer.write_all(std::span<const uint8_t>(data.data() + off, n)));
        }
    });
    auto got = drain(reader, data.size());
    t.join();
    return got;
}

} // namespace

TEST_CASE("corruption: one bit per hit byte, at the rate asked, repeatable by seed") {
    FaultConfig cfg;
    cfg.corrupt_rate = 0.01;
    cfg.seed = 42;
    const auto data = pattern(100000);
    std::vector<uint8_t> first;
    for (int run = 0; run < 2; ++run) {
        Pair p(cfg);
        auto got = pass(*p.faulty, *p.clean, data);
        REQUIRE(got.size() == data.size());
        size_t wrong = 0;
        for (size_t i = 0; i < data.size(); ++i) {
            const uint8_t x = got[i] ^ data[i];
            if (x != 0) {
                ++wrong;
                CHECK((x & (x - 1)) == 0); // a single bit
            }
        }
        CHECK(wrong == p.report->out.corrupted);
        CHECK(wrong > 800);
        CHECK(wrong < 1200);
        if (run == 0) {
            first = got;
        } else {
            CHECK(got == first);
        }
    }
    cfg.seed = 43;
    Pair other(cfg);
    CHECK(pass(*other.faulty, *other.clean, data) != first);
}

TEST_CASE("drops: bytes go missing both ways; the read side counts its own") {
    FaultConfig cfg;
    cfg.drop_rate = 0.05;
    Pair p(cfg);
    const auto data = pattern(20000);
    auto out = pass(*p.faulty, *p.clean, data);
    CHECK(out.size() == data.size() - p.report->out.dropped);
    CHECK(p.report->out.dropped > 700);
    CHECK(p.report->out.dropped < 1300);
    auto in = pass(*p.clean, *p.faulty, data);
    CHECK(in.size() == data.size() - p.report->in.dropped);
    CHECK(p.report->in.dropped > 700);
}

TEST_CASE("stalls hold the line") {
    FaultConfig cfg;
    cfg.stall_rate = 0.01;
    cfg.stall = Millis(20);
    Pair p(cfg);
    const auto data = pattern(1000);
    const auto t0 = std::chrono::steady_clock::now();
    auto got = pass(*p.faulty, *p.clean, data);
    CHECK(got == data);
    CHECK(p.report->out.stalled > 2);
    CHECK(std::chrono::steady_clock::now() - t0 >= Millis(20) * p.report->out.stalled);
}

TEST_CASE("rates from the command line or the environment") {
    CHECK(parse_fault_rate("1e-3") == 0.001);
    CHECK(parse_fault_rate("0") == 0.0);
    CHECK(!parse_fault_rate("2"));
    CHECK(!parse_fault_rate("-0.1"));
    CHECK(!parse_fault_rate("0.1x"));
    CHECK(!parse_fault_rate(""));
    FaultConfig off;
    CHECK(!off.active());
}
