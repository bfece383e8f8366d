// The real IEEE 1394 bus through Linux firewire-cdev (see FwCdev.h).
#include "transport/FwCdev.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/firewire-cdev.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace kdcart::transport {

namespace {

using Clock = std::chrono::steady_clock;

// Our names for the codes must be the kernel's values.
static_assert(fw::kWriteQuadlet == TCODE_WRITE_QUADLET_REQUEST);
static_assert(fw::kWriteBlock == TCODE_WRITE_BLOCK_REQUEST);
static_assert(fw::kReadQuadlet == TCODE_READ_QUADLET_REQUEST);
static_assert(fw::kReadBlock == TCODE_READ_BLOCK_REQUEST);
static_assert(fw::kRcodeComplete == RCODE_COMPLETE);
static_assert(fw::kRcodeAddressError == RCODE_ADDRESS_ERROR);
static_assert(fw::kRcodeCancelled == RCODE_CANCELLED);
static_assert(fw::kRcodeGeneration == RCODE_GENERATION);
static_assert(fw::kRcodeNoAck == RCODE_NO_ACK);

// The ABI we implement: 4 (Linux 2.6.36) gives FW_CDEV_EVENT_RESPONSE events without time
// stamps, and every later kernel still speaks it to clients that ask for it.
constexpr uint32_t kCdevAbiVersion = 4;
constexpr size_t kRomBytes = 1024; // a config ROM is at most 1 KiB (IEEE 1212)
constexpr size_t kMaxRequest = 4096;

class RealCdevSys final : public CdevSys {
  public:
    std::vector<std::string> list_devices() override {
        std::vector<std::pair<unsigned long, std::string>> found;
        if (DIR* dir = ::opendir("/dev")) {
            while (const dirent* e = ::readdir(dir)) {
                const char* n = e->d_name;
                if (std::strncmp(n, "fw", 2) != 0 || n[2] == 0) {
                    continue;
                }
                char* end = nullptr;
                unsigned long number = std::strtoul(n + 2, &end, 10);
                if (end != nullptr && *end == 0) {
                    found.emplace_back(number, std::string("/dev/") + n);
                }
            }
            ::closedir(dir);
        }
        std::sort(found.begin(), found.end());
        std::vector<std::string> out;
        for (auto& f : found) {
            out.push_back(std::move(f.second));
        }
        return out;
    }
    int open(const std::string& path) override {
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        return fd >= 0 ? fd : -errno;
    }
    void close(int fd) override { ::close(fd); }
    int ioctl(int fd, unsigned long request, void* arg) override {
        int rc = ::ioctl(fd, request, arg);
        return rc >= 0 ? rc : -errno;
    }
    int poll_in(int fd, int timeout_ms) override {
        pollfd pfd{fd, POLLIN, 0};
        int rc = ::poll(&pfd, 1, timeout_ms);
        if (rc < 0) {
            return -errno;
        }
        if (rc > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 &&
            (pfd.revents & POLLIN) == 0) {
            return -ENODEV; // the node went away (firewire-core hangs up its clients)
        }
        return rc;
    }
    ssize_t read(int fd, void* buf, size_t len) override {
        ssize_t n = ::read(fd, buf, len);
        return n >= 0 ? n : -errno;
    }
};

std::string errno_text(int negative_errno) {
    return std::strerror(-negative_errno);
}

bool is_read(uint32_t tcode) {
    return tcode == fw::kReadQuadlet || tcode == fw::kReadBlock;
}

bool is_quadlet(uint32_t tcode) {
    return tcode == fw::kReadQuadlet || tcode == fw::kWriteQuadlet;
}

class CdevNode final : public FwNode {
  public:
    CdevNode(CdevSys& sys, int fd, std::string path, uint32_t max_payload)
        : m_sys(sys), m_fd(fd), m_path(std::move(path)), m_max_payload(max_payload) {}
    ~CdevNode() override { m_sys.close(m_fd); }
    CdevNode(const CdevNode&) = delete;
    CdevNode& operator=(const CdevNode&) = delete;

