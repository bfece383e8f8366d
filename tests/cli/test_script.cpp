// WinDbg command programs (cli/Script), aliases (cli/Aliases), .printf / .formats text
// (cli/ScriptFormat) and the unknown-command answers (cli/CommandCatalog), against a fake host
// that records the commands it is given and evaluates a small expression language.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/Aliases.h"
#include "cli/CommandCatalog.h"
#include "cli/Script.h"
#include "cli/ScriptFormat.h"
#include "engine/Expression.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace kdcart;
using namespace kdcart::cli;

namespace {

// Runs commands by recording them; `r $tN = expr` and `r $tN` work on real pseudo-registers so
// loops terminate; expressions go through the engine's MASM evaluator with $t0..$t9.
class FakeHost : public ScriptHost {
  public:
    std::vector<std::string> commands;
    std::vector<std::string> errors;
    std::vector<std::string> echoed;
    std::map<std::string, std::string> files;
    std::map<std::string, uint64_t> t;
    int interrupt_after = -1; // script_interrupted() answers true once this many calls passed
    bool quit_on_q = true;

    ScriptFlow script_command(std::string_view command) override {
        std::string c(command);
        commands.push_back(c);
        if (c == "q" && quit_on_q) {
            return ScriptFlow::Quit;
        }
        if (c == "g") {
            return ScriptFlow::Abort; // as a breakpoint's command string that resumed
        }
        if (c.rfind("r @$t", 0) == 0) {
            c.erase(2, 1);
        }
        if (c.rfind("r $t", 0) == 0) {
            auto eq = c.find('=');
            std::string name = c.substr(2, (eq == std::string::npos ? c.size() : eq) - 2);
            while (!name.empty() && name.back() == ' ') {
                name.pop_back();
            }
            if (eq != std::string::npos) {
                auto v = script_evaluate(c.substr(eq + 1));
                if (!v) {
                    errors.push_back(v.error().message);
                } else {
                    t[name] = *v;
                }
            }
        }
        return ScriptFlow::Normal;
    }
    engine::ExpressionCallbacks callbacks() {
        engine::ExpressionCallbacks cb;
        cb.register_value = [this](std::string_view name) -> std::optional<uint64_t> {
            auto it = t.find(std::string(name));
            if (it != t.end()) {
                return it->second;
            }
            if (name.substr(0, 2) == "$t") {
                return 0;
            }
            return std::nullopt;
        };
        return cb;
    }
    Result<uint64_t> script_evaluate(std::string_view expression) override {
        return engine::evaluate_expression(expression, callbacks());
    }
    Result<uint64_t> script_evaluate_prefix(std::string_view text, size_t* consumed) override {
        return engine::evaluate_expression_prefix(text, callbacks(), consumed);
    }
    void script_error(std::string_view message) override { errors.emplace_back(message); }
    bool script_interrupted() override { return interrupt_after >= 0 && interrupt_after-- == 0; }
    Result<std::string> script_read_file(const std::string& path) override {
        auto it = files.find(path);
        if (it == files.end()) {
            return make_error(Errc::NotFound, "Couldn't open script file '" + path + "'");
        }
        return it->second;
    }
    void script_echo(std::string_view command) override { echoed.emplace_back(command); }
};

struct Fixture {
    FakeHost host;
    Aliases aliases;
    ScriptEngine engine{host, aliases};
};

} // namespace

