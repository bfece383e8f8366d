// Golden-output tests for cli/format/Format.h: whole strings compared with WinDbg listings
// (shared/reference/seed-digest.md §5 and the brief's listings).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/format/Format.h"

#include <doctest/doctest.h>

#include <map>
#include <sstream>

using namespace kdcart;
using namespace kdcart::cli;

namespace {

engine::MemoryBlock block_of(uint64_t address, std::vector<uint8_t> bytes) {
    engine::MemoryBlock b;
    b.address = address;
    b.valid.assign(bytes.size(), true);
    b.bytes = std::move(bytes);
    return b;
}

engine::MemoryBlock block_of_qwords(uint64_t address, const std::vector<uint64_t>& values) {
    std::vector<uint8_t> bytes;
    for (uint64_t v : values) {
        for (int i = 0; i < 8; ++i) {
            bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
        }
    }
    return block_of(address, bytes);
}

engine::MemoryBlock block_of_text(uint64_t address, std::string_view text) {
    return block_of(address, std::vector<uint8_t>(text.begin(), text.end()));
}

engine::MemoryBlock block_of_utf16(uint64_t address, std::u16string_view text) {
    std::vector<uint8_t> bytes;
    for (char16_t c : text) {
        bytes.push_back(static_cast<uint8_t>(c & 0xFF));
        bytes.push_back(static_cast<uint8_t>(c >> 8));
    }
    return block_of(address, bytes);
}

void make_unreadable(engine::MemoryBlock& b, size_t from, size_t to) {
    for (size_t i = from; i < to && i < b.bytes.size(); ++i) {
        b.bytes[i] = 0;
        b.valid[i] = false;
    }
}

std::vector<uint8_t> hex_to_bytes(std::string_view hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

// The x64 context of the seed's `.frame /r 2` listing (001:1151-1168).
protocol::CONTEXT seed_context() {
    protocol::CONTEXT c{};
    c.Rax = 0;
    c.Rbx = 0xfffffa804b729790;
    c.Rcx = 0xc4;
    c.Rdx = 0xc5;
    c.Rsi = 0xfffffa804a3b0000;
    c.Rdi = 0xfffff8000183ce80;
    c.Rip = 0xfffff80001b66b4e;
    c.Rsp = 0xfffff88005db1b50;
    c.Rbp = 0xfffffa804de8c290;
    c.R8 = 0xfffff88001345610;
    c.R9 = 0xffff;
    c.R10 = 0xfffff80001b7a640;
    c.R12 = 0x4de8c290;
    c.SegCs = 0x10;
    c.SegSs = 0x18;
    c.SegDs = 0x2b;
    c.SegEs = 0x2b;
    c.SegFs = 0x53;
    c.SegGs = 0x2b;
    c.EFlags = 0x282;
    return c;
}

} // namespace

TEST_CASE("format_address") {
    struct Case {
        uint64_t value;
        const char* text;
    };
    const Case cases[] = {
        {0xfffff80001e45ce0, "fffff800`01e45ce0"},
        {0, "00000000`00000000"},
        {0x7ff6eb572138, "00007ff6`eb572138"},
        {~uint64_t{0}, "ffffffff`ffffffff"},
    };
    for (const auto& c : cases) {
        CHECK(format_address(c.value) == c.text);
    }
}

TEST_CASE("format_masm_hex and format_displacement") {
    CHECK(format_masm_hex(0) == "0");
    CHECK(format_masm_hex(9) == "9");
    CHECK(format_masm_hex(0x10) == "10h");
    CHECK(format_masm_hex(0x2c) == "2Ch");
    CHECK(format_masm_hex(0xc0) == "0C0h");
    CHECK(format_masm_hex(0xfffffffffffffffe) == "0FFFFFFFFFFFFFFFEh");
    CHECK(format_displacement(0x1a) == "0x1a");
    CHECK(format_displacement(0xfffffffffffe3ae9) == "0xffffffff`fffe3ae9");
}

TEST_CASE("symbols") {
    CHECK(format_symbol({"nt", "KeBugCheckEx", 0, 0}) == "nt!KeBugCheckEx");
    CHECK(format_symbol({"nt", "KeBugCheckEx", 0, 0x1a}) == "nt!KeBugCheckEx+0x1a");
    CHECK(format_symbol({"nt", "", 0, 0x1234}) == "nt+0x1234");
    CHECK(format_symbol({"nt", "", 0, 0}) == "nt");
    CHECK(format_symbol({"nt", "PspExitThread", 0, 0xfffffffffffe3ae9}) ==
          "nt!PspExitThread+0xffffffff`fffe3ae9");
    CHECK(format_code_label({"nt", "RtlpBreakWithStatusInstruction", 0, 0}) ==
          "nt!RtlpBreakWithStatusInstruction:");
    CHECK(format_code_label({"ntdll", "NtTerminateProcess", 0, 0x12}) ==
          "ntdll!NtTerminateProcess+0x12:");
}

TEST_CASE("r: the x64 register block") {
    // The seed's listing with the r8/r9 alignment of real WinDbg. Its flags line says "pe" next
    // to efl=00000282, which has PF (bit 2) clear, so the listing contradicts itself; efl=282
    // prints "po" and efl=286 gives the seed's "pe" (second case).
    const char* expected_282 =
        "rax=0000000000000000 rbx=fffffa804b729790 rcx=00000000000000c4\n"
        "rdx=00000000000000c5 rsi=fffffa804a3b0000 rdi=fffff8000183ce80\n"
        "rip=fffff80001b66b4e rsp=fffff88005db1b50 rbp=fffffa804de8c290\n"
        " r8=fffff88001345610  r9=000000000000ffff r10=fffff80001b7a640\n"
        "r11=0000000000000000 r12=000000004de8c290 r13=0000000000000000\n"
        "r14=0000000000000000 r15=0000000000000000\n"
        "iopl=0         nv up ei ng nz na po nc\n"
        "cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b             efl=00000282\n";
    CHECK(format_registers(seed_context()) == expected_282);

    auto c = seed_context();
    c.EFlags = 0x286;
    const char* expected_286 =
        "rax=0000000000000000 rbx=fffffa804b729790 rcx=00000000000000c4\n"
        "rdx=00000000000000c5 rsi=fffffa804a3b0000 rdi=fffff8000183ce80\n"
        "rip=fffff80001b66b4e rsp=fffff88005db1b50 rbp=fffffa804de8c290\n"
        " r8=fffff88001345610  r9=000000000000ffff r10=fffff80001b7a640\n"
        "r11=0000000000000000 r12=000000004de8c290 r13=0000000000000000\n"
        "r14=0000000000000000 r15=0000000000000000\n"
        "iopl=0         nv up ei ng nz na pe nc\n"
        "cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b             efl=00000286\n";
    CHECK(format_registers(c) == expected_286);
}

TEST_CASE("format_flags") {
    struct Case {
        uint32_t efl;
        const char* text;
    };
    const Case cases[] = {
        {0x202, "nv up ei pl nz na po nc"}, // x86 seed 003:2091
        {0x002, "nv up di pl nz na po nc"}, // seed 003:2215 (interrupts off)
        {0x246, "nv up ei pl zr na pe nc"},
        {0xcd5, "ov dn di ng zr ac pe cy"},
    };
    for (const auto& c : cases) {
        CHECK(format_flags(c.efl) == c.text);
    }
    auto ctx = seed_context();
    ctx.EFlags = 0x3202; // iopl 3
    CHECK(format_registers(ctx).find("iopl=3         nv up ei pl nz na po nc\n") !=
          std::string::npos);
}

TEST_CASE("r <reg>: single registers") {
    struct Case {
        const char* name;
        uint64_t value;
        const char* text;
    };
    const Case cases[] = {
        {"rax", 5, "rax=0000000000000005"},
        {"RAX", 5, "rax=0000000000000005"},
        {"r11", 1, "r11=0000000000000001"},
        {"eax", 5, "eax=00000005"},
        {"ax", 0x1234, "ax=1234"},
        {"al", 5, "al=05"},
        {"r8d", 0xdeadbeef, "r8d=deadbeef"},
        {"cs", 0x10, "cs=0010"},
        {"efl", 0x282, "efl=00000282"},
        {"zf", 1, "zf=1"},
        {"iopl", 0, "iopl=0"},
        {"dr7", 0x400, "dr7=0000000000000400"},
    };
    for (const auto& c : cases) {
        CHECK(format_register(c.name, c.value) == c.text);
    }
}

TEST_CASE("register table: get") {
    protocol::CONTEXT c{};
    c.Rax = 0x1122334455667788;
    c.R8 = 0xa1a2a3a4a5a6a7a8;
    c.Rsi = 0x0102030405060708;
    c.EFlags = 0x3246;
    c.SegGs = 0x2b;
    c.Dr6 = 0xffff0ff0;
    struct Case {
        const char* name;
        uint64_t value;
    };
    const Case cases[] = {
        {"rax", 0x1122334455667788},
        {"eax", 0x55667788},
        {"ax", 0x7788},
        {"al", 0x88},
        {"ah", 0x77},
        {"r8", 0xa1a2a3a4a5a6a7a8},
        {"r8d", 0xa5a6a7a8},
        {"r8w", 0xa7a8},
        {"r8b", 0xa8},
        {"sil", 0x08},
        {"si", 0x0708},
        {"efl", 0x3246},
        {"eflags", 0x3246},
        {"zf", 1},
        {"cf", 0},
        {"pf", 1},
        {"if", 1},
        {"iopl", 3},
        {"gs", 0x2b},
        {"dr6", 0xffff0ff0},
        {"Eax", 0x55667788},
    };
    for (const auto& k : cases) {
        INFO(k.name);
        auto v = get_register(c, k.name);
        REQUIRE(v.has_value());
        CHECK(*v == k.value);
    }
    CHECK_FALSE(get_register(c, "xyz").has_value());
    CHECK_FALSE(get_register(c, "").has_value());
    CHECK_FALSE(find_register("rax2").has_value());
    CHECK(find_register("R15W")->name == "r15w");
    CHECK(find_register("R15W")->bits == 16);
}

TEST_CASE("register table: set merges like WinDbg") {
    protocol::CONTEXT c{};
    c.Rax = 0xffffffff12345678;
    REQUIRE(set_register(c, "eax", 5));
    CHECK(c.Rax == 0xffffffff00000005); // low 32 bits only, no zero-extension
    REQUIRE(set_register(c, "ah", 0x12));
    CHECK(c.Rax == 0xffffffff00001205);
    auto wide = set_register(c, "al", 0x100); // r al=100: wider than al
    REQUIRE(!wide);
    CHECK(wide.error().message == "Overflow error");
    CHECK(c.Rax == 0xffffffff00001205); // untouched
    REQUIRE(set_register(c, "al", ~uint64_t{0})); // r al=-1: a negative that fits
    CHECK(c.Rax == 0xffffffff000012ff);
    CHECK(!set_register(c, "ax", 0x10000));
    CHECK(!set_register(c, "eax", 0x100000000));
    REQUIRE(set_register(c, "eax", 0xffffffff80000000)); // -0x80000000 fits in 32 bits
    CHECK(!set_register(c, "eax", 0xfffffffe7fffffff));
    REQUIRE(set_register(c, "eax", 0x12ff));
    REQUIRE(set_register(c, "ax", 0xabcd));
    CHECK(c.Rax == 0xffffffff0000abcd);
    REQUIRE(set_register(c, "rax", 0));
    CHECK(c.Rax == 0);

    c.R11 = 0x1111111111111111;
    REQUIRE(set_register(c, "r11b", 0x22));
    CHECK(c.R11 == 0x1111111111111122);
    REQUIRE(set_register(c, "r11w", 0x3333));
    CHECK(c.R11 == 0x1111111111113333);

    c.EFlags = 0x202;
    REQUIRE(set_register(c, "zf", 1));
    CHECK(c.EFlags == 0x242);
    REQUIRE(set_register(c, "if", 0));
    CHECK(c.EFlags == 0x042);
    REQUIRE(set_register(c, "iopl", 3));
    CHECK(c.EFlags == 0x3042);
    REQUIRE(set_register(c, "efl", 0x246));
    CHECK(c.EFlags == 0x246);

    CHECK(!set_register(c, "cs", 0x10033)); // wider than a selector: an overflow
    REQUIRE(set_register(c, "cs", 0x33));
    CHECK(c.SegCs == 0x0033);
    REQUIRE(set_register(c, "rip", 0xfffff80001b66b4e));
    CHECK(c.Rip == 0xfffff80001b66b4e);
    REQUIRE(set_register(c, "dr7", 0x401));
    CHECK(c.Dr7 == 0x401);

    auto bad = set_register(c, "foo", 1);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == Errc::InvalidArgument);
    CHECK(bad.error().message == "Bad register error at 'foo'");
}

