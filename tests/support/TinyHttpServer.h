#pragma once
// A small HTTP/1.0 server on 127.0.0.1 for symbol-server tests: serves files from a directory
// (a symbol store), and misbehaves on request for paths under special prefixes:
//   /slow/...     accepts, reads the request, never answers (a timeout)
//   /error/...    500 Internal Server Error
//   /html/...     200 with an HTML page (a captive portal or a proxy's error page)
//   /redirect/X   302 to /X
// Every request's path is recorded. One thread per connection; stop() (or the destructor)
// closes everything.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <mutex>
#include <poll.h>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace kdcart::test {

class TinyHttpServer {
  public:
    explicit TinyHttpServer(std::string root) : m_root(std::move(root)) {
        m_listen = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        ::bind(m_listen, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(m_listen, 16);
        socklen_t len = sizeof a;
        ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&a), &len);
        m_port = ntohs(a.sin_port);
        m_thread = std::thread([this] { accept_loop(); });
    }
    ~TinyHttpServer() { stop(); }
    TinyHttpServer(const TinyHttpServer&) = delete;
    TinyHttpServer& operator=(const TinyHttpServer&) = delete;

    uint16_t port() const { return m_port; }
    std::string url(const std::string& prefix = "") const {
        return "http://127.0.0.1:" + std::to_string(m_port) + prefix;
    }
    std::vector<std::string> requests() const {
        std::lock_guard<std::mutex> g(m_mutex);
        return m_requests;
    }
    void stop() {
        if (m_stop.exchange(true)) {
            return;
        }
        ::shutdown(m_listen, SHUT_RDWR);
        ::close(m_listen);
        if (m_thread.joinable()) {
            m_thread.join();
        }
        std::vector<std::thread> workers;
        {
            std::lock_guard<std::mutex> g(m_mutex);
            workers.swap(m_workers);
        }
        for (auto& w : workers) {
            w.join();
        }
    }

  private:
    void accept_loop() {
        while (!m_stop) {
            pollfd p{m_listen, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) {
                continue;
            }
            const int c = ::accept(m_listen, nullptr, nullptr);
            if (c < 0) {
                continue;
            }
            std::lock_guard<std::mutex> g(m_mutex);
            m_workers.emplace_back([this, c] { serve(c); });
        }
    }

    static void send_all(int fd, const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) {
                return;
            }
            off += static_cast<size_t>(n);
        }
    }

    static std::string reply(int code, const char* reason, const std::string& body,
                             const std::string& extra = "") {
        return "HTTP/1.0 " + std::to_string(code) + " " + reason +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra +
               "Connection: close\r\n\r\n" + body;
    }

    void serve(int fd) {
        std::string req;
        char buf[2048];
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 200) <= 0) {
                if (m_stop) {
                    break;
                }
                continue;
            }
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                break;
            }
            req.append(buf, static_cast<size_t>(n));
        }
        std::istringstream line(req);
        std::string method, path;
        line >> method >> path;
        {
            std::lock_guard<std::mutex> g(m_mutex);
            m_requests.push_back(path);
        }
        if (path.rfind("/slow/", 0) == 0) {
            while (!m_stop) { // say nothing until the client gives up or the server stops
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, 100) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) {
                    break;
                }
            }
        } else if (path.rfind("/error/", 0) == 0) {
            send_all(fd, reply(500, "Internal Server Error", "oops"));
        } else if (path.rfind("/html/", 0) == 0) {
            send_all(fd, reply(200, "OK", "<html><body>Please log in</body></html>",
                               "Content-Type: text/html\r\n"));
        } else if (path.rfind("/redirect/", 0) == 0) {
            send_all(fd, reply(302, "Found", "", "Location: " + path.substr(9) + "\r\n"));
        } else {
            std::ifstream f(m_root + path, std::ios::binary);
            if (path.find("..") != std::string::npos || !f.good()) {
                send_all(fd, reply(404, "Not Found", "not found"));
            } else {
                std::string body((std::istreambuf_iterator<char>(f)), {});
                send_all(fd, reply(200, "OK", body, "Content-Type: application/octet-stream\r\n"));
            }
        }
        ::close(fd);
    }

    std::string m_root;
    int m_listen = -1;
    uint16_t m_port = 0;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<std::thread> m_workers;
    std::vector<std::string> m_requests;
};

} // namespace kdcart::test
