#pragma once
// Source files as source mode reads them: found through the source search path (SourceFinder),
// split into lines as WinDbg counts them, and kept once read (lsf- forgets one). Returns data
// and errors; the listings' text is the CLI's (cli/SourceListing).
#include "engine/SourceFinder.h"
#include "transport/Error.h"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

// A source file read into lines (CR LF or LF; a last line without a newline counts).
struct SourceText {
    std::string recorded; // the name it was asked for (the PDB's path, or what lsf was given)
    std::string path;     // where it was found
    std::vector<std::string> lines;
};

// Splits a file's text into its lines as WinDbg counts them.
std::vector<std::string> split_source_lines(std::string_view text);

class SourceFiles {
  public:
    static constexpr size_t kMaxBytes = 64u << 20; // a "source file" larger than this is refused

    SourceFinder& finder() { return m_finder; }

    // The file `recorded` names, read (or as read before); NotFound "No source found for 'X'"
    // when the search path has no readable file of that name.
    [[nodiscard]] Result<const SourceText*> load(const std::string& recorded);
    // A file read before under `name`, or else one whose recorded path ends with it.
    const SourceText* loaded(const std::string& name) const;
    // Forgets a file read before (lsf-); `file` comes from load() or loaded().
    void unload(const SourceText* file);

  private:
    SourceFinder m_finder;
    std::map<std::string, SourceText> m_files; // by the name asked for
};

} // namespace kdcart::engine
