#include "engine/SymbolPath.h"
#include "engine/TextSplit.h"

#include <cctype>
#include <cstdlib>

namespace kdcart::engine {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

} // namespace

std::string default_symbol_cache() {
    if (const char* c = std::getenv("KDCART_SYMBOL_CACHE"); c && *c) {
        return c;
    }
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.kdcart/symbols";
}

std::string symfix_path(std::string_view cache) {
    return "srv*" + std::string(cache) + (cache.empty() ? "" : "*") + k_microsoft_symbol_server;
}

SymbolPath SymbolPath::parse(std::string_view text, std::string default_cache) {
    SymbolPath p;
    p.m_text = std::string(trim_space(text));
    for (const std::string& raw : split_trimmed(p.m_text, ';')) {
        if (raw.empty()) {
            continue;
        }
        auto parts = split_trimmed(raw, '*');
        SymbolPathElement e;
        e.text = raw;
        if (parts.size() >= 2 && iequals(parts[0], "symsrv")) {
            parts.erase(parts.begin(), parts.begin() + 2); // symsrv*symsrv.dll*...
            parts.insert(parts.begin(), "srv");
        }
        if (parts.size() >= 1 && iequals(parts[0], "srv")) {
            e.kind = SymbolPathElement::Kind::Server;
            std::vector<std::string> rest(parts.begin() + 1, parts.end());
            while (!rest.empty() && rest.back().empty()) {
                rest.pop_back();
            }
            if (rest.empty()) {
                e.server = k_microsoft_symbol_server; // "srv*"
            } else {
                e.server = rest.back();
                rest.pop_back();
            }
            for (auto& c : rest) {
                e.caches.push_back(c.empty() ? default_cache : c);
            }
            if (e.caches.empty()) {
                e.caches.push_back(default_cache);
            }
        } else if (parts.size() >= 1 && iequals(parts[0], "cache")) {
            e.kind = SymbolPathElement::Kind::Cache;
            e.directory = parts.size() >= 2 && !parts[1].empty() ? parts[1] : default_cache;
        } else {
            e.kind = SymbolPathElement::Kind::Directory;
            e.directory = raw;
        }
        p.m_elements.push_back(std::move(e));
    }
    return p;
}

std::string SymbolPath::expanded() const {
    std::string out;
    for (const auto& e : m_elements) {
        if (!out.empty()) {
            out += ';';
        }
        switch (e.kind) {
        case SymbolPathElement::Kind::Directory:
            out += e.directory;
            break;
        case SymbolPathElement::Kind::Cache:
            out += "cache*" + e.directory;
            break;
        case SymbolPathElement::Kind::Server:
            out += "SRV";
            for (const auto& c : e.caches) {
                out += "*" + c;
            }
            out += "*" + e.server;
            break;
        }
    }
    return out;
}

SymbolPath SymbolPath::appended(std::string_view more, const std::string& default_cache) const {
    const std::string extra(trim_space(more));
    if (extra.empty()) {
        return *this;
    }
    return parse(m_text.empty() ? extra : m_text + ";" + extra, default_cache);
}

} // namespace kdcart::engine
