#pragma once
// Text in WinDbg/kd's exact output formats. Pure functions: no printing, no I/O, no state.
//
// Conventions:
//  - Multi-line results separate lines with '\n' and end with '\n' (an empty input gives "").
//  - Single-item results (an address, a symbol, one register, one instruction, one exception
//    line) have no trailing newline, so callers can compose them.
#include "engine/Registers.h"
#include "engine/Types.h"
#include "protocol/dbgkd_structs.h"
#include "transport/Error.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::cli {

using protocol::CONTEXT;

// ---- numbers and addresses ----

// "fffff800`01e45ce0": always 16 hex digits, backtick after the first 8.
std::string format_address(uint64_t address);

// MASM-style hex the disassembler uses: "3", "28h", "0C0h", "0FFFFFFFFFFFFFFFEh".
// Values 0..9 are bare digits; larger ones get upper-case digits, an 'h' suffix and a leading
// '0' when the first digit is a letter.
std::string format_masm_hex(uint64_t value);

// Symbol displacement as WinDbg writes it after '+': "0x1a", "0xffffffff`fffe3ae9".
std::string format_displacement(uint64_t displacement);

// ---- symbols ----

// "nt!KeBugCheckEx", "nt!KeBugCheckEx+0x1a", "nt+0x1234", "nt" (module only, no offset).
std::string format_symbol(const engine::SymbolMatch& match);
// "nt!RtlpBreakWithStatusInstruction:" (the label line printed above the current instruction).
std::string format_code_label(const engine::SymbolMatch& match);

// ---- registers ----

// The register table itself (find_register, get_register, set_register) is in engine/Registers.h.
using engine::find_register;
using engine::get_register;
using engine::register_names;
using engine::RegisterInfo;
using engine::set_register;

// `r rax` -> "rax=0000000000000005"; the digit count follows the register's width
// ("eax=00000005", "al=05", "cs=0010", "efl=00000282", "zf=1"). Unknown names print 16 digits.
std::string format_register(std::string_view name, uint64_t value);
// "nv up ei ng nz na pe nc" (OF DF IF SF ZF AF PF CF).
std::string format_flags(uint32_t eflags);
// The x64 `r` block, eight lines, as kd prints it (without the code label and instruction).
std::string format_registers(const CONTEXT& context);

// ---- memory display ----

enum class DisplayKind {
    Bytes,       // db
    Words,       // dw
    Dwords,      // dd
    DwordsAscii, // dc
    Qwords,      // dq
    Pointers,    // dp (x64: same as dq)
    Ascii,       // da
    Unicode,     // du
};

// "db" -> Bytes ... "du" -> Unicode (lower-case command names only; "dA"/"dU" are not these).
std::optional<DisplayKind> display_kind_from_command(std::string_view command);
// Element size in bytes: 1, 2, 4, 4, 8, 8, 1, 2.
size_t display_element_size(DisplayKind kind);
// WinDbg's count when no L is given, in elements: 0x80 bytes' worth for the fixed-width kinds
// (db 0x80, dw 0x40, dd/dc 0x20, dq/dp 0x10). For da/du the count is the most characters read
// while looking for the NUL: k_string_display_max_chars.
uint64_t display_default_count(DisplayKind kind);
inline constexpr uint64_t k_default_display_bytes = 0x80;
// da/du without L read up to the terminating NUL but at most this many characters (da: 0x200
// bytes, du: 0x400 bytes). WinDbg's own cap is not documented; 0x200 covers MAX_PATH (260) and
// typical UNICODE_STRING buffers while keeping one read to a couple of KD packets on a serial
// link.
inline constexpr uint64_t k_string_display_max_chars = 0x200;
// Characters per da/du output line (what WinDbg really prints; its documentation says 48).
inline constexpr size_t k_string_display_chars_per_line = 32;

// db/dw/dd/dc/dq/dp. Lines start at block.address and step by 16 bytes (WinDbg does not align
// the first line). Unreadable elements print as ?? / ???? / ???????? / ????????`????????, and
// unreadable bytes show as '?' in the ASCII column. A short last line is padded so that the
// ASCII column of db/dc lines up. Kinds da/du are forwarded to format_string_display.
std::string format_memory(DisplayKind kind, const engine::MemoryBlock& block);
// da/du: `fffff800`01e45ce0  "text"`, stopping at the NUL (or the end of the block, or the first
// unreadable character). Strings longer than 32 characters continue on further lines, each with
// its own address. Non-printable characters are shown as '.'; du converts UTF-16LE to UTF-8.
// When the very first character is unreadable the line shows '?' for each character that was
// asked for (at most 32). If next_address is given it receives the address after the displayed
// text (after the NUL when one was found), where a following bare `da`/`du` continues.
std::string format_string_display(DisplayKind kind, const engine::MemoryBlock& block,
                                  uint64_t* next_address = nullptr);

