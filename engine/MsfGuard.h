#pragma once
// Checks done on a PDB's bytes before LLVM's reader sees them. LLVM 14's native reader trusts
// some counts in the file: the info stream's named-stream map (a hash table) is resized to the
// capacity the file states, so a hostile PDB asking for 2^32 buckets makes it allocate 32 GiB
// and the process dies (found by fuzz_pdb_file). This guard walks the MSF container itself (the
// superblock, the stream directory and its block lists, every block number inside the file)
// and the info stream up to that hash table, and refuses a file whose numbers are out of bounds;
// deleted streams get size 0 (the caller passes its own copy of the bytes).
// What is guarded is listed in MsfGuard.cpp.
#include "transport/Error.h"

#include <cstddef>
#include <cstdint>

namespace kdcart::engine {

// Checks the file in `data` and gives deleted streams (size 0xFFFFFFFF, which LLVM 14 maps as a
// 4 GiB stream without blocks and then reads through a null block list) size 0, in place.
[[nodiscard]] Result<void> check_msf(uint8_t* data, size_t size);

} // namespace kdcart::engine
