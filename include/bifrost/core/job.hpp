#pragma once
/// \file
/// `detail::Job`: the pooled object that carries one attempt of a request through the gateway:
/// the request, its outcome, the upstream HTTP exchange, the caller's completion, and memory for
/// the asynchronous operations in between. Users never see it; `Result` is the handle they hold.
///
/// An attempt's outcome is decided exactly once. `state` goes `queued` -> `running` (a worker
/// started it) -> `claimed`; whoever moves it to `claimed` (the worker with the upstream's answer,
/// or an abort: deadline, caller cancellation, shutdown) alone writes the outcome and completes
/// the caller. The others only drop their references.

#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/context.hpp>
#include <bifrost/core/operation_data.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/detail/handler_memory.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/outcome.hpp>
#include <bifrost/schema/stream.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

namespace bifrost::detail {

class ProviderQueue;
struct WorkerCore;

/// Where a streamed request's chunks go: the caller's callback, type-erased.
struct StreamSink {
    bool (*fn)(void* target, const StreamChunk& chunk) = nullptr;
    void* target = nullptr;
};

/// Per-request streaming state owned by a job (the caller's callback for async streams, the
/// provider's decoder for a running attempt); destroyed with the job's reset.
struct StreamStateBase {
    StreamStateBase() = default;
    StreamStateBase(const StreamStateBase&) = delete;
    StreamStateBase& operator=(const StreamStateBase&) = delete;
    virtual ~StreamStateBase() = default;
};

struct Job {
    using Clock = std::chrono::steady_clock;

    static constexpr std::uint32_t queued = 0, running = 1, claimed = 2;

    /// Where the job is on its worker (touched only by that worker's thread).
    enum class Phase : std::uint8_t { idle, upstream, backoff, ready };

    Job() { ctx.reset(&outcome); }
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;

    Context ctx;
    /// The chat request; for other kinds only its `model` and `provider` are set (the routing
    /// fields, copied from the request in `op_data`).
    ChatRequest request;
    /// The chat outcome; for other kinds its `error` is the attempt's error (the engine's one
    /// error slot) and the response is in `op_data`.
    Outcome outcome;
    /// The kind of request; anything but `chat` keeps its request and response in `op_data`.
    Operation op = Operation::chat;
    std::unique_ptr<OperationData> op_data;  ///< allocated on first use, kept across reuse
    HttpRequest http_request;
    HttpResponse http_response;

    // ---- routing and timing of the attempt ----
    ProviderQueue* target = nullptr;
    std::string_view model_id;  ///< the provider-local model id (points into `request.model`)
    Clock::time_point deadline = Clock::time_point::max();  ///< 504 after this
    Clock::time_point enqueued_at{};
    Clock::time_point upstream_started_at{};
    std::chrono::nanoseconds upstream_latency{};
    std::chrono::nanoseconds queue_wait{};  ///< from admission to a worker taking it up
    bool probe = false;                     ///< admitted as the circuit breaker's half-open probe
    /// The chat response was read from `http_response.body`, which is in the unified (OpenAI)
    /// format as it stands: the body can be relayed instead of the response written anew.
    bool wire_response = false;

    // ---- the attempt's one-time decision ----
    std::atomic<std::uint32_t> state{queued};
    WorkerCore* worker = nullptr;  ///< the worker running it (set before `running`)

    // ---- worker-side (only the owning worker's thread touches these) ----
    Phase phase = Phase::idle;
    int retries = 0;
    const Key* last_key = nullptr;  ///< the key of the previous try, to rotate away from it
    /// The link of the worker list holding it, if any: the retries whose backoff is over, or
    /// the jobs submitted on the worker itself (`WorkerCore::local`). Never both at once.
    Job* ready_next = nullptr;
    std::optional<asio::steady_timer> backoff_timer;

    // ---- overflow wait (async producers parked on a full ring) ----
    Clock::time_point space_deadline = Clock::time_point::max();

    // ---- the caller's side ----
    /// The caller's completion for async requests; empty for `chat()`, which waits on `done`.
    /// In place up to 320 bytes: bifrost-http's handlers (a parallel group's, bound to the
    /// connection's executor) take 264 to 272.
    InplaceCompletion<Job*, 320> completion;
    /// A deadline timer on the gateway's timekeeper (async requests with a binding deadline).
    std::optional<asio::steady_timer> deadline_timer;
    std::atomic<bool> deadline_armed{false};  ///< set (release) once the timer waits
    /// For the request's first attempt: the attempt now running (for caller cancellation), and
    /// whether the caller cancelled.
    std::atomic<Job*> current_attempt{nullptr};
    std::atomic<bool> cancel_requested{false};

    // ---- streaming (null `stream` for plain requests) ----
    /// Where chunks go; shared by a request's attempts (fallbacks feed the same sink).
    const StreamSink* stream = nullptr;
    /// A chunk reached the caller (written under `stream_mutex`; read after completion).
    bool stream_delivered = false;
    /// The caller's callback returned false (worker-side).
    bool stream_stopped = false;
    /// Held while a chunk is delivered; `complete()` takes it, so that no chunk reaches the
    /// caller once the attempt is decided. Recursive: a callback may cancel its own request.
    std::recursive_mutex stream_mutex;
    std::unique_ptr<StreamStateBase> stream_owned;  ///< an async stream's callback (primary)
    std::unique_ptr<StreamStateBase> stream_state;  ///< the attempt's decoder (worker-side)

