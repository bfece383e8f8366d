#pragma once
// Finds a symbol file along a SymbolPath: plain directories, local stores and HTTP(S) symbol
// servers (libcurl), in path order. Downloads land in the element's cache in the store layout
// (name.pdb/KEY/name.pdb, KEY = GUID + age), written to a temporary file and renamed into
// place only when complete and plausible. A 404, a 500, an HTML page or a timeout ends that
// probe and the next one is tried. Every probe adds one line to the log (`!sym noisy`).
#include "engine/SymbolPath.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::engine {

struct SymbolFileRequest {
    std::string file_name; // "ntkrnlmp.pdb"
    std::string store_key; // "3844DBB920174967BE7AA4A2C20430FA2"
};

struct SymbolFetchOptions {
    long connect_timeout_ms = 10000;
    // A transfer that moves no byte for this long is abandoned.
    long stall_timeout_ms = 20000;
    // Polled while waiting; true abandons the download (the error is Interrupted).
    std::function<bool()> cancelled;
    // Called now and then while a download runs: bytes so far, total (0 when unknown).
    std::function<void(const std::string& url, uint64_t done, uint64_t total)> progress;
};

// Looks at a candidate file: nullopt to take it, else why it is refused (e.g. mismatched GUID).
using SymbolFileCheck = std::function<std::optional<std::string>(const std::string& path)>;

class SymbolServer {
  public:
    explicit SymbolServer(SymbolFetchOptions options = {}) : m_options(std::move(options)) {}
    void set_options(SymbolFetchOptions options) { m_options = std::move(options); }
    const SymbolFetchOptions& options() const { return m_options; }

    // The local path of the first acceptable file, or NotFound (Interrupted when cancelled).
    // `log` receives one line per probe.
    [[nodiscard]] Result<std::string> find(const SymbolPath& path, const SymbolFileRequest& request,
                                           const SymbolFileCheck& check,
                                           std::vector<std::string>& log);

    struct HttpResult {
        long status = 0;    // HTTP status, 0 when no answer
        uint64_t bytes = 0; // body bytes written
        std::string error;  // transport error text (timeout, refused...), empty when none
        bool cancelled = false;
        bool timed_out = false;
    };
    // GET `url` into `dest` (created or truncated), following redirects.
    HttpResult http_get(const std::string& url, const std::string& dest);

  private:
    // Probes one store location (directory or URL) for request; copies/downloads into `cache`
    // (empty: use in place). Returns the local path when a file is there.
    std::optional<std::string> probe_store(const std::string& store, const std::string& cache,
                                           const SymbolFileRequest& request,
                                           std::vector<std::string>& log, bool& cancelled);

    SymbolFetchOptions m_options;
};

// "name.pdb/KEY/name.pdb" under `root`.
std::string store_path(const std::string& root, const SymbolFileRequest& request);
// Does this file start like a PDB (MSF 7.00)?
bool looks_like_pdb(const std::string& path);

} // namespace kdcart::engine
