// kdsim's IEEE 1394 side: the simulated bus server and NT's 1394 debugger transport (see
// SimFirewireBus.h).
#include "hw/SimFirewireBus.h"

#include "transport/FwSimBus.h"
#include "transport/Ieee1394Link.h"

#include <chrono>
#include <cstring>
#include <deque>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace kdcart::hw {

using namespace transport;
namespace k = transport::kd1394;

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kTargetNodeId = 0xFFC1;
constexpr uint32_t kHostNodeId = 0xFFC0;
constexpr uint32_t kDataLeader = 0x30303030;
constexpr uint32_t kControlLeader = 0x69696969;
constexpr uint16_t kTypeAck = 4;
constexpr size_t kMaxQueued = 16;

uint32_t le32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint16_t le16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | p[1] << 8);
}

class Sim1394TargetLink final : public PacketLink {
  public:
    Sim1394TargetLink(SimMachine& machine, const Sim1394Options& options,
                      std::unique_ptr<StreamListener> listener)
        : m_machine(machine), m_options(options), m_listener(std::move(listener)),
          m_rom(sim_1394_config_rom(options.plain_rom)) {
        init_block();
    }
    ~Sim1394TargetLink() override {
        spdlog::info("1394: {} transactions served, {} bytes read by physical DMA", m_transactions,
                     m_dma_bytes);
        ::unlink(m_options.socket_path.c_str());
    }
    Sim1394TargetLink(const Sim1394TargetLink&) = delete;
    Sim1394TargetLink& operator=(const Sim1394TargetLink&) = delete;

    Result<void> send(const KdPacket& packet) override {
        if (packet.is_control() && packet.type == kTypeAck) {
            return {}; // no ACK packets on 1394
        }
        auto same = [&](const KdPacket& a) {
            return a.type == packet.type && a.id == packet.id && a.payload == packet.payload;
        };
        if (m_in_mailbox) {
            if (same(*m_in_mailbox)) {
                return {}; // sent again while the host has not taken it yet: it is there
            }
            for (auto& q : m_queue) {
                if (q.type == packet.type && q.id == packet.id) {
                    q = packet;
                    return {};
                }
            }
            if (m_queue.size() >= kMaxQueued) {
                m_queue.pop_front(); // the host has been gone a long time: oldest first
            }
            m_queue.push_back(packet);
            return {};
        }
        put_in_mailbox(packet);
        return {};
    }

    Result<void> send_breakin() override { return {}; }

