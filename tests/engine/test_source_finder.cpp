// engine/SourceFinder: the source search path (.srcpath) and where a recorded source path is
// found: as recorded when it exists, else each directory joined with the recorded path's
// trailing components, the longest first. Real files in a temporary directory, and a fake file
// system for the search order.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/SourceFinder.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

using kdcart::engine::SourceFinder;
namespace fs = std::filesystem;

namespace {

// A fake file system that records what was asked, in order.
struct FakeFiles {
    std::set<std::string> present;
    std::vector<std::string> asked;
    SourceFinder::Exists exists() {
        return [this](const std::string& p) {
            asked.push_back(p);
            return present.count(p) != 0;
        };
    }
};

} // namespace

TEST_CASE("the path: set, append, text; blanks and empty entries dropped") {
    SourceFinder f([](const std::string&) { return false; });
    CHECK(f.text().empty());
    f.set_path(" /a ; ;/b/");
    CHECK(f.directories() == std::vector<std::string>{"/a", "/b/"});
    f.append_path("/c");
    CHECK(f.text() == "/a;/b/;/c");
    f.set_path("/d");
    CHECK(f.text() == "/d");
}

TEST_CASE("components: drive dropped, both separators") {
    CHECK(SourceFinder::components("d:\\build\\drv/src\\foo.c") ==
          std::vector<std::string>{"build", "drv", "src", "foo.c"});
    CHECK(SourceFinder::components("/work/main/hw/images/kdtest.c") ==
          std::vector<std::string>{"work", "main", "hw", "images", "kdtest.c"});
    CHECK(SourceFinder::components("foo.c") == std::vector<std::string>{"foo.c"});
}

TEST_CASE("the recorded path first, then the longest suffix over every directory") {
    FakeFiles fs;
    SourceFinder f(fs.exists());
    f.set_path("/s1;/s2/");
    fs.present = {"/s2/src/foo.c", "/s1/foo.c"};
    // src\foo.c under /s2 is a longer suffix than foo.c under /s1: it wins.
    CHECK(f.find("d:\\build\\src\\foo.c") == std::optional<std::string>("/s2/src/foo.c"));
    CHECK(fs.asked == std::vector<std::string>{"d:\\build\\src\\foo.c", "/s1/build/src/foo.c",
                                               "/s2/build/src/foo.c", "/s1/src/foo.c",
                                               "/s2/src/foo.c"});
    // The recorded path itself, when it exists, before any directory.
    fs.present.insert("d:\\build\\src\\foo.c");
    CHECK(f.find("d:\\build\\src\\foo.c") == std::optional<std::string>("d:\\build\\src\\foo.c"));
    // The file name alone, in the first directory that has it.
    CHECK(f.find("e:\\other\\foo.c") == std::optional<std::string>("/s1/foo.c"));
    // Nowhere.
    CHECK_FALSE(f.find("d:\\build\\bar.c"));
    CHECK_FALSE(f.find(""));
}

TEST_CASE("a recorded ..\\ is never followed out of a source directory") {
    FakeFiles fs;
    SourceFinder f(fs.exists());
    f.set_path("/s");
    fs.present = {"/s/../secret.c", "/s/secret.c"};
    CHECK(f.find("c:\\x\\..\\secret.c") == std::optional<std::string>("/s/secret.c"));
    for (const auto& a : fs.asked) {
        CHECK(a.find("/s/..") == std::string::npos);
    }
}

TEST_CASE("real files: found under a srcpath directory, a directory is not a file") {
    const fs::path root = fs::temp_directory_path() / ("srcfinder-" + std::to_string(::getpid()));
    fs::create_directories(root / "tree" / "images");
    { std::ofstream(root / "tree" / "images" / "kdtest.c") << "int x;\n"; }
    fs::create_directories(root / "tree" / "dir.c");
    SourceFinder f;
    f.set_path((root / "tree").string());
    CHECK(f.find("/nonexistent/build/hw/images/kdtest.c") ==
          std::optional<std::string>((root / "tree" / "images" / "kdtest.c").string()));
    CHECK(f.find("c:\\x\\images\\kdtest.c") ==
          std::optional<std::string>((root / "tree" / "images" / "kdtest.c").string()));
    CHECK_FALSE(f.find("/nonexistent/dir.c"));
    fs::remove_all(root);
}
