#pragma once
// A value of type T read from a byte buffer at `off`, bounds-checked: nothing when the buffer
// is too short (PE headers and tables read from target memory may be cut short or hostile).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace kdcart::engine {

template <class T> std::optional<T> load(const std::vector<uint8_t>& b, size_t off) {
    if (off > b.size() || b.size() - off < sizeof(T)) {
        return std::nullopt;
    }
    T v;
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

} // namespace kdcart::engine
