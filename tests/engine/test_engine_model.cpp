// Engine pieces without a target: the breakpoint table and DR7, id lists, page-table walks,
// x64 unwinding from synthetic .pdata, instruction decoding for stepping.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "engine/AddressTranslation.h"
#include "engine/Breakpoints.h"
#include "engine/InstructionInfo.h"
#include "engine/Unwinder.h"

#include <cstring>
#include <doctest/doctest.h>
#include <map>

using namespace kdcart;
using namespace kdcart::engine;

TEST_CASE("DR7: enable bits, R/W and LEN fields, bit 10 always set") {
    BreakpointTable t;
    CHECK(compute_dr7(t) == 0x400);
    Breakpoint w8;
    w8.kind = BreakpointKind::Hardware;
    w8.access = HwAccess::Write;
    w8.length = 8;
    w8.address = 0x1000;
    w8.slot = 0;
    t.add(w8);
    // L0 | RW0=01 | LEN0=10 (8 bytes)
    CHECK(compute_dr7(t) == (0x400 | 0x1 | (1ull << 16) | (2ull << 18)));
    Breakpoint e1;
    e1.kind = BreakpointKind::Hardware;
    e1.access = HwAccess::Execute;
    e1.length = 1;
    e1.address = 0x2000;
    e1.slot = 3;
    t.add(e1);
    const uint64_t dr7 = compute_dr7(t);
    CHECK((dr7 & (1ull << 6)) != 0);     // L3
    CHECK(((dr7 >> 28) & 3) == 0);       // RW3 = execute
    CHECK(((dr7 >> 30) & 3) == 0);       // LEN3 = 1
    CHECK(t.used_slots() == 0b1001);
    CHECK(t.free_slot() == 1);
    CHECK(dr7_len_bits(4) == 3);
    CHECK(dr7_len_bits(2) == 1);
    // Disabled breakpoints leave their slot unarmed.
    t.find(0)->enabled = false;
    CHECK((compute_dr7(t) & 0x3) == 0);
}

TEST_CASE("breakpoint ids: lowest free number, lists, ranges, *") {
    BreakpointTable t;
    for (int i = 0; i < 4; ++i) {
        Breakpoint b;
        b.address = 0x1000 + i;
        CHECK(t.add(b).id == static_cast<uint32_t>(i));
    }
    t.remove(1);
    Breakpoint b;
    b.address = 0x5000;
    CHECK(t.add(b).id == 1);
    CHECK(*parse_breakpoint_ids("*", t) == std::vector<uint32_t>{0, 1, 2, 3});
    CHECK(*parse_breakpoint_ids("1-3", t) == std::vector<uint32_t>{1, 2, 3});
    CHECK(*parse_breakpoint_ids("0 2,3", t) == std::vector<uint32_t>{0, 2, 3});
    CHECK(*parse_breakpoint_ids("10", t) == std::vector<uint32_t>{10}); // decimal
    CHECK(!parse_breakpoint_ids("", t));
    CHECK(!parse_breakpoint_ids("x", t));
    CHECK(!parse_breakpoint_ids("5-2", t));
    CHECK(t.find_at(0x5000, BreakpointKind::Software)->id == 1);
}

namespace {
// A tiny physical memory holding 4-level tables for a few mappings.
struct FakePhys {
    std::map<uint64_t, uint64_t> q;
    uint64_t next = 0x10000;
    uint64_t alloc() {
        uint64_t p = next;
        next += 0x1000;
        return p;
    }
    void map(uint64_t cr3, uint64_t va, uint64_t pte_value) {
        uint64_t table = cr3;
        for (int level = 4; level > 1; --level) {
            uint64_t idx = (va >> (12 + 9 * (level - 1))) & 0x1FF;
            uint64_t& e = q[table + idx * 8];
            if ((e & 1) == 0) {
                e = alloc() | 0x3;
            }
            table = e & 0x000FFFFFFFFFF000ull;
        }
        q[table + ((va >> 12) & 0x1FF) * 8] = pte_value;
    }
    PhysReader reader() {
        return [this](uint64_t pa) -> std::optional<uint64_t> {
            auto it = q.find(pa);
            return it == q.end() ? 0 : it->second;
        };
    }
};
} // namespace

TEST_CASE("page-table walk: present, paged out (owed), unmapped, non-canonical") {
    FakePhys mem;
    const uint64_t cr3 = mem.alloc();
    mem.map(cr3, 0xfffff80000601000, 0x123000 | 0x3);         // present
    mem.map(cr3, 0xfffff88001205000, 0x456000 | 0x2);         // PFN kept, present bit clear
    auto t1 = translate_va(0xfffff80000601234, cr3, mem.reader());
    REQUIRE(t1);
    CHECK(t1->state == PageState::Present);
    CHECK(t1->physical == 0x123234);
    auto t2 = translate_va(0xfffff88001205010, cr3, mem.reader());
    REQUIRE(t2);
    CHECK(t2->state == PageState::NotPresent);
    auto t3 = translate_va(0xfffff80000700000, cr3, mem.reader());
    REQUIRE(t3);
    CHECK(t3->state == PageState::Unmapped);
    auto t4 = translate_va(0x0000900000000000, cr3, mem.reader());
    REQUIRE(!t4);
    CHECK(!is_canonical(0x8000000000000000));
    CHECK(is_canonical(0xffff800000000000));
}

