#include "engine/KernelInfo.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace kdcart::engine {

using namespace protocol;

namespace {
constexpr uint64_t kUserSharedData = 0xFFFFF78000000000ull;
// What one more request costs on KDCOM besides its data: the request (16 + 56 + 1 bytes), its
// ACK (16), the reply's header and trailer (16 + 56 + 1) and our ACK (16). Reads closer than
// that go out as one.
constexpr uint64_t kRequestCost = 178;

// Reads the ranges into the memory cache in as few requests as their layout allows: sorted,
// neighbours less than a request's cost apart merged. Unreadable bytes are the cache's business.
void prefetch(Memory& memory, std::vector<std::pair<uint64_t, uint64_t>> ranges) {
    std::erase_if(ranges, [](const auto& r) { return r.first == 0 || r.second == 0; });
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uint64_t, uint64_t>> spans; // [start, end)
    for (const auto& [address, size] : ranges) {
        const uint64_t end = address + size;
        if (!spans.empty() && address <= spans.back().second + kRequestCost &&
            address >= spans.back().first) {
            spans.back().second = std::max(spans.back().second, end);
        } else {
            spans.emplace_back(address, end);
        }
    }
    for (const auto& [start, end] : spans) {
        (void)memory.read_virtual(start, end - start);
    }
}

// KDDEBUGGER_DATA64's fields a stop and the connection banner need: the header, KernBase,
// BreakpointWithStatus (a break at the break site) and the NtBuildLab pointer. The rest (896
// bytes on Windows 10) is read when a command first needs it (KiBugcheckData: an unrequested
// break at the break site).
constexpr size_t kKdbgStopPrefix = offsetof(KDDEBUGGER_DATA64, BreakpointWithStatus) + 8;
constexpr size_t kKdbgBuildLab = offsetof(KDDEBUGGER_DATA64, NtBuildLab);

// Decodes the block from `bytes` (only `have` of them read), 'KDBG' checked; fields past the
// target's own Size, or not read, are zero.
std::optional<KDDEBUGGER_DATA64> decode_kdbg(std::vector<uint8_t> bytes,
                                             const std::vector<bool>& have) {
    if (bytes.size() < sizeof(DBGKD_DEBUG_DATA_HEADER64)) {
        return std::nullopt;
    }
    for (size_t i = 0; i < sizeof(DBGKD_DEBUG_DATA_HEADER64); ++i) {
        if (!have[i]) {
            return std::nullopt;
        }
    }
    auto hdr = kd_decode<DBGKD_DEBUG_DATA_HEADER64>(bytes);
    if (!hdr || hdr->OwnerTag != KDBG_TAG) {
        return std::nullopt;
    }
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (!have[i] || i >= hdr->Size) {
            bytes[i] = 0;
        }
    }
    return *kd_decode<KDDEBUGGER_DATA64>(bytes);
}

// Reads the block at `kdbg`: whole, or only the fields a stop needs.
std::optional<KDDEBUGGER_DATA64> read_kdbg(Memory& memory, uint64_t kdbg, bool whole) {
    std::vector<uint8_t> bytes(sizeof(KDDEBUGGER_DATA64), 0);
    std::vector<bool> have(bytes.size(), false);
    auto take = [&](size_t off, size_t len) {
        auto blk = memory.read_virtual(kdbg + off, len);
        if (!blk) {
            return;
        }
        const size_t readable = blk->readable_prefix();
        for (size_t i = 0; i < readable && off + i < bytes.size(); ++i) {
            bytes[off + i] = blk->bytes[i];
            have[off + i] = true;
        }
    };
    if (whole) {
        take(0, bytes.size());
    } else {
        prefetch(memory, {{kdbg, kKdbgStopPrefix}, {kdbg + kKdbgBuildLab, 8}});
        take(0, kKdbgStopPrefix);
        take(kKdbgBuildLab, 8);
    }
    return decode_kdbg(std::move(bytes), have);
}
} // namespace

Result<TargetInfo> learn_target(Target& target, Memory& memory, bool whole_kdbg) {
    auto v = target.version();
    if (!v) {
        return tl::unexpected(v.error());
    }
    TargetInfo info;
    info.version = *v;
    info.num_processors = target.num_processors();
    Result<uint64_t> kdbg = uint64_t{0};
    if (target.can_run()) {
        // A live target: the head of DebuggerDataList (its first entry is the KDBG block) and
        // PsLoadedModuleList's head (where the module walk starts) lie in the kernel's data, on
        // a small kernel next to each other: one read where they are close.
        prefetch(memory, {{v->DebuggerDataList, 8}, {v->PsLoadedModuleList, 16}});
        if (v->DebuggerDataList != 0) {
            kdbg = memory.read_u64(v->DebuggerDataList).value_or(0);
        }
    } else {
        kdbg = target.kddebugger_data_address();
        whole_kdbg = true; // a dump: reads cost nothing
    }
    if (kdbg && *kdbg != 0) {
        if (auto data = read_kdbg(memory, *kdbg, whole_kdbg)) {
            info.kddata = *data;
            info.kddata_found = true;
            info.kddata_address = *kdbg;
        }
    }
    if (info.kddata_found && info.kddata.NtBuildLab != 0) {
        // Build lab strings are ~40 characters: a short read first, the rest only without a NUL.
        std::vector<uint8_t> b;
        for (size_t want : {size_t{64}, size_t{128}}) {
            auto lab = memory.read_virtual(info.kddata.NtBuildLab, want);
            if (!lab) {
                break;
            }
            b = lab->bytes;
            b.resize(lab->readable_prefix());
            if (b.size() < want || std::find(b.begin(), b.end(), 0) != b.end()) {
                break;
            }
        }
        auto nul = std::find(b.begin(), b.end(), 0);
        info.build_lab.assign(b.begin(), nul);
    }
    // KUSER_SHARED_DATA: NtMajorVersion @0x26C, NtMinorVersion @0x270.
    auto usd = memory.read_virtual(kUserSharedData + 0x26C, 8);
    if (usd && usd->all_valid()) {
        info.nt_major = *kd_decode<uint32_t>(usd->bytes, 0);
        info.nt_minor = *kd_decode<uint32_t>(usd->bytes, 4);
    }
    return info;
}

} // namespace kdcart::engine

namespace kdcart::engine {

Result<TargetInfo> KernelInfo::basic() {
    if (!m_info) {
        if (!m_memory.accessible()) {
            return make_error(Errc::Unsupported, "the target is running");
        }
        auto info = learn_target(m_target, m_memory, false);
        if (!info) {
            return tl::unexpected(info.error());
        }
        m_info = std::move(*info);
        m_complete = !m_target.can_run() || !m_info->kddata_found;
    }
    m_info->num_processors = m_target.num_processors();
    return *m_info;
}

Result<TargetInfo> KernelInfo::get() {
    auto info = basic();
    if (!info) {
        return info;
    }
    if (!m_complete && m_memory.accessible()) {
        // The rest of KDDEBUGGER_DATA64, the first time a command needs it.
        m_complete = true;
        if (auto data = read_kdbg(m_memory, m_info->kddata_address, true)) {
            m_info->kddata = *data;
        }
    }
    return *m_info;
}

} // namespace kdcart::engine
