// Memory commands: d* (db dw dd dc dq dp da du df dD dyb, !d* physical), e* (eb ew ed eq ep, ea
// eu eza ezu), s (search), f (fill), .writemem, .readmem.
//
// Long ranges stream: they are read in the largest requests the link carries, each request's
// lines are printed as it completes (batched to a tenth of a second), nothing but the line in
// progress is kept, progress goes to stderr when it is a terminal, and Ctrl+C stops the command
// before its next request. A Ctrl+C spent on a command is forgotten (it never becomes a break-in).
#include "cli/Progress.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "cli/format/MemoryLines.h"
#include "engine/MemoryStream.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace kdcart::cli {

namespace {

using engine::AddressSpace;
using engine::MemoryPiece;
using Clock = std::chrono::steady_clock;

// Reads at most this much through the page cache (d* of a few pages stays cached); larger
// ranges stream past it.
constexpr uint64_t kCachedReadMax = 64 * 1024;

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%" PRIx64, v);
    return buf;
}

// Output of a long command: text collects in a buffer that goes out when a tenth of a second has
// passed (or 256 KiB are waiting), with the progress line kept out of its way.
class StreamedOutput {
  public:
    StreamedOutput(Output& out, std::string what, uint64_t total)
        : m_out(out), m_progress(std::move(what), total) {}
    ~StreamedOutput() { flush(); }

    std::string& buffer() { return m_buf; }
    // After each piece of work: send the text if due, then redraw the progress.
    void step(uint64_t done) {
        const auto now = Clock::now();
        if (m_buf.size() >= 256 * 1024 || (!m_buf.empty() && now - m_last >= kFlushEvery)) {
            flush();
        }
        m_progress.update(done);
    }
    void flush() {
        if (m_buf.empty()) {
            return;
        }
        m_progress.hide();
        m_out.write(m_buf);
        m_buf.clear();
        m_last = Clock::now();
    }
    void hide_progress() { m_progress.hide(); }

  private:
    static constexpr auto kFlushEvery = std::chrono::milliseconds(100);
    Output& m_out;
    Progress m_progress;
    std::string m_buf;
    Clock::time_point m_last = Clock::now();
};

engine::StreamOptions cancellable() {
    engine::StreamOptions o;
    o.cancelled = [] { return g_interrupt.load(); };
    return o;
}

// Hands a block read through the cache to `sink` as pieces (runs of readable / unreadable bytes).
void block_to_pieces(const engine::MemoryBlock& block,
                     const std::function<void(const MemoryPiece&)>& sink) {
    size_t i = 0;
    while (i < block.bytes.size()) {
        const bool readable = block.valid[i];
        size_t j = i;
        while (j < block.bytes.size() && block.valid[j] == readable) {
            ++j;
        }
        MemoryPiece p{block.address + i, j - i, readable, {}};
        if (readable) {
            p.bytes = std::span<const uint8_t>(block.bytes.data() + i, j - i);
        }
        sink(p);
        i = j;
    }
}

// Splits "ADDR L COUNT rest" / "ADDR END rest" / "ADDR rest" for commands whose pattern follows
// the range (s, f). Count is in elements; `rest` is what follows.
struct RangeAndRest {
    uint64_t start = 0;
    uint64_t bytes = 0;
    bool length_given = false;
    std::string_view rest;
};

Result<RangeAndRest> parse_range_prefix(std::string_view text,
                                        const engine::ExpressionCallbacks& cb, size_t element,
                                        bool allow_end_address = true) {
    const std::string original(text);
    auto range_error = [&original]() {
        return make_error(Errc::InvalidArgument, "Range error in '" + original + "'");
    };
    RangeAndRest r;
    text = trim(text);
    size_t used = 0;
    auto start = evaluate_expression_prefix(text, cb, &used);
    if (!start) {
        return tl::unexpected(start.error());
    }
    r.start = *start;
    text = trim(text.substr(used));
    if (!text.empty() && (text[0] == 'L' || text[0] == 'l')) {
        text.remove_prefix(1);
        bool unlimited = false;
        if (!text.empty() && text[0] == '?') {
            unlimited = true;
            text.remove_prefix(1);
        }
        auto count = evaluate_expression_prefix(text, cb, &used);
        if (!count) {
            return tl::unexpected(count.error());
        }
        if (*count == 0 || *count > UINT64_MAX / element ||
            (!unlimited && *count * element > engine::k_max_range_bytes)) {
            return range_error();
        }
        r.bytes = *count * element;
        r.length_given = true;
        r.rest = trim(text.substr(used));
        return r;
    }
    if (allow_end_address && !text.empty() && text[0] != '"' && text[0] != '\'') {
        size_t end_used = 0;
        auto end = evaluate_expression_prefix(text, cb, &end_used);
        if (end) {
            if (*end < r.start || (*end - r.start) >= engine::k_max_range_bytes) {
                return range_error();
            }
            r.bytes = (*end - r.start) / element * element + element;
            r.length_given = true;
            r.rest = trim(text.substr(end_used));
            return r;
        }
    }
    r.rest = text;
    return r;
}

