#include "cli/SourceListing.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

#include <charconv>
#include <cstdio>

namespace kdcart::cli {

namespace {

std::string syntax_error(std::string_view command) {
    return std::string(7, ' ') + "^ Syntax error in '" + std::string(command) + "'\n";
}

// A line number or count: decimal as WinDbg forces for these, 0x for hex, an optional '-'.
std::optional<int64_t> parse_number(std::string_view s) {
    s = trim(s);
    bool negative = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        negative = s[0] == '-';
        s.remove_prefix(1);
    }
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'n' || s[1] == 'N')) {
        s.remove_prefix(2);
    }
    uint32_t v = 0;
    const char* end = s.data() + s.size();
    auto [stop, ec] = std::from_chars(s.data(), end, v, base);
    if (s.empty() || ec != std::errc() || stop != end) {
        return std::nullopt;
    }
    return negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
}

// Splits "a, b, c" at the commas that are not inside backticks.
std::vector<std::string_view> split_commas(std::string_view s) {
    std::vector<std::string_view> out;
    bool quoted = false;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i < s.size() && s[i] == '`') {
            quoted = !quoted;
        }
        if (i == s.size() || (s[i] == ',' && !quoted)) {
            out.push_back(trim(s.substr(start, i - start)));
            start = i + 1;
        }
    }
    return out;
}

} // namespace

std::string format_source_line(uint32_t number, std::string_view text, bool marked) {
    char head[24];
    std::snprintf(head, sizeof head, "%c%5u: ", marked ? '>' : ' ', number);
    return head + std::string(text) + "\n";
}

uint32_t SourceView::options(engine::Debugger& dbg) const {
    uint32_t o = m_options & ~static_cast<uint32_t>(kSourceLine);
    if (dbg.known_symbols().load_lines()) {
        o |= kSourceLine;
    }
    return o;
}

bool SourceView::run(engine::Debugger& dbg, Output& out, std::string_view word,
                     std::string_view args) {
    if (word == ".srcpath" || word == ".lsrcpath") {
        const bool append = !args.empty() && args[0] == '+';
        cmd_srcpath(out, append, append ? args.substr(1) : args);
    } else if (word == "l" && !args.empty() && (args[0] == '+' || args[0] == '-')) {
        cmd_options(dbg, out, args[0], args.substr(1));
    } else if (word == "lsf") {
        const bool unload = !args.empty() && args[0] == '-';
        cmd_load(out, unload, unload ? args.substr(1) : args);
    } else if (word == "lsp") {
        cmd_lsp(dbg, out, args);
    } else if (word == "ls" || word == "lsa" || word == "lsc") {
        cmd_list(dbg, out, word, args);
    } else {
        return false;
    }
    return true;
}

void SourceView::cmd_srcpath(Output& out, bool append, std::string_view args) {
    args = trim(args);
    if (!args.empty()) {
        if (append) {
            finder().append_path(args);
        } else {
            finder().set_path(args);
        }
    }
    if (finder().directories().empty()) {
        out.write("No source search path\n");
    } else {
        out.write("Source search path is: " + finder().text() + "\n");
    }
}

