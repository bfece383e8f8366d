// !dh [-f|-s|-a|-h] module|address: a PE image's headers as WinDbg's !dh prints them, read from
// target memory: the file header, the optional header with its data directories, the section
// headers and the debug directories (the CodeView RSDS record with GUID, age and PDB name).
#include "cli/CodeCommands.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/PeImage.h"

#include <cstdio>
#include <ctime>

namespace kdcart::cli {

namespace {

std::string fmt(const char* f, unsigned long long v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

std::string line(uint64_t v, const std::string& what) {
    return fmt("%8llX ", v) + what + "\n";
}

std::string time_text(uint32_t t) {
    const std::time_t tt = t;
    std::tm tm{};
    if (!localtime_r(&tt, &tm)) {
        return "";
    }
    char b[64];
    std::strftime(b, sizeof b, "%a %b %e %H:%M:%S %Y", &tm);
    return b;
}

const char* machine_name(uint16_t m) {
    switch (m) {
    case engine::k_machine_amd64:
        return "X64";
    case engine::k_machine_i386:
        return "i386";
    case engine::k_machine_arm64:
        return "ARM64";
    default:
        return "unknown";
    }
}

const char* subsystem_name(uint16_t s) {
    switch (s) {
    case 1:
        return "Native";
    case 2:
        return "Windows GUI";
    case 3:
        return "Windows CUI";
    case 5:
        return "OS/2 CUI";
    case 7:
        return "POSIX CUI";
    case 9:
        return "Windows CE GUI";
    case 10:
        return "EFI Application";
    case 11:
        return "EFI Boot Service Driver";
    case 12:
        return "EFI Runtime Driver";
    case 16:
        return "Windows Boot Application";
    default:
        return "Unknown";
    }
}

std::string flag_lines(uint32_t value,
                       std::initializer_list<std::pair<uint32_t, const char*>> names,
                       const char* indent) {
    std::string s;
    for (const auto& [bit, name] : names) {
        if (value & bit) {
            s += std::string(indent) + name + "\n";
        }
    }
    return s;
}

const char* k_directory_names[16] = {"Export Directory",
                                     "Import Directory",
                                     "Resource Directory",
                                     "Exception Directory",
                                     "Security Directory",
                                     "Base Relocation Directory",
                                     "Debug Directory",
                                     "Description Directory",
                                     "Special Directory",
                                     "Thread Storage Directory",
                                     "Load Configuration Directory",
                                     "Bound Import Directory",
                                     "Import Address Table Directory",
                                     "Delay Import Directory",
                                     "COR20 Header Directory",
                                     "Reserved Directory"};

std::string file_header(const engine::PeImageInfo& pe) {
    std::string s = "\nFile Type: ";
    s += (pe.characteristics & 0x2000) ? "DLL\n" : "EXECUTABLE IMAGE\n";
    s += "FILE HEADER VALUES\n";
    s += line(pe.machine, std::string("machine (") + machine_name(pe.machine) + ")");
    s += line(pe.number_of_sections, "number of sections");
    s += fmt("%08llX", pe.timestamp) + " time date stamp " + time_text(pe.timestamp) + "\n\n";
    s += line(pe.symbol_table_pointer, "file pointer to symbol table");
    s += line(pe.symbol_count, "number of symbols");
    s += line(pe.optional_header_size, "size of optional header");
    s += line(pe.characteristics, "characteristics");
    s += flag_lines(pe.characteristics,
                    {{0x1, "Relocations stripped"},
                     {0x2, "Executable"},
                     {0x4, "Line numbers stripped"},
                     {0x8, "Symbols stripped"},
                     {0x20, "App can handle >2gb addresses"},
                     {0x100, "32 bit word machine"},
                     {0x200, "Debug information stripped"},
                     {0x1000, "System"},
                     {0x2000, "DLL"}},
                    "            ");
    s += "\nOPTIONAL HEADER VALUES\n";
    s += line(pe.pe32_plus ? 0x20B : 0x10B, "magic #");
    s += fmt("%5llu.", pe.linker_major) + fmt("%02llu linker version\n", pe.linker_minor);
    s += line(pe.size_of_code, "size of code");
    s += line(pe.size_of_initialized_data, "size of initialized data");
    s += line(pe.size_of_uninitialized_data, "size of uninitialized data");
    s += line(pe.entry_point, "address of entry point");
    s += line(pe.base_of_code, "base of code");
    s += "         ----- new -----\n";
    s += (pe.pe32_plus ? fmt("%016llx", pe.image_base) : fmt("%08llx", pe.image_base)) +
         " image base\n";
    s += line(pe.section_alignment, "section alignment");
    s += line(pe.file_alignment, "file alignment");
    s += line(pe.subsystem, std::string("subsystem (") + subsystem_name(pe.subsystem) + ")");
    s += fmt("%5llu.", pe.os_major) + fmt("%02llu operating system version\n", pe.os_minor);
    s += fmt("%5llu.", pe.image_major) + fmt("%02llu image version\n", pe.image_minor);
    s += fmt("%5llu.", pe.subsystem_major) + fmt("%02llu subsystem version\n", pe.subsystem_minor);
    s += line(pe.size_of_image, "size of image");
    s += line(pe.size_of_headers, "size of headers");
    s += line(pe.checksum, "checksum");
    const char* wide = pe.pe32_plus ? "%016llX" : "%08llX";
    s += fmt(wide, pe.stack_reserve) + " size of stack reserve\n";
    s += fmt(wide, pe.stack_commit) + " size of stack commit\n";
    s += fmt(wide, pe.heap_reserve) + " size of heap reserve\n";
    s += fmt(wide, pe.heap_commit) + " size of heap commit\n";
    s += fmt("%8llX ", pe.dll_characteristics) + " DLL characteristics\n";
    s += flag_lines(pe.dll_characteristics,
                    {{0x20, "High entropy VA supported"},
                     {0x40, "Dynamic base"},
                     {0x80, "Force integrity"},
                     {0x100, "NX compatible"},
                     {0x200, "No isolation"},
                     {0x400, "No structured exception handling"},
                     {0x800, "Do not bind"},
                     {0x1000, "AppContainer"},
                     {0x2000, "WDM Driver"},
                     {0x4000, "Guard"},
                     {0x8000, "Terminal server aware"}},
                    "            ");
    for (size_t i = 0; i < 16; ++i) {
        const engine::PeDataDirectory d =
            i < pe.directories.size() ? pe.directories[i] : engine::PeDataDirectory{};
        s += fmt("%8llX [", d.rva) + fmt("%8llX] address [size] of ", d.size) +
             k_directory_names[i] + "\n";
    }
    return s;
}

std::string section_headers(const engine::PeImageInfo& pe) {
    std::string s;
    for (size_t i = 0; i < pe.sections.size(); ++i) {
        const auto& sec = pe.sections[i];
        s += "\nSECTION HEADER #" + fmt("%llX", i + 1) + "\n";
        char name[32];
        std::snprintf(name, sizeof name, "%8s name\n", sec.name.c_str());
        s += name;
        s += line(sec.virtual_size, "virtual size");
        s += line(sec.virtual_address, "virtual address");
        s += line(sec.raw_size, "size of raw data");
        s += line(sec.raw_pointer, "file pointer to raw data");
        s += line(sec.relocations_pointer, "file pointer to relocation table");
        s += line(sec.line_numbers_pointer, "file pointer to line numbers");
        s += line(sec.relocation_count, "number of relocations");
        s += line(sec.line_number_count, "number of line numbers");
        s += fmt("%08llX flags\n", sec.characteristics);
        const uint32_t c = sec.characteristics;
        s += flag_lines(c,
                        {{0x20, "Code"},
                         {0x40, "Initialized Data"},
                         {0x80, "Uninitialized Data"},
                         {0x200, "Info"},
                         {0x800, "Remove"},
                         {0x1000, "Comdat"},
                         {0x02000000, "Discardable"},
                         {0x04000000, "Not Cached"},
                         {0x08000000, "Not Paged"},
                         {0x10000000, "Shared"}},
                        "         ");
        const uint32_t align = (c >> 20) & 0xF;
        s += align == 0 ? "         (no align specified)\n"
                        : "         " + std::to_string(1u << (align - 1)) + " byte align\n";
        std::string access;
        if (c & 0x20000000) {
            access += "Execute ";
        }
        if (c & 0x40000000) {
            access += "Read ";
        }
        if (c & 0x80000000) {
            access += "Write ";
        }
        if (access == "Read ") {
            access = "Read Only ";
        }
        if (!access.empty()) {
            access.pop_back();
            s += "         " + access + "\n";
        }
    }
    // The debug directories, with the CodeView record spelled out.
    if (!pe.debug_entries.empty()) {
        s += "\n\nDebug Directories(" + std::to_string(pe.debug_entries.size()) + ")\n";
        s += "\tType       Size     Address  Pointer\n";
        for (const auto& d : pe.debug_entries) {
            std::string type;
            switch (d.type) {
            case 1:
                type = "coff";
                break;
            case 2:
                type = "cv";
                break;
            case 3:
                type = "fpo";
                break;
            case 4:
                type = "misc";
                break;
            case 5:
                type = "exception";
                break;
            case 6:
                type = "fixup";
                break;
            case 9:
                type = "borland";
                break;
            case 12:
                type = "vc_feature";
                break; // shown by number in older builds
            default:
                type = fmt("(%6llu)", d.type);
                break;
            }
            char row[128];
            std::snprintf(row, sizeof row, "\t%-8s %8x %11x %8x", type.c_str(), d.size, d.rva,
                          d.pointer);
            s += row;
            if (d.type == 2 && pe.codeview) {
                s += "\tFormat: RSDS, " + pe.codeview->guid_string() + ", " +
                     std::to_string(pe.codeview->age) + ", " + pe.codeview->pdb_name;
            }
            s += "\n";
        }
    }
    return s;
}

} // namespace

void cmd_image_headers(engine::Debugger& dbg, Output& out, std::string_view args) {
    bool file = true, sections = true;
    args = trim(args);
    while (args.size() >= 2 && args[0] == '-') {
        const char f = args[1];
        if (f == 'f') {
            sections = false;
        } else if (f == 's') {
            file = false;
        } else if (f == 'a') {
            file = sections = true;
        } else if (f == 'h' || f == '?') {
            out.write("Usage: !dh [options] address\n\n"
                      "Dumps headers from an image based at address.\n\n"
                      "Options:\n\n"
                      "   -a      Dump everything\n"
                      "   -f      Dump file headers\n"
                      "   -s      Dump section headers\n");
            return;
        } else {
            out.write("Unknown option '-" + std::string(1, f) + "'\n");
            return;
        }
        args = trim(args.substr(2));
    }
    if (args.empty()) {
        out.write("Usage: !dh [-f|-s|-a] module|address\n");
        return;
    }
    std::optional<uint64_t> base = dbg.module_base(args);
    if (!base) {
        auto v = dbg.evaluate(args);
        if (!v) {
            out.write(v.error().message + "\n");
            return;
        }
        // An address inside a module means that module's image; anything else is taken as the
        // image base itself.
        base = module_base_of(dbg, *v).value_or(*v);
    }
    const uint64_t b = *base;
    engine::ImageReader reader = [&dbg, b](uint32_t rva, uint32_t size) -> std::vector<uint8_t> {
        auto blk = dbg.read_virtual(b + rva, std::min<uint32_t>(size, 1u << 20));
        if (!blk) {
            return {};
        }
        blk->bytes.resize(blk->readable_prefix());
        return blk->bytes;
    };
    auto pe = engine::read_pe_image(reader);
    if (!pe) {
        out.write("Unable to read the image headers at " + format_address(b) + ": " +
                  pe.error().message + "\n");
        return;
    }
    std::string s;
    if (file) {
        s += file_header(*pe);
    }
    if (sections) {
        s += section_headers(*pe);
    }
    out.write(s + "\n");
}

} // namespace kdcart::cli
