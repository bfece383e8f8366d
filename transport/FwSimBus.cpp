// The simulated IEEE 1394 bus: message codec and the host's node (see FwSimBus.h).
#include "transport/FwSimBus.h"

#include <chrono>
#include <cstring>
#include <spdlog/spdlog.h>

namespace kdcart::transport {

namespace fwsim {

namespace {

void put8(std::vector<uint8_t>& v, uint8_t x) {
    v.push_back(x);
}
void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x));
    v.push_back(static_cast<uint8_t>(x >> 8));
}
void put32(std::vector<uint8_t>& v, uint32_t x) {
    for (int i = 0; i < 4; ++i) {
        v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    }
}
void put64(std::vector<uint8_t>& v, uint64_t x) {
    put32(v, static_cast<uint32_t>(x));
    put32(v, static_cast<uint32_t>(x >> 32));
}
uint32_t get32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t get64(const uint8_t* p) {
    return uint64_t{get32(p)} | uint64_t{get32(p + 4)} << 32;
}

std::vector<uint8_t> frame(std::vector<uint8_t> body) {
    std::vector<uint8_t> out;
    out.reserve(body.size() + 4);
    put32(out, static_cast<uint32_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

} // namespace

std::vector<uint8_t> encode(const Request& r) {
    std::vector<uint8_t> b;
    b.reserve(HEADER_SIZE + r.data.size());
    put8(b, r.op);
    put8(b, r.tcode);
    put16(b, 0);
    put32(b, r.tag);
    put32(b, r.generation);
    put32(b, r.length);
    put64(b, r.offset);
    b.insert(b.end(), r.data.begin(), r.data.end());
    return frame(std::move(b));
}

std::vector<uint8_t> encode(const Reply& r) {
    std::vector<uint8_t> b;
    b.reserve(HEADER_SIZE + r.data.size());
    put8(b, r.op);
    put8(b, r.rcode);
    put16(b, 0);
    put32(b, r.tag);
    put32(b, r.generation);
    put32(b, r.node_id);
    put32(b, r.local_node_id);
    put32(b, static_cast<uint32_t>(r.data.size()));
    b.insert(b.end(), r.data.begin(), r.data.end());
    return frame(std::move(b));
}

Result<Request> decode_request(std::span<const uint8_t> body) {
    if (body.size() < HEADER_SIZE) {
        return make_error(Errc::Malformed, "short 1394 bus request");
    }
    Request r;
    r.op = body[0];
    r.tcode = body[1];
    r.tag = get32(&body[4]);
    r.generation = get32(&body[8]);
    r.length = get32(&body[12]);
    r.offset = get64(&body[16]);
    r.data.assign(body.begin() + HEADER_SIZE, body.end());
    if (r.op < OP_GET_INFO || r.op > OP_BUS_RESET) {
        return make_error(Errc::Malformed, "unknown 1394 bus request " + std::to_string(r.op));
    }
    return r;
}

Result<Reply> decode_reply(std::span<const uint8_t> body) {
    if (body.size() < HEADER_SIZE) {
        return make_error(Errc::Malformed, "short 1394 bus message");
    }
    Reply r;
    r.op = body[0];
    r.rcode = body[1];
    r.tag = get32(&body[4]);
    r.generation = get32(&body[8]);
    r.node_id = get32(&body[12]);
    r.local_node_id = get32(&body[16]);
    const uint32_t length = get32(&body[20]);
    if (length != body.size() - HEADER_SIZE) {
        return make_error(Errc::Malformed, "1394 bus message with a wrong length");
    }
    r.data.assign(body.begin() + HEADER_SIZE, body.end());
    return r;
}

void Framer::feed(std::span<const uint8_t> bytes) {
    m_buf.insert(m_buf.end(), bytes.begin(), bytes.end());
}

std::optional<std::vector<uint8_t>> Framer::next() {
    if (m_bad || m_buf.size() < 4) {
        return std::nullopt;
    }
    const uint32_t len = get32(m_buf.data());
    if (len > MAX_BODY) {
        m_bad = true;
        return std::nullopt;
    }
    if (m_buf.size() < 4 + size_t{len}) {
        return std::nullopt;
    }
    std::vector<uint8_t> body(m_buf.begin() + 4, m_buf.begin() + 4 + len);
    m_buf.erase(m_buf.begin(), m_buf.begin() + 4 + len);
    return body;
}

} // namespace fwsim

namespace {

using Clock = std::chrono::steady_clock;

class SimNode final : public FwNode {
  public:
    SimNode(std::unique_ptr<ByteStream> stream, std::string path)
        : m_stream(std::move(stream)), m_path(std::move(path)) {}

    std::string name() const override { return "simulated bus " + m_path; }
    uint32_t max_payload() const override { return fw::MAX_PAYLOAD_S400; }

