// Scripting commands in WinDbg's syntax: aliases (as, aS, ad, al), .echo, .printf, .formats,
// .cls, .logopen / .logappend / .logclose, gc, r $t0 = expr and r $.u0 = text; the REPL's side
// of the command-program interpreter (cli/Script.h); what unknown commands answer.
#include "cli/CommandCatalog.h"
#include "cli/LinkCommands.h"
#include "cli/Repl.h"
#include "cli/ScriptFormat.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/Expression.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace kdcart::cli {

// ---- LogOutput ---------------------------------------------------------------------------------

LogOutput::~LogOutput() {
    if (m_file != nullptr) {
        std::fclose(m_file);
    }
}

void LogOutput::write(std::string_view text) {
    if (m_capture != nullptr) {
        m_capture->append(text);
        return;
    }
    m_inner.write(text);
    log_only(text);
}

void LogOutput::log_only(std::string_view text) {
    if (m_file != nullptr) {
        std::fwrite(text.data(), 1, text.size(), m_file);
        std::fflush(m_file);
    }
}

Result<void> LogOutput::open(const std::string& path, bool append) {
    std::FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
    if (f == nullptr) {
        return make_error(Errc::Io,
                          "Unable to open log file '" + path + "': " + std::strerror(errno));
    }
    if (m_file != nullptr) {
        std::fclose(m_file);
    }
    m_file = f;
    m_path = path;
    return {};
}

void LogOutput::close() {
    if (m_file != nullptr) {
        std::fclose(m_file);
    }
    m_file = nullptr;
    m_path.clear();
}

// ---- the interpreter's host ------------------------------------------------------------------

ScriptFlow Repl::script_command(std::string_view command) {
    const bool in_breakpoint = m_bp_command_depth > 0;
    if (in_breakpoint && g_interrupt.load()) {
        // Ctrl+C during a logging breakpoint's storm of hits: its commands stop here and the
        // target stays stopped (the wait that reported the hit returns to the prompt).
        g_interrupt.store(false);
        return ScriptFlow::Abort;
    }
    // A Ctrl+C while the target is stopped is for the command it interrupts (never a break-in
    // later): one left from before is dropped, one that came during it ends the command and the
    // rest of the program.
    if (!in_breakpoint && m_dbg->state() != engine::RunState::Running) {
        g_interrupt.store(false);
    }
    if (run_command(command) == Flow::Quit) {
        return ScriptFlow::Quit;
    }
    note_verified_reads(*m_dbg, m_out); // what a noisy link cost it (LinkCommands.cpp)
    if (m_dbg->state() != engine::RunState::Running && g_interrupt.exchange(false)) {
        return ScriptFlow::Abort;
    }
    if (m_dbg->state() == engine::RunState::Running) {
        if (in_breakpoint) {
            // A breakpoint's command string resumed the target (bp f "r rcx; g"): what follows
            // is not run, and the wait that reported the hit goes on waiting - no nesting, so a
            // logging breakpoint runs for as many hits as happen.
            return ScriptFlow::Abort;
        }
        if (!wait_while_running()) {
            m_exit_code = 1;
            return ScriptFlow::Quit;
        }
        if (m_quit) {
            return ScriptFlow::Quit; // a breakpoint's command string quit
        }
    }
    return ScriptFlow::Normal;
}

Result<uint64_t> Repl::script_evaluate(std::string_view expression) {
    return evaluate_expression(expression, m_dbg->expression_callbacks());
}

Result<uint64_t> Repl::script_evaluate_prefix(std::string_view text, size_t* consumed) {
    auto cb = m_dbg->expression_callbacks();
    auto v = evaluate_expression_prefix(text, cb, consumed);
    return v;
}

void Repl::script_error(std::string_view message) {
    error(message);
}

bool Repl::script_interrupted() {
    return m_dbg->state() != engine::RunState::Running && g_interrupt.exchange(false);
}

Result<std::string> Repl::script_read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return make_error(Errc::NotFound,
                          "Couldn't open script file '" + path + "': " + std::strerror(errno));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.size() > 16u * 1024 * 1024) {
        return make_error(Errc::InvalidArgument, "Script file '" + path + "' is over 16 MiB");
    }
    return text;
}

