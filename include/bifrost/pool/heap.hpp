#pragma once
/// \file
/// `pool::Heap`: no reuse at all. Every acquire is `new`, every release `delete`: the baseline
/// that shows what pooling buys.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/pool/stats.hpp>

#include <atomic>
#include <cstddef>

namespace bifrost::pool {

/// Thread safety: every member may be called from any thread concurrently.
struct Heap {
    template <class T>
    class pool {
      public:
        explicit pool(std::size_t /*initial*/) {}
        pool(const pool&) = delete;
        pool& operator=(const pool&) = delete;

        T* acquire() {
            gets_.fetch_add(1, std::memory_order_relaxed);
            live_.fetch_add(1, std::memory_order_relaxed);
            return new T();
        }

        void release(T* obj) noexcept {
            returns_.fetch_add(1, std::memory_order_relaxed);
            live_.fetch_sub(1, std::memory_order_relaxed);
            delete obj;
        }

        [[nodiscard]] PoolStats stats() const noexcept {
            PoolStats s;
            s.gets = gets_.load(std::memory_order_relaxed);
            s.misses = s.gets;
            s.returns = returns_.load(std::memory_order_relaxed);
            s.size = live_.load(std::memory_order_relaxed);
            return s;
        }

      private:
        alignas(detail::cache_line) std::atomic<std::uint64_t> gets_{0};
        std::atomic<std::uint64_t> returns_{0};
        std::atomic<std::uint64_t> live_{0};
    };
};

static_assert(PoolPolicy<Heap>);

}  // namespace bifrost::pool
