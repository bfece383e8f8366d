#pragma once
// The simulated machine's RAM: one host mapping that covers every physical run (holes are
// never touched, so they cost nothing), with a page-frame allocator over the runs.
#include "transport/Error.h"
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace kdcart::hw {

inline constexpr uint64_t PAGE_SIZE = 0x1000;

struct PhysicalRun {
    uint64_t base = 0; // bytes, page aligned
    uint64_t size = 0; // bytes, page aligned
};

class PhysicalMemory {
  public:
    [[nodiscard]] static Result<PhysicalMemory> create(std::vector<PhysicalRun> runs);
    PhysicalMemory(PhysicalMemory&& other) noexcept;
    PhysicalMemory& operator=(PhysicalMemory&& other) noexcept;
    PhysicalMemory(const PhysicalMemory&) = delete;
    PhysicalMemory& operator=(const PhysicalMemory&) = delete;
    ~PhysicalMemory();

    const std::vector<PhysicalRun>& runs() const { return m_runs; }
    uint64_t total_pages() const;
    uint64_t lowest_pfn() const;
    uint64_t highest_pfn() const;

    bool is_ram(uint64_t pa) const { return ram_left(pa) != 0; }
    // Bytes of RAM from `pa` to the end of its run; 0 when `pa` is in a hole.
    uint64_t ram_left(uint64_t pa) const;
    // Host address of physical byte `pa`. `pa` must be RAM.
    uint8_t* host(uint64_t pa) const { return m_base + pa; }

    // Copy in or out, stopping at the first hole; returns the bytes done.
    size_t read(uint64_t pa, std::span<uint8_t> out) const;
    size_t write(uint64_t pa, std::span<const uint8_t> data);

    // A zeroed free page frame (physical address), or nullopt when RAM is exhausted.
    // Frames come from the runs above 1 MiB first; low memory is used last.
    std::optional<uint64_t> allocate_page();
    uint64_t allocated_pages() const { return m_allocated; }

  private:
    PhysicalMemory() = default;
    void release();

    uint8_t* m_base = nullptr;
    size_t m_mapping_size = 0;
    std::vector<PhysicalRun> m_runs;
    std::vector<size_t> m_allocation_order; // indexes into m_runs
    size_t m_alloc_run = 0;                 // position in m_allocation_order
    uint64_t m_alloc_next = 0;              // next free byte in that run
    uint64_t m_allocated = 0;
};

} // namespace kdcart::hw