void Repl::script_echo(std::string_view command) {
    print(prompt() + std::string(command) + "\n");
}

Repl::Flow Repl::execute_line(const std::string& line) {
    if (m_line_depth == 0) {
        m_log.log_only(prompt() + line + "\n"); // what the user typed, in the log
    }
    ++m_line_depth;
    const ScriptFlow flow = m_script.run_block(line);
    --m_line_depth;
    return flow == ScriptFlow::Quit || m_quit ? Flow::Quit : Flow::Continue;
}

void Repl::run_breakpoint_command(uint32_t id, const std::string& command) {
    if (m_break_requested || g_interrupt.exchange(false)) {
        return; // the user pressed Ctrl+C: stay stopped
    }
    if (m_bp_command_depth >= 16) {
        error("Breakpoint " + std::to_string(id) +
              "'s command not run: breakpoint commands "
              "that step (t, p) nest 16 deep here");
        return;
    }
    ++m_bp_command_depth;
    (void)m_script.run_block(command);
    --m_bp_command_depth;
}

// ---- commands --------------------------------------------------------------------------------

namespace {

// Leading switches: "/x", "/ma"...; the first word that is not one ends them.
std::string take_switch(std::string_view& args) {
    args = trim(args);
    if (args.size() < 2 || args[0] != '/') {
        return {};
    }
    size_t end = 1;
    while (end < args.size() && !std::isspace(static_cast<unsigned char>(args[end]))) {
        ++end;
    }
    std::string sw(args.substr(1, end - 1));
    args = trim(args.substr(end));
    return sw;
}

std::string take_word(std::string_view& args) {
    args = trim(args);
    size_t end = 0;
    while (end < args.size() && !std::isspace(static_cast<unsigned char>(args[end]))) {
        ++end;
    }
    std::string w(args.substr(0, end));
    args = args.substr(end);
    return w;
}

// UTF-16LE to UTF-8.
std::string utf16_to_utf8(const std::vector<uint16_t>& units) {
    std::string out;
    for (size_t i = 0; i < units.size(); ++i) {
        uint32_t cp = units[i];
        if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < units.size() && units[i + 1] >= 0xDC00 &&
            units[i + 1] < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (units[i + 1] - 0xDC00);
            ++i;
        }
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
    return out;
}

constexpr size_t k_max_string = 0x2000; // characters read for %ma / as /ma

} // namespace

std::optional<std::string> Repl::read_target_string(uint64_t address, bool unicode,
                                                    std::optional<size_t> bytes) {
    const size_t unit = unicode ? 2 : 1;
    const size_t limit = bytes ? *bytes : k_max_string * unit;
    std::vector<uint8_t> data;
    uint64_t at = address;
    while (data.size() < limit) {
        // Up to the end of the page, so an unreadable next page does not hide this one.
        size_t chunk = std::min<size_t>(limit - data.size(), 0x1000 - (at & 0xFFF));
        auto m = m_dbg->read_virtual(at, chunk);
        if (!m) {
            break;
        }
        size_t n = m->readable_prefix();
        data.insert(data.end(), m->bytes.begin(), m->bytes.begin() + static_cast<long>(n));
        if (n < chunk) {
            break;
        }
        if (!bytes) {
            bool terminated = false;
            for (size_t i = 0; i + unit <= data.size() && !terminated; i += unit) {
                terminated = data[i] == 0 && (unit == 1 || data[i + 1] == 0);
            }
            if (terminated) {
                break;
            }
        }
        at += n;
    }
    if (data.empty() && limit != 0) {
        return std::nullopt;
    }
    if (bytes && data.size() < *bytes) {
        return std::nullopt;
    }
    if (!unicode) {
        std::string s;
        for (uint8_t b : data) {
            if (b == 0 && !bytes) {
                break;
            }
            s += static_cast<char>(b);
        }
        return s;
    }
    std::vector<uint16_t> units;
    for (size_t i = 0; i + 1 < data.size(); i += 2) {
        uint16_t u = static_cast<uint16_t>(data[i] | data[i + 1] << 8);
        if (u == 0 && !bytes) {
            break;
        }
        units.push_back(u);
    }
    return utf16_to_utf8(units);
}

