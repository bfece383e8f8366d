#pragma once
// What the memory commands share (MemoryCommands.cpp: d*, e*; SearchFillCommands.cpp: s, f;
// MemoryFileCommands.cpp: .writemem, .readmem): streamed output with progress, Ctrl+C as a
// stream's cancel, and the parsing of ranges, quoted strings and patterns.
#include "cli/Progress.h"
#include "cli/Repl.h"
#include "cli/ScriptFormat.h"
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

namespace kdcart::cli::memcmd {

using engine::AddressSpace;
using engine::MemoryPiece;
using Clock = std::chrono::steady_clock;

// Reads at most this much through the page cache (d* of a few pages stays cached); larger
// ranges stream past it.
inline constexpr uint64_t kCachedReadMax = 64 * 1024;

inline std::string hex(uint64_t v) {
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

inline engine::StreamOptions cancellable() {
    engine::StreamOptions o;
    o.cancelled = [] { return g_interrupt.load(); };
    return o;
}

// Hands a block read through the cache to `sink` as pieces (runs of readable / unreadable bytes).
inline void block_to_pieces(const engine::MemoryBlock& block,
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

inline Result<RangeAndRest> parse_range_prefix(std::string_view text,
                                               const engine::ExpressionCallbacks& cb,
                                               size_t element, bool allow_end_address = true) {
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
inline std::vector<std::string> tokens_of(std::string_view s) {
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
inline std::string unquote(std::string_view q) {
    if (q.size() >= 2 && (q.front() == '"' || q.front() == '\'') && q.back() == q.front()) {
        q = q.substr(1, q.size() - 2);
    }
    return decode_escapes(q);
}

inline bool is_quoted(std::string_view t) {
    return t.size() >= 2 && (t.front() == '"' || t.front() == '\'') && t.back() == t.front();
}

// ASCII text as UTF-16LE bytes (what eu/ezu/s -u put in memory).
inline std::vector<uint8_t> utf16le(std::string_view text) {
    std::vector<uint8_t> out;
    for (unsigned char c : text) {
        out.push_back(c);
        out.push_back(0);
    }
    return out;
}

// ".writemem FILE RANGE": the file name (quoted or up to the first blank) and the rest.
inline bool split_file_arg(std::string_view args, std::string& file, std::string_view& rest) {
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

} // namespace kdcart::cli::memcmd
