// Tests for cli/format/Expression.h: WinDbg MASM expressions and address ranges.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/Expression.h"

#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace kdcart;
using namespace kdcart::engine;

namespace {

// A fake target: a few registers, symbols and qwords of memory.
struct FakeTarget {
    std::map<std::string, uint64_t> registers{
        {"rax", 5},
        {"eax", 5},
        {"rsp", 0xfffff88005db1b50},
        {"$ip", 0xfffff80001b66b4e},
        {"$ptrsize", 8},
        {"$t0", 0x83d8bb38},
    };
    std::map<std::string, uint64_t> symbols{
        {"nt", 0xfffff80012600000},
        {"nt!KeBugCheckEx", 0xfffff80012a01230},
        {"nt!iofileobjecttype", 0xfffff80012c00000},
        {"csrss!_imp_NtTerminateProcess", 0x7ff6eb572138},
        {"CSRSRV!CsrInitFailReason", 0x7ff9c81917e0},
        {"KiSystemCall64", 0xfffff800a6bc26c0},
        {"nt!Foo::Bar", 0xfffff80012000010},
    };
    std::map<uint64_t, uint64_t> memory{
        {0x7ff6eb572138, 0x00007ff9cbf2a460},
        {0x7ff9c81917e0, 0x0000000700000007},
        {0xfffff80012c00000, 0xffffe00083d656e0},
    };

    ExpressionCallbacks callbacks() const {
        ExpressionCallbacks cb;
        cb.register_value = [this](std::string_view name) -> std::optional<uint64_t> {
            auto it = registers.find(std::string(name));
            if (it == registers.end()) {
                return std::nullopt;
            }
            return it->second;
        };
        cb.symbol_value = [this](std::string_view name) -> std::optional<uint64_t> {
            auto it = symbols.find(std::string(name));
            if (it == symbols.end()) {
                return std::nullopt;
            }
            return it->second;
        };
        cb.read_memory = [this](uint64_t addr, int size) -> std::optional<uint64_t> {
            auto it = memory.find(addr);
            if (it == memory.end()) {
                return std::nullopt;
            }
            return size == 8 ? it->second : it->second & ((uint64_t{1} << (8 * size)) - 1);
        };
        return cb;
    }
};

} // namespace

TEST_CASE("numbers") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        uint64_t value;
    };
    const Case cases[] = {
        {"fffff800`01e45ce0", 0xfffff80001e45ce0},
        {"ffffbc88`eeb10b30", 0xffffbc88eeb10b30},
        {"0xfffff800`01e45ce0", 0xfffff80001e45ce0},
        {"ffffbc88eeb10c20", 0xffffbc88eeb10c20},
        {"10", 0x10},
        {"0x10", 0x10},
        {"0X1f", 0x1f},
        {"0n10", 10},
        {"0N255", 255},
        {"0t17", 15},
        {"0y101", 5},
        {"1A8h", 0x1a8},
        {"0ffh", 0xff},
        {"0n-1073741811", static_cast<uint64_t>(-1073741811LL)},
        {"add", 0xadd}, // valid hex wins over a name, as in WinDbg
        {"  42  ", 0x42},
        {"0", 0},
        {"ffffffff`ffffffff", ~uint64_t{0}},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto v = evaluate_expression(c.text, cb);
        REQUIRE(v);
        CHECK(*v == c.value);
    }
    cb.default_radix = 10;
    CHECK(*evaluate_expression("10", cb) == 10);
    CHECK(*evaluate_expression("0x10", cb) == 16);
    CHECK(*evaluate_expression("10h", cb) == 16);
}

