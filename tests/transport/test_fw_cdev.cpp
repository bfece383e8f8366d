// The real firewire-cdev bus implementation (transport/FwCdev.cpp) against a fake kernel behind
// the CdevSys seam: FW_CDEV_IOC_GET_INFO (ABI version, ROM buffer and length, bus reset block),
// FW_CDEV_IOC_SEND_REQUEST (tcode, offset, length, generation, closure, a readable data buffer
// even for reads), FW_CDEV_EVENT_RESPONSE matched by closure with stale responses and bus reset
// events read past, rcodes mapped, one request in flight even after a timeout, the speed's
// payload limit, nodes that vanish, and the messages for no /dev/fw*, a missing device= and
// permissions. Then discovery of a Windows target through the whole port over this fake.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "transport/FwCdev.h"
#include "transport/Ieee1394Link.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <doctest/doctest.h>
#include <linux/firewire-cdev.h>
#include <map>
#include <set>
#include <thread>

using namespace kdcart;
using namespace kdcart::transport;

namespace {

constexpr uint64_t kConfig = 0x9C000;

std::vector<uint32_t> debug_rom() {
    std::vector<uint32_t> rom{0, 0x31333934, 0xA002, 0x0050F200, 0x1};
    rom[0] = (4u << 24) | (4u << 16) | ieee1212_crc16(std::span(rom).subspan(1, 4));
    std::vector<uint32_t> e{0x0C0083C0, 0x030050F2, 0x1C0050F2, 0x1D000002,
                            0x1E000000 | static_cast<uint32_t>(kConfig)};
    rom.push_back(static_cast<uint32_t>(e.size() << 16) | ieee1212_crc16(e));
    rom.insert(rom.end(), e.begin(), e.end());
    return rom;
}

struct FakeDevice {
    int open_errno = 0;
    uint32_t node_id = 0xFFC1;
    uint32_t local_node_id = 0xFFC0;
    std::vector<uint32_t> rom = debug_rom();
    int speed = 2; // S400
    std::map<uint64_t, uint8_t> mem;
};

struct SentRequest {
    fw_cdev_send_request req{};
    std::vector<uint8_t> data; // what the kernel copied from req.data
};

// Plays firewire-core for a set of /dev/fw* nodes on one bus.
class FakeKernel final : public CdevSys {
  public:
    std::map<std::string, FakeDevice> devices;
    uint32_t generation = 3;
    std::vector<SentRequest> sent;
    std::vector<fw_cdev_get_info> infos;
    std::deque<std::vector<uint8_t>> events;
    // Scripting the next responses:
    int drop_responses = 0;       // requests whose response is late (delivered on the next one)
    int stale_first = 0;          // a response with a wrong closure before the real one
    int bus_reset_first = 0;      // a bus reset event before the response
    uint32_t force_rcode = 0;     // != 0: answer with this
    int enodev_on_read = 0;       // the node vanishes while we wait
    std::set<uint64_t> in_flight; // closures sent and not yet answered to the reader
    size_t max_in_flight = 0;
    std::vector<std::vector<uint8_t>> late; // responses that come 100 ms late
    std::chrono::steady_clock::time_point late_since{};

    std::vector<std::string> list_devices() override {
        std::vector<std::string> out;
        for (auto& [path, d] : devices) {
            out.push_back(path);
        }
        return out;
    }
    int open(const std::string& path) override {
        auto it = devices.find(path);
        if (it == devices.end()) {
            return -ENOENT;
        }
        if (it->second.open_errno != 0) {
            return -it->second.open_errno;
        }
        fds[next_fd] = path;
        return next_fd++;
    }
    void close(int fd) override { fds.erase(fd); }

