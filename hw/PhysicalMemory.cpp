#include "hw/PhysicalMemory.h"

#include <algorithm>
#include <cstring>
#include <sys/mman.h>
#include <utility>

namespace kdcart::hw {

namespace {
constexpr uint64_t MAX_PHYSICAL = 64ULL << 30; // keep the host reservation sane
constexpr uint64_t LOW_MEMORY_END = 0x100000;
} // namespace

Result<PhysicalMemory> PhysicalMemory::create(std::vector<PhysicalRun> runs) {
    if (runs.empty()) {
        return make_error(Errc::InvalidArgument, "physical memory: no runs");
    }
    std::sort(runs.begin(), runs.end(),
              [](const PhysicalRun& a, const PhysicalRun& b) { return a.base < b.base; });
    uint64_t end = 0;
    for (const auto& r : runs) {
        if (r.base % PAGE_SIZE != 0 || r.size % PAGE_SIZE != 0 || r.size == 0) {
            return make_error(Errc::InvalidArgument, "physical memory: runs must be page aligned");
        }
        if (r.base < end) {
            return make_error(Errc::InvalidArgument, "physical memory: runs overlap");
        }
        end = r.base + r.size;
    }
    if (end > MAX_PHYSICAL) {
        return make_error(Errc::InvalidArgument, "physical memory: too large");
    }
    void* p = mmap(nullptr, end, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return make_error(Errc::Io, "physical memory: mmap failed");
    }
    PhysicalMemory mem;
    mem.m_base = static_cast<uint8_t*>(p);
    mem.m_mapping_size = end;
    mem.m_runs = std::move(runs);
    for (size_t i = 0; i < mem.m_runs.size(); i++) {
        if (mem.m_runs[i].base >= LOW_MEMORY_END) {
            mem.m_allocation_order.push_back(i);
        }
    }
    for (size_t i = 0; i < mem.m_runs.size(); i++) {
        if (mem.m_runs[i].base < LOW_MEMORY_END) {
            mem.m_allocation_order.push_back(i);
        }
    }
    mem.m_alloc_next = mem.m_runs[mem.m_allocation_order[0]].base;
    return mem;
}

PhysicalMemory::PhysicalMemory(PhysicalMemory&& other) noexcept {
    *this = std::move(other);
}

PhysicalMemory& PhysicalMemory::operator=(PhysicalMemory&& other) noexcept {
    if (this != &other) {
        release();
        m_base = std::exchange(other.m_base, nullptr);
        m_mapping_size = std::exchange(other.m_mapping_size, 0);
        m_runs = std::move(other.m_runs);
        m_allocation_order = std::move(other.m_allocation_order);
        m_alloc_run = other.m_alloc_run;
        m_alloc_next = other.m_alloc_next;
        m_allocated = other.m_allocated;
    }
    return *this;
}

PhysicalMemory::~PhysicalMemory() {
    release();
}

void PhysicalMemory::release() {
    if (m_base != nullptr) {
        munmap(m_base, m_mapping_size);
        m_base = nullptr;
    }
}

uint64_t PhysicalMemory::total_pages() const {
    uint64_t n = 0;
    for (const auto& r : m_runs) {
        n += r.size / PAGE_SIZE;
    }
    return n;
}

uint64_t PhysicalMemory::lowest_pfn() const {
    return m_runs.front().base / PAGE_SIZE;
}

uint64_t PhysicalMemory::highest_pfn() const {
    return (m_runs.back().base + m_runs.back().size) / PAGE_SIZE - 1;
}

uint64_t PhysicalMemory::ram_left(uint64_t pa) const {
    for (const auto& r : m_runs) {
        if (pa >= r.base && pa < r.base + r.size) {
            return r.base + r.size - pa;
        }
    }
    return 0;
}

size_t PhysicalMemory::read(uint64_t pa, std::span<uint8_t> out) const {
    size_t done = 0;
    while (done < out.size()) {
        uint64_t left = ram_left(pa + done);
        if (left == 0) {
            break;
        }
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, out.size() - done));
        std::memcpy(out.data() + done, host(pa + done), n);
        done += n;
    }
    return done;
}

size_t PhysicalMemory::write(uint64_t pa, std::span<const uint8_t> data) {
    size_t done = 0;
    while (done < data.size()) {
        uint64_t left = ram_left(pa + done);
        if (left == 0) {
            break;
        }
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, data.size() - done));
        std::memcpy(host(pa + done), data.data() + done, n);
        done += n;
    }
    return done;
}

std::optional<uint64_t> PhysicalMemory::allocate_page() {
    while (m_alloc_run < m_allocation_order.size()) {
        const auto& run = m_runs[m_allocation_order[m_alloc_run]];
        if (m_alloc_next + PAGE_SIZE <= run.base + run.size) {
            uint64_t pa = m_alloc_next;
            m_alloc_next += PAGE_SIZE;
            std::memset(host(pa), 0, PAGE_SIZE);
            m_allocated++;
            return pa;
        }
        m_alloc_run++;
        if (m_alloc_run < m_allocation_order.size()) {
            m_alloc_next = m_runs[m_allocation_order[m_alloc_run]].base;
        }
    }
    return std::nullopt;
}

} // namespace kdcart::hw
