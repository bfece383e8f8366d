// KD over IEEE 1394, the host's side: target discovery, bus resets, physical DMA and the
// send/receive mailboxes (see Ieee1394Link.h).
#include "transport/Ieee1394Link.h"

#include <algorithm>
#include <cstring>
#include <spdlog/spdlog.h>
#include <thread>

namespace kdcart::transport {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kDataLeader = 0x30303030;
constexpr uint32_t kControlLeader = 0x69696969;
constexpr uint16_t kTypeAck = 4;
constexpr uint8_t kBreakIn = 0x62;
constexpr uint64_t kPage = 0x1000;
constexpr int kTransferRestarts = 16;

uint32_t le32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint16_t le16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint64_t le64(const uint8_t* p) {
    return uint64_t{le32(p)} | uint64_t{le32(p + 4)} << 32;
}
void put32(std::vector<uint8_t>& v, uint32_t x) {
    for (int i = 0; i < 4; ++i) {
        v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    }
}
void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x));
    v.push_back(static_cast<uint8_t>(x >> 8));
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (const auto& i : items) {
        out += (out.empty() ? "" : sep) + i;
    }
    return out;
}

} // namespace

namespace kd1394 {

DebugConfig decode_config(std::span<const uint8_t, CONFIG_SIZE> b) {
    DebugConfig c;
    c.tag = le32(&b[0]);
    c.major = le16(&b[4]);
    c.minor = le16(&b[6]);
    c.id = le32(&b[8]);
    c.bus_present = le32(&b[0xC]);
    c.send_packet = le64(&b[0x10]);
    c.receive_packet = le64(&b[0x18]);
    return c;
}

std::vector<uint8_t> encode_config(const DebugConfig& c) {
    std::vector<uint8_t> b;
    put32(b, c.tag);
    put16(b, c.major);
    put16(b, c.minor);
    put32(b, c.id);
    put32(b, c.bus_present);
    put32(b, static_cast<uint32_t>(c.send_packet));
    put32(b, static_cast<uint32_t>(c.send_packet >> 32));
    put32(b, static_cast<uint32_t>(c.receive_packet));
    put32(b, static_cast<uint32_t>(c.receive_packet >> 32));
    return b;
}

std::vector<uint8_t> encode_header(const KdPacket& p) {
    const bool control = p.is_control();
    std::vector<uint8_t> b;
    put32(b, control ? kControlLeader : kDataLeader);
    put16(b, p.type);
    put16(b, static_cast<uint16_t>(control ? 0 : p.payload.size()));
    put32(b, p.id);
    put32(b, control ? 0 : kd_checksum(p.payload.data(), p.payload.size()));
    return b;
}

} // namespace kd1394

// ---------------------------------------------------------------------------------------------
// Ieee1394Port
// ---------------------------------------------------------------------------------------------

Ieee1394Port::Ieee1394Port(FwEnumerator enumerate, const Ieee1394Config& config,
                           std::string bus_name)
    : m_enumerate(std::move(enumerate)), m_config(config), m_bus_name(std::move(bus_name)) {}

Result<std::shared_ptr<Ieee1394Port>>
Ieee1394Port::open(FwEnumerator enumerate, const Ieee1394Config& config, std::string bus_name) {
    if (config.channel > 62) {
        return make_error(Errc::InvalidArgument, "1394 channel " + std::to_string(config.channel) +
                                                     " is out of range (0 to 62)");
    }
    std::shared_ptr<Ieee1394Port> port(
        new Ieee1394Port(std::move(enumerate), config, std::move(bus_name)));
    auto r = port->locate();
    if (!r && port->m_no_bus) {
        return tl::unexpected(r.error()); // no bus, or nothing we may open
    }
    if (!r && r.error().message.find("permission denied") != std::string::npos) {
        return make_error(Errc::Unsupported, r.error().message);
    }
    return port;
}

std::string Ieee1394Port::describe() const {
    std::string s = "1394 channel " + std::to_string(m_config.channel);
    if (m_node) {
        return s + " on " + m_node->name();
    }
    return s + " (" + m_bus_name + ")";
}

void Ieee1394Port::notice(std::string text) {
    if (m_notices.size() < 32) {
        m_notices.push_back(std::move(text));
    }
}

std::vector<std::string> Ieee1394Port::take_notices() {
    return std::exchange(m_notices, {});
}

