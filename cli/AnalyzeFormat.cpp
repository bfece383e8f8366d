#include "cli/AnalyzeFormat.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

std::string field(const char* name, const std::string& value, int spaces = 2) {
    return std::string(name) + ":" + std::string(static_cast<size_t>(spaces), ' ') + value + "\n\n";
}

} // namespace

std::string format_analyze_banner() {
    const std::string stars(79, '*');
    const std::string empty = "*" + std::string(77, ' ') + "*";
    return stars + "\n" + empty + "\n" + "*                        Bugcheck Analysis" +
           std::string(36, ' ') + "*\n" + empty + "\n" + stars + "\n\n";
}

std::string format_analyze_ip_symbol(const engine::SymbolMatch& s) {
    if (s.name.empty()) {
        return s.module + "+" + hex_digits(s.displacement);
    }
    return s.module + "!" + s.name + "+" + hex_digits(s.displacement);
}

std::string format_analyze_stack_line(const engine::AnalysisFrame& f) {
    std::string line =
        format_address(f.frame.child_sp) + " " + format_address(f.frame.return_address) + " : ";
    for (size_t q = 0; q < 4; ++q) {
        line += (q ? " " : "") + (f.args[q] ? format_address(*f.args[q]) : "????????`????????");
    }
    line += " : ";
    line += f.symbol ? format_symbol(*f.symbol) : format_address(f.frame.pc);
    return line + "\n";
}

std::string format_analyze_body(const engine::BugCheckAnalysis& a, const AnalyzeCode& code) {
    std::string out;
    out += field("PROCESS_NAME",
                 a.process_name ? *a.process_name : "<unknown: " + a.process_note + ">");
    out += field("CURRENT_IRQL", a.irql ? hex_digits(*a.irql) : "<unknown: " + a.irql_source + ">");
    if (a.faulting_ip) {
        out += "FAULTING_IP: \n";
        if (a.faulting_symbol) {
            out += format_analyze_ip_symbol(*a.faulting_symbol) + "\n";
        }
        out += (code.faulting_instruction.empty() ? format_address(*a.faulting_ip) + " ??"
                                                  : code.faulting_instruction) +
               "\n\n";
    }
    if (!a.stack.empty()) {
        out += field("LAST_CONTROL_TRANSFER", "from " +
                                                  hex_digits(a.stack[0].frame.return_address, 16) +
                                                  " to " + hex_digits(a.stack[0].frame.pc, 16));
        out += "STACK_TEXT:  \n";
        for (const auto& f : a.stack) {
            out += format_analyze_stack_line(f);
        }
        out += "\n\n";
        out += field("STACK_COMMAND", "kb");
    } else {
        out += field("STACK_TEXT", "<unavailable: " + a.stack_error + ">");
    }
    if (a.followup) {
        const auto& f = a.stack[*a.followup];
        out += "FOLLOWUP_IP: \n";
        if (f.symbol) {
            out += format_analyze_ip_symbol(*f.symbol) + "\n";
        }
        out += (code.followup_instruction.empty() ? format_address(f.frame.pc) + " ??"
                                                  : code.followup_instruction) +
               "\n\n";
        if (code.fault_instr_code) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%08x", *code.fault_instr_code);
            out += field("FAULT_INSTR_CODE", buf);
        }
        out += field("SYMBOL_STACK_INDEX", hex_digits(*a.followup));
        out += field("SYMBOL_NAME", a.symbol_name);
        out += field("FOLLOWUP_NAME", "MachineOwner");
        out += field("MODULE_NAME", a.module_name, 1);
        out += field("IMAGE_NAME", a.image_name);
    }
    out += field("FAILURE_BUCKET_ID", a.bucket_id);
    out += field("BUCKET_ID", a.bucket_id);
    out += field("FOLLOWUP_RULE", a.followup_reason);
    out += "Followup:     MachineOwner\n---------\n\n";
    return out;
}

} // namespace kdcart::cli
