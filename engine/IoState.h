#pragma once
// Drivers, devices and IRPs through nt's PDB types by field name (_DRIVER_OBJECT,
// _DEVICE_OBJECT, _DEVOBJ_EXTENSION, _IRP, _IO_STACK_LOCATION). Each read checks what it was
// given: a driver or device object's header type ("Driver"/"Device") and its Type/Size fields,
// an IRP's Type (IO_TYPE_IRP) and that its stack locations fit its Size; a wrong address gets
// a message that says which check failed.
#include "engine/KernelTypes.h"
#include "engine/ObjectState.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

constexpr uint16_t k_io_type_device = 3;
constexpr uint16_t k_io_type_driver = 4;
constexpr uint16_t k_io_type_irp = 6;

struct DriverInfo {
    uint64_t object = 0;
    std::string name; // DriverName ("\Driver\kdtest")
    uint32_t flags = 0;
    uint64_t driver_start = 0;
    uint64_t driver_size = 0;
    uint64_t driver_init = 0;
    uint64_t driver_start_io = 0;
    uint64_t driver_unload = 0;
    std::optional<uint64_t> add_device; // DriverExtension->AddDevice
    uint64_t fast_io_dispatch = 0;
    std::vector<uint64_t> devices; // DeviceObject, NextDevice...
    std::optional<std::string> devices_broken;
    std::vector<uint64_t> major_functions; // IRP_MJ_* (28 on every Windows)
};

struct DeviceInfo {
    uint64_t object = 0;
    std::optional<std::string> name; // the object's name ("KdTest0")
    uint64_t driver = 0;
    std::string driver_name;
    uint64_t current_irp = 0;
    int64_t reference_count = 0;
    uint32_t device_type = 0;
    uint32_t flags = 0;
    uint32_t characteristics = 0;
    uint64_t device_extension = 0;
    uint64_t devobj_extension = 0;
    std::optional<uint32_t> extension_flags;
    uint64_t attached_device = 0; // the device above (AttachedDevice)
    uint64_t attached_to = 0;     // the device below (DeviceObjectExtension->AttachedTo)
    uint32_t stack_size = 0;
};

struct IrpStackLocation {
    uint32_t number = 0; // 1-based, as CurrentLocation counts
    uint64_t address = 0;
    uint8_t major = 0;
    uint8_t minor = 0;
    uint8_t flags = 0;
    uint8_t control = 0;
    uint64_t device = 0;
    std::string driver_name; // of `device`, when readable
    uint64_t file = 0;
    uint64_t completion = 0;
    uint64_t context = 0;
    std::array<uint64_t, 4> args{0, 0, 0, 0};
};

struct IrpInfo {
    uint64_t irp = 0;
    uint32_t size = 0;
    int32_t stack_count = 0;
    int32_t current_location = 0;
    uint64_t current_stack_location = 0;
    uint32_t flags = 0;
    uint64_t mdl = 0;
    uint64_t system_buffer = 0;
    uint64_t thread = 0;
    uint64_t thread_list_flink = 0;
    uint64_t thread_list_blink = 0;
    uint32_t status = 0;
    uint64_t information = 0;
    uint8_t requestor_mode = 0;
    uint8_t pending_returned = 0;
    uint8_t cancel = 0;
    uint8_t cancel_irql = 0;
    uint64_t user_iosb = 0;
    uint64_t user_event = 0;
    uint64_t cancel_routine = 0;
    uint64_t user_buffer = 0;
    uint64_t original_file_object = 0;
    std::vector<IrpStackLocation> locations;
};

class IoState {
  public:
    IoState(Debugger& dbg, const KernelTypes& types)
        : m_dbg(dbg), m_types(types), m_ob(dbg, types) {}

    // A DRIVER_OBJECT by address, or by name: "\Driver\kdtest", "\FileSystem\Ntfs" or plain
    // "kdtest" (looked up in \Driver, then \FileSystem).
    [[nodiscard]] Result<DriverInfo> driver(uint64_t object);
    [[nodiscard]] Result<uint64_t> driver_by_name(std::string_view name);
    [[nodiscard]] Result<DeviceInfo> device(uint64_t object);
    // The device stack `object` is in, top first (AttachedDevice up, AttachedTo down).
    [[nodiscard]] Result<std::vector<DeviceInfo>> device_stack(uint64_t object);
    [[nodiscard]] Result<IrpInfo> irp(uint64_t irp);

    static constexpr size_t k_max_devices = 256;

  private:
    [[nodiscard]] Result<void> check_object(uint64_t object, std::string_view type_name,
                                            std::string_view struct_name, uint16_t io_type);
    std::string driver_name_of(uint64_t driver);
    Debugger& m_dbg;
    const KernelTypes& m_types;
    ObjectState m_ob;
};

} // namespace kdcart::engine