    int ioctl(int fd, unsigned long request, void* arg) override {
        FakeDevice& d = devices.at(fds.at(fd));
        if (request == FW_CDEV_IOC_GET_SPEED) {
            return d.speed;
        }
        if (request == FW_CDEV_IOC_GET_INFO) {
            auto* info = static_cast<fw_cdev_get_info*>(arg);
            infos.push_back(*info);
            const size_t bytes = d.rom.size() * 4;
            std::memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(info->rom)), d.rom.data(),
                        std::min<size_t>(bytes, info->rom_length));
            info->rom_length = static_cast<uint32_t>(bytes);
            info->version = 5;
            fw_cdev_event_bus_reset br{};
            br.closure = info->bus_reset_closure;
            br.type = FW_CDEV_EVENT_BUS_RESET;
            br.node_id = d.node_id;
            br.local_node_id = d.local_node_id;
            br.generation = generation;
            std::memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(info->bus_reset)), &br,
                        sizeof br);
            return 0;
        }
        if (request == FW_CDEV_IOC_INITIATE_BUS_RESET) {
            ++generation;
            push_bus_reset(d);
            return 0;
        }
        if (request != FW_CDEV_IOC_SEND_REQUEST) {
            return -EINVAL;
        }
        auto* req = static_cast<fw_cdev_send_request*>(arg);
        SentRequest s;
        s.req = *req;
        // As init_request(): copy `length` bytes from `data`, reads included.
        const auto* src = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(req->data));
        REQUIRE(src != nullptr);
        s.data.assign(src, src + req->length);
        sent.push_back(s);
        in_flight.insert(req->closure);
        max_in_flight = std::max(max_in_flight, in_flight.size());
        auto response = answer(d, s);
        if (stale_first > 0) {
            --stale_first;
            auto stale = response;
            stale[0] ^= 0x55; // closure
            events.push_back(stale);
        }
        if (bus_reset_first > 0) {
            --bus_reset_first;
            push_bus_reset(d);
        }
        if (drop_responses > 0) {
            --drop_responses;
            late.push_back(response);
            late_since = std::chrono::steady_clock::now();
        } else {
            events.push_back(response);
        }
        return 0;
    }
    int poll_in(int, int timeout_ms) override {
        if (!late.empty() &&
            std::chrono::steady_clock::now() - late_since > std::chrono::milliseconds(100)) {
            for (auto& l : late) {
                events.push_back(l);
            }
            late.clear();
        }
        if (events.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, 5)));
            return 0;
        }
        return 1;
    }
    ssize_t read(int, void* buf, size_t len) override {
        if (enodev_on_read > 0) {
            --enodev_on_read;
            return -ENODEV;
        }
        REQUIRE_FALSE(events.empty());
        auto e = events.front();
        events.pop_front();
        REQUIRE(len >= e.size());
        std::memcpy(buf, e.data(), e.size());
        fw_cdev_event_common c{};
        std::memcpy(&c, e.data(), sizeof c);
        if (c.type == FW_CDEV_EVENT_RESPONSE) {
            in_flight.erase(c.closure);
        }
        return static_cast<ssize_t>(e.size());
    }

  private:
    void push_bus_reset(const FakeDevice& d) {
        fw_cdev_event_bus_reset br{};
        br.type = FW_CDEV_EVENT_BUS_RESET;
        br.node_id = d.node_id;
        br.local_node_id = d.local_node_id;
        br.generation = generation;
        std::vector<uint8_t> e(sizeof br);
        std::memcpy(e.data(), &br, sizeof br);
        events.push_back(e);
    }

    std::vector<uint8_t> answer(FakeDevice& d, const SentRequest& s) {
        fw_cdev_event_response head{};
        head.closure = s.req.closure;
        head.type = FW_CDEV_EVENT_RESPONSE;
        std::vector<uint8_t> data;
        if (force_rcode != 0) {
            head.rcode = force_rcode;
        } else if (s.req.generation != generation) {
            head.rcode = RCODE_GENERATION;
        } else if (s.req.tcode == TCODE_READ_QUADLET_REQUEST ||
                   s.req.tcode == TCODE_READ_BLOCK_REQUEST) {
            for (uint32_t i = 0; i < s.req.length; ++i) {
                data.push_back(d.mem[s.req.offset + i]);
            }
            head.rcode = RCODE_COMPLETE;
        } else {
            for (uint32_t i = 0; i < s.req.length; ++i) {
                d.mem[s.req.offset + i] = s.data[i];
            }
            head.rcode = RCODE_COMPLETE;
        }
        head.length = static_cast<uint32_t>(data.size());
        std::vector<uint8_t> e(sizeof head);
        std::memcpy(e.data(), &head, sizeof head);
        e.insert(e.end(), data.begin(), data.end());
        return e;
    }

    std::map<int, std::string> fds;
    int next_fd = 10;
};

