#pragma once
// Reading another process's user memory: user-half addresses are translated through that
// process's page tables (its DirectoryTableBase, read with physical reads), kernel addresses go
// through the debugger's ordinary virtual reads (the kernel half is shared). What `!peb`,
// `.process /p` and `.process /r` need to see a process that is not the current one.
#include "engine/KernelTypes.h"

namespace kdcart::engine {

class Debugger;

// True for an address in the user half of the x64 address space.
inline bool is_user_address(uint64_t va) {
    return va < 0x0000800000000000ull;
}

// Reads [address, address+size) as the process with page-table root `dtb` sees it. Pages that
// are not present in its tables are marked invalid (never read from another process).
[[nodiscard]] Result<MemoryBlock> read_process_memory(Debugger& dbg, uint64_t dtb, uint64_t address,
                                                      size_t size);
// A KernelTypes reader over read_process_memory.
KernelTypes::Reader process_reader(Debugger& dbg, uint64_t dtb);

} // namespace kdcart::engine