// Splits arguments at blanks, keeping "quoted strings" and 'c' together (quotes kept).
std::vector<std::string> tokens_of(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) {
            ++i;
        }
        if (i >= s.size()) {
            break;
        }
        size_t j = i;
        if (s[i] == '"' || s[i] == '\'') {
            const char q = s[i];
            j = i + 1;
            while (j < s.size() && s[j] != q) {
                j += (s[j] == '\\' && j + 1 < s.size()) ? 2 : 1;
            }
            j = std::min(j + 1, s.size());
        } else {
            while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) {
                ++j;
            }
        }
        out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

// The text between quotes with C escapes (\n \t \\ \" \0 \xNN) resolved.
std::string unquote(std::string_view q) {
    if (q.size() >= 2 && (q.front() == '"' || q.front() == '\'') && q.back() == q.front()) {
        q = q.substr(1, q.size() - 2);
    }
    std::string out;
    for (size_t i = 0; i < q.size(); ++i) {
        if (q[i] != '\\' || i + 1 >= q.size()) {
            out += q[i];
            continue;
        }
        const char c = q[++i];
        switch (c) {
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        case 'r':
            out += '\r';
            break;
        case '0':
            out += '\0';
            break;
        case 'x': {
            unsigned v = 0;
            int n = 0;
            while (n < 2 && i + 1 < q.size() &&
                   std::isxdigit(static_cast<unsigned char>(q[i + 1]))) {
                const char h = q[++i];
                v = v * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h))
                                                       ? h - '0'
                                                       : std::tolower(h) - 'a' + 10);
                ++n;
            }
            out += static_cast<char>(v);
            break;
        }
        default:
            out += c;
            break;
        }
    }
    return out;
}

bool is_quoted(std::string_view t) {
    return t.size() >= 2 && (t.front() == '"' || t.front() == '\'') && t.back() == t.front();
}

// ASCII text as UTF-16LE bytes (what eu/ezu/s -u put in memory).
std::vector<uint8_t> utf16le(std::string_view text) {
    std::vector<uint8_t> out;
    for (unsigned char c : text) {
        out.push_back(c);
        out.push_back(0);
    }
    return out;
}

} // namespace

// ---- dispatch --------------------------------------------------------------------------------

bool Repl::run_memory_command(std::string_view cmd) {
    size_t i = 0;
    while (i < cmd.size() && (std::isalnum(static_cast<unsigned char>(cmd[i])) || cmd[i] == '.' ||
                              cmd[i] == '!' || cmd[i] == '_')) {
        ++i;
    }
    const std::string raw(cmd.substr(0, i));
    const std::string word = lower(raw);
    const std::string_view args = trim(cmd.substr(i));
    // Case matters for dD (doubles) against dd (dwords), as in WinDbg.
    if (raw == "dD") {
        cmd_display("dD", args, false);
        return true;
    }
    static const char* kDisplay[] = {"db", "dw", "dd", "dq", "dp", "dc", "da", "du", "df", "dyb"};
    for (const char* d : kDisplay) {
        if (word == d) {
            cmd_display(word, args, false);
            return true;
        }
        if (word == std::string("!") + d) {
            cmd_display(word.substr(1), args, true);
            return true;
        }
    }
    if (word == "d") {
        cmd_display(m_last_display, args, false);
        return true;
    }
    if (word == "eb" || word == "ew" || word == "ed" || word == "eq" || word == "ep") {
        cmd_enter(word, args);
    } else if (word == "ea" || word == "eu" || word == "eza" || word == "ezu") {
        cmd_enter_string(word, args);
    } else if (word == "s") {
        cmd_search(args);
    } else if (word == "f") {
        cmd_fill(args);
    } else if (word == ".writemem") {
        cmd_writemem(args);
    } else if (word == ".readmem") {
        cmd_readmem(args);
    } else {
        return false;
    }
    return true;
}

