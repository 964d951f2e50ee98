#include "bifrost_catch.hpp"

#include <bifrost/core/circuit_breaker.hpp>
#include <bifrost/core/retry.hpp>

#include <chrono>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("retry: which statuses are retried", "[retry]") {
    for (int s : {429, 500, 502, 503, 504})
        CHECK(bifrost::retry::retryable_status(s));
    for (int s : {200, 400, 401, 403, 404, 409, 422, 501})
        CHECK_FALSE(bifrost::retry::retryable_status(s));
    for (int s : {401, 403, 429})
        CHECK(bifrost::retry::key_specific_status(s));
    CHECK_FALSE(bifrost::retry::key_specific_status(500));
}

TEST_CASE("retry: backoff doubles up to the cap with +-20% jitter", "[retry]") {
    bifrost::detail::FastRandom rng(99);
    const auto initial = 500ms, max = 5000ms;
    const double expected[] = {500, 1000, 2000, 4000, 5000, 5000, 5000};
    for (int attempt = 0; attempt < 7; ++attempt) {
        double lo = 1e18, hi = 0;
        for (int i = 0; i < 2000; ++i) {
            const double ms = std::chrono::duration<double, std::milli>(
                                  bifrost::retry::backoff(attempt, initial, max, rng))
                                  .count();
            lo = std::min(lo, ms);
            hi = std::max(hi, ms);
        }
        INFO("attempt " << attempt);
        CHECK(lo >= expected[attempt] * 0.8 - 1e-6);
        CHECK(hi <= expected[attempt] * 1.2 + 1e-6);
        CHECK(lo < expected[attempt] * 0.85);  // the jitter really spreads
        CHECK(hi > expected[attempt] * 1.15);
    }
}

TEST_CASE("retry: Retry-After as seconds or as an HTTP date", "[retry]") {
    using bifrost::retry::parse_retry_after;
    CHECK(parse_retry_after("120") == std::chrono::nanoseconds(120s));
    CHECK(parse_retry_after(" 0 ") == std::chrono::nanoseconds(0));
    // 1994-11-06 08:49:37 UTC is 784111777 s after the epoch.
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(784111777 - 30));
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == std::chrono::nanoseconds(30s));
    const auto later = std::chrono::system_clock::time_point(std::chrono::seconds(784111777 + 5));
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later) == std::chrono::nanoseconds(0));
    CHECK_FALSE(parse_retry_after("soon").has_value());
    CHECK_FALSE(parse_retry_after("-5").has_value());
    CHECK_FALSE(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT").has_value());
    CHECK_FALSE(parse_retry_after("").has_value());
}

TEST_CASE(
    "breaker: opens after consecutive failures, probes after the cool-down, closes on success",
    "[breaker]") {
    bifrost::CircuitBreaker b;
    b.configure({3, 50ms});
    using Admit = bifrost::CircuitBreaker::Admit;
    CHECK(b.allow() == Admit::yes);
    b.record_failure();
    b.record_failure();
    b.record_success();  // a success resets the streak
    b.record_failure();
    b.record_failure();
    CHECK(b.state() == bifrost::CircuitState::closed);
    b.record_failure();
    CHECK(b.state() == bifrost::CircuitState::open);
    CHECK(b.opened() == 1);
    CHECK(b.allow() == Admit::no);

    std::this_thread::sleep_for(60ms);
    CHECK(b.allow() == Admit::probe);  // exactly one probe
    CHECK(b.state() == bifrost::CircuitState::half_open);
    CHECK(b.allow() == Admit::no);
    b.record_failure();  // the probe failed: open again
    CHECK(b.state() == bifrost::CircuitState::open);
    CHECK(b.opened() == 2);
    CHECK(b.allow() == Admit::no);

    std::this_thread::sleep_for(60ms);
    CHECK(b.allow() == Admit::probe);
    b.record_success();
    CHECK(b.state() == bifrost::CircuitState::closed);
    CHECK(b.allow() == Admit::yes);
}

TEST_CASE("breaker: a threshold of 0 disables it", "[breaker]") {
    bifrost::CircuitBreaker b;
    b.configure({0, 1s});
    for (int i = 0; i < 100; ++i)
        b.record_failure();
    CHECK(b.state() == bifrost::CircuitState::closed);
    CHECK(b.allow() == bifrost::CircuitBreaker::Admit::yes);
}

TEST_CASE("breaker: probe_abandoned reopens with the cool-down elapsed", "[breaker]") {
    bifrost::CircuitBreaker b;
    b.configure({1, 20ms});
    b.record_failure();
    std::this_thread::sleep_for(30ms);
    REQUIRE(b.allow() == bifrost::CircuitBreaker::Admit::probe);
    b.probe_abandoned();
    CHECK(b.state() == bifrost::CircuitState::open);
    CHECK(b.allow() == bifrost::CircuitBreaker::Admit::probe);  // no new cool-down
}
