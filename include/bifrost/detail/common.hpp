#pragma once
/// \file
/// Internal basics shared by every header: the Asio namespace alias, the cache-line constant,
/// a CPU pause for spin loops. Users never include this directly.

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bifrost {

namespace asio = boost::asio;

namespace detail {

/// Destructive-interference distance. Our own constant: GCC 12 warns on the standard one in
/// headers because its value may differ between translation units compiled with different flags.
inline constexpr std::size_t cache_line = 64;

/// Which of `shard_count` shards of a sharded counter this thread writes: threads take the
/// shards in turn, in the order they first ask.
inline std::size_t thread_shard(std::size_t shard_count) noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed);
    return mine % shard_count;
}

/// An executor that can tell whether the calling thread is running its work (as Asio's
/// `io_context` executors and strands can): what `dispatch` would run inline can then be called
/// directly, without wrapping it in a function object for the executor.
template <class E>
concept TellsItsThread = requires(const E& e) {
    { e.running_in_this_thread() } -> std::convertible_to<bool>;
};

/// One spin-loop iteration hint to the CPU.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

}  // namespace detail
}  // namespace bifrost