// ---- d* ----------------------------------------------------------------------------------------

void Repl::cmd_display(std::string_view name, std::string_view args, bool physical) {
    if (!physical) {
        m_last_display = std::string(name);
    }
    auto cb = m_dbg->expression_callbacks();
    if (name == "da" || name == "du") {
        // Strings stop at their NUL; they are short (k_string_display_max_chars by default).
        const auto kind = name == "da" ? DisplayKind::Ascii : DisplayKind::Unicode;
        const size_t elem = display_element_size(kind);
        uint64_t start = 0;
        uint64_t count = display_default_count(kind);
        if (args.empty()) {
            if (!m_next_display) {
                error("No previous address; give one (e.g. " + std::string(name) + " nt)");
                return;
            }
            start = *m_next_display;
        } else {
            auto range = parse_range(args, cb, count, elem);
            if (!range) {
                error(range.error().message);
                return;
            }
            start = range->start;
            count = range->count;
        }
        const uint64_t bytes = count * elem;
        if (bytes > 16 * 1024 * 1024) {
            error("Range error in '" + std::string(args) + "' (more than 16 MiB)");
            return;
        }
        auto block =
            physical ? m_dbg->read_physical(start, bytes) : m_dbg->read_virtual(start, bytes);
        if (!block) {
            error("Memory read failed: " + block.error().message);
            return;
        }
        uint64_t next = start + bytes;
        std::string text = format_string_display(kind, *block, &next);
        if (physical) {
            std::string marked;
            size_t p = 0;
            while (p < text.size()) {
                const size_t nl = text.find('\n', p);
                marked +=
                    "#" + text.substr(p, nl == std::string::npos ? std::string::npos : nl - p + 1);
                if (nl == std::string::npos) {
                    break;
                }
                p = nl + 1;
            }
            text = marked;
        }
        print(text);
        if (!physical) {
            m_next_display = next;
        }
        return;
    }

    const std::string kind_name = name == "dp" ? "dq" : std::string(name);
    const auto kind = line_kind_from_command(kind_name);
    if (!kind) {
        error("Unknown display command " + std::string(name));
        return;
    }
    const size_t elem = line_kind_element_size(*kind);
    uint64_t start = 0;
    uint64_t count = line_kind_default_count(*kind);
    if (args.empty()) {
        if (!m_next_display) {
            error("No previous address; give one (e.g. " + std::string(name) + " nt)");
            return;
        }
        start = *m_next_display;
    } else {
        auto range = parse_range(args, cb, count, elem);
        if (!range) {
            error(range.error().message);
            return;
        }
        start = range->start;
        count = range->count;
    }
    if (count > UINT64_MAX / elem) {
        error("Range error in '" + std::string(args) + "'");
        return;
    }
    const uint64_t bytes = count * elem;
    MemoryLineFormatter lines(*kind, start, physical ? "#" : "");
    StreamedOutput out(m_out, std::string(physical ? "!" : "") + std::string(name), bytes);
    out.buffer() += lines.header();
    uint64_t done = 0;
    auto feed = [&](const MemoryPiece& piece) {
        lines.feed(piece, out.buffer());
        done += piece.size;
        out.step(done);
        return true;
    };
    if (!physical && bytes <= kCachedReadMax) {
        auto block = m_dbg->read_virtual(start, static_cast<size_t>(bytes));
        if (!block) {
            error("Memory read failed: " + block.error().message);
            return;
        }
        block_to_pieces(*block, [&](const MemoryPiece& p) { (void)feed(p); });
    } else {
        auto r = engine::stream_memory(m_dbg->memory(),
                                       physical ? AddressSpace::Physical : AddressSpace::Virtual,
                                       start, bytes, feed, cancellable());
        if (!r) {
            // Whole lines so far are printed; the line in progress is dropped.
            out.flush();
            out.hide_progress();
            if (r.error().code == Errc::Interrupted) {
                if (!physical) {
                    const size_t line = line_kind_line_bytes(*kind);
                    m_next_display = start + done / line * line;
                }
            } else {
                error("Memory read failed: " + r.error().message);
            }
            return;
        }
    }
    lines.finish(out.buffer());
    out.flush();
    if (!physical) {
        m_next_display = start + bytes;
    }
}