void Ieee1394Port::locate_if_due() {
    if (m_node || Clock::now() - m_last_scan < m_config.rescan_interval) {
        return;
    }
    (void)locate();
}

Result<void> Ieee1394Port::locate() {
    m_last_scan = Clock::now();
    ++m_stats.scans;
    std::vector<std::string> problems;
    auto report = [this](Error e) -> Result<void> {
        if (e.message != m_last_scan_result) {
            m_last_scan_result = e.message;
            notice(e.message);
        }
        return tl::unexpected(e);
    };
    auto nodes = m_enumerate(problems);
    m_no_bus = !nodes;
    if (!nodes) {
        return report(nodes.error());
    }
    std::vector<std::string> others;        // remote nodes that are not debug targets
    std::vector<std::string> other_channel; // debug targets on another channel
    const uint32_t channel = m_config.channel;
    for (auto& node : *nodes) {
        auto info = node->get_info();
        if (!info) {
            others.push_back(node->name() + " (" + info.error().message + ")");
            continue;
        }
        if (info->is_local()) {
            continue; // the cart's own controller
        }
        const FwDebugRom rom = parse_debug_rom(info->rom);
        if (!rom.is_debug_target()) {
            std::string what = node->name();
            if (rom.vendor) {
                char v[16];
                std::snprintf(v, sizeof v, "%06x", *rom.vendor);
                what += " (vendor " + std::string(v) + ")";
            }
            others.push_back(what);
            continue;
        }
        // The debug block, read in the generation GET_INFO gave (again after a reset).
        const uint64_t block = *rom.debug_block;
        uint32_t generation = info->generation;
        Result<std::vector<uint8_t>> raw = make_error(Errc::Io, "not read");
        for (int attempt = 0; attempt <= m_config.reset_retries; ++attempt) {
            raw = node->transact(fw::kReadBlock, block, kd1394::CONFIG_SIZE, {}, generation,
                                 m_config.request_timeout);
            ++m_stats.transactions;
            if (raw || raw.error().code != Errc::Resync) {
                break;
            }
            ++m_stats.bus_resets;
            auto again = node->get_info();
            if (!again) {
                raw = tl::unexpected(again.error());
                break;
            }
            generation = again->generation;
        }
        if (!raw || raw->size() != kd1394::CONFIG_SIZE) {
            others.push_back(
                node->name() + " (debug entries, but DEBUG_1394_CONFIG at " + hex(block) +
                " is unreadable: " + (raw ? std::string("short read") : raw.error().message) + ")");
            continue;
        }
        const auto cfg =
            kd1394::decode_config(std::span<const uint8_t, kd1394::CONFIG_SIZE>(raw->data(), 32));
        if (cfg.tag != kd1394::CONFIG_TAG) {
            others.push_back(node->name() + " (debug entries, but the block at " + hex(block) +
                             " has tag " + hex(cfg.tag) + ", not 0xbabababa)");
            continue;
        }
        if (cfg.id != channel) {
            other_channel.push_back(node->name() + " is a Windows 1394 debug target on channel " +
                                    std::to_string(cfg.id));
            continue;
        }
        auto bad_mailbox = [](uint64_t a) {
            return a == 0 || a % 4 != 0 || a + kd1394::MAILBOX_SIZE > fw::PHYSICAL_DMA_LIMIT;
        };
        if (bad_mailbox(cfg.send_packet) || bad_mailbox(cfg.receive_packet)) {
            others.push_back(node->name() + " (channel " + std::to_string(channel) +
                             ", but its mailboxes " + hex(cfg.send_packet) + "/" +
                             hex(cfg.receive_packet) + " are out of DMA reach)");
            continue;
        }
        if (cfg.major != 1) {
            spdlog::warn("1394: DEBUG_1394_CONFIG version {}.{} (1.0 expected); trying anyway",
                         cfg.major, cfg.minor);
        }
        // This is the target.
        m_node = std::move(node);
        m_generation = generation;
        m_node_id = info->node_id;
        m_config_address = block;
        m_debug = cfg;
        m_payload = std::min(m_config.max_payload, m_node->max_payload());
        if (rom.max_rec_payload != 0) {
            m_payload = std::min(m_payload, rom.max_rec_payload);
        }
        m_payload = std::max<uint32_t>(m_payload & ~3u, 4);
        m_last_scan_result.clear();
        notice("1394: debug target on " + m_node->name() + " (node " + hex(m_node_id) +
               ", generation " + std::to_string(m_generation) + "): DEBUG_1394_CONFIG at " +
               hex(block) + ", channel " + std::to_string(channel) + ", mailboxes at " +
               hex(cfg.send_packet) + " and " + hex(cfg.receive_packet) + ", requests of up to " +
               std::to_string(m_payload) + " bytes");
        spdlog::debug("1394: ROM vendor {:#x}, debug kind {:#x}, crc {}", rom.vendor.value_or(0),
                      rom.debug_kind.value_or(0), rom.crc_ok ? "ok" : "bad");
        return {};
    }
    std::string why;
    if (!other_channel.empty()) {
        why = "no 1394 debug target on channel " + std::to_string(channel) + ": " +
              join(other_channel, "; ") +
              " (give that channel in -k 1394:channel=N, or set the target's with 'bcdedit "
              "/dbgsettings 1394 channel:" +
              std::to_string(channel) + "')";
    } else {
        why = "no node on the 1394 bus has the Windows debug entries in its config ROM (keys "
              "0x1C = 0x0050F2 and 0x1E)";
        why += others.empty() ? ": no remote node is connected" : ": found " + join(others, ", ");
        why += ". Is the target booted with 'bcdedit /debug on' and 'bcdedit /dbgsettings 1394 "
               "channel:" +
               std::to_string(channel) + "', and the cable plugged in?";
    }
    bool denied = false;
    for (const auto& p : problems) {
        denied = denied || p.find("permission denied") != std::string::npos;
    }
    if (!problems.empty()) {
        why += " Could not open: " + join(problems, ", ") + ".";
    }
    if (denied) {
        why += " " + std::string("The target may be one of those: ") +
               "kdcart needs read and write access to them (root, or a udev rule such as "
               "SUBSYSTEM==\"firewire\", ATTR{vendor}==\"0x0050f2\", GROUP=\"plugdev\", "
               "MODE=\"0660\" in /etc/udev/rules.d/65-kdcart-firewire.rules).";
    }
    return report(Error(Errc::NotFound, why));
}

