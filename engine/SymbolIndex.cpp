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
    m_entries.clear();
    m_by_address.clear();
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
    for (uint32_t i = 0; i < m_entries.size(); ++i) {
        if (!m_entries[i].alias) {
            m_by_address.push_back(i); // already in (rva, rank) order
        }
    }
    m_by_name.resize(m_entries.size());
    for (uint32_t i = 0; i < m_entries.size(); ++i) {
        m_by_name[i] = i;
    }
    std::sort(m_by_name.begin(), m_by_name.end(), [this](uint32_t a, uint32_t b) {
        const int c = compare_nocase(name(m_entries[a]), name(m_entries[b]));
        if (c != 0) {
            return c < 0;
        }
        return m_entries[a].rva < m_entries[b].rva;
    });
}

const SymbolEntry* SymbolIndex::lookup(uint32_t rva) const {
    auto it = std::upper_bound(m_by_address.begin(), m_by_address.end(), rva,
                               [this](uint32_t r, uint32_t i) { return r < m_entries[i].rva; });
    if (it == m_by_address.begin()) {
        return nullptr;
    }
    --it;
    // The best entry at that address is the first of its group.
    const uint32_t at_rva = m_entries[*it].rva;
    while (it != m_by_address.begin() && m_entries[*(it - 1)].rva == at_rva) {
        --it;
    }
    return &m_entries[*it];
}

const SymbolEntry* SymbolIndex::next_after(uint32_t rva) const {
    auto it = std::upper_bound(m_by_address.begin(), m_by_address.end(), rva,
                               [this](uint32_t r, uint32_t i) { return r < m_entries[i].rva; });
    return it == m_by_address.end() ? nullptr : &m_entries[*it];
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
    auto range = std::equal_range(
        m_by_name.begin(), m_by_name.end(), wanted, [this](const auto& a, const auto& b) {
            if constexpr (std::is_same_v<std::decay_t<decltype(a)>, uint32_t>) {
                return compare_nocase(name(m_entries[a]), b) < 0;
            } else {
                return compare_nocase(a, name(m_entries[b])) < 0;
            }
        });
    std::vector<const SymbolEntry*> exact, folded;
    for (auto it = range.first; it != range.second; ++it) {
        const SymbolEntry& e = m_entries[*it];
        (name(e) == wanted ? exact : folded).push_back(&e);
    }
    // Within each group: private before public records.
    auto by_rank = [](const SymbolEntry* a, const SymbolEntry* b) {
        return rank(a->kind) < rank(b->kind);
    };
    std::stable_sort(exact.begin(), exact.end(), by_rank);
    std::stable_sort(folded.begin(), folded.end(), by_rank);
    exact.insert(exact.end(), folded.begin(), folded.end());
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
    const std::string_view prefix = pattern.substr(0, wild);
    auto it = m_by_name.begin();
    if (!prefix.empty()) {
        it = std::lower_bound(m_by_name.begin(), m_by_name.end(), prefix,
                              [this](uint32_t i, std::string_view p) {
                                  return compare_nocase(name(m_entries[i]), p) < 0;
                              });
    }
    for (; it != m_by_name.end(); ++it) {
        const SymbolEntry& e = m_entries[*it];
        const std::string_view n = name(e);
        if (!prefix.empty() &&
            (n.size() < prefix.size() || compare_nocase(n.substr(0, prefix.size()), prefix) != 0)) {
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