// ---- e* ----------------------------------------------------------------------------------------

void Repl::cmd_enter(std::string_view name, std::string_view args) {
    const unsigned size = name == "eb" ? 1 : name == "ew" ? 2 : name == "ed" ? 4 : 8;
    auto cb = m_dbg->expression_callbacks();
    const auto tokens = tokens_of(args);
    if (tokens.size() < 2) {
        error("Usage: " + std::string(name) + " ADDRESS VALUE [VALUE...]");
        return;
    }
    auto addr = evaluate_expression(tokens[0], cb);
    if (!addr) {
        error(addr.error().message);
        return;
    }
    std::vector<uint8_t> data;
    for (size_t i = 1; i < tokens.size(); ++i) {
        auto v = evaluate_expression(tokens[i], cb);
        if (!v) {
            error(v.error().message);
            return;
        }
        if (size < 8 && *v >= (1ull << (size * 8)) && (~*v >> (size * 8 - 1)) != 0) {
            error("Overflow in '" + tokens[i] + "' for a " + std::to_string(size) + "-byte value");
            return;
        }
        for (unsigned b = 0; b < size; ++b) {
            data.push_back(static_cast<uint8_t>(*v >> (8 * b)));
        }
    }
    auto wrote = m_dbg->write_virtual(*addr, data);
    if (!wrote) {
        error("Memory write failed: " + wrote.error().message);
        return;
    }
    if (*wrote < data.size()) {
        error("Memory access error at '" + format_address(*addr + *wrote) + "'");
    }
}

void Repl::cmd_enter_string(std::string_view name, std::string_view args) {
    // ea / eza: ASCII, eu / ezu: UTF-16; the z forms add the terminating NUL.
    auto cb = m_dbg->expression_callbacks();
    size_t used = 0;
    auto addr = evaluate_expression_prefix(trim(args), cb, &used);
    if (!addr) {
        error(addr.error().message);
        return;
    }
    const std::string_view rest = trim(trim(args).substr(used));
    if (!is_quoted(rest) || rest.front() != '"') {
        error("Usage: " + std::string(name) + " ADDRESS \"string\"");
        return;
    }
    std::string text = unquote(rest);
    const bool wide = name == "eu" || name == "ezu";
    const bool nul = name == "eza" || name == "ezu";
    std::vector<uint8_t> data =
        wide ? utf16le(text) : std::vector<uint8_t>(text.begin(), text.end());
    if (nul) {
        data.insert(data.end(), wide ? 2 : 1, 0);
    }
    if (data.empty()) {
        return;
    }
    auto wrote = m_dbg->write_virtual(*addr, data);
    if (!wrote) {
        error("Memory write failed: " + wrote.error().message);
        return;
    }
    if (*wrote < data.size()) {
        error("Memory access error at '" + format_address(*addr + *wrote) + "'");
    }
}

// ---- s -----------------------------------------------------------------------------------------