void Ieee1394Port::lose(const std::string& why) {
    if (!m_node) {
        return;
    }
    notice("1394: lost the debug target on " + m_node->name() + ": " + why);
    m_node.reset();
    m_ahead.clear();
    m_last_scan = {};
}

Result<void> Ieee1394Port::refresh() {
    for (int attempt = 0; attempt <= m_config.reset_retries; ++attempt) {
        if (attempt > 0) {
            // A real bus needs a moment after a reset (self-identification, ROM reads).
            std::this_thread::sleep_for(Millis(std::min(attempt * 10, 200)));
        }
        auto info = m_node->get_info();
        if (!info) {
            const Error e = info.error();
            lose(e.message);
            return tl::unexpected(e);
        }
        const FwDebugRom rom = parse_debug_rom(info->rom);
        if (!rom.is_debug_target()) {
            lose("its config ROM no longer has the debug entries");
            return make_error(Errc::Disconnected, "the 1394 debug target left the bus");
        }
        const uint64_t block = *rom.debug_block;
        auto raw = m_node->transact(fw::kReadBlock, block, kd1394::CONFIG_SIZE, {},
                                    info->generation, m_config.request_timeout);
        ++m_stats.transactions;
        if (!raw && raw.error().code == Errc::Resync) {
            ++m_stats.bus_resets;
            continue;
        }
        if (!raw || raw->size() != kd1394::CONFIG_SIZE) {
            const std::string why = raw ? "short read of DEBUG_1394_CONFIG" : raw.error().message;
            lose(why);
            return make_error(Errc::Disconnected, "1394: " + why);
        }
        const auto cfg =
            kd1394::decode_config(std::span<const uint8_t, kd1394::CONFIG_SIZE>(raw->data(), 32));
        if (cfg.tag != kd1394::CONFIG_TAG || cfg.id != m_config.channel) {
            lose("after a bus reset its DEBUG_1394_CONFIG no longer matches (tag " + hex(cfg.tag) +
                 ", channel " + std::to_string(cfg.id) + ")");
            return make_error(Errc::Disconnected, "the 1394 debug target changed");
        }
        if (block != m_config_address || cfg.send_packet != m_debug.send_packet ||
            cfg.receive_packet != m_debug.receive_packet) {
            notice("1394: the target's debug block moved (it restarted?): mailboxes now at " +
                   hex(cfg.send_packet) + " and " + hex(cfg.receive_packet));
        }
        m_config_address = block;
        m_debug = cfg;
        m_ahead.clear();
        m_generation = info->generation;
        m_node_id = info->node_id;
        ++m_epoch;
        spdlog::debug("1394: bus reset: generation {}, node {:#x}", m_generation, m_node_id);
        return {};
    }
    return make_error(Errc::Io, "the 1394 bus keeps resetting (" +
                                    std::to_string(m_config.reset_retries) +
                                    " resets in a row): check the cable and the other nodes");
}

