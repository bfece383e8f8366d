// WinDbg debugger command programs: statements, control flow tokens, script files.
#include "cli/Script.h"

#include <algorithm>
#include <cctype>

namespace kdcart::cli {

namespace {

constexpr int k_max_depth = 64;

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool is_word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '!';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& ch : r) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return r;
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

// Index just past the quoted string that opens at text[i] ('"'), or text.size().
size_t skip_quoted(std::string_view text, size_t i) {
    for (++i; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) {
            ++i;
        } else if (text[i] == '"') {
            return i + 1;
        }
    }
    return text.size();
}

// Index just past a ${...} token that opens at text[i], or text.size().
size_t skip_alias_token(std::string_view text, size_t i) {
    size_t end = text.find('}', i + 2);
    return end == std::string_view::npos ? text.size() : end + 1;
}

// Scans text from `from`, skipping quoted strings and ${...} tokens, counting `open`/`close`
// nesting; returns the index of the first `stop` found at depth 0 (after the nesting was
// entered when `stop` is `close`), or npos.
size_t scan_nested(std::string_view text, size_t from, char open, char close, char stop) {
    int depth = 0;
    for (size_t i = from; i < text.size();) {
        const char c = text[i];
        if (c == '"') {
            i = skip_quoted(text, i);
            continue;
        }
        if (c == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            i = skip_alias_token(text, i);
            continue;
        }
        if (c == open) {
            ++depth;
        } else if (c == close && depth > 0) {
            if (--depth == 0 && stop == close) {
                return i;
            }
        } else if (c == stop && depth == 0) {
            return i;
        }
        ++i;
    }
    return std::string_view::npos;
}

// The ';' that ends the statement starting at `from` (outside quotes and { } blocks), or the
// end of the text.
size_t statement_end(std::string_view text, size_t from) {
    return std::min(scan_nested(text, from, '{', '}', ';'), text.size());
}

// The ')' matching the '(' at text[open], or npos.
size_t matching_paren(std::string_view text, size_t open) {
    return scan_nested(text, open, '(', ')', ')');
}

// A file name or argument: "quoted" or up to a blank or ';'.
std::string take_argument(std::string_view text, size_t& pos) {
    while (pos < text.size() && is_blank(text[pos])) {
        ++pos;
    }
    std::string out;
    if (pos < text.size() && text[pos] == '"') {
        size_t end = text.find('"', pos + 1);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        out = std::string(text.substr(pos + 1, end - pos - 1));
        pos = end < text.size() ? end + 1 : end;
        return out;
    }
    while (pos < text.size() && !is_blank(text[pos]) && text[pos] != ';') {
        out += text[pos++];
    }
    return out;
}

