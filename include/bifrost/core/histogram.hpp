#pragma once
/// \file
/// A lock-free log-linear latency histogram (nanoseconds): constant-time `record` from any thread,
/// percentiles within ~3% relative error, and cumulative counts at bucket edges for Prometheus.

#include <bifrost/detail/common.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>

namespace bifrost {

/// Percentile summary of a latency histogram, in nanoseconds.
struct LatencySummary {
    std::uint64_t count = 0;
    double mean_ns = 0;
    std::uint64_t p50_ns = 0;
    std::uint64_t p90_ns = 0;
    std::uint64_t p99_ns = 0;
    std::uint64_t p999_ns = 0;
    std::uint64_t max_ns = 0;
};

/// Buckets: values below 32 ns are exact; above, each power of two is split into 16 linear
/// sub-buckets (relative width 1/16, reported at the midpoint: error below 3.2%). The top bucket
/// is open-ended above 2^42 ns (73 minutes).
///
/// Thread safety: `record` is wait-free (relaxed atomic increments) and may run on any thread;
/// readers see a consistent-enough snapshot (counts may lag by in-progress records). The counts
/// are kept in a few shards, each thread recording into one of its own, so that threads that
/// record the same figures (every request records several) do not fight over cache lines;
/// readers add the shards up.
class LatencyHistogram {
  public:
    static constexpr int sub_bits = 4;
    static constexpr int subs = 1 << sub_bits;
    static constexpr int max_exp = 42;
    /// Exact buckets below 2 * subs, sub-buckets for exponents up to max_exp, one overflow bucket.
    static constexpr std::size_t bucket_count = (max_exp - sub_bits) * subs + 2 * subs + 1;

    /// Shards of the counts (threads beyond this many share them).
    static constexpr std::size_t shard_count = 4;

    void record(std::uint64_t ns) noexcept {
        Shard& s = shards_[detail::thread_shard(shard_count)];
        s.buckets[index_of(ns)].fetch_add(1, std::memory_order_relaxed);
        s.count.fetch_add(1, std::memory_order_relaxed);
        s.sum.fetch_add(ns, std::memory_order_relaxed);
        std::uint64_t m = s.max.load(std::memory_order_relaxed);
        while (ns > m && !s.max.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
        }
    }

    template <class Rep, class Period>
    void record(std::chrono::duration<Rep, Period> d) noexcept {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        record(ns < 0 ? 0 : static_cast<std::uint64_t>(ns));
    }

    [[nodiscard]] std::uint64_t count() const noexcept {
        std::uint64_t n = 0;
        for (const Shard& s : shards_)
            n += s.count.load(std::memory_order_relaxed);
        return n;
    }

    [[nodiscard]] std::uint64_t max() const noexcept {
        std::uint64_t m = 0;
        for (const Shard& s : shards_)
            m = std::max(m, s.max.load(std::memory_order_relaxed));
        return m;
    }

    /// The value at quantile q in [0, 1] (bucket midpoint), 0 when empty.
    [[nodiscard]] std::uint64_t quantile(double q) const noexcept {
        const std::uint64_t total = total_in_buckets();
        if (total == 0) return 0;
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total));
        if (rank >= total) rank = total - 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            seen += bucket(i);
            if (seen > rank) {
                const std::uint64_t mid = (lower_bound_of(i) + upper_bound_of(i)) / 2;
                const std::uint64_t mx = max();
                return mid > mx ? mx : mid;
            }
        }
        return max();
    }

    [[nodiscard]] LatencySummary summary() const noexcept {
        LatencySummary s;
        s.count = count();
        if (s.count == 0) return s;
        s.mean_ns = static_cast<double>(sum()) / static_cast<double>(s.count);
        s.p50_ns = quantile(0.50);
        s.p90_ns = quantile(0.90);
        s.p99_ns = quantile(0.99);
        s.p999_ns = quantile(0.999);
        s.max_ns = max();
        return s;
    }

    /// Number of recorded values <= `ns` rounded to bucket edges (for Prometheus `le` buckets,
    /// pick edges from `upper_bound_of`).
    [[nodiscard]] std::uint64_t count_at_or_below(std::uint64_t ns) const noexcept {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < bucket_count && upper_bound_of(i) <= ns + 1; ++i)
            n += bucket(i);
        return n;
    }

    [[nodiscard]] std::uint64_t sum() const noexcept {
        std::uint64_t n = 0;
        for (const Shard& s : shards_)
            n += s.sum.load(std::memory_order_relaxed);
        return n;
    }

    /// Bucket index of a value.
    static constexpr std::size_t index_of(std::uint64_t v) noexcept {
        if (v < 2 * subs) return static_cast<std::size_t>(v);
        const int e = 63 - std::countl_zero(v);  // v in [2^e, 2^(e+1)), e >= sub_bits + 1
        if (e > max_exp) return bucket_count - 1;
        const auto sub = static_cast<std::size_t>((v >> (e - sub_bits)) & (subs - 1));
        return static_cast<std::size_t>(e - sub_bits) * subs + sub + subs;
    }

    /// Smallest value in bucket i.
    static constexpr std::uint64_t lower_bound_of(std::size_t i) noexcept {
        if (i < 2 * subs) return i;
        const std::size_t k = i - subs;
        const int e = static_cast<int>(k / subs) + sub_bits;
        const std::uint64_t sub = k % subs;
        return (std::uint64_t{1} << e) + (sub << (e - sub_bits));
    }

    /// One past the largest value in bucket i.
    static constexpr std::uint64_t upper_bound_of(std::size_t i) noexcept {
        if (i + 1 >= bucket_count) return ~std::uint64_t{0};
        return lower_bound_of(i + 1);
    }

  private:
    struct alignas(detail::cache_line) Shard {
        std::array<std::atomic<std::uint64_t>, bucket_count> buckets{};
        alignas(detail::cache_line) std::atomic<std::uint64_t> count{0};
        std::atomic<std::uint64_t> sum{0};
        std::atomic<std::uint64_t> max{0};
    };

    [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept {
        std::uint64_t n = 0;
        for (const Shard& s : shards_)
            n += s.buckets[i].load(std::memory_order_relaxed);
        return n;
    }

    [[nodiscard]] std::uint64_t total_in_buckets() const noexcept {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < bucket_count; ++i)
            n += bucket(i);
        return n;
    }

    std::array<Shard, shard_count> shards_{};
};

}  // namespace bifrost
