// x64 unwinding from hand-built images: RUNTIME_FUNCTION search, UNWIND_INFO parsing (sizes as
// .fnent prints them), a frame in its prolog, in its body, in an epilogue (emulated), a machine
// frame (interrupt handler), chained unwind info, an image without unwind data; and uf's flow
// walk over blocks, a conditional branch and a tail call.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/FunctionFlow.h"
#include "engine/UnwindInfo.h"
#include "engine/Unwinder.h"

#include <doctest/doctest.h>

#include <cstring>
#include <map>

using namespace kdcart::engine;
using kdcart::protocol::CONTEXT;

namespace {

constexpr uint64_t kBase = 0x140000000;
constexpr uint64_t kStack = 0x7000;

// Sparse memory: the image at kBase and a stack page.
struct FakeMemory {
    std::vector<uint8_t> image = std::vector<uint8_t>(0x3000, 0);
    std::vector<uint8_t> stack = std::vector<uint8_t>(0x1000, 0);
    uint64_t stack_base = 0xFFFFF88000000000ull;

    UnwindMemory reader() {
        UnwindMemory m;
        m.read = [this](uint64_t a, uint32_t n) -> std::vector<uint8_t> {
            auto from = [&](const std::vector<uint8_t>& v, uint64_t base) -> std::vector<uint8_t> {
                if (a < base || a - base >= v.size()) {
                    return {};
                }
                const size_t off = a - base;
                const size_t take = std::min<size_t>(n, v.size() - off);
                return {v.begin() + off, v.begin() + off + take};
            };
            auto r = from(image, kBase);
            return r.empty() ? from(stack, stack_base) : r;
        };
        return m;
    }
    template <class T> void put(std::vector<uint8_t>& v, size_t off, T value) {
        std::memcpy(v.data() + off, &value, sizeof value);
    }
    void bytes(size_t rva, std::initializer_list<uint8_t> b) {
        std::copy(b.begin(), b.end(), image.begin() + static_cast<long>(rva));
    }
    void stack_qword(uint64_t address, uint64_t v) { put(stack, address - stack_base, v); }

    // MZ/PE32+ headers with an exception directory at 0x2000 of `entries` entries.
    void headers(size_t entries) {
        image[0] = 'M';
        image[1] = 'Z';
        put<uint32_t>(image, 0x3C, 0x80);
        std::memcpy(image.data() + 0x80, "PE\0\0", 4);
        put<uint16_t>(image, 0x80 + 24, 0x20B);
        put<uint32_t>(image, 0x80 + 24 + 0x6C, 16);
        put<uint32_t>(image, 0x80 + 24 + 0x70 + 3 * 8, 0x2000);
        put<uint32_t>(image, 0x80 + 24 + 0x70 + 3 * 8 + 4, static_cast<uint32_t>(entries * 12));
    }
    void entry(size_t i, uint32_t begin, uint32_t end, uint32_t unwind) {
        put<uint32_t>(image, 0x2000 + i * 12, begin);
        put<uint32_t>(image, 0x2000 + i * 12 + 4, end);
        put<uint32_t>(image, 0x2000 + i * 12 + 8, unwind);
    }
};

CONTEXT at(uint64_t rip, uint64_t rsp) {
    CONTEXT c{};
    c.Rip = rip;
    c.Rsp = rsp;
    return c;
}

// f at 0x1000: push rbx; sub rsp,20h; (body) nop...; add rsp,20h; pop rbx; ret
void function_with_prolog(FakeMemory& m, size_t entry_index, uint32_t rva, uint32_t unwind) {
    m.bytes(rva,
            {0x53, 0x48, 0x83, 0xEC, 0x20, 0x90, 0x90, 0x90, 0x48, 0x83, 0xC4, 0x20, 0x5B, 0xC3});
    m.entry(entry_index, rva, rva + 14, unwind);
    // version 1, prolog 5, 2 codes: offs 5 ALLOC_SMALL 0x20; offs 1 PUSH_NONVOL rbx
    m.bytes(unwind, {0x01, 5, 2, 0, 5, 0x32, 1, 0x30});
}

} // namespace

