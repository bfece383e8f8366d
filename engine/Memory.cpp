#include "engine/Memory.h"
#include "engine/HexText.h"

#include "engine/ReadVerifier.h"

#include <algorithm>
#include <cstring>

namespace kdcart::engine {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kMaxRange = 256ull * 1024 * 1024;
constexpr size_t kMaxCachedPages = 2048; // 8 MiB of target memory

} // namespace

Result<MemoryBlock> Memory::read_virtual(uint64_t address, size_t size) {
    if (m_running) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (size > kMaxRange || address + size < address) {
        return make_error(Errc::InvalidArgument, "range too large");
    }
    // The cache is bounded: past kMaxCachedPages it starts over (long reads stream past it,
    // see MemoryStream.h; this keeps a run of many small reads from holding everything).
    if (m_pages.size() > kMaxCachedPages) {
        m_pages.clear();
    }
    // Collect the byte ranges no cached page can answer, page by page, coalescing neighbours.
    std::vector<std::pair<uint64_t, uint64_t>> missing; // [start, end)
    const uint64_t end = address + size;
    for (uint64_t page = address & ~(kPage - 1); page < end; page += kPage) {
        Page& pg = m_pages[page];
        const uint64_t lo = std::max(address, page) - page;
        const uint64_t hi = std::min(end, page + kPage) - page;
        for (uint64_t off = lo; off < hi; ++off) {
            if (pg.valid[off] || off >= pg.unreadable_from) {
                continue;
            }
            const uint64_t va = page + off;
            if (!missing.empty() && missing.back().second == va) {
                missing.back().second = va + 1;
            } else {
                missing.emplace_back(va, va + 1);
            }
        }
        if (page + kPage < page) {
            break; // top of the address space
        }
    }
    // A link that fails half-way (kLinkFailedStatus, or an error after something came) ends
    // the read: what came is shown, the rest is left unread (not marked unreadable).
    bool link_failed = false;
    bool got_any = false;
    for (auto [start, stop] : missing) {
        if (link_failed) {
            break;
        }
        uint64_t cur = start;
        while (cur < stop) {
            const uint64_t len = stop - cur;
            auto r = m_target.read_virtual(
                cur, static_cast<uint32_t>(std::min<uint64_t>(len, 1u << 30)));
            if (!r) {
                if (got_any && r.error().code == Errc::Timeout) {
                    link_failed = true;
                    break;
                }
                return tl::unexpected(r.error());
            }
            const auto& got = r->bytes;
            got_any = got_any || !got.empty();
            for (size_t i = 0; i < got.size(); ++i) {
                const uint64_t va = cur + i;
                Page& pg = m_pages[va & ~(kPage - 1)];
                pg.data[va & (kPage - 1)] = got[i];
                pg.valid[va & (kPage - 1)] = true;
            }
            cur += got.size();
            if (cur >= stop) {
                break;
            }
            if (r->status == kLinkFailedStatus) {
                link_failed = true;
                break;
            }
            // The byte at `cur` failed: the rest of its page is not readable. Go on at the next
            // page, which may be present.
            Page& bad = m_pages[cur & ~(kPage - 1)];
            bad.unreadable_from = std::min<uint32_t>(bad.unreadable_from,
                                                     static_cast<uint32_t>(cur & (kPage - 1)));
            const uint64_t next = (cur & ~(kPage - 1)) + kPage;
            if (next <= cur) {
                break;
            }
            cur = next;
        }
    }
    MemoryBlock out;
    out.address = address;
    out.bytes.resize(size);
    out.valid.resize(size);
    for (size_t i = 0; i < size; ++i) {
        const uint64_t va = address + i;
        const Page& pg = m_pages[va & ~(kPage - 1)];
        const uint64_t off = va & (kPage - 1);
        if (pg.valid[off]) {
            out.bytes[i] = pg.data[off];
            out.valid[i] = true;
        }
    }
    return out;
}

