#pragma once
// Which command words exist in WinDbg, so that one kdcart lacks is named as a gap ("!vm is not
// supported yet") and not mistaken for a typo (WinDbg's "^ Syntax error"), and the .help text.
#include <string>
#include <string_view>

namespace kdcart::cli {

// True for a WinDbg command, meta-command or common kernel extension command (lower-case word as
// the REPL splits it: "!vm", ".foreach", "dv", "uf"...).
bool is_windbg_command(std::string_view word);

// What an unknown command word answers, as WinDbg would and naming gaps as gaps:
//   "!vm is not supported yet"                  (a WinDbg command kdcart does not have)
//   "No export foo found"                       (!foo: no such extension command, WinDbg's text)
//   "       ^ Syntax error in 'xyz 12'"         (a typo)
std::string unknown_command_message(std::string_view word, std::string_view command);

// .help / ? : the commands kdcart has, grouped as WinDbg's help groups them.
std::string help_text();

} // namespace kdcart::cli
