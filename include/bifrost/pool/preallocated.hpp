#pragma once
/// \file
/// `pool::Preallocated`: objects created up front, recycled through a lock-free free list.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/pool/stats.hpp>

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace bifrost::pool {

/// Warms `initial` objects at construction; `acquire` pops one from a lock-free free list (a hit)
/// or, when the list is empty, creates a new one (a miss: the pool grows and keeps it). `release`
/// resets the object (`T::reset()`) and pushes it back. Neither path takes a lock but a miss;
/// after warm-up neither allocates.
///
/// The free list is a Treiber stack of object indices: its head is one 64-bit word holding the
/// top index and a version tag that every successful change increments, so a compare-and-swap
/// against a head that was popped and pushed back meanwhile fails (no ABA). Each object carries
/// its own index and the index below it (`next`, an atomic), and objects are only deleted with the
/// pool, so a thread reading the `next` of an object another thread just popped reads a valid,
/// if stale, value that its failing compare-and-swap then discards. Every shared access is
/// atomic, which keeps ThreadSanitizer runs free of suppressions for this pool.
///
/// Thread safety: `acquire`, `release` and `stats` may be called from any thread concurrently.
/// Precondition of destruction: every acquired object has been released.
struct Preallocated {
    template <class T>
    class pool {
        /// The pooled object and its free-list links. `release` gets the `T*` it handed out and
        /// finds the node again by a downcast.
        struct Node final : T {
            std::uint32_t index = 0;
            std::atomic<std::uint32_t> next{0};
        };

        static constexpr std::uint32_t nil = 0xFFFF'FFFF;
        /// Segment k of the index holds 2^k nodes, so 32 segments address every 32-bit index
        /// and a segment, once allocated, never moves.
        static constexpr std::size_t segments = 32;

      public:
        explicit pool(std::size_t initial) {
            for (std::size_t i = 0; i < initial; ++i)
                push(create());
            available_.store(initial, std::memory_order_relaxed);
        }

        pool(const pool&) = delete;
        pool& operator=(const pool&) = delete;

        ~pool() {
            const std::uint32_t n = created_.load(std::memory_order_acquire);
            for (std::uint32_t i = 0; i < n; ++i)
                delete node(i);
        }

        /// A clean object: from the free list, or new if the list is empty.
        T* acquire() {
            gets_.fetch_add(1, std::memory_order_relaxed);
            if (Node* n = pop()) {
                available_.fetch_sub(1, std::memory_order_relaxed);
                return n;
            }
            misses_.fetch_add(1, std::memory_order_relaxed);
            return create();
        }

        /// Resets `obj` and makes it available again.
        void release(T* obj) noexcept {
            obj->reset();
            returns_.fetch_add(1, std::memory_order_relaxed);
            available_.fetch_add(1, std::memory_order_relaxed);
            push(static_cast<Node*>(obj));
        }

        [[nodiscard]] PoolStats stats() const noexcept {
            PoolStats s;
            s.gets = gets_.load(std::memory_order_relaxed);
            s.misses = misses_.load(std::memory_order_relaxed);
            s.hits = s.gets - s.misses;
            s.returns = returns_.load(std::memory_order_relaxed);
            s.size = created_.load(std::memory_order_relaxed);
            s.available = available_.load(std::memory_order_relaxed);
            return s;
        }

      private:
        static std::uint32_t top_of(std::uint64_t head) noexcept {
            return static_cast<std::uint32_t>(head);
        }
        static std::uint64_t make_head(std::uint64_t old, std::uint32_t top) noexcept {
            return (((old >> 32) + 1) << 32) | top;  // the tag wraps after 2^32 changes
        }

        /// The node of index `i`. Its segment and slot were written before the node was first
        /// handed out, which happens-before any index of it being read from the list.
        Node* node(std::uint32_t i) const noexcept {
            const std::uint32_t n = i + 1;
            const int k = std::bit_width(n) - 1;
            return segment_[static_cast<std::size_t>(k)].load(std::memory_order_acquire)
                [n - (std::uint32_t(1) << k)];
        }

        /// A new node, recorded in the index (the slow path: a lock and allocations).
        Node* create() {
            auto fresh = std::make_unique<Node>();
            std::lock_guard lock(grow_mutex_);
            const std::uint32_t i = created_.load(std::memory_order_relaxed);
            if (i == nil) throw std::length_error("pool::Preallocated: too many objects");
            const std::uint32_t n = i + 1;
            const auto k = static_cast<std::size_t>(std::bit_width(n) - 1);
            Node** seg = segment_[k].load(std::memory_order_relaxed);
            if (seg == nullptr) {
                storage_[k] = std::make_unique<Node*[]>(std::size_t(1) << k);
                seg = storage_[k].get();
                segment_[k].store(seg, std::memory_order_release);
            }
            fresh->index = i;
            seg[n - (std::uint32_t(1) << k)] = fresh.get();
            created_.store(i + 1, std::memory_order_release);
            return fresh.release();
        }

        void push(Node* n) noexcept {
            std::uint64_t head = head_.load(std::memory_order_relaxed);
            do {
                n->next.store(top_of(head), std::memory_order_relaxed);
            } while (!head_.compare_exchange_weak(head, make_head(head, n->index),
                                                  std::memory_order_release,
                                                  std::memory_order_relaxed));
        }

        Node* pop() noexcept {
            std::uint64_t head = head_.load(std::memory_order_acquire);
            for (;;) {
                const std::uint32_t top = top_of(head);
                if (top == nil) return nullptr;
                Node* n = node(top);
                const std::uint32_t below = n->next.load(std::memory_order_relaxed);
                if (head_.compare_exchange_weak(head, make_head(head, below),
                                                std::memory_order_acquire,
                                                std::memory_order_acquire))
                    return n;
            }
        }

        alignas(detail::cache_line) std::atomic<std::uint64_t> head_{nil};
        alignas(detail::cache_line) std::atomic<std::uint64_t> gets_{0};
        std::atomic<std::uint64_t> misses_{0};
        alignas(detail::cache_line) std::atomic<std::uint64_t> returns_{0};
        std::atomic<std::uint64_t> available_{0};
        alignas(detail::cache_line) std::atomic<std::uint32_t> created_{0};
        std::array<std::atomic<Node**>, segments> segment_{};
        std::array<std::unique_ptr<Node*[]>, segments> storage_;  // guarded by grow_mutex_
        std::mutex grow_mutex_;
    };
};

static_assert(PoolPolicy<Preallocated>);

}  // namespace bifrost::pool