    /// Memory for this request's asynchronous operations.
    HandlerArena arena;
    /// Emitted on the worker's thread to abort the in-flight upstream call.
    asio::cancellation_signal upstream_cancel;

    // Intrusive links: a provider's overflow list or a worker's list of owned jobs.
    Job* next = nullptr;
    Job* prev = nullptr;

    /// References: the caller's (or the `Result` it becomes), the provider's while it holds the
    /// job, and one per pending timer. The last one returns the job to its pool.
    std::atomic<std::uint32_t> refs{0};
    void (*recycle_fn)(void*, Job*) noexcept = nullptr;
    void* recycler = nullptr;

    /// The state of the attempt for `chat()`: `pending`, `sleeping` (pending, and the caller is
    /// blocked) or `finished`. One word carries both the result and the waiter's presence, so the
    /// hand-off is a single exchange and cannot lose a wake-up (unlike a flag plus a separate
    /// waiter count, which needs the stores and loads of both sides ordered).
    static constexpr std::uint32_t pending = 0, finished = 1, sleeping = 2;
    alignas(cache_line) std::atomic<std::uint32_t> done{pending};
    std::mutex wait_mutex;
    std::condition_variable wait_cv;

    void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) recycle_fn(recycler, this);
    }

    /// Tries to take the right to decide this attempt's outcome. Returns the state it was taken
    /// from (`queued` or `running`), or `claimed` if someone else has it.
    std::uint32_t claim() noexcept {
        std::uint32_t s = state.load(std::memory_order_acquire);
        while (s != claimed) {
            if (state.compare_exchange_weak(s, claimed, std::memory_order_acq_rel,
                                            std::memory_order_acquire))
                return s;
        }
        return claimed;
    }

    [[nodiscard]] bool is_claimed() const noexcept {
        return state.load(std::memory_order_acquire) == claimed;
    }

    /// The storage for other kinds of request (allocated on the first call).
    OperationData& ops() {
        if (!op_data) op_data = std::make_unique<OperationData>();
        return *op_data;
    }

    /// Makes the job clean for its next request (called by the pool policy on release).
    /// `op_data` is left as it is: it is cleaned when a request of another kind is loaded.
    void reset() {
        ctx.reset(&outcome);
        outcome.recycle();
        op = Operation::chat;
        http_request.clear();
        http_response.clear();
        target = nullptr;
        model_id = {};
        deadline = Clock::time_point::max();
        enqueued_at = {};
        upstream_started_at = {};
        upstream_latency = {};
        queue_wait = {};
        probe = false;
        wire_response = false;
        state.store(queued, std::memory_order_relaxed);
        worker = nullptr;
        phase = Phase::idle;
        retries = 0;
        last_key = nullptr;
        ready_next = nullptr;
        backoff_timer.reset();
        space_deadline = Clock::time_point::max();
        completion.reset();
        deadline_armed.store(false, std::memory_order_relaxed);
        current_attempt.store(nullptr, std::memory_order_relaxed);
        cancel_requested.store(false, std::memory_order_relaxed);
        next = prev = nullptr;
        stream = nullptr;
        stream_delivered = stream_stopped = false;
        stream_owned.reset();
        stream_state.reset();
        refs.store(0, std::memory_order_relaxed);
        done.store(pending, std::memory_order_relaxed);
    }

    /// Hands the attempt's final outcome to the caller: runs the async completion, or wakes the
    /// thread blocked in `chat()`. Called once per attempt, by whoever claimed it.
    void complete() {
        if (stream != nullptr) {
            // Waits out a chunk being delivered; later deliveries see the claim and stop.
            std::lock_guard lock(stream_mutex);
        }
        if (deadline_armed.exchange(false, std::memory_order_acq_rel)) deadline_timer->cancel();
        if (completion.has_value()) {
            completion(this);
        } else if (done.exchange(finished, std::memory_order_acq_rel) == sleeping) {
            { std::lock_guard lock(wait_mutex); }
            wait_cv.notify_one();
        }
    }

    /// Blocks until `complete()` ran or `until` passes: spins for up to `spin`, then sleeps.
    /// Returns false on timeout.
    bool wait_finished(std::chrono::nanoseconds spin, Clock::time_point until) {
        if (done.load(std::memory_order_acquire) == finished) return true;
        if (spin.count() > 0) {
            const auto spin_until = Clock::now() + spin;
            for (unsigned i = 1;; ++i) {
                if (done.load(std::memory_order_acquire) == finished) return true;
                if ((i & 63) == 0 && Clock::now() >= spin_until) break;
                cpu_relax();
            }
        }
        // Announce the sleeper (a second wait after a timed-out first one finds it announced).
        std::uint32_t expected = pending;
        if (!done.compare_exchange_strong(expected, sleeping, std::memory_order_acq_rel,
                                          std::memory_order_acquire) &&
            expected == finished)
            return true;
        std::unique_lock lock(wait_mutex);
        while (done.load(std::memory_order_acquire) != finished) {
            if (until == Clock::time_point::max()) {
                wait_cv.wait(lock);
            } else if (wait_cv.wait_until(lock, until) == std::cv_status::timeout) {
                return done.load(std::memory_order_acquire) == finished;
            }
        }
        return true;
    }
};

}  // namespace bifrost::detail
