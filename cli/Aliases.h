#pragma once
// WinDbg's aliases: user-named ones (as, aS, ad, al; ${Name} and the ${/d: /f: /n: /v:}
// forms) and the fixed-name $u0..$u9 (r $.u0=text). Replacement happens when a block is entered
// (a command line, a script, a breakpoint's command string, each { } block), on the text of that
// block only: nested { } blocks are replaced when they are entered, so an alias set inside a
// block is seen by a later .block { } - WinDbg's rule, which scripts rely on.
#include <array>
#include <map>
#include <string>
#include <string_view>

namespace kdcart::cli {

class Aliases {
  public:
    // User-named aliases (names are case-sensitive, as in WinDbg).
    void set(const std::string& name, std::string value) { m_user[name] = std::move(value); }
    bool remove(const std::string& name) { return m_user.erase(name) != 0; }
    void clear() { m_user.clear(); }
    const std::string* find(std::string_view name) const;
    const std::map<std::string, std::string, std::less<>>& all() const { return m_user; }

    // $u0..$u9 (empty until set).
    void set_fixed(unsigned index, std::string value) {
        if (index < m_fixed.size()) {
            m_fixed[index] = std::move(value);
        }
    }
    const std::string& fixed(unsigned index) const { return m_fixed.at(index); }

    // Replacement at block entry: $uN anywhere at this level, then ${...} tokens and user-named
    // aliases standing alone (after the start, a blank, ';' or '"', before the end, a blank,
    // ';' or '"'). Text inside nested { } blocks is left as it is. A text whose first word is
    // as, aS, ad or al is not replaced at all (WinDbg's rule; put a ';' first to get it).
    std::string expand(std::string_view text) const;

  private:
    std::string expand_token(std::string_view inner, std::string_view whole) const;

    std::map<std::string, std::string, std::less<>> m_user;
    std::array<std::string, 10> m_fixed;
};

// "${/v:Name}" -> "Name"; anything else unchanged (as, aS and ad take their name this way).
std::string strip_verbatim(std::string_view token);

// Where the `{ }` block that opens at text[open] closes (the index of its '}'), skipping quoted
// strings and ${...} tokens; npos when it never closes.
size_t find_block_end(std::string_view text, size_t open);

} // namespace kdcart::cli
