#include "engine/BugCheckAnalysis.h"
#include "engine/Debugger.h"
#include "engine/KernelState.h"
#include "engine/KernelTypes.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace kdcart::engine {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string lower_hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%" PRIx64, v);
    return buf;
}

// "module!name+1c" as !analyze writes SYMBOL_NAME (hex offset without 0x).
std::string analyze_symbol(const SymbolMatch& s) {
    std::string out = s.module + "!" + s.name;
    if (s.displacement != 0) {
        out += "+" + lower_hex(s.displacement);
    }
    return out;
}

} // namespace

bool on_bugcheck_path(const SymbolMatch& s) {
    if (s.module != "nt" || s.name.empty()) {
        return false;
    }
    const std::string_view n = s.name;
    // The bug check itself and the debugger break it ends in.
    for (std::string_view p :
         {"KeBugCheck", "KiBugCheck", "KiSimReturnToFirmware", "DbgBreakPointWithStatus",
          "RtlpBreakWithStatusInstruction", "KdpReport", "KdpTrap", "KdEnterDebugger"}) {
        if (starts_with(n, p)) {
            return true;
        }
    }
    // The trap handlers and exception dispatch that turn a fault into a bug check.
    if (starts_with(n, "KiTrap") || starts_with(n, "KiPageFault") ||
        starts_with(n, "KiExceptionDispatch") || starts_with(n, "KiDispatchException") ||
        starts_with(n, "KiRaiseException") || starts_with(n, "KiSystemServiceHandler") ||
        starts_with(n, "RtlDispatchException") || starts_with(n, "KiInterruptDispatch")) {
        return true;
    }
    return starts_with(n, "Ki") && (ends_with(n, "Fault") || ends_with(n, "Abort") ||
                                    ends_with(n, "FaultShadow") || ends_with(n, "Trap"));
}

std::optional<size_t> faulting_ip_parameter(uint32_t code) {
    switch (code) {
    case 0x0A: // IRQL_NOT_LESS_OR_EQUAL: P4 = address which referenced memory
    case 0xD1: // DRIVER_IRQL_NOT_LESS_OR_EQUAL
        return 3;
    case 0x1E: // KMODE_EXCEPTION_NOT_HANDLED: P2 = exception address
    case 0x7E: // SYSTEM_THREAD_EXCEPTION_NOT_HANDLED
    case 0x8E: // KERNEL_MODE_EXCEPTION_NOT_HANDLED
    case 0x1000007E:
    case 0x1000008E:
    case 0x3B: // SYSTEM_SERVICE_EXCEPTION: P2 = address of the instruction
        return 1;
    case 0x50: // PAGE_FAULT_IN_NONPAGED_AREA: P3 = address which referenced memory (if known)
        return 2;
    default:
        return std::nullopt;
    }
}

void choose_followup(BugCheckAnalysis& a,
                     const std::function<std::string(std::string_view)>& image_of) {
    char str[24];
    std::snprintf(str, sizeof str, "0x%X", a.code);
    a.bugcheck_str = str;
    std::vector<std::string> passed;
    for (size_t i = 0; i < a.stack.size(); ++i) {
        const auto& sym = a.stack[i].symbol;
        if (!sym) {
            passed.push_back(lower_hex(a.stack[i].frame.pc) + " (no module)");
            continue;
        }
        if (on_bugcheck_path(*sym)) {
            passed.push_back(analyze_symbol(*sym));
            continue;
        }
        a.followup = i;
        break;
    }
    std::string rule = "the first frame outside the kernel's bug-check path (nt!KeBugCheck*, "
                       "KiBugCheck*, the debugger break, trap and exception handlers)";
    if (!a.followup) {
        a.followup_reason =
            a.stack.empty() ? "no stack: no followup frame"
                            : "every frame is on the kernel's bug-check path: no followup frame";
        if (a.code == 0xE2) {
            a.bucket_id = "MANUALLY_INITIATED_CRASH";
        } else {
            a.bucket_id = a.bugcheck_str + "_UNKNOWN";
        }
        return;
    }
    const auto& f = a.stack[*a.followup];
    char idx[16];
    std::snprintf(idx, sizeof idx, "%02zx", *a.followup);
    a.followup_reason = "frame " + std::string(idx) + ", " + rule;
    if (!passed.empty()) {
        std::string list;
        for (const auto& p : passed) {
            list += (list.empty() ? "" : ", ") + p;
        }
        a.followup_reason += "; passed over: " + list;
    }
    const auto& sym = *f.symbol;
    a.module_name = sym.module;
    a.image_name = image_of(sym.module);
    if (sym.name.empty()) {
        a.symbol_name = sym.module + "+" + lower_hex(sym.displacement);
    } else {
        a.symbol_name = analyze_symbol(sym);
    }
    const std::string function =
        sym.name.empty() ? sym.module + "!unknown_function" : sym.module + "!" + sym.name;
    if (a.code == 0xE2) {
        a.bucket_id = "MANUALLY_INITIATED_CRASH_" + function;
    } else {
        a.bucket_id = a.bugcheck_str + "_" + function;
    }
}