std::unique_ptr<FwNode> open_node(FakeKernel& k, const std::string& path = "/dev/fw1") {
    auto n = open_cdev_node(path, k);
    REQUIRE(n);
    return std::move(*n);
}

} // namespace

TEST_CASE("GET_INFO: ABI version 4, the ROM into our buffer, generation and node ids") {
    FakeKernel k;
    k.devices["/dev/fw1"] = FakeDevice{};
    auto node = open_node(k);
    CHECK(node->name() == "/dev/fw1");
    CHECK(node->max_payload() == 2048);
    auto info = node->get_info();
    REQUIRE(info);
    REQUIRE(k.infos.size() == 1);
    CHECK(k.infos[0].version == 4);
    CHECK(k.infos[0].rom_length == 1024);
    CHECK(k.infos[0].bus_reset != 0);
    CHECK(info->rom == debug_rom());
    CHECK(info->generation == 3);
    CHECK(info->node_id == 0xFFC1);
    CHECK(info->local_node_id == 0xFFC0);
    CHECK_FALSE(info->is_local());
    // A ROM longer than 1 KiB is cut to what fits.
    k.devices["/dev/fw1"].rom.resize(400, 0);
    info = node->get_info();
    REQUIRE(info);
    CHECK(info->rom.size() == 256);
}

TEST_CASE("SEND_REQUEST: the request's fields, the response's data, writes' payload") {
    FakeKernel k;
    k.devices["/dev/fw1"] = FakeDevice{};
    for (uint8_t i = 0; i < 16; ++i) {
        k.devices["/dev/fw1"].mem[0x1000 + i] = static_cast<uint8_t>(0xA0 + i);
    }
    auto node = open_node(k);
    auto r = node->transact(fw::kReadBlock, 0x1000, 16, {}, 3, Millis(500));
    REQUIRE(r);
    REQUIRE(r->size() == 16);
    CHECK((*r)[0] == 0xA0);
    CHECK((*r)[15] == 0xAF);
    REQUIRE(k.sent.size() == 1);
    CHECK(k.sent[0].req.tcode == TCODE_READ_BLOCK_REQUEST);
    CHECK(k.sent[0].req.offset == 0x1000);
    CHECK(k.sent[0].req.length == 16);
    CHECK(k.sent[0].req.generation == 3);
    CHECK(k.sent[0].data.size() == 16); // a readable buffer, even for a read

    const uint8_t v[4] = {0x03, 0x01, 0, 0};
    REQUIRE(node->transact(fw::kWriteQuadlet, 0x2000, 4, v, 3, Millis(500)));
    REQUIRE(k.sent.size() == 2);
    CHECK(k.sent[1].req.tcode == TCODE_WRITE_QUADLET_REQUEST);
    CHECK(k.sent[1].data == std::vector<uint8_t>(v, v + 4));
    CHECK(k.devices["/dev/fw1"].mem[0x2000] == 0x03);
    CHECK(k.devices["/dev/fw1"].mem[0x2001] == 0x01);
    CHECK(k.sent[0].req.closure != k.sent[1].req.closure);

    auto q = node->transact(fw::kReadQuadlet, 0x2000, 4, {}, 3, Millis(500));
    REQUIRE(q);
    CHECK(*q == std::vector<uint8_t>{0x03, 0x01, 0, 0}); // bytes in wire (memory) order
}

