#pragma once
// The kernel's module list (PsLoadedModuleList, walked with a bound and loop detection) and its
// unloaded-driver history (MmUnloadedDrivers), learnt from target memory and kept until the
// target runs a module load/unload or starts over.
#include "engine/Memory.h"

#include <optional>

namespace kdcart::engine {

class Modules {
  public:
    explicit Modules(Memory& memory) : m_memory(memory) {}

    // Walks the list at `list_head` (the version block's PsLoadedModuleList) unless known.
    [[nodiscard]] Result<std::vector<Module>> list(uint64_t list_head);
    // Walks the list only as far as the module holding `address` (the stop line needs that one,
    // not the other couple of hundred: each entry costs requests on a serial cable); the walk
    // goes on from there next time. nullptr when no module holds it (the whole list walked).
    const Module* find_walking(uint64_t list_head, uint64_t address);
    // The loaded list if already known (a running target keeps the last one).
    const std::optional<std::vector<Module>>& known() const { return m_modules; }
    // MmUnloadedDrivers / MmLastUnloadedDriver from KDDEBUGGER_DATA64, newest last.
    [[nodiscard]] Result<std::vector<UnloadedModule>> unloaded(const TargetInfo& info);

    const Module* find_by_address(uint64_t address) const;
    // By WinDbg's module name ("nt") or file name ("ntoskrnl.exe"), case-insensitive.
    const Module* find_by_name(std::string_view name) const;
    void set_symbol_state(uint64_t base, Module::SymbolState state);

    void invalidate() {
        m_modules.reset();
        m_walk = {};
    }

  private:
    // Reads the next entry of the walk; false at the end of the list (or a broken entry).
    [[nodiscard]] Result<bool> walk_one();

    Memory& m_memory;
    std::optional<std::vector<Module>> m_modules;
    // A walk under way: the entries read so far and the next one's address.
    struct Walk {
        uint64_t head = 0;
        uint64_t next = 0; // 0: the head's Flink is not read yet
        bool started = false;
        std::vector<Module> mods;
        std::vector<uint64_t> entries; // their addresses (a list that loops ends the walk)
    } m_walk;
};

// "ntoskrnl.exe" -> "ntoskrnl"; lower-cases as WinDbg's module names are.
std::string lower_ascii(std::string_view s);

} // namespace kdcart::engine