TEST_CASE("operators") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        uint64_t value;
    };
    const Case cases[] = {
        {"1+2*3", 7},
        {"(1+2)*3", 9},
        {"2*(3+4)", 0xe},
        {"10-1", 0xf},
        {"-1", ~uint64_t{0}},
        {"--5", 5},
        {"~0", ~uint64_t{0}},
        {"+7", 7},
        {"20/3", 0xa},
        {"20%3", 2},
        {"20 mod 3", 2},
        {"1<<4", 0x10},
        {"100>>4", 0x10},
        {"-10>>>4", ~uint64_t{0}},
        {"f0&3c", 0x30},
        {"f0|0f", 0xff},
        {"ff^0f", 0xf0},
        {"fffffa804b729790 + 0xa0", 0xfffffa804b729830},        // seed 001:1201
        {"00000000`78130000 + 0x000000000001df67", 0x7814df67}, // seed 001:1821
        {"0 - 1", ~uint64_t{0}},
        {"((((1))))", 1},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto v = evaluate_expression(c.text, cb);
        REQUIRE(v);
        CHECK(*v == c.value);
    }
}

TEST_CASE("registers, pseudo-registers, symbols, memory") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        uint64_t value;
    };
    const Case cases[] = {
        {"@rax", 5},
        {"rax", 5},
        {"@rax+1", 6},
        {"@$ip", 0xfffff80001b66b4e},
        {"$ip", 0xfffff80001b66b4e},
        {".", 0xfffff80001b66b4e},
        {". + 2", 0xfffff80001b66b50},
        {"@$t0", 0x83d8bb38},
        {"nt", 0xfffff80012600000},
        {"nt+0x1000", 0xfffff80012601000},
        {"nt+000182f0", 0xfffff800126182f0}, // seed 001:385
        {"nt!KeBugCheckEx", 0xfffff80012a01230},
        {"nt!KeBugCheckEx+0x10", 0xfffff80012a01240},
        {"nt!KeBugCheckEx-10", 0xfffff80012a01220},
        {"KiSystemCall64", 0xfffff800a6bc26c0},
        {"nt!Foo::Bar", 0xfffff80012000010},
        {"poi(csrss!_imp_NtTerminateProcess)", 0x7ff9cbf2a460},
        {"poi( csrss!_imp_NtTerminateProcess )", 0x7ff9cbf2a460},
        {"dwo(CSRSRV!CsrInitFailReason)", 7},
        {"qwo(CSRSRV!CsrInitFailReason)", 0x0000000700000007},
        {"wo(CSRSRV!CsrInitFailReason)", 7},
        {"by(CSRSRV!CsrInitFailReason)", 7},
        {"poi(nt!iofileobjecttype)", 0xffffe00083d656e0},
        {"low(poi(nt!iofileobjecttype))", 0x56e0},
        {"hi(poi(nt!iofileobjecttype))", 0x83d6},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto v = evaluate_expression(c.text, cb);
        REQUIRE(v);
        CHECK(*v == c.value);
    }
    CHECK(*evaluate_expression("758/@$ptrsize", cb) == 0xeb);
}

TEST_CASE("symbol before register for bare names") {
    FakeTarget t;
    t.symbols["rax"] = 0x1234;
    auto cb = t.callbacks();
    CHECK(*evaluate_expression("rax", cb) == 0x1234);
    CHECK(*evaluate_expression("@rax", cb) == 5);
}