// Replaces ${$argN} and a standalone $argN with the script's arguments (N from 1). Arguments
// that were not given stay as they are, as in WinDbg.
std::string substitute_arguments(std::string_view text, const std::vector<std::string>& args) {
    std::string out;
    for (size_t i = 0; i < text.size();) {
        const bool braced = starts_with(text.substr(i), "${$arg");
        const bool bare = !braced && starts_with(text.substr(i), "$arg") &&
                          (i == 0 || is_blank(text[i - 1]) || text[i - 1] == ';' ||
                           text[i - 1] == '"' || text[i - 1] == '(' || text[i - 1] == ',');
        if (braced || bare) {
            size_t d = i + (braced ? 6 : 4);
            size_t n = 0;
            size_t e = d;
            while (e < text.size() && std::isdigit(static_cast<unsigned char>(text[e])) &&
                   e - d < 4) {
                n = n * 10 + static_cast<size_t>(text[e] - '0');
                ++e;
            }
            const bool closed = !braced || (e < text.size() && text[e] == '}');
            const bool ends =
                braced || e >= text.size() ||
                !(std::isalnum(static_cast<unsigned char>(text[e])) || text[e] == '_');
            if (e > d && closed && ends && n >= 1 && n <= args.size()) {
                out += args[n - 1];
                i = braced ? e + 1 : e;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

} // namespace

std::vector<std::string> ScriptEngine::split_top_level(std::string_view text) {
    std::vector<std::string> out;
    size_t start = 0;
    int parens = 0;
    for (size_t i = 0; i <= text.size();) {
        if (i == text.size()) {
            out.emplace_back(trim(text.substr(start)));
            break;
        }
        const char c = text[i];
        if (c == '"') {
            i = skip_quoted(text, i);
            continue;
        }
        if (c == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            i = skip_alias_token(text, i);
            continue;
        }
        if (c == '{') {
            size_t end = find_block_end(text, i);
            i = end == std::string_view::npos ? text.size() : end + 1;
            continue;
        }
        if (c == '(') {
            ++parens;
        } else if (c == ')' && parens > 0) {
            --parens;
        } else if (c == ';' && parens == 0) {
            out.emplace_back(trim(text.substr(start, i - start)));
            start = i + 1;
        }
        ++i;
    }
    return out;
}

ScriptFlow ScriptEngine::run_block(std::string_view text) {
    return run_statements(m_aliases.expand(text));
}

ScriptFlow ScriptEngine::run_statements(std::string_view text) {
    if (m_depth >= k_max_depth) {
        m_host.script_error("Command programs nested too deeply (more than " +
                            std::to_string(k_max_depth) + " blocks or scripts)");
        return ScriptFlow::Abort;
    }
    ++m_depth;
    Cursor c{text, 0};
    ScriptFlow flow = ScriptFlow::Normal;
    for (;;) {
        while (!c.at_end() && (is_blank(c.text[c.pos]) || c.text[c.pos] == ';')) {
            ++c.pos;
        }
        if (c.at_end()) {
            break;
        }
        flow = run_one(c);
        if (flow != ScriptFlow::Normal) {
            break;
        }
    }
    --m_depth;
    return flow;
}

ScriptFlow ScriptEngine::syntax_error(std::string_view what, std::string_view near) {
    (void)what;
    m_host.script_error(std::string(7, ' ') + "^ Syntax error in '" + std::string(trim(near)) +
                        "'");
    return ScriptFlow::Abort;
}

std::optional<bool> ScriptEngine::condition(std::string_view text) {
    if (trim(text).empty()) {
        return true; // .for (init; ; incr) as in C
    }
    auto v = m_host.script_evaluate(trim(text));
    if (!v) {
        m_host.script_error(v.error().message);
        return std::nullopt;
    }
    return *v != 0;
}

bool ScriptEngine::take_condition(Cursor& c, std::string_view what, std::string& out,
                                  bool until_brace) {
    (void)what;
    while (!c.at_end() && (is_blank(c.text[c.pos]) || c.text[c.pos] == ';')) {
        ++c.pos;
    }
    if (c.at_end()) {
        return false;
    }
    if (c.text[c.pos] == '(') {
        size_t close = matching_paren(c.text, c.pos);
        if (close == std::string_view::npos) {
            return false;
        }
        out = std::string(c.text.substr(c.pos + 1, close - c.pos - 1));
        c.pos = close + 1;
        return true;
    }
    // No parentheses: up to the block (or the end of the statement).
    size_t end = until_brace ? c.text.find('{', c.pos) : statement_end(c.text, c.pos);
    if (end == std::string_view::npos) {
        return false;
    }
    out = std::string(trim(c.text.substr(c.pos, end - c.pos)));
    c.pos = end;
    return !out.empty();
}

bool ScriptEngine::take_block(Cursor& c, std::string_view what, std::string& out) {
    (void)what;
    while (!c.at_end() && (is_blank(c.text[c.pos]) || c.text[c.pos] == ';')) {
        ++c.pos;
    }
    if (c.at_end() || c.text[c.pos] != '{') {
        return false;
    }
    size_t end = find_block_end(c.text, c.pos);
    if (end == std::string_view::npos) {
        return false;
    }
    out = std::string(c.text.substr(c.pos + 1, end - c.pos - 1));
    c.pos = end + 1;
    return true;
}

ScriptFlow ScriptEngine::run_one(Cursor& c) {
    const size_t start = c.pos;
    const std::string_view rest = c.text.substr(start);

    if (starts_with(rest, "$$<") || starts_with(rest, "$$><") || starts_with(rest, "$$>a<") ||
        starts_with(rest, "$<") || starts_with(rest, "$><")) {
        return run_script_file(c);
    }
    if (starts_with(rest, "$$")) {
        c.pos = statement_end(c.text, start); // a comment, to the next ';'
        return ScriptFlow::Normal;
    }
    if (rest[0] == '*') {
        c.pos = c.text.size(); // a comment line: the rest is ignored
        return ScriptFlow::Normal;
    }
    if (rest[0] == '{' || rest[0] == '}') {
        c.pos = c.text.size();
        return syntax_error("block", rest);
    }

    size_t w = start;
    while (w < c.text.size() && is_word_char(c.text[w])) {
        ++w;
    }
    const std::string_view word = c.text.substr(start, w - start);
    const std::string lw = lower(word);
    const auto word_ends = [&] {
        return w >= c.text.size() || is_blank(c.text[w]) || c.text[w] == ';' || c.text[w] == '}';
    };

    if (lw == ".if") {
        c.pos = w;
        return run_if(c);
    }
    if (lw == ".for") {
        c.pos = w;
        return run_for(c);
    }
    if (lw == ".while" || lw == ".do") {
        c.pos = w;
        return run_while(c, lw == ".do");
    }
    if (lw == ".block" || lw == ".catch") {
        c.pos = w;
        std::string body;
        if (!take_block(c, lw, body)) {
            c.pos = c.text.size();
            return syntax_error(lw, rest);
        }
        ScriptFlow f = run_block(body);
        if (lw == ".catch" && (f == ScriptFlow::Abort || f == ScriptFlow::Leave)) {
            return ScriptFlow::Normal;
        }
        return f;
    }
    if ((lw == ".break" || lw == ".continue" || lw == ".leave") && word_ends()) {
        c.pos = w;
        return lw == ".break"      ? ScriptFlow::Break
               : lw == ".continue" ? ScriptFlow::Continue
                                   : ScriptFlow::Leave;
    }
    if (lw == ".else" || lw == ".elsif") {
        c.pos = statement_end(c.text, start);
        return syntax_error(lw, rest.substr(0, c.pos - start));
    }
    if (lw == "j" && w < c.text.size() && !is_word_char(c.text[w])) {
        // j takes the rest of the text: Command2 ends the statement, whatever follows.
        c.pos = c.text.size();
        return run_j(c.text.substr(w));
    }
    if (word == "as" && (w >= c.text.size() || is_blank(c.text[w]))) {
        // as Name EquivalentLine: the rest of the line, semicolons included.
        c.pos = c.text.size();
        return m_host.script_command(trim(rest));
    }
    const size_t end = statement_end(c.text, start);
    c.pos = end;
    const std::string_view command = trim(c.text.substr(start, end - start));
    if (command.empty()) {
        return ScriptFlow::Normal;
    }
    return m_host.script_command(command);
}

ScriptFlow ScriptEngine::run_if(Cursor& c) {
    struct Branch {
        std::string condition; // empty for .else
        std::string body;
        bool is_else = false;
    };
    std::vector<Branch> branches;
    const size_t start = c.pos;
    Branch first;
    if (!take_condition(c, ".if", first.condition, true) || !take_block(c, ".if", first.body)) {
        c.pos = c.text.size();
        return syntax_error(".if", ".if" + std::string(c.text.substr(start)));
    }
    branches.push_back(std::move(first));
    for (;;) {
        size_t look = c.pos;
        while (look < c.text.size() && (is_blank(c.text[look]) || c.text[look] == ';')) {
            ++look;
        }
        size_t w = look;
        while (w < c.text.size() && is_word_char(c.text[w])) {
            ++w;
        }
        const std::string lw = lower(c.text.substr(look, w - look));
        if (lw != ".elsif" && lw != ".else") {
            break;
        }
        c.pos = w;
        Branch b;
        const bool is_else = lw == ".else";
        b.is_else = is_else;
        if ((!is_else && !take_condition(c, lw, b.condition, true)) || !take_block(c, lw, b.body)) {
            c.pos = c.text.size();
            return syntax_error(lw, c.text.substr(look));
        }
        branches.push_back(std::move(b));
        if (is_else) {
            break;
        }
    }
    for (const auto& b : branches) {
        if (!b.is_else) {
            auto v = condition(b.condition);
            if (!v) {
                return ScriptFlow::Abort;
            }
            if (!*v) {
                continue;
            }
        }
        return run_block(b.body);
    }
    return ScriptFlow::Normal;
}

ScriptFlow ScriptEngine::loop_body(std::string_view body, bool& stop) {
    ScriptFlow f = run_block(body);
    if (f == ScriptFlow::Break) {
        stop = true;
        return ScriptFlow::Normal;
    }
    if (f == ScriptFlow::Continue || f == ScriptFlow::Normal) {
        return ScriptFlow::Normal;
    }
    stop = true;
    return f;
}

ScriptFlow ScriptEngine::run_for(Cursor& c) {
    const size_t start = c.pos;
    std::string header;
    std::string body;
    if (!take_condition(c, ".for", header, true) || !take_block(c, ".for", body)) {
        c.pos = c.text.size();
        return syntax_error(".for", ".for" + std::string(c.text.substr(start)));
    }
    auto parts = split_top_level(header);
    if (parts.size() < 2) {
        return syntax_error(".for", ".for (" + header + ")");
    }
    std::string increment;
    for (size_t i = 2; i < parts.size(); ++i) {
        increment += parts[i] + ";";
    }
    if (ScriptFlow f = run_statements(parts[0]); f != ScriptFlow::Normal) {
        return f;
    }
    for (;;) {
        if (m_host.script_interrupted()) {
            m_host.script_error("^C: .for interrupted");
            return ScriptFlow::Abort;
        }
        auto v = condition(parts[1]);
        if (!v) {
            return ScriptFlow::Abort;
        }
        if (!*v) {
            return ScriptFlow::Normal;
        }
        bool stop = false;
        ScriptFlow f = loop_body(body, stop);
        if (stop) {
            return f;
        }
        if (ScriptFlow g = run_statements(increment); g != ScriptFlow::Normal) {
            return g;
        }
    }
}

ScriptFlow ScriptEngine::run_while(Cursor& c, bool do_while) {
    const size_t start = c.pos;
    std::string cond;
    std::string body;
    const char* what = do_while ? ".do" : ".while";
    const bool ok = do_while ? take_block(c, what, body) && take_condition(c, what, cond, false)
                             : take_condition(c, what, cond, true) && take_block(c, what, body);
    if (!ok) {
        c.pos = c.text.size();
        return syntax_error(what, what + std::string(c.text.substr(start)));
    }
    for (bool first = true;; first = false) {
        if (m_host.script_interrupted()) {
            m_host.script_error(std::string("^C: ") + what + " interrupted");
            return ScriptFlow::Abort;
        }
        if (!(do_while && first)) {
            auto v = condition(cond);
            if (!v) {
                return ScriptFlow::Abort;
            }
            if (!*v) {
                return ScriptFlow::Normal;
            }
        }
        bool stop = false;
        ScriptFlow f = loop_body(body, stop);
        if (stop) {
            return f;
        }
    }
}

ScriptFlow ScriptEngine::run_j(std::string_view rest) {
    size_t used = 0;
    auto v = m_host.script_evaluate_prefix(rest, &used);
    if (!v) {
        m_host.script_error(v.error().message);
        return ScriptFlow::Abort;
    }
    size_t pos = used;
    // One command string: 'quoted' (may hold ';') or up to the next ';'.
    auto take = [&](std::string& out) {
        while (pos < rest.size() && is_blank(rest[pos])) {
            ++pos;
        }
        if (pos < rest.size() && rest[pos] == '\'') {
            size_t end = rest.find('\'', pos + 1);
            if (end == std::string_view::npos) {
                end = rest.size();
            }
            out = std::string(rest.substr(pos + 1, end - pos - 1));
            pos = end < rest.size() ? end + 1 : end;
            return;
        }
        size_t end = statement_end(rest, pos);
        out = std::string(trim(rest.substr(pos, end - pos)));
        pos = end;
    };
    std::string yes;
    std::string no;
    take(yes);
    while (pos < rest.size() && is_blank(rest[pos])) {
        ++pos;
    }
    if (pos < rest.size() && rest[pos] == ';') {
        ++pos;
        take(no);
    }
    return run_statements(*v != 0 ? yes : no);
}

ScriptFlow ScriptEngine::run_script_file(Cursor& c) {
    const std::string_view rest = c.text.substr(c.pos);
    // Which form: $$>a< (arguments), $$>< / $>< (condensed), $$< / $< (line by line). The
    // single-'$' forms take the rest of the text as the file name (it may hold ';').
    const bool single = rest[1] != '$';
    std::string_view token;
    for (std::string_view t : {"$$>a<", "$$><", "$$<", "$><", "$<"}) {
        if (starts_with(rest, t)) {
            token = t;
            break;
        }
    }
    const bool with_args = token == "$$>a<";
    const bool condensed = token.find('>') != std::string_view::npos;
    size_t pos = c.pos + token.size();
    std::string path;
    std::vector<std::string> args;
    if (single) {
        path = std::string(trim(c.text.substr(pos)));
        if (path.size() >= 2 && path.front() == '"' && path.back() == '"') {
            path = path.substr(1, path.size() - 2);
        }
        c.pos = c.text.size();
    } else if (with_args) {
        path = take_argument(c.text, pos);
        for (;;) {
            while (pos < c.text.size() && is_blank(c.text[pos])) {
                ++pos;
            }
            if (pos >= c.text.size() || c.text[pos] == ';') {
                break;
            }
            args.push_back(take_argument(c.text, pos));
        }
        c.pos = pos;
    } else {
        size_t end = statement_end(c.text, pos);
        path = std::string(trim(c.text.substr(pos, end - pos)));
        if (path.size() >= 2 && path.front() == '"' && path.back() == '"') {
            path = path.substr(1, path.size() - 2);
        }
        c.pos = end;
    }
    if (path.empty()) {
        return syntax_error(token, rest);
    }
    auto text = m_host.script_read_file(path);
    if (!text) {
        m_host.script_error(text.error().message);
        return ScriptFlow::Abort;
    }
    std::string body;
    body.reserve(text->size());
    for (char ch : *text) {
        if (ch != '\r') {
            body += ch;
        }
    }
    if (with_args) {
        body = substitute_arguments(body, args);
    }
    if (condensed) {
        for (auto& ch : body) {
            if (ch == '\n') {
                ch = ';';
            }
        }
        while (!body.empty() && (body.back() == ';' || is_blank(body.back()))) {
            body.pop_back();
        }
        if (!with_args) {
            m_host.script_echo(body);
        }
        return run_block(body);
    }
    // Line by line: each line is a command line of its own.
    size_t from = 0;
    while (from <= body.size()) {
        size_t nl = body.find('\n', from);
        std::string_view line = std::string_view(body).substr(
            from, nl == std::string::npos ? std::string::npos : nl - from);
        from = nl == std::string::npos ? body.size() + 1 : nl + 1;
        if (trim(line).empty()) {
            continue;
        }
        if (m_host.script_interrupted()) {
            m_host.script_error("^C: script interrupted");
            return ScriptFlow::Abort;
        }
        m_host.script_echo(line);
        ScriptFlow f = run_block(line);
        if (f == ScriptFlow::Quit) {
            return f;
        }
    }
    return ScriptFlow::Normal;
}

} // namespace kdcart::cli
