// Addresses, symbols, memory display, lm, vertarget and stop events in WinDbg's formats.
#include "cli/format/Format.h"
#include "cli/TextUtil.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

void pad_to(std::string& s, size_t width) {
    if (s.size() < width) {
        s.append(width - s.size(), ' ');
    }
}

void rtrim(std::string& s) {
    while (!s.empty() && s.back() == ' ') {
        s.pop_back();
    }
}

char ascii_char(uint8_t b) {
    return (b >= 0x20 && b <= 0x7e) ? static_cast<char>(b) : '.';
}

bool element_valid(const engine::MemoryBlock& block, size_t offset, size_t size) {
    if (offset + size > block.bytes.size()) {
        return false;
    }
    for (size_t i = offset; i < offset + size; ++i) {
        if (i >= block.valid.size() || !block.valid[i]) {
            return false;
        }
    }
    return true;
}

uint64_t element_value(const engine::MemoryBlock& block, size_t offset, size_t size) {
    uint64_t v = 0;
    for (size_t i = 0; i < size; ++i) {
        v |= static_cast<uint64_t>(block.bytes[offset + i]) << (8 * i);
    }
    return v;
}

std::string format_element(const engine::MemoryBlock& block, size_t offset, size_t size) {
    bool valid = element_valid(block, offset, size);
    if (size == 8) {
        if (!valid) {
            return "????????`????????";
        }
        return format_address(element_value(block, offset, size));
    }
    if (!valid) {
        return std::string(size * 2, '?');
    }
    return hex_digits(element_value(block, offset, size), static_cast<int>(size * 2));
}

// The ASCII column of db/dc for bytes [offset, offset + count).
std::string ascii_column(const engine::MemoryBlock& block, size_t offset, size_t count) {
    std::string s;
    for (size_t i = offset; i < offset + count; ++i) {
        bool valid = i < block.valid.size() && block.valid[i];
        s += valid ? ascii_char(block.bytes[i]) : '?';
    }
    return s;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// UTF-16 code units of one du line to UTF-8; controls and broken surrogates become '.'.
std::string utf16_to_display(const std::vector<uint16_t>& units) {
    std::string out;
    for (size_t i = 0; i < units.size(); ++i) {
        uint32_t u = units[i];
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units.size() && units[i + 1] >= 0xDC00 &&
            units[i + 1] <= 0xDFFF) {
            uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (units[i + 1] - 0xDC00);
            append_utf8(out, cp);
            ++i;
        } else if (u < 0x20 || (u >= 0x7F && u < 0xA0) || (u >= 0xD800 && u <= 0xDFFF)) {
            out += '.';
        } else {
            append_utf8(out, u);
        }
    }
    return out;
}

} // namespace

// ---- numbers and addresses ----

std::string format_address(uint64_t address) {
    return hex_digits(address >> 32, 8) + "`" + hex_digits(address & 0xFFFFFFFFu, 8);
}

