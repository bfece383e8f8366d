// `!peb`: a process's PEB, its loader list and process parameters, read through a KernelTypes
// whose reader sees that process's user half.
#include "cli/PebFormat.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace kdcart::cli {

namespace {

std::string p16(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return buf;
}

// A module's TimeDateStamp and its date as !peb shows them ("f4d5cd46 Mar 01 22:33:42
// 2100"), read from its PE header in the process.
std::string timestamp(const engine::KernelTypes& u, uint64_t base) {
    auto mz = u.read_bytes(base, 0x40);
    if (!mz || (*mz)[0] != 'M' || (*mz)[1] != 'Z') {
        return "???????? (the image header is not readable)";
    }
    uint32_t lfanew = 0;
    std::memcpy(&lfanew, mz->data() + 0x3C, 4);
    auto nt = u.read_bytes(base + lfanew, 12);
    if (!nt || lfanew > 0x1000) {
        return "???????? (the image header is not readable)";
    }
    uint32_t stamp = 0;
    std::memcpy(&stamp, nt->data() + 8, 4);
    const std::time_t t = stamp;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%b %d %H:%M:%S %Y", &tm);
    char out[96];
    std::snprintf(out, sizeof out, "%08x %s", stamp, buf);
    return out;
}

} // namespace

std::string format_peb(const engine::KernelTypes& u, uint64_t peb_addr) {
    auto yes_no = [&](std::string_view field) -> std::string {
        auto v = u.read_unsigned(peb_addr, "_PEB", field);
        return v ? (*v ? "Yes" : "No") : "<unreadable>";
    };
    auto ptr = [&](uint64_t base, std::string_view type, std::string_view field) {
        auto v = u.read_pointer(base, type, field);
        return v ? p16(*v) : std::string("<unreadable>");
    };
    std::string out = "PEB at " + p16(peb_addr) + "\n";
    if (!u.read_bytes(peb_addr, 8)) {
        return out + "    error 1 InitTypeRead( nt!_PEB at " + p16(peb_addr) + ")\n";
    }
    out += "    InheritedAddressSpace:    " + yes_no("InheritedAddressSpace") + "\n";
    out += "    ReadImageFileExecOptions: " + yes_no("ReadImageFileExecOptions") + "\n";
    out += "    BeingDebugged:            " + yes_no("BeingDebugged") + "\n";
    out += "    ImageBaseAddress:         " + ptr(peb_addr, "_PEB", "ImageBaseAddress") + "\n";
    const uint64_t ldr = u.read_pointer(peb_addr, "_PEB", "Ldr").value_or(0);
    out += "    Ldr                       " + p16(ldr) + "\n";
    if (ldr != 0) {
        auto init = u.read_unsigned(ldr, "_PEB_LDR_DATA", "Initialized");
        out += std::string("    Ldr.Initialized:          ") +
               (init ? (*init ? "Yes" : "No") : "<unreadable>") + "\n";
        auto list_line = [&](const char* label, std::string_view field) {
            auto off = u.offset("_PEB_LDR_DATA", field);
            if (!off) {
                return;
            }
            auto f = u.read_u64(ldr + *off);
            auto b = u.read_u64(ldr + *off + 8);
            out += std::string(label) + (f ? p16(*f) : "<unreadable>") + " . " +
                   (b ? p16(*b) : "<unreadable>") + "\n";
        };
        list_line("    Ldr.InInitializationOrderModuleList: ", "InInitializationOrderModuleList");
        list_line("    Ldr.InLoadOrderModuleList:           ", "InLoadOrderModuleList");
        list_line("    Ldr.InMemoryOrderModuleList:         ", "InMemoryOrderModuleList");
        out += "                    Base TimeStamp                     Module\n";
        auto mods = u.walk_field_list(ldr, "_PEB_LDR_DATA", "InLoadOrderModuleList",
                                      "_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks", 1024);
        if (mods) {
            for (uint64_t e : mods->entries) {
                const uint64_t base =
                    u.read_pointer(e, "_LDR_DATA_TABLE_ENTRY", "DllBase").value_or(0);
                auto name = u.read_unicode_string(e, "_LDR_DATA_TABLE_ENTRY", "FullDllName");
                char buf[64];
                std::snprintf(buf, sizeof buf, "        %16" PRIx64 " ", base);
                out += buf + timestamp(u, base) + " " +
                       (name ? *name : std::string("< Name not readable >")) + "\n";
            }
            if (mods->broken) {
                out += "    (the loader list is broken: " + *mods->broken + ")\n";
            }
        } else {
            out += "    " + mods.error().message + "\n";
        }
    }
    auto optional_ptr = [&](const char* label, std::string_view field) {
        if (u.has_field("_PEB", field)) {
            out += std::string(label) + ptr(peb_addr, "_PEB", field) + "\n";
        }
    };
    optional_ptr("    SubSystemData:     ", "SubSystemData");
    optional_ptr("    ProcessHeap:       ", "ProcessHeap");
    const uint64_t params = u.read_pointer(peb_addr, "_PEB", "ProcessParameters").value_or(0);
    out += "    ProcessParameters: " + p16(params) + "\n";
    if (params != 0) {
        auto str = [&](const char* label, std::string_view field) {
            if (!u.has_field("_RTL_USER_PROCESS_PARAMETERS", field)) {
                return;
            }
            auto s = u.read_unicode_string(params, "_RTL_USER_PROCESS_PARAMETERS", field);
            out += std::string(label) + "'" + (s ? *s : "< Name not readable >") + "'\n";
        };
        str("    CurrentDirectory:  ", "CurrentDirectory.DosPath");
        str("    WindowTitle:  ", "WindowTitle");
        str("    ImageFile:    ", "ImagePathName");
        str("    CommandLine:  ", "CommandLine");
        str("    DllPath:      ", "DllPath");
    }
    return out;
}

} // namespace kdcart::cli
