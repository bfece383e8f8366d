#pragma once
// Memory display lines (db dw dd dc dq dp, df dD, dyb) formatted as the bytes arrive: a streaming
// formatter that keeps at most one line of bytes, writes straight into the output buffer (no
// per-element strings), and gives exactly what format_memory gives for the same bytes.
#include "engine/MemoryStream.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kdcart::cli {

enum class LineKind {
    Bytes,       // db
    Words,       // dw
    Dwords,      // dd
    DwordsAscii, // dc
    Qwords,      // dq, dp
    Floats,      // df: 4 per line
    Doubles,     // dD: 3 per line
    BinaryBytes, // dyb: 4 bytes per line, in binary then hex
};

// "db" -> Bytes ... case matters as in WinDbg: "dD" is doubles, "dd" dwords. nullopt for
// da/du and anything else.
std::optional<LineKind> line_kind_from_command(std::string_view command);
size_t line_kind_element_size(LineKind kind);
// Bytes one output line covers: 16, except dD (24) and dyb (4).
size_t line_kind_line_bytes(LineKind kind);
// WinDbg's count when no L is given, in elements: 0x80 bytes for db..dq, 16 floats (df),
// 15 doubles (dD), 32 bytes (dyb).
uint64_t line_kind_default_count(LineKind kind);

class MemoryLineFormatter {
  public:
    // Lines start at `start` and step by line_kind_line_bytes(kind); `prefix` goes before each
    // line ("#" for physical addresses).
    MemoryLineFormatter(LineKind kind, uint64_t start, std::string prefix = {});

    // Text printed once before the lines (dyb's bit-number header), "" for the others.
    std::string header() const;
    // Appends every line the bytes so far complete. Pieces must follow each other.
    void feed(const engine::MemoryPiece& piece, std::string& out);
    // Appends the last, short line (if any bytes are left over).
    void finish(std::string& out);

  private:
    void emit(const uint8_t* bytes, const bool* valid, size_t count, std::string& out);
    void take(const uint8_t* bytes, bool readable, uint64_t n, std::string& out);

    LineKind m_kind;
    size_t m_line;
    uint64_t m_address; // of the next line
    std::string m_prefix;
    uint8_t m_bytes[32] = {};
    bool m_valid[32] = {};
    size_t m_fill = 0;
};

} // namespace kdcart::cli