void Repl::cmd_search(std::string_view args) {
    // s [-[1]b|w|d|q|a|u] RANGE PATTERN
    char type = 'b';
    bool addresses_only = false;
    args = trim(args);
    while (!args.empty() && args[0] == '-') {
        std::string_view opt = args.substr(1);
        size_t n = 0;
        if (!opt.empty() && opt[0] == '[') {
            const size_t close = opt.find(']');
            if (close == std::string_view::npos) {
                error(std::string(7, ' ') + "^ Syntax error in 's " + std::string(args) + "'");
                return;
            }
            for (char f : opt.substr(1, close - 1)) {
                if (f == '1') {
                    addresses_only = true;
                } else {
                    error("Search flag '" + std::string(1, f) +
                          "' is not supported yet (only [1])");
                    return;
                }
            }
            n = close + 1;
        }
        if (n >= opt.size() || std::string_view("bwdqau").find(opt[n]) == std::string_view::npos) {
            error(std::string(7, ' ') + "^ Syntax error in 's " + std::string(args) + "'");
            return;
        }
        type = opt[n];
        args = trim(opt.substr(n + 1));
    }
    const size_t elem = type == 'w' || type == 'u' ? 2 : type == 'd' ? 4 : type == 'q' ? 8 : 1;
    auto cb = m_dbg->expression_callbacks();
    auto range = parse_range_prefix(args, cb, elem);
    if (!range) {
        error(range.error().message);
        return;
    }
    if (!range->length_given) {
        error("Range error in 's " + std::string(args) + "' (give L count or an end address)");
        return;
    }
    // The pattern, as bytes.
    std::vector<uint8_t> pattern;
    const auto toks = tokens_of(range->rest);
    if (toks.empty()) {
        error("Usage: s [-b|-w|-d|-q|-a|-u] RANGE PATTERN");
        return;
    }
    if (type == 'a' || type == 'u') {
        std::string text;
        for (const auto& t : toks) {
            text += is_quoted(t) ? unquote(t) : t;
        }
        pattern = type == 'u' ? utf16le(text) : std::vector<uint8_t>(text.begin(), text.end());
    } else {
        for (const auto& t : toks) {
            uint64_t v = 0;
            if (t.size() == 3 && t.front() == '\'' && t.back() == '\'') {
                v = static_cast<unsigned char>(t[1]);
            } else {
                auto e = evaluate_expression(t, cb);
                if (!e) {
                    error(e.error().message);
                    return;
                }
                v = *e;
            }
            if (elem < 8 && v >= (1ull << (elem * 8)) && (~v >> (elem * 8 - 1)) != 0) {
                error("Overflow in '" + t + "' for a " + std::to_string(elem) + "-byte value");
                return;
            }
            for (size_t b = 0; b < elem; ++b) {
                pattern.push_back(static_cast<uint8_t>(v >> (8 * b)));
            }
        }
    }
    if (pattern.empty()) {
        error("Empty search pattern");
        return;
    }
    // Each hit prints one line as the matching display command would: db for bytes and
    // strings, dw, dc (dwords with ASCII) and dq.
    const LineKind kind = type == 'w'   ? LineKind::Words
                          : type == 'd' ? LineKind::DwordsAscii
                          : type == 'q' ? LineKind::Qwords
                                        : LineKind::Bytes;
    const size_t granularity = (type == 'w' || type == 'd' || type == 'q') ? elem : 1;
    const size_t plen = pattern.size();

    StreamedOutput out(m_out, "s", range->bytes);
    std::vector<uint8_t> window; // readable bytes starting at window_addr
    uint64_t window_addr = range->start;
    uint64_t scan = range->start;  // next candidate address
    std::vector<uint64_t> pending; // hits whose display line is not all in the window yet
    const uint64_t end = range->start + range->bytes;

    auto print_hit = [&](uint64_t hit) {
        if (addresses_only) {
            out.buffer() += format_address(hit) + "\n";
            return;
        }
        MemoryLineFormatter line(kind, hit);
        const uint64_t have =
            window_addr + window.size() > hit ? window_addr + window.size() - hit : 0;
        if (hit >= window_addr && have >= 16) {
            line.feed(
                MemoryPiece{hit, 16, true,
                            std::span<const uint8_t>(window.data() + (hit - window_addr), 16)},
                out.buffer());
            return;
        }
        // Near a hole or the end of the range: read the line (cached, small).
        auto block = m_dbg->read_virtual(hit, 16);
        if (block) {
            block_to_pieces(*block, [&](const MemoryPiece& p) { line.feed(p, out.buffer()); });
        }
    };
    auto flush_pending = [&](bool all) {
        size_t k = 0;
        for (; k < pending.size(); ++k) {
            if (!all && pending[k] + 16 > window_addr + window.size()) {
                break;
            }
            print_hit(pending[k]);
        }
        pending.erase(pending.begin(), pending.begin() + static_cast<long>(k));
    };
    auto sink = [&](const MemoryPiece& piece) {
        if (!piece.readable) {
            flush_pending(true);
            window.clear();
            window_addr = piece.address + piece.size;
            scan = std::max(scan, window_addr);
        } else {
            if (window.empty()) {
                window_addr = piece.address;
            }
            window.insert(window.end(), piece.bytes.begin(), piece.bytes.end());
            const uint64_t wend = window_addr + window.size();
            if (scan < window_addr) {
                scan = window_addr;
            }
            for (; scan + plen <= wend && scan + plen <= end; ++scan) {
                if (scan % granularity != 0) {
                    continue;
                }
                if (std::memcmp(window.data() + (scan - window_addr), pattern.data(), plen) == 0) {
                    pending.push_back(scan);
                }
            }
            flush_pending(false);
            // Keep what a match starting at `scan` or a pending hit's line still needs.
            uint64_t keep_from = std::min(scan, wend);
            if (!pending.empty()) {
                keep_from = std::min(keep_from, pending.front());
            }
            if (keep_from > window_addr) {
                window.erase(window.begin(),
                             window.begin() + static_cast<long>(keep_from - window_addr));
                window_addr = keep_from;
            }
        }
        out.step(piece.address + piece.size - range->start);
        return true;
    };
    auto r = engine::stream_memory(m_dbg->memory(), AddressSpace::Virtual, range->start,
                                   range->bytes, sink, cancellable());
    if (!r) {
        out.flush();
        out.hide_progress();
        if (r.error().code != Errc::Interrupted) {
            error("Memory read failed: " + r.error().message);
        }
        return;
    }
    flush_pending(true);
}