Result<std::vector<uint8_t>> Ieee1394Port::transact(uint32_t tcode, uint64_t address,
                                                    uint32_t length,
                                                    std::span<const uint8_t> data) {
    for (int resets = 0;; ++resets) {
        if (!m_node) {
            return make_error(Errc::Disconnected, "the 1394 debug target is not connected");
        }
        if (tcode == fw::kReadBlock || tcode == fw::kWriteBlock) {
            m_stats.largest_request = std::max<uint64_t>(m_stats.largest_request, length);
        }
        auto r =
            m_node->transact(tcode, address, length, data, m_generation, m_config.request_timeout);
        ++m_stats.transactions;
        if (r) {
            return r;
        }
        if (r.error().code == Errc::Resync) {
            ++m_stats.bus_resets;
            if (resets >= m_config.reset_retries) {
                return make_error(Errc::Io, "the 1394 bus keeps resetting (" +
                                                std::to_string(resets) +
                                                " resets in a row): check the cable");
            }
            if (auto f = refresh(); !f) {
                return tl::unexpected(f.error());
            }
            continue;
        }
        if (r.error().code == Errc::Disconnected) {
            lose(r.error().message);
        }
        return r;
    }
}

Result<std::vector<uint8_t>> Ieee1394Port::read(uint64_t address, uint32_t size) {
    std::vector<uint8_t> out;
    out.reserve(size);
    const uint64_t end = address + size;
    uint64_t pos = address & ~uint64_t{3};
    const uint64_t aligned_end = (end + 3) & ~uint64_t{3};
    while (pos < aligned_end) {
        const auto n = static_cast<uint32_t>(std::min<uint64_t>(aligned_end - pos, m_payload));
        const uint32_t tcode = n == 4 ? fw::kReadQuadlet : fw::kReadBlock;
        auto r = transact(tcode, pos, n, {});
        if (!r) {
            return tl::unexpected(r.error());
        }
        // Keep the requested part of [pos, pos + n).
        const uint64_t from = std::max(pos, address);
        const uint64_t to = std::min(pos + n, end);
        if (to > from) {
            out.insert(out.end(), r->begin() + static_cast<std::ptrdiff_t>(from - pos),
                       r->begin() + static_cast<std::ptrdiff_t>(to - pos));
        }
        pos += n;
    }
    return out;
}

Result<void> Ieee1394Port::write(uint64_t address, std::span<const uint8_t> data) {
    if (address % 4 != 0) {
        return make_error(Errc::InvalidArgument, "1394 writes start on a quadlet");
    }
    std::vector<uint8_t> padded(data.begin(), data.end());
    padded.resize((padded.size() + 3) & ~size_t{3}, 0);
    size_t done = 0;
    while (done < padded.size()) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(padded.size() - done, m_payload));
        const uint32_t tcode = n == 4 ? fw::kWriteQuadlet : fw::kWriteBlock;
        auto r =
            transact(tcode, address + done, n, std::span<const uint8_t>(padded.data() + done, n));
        if (!r) {
            return tl::unexpected(r.error());
        }
        done += n;
    }
    return {};
}

Result<uint32_t> Ieee1394Port::read_u32(uint64_t address) {
    auto r = transact(fw::kReadQuadlet, address, 4, {});
    if (!r) {
        return tl::unexpected(r.error());
    }
    return le32(r->data());
}

Result<void> Ieee1394Port::write_u32(uint64_t address, uint32_t value) {
    std::vector<uint8_t> b;
    put32(b, value);
    auto r = transact(fw::kWriteQuadlet, address, 4, b);
    if (!r) {
        return tl::unexpected(r.error());
    }
    return {};
}

