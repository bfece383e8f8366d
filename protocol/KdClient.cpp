#include "protocol/KdClient.h"

#include <cstdio>

namespace kdcart::protocol {

namespace {
bool nt_success(uint32_t status) {
    return static_cast<int32_t>(status) >= 0;
}
std::string status_text(uint32_t status) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", status);
    return buf;
}
} // namespace

DBGKD_MANIPULATE_STATE64 KdClient::make(uint32_t api, uint16_t processor) const {
    auto m = kd_zero<DBGKD_MANIPULATE_STATE64>();
    m.ApiNumber = api;
    m.ProcessorLevel = m_level;
    m.Processor = processor;
    return m;
}

void KdClient::count(uint32_t api, const transport::LinkStats& before) {
    const auto after = m_session.link_stats();
    auto& t = m_traffic[api];
    ++t.requests;
    t.bytes_out += after.bytes_out - before.bytes_out;
    t.bytes_in += after.bytes_in - before.bytes_in;
}

Result<ManipulateReply> KdClient::exchange(const DBGKD_MANIPULATE_STATE64& req,
                                           std::span<const uint8_t> data) {
    const auto before = m_session.link_stats();
    auto reply = m_session.request(req, data);
    count(req.ApiNumber, before);
    return reply;
}

Result<void> KdClient::send_only(const DBGKD_MANIPULATE_STATE64& req) {
    const auto before = m_session.link_stats();
    auto r = m_session.send_no_reply(req);
    count(req.ApiNumber, before);
    return r;
}

Result<DBGKD_GET_VERSION64> KdClient::get_version() {
    auto reply = exchange(make(DbgKdGetVersionApi, m_processor));
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "GetVersion failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    return reply->header.u.GetVersion64;
}

Result<ReadResult> KdClient::read_chunked(uint32_t api, uint64_t address, uint32_t size,
                                          uint32_t flags, uint16_t processor) {
    ReadResult out;
    out.bytes.reserve(size);
    const uint32_t max = m_session.max_transfer();
    while (out.bytes.size() < size) {
        const uint32_t want = std::min<uint32_t>(max, size - static_cast<uint32_t>(out.bytes.size()));
        auto req = make(api, processor);
        req.u.ReadMemory.TargetBaseAddress = address + out.bytes.size();
        req.u.ReadMemory.TransferCount = want;
        req.u.ReadMemory.ActualBytesRead = flags;
        auto reply = exchange(req);
        if (!reply) {
            return tl::unexpected(reply.error());
        }
        // Trust only bytes that are both reported and present.
        uint32_t got = std::min<uint32_t>(reply->header.u.ReadMemory.ActualBytesRead,
                                          static_cast<uint32_t>(reply->data.size()));
        got = std::min(got, want);
        out.bytes.insert(out.bytes.end(), reply->data.begin(), reply->data.begin() + got);
        if (got < want) {
            out.status = nt_success(reply->header.ReturnStatus) ? STATUS_UNSUCCESSFUL
                                                                : reply->header.ReturnStatus;
            break;
        }
    }
    return out;
}

Result<uint32_t> KdClient::write_chunked(uint32_t api, uint64_t address,
                                         std::span<const uint8_t> data, uint32_t flags,
                                         uint16_t processor) {
    uint32_t done = 0;
    const uint32_t max = m_session.max_transfer();
    while (done < data.size()) {
        const uint32_t n = std::min<uint32_t>(max, static_cast<uint32_t>(data.size()) - done);
        auto req = make(api, processor);
        req.u.WriteMemory.TargetBaseAddress = address + done;
        req.u.WriteMemory.TransferCount = n;
        req.u.WriteMemory.ActualBytesWritten = flags;
        auto reply = exchange(req, data.subspan(done, n));
        if (!reply) {
            return tl::unexpected(reply.error());
        }
        const uint32_t wrote = std::min(reply->header.u.WriteMemory.ActualBytesWritten, n);
        done += wrote;
        if (wrote < n || !nt_success(reply->header.ReturnStatus)) {
            break;
        }
    }
    return done;
}

Result<ReadResult> KdClient::read_virtual(uint64_t address, uint32_t size) {
    return read_chunked(DbgKdReadVirtualMemoryApi, address, size, 0, m_processor);
}

Result<uint32_t> KdClient::write_virtual(uint64_t address, std::span<const uint8_t> data) {
    return write_chunked(DbgKdWriteVirtualMemoryApi, address, data, 0, m_processor);
}

Result<ReadResult> KdClient::read_physical(uint64_t address, uint32_t size, PhysCache cache) {
    return read_chunked(DbgKdReadPhysicalMemoryApi, address, size, static_cast<uint32_t>(cache),
                        m_processor);
}

Result<uint32_t> KdClient::write_physical(uint64_t address, std::span<const uint8_t> data,
                                          PhysCache cache) {
    return write_chunked(DbgKdWritePhysicalMemoryApi, address, data, static_cast<uint32_t>(cache),
                         m_processor);
}

