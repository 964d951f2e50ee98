#pragma once
/// \file
/// What a backpressure policy sees (`FullQueue`) and decides (`OnFull`) when a provider's queue
/// is full.

#include <chrono>
#include <cstddef>
#include <string_view>

namespace bifrost {
struct ChatRequest;
}

namespace bifrost::queue {

using Clock = std::chrono::steady_clock;

/// What a policy sees when a push finds the queue full.
struct FullQueue {
    std::string_view provider;
    std::size_t depth;
    std::size_t capacity;
    /// The request; for embeddings, text completions and model listings only its `model` and
    /// `provider` are set (the routing fields of the request of that kind).
    const ChatRequest& request;
    Clock::time_point now;
};

/// A policy's decision.
class OnFull {
  public:
    /// Fail the request now: 503 `request_dropped`.
    static constexpr OnFull reject() noexcept { return OnFull(false, Clock::time_point::min()); }
    /// Wait for space as long as it takes (or until shutdown).
    static constexpr OnFull wait() noexcept { return OnFull(true, Clock::time_point::max()); }
    /// Wait for space until `deadline`, then fail with 503 "queue full, timeout waiting".
    static constexpr OnFull wait_until(Clock::time_point deadline) noexcept {
        return OnFull(true, deadline);
    }

    [[nodiscard]] constexpr bool waits() const noexcept { return wait_; }
    [[nodiscard]] constexpr Clock::time_point deadline() const noexcept { return deadline_; }

  private:
    constexpr OnFull(bool w, Clock::time_point d) noexcept : wait_(w), deadline_(d) {}
    bool wait_;
    Clock::time_point deadline_;
};

}  // namespace bifrost::queue
