#include "transport/ByteStream.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <libserialport.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <thread>
#include <unistd.h>

namespace kdcart::transport {

namespace {

std::string os_error(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

class FdStream final : public ByteStream {
public:
    FdStream(int fd, std::string description) : m_fd(fd), m_description(std::move(description)) {}
    ~FdStream() override {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    FdStream(const FdStream&) = delete;
    FdStream& operator=(const FdStream&) = delete;

    Result<size_t> read_some(std::span<uint8_t> buf, Millis timeout) override {
        if (buf.empty()) {
            return 0;
        }
        pollfd pfd{m_fd, POLLIN, 0};
        int rc;
        do {
            rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
        } while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            return make_error(Errc::Io, os_error("poll " + m_description));
        }
        if (rc == 0) {
            return make_error(Errc::Timeout, "no data from " + m_description);
        }
        ssize_t n;
        do {
            n = ::read(m_fd, buf.data(), buf.size());
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            return static_cast<size_t>(n);
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return make_error(Errc::Timeout, "no data from " + m_description);
        }
        // 0 = EOF on a socket; EIO = the other side of a pty is closed.
        if (n < 0 && errno == EIO) {
            // A pty master reports EIO while no slave is open. Avoid a hot loop.
            std::this_thread::sleep_for(std::min(timeout, Millis(50)));
        }
        return make_error(Errc::Disconnected, m_description + " closed");
    }

    Result<void> write_all(std::span<const uint8_t> data) override {
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::write(m_fd, data.data() + done, data.size() - done);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    pollfd pfd{m_fd, POLLOUT, 0};
                    int rc = ::poll(&pfd, 1, 5000);
                    if (rc == 0) {
                        return make_error(Errc::Timeout, "write to " + m_description + " stalled");
                    }
                    continue;
                }
                if (errno == EPIPE || errno == EIO || errno == ECONNRESET) {
                    return make_error(Errc::Disconnected, m_description + " closed");
                }
                return make_error(Errc::Io, os_error("write " + m_description));
            }
            done += static_cast<size_t>(n);
        }
        return {};
    }

    std::string describe() const override { return m_description; }
    int native_handle() const override { return m_fd; }

private:
    int m_fd;
    std::string m_description;
};

speed_t baud_constant(unsigned baud) {
    switch (baud) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    case 460800: return B460800;
    case 921600: return B921600;
    default: return 0;
    }
}

void set_nonblock(int fd) {
    int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

Result<void> make_raw(int fd, unsigned baud, const std::string& what) {
    termios tio{};
    if (::tcgetattr(fd, &tio) != 0) {
        return make_error(Errc::Io, os_error("tcgetattr " + what));
    }
    ::cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    tio.c_cflag &= ~static_cast<tcflag_t>(CRTSCTS | CSTOPB | PARENB | CSIZE);
    tio.c_cflag |= CS8;
    tio.c_iflag &= ~static_cast<tcflag_t>(IXON | IXOFF | IXANY);
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    if (baud != 0) {
        speed_t sp = baud_constant(baud);
        if (sp == 0) {
            return make_error(Errc::InvalidArgument,
                              "unsupported baud rate " + std::to_string(baud));
        }
        ::cfsetispeed(&tio, sp);
        ::cfsetospeed(&tio, sp);
    }
    if (::tcsetattr(fd, TCSANOW, &tio) != 0) {
        return make_error(Errc::Io, os_error("tcsetattr " + what));
    }
    return {};
}

// Paces like a UART: each byte costs 10 bit times. Reads are delayed until the bytes could have
// arrived; writes are spread out at the line rate.
class PacedStream final : public ByteStream {
public:
    PacedStream(std::unique_ptr<ByteStream> inner, unsigned baud)
        : m_inner(std::move(inner)), m_bytes_per_sec(baud / 10.0) {}

    Result<size_t> read_some(std::span<uint8_t> buf, Millis timeout) override {
        // Read at most what the line could deliver in a short slice, then wait for it.
        size_t cap = std::max<size_t>(1, static_cast<size_t>(m_bytes_per_sec / 100.0));
        auto r = m_inner->read_some(buf.first(std::min(buf.size(), cap)), timeout);
        if (r) {
            pace(m_rx_free, *r);
        }
        return r;
    }

    Result<void> write_all(std::span<const uint8_t> data) override {
        size_t chunk = std::max<size_t>(1, static_cast<size_t>(m_bytes_per_sec / 100.0));
        for (size_t off = 0; off < data.size(); off += chunk) {
            auto part = data.subspan(off, std::min(chunk, data.size() - off));
            pace(m_tx_free, part.size());
            if (auto r = m_inner->write_all(part); !r) {
                return r;
            }
        }
        return {};
    }

    std::string describe() const override {
        return m_inner->describe() + " (paced " + std::to_string(int(m_bytes_per_sec * 10)) + ")";
    }
    int native_handle() const override { return m_inner->native_handle(); }

private:
    using Clock = std::chrono::steady_clock;
    void pace(Clock::time_point& line_free, size_t bytes) {
        auto now = Clock::now();
        if (line_free < now) {
            line_free = now;
        }
        line_free += std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(bytes / m_bytes_per_sec));
        std::this_thread::sleep_until(line_free);
    }

    std::unique_ptr<ByteStream> m_inner;
    double m_bytes_per_sec;
    Clock::time_point m_rx_free{};
    Clock::time_point m_tx_free{};
};

