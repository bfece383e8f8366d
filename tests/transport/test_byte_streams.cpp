// Byte streams over real OS links: a pty pair in raw mode (with a transfer large enough to
// catch partial writes), AF_UNIX and TCP listeners, and the UART pacing.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/ByteStream.h"
#include "transport/PacketLink.h"

#include <chrono>
#include <doctest/doctest.h>
#include <thread>
#include <unistd.h>

using namespace kdcart;
using namespace kdcart::transport;

namespace {
std::vector<uint8_t> read_exactly(ByteStream& s, size_t n) {
    std::vector<uint8_t> out;
    uint8_t buf[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
        auto r = s.read_some(std::span<uint8_t>(buf, std::min(sizeof buf, n - out.size())),
                             Millis(500));
        if (r) {
            out.insert(out.end(), buf, buf + *r);
        }
    }
    return out;
}
} // namespace

TEST_CASE("pty pair: raw 8-bit bytes pass unchanged both ways, 256 KiB") {
    auto pair = open_pty_master();
    REQUIRE(pair);
    auto slave = open_serial(pair->slave_path, 115200);
    REQUIRE(slave);
    std::vector<uint8_t> data(256 * 1024);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>(i * 31 + (i >> 8));
    }
    std::thread writer([&] { REQUIRE(pair->master->write_all(data)); });
    auto got = read_exactly(**slave, data.size());
    writer.join();
    CHECK(got == data);
    // and back
    std::vector<uint8_t> small = {0x00, 0x0A, 0x0D, 0x03, 0x11, 0x13, 0x62, 0xFF};
    REQUIRE((*slave)->write_all(small));
    CHECK(read_exactly(*pair->master, small.size()) == small);
}

TEST_CASE("read_some times out instead of blocking") {
    auto pair = open_pty_master();
    REQUIRE(pair);
    auto slave = open_serial(pair->slave_path, 115200);
    REQUIRE(slave);
    uint8_t b[4];
    auto t0 = std::chrono::steady_clock::now();
    auto r = (*slave)->read_some(b, Millis(100));
    auto dt = std::chrono::steady_clock::now() - t0;
    REQUIRE(!r);
    CHECK(r.error().code == Errc::Timeout);
    CHECK(dt < std::chrono::seconds(2));
}

TEST_CASE("AF_UNIX: listen, connect, exchange, peer close is Disconnected") {
    std::string path = "/tmp/kdcart-test-" + std::to_string(::getpid()) + ".sock";
    auto l = listen_unix(path);
    REQUIRE(l);
    auto c = connect_unix(path);
    REQUIRE(c);
    auto s = (*l)->accept(Millis(2000));
    REQUIRE(s);
    std::vector<uint8_t> msg = {1, 2, 3, 0x30, 0x69};
    REQUIRE((*c)->write_all(msg));
    CHECK(read_exactly(**s, msg.size()) == msg);
    c->reset();
    uint8_t b[8];
    auto r = (*s)->read_some(b, Millis(1000));
    REQUIRE(!r);
    CHECK(r.error().code == Errc::Disconnected);
}

TEST_CASE("TCP: listen on loopback, connect HOST:PORT") {
    uint16_t port = static_cast<uint16_t>(20000 + ::getpid() % 20000);
    auto l = listen_tcp(port);
    REQUIRE(l);
    auto c = connect_tcp("127.0.0.1:" + std::to_string(port));
    REQUIRE(c);
    auto s = (*l)->accept(Millis(2000));
    REQUIRE(s);
    std::vector<uint8_t> msg(10000, 0x5A);
    REQUIRE((*s)->write_all(msg));
    CHECK(read_exactly(**c, msg.size()) == msg);
}

TEST_CASE("connecting to nothing fails with a clear error") {
    auto c = connect_unix("/tmp/kdcart-no-such-socket");
    REQUIRE(!c);
    CHECK(c.error().code == Errc::NotFound);
    auto t = connect_tcp("nonsense");
    REQUIRE(!t);
    auto s = open_serial("/dev/kdcart-no-such-tty", 115200);
    REQUIRE(!s);
}

TEST_CASE("paced stream: 2300 bytes at 115200 baud take about 0.2 s") {
    auto pair = open_pty_master();
    REQUIRE(pair);
    auto slave = open_serial(pair->slave_path, 115200);
    REQUIRE(slave);
    auto paced = make_paced_stream(std::move(pair->master), 115200);
    std::vector<uint8_t> data(2304, 0x41);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(paced->write_all(data));
    auto dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(read_exactly(**slave, data.size()) == data);
    // 2304 bytes / 11520 B/s = 0.2 s: pacing can only make it slower, never faster. (No upper
    // bound: a loaded machine may be slower still; speed is the benchmark's business.)
    CHECK(dt > 0.15);
}