TEST_CASE("unwind info: codes, sizes as .fnent prints them, chained entries") {
    FakeMemory m;
    m.headers(1);
    function_with_prolog(m, 0, 0x1000, 0x2100);
    auto um = m.reader();
    auto info = read_unwind_info(kBase, 0x2100, um);
    REQUIRE(info);
    CHECK(info->size == 8);
    REQUIRE(info->codes.size() == 2);
    CHECK(info->codes[0].op == k_uwop_alloc_small);
    CHECK(info->codes[0].value == 0x20);
    CHECK(info->codes[1].op == k_uwop_push_nonvol);
    CHECK(std::string(unwind_register_name(info->codes[1].info)) == "rbx");
    // Seed 001: flags 4, codes 0 -> 0x10 bytes; flags 0, codes 1 -> 6 bytes.
    m.bytes(0x2200, {0x21, 0, 0, 0});
    std::memcpy(m.image.data() + 0x2204, "\xF0\x82\x01\x00\x58\x83\x01\x00\x10\xF9\x1B\x00", 12);
    auto chained = read_unwind_info(kBase, 0x2200, um);
    REQUIRE(chained);
    CHECK(chained->size == 0x10);
    REQUIRE(chained->chained);
    CHECK(chained->chained->begin == 0x182F0);
    CHECK(chained->chained->end == 0x18358);
    CHECK(chained->chained->unwind == 0x1BF910);
    m.bytes(0x2300, {0x01, 4, 1, 0, 4, 0xC2});
    auto one = read_unwind_info(kBase, 0x2300, um);
    REQUIRE(one);
    CHECK(one->size == 6);
    CHECK(one->codes[0].value == 0x68);
    // A code that claims more slots than the record has is refused.
    m.bytes(0x2400, {0x01, 4, 1, 0, 4, 0x01});
    CHECK(!read_unwind_info(kBase, 0x2400, um));
    CHECK(find_runtime_function(kBase, 0x1005, um)->entry_address == kBase + 0x2000);
    CHECK(!find_runtime_function(kBase, 0x100E, um));
}

TEST_CASE("unwinding a frame in its prolog, body and epilogue") {
    FakeMemory m;
    m.headers(1);
    function_with_prolog(m, 0, 0x1000, 0x2100);
    auto um = m.reader();
    const uint64_t entry_rsp = m.stack_base + 0x800; // rsp at the function's first instruction
    m.stack_qword(entry_rsp, 0x140001234);           // return address
    m.stack_qword(entry_rsp - 8, 0xB0B);             // saved rbx

    // Body: both prolog steps undone.
    auto body = unwind_frame(at(kBase + 0x1005, entry_rsp - 8 - 0x20), kBase, um);
    REQUIRE(body);
    CHECK(body->return_address == 0x140001234);
    CHECK(body->caller_rsp == entry_rsp + 8);
    CHECK(body->caller.Rbx == 0xB0B);
    CHECK(!body->in_epilogue);
    // After the push only: the allocation has not happened yet.
    auto prolog = unwind_frame(at(kBase + 0x1001, entry_rsp - 8), kBase, um);
    REQUIRE(prolog);
    CHECK(prolog->return_address == 0x140001234);
    CHECK(prolog->caller_rsp == entry_rsp + 8);
    // At "add rsp,20h" and at "pop rbx" of the epilogue: emulated, same caller.
    for (auto [rip, rsp] : {std::pair<uint64_t, uint64_t>{kBase + 0x1008, entry_rsp - 8 - 0x20},
                            {kBase + 0x100C, entry_rsp - 8},
                            {kBase + 0x100D, entry_rsp}}) {
        auto e = unwind_frame(at(rip, rsp), kBase, um);
        REQUIRE(e);
        CHECK(e->in_epilogue);
        CHECK(e->return_address == 0x140001234);
        CHECK(e->caller_rsp == entry_rsp + 8);
    }
}