class FdListener final : public StreamListener {
public:
    FdListener(int fd, std::string description, std::string unlink_path)
        : m_fd(fd), m_description(std::move(description)), m_unlink(std::move(unlink_path)) {}
    ~FdListener() override {
        ::close(m_fd);
        if (!m_unlink.empty()) {
            ::unlink(m_unlink.c_str());
        }
    }
    Result<std::unique_ptr<ByteStream>> accept(Millis timeout) override {
        pollfd pfd{m_fd, POLLIN, 0};
        int rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
        if (rc == 0) {
            return make_error(Errc::Timeout, "no peer connected to " + m_description);
        }
        if (rc < 0) {
            return make_error(Errc::Io, os_error("poll " + m_description));
        }
        int fd = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            return make_error(Errc::Io, os_error("accept " + m_description));
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // fails harmlessly on unix
        return make_fd_stream(fd, m_description);
    }
    std::string describe() const override { return m_description; }

private:
    int m_fd;
    std::string m_description;
    std::string m_unlink;
};

} // namespace

std::unique_ptr<ByteStream> make_fd_stream(int fd, std::string description) {
    return std::make_unique<FdStream>(fd, std::move(description));
}

Result<std::unique_ptr<ByteStream>> open_termios(const std::string& path, unsigned baud) {
    int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return make_error(errno == ENOENT ? Errc::NotFound : Errc::Io, os_error("open " + path));
    }
    if (auto r = make_raw(fd, baud, path); !r) {
        ::close(fd);
        return tl::unexpected(r.error());
    }
    return make_fd_stream(fd, "serial " + path);
}

Result<std::unique_ptr<ByteStream>> open_serial_port(const std::string& path, unsigned baud) {
    sp_port* port = nullptr;
    if (sp_get_port_by_name(path.c_str(), &port) != SP_OK) {
        return make_error(Errc::NotFound, "no serial port " + path);
    }
    auto fail = [&](const std::string& what) -> Result<std::unique_ptr<ByteStream>> {
        char* msg = sp_last_error_message();
        std::string text = what + " " + path + ": " + (msg ? msg : "unknown error");
        sp_free_error_message(msg);
        sp_close(port);
        sp_free_port(port);
        return make_error(Errc::Io, text);
    };
    if (sp_open(port, SP_MODE_READ_WRITE) != SP_OK) {
        return fail("cannot open");
    }
    if (sp_set_baudrate(port, static_cast<int>(baud)) != SP_OK || sp_set_bits(port, 8) != SP_OK ||
        sp_set_parity(port, SP_PARITY_NONE) != SP_OK || sp_set_stopbits(port, 1) != SP_OK ||
        sp_set_flowcontrol(port, SP_FLOWCONTROL_NONE) != SP_OK) {
        return fail("cannot configure");
    }
    // Take the configured descriptor over; poll() on it works like any other fd.
    int fd = -1;
    if (sp_get_port_handle(port, &fd) != SP_OK || fd < 0) {
        return fail("no descriptor for");
    }
    int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    sp_close(port);
    sp_free_port(port);
    if (dup_fd < 0) {
        return make_error(Errc::Io, os_error("dup " + path));
    }
    set_nonblock(dup_fd);
    return make_fd_stream(dup_fd, "serial " + path);
}

