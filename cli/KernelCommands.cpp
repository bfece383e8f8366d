// Kernel inspection commands. Data comes from the engine (bug check table, error table, PTE
// decoder, target memory); the text from cli/KernelFormat.
#include "cli/KernelCommands.h"
#include "cli/KernelFormat.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/BugCheckCodes.h"
#include "engine/ErrorCodes.h"
#include "engine/KernelState.h"
#include "engine/PteDecoder.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <vector>

namespace kdcart::cli {

namespace {

class KernelCommands {
  public:
    KernelCommands(engine::Debugger& dbg, Output& out) : m_dbg(dbg), m_out(out) {}

    bool run(std::string_view word, std::string_view args) {
        if (word == "!analyze") {
            analyze(args);
            return true;
        }
        if (word == "!error") {
            error_code(args);
            return true;
        }
        if (word == "!pte") {
            pte(args);
            return true;
        }
        if (word == "!vtop") {
            vtop(args);
            return true;
        }
        if (word == "!irql") {
            irql(args);
            return true;
        }
        if (word == "~") {
            list_processors();
            return true;
        }
        if (word == ".lastevent") {
            last_event();
            return true;
        }
        if (word == "!pcr" || word == "!prcb") {
            pcr_prcb(word == "!pcr", args);
            return true;
        }
        if (word == "!process") {
            process(args);
            return true;
        }
        return false;
    }

  private:
    void print(std::string_view text) { m_out.write(text); }
    void error(std::string_view text) {
        std::string s(text);
        if (s.empty() || s.back() != '\n') {
            s.push_back('\n');
        }
        m_out.write(s);
    }
    // A number or expression argument (hex by default, 0n for decimal...).
    std::optional<uint64_t> value(std::string_view text) {
        auto v = m_dbg.evaluate(text);
        if (!v) {
            error(v.error().message);
            return std::nullopt;
        }
        return *v;
    }

    // !analyze -show [CODE [P1 [P2 [P3 [P4]]]]]: the bug check's help (without CODE: the one
    // the machine stopped with).
    void analyze(std::string_view args) {
        auto words = split_words(args);
        bool show = false;
        std::vector<std::string> rest;
        for (const auto& w : words) {
            const std::string lw = lower(w);
            if (lw == "-show") {
                show = true;
            } else if (lw == "-v" || lw == "-f" || lw == "-hang") {
                // -v: verbose analysis; not available yet (see below).
            } else {
                rest.push_back(w);
            }
        }
        uint32_t code = 0;
        std::array<uint64_t, 4> params{0, 0, 0, 0};
        if (show && !rest.empty()) {
            if (rest.size() > 5) {
                error("Usage: !analyze -show BUGCHECK_CODE [P1 [P2 [P3 [P4]]]]");
                return;
            }
            auto c = value(rest[0]);
            if (!c) {
                return;
            }
            code = static_cast<uint32_t>(*c);
            for (size_t i = 1; i < rest.size(); ++i) {
                auto p = value(rest[i]);
                if (!p) {
                    return;
                }
                params[i - 1] = *p;
            }
        } else {
            const auto& stop = m_dbg.last_stop();
            code = stop.bugcheck_code;
            for (size_t i = 0; i < 4; ++i) {
                params[i] = stop.bugcheck_params[i];
            }
            if (code == 0 && m_dbg.can_run()) {
                // Live: what nt!KiBugCheckData holds (KeBugCheckEx fills it before it breaks).
                if (auto info = m_dbg.target_info();
                    info && info->kddata_found && info->kddata.KiBugcheckData != 0) {
                    auto b = m_dbg.read_virtual(info->kddata.KiBugcheckData, 40);
                    if (b && b->all_valid()) {
                        uint64_t v[5];
                        std::memcpy(v, b->bytes.data(), sizeof v);
                        code = static_cast<uint32_t>(v[0]);
                        for (size_t i = 0; i < 4; ++i) {
                            params[i] = v[i + 1];
                        }
                    }
                }
            }
            if (code == 0) {
                error("No bug check to analyze: the target did not stop for a bug check "
                      "(use !analyze -show CODE [args] for a code's description).");
                return;
            }
            if (!show) {
                print("*******************************************************************"
                      "************\n"
                      "*                                                                  "
                      "           *\n"
                      "*                        Bugcheck Analysis                         "
                      "           *\n"
                      "*                                                                  "
                      "           *\n"
                      "*******************************************************************"
                      "************\n\n");
            }
        }
        print(format_bugcheck_help(code, params, engine::describe_bugcheck(code, params)));
        if (!show) {
            print("\n" + format_analyze_details(code, params));
            print("(PROCESS_NAME, CURRENT_IRQL, STACK_TEXT, FOLLOWUP_IP, SYMBOL_NAME, "
                  "MODULE_NAME, IMAGE_NAME and FAILURE_BUCKET_ID need the kernel's PDB types: "
                  "not shown)\n");
        }
    }

