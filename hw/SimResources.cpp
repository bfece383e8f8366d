// What `!locks` and `!sysinfo machineid` read on kdsim: three executive resources on
// nt!ExpSystemResourcesList (one held exclusively with contention, one shared, one free; all
// owned by System's first thread), and an SMBIOS structure table (BIOS, system, baseboard, end)
// in one physical page that nt!WmipSMBiosTablePhysicalAddress / WmipSMBiosTableLength describe.
// The values are sim_abi.h's SIM_ERESOURCE_* / SIM_SMBIOS_*.
#include "hw/SimMachine.h"
#include "hw/images/sim_abi.h"

#include <cstring>
#include <vector>

namespace kdcart::hw {

namespace {

// One SMBIOS structure: the formatted area (type, length, handle, then `body`) and its strings.
void smbios_structure(std::vector<uint8_t>& out, uint8_t type, uint16_t handle,
                      std::vector<uint8_t> body, const std::vector<const char*>& strings) {
    out.push_back(type);
    out.push_back(static_cast<uint8_t>(4 + body.size()));
    out.push_back(static_cast<uint8_t>(handle));
    out.push_back(static_cast<uint8_t>(handle >> 8));
    out.insert(out.end(), body.begin(), body.end());
    if (strings.empty()) {
        out.push_back(0);
    }
    for (const char* s : strings) {
        out.insert(out.end(), s, s + std::strlen(s) + 1);
    }
    out.push_back(0);
}

} // namespace

Result<void> SimMachine::build_resources() {
    const uint64_t head = symbol("ExpSystemResourcesList");
    if (head == 0 || m_workload.processes.empty() || m_workload.processes[0].threads.empty()) {
        return {};
    }
    const uint64_t owner = m_workload.processes[0].threads[0].ethread;
    m_workload.resource_owner_thread = owner;
    put64(head, head);
    put64(head + 8, head);
    struct Def {
        const char* name;
        uint16_t flag;
        int16_t active;
        uint32_t contention;
    };
    const Def defs[] = {
        {"PiEngineLock", 0x80, 1, SIM_ERESOURCE_PI_ENGINE_CONTENTION},
        {"IopDeviceTreeLock", 0, 1, 0},
        {"CmpRegistryLock", 0, 0, 0},
    };
    for (const auto& d : defs) {
        const uint64_t r = symbol(d.name);
        if (r == 0) {
            continue;
        }
        // Insert at the tail.
        const uint64_t links = r + SIM_ERESOURCE_SYSTEM_RESOURCES_LIST;
        const uint64_t tail = get64(head + 8);
        put64(links, head);
        put64(links + 8, tail);
        put64(tail, links);
        put64(head + 8, links);
        put16(r + SIM_ERESOURCE_ACTIVE_COUNT, static_cast<uint16_t>(d.active));
        put16(r + SIM_ERESOURCE_FLAG, d.flag);
        put32(r + SIM_ERESOURCE_CONTENTION_COUNT, d.contention);
        put64(r + SIM_ERESOURCE_OWNER_THREAD, d.active != 0 ? owner : 0);
        put32(r + SIM_ERESOURCE_OWNER_COUNT, d.active != 0 ? 1 : 0);
    }
    return {};
}

Result<void> SimMachine::build_smbios_table() {
    std::vector<uint8_t> t;
    // Type 0 (BIOS): vendor, version, start segment, date, ROM size, characteristics (8),
    // extension bytes (2), release major/minor, EC release major/minor.
    std::vector<uint8_t> bios(0x18 - 4, 0);
    bios[0x04 - 4] = 1;
    bios[0x05 - 4] = 2;
    bios[0x08 - 4] = 3;
    bios[0x14 - 4] = SIM_SMBIOS_BIOS_MAJOR;
    bios[0x15 - 4] = SIM_SMBIOS_BIOS_MINOR;
    bios[0x16 - 4] = 0xFF;
    bios[0x17 - 4] = 0xFF;
    smbios_structure(t, 0, 0, bios,
                     {SIM_SMBIOS_BIOS_VENDOR, SIM_SMBIOS_BIOS_VERSION, SIM_SMBIOS_BIOS_DATE});
    // Type 1 (system): manufacturer, product, version, serial, UUID (16), wake-up, SKU, family.
    std::vector<uint8_t> sys(0x1B - 4, 0);
    sys[0x04 - 4] = 1;
    sys[0x05 - 4] = 2;
    sys[0x06 - 4] = 3;
    sys[0x19 - 4] = 4;
    sys[0x1A - 4] = 5;
    smbios_structure(t, 1, 1, sys,
                     {SIM_SMBIOS_SYSTEM_MANUFACTURER, SIM_SMBIOS_SYSTEM_PRODUCT,
                      SIM_SMBIOS_SYSTEM_VERSION, SIM_SMBIOS_SYSTEM_SKU, SIM_SMBIOS_SYSTEM_FAMILY});
    // Type 2 (baseboard): manufacturer, product, version.
    std::vector<uint8_t> board(0x08 - 4, 0);
    board[0x04 - 4] = 1;
    board[0x05 - 4] = 2;
    board[0x06 - 4] = 3;
    smbios_structure(
        t, 2, 2, board,
        {SIM_SMBIOS_BOARD_MANUFACTURER, SIM_SMBIOS_BOARD_PRODUCT, SIM_SMBIOS_BOARD_VERSION});
    smbios_structure(t, 127, 3, {}, {});
    auto page = pool_allocate(PAGE_SIZE, PAGE_SIZE);
    if (!page) {
        return tl::unexpected(page.error());
    }
    put_bytes(*page, t);
    auto pa = translate(*page);
    if (!pa) {
        return make_error(Errc::Unsupported, "SimMachine: the SMBIOS page is not mapped");
    }
    put64(symbol("WmipSMBiosTablePhysicalAddress"), *pa);
    put32(symbol("WmipSMBiosTableLength"), static_cast<uint32_t>(t.size()));
    m_workload.smbios_table = *pa;
    return {};
}

} // namespace kdcart::hw