std::optional<std::string> Repl::read_counted_string(uint64_t address, bool unicode) {
    // ANSI_STRING / UNICODE_STRING on x64: USHORT Length, USHORT MaximumLength, PVOID Buffer
    // at +8.
    auto m = m_dbg->read_virtual(address, 16);
    if (!m || !m->all_valid()) {
        return std::nullopt;
    }
    const size_t length = static_cast<size_t>(m->bytes[0] | m->bytes[1] << 8);
    uint64_t buffer = 0;
    std::memcpy(&buffer, m->bytes.data() + 8, 8);
    if (length == 0) {
        return std::string();
    }
    return read_target_string(buffer, unicode, length);
}

bool Repl::run_script_command(std::string_view word, std::string_view args,
                              std::string_view command) {
    if (word == "as") {
        cmd_alias(command.substr(0, 2) == "aS", args);
    } else if (word == "ad") {
        cmd_alias_delete(args);
    } else if (word == "al") {
        cmd_alias_list();
    } else if (word == ".echo") {
        args = trim(args);
        if (args.size() >= 2 && args.front() == '"' && args.back() == '"') {
            args = args.substr(1, args.size() - 2);
        }
        print(std::string(args) + "\n");
    } else if (word == ".printf") {
        cmd_printf(args);
    } else if (word == ".formats") {
        auto v = script_evaluate(trim(args));
        if (!v) {
            error(v.error().message);
        } else {
            print(format_formats(*v));
        }
    } else if (word == ".cls") {
        print("\x1b[H\x1b[2J\x1b[3J");
    } else if (word == ".logopen" || word == ".logappend" || word == ".logclose" ||
               word == ".logfile") {
        cmd_log(word, args);
    } else if (word == "gc") {
        // Go from a conditional breakpoint: kdcart resumes the same way g does.
        cmd_go(args);
    } else {
        return false;
    }
    return true;
}

void Repl::unknown_command(std::string_view word, std::string_view command) {
    std::string w(word);
    if (w.empty()) {
        // "|", "||", "#"...: the first character is the command.
        w = std::string(1, command.empty() ? ' ' : command[0]);
    }
    error(unknown_command_message(w, command));
}

void Repl::cmd_alias(bool phrase, std::string_view args) {
    const std::string usage = phrase ? "Usage: aS [/x|/ma|/mu|/msa|/msu|/e|/f|/c] NAME EQUIVALENT"
                                     : "Usage: as [/x|/ma|/mu|/msa|/msu|/e|/f|/c] NAME EQUIVALENT";
    std::string sw = take_switch(args);
    std::string name = strip_verbatim(take_word(args));
    if (name.empty()) {
        error(usage);
        return;
    }
    for (std::string_view bad : {"al", "as", "aS", "ad"}) {
        if (name.substr(0, 2) == bad) {
            error("Alias names may not begin with al, as, aS or ad ('" + name + "')");
            return;
        }
    }
    // The equivalent: no leading blanks; as keeps the rest of the line, aS takes a phrase
    // ("quoted" or not).
    std::string_view rest = args;
    while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) {
        rest.remove_prefix(1);
    }
    std::string value;
    if (sw.empty()) {
        value = std::string(rest);
        if (phrase && value.size() >= 2 && value.front() == '"') {
            auto close = value.find('"', 1);
            value = value.substr(1, close == std::string::npos ? std::string::npos : close - 1);
        }
    } else if (sw == "x") {
        auto v = script_evaluate(trim(rest));
        if (!v) {
            error(v.error().message);
            return;
        }
        char buf[32];
        std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(*v));
        value = buf;
    } else if (sw == "ma" || sw == "mu" || sw == "msa" || sw == "msu") {
        auto v = script_evaluate(trim(rest));
        if (!v) {
            error(v.error().message);
            return;
        }
        const bool unicode = sw == "mu" || sw == "msu";
        auto s = sw.size() == 3 ? read_counted_string(*v, unicode)
                                : read_target_string(*v, unicode, std::nullopt);
        if (!s) {
            error("Memory access error at '" + std::string(trim(rest)) + "'");
            return;
        }
        value = *s;
    } else if (sw == "e") {
        const char* env = std::getenv(std::string(trim(rest)).c_str());
        if (env == nullptr) {
            error("Environment variable '" + std::string(trim(rest)) + "' is not set");
            return;
        }
        value = env;
    } else if (sw == "f") {
        auto text = script_read_file(std::string(trim(rest)));
        if (!text) {
            error(text.error().message);
            return;
        }
        value = *text;
    } else if (sw == "c") {
        // The output of the commands, carriage returns included.
        std::string captured;
        m_log.begin_capture(&captured);
        (void)m_script.run_statements(rest);
        m_log.end_capture();
        value = captured;
    } else {
        error("Unknown option '/" + sw + "'; " + usage.substr(7));
        return;
    }
    m_aliases.set(name, std::move(value));
}

