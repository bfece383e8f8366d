#include "engine/SourceFinder.h"
#include "engine/TextSplit.h"

#include <sys/stat.h>
#include <unistd.h>

namespace kdcart::engine {

namespace {

bool readable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), R_OK) == 0;
}

// .srcpath's directories: ';'-separated, blanks around each dropped, empty entries ignored.
std::vector<std::string> split_dirs(std::string_view dirs) {
    std::vector<std::string> out = split_trimmed(dirs, ';');
    std::erase(out, std::string());
    return out;
}

} // namespace

SourceFinder::SourceFinder() : m_exists(readable_file) {}

void SourceFinder::set_path(std::string_view dirs) {
    m_dirs = split_dirs(dirs);
}

void SourceFinder::append_path(std::string_view dirs) {
    for (auto& d : split_dirs(dirs)) {
        m_dirs.push_back(std::move(d));
    }
}

std::string SourceFinder::text() const {
    std::string s;
    for (const auto& d : m_dirs) {
        if (!s.empty()) {
            s += ';';
        }
        s += d;
    }
    return s;
}

std::vector<std::string> SourceFinder::components(std::string_view recorded) {
    // A drive letter ("d:") is no component.
    if (recorded.size() >= 2 && recorded[1] == ':' &&
        ((recorded[0] >= 'a' && recorded[0] <= 'z') ||
         (recorded[0] >= 'A' && recorded[0] <= 'Z'))) {
        recorded.remove_prefix(2);
    }
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i <= recorded.size(); ++i) {
        if (i == recorded.size() || recorded[i] == '/' || recorded[i] == '\\') {
            std::string_view c = recorded.substr(start, i - start);
            if (!c.empty() && c != ".") {
                out.emplace_back(c);
            }
            start = i + 1;
        }
    }
    return out;
}

std::optional<std::string> SourceFinder::find(std::string_view recorded) const {
    if (recorded.empty()) {
        return std::nullopt;
    }
    const std::string as_recorded(recorded);
    if (m_exists(as_recorded)) {
        return as_recorded;
    }
    const std::vector<std::string> parts = components(recorded);
    // Longest trailing suffix first; for each, every directory in order.
    for (size_t first = 0; first < parts.size(); ++first) {
        std::string suffix;
        bool climbs = false;
        for (size_t i = first; i < parts.size(); ++i) {
            suffix += (i == first ? "" : "/") + parts[i];
            climbs = climbs || parts[i] == "..";
        }
        if (climbs) {
            continue; // a recorded "..\" is not followed out of a source directory
        }
        for (const auto& dir : m_dirs) {
            std::string candidate = dir;
            if (candidate.back() != '/') {
                candidate += '/';
            }
            candidate += suffix;
            if (m_exists(candidate)) {
                return candidate;
            }
        }
    }
    return std::nullopt;
}

} // namespace kdcart::engine
