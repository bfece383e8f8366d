#pragma once
// The code of one function found by following its control flow (uf): every instruction
// reachable from the start through fall-through and jumps, the starts of its basic blocks and
// its calls. Jumps to the start of another function (tail calls) are not followed. Reads go
// through a callback; undecodable or unreadable bytes end a path, never the whole walk.
#include "transport/Error.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <vector>

namespace kdcart::engine {

struct FlowInstruction {
    enum class Kind { Other, Call, Jump, ConditionalJump, Return, Stop };
    uint64_t address = 0;
    uint8_t length = 0;
    Kind kind = Kind::Other;
    std::optional<uint64_t> target;        // a direct branch or call's destination
    std::optional<uint64_t> memory_target; // call/jmp qword ptr [rip+x]: the slot's address
};

struct FunctionFlow {
    uint64_t start = 0;
    std::vector<FlowInstruction> instructions; // by address
    std::set<uint64_t> block_starts;           // the start, branch targets, after branches
    bool truncated = false;                    // the instruction limit was reached
    bool interrupted = false;                  // the cancel flag was set
};

struct FlowOptions {
    // Bytes at an address (fewer or none when unreadable).
    std::function<std::vector<uint8_t>(uint64_t address, uint32_t size)> read;
    // Whether a jump to `target` stays in the function (false: a tail call, not followed); also
    // asked for the instruction after a call (false: the call does not return, the path ends).
    std::function<bool(uint64_t target)> follow;
    // Whether an address is inside the function (unset: everything is); falling through to an
    // address outside it ends the path (padding and the next function after a call that does
    // not return).
    std::function<bool(uint64_t address)> contains;
    size_t max_instructions = 20000;
    const std::atomic<bool>* cancel = nullptr;
};

[[nodiscard]] FunctionFlow trace_function(uint64_t start, const FlowOptions& options);

} // namespace kdcart::engine
