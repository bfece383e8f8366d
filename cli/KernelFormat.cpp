#include "cli/KernelFormat.h"
#include "cli/TextUtil.h"

#include <cinttypes>
#include <cstdio>
#include <vector>

namespace kdcart::cli {

namespace {} // namespace

std::string format_bugcheck_help(uint32_t code, const std::array<uint64_t, 4>& params,
                                 const engine::BugCheckDescription& d) {
    std::string out;
    if (!d.known) {
        out += "Unknown bugcheck code (" + hex_digits(code) + ")\n";
        out += "Unknown bugcheck description\n";
    } else {
        out += d.name + " (" + hex_digits(code) + ")\n";
        if (!d.description.empty()) {
            out += d.description + "\n";
        }
    }
    out += "Arguments:\n";
    for (size_t i = 0; i < 4; ++i) {
        out += "Arg" + std::to_string(i + 1) + ": " + hex_digits(params[i], 16);
        if (!d.parameters[i].empty()) {
            out += ", " + d.parameters[i];
        }
        out += "\n";
    }
    return out;
}

std::string format_analyze_details(uint32_t code, const std::array<uint64_t, 4>& params) {
    std::string out = "Debugging Details:\n------------------\n\n\n";
    out += "BUGCHECK_CODE:  " + hex_digits(code) + "\n\n";
    for (size_t i = 0; i < 4; ++i) {
        out += "BUGCHECK_P" + std::to_string(i + 1) + ": " + hex_digits(params[i]) + "\n\n";
    }
    char str[32];
    std::snprintf(str, sizeof str, "0x%X", code);
    out += std::string("BUGCHECK_STR:  ") + str + "\n\n";
    return out;
}

std::string format_error_code(const engine::ErrorLookup& e) {
    const char* kind = e.kind == engine::ErrorKind::NtStatus  ? "NTSTATUS"
                       : e.kind == engine::ErrorKind::HResult ? "HRESULT"
                                                              : "Win32";
    char head[96];
    std::snprintf(head, sizeof head, "Error code: (%s) 0x%x (%u) - ", kind, e.value, e.value);
    return std::string(head) + (e.known ? e.text : "<Unable to get error code text>") + "\n";
}

namespace {

std::string upper16(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016" PRIX64, v);
    return buf;
}

std::string rstrip(std::string s) {
    while (!s.empty() && s.back() == ' ') {
        s.pop_back();
    }
    return s;
}

// Pads `line` with blanks to `column` (one blank at least when it is already longer).
void pad_to(std::string& line, size_t column) {
    if (line.size() < column) {
        line.append(column - line.size(), ' ');
    }
}

constexpr size_t kPteColumn = 27;

} // namespace

std::string format_pte(const engine::PagingStructureAddresses& a, const engine::PteWalk& w) {
    using engine::PteKind;
    std::string out = std::string(43, ' ') + "VA " + hex_digits(w.va, 16) + "\n";
    out += "PXE at " + upper16(a.pxe) + "    PPE at " + upper16(a.ppe) + "    PDE at " +
           upper16(a.pde) + "    PTE at " + upper16(a.pte) + "\n";
    std::string contains;
    std::string pfns;
    std::vector<std::string> details; // lines under the first not-valid entry
    size_t detail_column = 0;
    for (size_t i = 0; i < w.entries.size(); ++i) {
        const auto& e = w.entries[i];
        const size_t col = i * kPteColumn;
        pad_to(contains, col);
        contains += "contains " + upper16(e.raw);
        pad_to(pfns, col);
        const auto& d = e.decoded;
        if (d.kind == PteKind::Valid) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "pfn %-10" PRIx64 "%s", d.pfn,
                          engine::pte_flags(e.raw, e.level).c_str());
            pfns += buf;
            if (d.large) {
                pad_to(pfns, col + kPteColumn);
                pfns += "LARGE PAGE pfn " + hex_digits(w.page_pfn);
            }
            continue;
        }
        pfns += "not valid";
        detail_column = col;
        char buf[96];
        auto protect = [&] {
            std::snprintf(buf, sizeof buf, "Protect: %x - %s", d.protection,
                          engine::protection_name(d.protection).c_str());
            details.emplace_back(buf);
        };
        switch (d.kind) {
        case PteKind::Prototype:
            if (d.proto_vad) {
                details.emplace_back("Proto: VAD");
                protect();
            } else {
                details.push_back("Proto: " + upper16(d.proto_address));
            }
            break;
        case PteKind::Transition:
            details.push_back("Transition: " + hex_digits(d.pfn));
            protect();
            break;
        case PteKind::PageFile:
            details.push_back("PageFile: " + hex_digits(d.page_file));
            details.push_back("Offset: " + hex_digits(d.page_file_offset));
            protect();
            break;
        case PteKind::DemandZero:
            details.emplace_back("DemandZero");
            protect();
            break;
        default:
            break;
        }
    }
    if (!w.entries.empty()) {
        out += rstrip(contains) + "\n" + rstrip(pfns) + "\n";
    }
    for (const auto& line : details) {
        out += std::string(detail_column, ' ') + line + "\n";
    }
    if (w.unreadable_table) {
        out += "Unable to read the page table at physical address " +
               hex_digits(*w.unreadable_table) + "\n";
    }
    return out;
}