namespace {
// A fake image: PE header with an exception directory, one function with unwind codes.
struct FakeImage {
    uint64_t base = 0x140000000;
    std::map<uint64_t, uint8_t> bytes;
    void put(uint64_t a, const std::vector<uint8_t>& v) {
        for (size_t i = 0; i < v.size(); ++i) {
            bytes[a + i] = v[i];
        }
    }
    void put32(uint64_t a, uint32_t v) {
        put(a, {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
    }
    void put64(uint64_t a, uint64_t v) {
        put32(a, uint32_t(v));
        put32(a + 4, uint32_t(v >> 32));
    }
    UnwindMemory memory() {
        UnwindMemory m;
        m.read = [this](uint64_t a, uint32_t n) {
            std::vector<uint8_t> out;
            for (uint32_t i = 0; i < n; ++i) {
                auto it = bytes.find(a + i);
                if (it == bytes.end()) {
                    break;
                }
                out.push_back(it->second);
            }
            return out;
        };
        return m;
    }
};
} // namespace

TEST_CASE("unwind: push rbx; sub rsp,20h prolog, in the body and inside the prolog") {
    FakeImage im;
    for (uint64_t a = im.base; a < im.base + 0x400; ++a) {
        im.bytes[a] = 0;
    }
    im.put32(im.base + 0x3C, 0x80);
    // exception directory at DataDirectory[3]: RVA 0x300, size 12
    im.put32(im.base + 0x80 + 24 + 0x70 + 24, 0x300);
    im.put32(im.base + 0x80 + 24 + 0x70 + 28, 12);
    im.put32(im.base + 0x300, 0x1000); // function [0x1000, 0x1040)
    im.put32(im.base + 0x304, 0x1040);
    im.put32(im.base + 0x308, 0x320); // UNWIND_INFO
    // version 1, prolog 5 bytes, 2 codes: at 5: ALLOC_SMALL (0x20 -> info 3); at 1: PUSH rbx (3)
    im.put(im.base + 0x320, {0x01, 0x05, 0x02, 0x00, 0x05, 0x32, 0x01, 0x30});
    for (uint64_t a = 0x1000; a < 0x1040; ++a) {
        im.bytes[im.base + a] = 0x90;
    }
    protocol::CONTEXT ctx{};
    // In the body: rsp = frame - 0x20 - 8 (push) ; return address above that.
    const uint64_t frame_top = 0xfffff88000480000;
    ctx.Rsp = frame_top - 8 - 8 - 0x20;
    ctx.Rip = im.base + 0x1010;
    im.put64(ctx.Rsp + 0x20, 0xBBBB);      // saved rbx
    im.put64(ctx.Rsp + 0x28, 0xfffff80000601234); // return address
    for (uint64_t a = ctx.Rsp; a < ctx.Rsp + 0x30; a += 8) {
        if (im.bytes.find(a) == im.bytes.end()) {
            im.put64(a, 0);
        }
    }
    im.put64(ctx.Rsp + 0x20, 0xBBBB);
    im.put64(ctx.Rsp + 0x28, 0xfffff80000601234);
    auto f = unwind_frame(ctx, im.base, im.memory());
    REQUIRE(f);
    CHECK(f->return_address == 0xfffff80000601234);
    CHECK(f->caller_rsp == ctx.Rsp + 0x30);
    CHECK(!f->leaf);

    // Inside the prolog, after the push only (offset 1): the sub has not run yet.
    protocol::CONTEXT early = ctx;
    early.Rip = im.base + 0x1001;
    early.Rsp = ctx.Rsp + 0x20;
    auto g = unwind_frame(early, im.base, im.memory());
    REQUIRE(g);
    CHECK(g->return_address == 0xfffff80000601234);

    // No unwind data: a leaf, the return address is at [rsp].
    protocol::CONTEXT leaf = ctx;
    leaf.Rip = im.base + 0x2000;
    leaf.Rsp = ctx.Rsp + 0x28;
    auto h = unwind_frame(leaf, im.base, im.memory());
    REQUIRE(h);
    CHECK(h->leaf);
    CHECK(h->return_address == 0xfffff80000601234);
}

TEST_CASE("instruction decoding for p: calls and their length") {
    const uint8_t call_rel[] = {0xe8, 0x5b, 0xff, 0xff, 0xff};
    auto a = decode_instruction(call_rel);
    REQUIRE(a);
    CHECK(a->is_call);
    CHECK(a->length == 5);
    const uint8_t call_ind[] = {0x41, 0xff, 0xd7};
    auto b = decode_instruction(call_ind);
    REQUIRE(b);
    CHECK(b->is_call);
    CHECK(b->length == 3);
    const uint8_t mov[] = {0x48, 0x89, 0xc1};
    auto c = decode_instruction(mov);
    REQUIRE(c);
    CHECK(!c->is_call);
    const uint8_t ret[] = {0xc3};
    CHECK(decode_instruction(ret)->is_ret);
    const uint8_t junk[] = {0x0f, 0xff};
    auto d = decode_instruction(std::span<const uint8_t>(junk, 1));
    CHECK(!d);
}