TEST_CASE("errors") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        Errc code;
        const char* message;
    };
    const Case cases[] = {
        {"foo", Errc::InvalidArgument, "Couldn't resolve error at 'foo'"},
        {"nt!Nope+4", Errc::InvalidArgument, "Couldn't resolve error at 'nt!Nope+4'"},
        {"1+bogus*2", Errc::InvalidArgument, "Couldn't resolve error at 'bogus*2'"},
        {"1+", Errc::InvalidArgument, "Syntax error at ''"},
        {"", Errc::InvalidArgument, "Syntax error at ''"},
        {"(1+2", Errc::InvalidArgument, "Syntax error at ''"},
        {"1 2", Errc::InvalidArgument, "Syntax error at '2'"},
        {"1)", Errc::InvalidArgument, "Syntax error at ')'"},
        {"*3", Errc::InvalidArgument, "Syntax error at '*3'"},
        {"@foo", Errc::InvalidArgument, "Bad register error at '@foo'"},
        {"@$t9+1", Errc::InvalidArgument, "Bad register error at '@$t9+1'"},
        {"@", Errc::InvalidArgument, "Syntax error at '@'"},
        {"poi(123)", Errc::Unreadable, "Memory access error at ')'"},
        {"poi(123) + 4", Errc::Unreadable, "Memory access error at ') + 4'"},
        {"1/0", Errc::InvalidArgument, "Divide by zero error at '0'"},
        {"5 % (1-1)", Errc::InvalidArgument, "Divide by zero error at '(1-1)'"},
        {"123456789abcdef01", Errc::InvalidArgument, "Overflow error at '123456789abcdef01'"},
        {"poi", Errc::InvalidArgument, "Couldn't resolve error at 'poi'"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto v = evaluate_expression(c.text, cb);
        REQUIRE_FALSE(v);
        CHECK(v.error().code == c.code);
        CHECK(v.error().message == c.message);
    }
    // Deep nesting is an error, not a crash.
    std::string deep(1000, '(');
    CHECK_FALSE(evaluate_expression(deep + "1", cb));
    CHECK_FALSE(evaluate_expression(std::string(1000, '-') + "1", cb));
    // No callbacks at all: numbers still work, names do not.
    ExpressionCallbacks none;
    CHECK(*evaluate_expression("fffff800`00000000+10", none) == 0xfffff80000000010);
    CHECK(evaluate_expression("rax", none).error().message == "Couldn't resolve error at 'rax'");
    CHECK(evaluate_expression("poi(10)", none).error().code == Errc::Unreadable);
}

TEST_CASE("evaluate_expression_prefix stops where the expression ends") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        uint64_t value;
        size_t consumed;
    };
    const Case cases[] = {
        {"1000 L4", 0x1000, 4},
        {"1000 2000", 0x1000, 4},
        {"nt!KeBugCheckEx \"r rax\"", 0xfffff80012a01230, 15},
        {"00000000`00e50000+ 1E000 l758/@$ptrsize", 0xe6e000, 24},
        {"@rax ", 5, 4},
        {"1 + 2 + 3 x", 6, 9},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        size_t consumed = 0;
        auto v = evaluate_expression_prefix(c.text, cb, &consumed);
        REQUIRE(v);
        CHECK(*v == c.value);
        CHECK(consumed == c.consumed);
    }
}

TEST_CASE("parse_range") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        size_t element_size;
        uint64_t start;
        uint64_t count;
        bool given;
    };
    const Case cases[] = {
        {"fffff800`01e45ce0", 1, 0xfffff80001e45ce0, 0x80, false},
        {"fffff800`01e45ce0 L4", 4, 0xfffff80001e45ce0, 4, true},
        {"fffffa80`4b729830 l1", 8, 0xfffffa804b729830, 1, true}, // seed 001:1204
        {"1000 L 8", 1, 0x1000, 8, true},
        {"1000 L20", 1, 0x1000, 0x20, true},
        {"1000 L0n20", 1, 0x1000, 20, true},
        {"1000 1007", 4, 0x1000, 2, true}, // inclusive end: 8 bytes = 2 dwords
        {"1000 1008", 4, 0x1000, 3, true}, // rounds up to whole elements
        {"1000 1000", 1, 0x1000, 1, true},
        {"0x00001000  0x00001007", 1, 0x1000, 8, true},
        {"1000 L-20", 1, 0x1000 - 0x20, 0x20, true},
        {"80000000 L-20", 4, 0x80000000 - 0x80, 0x20, true},
        {"1000 L?20000000", 1, 0x1000, 0x20000000, true},
        {"00000000`00e50000+ 1E000 l758/@$ptrsize", 8, 0xe6e000, 0xeb, true}, // seed 001:1906
        {"nt!MiChargeCommitmentFailures L4", 4, 0, 4, true},
        {"  @rsp  L2  ", 8, 0xfffff88005db1b50, 2, true},
        {"poi(csrss!_imp_NtTerminateProcess) L1", 8, 0x7ff9cbf2a460, 1, true},
    };
    t.symbols["nt!MiChargeCommitmentFailures"] = 0;
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = parse_range(c.text, cb, 0x80 / c.element_size, c.element_size);
        REQUIRE(r);
        CHECK(r->start == c.start);
        CHECK(r->count == c.count);
        CHECK(r->count_given == c.given);
    }
}