    std::string name() const override { return m_path; }
    uint32_t max_payload() const override { return m_max_payload; }

    Result<FwNodeInfo> get_info() override {
        std::vector<uint32_t> rom(kRomBytes / 4);
        fw_cdev_event_bus_reset reset{};
        fw_cdev_get_info info{};
        info.version = kCdevAbiVersion;
        info.rom_length = static_cast<uint32_t>(rom.size() * 4);
        info.rom = reinterpret_cast<uintptr_t>(rom.data());
        info.bus_reset = reinterpret_cast<uintptr_t>(&reset);
        info.bus_reset_closure = kBusResetClosure;
        int rc = m_sys.ioctl(m_fd, FW_CDEV_IOC_GET_INFO, &info);
        if (rc < 0) {
            return fail(rc, "FW_CDEV_IOC_GET_INFO");
        }
        // rom_length comes back as the ROM's real length, which may exceed our buffer.
        rom.resize(std::min<size_t>(info.rom_length, kRomBytes) / 4);
        FwNodeInfo out;
        out.rom = std::move(rom);
        out.generation = reset.generation;
        out.node_id = reset.node_id;
        out.local_node_id = reset.local_node_id;
        return out;
    }

    Result<std::vector<uint8_t>> transact(uint32_t tcode, uint64_t offset, uint32_t length,
                                          std::span<const uint8_t> data, uint32_t generation,
                                          Millis timeout) override {
        const bool read = is_read(tcode);
        if (!read && tcode != fw::kWriteQuadlet && tcode != fw::kWriteBlock) {
            return make_error(Errc::InvalidArgument, "unsupported tcode " + std::to_string(tcode));
        }
        if (!read && data.size() != length) {
            return make_error(Errc::InvalidArgument, "write length does not match its data");
        }
        if (is_quadlet(tcode) && (length != 4 || offset % 4 != 0)) {
            return make_error(Errc::InvalidArgument, "a quadlet request moves 4 aligned bytes");
        }
        if (length == 0 || length > std::min<size_t>(m_max_payload, kMaxRequest)) {
            return make_error(Errc::InvalidArgument, "request of " + std::to_string(length) +
                                                         " bytes to " + m_path + " (the limit is " +
                                                         std::to_string(m_max_payload) + ")");
        }
        if (offset >= (uint64_t{1} << 48)) {
            return make_error(Errc::InvalidArgument, "address beyond 48 bits");
        }
        const auto deadline = Clock::now() + timeout;
        if (m_abandoned) {
            // The previous transaction timed out here but the kernel still owns it: let its
            // (late) completion come back first, so that only one is ever in flight.
            (void)wait_response(*m_abandoned, deadline);
            m_abandoned.reset();
        }
        // The kernel copies `length` bytes from `data` for every request, reads included.
        std::vector<uint8_t> payload(length);
        if (!read) {
            std::memcpy(payload.data(), data.data(), length);
        }
        fw_cdev_send_request req{};
        req.tcode = tcode;
        req.length = length;
        req.offset = offset;
        req.closure = ++m_closure;
        req.data = reinterpret_cast<uintptr_t>(payload.data());
        req.generation = generation;
        int rc = m_sys.ioctl(m_fd, FW_CDEV_IOC_SEND_REQUEST, &req);
        if (rc < 0) {
            return fail(rc, "FW_CDEV_IOC_SEND_REQUEST");
        }
        auto resp = wait_response(req.closure, deadline);
        if (!resp) {
            if (resp.error().code == Errc::Timeout) {
                m_abandoned = req.closure;
                return make_error(Errc::Timeout, "no response from " + m_path + " within " +
                                                     std::to_string(timeout.count()) + " ms");
            }
            return tl::unexpected(resp.error());
        }
        const std::string what = std::string(read ? "read" : "write") + " of " +
                                 std::to_string(length) + " bytes at " + hex(offset) + " on " +
                                 m_path;
        if (resp->rcode != fw::kRcodeComplete) {
            return tl::unexpected(fw::rcode_error(resp->rcode, what));
        }
        if (!read) {
            return std::vector<uint8_t>{};
        }
        if (resp->data.size() != length) {
            return make_error(Errc::Io, what + ": the response carries " +
                                            std::to_string(resp->data.size()) + " bytes");
        }
        return std::move(resp->data);
    }

