#include "engine/IoState.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"

#include <cinttypes>
#include <cstdio>
#include <unordered_set>

namespace kdcart::engine {

Result<void> IoState::check_object(uint64_t object, std::string_view type_name,
                                   std::string_view struct_name, uint16_t io_type) {
    auto h = m_ob.header(object);
    if (!h) {
        return make_error(Errc::InvalidArgument, h.error().message);
    }
    if (h->type_name != type_name) {
        return make_error(Errc::InvalidArgument,
                          hex(object) + " is not a " + std::string(type_name) +
                              " object: its object header says " + h->type_name);
    }
    auto type = m_types.read_unsigned(object, struct_name, "Type");
    if (!type || *type != io_type) {
        return make_error(Errc::InvalidArgument,
                          hex(object) + ": " + std::string(struct_name) + ".Type is " +
                              (type ? hex(*type) : std::string("unreadable")) + ", not " +
                              hex(io_type));
    }
    // Size: exactly the structure for a driver object, at least it for a device object (its
    // extension follows).
    auto size = m_types.read_unsigned(object, struct_name, "Size");
    auto expected = m_types.size_of(struct_name);
    if (size && expected &&
        (io_type == k_io_type_driver ? *size != *expected : *size < *expected)) {
        return make_error(Errc::InvalidArgument, hex(object) + ": " + std::string(struct_name) +
                                                     ".Size is " + hex(*size) + ", not " +
                                                     (io_type == k_io_type_driver ? "" : ">= ") +
                                                     hex(*expected));
    }
    return {};
}

std::string IoState::driver_name_of(uint64_t driver) {
    if (driver == 0) {
        return {};
    }
    return m_types.read_unicode_string(driver, "_DRIVER_OBJECT", "DriverName", 512).value_or("");
}

Result<uint64_t> IoState::driver_by_name(std::string_view name) {
    if (!name.empty() && name[0] == '\\') {
        return m_ob.lookup(name);
    }
    auto d = m_ob.lookup("\\Driver\\" + std::string(name));
    if (d) {
        return d;
    }
    if (auto f = m_ob.lookup("\\FileSystem\\" + std::string(name))) {
        return f;
    }
    return d;
}

Result<DriverInfo> IoState::driver(uint64_t object) {
    if (auto c = check_object(object, "Driver", "_DRIVER_OBJECT", k_io_type_driver); !c) {
        return tl::unexpected(c.error());
    }
    DriverInfo d;
    d.object = object;
    auto rd = [&](std::string_view field) {
        return m_types.read_unsigned(object, "_DRIVER_OBJECT", field).value_or(0);
    };
    d.name = driver_name_of(object);
    d.flags = static_cast<uint32_t>(rd("Flags"));
    d.driver_start = rd("DriverStart");
    d.driver_size = rd("DriverSize");
    d.driver_init = rd("DriverInit");
    d.driver_start_io = rd("DriverStartIo");
    d.driver_unload = rd("DriverUnload");
    d.fast_io_dispatch = rd("FastIoDispatch");
    if (m_types.has_type("_DRIVER_EXTENSION") &&
        m_types.has_field("_DRIVER_EXTENSION", "AddDevice")) {
        if (const uint64_t ext = rd("DriverExtension"); ext != 0) {
            if (auto a = m_types.read_pointer(ext, "_DRIVER_EXTENSION", "AddDevice")) {
                d.add_device = *a;
            }
        }
    }
    if (auto mf = m_types.field("_DRIVER_OBJECT", "MajorFunction")) {
        const uint64_t n = mf->size >= 8 ? std::min<uint64_t>(mf->size / 8, 64) : 28;
        if (auto bytes = m_types.read_bytes(object + mf->offset, n * 8)) {
            for (uint64_t i = 0; i < n; ++i) {
                uint64_t v = 0;
                for (size_t b = 0; b < 8; ++b) {
                    v |= uint64_t{(*bytes)[i * 8 + b]} << (8 * b);
                }
                d.major_functions.push_back(v);
            }
        }
    }
    std::unordered_set<uint64_t> seen;
    uint64_t dev = rd("DeviceObject");
    while (dev != 0) {
        if (!seen.insert(dev).second) {
            d.devices_broken = "the NextDevice chain loops at " + hex(dev);
            break;
        }
        if (d.devices.size() >= k_max_devices) {
            d.devices_broken = "more than " + std::to_string(k_max_devices) + " devices: stopped";
            break;
        }
        d.devices.push_back(dev);
        auto next = m_types.read_pointer(dev, "_DEVICE_OBJECT", "NextDevice");
        if (!next) {
            d.devices_broken = "device " + hex(dev) + "'s NextDevice is not readable";
            break;
        }
        dev = *next;
    }
    return d;
}

Result<DeviceInfo> IoState::device(uint64_t object) {
    if (auto c = check_object(object, "Device", "_DEVICE_OBJECT", k_io_type_device); !c) {
        return tl::unexpected(c.error());
    }
    DeviceInfo d;
    d.object = object;
    auto rd = [&](std::string_view field) {
        return m_types.read_unsigned(object, "_DEVICE_OBJECT", field).value_or(0);
    };
    if (auto h = m_ob.header(object)) {
        d.name = h->name;
    }
    d.driver = rd("DriverObject");
    d.driver_name = driver_name_of(d.driver);
    d.current_irp = rd("CurrentIrp");
    d.reference_count = m_types.read_signed(object, "_DEVICE_OBJECT", "ReferenceCount").value_or(0);
    d.device_type = static_cast<uint32_t>(rd("DeviceType"));
    d.flags = static_cast<uint32_t>(rd("Flags"));
    d.characteristics = static_cast<uint32_t>(rd("Characteristics"));
    d.device_extension = rd("DeviceExtension");
    d.devobj_extension = rd("DeviceObjectExtension");
    d.attached_device = rd("AttachedDevice");
    d.stack_size = static_cast<uint32_t>(rd("StackSize"));
    if (d.devobj_extension != 0) {
        d.attached_to =
            m_types.read_pointer(d.devobj_extension, "_DEVOBJ_EXTENSION", "AttachedTo").value_or(0);
        if (m_types.has_field("_DEVOBJ_EXTENSION", "ExtensionFlags")) {
            if (auto f = m_types.read_unsigned(d.devobj_extension, "_DEVOBJ_EXTENSION",
                                               "ExtensionFlags")) {
                d.extension_flags = static_cast<uint32_t>(*f);
            }
        }
    }
    return d;
}

Result<std::vector<DeviceInfo>> IoState::device_stack(uint64_t object) {
    auto start = device(object);
    if (!start) {
        return tl::unexpected(start.error());
    }
    // Up to the top through AttachedDevice, then down through AttachedTo.
    std::unordered_set<uint64_t> seen{object};
    uint64_t top = object;
    uint64_t above = start->attached_device;
    while (above != 0 && seen.size() < k_max_devices) {
        if (!seen.insert(above).second) {
            return make_error(Errc::InvalidArgument,
                              "the AttachedDevice chain loops at " + hex(above));
        }
        top = above;
        above = m_types.read_pointer(above, "_DEVICE_OBJECT", "AttachedDevice").value_or(0);
    }
    std::vector<DeviceInfo> out;
    seen.clear();
    uint64_t cur = top;
    while (cur != 0 && out.size() < k_max_devices) {
        if (!seen.insert(cur).second) {
            return make_error(Errc::InvalidArgument, "the AttachedTo chain loops at " + hex(cur));
        }
        auto d = device(cur);
        if (!d) {
            return make_error(Errc::InvalidArgument,
                              "the stack breaks at " + hex(cur) + ": " + d.error().message);
        }
        cur = d->attached_to;
        out.push_back(std::move(*d));
    }
    return out;
}

Result<IrpInfo> IoState::irp(uint64_t address) {
    auto type = m_types.read_unsigned(address, "_IRP", "Type");
    if (!type) {
        return make_error(Errc::Unreadable, hex(address) + " is not readable");
    }
    if (*type != k_io_type_irp) {
        return make_error(Errc::InvalidArgument, "IRP signature does not match, probably not an "
                                                 "IRP (" +
                                                     hex(address) + ": _IRP.Type is " + hex(*type) +
                                                     ", not 6)");
    }
    IrpInfo r;
    r.irp = address;
    auto rd = [&](std::string_view field) {
        return m_types.read_unsigned(address, "_IRP", field).value_or(0);
    };
    r.size = static_cast<uint32_t>(rd("Size"));
    r.stack_count =
        static_cast<int32_t>(m_types.read_signed(address, "_IRP", "StackCount").value_or(0));
    r.current_location =
        static_cast<int32_t>(m_types.read_signed(address, "_IRP", "CurrentLocation").value_or(0));
    r.flags = static_cast<uint32_t>(rd("Flags"));
    r.mdl = rd("MdlAddress");
    r.system_buffer = rd("AssociatedIrp.SystemBuffer");
    r.thread = rd("Tail.Overlay.Thread");
    r.current_stack_location = rd("Tail.Overlay.CurrentStackLocation");
    r.original_file_object = rd("Tail.Overlay.OriginalFileObject");
    r.thread_list_flink = rd("ThreadListEntry.Flink");
    r.thread_list_blink = rd("ThreadListEntry.Blink");
    r.status = static_cast<uint32_t>(rd("IoStatus.Status"));
    r.information = rd("IoStatus.Information");
    r.requestor_mode = static_cast<uint8_t>(rd("RequestorMode"));
    r.pending_returned = static_cast<uint8_t>(rd("PendingReturned"));
    r.cancel = static_cast<uint8_t>(rd("Cancel"));
    r.cancel_irql = static_cast<uint8_t>(rd("CancelIrql"));
    r.user_iosb = rd("UserIosb");
    r.user_event = rd("UserEvent");
    r.cancel_routine = rd("CancelRoutine");
    r.user_buffer = rd("UserBuffer");

    auto irp_size = m_types.size_of("_IRP");
    auto loc_size = m_types.size_of("_IO_STACK_LOCATION");
    if (!irp_size || !loc_size) {
        return tl::unexpected(!irp_size ? irp_size.error() : loc_size.error());
    }
    if (r.stack_count < 0 || r.stack_count > 64 ||
        *irp_size + uint64_t(r.stack_count) * *loc_size > r.size) {
        return make_error(Errc::InvalidArgument, hex(address) + " is probably not an IRP: " +
                                                     std::to_string(r.stack_count) +
                                                     " stack locations do not fit its "
                                                     "Size " +
                                                     hex(r.size));
    }
    for (int32_t n = 1; n <= r.stack_count; ++n) {
        IrpStackLocation l;
        l.number = static_cast<uint32_t>(n);
        l.address = address + *irp_size + uint64_t(n - 1) * *loc_size;
        auto rl = [&](std::string_view field) {
            return m_types.read_unsigned(l.address, "_IO_STACK_LOCATION", field).value_or(0);
        };
        l.major = static_cast<uint8_t>(rl("MajorFunction"));
        l.minor = static_cast<uint8_t>(rl("MinorFunction"));
        l.flags = static_cast<uint8_t>(rl("Flags"));
        l.control = static_cast<uint8_t>(rl("Control"));
        l.device = rl("DeviceObject");
        l.file = rl("FileObject");
        l.completion = rl("CompletionRoutine");
        l.context = rl("Context");
        l.args = {rl("Parameters.Others.Argument1"), rl("Parameters.Others.Argument2"),
                  rl("Parameters.Others.Argument3"), rl("Parameters.Others.Argument4")};
        if (l.device != 0) {
            if (auto drv = m_types.read_pointer(l.device, "_DEVICE_OBJECT", "DriverObject")) {
                l.driver_name = driver_name_of(*drv);
            }
        }
        r.locations.push_back(std::move(l));
    }
    return r;
}

} // namespace kdcart::engine
