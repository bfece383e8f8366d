#pragma once
// WinDbg's text for !object, !drvobj, !devobj, !devstack and !irp (003:1550-1586, 003:2694-2708,
// 001:1209-1234 in x64 widths). Pure functions over engine data; symbols come through a
// callback ("kdtest!KdTestDispatch" or nullopt).
#include "engine/IoState.h"
#include "engine/ObjectState.h"

#include <functional>
#include <optional>
#include <string>

namespace kdcart::cli {

using SymbolText = std::function<std::optional<std::string>(uint64_t)>;

// IRP_MJ_CREATE ... IRP_MJ_PNP; "IRP_MJ_0x1f" past the table.
std::string irp_major_name(uint8_t major);
// The PnP / power / WMI / SCSI minor codes by name; "N/A" where a major has none.
std::string irp_minor_name(uint8_t major, uint8_t minor);

//   Object: ffffe00fb0e2ae50  Type: (ffffe00fae0a8f20) Driver
//       ObjectHeader: ffffe00fb0e2ae20 (new version)
//       HandleCount: 0  PointerCount: 5
//       Directory Object: ffffc00b4ba0a8b0  Name: kdtest
// and, for a directory, its entries:
//       Hash Address          Type                      Name
//       ---- -------          ----                      ----
//        13  ffffe00fb0e2ae50 Driver                    kdtest
std::string format_object(const engine::ObjectHeaderInfo& object,
                          const engine::DirectoryListing* directory);

// !drvobj: "Driver object (ADDR) is for:", the name, the device list; flags & 2: DriverEntry,
// DriverStartIo, DriverUnload, AddDevice and the dispatch routines with their symbols.
std::string format_driver(const engine::DriverInfo& driver, uint64_t flags,
                          const SymbolText& symbol);

// !devobj (001:1209-1225).
std::string format_device(const engine::DeviceInfo& device);

// !devstack (001:1228-1234): top first, '>' at `selected`.
std::string format_device_stack(const std::vector<engine::DeviceInfo>& stack, uint64_t selected);

// !irp (003:1550-1581, 003:2694-2708): the head line, then per stack location the
// "[MAJOR(m), MINOR(n)]" line ('>' marks the current one), flags, control, device, file,
// completion-context and the control bits' words, the driver and completion routine, the
// four arguments. `detail` (!irp ADDR 1): the IRP's fields first.
std::string format_irp(const engine::IrpInfo& irp, bool detail, const SymbolText& symbol);

} // namespace kdcart::cli