    Result<void> initiate_bus_reset() override {
        fw_cdev_initiate_bus_reset r{};
        r.type = FW_CDEV_SHORT_RESET;
        int rc = m_sys.ioctl(m_fd, FW_CDEV_IOC_INITIATE_BUS_RESET, &r);
        if (rc < 0) {
            return fail(rc, "FW_CDEV_IOC_INITIATE_BUS_RESET");
        }
        return {};
    }

  private:
    static constexpr uint64_t kBusResetClosure = 0xB05B05;

    struct Response {
        uint32_t rcode = 0;
        std::vector<uint8_t> data;
    };

    static std::string hex(uint64_t v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
        return buf;
    }

    tl::unexpected<Error> fail(int negative_errno, const char* what) const {
        if (negative_errno == -ENODEV) {
            return make_error(Errc::Disconnected, m_path + " is gone (node unplugged)");
        }
        return make_error(Errc::Io,
                          std::string(what) + " on " + m_path + ": " + errno_text(negative_errno));
    }

    // Reads events until the response with `closure` arrives; bus reset events and stale
    // responses are consumed on the way.
    Result<Response> wait_response(uint64_t closure, Clock::time_point deadline) {
        for (;;) {
            const auto now = Clock::now();
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no response");
            }
            const auto left = std::chrono::duration_cast<Millis>(deadline - now).count() + 1;
            int rc = m_sys.poll_in(m_fd, static_cast<int>(std::min<int64_t>(left, INT_MAX)));
            if (rc == -EINTR || rc == 0) {
                continue;
            }
            if (rc < 0) {
                return fail(rc, "poll");
            }
            ssize_t n = m_sys.read(m_fd, m_event, sizeof m_event);
            if (n == -EINTR || n == -EAGAIN) {
                continue;
            }
            if (n < 0) {
                return fail(static_cast<int>(n), "read");
            }
            const auto got = static_cast<size_t>(n);
            fw_cdev_event_common common{};
            if (got < sizeof common) {
                spdlog::debug("1394: {}: short event ({} bytes) ignored", m_path, got);
                continue;
            }
            std::memcpy(&common, m_event, sizeof common);
            if (common.type == FW_CDEV_EVENT_BUS_RESET && got >= sizeof(fw_cdev_event_bus_reset)) {
                fw_cdev_event_bus_reset br{};
                std::memcpy(&br, m_event, sizeof br);
                spdlog::debug("1394: {}: bus reset, generation {}, node {:#x}", m_path,
                              br.generation, br.node_id);
                continue;
            }
            if (common.type != FW_CDEV_EVENT_RESPONSE || got < sizeof(fw_cdev_event_response)) {
                continue;
            }
            fw_cdev_event_response head{};
            std::memcpy(&head, m_event, sizeof head);
            if (head.closure != closure) {
                spdlog::debug("1394: {}: stale response (closure {}) dropped", m_path,
                              head.closure);
                continue;
            }
            Response r;
            r.rcode = head.rcode;
            const size_t avail = got - sizeof head;
            const size_t len = std::min<size_t>(head.length, avail);
            const auto* bytes = reinterpret_cast<const uint8_t*>(m_event) + sizeof head;
            r.data.assign(bytes, bytes + len);
            return r;
        }
    }

