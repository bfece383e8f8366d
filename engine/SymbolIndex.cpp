#include "engine/SymbolIndex.h"
#include "engine/Wildcard.h"

#include <algorithm>
#include <limits>

namespace kdcart::engine {

namespace {

int rank(SymbolKind k) {
    return static_cast<int>(k); // Function < Data < PublicFunction < Public < Export
}

bool is_private(SymbolKind k) {
    return k == SymbolKind::Function || k == SymbolKind::Data;
}

} // namespace

void SymbolIndex::build(std::vector<Input> inputs) {
    m_names.clear();
    m_folded.clear();
    m_entries.clear();
    m_by_address.clear();
    m_address_rva.clear();
    m_by_name.clear();
    // Bounded: a 32-bit arena and entry count.
    const size_t max_entries = std::numeric_limits<uint32_t>::max() / 2;
    if (inputs.size() > max_entries) {
        inputs.resize(max_entries);
    }
    std::sort(inputs.begin(), inputs.end(), [](const Input& a, const Input& b) {
        if (a.rva != b.rva) {
            return a.rva < b.rva;
        }
        if (a.kind != b.kind) {
            return rank(a.kind) < rank(b.kind);
        }
        return a.name < b.name;
    });
    size_t total = 0;
    for (const auto& in : inputs) {
        total += in.name.size();
    }
    m_names.reserve(total);
    m_entries.reserve(inputs.size());
    bool private_at_rva = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const Input& in = inputs[i];
        if (i == 0 || in.rva != inputs[i - 1].rva) {
            private_at_rva = false;
        }
        if (m_names.size() + in.name.size() > std::numeric_limits<uint32_t>::max()) {
            break;
        }
        SymbolEntry e;
        e.rva = in.rva;
        e.size = in.size;
        e.type_index = in.type_index;
        e.kind = in.kind;
        e.name_offset = static_cast<uint32_t>(m_names.size());
        e.name_length = static_cast<uint32_t>(in.name.size());
        e.alias = private_at_rva && !is_private(in.kind);
        private_at_rva = private_at_rva || is_private(in.kind);
        m_names += in.name;
        m_entries.push_back(e);
    }
    m_folded = m_names;
    for (char& c : m_folded) {
        c = fold_ascii(c);
    }
    for (uint32_t i = 0; i < m_entries.size(); ++i) {
        if (!m_entries[i].alias) {
            m_by_address.push_back(i); // already in (rva, rank) order
            m_address_rva.push_back(m_entries[i].rva);
        }
    }
    m_by_name.resize(m_entries.size());
    for (uint32_t i = 0; i < m_entries.size(); ++i) {
        m_by_name[i] = i;
    }
    std::sort(m_by_name.begin(), m_by_name.end(), [this](uint32_t a, uint32_t b) {
        const int c = folded(m_entries[a]).compare(folded(m_entries[b]));
        if (c != 0) {
            return c < 0;
        }
        return m_entries[a].rva < m_entries[b].rva;
    });
}

const SymbolEntry* SymbolIndex::lookup(uint32_t rva) const {
    // The last entry at or below rva, then back to the first (best) of its address.
    auto it = std::upper_bound(m_address_rva.begin(), m_address_rva.end(), rva);
    if (it == m_address_rva.begin()) {
        return nullptr;
    }
    it = std::lower_bound(m_address_rva.begin(), it, *(it - 1));
    return &m_entries[m_by_address[static_cast<size_t>(it - m_address_rva.begin())]];
}

const SymbolEntry* SymbolIndex::next_after(uint32_t rva) const {
    auto it = std::upper_bound(m_address_rva.begin(), m_address_rva.end(), rva);
    return it == m_address_rva.end()
               ? nullptr
               : &m_entries[m_by_address[static_cast<size_t>(it - m_address_rva.begin())]];
}

std::vector<const SymbolEntry*> SymbolIndex::at(uint32_t rva) const {
    std::vector<const SymbolEntry*> out;
    auto it = std::lower_bound(m_by_address.begin(), m_by_address.end(), rva,
                               [this](uint32_t i, uint32_t r) { return m_entries[i].rva < r; });
    for (; it != m_by_address.end() && m_entries[*it].rva == rva; ++it) {
        out.push_back(&m_entries[*it]);
    }
    return out;
}

std::vector<const SymbolEntry*> SymbolIndex::find(std::string_view wanted) const {
    std::string key(wanted);
    for (char& c : key) {
        c = fold_ascii(c);
    }
    auto lo = std::lower_bound(
        m_by_name.begin(), m_by_name.end(), key,
        [this](uint32_t i, const std::string& k) { return folded(m_entries[i]).compare(k) < 0; });
    auto hi = lo;
    while (hi != m_by_name.end() && folded(m_entries[*hi]) == key) {
        ++hi;
    }
    const auto range = std::make_pair(lo, hi);
    std::vector<const SymbolEntry*> exact, other_case;
    for (auto it = range.first; it != range.second; ++it) {
        const SymbolEntry& e = m_entries[*it];
        (name(e) == wanted ? exact : other_case).push_back(&e);
    }
    // Within each group: private before public records.
    auto by_rank = [](const SymbolEntry* a, const SymbolEntry* b) {
        return rank(a->kind) < rank(b->kind);
    };
    std::stable_sort(exact.begin(), exact.end(), by_rank);
    std::stable_sort(other_case.begin(), other_case.end(), by_rank);
    exact.insert(exact.end(), other_case.begin(), other_case.end());
    return exact;
}

void SymbolIndex::match(std::string_view pattern,
                        const std::function<void(const SymbolEntry&)>& fn) const {
    const size_t wild = pattern.find_first_of("*?");
    if (wild == std::string_view::npos) {
        for (const auto* e : find(pattern)) {
            if (!e->alias) {
                fn(*e);
            }
        }
        return;
    }
    std::string prefix(pattern.substr(0, wild));
    for (char& c : prefix) {
        c = fold_ascii(c);
    }
    auto it = m_by_name.begin();
    if (!prefix.empty()) {
        it = std::lower_bound(m_by_name.begin(), m_by_name.end(), prefix,
                              [this](uint32_t i, const std::string& p) {
                                  return folded(m_entries[i]).compare(p) < 0;
                              });
    }
    for (; it != m_by_name.end(); ++it) {
        const SymbolEntry& e = m_entries[*it];
        const std::string_view n = name(e);
        if (!prefix.empty() && folded(e).substr(0, prefix.size()) != prefix) {
            break; // past the names that start with the prefix
        }
        if (!e.alias && wildcard_match(pattern, n)) {
            fn(e);
        }
    }
}

void SymbolIndex::for_each_by_address(const std::function<void(const SymbolEntry&)>& fn) const {
    for (uint32_t i : m_by_address) {
        fn(m_entries[i]);
    }
}

} // namespace kdcart::engine
