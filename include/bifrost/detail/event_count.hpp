#pragma once
/// \file
/// An event count: lets threads block until a predicate holds, with an optional deadline, without
/// ever missing a wake-up, while the notify side costs one atomic load when nobody waits.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace bifrost::detail {

/// Waiters register, then a seq_cst fence, then re-check their predicate under the mutex;
/// notifiers make their change, then a seq_cst fence, then read the waiter count. By the fences'
/// total order, either the notifier sees the waiter or the waiter's re-check sees the change, so a
/// wake-up cannot be lost. The mutex+condition variable slow path supports timed waits, which
/// `std::atomic::wait` does not, and avoids `std::counting_semaphore` (lost wake-ups in libstdc++
/// 12).
class EventCount {
  public:
    /// Wakes one waiter if there is any. Call after making a waited-for condition true.
    void notify_one() noexcept {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_relaxed) == 0) return;
        { std::lock_guard lock(mutex_); }
        cv_.notify_one();
    }

    /// Wakes every waiter if there is any.
    void notify_all() noexcept {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_relaxed) == 0) return;
        { std::lock_guard lock(mutex_); }
        cv_.notify_all();
    }

    /// Blocks until `ready()` returns true (returns true) or `deadline` passes (returns the last
    /// value of `ready()`). `ready` may have side effects (e.g. a try-push) and is called under an
    /// internal mutex, so it must not block.
    template <class Pred, class Clock, class Duration>
    bool wait_until(Pred&& ready, const std::chrono::time_point<Clock, Duration>& deadline) {
        if (ready()) return true;
        std::unique_lock lock(mutex_);
        waiters_.fetch_add(1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        bool ok = false;
        for (;;) {
            if (ready()) {
                ok = true;
                break;
            }
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
                ok = ready();
                break;
            }
        }
        waiters_.fetch_sub(1, std::memory_order_seq_cst);
        return ok;
    }

    /// Blocks until `ready()` returns true.
    template <class Pred>
    void wait(Pred&& ready) {
        if (ready()) return;
        std::unique_lock lock(mutex_);
        waiters_.fetch_add(1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        while (!ready())
            cv_.wait(lock);
        waiters_.fetch_sub(1, std::memory_order_seq_cst);
    }

    [[nodiscard]] int waiters() const noexcept { return waiters_.load(std::memory_order_relaxed); }

  private:
    std::atomic<int> waiters_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
};

}  // namespace bifrost::detail
