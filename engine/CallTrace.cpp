#include "engine/CallTrace.h"

#include <algorithm>

namespace kdcart::engine {

CallTrace::CallTrace(std::string function) {
    m_stack.push_back(Frame{std::move(function), 0, 0, 0, 0});
}

CallTraceLine CallTrace::line_of(const Frame& f) const {
    CallTraceLine l;
    l.own = f.own;
    l.children = f.children;
    l.depth = f.depth;
    l.function = f.function;
    return l;
}

void CallTrace::record(const Frame& f) {
    auto& s = m_stats[f.function];
    if (s.invocations == 0) {
        s.min = f.own;
        s.max = f.own;
    } else {
        s.min = std::min(s.min, f.own);
        s.max = std::max(s.max, f.own);
    }
    ++s.invocations;
    s.total += f.own;
}

std::optional<CallTraceLine> CallTrace::executed(Kind kind, const std::string& next_function,
                                                 uint64_t rax) {
    if (m_stack.empty()) {
        return std::nullopt;
    }
    ++m_total;
    Frame& top = m_stack.back();
    ++top.own;
    switch (kind) {
    case Kind::Call: {
        CallTraceLine l = line_of(top);
        m_stack.push_back(Frame{next_function, 0, 0, 0, top.depth + 1});
        return l;
    }
    case Kind::Return: {
        CallTraceLine l = line_of(top);
        l.returned = true;
        l.return_value = rax;
        const Frame done = top;
        record(done);
        m_stack.pop_back();
        if (!m_stack.empty()) {
            m_stack.back().children += done.own + done.children + done.carried;
        }
        return l;
    }
    case Kind::Other:
        break;
    }
    if (next_function == top.function) {
        return std::nullopt;
    }
    // A jump into another function (an import thunk, a tail call): the same depth, a new line.
    CallTraceLine l = line_of(top);
    record(top);
    Frame next{next_function, 0, 0, top.carried + top.own + top.children, top.depth};
    top = std::move(next);
    return l;
}

void CallTrace::stop() {
    while (!m_stack.empty()) {
        const Frame done = m_stack.back();
        record(done);
        m_stack.pop_back();
        if (!m_stack.empty()) {
            m_stack.back().children += done.own + done.children + done.carried;
        }
    }
}

} // namespace kdcart::engine
