#pragma once
/// \file
/// `detail::ProviderQueue`: the provider-independent half of a provider pool: its bounded ring,
/// admission (immediate, blocking, or parked in an overflow list for async callers), waking
/// parked worker threads, counters and histograms. `ProviderPool<P, T>` adds the workers.
///
/// Nothing on the request path here is virtual; the virtual members are lifecycle and stats.

#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/histogram.hpp>
#include <bifrost/core/job.hpp>
#include <bifrost/core/stats.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/detail/handler_memory.hpp>
#include <bifrost/queue/ring.hpp>
#include <bifrost/schema/error.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost::detail {

/// The part of a worker thread that producers touch: its event loop and its parking flags.
struct WorkerCore {
    asio::io_context ioc{1};
    alignas(cache_line) std::atomic<bool> parked{false};
    std::atomic<bool> wake_pending{false};
    HandlerArena wake_arena;
};

class ProviderQueue {
  public:
    using Clock = std::chrono::steady_clock;

    ProviderQueue(std::string name, const ConcurrencyAndBufferSize& c)
        : name_(std::move(name)), ring_(c.buffer_size), concurrency_(c.concurrency) {}

    ProviderQueue(const ProviderQueue&) = delete;
    ProviderQueue& operator=(const ProviderQueue&) = delete;
    virtual ~ProviderQueue() = default;

    [[nodiscard]] std::string_view name() const noexcept { return name_; }
    [[nodiscard]] std::size_t depth() const noexcept { return ring_.size(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return ring_.capacity(); }

    // ---- admission: called on the caller's thread ---------------------------------------------

    /// Counts a request routed here (before admission).
    void count_submitted() noexcept { submitted_.fetch_add(1, std::memory_order_relaxed); }

    /// Pushes without waiting. On `ok` the queue holds a reference to `j` and a worker is woken.
    queue::PushStatus try_enqueue(Job* j) noexcept {
        prepare(j);
        const auto s = ring_.try_push(j);
        admitted(j, s, false);
        return s;
    }

    /// Pushes, blocking the calling thread while the ring is full, until `deadline`.
    /// `full` means the deadline passed.
    queue::PushStatus enqueue_blocking(Job* j, Clock::time_point deadline) {
        prepare(j);
        const auto s = deadline == Clock::time_point::max() ? ring_.push_wait(j)
                                                            : ring_.push_wait_until(j, deadline);
        admitted(j, s, true);
        return s;
    }

    /// Parks `j` until the ring has space or `deadline` passes, without blocking a thread.
    /// The job is completed with an error if the deadline passes or the queue shuts down.
    void enqueue_parked(Job* j, Clock::time_point deadline) {
        j->add_ref();
        j->enqueued_at = Clock::now();
        j->space_deadline = deadline;
        bool closed = false;
        bool arm = false;
        {
            std::lock_guard lock(overflow_mutex_);
            closed = closed_;
            if (!closed) {
                j->next = nullptr;
                j->prev = overflow_tail_;
                if (overflow_tail_)
                    overflow_tail_->next = j;
                else
                    overflow_head_ = j;
                overflow_tail_ = j;
                overflow_count_.fetch_add(1, std::memory_order_seq_cst);
                if (deadline < armed_deadline_) {
                    armed_deadline_ = deadline;
                    arm = true;
                }
            }
        }
        if (closed) {
            rejected_shutdown_.fetch_add(1, std::memory_order_relaxed);
            finish_unqueued(j, errors::shutting_down(name_));
            return;
        }
        drain_overflow();
        if (arm) post_overflow_timer_rearm();
    }

    // ---- figures ------------------------------------------------------------------------------

    void count_dropped() noexcept { dropped_.fetch_add(1, std::memory_order_relaxed); }
    void count_queue_timeout() noexcept { queue_timeouts_.fetch_add(1, std::memory_order_relaxed); }
    void count_rejected_shutdown() noexcept {
        rejected_shutdown_.fetch_add(1, std::memory_order_relaxed);
    }

    /// Snapshot of this provider's figures.
    [[nodiscard]] ProviderStats stats() const {
        ProviderStats s;
        s.name = name_;
        s.queue_depth = ring_.size();
        s.queue_capacity = ring_.capacity();
        s.waiting_for_space = static_cast<std::size_t>(ring_.blocked_producers()) +
                              overflow_count_.load(std::memory_order_relaxed);
        s.concurrency = concurrency_;
        s.in_flight = inflight_.load(std::memory_order_relaxed);
        s.idle_workers = s.concurrency > s.in_flight ? s.concurrency - s.in_flight : 0;
        s.worker_threads = cores_.size();
        s.submitted = submitted_.load(std::memory_order_relaxed);
        s.queued = queued_.load(std::memory_order_relaxed);
        s.waited_for_space = waited_.load(std::memory_order_relaxed);
        s.dropped = dropped_.load(std::memory_order_relaxed);
        s.queue_timeouts = queue_timeouts_.load(std::memory_order_relaxed);
        s.rejected_shutdown = rejected_shutdown_.load(std::memory_order_relaxed);
        s.completed = completed_.load(std::memory_order_relaxed);
        s.failed = failed_.load(std::memory_order_relaxed);
        s.queue_wait = queue_wait_.summary();
        s.upstream = upstream_.summary();
        return s;
    }

    // ---- lifecycle ----------------------------------------------------------------------------

    /// Stops intake: later pushes fail with `closed`, blocked producers wake, parked async
    /// requests fail with 503 "provider is shutting down". Queued and in-flight requests go on.
    void close() {
        ring_.close();
        Job* list = nullptr;
        {
            std::lock_guard lock(overflow_mutex_);
            closed_ = true;
            list = overflow_head_;
            overflow_head_ = overflow_tail_ = nullptr;
            overflow_count_.store(0, std::memory_order_seq_cst);
        }
        while (list) {
            Job* next = list->next;
            rejected_shutdown_.fetch_add(1, std::memory_order_relaxed);
            finish_unqueued(list, errors::shutting_down(name_));
            list = next;
        }
    }

    /// Stops the workers after a drain of at most `drain`; see `ProviderPool`.
    virtual void stop(std::chrono::milliseconds drain) = 0;

    /// True once nothing is queued or in flight.
    [[nodiscard]] bool idle() const noexcept {
        return ring_.empty() && inflight_.load(std::memory_order_seq_cst) == 0;
    }

  protected:
    // ---- consumer side (worker threads) ------------------------------------------------------

    /// Claims one of `concurrency` in-flight slots.
    bool acquire_slot() noexcept {
        std::size_t n = inflight_.load(std::memory_order_relaxed);
        do {
            if (n >= concurrency_) return false;
        } while (!inflight_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel,
                                                  std::memory_order_relaxed));
        return true;
    }
    void release_slot() noexcept { inflight_.fetch_sub(1, std::memory_order_acq_rel); }