void Memory::seed_virtual(uint64_t address, std::span<const uint8_t> bytes) {
    if (m_running) {
        return;
    }
    for (size_t i = 0; i < bytes.size(); ++i) {
        const uint64_t va = address + i;
        if (va < address) {
            break; // top of the address space
        }
        Page& pg = m_pages[va & ~(kPage - 1)];
        pg.data[va & (kPage - 1)] = bytes[i];
        pg.valid[va & (kPage - 1)] = true;
    }
}

Result<size_t> Memory::write_virtual(uint64_t address, std::span<const uint8_t> data) {
    if (m_running) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    auto r = m_target.write_virtual(address, data);
    for (uint64_t page = address & ~(kPage - 1); page < address + data.size(); page += kPage) {
        m_pages.erase(page);
    }
    if (!r) {
        return tl::unexpected(r.error());
    }
    return static_cast<size_t>(*r);
}

Result<MemoryBlock> Memory::read_physical(uint64_t address, size_t size) {
    if (m_running) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    if (size > kMaxRange || address + size < address) {
        return make_error(Errc::InvalidArgument, "range too large");
    }
    MemoryBlock out;
    out.address = address;
    out.bytes.resize(size);
    out.valid.resize(size);
    uint64_t cur = address;
    const uint64_t end = address + size;
    while (cur < end) {
        auto r = m_target.read_physical(cur, static_cast<uint32_t>(end - cur));
        if (!r) {
            if (cur != address && r.error().code == Errc::Timeout) {
                break; // the link failed half-way: show what came
            }
            return tl::unexpected(r.error());
        }
        for (size_t i = 0; i < r->bytes.size() && cur - address + i < size; ++i) {
            out.bytes[cur - address + i] = r->bytes[i];
            out.valid[cur - address + i] = true;
        }
        cur += r->bytes.size();
        if (cur < end && r->status == kLinkFailedStatus) {
            break;
        }
        if (cur < end) {
            cur = (cur & ~(kPage - 1)) + kPage; // skip the hole's page
        }
    }
    return out;
}

Result<size_t> Memory::write_physical(uint64_t address, std::span<const uint8_t> data) {
    if (m_running) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    m_pages.clear(); // a physical write can change any virtual view
    auto r = m_target.write_physical(address, data);
    if (!r) {
        return tl::unexpected(r.error());
    }
    return static_cast<size_t>(*r);
}

Result<Translation> Memory::translate(uint64_t va, uint16_t cpu) {
    if (!is_canonical(va)) {
        return make_error(Errc::InvalidArgument, "non-canonical address " + hex_0x(va));
    }
    if (m_running) {
        return make_error(Errc::Unsupported, "the target is running");
    }
    auto cr3 = m_target.page_directory(cpu);
    if (!cr3) {
        return tl::unexpected(cr3.error());
    }
    return translate_va(va, *cr3, [this](uint64_t pa) -> std::optional<uint64_t> {
        auto r = m_target.read_physical(pa, 8);
        if (!r || r->bytes.size() != 8) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, r->bytes.data(), 8);
        return v;
    });
}

std::optional<uint64_t> Memory::read_u64(uint64_t address) {
    auto m = read_virtual(address, 8);
    if (!m || !m->all_valid()) {
        return std::nullopt;
    }
    uint64_t v = 0;
    std::memcpy(&v, m->bytes.data(), 8);
    return v;
}

std::optional<uint32_t> Memory::read_u32(uint64_t address) {
    auto m = read_virtual(address, 4);
    if (!m || !m->all_valid()) {
        return std::nullopt;
    }
    uint32_t v = 0;
    std::memcpy(&v, m->bytes.data(), 4);
    return v;
}

std::optional<uint16_t> Memory::read_u16(uint64_t address) {
    auto m = read_virtual(address, 2);
    if (!m || !m->all_valid()) {
        return std::nullopt;
    }
    uint16_t v = 0;
    std::memcpy(&v, m->bytes.data(), 2);
    return v;
}

} // namespace kdcart::engine
