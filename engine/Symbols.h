#pragma once
// Names for addresses and addresses for names, per module. Today from the export tables of the
// images in target memory (read once per module, on first use).
#include "engine/Modules.h"
#include "engine/PeExports.h"

#include <map>

namespace kdcart::engine {

class Symbols {
public:
    Symbols(Memory& memory, Modules& modules) : m_memory(memory), m_modules(modules) {}

    // module!name+offset for an address inside a known module (name empty when the module has
    // no symbol below it). The module list must be known (Modules::list).
    std::optional<SymbolMatch> symbolize(uint64_t address);
    // A symbol's address; WinDbg's lookup is case-insensitive (an exact match wins).
    std::optional<uint64_t> lookup(std::string_view module, std::string_view name);
    // Loaded? (lm shows the state).
    bool loaded(uint64_t base) const { return m_exports.count(base) != 0; }

    // A module loaded or unloaded at `base`: its symbols are stale.
    void forget(uint64_t base) { m_exports.erase(base); }
    void forget_all() { m_exports.clear(); }

private:
    const std::vector<ExportSymbol>* exports_for(const Module& m);

    Memory& m_memory;
    Modules& m_modules;
    std::map<uint64_t, std::vector<ExportSymbol>> m_exports; // by module base
};

} // namespace kdcart::engine
