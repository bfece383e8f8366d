#include "engine/LiveTarget.h"

#include <spdlog/spdlog.h>

namespace kdcart::engine {

using namespace protocol;

LiveTarget::LiveTarget(std::unique_ptr<transport::PacketLink> link, EngineDelegate* delegate,
                       SessionOptions options)
    : m_delegate(delegate) {
    SessionDelegate* self = this;
    m_session = std::make_unique<KdSession>(std::move(link), self, options);
    m_client = std::make_unique<KdClient>(*m_session);
    m_reads = std::make_unique<ReadVerifier>(*m_session,
                                             [this](std::string_view t) { on_link_notice(t); });
}

LiveTarget::~LiveTarget() = default;

void LiveTarget::on_debug_print(std::string_view text) {
    if (m_delegate) {
        m_delegate->on_debug_print(text);
    }
}

std::string LiveTarget::on_debug_prompt(std::string_view prompt) {
    return m_delegate ? m_delegate->on_debug_prompt(prompt) : std::string();
}

void LiveTarget::on_link_notice(std::string_view text) {
    if (m_delegate) {
        m_delegate->on_notice(text);
    }
}

void LiveTarget::set_stop_processor(uint16_t cpu, uint16_t level, uint32_t count) {
    m_processor = cpu;
    m_num_processors = count ? count : 1;
    m_client->set_current_processor(cpu, level);
}

Result<DBGKD_GET_VERSION64> LiveTarget::version() {
    if (!m_version) {
        auto v = m_client->get_version();
        if (!v) {
            return tl::unexpected(v.error());
        }
        m_version = *v;
    }
    return *m_version;
}

Result<uint64_t> LiveTarget::kddebugger_data_address() {
    auto v = version();
    if (!v) {
        return tl::unexpected(v.error());
    }
    if (v->DebuggerDataList == 0) {
        return uint64_t{0};
    }
    // DebuggerDataList is the head of a list whose first entry is the KDBG block.
    auto head = read_virtual(v->DebuggerDataList, 8);
    if (!head) {
        return tl::unexpected(head.error());
    }
    if (head->bytes.size() != 8) {
        return uint64_t{0};
    }
    return *kd_decode<uint64_t>(head->bytes);
}

Result<ReadResult> LiveTarget::read_virtual(uint64_t address, uint32_t size) {
    return m_reads->read([this](uint64_t a, uint32_t n) { return m_client->read_virtual(a, n); },
                         address, size);
}

Result<ReadResult> LiveTarget::read_physical_packets(uint64_t address, uint32_t size) {
    return m_reads->read([this](uint64_t a, uint32_t n) { return m_client->read_physical(a, n); },
                         address, size);
}

Result<uint32_t> LiveTarget::write_virtual(uint64_t address, std::span<const uint8_t> data) {
    return m_client->write_virtual(address, data);
}

Result<ReadResult> LiveTarget::read_physical(uint64_t address, uint32_t size) {
    if (!m_physical_reader) {
        return read_physical_packets(address, size);
    }
    ReadResult out;
    if (auto dma = m_physical_reader(address, size)) {
        out.bytes = std::move(*dma);
    }
    if (out.bytes.size() >= size) {
        out.bytes.resize(size);
        return out;
    }
    const auto done = static_cast<uint32_t>(out.bytes.size());
    auto rest = read_physical_packets(address + done, size - done);
    if (!rest) {
        return done != 0 ? Result<ReadResult>(std::move(out)) : rest;
    }
    out.bytes.insert(out.bytes.end(), rest->bytes.begin(), rest->bytes.end());
    out.status = rest->status;
    return out;
}

Result<uint32_t> LiveTarget::write_physical(uint64_t address, std::span<const uint8_t> data) {
    return m_client->write_physical(address, data);
}

Result<CONTEXT> LiveTarget::get_context(uint16_t cpu) {
    return m_client->get_context(cpu);
}

Result<void> LiveTarget::set_context(uint16_t cpu, const CONTEXT& context) {
    return m_client->set_context(cpu, context);
}

bool LiveTarget::context_ex_refused(const char* api, const Error& error) {
    if (error.code != Errc::TargetStatus && error.code != Errc::Malformed) {
        return false; // the link failed: nothing learnt about the target
    }
    m_context_ex = false;
    spdlog::debug("engine: {} refused ({}): GetContext/SetContext for the rest of the session", api,
                  error.message);
    return true;
}

Result<Target::ContextBytes> LiveTarget::get_context_bytes(uint16_t cpu, uint32_t offset,
                                                           uint32_t size) {
    if (m_context_ex) {
        auto part = m_client->get_context_ex(cpu, offset, size);
        if (part) {
            return ContextBytes{offset, std::move(*part)};
        }
        if (!context_ex_refused("GetContextEx", part.error())) {
            return tl::unexpected(part.error());
        }
    }
    auto ctx = m_client->get_context(cpu);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    ContextBytes out;
    kd_append(out.bytes, *ctx);
    return out;
}

Result<void> LiveTarget::set_context_bytes(uint16_t cpu, uint32_t offset,
                                           std::span<const uint8_t> bytes) {
    if (m_context_ex) {
        auto r = m_client->set_context_ex(cpu, offset, bytes);
        if (r || !context_ex_refused("SetContextEx", r.error())) {
            return r;
        }
    }
    return make_error(Errc::Unsupported, "the target takes whole contexts only");
}

Result<ReadResult> LiveTarget::read_control_space(uint16_t cpu, uint64_t index, uint32_t size) {
    return m_reads->read(
        [this, cpu](uint64_t i, uint32_t n) { return m_client->read_control_space(cpu, i, n); },
        index, size, /*split=*/false);
}

Result<uint32_t> LiveTarget::write_control_space(uint16_t cpu, uint64_t index,
                                                 std::span<const uint8_t> data) {
    return m_client->write_control_space(cpu, index, data);
}

Result<uint64_t> LiveTarget::page_directory(uint16_t cpu) {
    if (auto it = m_cr3.find(cpu); it != m_cr3.end()) {
        return it->second;
    }
    auto special = read_control_space(cpu, AMD64_DEBUG_CONTROL_SPACE_KSPECIAL,
                                      KSPECIAL_REGISTERS_WINDBG_SIZE);
    if (!special) {
        return tl::unexpected(special.error());
    }
    auto cr3 = kd_decode<uint64_t>(special->bytes, offsetof(KSPECIAL_REGISTERS, Cr3));
    if (!cr3) {
        return make_error(Errc::Unreadable, "control space (KSPECIAL_REGISTERS) not readable");
    }
    m_cr3[cpu] = *cr3;
    return *cr3;
}

} // namespace kdcart::engine