    // !error VALUE [1]: 1 = the value is an NTSTATUS. VALUE is an expression, so `0n-1073741811`
    // (001:1933) is -1073741811 in decimal; the low 32 bits are the code.
    void error_code(std::string_view args) {
        auto words = split_words(args);
        if (words.empty() || words.size() > 2) {
            error("Usage: !error VALUE [1]   (1: treat VALUE as an NTSTATUS)");
            return;
        }
        auto v = value(words[0]);
        if (!v) {
            return;
        }
        bool as_ntstatus = false;
        if (words.size() == 2) {
            auto f = value(words[1]);
            if (!f) {
                return;
            }
            as_ntstatus = (*f & 1) != 0;
        }
        print(format_error_code(engine::lookup_error(static_cast<uint32_t>(*v), as_ntstatus)));
    }

    engine::PhysReader phys_reader() {
        return [this](uint64_t pa) -> std::optional<uint64_t> {
            auto b = m_dbg.read_physical(pa, 8);
            if (!b || !b->all_valid()) {
                return std::nullopt;
            }
            uint64_t v = 0;
            std::memcpy(&v, b->bytes.data(), 8);
            return v;
        };
    }

    // The current processor's page-table root.
    std::optional<uint64_t> current_dtb() {
        auto cr3 = m_dbg.target().page_directory(m_dbg.current_processor());
        if (!cr3) {
            error("Unable to get the page directory of the current processor: " +
                  cr3.error().message);
            return std::nullopt;
        }
        return *cr3;
    }

    // The PTE base: the PML4 entry that maps the PML4 itself (found by reading the 512
    // entries of the current DTB: works without symbols, and on Windows 10 1607+ where the
    // base is randomised), else KDDEBUGGER_DATA64.PteBase.
    std::optional<uint64_t> pte_base(uint64_t dtb) {
        std::optional<uint64_t> from_kd;
        if (auto info = m_dbg.target_info(); info && info->kddata_found &&
                                             info->kddata.Header.Size > 0x360 &&
                                             info->kddata.PteBase != 0) {
            from_kd = info->kddata.PteBase;
        }
        auto table = m_dbg.read_physical(dtb & 0x000FFFFFFFFFF000ull, 4096);
        if (table && table->all_valid()) {
            std::vector<uint64_t> pml4(512);
            std::memcpy(pml4.data(), table->bytes.data(), 4096);
            if (auto index = engine::find_self_map_index(pml4, dtb)) {
                const uint64_t base = engine::pte_base_from_self_map_index(*index);
                if (from_kd && *from_kd != base) {
                    print("WARNING: KDDEBUGGER_DATA64.PteBase " + format_address(*from_kd) +
                          " differs from the self-map entry's " + format_address(base) +
                          "; using the self-map\n");
                }
                return base;
            }
        }
        if (from_kd) {
            print("(no self-map entry in the PML4 at " + hex_text(dtb) +
                  "; PTE base from KDDEBUGGER_DATA64)\n");
            return from_kd;
        }
        error("Unable to find the PTE base: no self-map entry in the PML4 and no "
              "KDDEBUGGER_DATA64.PteBase");
        return std::nullopt;
    }

    // !pte VA: the entries are read from physical memory along the current processor's
    // tables; their self-map addresses come from the PTE base.
    void pte(std::string_view args) {
        if (trim(args).empty()) {
            error("Usage: !pte VirtualAddress");
            return;
        }
        auto va = value(args);
        if (!va) {
            return;
        }
        auto dtb = current_dtb();
        if (!dtb) {
            return;
        }
        auto base = pte_base(*dtb);
        if (!base) {
            return;
        }
        auto walk = engine::walk_page_tables(*va, *dtb, phys_reader());
        print(format_pte(engine::paging_structure_addresses(*va, *base), walk));
    }

    // !vtop DirBase VA (DirBase 0: the current processor's).
    void vtop(std::string_view args) {
        auto words = split_words(args);
        if (words.size() != 2) {
            error("Usage: !vtop DirBase VirtualAddress   (DirBase 0: the current one)");
            return;
        }
        auto dtb = value(words[0]);
        auto va = dtb ? value(words[1]) : std::nullopt;
        if (!dtb || !va) {
            return;
        }
        if (*dtb == 0) {
            dtb = current_dtb();
            if (!dtb) {
                return;
            }
        }
        print(format_vtop(engine::walk_page_tables(*va, *dtb, phys_reader())));
    }

