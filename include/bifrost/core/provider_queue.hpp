#pragma once
/// \file
/// `detail::ProviderQueue`: the provider-independent half of a provider pool: its bounded
/// ring(s), admission (immediate, blocking, or parked in an overflow list for async callers),
/// aborts (deadline, cancellation, shutdown), the circuit breaker, the live settings, waking
/// parked worker threads, counters and histograms. `ProviderPool<P, T>` adds the workers.
///
/// Nothing on the request path here is virtual; the virtual members are lifecycle, stats and the
/// rare abort of a running attempt. (Starting a job submitted on its own worker goes through one
/// function pointer the pool sets, `start_local_`.)

#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/circuit_breaker.hpp>
#include <bifrost/core/histogram.hpp>
#include <bifrost/core/job.hpp>
#include <bifrost/core/key_selector.hpp>
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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bifrost::detail {

/// A FIFO list of jobs linked through `Job::ready_next` (a job is on at most one list at a time).
/// Owner thread only.
struct JobList {
    Job* head = nullptr;
    Job* tail = nullptr;

    [[nodiscard]] bool empty() const noexcept { return head == nullptr; }

    void push(Job* j) noexcept {
        j->ready_next = nullptr;
        if (tail)
            tail->ready_next = j;
        else
            head = j;
        tail = j;
    }

    /// The first job, taken off the list (null when empty).
    Job* pop() noexcept {
        Job* j = head;
        if (!j) return nullptr;
        head = j->ready_next;
        if (!head) tail = nullptr;
        j->ready_next = nullptr;
        return j;
    }

    /// Takes `j` off the list wherever it is; false when it is not on it.
    bool remove(Job* j) noexcept {
        Job* prev = nullptr;
        for (Job* r = head; r; prev = r, r = r->ready_next) {
            if (r != j) continue;
            if (prev)
                prev->ready_next = r->ready_next;
            else
                head = r->ready_next;
            if (tail == r) tail = prev;
            j->ready_next = nullptr;
            return true;
        }
        return false;
    }
};

/// The part of a worker thread that other threads touch: its event loop and its parking flags.
struct WorkerCore {
    asio::io_context ioc{1};
    /// When the worker must next look at its jobs' deadlines (max: none to watch). The worker's
    /// own clock, not an Asio timer: a timer would give the event loop a reactor, and every
    /// poll of it a system call.
    std::chrono::steady_clock::time_point next_deadline =
        std::chrono::steady_clock::time_point::max();
    /// Jobs submitted on this worker's own thread (a server connection running here), each
    /// holding a concurrency slot, FIFO through `Job::ready_next`; the worker starts them at
    /// its next turn, or at once (`ProviderQueue::start_submitted`). Only this worker's thread
    /// touches the list.
    JobList local;
    /// True while `start_submitted` starts the local jobs (a job submitted meanwhile, e.g. a
    /// fallback decided inside a start, is started by the same loop).
    bool starting_local = false;
    alignas(cache_line) std::atomic<bool> parked{false};
    std::atomic<bool> wake_pending{false};
    HandlerArena wake_arena;
};

/// A provider's live settings: replaced as a whole by `update`, read by workers per attempt.
struct ProviderSettings {
    explicit ProviderSettings(ProviderConfig c) : config(std::move(c)), keys(config.keys) {}
    ProviderSettings(const ProviderSettings&) = delete;
    ProviderSettings& operator=(const ProviderSettings&) = delete;

    ProviderConfig config;
    KeySelector keys;  // refers to config.keys
};

/// Why an attempt was aborted (selects the counter).
enum class AbortKind : std::uint8_t { timed_out, cancelled, shutdown };

/// Validates the parts of a provider config the engine relies on; throws
/// `std::invalid_argument` naming the field.
inline void validate(const ProviderConfig& c) {
    const auto& cb = c.concurrency_and_buffer_size;
    if (cb.concurrency == 0)
        throw std::invalid_argument("concurrency_and_buffer_size.concurrency must be at least 1");
    if (cb.buffer_size == 0)
        throw std::invalid_argument("concurrency_and_buffer_size.buffer_size must be at least 1");
    if (cb.worker_threads == 0 || cb.worker_threads > 256)
        throw std::invalid_argument(
            "concurrency_and_buffer_size.worker_threads must be between 1 and 256");
    const auto& n = c.network_config;
    if (n.default_request_timeout.count() < 0)
        throw std::invalid_argument(
            "network_config.default_request_timeout_in_seconds must not be negative");
    if (n.max_retries < 0)
        throw std::invalid_argument("network_config.max_retries must not be negative");
    if (n.retry_backoff_initial.count() < 0 || n.retry_backoff_max.count() < 0)
        throw std::invalid_argument("network_config.retry_backoff_* must not be negative");
}

class ProviderQueue {
  public:
    using Clock = std::chrono::steady_clock;
    using Ring = queue::Ring<Job*>;

    ProviderQueue(std::string name, ProviderConfig config) : name_(std::move(name)) {
        validate(config);
        rings_.push_back(std::make_unique<Ring>(config.concurrency_and_buffer_size.buffer_size));
        ring_.store(rings_.back().get(), std::memory_order_relaxed);
        concurrency_.store(config.concurrency_and_buffer_size.concurrency,
                           std::memory_order_relaxed);
        breaker_.configure(config.circuit_breaker);
        settings_list_.push_back(std::make_unique<ProviderSettings>(std::move(config)));
        settings_.store(settings_list_.back().get(), std::memory_order_relaxed);
    }

    ProviderQueue(const ProviderQueue&) = delete;
    ProviderQueue& operator=(const ProviderQueue&) = delete;
    virtual ~ProviderQueue() = default;

    [[nodiscard]] std::string_view name() const noexcept { return name_; }
    [[nodiscard]] std::size_t depth() const noexcept {
        const Ring* d = draining_.load(std::memory_order_acquire);
        return ring_.load(std::memory_order_acquire)->size() + (d ? d->size() : 0);
    }
    /// True when a request queued now would wait for a concurrency slot to free up (an
    /// upstream call to end), not just for a worker to come round to it: the queue holds at
    /// least as many requests as there are free slots.
    [[nodiscard]] bool backlogged() const noexcept {
        const std::size_t c = concurrency_.load(std::memory_order_relaxed);
        const std::size_t n = inflight_.load(std::memory_order_relaxed);
        return depth() >= (c > n ? c - n : 0);
    }

    [[nodiscard]] std::size_t capacity() const noexcept {
        return ring_.load(std::memory_order_acquire)->capacity();
    }
    [[nodiscard]] const ProviderSettings& settings() const noexcept {
        return *settings_.load(std::memory_order_acquire);
    }
    /// Whether the provider type serves requests of kind `op` (chat always).
    [[nodiscard]] bool supports(Operation op) const noexcept {
        return (operations_ & (1u << static_cast<unsigned>(op))) != 0;
    }
    /// Why streamed requests cannot be served here, or nullptr when they can.
    [[nodiscard]] const char* streaming_unsupported() const noexcept {
        return streaming_unsupported_;
    }

    /// The attempt timeout (`default_request_timeout_in_seconds`; 0 = none).
    [[nodiscard]] std::chrono::nanoseconds default_timeout() const noexcept {
        return settings().config.network_config.default_request_timeout;
    }

    // ---- admission: called on the caller's thread ---------------------------------------------

    /// Counts a request routed here (before admission).
    void count_submitted() noexcept { submitted_.fetch_add(1, std::memory_order_relaxed); }

    /// The circuit breaker's verdict for a new request.
    CircuitBreaker::Admit breaker_allow() noexcept { return breaker_.allow(); }

    /// Pushes without waiting. On `ok` the queue holds a reference to `j` and a worker is woken.
    ///
    /// Submitted on one of this provider's own workers while nothing waits in the ring and a
    /// concurrency slot is free, the job skips the ring: it takes the slot and joins that
    /// worker's local list; an asynchronous caller then starts it at once (`start_submitted`),
    /// anything else when the worker next comes round. The request is then read, sent upstream and
    /// answered on one thread, with none of the ring's shared counters and no chance of another
    /// worker taking it (which would move the request to that thread and its answer back).
    queue::PushStatus try_enqueue(Job* j) noexcept {
        prepare(j);
        if (current_queue_ == this && current_core_ != nullptr && depth() == 0 &&
            !ring_.load(std::memory_order_acquire)->closed() && acquire_slot()) {
            current_core_->local.push(j);
            queued_.fetch_add(1, std::memory_order_relaxed);
            return queue::PushStatus::ok;
        }
        const auto s = push([&](Ring& r) { return r.try_push(j); });
        admitted(j, s, false);
        return s;
    }

    /// On one of this provider's own workers, starts the jobs `try_enqueue` put on its local
    /// list now, inside the handler that submitted them, rather than when the worker's round of
    /// handlers is over (after the rest of the round and a poll of the event loop, a system
    /// call): the upstream request leaves sooner. For asynchronous callers only (a blocking one
    /// would wait on its own worker either way). Not re-entered.
    void start_submitted() {
        if (current_queue_ != this || current_core_ == nullptr) return;
        WorkerCore& w = *current_core_;
        if (w.starting_local || w.local.empty()) return;
        w.starting_local = true;
        struct Done {
            WorkerCore& w;
            ~Done() { w.starting_local = false; }
        } done{w};
        start_local_(*this, w);
    }

    /// Pushes, blocking the calling thread while the ring is full, until `deadline`.
    /// `full` means the deadline passed.
    queue::PushStatus enqueue_blocking(Job* j, Clock::time_point deadline) {
        prepare(j);
        const auto s = push([&](Ring& r) {
            return deadline == Clock::time_point::max() ? r.push_wait(j)
                                                        : r.push_wait_until(j, deadline);
        });
        admitted(j, s, true);
        return s;
    }

    /// Parks `j` until the ring has space or `space_deadline` passes, without blocking a thread.
    /// The job is completed with an error if a deadline passes or the queue shuts down.
    void enqueue_parked(Job* j, Clock::time_point space_deadline) {
        j->add_ref();
        j->enqueued_at = Clock::now();
        j->space_deadline = space_deadline;
        const auto wake_at = std::min(space_deadline, j->deadline);
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
                if (wake_at < armed_deadline_) {
                    armed_deadline_ = wake_at;
                    arm = true;
                }
            }
        }
        if (closed) {
            finish_unqueued(j, errors::shutting_down(name_), &rejected_shutdown_);
            return;
        }
        drain_overflow();
        if (arm) post_overflow_timer_rearm();
    }

    // ---- aborts: any thread ---------------------------------------------------------------------

    /// Decides the attempt with `e` if nobody has yet: completes the caller at once and, if the
    /// attempt is running, stops its upstream call on its worker. Returns true if this call
    /// decided it. The queue or worker holding the job drops it later.
    bool abort(Job* j, Error e, AbortKind kind) {
        const std::uint32_t from = j->claim();
        if (from == Job::claimed) return false;
        j->outcome.fail(std::move(e));
        switch (kind) {
            case AbortKind::timed_out:
                timed_out_.fetch_add(1, std::memory_order_relaxed);
                if (from == Job::running) breaker_.record_failure();
                break;
            case AbortKind::cancelled:
                cancelled_.fetch_add(1, std::memory_order_relaxed);
                break;
            case AbortKind::shutdown:
                rejected_shutdown_.fetch_add(1, std::memory_order_relaxed);
                break;
        }
        if (j->probe && (from == Job::queued || kind != AbortKind::timed_out))
            breaker_.probe_abandoned();
        if (from == Job::running) stop_running(j);
        complete_guarded(j);
        return true;
    }

    // ---- figures ------------------------------------------------------------------------------

    /// Terminal counters for attempts refused at admission.
    enum class Refusal : std::uint8_t {
        dropped,
        queue_timeout,
        timed_out,
        shutdown,
        circuit,
        cancelled
    };
    void count_refusal(Refusal r) noexcept {
        std::atomic<std::uint64_t>* c = &dropped_;
        switch (r) {
            case Refusal::dropped:
                c = &dropped_;
                break;
            case Refusal::queue_timeout:
                c = &queue_timeouts_;
                break;
            case Refusal::timed_out:
                c = &timed_out_;
                break;
            case Refusal::shutdown:
                c = &rejected_shutdown_;
                break;
            case Refusal::circuit:
                c = &rejected_circuit_;
                break;
            case Refusal::cancelled:
                c = &cancelled_;
                break;
        }
        c->fetch_add(1, std::memory_order_relaxed);
    }
    void probe_abandoned() noexcept { breaker_.probe_abandoned(); }
    [[nodiscard]] const CircuitBreaker& breaker() const noexcept { return breaker_; }

    /// Snapshot of this provider's figures.
    [[nodiscard]] ProviderStats stats() const {
        ProviderStats s;
        s.name = name_;
        const Ring* r = ring_.load(std::memory_order_acquire);
        const Ring* d = draining_.load(std::memory_order_acquire);
        s.queue_depth = depth();
        s.queue_capacity = r->capacity();
        s.waiting_for_space = static_cast<std::size_t>(r->blocked_producers()) +
                              (d ? static_cast<std::size_t>(d->blocked_producers()) : 0) +
                              overflow_count_.load(std::memory_order_relaxed);
        s.concurrency = concurrency_.load(std::memory_order_relaxed);
        s.in_flight = inflight_.load(std::memory_order_relaxed);
        s.idle_workers = s.concurrency > s.in_flight ? s.concurrency - s.in_flight : 0;
        s.worker_threads = cores_.size();
        s.in_retry_backoff = backing_off_.load(std::memory_order_relaxed);
        s.submitted = submitted_.load(std::memory_order_relaxed);
        s.queued = queued_.load(std::memory_order_relaxed);
        s.waited_for_space = waited_.load(std::memory_order_relaxed);
        s.dropped = dropped_.load(std::memory_order_relaxed);
        s.queue_timeouts = queue_timeouts_.load(std::memory_order_relaxed);
        s.rejected_shutdown = rejected_shutdown_.load(std::memory_order_relaxed);
        s.rejected_circuit = rejected_circuit_.load(std::memory_order_relaxed);
        s.completed = completed_.load(std::memory_order_relaxed);
        s.failed = failed_.load(std::memory_order_relaxed);
        s.timed_out = timed_out_.load(std::memory_order_relaxed);
        s.cancelled = cancelled_.load(std::memory_order_relaxed);
        s.retries = retries_.load(std::memory_order_relaxed);
        s.circuit = breaker_.state();
        s.circuit_opened = breaker_.opened();
        s.consecutive_failures = breaker_.consecutive_failures();
        s.queue_wait = queue_wait_.summary();
        s.upstream = upstream_.summary();
        return s;
    }

    /// The event loops of this provider's worker threads (one each, run by that thread alone:
    /// what is posted to one runs in order, one at a time). They run until `stop()` has joined
    /// the workers; work posted to them runs on the worker threads, between jobs.
    [[nodiscard]] std::vector<asio::io_context::executor_type> worker_executors() const {
        std::vector<asio::io_context::executor_type> out;
        out.reserve(cores_.size());
        for (WorkerCore* w : cores_)
            out.push_back(w->ioc.get_executor());
        return out;
    }

    // ---- lifecycle ----------------------------------------------------------------------------

    /// Stops intake: later pushes fail with `closed`, blocked producers wake, parked async
    /// requests fail with 503 "provider is shutting down". Queued and in-flight requests go on.
    void close() {
        Job* list = nullptr;
        {
            std::lock_guard lock(overflow_mutex_);
            closed_ = true;
            list = overflow_head_;
            overflow_head_ = overflow_tail_ = nullptr;
            overflow_count_.store(0, std::memory_order_seq_cst);
        }
        {
            std::lock_guard lock(reconfigure_mutex_);
            intake_closed_ = true;
            for (auto& r : rings_)
                r->close();
        }
        while (list) {
            Job* next = list->next;
            list->next = list->prev = nullptr;
            finish_unqueued(list, errors::shutting_down(name_), &rejected_shutdown_);
            list = next;
        }
    }

    /// Applies a new configuration while serving traffic: concurrency, buffer size (a new ring;
    /// queued requests move over without loss or duplication), keys, network settings and the
    /// circuit breaker. `worker_threads` cannot change. Throws `std::invalid_argument` naming a
    /// bad field.
    void update(ProviderConfig config) {
        validate(config);
        std::lock_guard lock(reconfigure_mutex_);
        if (intake_closed_) throw std::invalid_argument("provider is shutting down");
        if (config.concurrency_and_buffer_size.worker_threads != cores_.size())
            throw std::invalid_argument(
                "concurrency_and_buffer_size.worker_threads cannot change while the provider runs");
        const std::size_t buffer = config.concurrency_and_buffer_size.buffer_size;
        breaker_.configure(config.circuit_breaker);
        concurrency_.store(config.concurrency_and_buffer_size.concurrency,
                           std::memory_order_release);
        settings_list_.push_back(std::make_unique<ProviderSettings>(std::move(config)));
        settings_.store(settings_list_.back().get(), std::memory_order_release);
        if (buffer != ring_.load(std::memory_order_relaxed)->capacity())
            replace_ring_locked(buffer);
        wake_all();  // more slots or a new ring: let every worker look
    }

    /// Stops the workers after a drain of at most `drain`; see `ProviderPool`.
    virtual void stop(std::chrono::milliseconds drain) = 0;

    /// True once nothing is queued, running or waiting to retry.
    [[nodiscard]] bool idle() const noexcept {
        return depth() == 0 && owned_.load(std::memory_order_seq_cst) == 0;
    }

  protected:
    /// The queue whose worker the calling thread is (set by the pool's worker loop), or null.
    static inline thread_local const ProviderQueue* current_queue_ = nullptr;
    /// The worker the calling thread runs, when it is one of `current_queue_`'s.
    static inline thread_local WorkerCore* current_core_ = nullptr;

    /// Set by the pool when its provider or transport cannot stream.
    const char* streaming_unsupported_ = nullptr;
    /// Set by the pool: starts the jobs on the local list of `w` (one of this queue's workers,
    /// on its own thread).
    void (*start_local_)(ProviderQueue& self, WorkerCore& w) = nullptr;

    // ---- consumer side (worker threads) ------------------------------------------------------

    /// Claims one of `concurrency` in-flight slots.
    bool acquire_slot() noexcept {
        std::size_t n = inflight_.load(std::memory_order_relaxed);
        do {
            if (n >= concurrency_.load(std::memory_order_relaxed)) return false;
        } while (!inflight_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel,
                                                  std::memory_order_relaxed));
        return true;
    }
    void release_slot() noexcept { inflight_.fetch_sub(1, std::memory_order_acq_rel); }

    /// Pops the next job (the caller holds a slot): from a ring being retired first, then the
    /// current one. Moves parked requests into freed space.
    bool pop(Job*& j) noexcept {
        if (Ring* d = draining_.load(std::memory_order_acquire)) {
            if (d->try_pop(j)) return true;
            if (d->empty())
                draining_.compare_exchange_strong(d, nullptr, std::memory_order_acq_rel);
        }
        if (!ring_.load(std::memory_order_acquire)->try_pop(j)) return false;
        if (overflow_count_.load(std::memory_order_seq_cst) != 0) drain_overflow();
        return true;
    }

    /// True when a worker could start a queued job now.
    [[nodiscard]] bool work_available() const noexcept {
        return depth() != 0 && inflight_.load(std::memory_order_relaxed) <
                                   concurrency_.load(std::memory_order_relaxed);
    }

    /// For a job that never reached a worker: decides it with `e` (unless already decided) and
    /// drops the queue's reference.
    void finish_unqueued(Job* j, Error e, std::atomic<std::uint64_t>* counter) {
        if (j->claim() != Job::claimed) {
            j->outcome.fail(std::move(e));
            counter->fetch_add(1, std::memory_order_relaxed);
            if (j->probe) breaker_.probe_abandoned();
            complete_guarded(j);
        }
        j->release();
    }

    /// Completes the caller; a failure to do so (only an out-of-memory post can throw) must not
    /// take the calling thread down.
    static void complete_guarded(Job* j) noexcept {
        try {
            j->complete();
        } catch (...) {
        }
    }

    /// Stops a running attempt's upstream work; runs on the attempt's worker (see ProviderPool).
    virtual void stop_running(Job* j) = 0;

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

    /// Wakes every worker thread (shutdown, reconfiguration).
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
        if (!work_available() && !stopping_.load(std::memory_order_relaxed)) {
            if (w.next_deadline == Clock::time_point::max())
                w.ioc.run_one();
            else
                w.ioc.run_one_until(w.next_deadline);
        }
        w.parked.store(false, std::memory_order_relaxed);
    }

    /// Destroys the objects bound to worker 0's event loop; call after the workers have joined
    /// and before their loops are destroyed.
    void release_loop_objects() noexcept { overflow_timer_.reset(); }

    void count_finished(bool ok) noexcept {
        (ok ? completed_ : failed_).fetch_add(1, std::memory_order_relaxed);
    }
    void count_retry() noexcept { retries_.fetch_add(1, std::memory_order_relaxed); }

    std::string name_;
    std::vector<WorkerCore*> cores_;  // set once before the workers start
    std::atomic<bool> stopping_{false};
    std::atomic<bool> aborting_{false};
    CircuitBreaker breaker_;
    alignas(cache_line) std::atomic<std::size_t> owned_{0};        // started, not finished
    alignas(cache_line) std::atomic<std::size_t> backing_off_{0};  // waiting to retry

    LatencyHistogram queue_wait_;
    LatencyHistogram upstream_;
    /// Bit `1 << Operation`: the kinds of request the provider type serves (set once, before
    /// any request).
    std::uint8_t operations_ = 1u << static_cast<unsigned>(Operation::chat);

  private:
    void prepare(Job* j) noexcept {
        j->add_ref();
        j->enqueued_at = Clock::now();
    }

    /// Pushes into the current ring; a ring retired by `update` answers `closed`, and the push
    /// moves on to its successor.
    template <class Push>
    queue::PushStatus push(Push&& do_push) {
        for (;;) {
            Ring* r = ring_.load(std::memory_order_acquire);
            const auto s = do_push(*r);
            if (s != queue::PushStatus::closed || ring_.load(std::memory_order_acquire) == r)
                return s;
        }
    }

    void admitted(Job* j, queue::PushStatus s, bool waited) {
        if (s == queue::PushStatus::ok) {
            queued_.fetch_add(1, std::memory_order_relaxed);
            if (waited) waited_.fetch_add(1, std::memory_order_relaxed);
            // Submitted on one of this provider's own workers (a server connection running
            // there): that worker takes the job itself as soon as its handler returns. Waking
            // another would move the request to that thread, and its answer back.
            if (current_queue_ != this) wake_one();
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

    void replace_ring_locked(std::size_t capacity) {
        // One retirement at a time: wait for the previous old ring to empty.
        while (draining_.load(std::memory_order_acquire) != nullptr) {
            wake_all();
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        rings_.push_back(std::make_unique<Ring>(capacity));
        Ring* old = ring_.load(std::memory_order_relaxed);
        draining_.store(old, std::memory_order_release);
        ring_.store(rings_.back().get(), std::memory_order_release);
        old->close();  // producers move to the new ring; blocked ones wake and retry there
        drain_overflow();
    }

    /// Moves parked requests into the ring while it has space; lets go of parked requests that
    /// were decided meanwhile (cancelled).
    void drain_overflow() {
        bool moved = false;
        Job* decided = nullptr;
        {
            std::lock_guard lock(overflow_mutex_);
            while (overflow_head_) {
                Job* j = overflow_head_;
                if (j->is_claimed()) {
                    unlink_overflow_locked(j);
                    j->next = decided;
                    decided = j;
                    continue;
                }
                j->enqueued_at = Clock::now();
                if (ring_.load(std::memory_order_acquire)->try_push(j) != queue::PushStatus::ok)
                    break;
                unlink_overflow_locked(j);
                queued_.fetch_add(1, std::memory_order_relaxed);
                waited_.fetch_add(1, std::memory_order_relaxed);
                moved = true;
            }
        }
        while (decided) {
            Job* next = decided->next;
            decided->next = nullptr;
            decided->release();
            decided = next;
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
                next = std::min({next, j->space_deadline, j->deadline});
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
                if (j->space_deadline <= now || j->deadline <= now || j->is_claimed()) {
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
            if (expired->deadline <= now)
                finish_unqueued(expired, errors::timed_out(name_), &timed_out_);
            else
                finish_unqueued(expired, errors::queue_timeout(name_), &queue_timeouts_);
            expired = next;
        }
        rearm_overflow_timer();
    }

    alignas(cache_line) std::atomic<Ring*> ring_{nullptr};
    std::atomic<Ring*> draining_{nullptr};
    std::vector<std::unique_ptr<Ring>> rings_;  // every ring ever used; freed with the queue
    std::atomic<std::size_t> concurrency_{0};
    std::atomic<const ProviderSettings*> settings_{nullptr};
    std::vector<std::unique_ptr<ProviderSettings>> settings_list_;  // freed with the queue
    std::mutex reconfigure_mutex_;
    bool intake_closed_ = false;  // guarded by reconfigure_mutex_

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
    std::atomic<std::uint64_t> rejected_circuit_{0};
    alignas(cache_line) std::atomic<std::uint64_t> completed_{0};
    std::atomic<std::uint64_t> failed_{0};
    std::atomic<std::uint64_t> timed_out_{0};
    std::atomic<std::uint64_t> cancelled_{0};
    std::atomic<std::uint64_t> retries_{0};
};

}  // namespace bifrost::detail
