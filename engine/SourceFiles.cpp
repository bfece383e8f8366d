#include "engine/SourceFiles.h"
#include "engine/PdbLines.h"

#include <fstream>
#include <sstream>

namespace kdcart::engine {

std::vector<std::string> split_source_lines(std::string_view text) {
    std::vector<std::string> lines;
    if (text.empty()) {
        return lines;
    }
    size_t start = 0;
    // A newline at the very end ends the last line; it does not start another.
    const size_t stop = text.back() == '\n' ? text.size() - 1 : text.size();
    for (size_t i = 0; i <= stop; ++i) {
        if (i == stop || text[i] == '\n') {
            std::string_view l = text.substr(start, i - start);
            if (!l.empty() && l.back() == '\r') {
                l.remove_suffix(1);
            }
            lines.emplace_back(l);
            start = i + 1;
        }
    }
    return lines;
}

Result<const SourceText*> SourceFiles::load(const std::string& recorded) {
    if (auto it = m_files.find(recorded); it != m_files.end()) {
        return &it->second;
    }
    const auto not_found = [&] {
        return make_error(Errc::NotFound, "No source found for '" + recorded + "'");
    };
    auto path = m_finder.find(recorded);
    if (!path) {
        return not_found();
    }
    std::ifstream f(*path, std::ios::binary);
    std::ostringstream text;
    if (!f || !(text << f.rdbuf()) || text.str().size() > kMaxBytes) {
        return not_found();
    }
    SourceText st{recorded, *path, split_source_lines(text.str())};
    return &m_files.emplace(recorded, std::move(st)).first->second;
}

const SourceText* SourceFiles::loaded(const std::string& name) const {
    if (auto it = m_files.find(name); it != m_files.end()) {
        return &it->second;
    }
    for (const auto& [recorded, file] : m_files) {
        if (source_path_matches(recorded, name)) {
            return &file;
        }
    }
    return nullptr;
}

void SourceFiles::unload(const SourceText* file) {
    if (file) {
        m_files.erase(file->recorded);
    }
}

} // namespace kdcart::engine
