#include "engine/KernelInfo.h"

#include <algorithm>

namespace kdcart::engine {

using namespace protocol;

namespace {
constexpr uint64_t kUserSharedData = 0xFFFFF78000000000ull;
} // namespace

Result<TargetInfo> learn_target(Target& target, Memory& memory) {
    auto v = target.version();
    if (!v) {
        return tl::unexpected(v.error());
    }
    TargetInfo info;
    info.version = *v;
    info.num_processors = target.num_processors();
    auto kdbg = target.kddebugger_data_address();
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
