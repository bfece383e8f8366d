// The symbol path and symbol servers: parsing WinDbg's path syntax, downloads into the store
// layout from a local HTTP server, the cache serving offline, and the ways a server can fail
// (404, 500, an HTML page, a server that never answers): each one log line, then the next
// element of the path.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Pdb.h"
#include "engine/SymbolServer.h"
#include "tests/support/TinyHttpServer.h"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace kdcart;
using namespace kdcart::engine;
namespace fs = std::filesystem;

namespace {

const std::string kDir = KDCART_PDB_DATA_DIR;
// crash.exe's CodeView record: GUID and age.
const SymbolFileRequest kCrash{"crash.pdb", "3249D99D0C4049318610F4E4FB0B69361"};

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/kdcart-symtest-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string str(const std::string& sub = "") const { return (path / sub).string(); }
};

// A symbol store holding crash.pdb under its key.
void make_store(const std::string& root) {
    const fs::path dir = fs::path(root) / "crash.pdb" / kCrash.store_key;
    fs::create_directories(dir);
    fs::copy_file(kDir + "/crash.pdb", dir / "crash.pdb");
}

// Accepts only a PDB that matches crash.exe (GUID + age), as the engine does.
SymbolFileCheck crash_check() {
    return [](const std::string& path) -> std::optional<std::string> {
        auto pdb = PdbFile::open(path);
        if (!pdb) {
            return pdb.error().message;
        }
        CodeViewRecord cv;
        const std::string hex = kCrash.store_key;
        // GUID bytes as stored: Data1..3 little-endian, Data4 as is.
        auto byte = [&](size_t i) {
            return static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16));
        };
        const size_t order[16] = {6, 4, 2, 0, 10, 8, 14, 12, 16, 18, 20, 22, 24, 26, 28, 30};
        for (size_t i = 0; i < 16; ++i) {
            cv.guid[i] = byte(order[i]);
        }
        cv.age = 1;
        if (!(*pdb)->matches(cv)) {
            return "mismatched pdb: " + (*pdb)->mismatch_reason(cv);
        }
        return std::nullopt;
    };
}

bool log_has(const std::vector<std::string>& log, const std::string& needle) {
    for (const auto& l : log) {
        if (l.find(needle) != std::string::npos) {
            return true;
        }
    }
    return false;
}

SymbolFetchOptions quick() {
    SymbolFetchOptions o;
    o.connect_timeout_ms = 2000;
    o.stall_timeout_ms = 400;
    return o;
}

} // namespace

TEST_CASE("symbol path syntax: directories, srv*, cache*, defaults") {
    auto p = SymbolPath::parse("srv*/c1*https://msdl.microsoft.com/download/symbols", "/def");
    REQUIRE(p.elements().size() == 1);
    CHECK(p.elements()[0].kind == SymbolPathElement::Kind::Server);
    CHECK(p.elements()[0].caches == std::vector<std::string>{"/c1"});
    CHECK(p.elements()[0].server == "https://msdl.microsoft.com/download/symbols");

    p = SymbolPath::parse("  /syms ; srv*http://h/s ; cache*/c ; SRV* ; cache* ", "/def");
    REQUIRE(p.elements().size() == 5);
    CHECK(p.elements()[0].kind == SymbolPathElement::Kind::Directory);
    CHECK(p.elements()[0].directory == "/syms");
    CHECK(p.elements()[1].caches == std::vector<std::string>{"/def"});
    CHECK(p.elements()[1].server == "http://h/s");
    CHECK(p.elements()[2].kind == SymbolPathElement::Kind::Cache);
    CHECK(p.elements()[2].directory == "/c");
    CHECK(p.elements()[3].server == k_microsoft_symbol_server);
    CHECK(p.elements()[4].directory == "/def");
    CHECK(p.expanded() ==
          "/syms;SRV*/def*http://h/s;cache*/c;SRV*/def*https://msdl.microsoft.com/download/symbols;"
          "cache*/def");

    p = SymbolPath::parse("symsrv*symsrv.dll*/a*/b*http://x", "/def");
    REQUIRE(p.elements().size() == 1);
    CHECK(p.elements()[0].caches == std::vector<std::string>{"/a", "/b"});
    CHECK(p.elements()[0].server == "http://x");

    CHECK(SymbolPath::parse("", "/def").empty());
    CHECK(SymbolPath::parse("/a", "/d").appended("/b", "/d").text() == "/a;/b");
    CHECK(symfix_path("/cache") == "srv*/cache*https://msdl.microsoft.com/download/symbols");
    CHECK(store_path("/s", kCrash) == "/s/crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.pdb");
}

