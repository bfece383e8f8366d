#include "engine/ProcessMemory.h"
#include "engine/AddressTranslation.h"
#include "engine/Debugger.h"

#include <cstring>

namespace kdcart::engine {

Result<MemoryBlock> read_process_memory(Debugger& dbg, uint64_t dtb, uint64_t address,
                                        size_t size) {
    if (!is_user_address(address)) {
        return dbg.read_virtual(address, size);
    }
    MemoryBlock out;
    out.address = address;
    out.bytes.assign(size, 0);
    out.valid.assign(size, false);
    const PhysReader phys = [&dbg](uint64_t pa) -> std::optional<uint64_t> {
        auto r = dbg.read_physical(pa, 8);
        if (!r || r->bytes.size() != 8 || !r->all_valid()) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, r->bytes.data(), 8);
        return v;
    };
    size_t done = 0;
    while (done < size) {
        const uint64_t va = address + done;
        const size_t in_page = std::min<size_t>(size - done, 0x1000 - (va & 0xFFF));
        if (!is_user_address(va)) {
            auto rest = dbg.read_virtual(va, size - done);
            if (!rest) {
                return tl::unexpected(rest.error());
            }
            for (size_t i = 0; i < rest->bytes.size(); ++i) {
                out.bytes[done + i] = rest->bytes[i];
                out.valid[done + i] = rest->valid[i];
            }
            break;
        }
        auto t = translate_va(va, dtb & ~uint64_t{0xFFF}, phys);
        if (t && t->state == PageState::Present) {
            auto block = dbg.read_physical(t->physical, in_page);
            if (!block) {
                return tl::unexpected(block.error());
            }
            for (size_t i = 0; i < in_page && i < block->bytes.size(); ++i) {
                out.bytes[done + i] = block->bytes[i];
                out.valid[done + i] = block->valid[i];
            }
        }
        done += in_page;
    }
    return out;
}

KernelTypes::Reader process_reader(Debugger& dbg, uint64_t dtb) {
    return [&dbg, dtb](uint64_t address, size_t size) {
        return read_process_memory(dbg, dtb, address, size);
    };
}

} // namespace kdcart::engine
