// Module load and unload events: sxe/sxd/sxn/sxi ld[:NAME] and ud[:NAME], and what a stop on one
// prints (WinDbg's "ModLoad:" line). The engine stops on every load and unload notification
// while either filter breaks; the ones the filters do not want run on at once.
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"

namespace kdcart::cli {

namespace {

// "\SystemRoot\system32\drivers\kdlate.sys" -> "kdlate.sys"
std::string base_name(const std::string& path) {
    const size_t slash = path.find_last_of("\\/");
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// WinDbg's ld:NAME matches the image name with or without its extension, case-insensitively,
// with * and ? wildcards.
bool name_matches(const std::string& pattern, const std::string& path) {
    if (pattern.empty()) {
        return true;
    }
    const std::string name = lower(base_name(path));
    const size_t dot = name.rfind('.');
    const std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
    auto glob = [](const std::string& p, const std::string& s) {
        size_t pi = 0, si = 0, star = std::string::npos, mark = 0;
        while (si < s.size()) {
            if (pi < p.size() && (p[pi] == s[si] || p[pi] == '?')) {
                ++pi;
                ++si;
            } else if (pi < p.size() && p[pi] == '*') {
                star = pi++;
                mark = si;
            } else if (star != std::string::npos) {
                pi = star + 1;
                si = ++mark;
            } else {
                return false;
            }
        }
        while (pi < p.size() && p[pi] == '*') {
            ++pi;
        }
        return pi == p.size();
    };
    return glob(pattern, name) || glob(pattern, stem);
}

} // namespace

bool Repl::cmd_sx_module(std::string_view word, std::string_view args) {
    args = trim(args);
    const bool load = args == "ld" || args.substr(0, 3) == "ld:";
    const bool unload = args == "ud" || args.substr(0, 3) == "ud:";
    if (!load && !unload) {
        return false;
    }
    std::string pattern = args.size() > 3 ? lower(trim(args.substr(3))) : std::string();
    if (pattern == "*") {
        pattern.clear();
    }
    const bool stop = word == "sxe";
    if (load) {
        m_sx_load = stop;
        m_sx_load_name = stop ? pattern : std::string();
    } else {
        m_sx_unload = stop;
        m_sx_unload_name = stop ? pattern : std::string();
    }
    m_dbg->set_break_on_module_load(m_sx_load || m_sx_unload);
    // As `sx` lists the filter: "ld - Load module - break".
    std::string name = load ? "ld" : "ud";
    if (stop && !pattern.empty()) {
        name += ":" + pattern;
    }
    print(name + (load ? " - Load module - " : " - Unload module - ") +
          (stop            ? "break"
           : word == "sxn" ? "output"
                           : "ignore") +
          "\n");
    return true;
}

bool Repl::resume_if_module_event_unwanted(const engine::StopEvent& stop) {
    if (stop.kind != engine::StopKind::LoadSymbols) {
        return false;
    }
    const bool wanted = stop.unload ? m_sx_unload && name_matches(m_sx_unload_name, stop.image_path)
                                    : m_sx_load && name_matches(m_sx_load_name, stop.image_path);
    if (wanted) {
        return false;
    }
    if (auto r = m_dbg->go(); !r) {
        error("Could not resume the target: " + r.error().message);
        return false;
    }
    return true;
}

std::string Repl::module_event_line(const engine::StopEvent& stop) {
    if (stop.unload) {
        return "Unload module " + stop.image_path + " at " + format_address(stop.image_base) + "\n";
    }
    return "ModLoad: " + format_address(stop.image_base) + " " +
           format_address(stop.image_base + stop.image_size) + "   " + stop.image_path + "\n";
}

} // namespace kdcart::cli
