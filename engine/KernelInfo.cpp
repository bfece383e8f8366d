#include "engine/KernelInfo.h"

#include <algorithm>
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
} // namespace

Result<TargetInfo> learn_target(Target& target, Memory& memory) {
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
    }
    if (kdbg && *kdbg != 0) {
        auto blk = memory.read_virtual(*kdbg, sizeof(KDDEBUGGER_DATA64));
        if (blk) {
            const size_t readable = blk->readable_prefix();
            if (readable >= sizeof(DBGKD_DEBUG_DATA_HEADER64)) {
                auto hdr = kd_decode<DBGKD_DEBUG_DATA_HEADER64>(blk->bytes);
                if (hdr && hdr->OwnerTag == KDBG_TAG) {
                    // Fields past the target's own Size (or past what we read) stay zero.
                    auto bytes = blk->bytes;
                    const size_t valid = std::min<size_t>(readable, hdr->Size);
                    for (size_t i = valid; i < bytes.size(); ++i) {
                        bytes[i] = 0;
                    }
                    info.kddata = *kd_decode<KDDEBUGGER_DATA64>(bytes);
                    info.kddata_found = true;
                    info.kddata_address = *kdbg;
                }
            }
        }
    }
    if (info.kddata_found && info.kddata.NtBuildLab != 0) {
        auto lab = memory.read_virtual(info.kddata.NtBuildLab, 128);
        if (lab) {
            auto& b = lab->bytes;
            b.resize(lab->readable_prefix());
            auto nul = std::find(b.begin(), b.end(), 0);
            info.build_lab.assign(b.begin(), nul);
        }
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

Result<TargetInfo> KernelInfo::get() {
    if (!m_info) {
        if (!m_memory.accessible()) {
            return make_error(Errc::Unsupported, "the target is running");
        }
        auto info = learn_target(m_target, m_memory);
        if (!info) {
            return tl::unexpected(info.error());
        }
        m_info = std::move(*info);
    }
    m_info->num_processors = m_target.num_processors();
    return *m_info;
}

} // namespace kdcart::engine