    Result<LinkEvent> receive(Millis timeout) override {
        const auto deadline = Clock::now() + timeout;
        uint8_t buf[8192];
        for (;;) {
            if (!m_events.empty()) {
                LinkEvent ev = std::move(m_events.front());
                m_events.pop_front();
                return ev;
            }
            const auto now = Clock::now();
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no packet on the 1394 bus");
            }
            const auto left = std::chrono::duration_cast<Millis>(deadline - now) + Millis(1);
            if (!m_client) {
                auto c = m_listener->accept(left);
                if (c) {
                    m_client = std::move(*c);
                    m_framer.clear();
                    spdlog::info("1394: host connected to the simulated bus");
                    bus_reset("a host connected");
                }
                continue;
            }
            auto n = m_client->read_some(buf, left);
            if (!n) {
                if (n.error().code != Errc::Timeout) {
                    spdlog::info("1394: host left the simulated bus");
                    m_client.reset();
                }
                continue;
            }
            m_framer.feed(std::span<const uint8_t>(buf, *n));
            while (m_client) {
                auto body = m_framer.next();
                if (!body) {
                    break;
                }
                auto req = fwsim::decode_request(*body);
                if (!req) {
                    spdlog::warn("1394: {}; dropping the host", req.error().message);
                    m_client.reset();
                    break;
                }
                fwsim::Reply reply = serve(*req);
                if (m_client && !m_client->write_all(fwsim::encode(reply))) {
                    m_client.reset();
                }
                check_mailboxes();
            }
            if (m_framer.bad()) {
                spdlog::warn("1394: host sent an oversized message; dropping it");
                m_client.reset();
            }
        }
    }

    IdScheme id_scheme() const override { return IdScheme::Kd1394; }
    LinkStats stats() const override { return m_stats; }
    std::string describe() const override {
        return "1394 channel " + std::to_string(m_options.channel) + " (simulated bus " +
               m_options.socket_path + ")";
    }
    uint32_t max_payload() const override { return k::MAX_PACKET; }

    // The machine rebooted: its memory is new, the debugger writes its block again and
    // resets the bus, as kd1394 does at boot.
    void restart() override {
        m_in_mailbox.reset();
        m_queue.clear();
        m_events.clear();
        init_block();
        bus_reset("the target restarted");
    }

  private:
    void init_block() {
        k::DebugConfig c;
        c.tag = k::CONFIG_TAG;
        c.major = 1;
        c.minor = 0;
        c.id = m_options.channel;
        c.bus_present = 1;
        c.send_packet = SIM_1394_SEND_PA;
        c.receive_packet = SIM_1394_RECEIVE_PA;
        const auto bytes = k::encode_config(c);
        std::vector<uint8_t> zero(k::MAILBOX_SIZE, 0);
        m_machine.write_physical(SIM_1394_SEND_PA, zero);
        m_machine.write_physical(SIM_1394_RECEIVE_PA, zero);
        m_machine.write_physical(SIM_1394_CONFIG_PA, bytes);
    }

    void bus_reset(const char* why) {
        ++m_generation;
        spdlog::debug("1394: bus reset ({}), generation {}", why, m_generation);
        if (m_client) {
            fwsim::Reply ev;
            ev.op = fwsim::OP_BUS_RESET_EVENT;
            ev.generation = m_generation;
            ev.node_id = kTargetNodeId;
            ev.local_node_id = kHostNodeId;
            if (!m_client->write_all(fwsim::encode(ev))) {
                m_client.reset();
            }
        }
    }

    uint32_t read32(uint64_t pa) const {
        uint8_t b[4] = {};
        m_machine.read_physical(pa, b);
        return le32(b);
    }
    void write32(uint64_t pa, uint32_t v) {
        const uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                              static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
        m_machine.write_physical(pa, b);
    }

    fwsim::Reply serve(const fwsim::Request& req) {
        fwsim::Reply r;
        r.tag = req.tag;
        r.node_id = kTargetNodeId;
        r.local_node_id = kHostNodeId;
        r.op = fwsim::OP_RESPONSE;
        switch (req.op) {
        case fwsim::OP_GET_INFO:
            r.op = fwsim::OP_INFO;
            for (uint32_t q : m_rom) {
                r.data.push_back(static_cast<uint8_t>(q >> 24));
                r.data.push_back(static_cast<uint8_t>(q >> 16));
                r.data.push_back(static_cast<uint8_t>(q >> 8));
                r.data.push_back(static_cast<uint8_t>(q));
            }
            break;
        case fwsim::OP_BUS_RESET:
            bus_reset("the host asked");
            break;
        default:
            r.rcode = static_cast<uint8_t>(transaction(req, r.data));
            break;
        }
        r.generation = m_generation;
        return r;
    }

    uint32_t transaction(const fwsim::Request& req, std::vector<uint8_t>& out) {
        ++m_transactions;
        if (m_options.reset_every != 0 && m_transactions % m_options.reset_every == 0) {
            bus_reset("--1394-fault reset-every");
            return fw::kRcodeGeneration; // the reset caught it in flight: not carried out
        }
        if (req.generation != m_generation) {
            return fw::kRcodeGeneration;
        }
        const bool read = req.tcode == fw::kReadQuadlet || req.tcode == fw::kReadBlock;
        const bool quadlet = req.tcode == fw::kReadQuadlet || req.tcode == fw::kWriteQuadlet;
        const bool block = req.tcode == fw::kReadBlock || req.tcode == fw::kWriteBlock;
        if (!quadlet && !block) {
            return fw::kRcodeTypeError;
        }
        if ((quadlet && (req.length != 4 || req.offset % 4 != 0)) || req.length == 0 ||
            req.length > m_options.max_payload || (!read && req.data.size() != req.length)) {
            spdlog::debug("1394: refused tcode {} of {} bytes at {:#x}", req.tcode, req.length,
                          req.offset);
            return fw::kRcodeTypeError;
        }
        const uint64_t rom_end = fw::CSR_CONFIG_ROM + m_rom.size() * 4;
        if (req.offset >= fw::CSR_CONFIG_ROM && req.offset + req.length <= rom_end) {
            if (!read) {
                return fw::kRcodeTypeError;
            }
            for (uint64_t a = req.offset; a < req.offset + req.length; ++a) {
                const uint64_t i = a - fw::CSR_CONFIG_ROM;
                out.push_back(static_cast<uint8_t>(m_rom[i / 4] >> (24 - 8 * (i % 4))));
            }
            return fw::kRcodeComplete;
        }
        if (req.offset + req.length > fw::PHYSICAL_DMA_LIMIT) {
            return fw::kRcodeAddressError;
        }
        if (read) {
            out.resize(req.length);
            if (m_machine.read_physical(req.offset, out) != req.length) {
                out.clear();
                return fw::kRcodeAddressError;
            }
            m_dma_bytes += req.length;
            return fw::kRcodeComplete;
        }
        if (m_machine.write_physical(req.offset, req.data) != req.length) {
            return fw::kRcodeAddressError;
        }
        return fw::kRcodeComplete;
    }

    void put_in_mailbox(const KdPacket& p) {
        const auto header = k::encode_header(p);
        std::vector<uint8_t> bytes(header.begin(), header.end());
        const uint32_t length = p.is_control() ? 0 : static_cast<uint32_t>(p.payload.size());
        for (int i = 0; i < 4; ++i) {
            bytes.push_back(static_cast<uint8_t>(length >> (8 * i)));
        }
        if (!p.is_control()) {
            bytes.insert(bytes.end(), p.payload.begin(), p.payload.end());
        }
        m_machine.write_physical(SIM_1394_SEND_PA + k::SEND_HEADER, bytes);
        write32(SIM_1394_SEND_PA, k::STATUS_PENDING);
        m_in_mailbox = p;
        m_stats.packets_out++;
        m_stats.bytes_out += k::SEND_PACKET + length;
    }

    // After every transaction: has the host taken our packet, or left one for us?
    void check_mailboxes() {
        if (m_in_mailbox && read32(SIM_1394_SEND_PA) == k::STATUS_SUCCESS) {
            if (!m_in_mailbox->is_control()) {
                // Delivered: what an ACK means on the other links.
                LinkEvent ack;
                ack.kind = LinkEventKind::Packet;
                ack.packet.type = kTypeAck;
                ack.packet.id = m_in_mailbox->id;
                ack.packet.leader = kControlLeader;
                m_events.push_back(std::move(ack));
            }
            m_in_mailbox.reset();
            if (!m_queue.empty()) {
                KdPacket next = std::move(m_queue.front());
                m_queue.pop_front();
                put_in_mailbox(next);
            }
        }
        if (m_options.stuck_mailbox || read32(SIM_1394_RECEIVE_PA) != k::STATUS_PENDING) {
            return;
        }
        const uint32_t length = read32(SIM_1394_RECEIVE_PA + k::RECEIVE_LENGTH);
        std::vector<uint8_t> packet(
            std::min<uint32_t>(length, k::MAILBOX_SIZE - k::RECEIVE_PACKET));
        m_machine.read_physical(SIM_1394_RECEIVE_PA + k::RECEIVE_PACKET, packet);
        write32(SIM_1394_RECEIVE_PA, k::STATUS_SUCCESS); // taken
        m_stats.bytes_in += packet.size();
        LinkEvent ev;
        if (!packet.empty() && packet.size() < 16 && packet[0] == 0x62) {
            ev.kind = LinkEventKind::BreakIn;
            m_events.push_back(std::move(ev));
            return;
        }
        ev.kind = LinkEventKind::BadPacket;
        if (packet.size() < 16 || length > 16 + k::MAX_PACKET) {
            ev.detail = "receive mailbox Length " + std::to_string(length);
        } else {
            KdPacket& p = ev.packet;
            p.leader = le32(&packet[0]);
            p.type = le16(&packet[4]);
            const uint16_t count = le16(&packet[6]);
            p.id = le32(&packet[8]);
            const uint32_t checksum = le32(&packet[12]);
            if (p.leader != kDataLeader && p.leader != kControlLeader) {
                ev.detail = "bad leader";
            } else if (p.leader == kDataLeader && size_t{count} + 16 > packet.size()) {
                ev.detail = "ByteCount beyond Length";
            } else {
                if (p.leader == kDataLeader) {
                    p.payload.assign(packet.begin() + 16, packet.begin() + 16 + count);
                }
                if (p.leader == kDataLeader &&
                    kd_checksum(p.payload.data(), p.payload.size()) != checksum) {
                    ev.detail = "bad checksum";
                } else {
                    ev.kind = LinkEventKind::Packet;
                    m_stats.packets_in++;
                }
            }
        }
        if (ev.kind == LinkEventKind::BadPacket) {
            m_stats.bad_packets++;
        }
        m_events.push_back(std::move(ev));
    }

    SimMachine& m_machine;
    Sim1394Options m_options;
    std::unique_ptr<StreamListener> m_listener;
    std::unique_ptr<ByteStream> m_client;
    fwsim::Framer m_framer;
    std::vector<uint32_t> m_rom;
    uint32_t m_generation = 1;
    uint64_t m_transactions = 0;
    uint64_t m_dma_bytes = 0;
    std::optional<KdPacket> m_in_mailbox;
    std::deque<KdPacket> m_queue;
    std::deque<LinkEvent> m_events;
    LinkStats m_stats;
};

} // namespace

