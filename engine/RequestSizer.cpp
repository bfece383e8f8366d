#include "engine/RequestSizer.h"

#include <algorithm>

namespace kdcart::engine {

RequestSizer::RequestSizer(uint32_t max, uint32_t min)
    : m_max(std::max<uint32_t>(max, 1)), m_min(std::clamp<uint32_t>(min, 1, m_max)), m_size(m_max) {
}

uint32_t RequestSizer::size() const {
    return std::clamp(static_cast<uint32_t>(m_size), m_min, m_max);
}

void RequestSizer::clean() {
    // At least 16 bytes more, so a size near the minimum grows back too.
    m_size = std::min<double>(std::max(m_size * kGrow, m_size + 16), m_max);
}

void RequestSizer::damaged(uint32_t damaged_attempts) {
    for (uint32_t i = 0; i < damaged_attempts && m_size > m_min; ++i) {
        m_size = std::max<double>(m_size * kShrink, m_min);
    }
}

void RequestSizer::set_max(uint32_t max) {
    max = std::max<uint32_t>(max, 1);
    if (max != m_max) {
        m_max = max;
        m_min = std::min(m_min, m_max);
        m_size = m_max;
    }
}

} // namespace kdcart::engine
