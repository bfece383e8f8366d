// wt's bookkeeping: lines when a function is left, own and callee counts, thunks (a jump into
// another function at the same depth), the summary per function.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/CallTrace.h"

#include <doctest/doctest.h>

using namespace kdcart::engine;
using K = CallTrace::Kind;

namespace {
// n plain instructions in the current function.
void run(CallTrace& t, const std::string& fn, int n) {
    for (int i = 0; i < n; ++i) {
        CHECK_FALSE(t.executed(K::Other, fn));
    }
}
} // namespace

TEST_CASE("call tree: main -> thunk -> f -> g, returns, counts add up") {
    CallTrace t("m!main");
    run(t, "m!main", 2);
    auto l = t.executed(K::Call, "m!thunk"); // main's 3rd instruction calls the thunk
    REQUIRE(l);
    CHECK(l->own == 3);
    CHECK(l->children == 0);
    CHECK(l->depth == 0);
    CHECK(l->function == "m!main");
    l = t.executed(K::Other, "m!f"); // the thunk's jmp lands in f: same depth, a new line
    REQUIRE(l);
    CHECK(l->own == 1);
    CHECK(l->depth == 1);
    CHECK(l->function == "m!thunk");
    run(t, "m!f", 4);
    l = t.executed(K::Call, "m!g");
    REQUIRE(l);
    CHECK(l->own == 5);
    CHECK(l->function == "m!f");
    run(t, "m!g", 6);
    l = t.executed(K::Return, "m!f", 42);
    REQUIRE(l);
    CHECK(l->own == 7);
    CHECK(l->depth == 2);
    CHECK(l->returned);
    CHECK(l->return_value == 42);
    run(t, "m!f", 1);
    l = t.executed(K::Return, "m!main");
    REQUIRE(l);
    CHECK(l->own == 7); // 5 + 1 + ret
    CHECK(l->children == 7);
    CHECK(l->depth == 1);
    CHECK(l->function == "m!f");
    CHECK(t.depth() == 0);
    l = t.executed(K::Return, "x!caller");
    REQUIRE(l);
    CHECK(l->own == 4);
    // Everything below main: the thunk's instruction too.
    CHECK(l->children == 1 + 7 + 7);
    CHECK(t.finished());
    CHECK(t.instructions() == 4 + 1 + 7 + 7);
    t.stop();
    const auto& s = t.stats();
    REQUIRE(s.size() == 4);
    CHECK(s.at("m!main").invocations == 1);
    CHECK(s.at("m!main").min == 4);
    CHECK(s.at("m!thunk").max == 1);
    CHECK(s.at("m!f").total == 7);
    CHECK(s.at("m!g").total == 7);
    // Nothing after the end.
    CHECK_FALSE(t.executed(K::Other, "x!caller"));
    CHECK(t.instructions() == 19);
}

TEST_CASE("call tree: repeated calls give min/max/average; stop() closes what is open") {
    CallTrace t("m!loop");
    for (int n : {2, 4, 9}) {
        REQUIRE(t.executed(K::Call, "m!leaf"));
        run(t, "m!leaf", n - 1);
        REQUIRE(t.executed(K::Return, "m!loop"));
    }
    REQUIRE(t.executed(K::Call, "m!leaf"));
    run(t, "m!leaf", 5); // interrupted here
    CHECK(t.depth() == 1);
    CHECK(t.current().own == 5);
    t.stop();
    CHECK(t.finished());
    const auto& leaf = t.stats().at("m!leaf");
    CHECK(leaf.invocations == 4);
    CHECK(leaf.min == 2);
    CHECK(leaf.max == 9);
    CHECK(leaf.total == 2 + 4 + 9 + 5);
    CHECK(t.stats().at("m!loop").min == 4);
}