Result<std::unique_ptr<ByteStream>> open_serial(const std::string& path, unsigned baud) {
    char resolved[PATH_MAX];
    std::string real = ::realpath(path.c_str(), resolved) ? resolved : path;
    if (real.rfind("/dev/pts/", 0) == 0 || real == "/dev/ptmx") {
        return open_termios(path, baud);
    }
    auto r = open_serial_port(path, baud);
    if (!r && r.error().code == Errc::NotFound) {
        // Not known to sysfs (a pty symlink, a socat device...): plain termios still works.
        struct stat st{};
        if (::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) {
            return open_termios(path, baud);
        }
    }
    return r;
}

Result<std::unique_ptr<ByteStream>> connect_unix(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) {
        return make_error(Errc::InvalidArgument, "socket path too long: " + path);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return make_error(Errc::Io, os_error("socket"));
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        auto code = (errno == ENOENT || errno == ECONNREFUSED) ? Errc::NotFound : Errc::Io;
        auto msg = os_error("connect " + path);
        ::close(fd);
        return make_error(code, msg);
    }
    set_nonblock(fd);
    return make_fd_stream(fd, "pipe " + path);
}

namespace {
Result<std::pair<std::string, std::string>> split_host_port(const std::string& hp) {
    auto colon = hp.rfind(':');
    if (colon == std::string::npos || colon + 1 == hp.size()) {
        return make_error(Errc::InvalidArgument, "expected HOST:PORT, got '" + hp + "'");
    }
    std::string host = hp.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty()) {
        host = "127.0.0.1";
    }
    return std::pair{host, hp.substr(colon + 1)};
}
} // namespace

Result<std::unique_ptr<ByteStream>> connect_tcp(const std::string& host_port) {
    auto hp = split_host_port(host_port);
    if (!hp) {
        return tl::unexpected(hp.error());
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int gai = ::getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &res);
    if (gai != 0) {
        return make_error(Errc::NotFound,
                          "cannot resolve " + host_port + ": " + ::gai_strerror(gai));
    }
    std::string last = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            ::freeaddrinfo(res);
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            set_nonblock(fd);
            return make_fd_stream(fd, "tcp " + host_port);
        }
        last = os_error("connect " + host_port);
        ::close(fd);
    }
    ::freeaddrinfo(res);
    return make_error(Errc::NotFound, last);
}

Result<std::unique_ptr<StreamListener>> listen_unix(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) {
        return make_error(Errc::InvalidArgument, "socket path too long: " + path);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return make_error(Errc::Io, os_error("socket"));
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0) {
        auto msg = os_error("listen " + path);
        ::close(fd);
        return make_error(Errc::Io, msg);
    }
    return std::unique_ptr<StreamListener>(new FdListener(fd, "pipe " + path, path));
}

Result<std::unique_ptr<StreamListener>> listen_tcp(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return make_error(Errc::Io, os_error("socket"));
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0) {
        auto msg = os_error("listen on port " + std::to_string(port));
        ::close(fd);
        return make_error(Errc::Io, msg);
    }
    return std::unique_ptr<StreamListener>(
        new FdListener(fd, "tcp 127.0.0.1:" + std::to_string(port), ""));
}

Result<PtyPair> open_pty_master() {
    int fd = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        return make_error(Errc::Io, os_error("posix_openpt"));
    }
    if (::grantpt(fd) != 0 || ::unlockpt(fd) != 0) {
        auto msg = os_error("unlockpt");
        ::close(fd);
        return make_error(Errc::Io, msg);
    }
    char name[128];
    if (::ptsname_r(fd, name, sizeof name) != 0) {
        auto msg = os_error("ptsname");
        ::close(fd);
        return make_error(Errc::Io, msg);
    }
    if (auto r = make_raw(fd, 0, "pty master"); !r) {
        ::close(fd);
        return tl::unexpected(r.error());
    }
    set_nonblock(fd);
    PtyPair pair;
    pair.slave_path = name;
    pair.master = make_fd_stream(fd, std::string("pty ") + name);
    return pair;
}

std::unique_ptr<ByteStream> make_paced_stream(std::unique_ptr<ByteStream> inner, unsigned baud) {
    if (baud == 0) {
        return inner;
    }
    return std::make_unique<PacedStream>(std::move(inner), baud);
}

} // namespace kdcart::transport
