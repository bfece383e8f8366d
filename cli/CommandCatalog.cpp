// WinDbg's command words (standard commands, meta-commands, kernel extension commands), and the
// .help text of what kdcart has.
#include "cli/CommandCatalog.h"

#include <algorithm>
#include <array>

namespace kdcart::cli {

namespace {

// Lower-case, in groups: the words as Repl::run_command splits them (letters, digits, '.',
// '!', '_'). Commands kdcart implements may be listed too: they never get this far.
// clang-format off
constexpr std::array kWinDbgCommands = std::to_array<std::string_view>({
    // Extension commands (kdexts, ext, and the usual kernel ones).
    "!acl", "!address", "!ahcache", "!alignmentfaults", "!analyze", "!apc", "!apicerr", "!arbinst",
    "!arbiter", "!ate", "!atom", "!avrf", "!bcb", "!bitcount", "!blackboxbsd", "!blackboxntfs",
    "!blackboxpnp", "!blackboxscm", "!blockeddrv", "!bpid", "!btb", "!bth", "!bugdump", "!ca",
    "!callback", "!calldata", "!can_write_kdump", "!cbreg", "!cchelp", "!chain", "!chkimg",
    "!cmreslist", "!cppexr", "!cpuid", "!cpuinfo", "!critsec", "!cs", "!cxr", "!db", "!dbgprint",
    "!dc", "!dd", "!ddp", "!dds", "!defwrites", "!deadlock", "!devext", "!devhandles", "!devnode",
    "!devobj", "!devstack", "!dh", "!diskspace", "!dlls", "!dma", "!dml_proc", "!dp", "!dpa",
    "!dpcs", "!dpcwatchdog", "!dq", "!driveinfo", "!drivers", "!drvobj", "!dskheap", "!du",
    "!dumpfa", "!dw", "!ecb", "!ecd", "!ech", "!ecs", "!ecw", "!eb", "!ed", "!efi", "!envvar",
    "!eresource", "!error", "!errlog", "!errpkt", "!errrec", "!exca", "!exchain", "!exqueue",
    "!exr", "!facs", "!fadt", "!filecache", "!filelock", "!fileobj", "!filetime",
    "!findfilelockowner", "!findstack", "!findthreads", "!fltkd", "!for_each_frame",
    "!for_each_function", "!for_each_local", "!for_each_module", "!for_each_process",
    "!for_each_register", "!for_each_thread", "!fpsearch", "!frag", "!fwver", "!fxdevice", "!gbl",
    "!gentable", "!gflag", "!gle", "!gs", "!handle", "!heap", "!help", "!hidppd", "!htrace", "!ib",
    "!id", "!idt", "!ihs", "!imgreloc", "!interrupts", "!ioapic", "!iovirp", "!ioresdes",
    "!ioreslist", "!iw", "!irp", "!irpfind", "!irql", "!irqlwalk", "!isainfo", "!isr", "!ivt",
    "!job", "!kuser", "!list", "!lmi", "!lpc", "!alpc", "!locks", "!lookaside", "!lpcp", "!mca",
    "!memlist", "!memusage", "!mfc", "!mps", "!mtrr", "!mui", "!ndiskd", "!net_send", "!npx", "!ob",
    "!obja", "!object", "!odi", "!ofs", "!openmaps", "!owner", "!pars", "!pat", "!pci", "!pciir",
    "!pcitree", "!pcm", "!pcr", "!pcrs", "!peb", "!pfn", "!pmssa", "!pnpevent", "!pnptriage",
    "!pocaps", "!pool", "!poolfind", "!poolused", "!poolval", "!popolicy", "!poreqlist",
    "!powertriage", "!prcb", "!process", "!processfields", "!processirps", "!psp", "!pte",
    "!pte2va", "!ptov", "!qlocks", "!ready", "!reg", "!regkcb", "!rellist", "!ruleinfo", "!running",
    "!runaway", "!rxd", "!scm", "!search", "!searchpte", "!sd", "!sel", "!session", "!sid",
    "!slist", "!smt", "!sprocess", "!srb", "!stacks", "!stl", "!storagekd", "!sym", "!symsrv",
    "!sysinfo", "!sysptes", "!teb", "!thread", "!threadfields", "!time", "!timer", "!tls", "!token",
    "!trap", "!tss", "!tz", "!tzinfo", "!ubc", "!ubd", "!ube", "!ubl", "!ubp", "!uniqstack",
    "!unloaded", "!urb", "!usbkd", "!vad", "!vad_reload", "!validatelist", "!verifier", "!vm",
    "!vpb", "!vpdd", "!vtop", "!wdfkd", "!whattime", "!whatperftime", "!wmitrace", "!wsle",
    "!xpool", "!zombies",
    // Meta-commands.
    ".abandon", ".allow_bp_ba_convert", ".allow_exec_cmds", ".allow_image_mapping", ".apply_dbp",
    ".asm", ".attach", ".beep", ".block", ".bpcmds", ".bpsync", ".break", ".breakin", ".browse",
    ".bugcheck", ".cache", ".call", ".catch", ".chain", ".childdbg", ".clients", ".closehandle",
    ".cls", ".context", ".continue", ".copysym", ".cordll", ".crash", ".create", ".createdir",
    ".cxr", ".dbgdbg", ".debug_sw_wow", ".detach", ".dml_flow", ".dml_start", ".do", ".dump",
    ".dumpcab", ".dvalloc", ".dvfree", ".echo", ".echocpunum", ".echotime", ".echotimestamps",
    ".ecxr", ".effmach", ".else", ".elsif", ".enable_long_status", ".enable_unicode", ".endpsrv",
    ".endsrv", ".enumtag", ".eventlog", ".events", ".eventstr", ".exepath", ".expr", ".exptr",
    ".exr", ".extmatch", ".extpath", ".f", ".fiber", ".fiximports", ".fnent", ".fnret", ".for",
    ".foreach", ".formats", ".fpo", ".frame", ".help", ".hh", ".hideinjectedcode", ".holdmem",
    ".if", ".ignore_missing_pages", ".imgscan", ".inline", ".jdinfo", ".kdfiles", ".kframes",
    ".kill", ".lastevent", ".leave", ".lines", ".load", ".loadby", ".locale", ".logappend",
    ".logclose", ".logfile", ".logopen", ".lsrcfix", ".lsrcpath", ".mask", ".netsyms", ".netuse",
    ".noshell", ".noversion", ".ocommand", ".ofilter", ".open", ".opendump", ".outmask", ".pagein",
    ".pcmd", ".pop", ".prefer_dml", ".printf", ".process", ".prompt_allow", ".push", ".quit_lock",
    ".readmem", ".reboot", ".record_branches", ".reload", ".remote", ".remote_exit", ".restart",
    ".rrestart", ".scriptdebug", ".scriptlist", ".scriptload", ".scriptproviders", ".scriptrun",
    ".scriptunload", ".scroll_prefs", ".secure", ".send_file", ".server", ".servers", ".setdll",
    ".settings", ".shell", ".show_read_failures", ".show_sym_failures", ".sleep", ".sound_notify",
    ".srcfix", ".srcnoisy", ".srcpath", ".step_filter", ".symfix", ".symopt", ".sympath", ".thread",
    ".time", ".tlist", ".trap", ".tss", ".ttime", ".typeopt", ".unload", ".unloadall", ".urestart",
    ".wake", ".while", ".writemem", ".wtitle",
    // Standard commands.
    "a", "ad", "ah", "al", "as", "ba", "bc", "bd", "be", "bl", "bm", "bp", "br", "bs", "bsc", "bu",
    "c", "d", "da", "db", "dc", "dd", "dda", "ddp", "dds", "ddu", "df", "dg", "dl", "dp", "dpa",
    "dpp", "dps", "dpu", "dq", "dqa", "dqp", "dqs", "dqu", "ds", "dt", "dtx", "du", "dv", "dw",
    "dx", "dyb", "dyd", "e", "ea", "eb", "ed", "ef", "ep", "eq", "eu", "ew", "eza", "ezu", "f",
    "fp", "g", "gc", "gh", "gn", "gu", "ib", "id", "iw", "j", "k", "kb", "kc", "kd", "kn", "kp",
    "kv", "l", "ld", "lm", "ln", "ls", "lsa", "lsc", "lse", "lsf", "lsp", "m", "n", "ob", "od",
    "ow", "p", "pa", "pc", "pct", "ph", "pt", "q", "qd", "qq", "r", "rdmsr", "rm", "s", "so", "sq",
    "ss", "sx", "sxd", "sxe", "sxi", "sxn", "sxr", "t", "ta", "tb", "tc", "tct", "th", "tt", "u",
    "ub", "uf", "up", "ur", "ux", "vercommand", "version", "vertarget", "wrmsr", "wt", "x", "z",
});
// clang-format on

} // namespace

bool is_windbg_command(std::string_view word) {
    return std::find(kWinDbgCommands.begin(), kWinDbgCommands.end(), word) != kWinDbgCommands.end();
}

std::string unknown_command_message(std::string_view word, std::string_view command) {
    // Extension commands may be called module-qualified: !kdexts.vm, !ext.help.
    std::string_view base = word;
    if (base.size() > 1 && base[0] == '!') {
        if (auto dot = base.find('.'); dot != std::string_view::npos) {
            std::string qualified = "!" + std::string(base.substr(dot + 1));
            if (is_windbg_command(qualified)) {
                return std::string(word) + " is not supported yet";
            }
        }
    }
    // q, qq, qd reach here only with arguments they do not take ("Q,"): a typo.
    const bool quit_word = word == "q" || word == "qq" || word == "qd";
    if (!word.empty() && is_windbg_command(word) && !quit_word) {
        return std::string(word) + " is not supported yet";
    }
    if (word.size() > 1 && word[0] == '!') {
        return "No export " + std::string(word.substr(1)) + " found";
    }
    return std::string(7, ' ') + "^ Syntax error in '" + std::string(command) + "'";
}

std::string help_text() {
    return "kdcart commands (WinDbg syntax and output; ? or .help shows this list)\n"
           "\n"
           "Run control\n"
           "  g [addr], gc             go (to addr); gc: go on from a conditional breakpoint\n"
           "  t / p / gu [count]       trace into, step over, step out\n"
           "  tc / pc [count], ta / pa addr   trace / step to the next call, to an address\n"
           "  wt [-l depth] [-m mod] [-i mod] [-nc] [-ns] [-or] [end]   trace and watch a call\n"
           "  Ctrl+C                   break in while the target runs; cancel a long command\n"
           "  .reboot, .crash          reboot the target; bug check it\n"
           "  q                        quit, leaving the target running\n"
           "\n"
           "Breakpoints\n"
           "  bp / bu [/1] [/w \"cond\"] addr [passes] [\"cmds\"]   breakpoint / deferred\n"
           "  bm [/1] module!pattern [passes] [\"cmds\"]         one per matching symbol\n"
           "  ba [/1] e|r|w|i 1|2|4|8 addr [passes] [\"cmds\"]   hardware breakpoint\n"
           "  bl, bc / bd / be ids|*   list, clear, disable, enable\n"
           "  .pagein addr, .allow_bp_ba_convert 0|1\n"
           "  sxe / sxd / sxn / sxi av|dz|ii|sov|ld|ud|CODE      event filters\n"
           "\n"
           "Registers, memory, stack\n"
           "  r [reg[=value], ...]     registers (also cr0 cr2 cr3 cr4 cr8 gdtr idtr xmm0.. "
           "mxcsr)\n"
           "  r $t0 = expr             pseudo-registers $t0-$t19; $ip $ra $ptrsize $pagesize\n"
           "                           $exentry $retreg $csp $bpN in expressions\n"
           "  rM mask, rm [mask]       register display groups\n"
           "  db dw dd dq dp dc da du df dyb [addr] [L count]   display virtual memory\n"
           "  !db !dd !dq [addr]       display physical memory\n"
           "  eb ew ed eq ea eu eza ezu addr values             edit memory\n"
           "  s -b|-w|-d|-q|-a|-u range pattern, f range pattern   search, fill\n"
           "  .writemem / .readmem file range\n"
           "  u [addr] [L count]       unassemble\n"
           "  ub [addr] [L count]      unassemble backward\n"
           "  k / kn / kc [count]      stack\n"
           "  .lines [-e|-d|-t]        source lines in k, u, uf, ln, the stop line; bp `file.c:N`\n"
           "  .srcpath[+] [dirs]       source search path\n"
           "  l+t l+s l+o l+l l+* (l-) source mode: t/p by line, source at the stop; l+ shows\n"
           "  lsa addr[,first[,n]], ls [.][first][,n], lsc, lsf[-] file, lsp [n]   list source\n"
           "  lm [m pattern], ~, ~N    modules; processors, switch processor\n"
           "  vertarget, version, .lastevent\n"
           "\n"
           "Crash dumps and kernel\n"
           "  .dump /f | /k file, .bugcheck, !analyze [-show code], !error value\n"
           "  !process [cid|addr|-1] [flags] [name], !thread [addr|-1] [flags], !running, !ready\n"
           "  !peb, .process [/p /r] [addr], .thread [addr], .cxr [addr], .trap addr\n"
           "\n"
           "Expressions and scripting\n"
           "  ? expr, .formats expr    evaluate (MASM: poi() dwo() by() = != < > and or...)\n"
           "  .echo text, .printf \"fmt %p %x %d %s %ma %mu %y\", args\n"
           "  as / aS name text, as /x name expr, as /ma|/mu name addr, ad name|*, al\n"
           "  ${name}, ${/v:name} ${/d:name} ${/f:name}; r $.u0=text ($u0-$u9)\n"
           "  .if (c) { } .elsif (c) { } .else { }, .for (init; c; incr) { }\n"
           "  .while (c) { }, .do { } (c), .break, .continue, .block { }, .catch { }, .leave\n"
           "  j c 'cmds' ; 'cmds'      execute if - else\n"
           "  $$ comment, * comment line\n"
           "  $$<file, $$><file, $$>a<file args   run a script (${$arg1}...)\n"
           "  .logopen [/t] file, .logappend file, .logclose   copy the session to a file\n"
           "  .cls                     clear the screen\n"
           "\n"
           "A WinDbg command kdcart does not have yet says so by name (\"!chkimg is not supported "
           "yet\");\na typo gets WinDbg's \"^ Syntax error\".\n";
}

} // namespace kdcart::cli
