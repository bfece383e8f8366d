#pragma once
// An image's x64 exception data as stored: the RUNTIME_FUNCTION table (.pdata, the exception
// directory) and the UNWIND_INFO records it points to, read from target memory with every offset
// checked (.fnent, uf, the unwinder). Wild headers or records give nullopt / an error.
#include "engine/Unwinder.h"

#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

struct RuntimeFunction {
    uint32_t begin = 0;
    uint32_t end = 0;
    uint32_t unwind = 0;        // UnwindInfoAddress (RVA)
    uint64_t entry_address = 0; // where this entry is in target memory (0 when chained)
};

struct UnwindCode {
    uint8_t offset = 0; // prolog offset
    uint8_t op = 0;     // UWOP_*
    uint8_t info = 0;   // op info
    uint8_t slots = 1;  // UNWIND_CODE slots it takes
    uint32_t value = 0; // the following slots: an allocation size or save offset, scaled
};

struct UnwindInfo {
    uint64_t address = 0; // in target memory
    uint8_t version = 0;
    uint8_t flags = 0;
    uint8_t prolog_size = 0;
    uint8_t count = 0;          // UNWIND_CODE slots
    uint8_t frame_register = 0; // 0: none
    uint8_t frame_offset = 0;   // scaled by 16 when used
    std::vector<UnwindCode> codes;
    std::optional<RuntimeFunction> chained;
    std::optional<uint32_t> handler; // UNW_FLAG_EHANDLER / UHANDLER: the handler's RVA
    uint32_t size = 0;               // bytes of the record (what .fnent prints)
};

inline constexpr uint8_t k_uwop_push_nonvol = 0, k_uwop_alloc_large = 1, k_uwop_alloc_small = 2,
                         k_uwop_set_fpreg = 3, k_uwop_save_nonvol = 4, k_uwop_save_nonvol_far = 5,
                         k_uwop_epilog = 6, k_uwop_spare = 7, k_uwop_save_xmm128 = 8,
                         k_uwop_save_xmm128_far = 9, k_uwop_push_machframe = 10;
inline constexpr uint8_t k_unw_flag_ehandler = 1, k_unw_flag_uhandler = 2, k_unw_flag_chaininfo = 4;

// The exception directory of the image at `base` (rva, size), nullopt when it has none or the
// headers cannot be read.
std::optional<std::pair<uint32_t, uint32_t>> exception_directory(uint64_t base,
                                                                 const UnwindMemory& mem);
// The entry whose [begin, end) holds `rva` (binary search; the table is sorted).
std::optional<RuntimeFunction> find_runtime_function(uint64_t base, uint32_t rva,
                                                     const UnwindMemory& mem);
// The UNWIND_INFO at base + rva with its codes and chained entry.
[[nodiscard]] Result<UnwindInfo> read_unwind_info(uint64_t base, uint32_t rva,
                                                  const UnwindMemory& mem);
// "UWOP_PUSH_NONVOL" ... ("UWOP_UNKNOWN" past the known ones).
const char* unwind_op_name(uint8_t op);
// rax rcx rdx rbx rsp rbp rsi rdi r8 .. r15 (UNWIND_CODE's register numbers).
const char* unwind_register_name(uint8_t reg);

} // namespace kdcart::engine
