#include "cli/ThreadFormat.h"
#include "cli/format/Format.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

std::string p16(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return buf;
}

std::string pad(const std::string& s, size_t width) {
    return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

} // namespace

std::string format_duration(uint64_t hundred_ns) {
    const uint64_t ms_total = hundred_ns / 10000;
    const uint64_t ms = ms_total % 1000;
    const uint64_t s_total = ms_total / 1000;
    const uint64_t days = s_total / 86400;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
                  (s_total / 3600) % 24, (s_total / 60) % 60, s_total % 60, ms);
    if (days == 0) {
        return buf;
    }
    return std::to_string(days) + (days == 1 ? " Day " : " Days ") + buf;
}

std::string format_tick_age(uint64_t hundred_ns) {
    const uint64_t ms_total = hundred_ns / 10000;
    const uint64_t s_total = ms_total / 1000;
    char buf[64];
    std::snprintf(
        buf, sizeof buf, "(%" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64 ")",
        s_total / 86400, (s_total / 3600) % 24, (s_total / 60) % 60, s_total % 60, ms_total % 1000);
    return buf;
}

std::string format_thread_line(const engine::ThreadInfo& t, size_t indent) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "THREAD %016" PRIx64 "  Cid %04" PRIx64 ".%04" PRIx64 "  Teb: %016" PRIx64
                  " Win32Thread: %016" PRIx64 " ",
                  t.ethread, t.pid, t.tid, t.teb, t.win32_thread.value_or(0));
    std::string out = std::string(indent, ' ') + buf;
    switch (t.state) {
    case 5: { // Waiting
        out += "WAIT: (" + (t.wait_reason_name.empty() ? "Unknown" : t.wait_reason_name) + ")";
        if (t.wait_mode) {
            out += *t.wait_mode == 0 ? " KernelMode" : " UserMode";
        }
        if (t.alertable) {
            out += *t.alertable ? " Alertable" : " Non-Alertable";
        }
        break;
    }
    case 2:
        out += "RUNNING";
        if (t.running_on) {
            out += " on processor " + std::to_string(*t.running_on);
        }
        break;
    case 1:
    case 3:
    case 7:
        out += engine::thread_state_name(t.state);
        if (t.next_processor) {
            out += " on processor " + std::to_string(*t.next_processor);
        }
        break;
    default:
        out += engine::thread_state_name(t.state);
        break;
    }
    return out + "\n";
}

