// ReadVerifier: on a noisy link memory is read until two reads agree; a read that fails
// half-way keeps what came; a dump's read never comes back short because of the link.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/ReadVerifier.h"

#include <algorithm>
#include <cmath>
#include <doctest/doctest.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

using namespace kdcart;
using namespace kdcart::engine;
using protocol::ReadResult;

namespace {

struct Quiet : protocol::SessionDelegate {
    void on_debug_print(std::string_view) override {}
    std::string on_debug_prompt(std::string_view) override { return {}; }
    void on_link_notice(std::string_view) override {}
};

// A session on a socketpair nobody answers: the verifier only reads its counters.
struct Fixture {
    Quiet quiet;
    int peer = -1;
    std::unique_ptr<protocol::KdSession> session;
    std::vector<std::string> notices;
    std::unique_ptr<ReadVerifier> verifier;
    std::vector<uint8_t> memory = std::vector<uint8_t>(64 * 1024);
    int calls = 0;

    Fixture() {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        session = std::make_unique<protocol::KdSession>(
            transport::make_kdcom_link(transport::make_fd_stream(sv[0], "host")), &quiet);
        peer = sv[1];
        verifier = std::make_unique<ReadVerifier>(
            *session, [this](std::string_view t) { notices.emplace_back(t); });
        for (size_t i = 0; i < memory.size(); ++i) {
            memory[i] = static_cast<uint8_t>(i * 13 + 7);
        }
    }
    ~Fixture() { ::close(peer); }

    ReadResult truth(uint64_t address, uint32_t size) const {
        ReadResult r;
        r.bytes.assign(memory.begin() + static_cast<long>(address),
                       memory.begin() + static_cast<long>(address + size));
        return r;
    }
};

} // namespace

TEST_CASE("clean link, auto: one request per chunk, nothing read twice") {
    Fixture f;
    auto r = f.verifier->read(
        [&](uint64_t a, uint32_t n) -> Result<ReadResult> {
            ++f.calls;
            CHECK(n <= f.session->max_transfer());
            return f.truth(a, n);
        },
        0, 20000);
    REQUIRE(r);
    CHECK(r->bytes == f.truth(0, 20000).bytes);
    CHECK(f.calls == 6); // 20000 / 3944 rounded up
    CHECK(f.notices.empty());
}

TEST_CASE("verified: damaged copies are outvoted, the good bytes come back") {
    Fixture f;
    f.verifier->set_mode(VerifyMode::On);
    auto r = f.verifier->read(
        [&](uint64_t a, uint32_t n) -> Result<ReadResult> {
            auto t = f.truth(a, n);
            ++f.calls;
            // The first two reads of each chunk come back with a different byte wrong each
            // time (two flips that fooled the checksum), then the line behaves.
            if (f.calls % 4 == 1) {
                t.bytes[5] ^= 0x10;
            } else if (f.calls % 4 == 2) {
                t.bytes[9] ^= 0x01;
            }
            return t;
        },
        0, 3000);
    REQUIRE(r);
    CHECK(r->bytes == f.truth(0, 3000).bytes);
    CHECK(f.calls == 4); // bad, bad, good, good
    const auto h = f.verifier->health();
    CHECK(h.disagreements == 2);
}

TEST_CASE("verified: bytes no two reads agree on are not shown") {
    Fixture f;
    f.verifier->set_mode(VerifyMode::On);
    auto r = f.verifier->read(
        [&](uint64_t a, uint32_t n) -> Result<ReadResult> {
            auto t = f.truth(a, n);
            t.bytes[100] = static_cast<uint8_t>(++f.calls); // changes on every read
            return t;
        },
        0, 1000);
    REQUIRE(r);
    CHECK(r->bytes.size() == 100);
    CHECK(r->status == kLinkFailedStatus);
    CHECK(std::equal(r->bytes.begin(), r->bytes.end(), f.memory.begin()));
    REQUIRE(!f.notices.empty());
    CHECK(f.notices.back().find("no two of 6 reads agreed") != std::string::npos);
}

TEST_CASE("a link that fails half-way: what came is kept; a dump gets an error instead") {
    Fixture f;
    auto fetch = [&](uint64_t a, uint32_t n) -> Result<ReadResult> {
        if (a >= 7000) {
            return make_error(Errc::Timeout, "no reply from the target to ReadVirtualMemory");
        }
        return f.truth(a, n);
    };
    auto r = f.verifier->read(fetch, 0, 20000);
    REQUIRE(r);
    CHECK(r->bytes.size() == 7888); // two whole requests of 3944
    CHECK(r->status == kLinkFailedStatus);
    REQUIRE(!f.notices.empty());
    CHECK(f.notices.back().find("The link failed while reading at 1ed0 (7888 of 20000") !=
          std::string::npos);
    // Nothing at all came: an error, as before.
    auto none = f.verifier->read(fetch, 9000, 100);
    REQUIRE(!none);
    CHECK(none.error().code == Errc::Timeout);
    f.verifier->set_for_dump(true);
    auto dump = f.verifier->read(fetch, 0, 20000);
    REQUIRE(!dump);
}

TEST_CASE("a target that says a page is not there is believed the same way verified or not") {
    Fixture f;
    f.verifier->set_mode(VerifyMode::On);
    auto r = f.verifier->read(
        [&](uint64_t a, uint32_t n) -> Result<ReadResult> {
            ++f.calls;
            auto t = f.truth(a, std::min<uint32_t>(n, 4096 - static_cast<uint32_t>(a)));
            if (t.bytes.size() < n) {
                t.status = 0xC0000001;
            }
            return t;
        },
        0, 6000);
    REQUIRE(r);
    CHECK(r->bytes.size() == 4096);
    CHECK(r->status == 0xC0000001);
    CHECK(f.calls == 4); // two chunks, each read twice
}