std::vector<uint32_t> sim_1394_config_rom(bool plain) {
    std::vector<uint32_t> rom;
    // Bus info block: "1394", bus options (max_rec 10 = 2048-byte payloads, S400), GUID.
    rom.push_back(0);
    rom.push_back(0x31333934);
    rom.push_back(0x0000A002);
    rom.push_back(0x0050F200);
    rom.push_back(0x00001394);
    rom[0] = (4u << 24) | (4u << 16) | transport::ieee1212_crc16(std::span(rom).subspan(1, 4));
    std::vector<uint32_t> entries{0x0C0083C0};
    if (plain) {
        entries.push_back(0x03001234);
    } else {
        entries.push_back(0x03000000 | MICROSOFT_VENDOR_ID);
        entries.push_back(0x1C000000 | MICROSOFT_VENDOR_ID);
        entries.push_back(0x1D000002);
        entries.push_back(0x1E000000 | static_cast<uint32_t>(SIM_1394_CONFIG_PA & 0xFFFFFF));
    }
    rom.push_back(static_cast<uint32_t>(entries.size() << 16) | transport::ieee1212_crc16(entries));
    rom.insert(rom.end(), entries.begin(), entries.end());
    return rom;
}

bool parse_1394_faults(const std::string& spec, Sim1394Options& out, std::string& error) {
    size_t pos = 0;
    while (pos <= spec.size()) {
        size_t comma = spec.find(',', pos);
        std::string item =
            spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (item == "stuck-mailbox") {
            out.stuck_mailbox = true;
        } else if (item == "plain-rom") {
            out.plain_rom = true;
        } else if (item.rfind("reset-every=", 0) == 0) {
            char* end = nullptr;
            const std::string n = item.substr(12);
            unsigned long v = std::strtoul(n.c_str(), &end, 10);
            if (n.empty() || end == nullptr || *end != 0 || v < 2 || v > 1000000) {
                error = "reset-every wants a count of 2 or more";
                return false;
            }
            out.reset_every = static_cast<uint32_t>(v);
        } else if (!item.empty()) {
            error = "unknown 1394 fault '" + item + "' (reset-every=N, stuck-mailbox, plain-rom)";
            return false;
        }
        if (comma == std::string::npos) {
            break;
        }
        pos = comma + 1;
    }
    return true;
}

Result<std::unique_ptr<PacketLink>> make_sim_1394_target_link(SimMachine& machine,
                                                              const Sim1394Options& options) {
    if (options.channel > 62) {
        return make_error(Errc::InvalidArgument, "1394 channels are 0 to 62");
    }
    auto listener = listen_unix(options.socket_path);
    if (!listener) {
        return tl::unexpected(listener.error());
    }
    return std::unique_ptr<PacketLink>(
        std::make_unique<Sim1394TargetLink>(machine, options, std::move(*listener)));
}

} // namespace kdcart::hw
