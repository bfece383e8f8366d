#pragma once
// WinDbg's implicit process and thread, and the register context set by .thread / .cxr /
// .trap: what `.process`, `.thread`, `.cxr` and `.trap` change until the target runs again
// (or the user resets them). Plain data kept by the Debugger.
#include "protocol/dbgkd_structs.h"

#include <optional>
#include <string>

namespace kdcart::engine {

struct ImplicitScope {
    // .process ADDR: the implicit process (its EPROCESS) and page-table root.
    std::optional<uint64_t> process;
    uint64_t process_dtb = 0;
    // .process /p or /r: user-half addresses are read through process_dtb.
    bool translate_user = false;
    // .thread ADDR: the implicit thread.
    std::optional<uint64_t> thread;
    // .thread / .cxr / .trap: the registers `r` shows ("Last set context:") and `k` walks.
    std::optional<protocol::CONTEXT> context;
    void reset() { *this = ImplicitScope{}; }
    void reset_context() {
        thread.reset();
        context.reset();
    }
};

} // namespace kdcart::engine