std::string format_thread(const engine::ThreadInfo& t, const SymbolNamer& name, size_t indent) {
    const std::string in(indent, ' ');
    std::string out = format_thread_line(t, indent);
    char buf[256];
    for (const auto& w : t.waits) {
        out += in + "    " + p16(w.object) + "  " +
               (w.dispatcher_type ? engine::dispatcher_type_name(*w.dispatcher_type)
                                  : std::string("<unreadable object>")) +
               "\n";
    }
    if (t.waits_broken) {
        out += in + "    (the wait block list is broken: " + *t.waits_broken + ")\n";
    }
    if (!t.irps.empty() || t.irps_broken) {
        out += in + "IRP List:\n";
        for (const auto& irp : t.irps) {
            std::snprintf(buf, sizeof buf,
                          "    %016" PRIx64 ": (%04x,%04x) Flags: %08x  Mdl: %08" PRIx64 "\n",
                          irp.irp, irp.type.value_or(0), irp.size.value_or(0),
                          irp.flags.value_or(0), irp.mdl.value_or(0));
            out += in + buf;
        }
        if (t.irps_broken) {
            out += in + "    (the IRP list is broken: " + *t.irps_broken + ")\n";
        }
    }
    out += in + "Not impersonating\n";
    out += in + pad("Owning Process", 26) + p16(t.process) +
           "       Image:         " + t.process_image + "\n";
    if (t.apc_process != 0 && t.apc_process != t.process) {
        out += in + pad("Attached Process", 26) + p16(t.apc_process) +
               "       Image:         " + t.apc_image + "\n";
    } else {
        out += in + "Attached Process          N/A            Image:         N/A\n";
    }
    if (t.wait_time) {
        std::string line =
            in + pad("Wait Start TickCount", 26) + pad(std::to_string(*t.wait_time), 15);
        if (t.tick_count) {
            const uint64_t ticks = *t.tick_count >= *t.wait_time ? *t.tick_count - *t.wait_time : 0;
            line += "Ticks: " + std::to_string(ticks);
            if (ticks != 0) {
                line += " " + format_tick_age(ticks * t.time_increment);
            }
        }
        out += line + "\n";
    }
    if (t.context_switches) {
        std::string line = in + pad("Context Switch Count", 26);
        if (t.ideal_processor) {
            line += pad(std::to_string(*t.context_switches), 15) +
                    "IdealProcessor: " + std::to_string(*t.ideal_processor) + std::string(12, ' ');
        } else {
            line += std::to_string(*t.context_switches);
        }
        out += line + "\n";
    }
    if (t.user_time) {
        out += in + pad("UserTime", 26) +
               format_duration(uint64_t{*t.user_time} * t.time_increment) + "\n";
    }
    if (t.kernel_time) {
        out += in + pad("KernelTime", 26) +
               format_duration(uint64_t{*t.kernel_time} * t.time_increment) + "\n";
    }
    const std::optional<uint64_t> start = t.win32_start_address && *t.win32_start_address != 0
                                              ? t.win32_start_address
                                              : t.start_address;
    if (start) {
        const std::string sym = name ? name(*start) : std::string();
        std::snprintf(buf, sizeof buf, "0x%016" PRIx64, *start);
        out += in + "Win32 Start Address " +
               (sym.empty() ? std::string(buf) : sym + " (" + buf + ")") + "\n";
    }
    out += in + "Stack Init " + p16(t.stack_init) + " Current " + p16(t.kernel_stack) + "\n";
    out += in + "Base " + p16(t.stack_base) + " Limit " + p16(t.stack_limit) + " Call 0\n";
    if (t.priority && t.base_priority) {
        out += in + "Priority " + std::to_string(*t.priority) + " BasePriority " +
               std::to_string(*t.base_priority) + "\n";
    }
    return out;
}

std::string format_thread_stack(const std::vector<engine::StackFrame>& frames,
                                const SymbolNamer& name, size_t indent,
                                const TrapFrameOf& trap_frame) {
    const std::string in(indent, ' ');
    std::string out = in + "Child-SP          RetAddr           Call Site\n";
    for (const auto& f : frames) {
        std::string site = name ? name(f.pc) : std::string();
        if (site.empty()) {
            char raw[24]; // as `k` shows an address outside every module
            std::snprintf(raw, sizeof raw, "0x%llx", static_cast<unsigned long long>(f.pc));
            site = raw;
        }
        if (f.machine_frame) {
            site +=
                " (TrapFrame @ " + format_address(trap_frame ? trap_frame(f) : f.child_sp) + ")";
        }
        out += in + format_address(f.child_sp) + " " + format_address(f.return_address) + " " +
               site + "\n";
    }
    return out;
}

std::string format_process_detail(const engine::ProcessDetail& d) {
    std::string out;
    auto line = [&out](const std::string& label, const std::string& value) {
        out += "    " + pad(label, 34) + value + "\n";
    };
    if (d.device_map) {
        out += "    DeviceMap " + p16(*d.device_map) + "\n";
    }
    if (d.token) {
        line("Token", p16(*d.token));
    }
    if (d.create_time && d.system_time && *d.create_time != 0 && *d.system_time >= *d.create_time) {
        line("ElapsedTime", format_duration(*d.system_time - *d.create_time));
    }
    if (d.user_time) {
        line("UserTime", format_duration(uint64_t{*d.user_time} * d.time_increment));
    }
    if (d.kernel_time) {
        line("KernelTime", format_duration(uint64_t{*d.kernel_time} * d.time_increment));
    }
    if (d.base_priority) {
        line("BasePriority", std::to_string(*d.base_priority));
    }
    return out;
}

} // namespace kdcart::cli
