#pragma once
// The source search path (.srcpath, .srcpath+, -srcpath) and where a source file the PDB
// records is found on this machine: the recorded path itself when it exists; otherwise each
// directory of the path joined with the recorded path's trailing components, the longest
// suffix first and, for one suffix, the directories in order (as WinDbg's source search does:
// "d:\build\drv\src\foo.c" with the path "/home/me/drv" tries /home/me/drv/build/drv/src/foo.c,
// then .../drv/src/foo.c, .../src/foo.c, then /home/me/drv/foo.c). '\' and '/' both separate
// components; a drive ("d:") is never one. Knows nothing of the debugger.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

class SourceFinder {
  public:
    // Whether a file exists and can be read (tests give their own).
    using Exists = std::function<bool(const std::string& path)>;
    SourceFinder();
    explicit SourceFinder(Exists exists) : m_exists(std::move(exists)) {}

    // .srcpath DIRS replaces the path, .srcpath+ DIRS appends; ';'-separated, blanks around
    // each entry dropped, empty entries ignored.
    void set_path(std::string_view dirs);
    void append_path(std::string_view dirs);
    const std::vector<std::string>& directories() const { return m_dirs; }
    // The path as .srcpath prints it ("a;b"); "" when empty.
    std::string text() const;

    // Where `recorded` (a path from a PDB, or a name the user typed) is found; nullopt when it
    // is found nowhere.
    std::optional<std::string> find(std::string_view recorded) const;

    // The recorded path's components without a drive: "d:\a\b.c" -> {"a", "b.c"}.
    static std::vector<std::string> components(std::string_view recorded);

  private:
    Exists m_exists;
    std::vector<std::string> m_dirs;
};

} // namespace kdcart::engine