Result<std::vector<uint8_t>> Ieee1394Port::read_physical(uint64_t address, uint32_t size) {
    std::vector<uint8_t> out;
    if (!m_node) {
        return make_error(Errc::Disconnected, "the 1394 debug target is not connected");
    }
    if (address >= fw::PHYSICAL_DMA_LIMIT) {
        return out;
    }
    const uint64_t end = std::min<uint64_t>(address + size, fw::PHYSICAL_DMA_LIMIT);
    out.reserve(end - address);
    // Pieces start on a multiple of the largest power of two that fits in a request.
    uint64_t align = 4;
    while (align * 2 <= m_payload) {
        align *= 2;
    }
    uint64_t pos = address;
    while (pos < end) {
        if (!m_ahead.empty() && pos >= m_ahead_address && pos < m_ahead_address + m_ahead.size()) {
            const uint64_t from = pos - m_ahead_address;
            const uint64_t n = std::min<uint64_t>(end - pos, m_ahead.size() - from);
            out.insert(out.end(), m_ahead.begin() + static_cast<std::ptrdiff_t>(from),
                       m_ahead.begin() + static_cast<std::ptrdiff_t>(from + n));
            pos += n;
            continue;
        }
        m_ahead.clear();
        const uint64_t page_end = (pos & ~(kPage - 1)) + kPage;
        uint64_t start = pos & ~(align - 1);
        uint64_t stop = std::min(page_end, start + align);
        auto r = transact(stop - start == 4 ? fw::kReadQuadlet : fw::kReadBlock, start,
                          static_cast<uint32_t>(stop - start), {});
        ++m_stats.dma_requests;
        if (!r && r.error().code == Errc::Unreadable &&
            (start < (pos & ~uint64_t{3}) || stop > end)) {
            // The piece reached past what was asked for: ask for no more than that.
            start = pos & ~uint64_t{3};
            stop = (std::min(end, page_end) + 3) & ~uint64_t{3};
            r = transact(stop - start == 4 ? fw::kReadQuadlet : fw::kReadBlock, start,
                         static_cast<uint32_t>(stop - start), {});
            ++m_stats.dma_requests;
        }
        if (!r) {
            if (r.error().code == Errc::Unreadable) {
                break; // no RAM behind this page: what came so far is the answer
            }
            return tl::unexpected(r.error());
        }
        const uint64_t used_end = std::min(stop, end);
        out.insert(out.end(), r->begin() + static_cast<std::ptrdiff_t>(pos - start),
                   r->begin() + static_cast<std::ptrdiff_t>(used_end - start));
        if (stop > used_end) {
            m_ahead_address = used_end;
            m_ahead.assign(r->begin() + static_cast<std::ptrdiff_t>(used_end - start), r->end());
        }
        pos = used_end;
    }
    m_stats.dma_bytes += out.size();
    return out;
}

// ---------------------------------------------------------------------------------------------
// the mailbox link
// ---------------------------------------------------------------------------------------------

namespace {

class Ieee1394Link final : public PacketLink {
  public:
    explicit Ieee1394Link(std::shared_ptr<Ieee1394Port> port) : m_port(std::move(port)) {}

    Result<void> send(const KdPacket& packet) override {
        if (packet.is_control() && packet.type == kTypeAck) {
            return {}; // 1394 has no ACK packets
        }
        if (!packet.is_control() && packet.payload.size() > kd1394::MAX_PACKET) {
            return make_error(Errc::InvalidArgument, "KD packet larger than 4000 bytes");
        }
        if (!m_port->located()) {
            m_port->locate_if_due();
            if (!m_port->located()) {
                return {}; // nobody to hand it to: lost, as on a dead line
            }
        }
        std::vector<uint8_t> packet_bytes = kd1394::encode_header(packet);
        if (!packet.is_control()) {
            packet_bytes.insert(packet_bytes.end(), packet.payload.begin(), packet.payload.end());
        }
        m_port->forget_read_ahead();
        auto r = put_in_mailbox(packet_bytes, packet.is_control(), false);
        if (r) {
            ++m_stats.packets_out;
        }
        return r;
    }

    Result<void> send_breakin() override {
        if (!m_port->located()) {
            m_breakin_pending = true; // delivered once the target is found
            m_port->locate_if_due();
            if (!m_port->located()) {
                return {};
            }
            m_breakin_pending = false;
        }
        m_port->forget_read_ahead();
        const std::vector<uint8_t> b{kBreakIn};
        return put_in_mailbox(b, true, true);
    }