std::string format_masm_hex(uint64_t value) {
    if (value <= 9) {
        return std::string(1, static_cast<char>('0' + value));
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%" PRIX64, value);
    std::string s = buf;
    if (s[0] >= 'A' && s[0] <= 'F') {
        s.insert(s.begin(), '0');
    }
    return s + "h";
}

std::string format_displacement(uint64_t displacement) {
    char buf[40];
    if (displacement > 0xFFFFFFFFu) {
        std::snprintf(buf, sizeof(buf), "0x%08" PRIx64 "`%08" PRIx64, displacement >> 32,
                      displacement & 0xFFFFFFFFu);
    } else {
        std::snprintf(buf, sizeof(buf), "0x%" PRIx64, displacement);
    }
    return buf;
}

// ---- symbols ----

std::string format_symbol(const engine::SymbolMatch& match) {
    std::string s = match.module;
    if (!match.name.empty()) {
        if (!s.empty()) {
            s += '!';
        }
        s += match.name;
    }
    if (match.displacement != 0) {
        s += '+';
        s += format_displacement(match.displacement);
    }
    return s;
}

std::string format_code_label(const engine::SymbolMatch& match) {
    return format_symbol(match) + ":";
}

// ---- memory display ----

std::optional<DisplayKind> display_kind_from_command(std::string_view command) {
    static constexpr std::pair<std::string_view, DisplayKind> table[] = {
        {"db", DisplayKind::Bytes},  {"dw", DisplayKind::Words},
        {"dd", DisplayKind::Dwords}, {"dc", DisplayKind::DwordsAscii},
        {"dq", DisplayKind::Qwords}, {"dp", DisplayKind::Pointers},
        {"da", DisplayKind::Ascii},  {"du", DisplayKind::Unicode},
    };
    for (const auto& [name, kind] : table) {
        if (name == command) {
            return kind;
        }
    }
    return std::nullopt;
}

size_t display_element_size(DisplayKind kind) {
    switch (kind) {
    case DisplayKind::Bytes:
    case DisplayKind::Ascii:
        return 1;
    case DisplayKind::Words:
    case DisplayKind::Unicode:
        return 2;
    case DisplayKind::Dwords:
    case DisplayKind::DwordsAscii:
        return 4;
    case DisplayKind::Qwords:
    case DisplayKind::Pointers:
        return 8;
    }
    return 1;
}

uint64_t display_default_count(DisplayKind kind) {
    if (kind == DisplayKind::Ascii || kind == DisplayKind::Unicode) {
        return k_string_display_max_chars;
    }
    return k_default_display_bytes / display_element_size(kind);
}

std::string format_memory(DisplayKind kind, const engine::MemoryBlock& block) {
    if (kind == DisplayKind::Ascii || kind == DisplayKind::Unicode) {
        return format_string_display(kind, block);
    }
    const size_t total = block.bytes.size();
    const size_t esize = display_element_size(kind);
    std::string out;
    for (size_t line = 0; line < total; line += 16) {
        const size_t count = std::min<size_t>(16, total - line);
        std::string s = format_address(block.address + line) + "  ";
        if (kind == DisplayKind::Bytes) {
            std::string hex;
            for (size_t i = 0; i < 16; ++i) {
                if (i > 0) {
                    hex += (i == 8 && i < count) ? '-' : ' ';
                }
                hex += i < count ? format_element(block, line + i, 1) : "  ";
            }
            s += hex + "  " + ascii_column(block, line, count);
        } else {
            std::string values;
            for (size_t off = 0; off < count; off += esize) {
                if (off > 0) {
                    values += ' ';
                }
                values += format_element(block, line + off, esize);
            }
            if (kind == DisplayKind::DwordsAscii) {
                pad_to(values, 35);
                values += "  " + ascii_column(block, line, count);
            }
            s += values;
        }
        out += s + "\n";
    }
    return out;
}

std::string format_string_display(DisplayKind kind, const engine::MemoryBlock& block,
                                  uint64_t* next_address) {
    const size_t csize = kind == DisplayKind::Unicode ? 2 : 1;
    const size_t nchars = block.bytes.size() / csize;
    std::string out;
    if (nchars == 0) {
        if (next_address != nullptr) {
            *next_address = block.address;
        }
        return out;
    }
    if (!element_valid(block, 0, csize)) {
        const size_t shown = std::min(nchars, k_string_display_chars_per_line);
        out = format_address(block.address) + "  \"" + std::string(shown, '?') + "\"\n";
        if (next_address != nullptr) {
            *next_address = block.address + shown * csize;
        }
        return out;
    }
    // Length of the string: up to the NUL, the first unreadable character or the block's end.
    size_t len = 0;
    bool found_nul = false;
    while (len < nchars) {
        if (!element_valid(block, len * csize, csize)) {
            break;
        }
        if (element_value(block, len * csize, csize) == 0) {
            found_nul = true;
            break;
        }
        ++len;
    }
    size_t pos = 0;
    do {
        const size_t n = std::min(k_string_display_chars_per_line, len - pos);
        std::string text;
        if (csize == 1) {
            for (size_t i = pos; i < pos + n; ++i) {
                text += ascii_char(block.bytes[i]);
            }
        } else {
            std::vector<uint16_t> units;
            for (size_t i = pos; i < pos + n; ++i) {
                units.push_back(static_cast<uint16_t>(element_value(block, i * 2, 2)));
            }
            text = utf16_to_display(units);
        }
        out += format_address(block.address + pos * csize) + "  \"" + text + "\"\n";
        pos += n;
    } while (pos < len);
    if (next_address != nullptr) {
        *next_address = block.address + (len + (found_nul ? 1 : 0)) * csize;
    }
    return out;
}

// ---- modules ----

std::string format_lm(const std::vector<engine::Module>& modules) {
    std::string out = "start             end                 module name\n";
    for (const auto& m : modules) {
        std::string s = format_address(m.base) + " " + format_address(m.end()) + "   ";
        std::string name = m.name;
        pad_to(name, 10);
        s += name + " ";
        switch (m.symbols) {
        case engine::Module::SymbolState::Deferred:
            s += "(deferred)";
            break;
        case engine::Module::SymbolState::Exports: {
            std::string state = "(export symbols)";
            pad_to(state, 22);
            s += state + " " + (m.symbol_file.empty() ? m.file_name : m.symbol_file);
            break;
        }
        case engine::Module::SymbolState::None:
            s += "(no symbols)";
            break;
        case engine::Module::SymbolState::Pdb:
        case engine::Module::SymbolState::PrivatePdb: {
            std::string state = m.symbols == engine::Module::SymbolState::Pdb
                                    ? "(pdb symbols)"
                                    : "(private pdb symbols)";
            pad_to(state, 22);
            s += state + " " + m.symbol_file;
            break;
        }
        }
        rtrim(s);
        out += s + "\n";
    }
    return out;
}

// ---- target version ----

std::string windows_name(const engine::TargetInfo& info) {
    const uint32_t major = info.nt_major;
    const uint32_t minor = info.nt_minor;
    if (major >= 10) {
        // Windows 11 and Server 2022 still report 10.0; WinDbg prints "Windows 10" for them.
        return "Windows 10";
    }
    if (major == 6) {
        switch (minor) {
        case 0:
            return "Windows Vista";
        case 1:
            return "Windows 7";
        case 2:
            return "Windows 8";
        default:
            return "Windows 8.1";
        }
    }
    if (major == 5) {
        return minor >= 2 ? "Windows Server 2003" : "Windows XP";
    }
    // nt_major unknown: guess from the build number, which every release has its own range of.
    const uint16_t build = info.build();
    if (build >= 10240) {
        return "Windows 10";
    }
    if (build >= 9600) {
        return "Windows 8.1";
    }
    if (build >= 9200) {
        return "Windows 8";
    }
    if (build >= 7600) {
        return "Windows 7";
    }
    if (build >= 6000) {
        return "Windows Vista";
    }
    if (build >= 3790) {
        return "Windows Server 2003";
    }
    if (build >= 2600) {
        return "Windows XP";
    }
    return "Windows";
}

std::string machine_type_name(uint16_t machine_type) {
    switch (machine_type) {
    case protocol::IMAGE_FILE_MACHINE_AMD64:
        return "x64";
    case protocol::IMAGE_FILE_MACHINE_I386:
        return "x86 compatible";
    case 0xAA64:
        return "ARM64";
    default: {
        char buf[24];
        std::snprintf(buf, sizeof(buf), "machine 0x%04x", machine_type);
        return buf;
    }
    }
}

namespace {

std::string product_line(const VersionExtras& extras) {
    if (!extras.product_type) {
        return {};
    }
    std::string s = "Product: ";
    switch (*extras.product_type) {
    case 1:
        s += "WinNt";
        break;
    case 2:
        s += "LanManNt";
        break;
    case 3:
        s += "ServerNt";
        break;
    default:
        s += "<unknown " + std::to_string(*extras.product_type) + ">";
        break;
    }
    static constexpr const char* suites[16] = {
        "SmallBusiness",
        "Enterprise",
        "BackOffice",
        "CommunicationServer",
        "TerminalServer",
        "SmallBusinessRestricted",
        "EmbeddedNT",
        "DataCenter",
        "SingleUserTS",
        "Personal",
        "Blade",
        "EmbeddedRestricted",
        "SecurityAppliance",
        "StorageServer",
        "ComputeServer",
        "WHServer",
    };
    if (extras.suite_mask) {
        std::string names;
        for (unsigned bit = 0; bit < 16; ++bit) {
            if ((*extras.suite_mask >> bit) & 1u) {
                names += names.empty() ? "" : " ";
                names += suites[bit];
            }
        }
        if (!names.empty()) {
            s += ", suite: " + names;
        }
    }
    return s;
}

} // namespace

std::string format_vertarget(const engine::TargetInfo& info, std::string_view machine_name,
                             const VersionExtras& extras) {
    const auto& v = info.version;
    std::string first = windows_name(info) + " Kernel Version " + std::to_string(info.build());
    if (!extras.service_pack.empty()) {
        first += " (" + extras.service_pack + ")";
    }
    // MP/UP is the kernel flavour (DBGKD_VERS_FLAG_MP), not the processor count: an x64 kernel
    // on one processor prints "MP (1 procs)"; a UP kernel prints "UP" with no count.
    if ((v.Flags & protocol::DBGKD_VERS_FLAG_MP) != 0 || info.num_processors > 1) {
        first += " MP (" + std::to_string(info.num_processors) + " procs)";
    } else {
        first += " UP";
    }
    first += info.checked_build() ? " Checked " : " Free ";
    first += machine_type_name(v.MachineType);

    std::string out = first + "\n";
    std::string product = product_line(extras);
    if (!product.empty()) {
        out += product + "\n";
    }
    if (!info.build_lab.empty()) {
        out += "Edition build lab: " + info.build_lab + "\n";
    }
    if (!machine_name.empty()) {
        out += "Machine Name: " + std::string(machine_name) + "\n";
    }
    if (v.KernBase != 0) {
        out += "Kernel base = 0x" + format_address(v.KernBase) + " PsLoadedModuleList = 0x" +
               format_address(v.PsLoadedModuleList) + "\n";
    }
    return out;
}

std::string format_version(const engine::TargetInfo& info, std::string_view machine_name,
                           std::string_view debugger_version, std::string_view command_line,
                           const VersionExtras& extras) {
    std::string out = format_vertarget(info, machine_name, extras);
    if (!debugger_version.empty()) {
        out += std::string(debugger_version) + "\n";
    }
    if (!command_line.empty()) {
        out += "\nCommand line: '" + std::string(command_line) + "'\n";
    }
    return out;
}

// ---- events ----

std::string exception_name(uint32_t code) {
    static constexpr std::pair<uint32_t, const char*> names[] = {
        {0x80000001, "Guard page violation"},
        {0x80000002, "Data misaligned"},
        {0x80000003, "Break instruction exception"},
        {0x80000004, "Single step exception"},
        {0x80000007, "Wake debugger"},
        {0x4000001E, "WOW64 single step exception"},
        {0x4000001F, "WOW64 breakpoint"},
        {0x40010005, "Control-C exception"},
        {0x40010008, "Control-Break exception"},
        {0x406D1388, "Visual C++ exception"},
        {0xC0000005, "Access violation"},
        {0xC0000006, "In-page I/O error"},
        {0xC0000008, "Invalid handle"},
        {0xC000001C, "Invalid system call"},
        {0xC000001D, "Illegal instruction"},
        {0xC000001E, "Invalid lock sequence"},
        {0xC0000037, "Port disconnected"},
        {0xC0000094, "Integer divide-by-zero"},
        {0xC0000095, "Integer overflow"},
        {0xC0000096, "Privileged instruction"},
        {0xC00000FD, "Stack overflow"},
        {0xC0000409, "Security check failure or stack buffer overrun"},
        {0xC0000420, "Assertion failure"},
        {0xC0000421, "Verifier stop"},
        {0xE06D7363, "C++ EH exception"},
    };
    for (const auto& [c, name] : names) {
        if (c == code) {
            return name;
        }
    }
    return "Unknown exception";
}

std::string format_exception_line(uint32_t code, bool first_chance) {
    return exception_name(code) + " - code " + hex_digits(code, 8) +
           (first_chance ? " (first chance)" : " (!!! second chance !!!)");
}

std::string format_break_in_banner() {
    return "*******************************************************************************\n"
           "*                                                                             *\n"
           "*   You are seeing this message because you pressed either                    *\n"
           "*       CTRL+C (if you run console kernel debugger) or,                       *\n"
           "*       CTRL+BREAK (if you run GUI kernel debugger),                          *\n"
           "*   on your debugger machine's keyboard.                                      *\n"
           "*                                                                             *\n"
           "*                   THIS IS NOT A BUG OR A SYSTEM CRASH                       *\n"
           "*                                                                             *\n"
           "* If you did not intend to break into the debugger, press the \"g\" key, then   *\n"
           "* press the \"Enter\" key now.  This message might immediately reappear.  If it *\n"
           "* does, press \"g\" and \"Enter\" again.                                          *\n"
           "*                                                                             *\n"
           "*******************************************************************************\n";
}

std::string format_breakpoint_hit(uint32_t id) {
    return "Breakpoint " + std::to_string(id) + " hit";
}

std::string format_stop_event(const engine::StopEvent& event) {
    switch (event.kind) {
    case engine::StopKind::BreakIn:
        return format_exception_line(protocol::STATUS_BREAKPOINT, true) + "\n" +
               format_break_in_banner();
    case engine::StopKind::Breakpoint:
        if (event.bugcheck_code != 0) {
            // The break KeBugCheckEx ends in (after the target's "*** Fatal System Error").
            return format_exception_line(protocol::STATUS_BREAKPOINT, event.first_chance) +
                   "\n\nA fatal system error has occurred.\n"
                   "Debugger entered on first try; Bugcheck callbacks have not been invoked.\n\n"
                   "A fatal system error has occurred.\n\n"
                   "For analysis of this file, run !analyze -v\n";
        }
        return format_exception_line(event.exception_code != 0 ? event.exception_code
                                                               : protocol::STATUS_BREAKPOINT,
                                     event.first_chance) +
               "\n";
    case engine::StopKind::SingleStep:
        return format_exception_line(event.exception_code != 0 ? event.exception_code
                                                               : protocol::STATUS_SINGLE_STEP,
                                     event.first_chance) +
               "\n";
    case engine::StopKind::Exception: {
        std::string out = format_exception_line(event.exception_code, event.first_chance) + "\n";
        if (event.first_chance && event.exception_code != protocol::STATUS_BREAKPOINT &&
            event.exception_code != protocol::STATUS_SINGLE_STEP) {
            out += "First chance exceptions are reported before any exception handling.\n"
                   "This exception may be expected and handled.\n";
        }
        return out;
    }
    case engine::StopKind::LoadSymbols:
    case engine::StopKind::CommandString:
    case engine::StopKind::Dump:
    case engine::StopKind::Other:
        return {};
    }
    return {};
}

} // namespace kdcart::cli