TEST_CASE("parse_range errors") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        const char* message;
    };
    const Case cases[] = {
        {"2000 1000", "Range error in '2000 1000'"},
        {"1000 L0", "Range error in '1000 L0'"},
        {"1000 L20000000", "Range error in '1000 L20000000'"}, // > 256 MB without L?
        {"0 ffffffff`ffffffff", "Range error in '0 ffffffff`ffffffff'"},
        {"1000 L4 junk", "Syntax error at 'junk'"},
        {"1000 L", "Syntax error at ''"},
        {"", "Syntax error at ''"},
        {"nosuch L4", "Couldn't resolve error at 'nosuch L4'"},
        {"1000 nosuch", "Couldn't resolve error at 'nosuch'"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = parse_range(c.text, cb, 0x80, 1);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message == c.message);
    }
    // The 256 MB limit counts bytes: L4000000 is fine for bytes, too much for qwords.
    CHECK(parse_range("1000 L4000000", cb, 0x80, 1));
    CHECK_FALSE(parse_range("1000 L4000000", cb, 0x10, 8));
    CHECK(parse_range("1000 L?4000000", cb, 0x10, 8));
}

TEST_CASE("comparisons, not, word operators, string operators (command programs)") {
    FakeTarget t;
    auto cb = t.callbacks();
    struct Case {
        const char* text;
        uint64_t value;
    };
    const Case cases[] = {
        {"1 == 1", 1},
        {"1 = 2", 0},
        {"@rax != 5", 0},
        {"@rax!=4", 1},
        {"3 < 4", 1},
        {"4 <= 4", 1},
        {"5 > 6", 0},
        {"-1 > 0", 1}, // unsigned, as WinDbg
        {"7 >= 8", 0},
        {"1 << 2 == 4", 1},         // shifts bind tighter than comparisons
        {"1 + 1 == 2 & 3 == 3", 1}, // comparisons bind tighter than &
        {"(@$t0 < 0x83d8bb39) and (@rax == 5)", 1},
        {"1 or 0", 1},
        {"6 xor 3", 5},
        {"f0 and 3c", 0x30},
        {"not 0", 1},
        {"not 5", 0},
        {"not (1 == 2)", 1},
        {"$scmp(\"abc\", \"abd\")", ~uint64_t{0}},
        {"$scmp(\"b\", \"b\")", 0},
        {"$sicmp(\"ABC\", \"abc\")", 0},
        {"$spat(\"KdTestCompute\", \"kdtest*\")", 1},
        {"$spat(\"KdTestCompute\", \"*Update\")", 0},
        {"@@masm(1 + 2) * 2", 6},
        {"poi(nt!iofileobjecttype) == 0xffffe00083d656e0", 1},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto v = evaluate_expression(c.text, cb);
        REQUIRE(v);
        CHECK(*v == c.value);
    }
    const auto cpp = evaluate_expression("@@c++(nt!_LIST_ENTRY *)", cb);
    REQUIRE_FALSE(cpp);
    CHECK(cpp.error().message.find("C++ expressions (@@c++) are not supported yet") !=
          std::string::npos);
    CHECK(evaluate_expression("1 ==", cb).error().message == "Syntax error at ''");
    // A comparison does not swallow what a prefix parse leaves for the command.
    size_t used = 0;
    auto v = evaluate_expression_prefix("(@rax == 5) 'r rax'; 'r rbx'", cb, &used);
    REQUIRE(v);
    CHECK(*v == 1);
    CHECK(used == 11);
}
