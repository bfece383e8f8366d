#include "engine/Symbols.h"

#include <algorithm>

namespace kdcart::engine {

const std::vector<ExportSymbol>* Symbols::exports_for(const Module& m) {
    if (auto it = m_exports.find(m.base); it != m_exports.end()) {
        return &it->second;
    }
    if (!m_memory.accessible()) {
        return nullptr; // a running target: only what is already known
    }
    auto reader = [&](uint32_t rva, uint32_t size) -> std::vector<uint8_t> {
        if (size > 16 * 1024 * 1024 || rva >= m.size) {
            return {};
        }
        auto blk = m_memory.read_virtual(m.base + rva, size);
        if (!blk) {
            return {};
        }
        auto n = blk->readable_prefix();
        blk->bytes.resize(n);
        return blk->bytes;
    };
    auto ex = read_pe_exports(m.base, reader);
    auto& slot = m_exports[m.base];
    if (ex) {
        slot = std::move(*ex);
    }
    m_modules.set_symbol_state(m.base, Module::SymbolState::Exports);
    return &slot;
}

std::optional<SymbolMatch> Symbols::symbolize(uint64_t address) {
    const Module* found = m_modules.find_by_address(address);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found; // exports_for may touch the list
    SymbolMatch match;
    match.module = m.name;
    match.address = m.base;
    match.displacement = address - m.base;
    const auto* ex = exports_for(m);
    if (ex && !ex->empty()) {
        auto it = std::upper_bound(ex->begin(), ex->end(), address,
                                   [](uint64_t a, const ExportSymbol& s) { return a < s.address; });
        if (it != ex->begin()) {
            --it;
            match.name = it->name;
            match.address = it->address;
            match.displacement = address - it->address;
        }
    }
    return match;
}

std::optional<uint64_t> Symbols::lookup(std::string_view module, std::string_view name) {
    const Module* found = m_modules.find_by_name(module);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found;
    const auto* ex = exports_for(m);
    if (!ex) {
        return std::nullopt;
    }
    for (const auto& s : *ex) {
        if (s.name == name) {
            return s.address;
        }
    }
    const std::string lname = lower_ascii(name);
    for (const auto& s : *ex) {
        if (lower_ascii(s.name) == lname) {
            return s.address; // WinDbg symbol lookup is case-insensitive
        }
    }
    return std::nullopt;
}

} // namespace kdcart::engine
