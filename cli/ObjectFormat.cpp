#include "cli/ObjectFormat.h"
#include "cli/TextUtil.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

std::string p16(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return buf;
}

std::string p8(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08" PRIx64, v);
    return buf;
}

std::string pad(std::string s, size_t width) {
    if (s.size() < width) {
        s.resize(width, ' ');
    }
    return s;
}

constexpr const char* kMajor[] = {
    "IRP_MJ_CREATE",
    "IRP_MJ_CREATE_NAMED_PIPE",
    "IRP_MJ_CLOSE",
    "IRP_MJ_READ",
    "IRP_MJ_WRITE",
    "IRP_MJ_QUERY_INFORMATION",
    "IRP_MJ_SET_INFORMATION",
    "IRP_MJ_QUERY_EA",
    "IRP_MJ_SET_EA",
    "IRP_MJ_FLUSH_BUFFERS",
    "IRP_MJ_QUERY_VOLUME_INFORMATION",
    "IRP_MJ_SET_VOLUME_INFORMATION",
    "IRP_MJ_DIRECTORY_CONTROL",
    "IRP_MJ_FILE_SYSTEM_CONTROL",
    "IRP_MJ_DEVICE_CONTROL",
    "IRP_MJ_INTERNAL_DEVICE_CONTROL",
    "IRP_MJ_SHUTDOWN",
    "IRP_MJ_LOCK_CONTROL",
    "IRP_MJ_CLEANUP",
    "IRP_MJ_CREATE_MAILSLOT",
    "IRP_MJ_QUERY_SECURITY",
    "IRP_MJ_SET_SECURITY",
    "IRP_MJ_POWER",
    "IRP_MJ_SYSTEM_CONTROL",
    "IRP_MJ_DEVICE_CHANGE",
    "IRP_MJ_QUERY_QUOTA",
    "IRP_MJ_SET_QUOTA",
    "IRP_MJ_PNP",
};

constexpr const char* kPnpMinor[] = {
    "IRP_MN_START_DEVICE",
    "IRP_MN_QUERY_REMOVE_DEVICE",
    "IRP_MN_REMOVE_DEVICE",
    "IRP_MN_CANCEL_REMOVE_DEVICE",
    "IRP_MN_STOP_DEVICE",
    "IRP_MN_QUERY_STOP_DEVICE",
    "IRP_MN_CANCEL_STOP_DEVICE",
    "IRP_MN_QUERY_DEVICE_RELATIONS",
    "IRP_MN_QUERY_INTERFACE",
    "IRP_MN_QUERY_CAPABILITIES",
    "IRP_MN_QUERY_RESOURCES",
    "IRP_MN_QUERY_RESOURCE_REQUIREMENTS",
    "IRP_MN_QUERY_DEVICE_TEXT",
    "IRP_MN_FILTER_RESOURCE_REQUIREMENTS",
    nullptr,
    "IRP_MN_READ_CONFIG",
    "IRP_MN_WRITE_CONFIG",
    "IRP_MN_EJECT",
    "IRP_MN_SET_LOCK",
    "IRP_MN_QUERY_ID",
    "IRP_MN_QUERY_PNP_DEVICE_STATE",
    "IRP_MN_QUERY_BUS_INFORMATION",
    "IRP_MN_DEVICE_USAGE_NOTIFICATION",
    "IRP_MN_SURPRISE_REMOVAL",
    nullptr,
    "IRP_MN_DEVICE_ENUMERATED",
};

constexpr const char* kPowerMinor[] = {"IRP_MN_WAIT_WAKE", "IRP_MN_POWER_SEQUENCE",
                                       "IRP_MN_SET_POWER", "IRP_MN_QUERY_POWER"};

constexpr const char* kWmiMinor[] = {
    "IRP_MN_QUERY_ALL_DATA",
    "IRP_MN_QUERY_SINGLE_INSTANCE",
    "IRP_MN_CHANGE_SINGLE_INSTANCE",
    "IRP_MN_CHANGE_SINGLE_ITEM",
    "IRP_MN_ENABLE_EVENTS",
    "IRP_MN_DISABLE_EVENTS",
    "IRP_MN_ENABLE_COLLECTION",
    "IRP_MN_DISABLE_COLLECTION",
    "IRP_MN_REGINFO",
    "IRP_MN_EXECUTE_METHOD",
    nullptr,
    "IRP_MN_REGINFO_EX",
};

// The IO_STACK_LOCATION.Control bits, in the order WinDbg prints them (003:2698).
std::string control_words(uint8_t control) {
    std::string out;
    auto add = [&](const char* w) { out += (out.empty() ? "" : " ") + std::string(w); };
    if (control & 0x40) {
        add("Success");
    }
    if (control & 0x80) {
        add("Error");
    }
    if (control & 0x20) {
        add("Cancel");
    }
    if (control & 0x01) {
        add("pending");
    }
    return out;
}

} // namespace

