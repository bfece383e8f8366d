#pragma once
// Target memory as the debugger sees it: virtual reads through a page cache that lives while the
// target is stopped (cleared on resume and by writes, and bounded: it starts over past 8 MiB),
// physical reads and writes, and address translation through the target's own page tables.
// Works over any Target.
#include "engine/AddressTranslation.h"
#include "engine/Target.h"

#include <map>

namespace kdcart::engine {

class Memory {
public:
    explicit Memory(Target& target) : m_target(target) {}

    // Reads [address, address+size): unreadable bytes are marked invalid, never an error (an
    // error is a link failure).
    [[nodiscard]] Result<MemoryBlock> read_virtual(uint64_t address, size_t size);
    [[nodiscard]] Result<size_t> write_virtual(uint64_t address, std::span<const uint8_t> data);
    // Physical reads skip the rest of a page that fails and go on at the next one.
    [[nodiscard]] Result<MemoryBlock> read_physical(uint64_t address, size_t size);
    [[nodiscard]] Result<size_t> write_physical(uint64_t address, std::span<const uint8_t> data);
    // Where a virtual address stands in the page tables of processor `cpu`.
    [[nodiscard]] Result<Translation> translate(uint64_t va, uint16_t cpu);

    // Reads a little-endian value; nullopt when any byte is unreadable.
    std::optional<uint64_t> read_u64(uint64_t address);
    std::optional<uint32_t> read_u32(uint64_t address);
    std::optional<uint16_t> read_u16(uint64_t address);

    // Bytes the target reported at a stop without being asked (the state change's instruction
    // stream at the PC): cached as if read, so the code line at a stop costs no request. Ignored
    // while the target runs.
    void seed_virtual(uint64_t address, std::span<const uint8_t> bytes);

    // The target ran or changed: nothing cached is true any more.
    void invalidate() { m_pages.clear(); }
    // While a live target runs its memory cannot be read: every access says so.
    void set_running(bool running) {
        m_running = running;
        if (running) {
            m_pages.clear();
        }
    }
    bool accessible() const { return !m_running; }

    Target& target() { return m_target; }

private:
    Target& m_target;
    struct Page {
        std::vector<uint8_t> data = std::vector<uint8_t>(4096);
        std::vector<bool> valid = std::vector<bool>(4096);
        uint32_t unreadable_from = 4096; // bytes at and after this offset failed
    };
    std::map<uint64_t, Page> m_pages; // virtual page cache
    bool m_running = false;
};

} // namespace kdcart::engine
