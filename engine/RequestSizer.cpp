#include "engine/RequestSizer.h"

#include <algorithm>
#include <cmath>

namespace kdcart::engine {

RequestSizer::RequestSizer(uint32_t max, uint32_t min)
    : m_max(std::max<uint32_t>(max, 1)), m_min(std::clamp<uint32_t>(min, 1, m_max)), m_size(m_max) {
    m_attempts = kPriorAttempts;
    m_wire = kPriorAttempts * (m_max + kOverhead);
}

uint32_t RequestSizer::size() const {
    return std::clamp(m_size, m_min, m_max);
}

double RequestSizer::byte_error_rate() const {
    if (m_attempts <= 0 || m_wire <= 0 || m_damaged <= 0) {
        return 0;
    }
    // A damaged attempt is one in which at least one byte was hit: with w bytes per attempt,
    // 1 - e^(-p w) of them are.
    const double share = std::min(m_damaged / m_attempts, 0.95);
    return -std::log1p(-share) / (m_wire / m_attempts);
}

void RequestSizer::attempt(double wire, bool damaged) {
    m_attempts = m_attempts * kDecay + 1;
    m_damaged = m_damaged * kDecay + (damaged ? 1 : 0);
    m_wire = m_wire * kDecay + wire;
}

void RequestSizer::record(uint32_t size, uint32_t damaged_attempts, bool succeeded) {
    const double wire = static_cast<double>(size) + kOverhead;
    for (uint32_t i = 0; i < damaged_attempts; ++i) {
        attempt(wire, true);
    }
    if (succeeded) {
        attempt(wire, false);
    }
    resize();
}

void RequestSizer::resize() {
    const double p = byte_error_rate();
    if (p <= 0) {
        m_size = m_max;
        return;
    }
    // The least cost per byte: n (n + O) = O / p.
    const double n = (-kOverhead + std::sqrt(kOverhead * kOverhead + 4 * kOverhead / p)) / 2;
    m_size = n >= m_max ? m_max : std::clamp(static_cast<uint32_t>(n), m_min, m_max);
}

void RequestSizer::set_max(uint32_t max) {
    max = std::max<uint32_t>(max, 1);
    if (max != m_max) {
        m_max = max;
        m_min = std::min(m_min, m_max);
        m_size = m_max;
        m_attempts = kPriorAttempts;
        m_damaged = 0;
        m_wire = kPriorAttempts * (m_max + kOverhead);
    }
}

} // namespace kdcart::engine
