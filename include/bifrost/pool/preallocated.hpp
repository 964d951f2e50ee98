#pragma once
/// \file
/// `pool::Preallocated`: objects created up front, recycled through a lock-free free list.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/pool/stats.hpp>

#include <boost/lockfree/stack.hpp>

#include <atomic>
#include <cstddef>
#include <memory>

namespace bifrost::pool {

/// Warms `initial` objects at construction; `acquire` pops one from a lock-free free list (a hit)
/// or, when the list is empty, creates a new one (a miss: the pool grows and keeps it). `release`
/// resets the object (`T::reset()`) and pushes it back. Neither path takes a lock; after warm-up
/// neither allocates (the free list reserves a node for every object it owns).
///
/// Thread safety: `acquire`, `release` and `stats` may be called from any thread concurrently.
/// Precondition of destruction: every acquired object has been released.
struct Preallocated {
    template <class T>
    class pool {
      public:
        explicit pool(std::size_t initial) : free_(initial == 0 ? 1 : initial) {
            for (std::size_t i = 0; i < initial; ++i)
                free_.bounded_push(new T());
            size_.store(initial, std::memory_order_relaxed);
            available_.store(initial, std::memory_order_relaxed);
        }

        pool(const pool&) = delete;
        pool& operator=(const pool&) = delete;

        ~pool() {
            T* obj = nullptr;
            while (free_.pop(obj))
                delete obj;
        }

        /// A clean object: from the free list, or new if the list is empty.
        T* acquire() {
            gets_.fetch_add(1, std::memory_order_relaxed);
            T* obj = nullptr;
            if (free_.pop(obj)) {
                available_.fetch_sub(1, std::memory_order_relaxed);
                return obj;
            }
            misses_.fetch_add(1, std::memory_order_relaxed);
            auto fresh = std::make_unique<T>();
            free_.reserve(1);  // one more node, so release() never allocates
            size_.fetch_add(1, std::memory_order_relaxed);
            return fresh.release();
        }

        /// Resets `obj` and makes it available again.
        void release(T* obj) noexcept {
            obj->reset();
            returns_.fetch_add(1, std::memory_order_relaxed);
            available_.fetch_add(1, std::memory_order_relaxed);
            while (!free_.bounded_push(obj))
                detail::cpu_relax();
        }

        [[nodiscard]] PoolStats stats() const noexcept {
            PoolStats s;
            s.gets = gets_.load(std::memory_order_relaxed);
            s.misses = misses_.load(std::memory_order_relaxed);
            s.hits = s.gets - s.misses;
            s.returns = returns_.load(std::memory_order_relaxed);
            s.size = size_.load(std::memory_order_relaxed);
            s.available = available_.load(std::memory_order_relaxed);
            return s;
        }

      private:
        boost::lockfree::stack<T*, boost::lockfree::fixed_sized<false>> free_;
        alignas(detail::cache_line) std::atomic<std::uint64_t> gets_{0};
        std::atomic<std::uint64_t> misses_{0};
        alignas(detail::cache_line) std::atomic<std::uint64_t> returns_{0};
        std::atomic<std::uint64_t> size_{0};
        std::atomic<std::uint64_t> available_{0};
    };
};

static_assert(PoolPolicy<Preallocated>);

}  // namespace bifrost::pool
