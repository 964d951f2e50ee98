#pragma once
/// \file
/// `queue::Ring<T>`: a bounded, lock-free, multi-producer multi-consumer queue of trivially
/// copyable handles, built on `boost::lockfree::queue`, with an exact capacity, a closed state for
/// shutdown, and blocking producer waits that cannot lose a wake-up.

#include <bifrost/detail/common.hpp>
#include <bifrost/detail/event_count.hpp>

#include <boost/lockfree/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

namespace bifrost::queue {

/// What a push attempt did.
enum class PushStatus : std::uint8_t {
    ok,      ///< the handle is in the ring
    full,    ///< the ring holds `capacity()` handles
    closed,  ///< the ring was closed; it accepts nothing more
};

/// Bounded lock-free MPMC ring of handles.
///
/// Capacity is exact and chosen at run time (1 to 2^40). Storage is Boost.Lockfree's node-based
/// queue with a preallocated free list, so sizes of 65,536 and more work (the fixed-size form
/// indexes nodes with 16 bits) and no push ever allocates (`bounded_push`). An atomic counter of
/// reserved slots enforces the capacity and carries the closed bit, so "closed" and "full" are
/// decided by one atomic step.
///
/// Thread safety: every member may be called from any thread concurrently.
template <class T>
class Ring {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "Ring stores handles (pointers, indices): T must be trivially copyable and "
                  "trivially destructible");

  public:
    /// Creates a ring holding at most `capacity` handles. Throws `std::invalid_argument` for 0.
    explicit Ring(std::size_t capacity) : queue_(checked(capacity)), capacity_(capacity) {}

    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    /// Pushes without waiting.
    PushStatus try_push(T value) noexcept {
        std::uint64_t c = count_.load(std::memory_order_relaxed);
        do {
            if (c & closed_bit) return PushStatus::closed;
            if (c >= capacity_) return PushStatus::full;
        } while (!count_.compare_exchange_weak(c, c + 1, std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
        // A slot is reserved, so a free node exists: the free list holds capacity + 1 nodes and
        // at most (reserved + 1) are in use. The loop only guards against a transient CAS race.
        while (!queue_.bounded_push(value))
            detail::cpu_relax();
        return PushStatus::ok;
    }

    /// Pushes, waiting while the ring is full until `deadline`. Returns `full` on timeout.
    template <class Clock, class Duration>
    PushStatus push_wait_until(T value, const std::chrono::time_point<Clock, Duration>& deadline) {
        PushStatus s = PushStatus::full;
        not_full_.wait_until(
            [&] {
                s = try_push(value);
                return s != PushStatus::full;
            },
            deadline);
        return s;
    }

    /// Pushes, waiting while the ring is full for as long as it takes (or until closed).
    PushStatus push_wait(T value) {
        PushStatus s = PushStatus::full;
        not_full_.wait([&] {
            s = try_push(value);
            return s != PushStatus::full;
        });
        return s;
    }

    /// Pops one handle. False means "empty" (or, under contention, "momentarily looked empty");
    /// check `size()` to tell them apart.
    bool try_pop(T& out) noexcept {
        if (!queue_.pop(out)) return false;
        count_.fetch_sub(1, std::memory_order_seq_cst);
        not_full_.notify_one();
        return true;
    }

    /// Stops intake: every later push returns `closed`, and producers blocked in a push wake up.
    /// Handles already inside stay poppable.
    void close() noexcept {
        count_.fetch_or(closed_bit, std::memory_order_seq_cst);
        not_full_.notify_all();
    }

    /// Reopens a closed ring.
    void reopen() noexcept { count_.fetch_and(~closed_bit, std::memory_order_seq_cst); }

    [[nodiscard]] bool closed() const noexcept {
        return (count_.load(std::memory_order_acquire) & closed_bit) != 0;
    }

    /// Handles inside plus pushes in progress. Exact when quiescent.
    [[nodiscard]] std::size_t size() const noexcept {
        return static_cast<std::size_t>(count_.load(std::memory_order_seq_cst) & ~closed_bit);
    }

    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

    /// Producers currently blocked waiting for space.
    [[nodiscard]] int blocked_producers() const noexcept { return not_full_.waiters(); }

  private:
    static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;

    static std::size_t checked(std::size_t capacity) {
        if (capacity == 0)
            throw std::invalid_argument("queue capacity (buffer_size) must be at least 1");
        if (capacity > (std::size_t{1} << 40))
            throw std::invalid_argument("queue capacity (buffer_size) is larger than 2^40");
        return capacity;
    }

    boost::lockfree::queue<T, boost::lockfree::fixed_sized<false>> queue_;
    const std::size_t capacity_;
    alignas(detail::cache_line) std::atomic<std::uint64_t> count_{0};
    alignas(detail::cache_line) detail::EventCount not_full_;
};

}  // namespace bifrost::queue