Result<BugCheckAnalysis> BugCheckAnalyzer::bugcheck() {
    BugCheckAnalysis a;
    const auto& stop = m_dbg.last_stop();
    a.code = stop.bugcheck_code;
    for (size_t i = 0; i < 4; ++i) {
        a.params[i] = stop.bugcheck_params[i];
    }
    a.code_source = stop.kind == StopKind::Dump ? "the dump header" : "the stop";
    if (a.code == 0 && m_dbg.can_run()) {
        // Live: what nt!KiBugCheckData holds (KeBugCheckEx fills it before it breaks).
        auto info = m_dbg.target_info();
        if (info && info->kddata_found && info->kddata.KiBugcheckData != 0) {
            auto b = m_dbg.read_virtual(info->kddata.KiBugcheckData, 40);
            if (b && b->all_valid()) {
                uint64_t v[5];
                std::memcpy(v, b->bytes.data(), sizeof v);
                a.code = static_cast<uint32_t>(v[0]);
                for (size_t i = 0; i < 4; ++i) {
                    a.params[i] = v[i + 1];
                }
                a.code_source = "nt!KiBugCheckData";
            }
        }
    }
    if (a.code == 0) {
        return make_error(Errc::NotFound, "the target did not stop for a bug check");
    }
    return a;
}

Result<BugCheckAnalysis> BugCheckAnalyzer::analyze(size_t max_frames) {
    auto a = bugcheck();
    if (!a) {
        return a;
    }
    read_process(*a);
    read_irql(*a);
    read_stack(*a, max_frames);
    if (auto p = faulting_ip_parameter(a->code); p && a->params[*p] != 0) {
        a->faulting_ip = a->params[*p];
        a->faulting_symbol = m_dbg.symbolize(*a->faulting_ip);
    }
    std::vector<Module> modules;
    if (auto m = m_dbg.modules()) {
        modules = *m;
    }
    choose_followup(*a, [&](std::string_view name) -> std::string {
        for (const auto& m : modules) {
            if (m.name == name) {
                return m.file_name.empty() ? std::string(name) : m.file_name;
            }
        }
        return std::string(name);
    });
    return a;
}

