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

Result<DBGKD_GET_VERSION64> KdClient::get_version() {
    auto reply = m_session.request(make(DbgKdGetVersionApi, m_processor));
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
        auto reply = m_session.request(req);
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
        auto reply = m_session.request(req, data.subspan(done, n));
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
    auto reply = m_session.request(make(DbgKdGetContextApi, processor));
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
    auto reply = m_session.request(req, data);
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
    auto reply = m_session.request(req);
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
    auto reply = m_session.request(req);
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
    auto r = m_session.send_no_reply(req);
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::continue1(uint32_t status) {
    auto req = make(DbgKdContinueApi, m_processor);
    req.u.Continue.ContinueStatus = status;
    auto r = m_session.send_no_reply(req);
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::reboot() {
    auto r = m_session.send_no_reply(make(DbgKdRebootApi, m_processor));
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::cause_bugcheck() {
    auto r = m_session.send_no_reply(make(DbgKdCauseBugCheckApi, m_processor));
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

Result<void> KdClient::page_in(uint64_t address) {
    auto req = make(DbgKdPageInApi, m_processor);
    req.u.ReadMemory.TargetBaseAddress = address;
    auto reply = m_session.request(req);
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
    auto r = m_session.send_no_reply(make(DbgKdSwitchProcessor, processor));
    if (r) {
        m_session.on_resumed();
    }
    return r;
}

} // namespace kdcart::protocol