TEST_CASE("responses: stale closures and bus reset events are read past; rcodes map to errors") {
    FakeKernel k;
    k.devices["/dev/fw1"] = FakeDevice{};
    auto node = open_node(k);
    k.stale_first = 1;
    k.bus_reset_first = 1;
    auto r = node->transact(fw::kReadQuadlet, 0x10, 4, {}, 3, Millis(500));
    REQUIRE(r);
    CHECK(k.events.empty());

    // A generation from before a reset: RCODE_GENERATION, Errc::Resync.
    ++k.generation;
    r = node->transact(fw::kReadQuadlet, 0x10, 4, {}, 3, Millis(500));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Resync);
    CHECK(r.error().message.find("generation (bus reset)") != std::string::npos);

    k.force_rcode = RCODE_ADDRESS_ERROR;
    r = node->transact(fw::kReadBlock, 0x10, 64, {}, 4, Millis(500));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Unreadable);
    CHECK(r.error().message.find("read of 64 bytes at 0x10 on /dev/fw1: address error") !=
          std::string::npos);
    k.force_rcode = RCODE_BUSY;
    r = node->transact(fw::kReadBlock, 0x10, 64, {}, 4, Millis(500));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Io);
    k.force_rcode = RCODE_CANCELLED;
    r = node->transact(fw::kReadBlock, 0x10, 64, {}, 4, Millis(500));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Timeout);
    k.force_rcode = 0;
}

TEST_CASE("a response that does not come: Timeout, and the next request waits for the late one "
          "first (one in flight)") {
    FakeKernel k;
    k.devices["/dev/fw1"] = FakeDevice{};
    k.devices["/dev/fw1"].mem[0x20] = 0x77;
    auto node = open_node(k);
    k.drop_responses = 1;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = node->transact(fw::kReadQuadlet, 0x10, 4, {}, 3, Millis(80));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Timeout);
    CHECK(r.error().message.find("no response from /dev/fw1 within 80 ms") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    // The next request is only sent once the late response has come (100 ms later).
    r = node->transact(fw::kReadQuadlet, 0x20, 4, {}, 3, Millis(500));
    REQUIRE(r);
    CHECK((*r)[0] == 0x77);
    CHECK(k.events.empty());
    CHECK(k.max_in_flight == 1);
}

TEST_CASE("limits and bad arguments are refused before the kernel sees them") {
    FakeKernel k;
    k.devices["/dev/fw1"] = FakeDevice{};
    k.devices["/dev/fw1"].speed = 1; // S200: 1024 bytes
    auto node = open_node(k);
    CHECK(node->max_payload() == 1024);
    auto r = node->transact(fw::kReadBlock, 0, 1028, {}, 3, Millis(100));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::InvalidArgument);
    CHECK(r.error().message.find("the limit is 1024") != std::string::npos);
    CHECK_FALSE(node->transact(fw::kReadQuadlet, 2, 4, {}, 3, Millis(100)));
    CHECK_FALSE(node->transact(fw::kReadQuadlet, 0, 8, {}, 3, Millis(100)));
    CHECK_FALSE(node->transact(fw::kReadBlock, uint64_t{1} << 48, 4, {}, 3, Millis(100)));
    const uint8_t two[2] = {1, 2};
    CHECK_FALSE(node->transact(fw::kWriteBlock, 0, 4, two, 3, Millis(100)));
    CHECK(k.sent.empty());
    CHECK(fw::max_payload_for_speed(0) == 512);
    CHECK(fw::max_payload_for_speed(3) == 4096);
}

TEST_CASE("a node that goes away: Errc::Disconnected") {
    FakeKernel k;
    k.devices["/dev/fw1"] = FakeDevice{};
    auto node = open_node(k);
    k.enodev_on_read = 1;
    auto r = node->transact(fw::kReadQuadlet, 0, 4, {}, 3, Millis(200));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Disconnected);
    CHECK(r.error().message.find("/dev/fw1 is gone") != std::string::npos);
}

