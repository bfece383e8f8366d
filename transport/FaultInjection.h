#pragma once
// Link fault injection (kdsim --corrupt-rate/--drop-rate/--stall-ms/--stall-rate/--seed): a bad
// cable on demand, so that every end-to-end test can run on one. On a byte stream (KDCOM) each
// byte is judged on its own in each direction; on KDNET each datagram is. Deterministic for a
// given seed and traffic.
//
//   corrupt: one bit of the byte (KDCOM) or of one byte of the datagram (KDNET) is flipped, as
//            line noise does; two flips can cancel in KDCOM's byte-sum checksum.
//   drop:    the byte or datagram never arrives.
//   stall:   the line pauses for `stall` before the byte or datagram.
#include "transport/ByteStream.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace kdcart::transport {

struct FaultConfig {
    double corrupt_rate = 0;
    double drop_rate = 0;
    double stall_rate = 0;
    Millis stall{0};
    uint64_t seed = 1;

    bool active() const {
        return corrupt_rate > 0 || drop_rate > 0 || (stall_rate > 0 && stall.count() > 0);
    }
    // "corrupt 0.001, drop 0, stall 0 (0 ms), seed 1"
    std::string describe() const;
};

struct FaultCounters {
    uint64_t units = 0; // bytes or datagrams judged
    uint64_t corrupted = 0;
    uint64_t dropped = 0;
    uint64_t stalled = 0;
};

// The dice for one direction of one link.
class FaultDice {
public:
    // `stream` separates the directions: the same seed gives each its own sequence.
    FaultDice(const FaultConfig& config, uint64_t stream);

    struct Verdict {
        bool stall = false;
        bool drop = false;
        uint8_t flip = 0; // XOR mask for the byte (one bit), 0 = intact
    };
    Verdict judge();
    // A uniform number below `bound` (which byte of a datagram to flip).
    uint64_t below(uint64_t bound);
    const FaultCounters& counters() const { return m_counters; }
    const FaultConfig& config() const { return m_config; }

private:
    uint64_t next();
    double uniform();

    FaultConfig m_config;
    uint64_t m_state;
    FaultCounters m_counters;
};

// What a faulty link did so far, per direction (shared with whoever reports it).
struct FaultReport {
    FaultCounters out; // written by this end (target -> host in kdsim)
    FaultCounters in;  // read by this end (host -> target in kdsim)
    std::string summary() const;
};

// Wraps a byte stream: bytes written and bytes read each pass the dice. `report`, when given,
// is kept up to date.
std::unique_ptr<ByteStream> make_faulty_stream(std::unique_ptr<ByteStream> inner,
                                               const FaultConfig& config,
                                               std::shared_ptr<FaultReport> report = nullptr);

// Parses a rate given on a command line or in the environment: a probability in [0, 1]
// ("1e-3", "0.001"). nullopt when it is not one.
std::optional<double> parse_fault_rate(const std::string& text);

} // namespace kdcart::transport