    /// Pops the next job (the caller holds a slot). Moves parked requests into freed space.
    bool pop(Job*& j) noexcept {
        if (!ring_.try_pop(j)) return false;
        if (overflow_count_.load(std::memory_order_seq_cst) != 0) drain_overflow();
        return true;
    }

    /// True when a worker could start a job now.
    [[nodiscard]] bool work_available() const noexcept {
        return !ring_.empty() && inflight_.load(std::memory_order_relaxed) < concurrency_;
    }

    /// Completes a job that never reached a worker with `e` and drops the queue's reference.
    void finish_unqueued(Job* j, Error e) {
        j->outcome.fail(std::move(e));
        j->complete();
        j->release();
    }

    /// Wakes one parked worker thread, if any is parked. Call after a successful push.
    void wake_one() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        for (WorkerCore* w : cores_) {
            if (w->parked.load(std::memory_order_relaxed)) {
                post_wake(*w);
                return;
            }
        }
    }

    /// Wakes every worker thread (shutdown).
    void wake_all() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        for (WorkerCore* w : cores_)
            post_wake(*w);
    }

    /// Parks the calling worker thread in its event loop until a handler runs (I/O completion,
    /// timer, or a producer's wake-up). Returns without sleeping if work appeared meanwhile.
    void park(WorkerCore& w) {
        w.parked.store(true, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (!work_available() && !stopping_.load(std::memory_order_relaxed)) w.ioc.run_one();
        w.parked.store(false, std::memory_order_relaxed);
    }

    /// Destroys the objects bound to worker 0's event loop; call after the workers have joined
    /// and before their loops are destroyed.
    void release_loop_objects() noexcept { overflow_timer_.reset(); }

    void count_finished(bool ok) noexcept {
        (ok ? completed_ : failed_).fetch_add(1, std::memory_order_relaxed);
    }

    std::string name_;
    queue::Ring<Job*> ring_;
    std::size_t concurrency_;
    std::vector<WorkerCore*> cores_;  // set once before the workers start
    std::atomic<bool> stopping_{false};
    std::atomic<bool> aborting_{false};

    LatencyHistogram queue_wait_;
    LatencyHistogram upstream_;

  private:
    void prepare(Job* j) noexcept {
        j->add_ref();
        j->enqueued_at = Clock::now();
    }

    void admitted(Job* j, queue::PushStatus s, bool waited) {
        if (s == queue::PushStatus::ok) {
            queued_.fetch_add(1, std::memory_order_relaxed);
            if (waited) waited_.fetch_add(1, std::memory_order_relaxed);
            wake_one();
        } else {
            j->refs.fetch_sub(1, std::memory_order_relaxed);  // the caller still holds its own
        }
    }

    void post_wake(WorkerCore& w) {
        if (w.wake_pending.exchange(true, std::memory_order_acq_rel)) return;
        asio::post(w.ioc, asio::bind_allocator(ArenaAllocator<void>(w.wake_arena), [&w] {
                       w.wake_pending.store(false, std::memory_order_release);
                   }));
    }

    /// Moves parked requests into the ring while it has space.
    void drain_overflow() {
        bool moved = false;
        {
            std::lock_guard lock(overflow_mutex_);
            while (overflow_head_) {
                Job* j = overflow_head_;
                j->enqueued_at = Clock::now();
                if (ring_.try_push(j) != queue::PushStatus::ok) break;
                unlink_overflow_locked(j);
                queued_.fetch_add(1, std::memory_order_relaxed);
                waited_.fetch_add(1, std::memory_order_relaxed);
                moved = true;
            }
        }
        if (moved) wake_one();
    }

    void unlink_overflow_locked(Job* j) noexcept {
        if (j->prev)
            j->prev->next = j->next;
        else
            overflow_head_ = j->next;
        if (j->next)
            j->next->prev = j->prev;
        else
            overflow_tail_ = j->prev;
        j->next = j->prev = nullptr;
        overflow_count_.fetch_sub(1, std::memory_order_seq_cst);
    }

    /// The overflow deadline timer lives on worker 0's loop; arming it is posted there.
    void post_overflow_timer_rearm() {
        if (cores_.empty()) return;
        asio::post(cores_.front()->ioc, [this] { rearm_overflow_timer(); });
    }

    void rearm_overflow_timer() {
        Clock::time_point next;
        {
            std::lock_guard lock(overflow_mutex_);
            next = Clock::time_point::max();
            for (Job* j = overflow_head_; j; j = j->next)
                if (j->space_deadline < next) next = j->space_deadline;
            armed_deadline_ = next;
        }
        if (!overflow_timer_) overflow_timer_.emplace(cores_.front()->ioc);
        if (next == Clock::time_point::max()) {
            overflow_timer_->cancel();
            return;
        }
        overflow_timer_->expires_at(next);
        overflow_timer_->async_wait([this](boost::system::error_code ec) {
            if (ec) return;  // re-armed or cancelled
            expire_overflow();
        });
    }

    void expire_overflow() {
        const auto now = Clock::now();
        Job* expired = nullptr;
        {
            std::lock_guard lock(overflow_mutex_);
            for (Job* j = overflow_head_; j;) {
                Job* next = j->next;
                if (j->space_deadline <= now) {
                    unlink_overflow_locked(j);
                    j->next = expired;
                    expired = j;
                }
                j = next;
            }
            armed_deadline_ = Clock::time_point::max();
        }
        while (expired) {
            Job* next = expired->next;
            expired->next = nullptr;
            queue_timeouts_.fetch_add(1, std::memory_order_relaxed);
            finish_unqueued(expired, errors::queue_timeout(name_));
            expired = next;
        }
        rearm_overflow_timer();
    }

    alignas(cache_line) std::atomic<std::size_t> inflight_{0};

    alignas(cache_line) std::atomic<std::size_t> overflow_count_{0};
    std::mutex overflow_mutex_;
    Job* overflow_head_ = nullptr;
    Job* overflow_tail_ = nullptr;
    bool closed_ = false;
    Clock::time_point armed_deadline_ = Clock::time_point::max();
    std::optional<asio::steady_timer> overflow_timer_;  // touched only on worker 0's thread

    alignas(cache_line) std::atomic<std::uint64_t> submitted_{0};
    std::atomic<std::uint64_t> queued_{0};
    std::atomic<std::uint64_t> waited_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> queue_timeouts_{0};
    std::atomic<std::uint64_t> rejected_shutdown_{0};
    alignas(cache_line) std::atomic<std::uint64_t> completed_{0};
    std::atomic<std::uint64_t> failed_{0};
};

}  // namespace bifrost::detail
