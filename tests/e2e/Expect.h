#pragma once
// EXPECT_OUT for the end-to-end drivers (Process, PtyProcess): waits for a regex in the child's
// output; on failure prints the transcript and fails the test. The wait is at least 30 s,
// whatever the test asks: a timeout here only says when to give up on a failing test, and CI's
// machines are slower and more loaded than a developer's (no e2e test asserts a time bound).
#include <algorithm>
#include <chrono>
#include <doctest/doctest.h>

namespace e2e {
template <class Duration> std::chrono::milliseconds expect_timeout(Duration t) {
    return std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(t), std::chrono::seconds(30));
}
} // namespace e2e

#define EXPECT_OUT(p, re, t)                                                                       \
    do {                                                                                           \
        bool ok_ = (p).expect((re), e2e::expect_timeout(t));                                       \
        if (!ok_) {                                                                                \
            MESSAGE("transcript:\n" << (p).transcript());                                          \
        }                                                                                          \
        REQUIRE_MESSAGE(ok_, "expected /" << (re) << "/");                                         \
    } while (0)
