#pragma once
/// \file
/// A small, fast per-thread random source (wyrand) for key selection and backoff jitter.

#include <chrono>
#include <cstdint>
#include <thread>

namespace bifrost::detail {

/// wyrand: one 64-bit state, one multiply per draw; passes BigCrush. Not for secrets.
class FastRandom {
  public:
    explicit FastRandom(std::uint64_t seed) noexcept : state_(seed) {}

    std::uint64_t next() noexcept {
        state_ += 0xa0761d6478bd642fULL;
        const __uint128_t m = static_cast<__uint128_t>(state_) * (state_ ^ 0xe7037ed1a0b428dbULL);
        return static_cast<std::uint64_t>(m >> 64) ^ static_cast<std::uint64_t>(m);
    }

    /// Uniform double in [0, 1).
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    /// Uniform integer in [0, n) for n > 0 (Lemire's multiply-shift; bias below 2^-32 for n <
    /// 2^32).
    std::uint64_t below(std::uint64_t n) noexcept {
        return static_cast<std::uint64_t>((static_cast<__uint128_t>(next()) * n) >> 64);
    }

  private:
    std::uint64_t state_;
};

/// The calling thread's generator, seeded from the clock and the thread id.
inline FastRandom& thread_random() noexcept {
    thread_local FastRandom rng(
        static_cast<std::uint64_t>(
            std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
        (std::hash<std::thread::id>{}(std::this_thread::get_id()) * 0x9E3779B97F4A7C15ULL));
    return rng;
}

}  // namespace bifrost::detail
