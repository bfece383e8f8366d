// s (search memory for a pattern) and f (fill memory with a pattern).
#include "cli/MemoryCommandSupport.h"
#include "cli/Repl.h"

namespace kdcart::cli {

using namespace memcmd;
using engine::AddressSpace;
using engine::MemoryPiece;
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

} // namespace kdcart::cli
