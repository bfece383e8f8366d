#pragma once
// WinDbg's pseudo-registers. The user-defined $t0..$t19 are kept here (they start at zero and
// live as long as the session); the automatic ones ($ip, $ra, $ptrsize, $pagesize, $exentry,
// $retreg, $csp, $bpN...) are computed by the Debugger from the target's state, and this class
// only knows their names.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kdcart::engine {

class PseudoRegisters {
  public:
    static constexpr unsigned k_user_count = 20;

    // "$t0".."$t19" (case-insensitive, no '@') -> 0..19.
    static std::optional<unsigned> user_index(std::string_view name);
    // "$bp3" -> 3.
    static std::optional<uint32_t> breakpoint_index(std::string_view name);
    // Every automatic pseudo-register name kdcart computes (without '@'), for help and `r`.
    static bool is_automatic(std::string_view name);

    uint64_t user(unsigned index) const { return index < k_user_count ? m_user[index] : 0; }
    void set_user(unsigned index, uint64_t value) {
        if (index < k_user_count) {
            m_user[index] = value;
        }
    }

  private:
    std::array<uint64_t, k_user_count> m_user{};
};

} // namespace kdcart::engine