void BugCheckAnalyzer::read_process(BugCheckAnalysis& a) {
    uint64_t thread = m_dbg.last_stop().thread;
    KernelState ks(m_dbg);
    auto cpu = ks.processor(m_dbg.current_processor());
    if (cpu && cpu->current_thread != 0) {
        thread = cpu->current_thread; // the processor's KPRCB.CurrentThread
    }
    if (thread == 0) {
        a.process_note = "the current thread is not known";
        return;
    }
    // With nt's types: KTHREAD.ApcState.Process (or .Process) -> EPROCESS.ImageFileName.
    if (auto kt = KernelTypes::of_nt(m_dbg)) {
        Result<uint64_t> process = make_error(Errc::NotFound, "no field");
        for (std::string_view path : {"ApcState.Process", "Process"}) {
            if (kt->has_field("_KTHREAD", path)) {
                process = kt->read_pointer(thread, "_KTHREAD", path);
                break;
            }
        }
        if (process && *process != 0) {
            if (auto name = kt->read_char_array(*process, "_EPROCESS", "ImageFileName")) {
                a.process_name = *name;
                a.process_note = "KPRCB.CurrentThread " + lower_hex(thread) +
                                 " -> KTHREAD.ApcState.Process " + lower_hex(*process) +
                                 " (nt's types)";
                return;
            }
        }
    }
    // Without them: KDDEBUGGER_DATA64.OffsetKThreadApcProcess and the process list.
    auto info = m_dbg.target_info();
    if (!info || !info->kddata_found || info->kddata.OffsetKThreadApcProcess == 0) {
        a.process_note = "KTHREAD.ApcState.Process needs nt's types or "
                         "KDDEBUGGER_DATA64.OffsetKThreadApcProcess";
        return;
    }
    auto process = m_dbg.memory().read_u64(thread + info->kddata.OffsetKThreadApcProcess);
    if (!process) {
        a.process_note = "the current thread's process pointer is unreadable";
        return;
    }
    auto list = ks.processes();
    if (list) {
        for (const auto& p : list->processes) {
            if (p.eprocess == *process) {
                a.process_name = p.image;
                a.process_note = "from KDDEBUGGER_DATA64's offsets";
                return;
            }
        }
    }
    a.process_note = "process " + lower_hex(*process) + " is not in the active process list";
    if (*process != 0 && info->kddata.PsActiveProcessHead != 0) {
        // The idle process is not in the list.
        if (auto idle = m_dbg.lookup_symbol("nt", "PsIdleProcess")) {
            if (auto v = m_dbg.memory().read_u64(*idle); v && *v == *process) {
                a.process_name = "Idle";
                a.process_note = "nt!PsIdleProcess";
            }
        }
    }
}

void BugCheckAnalyzer::read_irql(BugCheckAnalysis& a) {
    KernelState ks(m_dbg);
    auto cpu = ks.processor(m_dbg.current_processor());
    if (!cpu) {
        a.irql_source = "the KPRCB is unreadable: " + cpu.error().message;
        return;
    }
    if (auto kt = KernelTypes::of_nt(m_dbg); kt && kt->has_field("_KPRCB", "DebuggerSavedIRQL")) {
        if (auto v = kt->read_unsigned(cpu->kprcb, "_KPRCB", "DebuggerSavedIRQL")) {
            a.irql = static_cast<uint32_t>(*v);
            a.irql_source = "KPRCB.DebuggerSavedIRQL (nt's types)";
            return;
        }
    }
    if (cpu->cr8) {
        a.irql = static_cast<uint32_t>(*cpu->cr8 & 0xF);
        a.irql_source = "CR8 saved in the KPRCB (KDDEBUGGER_DATA64; KPRCB.DebuggerSavedIRQL "
                        "needs nt's types)";
        return;
    }
    a.irql_source = "KPRCB.DebuggerSavedIRQL needs nt's types";
}

void BugCheckAnalyzer::read_stack(BugCheckAnalysis& a, size_t max_frames) {
    auto frames = m_dbg.stack_trace(max_frames);
    if (!frames) {
        a.stack_error = frames.error().message;
        return;
    }
    for (const auto& f : *frames) {
        AnalysisFrame af;
        af.frame = f;
        if (f.caller_sp != 0) {
            if (auto mem = m_dbg.read_virtual(f.caller_sp, 32)) {
                for (size_t q = 0; q < 4; ++q) {
                    bool valid = true;
                    uint64_t v = 0;
                    for (size_t b = 0; b < 8; ++b) {
                        valid = valid && mem->valid[q * 8 + b];
                        v |= uint64_t{mem->bytes[q * 8 + b]} << (8 * b);
                    }
                    if (valid) {
                        af.args[q] = v;
                    }
                }
            }
        }
        af.symbol = m_dbg.symbolize(f.pc);
        a.stack.push_back(std::move(af));
    }
    if (a.stack.empty()) {
        a.stack_error = "the unwinder found no frame";
    }
}

} // namespace kdcart::engine