TEST_CASE("register_names covers the table") {
    auto names = register_names();
    CHECK(names.size() > 90);
    for (auto n : names) {
        CHECK(find_register(n).has_value());
    }
}

TEST_CASE("db") {
    auto b = block_of(0xfffff80001e45ce0, hex_to_bytes("4d5a90000300000004000000ffff0000"
                                                       "b8000000000000004000000000000000"
                                                       "0e1fba"));
    // The last line holds 3 bytes; its hex part is padded to the full 47 columns.
    const std::string expected =
        "fffff800`01e45ce0  4d 5a 90 00 03 00 00 00-04 00 00 00 ff ff 00 00  MZ..............\n"
        "fffff800`01e45cf0  b8 00 00 00 00 00 00 00-40 00 00 00 00 00 00 00  ........@.......\n"
        "fffff800`01e45d00  0e 1f ba" +
        std::string(39 + 2, ' ') + "...\n";
    CHECK(format_memory(DisplayKind::Bytes, b) == expected);
}

TEST_CASE("db: partial lines around the dash, unreadable bytes") {
    auto nine = block_of_text(0x1000, "ABCDEFGHI");
    CHECK(format_memory(DisplayKind::Bytes, nine) ==
          "00000000`00001000  41 42 43 44 45 46 47 48-49" + std::string(21 + 2, ' ') +
              "ABCDEFGHI\n");
    auto eight = block_of_text(0x1000, "ABCDEFGH");
    CHECK(format_memory(DisplayKind::Bytes, eight) ==
          "00000000`00001000  41 42 43 44 45 46 47 48" + std::string(24 + 2, ' ') + "ABCDEFGH\n");

    auto b = block_of(0xfffff80001e45ce0, hex_to_bytes("4d5a90000300000004000000ffff0000"));
    make_unreadable(b, 8, 16);
    CHECK(format_memory(DisplayKind::Bytes, b) ==
          "fffff800`01e45ce0  4d 5a 90 00 03 00 00 00-?? ?? ?? ?? ?? ?? ?? ??  MZ......????????\n");

    auto all_bad = block_of(0xfffff900c05e0000, std::vector<uint8_t>(16, 0));
    make_unreadable(all_bad, 0, 16);
    CHECK(format_memory(DisplayKind::Bytes, all_bad) ==
          "fffff900`c05e0000  ?? ?? ?? ?? ?? ?? ?? ??"
          "-?? ?? ?? ?? ?? ?? ?? ??  ????????????????\n");
    CHECK(format_memory(DisplayKind::Bytes, block_of(0x1000, {})) == "");
}