    // A processor number argument (default: the current processor).
    std::optional<uint32_t> processor_arg(std::string_view args) {
        if (trim(args).empty()) {
            return m_dbg.current_processor();
        }
        auto n = value(args);
        if (!n) {
            return std::nullopt;
        }
        if (*n >= m_dbg.num_processors()) {
            error("Invalid processor number " + std::to_string(*n) + " (the target has " +
                  std::to_string(m_dbg.num_processors()) + ")");
            return std::nullopt;
        }
        return static_cast<uint32_t>(*n);
    }

    std::optional<engine::ProcessorInfo> processor_info(uint32_t cpu) {
        engine::KernelState ks(m_dbg);
        auto p = ks.processor(cpu);
        if (!p) {
            error("Unable to read processor " + std::to_string(cpu) +
                  "'s KPRCB: " + p.error().message);
            return std::nullopt;
        }
        return *p;
    }

    static std::string irql_name(uint64_t irql) {
        switch (irql) {
        case 0:
            return "LOW_LEVEL";
        case 1:
            return "APC_LEVEL";
        case 2:
            return "DISPATCH_LEVEL";
        case 13:
            return "CLOCK_LEVEL";
        case 14:
            return "IPI_LEVEL";
        case 15:
            return "HIGH_LEVEL";
        default:
            return "DEVICE_LEVEL";
        }
    }

    // !irql [N]. WinDbg shows KPRCB.DebuggerSavedIRQL (the IRQL before the debugger raised it);
    // that field has no KDDEBUGGER_DATA64 offset, so without the kernel's PDB types this shows
    // CR8 as the KPRCB's saved special registers hold it at the stop, and says so.
    void irql(std::string_view args) {
        auto cpu = processor_arg(args);
        if (!cpu) {
            return;
        }
        auto p = processor_info(*cpu);
        if (!p) {
            return;
        }
        if (!p->cr8) {
            error("Unable to read the IRQL: KDDEBUGGER_DATA64 gives no "
                  "OffsetPrcbProcStateSpecialReg, and KPRCB.DebuggerSavedIRQL needs the "
                  "kernel's PDB types");
            return;
        }
        char buf[160];
        std::snprintf(buf, sizeof buf, "CR8 saved for processor 0x%x -- %u (%s)\n", *cpu,
                      static_cast<unsigned>(*p->cr8 & 0xF), irql_name(*p->cr8 & 0xF).c_str());
        print(buf);
        print("(from KDDEBUGGER_DATA64: KPRCB + OffsetPrcbProcStateSpecialReg, "
              "KSPECIAL_REGISTERS.Cr8; WinDbg's \"Debugger saved IRQL\" is "
              "KPRCB.DebuggerSavedIRQL and needs the kernel's PDB types)\n");
    }

    // `~`: the processors, the current one marked with '.'.
    void list_processors() {
        engine::KernelState ks(m_dbg);
        auto all = ks.processors();
        if (!all) {
            error("Unable to list the processors: " + all.error().message);
            return;
        }
        for (const auto& p : *all) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "%c%3u  KPRCB: %s  Current thread: %s%s\n",
                          p.index == m_dbg.current_processor() ? '.' : ' ', p.index,
                          format_address(p.kprcb).c_str(), format_address(p.current_thread).c_str(),
                          p.current_thread != 0 && p.current_thread == p.idle_thread ? " (idle)"
                                                                                     : "");
            print(buf);
        }
    }

