#include "transport/FaultInjection.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace kdcart::transport {

namespace {

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::string rate_text(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", r);
    return buf;
}

std::string counters_text(const FaultCounters& c, const char* unit) {
    return std::to_string(c.units) + " " + unit + ", " + std::to_string(c.corrupted) +
           " corrupted, " + std::to_string(c.dropped) + " dropped, " +
           std::to_string(c.stalled) + " stalls";
}

class FaultyStream final : public ByteStream {
public:
    FaultyStream(std::unique_ptr<ByteStream> inner, const FaultConfig& config,
                 std::shared_ptr<FaultReport> report)
        : m_inner(std::move(inner)), m_out(config, 1), m_in(config, 2),
          m_report(std::move(report)) {}

    Result<size_t> read_some(std::span<uint8_t> buf, Millis timeout) override {
        using Clock = std::chrono::steady_clock;
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            auto n = m_inner->read_some(buf, timeout);
            if (!n) {
                return n;
            }
            size_t kept = 0;
            bool stall = false;
            for (size_t i = 0; i < *n; ++i) {
                const auto v = m_in.judge();
                stall = stall || v.stall;
                if (v.drop) {
                    continue;
                }
                buf[kept++] = static_cast<uint8_t>(buf[i] ^ v.flip);
            }
            publish();
            if (stall) {
                std::this_thread::sleep_for(m_in.config().stall);
            }
            if (kept > 0) {
                return kept;
            }
            const auto now = Clock::now();
            if (now >= deadline) {
                return make_error(Errc::Timeout, "no data from " + m_inner->describe());
            }
            timeout = std::chrono::duration_cast<Millis>(deadline - now);
        }
    }

    Result<void> write_all(std::span<const uint8_t> data) override {
        std::vector<uint8_t> run;
        run.reserve(data.size());
        for (uint8_t b : data) {
            const auto v = m_out.judge();
            if (v.stall) {
                if (!run.empty()) {
                    if (auto r = m_inner->write_all(run); !r) {
                        publish();
                        return r;
                    }
                    run.clear();
                }
                std::this_thread::sleep_for(m_out.config().stall);
            }
            if (!v.drop) {
                run.push_back(static_cast<uint8_t>(b ^ v.flip));
            }
        }
        publish();
        if (run.empty()) {
            return {};
        }
        return m_inner->write_all(run);
    }

    std::string describe() const override { return m_inner->describe(); }
    int native_handle() const override { return m_inner->native_handle(); }

private:
    void publish() {
        if (m_report) {
            m_report->out = m_out.counters();
            m_report->in = m_in.counters();
        }
    }

    std::unique_ptr<ByteStream> m_inner;
    FaultDice m_out;
    FaultDice m_in;
    std::shared_ptr<FaultReport> m_report;
};

} // namespace

std::string FaultConfig::describe() const {
    return "corrupt " + rate_text(corrupt_rate) + ", drop " + rate_text(drop_rate) + ", stall " +
           rate_text(stall_rate) + " (" + std::to_string(stall.count()) + " ms), seed " +
           std::to_string(seed);
}

FaultDice::FaultDice(const FaultConfig& config, uint64_t stream)
    : m_config(config), m_state(config.seed * 0x2545F4914F6CDD1Dull + stream) {
    (void)next();
}

uint64_t FaultDice::next() {
    return splitmix64(m_state);
}

double FaultDice::uniform() {
    return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

uint64_t FaultDice::below(uint64_t bound) {
    return bound == 0 ? 0 : next() % bound;
}

FaultDice::Verdict FaultDice::judge() {
    Verdict v;
    ++m_counters.units;
    if (m_config.stall_rate > 0 && m_config.stall.count() > 0 && uniform() < m_config.stall_rate) {
        v.stall = true;
        ++m_counters.stalled;
    }
    if (m_config.drop_rate > 0 && uniform() < m_config.drop_rate) {
        v.drop = true;
        ++m_counters.dropped;
        return v;
    }
    if (m_config.corrupt_rate > 0 && uniform() < m_config.corrupt_rate) {
        v.flip = static_cast<uint8_t>(1u << below(8));
        ++m_counters.corrupted;
    }
    return v;
}

std::string FaultReport::summary() const {
    return "sent: " + counters_text(out, "units") + "; received: " + counters_text(in, "units");
}

std::unique_ptr<ByteStream> make_faulty_stream(std::unique_ptr<ByteStream> inner,
                                               const FaultConfig& config,
                                               std::shared_ptr<FaultReport> report) {
    return std::make_unique<FaultyStream>(std::move(inner), config, std::move(report));
}

std::optional<double> parse_fault_rate(const std::string& text) {
    if (text.empty()) {
        return std::nullopt;
    }
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end == nullptr || *end != 0 || !std::isfinite(v) || v < 0 || v > 1) {
        return std::nullopt;
    }
    return v;
}

} // namespace kdcart::transport
