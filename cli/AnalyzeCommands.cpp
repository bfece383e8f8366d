// !analyze [-v]: the data from engine/BugCheckAnalysis, the text from cli/KernelFormat (head)
// and cli/AnalyzeFormat (the rest).
#include "cli/AnalyzeCommands.h"
#include "cli/AnalyzeFormat.h"
#include "cli/KernelFormat.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/BugCheckAnalysis.h"
#include "engine/BugCheckCodes.h"

namespace kdcart::cli {

namespace {

// The instruction at `address` in `u`'s layout; empty when unreadable.
std::string instruction_line(engine::Debugger& dbg, uint64_t address,
                             std::optional<uint32_t>* dword) {
    auto mem = dbg.read_virtual(address, 16);
    if (!mem) {
        return {};
    }
    const size_t n = mem->readable_prefix();
    if (n == 0) {
        return {};
    }
    if (dword != nullptr && n >= 4) {
        *dword = uint32_t{mem->bytes[0]} | uint32_t{mem->bytes[1]} << 8 |
                 uint32_t{mem->bytes[2]} << 16 | uint32_t{mem->bytes[3]} << 24;
    }
    size_t len = 0;
    auto symbolizer = [&dbg](uint64_t a) -> std::optional<std::string> {
        if (auto s = dbg.symbolize(a); s && !s->name.empty()) {
            return format_symbol(*s);
        }
        return std::nullopt;
    };
    return format_instruction(address, std::span<const uint8_t>(mem->bytes.data(), n), &len,
                              symbolizer);
}

} // namespace

bool run_analyze_command(engine::Debugger& dbg, Output& out, std::string_view word,
                         std::string_view args) {
    if (word != "!analyze") {
        return false;
    }
    const std::string a = lower(args);
    if (a.find("-show") != std::string::npos) {
        return false; // KernelCommands: the help of a code
    }
    for (size_t i = 0; i < a.size();) {
        while (i < a.size() && a[i] == ' ') {
            ++i;
        }
        size_t j = a.find(' ', i);
        if (j == std::string::npos) {
            j = a.size();
        }
        const std::string w = a.substr(i, j - i);
        if (!w.empty() && w != "-v" && w != "-f") {
            out.write("Usage: !analyze [-v] | !analyze -show CODE [P1 [P2 [P3 [P4]]]]   ('" + w +
                      "' is not an option kdcart knows)\n");
            return true;
        }
        i = j;
    }
    const bool verbose = a.find("-v") != std::string::npos;
    engine::BugCheckAnalyzer analyzer(dbg);
    auto head = analyzer.bugcheck();
    if (!head) {
        out.write("No bug check to analyze: the target did not stop for a bug check "
                  "(use !analyze -show CODE [args] for a code's description).\n");
        return true;
    }
    out.write(format_analyze_banner());
    auto result = analyzer.analyze();
    if (!result) {
        out.write("Unable to analyze the bug check: " + result.error().message + "\n");
        return true;
    }
    const auto& r = *result;
    if (verbose) {
        out.write(
            format_bugcheck_help(r.code, r.params, engine::describe_bugcheck(r.code, r.params)));
        out.write("\n" + format_analyze_details(r.code, r.params));
        AnalyzeCode code;
        if (r.faulting_ip) {
            code.faulting_instruction = instruction_line(dbg, *r.faulting_ip, nullptr);
        }
        if (r.followup) {
            code.followup_instruction =
                instruction_line(dbg, r.stack[*r.followup].frame.pc, &code.fault_instr_code);
        }
        out.write(format_analyze_body(r, code));
        return true;
    }
    // !analyze without -v: WinDbg's short summary.
    auto d = engine::describe_bugcheck(r.code, r.params);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "Use !analyze -v to get detailed debugging information.\n\n"
                  "BugCheck %X, {%llx, %llx, %llx, %llx}\n\n",
                  r.code, static_cast<unsigned long long>(r.params[0]),
                  static_cast<unsigned long long>(r.params[1]),
                  static_cast<unsigned long long>(r.params[2]),
                  static_cast<unsigned long long>(r.params[3]));
    out.write(buf);
    if (r.followup) {
        out.write("Probably caused by : " + r.image_name + " ( " + r.symbol_name + " )\n\n");
    } else {
        out.write("Probably caused by : <no followup frame: " + r.followup_reason + ">\n\n");
    }
    out.write("Followup:     MachineOwner\n---------\n\n");
    return true;
}

} // namespace kdcart::cli
