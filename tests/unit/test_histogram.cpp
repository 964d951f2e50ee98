#include "bifrost_catch.hpp"

#include <bifrost/core/histogram.hpp>

#include <cstdint>

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