TEST_CASE("srv*CACHE*URL downloads into the store layout; the cache then serves offline") {
    TempDir tmp;
    make_store(tmp.str("store"));
    std::string url;
    {
        test::TinyHttpServer server(tmp.str("store"));
        url = server.url();
        SymbolServer ss(quick());
        std::vector<std::string> log;
        auto path = SymbolPath::parse("srv*" + tmp.str("cache") + "*" + url, "/unused");
        auto got = ss.find(path, kCrash, crash_check(), log);
        REQUIRE(got);
        CHECK(*got == store_path(tmp.str("cache"), kCrash));
        CHECK(fs::file_size(*got) == fs::file_size(kDir + "/crash.pdb"));
        CHECK(log_has(log, "file not found")); // the cache was probed first
        CHECK(log_has(log, "SYMSRV:  HTTPGET: " + url + "/crash.pdb/" + kCrash.store_key +
                               "/crash.pdb - OK, 1019904 bytes"));
        CHECK_FALSE(fs::exists(*got + ".partial"));
        CHECK(server.requests().size() == 1);
    }
    // The server is gone: the cache answers.
    SymbolServer ss(quick());
    std::vector<std::string> log;
    auto got = ss.find(SymbolPath::parse("srv*" + tmp.str("cache") + "*" + url, "/unused"), kCrash,
                       crash_check(), log);
    REQUIRE(got);
    CHECK(*got == store_path(tmp.str("cache"), kCrash));
    CHECK(log.empty());
}

TEST_CASE("404, 500, an HTML page and a silent server: one line each, then the next element") {
    TempDir tmp;
    make_store(tmp.str("store"));
    make_store(tmp.str("store/error"));
    make_store(tmp.str("store/html"));
    test::TinyHttpServer server(tmp.str("store"));
    SymbolServer ss(quick());
    std::vector<std::string> log;
    const std::string c = tmp.str("cache");
    const std::string text = "srv*" + c + "*" + server.url("/missing") + ";srv*" + c + "*" +
                             server.url("/error") + ";srv*" + c + "*" + server.url("/html") +
                             ";srv*" + c + "*" + server.url("/slow") + ";srv*" + c + "*" +
                             server.url("/redirect");
    const auto start = std::chrono::steady_clock::now();
    auto got = ss.find(SymbolPath::parse(text, "/unused"), kCrash, crash_check(), log);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(got);
    CHECK(*got == store_path(c, kCrash));
    CHECK(log_has(log, "/missing/crash.pdb/" + kCrash.store_key +
                           "/crash.pdb - HTTP 404 (80190194 - HTTP_STATUS_NOT_FOUND)"));
    CHECK(log_has(log, "/error/crash.pdb/" + kCrash.store_key +
                           "/crash.pdb - HTTP 500 (801901F4 - HTTP_STATUS_SERVER_ERROR)"));
    CHECK(log_has(log,
                  "/html/crash.pdb/" + kCrash.store_key + "/crash.pdb - rejected: an HTML page"));
    CHECK(log_has(log, "/slow/crash.pdb/" + kCrash.store_key + "/crash.pdb - timed out"));
    CHECK(log_has(log, "/redirect/crash.pdb/" + kCrash.store_key + "/crash.pdb - OK"));
    size_t http_lines = 0;
    for (const auto& l : log) {
        http_lines += l.find("HTTPGET") != std::string::npos;
    }
    CHECK(http_lines == 5); // one line per server
    CHECK(took < std::chrono::seconds(5));
    CHECK_FALSE(fs::exists(store_path(c, kCrash) + ".partial"));
}

TEST_CASE("plain directories: name.pdb and the store layout; a mismatched PDB is refused") {
    TempDir tmp;
    fs::create_directories(tmp.str("flat"));
    // Not crash.pdb's content: some other PDB under the right name is refused with a reason.
    {
        std::ofstream bad(tmp.str("flat/crash.pdb"), std::ios::binary);
        bad << "Microsoft C/C++ MSF 7.00\r\n\x1a"
            << "DS" << std::string(64, '\0');
    }
    make_store(tmp.str("layout"));
    SymbolServer ss(quick());
    std::vector<std::string> log;
    auto got =
        ss.find(SymbolPath::parse(
                    tmp.str("empty") + ";" + tmp.str("flat") + ";" + tmp.str("layout"), "/unused"),
                kCrash, crash_check(), log);
    REQUIRE(got);
    CHECK(*got == store_path(tmp.str("layout"), kCrash));
    CHECK(log_has(log, "DBGHELP: " + tmp.str("empty") + "/crash.pdb - file not found"));
    CHECK(log_has(log, "DBGHELP: " + tmp.str("flat") + "/crash.pdb - "));

    log.clear();
    auto none = ss.find(SymbolPath::parse(tmp.str("empty"), "/unused"), kCrash, crash_check(), log);
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::NotFound);
    // Names that would leave the store are refused.
    CHECK_FALSE(ss.find(SymbolPath::parse(tmp.str("layout"), "/u"), {"../x.pdb", "AB1"}, {}, log));
}

TEST_CASE("a download can be cancelled") {
    TempDir tmp;
    test::TinyHttpServer server(tmp.str());
    SymbolFetchOptions o = quick();
    o.stall_timeout_ms = 60000;
    const auto start = std::chrono::steady_clock::now();
    o.cancelled = [start] {
        return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(300);
    };
    SymbolServer ss(o);
    std::vector<std::string> log;
    auto got = ss.find(SymbolPath::parse("srv*" + tmp.str("c") + "*" + server.url("/slow"), "/u"),
                       kCrash, {}, log);
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::Interrupted);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}