TEST_CASE("dw") {
    auto b = block_of(0xfffff80001e45ce0,
                      hex_to_bytes("4d5a90000300000004000000ffff0000b800000000000000"));
    CHECK(format_memory(DisplayKind::Words, b) ==
          "fffff800`01e45ce0  5a4d 0090 0003 0000 0004 0000 ffff 0000\n"
          "fffff800`01e45cf0  00b8 0000 0000 0000\n");
    make_unreadable(b, 2, 4);
    CHECK(format_memory(DisplayKind::Words, b).substr(0, 34) ==
          "fffff800`01e45ce0  5a4d ???? 0003 ");
}

TEST_CASE("dd / dc (seed 000:740, 001:174, 001:1379)") {
    auto dd = block_of(0x7ff9c81917e0, hex_to_bytes("07000000000000000000000000000000"
                                                    "01000000"));
    CHECK(format_memory(DisplayKind::Dwords, dd) ==
          "00007ff9`c81917e0  00000007 00000000 00000000 00000000\n"
          "00007ff9`c81917f0  00000001\n");

    auto dc = block_of(0xfffff80001e45ce0, hex_to_bytes("0000000038bd00000000000000000000"));
    CHECK(format_memory(DisplayKind::DwordsAscii, dc) ==
          "fffff800`01e45ce0  00000000 0000bd38 00000000 00000000  ....8...........\n");

    auto bad = block_of(0xfffff900c05e0000, std::vector<uint8_t>(32, 0));
    make_unreadable(bad, 0, 32);
    CHECK(format_memory(DisplayKind::Dwords, bad) ==
          "fffff900`c05e0000  ???????? ???????? ???????? ????????\n"
          "fffff900`c05e0010  ???????? ???????? ???????? ????????\n");
    CHECK(format_memory(DisplayKind::DwordsAscii, bad) ==
          "fffff900`c05e0000  ???????? ???????? ???????? ????????  ????????????????\n"
          "fffff900`c05e0010  ???????? ???????? ???????? ????????  ????????????????\n");

    // dc with a short last line: the ASCII column still lines up.
    auto short_dc = block_of_text(0x2000, "Hello, world");
    CHECK(format_memory(DisplayKind::DwordsAscii, short_dc) ==
          "00000000`00002000  6c6c6548 77202c6f 646c726f" + std::string(9 + 2, ' ') +
              "Hello, world\n");
}