TEST_CASE("statements: ';' outside quotes, comments, as takes the rest of the line") {
    Fixture f;
    CHECK(f.engine.run_block("r; db nt L4 ;; .echo \"a;b\" ; $$ a comment; k") ==
          ScriptFlow::Normal);
    CHECK(f.host.commands == std::vector<std::string>{"r", "db nt L4", ".echo \"a;b\"", "k"});
    f.host.commands.clear();
    f.engine.run_block("lm; * the rest ; is a comment");
    CHECK(f.host.commands == std::vector<std::string>{"lm"});
    f.host.commands.clear();
    f.engine.run_block("as Cmd r rax; r rbx");
    CHECK(f.host.commands == std::vector<std::string>{"as Cmd r rax; r rbx"});
    f.host.commands.clear();
    f.engine.run_block("aS Cmd \"r rax; r rbx\"; k");
    CHECK(f.host.commands == std::vector<std::string>{"aS Cmd \"r rax; r rbx\"", "k"});
    f.host.commands.clear();
    // A bp command string with escaped quotes stays one command.
    f.engine.run_block(R"(bp f ".printf \"x;y\\n\"; g"; bl)");
    CHECK(f.host.commands == std::vector<std::string>{R"(bp f ".printf \"x;y\\n\"; g")", "bl"});
}

TEST_CASE(".if / .elsif / .else, with blocks across ';' as $$>< makes them") {
    Fixture f;
    f.host.t["$t0"] = 2;
    f.engine.run_block(".if (@$t0 == 1) { a } .elsif (@$t0 == 2) { b; c } .else { d }; e");
    CHECK(f.host.commands == std::vector<std::string>{"b", "c", "e"});
    f.host.commands.clear();
    f.engine.run_block(".if (@$t0 > 5);{;x;};.else;{;y;};z");
    CHECK(f.host.commands == std::vector<std::string>{"y", "z"});
    f.host.commands.clear();
    f.engine.run_block(".if (0) { x }");
    CHECK(f.host.commands.empty());
    // Nested blocks and braces in strings.
    f.engine.run_block(".if (1) { .if (1) { .echo \"}\" } }");
    CHECK(f.host.commands == std::vector<std::string>{".echo \"}\""});
}

TEST_CASE("loops: .for, .while, .do, .break, .continue") {
    Fixture f;
    f.engine.run_block(".for (r $t0 = 0; @$t0 < 3; r $t0 = @$t0 + 1; r $t1 = @$t1 + 2) { x }");
    CHECK(f.host.t["$t0"] == 3);
    CHECK(f.host.t["$t1"] == 6);
    CHECK(std::count(f.host.commands.begin(), f.host.commands.end(), "x") == 3);

    Fixture w;
    w.engine.run_block(".while (@$t0 < 10) { r $t0 = @$t0 + 1; .if (@$t0 == 2) { .continue }; "
                       ".if (@$t0 == 5) { .break }; seen }");
    CHECK(w.host.t["$t0"] == 5);
    CHECK(std::count(w.host.commands.begin(), w.host.commands.end(), "seen") == 3);

    Fixture d;
    d.engine.run_block(".do { r $t0 = @$t0 + 1 } (@$t0 < 4); after");
    CHECK(d.host.t["$t0"] == 4);
    CHECK(d.host.commands.back() == "after");
    // The body of .do runs once even when the condition is false.
    Fixture d2;
    d2.engine.run_block(".do { once } (0)");
    CHECK(d2.host.commands == std::vector<std::string>{"once"});
}

TEST_CASE("Ctrl+C stops a loop; a resumed target stops the program; q quits") {
    Fixture f;
    f.host.interrupt_after = 3;
    CHECK(f.engine.run_block(".while (1) { x }; never") == ScriptFlow::Abort);
    CHECK(f.host.errors.back() == "^C: .while interrupted");
    CHECK(std::find(f.host.commands.begin(), f.host.commands.end(), "never") ==
          f.host.commands.end());

    Fixture g;
    CHECK(g.engine.run_block("r rcx; g; r rdx") == ScriptFlow::Abort);
    CHECK(g.host.commands == std::vector<std::string>{"r rcx", "g"});

    Fixture q;
    CHECK(q.engine.run_block(".for (;;) { q }") == ScriptFlow::Quit);
}

TEST_CASE("j: quoted or bare command strings, the rest of the line after Command2 ignored") {
    Fixture f;
    f.host.t["$t0"] = 1;
    f.engine.run_block("j (@$t0 = 1) 'r rax; r rbx' ; 'r rcx'");
    CHECK(f.host.commands == std::vector<std::string>{"r rax", "r rbx"});
    f.host.commands.clear();
    f.engine.run_block("j @$t0 == 0 r rax; r rcx; ignored");
    CHECK(f.host.commands == std::vector<std::string>{"r rcx"});
    f.host.commands.clear();
    f.engine.run_block("j (@$t0 != 1) ''; 'gc'");
    CHECK(f.host.commands == std::vector<std::string>{"gc"});
    f.host.commands.clear();
    f.engine.run_block("j (bogus) 'a'; 'b'");
    CHECK(f.host.commands.empty());
    CHECK(f.host.errors.back() == "Couldn't resolve error at 'bogus) 'a'; 'b''");
}

TEST_CASE("syntax errors are reported and stop the program") {
    Fixture f;
    CHECK(f.engine.run_block(".if (1) x; y") == ScriptFlow::Abort);
    CHECK(f.host.errors.back().find("^ Syntax error in '.if (1) x; y'") != std::string::npos);
    CHECK(f.engine.run_block(".else { x }") == ScriptFlow::Abort);
    CHECK(f.engine.run_block(".for (r $t0 = 0) { x }") == ScriptFlow::Abort);
    CHECK(f.engine.run_block(".while (1) { x ") == ScriptFlow::Abort);
    CHECK(f.engine.run_block("{ x }") == ScriptFlow::Abort);
    CHECK(f.host.commands.empty());
    // A condition that does not evaluate: the evaluator's message.
    CHECK(f.engine.run_block(".if (nosuch) { x }") == ScriptFlow::Abort);
    CHECK(f.host.errors.back() == "Couldn't resolve error at 'nosuch'");
}

TEST_CASE("aliases: ${}, switches, standalone names, fixed-name $uN") {
    Aliases a;
    a.set("Foo", "0x10");
    a.set("Cmd", "r rax; r rbx");
    a.set_fixed(0, "nt!KeBugCheckEx");
    CHECK(a.expand("? Foo + 1") == "? 0x10 + 1");
    CHECK(a.expand("? Foo+1") == "? Foo+1"); // not standing alone
    CHECK(a.expand("? ${Foo}+1") == "? 0x10+1");
    CHECK(a.expand(".echo \"Foo\"") == ".echo \"0x10\"");
    CHECK(a.expand("Cmd; k") == "r rax; r rbx; k");
    CHECK(a.expand("${/d:Foo} ${/d:Bar} ${/f:Bar}. ${/n:Foo} ${/n:Bar} ${/v:Foo} ${Bar}") ==
          "1 0 . Foo ${/n:Bar} ${/v:Foo} ${Bar}");
    CHECK(a.expand("u $u0+4") == "u nt!KeBugCheckEx+4");
    CHECK(a.expand("bp $u0 \"r Foo\"") == "bp nt!KeBugCheckEx \"r 0x10\"");
    // Lines that begin with as/aS/ad/al are left alone; a ';' first changes that.
    CHECK(a.expand("as x Foo") == "as x Foo");
    CHECK(a.expand("ad Foo; r Foo") == "ad Foo; r Foo");
    CHECK(a.expand(";as x Foo") == ";as x 0x10");
    // Nested blocks are replaced when they are entered, not before.
    CHECK(a.expand(".block { .echo Foo ${Foo} }; .echo Foo") ==
          ".block { .echo Foo ${Foo} }; .echo 0x10");
    CHECK(strip_verbatim("${/v:Foo}") == "Foo");
    CHECK(strip_verbatim("Foo") == "Foo");
}

TEST_CASE("an alias set in a block is seen by a later .block, as in WinDbg") {
    Fixture f;
    // The host's `as` is played by the test: define the alias between two blocks.
    f.aliases.set("v", "old");
    f.engine.run_block(".echo v; .block { .echo v }");
    CHECK(f.host.commands == std::vector<std::string>{".echo old", ".echo old"});
    f.host.commands.clear();
    // Each entry of a loop body replaces again.
    f.aliases.set("n", "1");
    struct Recorder : FakeHost {};
    f.engine.run_block(".for (r $t0 = 0; @$t0 < 2; r $t0 = @$t0 + 1) { .echo n }");
    CHECK(f.host.commands == std::vector<std::string>{"r $t0 = 0", ".echo 1", "r $t0 = @$t0 + 1",
                                                      ".echo 1", "r $t0 = @$t0 + 1"});
}

TEST_CASE("script files: $$>< condensed and echoed, $$>a< with arguments, $$< by line") {
    Fixture f;
    f.host.files["/s/a.wbs"] = "$$ comment\r\n.if (1)\n{\n  x\n}\n.else\n{\n  y\n}\nz\n";
    f.engine.run_block("$$><  /s/a.wbs ; after");
    CHECK(f.host.commands == std::vector<std::string>{"x", "z", "after"});
    REQUIRE(f.host.echoed.size() == 1);
    CHECK(f.host.echoed[0] == "$$ comment;.if (1);{;  x;};.else;{;  y;};z");

    Fixture a;
    a.host.files["/s/args.wbs"] = ".echo ${$arg1} ${$arg2} ${$arg3}\n.echo $arg2";
    a.engine.run_block("$$>a< /s/args.wbs one \"two words\"; k");
    CHECK(a.host.commands ==
          std::vector<std::string>{".echo one two words ${$arg3}", ".echo two words", "k"});
    CHECK(a.host.echoed.empty());

    Fixture l;
    l.host.files["/s/l.wbs"] = "x\n\ny; z\n";
    l.engine.run_block("$$< /s/l.wbs");
    CHECK(l.host.commands == std::vector<std::string>{"x", "y", "z"});
    CHECK(l.host.echoed == std::vector<std::string>{"x", "y; z"});

    Fixture m;
    CHECK(m.engine.run_block("$$>< /nope.wbs; after") == ScriptFlow::Abort);
    CHECK(m.host.errors.back() == "Couldn't open script file '/nope.wbs'");

    // A script that runs itself stops at the nesting limit instead of overflowing the stack.
    Fixture r;
    r.host.files["/s/r.wbs"] = "$$>< /s/r.wbs";
    CHECK(r.engine.run_block("$$>< /s/r.wbs") == ScriptFlow::Abort);
    CHECK(r.host.errors.back().find("nested too deeply") != std::string::npos);
}

TEST_CASE("the seed's script shape: aS at the top, uses inside .block, ad ${/v:} at the end") {
    // 002:112-196, with its braces and .else put back.
    Fixture f;
    f.host.files["cm.wbs"] = "aS BuildNumber \"0n19041\";\n"
                             "aS i \"@$t1\";\n"
                             ".block\n{\n"
                             "  .if (${BuildNumber} <= 0n3790)\n  {\n    old\n  }\n"
                             "  .else\n  {\n"
                             "    .for (r ${i} = 0; ${i} < 2; r ${i} = ${i} + 1)\n    {\n"
                             "      new ${i}\n    }\n  }\n}\n"
                             "ad ${/v:i};\n";
    // The host plays aS and ad.
    struct AliasHost : FakeHost {
        Aliases* aliases = nullptr;
        ScriptFlow script_command(std::string_view command) override {
            std::string c(command);
            if (c.rfind("aS ", 0) == 0) {
                auto sp = c.find(' ', 3);
                std::string value = c.substr(sp + 1);
                value = value.substr(1, value.size() - 2);
                aliases->set(c.substr(3, sp - 3), value);
                return ScriptFlow::Normal;
            }
            if (c.rfind("ad ", 0) == 0) {
                aliases->remove(strip_verbatim(c.substr(3)));
                return ScriptFlow::Normal;
            }
            return FakeHost::script_command(command);
        }
    } host;
    Aliases aliases;
    host.aliases = &aliases;
    host.files = f.host.files;
    ScriptEngine engine(host, aliases);
    CHECK(engine.run_block("$$>a< cm.wbs") == ScriptFlow::Normal);
    CHECK(host.commands == std::vector<std::string>{"r @$t1 = 0", "new @$t1", "r @$t1 = @$t1 + 1",
                                                    "new @$t1", "r @$t1 = @$t1 + 1"});
    CHECK(aliases.find("i") == nullptr);
    CHECK(aliases.find("BuildNumber") != nullptr);
    CHECK(host.errors.empty());
}

TEST_CASE(".printf: conversions and arguments") {
    auto cmd = parse_printf(R"(/ow "a=%d, b=%x\t%p %y\n", @rax, poi(nt!x + 8), 3, 4)");
    REQUIRE(cmd);
    CHECK(cmd->format == "a=%d, b=%x\t%p %y\n");
    CHECK(cmd->arguments == std::vector<std::string>{"@rax", "poi(nt!x + 8)", "3", "4"});
    CHECK_FALSE(parse_printf("no quotes"));
    CHECK_FALSE(parse_printf("\"a\" 1"));
    CHECK_FALSE(parse_printf("\"a\", 1,, 2"));

    PrintfCallbacks cb;
    cb.read_string = [](uint64_t a, bool unicode) -> std::optional<std::string> {
        if (a == 0x1000) {
            return unicode ? "wide" : "narrow";
        }
        return std::nullopt;
    };
    cb.read_counted = [](uint64_t a, bool unicode) -> std::optional<std::string> {
        if (a == 0x2000) {
            return unicode ? "ustr" : "astr";
        }
        return std::nullopt;
    };
    cb.symbol = [](uint64_t a) { return "nt!Foo+0x" + std::to_string(a - 0x500) + " (x)"; };
    const uint64_t args[] = {0xfffffffffffffffe,
                             0x1234567890,
                             0x1234567890,
                             0x1000,
                             0x1000,
                             0x1000,
                             0x504,
                             0x2000,
                             0x2000,
                             0x41,
                             0x3fc00000,
                             0x3ff8000000000000,
                             0xdead,
                             0xabc};
    auto text =
        format_printf("%d %x %I64x %p|%ma|%mu|%y|%msa|%msu|%c|%.2f|%.3lf|%5s|%%|%08X\n", args, cb);
    REQUIRE(text);
    CHECK(*text == "-2 34567890 1234567890 0000000000001000|narrow|wide|nt!Foo+0x4 (x)|astr|"
                   "ustr|A|1.50|1.500|<Memory access error at 000000000000dead>|%|00000ABC\n");
    CHECK_FALSE(format_printf("%x %x", std::span<const uint64_t>(args, 1), cb));
    const uint64_t more[] = {0xfffffffffffffffe, 0x34567890, 0x1000, 0x1000};
    auto s = format_printf("%I64d %u %ws %s %Q", more, cb);
    REQUIRE(s);
    CHECK(*s == "-2 878082192 wide narrow %Q");
    CHECK(decode_escapes(R"(a\tb\\c\"d\x41\q)") == "a\tb\\c\"dAq");
}

TEST_CASE(".formats: seed 003's two values") {
    // 003:1386-1395 and 003:1402-1411; the time is UTC here (the seed's machine was GMT+1).
    CHECK(format_formats(0x65747379735c5357) ==
          "Evaluate expression:\n"
          "  Hex:     65747379`735c5357\n"
          "  Decimal: 7310595060592825175\n"
          "  Octal:   0625643467456327051527\n"
          "  Binary:  01100101 01110100 01110011 01111001 01110011 01011100 01010011 01010111\n"
          "  Chars:   etsys\\SW\n"
          "  Time:    Wed May 10 21:00:59.282 24767 (GMT+0)\n"
          "  Float:   low 1.7456e+031 high 7.21492e+022\n"
          "  Double:  5.30388e+180\n");
    CHECK(format_formats(0x0045004c00490046) ==
          "Evaluate expression:\n"
          "  Hex:     0045004c`00490046\n"
          "  Decimal: 19422099815333958\n"
          "  Octal:   0001050004600022200106\n"
          "  Binary:  00000000 01000101 00000000 01001100 00000000 01001001 00000000 01000110\n"
          "  Chars:   .E.L.I.F\n"
          "  Time:    Wed Jul 19 06:46:21.533 1662 (GMT+0)\n"
          "  Float:   low 6.70409e-039 high 6.33676e-039\n"
          "  Double:  2.33646e-307\n");
    auto zero = format_formats(0);
    CHECK(zero.find("  Decimal: 0\n") != std::string::npos);
    CHECK(zero.find("  Time:    Thu Jan  1 00:00:00 1970\n") != std::string::npos);
    CHECK(zero.find("  Float:   low 0 high 0\n") != std::string::npos);
    CHECK(format_formats(~uint64_t{0}).find("  Decimal: -1\n") != std::string::npos);
}

TEST_CASE("unknown commands: a gap by name, an unknown extension, a typo") {
    CHECK(unknown_command_message("!vm", "!vm 4") == "!vm is not supported yet");
    CHECK(unknown_command_message("!kdexts.vm", "!kdexts.vm") == "!kdexts.vm is not supported yet");
    CHECK(unknown_command_message(".foreach", ".foreach (x {k}) {}") ==
          ".foreach is not supported yet");
    CHECK(unknown_command_message("dv", "dv /t") == "dv is not supported yet");
    CHECK(unknown_command_message("!nosuch", "!nosuch 1") == "No export nosuch found");
    CHECK(unknown_command_message("xyzzy", "xyzzy 12") == "       ^ Syntax error in 'xyzzy 12'");
    CHECK(unknown_command_message("q", "Q,") == "       ^ Syntax error in 'Q,'");
    CHECK(is_windbg_command("uf"));
    CHECK_FALSE(is_windbg_command("xyzzy"));
    CHECK(help_text().find(".printf") != std::string::npos);
}
