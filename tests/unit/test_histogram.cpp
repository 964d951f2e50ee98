#include "bifrost_catch.hpp"

#include <bifrost/core/histogram.hpp>
#include <bifrost/server/metrics.hpp>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

using bifrost::LatencyHistogram;

TEST_CASE("histogram: buckets tile the range without gaps", "[histogram]") {
    for (std::size_t i = 0; i + 1 < LatencyHistogram::bucket_count; ++i) {
        REQUIRE(LatencyHistogram::upper_bound_of(i) == LatencyHistogram::lower_bound_of(i + 1));
        REQUIRE(LatencyHistogram::lower_bound_of(i) < LatencyHistogram::upper_bound_of(i));
    }
    for (std::uint64_t v :
         {0ull, 1ull, 31ull, 32ull, 33ull, 1000ull, 123456789ull, 1ull << 41, (1ull << 43) - 1}) {
        const auto i = LatencyHistogram::index_of(v);
        CHECK(LatencyHistogram::lower_bound_of(i) <= v);
        CHECK(v < LatencyHistogram::upper_bound_of(i));
    }
    CHECK(LatencyHistogram::index_of(~0ull) == LatencyHistogram::bucket_count - 1);
}

TEST_CASE("histogram: quantiles are within the bucket resolution", "[histogram]") {
    LatencyHistogram h;
    // 1..100000 ns uniformly: p50 = 50000, p90 = 90000, p99 = 99000.
    for (std::uint64_t v = 1; v <= 100000; ++v)
        h.record(v);
    const auto s = h.summary();
    CHECK(s.count == 100000);
    CHECK(s.max_ns == 100000);
    CHECK(s.mean_ns == Approx(50000.5));
    CHECK(static_cast<double>(s.p50_ns) == Approx(50000).epsilon(0.033));
    CHECK(static_cast<double>(s.p90_ns) == Approx(90000).epsilon(0.033));
    CHECK(static_cast<double>(s.p99_ns) == Approx(99000).epsilon(0.033));
    CHECK(h.count_at_or_below(LatencyHistogram::upper_bound_of(LatencyHistogram::index_of(1000)) -
                              1) >= 1000);
}

TEST_CASE("histogram: an empty histogram reports zeros", "[histogram]") {
    LatencyHistogram h;
    const auto s = h.summary();
    CHECK(s.count == 0);
    CHECK(s.p99_ns == 0);
    CHECK(h.quantile(0.5) == 0);
}

TEST_CASE("histogram: a single value is reported exactly at every quantile", "[histogram]") {
    LatencyHistogram h;
    h.record(std::chrono::microseconds(7));
    CHECK(h.quantile(0.0) <= 7000);
    CHECK(h.quantile(1.0) <= 7000);
    CHECK(static_cast<double>(h.quantile(0.5)) == Approx(7000).epsilon(0.033));
}

TEST_CASE("histogram: records from many threads all count, in every shard",
          "[histogram][concurrency]") {
    // More threads than shards, so that some share one: every record must still be counted
    // once, and the readers must add up every shard.
    constexpr int threads = 3 * static_cast<int>(LatencyHistogram::shard_count);
    constexpr int per_thread = 20000;
    LatencyHistogram h;
    bifrost::server::DurationHistogram d;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&h, &d, t] {
            for (int i = 0; i < per_thread; ++i) {
                // Thread t records t + 1 (ns) for the first half, 2000 * (t + 1) after.
                const std::uint64_t v = i < per_thread / 2
                                            ? static_cast<std::uint64_t>(t + 1)
                                            : 2000u * static_cast<std::uint64_t>(t + 1);
                h.record(v);
                d.record(std::chrono::nanoseconds(v));
            }
        });
    }
    for (auto& th : pool)
        th.join();
    const std::uint64_t n = std::uint64_t{threads} * per_thread;
    CHECK(h.count() == n);
    std::uint64_t sum = 0;
    for (int t = 0; t < threads; ++t)
        sum += (per_thread / 2) * (static_cast<std::uint64_t>(t + 1) * 2001u);
    CHECK(h.sum() == sum);
    CHECK(h.max() == 2000u * threads);
    CHECK(h.summary().max_ns == 2000u * threads);
    // Half the values are at most `threads` ns (exact buckets below 32).
    CHECK(h.count_at_or_below(static_cast<std::uint64_t>(threads)) == n / 2);
    CHECK(h.quantile(0.25) <= static_cast<std::uint64_t>(threads));
    CHECK(h.quantile(0.75) >= 2000u);
    CHECK(d.count() == n);
    CHECK(d.cumulative(0) == n / 2);  // the small half is under 1 us
    CHECK(d.sum_seconds() == Approx(static_cast<double>(sum) / 1e9));
}
