// Memory commands: d* (db dw dd dc dq dp da du df dD dyb, !d* physical), e* (eb ew ed eq ep, ea
// eu eza ezu), s (search), f (fill), .writemem, .readmem.
//
// Long ranges stream: they are read in the largest requests the link carries, each request's
// lines are printed as it completes (batched to a tenth of a second), nothing but the line in
// progress is kept, progress goes to stderr when it is a terminal, and Ctrl+C stops the command
// before its next request. A Ctrl+C spent on a command is forgotten (it never becomes a break-in).
#include "cli/MemoryCommandSupport.h"
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

using namespace memcmd;
using engine::AddressSpace;
using engine::MemoryPiece;
using Clock = std::chrono::steady_clock;

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

} // namespace kdcart::cli