TEST_CASE("dq / dp (seed 000:345-352)") {
    auto b = block_of_qwords(0x7ff6eb572138,
                             {0x7ff9cbf2a460, 0x7ff9cbeff020, 0x7ff9cbe97fd0, 0x7ff9cbe94770,
                              0x7ff9cbf863e0, 0x7ff9cbec17f0, 0x7ff9cbf2a940, 0x7ff9cbf2ded0,
                              0x7ff9cbe9a960, 0x7ff9cbea24f0, 0x7ff9cbf167a0, 0x7ff9cbf1aeb0, 0x0,
                              0x7ff9cbf1a950, 0x7ff9cbf1a9f0, 0x145000001000});
    const char* expected = "00007ff6`eb572138  00007ff9`cbf2a460 00007ff9`cbeff020\n"
                           "00007ff6`eb572148  00007ff9`cbe97fd0 00007ff9`cbe94770\n"
                           "00007ff6`eb572158  00007ff9`cbf863e0 00007ff9`cbec17f0\n"
                           "00007ff6`eb572168  00007ff9`cbf2a940 00007ff9`cbf2ded0\n"
                           "00007ff6`eb572178  00007ff9`cbe9a960 00007ff9`cbea24f0\n"
                           "00007ff6`eb572188  00007ff9`cbf167a0 00007ff9`cbf1aeb0\n"
                           "00007ff6`eb572198  00000000`00000000 00007ff9`cbf1a950\n"
                           "00007ff6`eb5721a8  00007ff9`cbf1a9f0 00001450`00001000\n";
    CHECK(format_memory(DisplayKind::Qwords, b) == expected);
    CHECK(format_memory(DisplayKind::Pointers, b) == expected);

    auto one = block_of_qwords(0xfffffa804b729830, {0xfffffa804a3b0060});
    CHECK(format_memory(DisplayKind::Qwords, one) == "fffffa80`4b729830  fffffa80`4a3b0060\n");

    auto bad = block_of_qwords(0x1000, {1, 2});
    make_unreadable(bad, 12, 13);
    CHECK(format_memory(DisplayKind::Qwords, bad) ==
          "00000000`00001000  00000000`00000001 ????????`????????\n");
}

TEST_CASE("display defaults") {
    CHECK(display_default_count(DisplayKind::Bytes) == 0x80);
    CHECK(display_default_count(DisplayKind::Words) == 0x40);
    CHECK(display_default_count(DisplayKind::Dwords) == 0x20);
    CHECK(display_default_count(DisplayKind::DwordsAscii) == 0x20);
    CHECK(display_default_count(DisplayKind::Qwords) == 0x10);
    CHECK(display_default_count(DisplayKind::Pointers) == 0x10);
    CHECK(display_default_count(DisplayKind::Ascii) == k_string_display_max_chars);
    CHECK(display_kind_from_command("dc") == DisplayKind::DwordsAscii);
    CHECK(display_kind_from_command("du") == DisplayKind::Unicode);
    CHECK_FALSE(display_kind_from_command("dx").has_value());
    CHECK(display_element_size(DisplayKind::Unicode) == 2);
}

TEST_CASE("du (seed 000:1052)") {
    auto b = block_of_utf16(0x14e4a4048e0, std::u16string(u"\\Windows") + u'\0' + u"junk");
    uint64_t next = 0;
    CHECK(format_string_display(DisplayKind::Unicode, b, &next) ==
          "0000014e`4a4048e0  \"\\Windows\"\n");
    CHECK(next == 0x14e4a4048e0 + 9 * 2);

    // Non-ASCII characters come out as UTF-8, controls as '.'.
    auto utf = block_of_utf16(0x1000, std::u16string(u"Gr\u00fc\u00dfe\n\U0001F600") + u'\0');
    CHECK(format_string_display(DisplayKind::Unicode, utf) ==
          "00000000`00001000  \"Gr\xc3\xbc\xc3\x9f"
          "e.\xf0\x9f\x98\x80\"\n");
}

