#pragma once
// How many bytes one memory read request asks for, learnt from the link (issue 13).
//
// On a line that damages one byte in p, an exchange of w bytes on the wire gets through whole
// with probability about e^(-p w): at 1e-3 a 3944-byte reply gets through 2% of the time, so a
// read in the largest requests the link carries asks for the same damaged reply again and
// again (and on such a line most replies that pass KDCOM's byte-sum checksum are the ones
// whose flips cancelled). A smaller request pays the fixed cost of a request (headers, ACKs,
// a turnaround: about kOverhead bytes of line time) more often; a larger one is damaged more
// often. The cost per byte, (n + O) e^(p (n + O)) / n, is least where n (n + O) = O / p.
//
// p is estimated from the requests themselves: each attempt (the first sending and every one
// made again: a RESEND we asked for, one the target asked for, a request sent again) is
// damaged or not, over a window of the last ~30 attempts, starting from a few clean ones
// (so one error on a clean line does not shrink reads much). p = -ln(1 - damaged share) /
// (wire bytes per attempt). At 1e-3 that gives about 400 bytes, at 1e-4 about 1,600, below
// 1e-5 the largest request the link carries.
#include <cstdint>

namespace kdcart::engine {

class RequestSizer {
  public:
    // `max`: the largest request the link carries; `min`: the smallest worth a request.
    explicit RequestSizer(uint32_t max, uint32_t min = 128);

    // Bytes the next request should ask for (min..max).
    uint32_t size() const;
    // A request of `size` bytes came back after `damaged_attempts` damaged attempts (0: clean).
    void clean(uint32_t size) { record(size, 0, true); }
    // `damaged_attempts` attempts of a `size`-byte request were damaged; `succeeded`: it came
    // back in the end (one more, clean, attempt).
    void record(uint32_t size, uint32_t damaged_attempts, bool succeeded);
    // The link's largest request changed (or a new link): start over.
    void set_max(uint32_t max);
    uint32_t max() const { return m_max; }
    uint32_t min() const { return m_min; }
    // The estimated share of bytes the line damages.
    double byte_error_rate() const;

    // Line time a request costs besides its data, in bytes: request 73 + ACK 16, reply header
    // 73, ACK 16, and a turnaround of about 10 ms at 115200 baud.
    static constexpr double kOverhead = 300;
    // Per attempt the window's counts are multiplied by this (about 30 attempts remembered).
    static constexpr double kDecay = 0.97;
    // The clean attempts at the largest size a new sizer starts with.
    static constexpr double kPriorAttempts = 8;

  private:
    void attempt(double wire, bool damaged);
    void resize();

    uint32_t m_max;
    uint32_t m_min;
    uint32_t m_size;
    double m_attempts = 0;
    double m_damaged = 0;
    double m_wire = 0;
};

} // namespace kdcart::engine
