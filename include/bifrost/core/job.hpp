#pragma once
/// \file
/// `detail::Job`: the pooled object that carries one request through the gateway: the request,
/// its outcome, the upstream HTTP exchange, the caller's completion, and memory for the
/// asynchronous operations in between. Users never see it; `Result` is the handle they hold.

#include <bifrost/core/context.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/detail/handler_memory.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/outcome.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace bifrost::detail {

class ProviderQueue;

struct Job {
    using Clock = std::chrono::steady_clock;

    Job() { ctx.reset(&outcome); }
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;

    Context ctx;
    ChatRequest request;
    Outcome outcome;
    HttpRequest http_request;
    HttpResponse http_response;

    // Routing of the current attempt.
    ProviderQueue* target = nullptr;
    std::string_view model_id;  ///< the provider-local model id (points into `request.model`)

    // Timing of the current attempt.
    Clock::time_point enqueued_at{};
    Clock::time_point upstream_started_at{};
    std::chrono::nanoseconds upstream_latency{};

    // Overflow wait (async producers parked on a full ring).
    Clock::time_point space_deadline = Clock::time_point::max();

    /// The caller's completion for async requests; empty for `chat()`, which waits on `done`.
    InplaceCompletion<Job*, 192> completion;
    /// Memory for this request's asynchronous operations.
    HandlerArena arena;
    /// Emitted on the worker's thread to abort the in-flight upstream call.
    asio::cancellation_signal upstream_cancel;

    // Intrusive links: a provider's overflow list or a worker's in-flight list.
    Job* next = nullptr;
    Job* prev = nullptr;

    /// References: the caller's (or the `Result` it becomes) and, while queued or in flight, the
    /// provider's. The last one returns the job to its pool.
    std::atomic<std::uint32_t> refs{0};
    void (*recycle_fn)(void*, Job*) noexcept = nullptr;
    void* recycler = nullptr;

    /// The state of the attempt for `chat()`: `pending`, `sleeping` (pending, and the caller is
    /// blocked on this word) or `finished`. One word carries both the result and the waiter's
    /// presence, so the hand-off is a single exchange and cannot lose a wake-up (unlike a flag
    /// plus a separate waiter count, which needs the stores and loads of both sides ordered).
    static constexpr std::uint32_t pending = 0, finished = 1, sleeping = 2;
    alignas(cache_line) std::atomic<std::uint32_t> done{pending};

    void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) recycle_fn(recycler, this);
    }

    /// Makes the job clean for its next request (called by the pool policy on release).
    void reset() {
        ctx.reset(&outcome);
        outcome.recycle();
        http_request.clear();
        http_response.clear();
        target = nullptr;
        model_id = {};
        enqueued_at = {};
        upstream_started_at = {};
        upstream_latency = {};
        space_deadline = Clock::time_point::max();
        completion.reset();
        next = prev = nullptr;
        refs.store(0, std::memory_order_relaxed);
        done.store(pending, std::memory_order_relaxed);
    }

    /// Marks the attempt's outcome final and hands it to the caller: runs the async completion,
    /// or wakes the thread blocked in `chat()`. Called exactly once per attempt.
    void complete() {
        if (completion.has_value()) {
            completion(this);
        } else if (done.exchange(finished, std::memory_order_acq_rel) == sleeping) {
            done.notify_one();
        }
    }

    /// Blocks until `complete()` ran: spins for up to `spin`, then sleeps.
    void wait_finished(std::chrono::nanoseconds spin) noexcept {
        if (done.load(std::memory_order_acquire) == finished) return;
        if (spin.count() > 0) {
            const auto until = Clock::now() + spin;
            for (unsigned i = 1;; ++i) {
                if (done.load(std::memory_order_acquire) == finished) return;
                if ((i & 63) == 0 && Clock::now() >= until) break;
                cpu_relax();
            }
        }
        std::uint32_t expected = pending;
        if (!done.compare_exchange_strong(expected, sleeping, std::memory_order_acq_rel,
                                          std::memory_order_acquire))
            return;  // finished meanwhile
        do {
            done.wait(sleeping, std::memory_order_acquire);
        } while (done.load(std::memory_order_acquire) != finished);
    }
};

}  // namespace bifrost::detail