TEST_CASE("da: NUL, wrapping every 32 characters, unreadable memory") {
    std::string text = "This program cannot be run in DOS mode.\r\r\n$";
    text += '\0';
    text += "more";
    auto b = block_of_text(0xfffff800a6a0904e, text);
    uint64_t next = 0;
    CHECK(format_string_display(DisplayKind::Ascii, b, &next) ==
          "fffff800`a6a0904e  \"This program cannot be run in DO\"\n"
          "fffff800`a6a0906e  \"S mode....$\"\n");
    CHECK(next == 0xfffff800a6a0904e + 44);
    CHECK(format_memory(DisplayKind::Ascii, b) == format_string_display(DisplayKind::Ascii, b));

    // Exactly 32 characters and then a NUL: one line.
    auto exact = block_of_text(0x1000, std::string(32, 'a') + std::string(1, '\0'));
    CHECK(format_string_display(DisplayKind::Ascii, exact) ==
          "00000000`00001000  \"" + std::string(32, 'a') + "\"\n");

    // No NUL within the block: the display ends with the block.
    auto open = block_of_text(0x1000, "abc");
    CHECK(format_string_display(DisplayKind::Ascii, open, &next) == "00000000`00001000  \"abc\"\n");
    CHECK(next == 0x1003);

    auto empty = block_of_text(0x1000, std::string(1, '\0'));
    CHECK(format_string_display(DisplayKind::Ascii, empty) == "00000000`00001000  \"\"\n");

    // The string runs into an unreadable page: it ends there.
    auto cut = block_of_text(0x1ffd, "abcdef");
    make_unreadable(cut, 3, 6);
    CHECK(format_string_display(DisplayKind::Ascii, cut) == "00000000`00001ffd  \"abc\"\n");

    auto bad = block_of(0x10, std::vector<uint8_t>(0x200, 0));
    make_unreadable(bad, 0, 0x200);
    CHECK(format_string_display(DisplayKind::Ascii, bad) ==
          "00000000`00000010  \"" + std::string(32, '?') + "\"\n");
    auto bad_u = block_of(0x10, std::vector<uint8_t>(8, 0));
    make_unreadable(bad_u, 0, 8);
    CHECK(format_string_display(DisplayKind::Unicode, bad_u) == "00000000`00000010  \"????\"\n");
}

TEST_CASE("lm") {
    std::vector<engine::Module> mods(2);
    mods[0].name = "nt";
    mods[0].file_name = "ntoskrnl.exe";
    mods[0].base = 0xfffff800a6a09000;
    mods[0].size = 0xfffff800a735c000 - 0xfffff800a6a09000;
    mods[0].symbols = engine::Module::SymbolState::Deferred;
    mods[1].name = "kdtest";
    mods[1].file_name = "kdtest.sys";
    mods[1].base = 0xfffff800a6e00000;
    mods[1].size = 0x12000;
    mods[1].symbols = engine::Module::SymbolState::Exports;
    CHECK(format_lm(mods) ==
          "start             end                 module name\n"
          "fffff800`a6a09000 fffff800`a735c000   nt         (deferred)\n"
          "fffff800`a6e00000 fffff800`a6e12000   kdtest     (export symbols)       kdtest.sys\n");

    std::vector<engine::Module> more(2);
    more[0].name = "dump_storport";
    more[0].base = 0xfffff8089f640000;
    more[0].size = 0xf000;
    more[0].symbols = engine::Module::SymbolState::None;
    more[1].name = "csrss";
    more[1].base = 0x7ff6eb570000;
    more[1].size = 0x7000;
    CHECK(format_lm(more) == "start             end                 module name\n"
                             "fffff808`9f640000 fffff808`9f64f000   dump_storport (no symbols)\n"
                             "00007ff6`eb570000 00007ff6`eb577000   csrss      (deferred)\n");
    CHECK(format_lm({}) == "start             end                 module name\n");
}

namespace {

engine::TargetInfo target_19041() {
    engine::TargetInfo t;
    t.version.MajorVersion = 0x0F;
    t.version.MinorVersion = 19041;
    t.version.Flags = protocol::DBGKD_VERS_FLAG_MP | protocol::DBGKD_VERS_FLAG_DATA |
                      protocol::DBGKD_VERS_FLAG_PTR64;
    t.version.MachineType = protocol::IMAGE_FILE_MACHINE_AMD64;
    t.version.KernBase = 0xfffff80012600000;
    t.version.PsLoadedModuleList = 0xfffff8001322a2d0;
    t.num_processors = 2;
    t.build_lab = "19041.1.amd64fre.vb_release.191206-1406";
    t.nt_major = 10;
    return t;
}

} // namespace

