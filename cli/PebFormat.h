#pragma once
// `!peb`'s text (000:751-773): the PEB's flags, the loader lists and their modules (base,
// TimeDateStamp from the image header, full path), the process parameters' strings. `u` reads
// the process's memory (its page tables for the user half); fields nt's types lack are left out.
#include "engine/KernelTypes.h"

#include <string>

namespace kdcart::cli {

std::string format_peb(const engine::KernelTypes& u, uint64_t peb_addr);

} // namespace kdcart::cli