// ---- f -----------------------------------------------------------------------------------------

void Repl::cmd_fill(std::string_view args) {
    // f RANGE PATTERN: the pattern's bytes repeated over the range.
    auto cb = m_dbg->expression_callbacks();
    auto range = parse_range_prefix(args, cb, 1);
    if (!range) {
        error(range.error().message);
        return;
    }
    if (!range->length_given) {
        error("Range error in 'f " + std::string(args) + "' (give L count or an end address)");
        return;
    }
    std::vector<uint8_t> pattern;
    for (const auto& t : tokens_of(range->rest)) {
        if (t.size() >= 2 && t.front() == '"' && t.back() == '"') {
            const std::string s = unquote(t);
            pattern.insert(pattern.end(), s.begin(), s.end());
            continue;
        }
        if (t.size() == 3 && t.front() == '\'' && t.back() == '\'') {
            pattern.push_back(static_cast<uint8_t>(t[1]));
            continue;
        }
        auto v = evaluate_expression(t, cb);
        if (!v) {
            error(v.error().message);
            return;
        }
        if (*v > 0xFF && (~*v >> 7) != 0) {
            error("Overflow in '" + t + "' for a 1-byte value");
            return;
        }
        pattern.push_back(static_cast<uint8_t>(*v));
    }
    if (pattern.empty()) {
        error("Usage: f RANGE PATTERN");
        return;
    }
    std::vector<uint8_t> chunk;
    Progress progress("f", range->bytes);
    auto source = [&](uint64_t offset, uint32_t n) {
        chunk.resize(n);
        for (uint32_t i = 0; i < n; ++i) {
            chunk[i] = pattern[(offset + i) % pattern.size()];
        }
        progress.update(offset);
        return std::span<const uint8_t>(chunk);
    };
    auto r = engine::stream_write(m_dbg->memory(), AddressSpace::Virtual, range->start,
                                  range->bytes, source, cancellable());
    progress.hide();
    if (!r) {
        if (r.error().code == Errc::Interrupted) {
            return;
        }
        error("Memory write failed: " + r.error().message);
        return;
    }
    if (*r < range->bytes) {
        error("Fill memory error at '" + format_address(range->start + *r) + "'");
        return;
    }
    print("Filled 0x" + hex(*r) + " bytes\n");
}

// ---- .writemem / .readmem ----------------------------------------------------------------------

namespace {

// ".writemem FILE RANGE": the file name (quoted or up to the first blank) and the rest.
bool split_file_arg(std::string_view args, std::string& file, std::string_view& rest) {
    args = trim(args);
    if (args.empty()) {
        return false;
    }
    if (args[0] == '"') {
        const size_t close = args.find('"', 1);
        if (close == std::string_view::npos) {
            return false;
        }
        file = std::string(args.substr(1, close - 1));
        rest = trim(args.substr(close + 1));
    } else {
        const size_t sp = args.find_first_of(" \t");
        file = std::string(args.substr(0, sp));
        rest = sp == std::string_view::npos ? std::string_view() : trim(args.substr(sp));
    }
    return !file.empty();
}

} // namespace