    Result<LinkEvent> receive(Millis timeout) override {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            if (!m_port->located()) {
                m_port->locate_if_due();
            }
            if (m_port->located()) {
                if (m_breakin_pending) {
                    m_breakin_pending = false;
                    if (auto b = send_breakin(); !b) {
                        spdlog::debug("1394: break-in: {}", b.error().message);
                    }
                }
                auto ev = poll_send_mailbox();
                if (ev && *ev) {
                    m_idle_since = Clock::now();
                    return std::move(**ev);
                }
                if (!ev) {
                    const Error& e = ev.error();
                    if (e.message != m_last_poll_error) {
                        m_last_poll_error = e.message;
                        spdlog::debug("1394: polling the send mailbox: {}", e.message);
                        if (e.code != Errc::Disconnected) {
                            m_port->notice("1394: " + e.message);
                        }
                    }
                } else {
                    m_last_poll_error.clear();
                }
            }
            const auto now = Clock::now();
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no packet from " + describe());
            }
            idle_wait(deadline);
        }
    }

    IdScheme id_scheme() const override { return IdScheme::Kd1394; }
    LinkStats stats() const override { return m_stats; }
    std::string describe() const override { return m_port->describe(); }
    uint32_t max_payload() const override { return kd1394::MAX_PACKET; }
    std::vector<std::string> take_notices() override { return m_port->take_notices(); }

  private:
    // Between polls of an empty mailbox: at once for a moment after traffic (a reply is on
    // its way), then every 0.2 ms, then every 2 ms.
    void idle_wait(Clock::time_point deadline) {
        const auto now = Clock::now();
        const auto idle = now - m_idle_since;
        Millis::rep us = 0;
        if (!m_port->located()) {
            us = 50000;
        } else if (idle > std::chrono::milliseconds(50)) {
            us = 2000;
        } else if (idle > std::chrono::milliseconds(2)) {
            us = 200;
        }
        if (us == 0) {
            return;
        }
        const auto wake = std::min(deadline, now + std::chrono::microseconds(us));
        std::this_thread::sleep_until(wake);
    }

    // Writes `bytes` as the receive mailbox's Packet (Length = its size) and sets it PENDING
    // once the target has taken what was there before.
    Result<void> put_in_mailbox(const std::vector<uint8_t>& bytes, bool control, bool breakin) {
        const uint64_t box = m_port->receive_mailbox();
        std::vector<uint8_t> body;
        put32(body, static_cast<uint32_t>(bytes.size()));
        body.insert(body.end(), bytes.begin(), bytes.end());
        for (int restart = 0; restart < kTransferRestarts; ++restart) {
            const uint64_t epoch = m_port->reset_epoch();
            const auto deadline = Clock::now() + m_port->config().mailbox_timeout;
            auto wait = std::chrono::microseconds(20);
            for (;;) {
                auto status = m_port->read_u32(box);
                if (!status) {
                    return tl::unexpected(status.error());
                }
                if (*status == kd1394::STATUS_SUCCESS) {
                    break;
                }
                if (m_last_body == body) {
                    // Our very packet, still waiting for the target: do not write it again.
                    if (!m_stuck_noticed &&
                        Clock::now() - m_last_written_at > m_port->config().mailbox_timeout) {
                        m_stuck_noticed = true;
                        m_port->notice(stuck_message(box, *status));
                    }
                    return {};
                }
                if (breakin && m_last_control) {
                    // A RESET the target has not taken (a running target may only look for
                    // break-ins): take it back and put the break-in there instead.
                    if (auto w = m_port->write_u32(box, kd1394::STATUS_SUCCESS); !w) {
                        return w;
                    }
                    break;
                }
                if (Clock::now() >= deadline) {
                    return make_error(Errc::Io, stuck_message(box, *status));
                }
                std::this_thread::sleep_for(wait);
                wait = std::min<std::chrono::microseconds>(wait * 2, std::chrono::milliseconds(2));
            }
            if (auto w = m_port->write(box + kd1394::RECEIVE_LENGTH, body); !w) {
                return w;
            }
            if (m_port->reset_epoch() != epoch) {
                continue; // a bus reset in the middle: write it all again
            }
            if (auto w = m_port->write_u32(box, kd1394::STATUS_PENDING); !w) {
                return w;
            }
            m_last_body = std::move(body);
            m_last_control = control;
            m_last_written_at = Clock::now();
            m_stuck_noticed = false;
            m_idle_since = m_last_written_at;
            m_stats.bytes_out += bytes.size();
            return {};
        }
        return make_error(Errc::Io, "the 1394 bus kept resetting while a packet was sent");
    }

    std::string stuck_message(uint64_t box, uint32_t status) const {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.1f",
                      static_cast<double>(m_port->config().mailbox_timeout.count()) / 1000.0);
        return "the target has not taken our last packet from its receive mailbox "
               "(DEBUG_1394_RECEIVE_PACKET at " +
               hex(box) + ", TransferStatus " + hex(status) + ") for " + secs +
               " s: it is not servicing the kernel debugger (hung with interrupts off, or "
               "booted without 'bcdedit /debug on')";
    }

    // One look at the send mailbox: nothing (not PENDING), or the packet it holds (taken out:
    // its status cleared), or a BadPacket event for one that does not check out.
    Result<std::optional<LinkEvent>> poll_send_mailbox() {
        const uint64_t box = m_port->send_mailbox();
        for (int restart = 0; restart < kTransferRestarts; ++restart) {
            const uint64_t epoch = m_port->reset_epoch();
            auto status = m_port->read_u32(box);
            if (!status) {
                return tl::unexpected(status.error());
            }
            if (*status != kd1394::STATUS_PENDING) {
                return std::optional<LinkEvent>{};
            }
            auto head = m_port->read(box, kd1394::SEND_PACKET);
            if (!head) {
                return tl::unexpected(head.error());
            }
            const uint8_t* h = head->data() + kd1394::SEND_HEADER;
            KdPacket p;
            p.leader = le32(h);
            p.type = le16(h + 4);
            const uint16_t count = le16(h + 6);
            p.id = le32(h + 8);
            const uint32_t checksum = le32(h + 12);
            const uint32_t length = le32(head->data() + kd1394::SEND_LENGTH);
            LinkEvent ev;
            ev.kind = LinkEventKind::Packet;
            if (p.leader != kDataLeader && p.leader != kControlLeader) {
                ev.kind = LinkEventKind::BadPacket;
                ev.detail = "leader " + hex(p.leader);
            } else if (count > kd1394::MAX_PACKET) {
                ev.kind = LinkEventKind::BadPacket;
                ev.detail = "ByteCount " + std::to_string(count) + " > 4000";
            } else if (p.leader == kDataLeader && count > 0) {
                auto payload = m_port->read(box + kd1394::SEND_PACKET, count);
                if (!payload) {
                    return tl::unexpected(payload.error());
                }
                p.payload = std::move(*payload);
            }
            if (m_port->reset_epoch() != epoch) {
                m_port->count_restart();
                continue; // a bus reset in the middle: read it again (still PENDING)
            }
            if (ev.kind == LinkEventKind::Packet && p.leader == kDataLeader &&
                kd_checksum(p.payload.data(), p.payload.size()) != checksum) {
                ev.kind = LinkEventKind::BadPacket;
                ev.detail = "bad checksum";
            }
            if (p.leader == kDataLeader && length != count) {
                spdlog::debug("1394: send mailbox Length {} differs from ByteCount {}", length,
                              count);
            }
            if (auto w = m_port->write_u32(box, kd1394::STATUS_SUCCESS); !w) {
                return tl::unexpected(w.error());
            }
            m_port->forget_read_ahead();
            m_stats.bytes_in += kd1394::SEND_PACKET + p.payload.size();
            if (ev.kind == LinkEventKind::BadPacket) {
                ++m_stats.bad_packets;
                spdlog::debug("1394: bad packet in the send mailbox: {}", ev.detail);
            } else {
                ++m_stats.packets_in;
            }
            ev.packet = std::move(p);
            return std::optional<LinkEvent>(std::move(ev));
        }
        return make_error(Errc::Io, "the 1394 bus kept resetting while a packet was read");
    }

    std::shared_ptr<Ieee1394Port> m_port;
    LinkStats m_stats;
    bool m_breakin_pending = false;
    std::vector<uint8_t> m_last_body; // what we last put in the receive mailbox
    bool m_last_control = false;
    bool m_stuck_noticed = false;
    Clock::time_point m_last_written_at{};
    Clock::time_point m_idle_since{};
    std::string m_last_poll_error;
};

} // namespace

std::unique_ptr<PacketLink> make_ieee1394_link(std::shared_ptr<Ieee1394Port> port) {
    return std::make_unique<Ieee1394Link>(std::move(port));
}

} // namespace kdcart::transport