TEST_CASE("enumeration: no /dev/fw*, a missing device=, permissions") {
    FakeKernel k;
    std::vector<std::string> problems;
    auto none = make_cdev_enumerator("", k)(problems);
    REQUIRE_FALSE(none);
    CHECK(none.error().message.find("no FireWire device nodes (/dev/fw*)") != std::string::npos);
    CHECK(none.error().message.find("modprobe firewire-ohci") != std::string::npos);

    auto missing = make_cdev_enumerator("/dev/fw9", k)(problems);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.find("no FireWire device /dev/fw9") != std::string::npos);

    k.devices["/dev/fw0"].open_errno = EACCES;
    k.devices["/dev/fw1"].open_errno = EACCES;
    auto denied = make_cdev_enumerator("", k)(problems);
    REQUIRE_FALSE(denied);
    CHECK(denied.error().code == Errc::Unsupported);
    const std::string& m = denied.error().message;
    CHECK(m.find("/dev/fw0, /dev/fw1") != std::string::npos);
    CHECK(m.find("permission denied") != std::string::npos);
    CHECK(m.find("SUBSYSTEM==\"firewire\", ATTR{vendor}==\"0x0050f2\", GROUP=\"plugdev\", "
                 "MODE=\"0660\"") != std::string::npos);
    CHECK(m.find("/etc/udev/rules.d/") != std::string::npos);

    auto one = open_cdev_node("/dev/fw1", k);
    REQUIRE_FALSE(one);
    CHECK(one.error().message.find("cannot open /dev/fw1: permission denied") != std::string::npos);
}

TEST_CASE("the port over firewire-cdev: local node skipped, target found, its block checked, a "
          "bus reset recovered") {
    FakeKernel k;
    FakeDevice local;
    local.node_id = 0xFFC0; // the cart's own controller
    local.rom = {0x04040000, 0x31333934, 0, 0, 0};
    k.devices["/dev/fw0"] = local;
    FakeDevice target;
    kd1394::DebugConfig c;
    c.tag = kd1394::CONFIG_TAG;
    c.major = 1;
    c.id = 3;
    c.send_packet = 0x9D000;
    c.receive_packet = 0x9E000;
    auto bytes = kd1394::encode_config(c);
    for (size_t i = 0; i < bytes.size(); ++i) {
        target.mem[kConfig + i] = bytes[i];
    }
    k.devices["/dev/fw1"] = target;

    Ieee1394Config cfg;
    cfg.channel = 3;
    auto port = Ieee1394Port::open(make_cdev_enumerator("", k), cfg, "/dev/fw*");
    REQUIRE(port);
    REQUIRE((*port)->located());
    CHECK((*port)->describe() == "1394 channel 3 on /dev/fw1");
    CHECK((*port)->send_mailbox() == 0x9D000);

    // A bus reset: the next request fails with RCODE_GENERATION, the port asks GET_INFO again
    // and retries in the new generation.
    ++k.generation;
    auto v = (*port)->read_u32(0x9D000);
    REQUIRE(v);
    CHECK(*v == 0);
    CHECK((*port)->stats().bus_resets == 1);
    CHECK(k.sent.back().req.generation == k.generation);
    CHECK(k.max_in_flight == 1);

    // Another channel: kept looking for, with the reason.
    Ieee1394Config other;
    other.channel = 9;
    auto p9 = Ieee1394Port::open(make_cdev_enumerator("", k), other, "/dev/fw*");
    REQUIRE(p9);
    CHECK_FALSE((*p9)->located());
    auto n = (*p9)->take_notices();
    REQUIRE_FALSE(n.empty());
    CHECK(n[0].find("/dev/fw1 is a Windows 1394 debug target on channel 3") != std::string::npos);

    // The target's node is not ours to open: a clear error naming it and the udev rule.
    k.devices["/dev/fw1"].open_errno = EACCES;
    auto denied = Ieee1394Port::open(make_cdev_enumerator("", k), cfg, "/dev/fw*");
    REQUIRE_FALSE(denied);
    CHECK(denied.error().message.find("/dev/fw1: permission denied") != std::string::npos);
    CHECK(denied.error().message.find("udev rule") != std::string::npos);
}
