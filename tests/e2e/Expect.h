#pragma once
// EXPECT_OUT for the end-to-end drivers (Process, PtyProcess): waits for a regex in the child's
// output; on failure prints the transcript and fails the test.
#include <doctest/doctest.h>

#define EXPECT_OUT(p, re, t)                                                                       \
    do {                                                                                           \
        bool ok_ = (p).expect((re), (t));                                                          \
        if (!ok_) {                                                                                \
            MESSAGE("transcript:\n" << (p).transcript());                                          \
        }                                                                                          \
        REQUIRE_MESSAGE(ok_, "expected /" << (re) << "/");                                         \
    } while (0)
