#pragma once
// One module's symbols, indexed once: a sorted address index (nearest symbol at or below an RVA
// in O(log n)) and a case-insensitive name index (exact look-up in O(log n), wildcard search
// narrowed by the pattern's literal prefix). Names live in one arena. Fed from a PDB or from
// the export table.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

enum class SymbolKind : uint8_t {
    Function,       // a private function record (has a size)
    Data,           // a global variable
    PublicFunction, // a public symbol flagged as code
    Public,         // any other public symbol
    Export,         // an export-table entry
};

struct SymbolEntry {
    uint32_t rva = 0;
    uint32_t size = 0;
    uint32_t type_index = 0;
    uint32_t name_offset = 0;
    uint32_t name_length = 0;
    SymbolKind kind = SymbolKind::Public;
    // A public that repeats a private symbol's address: found by name, never shown for an
    // address or listed by a wildcard search.
    bool alias = false;
};

class SymbolIndex {
  public:
    struct Input {
        std::string name;
        uint32_t rva = 0;
        uint32_t size = 0;
        uint32_t type_index = 0;
        SymbolKind kind = SymbolKind::Public;
    };

    SymbolIndex() = default;
    explicit SymbolIndex(std::vector<Input> inputs) { build(std::move(inputs)); }
    void build(std::vector<Input> inputs);

    size_t size() const { return m_entries.size(); }
    bool empty() const { return m_entries.empty(); }
    std::string_view name(const SymbolEntry& e) const {
        return std::string_view(m_names).substr(e.name_offset, e.name_length);
    }

    // The best symbol at the highest address <= rva (nullptr when none is below it).
    const SymbolEntry* lookup(uint32_t rva) const;
    // The first symbol above rva (ln's right-hand side).
    const SymbolEntry* next_after(uint32_t rva) const;
    // Every non-alias symbol at exactly rva, best first.
    std::vector<const SymbolEntry*> at(uint32_t rva) const;
    // Symbols named `name`, case-insensitively; exact-case matches first.
    std::vector<const SymbolEntry*> find(std::string_view name) const;
    // Every non-alias symbol whose name matches a '*'/'?' pattern, in name order.
    void match(std::string_view pattern, const std::function<void(const SymbolEntry&)>& fn) const;
    // All non-alias entries in address order.
    void for_each_by_address(const std::function<void(const SymbolEntry&)>& fn) const;

  private:
    std::string_view folded(const SymbolEntry& e) const {
        return std::string_view(m_folded).substr(e.name_offset, e.name_length);
    }

    std::string m_names;
    std::string m_folded; // m_names in lower case: the name index compares these
    std::vector<SymbolEntry> m_entries;
    std::vector<uint32_t> m_by_address;  // indices into m_entries, non-alias, by (rva, rank)
    std::vector<uint32_t> m_address_rva; // m_by_address's RVAs, contiguous for the search
    std::vector<uint32_t> m_by_name;     // indices into m_entries, case-insensitive name order
};

} // namespace kdcart::engine
