#pragma once
// Threads and processes in detail, through nt's PDB types by field name (KernelTypes): a thread's
// ids, state and wait (reason, mode, the objects of its wait blocks), its IRP list, owning and
// attached process, times, start address and stack limits; a process's threads (walked with a
// bound, a broken list reported where it broke) and the fields `!process` flag 1 shows; each
// processor's running thread and the dispatcher ready lists; a thread's saved context (the
// switch frame at KTHREAD.KernelStack, or the processor's registers when it runs). A field the
// types lack is left unset (nullopt), never guessed. Returns data; nothing here prints.
#include "engine/KernelTypes.h"
#include "engine/Registers.h"

#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct WaitObject {
    uint64_t wait_block = 0;
    uint64_t object = 0;
    std::optional<uint8_t> dispatcher_type; // DISPATCHER_HEADER.Type of the object
};

struct IrpSummary {
    uint64_t irp = 0;
    std::optional<uint16_t> type, size;
    std::optional<uint32_t> flags;
    std::optional<uint64_t> mdl;
};

struct ThreadInfo {
    uint64_t ethread = 0;
    uint64_t pid = 0, tid = 0;
    uint64_t teb = 0;
    std::optional<uint64_t> win32_thread;
    uint8_t state = 0; // KTHREAD_STATE
    std::optional<uint8_t> wait_reason;
    std::optional<uint8_t> wait_mode;
    std::optional<bool> alertable;
    std::string wait_reason_name; // from the PDB's _KWAIT_REASON when it has it
    std::vector<WaitObject> waits;
    std::optional<std::string> waits_broken;
    std::vector<IrpSummary> irps;
    std::optional<std::string> irps_broken;
    uint64_t process = 0; // owning process (KTHREAD.Process, else ApcState.Process)
    std::string process_image;
    uint64_t apc_process = 0; // ApcState.Process: differs from `process` when attached
    std::string apc_image;
    std::optional<uint32_t> wait_time;  // KTHREAD.WaitTime (ticks)
    std::optional<uint64_t> tick_count; // the system's tick count now
    std::optional<uint32_t> context_switches;
    std::optional<uint32_t> ideal_processor;
    std::optional<uint32_t> next_processor;
    std::optional<uint32_t> user_time, kernel_time; // ticks
    uint64_t time_increment = 0;                    // 100 ns units per tick
    std::optional<uint64_t> win32_start_address;
    std::optional<uint64_t> start_address;
    uint64_t stack_init = 0, kernel_stack = 0, stack_base = 0, stack_limit = 0;
    std::optional<int8_t> priority, base_priority;
    // The processor it is running on (state Running and KPRCB.CurrentThread is it).
    std::optional<uint32_t> running_on;
};

struct ProcessDetail {
    uint64_t eprocess = 0;
    std::optional<uint64_t> token;
    std::optional<uint64_t> create_time;            // 100 ns since 1601
    std::optional<uint64_t> system_time;            // now, 100 ns since 1601 (KUSER_SHARED_DATA)
    std::optional<uint32_t> user_time, kernel_time; // ticks (KPROCESS)
    uint64_t time_increment = 0;
    std::optional<int8_t> base_priority;
    std::optional<uint32_t> active_threads;
    std::optional<uint64_t> device_map;
};

struct ThreadList {
    std::vector<uint64_t> threads; // ETHREADs
    std::optional<std::string> broken;
};

class ThreadState {
  public:
    ThreadState(Debugger& dbg, const KernelTypes& types) : m_dbg(dbg), m_types(types) {}

    // The thread whose ETHREAD is at `ethread`. Refused (with a message that says why) when the
    // address is unreadable or its dispatcher header does not say "thread" (type 6).
    [[nodiscard]] Result<ThreadInfo> thread(uint64_t ethread);
    // The same check for a process (dispatcher type 3).
    [[nodiscard]] Result<void> check_process(uint64_t eprocess);
    // A process's threads: EPROCESS.ThreadListHead of ETHREAD.ThreadListEntry, else
    // KPROCESS.ThreadListHead of KTHREAD.ThreadListEntry.
    [[nodiscard]] Result<ThreadList> threads_of(uint64_t eprocess);
    [[nodiscard]] Result<ProcessDetail> process_detail(uint64_t eprocess);
    // The thread running on processor `cpu` (KPRCB.CurrentThread).
    [[nodiscard]] Result<uint64_t> current_thread(uint32_t cpu);
    [[nodiscard]] Result<uint64_t> prcb(uint32_t cpu);
    // The process of a thread (KTHREAD.ApcState.Process: the current address space).
    [[nodiscard]] Result<uint64_t> process_of(uint64_t ethread);

    // The registers a thread resumes with: the processor's context when it runs there, else
    // the switch frame at KTHREAD.KernelStack (nt!_KSWITCH_FRAME's Return and Rbp, rsp just
    // past it).
    [[nodiscard]] Result<CONTEXT> saved_context(const ThreadInfo& thread);

    // Dispatcher ready lists of processor `cpu` (KPRCB.DispatcherReadyListHead[32]):
    // priority -> threads, highest first.
    struct ReadyQueue {
        uint32_t priority = 0;
        std::vector<uint64_t> threads;
        std::optional<std::string> broken;
    };
    [[nodiscard]] Result<std::vector<ReadyQueue>> ready_lists(uint32_t cpu);

    // An image name of a process (EPROCESS.ImageFileName), "" when unreadable.
    std::string image_of(uint64_t eprocess);
    // 100 ns per tick (nt!KeMaximumIncrement, else nt!KeTimeIncrement, else 156250).
    uint64_t time_increment();
    // KUSER_SHARED_DATA's tick count and system time.
    std::optional<uint64_t> tick_count();
    std::optional<uint64_t> system_time();

  private:
    [[nodiscard]] Result<void> check_dispatcher(uint64_t object, std::string_view type,
                                                uint8_t expected, const char* what);
    Debugger& m_dbg;
    const KernelTypes& m_types;
};

// KTHREAD_STATE and KWAIT_REASON names (Windows' enums; the PDB's _KWAIT_REASON wins when present).
const char* thread_state_name(uint8_t state);
std::string wait_reason_name(uint8_t reason);
// DISPATCHER_HEADER.Type as WinDbg names a wait object ("NotificationEvent", "QueueObject"...).
std::string dispatcher_type_name(uint8_t type);

} // namespace kdcart::engine