TEST_CASE("a machine frame gives the interrupted rip and rsp; chained info unwinds the parent") {
    FakeMemory m;
    m.headers(3);
    // 0x1000: the primary part with the prolog; 0x1100: its chained body; 0x1200: a handler.
    function_with_prolog(m, 0, 0x1000, 0x2100);
    m.bytes(0x1100, {0x90, 0x90, 0x90, 0x90});
    m.entry(1, 0x1100, 0x1104, 0x2200);
    m.bytes(0x2200, {0x21, 0, 0, 0});
    uint32_t chain[3] = {0x1000, 0x100E, 0x2100};
    std::memcpy(m.image.data() + 0x2204, chain, 12);
    // handler: push rbp; sub rsp,20h; body. Codes: offs 5 ALLOC_SMALL 0x20, offs 1 PUSH rbp,
    // offs 0 PUSH_MACHFRAME (no error code).
    m.bytes(0x1200, {0x55, 0x48, 0x83, 0xEC, 0x20, 0x90, 0x90});
    m.entry(2, 0x1200, 0x1207, 0x2300);
    m.bytes(0x2300, {0x01, 5, 3, 0, 5, 0x32, 1, 0x50, 0, 0x0A});
    auto um = m.reader();

    // The interrupted code: inside the chained body, rsp = interrupted_rsp.
    const uint64_t interrupted_rsp = m.stack_base + 0x900;
    m.stack_qword(interrupted_rsp + 0x20, 0xB0B);       // saved rbx (after sub 0x20)
    m.stack_qword(interrupted_rsp + 0x28, 0x140001777); // the body's return address
    // Machine frame below it: rip, cs, rflags, rsp, ss.
    const uint64_t mf = interrupted_rsp - 0x100;
    m.stack_qword(mf, kBase + 0x1102);
    m.stack_qword(mf + 8, 0x10);
    m.stack_qword(mf + 16, 0x202);
    m.stack_qword(mf + 24, interrupted_rsp);
    m.stack_qword(mf + 32, 0x18);
    m.stack_qword(mf - 8, 0x5555); // saved rbp
    auto h = unwind_frame(at(kBase + 0x1205, mf - 8 - 0x20), kBase, um);
    REQUIRE(h);
    REQUIRE(h->machine_frame);
    CHECK(*h->machine_frame == mf);
    CHECK(h->return_address == kBase + 0x1102);
    CHECK(h->caller_rsp == interrupted_rsp);
    CHECK(h->caller.Rbp == 0x5555);

    // The chained body has no codes of its own: the primary's prolog is undone in full.
    auto body = unwind_frame(at(kBase + 0x1102, interrupted_rsp), kBase, um);
    REQUIRE(body);
    CHECK(!body->machine_frame);
    CHECK(body->return_address == 0x140001777);
    CHECK(body->caller_rsp == interrupted_rsp + 0x30);
    CHECK(body->caller.Rbx == 0xB0B);
}

TEST_CASE("an image without unwind data: the return address from [rsp], flagged as a guess") {
    FakeMemory m;
    m.headers(0);
    m.image[0x80 + 24 + 0x70 + 3 * 8] = 0; // no exception directory at all
    m.image[0x80 + 24 + 0x70 + 3 * 8 + 1] = 0;
    auto um = m.reader();
    const uint64_t rsp = m.stack_base + 0x400;
    m.stack_qword(rsp, 0x140009999);
    auto f = unwind_frame(at(kBase + 0x1000, rsp), kBase, um);
    REQUIRE(f);
    CHECK(f->leaf);
    CHECK(f->no_unwind_data);
    CHECK(f->return_address == 0x140009999);
    // A function absent from a table that exists is a leaf, not a guess.
    FakeMemory m2;
    m2.headers(1);
    function_with_prolog(m2, 0, 0x1000, 0x2100);
    auto um2 = m2.reader();
    m2.stack_qword(rsp, 0x140009999);
    auto leaf = unwind_frame(at(kBase + 0x1800, rsp), kBase, um2);
    REQUIRE(leaf);
    CHECK(leaf->leaf);
    CHECK(!leaf->no_unwind_data);
    // Unreadable unwind info is an error, not a crash.
    m2.entry(0, 0x1000, 0x100E, 0x2FFE);
    CHECK(!unwind_frame(at(kBase + 0x1005, rsp), kBase, um2));
}

TEST_CASE("uf's flow: blocks at branch targets and after branches, tail calls not followed") {
    FakeMemory m;
    // 0x1000: test ecx,ecx; 0x1002: je 0x1009; 0x1004: mov eax,1;
    // 0x1009: jmp 0x1800 (another function's start: not followed, a tail call)
    m.bytes(0x1000, {0x85, 0xC9, 0x74, 0x05, 0xB8, 0x01, 0x00, 0x00, 0x00});
    m.bytes(0x1009, {0xE9, 0xF2, 0x07, 0x00, 0x00}); // 0x100E + 0x7F2 = 0x1800
    m.bytes(0x1800, {0xC3});
    auto um = m.reader();
    FlowOptions opt;
    opt.read = um.read;
    opt.follow = [](uint64_t t) { return t != kBase + 0x1800; };
    const FunctionFlow flow = trace_function(kBase + 0x1000, opt);
    std::vector<uint64_t> addrs;
    for (const auto& i : flow.instructions) {
        addrs.push_back(i.address - kBase);
    }
    CHECK(addrs == std::vector<uint64_t>{0x1000, 0x1002, 0x1004, 0x1009});
    CHECK(flow.block_starts.count(kBase + 0x1000));
    CHECK(flow.block_starts.count(kBase + 0x1004)); // after the conditional branch
    CHECK(flow.block_starts.count(kBase + 0x1009)); // its target
    CHECK(!flow.block_starts.count(kBase + 0x1800));
    CHECK(flow.instructions[3].kind == FlowInstruction::Kind::Jump);
    CHECK(*flow.instructions[3].target == kBase + 0x1800);
    // Unreadable code ends the walk cleanly.
    const FunctionFlow none = trace_function(0x1234, opt);
    CHECK(none.instructions.empty());
}