void SourceView::cmd_options(engine::Debugger& dbg, Output& out, char sign, std::string_view args) {
    const std::string command = std::string("l") + sign + std::string(args);
    args = trim(args);
    uint32_t opt = 0;
    if (args.empty()) {
        opt = 0; // show the options
    } else if (args.size() > 2 && args[0] == '0' && (args[1] == 'x' || args[1] == 'X')) {
        auto v = parse_number(args);
        if (!v || *v < 0) {
            out.write(syntax_error(command));
            return;
        }
        opt = static_cast<uint32_t>(*v);
    } else if (args.size() != 1) {
        // One option per command, as in WinDbg ("l+lst" is not three options).
        out.write(syntax_error(command));
        return;
    } else {
        switch (args[0]) {
        case 't':
            opt = kSourceStep;
            break;
        case 'l':
            opt = kSourceLine;
            break;
        case 's':
            opt = kSourceList;
            break;
        case 'o':
            opt = kSourceOnly;
            break;
        case '*':
            opt = 0xffffffffu;
            break;
        default:
            out.write(syntax_error(command));
            return;
        }
    }
    auto& sym = dbg.symbols();
    if (sign == '+') {
        m_options |= opt;
        if (opt & kSourceLine) {
            sym.set_load_lines(true);
        }
        if (!sym.load_lines()) {
            out.write("  WARNING: Line information loading disabled\n");
        }
    } else {
        m_options &= ~opt;
        if (opt & kSourceLine) {
            sym.set_load_lines(false);
        }
    }
    const uint32_t o = options(dbg);
    char head[48];
    std::snprintf(head, sizeof head, "Source options are %x:\n", o);
    std::string text = head;
    if (o == 0) {
        text += "    None\n";
    } else {
        static const struct {
            uint32_t bit;
            const char* text;
        } kNames[] = {{kSourceStep, "t - Step/trace by source line"},
                      {kSourceLine, "l - List source line at prompt"},
                      {kSourceList, "s - List source code at prompt"},
                      {kSourceOnly, "o - Only show source code at prompt"}};
        for (const auto& n : kNames) {
            if (o & n.bit) {
                char line[80];
                std::snprintf(line, sizeof line, "    %2x/%s\n", n.bit, n.text);
                text += line;
            }
        }
    }
    out.write(text);
}

const engine::SourceText* SourceView::load(Output& out, const std::string& recorded) {
    auto file = m_files.load(recorded);
    if (!file) {
        out.write(file.error().message + "\n");
        return nullptr;
    }
    return *file;
}

std::string SourceView::lines_text(const engine::SourceText& file, int64_t first, int64_t last,
                                   uint32_t mark) {
    std::string text;
    if (first < 1) {
        first = 1;
    }
    if (last > static_cast<int64_t>(file.lines.size())) {
        last = static_cast<int64_t>(file.lines.size()); // past the end: the listing just stops
    }
    for (int64_t i = first; i <= last; ++i) {
        text += format_source_line(static_cast<uint32_t>(i), file.lines[static_cast<size_t>(i - 1)],
                                   static_cast<uint32_t>(i) == mark);
    }
    return text;
}

void SourceView::cmd_load(Output& out, bool unload, std::string_view args) {
    const std::string name(trim(args));
    if (name.empty()) {
        out.write(syntax_error(unload ? "lsf-" : "lsf"));
        return;
    }
    if (unload) {
        // The name as loaded first, then a loaded path that ends with it.
        if (const engine::SourceText* file = m_files.loaded(name)) {
            if (m_current == file) {
                m_current = nullptr; // as WinDbg: the current file goes with it
                m_current_line = 0;
            }
            m_files.unload(file);
            out.write("Unloaded '" + name + "'\n");
        }
        return;
    }
    const engine::SourceText* file = load(out, name);
    if (!file) {
        out.write("Unable to load '" + name + "'\n");
        return;
    }
    m_current = file;
    m_current_line = 1;
}