    Result<FwNodeInfo> get_info() override {
        fwsim::Request req;
        req.op = fwsim::OP_GET_INFO;
        auto reply = exchange(req, Millis(2000));
        if (!reply) {
            return tl::unexpected(reply.error());
        }
        if (reply->op != fwsim::OP_INFO || reply->data.size() % 4 != 0) {
            return make_error(Errc::Malformed, name() + ": bad INFO answer");
        }
        FwNodeInfo info;
        for (size_t i = 0; i < reply->data.size(); i += 4) {
            const uint8_t* p = &reply->data[i];
            info.rom.push_back(uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 |
                               p[3]);
        }
        info.generation = reply->generation;
        info.node_id = reply->node_id;
        info.local_node_id = reply->local_node_id;
        return info;
    }

    Result<std::vector<uint8_t>> transact(uint32_t tcode, uint64_t offset, uint32_t length,
                                          std::span<const uint8_t> data, uint32_t generation,
                                          Millis timeout) override {
        const bool read = tcode == fw::kReadQuadlet || tcode == fw::kReadBlock;
        if (!read && data.size() != length) {
            return make_error(Errc::InvalidArgument, "write length does not match its data");
        }
        fwsim::Request req;
        req.op = fwsim::OP_TRANSACTION;
        req.tcode = static_cast<uint8_t>(tcode);
        req.generation = generation;
        req.length = length;
        req.offset = offset;
        if (!read) {
            req.data.assign(data.begin(), data.end());
        }
        auto reply = exchange(req, timeout);
        if (!reply) {
            return tl::unexpected(reply.error());
        }
        if (reply->op != fwsim::OP_RESPONSE) {
            return make_error(Errc::Malformed, name() + ": bad RESPONSE");
        }
        if (reply->rcode != fw::kRcodeComplete) {
            char where[32];
            std::snprintf(where, sizeof where, "%#llx", static_cast<unsigned long long>(offset));
            return tl::unexpected(fw::rcode_error(
                reply->rcode, std::string(read ? "read" : "write") + " of " +
                                  std::to_string(length) + " bytes at " + where + " on " + name()));
        }
        if (read && reply->data.size() != length) {
            return make_error(Errc::Io, name() + ": short read response");
        }
        return std::move(reply->data);
    }

    Result<void> initiate_bus_reset() override {
        fwsim::Request req;
        req.op = fwsim::OP_BUS_RESET;
        auto reply = exchange(req, Millis(2000));
        if (!reply) {
            return tl::unexpected(reply.error());
        }
        return {};
    }

  private:
    // Sends one request and reads messages until its answer; bus reset events are noted on
    // the way, answers to requests given up on earlier are dropped.
    Result<fwsim::Reply> exchange(fwsim::Request& req, Millis timeout) {
        if (m_framer.bad()) {
            return make_error(Errc::Disconnected, name() + ": the bus sent garbage");
        }
        req.tag = ++m_tag;
        if (auto w = m_stream->write_all(fwsim::encode(req)); !w) {
            return tl::unexpected(w.error());
        }
        const auto deadline = Clock::now() + timeout;
        uint8_t buf[8192];
        for (;;) {
            while (auto body = m_framer.next()) {
                auto reply = fwsim::decode_reply(*body);
                if (!reply) {
                    return make_error(Errc::Disconnected, name() + ": " + reply.error().message);
                }
                if (reply->op == fwsim::OP_BUS_RESET_EVENT) {
                    spdlog::debug("1394: {}: bus reset, generation {}", name(), reply->generation);
                    continue;
                }
                if (reply->tag != req.tag) {
                    continue; // the answer to a request that timed out
                }
                return std::move(*reply);
            }
            if (m_framer.bad()) {
                return make_error(Errc::Disconnected, name() + ": the bus sent garbage");
            }
            const auto now = Clock::now();
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no response from " + name() + " within " +
                                                     std::to_string(timeout.count()) + " ms");
            }
            auto n = m_stream->read_some(buf, std::chrono::duration_cast<Millis>(deadline - now) +
                                                  Millis(1));
            if (!n) {
                if (n.error().code == Errc::Timeout) {
                    continue;
                }
                return make_error(Errc::Disconnected, name() + " closed (kdsim gone?)");
            }
            m_framer.feed(std::span<const uint8_t>(buf, *n));
        }
    }

    std::unique_ptr<ByteStream> m_stream;
    std::string m_path;
    fwsim::Framer m_framer;
    uint32_t m_tag = 0;
};

} // namespace

Result<std::unique_ptr<FwNode>> connect_sim_node(const std::string& socket_path) {
    auto stream = connect_unix(socket_path);
    if (!stream) {
        return make_error(Errc::NotFound, "no simulated 1394 bus at " + socket_path + " (" +
                                              stream.error().message +
                                              "): start it with 'kdsim --1394 " + socket_path +
                                              "'");
    }
    return std::unique_ptr<FwNode>(std::make_unique<SimNode>(std::move(*stream), socket_path));
}

FwEnumerator make_sim_enumerator(std::string socket_path) {
    return
        [socket_path](std::vector<std::string>&) -> Result<std::vector<std::unique_ptr<FwNode>>> {
            auto node = connect_sim_node(socket_path);
            if (!node) {
                return tl::unexpected(node.error());
            }
            std::vector<std::unique_ptr<FwNode>> nodes;
            nodes.push_back(std::move(*node));
            return nodes;
        };
}

} // namespace kdcart::transport