    CdevSys& m_sys;
    int m_fd;
    std::string m_path;
    uint32_t m_max_payload;
    uint64_t m_closure = 0;
    std::optional<uint64_t> m_abandoned;
    // One event: the response header and up to 4096 bytes of data.
    alignas(8) uint8_t m_event[sizeof(fw_cdev_event_response) + kMaxRequest + 64]{};
};

} // namespace

CdevSys& real_cdev_sys() {
    static RealCdevSys sys;
    return sys;
}

std::string cdev_permission_advice(const std::string& path) {
    return "cannot open " + path +
           ": permission denied. kdcart needs read and write access to the FireWire node of the "
           "target. Run it as root, or let a group have it with a udev rule, e.g. in "
           "/etc/udev/rules.d/65-kdcart-firewire.rules:\n"
           "    SUBSYSTEM==\"firewire\", ATTR{vendor}==\"0x0050f2\", GROUP=\"plugdev\", "
           "MODE=\"0660\"\n"
           "(0x0050f2: the Microsoft vendor id a Windows debug target puts in its config ROM), "
           "then run 'sudo udevadm control --reload && sudo udevadm trigger', make sure you are "
           "in plugdev, and replug the cable";
}

Result<std::unique_ptr<FwNode>> open_cdev_node(const std::string& path, CdevSys& sys) {
    int fd = sys.open(path);
    if (fd < 0) {
        if (fd == -EACCES || fd == -EPERM) {
            return make_error(Errc::Unsupported, cdev_permission_advice(path));
        }
        if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO) {
            return make_error(Errc::NotFound, path + ": " + errno_text(fd));
        }
        return make_error(Errc::Io, "cannot open " + path + ": " + errno_text(fd));
    }
    // The speed to this node bounds the block payload (512 bytes at S100 ... 4096 at S800).
    uint32_t max_payload = fw::MAX_PAYLOAD_S400;
    int speed = sys.ioctl(fd, FW_CDEV_IOC_GET_SPEED, nullptr);
    if (speed >= 0) {
        max_payload = fw::max_payload_for_speed(static_cast<uint32_t>(speed));
    }
    return std::unique_ptr<FwNode>(std::make_unique<CdevNode>(sys, fd, path, max_payload));
}

FwEnumerator make_cdev_enumerator(std::string device, CdevSys& sys) {
    return [device, &sys](
               std::vector<std::string>& problems) -> Result<std::vector<std::unique_ptr<FwNode>>> {
        std::vector<std::string> paths =
            device.empty() ? sys.list_devices() : std::vector<std::string>{device};
        if (paths.empty()) {
            return make_error(Errc::NotFound,
                              "no FireWire device nodes (/dev/fw*): no IEEE 1394 controller is "
                              "driven by firewire-ohci here (check 'lspci | grep -i 1394', load "
                              "it with 'sudo modprobe firewire-ohci')");
        }
        std::vector<std::unique_ptr<FwNode>> nodes;
        std::vector<std::string> denied;
        Error last;
        for (const auto& p : paths) {
            auto node = open_cdev_node(p, sys);
            if (node) {
                nodes.push_back(std::move(*node));
                continue;
            }
            last = node.error();
            if (node.error().code == Errc::Unsupported) {
                denied.push_back(p);
                problems.push_back(p + ": permission denied");
            } else {
                problems.push_back(node.error().message);
            }
        }
        if (!nodes.empty()) {
            return nodes;
        }
        if (!denied.empty()) {
            std::string list;
            for (const auto& d : denied) {
                list += (list.empty() ? "" : ", ") + d;
            }
            std::string advice = cdev_permission_advice(list);
            return make_error(Errc::Unsupported, advice);
        }
        if (!device.empty() && last.code == Errc::NotFound) {
            return make_error(Errc::NotFound,
                              "no FireWire device " + device + " (" + last.message + ")");
        }
        return tl::unexpected(last);
    };
}

} // namespace kdcart::transport
