#pragma once
/// \file
/// Backpressure policies: what a request does when its provider's queue is full.
///
/// A policy answers one question, `on_full(const FullQueue&) -> OnFull`: reject now, or wait for
/// space (forever or until a deadline). The engine carries the decision out without blocking a
/// thread for async callers (their request waits in an overflow list) and by a blocking wait for
/// `chat()` callers. Every outcome is counted in `stats()`.

#include <bifrost/concepts.hpp>
#include <bifrost/queue/on_full.hpp>

#include <chrono>

namespace bifrost::queue {

/// Wait for space (Bifrost's default, `drop_excess_requests: false`).
struct Block {
    constexpr OnFull on_full(const FullQueue&) const noexcept { return OnFull::wait(); }
};
static_assert(QueuePolicy<Block>);

/// Wait for space up to `timeout`, then fail with 503 "queue full, timeout waiting".
struct BlockFor {
    std::chrono::nanoseconds timeout{std::chrono::milliseconds(500)};
    OnFull on_full(const FullQueue& q) const noexcept {
        return OnFull::wait_until(q.now + timeout);
    }
};
static_assert(QueuePolicy<BlockFor>);

/// Fail at once with 503 `request_dropped` (`drop_excess_requests: true`).
struct Drop {
    constexpr OnFull on_full(const FullQueue&) const noexcept { return OnFull::reject(); }
};
static_assert(QueuePolicy<Drop>);

/// Chooses Block or Drop at run time from Bifrost's `client.drop_excess_requests` flag, for
/// programs (like bifrost-http) whose behaviour comes from a config file.
struct FromConfig {
    bool drop_excess_requests = false;
    constexpr OnFull on_full(const FullQueue&) const noexcept {
        return drop_excess_requests ? OnFull::reject() : OnFull::wait();
    }
};
static_assert(QueuePolicy<FromConfig>);

}  // namespace bifrost::queue