std::string irp_major_name(uint8_t major) {
    if (major < std::size(kMajor)) {
        return kMajor[major];
    }
    return "IRP_MJ_0x" + hex_digits(major);
}

std::string irp_minor_name(uint8_t major, uint8_t minor) {
    const char* name = nullptr;
    if (major == 0x1b && minor < std::size(kPnpMinor)) {
        name = kPnpMinor[minor];
    } else if (major == 0x16 && minor < std::size(kPowerMinor)) {
        name = kPowerMinor[minor];
    } else if (major == 0x17 && minor < std::size(kWmiMinor)) {
        name = kWmiMinor[minor];
    } else if (major == 0x0f && minor == 1) {
        name = "IRP_MN_SCSI_CLASS";
    }
    return name != nullptr ? name : "N/A";
}

std::string format_object(const engine::ObjectHeaderInfo& o,
                          const engine::DirectoryListing* directory) {
    std::string out =
        "Object: " + p16(o.object) + "  Type: (" + p16(o.type_object) + ") " + o.type_name + "\n";
    out += "    ObjectHeader: " + p16(o.header) + " (new version)\n";
    out += "    HandleCount: " + std::to_string(o.handle_count) +
           "  PointerCount: " + std::to_string(o.pointer_count) + "\n";
    if (o.name) {
        out += "    Directory Object: " + p16(o.directory) + "  Name: " + *o.name + "\n";
    }
    if (directory != nullptr) {
        out += "\n    Hash Address          Type                      Name\n"
               "    ---- -------          ----                      ----\n";
        int64_t last_bucket = -1;
        for (const auto& e : directory->entries) {
            char bucket[8];
            std::snprintf(bucket, sizeof bucket, "%02u", e.bucket);
            const bool first = static_cast<int64_t>(e.bucket) != last_bucket;
            last_bucket = e.bucket;
            out += "     " + std::string(first ? bucket : "  ") + "  " + p16(e.object) + " " +
                   pad(e.type_name, 25) + " " + e.name + "\n";
        }
        if (directory->broken) {
            out += "    (the directory is broken: " + *directory->broken + ")\n";
        }
    }
    return out;
}

std::string format_driver(const engine::DriverInfo& d, uint64_t flags, const SymbolText& symbol) {
    std::string out = "Driver object (" + p16(d.object) + ") is for:\n " + d.name + "\n\n";
    out += "Driver Extension List: (id , addr)\n\n";
    out += "Device Object list:\n";
    for (uint64_t dev : d.devices) {
        out += p16(dev) + "  ";
    }
    out += "\n";
    if (d.devices_broken) {
        out += "(the device list is broken: " + *d.devices_broken + ")\n";
    }
    if ((flags & 2) == 0) {
        return out;
    }
    auto routine = [&](const char* label, std::optional<uint64_t> v) {
        std::string line = std::string(label) + (v ? p16(*v) : std::string("<unknown>")) + "\t";
        if (v && *v != 0) {
            if (auto s = symbol(*v)) {
                line += *s;
            }
        }
        return line + "\n";
    };
    out += "\n\n";
    out += routine("DriverEntry:   ", d.driver_init);
    out += routine("DriverStartIo: ", d.driver_start_io);
    out += routine("DriverUnload:  ", d.driver_unload);
    out += routine("AddDevice:     ", d.add_device);
    out += "\nDispatch routines:\n";
    for (size_t i = 0; i < d.major_functions.size(); ++i) {
        char idx[24];
        std::snprintf(idx, sizeof idx, "[%02zx] ", i);
        std::string line = idx + pad(irp_major_name(static_cast<uint8_t>(i)), 35) +
                           p16(d.major_functions[i]) + "\t";
        if (auto s = symbol(d.major_functions[i])) {
            line += *s;
        }
        out += line + "\n";
    }
    return out;
}

std::string format_device(const engine::DeviceInfo& d) {
    std::string out = "Device object (" + p16(d.object) + ") is for:\n ";
    if (d.name) {
        out += *d.name;
    }
    out += " " + d.driver_name + " DriverObject " + p16(d.driver) + "\n";
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "Current Irp %08" PRIx64 " RefCount %" PRId64 " Type %08x Flags %08x\n",
                  d.current_irp, d.reference_count, d.device_type, d.flags);
    out += buf;
    out += "DevExt " + p16(d.device_extension) + " DevObjExt " + p16(d.devobj_extension) + " \n";
    if (d.extension_flags) {
        std::snprintf(buf, sizeof buf, "ExtensionFlags (0x%08x)  \n", *d.extension_flags);
        out += buf;
    }
    std::snprintf(buf, sizeof buf, "Characteristics (0x%08x)  ", d.characteristics);
    out += buf;
    if (d.characteristics & 0x100) {
        out += "FILE_DEVICE_SECURE_OPEN";
    }
    out += "\n";
    if (d.attached_device != 0) {
        out += "AttachedDevice (Upper) " + p16(d.attached_device) + "\n";
    }
    if (d.attached_to != 0) {
        out += "AttachedTo (Lower) " + p16(d.attached_to) + "\n";
    }
    out += d.current_irp != 0 ? "Device queue is busy.\n" : "Device queue is not busy.\n";
    return out;
}

