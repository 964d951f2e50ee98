#pragma once
/// \file
/// A per-provider circuit breaker: after `failure_threshold` consecutive failures the provider is
/// "open" and requests fail fast (503) for `cooldown`; then one probe request is let through
/// ("half-open"); its success closes the circuit, its failure opens it again.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace bifrost {

/// Circuit-breaker settings (a bifrost-cpp extension of the provider config:
/// `"circuit_breaker": {"failure_threshold": 5, "cooldown_ms": 30000}`).
struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit; 0 disables the breaker.
    std::uint32_t failure_threshold = 5;
    /// How long the circuit stays open before a probe is allowed.
    std::chrono::milliseconds cooldown{30000};
};

enum class CircuitState : std::uint8_t { closed, open, half_open };

constexpr std::string_view to_string(CircuitState s) noexcept {
    switch (s) {
        case CircuitState::closed:
            return "closed";
        case CircuitState::open:
            return "open";
        case CircuitState::half_open:
            return "half_open";
    }
    return "closed";
}

/// Lock-free breaker. `allow()` is called when a request is admitted; `record_success()` /
/// `record_failure()` when an upstream attempt ends; `probe_abandoned()` when an admitted probe
/// never reached the upstream (dropped, timed out in the queue, cancelled), so the next request
/// may probe instead.
///
/// Which outcomes are failures is the caller's choice; the gateway counts network errors,
/// upstream timeouts and 5xx answers, not client errors (4xx).
///
/// Thread safety: every member may be called from any thread.
class CircuitBreaker {
  public:
    using Clock = std::chrono::steady_clock;

    /// What `allow()` decided.
    enum class Admit : std::uint8_t { yes, probe, no };

    void configure(const CircuitBreakerConfig& c) noexcept {
        threshold_.store(c.failure_threshold, std::memory_order_relaxed);
        cooldown_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(c.cooldown).count(),
                           std::memory_order_relaxed);
    }

    Admit allow() noexcept {
        auto s = state_.load(std::memory_order_acquire);
        if (s == CircuitState::closed) return Admit::yes;
        if (s == CircuitState::half_open) return Admit::no;
        if (Clock::now().time_since_epoch().count() < open_until_.load(std::memory_order_acquire))
            return Admit::no;
        // Cool-down over: exactly one caller turns it half-open and probes.
        if (state_.compare_exchange_strong(s, CircuitState::half_open, std::memory_order_acq_rel))
            return Admit::probe;
        return Admit::no;
    }

    void record_success() noexcept {
        failures_.store(0, std::memory_order_relaxed);
        if (state_.load(std::memory_order_relaxed) != CircuitState::closed)
            state_.store(CircuitState::closed, std::memory_order_release);
    }

    void record_failure() noexcept {
        const std::uint32_t threshold = threshold_.load(std::memory_order_relaxed);
        if (threshold == 0) return;
        const std::uint32_t n = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
        auto s = state_.load(std::memory_order_acquire);
        if (s == CircuitState::half_open || (s == CircuitState::closed && n >= threshold)) open(s);
    }

    /// The probe admitted by `allow()` will not reach the upstream: reopen with the cool-down
    /// already elapsed so the next request probes.
    void probe_abandoned() noexcept {
        auto s = CircuitState::half_open;
        if (state_.compare_exchange_strong(s, CircuitState::open, std::memory_order_acq_rel))
            open_until_.store(0, std::memory_order_release);
    }

    [[nodiscard]] CircuitState state() const noexcept {
        return state_.load(std::memory_order_acquire);
    }
    [[nodiscard]] std::uint32_t consecutive_failures() const noexcept {
        return failures_.load(std::memory_order_relaxed);
    }
    /// How many times the circuit opened.
    [[nodiscard]] std::uint64_t opened() const noexcept {
        return opened_.load(std::memory_order_relaxed);
    }

  private:
    void open(CircuitState from) noexcept {
        // The deadline first: a reader that sees `open` must see its cool-down.
        open_until_.store(
            Clock::now().time_since_epoch().count() + cooldown_ns_.load(std::memory_order_relaxed),
            std::memory_order_release);
        if (state_.compare_exchange_strong(from, CircuitState::open, std::memory_order_acq_rel))
            opened_.fetch_add(1, std::memory_order_relaxed);
    }

    std::atomic<CircuitState> state_{CircuitState::closed};
    std::atomic<std::uint32_t> failures_{0};
    std::atomic<std::int64_t> open_until_{0};
    std::atomic<std::uint64_t> opened_{0};
    std::atomic<std::uint32_t> threshold_{5};
    std::atomic<std::int64_t> cooldown_ns_{30'000'000'000};
};

}  // namespace bifrost