Result<CONTEXT> KdClient::get_context(uint16_t processor) {
    auto reply = exchange(make(DbgKdGetContextApi, processor));
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "GetContext failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    auto ctx = kd_decode<CONTEXT>(reply->data);
    if (!ctx) {
        return make_error(Errc::Malformed, "GetContext reply too short (" +
                                               std::to_string(reply->data.size()) + " bytes)");
    }
    return *ctx;
}

Result<void> KdClient::set_context(uint16_t processor, const CONTEXT& context) {
    auto req = make(DbgKdSetContextApi, processor);
    req.u.SetContext.ContextFlags = context.ContextFlags;
    std::vector<uint8_t> data;
    kd_append(data, context);
    auto reply = exchange(req, data);
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "SetContext failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    return {};
}

Result<std::vector<uint8_t>> KdClient::get_context_ex(uint16_t processor, uint32_t offset,
                                                      uint32_t count) {
    auto req = make(DbgKdGetContextExApi, processor);
    req.u.ContextEx.Offset = offset;
    req.u.ContextEx.ByteCount = count;
    auto reply = exchange(req);
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "GetContextEx failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    const auto& ex = reply->header.u.ContextEx;
    if (ex.Offset != offset || ex.ByteCount != count) {
        return make_error(Errc::Malformed, "GetContextEx reply for another range (" +
                                               std::to_string(ex.Offset) + "+" +
                                               std::to_string(ex.ByteCount) + ")");
    }
    if (ex.BytesCopied != count || reply->data.size() < count) {
        return make_error(Errc::Malformed, "GetContextEx reply too short (" +
                                               std::to_string(ex.BytesCopied) + " copied, " +
                                               std::to_string(reply->data.size()) + " bytes)");
    }
    return std::vector<uint8_t>(reply->data.begin(), reply->data.begin() + count);
}

Result<void> KdClient::set_context_ex(uint16_t processor, uint32_t offset,
                                      std::span<const uint8_t> bytes) {
    auto req = make(DbgKdSetContextExApi, processor);
    req.u.ContextEx.Offset = offset;
    req.u.ContextEx.ByteCount = static_cast<uint32_t>(bytes.size());
    auto reply = exchange(req, bytes);
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "SetContextEx failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    if (reply->header.u.ContextEx.BytesCopied != bytes.size()) {
        return make_error(Errc::Malformed,
                          "SetContextEx wrote " +
                              std::to_string(reply->header.u.ContextEx.BytesCopied) + " of " +
                              std::to_string(bytes.size()) + " bytes");
    }
    return {};
}

Result<ReadResult> KdClient::read_control_space(uint16_t processor, uint64_t index, uint32_t size) {
    return read_chunked(DbgKdReadControlSpaceApi, index, size, 0, processor);
}

Result<uint32_t> KdClient::write_control_space(uint16_t processor, uint64_t index,
                                               std::span<const uint8_t> data) {
    return write_chunked(DbgKdWriteControlSpaceApi, index, data, 0, processor);
}

Result<uint32_t> KdClient::write_breakpoint(uint64_t address) {
    auto req = make(DbgKdWriteBreakPointApi, m_processor);
    req.u.WriteBreakPoint.BreakPointAddress = address;
    auto reply = exchange(req);
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "WriteBreakPoint failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    return reply->header.u.WriteBreakPoint.BreakPointHandle;
}

Result<void> KdClient::restore_breakpoint(uint32_t handle) {
    auto req = make(DbgKdRestoreBreakPointApi, m_processor);
    req.u.RestoreBreakPoint.BreakPointHandle = handle;
    auto reply = exchange(req);
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "RestoreBreakPoint failed with status " +
                              status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    return {};
}

Result<void> KdClient::continue2(uint32_t status, const AMD64_DBGKD_CONTROL_SET& control) {
    auto req = make(DbgKdContinueApi2, m_processor);
    req.u.Continue2.ContinueStatus = status;
    req.u.Continue2.ControlSet = control;
    auto r = send_only(req);
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::continue1(uint32_t status) {
    auto req = make(DbgKdContinueApi, m_processor);
    req.u.Continue.ContinueStatus = status;
    auto r = send_only(req);
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::reboot() {
    auto r = send_only(make(DbgKdRebootApi, m_processor));
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::cause_bugcheck() {
    auto r = send_only(make(DbgKdCauseBugCheckApi, m_processor));
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::page_in(uint64_t address) {
    auto req = make(DbgKdPageInApi, m_processor);
    req.u.ReadMemory.TargetBaseAddress = address;
    auto reply = exchange(req);
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!nt_success(reply->header.ReturnStatus)) {
        return make_error(Errc::TargetStatus,
                          "PageIn failed with status " + status_text(reply->header.ReturnStatus),
                          reply->header.ReturnStatus);
    }
    return {};
}

Result<void> KdClient::switch_processor(uint16_t processor) {
    auto r = send_only(make(DbgKdSwitchProcessor, processor));
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

} // namespace kdcart::protocol
