#pragma once
// WinDbg's text for `!analyze -v` past the head that cli/KernelFormat prints (the banner, the
// bug check's help and BUGCHECK_CODE / BUGCHECK_Pn / BUGCHECK_STR). Pure functions over
// engine::BugCheckAnalysis: no I/O.
#include "engine/BugCheckAnalysis.h"

#include <optional>
#include <string>

namespace kdcart::cli {

// The instruction lines !analyze shows under FAULTING_IP / FOLLOWUP_IP, rendered by the caller
// (it reads the code bytes and disassembles): "fffff880`01201a2c e8cf050000      call ...".
struct AnalyzeCode {
    std::string faulting_instruction; // empty: not shown
    std::string followup_instruction;
    std::optional<uint32_t> fault_instr_code; // the four bytes at the followup IP, as a dword
};

// The 5-line "Bugcheck Analysis" box and its blank line (000:104-109).
std::string format_analyze_banner();

// From PROCESS_NAME to "Followup:     MachineOwner" / "---------" (000:136-253 in the seed's
// order, the fields kdcart knows):
//   PROCESS_NAME:  System
//   CURRENT_IRQL:  0
//   FAULTING_IP: / sym+off / instruction       (when the code names one)
//   LAST_CONTROL_TRANSFER:  from RETADDR to PC
//   STACK_TEXT:  (kb's columns: Child-SP RetAddr : four home-space words : Call Site)
//   STACK_COMMAND:  kb
//   FOLLOWUP_IP: / sym+off / instruction, FAULT_INSTR_CODE, SYMBOL_STACK_INDEX, SYMBOL_NAME,
//   FOLLOWUP_NAME, MODULE_NAME, IMAGE_NAME, FAILURE_BUCKET_ID, BUCKET_ID
//   FOLLOWUP_RULE:  which frame was chosen and why (kdcart's own line: the rule is a heuristic)
// Fields that could not be read say why ("<unknown: ...>") instead of being guessed.
std::string format_analyze_body(const engine::BugCheckAnalysis& analysis, const AnalyzeCode& code);

// One STACK_TEXT line:
// "ffffbc88`eeb10938 fffff800`a7187101 : 00000000`000000ef ... : nt!KeBugCheckEx"
std::string format_analyze_stack_line(const engine::AnalysisFrame& frame);

// "ntdll!NtTerminateProcess+14" (FAULTING_IP / FOLLOWUP_IP's symbol line; +0 shown).
std::string format_analyze_ip_symbol(const engine::SymbolMatch& symbol);

} // namespace kdcart::cli
