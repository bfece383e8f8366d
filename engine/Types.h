#pragma once
// Plain data the engine hands to the CLI. No formatting here.
#include "protocol/dbgkd_structs.h"
#include "transport/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

using protocol::CONTEXT;

// Memory as read: bytes plus which of them could be read.
struct MemoryBlock {
    uint64_t address = 0;
    std::vector<uint8_t> bytes;    // same length as asked; unreadable bytes are 0
    std::vector<bool> valid;       // valid[i] = bytes[i] was read
    bool all_valid() const {
        for (bool v : valid) {
            if (!v) {
                return false;
            }
        }
        return true;
    }
    size_t readable_prefix() const {
        size_t n = 0;
        while (n < valid.size() && valid[n]) {
            ++n;
        }
        return n;
    }
};

struct Module {
    std::string name;      // WinDbg's module name: "nt" for the kernel, else file name sans ext
    std::string file_name; // BaseDllName, e.g. "ntoskrnl.exe"
    std::string full_path; // FullDllName
    uint64_t base = 0;
    uint32_t size = 0;
    uint32_t checksum = 0;
    uint32_t timestamp = 0;
    uint64_t entry_point = 0;
    // Pdb: public symbols from a matching PDB; PrivatePdb: with functions, types and locals.
    enum class SymbolState { Deferred, Exports, None, Pdb, PrivatePdb };
    SymbolState symbols = SymbolState::Deferred;
    std::string symbol_file; // lm: the PDB's path, or the image for export symbols
    uint64_t end() const { return base + size; }
};

// An entry of the kernel's unloaded-driver history (MmUnloadedDrivers), which `lm` lists under
// "Unloaded modules:".
struct UnloadedModule {
    std::string name;
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t time = 0; // FILETIME of the unload
};

struct TargetInfo {
    protocol::DBGKD_GET_VERSION64 version{};
    uint32_t num_processors = 1;
    bool kddata_found = false;
    uint64_t kddata_address = 0;
    protocol::KDDEBUGGER_DATA64 kddata{};
    std::string build_lab;          // NtBuildLab, when readable
    uint32_t nt_major = 0;          // from KUSER_SHARED_DATA, 0 if unknown
    uint32_t nt_minor = 0;
    bool checked_build() const { return (version.MajorVersion & 0xFF) == 0x0C; }
    uint16_t build() const { return version.MinorVersion; }
};

enum class StopKind {
    BreakIn,       // the user's (or -b's) break-in request
    Dump,          // a crash dump: the state it was written in (bug check in the header)
    Breakpoint,    // an int3 in the target's code (hard-coded or ours)
    SingleStep,    // trace flag / hardware breakpoint
    Exception,     // any other exception
    LoadSymbols,   // a module load/unload notification
    CommandString, // DbgCommandString
    Other,
};

struct StopEvent {
    StopKind kind = StopKind::Other;
    uint16_t processor = 0;
    uint32_t num_processors = 1;
    uint64_t thread = 0;
    uint64_t pc = 0;
    // exception stops
    uint32_t exception_code = 0;
    uint64_t exception_address = 0;
    bool first_chance = true;
    std::vector<uint64_t> exception_params;
    // LoadSymbols stops
    bool unload = false;
    uint64_t image_base = 0;
    uint32_t image_size = 0;
    std::string image_path;
    // the bug check the machine stopped with (a dump's header; a live bug check stop), 0 = none
    uint32_t bugcheck_code = 0;
    uint64_t bugcheck_params[4] = {0, 0, 0, 0};
    // what the target reported about the stop
    protocol::AMD64_DBGKD_CONTROL_REPORT report{};
    // what the engine made of it
    std::optional<uint32_t> breakpoint_id; // one of the user's breakpoints was hit
    bool step_complete = false;            // a t / p / gu / g ADDR finished
};

// One frame of a stack walk (k).
struct StackFrame {
    uint64_t child_sp = 0;    // rsp in this frame
    uint64_t return_address = 0;
    uint64_t pc = 0;          // where this frame is executing
    uint64_t caller_sp = 0;   // rsp after the return: where kb's "Args to Child" (home space) are
    // This frame's function is an interrupt/exception handler: it popped a machine frame saved
    // at this address (the return address is the interrupted rip).
    std::optional<uint64_t> machine_frame;
    // The frame's image has no unwind data: the return address is a guess from [rsp].
    bool unwind_guessed = false;
    // The registers in this frame as far as unwinding restores them (rip, rsp and the
    // nonvolatile ones; the volatile ones keep frame 0's values): .frame /r.
    protocol::CONTEXT context{};
};

// A resolved symbol: module!name+offset.
struct SymbolMatch {
    std::string module;
    std::string name; // empty when only the module is known
    uint64_t address = 0;
    uint64_t displacement = 0;
};

} // namespace kdcart::engine