TEST_CASE("vertarget") {
    VersionExtras extras;
    extras.product_type = 1;
    extras.suite_mask = 0x110;
    CHECK(format_vertarget(target_19041(), "", extras) ==
          "Windows 10 Kernel Version 19041 MP (2 procs) Free x64\n"
          "Product: WinNt, suite: TerminalServer SingleUserTS\n"
          "Edition build lab: 19041.1.amd64fre.vb_release.191206-1406\n"
          "Kernel base = 0xfffff800`12600000 PsLoadedModuleList = 0xfffff800`1322a2d0\n");

    // Unknown data: no Product line, no build lab; a machine name when there is one.
    auto t = target_19041();
    t.build_lab.clear();
    t.num_processors = 1;
    CHECK(format_vertarget(t, "CRASHBOX") ==
          "Windows 10 Kernel Version 19041 MP (1 procs) Free x64\n"
          "Machine Name: CRASHBOX\n"
          "Kernel base = 0xfffff800`12600000 PsLoadedModuleList = 0xfffff800`1322a2d0\n");

    // A uniprocessor kernel; a checked build; nt_major unknown (name from the build number).
    t.version.Flags = protocol::DBGKD_VERS_FLAG_PTR64;
    t.version.MajorVersion = 0x0C;
    t.version.MinorVersion = 7601;
    t.nt_major = 0;
    VersionExtras sp;
    sp.service_pack = "Service Pack 1";
    CHECK(format_vertarget(t, "", sp) ==
          "Windows 7 Kernel Version 7601 (Service Pack 1) UP Checked x64\n"
          "Kernel base = 0xfffff800`12600000 PsLoadedModuleList = 0xfffff800`1322a2d0\n");
}

TEST_CASE("windows_name") {
    engine::TargetInfo t;
    struct Case {
        uint32_t major, minor;
        uint16_t build;
        const char* name;
    };
    const Case cases[] = {
        {10, 0, 22621, "Windows 10"}, {6, 3, 9600, "Windows 8.1"},   {6, 2, 9200, "Windows 8"},
        {6, 1, 7601, "Windows 7"},    {0, 0, 26100, "Windows 10"},   {0, 0, 9600, "Windows 8.1"},
        {0, 0, 7600, "Windows 7"},    {0, 0, 6002, "Windows Vista"}, {0, 0, 1234, "Windows"},
    };
    for (const auto& c : cases) {
        t.nt_major = c.major;
        t.nt_minor = c.minor;
        t.version.MinorVersion = c.build;
        CHECK(windows_name(t) == c.name);
    }
}

TEST_CASE("version") {
    VersionExtras extras;
    extras.product_type = 1;
    extras.suite_mask = 0x110;
    CHECK(format_version(target_19041(), "", "kdcart 0.1.0", "kdcart -k com:port=/dev/ttyS0",
                         extras) ==
          "Windows 10 Kernel Version 19041 MP (2 procs) Free x64\n"
          "Product: WinNt, suite: TerminalServer SingleUserTS\n"
          "Edition build lab: 19041.1.amd64fre.vb_release.191206-1406\n"
          "Kernel base = 0xfffff800`12600000 PsLoadedModuleList = 0xfffff800`1322a2d0\n"
          "kdcart 0.1.0\n"
          "\n"
          "Command line: 'kdcart -k com:port=/dev/ttyS0'\n");
}

TEST_CASE("break-in banner") {
    engine::StopEvent ev;
    ev.kind = engine::StopKind::BreakIn;
    const char* expected =
        "Break instruction exception - code 80000003 (first chance)\n"
        "*******************************************************************************\n"
        "*                                                                             *\n"
        "*   You are seeing this message because you pressed either                    *\n"
        "*       CTRL+C (if you run console kernel debugger) or,                       *\n"
        "*       CTRL+BREAK (if you run GUI kernel debugger),                          *\n"
        "*   on your debugger machine's keyboard.                                      *\n"
        "*                                                                             *\n"
        "*                   THIS IS NOT A BUG OR A SYSTEM CRASH                       *\n"
        "*                                                                             *\n"
        "* If you did not intend to break into the debugger, press the \"g\" key, then   *\n"
        "* press the \"Enter\" key now.  This message might immediately reappear.  If it *\n"
        "* does, press \"g\" and \"Enter\" again.                                          *\n"
        "*                                                                             *\n"
        "*******************************************************************************\n";
    CHECK(format_stop_event(ev) == expected);
    // Every line of the box is 79 characters wide.
    std::istringstream lines(format_break_in_banner());
    std::string line;
    int count = 0;
    while (std::getline(lines, line)) {
        CHECK(line.size() == 79);
        ++count;
    }
    CHECK(count == 14);
}

TEST_CASE("exception lines") {
    struct Case {
        uint32_t code;
        bool first;
        const char* text;
    };
    const Case cases[] = {
        {0x80000003, true, "Break instruction exception - code 80000003 (first chance)"},
        {0x80000004, true, "Single step exception - code 80000004 (first chance)"},
        {0xc0000005, false, "Access violation - code c0000005 (!!! second chance !!!)"},
        {0xc0000094, true, "Integer divide-by-zero - code c0000094 (first chance)"},
        {0xc000001d, true, "Illegal instruction - code c000001d (first chance)"},
        {0xc0000096, true, "Privileged instruction - code c0000096 (first chance)"},
        {0xc00000fd, false, "Stack overflow - code c00000fd (!!! second chance !!!)"},
        {0xc0000409, false,
         "Security check failure or stack buffer overrun - code c0000409 "
         "(!!! second chance !!!)"},
        {0xe06d7363, true, "C++ EH exception - code e06d7363 (first chance)"},
        {0x12345678, true, "Unknown exception - code 12345678 (first chance)"},
    };
    for (const auto& c : cases) {
        CHECK(format_exception_line(c.code, c.first) == c.text);
    }
    CHECK(format_breakpoint_hit(4) == "Breakpoint 4 hit");
}