std::string format_vtop(const engine::PteWalk& w) {
    static const char* const kNames[5] = {"", "PTE", "PDE", "PDPE", "PML4E"};
    std::string out =
        "Amd64VtoP: Virt " + hex_digits(w.va, 16) + ", pagedir " + hex_digits(w.dtb, 16) + "\n";
    for (const auto& e : w.entries) {
        out +=
            std::string("Amd64VtoP: ") + kNames[e.level] + " " + hex_digits(e.physical, 16) + "\n";
        if (e.decoded.kind == engine::PteKind::Zero) {
            out += std::string("Amd64VtoP: zero ") + kNames[e.level] + "\n";
        } else if (e.decoded.kind != engine::PteKind::Valid) {
            out += std::string("Amd64VtoP: ") + kNames[e.level] + " not present (" +
                   hex_digits(e.raw, 16) + ")\n";
        }
    }
    if (w.unreadable_table) {
        out += "Amd64VtoP: unable to read the table at physical address " +
               hex_digits(*w.unreadable_table, 16) + "\n";
    }
    if (!w.mapped) {
        out += "Virtual address " + hex_digits(w.va) + " translation fails, error 0xD0000147.\n";
        return out;
    }
    const bool large = !w.entries.empty() && w.entries.back().decoded.large;
    out += std::string("Amd64VtoP: ") + (large ? "Large page mapped phys " : "Mapped phys ") +
           hex_digits(w.physical, 16) + "\n";
    out += "Virtual address " + hex_digits(w.va) + " translates to physical address " +
           hex_digits(w.physical) + ".\n";
    return out;
}

std::string format_process_brief(const engine::ProcessInfo& p) {
    char buf[256];
    std::string session = "<unknown>";
    if (p.session_known) {
        session = p.session_id ? std::to_string(*p.session_id) : "none";
    }
    std::string out = "PROCESS " + hex_digits(p.eprocess, 16) + "\n";
    std::snprintf(buf, sizeof buf,
                  "    SessionId: %s  Cid: %04" PRIx64 "    Peb: %08" PRIx64
                  "  ParentCid: %04" PRIx64 "\n",
                  session.c_str(), p.pid, p.peb, p.parent_pid);
    out += buf;
    std::string table = p.object_table ? hex_digits(*p.object_table, 16) : "<unknown>";
    std::string handles = "<unknown>";
    if (p.handle_count) {
        handles = std::to_string(*p.handle_count) + ".";
    } else if (p.object_table) {
        handles = "<Data Not Accessible>";
    }
    std::snprintf(buf, sizeof buf, "    DirBase: %08" PRIx64 "  ObjectTable: %s  HandleCount: %s\n",
                  p.directory_table_base, table.c_str(), handles.c_str());
    out += buf;
    out += "    Image: " + p.image + "\n\n";
    return out;
}

std::string format_no_types_notice(const std::vector<std::string>& sources) {
    std::string out = "NT symbols are incorrect, please fix symbols\n";
    out += "(no kernel PDB types: the offsets below come from KDDEBUGGER_DATA64";
    out += sources.empty() ? ")\n" : " and the kernel's own data)\n";
    for (const auto& s : sources) {
        out += "    " + s + "\n";
    }
    return out;
}

} // namespace kdcart::cli