    // .lastevent: what the target last stopped for.
    void last_event() {
        const auto& stop = m_dbg.last_stop();
        std::string what;
        switch (stop.kind) {
        case engine::StopKind::BreakIn:
        case engine::StopKind::Breakpoint:
            what = format_exception_line(protocol::STATUS_BREAKPOINT, stop.first_chance);
            break;
        case engine::StopKind::SingleStep:
            what = format_exception_line(0x80000004u, stop.first_chance);
            break;
        case engine::StopKind::Exception:
            what = format_exception_line(stop.exception_code, stop.first_chance);
            break;
        case engine::StopKind::LoadSymbols:
            what = std::string(stop.unload ? "Unload module " : "Load module ") + stop.image_path +
                   " at " + format_address(stop.image_base);
            break;
        case engine::StopKind::Dump: {
            char buf[64];
            std::snprintf(buf, sizeof buf, "Bugcheck %08X", stop.bugcheck_code);
            what = stop.bugcheck_code != 0 ? std::string(buf) : "the state the dump was written in";
            break;
        }
        default:
            what = "<none>";
            break;
        }
        print("Last event: " + what + "\n");
        if (stop.bugcheck_code != 0 && stop.kind != engine::StopKind::Dump) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "  (bug check %08X)\n", stop.bugcheck_code);
            print(buf);
        }
    }

    // !pcr [N] / !prcb [N]: the fields KDDEBUGGER_DATA64's offsets reach.
    void pcr_prcb(bool pcr, std::string_view args) {
        auto cpu = processor_arg(args);
        if (!cpu) {
            return;
        }
        auto p = processor_info(*cpu);
        if (!p) {
            return;
        }
        auto line = [&](const char* name, uint64_t v) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "\t%19s: %016" PRIx64 "\n", name, v);
            print(buf);
        };
        if (pcr) {
            if (p->kpcr == 0) {
                error("KDDEBUGGER_DATA64 gives no OffsetPcrContainedPrcb: the KPCR of processor " +
                      std::to_string(*cpu) + " cannot be located without the kernel's PDB types");
                return;
            }
            print("KPCR for Processor " + std::to_string(*cpu) + " at " + hex_text(p->kpcr) +
                  ":\n");
            line("SelfPcr", p->kpcr_self);
            line("Prcb", p->kpcr_prcb);
            print("\n");
            line("CurrentThread", p->current_thread);
            line("IdleThread", p->idle_thread);
            print("(from KDDEBUGGER_DATA64: OffsetPcrSelfPcr, OffsetPcrCurrentPrcb, "
                  "OffsetPrcbCurrentThread, OffsetPrcbIdleThread; the other KPCR fields need "
                  "the kernel's PDB types)\n");
            return;
        }
        print("PRCB for Processor " + std::to_string(*cpu) + " at " + hex_text(p->kprcb) + ":\n");
        print("Threads--  Current " + hex16_text(p->current_thread) + " Idle " +
              hex16_text(p->idle_thread) + "\n");
        std::string ident =
            "Processor Number " + (p->number ? std::to_string(*p->number) : std::string("?"));
        if (p->mhz) {
            ident += "  Mhz " + std::to_string(*p->mhz);
        }
        if (p->cpu_type) {
            ident += "  CpuType " + std::to_string(*p->cpu_type);
        }
        if (!p->vendor.empty()) {
            ident += "  Vendor " + p->vendor;
        }
        print(ident + "\n");
        print("(from KDDEBUGGER_DATA64's OffsetPrcb* fields; the other KPRCB fields need the "
              "kernel's PDB types)\n");
    }

    // !process [CID|ADDR [FLAGS [IMAGE]]]. Without the kernel's PDB types only the brief form
    // (flags 0) can be printed, from KDDEBUGGER_DATA64's offsets; the output says so.
    void process(std::string_view args) {
        auto words = split_words(args);
        uint64_t which = 0;
        uint64_t flags = 0;
        std::string image;
        if (!words.empty()) {
            auto w = value(words[0]);
            if (!w) {
                return;
            }
            which = *w;
        }
        if (words.size() > 1) {
            auto f = value(words[1]);
            if (!f) {
                return;
            }
            flags = *f;
        }
        if (words.size() > 2) {
            image = lower(words[2]);
        }
        if (words.empty()) {
            error("!process without arguments shows the current process: that needs the "
                  "kernel's PDB types (use !process 0 0)");
            return;
        }
        engine::KernelState ks(m_dbg);
        auto list = ks.processes();
        if (!list) {
            print("NT symbols are incorrect, please fix symbols\n");
            error("Unable to walk the process list: " + list.error().message);
            return;
        }
        if (!list->from_types) {
            print(format_no_types_notice(list->sources));
        }
        if (flags != 0) {
            print("(flags " + hex_text(flags) +
                  ": only the brief form (flags 0) is available so far)\n");
        }
        bool found = false;
        if (which == 0) {
            print("**** NT ACTIVE PROCESS DUMP ****\n");
        } else {
            if (which < 0x10000) {
                print("Searching for Process with Cid == " + hex_text(which) + "\n");
            }
        }
        for (const auto& p : list->processes) {
            if (which != 0 && p.pid != which && p.eprocess != which) {
                continue;
            }
            if (!image.empty() && lower(p.image) != image) {
                continue;
            }
            found = true;
            print(format_process_brief(p));
        }
        if (list->broken) {
            error("The process list is broken: " + *list->broken);
        }
        if (which != 0 && !found) {
            if (which < 0x10000) {
                error("Unable to get process with Cid " + hex_text(which));
            } else {
                error(format_address(which) +
                      " is not a process in the active process list (PsActiveProcessHead)");
            }
        }
    }

    static std::string hex16_text(uint64_t v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
        return buf;
    }

    static std::string hex_text(uint64_t v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%" PRIx64, v);
        return buf;
    }

    engine::Debugger& m_dbg;
    Output& m_out;
};

} // namespace

bool run_kernel_command(engine::Debugger& dbg, Output& out, std::string_view word,
                        std::string_view args) {
    KernelCommands k(dbg, out);
    return k.run(word, args);
}

} // namespace kdcart::cli
