#include "engine/SymbolServer.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <system_error>

namespace kdcart::engine {

namespace fs = std::filesystem;

namespace {

bool is_url(std::string_view s) {
    return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0 ||
           s.rfind("HTTP://", 0) == 0 || s.rfind("HTTPS://", 0) == 0;
}

std::string join(const std::string& a, const std::string& b) {
    if (a.empty()) {
        return b;
    }
    return a.back() == '/' || a.back() == '\\' ? a + b : a + "/" + b;
}

bool is_file(const std::string& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

const char* http_status_name(long status) {
    switch (status) {
    case 400:
        return "HTTP_STATUS_BAD_REQUEST";
    case 401:
        return "HTTP_STATUS_DENIED";
    case 403:
        return "HTTP_STATUS_FORBIDDEN";
    case 404:
        return "HTTP_STATUS_NOT_FOUND";
    case 500:
        return "HTTP_STATUS_SERVER_ERROR";
    case 502:
        return "HTTP_STATUS_BAD_GATEWAY";
    case 503:
        return "HTTP_STATUS_SERVICE_UNAVAIL";
    case 504:
        return "HTTP_STATUS_GATEWAY_TIMEOUT";
    default:
        return "HTTP error";
    }
}

// What a file that is not a PDB looks like, for the log.
std::string describe_non_pdb(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    char head[64] = {};
    f.read(head, sizeof head);
    const auto n = static_cast<size_t>(f.gcount());
    std::string s(head, n);
    size_t i = s.find_first_not_of(" \t\r\n");
    if (n == 0) {
        return "an empty answer";
    }
    if (i != std::string::npos && s[i] == '<') {
        return "an HTML page";
    }
    return "not a PDB";
}

struct Transfer {
    std::FILE* out = nullptr;
    uint64_t bytes = 0;
    const SymbolFetchOptions* options = nullptr;
    std::string url;
    std::chrono::steady_clock::time_point last_activity;
    curl_off_t last_now = -1;
    bool cancelled = false;
    bool stalled = false;
};

size_t on_write(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t len = size * n;
    if (std::fwrite(data, 1, len, t->out) != len) {
        return 0; // disk full: abort
    }
    t->bytes += len;
    return len;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    const auto clock = std::chrono::steady_clock::now();
    if (now != t->last_now) {
        t->last_now = now;
        t->last_activity = clock;
        if (t->options->progress && now > 0) {
            t->options->progress(t->url, static_cast<uint64_t>(now),
                                 total > 0 ? static_cast<uint64_t>(total) : 0);
        }
    }
    if (t->options->cancelled && t->options->cancelled()) {
        t->cancelled = true;
        return 1;
    }
    const auto idle =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock - t->last_activity).count();
    if (idle > t->options->stall_timeout_ms) {
        t->stalled = true;
        return 1;
    }
    return 0;
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

std::string store_path(const std::string& root, const SymbolFileRequest& request) {
    return join(join(join(root, request.file_name), request.store_key), request.file_name);
}

bool looks_like_pdb(const std::string& path) {
    static constexpr char kMagic[] = "Microsoft C/C++ MSF 7.00\r\n\x1a"
                                     "DS\0\0\0";
    std::ifstream f(path, std::ios::binary);
    char head[sizeof kMagic - 1] = {};
    f.read(head, sizeof head);
    return f.gcount() == static_cast<std::streamsize>(sizeof head) &&
           std::memcmp(head, kMagic, sizeof head) == 0;
}

SymbolServer::HttpResult SymbolServer::http_get(const std::string& url, const std::string& dest) {
    global_init();
    HttpResult r;
    CURL* curl = curl_easy_init();
    if (!curl) {
        r.error = "libcurl could not start";
        return r;
    }
    Transfer t;
    t.out = std::fopen(dest.c_str(), "wb");
    if (!t.out) {
        curl_easy_cleanup(curl);
        r.error = "cannot write " + dest + ": " + std::strerror(errno);
        return r;
    }
    t.options = &m_options;
    t.url = url;
    t.last_activity = std::chrono::steady_clock::now();
    char errbuf[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "Microsoft-Symbol-Server/10.0.0.0");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, m_options.connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    const CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(curl);
    std::fclose(t.out);
    r.bytes = t.bytes;
    r.cancelled = t.cancelled;
    r.timed_out = t.stalled || rc == CURLE_OPERATION_TIMEDOUT;
    if (rc != CURLE_OK) {
        if (t.cancelled) {
            r.error = "cancelled";
        } else if (r.timed_out) {
            r.error = "timed out (no data for " +
                      std::to_string(rc == CURLE_OPERATION_TIMEDOUT ? m_options.connect_timeout_ms
                                                                    : m_options.stall_timeout_ms) +
                      " ms)";
        } else {
            r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        }
    }
    return r;
}

std::optional<std::string> SymbolServer::probe_store(const std::string& store,
                                                     const std::string& cache,
                                                     const SymbolFileRequest& request,
                                                     std::vector<std::string>& log,
                                                     bool& cancelled) {
    const std::string source = store_path(store, request);
    if (!is_url(store)) {
        if (!is_file(source)) {
            log.push_back("SYMSRV:  " + source + " - file not found");
            return std::nullopt;
        }
        if (cache.empty() || cache == store) {
            return source;
        }
        const std::string dest = store_path(cache, request);
        std::error_code ec;
        fs::create_directories(fs::path(dest).parent_path(), ec);
        fs::copy_file(source, dest, fs::copy_options::overwrite_existing, ec);
        if (ec) {
            log.push_back("SYMSRV:  " + source + " - found, but not copied to " + dest + ": " +
                          ec.message());
            return source;
        }
        log.push_back("SYMSRV:  " + source + " - copied to " + dest);
        return dest;
    }
    // An HTTP(S) server: download into the cache.
    const std::string dest = store_path(cache, request);
    std::error_code ec;
    fs::create_directories(fs::path(dest).parent_path(), ec);
    if (ec) {
        log.push_back("SYMSRV:  cannot create " + fs::path(dest).parent_path().string() + ": " +
                      ec.message());
        return std::nullopt;
    }
    const std::string partial = dest + ".partial";
    const HttpResult r = http_get(source, partial);
    const std::string head = "SYMSRV:  HTTPGET: " + source + " - ";
    auto fail = [&](const std::string& why) {
        fs::remove(partial, ec);
        log.push_back(head + why);
        return std::nullopt;
    };
    if (r.cancelled) {
        cancelled = true;
        return fail("cancelled");
    }
    if (!r.error.empty()) {
        return fail(r.error);
    }
    if (r.status != 200) {
        char code[16];
        std::snprintf(code, sizeof code, "%08lX", 0x80190000L + r.status);
        return fail("HTTP " + std::to_string(r.status) + " (" + code + " - " +
                    http_status_name(r.status) + ")");
    }
    if (!looks_like_pdb(partial)) {
        return fail("rejected: " + describe_non_pdb(partial) + ", " + std::to_string(r.bytes) +
                    " bytes");
    }
    fs::rename(partial, dest, ec);
    if (ec) {
        return fail("cannot store " + dest + ": " + ec.message());
    }
    log.push_back(head + "OK, " + std::to_string(r.bytes) + " bytes -> " + dest);
    return dest;
}

Result<std::string> SymbolServer::find(const SymbolPath& path, const SymbolFileRequest& request,
                                       const SymbolFileCheck& check,
                                       std::vector<std::string>& log) {
    if (request.file_name.empty() || request.file_name.find_first_of("/\\") != std::string::npos ||
        request.file_name == "." || request.file_name == ".." ||
        request.store_key.find_first_of("/\\.") != std::string::npos) {
        return make_error(Errc::InvalidArgument,
                          "bad symbol file name '" + request.file_name + "'");
    }
    bool cancelled = false;
    std::string cache_dir; // set by a cache* element for the elements after it
    auto take = [&](const std::string& candidate, const char* who) -> bool {
        if (!check) {
            return true;
        }
        if (auto why = check(candidate)) {
            log.push_back(std::string(who) + candidate + " - " + *why);
            return false;
        }
        return true;
    };
    for (const auto& e : path.elements()) {
        if (m_options.cancelled && m_options.cancelled()) {
            cancelled = true;
        }
        if (cancelled) {
            break;
        }
        switch (e.kind) {
        case SymbolPathElement::Kind::Directory: {
            for (const std::string& c :
                 {join(e.directory, request.file_name), store_path(e.directory, request)}) {
                if (!is_file(c)) {
                    log.push_back("DBGHELP: " + c + " - file not found");
                    continue;
                }
                if (take(c, "DBGHELP: ")) {
                    return c;
                }
            }
            break;
        }
        case SymbolPathElement::Kind::Cache: {
            cache_dir = e.directory;
            const std::string c = store_path(e.directory, request);
            if (!is_file(c)) {
                log.push_back("SYMSRV:  " + c + " - file not found");
            } else if (take(c, "SYMSRV:  ")) {
                return c;
            }
            break;
        }
        case SymbolPathElement::Kind::Server: {
            bool done = false;
            for (const auto& c : e.caches) {
                const std::string local = store_path(c, request);
                if (!is_file(local)) {
                    log.push_back("SYMSRV:  " + local + " - file not found");
                    continue;
                }
                if (take(local, "SYMSRV:  ")) {
                    return local;
                }
                done = true; // a cached file that does not match: the server has the same
            }
            if (done) {
                break;
            }
            const std::string into = e.caches.front();
            auto got = probe_store(e.server, into, request, log, cancelled);
            if (got && take(*got, "SYMSRV:  ")) {
                if (!cache_dir.empty() && cache_dir != into) {
                    const std::string copy = store_path(cache_dir, request);
                    std::error_code ec;
                    fs::create_directories(fs::path(copy).parent_path(), ec);
                    fs::copy_file(*got, copy, fs::copy_options::overwrite_existing, ec);
                }
                return *got;
            }
            break;
        }
        }
    }
    if (cancelled) {
        return make_error(Errc::Interrupted, "symbol search cancelled");
    }
    return make_error(Errc::NotFound, request.file_name + " not found on the symbol path");
}

} // namespace kdcart::engine