void Repl::cmd_alias_delete(std::string_view args) {
    bool quiet = false;
    std::string sw;
    while (!(sw = take_switch(args)).empty()) {
        if (sw == "q") {
            quiet = true;
        } else {
            error("Usage: ad [/q] NAME | *");
            return;
        }
    }
    args = trim(args);
    if (args.empty()) {
        error("Usage: ad [/q] NAME | *");
        return;
    }
    while (!args.empty()) {
        std::string name = strip_verbatim(take_word(args));
        args = trim(args);
        if (name == "*") {
            m_aliases.clear();
            continue;
        }
        if (!m_aliases.remove(name) && !quiet) {
            error("No alias named '" + name + "'");
        }
    }
}

void Repl::cmd_alias_list() {
    if (m_aliases.all().empty()) {
        print("No aliases\n");
        return;
    }
    std::string out = "  Alias            Value  \n -------          ------- \n";
    for (const auto& [name, value] : m_aliases.all()) {
        char head[64];
        std::snprintf(head, sizeof head, " %-16s ", name.c_str());
        out += head + value + "\n";
    }
    print(out);
}

void Repl::cmd_printf(std::string_view args) {
    auto cmd = parse_printf(args);
    if (!cmd) {
        error(cmd.error().message);
        return;
    }
    std::vector<uint64_t> values;
    for (const auto& a : cmd->arguments) {
        auto v = script_evaluate(a);
        if (!v) {
            error(v.error().message);
            return;
        }
        values.push_back(*v);
    }
    PrintfCallbacks cb;
    cb.read_string = [this](uint64_t address, bool unicode) {
        return read_target_string(address, unicode, std::nullopt);
    };
    cb.read_counted = [this](uint64_t address, bool unicode) {
        return read_counted_string(address, unicode);
    };
    cb.symbol = [this](uint64_t address) {
        if (auto s = m_dbg->symbolize(address); s && !s->name.empty()) {
            return format_symbol(*s) + " (" + format_address(address) + ")";
        }
        return format_address(address);
    };
    auto text = format_printf(cmd->format, values, cb);
    if (!text) {
        error(text.error().message);
        return;
    }
    print(*text);
}

void Repl::cmd_log(std::string_view word, std::string_view args) {
    if (word == ".logfile") {
        print(m_log.is_open() ? "Log '" + m_log.path() + "' open\n" : "No log file open\n");
        return;
    }
    if (word == ".logclose") {
        if (!m_log.is_open()) {
            print("No log file open\n");
            return;
        }
        print("Closing open log file " + m_log.path() + "\n");
        m_log.close();
        return;
    }
    // Switches are single letters, so a Linux path ("/tmp/kd.log") is a file name.
    bool stamp = false;
    for (;;) {
        args = trim(args);
        if (args.size() < 2 || args[0] != '/' ||
            (args.size() > 2 && !std::isspace(static_cast<unsigned char>(args[2])))) {
            break;
        }
        if (args[1] == 't' && word == ".logopen") {
            stamp = true;
        } else if (args[1] == 'u') {
            // Unicode logs: kdcart writes UTF-8 either way.
        } else {
            error("Usage: " + std::string(word) +
                  (word == ".logopen" ? " [/t] [/u] [FILE]" : " [/u] [FILE]"));
            return;
        }
        args = args.substr(2);
    }
    std::string path(trim(args));
    if (path.size() >= 2 && path.front() == '"' && path.back() == '"') {
        path = path.substr(1, path.size() - 2);
    }
    if (path.empty()) {
        path = "Dbgeng.log";
    }
    if (stamp) {
        // name_PID_YYYY-MM-DD_HH-MM-SS-mmm.ext, before the extension.
        using namespace std::chrono;
        const auto now = system_clock::now();
        const std::time_t t = system_clock::to_time_t(now);
        const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
        std::tm tm{};
        localtime_r(&t, &tm);
        char when[64];
        std::strftime(when, sizeof when, "%Y-%m-%d_%H-%M-%S", &tm);
        char tag[96];
        std::snprintf(tag, sizeof tag, "_%04X_%s-%03d", static_cast<unsigned>(::getpid()), when,
                      static_cast<int>(ms));
        size_t slash = path.find_last_of('/');
        size_t dot = path.find_last_of('.');
        if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
            path += tag;
        } else {
            path.insert(dot, tag);
        }
    }
    if (m_log.is_open()) {
        print("Closing open log file " + m_log.path() + "\n");
        m_log.close();
    }
    if (auto r = m_log.open(path, word == ".logappend"); !r) {
        error(r.error().message);
        return;
    }
    print("Opened log file '" + path + "'\n");
}

