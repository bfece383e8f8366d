#pragma once
// WinDbg's symbol search path: elements separated by ';'.
//   DIR                    a directory (DIR/name.pdb, then the store layout DIR/name.pdb/KEY/)
//   srv*URL | srv*         a symbol server (or a store on disk) with the default cache
//   srv*CACHE*URL          ... with CACHE as its local (downstream) store; more '*' tiers are
//                          caches too: srv*C1*C2*URL
//   symsrv*symsrv.dll*...  the long spelling of srv*
//   cache*DIR | cache*     later elements' files are copied into DIR (default cache when empty)
// Parsing only: no file system or network access here (SymbolServer does that).
#include "transport/Error.h"

#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

inline constexpr const char* k_microsoft_symbol_server =
    "https://msdl.microsoft.com/download/symbols";

struct SymbolPathElement {
    enum class Kind { Directory, Server, Cache };
    Kind kind = Kind::Directory;
    std::string text;                // the element as written
    std::string directory;           // Directory / Cache
    std::vector<std::string> caches; // Server: local stores, nearest first (never empty)
    std::string server;              // Server: an http(s) URL or a store directory
};

class SymbolPath {
  public:
    SymbolPath() = default;
    // `default_cache` stands in for an empty cache ("srv*URL", "cache*", ".symfix").
    static SymbolPath parse(std::string_view text, std::string default_cache);

    const std::string& text() const { return m_text; }
    const std::vector<SymbolPathElement>& elements() const { return m_elements; }
    bool empty() const { return m_elements.empty(); }
    // Every default filled in: "cache*/home/u/.kdcart/symbols;SRV*https://..." etc.
    std::string expanded() const;
    // Appends (".sympath+"): the new text after a ';'.
    SymbolPath appended(std::string_view more, const std::string& default_cache) const;

  private:
    std::string m_text;
    std::vector<SymbolPathElement> m_elements;
};

// The default downstream store: $KDCART_SYMBOL_CACHE, else ~/.kdcart/symbols.
std::string default_symbol_cache();
// ".symfix [cache]": srv*CACHE*https://msdl.microsoft.com/download/symbols.
std::string symfix_path(std::string_view cache);

} // namespace kdcart::engine