void Repl::cmd_writemem(std::string_view args) {
    std::string file;
    std::string_view rest;
    if (!split_file_arg(args, file, rest) || rest.empty()) {
        error("Usage: .writemem FILE RANGE");
        return;
    }
    auto cb = m_dbg->expression_callbacks();
    auto range = parse_range(rest, cb, 0, 1);
    if (!range) {
        error(range.error().message);
        return;
    }
    if (!range->count_given) {
        error("Range error in '.writemem " + std::string(args) +
              "' (give L count or an end "
              "address)");
        return;
    }
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error("Unable to create file '" + file + "': " + std::strerror(errno));
        return;
    }
    const uint64_t total = range->count;
    print("Writing " + hex(total) + " bytes");
    Progress progress(".writemem", total);
    uint64_t done = 0;
    uint64_t dots = 0;
    std::optional<uint64_t> unreadable;
    std::string write_error;
    auto sink = [&](const MemoryPiece& piece) {
        if (!piece.readable) {
            unreadable = piece.address;
            return false;
        }
        size_t off = 0;
        while (off < piece.bytes.size()) {
            const ssize_t n = ::write(fd, piece.bytes.data() + off, piece.bytes.size() - off);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                write_error = std::strerror(errno);
                return false;
            }
            off += static_cast<size_t>(n);
        }
        done += piece.size;
        // A dot per 64 KiB, as WinDbg marks progress on this line.
        std::string marks;
        while (dots < done / 0x10000) {
            marks += '.';
            ++dots;
        }
        if (!marks.empty()) {
            progress.hide();
            print(marks);
        }
        progress.update(done);
        return true;
    };
    auto r = engine::stream_memory(m_dbg->memory(), AddressSpace::Virtual, range->start, total,
                                   sink, cancellable());
    progress.hide();
    ::close(fd);
    print("\n");
    if (!r) {
        if (r.error().code == Errc::Interrupted) {
            error("Interrupted after 0x" + hex(done) + " bytes; " + file + " is incomplete");
        } else {
            error("Memory read failed: " + r.error().message);
        }
        return;
    }
    if (!write_error.empty()) {
        error("Unable to write '" + file + "': " + write_error);
        return;
    }
    if (unreadable) {
        error("Unable to read memory at " + format_address(*unreadable) + ", file is incomplete");
    }
}

void Repl::cmd_readmem(std::string_view args) {
    std::string file;
    std::string_view rest;
    if (!split_file_arg(args, file, rest) || rest.empty()) {
        error("Usage: .readmem FILE RANGE");
        return;
    }
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error("Unable to open file '" + file + "': " + std::strerror(errno));
        return;
    }
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    const off_t file_size = ::lseek(fd, 0, SEEK_END);
    ::lseek(fd, 0, SEEK_SET);
    auto cb = m_dbg->expression_callbacks();
    auto range = parse_range(rest, cb, 0, 1);
    if (!range) {
        error(range.error().message);
        return;
    }
    uint64_t total = file_size > 0 ? static_cast<uint64_t>(file_size) : 0;
    if (range->count_given) {
        total = std::min(total, range->count);
    }
    if (total == 0) {
        error("Nothing to read from '" + file + "'");
        return;
    }
    print("Reading " + hex(total) + " bytes");
    Progress progress(".readmem", total);
    std::vector<uint8_t> chunk;
    uint64_t dots = 0;
    std::string read_error;
    auto source = [&](uint64_t offset, uint32_t n) -> std::span<const uint8_t> {
        chunk.resize(n);
        size_t got = 0;
        while (got < n) {
            const ssize_t k =
                ::pread(fd, chunk.data() + got, n - got, static_cast<off_t>(offset + got));
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                read_error = k < 0 ? std::strerror(errno) : "file shorter than expected";
                return {};
            }
            got += static_cast<size_t>(k);
        }
        std::string marks;
        while (dots < offset / 0x10000) {
            marks += '.';
            ++dots;
        }
        if (!marks.empty()) {
            progress.hide();
            print(marks);
        }
        progress.update(offset);
        return std::span<const uint8_t>(chunk);
    };
    auto r = engine::stream_write(m_dbg->memory(), AddressSpace::Virtual, range->start, total,
                                  source, cancellable());
    progress.hide();
    print("\n");
    if (!r) {
        if (r.error().code == Errc::Interrupted) {
            error("Interrupted; memory is written only in part");
        } else {
            error("Memory write failed: " + r.error().message);
        }
        return;
    }
    if (!read_error.empty()) {
        error("Unable to read '" + file + "': " + read_error);
        return;
    }
    if (*r < total) {
        error("Memory access error at '" + format_address(range->start + *r) + "'");
    }
}

} // namespace kdcart::cli
