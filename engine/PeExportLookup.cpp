#include "engine/PeExportLookup.h"
#include "engine/ByteLoad.h"

#include <algorithm>
#include <cstring>

namespace kdcart::engine {

namespace {

constexpr uint32_t kFirstNameRead = 64; // most export names are shorter
// What one more request costs on KDCOM besides its data (request, reply, two ACKs).
constexpr uint64_t kRequestCost = 178;

// One NUL-terminated name at `rva`, read in a short first request and longer only when needed.
std::optional<std::string> read_name(const ImageReader& read, uint32_t rva) {
    std::string name;
    uint32_t want = kFirstNameRead;
    for (;;) {
        const auto b = read(rva, want);
        const auto nul = std::find(b.begin(), b.end(), 0);
        if (nul != b.end() || b.size() >= kMaxExportName) {
            const size_t n = std::min<size_t>(static_cast<size_t>(nul - b.begin()), kMaxExportName);
            return std::string(b.begin(), b.begin() + static_cast<long>(n));
        }
        if (b.size() < want || want >= kMaxExportName) {
            return std::nullopt; // unreadable before its end
        }
        want = kMaxExportName;
    }
}

} // namespace

Result<std::optional<ExportSymbol>> find_pe_export(uint64_t base, ExportDirectorySpan span,
                                                   uint32_t rva, const ImageReader& read) {
    if (span.rva == 0 || span.size == 0) {
        return std::optional<ExportSymbol>{};
    }
    const auto dir = read(span.rva, 40);
    const auto n_funcs = load<uint32_t>(dir, 20);
    const auto n_names = load<uint32_t>(dir, 24);
    const auto funcs_rva = load<uint32_t>(dir, 28);
    const auto names_rva = load<uint32_t>(dir, 32);
    const auto ords_rva = load<uint32_t>(dir, 36);
    if (!n_funcs || !n_names || !funcs_rva || !names_rva || !ords_rva || *n_funcs > kMaxExports ||
        *n_names > kMaxExports) {
        return make_error(Errc::Malformed, "bad export directory");
    }
    const uint64_t funcs_len = uint64_t{*n_funcs} * 4;
    const uint64_t ords_len = uint64_t{*n_names} * 2;
    // The address and ordinal tables usually lie together with the name pointer table between
    // them: one request over the three when the gap costs less than a request of its own (and
    // the name pointer needed later then comes from the cache).
    {
        const uint64_t lo = std::min<uint64_t>(*funcs_rva, *ords_rva);
        const uint64_t hi = std::max<uint64_t>(*funcs_rva + funcs_len, *ords_rva + ords_len);
        const bool npt_inside = *names_rva >= lo && *names_rva + uint64_t{*n_names} * 4 <= hi;
        const uint64_t separate =
            funcs_len + ords_len + 2 * kRequestCost + (npt_inside ? 4 + kRequestCost : 0);
        if (hi - lo + kRequestCost < separate && hi <= UINT32_MAX) {
            (void)read(static_cast<uint32_t>(lo), static_cast<uint32_t>(hi - lo));
        }
    }
    const auto funcs = read(*funcs_rva, static_cast<uint32_t>(funcs_len));
    const auto ords = read(*ords_rva, static_cast<uint32_t>(ords_len));
    if (funcs.size() < funcs_len || ords.size() < ords_len) {
        return make_error(Errc::Unreadable, "export tables not readable");
    }
    // The best address at or below rva among named, non-forwarded entries; every name index
    // pointing at it.
    const uint64_t dir_end = uint64_t{span.rva} + span.size;
    uint32_t best = 0;
    bool found = false;
    std::vector<uint32_t> at_best;
    for (uint32_t i = 0; i < *n_names; ++i) {
        const uint16_t ord = *load<uint16_t>(ords, i * 2u);
        if (ord >= *n_funcs) {
            continue;
        }
        const uint32_t fn = *load<uint32_t>(funcs, ord * 4u);
        if (fn == 0 || (fn >= span.rva && fn < dir_end) || fn > rva) {
            continue;
        }
        if (!found || fn > best) {
            best = fn;
            found = true;
            at_best.clear();
        }
        if (fn == best) {
            at_best.push_back(i);
        }
    }
    if (!found) {
        return std::optional<ExportSymbol>{};
    }
    std::optional<std::string> smallest;
    for (uint32_t i : at_best) {
        const auto ptr = load<uint32_t>(read(*names_rva + i * 4u, 4), 0);
        if (!ptr) {
            return make_error(Errc::Unreadable, "export tables not readable");
        }
        auto name = read_name(read, *ptr);
        if (!name) {
            return make_error(Errc::Unreadable, "export name not readable");
        }
        if (!smallest || *name < *smallest) {
            smallest = std::move(*name);
        }
    }
    return std::optional<ExportSymbol>(ExportSymbol{std::move(*smallest), base + best});
}

} // namespace kdcart::engine