// ---- modules ----

// `lm`: header plus one line per module, in the order given.
std::string format_lm(const std::vector<engine::Module>& modules);

// ---- target version ----

// Data for the "Product:" line (from KUSER_SHARED_DATA NtProductType / SuiteMask) and the
// service pack, when the engine could read them; the line is left out otherwise.
struct VersionExtras {
    std::optional<uint32_t> product_type; // 1 WinNt, 2 LanManNt, 3 ServerNt
    std::optional<uint32_t> suite_mask;   // VER_SUITE_* bits
    std::string service_pack;             // "Service Pack 1" or empty
};

// "Windows 10" etc. from nt_major/nt_minor, falling back to the build number.
std::string windows_name(const engine::TargetInfo& info);
// "x64", "x86", "ARM64" or "machine 0xNNNN".
std::string machine_type_name(uint16_t machine_type);
// `vertarget`:
//   Windows 10 Kernel Version 19041 MP (2 procs) Free x64
//   Product: WinNt, suite: TerminalServer SingleUserTS
//   Edition build lab: 19041.1.amd64fre.vb_release.191206-1406
//   Machine Name: <machine_name>
//   Kernel base = 0xfffff800`12600000 PsLoadedModuleList = 0xfffff800`1322a2d0
// Lines whose data is unknown (no extras, empty build lab, empty machine name, zero kernel base)
// are left out.
std::string format_vertarget(const engine::TargetInfo& info, std::string_view machine_name,
                             const VersionExtras& extras = {});
// `version`: the vertarget block, then the debugger's own banner (debugger_version, e.g.
// "kdcart 0.1.0") and "Command line: '...'" when command_line is not empty.
std::string format_version(const engine::TargetInfo& info, std::string_view machine_name,
                           std::string_view debugger_version, std::string_view command_line,
                           const VersionExtras& extras = {});

// ---- events ----

// WinDbg's name for an exception code ("Access violation"), or "Unknown exception".
std::string exception_name(uint32_t code);
// "Access violation - code c0000005 (!!! second chance !!!)" (no newline).
std::string format_exception_line(uint32_t code, bool first_chance);
// The 15-line box kd prints after a Ctrl+C break-in (ends with '\n').
std::string format_break_in_banner();
// "Breakpoint 0 hit" (no newline).
std::string format_breakpoint_hit(uint32_t id);
// What kd prints when the target stops, before the registers / code label:
//  - BreakIn: the "Break instruction exception" line plus the box.
//  - Breakpoint / SingleStep / Exception: the exception line; for first-chance exceptions other
//    than breakpoints and single steps also "First chance exceptions are reported before any
//    exception handling." / "This exception may be expected and handled.".
//  - LoadSymbols, CommandString, Other: "".
// The caller prints "Breakpoint N hit" instead for its own breakpoints and skips the text for
// its own steps.
std::string format_stop_event(const engine::StopEvent& event);

// ---- disassembly ----

// Returns a name for an address ("nt!KeBugCheckEx", "nt!Foo+0x15") or nullopt.
using Symbolizer = std::function<std::optional<std::string>(uint64_t)>;

// One x64 instruction in WinDbg's `u` layout, without a newline:
//   "fffff800`01b66b4e cc              int     3"
//   "00007ff6`eb571330 48895c2408      mov     qword ptr [rsp+8],rbx"
// Bytes pad to 16 columns (longer byte strings get one space and operands then start one
// column later, as WinDbg does), the mnemonic pads to 8 columns. Branch targets and RIP-relative
// operands print as addresses, or "sym (address)" when the symbolizer knows them.
// Undecodable bytes give "<first byte>              ???" and length 1; no bytes at all give
// "??              ???" (unreadable memory) and length 1.
std::string format_instruction(uint64_t address, std::span<const uint8_t> bytes, size_t* length_out,
                               Symbolizer symbolizer = {});

} // namespace kdcart::cli