void SourceView::cmd_list(engine::Debugger& dbg, Output& out, std::string_view word,
                          std::string_view args) {
    const std::string command = std::string(word) + (args.empty() ? "" : " ") + std::string(args);
    if (word == "lsc") {
        if (m_current) {
            out.write("Current: " + m_current->recorded + "(" + std::to_string(m_current_line) +
                      ")\n");
        } else {
            out.write("No current source file\n");
        }
        return;
    }
    args = trim(args);
    bool at_address = word == "lsa";
    std::optional<uint64_t> address;
    if (!args.empty() && args[0] == '.' &&
        (args.size() == 1 || args[1] == ',' || std::isspace(static_cast<unsigned char>(args[1])))) {
        // "ls ." / "lsa .": the pc's file and line.
        at_address = true;
        address = dbg.last_stop().pc;
        args = trim(args.substr(1));
        if (!args.empty() && args[0] == ',') {
            args = trim(args.substr(1));
        }
    }
    std::vector<std::string_view> parts = split_commas(args);
    if (args.empty()) {
        parts.clear();
    }
    if (at_address && !address) {
        if (parts.empty() || parts[0].empty()) {
            out.write(syntax_error(command));
            return;
        }
        auto cb = dbg.expression_callbacks();
        auto a = evaluate_expression(parts[0], cb);
        if (!a) {
            out.write(a.error().message + "\n");
            return;
        }
        address = *a;
        parts.erase(parts.begin());
    }
    if (parts.size() > 2) {
        out.write(syntax_error(command));
        return;
    }
    // first: relative to the address's line for lsa (default -4, WinDbg's engine), the line
    // itself for ls (default: the current line).
    std::optional<int64_t> first;
    int64_t count = m_list_count;
    if (!parts.empty() && !parts[0].empty()) {
        first = parse_number(parts[0]);
        if (!first) {
            out.write(syntax_error(command));
            return;
        }
    }
    if (parts.size() == 2) {
        auto c = parse_number(parts[1]);
        if (!c || *c < 1) {
            out.write(syntax_error(command));
            return;
        }
        count = *c;
    }
    uint32_t mark = 0;
    if (at_address) {
        if (!dbg.known_symbols().load_lines()) {
            out.write("WARNING: Line information loading disabled\n");
            return;
        }
        auto at = dbg.known_symbols().visible_source_line(*address);
        if (!at) {
            out.write("No line information for " + format_address(*address) + "\n");
            return;
        }
        const engine::SourceText* file = load(out, at->file);
        if (!file) {
            return;
        }
        m_current = file;
        mark = at->line;
        m_current_line = static_cast<int64_t>(at->line) + first.value_or(-4);
    } else {
        if (!m_current) {
            out.write("No current source file\n");
            return;
        }
        if (first) {
            m_current_line = *first < 0 ? m_current_line + *first : *first;
        }
    }
    if (m_current_line < 1) {
        m_current_line = 1;
    }
    out.write(lines_text(*m_current, m_current_line, m_current_line + count - 1, mark));
    m_current_line += count;
}

void SourceView::cmd_lsp(engine::Debugger& dbg, Output& out, std::string_view args) {
    args = trim(args);
    if (!args.empty()) {
        const auto words = split_words(args);
        auto cb = dbg.expression_callbacks();
        auto a = evaluate_expression(words[0], cb);
        if (!a || *a > 0xffff || words.size() > 2) {
            out.write(syntax_error("lsp " + std::string(args)));
            return;
        }
        if (words.size() == 2) {
            auto b = evaluate_expression(words[1], cb);
            if (!b || *b > 0xffff) {
                out.write(syntax_error("lsp " + std::string(args)));
                return;
            }
            m_before = static_cast<uint32_t>(*a);
            m_after = static_cast<uint32_t>(*b);
        } else {
            m_after = static_cast<uint32_t>((*a + 1) / 2);
            m_before = static_cast<uint32_t>(*a) - m_after;
        }
    }
    if (!(m_options & kSourceList)) {
        out.write("WARNING: Source line display is disabled\n");
    }
    out.write("At the prompt, display " + std::to_string(m_before) + " source lines before and " +
              std::to_string(m_after) + " after\n");
}

std::string SourceView::stop_lines(engine::Debugger& dbg, Output& out, uint64_t pc) {
    if (!list_at_prompt() || !dbg.known_symbols().load_lines()) {
        return "";
    }
    auto at = dbg.known_symbols().visible_source_line(pc);
    if (!at) {
        return "";
    }
    const engine::SourceText* file = load(out, at->file);
    if (!file) {
        return "";
    }
    const int64_t line = at->line;
    return lines_text(*file, line - static_cast<int64_t>(m_before),
                      line + static_cast<int64_t>(m_after) - 1, at->line);
}

} // namespace kdcart::cli