bool Repl::cmd_pseudo_registers(std::string_view args) {
    std::string_view a = trim(args);
    if (!a.empty() && a[0] == '@') {
        a.remove_prefix(1);
    }
    if (a.empty() || a[0] != '$') {
        return false;
    }
    // r $.u0 = text: the fixed-name alias $u0 (leading and trailing blanks dropped).
    if (a.size() >= 4 && a.substr(0, 3) == "$.u" && a[3] >= '0' && a[3] <= '9') {
        auto eq = a.find('=');
        if (eq == std::string_view::npos) {
            error("Usage: r $.u" + std::string(1, a[3]) + "=TEXT");
            return true;
        }
        m_aliases.set_fixed(static_cast<unsigned>(a[3] - '0'), std::string(trim(a.substr(eq + 1))));
        return true;
    }
    // r $t0 = expr [, $t1 = expr]  |  r $t0 [, $ip]  |  r $t0 $t1
    std::string list(trim(args));
    if (list.find('=') == std::string::npos) {
        for (auto& ch : list) {
            ch = std::isspace(static_cast<unsigned char>(ch)) ? ',' : ch;
        }
    }
    std::string out;
    size_t pos = 0;
    while (pos <= list.size()) {
        size_t comma = list.find(',', pos);
        std::string item(trim(std::string_view(list).substr(
            pos, comma == std::string::npos ? std::string::npos : comma - pos)));
        pos = comma == std::string::npos ? list.size() + 1 : comma + 1;
        if (item.empty()) {
            continue;
        }
        auto eq = item.find('=');
        std::string name = lower(trim(std::string_view(item).substr(0, eq)));
        if (!name.empty() && name[0] == '@') {
            name.erase(0, 1);
        }
        if (name.empty() || name[0] != '$') {
            error("Bad register error in 'r " + item +
                  "' (pseudo-registers and registers "
                  "go in separate r commands)");
            return true;
        }
        if (eq == std::string::npos) {
            auto v = m_dbg->pseudo_register(name);
            if (!v) {
                error("Bad register error in 'r " + item + "'");
                return true;
            }
            char buf[64];
            std::snprintf(buf, sizeof buf, "%s=%016llx\n", name.c_str(),
                          static_cast<unsigned long long>(*v));
            out += buf;
            continue;
        }
        auto value = script_evaluate(trim(std::string_view(item).substr(eq + 1)));
        if (!value) {
            error(value.error().message);
            return true;
        }
        if (auto t = engine::PseudoRegisters::user_index(name)) {
            m_dbg->pseudo_registers().set_user(*t, *value);
        } else if (name == "$ip") {
            auto ctx = m_dbg->context();
            if (!ctx) {
                error("Unable to get the registers: " + ctx.error().message);
                return true;
            }
            CONTEXT c = *ctx;
            c.Rip = *value;
            if (auto r = m_dbg->set_context(c); !r) {
                error("Unable to set the registers: " + r.error().message);
                return true;
            }
        } else {
            error("Bad register error in 'r " + item + "' (" + name +
                  (engine::PseudoRegisters::is_automatic(name) ? " is read-only)"
                                                               : " is not a pseudo-register)"));
            return true;
        }
    }
    print(out);
    return true;
}

void Repl::cmd_help() {
    print(help_text());
}

} // namespace kdcart::cli
