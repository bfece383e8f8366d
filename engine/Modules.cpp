#include "engine/Modules.h"

#include <algorithm>

namespace kdcart::engine {

using namespace protocol;

namespace {
constexpr size_t kMaxModules = 4096;
constexpr uint32_t kMaxUnloaded = 50; // MI_UNLOADED_DRIVERS
constexpr uint32_t kUnloadedEntrySize = 0x28;
// What one more request costs on KDCOM besides its data (request, reply, two ACKs).
constexpr uint64_t kRequestCost = 178;

std::string narrow_utf16(const std::vector<uint8_t>& b) {
    std::string s;
    for (size_t i = 0; i + 1 < b.size(); i += 2) {
        uint16_t c = static_cast<uint16_t>(b[i] | (b[i + 1] << 8));
        s.push_back(c < 0x80 ? static_cast<char>(c) : '?');
    }
    return s;
}
} // namespace

std::string lower_ascii(std::string_view s) {
    std::string r(s);
    for (auto& c : r) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return r;
}

Result<std::vector<Module>> Modules::list(uint64_t head) {
    if (m_modules) {
        return *m_modules;
    }
    if (head == 0) {
        return make_error(Errc::NotFound, "the target reports no PsLoadedModuleList");
    }
    if (m_walk.head != head) {
        m_walk = {};
        m_walk.head = head;
    }
    for (;;) {
        auto more = walk_one();
        if (!more) {
            return tl::unexpected(more.error());
        }
        if (!*more) {
            break;
        }
    }
    m_modules = m_walk.mods;
    return *m_modules;
}

const Module* Modules::find_walking(uint64_t head, uint64_t address) {
    if (m_modules || head == 0) {
        return find_by_address(address);
    }
    if (m_walk.head != head) {
        m_walk = {};
        m_walk.head = head;
    }
    for (;;) {
        if (const Module* m = find_by_address(address)) {
            return m;
        }
        auto more = walk_one();
        if (!more || !*more) {
            break;
        }
    }
    if (m_walk.started && m_walk.next == 0) {
        m_modules = m_walk.mods; // walked to the end
    }
    return nullptr;
}

Result<bool> Modules::walk_one() {
    auto rd = [&](uint64_t va, size_t n) -> std::optional<std::vector<uint8_t>> {
        auto m = m_memory.read_virtual(va, n);
        if (!m || !m->all_valid()) {
            return std::nullopt;
        }
        return m->bytes;
    };
    const uint64_t head = m_walk.head;
    if (!m_walk.started) {
        auto first = rd(head, 8);
        if (!first) {
            return make_error(Errc::Unreadable, "PsLoadedModuleList is not readable");
        }
        m_walk.started = true;
        m_walk.next = *kd_decode<uint64_t>(*first);
    }
    const uint64_t entry = m_walk.next;
    if (entry == head || entry == 0 || m_walk.mods.size() >= kMaxModules) {
        m_walk.next = 0;
        return false;
    }
    auto raw = rd(entry, sizeof(KLDR_DATA_TABLE_ENTRY64));
    if (!raw) {
        m_walk.next = 0;
        return false; // a broken list ends the walk; what we have is still useful
    }
    auto e = *kd_decode<KLDR_DATA_TABLE_ENTRY64>(*raw);
    Module m;
    m.base = e.DllBase;
    m.size = e.SizeOfImage;
    m.checksum = e.CheckSum;
    m.timestamp = e.TimeDateStamp;
    m.entry_point = e.EntryPoint;
    // The two names usually lie together (BaseDllName inside FullDllName's buffer, or side by
    // side): one request for both when they are closer than a request costs.
    auto span_of = [](const UNICODE_STRING64& u) -> std::pair<uint64_t, uint64_t> {
        if (u.Length == 0 || u.Buffer == 0) {
            return {0, 0};
        }
        return {u.Buffer, u.Buffer + std::min<uint16_t>(u.Length, 1024)};
    };
    const auto base_span = span_of(e.BaseDllName);
    const auto full_span = span_of(e.FullDllName);
    if (base_span.first && full_span.first) {
        const uint64_t lo = std::min(base_span.first, full_span.first);
        const uint64_t hi = std::max(base_span.second, full_span.second);
        const uint64_t used =
            (base_span.second - base_span.first) + (full_span.second - full_span.first);
        if (hi - lo <= used + kRequestCost) {
            (void)m_memory.read_virtual(lo, hi - lo); // into the cache; unreadable bytes too
        }
    }
    auto str = [&](const std::pair<uint64_t, uint64_t>& span) -> std::string {
        if (span.first == 0) {
            return {};
        }
        auto b = rd(span.first, span.second - span.first);
        return b ? narrow_utf16(*b) : std::string();
    };
    m.file_name = str(base_span);
    m.full_path = str(full_span);
    std::string stem = m.file_name.substr(0, m.file_name.rfind('.'));
    m.name = m_walk.mods.empty() ? "nt" : lower_ascii(stem);
    m_walk.mods.push_back(std::move(m));
    m_walk.entries.push_back(entry);
    uint64_t next = e.InLoadOrderLinks.Flink;
    if (std::find(m_walk.entries.begin(), m_walk.entries.end(), next) != m_walk.entries.end()) {
        next = 0; // a loop in the list
    }
    m_walk.next = next == head ? 0 : next;
    return true;
}

Result<std::vector<UnloadedModule>> Modules::unloaded(const TargetInfo& info) {
    if (!info.kddata_found || info.kddata.MmUnloadedDrivers == 0) {
        return make_error(Errc::NotFound, "the target does not say where MmUnloadedDrivers is");
    }
    auto array = m_memory.read_u64(info.kddata.MmUnloadedDrivers);
    if (!array) {
        return make_error(Errc::Unreadable, "MmUnloadedDrivers is not readable");
    }
    std::vector<UnloadedModule> out;
    if (*array == 0) {
        return out; // no driver has been unloaded yet
    }
    uint32_t last = 0;
    if (info.kddata.MmLastUnloadedDriver != 0) {
        last = m_memory.read_u32(info.kddata.MmLastUnloadedDriver).value_or(0);
    }
    auto table = m_memory.read_virtual(*array, kMaxUnloaded * kUnloadedEntrySize);
    if (!table) {
        return tl::unexpected(table.error());
    }
    // The array is a ring: MmLastUnloadedDriver is the next slot to fill. Oldest first.
    for (uint32_t k = 0; k < kMaxUnloaded; ++k) {
        const uint32_t i = (last % kMaxUnloaded + k) % kMaxUnloaded;
        const size_t off = static_cast<size_t>(i) * kUnloadedEntrySize;
        bool ok = true;
        for (size_t b = off; b < off + kUnloadedEntrySize; ++b) {
            ok = ok && table->valid[b];
        }
        if (!ok) {
            continue;
        }
        std::span<const uint8_t> e(table->bytes.data() + off, kUnloadedEntrySize);
        const uint16_t len = *kd_decode<uint16_t>(e, 0);
        const uint64_t buffer = *kd_decode<uint64_t>(e, 8);
        UnloadedModule u;
        u.start = *kd_decode<uint64_t>(e, 0x10);
        u.end = *kd_decode<uint64_t>(e, 0x18);
        u.time = *kd_decode<uint64_t>(e, 0x20);
        if (buffer == 0 || len == 0 || u.start == 0) {
            continue;
        }
        auto name = m_memory.read_virtual(buffer, std::min<uint16_t>(len, 512));
        if (name) {
            name->bytes.resize(name->readable_prefix() & ~size_t{1});
            u.name = narrow_utf16(name->bytes);
        }
        out.push_back(std::move(u));
    }
    return out;
}

const Module* Modules::find_by_address(uint64_t address) const {
    for (const auto& m : m_modules ? *m_modules : m_walk.mods) {
        if (address >= m.base && address < m.end()) {
            return &m;
        }
    }
    return nullptr;
}

const Module* Modules::find_by_name(std::string_view name) const {
    const std::string want = lower_ascii(name);
    for (const auto& m : m_modules ? *m_modules : m_walk.mods) {
        if (m.name == want || lower_ascii(m.file_name) == want) {
            return &m;
        }
    }
    return nullptr;
}

void Modules::set_symbol_state(uint64_t base, Module::SymbolState state) {
    for (auto& m : m_walk.mods) {
        if (m.base == base) {
            m.symbols = state;
        }
    }
    if (!m_modules) {
        return;
    }
    for (auto& m : *m_modules) {
        if (m.base == base) {
            m.symbols = state;
        }
    }
}

} // namespace kdcart::engine
