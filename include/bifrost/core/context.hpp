#pragma once
/// \file
/// `Context`: what a plugin hook knows about the request it is looking at, and how a pre-hook
/// answers a request itself (short-circuit).

#include <bifrost/schema/outcome.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

namespace bifrost {

namespace detail {
struct Job;
struct GatewayAccess;
}  // namespace detail

/// Per-request facts for plugins. One `Context` lives as long as its request; hooks of one
/// request never run concurrently, so a plugin may keep per-request notes via `user_data`.
class Context {
  public:
    using Clock = std::chrono::steady_clock;

    /// Unique per gateway, increasing.
    [[nodiscard]] std::uint64_t request_id() const noexcept { return request_id_; }

    /// 0 for the primary attempt, k for the k-th fallback.
    [[nodiscard]] int fallback_index() const noexcept { return fallback_index_; }

    /// The provider that served (post-hooks) or is about to serve the request. Empty in pre-hooks,
    /// which run before routing and may still change `model`.
    [[nodiscard]] std::string_view provider() const noexcept { return provider_; }

    /// When the caller submitted the request.
    [[nodiscard]] Clock::time_point start_time() const noexcept { return start_; }

    /// An opaque pointer the caller passed with the request (`RequestOptions::user_data`).
    [[nodiscard]] void* user_data() const noexcept { return user_data_; }

    /// Pre-hook only: answer the request with `r`; the provider is not called.
    void respond(const ChatResponse& r) {
        outcome_->response = r;
        outcome_->error.clear();
        short_circuit_ = true;
    }
    void respond(ChatResponse&& r) {
        outcome_->response = std::move(r);
        outcome_->error.clear();
        short_circuit_ = true;
    }

    /// Pre-hook only: fail the request with `e` (status must be non-zero); the provider is not
    /// called.
    void fail(Error e) {
        if (e.status == 0) e.status = 500;
        outcome_->fail(std::move(e));
        short_circuit_ = true;
    }

    /// True once a pre-hook has answered the request.
    [[nodiscard]] bool short_circuited() const noexcept { return short_circuit_; }

  private:
    friend struct detail::Job;
    friend struct detail::GatewayAccess;

    void reset(Outcome* outcome) noexcept {
        outcome_ = outcome;
        request_id_ = 0;
        fallback_index_ = 0;
        provider_ = {};
        start_ = {};
        user_data_ = nullptr;
        short_circuit_ = false;
    }

    Outcome* outcome_ = nullptr;
    std::uint64_t request_id_ = 0;
    int fallback_index_ = 0;
    std::string_view provider_;
    Clock::time_point start_;
    void* user_data_ = nullptr;
    bool short_circuit_ = false;
};

}  // namespace bifrost