TEST_CASE("stop events") {
    engine::StopEvent ev;
    ev.kind = engine::StopKind::Exception;
    ev.exception_code = 0xc0000094;
    ev.first_chance = true;
    CHECK(format_stop_event(ev) == "Integer divide-by-zero - code c0000094 (first chance)\n"
                                   "First chance exceptions are reported before any exception "
                                   "handling.\n"
                                   "This exception may be expected and handled.\n");
    ev.exception_code = 0xc0000005;
    ev.first_chance = false;
    CHECK(format_stop_event(ev) == "Access violation - code c0000005 (!!! second chance !!!)\n");
    ev.kind = engine::StopKind::Breakpoint;
    ev.exception_code = 0x80000003;
    ev.first_chance = true;
    CHECK(format_stop_event(ev) == "Break instruction exception - code 80000003 (first chance)\n");
    ev.kind = engine::StopKind::SingleStep;
    ev.exception_code = 0;
    CHECK(format_stop_event(ev) == "Single step exception - code 80000004 (first chance)\n");
    ev.kind = engine::StopKind::LoadSymbols;
    CHECK(format_stop_event(ev) == "");
}

namespace {

Symbolizer symbols_of(std::map<uint64_t, std::string> table) {
    return [table = std::move(table)](uint64_t a) -> std::optional<std::string> {
        auto it = table.find(a);
        if (it == table.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

} // namespace

TEST_CASE("u: one instruction") {
    const Symbolizer syms = symbols_of({
        {0x7ff9cbf2a475, "ntdll!NtTerminateProcess+0x15"},
        {0x7ff6eb572128, "csrss!_imp_NtSetInformationProcess"},
        {0x7ff6eb5716f8, "csrss!main+0x3c8"},
        {0x7ff9c81917e0, "CSRSRV!CsrInitFailReason"},
        {0x7ff9c8191660, "CSRSRV!CsrObjectDirectory"},
        {0x7ffe0308, "SharedUserData+0x308"},
        {0xfffff80001b66000, "nt!KeBugCheckEx"},
    });
    struct Case {
        uint64_t address;
        const char* hex;
        const char* line;
        bool use_symbols;
    };
    const Case cases[] = {
        // the brief's table
        {0x7ff6eb571330, "48895c2408",
         "00007ff6`eb571330 48895c2408      mov     qword ptr [rsp+8],rbx", false},
        {0x7ff6eb571335, "57", "00007ff6`eb571335 57              push    rdi", false},
        {0xfffff80001b66b40, "4883ec28", "fffff800`01b66b40 4883ec28        sub     rsp,28h",
         false},
        {0xfffff80001b66b4e, "cc", "fffff800`01b66b4e cc              int     3", false},
        {0x7ff9cbf2a474, "c3", "00007ff9`cbf2a474 c3              ret", false},
        {0x7ff6eb5713de, "41b904000000", "00007ff6`eb5713de 41b904000000    mov     r9d,4", false},
        // more lines of the seed's listings (000:269-330)
        {0x7ff9cbf2a460, "4c8bd1", "00007ff9`cbf2a460 4c8bd1          mov     r10,rcx", false},
        {0x7ff9cbf2a463, "b82c000000", "00007ff9`cbf2a463 b82c000000      mov     eax,2Ch", false},
        {0x7ff9cbf2a468, "f604250803fe7f01",
         "00007ff9`cbf2a468 f604250803fe7f01 test    byte ptr [SharedUserData+0x308 "
         "(00000000`7ffe0308)],1",
         true},
        {0x7ff9cbf2a470, "7503",
         "00007ff9`cbf2a470 7503            jne     ntdll!NtTerminateProcess+0x15 "
         "(00007ff9`cbf2a475)",
         true},
        {0x7ff9cbf2a472, "0f05", "00007ff9`cbf2a472 0f05            syscall", false},
        {0x7ff9cbf2a475, "cd2e", "00007ff9`cbf2a475 cd2e            int     2Eh", false},
        {0x7ff6eb571340, "c744245001000000",
         "00007ff6`eb571340 c744245001000000 mov     dword ptr [rsp+50h],1", false},
        {0x7ff6eb57135a, "ff15c80d0000",
         "00007ff6`eb57135a ff15c80d0000    call    qword ptr [csrss!_imp_NtSetInformationProcess "
         "(00007ff6`eb572128)]",
         true},
        {0x7ff6eb5713d8, "0f881a030000",
         "00007ff6`eb5713d8 0f881a030000    js      csrss!main+0x3c8 (00007ff6`eb5716f8)", true},
        {0x7ff6eb571401, "48c7c1feffffff",
         "00007ff6`eb571401 48c7c1feffffff  mov     rcx,0FFFFFFFFFFFFFFFEh", false},
        {0xfffff800a6bc26c0, "0f01f8", "fffff800`a6bc26c0 0f01f8          swapgs", false},
        {0xfffff800a6bc26c3, "654889242510000000",
         "fffff800`a6bc26c3 654889242510000000 mov   qword ptr gs:[10h],rsp", false},
        {0xfffff800a6bc26cc, "65488b2425a8010000",
         "fffff800`a6bc26cc 65488b2425a8010000 mov   rsp,qword ptr gs:[1A8h]", false},
        {0xfffff800a6bc26d5, "6a2b", "fffff800`a6bc26d5 6a2b            push    2Bh", false},
        {0xfffff800a6bc26d7, "65ff342510000000",
         "fffff800`a6bc26d7 65ff342510000000 push    qword ptr gs:[10h]", false},
        {0xfffff800a6bc26df, "4153", "fffff800`a6bc26df 4153            push    r11", false},
        {0xfffff800a6bc26ec, "4881ec58010000", "fffff800`a6bc26ec 4881ec58010000  sub     rsp,158h",
         false},
        {0xfffff800a6bc26f3, "488dac2480000000",
         "fffff800`a6bc26f3 488dac2480000000 lea     rbp,[rsp+80h]", false},
        {0xfffff800a6bc26fb, "48899dc0000000",
         "fffff800`a6bc26fb 48899dc0000000  mov     qword ptr [rbp+0C0h],rbx", false},
        {0xfffff800a6bc2710, "488945b0",
         "fffff800`a6bc2710 488945b0        mov     qword ptr [rbp-50h],rax", false},
        {0xfffff800a6bc273c, "650fb604257b020000",
         "fffff800`a6bc273c 650fb604257b020000 movzx eax,byte ptr gs:[27Bh]", false},
        {0xfffff800a6bc2745, "653804257a020000",
         "fffff800`a6bc2745 653804257a020000 cmp     byte ptr gs:[27Ah],al", false},
        {0x7ff9c81836e3, "c705f3e0000001000000",
         "00007ff9`c81836e3 c705f3e0000001000000 mov dword ptr [CSRSRV!CsrInitFailReason "
         "(00007ff9`c81917e0)],1",
         true},
        {0x7ff9c8183e08, "48c7054dd8000000000000",
         "00007ff9`c8183e08 48c7054dd8000000000000 mov qword ptr [CSRSRV!CsrObjectDirectory "
         "(00007ff9`c8191660)],0",
         true},
        {0x7ff9c8183609, "49899cc188000000",
         "00007ff9`c8183609 49899cc188000000 mov     qword ptr [r9+rax*8+88h],rbx", false},
        {0x7ff9c81835bb, "81c200000c00", "00007ff9`c81835bb 81c200000c00    add     edx,0C0000h",
         false},
        // seed 001:1544
        {0x7f94237b90e, "49f7f3", "000007f9`4237b90e 49f7f3          div     rax,r11", false},
        // seed 001:1459
        {0x7f94237b9b0, "4055", "000007f9`4237b9b0 4055            push    rbp", false},
        // branch targets: plain address without a symbol, "sym (address)" with one
        {0xfffff80001b66b49, "e8b2f4ffff",
         "fffff800`01b66b49 e8b2f4ffff      call    fffff800`01b66000", false},
        {0xfffff80001b66b49, "e8b2f4ffff",
         "fffff800`01b66b49 e8b2f4ffff      call    nt!KeBugCheckEx (fffff800`01b66000)", true},
        {0xfffff80001b66b49, "ebfe", "fffff800`01b66b49 ebfe            jmp     fffff800`01b66b49",
         false},
        // RIP-relative without a symbol; condition-code names as WinDbg spells them
        {0x7ff6eb57135a, "ff15c80d0000",
         "00007ff6`eb57135a ff15c80d0000    call    qword ptr [00007ff6`eb572128]", false},
        {0x1000, "7405", "00000000`00001000 7405            je      00000000`00001007", false},
        {0x1000, "0f94c0", "00000000`00001000 0f94c0          sete    al", false},
        {0x1000, "480f45c1", "00000000`00001000 480f45c1        cmovne  rax,rcx", false},
        {0x1000, "0f1f440000", "00000000`00001000 0f1f440000      nop     dword ptr [rax+rax]",
         false},
        {0x1000, "f3ab", "00000000`00001000 f3ab            rep stos dword ptr [rdi]", false},
        {0x1000, "f0480fb111", "00000000`00001000 f0480fb111      lock cmpxchg qword ptr [rcx],rdx",
         false},
        {0x1000, "4863c1", "00000000`00001000 4863c1          movsxd  rax,ecx", false},
        {0x1000, "4883c480", "00000000`00001000 4883c480        add     rsp,0FFFFFFFFFFFFFF80h",
         false},
        {0x1000, "0f0b", "00000000`00001000 0f0b            ud2", false},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto bytes = hex_to_bytes(c.hex);
        // Trailing bytes after the instruction must not be consumed.
        auto padded = bytes;
        padded.push_back(0x90);
        padded.push_back(0x90);
        size_t len = 0;
        std::string got =
            format_instruction(c.address, padded, &len, c.use_symbols ? syms : Symbolizer{});
        CHECK(got == c.line);
        CHECK(len == bytes.size());
    }
}

TEST_CASE("u: bytes that are not an instruction") {
    size_t len = 0;
    CHECK(format_instruction(0xfffff80001b66b4e, std::vector<uint8_t>{}, &len) ==
          "fffff800`01b66b4e ??              ???");
    CHECK(len == 1);
    // A lone REX prefix at the end of readable memory does not decode.
    CHECK(format_instruction(0x1000, std::vector<uint8_t>{0x48}, &len) ==
          "00000000`00001000 48              ???");
    CHECK(len == 1);
    CHECK(format_instruction(0x1000, std::vector<uint8_t>{0x06}, &len) ==
          "00000000`00001000 06              ???"); // push es: invalid in 64-bit mode
    CHECK(len == 1);
}