std::string format_device_stack(const std::vector<engine::DeviceInfo>& stack, uint64_t selected) {
    std::string out = "  !DevObj           !DrvObj            !DevExt           ObjectName\n";
    for (const auto& d : stack) {
        out += (d.object == selected ? "> " : "  ") + p16(d.object) + "  " +
               pad(d.driver_name, 18) + " " + p16(d.device_extension) + "  " + d.name.value_or("") +
               "\n";
    }
    return out;
}

std::string format_irp(const engine::IrpInfo& r, bool detail, const SymbolText& symbol) {
    std::string out;
    char buf[200];
    if (r.current_location > r.stack_count + 1 || r.current_location < 1) {
        std::snprintf(buf, sizeof buf,
                      "Irp is completed or not active: %d stacks, CurrentLocation %d\n",
                      r.stack_count, r.current_location);
        out += buf;
    } else if (r.current_location == r.stack_count + 1) {
        std::snprintf(buf, sizeof buf, "Irp is not yet dispatched with %d stacks\n", r.stack_count);
        out += buf;
    } else {
        std::snprintf(buf, sizeof buf,
                      "Irp is active with %d stacks %d is current (= 0x%016" PRIx64 ")\n",
                      r.stack_count, r.current_location, r.current_stack_location);
        out += buf;
    }
    out += r.mdl != 0 ? " Mdl=" + p16(r.mdl) + ":" : std::string(" No Mdl:");
    out += r.system_buffer != 0 ? " System buffer=" + p16(r.system_buffer) + ":"
                                : std::string(" No System Buffer:");
    out += " Thread " + p16(r.thread) + ":  Irp stack trace.  \n";
    if (detail) {
        auto line = [&](const char* name, const std::string& v) {
            out += std::string(name) + " = " + v + "\n";
        };
        line("Flags", p8(r.flags));
        line("ThreadListEntry.Flink", p16(r.thread_list_flink));
        line("ThreadListEntry.Blink", p16(r.thread_list_blink));
        line("IoStatus.Status", p8(r.status));
        line("IoStatus.Information", p16(r.information));
        line("RequestorMode", p8(r.requestor_mode));
        std::snprintf(buf, sizeof buf, "%02x", r.cancel);
        line("Cancel", buf);
        line("CancelIrql", std::to_string(r.cancel_irql));
        line("UserIosb", p16(r.user_iosb));
        line("UserEvent", p16(r.user_event));
        std::string cancel = p16(r.cancel_routine);
        if (r.cancel_routine != 0) {
            if (auto s = symbol(r.cancel_routine)) {
                cancel += "   " + *s;
            }
        }
        line("CancelRoutine", cancel);
        line("UserBuffer", p16(r.user_buffer));
        line("Tail.Overlay.Thread", p16(r.thread));
        line("Tail.Overlay.CurrentStackLocation", p16(r.current_stack_location));
        line("Tail.Overlay.OriginalFileObject", p16(r.original_file_object));
    }
    out += "     cmd  flg cl Device   File     Completion-Context\n";
    for (const auto& l : r.locations) {
        const bool current = static_cast<int32_t>(l.number) == r.current_location;
        std::snprintf(buf, sizeof buf, "%c[%s(%x), %s(%x)]\n", current ? '>' : ' ',
                      irp_major_name(l.major).c_str(), l.major,
                      irp_minor_name(l.major, l.minor).c_str(), l.minor);
        out += buf;
        std::snprintf(buf, sizeof buf, "           %2x %2x ", l.flags, l.control);
        out += buf;
        out += p16(l.device) + " " + p16(l.file) + " " + p16(l.completion) + "-" + p16(l.context) +
               "    " + control_words(l.control) + "\n";
        std::string who = "\t       " + l.driver_name;
        if (l.completion != 0) {
            who += "\t" + symbol(l.completion).value_or(p16(l.completion));
        }
        out += who + "\n";
        out += "\t\t\tArgs: " + p16(l.args[0]) + " " + p16(l.args[1]) + " " + p16(l.args[2]) + " " +
               p16(l.args[3]) + "\n";
    }
    return out;
}

} // namespace kdcart::cli