namespace {

// A line that damages one byte in `p` (both ways): a request of n bytes and its reply (about
// n + 200 bytes on the wire with headers and ACKs) come through whole with probability
// (1-p)^(n+200); each damaged attempt is a RESEND the session asks for (one error event
// each, as a bad packet and its RESEND are), and one damaged reply in 50 fooled the checksum
// (a byte wrong). The session's give-up on a reply damaged again and again (its reply-retry
// limit, which the reader sets) is played as well: the request ends with a timeout.
struct NoisyLine {
    Fixture& f;
    double p;
    std::mt19937 rng{7};
    std::vector<uint32_t> sizes;
    uint64_t wrong_sent = 0;

    Result<ReadResult> operator()(uint64_t a, uint32_t n) {
        // What the session sent (its RESENDs) is read off, so the socket never fills up.
        uint8_t sink[4096];
        while (::recv(f.peer, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
        sizes.push_back(n);
        auto t = f.truth(a, n);
        std::uniform_real_distribution<double> u(0, 1);
        const double clean = std::pow(1 - p, n + 200.0);
        int damaged = 0;
        while (u(rng) >= clean) {
            (void)f.session->ask_resend();
            const int limit = f.session->reply_retry_limit();
            if (++damaged > limit && limit > 0) {
                // Bytes did come (the damaged replies): the line is alive.
                const uint8_t junk[4] = {1, 2, 3, 4};
                REQUIRE(::write(f.peer, junk, sizeof junk) == 4);
                (void)f.session->wait_state_change(transport::Millis(20));
                return make_error(Errc::Timeout, "the reply was damaged or lost");
            }
            if (u(rng) < 0.02) {
                t.bytes[static_cast<size_t>(u(rng) * n)] ^= 0x40;
                ++wrong_sent;
                return t; // two flips that cancelled in the checksum
            }
        }
        return t;
    }
};

} // namespace

TEST_CASE("request sizer: the largest requests on a clean line, smaller ones as damage shows") {
    RequestSizer s(3944);
    CHECK(s.size() == 3944);
    s.clean(3944);
    CHECK(s.size() == 3944);
    // One damaged attempt on a line that was clean so far: a little smaller.
    s.record(3944, 1, true);
    CHECK(s.size() < 3944);
    CHECK(s.size() > 2000);
    // A line on which about half the exchanges of ~700 bytes are damaged (p ~ 1e-3): a few
    // hundred bytes, where the cost per byte is least.
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 300; ++i) {
        const uint32_t n = s.size();
        uint32_t damaged = 0;
        while (u(rng) >= std::exp(-1e-3 * (n + RequestSizer::kOverhead))) {
            ++damaged;
        }
        s.record(n, damaged, true);
    }
    CHECK(s.size() >= 250);
    CHECK(s.size() <= 650);
    CHECK(s.byte_error_rate() > 0.5e-3);
    CHECK(s.byte_error_rate() < 2e-3);
    // The line becomes clean: back to the largest requests.
    for (int i = 0; i < 200; ++i) {
        s.clean(s.size());
    }
    CHECK(s.size() == 3944);
}

TEST_CASE("a noisy line (1e-3): requests shrink until most replies come through; bytes right") {
    Fixture f;
    NoisyLine line{f, 1e-3};
    auto r = f.verifier->read(std::ref(line), 0, 32 * 1024);
    REQUIRE(r);
    CHECK(r->bytes == f.truth(0, 32 * 1024).bytes);
    CHECK(line.wrong_sent > 0); // the verification had something to catch
    // The first request asks for the most the link carries; once the damage shows, requests
    // settle where a reply gets through about half the time or more: a few hundred bytes.
    REQUIRE(line.sizes.size() > 20);
    CHECK(line.sizes.front() == f.session->max_transfer());
    std::vector<uint32_t> late(line.sizes.begin() + static_cast<long>(line.sizes.size() / 2),
                               line.sizes.end());
    std::sort(late.begin(), late.end());
    const uint32_t median = late[late.size() / 2];
    CHECK(median >= 150);
    CHECK(median <= 1200);
    // A line that then becomes clean gets the largest requests again (within some 60
    // requests: the damage is forgotten at 3% per request).
    line.p = 0;
    line.sizes.clear();
    f.verifier->set_mode(VerifyMode::Off);
    for (int i = 0; i < 4; ++i) {
        auto again = f.verifier->read(std::ref(line), 0, 64 * 1024);
        REQUIRE(again);
        CHECK(again->bytes == f.truth(0, 64 * 1024).bytes);
    }
    CHECK(*std::max_element(line.sizes.begin(), line.sizes.end()) == f.session->max_transfer());
}

TEST_CASE("a reply damaged again and again is given up on for a smaller request") {
    Fixture f;
    f.verifier->set_mode(VerifyMode::On);
    // At 1 byte in 200 a large reply almost never gets through: the session gives up on it
    // after a few RESENDs and the reader asks for less.
    NoisyLine line{f, 5e-3};
    auto r = f.verifier->read(std::ref(line), 0, 16 * 1024);
    REQUIRE(r);
    CHECK(r->status == 0);
    CHECK(r->bytes == f.truth(0, 16 * 1024).bytes);
    CHECK(line.sizes.front() == f.session->max_transfer());
    CHECK(*std::min_element(line.sizes.begin(), line.sizes.end()) < 600);
}
