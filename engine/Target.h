#pragma once
// What the debugger needs from a machine, whether it is alive at the end of a cable (LiveTarget,
// over the KD client) or a crash dump on disk (DumpTarget): memory, registers per processor,
// control space, target info, and whether it can run at all. Everything above this interface
// (memory cache, modules, symbols, the evaluator, the dump writer) works the same on both.
#include "engine/Types.h"
#include "protocol/KdClient.h"

#include <span>
#include <string>
#include <vector>

namespace kdcart::engine {

using protocol::ReadResult;

class Target {
public:
    virtual ~Target() = default;

    // Only a live target runs (g, t, p, bp...); on a dump run control is not available.
    virtual bool can_run() const = 0;
    // "serial /dev/pts/3", "dump file /tmp/MEMORY.DMP".
    virtual std::string describe() const = 0;

    // The version block GetVersion returns (built from the dump header on a dump).
    [[nodiscard]] virtual Result<protocol::DBGKD_GET_VERSION64> version() = 0;
    // Where KDDEBUGGER_DATA64 is (0 when the target does not say).
    [[nodiscard]] virtual Result<uint64_t> kddebugger_data_address() = 0;
    virtual uint32_t num_processors() const = 0;
    // The processor the current stop came from (requests default to it).
    virtual uint16_t current_processor() const = 0;

    // Memory as the target gives it: bytes from the start; fewer than asked means the byte after
    // the last one returned could not be read. size is at most max_request() for live targets
    // (larger reads are split by the caller or the client).
    [[nodiscard]] virtual Result<ReadResult> read_virtual(uint64_t address, uint32_t size) = 0;
    [[nodiscard]] virtual Result<uint32_t> write_virtual(uint64_t address,
                                                         std::span<const uint8_t> data) = 0;
    [[nodiscard]] virtual Result<ReadResult> read_physical(uint64_t address, uint32_t size) = 0;
    [[nodiscard]] virtual Result<uint32_t> write_physical(uint64_t address,
                                                          std::span<const uint8_t> data) = 0;
    // The largest memory request the link carries in one exchange (a dump: one page).
    virtual uint32_t max_request() const = 0;

    [[nodiscard]] virtual Result<CONTEXT> get_context(uint16_t cpu) = 0;
    [[nodiscard]] virtual Result<void> set_context(uint16_t cpu, const CONTEXT& context) = 0;
    // Part of a processor's CONTEXT: bytes [offset, offset+size) where the target can give just
    // those (a live target: GetContextEx), otherwise the whole CONTEXT (offset 0). Callers keep
    // whatever they got.
    struct ContextBytes {
        uint32_t offset = 0;
        std::vector<uint8_t> bytes;
    };
    [[nodiscard]] virtual Result<ContextBytes> get_context_bytes(uint16_t cpu, uint32_t offset,
                                                                 uint32_t size) {
        (void)offset;
        (void)size;
        auto ctx = get_context(cpu);
        if (!ctx) {
            return tl::unexpected(ctx.error());
        }
        ContextBytes out;
        protocol::kd_append(out.bytes, *ctx);
        return out;
    }
    // Writes bytes into a processor's CONTEXT at `offset` (a live target: SetContextEx).
    // Errc::Unsupported when the target takes only whole contexts (then: set_context).
    [[nodiscard]] virtual Result<void> set_context_bytes(uint16_t cpu, uint32_t offset,
                                                         std::span<const uint8_t> bytes) {
        (void)cpu;
        (void)offset;
        (void)bytes;
        return make_error(Errc::Unsupported, "whole contexts only");
    }
    [[nodiscard]] virtual Result<ReadResult> read_control_space(uint16_t cpu, uint64_t index,
                                                                uint32_t size) = 0;
    [[nodiscard]] virtual Result<uint32_t> write_control_space(uint16_t cpu, uint64_t index,
                                                               std::span<const uint8_t> data) = 0;
    // The dump writer's reads (a live target: engine/ReadVerifier.h): verified on a noisy link
    // whatever .kdverify says, and a link failure is an error rather than a short read.
    virtual void set_verify_for_dump(bool on) { (void)on; }
    // The page-table root (CR3) a processor translates kernel addresses with.
    [[nodiscard]] virtual Result<uint64_t> page_directory(uint16_t cpu) = 0;
};

// The error every run-control request gets on a target that cannot run (WinDbg: "No runnable
// debuggees error in 'g'"; the CLI adds the command).
inline Error not_runnable() {
    return Error{Errc::Unsupported, "No runnable debuggees", 0};
}

} // namespace kdcart::engine
