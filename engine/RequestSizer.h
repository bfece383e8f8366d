#pragma once
// How many bytes one memory read request asks for, learnt from the link (issue 13).
//
// On a line that damages one byte in p, an n-byte reply arrives whole with probability about
// (1-p)^n: at 1e-3 a 3944-byte reply gets through 2% of the time, so a read in the largest
// requests the link carries asks for the same damaged reply again and again (and on a noisy
// line most replies that pass KDCOM's byte-sum checksum are the ones whose flips cancelled).
// A smaller request wastes header bytes and a round trip, a larger one gets damaged: the
// request size follows the link. Every request that comes back clean lets the next one grow
// by a quarter, every damaged attempt (a reply asked for again, a request sent again) makes
// it 30% smaller. That settles where about 60% of requests come back clean (0.6 x ln 1.25 =
// 0.4 x ln 1/0.7), near the size that moves the most bytes per second on a line with a fixed
// cost per packet. A clean line never shrinks it: reads there stay in the largest requests.
#include <cstdint>

namespace kdcart::engine {

class RequestSizer {
  public:
    // `max`: the largest request the link carries; `min`: the smallest worth a request.
    explicit RequestSizer(uint32_t max, uint32_t min = 128);

    // Bytes the next request should ask for (min..max).
    uint32_t size() const;
    // A request came back with no error on the line.
    void clean();
    // `damaged_attempts` attempts of a request were damaged (RESENDs asked, packets sent
    // again, timeouts): the size shrinks once per attempt.
    void damaged(uint32_t damaged_attempts = 1);
    // The link's largest request changed (or a new link): start from the top again.
    void set_max(uint32_t max);
    uint32_t max() const { return m_max; }
    uint32_t min() const { return m_min; }

    static constexpr double kGrow = 1.25;
    static constexpr double kShrink = 0.7;

  private:
    uint32_t m_max;
    uint32_t m_min;
    double m_size;
};

} // namespace kdcart::engine
