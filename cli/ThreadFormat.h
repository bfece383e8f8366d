#pragma once
// WinDbg's text for threads and processes in detail (!thread, !process flags, !running, !ready,
// !peb). Pure functions over engine data; addresses are named through a callback.
#include "engine/ThreadState.h"
#include "engine/Types.h"

#include <functional>
#include <string>
#include <vector>

namespace kdcart::cli {

// Names an address ("nt!ExpWorkerThread"; "" when nothing is known).
using SymbolNamer = std::function<std::string(uint64_t)>;

// 100 ns units as WinDbg shows times: "00:00:26.863" (h:m:s.ms), with days "1 Day 00:16:11.706".
std::string format_duration(uint64_t hundred_ns);
// Ticks as `!thread` shows the wait age: "(0:00:04:03.002)" (d:hh:mm:ss.ms).
std::string format_tick_age(uint64_t hundred_ns);

// The THREAD line and details (001:255-285), each line prefixed with `indent` (8 inside
// `!process`):
//   THREAD fffffa800cd8a040  Cid 0004.005c  Teb: 0000000000000000 Win32Thread: 0000000000000000
//   WAIT: (Executive) KernelMode Non-Alertable
//       fffff88002b0f118  SynchronizationEvent
//   IRP List:
//       fffffa8016527510: (0006,0310) Flags: 00000000  Mdl: 00000000
//   Not impersonating
//   Owning Process            fffffa800cd56040       Image:         System
//   Attached Process          N/A            Image:         N/A
//   Wait Start TickCount      14791337       Ticks: 15577 (0:00:04:03.002)
//   Context Switch Count      835317         IdealProcessor: 2
//   UserTime                  00:00:00.000
//   KernelTime                00:00:26.863
//   Win32 Start Address nt!ExpWorkerThread (0xfffff8000188f530)
//   Stack Init fffff88002b0fc70 Current fffff88002b0ee30
//   Base fffff88002b10000 Limit fffff88002b0a000 Call 0
//   Priority 12 BasePriority 12
// Lines whose fields nt's types lack are left out.
std::string format_thread(const engine::ThreadInfo& t, const SymbolNamer& name, size_t indent);
// The THREAD line alone (!ready, `!process 0 4`).
std::string format_thread_line(const engine::ThreadInfo& t, size_t indent);
// The stack of a thread: "Child-SP          RetAddr           Call Site" and a line a frame;
// a machine frame's line ends with " (TrapFrame @ ADDR)", ADDR from `trap_frame` (as `k`).
using TrapFrameOf = std::function<uint64_t(const engine::StackFrame&)>;
std::string format_thread_stack(const std::vector<engine::StackFrame>& frames,
                                const SymbolNamer& name, size_t indent,
                                const TrapFrameOf& trap_frame = nullptr);

// `!process` flag 1's lines after "Image:" (003:1906-1921), the fields nt's types have:
//   ElapsedTime                       1 Day 00:16:11.706
//   UserTime                          00:00:00.015
//   KernelTime                        00:00:00.015
//   ...
std::string format_process_detail(const engine::ProcessDetail& d);

} // namespace kdcart::cli
