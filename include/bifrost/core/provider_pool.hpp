#pragma once
/// \file
/// `detail::ProviderPool<P, T>`: one provider instance's worker threads. Each thread runs an
/// Asio event loop and keeps up to `concurrency` requests in flight across the pool: it pops
/// jobs from the provider's ring while a slot is free, builds the upstream request with the
/// provider `P` (a `CredentialProvider` first obtains its credential over the same transport,
/// one exchange per credential shared by the requests that need it), starts it on its transport
/// `T`, and, when the transport completes, either schedules a retry (the request waits on a
/// timer, holding no slot) or decides the outcome and hands it to the caller. Each thread also
/// enforces the deadlines of the requests it owns with one timer. Threads spin briefly when idle,
/// then park in their event loop; producers wake a parked thread by posting to it.

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/job.hpp>
#include <bifrost/core/key_selector.hpp>
#include <bifrost/core/provider_queue.hpp>
#include <bifrost/core/retry.hpp>
#include <bifrost/schema/error.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace bifrost::detail {

/// The provider's stream decoder type, or a placeholder for pools that cannot stream.
struct NoStreamDecoder {};
template <class P, bool Streams>
struct StreamDecoderOf {
    using type = NoStreamDecoder;
};
template <class P>
struct StreamDecoderOf<P, true> {
    using type = typename P::StreamDecoder;
};

template <Provider P, Transport T>
class ProviderPool final : public ProviderQueue {
  public:
    using TransportOptions = typename T::Options;

    /// Validates the configuration (throws `std::invalid_argument` naming the bad field) and
    /// starts the worker threads.
    ProviderPool(std::string name, ProviderConfig config, P provider, TransportOptions topts,
                 const GatewayOptions& gopts)
        : ProviderQueue(std::move(name), std::move(config)),
          provider_(std::move(provider)),
          worker_spin_(gopts.worker_spin) {
        if constexpr (!StreamingProvider<P>)
            streaming_unsupported_ = "its provider type cannot stream chat completions";
        else if constexpr (!StreamingTransport<T>)
            streaming_unsupported_ = "the gateway's transport cannot stream responses";
        start_local_ = [](ProviderQueue& self, WorkerCore& w) {
            auto& pool = static_cast<ProviderPool&>(self);
            auto& worker = static_cast<Worker&>(w);
            while (Job* j = worker.local.pop())
                pool.start(worker, j);
        };
        const ProviderConfig& cfg = settings().config;
        const auto bit = [](Operation op) { return 1u << static_cast<unsigned>(op); };
        if constexpr (EmbeddingProvider<P>) operations_ |= bit(Operation::embedding);
        if constexpr (TextCompletionProvider<P>) operations_ |= bit(Operation::text_completion);
        if constexpr (ModelListingProvider<P>) operations_ |= bit(Operation::list_models);
        const std::size_t n = cfg.concurrency_and_buffer_size.worker_threads;
        workers_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            auto w = std::make_unique<Worker>();
            w->transport.emplace(w->ioc.get_executor(), cfg, topts);
            cores_.push_back(w.get());
            workers_.push_back(std::move(w));
        }
        for (std::size_t i = 0; i < n; ++i) {
            Worker* w = workers_[i].get();
            w->thread = std::thread([this, w, i] { run(*w, i); });
        }
    }

    ~ProviderPool() override { stop(std::chrono::milliseconds(0)); }

    /// Closes intake, lets queued, in-flight and retrying requests finish for up to `drain`, then
    /// aborts what is left (503 "provider is shutting down") and joins the threads. Idempotent.
    void stop(std::chrono::milliseconds drain) override {
        std::lock_guard lock(stop_mutex_);
        if (joined_) return;
        close();
        stopping_.store(true, std::memory_order_seq_cst);
        wake_all();
        const auto deadline = Clock::now() + drain;
        while (!idle() && Clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (!idle()) {
            aborting_.store(true, std::memory_order_seq_cst);
            for (auto& w : workers_) {
                Worker* wp = w.get();
                asio::post(wp->ioc, [this, wp] { abort_owned(*wp); });
            }
        }
        for (auto& w : workers_)
            if (w->thread.joinable()) w->thread.join();
        release_loop_objects();
        for (auto& w : workers_)
            w->transport.reset();
        joined_ = true;
    }

    [[nodiscard]] const P& provider() const noexcept { return provider_; }

  private:
    struct Worker : WorkerCore {
        std::optional<T> transport;
        Job* owned_head = nullptr;  // jobs started here and not finished, by deadline
        Job* owned_tail = nullptr;
        std::size_t owned = 0;
        JobList ready;  // retries whose backoff is over, FIFO
        std::thread thread;
    };

    /// The worker this thread runs (for aborts that happen on the worker itself).
    static inline thread_local Worker* current_worker_ = nullptr;

    /// The completion handler given to the transport: routes back to this pool and carries the
    /// job's arena allocator and upstream cancellation slot.
    struct UpstreamHandler {
        ProviderPool* pool;
        Worker* worker;
        Job* job;

        using allocator_type = ArenaAllocator<void>;
        allocator_type get_allocator() const noexcept { return allocator_type(job->arena); }
        using cancellation_slot_type = asio::cancellation_slot;
        cancellation_slot_type get_cancellation_slot() const noexcept {
            return job->upstream_cancel.slot();
        }
        void operator()(boost::system::error_code ec) { pool->on_upstream_done(*worker, job, ec); }
    };

    static constexpr bool can_stream = StreamingProvider<P> && StreamingTransport<T>;

    /// A streamed attempt's state: the provider's decoder, the chunk being decoded, and what the
    /// stream said so far (the outcome's summary, or why it failed).
    template <class Decoder>
    struct StreamState final : StreamStateBase {
        Decoder decoder;
        StreamChunk chunk;
        ChatResponse summary;
        Error error;
        bool done = false;
        bool failed = false;
    };
    using Stream = StreamState<typename StreamDecoderOf<P, can_stream>::type>;

    /// The body sink given to the transport for a streamed attempt.
    struct BodySink {
        ProviderPool* pool;
        Job* job;
        Stream* state;
        bool operator()(std::string_view bytes) {
            return pool->on_stream_bytes(job, *state, bytes);
        }
    };

    /// The completion handler of a streamed attempt (as `UpstreamHandler`).
    struct StreamHandler {
        ProviderPool* pool;
        Worker* worker;
        Job* job;

        using allocator_type = ArenaAllocator<void>;
        allocator_type get_allocator() const noexcept { return allocator_type(job->arena); }
        using cancellation_slot_type = asio::cancellation_slot;
        cancellation_slot_type get_cancellation_slot() const noexcept {
            return job->upstream_cancel.slot();
        }
        void operator()(boost::system::error_code ec) { pool->on_stream_done(*worker, job, ec); }
    };

    /// The completion handler of a credential exchange (as `UpstreamHandler`), naming the
    /// credential it fetches.
    struct CredentialHandler {
        ProviderPool* pool;
        Worker* worker;
        Job* job;
        std::string name;

        using allocator_type = ArenaAllocator<void>;
        allocator_type get_allocator() const noexcept { return allocator_type(job->arena); }
        using cancellation_slot_type = asio::cancellation_slot;
        cancellation_slot_type get_cancellation_slot() const noexcept {
            return job->upstream_cancel.slot();
        }
        void operator()(boost::system::error_code ec) {
            pool->on_credential_done(*worker, job, std::move(name), ec);
        }
    };

    // ---- the loop -------------------------------------------------------------------------------

    void run(Worker& w, std::size_t index) {
        name_thread(index);
        current_worker_ = &w;
        current_queue_ = this;
        current_core_ = &w;
        auto guard = asio::make_work_guard(w.ioc);
        for (;;) {
            bool progress = pump(w);
            progress |= w.ioc.poll() != 0;
            if (w.next_deadline != Clock::time_point::max() && Clock::now() >= w.next_deadline)
                progress |= expire_due(w);
            if (progress) continue;
            if (stopping_.load(std::memory_order_acquire) && depth() == 0 && w.owned == 0 &&
                w.local.empty())
                break;
            if (spin(w)) continue;
            if (w.ready.empty() && w.local.empty()) park(w);
        }
        guard.reset();
        w.ioc.poll();  // run what is left (e.g. wake-ups), so nothing posted is destroyed unrun
        current_worker_ = nullptr;
        current_queue_ = nullptr;
        current_core_ = nullptr;
    }

    /// Starts the jobs submitted on this worker (they hold their slots), then jobs while both a
    /// job (a due retry first, then the queue) and a slot are free.
    bool pump(Worker& w) {
        bool any = false;
        while (Job* j = w.local.pop()) {
            any = true;
            start(w, j);
        }
        while (acquire_slot()) {
            if (Job* j = w.ready.pop()) {
                any = true;
                attempt(w, j);
                continue;
            }
            Job* j = nullptr;
            if (!pop(j)) {
                release_slot();
                break;
            }
            any = true;
            start(w, j);
        }
        return any;
    }

    /// Spins for up to `worker_spin_` waiting for work; true if work appeared. Between polls
    /// the thread yields its core: on a machine with idle cores that returns at once (and the
    /// spin saves the wake-up of a parked thread), while on one whose cores are all busy (the
    /// gateway's own clients or upstreams on the same machine, or other work) the spin gives
    /// the core to a thread that has work instead of burning it.
    bool spin(Worker& w) {
        if (worker_spin_.count() <= 0) return false;
        const auto until = Clock::now() + worker_spin_;
        for (unsigned i = 1;; ++i) {
            if (work_available()) return true;
            if ((i & 31) == 0) {
                if (w.ioc.poll() != 0) return true;
                if (stopping_.load(std::memory_order_relaxed)) return true;
                if (Clock::now() >= until) return false;
                std::this_thread::yield();
            }
            cpu_relax();
        }
    }

    // ---- one request ----------------------------------------------------------------------------

    /// A job fresh from the queue (the caller holds a slot for it).
    void start(Worker& w, Job* j) {
        const auto now = Clock::now();
        j->queue_wait = now - j->enqueued_at;
        queue_wait_.record(j->queue_wait);
        j->worker = &w;
        std::uint32_t s = Job::queued;
        if (!j->state.compare_exchange_strong(s, Job::running, std::memory_order_acq_rel)) {
            release_slot();  // decided while it waited (deadline, cancellation)
            j->release();
            return;
        }
        own(w, j);
        if (aborting_.load(std::memory_order_relaxed)) {
            abort(j, errors::shutting_down(name_), AbortKind::shutdown);
            drop(w, j, true);
            return;
        }
        if (now >= j->deadline) {
            abort(j, errors::timed_out(name_), AbortKind::timed_out);
            drop(w, j, true);
            return;
        }
        attempt(w, j);
    }

    /// One upstream call for an owned job (a slot is held).
    void attempt(Worker& w, Job* j) {
        j->phase = Job::Phase::upstream;
        const ProviderSettings& settings = this->settings();
        try {
            const Key* key = nullptr;
            if constexpr (P::requires_key) {
                key = pick_key(settings, j);
                if (!key && j->op == Operation::list_models) key = any_key(settings);
                if (!key) {
                    decide(w, j,
                           errors::make(400, error_type::no_key,
                                        "no enabled key of provider '" + name_ +
                                            "' serves model '" + std::string(j->model_id) + "'",
                                        name_));
                    return;
                }
                j->last_key = key;
            }
            send(w, j, key, settings, false);
        } catch (const std::exception& e) {
            decide(w, j, build_failure(e));
        } catch (...) {
            decide(w, j, errors::internal("provider '" + name_ + "' failed", name_));
        }
    }

    /// Builds and starts the upstream call of `j` with `key` (inside a try block). A
    /// `CredentialProvider` first gets its credential, unless `credential_checked`.
    void send(Worker& w, Job* j, const Key* key, const ProviderSettings& settings,
              bool credential_checked) {
        if constexpr (CredentialProvider<P>) {
            if (!credential_checked && !credential_ready(w, j, key)) return;
        } else {
            (void)credential_checked;
        }
        j->http_request.clear();
        j->http_response.clear();
        j->wire_response = false;
        if (j->stream != nullptr) {
            start_stream(w, j, key, settings);
            return;
        }
        if (j->op == Operation::chat) {
            provider_.build_chat(BuildContext{j->request, j->model_id, key, settings.config},
                                 j->http_request);
        } else if (!build_other(j, key, settings.config)) {
            decide(w, j, errors::unsupported_operation(name_, to_string(j->op)));
            return;
        }
        j->upstream_started_at = Clock::now();
        w.transport->async_send(j->http_request, j->http_response, UpstreamHandler{this, &w, j});
    }

    // ---- credentials (CredentialProvider) -------------------------------------------------------

    /// True when the provider's credential for `key` is at hand. Otherwise `j` waits for it: it
    /// joins the exchange in flight for that credential, or starts one in its own HTTP request
    /// and response, and goes on when the exchange ends.
    bool credential_ready(Worker& w, Job* j, const Key* key) {
        std::string name(provider_.credential_needed(key));
        if (name.empty()) return true;
        {
            std::lock_guard lock(credential_mutex_);
            if (auto it = credential_waiters_.find(name); it != credential_waiters_.end()) {
                j->phase = Job::Phase::idle;  // an abort finds it in the table (`interrupt`)
                it->second.push_back(j);
                return false;
            }
            // An exchange may have ended between the first look and the lock.
            if (std::string(provider_.credential_needed(key)).empty()) return true;
            credential_waiters_.emplace(name, std::vector<Job*>{});
        }
        j->http_request.clear();
        j->http_response.clear();
        try {
            provider_.build_credential_request(key, j->http_request);
        } catch (const std::exception& e) {
            Error error = errors::make(
                401, "authentication_error",
                "provider '" + name_ + "' could not obtain a credential: " + e.what(), name_);
            release_waiters(end_exchange(name), error);
            decide(w, j, std::move(error));
            return false;
        }
        try {
            j->upstream_started_at = Clock::now();
            w.transport->async_send(j->http_request, j->http_response,
                                    CredentialHandler{this, &w, j, name});
        } catch (const std::exception& e) {
            Error error = errors::make(
                502, error_type::network,
                "provider '" + name_ + "' could not send its credential exchange: " + e.what(),
                name_);
            release_waiters(end_exchange(name), error);
            decide(w, j, std::move(error));
        }
        return false;
    }

    /// Takes the exchange of `name` out of the table and returns the requests waiting on it.
    std::vector<Job*> end_exchange(const std::string& name) {
        std::vector<Job*> waiters;
        std::lock_guard lock(credential_mutex_);
        if (auto it = credential_waiters_.find(name); it != credential_waiters_.end()) {
            waiters = std::move(it->second);
            credential_waiters_.erase(it);
        }
        return waiters;
    }

    /// Removes a waiting job from the table (it was aborted). False if it is not waiting.
    bool forget_waiter(Job* j) {
        std::lock_guard lock(credential_mutex_);
        for (auto& [name, waiters] : credential_waiters_) {
            for (auto it = waiters.begin(); it != waiters.end(); ++it) {
                if (*it != j) continue;
                waiters.erase(it);
                return true;
            }
        }
        return false;
    }

    /// Sends each waiter on, on its own worker: to its upstream call (which looks at the
    /// credential again), or to `failure`.
    void release_waiters(std::vector<Job*> waiters, const std::optional<Error>& failure) {
        for (Job* wj : waiters) {
            Worker* ww = static_cast<Worker*>(wj->worker);
            asio::post(ww->ioc, [this, ww, wj, failure] { on_credential(*ww, wj, failure); });
        }
    }

    /// The end of a credential exchange led by `j`.
    void on_credential_done(Worker& w, Job* j, std::string name, boost::system::error_code ec) {
        j->upstream_cancel.slot().clear();
        j->phase = Job::Phase::idle;
        std::optional<Error> failure;
        if (ec) {
            failure = errors::make(
                502, error_type::network,
                "provider '" + name_ + "' could not reach its credential endpoint: " + ec.message(),
                name_);
        } else {
            Error e;
            bool ok = false;
            try {
                ok = provider_.read_credential_response(j->last_key, j->http_response, e);
            } catch (const std::exception& x) {
                e.assign(502, error_type::bad_response,
                         std::string("provider '") + name_ +
                             "' could not read its credential exchange: " + x.what());
            }
            if (!ok) {
                if (e.status == 0)
                    e.assign(502, error_type::bad_response,
                             "provider '" + name_ + "' got no credential from its exchange");
                if (e.provider.empty()) e.provider.assign(name_);
                failure = std::move(e);
            }
        }
        // A leader that was stopped (deadline, cancellation, shutdown) fails nobody else: the
        // waiters look again and one of them starts a new exchange.
        const bool stopped = ec == asio::error::operation_aborted;
        release_waiters(end_exchange(name), stopped ? std::nullopt : failure);
        j->http_request.clear();
        j->http_response.clear();
        if (j->is_claimed()) {
            drop(w, j, true);
            return;
        }
        if (failure) {
            decide(w, j, std::move(*failure));
            return;
        }
        proceed(w, j, true);
    }

    /// On a waiter's worker, after the exchange it waited on.
    void on_credential(Worker& w, Job* j, const std::optional<Error>& failure) {
        if (j->is_claimed()) {
            drop(w, j, true);
            return;
        }
        if (failure) {
            decide(w, j, *failure);
            return;
        }
        proceed(w, j, false);
    }

    /// The answer to an exception from building or starting an upstream call: 400 when the
    /// provider cannot express the request (`InvalidRequest`), else the gateway's own fault.
    Error build_failure(const std::exception& e) const {
        if (const auto* bad = dynamic_cast<const InvalidRequest*>(&e))
            return errors::invalid_request(std::string(bad->what()));
        return errors::internal(std::string("provider '") + name_ + "' failed: " + e.what(), name_);
    }

    /// Resumes `j`'s attempt with the key it picked.
    void proceed(Worker& w, Job* j, bool credential_checked) {
        j->phase = Job::Phase::upstream;
        try {
            send(w, j, j->last_key, this->settings(), credential_checked);
        } catch (const std::exception& e) {
            decide(w, j, build_failure(e));
        } catch (...) {
            decide(w, j, errors::internal("provider '" + name_ + "' failed", name_));
        }
    }

    /// Builds the upstream request of a job of a kind other than chat. False when `P` does not
    /// serve that kind (the gateway refuses those before queueing; this is the backstop).
    bool build_other(Job* j, const Key* key, const ProviderConfig& config) {
        OperationData& d = j->ops();
        switch (j->op) {
            case Operation::embedding:
                if constexpr (EmbeddingProvider<P>) {
                    provider_.build_embedding(
                        RequestContext<EmbeddingRequest>{d.embedding_request, j->model_id, key,
                                                         config},
                        j->http_request);
                    return true;
                }
                break;
            case Operation::text_completion:
                if constexpr (TextCompletionProvider<P>) {
                    provider_.build_text_completion(
                        RequestContext<TextCompletionRequest>{d.completion_request, j->model_id,
                                                              key, config},
                        j->http_request);
                    return true;
                }
                break;
            case Operation::list_models:
                if constexpr (ModelListingProvider<P>) {
                    provider_.build_list_models(
                        RequestContext<ListModelsRequest>{d.list_request, j->model_id, key, config},
                        j->http_request);
                    return true;
                }
                break;
            case Operation::chat:
                break;
        }
        return false;
    }

    /// Reads the upstream's answer for a job of a kind other than chat into its outcome in
    /// `op_data`; an error moves to `j->outcome.error`, the engine's error slot. On success,
    /// returns the response's `extra_fields` for the gateway to fill; else nullptr.
    ResponseExtra* parse_other(Job* j) {
        OperationData& d = j->ops();
        const auto read = [&](auto& outcome, auto parse) -> ResponseExtra* {
            outcome.recycle();
            parse(outcome);
            if (outcome.ok()) return &outcome.response.extra_fields;
            std::swap(j->outcome.error, outcome.error);
            return nullptr;
        };
        switch (j->op) {
            case Operation::embedding:
                if constexpr (EmbeddingProvider<P>)
                    return read(d.embedding, [&](EmbeddingOutcome& o) {
                        provider_.parse_embedding(j->http_response, o);
                        // Native APIs do not echo the model: answer with the one asked for.
                        if (o.ok() && o.response.model.empty())
                            o.response.model.assign(j->model_id);
                    });
                break;
            case Operation::text_completion:
                if constexpr (TextCompletionProvider<P>)
                    return read(d.completion, [&](TextCompletionOutcome& o) {
                        provider_.parse_text_completion(j->http_response, o);
                    });
                break;
            case Operation::list_models:
                if constexpr (ModelListingProvider<P>)
                    return read(d.models, [&](ModelListOutcome& o) {
                        provider_.parse_list_models(j->http_response, o);
                    });
                break;
            case Operation::chat:
                break;
        }
        j->outcome.fail(errors::unsupported_operation(name_, to_string(j->op)));
        return nullptr;
    }

    /// Any enabled key (model listing concerns no model).
    static const Key* any_key(const ProviderSettings& s) noexcept {
        for (const Key& k : s.config.keys)
            if (k.enabled) return &k;
        return nullptr;
    }

    /// A key for the job; on a retry, another key than the previous try's when there is one.
    static const Key* pick_key(const ProviderSettings& s, const Job* j) {
        return j->retries > 0 ? s.keys.select_excluding(j->model_id, j->last_key)
                              : s.keys.select(j->model_id);
    }

    void on_upstream_done(Worker& w, Job* j, boost::system::error_code ec) {
        // The operation is over: its cancellation handler (which may point into the transport's
        // now-gone state) must not be reachable by a later emit.
        j->upstream_cancel.slot().clear();
        j->phase = Job::Phase::idle;
        j->upstream_latency = Clock::now() - j->upstream_started_at;
        upstream_.record(j->upstream_latency);
        if (j->is_claimed()) {  // aborted while in flight: the caller has its answer already
            drop(w, j, true);
            return;
        }
        conclude(w, j, ec);
    }

    /// Decides (or retries) an attempt whose upstream exchange ended with `ec` and
    /// `j->http_response`, the response body collected whole.
    void conclude(Worker& w, Job* j, boost::system::error_code ec) {
        const ProviderSettings& settings = this->settings();
        if (auto delay = retry_delay(settings, j, ec)) {
            if (aborting_.load(std::memory_order_relaxed)) {
                // A retry is due but the drain is over: what ends this request is the shutdown.
                abort(j, errors::shutting_down(name_), AbortKind::shutdown);
                drop(w, j, true);
                return;
            }
            release_slot();
            count_retry();
            backoff(w, j, *delay);
            return;
        }
        if (ec) {
            if (aborting_.load(std::memory_order_relaxed) && ec == asio::error::operation_aborted) {
                abort(j, errors::shutting_down(name_), AbortKind::shutdown);
                drop(w, j, true);
                return;
            }
            decide(
                w, j,
                errors::make(502, error_type::network,
                             "network error talking to provider '" + name_ + "': " + ec.message(),
                             name_));
            return;
        }
        const std::uint32_t from = j->claim();
        if (from == Job::claimed) {
            drop(w, j, true);
            return;
        }
        ResponseExtra* extra = &j->outcome.response.extra_fields;
        try {
            if (j->op == Operation::chat)
                provider_.parse_chat(j->http_response, j->outcome);
            else
                extra = parse_other(j);
        } catch (const std::exception& e) {
            j->outcome.fail(
                502, error_type::bad_response,
                std::string("could not read the response of provider '") + name_ + "': " + e.what(),
                name_);
        }
        if constexpr (ChatWireIsUnified<P>)
            j->wire_response = j->op == Operation::chat && j->outcome.ok();
        if (j->outcome.ok() && extra != nullptr) {
            extra->provider.assign(name_);
            extra->latency = j->upstream_latency;
            extra->queue_wait = j->queue_wait;
        } else if (j->outcome.error.provider.empty()) {
            j->outcome.error.provider.assign(name_);
        }
        const int status = j->http_response.status;
        if (status >= 500)
            breaker_.record_failure();
        else if (status != 429)
            breaker_.record_success();
        finish(w, j);
    }

    // ---- streamed attempts ----------------------------------------------------------------------

    /// Starts a streamed upstream call for `j` (inside `attempt`'s try block).
    void start_stream(Worker& w, Job* j, const Key* key, const ProviderSettings& settings) {
        if constexpr (can_stream) {
            if (!j->stream_state) j->stream_state = std::make_unique<Stream>();
            auto* st = static_cast<Stream*>(j->stream_state.get());
            st->decoder.reset();
            st->summary = ChatResponse{};
            st->error.clear();
            st->done = st->failed = false;
            provider_.build_chat_stream(BuildContext{j->request, j->model_id, key, settings.config},
                                        j->http_request);
            j->upstream_started_at = Clock::now();
            w.transport->async_send_stream(j->http_request, j->http_response, BodySink{this, j, st},
                                           StreamHandler{this, &w, j});
        } else {
            (void)key;
            (void)settings;
            decide(w, j,
                   errors::make(501, error_type::internal,
                                "provider '" + name_ + "' cannot stream: " + streaming_unsupported_,
                                name_));
        }
    }

    /// On the worker: the next piece of a streamed 2xx body. False stops the exchange.
    bool on_stream_bytes(Job* j, Stream& st, std::string_view bytes) {
        if constexpr (can_stream) {
            if (st.done || st.failed) return !st.failed;
            bool framed = true;
            try {
                framed = st.decoder.feed(bytes);
            } catch (const std::exception& e) {
                return stream_failed(st, std::string("could not read the stream of provider '") +
                                             name_ + "': " + e.what());
            }
            if (!drain(j, st)) return false;
            if (!framed && !st.done)
                return stream_failed(st,
                                     "the event stream of provider '" + name_ + "' is malformed");
            return true;
        } else {
            (void)j;
            (void)st;
            (void)bytes;
            return false;
        }
    }

    bool stream_failed(Stream& st, std::string message) {
        if (!st.failed) {
            st.error.assign(502, error_type::bad_response, message, name_);
            st.failed = true;
        }
        return false;
    }

    /// Hands every decoded chunk to the caller. False when the stream failed or the caller
    /// stopped (or the attempt was decided elsewhere).
    bool drain(Job* j, Stream& st) {
        if constexpr (can_stream) {
            for (;;) {
                StreamStatus status = StreamStatus::error;
                try {
                    status = st.decoder.next(st.chunk, st.error);
                } catch (const std::exception& e) {
                    return stream_failed(
                        st, std::string("could not read the stream of provider '") + name_ +
                                "': " + e.what());
                }
                switch (status) {
                    case StreamStatus::need_more:
                        return true;
                    case StreamStatus::done:
                        st.done = true;
                        return true;  // read on to the end of the body (keeps the connection)
                    case StreamStatus::error:
                        if (st.error.status == 0)
                            st.error.assign(502, error_type::bad_response, "stream failed");
                        if (st.error.provider.empty()) st.error.provider.assign(name_);
                        st.failed = true;
                        return false;
                    case StreamStatus::chunk:
                        summarize(st.summary, st.chunk);
                        if (!deliver(j, st.chunk)) return false;
                        break;
                }
            }
        } else {
            (void)j;
            (void)st;
            return false;
        }
    }

    /// What the outcome of a finished stream holds: id, model, created, fingerprint, usage and
    /// each choice's finish reason (not the content, which the caller already has).
    static void summarize(ChatResponse& r, const StreamChunk& c) {
        if (r.id.empty()) r.id = c.id;
        if (r.model.empty()) r.model = c.model;
        if (r.created == 0) r.created = c.created;
        if (r.system_fingerprint.empty()) r.system_fingerprint = c.system_fingerprint;
        if (c.usage) r.usage = c.usage;
        for (const ChoiceDelta& d : c.choices) {
            if (d.index < 0 || d.index > 1024) continue;
            const auto i = static_cast<std::size_t>(d.index);
            if (r.choices.size() <= i) {
                const std::size_t old = r.choices.size();
                r.choices.resize(i + 1);
                for (std::size_t k = old; k <= i; ++k)
                    r.choices[k].index = static_cast<std::int64_t>(k);
            }
            if (!d.finish_reason.empty()) r.choices[i].finish_reason = d.finish_reason;
        }
    }

    /// Passes one chunk to the caller unless the attempt is decided. False to stop reading.
    bool deliver(Job* j, StreamChunk& c) {
        std::lock_guard lock(j->stream_mutex);
        if (j->is_claimed()) return false;
        c.extra_fields.provider.assign(name_);
        j->stream_delivered = true;
        bool more = false;
        try {
            more = j->stream->fn(j->stream->target, c);
        } catch (...) {
            more = false;  // a throwing callback stops its stream; it is not the worker's fault
        }
        if (!more) j->stream_stopped = true;
        // The callback may have ended its own request (e.g. cancelled it): read no further.
        return more && !j->is_claimed();
    }

    void on_stream_done(Worker& w, Job* j, boost::system::error_code ec) {
        j->upstream_cancel.slot().clear();
        j->phase = Job::Phase::idle;
        j->upstream_latency = Clock::now() - j->upstream_started_at;
        upstream_.record(j->upstream_latency);
        if (j->is_claimed()) {
            drop(w, j, true);
            return;
        }
        if constexpr (can_stream) {
            auto& st = *static_cast<Stream*>(j->stream_state.get());
            const int status = j->http_response.status;
            const bool success = status >= 200 && status < 300;
            if (!ec && success && !st.done && !st.failed && !j->stream_stopped) {
                st.decoder.finish();
                if (drain(j, st) && !st.done)
                    stream_failed(st,
                                  "the stream of provider '" + name_ + "' ended before its end");
            }
            if (j->stream_stopped) {
                decide(w, j,
                       errors::make(499, error_type::request_cancelled,
                                    "the caller stopped reading the stream", name_));
                return;
            }
            if (st.done) {
                if (j->claim() == Job::claimed) {
                    drop(w, j, true);
                    return;
                }
                j->outcome.response = std::move(st.summary);
                j->outcome.response.object.assign("chat.completion");
                j->outcome.response.extra_fields.provider.assign(name_);
                j->outcome.response.extra_fields.latency = j->upstream_latency;
                j->outcome.response.extra_fields.queue_wait = j->queue_wait;
                breaker_.record_success();
                finish(w, j);
                return;
            }
            if (st.failed) {
                if (!j->stream_delivered) {
                    // Nothing reached the caller: a retryable status is retried like a response.
                    if (auto delay = retry_delay(settings(), j, {}, st.error.status)) {
                        if (!aborting_.load(std::memory_order_relaxed)) {
                            release_slot();
                            count_retry();
                            backoff(w, j, *delay);
                            return;
                        }
                    }
                }
                decide(w, j, std::move(st.error));
                return;
            }
            if (!j->stream_delivered) {
                conclude(w, j, ec);  // nothing reached the caller: retry or fail as a plain call
                return;
            }
            if (aborting_.load(std::memory_order_relaxed) && ec == asio::error::operation_aborted) {
                abort(j, errors::shutting_down(name_), AbortKind::shutdown);
                drop(w, j, true);
                return;
            }
            decide(w, j,
                   errors::make(502, error_type::network,
                                "the stream of provider '" + name_ +
                                    "' broke off: " + (ec ? ec.message() : "no end marker"),
                                name_));
        } else {
            (void)ec;
            decide(w, j, errors::internal("provider '" + name_ + "' cannot stream", name_));
        }
    }

    /// The wait before retrying `j`, if its failure is retryable and a retry is left and fits
    /// before the deadline.
    std::optional<std::chrono::nanoseconds> retry_delay(const ProviderSettings& s, const Job* j,
                                                        boost::system::error_code ec) const {
        return retry_delay(s, j, ec, j->http_response.status);
    }

    std::optional<std::chrono::nanoseconds> retry_delay(const ProviderSettings& s, const Job* j,
                                                        boost::system::error_code ec,
                                                        int status) const {
        const NetworkConfig& n = s.config.network_config;
        if (j->retries >= n.max_retries) return {};
        bool retry = false;
        if (ec) {
            retry = ec != asio::error::operation_aborted;
        } else if (retry::retryable_status(status)) {
            retry = true;
        } else if (retry::key_specific_status(status) && P::requires_key &&
                   s.keys.candidates(j->model_id) > 1) {
            retry = true;  // another key may work
        }
        if (!retry) return {};
        auto delay = retry::backoff(j->retries, n.retry_backoff_initial, n.retry_backoff_max,
                                    thread_random());
        if (!ec) {
            const auto after = j->http_response.headers.get("retry-after");
            if (!after.empty())
                if (auto ra = retry::parse_retry_after(after)) delay = std::max(delay, *ra);
        }
        if (Clock::now() + delay >= j->deadline) return {};  // no time left to try again
        return delay;
    }

    void backoff(Worker& w, Job* j, std::chrono::nanoseconds delay) {
        ++j->retries;
        j->phase = Job::Phase::backoff;
        backing_off_.fetch_add(1, std::memory_order_relaxed);
        j->backoff_timer.emplace(w.ioc);
        j->backoff_timer->expires_after(delay);
        j->backoff_timer->async_wait(asio::bind_allocator(
            ArenaAllocator<void>(j->arena),
            [this, &w, j](boost::system::error_code) { on_backoff_done(w, j); }));
    }

    void on_backoff_done(Worker& w, Job* j) {
        backing_off_.fetch_sub(1, std::memory_order_relaxed);
        j->phase = Job::Phase::idle;
        if (j->is_claimed()) {  // aborted while waiting
            drop(w, j, false);
            return;
        }
        j->phase = Job::Phase::ready;
        w.ready.push(j);
    }

    /// Decides an owned job's outcome with `e` (if nobody has) and finishes it.
    void decide(Worker& w, Job* j, Error e) {
        if (j->claim() == Job::claimed) {
            drop(w, j, true);
            return;
        }
        j->outcome.fail(std::move(e));
        if (j->outcome.error.status >= 500) breaker_.record_failure();
        finish(w, j);
    }

    /// The worker decided the outcome: count it, let the job go here, then complete the caller
    /// (so a caller that looks at `stats()` sees the slot free again).
    void finish(Worker& w, Job* j) {
        count_finished(j->outcome.ok());
        let_go(w, j, true);
        complete_guarded(j);
        j->release();
    }

    /// Lets go of an owned job whose outcome is decided (slot held when in an upstream call).
    void drop(Worker& w, Job* j, bool holds_slot) {
        let_go(w, j, holds_slot);
        j->release();
    }

    void let_go(Worker& w, Job* j, bool holds_slot) {
        disown(w, j);
        j->backoff_timer.reset();  // bound to this worker's loop, which may go before the job
        if (holds_slot) release_slot();
    }

    // ---- aborting running jobs ------------------------------------------------------------------

    /// Stops a running job's upstream work on its worker: directly when called there, else posted.
    void stop_running(Job* j) override {
        Worker* w = static_cast<Worker*>(j->worker);
        if (current_worker_ == w) {
            interrupt(*w, j);
            return;
        }
        j->add_ref();
        asio::post(w->ioc, asio::bind_allocator(ArenaAllocator<void>(j->arena), [this, w, j] {
                       interrupt(*w, j);
                       j->release();
                   }));
    }

    /// On the worker: ends whatever the (decided) job is doing here.
    void interrupt(Worker& w, Job* j) {
        switch (j->phase) {
            case Job::Phase::upstream:
                j->upstream_cancel.emit(asio::cancellation_type::terminal);
                break;
            case Job::Phase::backoff:
                j->backoff_timer->cancel();
                break;
            case Job::Phase::ready: {
                w.ready.remove(j);
                j->phase = Job::Phase::idle;
                drop(w, j, false);
                break;
            }
            case Job::Phase::idle:
                if constexpr (CredentialProvider<P>) {
                    if (forget_waiter(j)) drop(w, j, true);  // it waited for a credential
                }
                break;  // between steps on this thread: it will see the claim
        }
    }

    void abort_owned(Worker& w) {
        std::vector<Job*> jobs;
        for (Job* j = w.owned_head; j; j = j->next)
            jobs.push_back(j);
        for (Job* j : jobs)
            abort(j, errors::shutting_down(name_), AbortKind::shutdown);
    }

    // ---- deadlines of owned jobs
    // ------------------------------------------------------------------

    /// Adds a job to the worker's list, kept in deadline order (usually an append).
    void own(Worker& w, Job* j) {
        Job* after = w.owned_tail;
        while (after && after->deadline > j->deadline)
            after = after->prev;
        j->prev = after;
        j->next = after ? after->next : w.owned_head;
        if (j->next)
            j->next->prev = j;
        else
            w.owned_tail = j;
        if (after)
            after->next = j;
        else
            w.owned_head = j;
        ++w.owned;
        owned_.fetch_add(1, std::memory_order_relaxed);
        if (j->deadline < w.next_deadline) w.next_deadline = j->deadline;
    }

    void disown(Worker& w, Job* j) noexcept {
        if (j->prev)
            j->prev->next = j->next;
        else
            w.owned_head = j->next;
        if (j->next)
            j->next->prev = j->prev;
        else
            w.owned_tail = j->prev;
        j->next = j->prev = nullptr;
        --w.owned;
        owned_.fetch_sub(1, std::memory_order_relaxed);
    }

    /// Aborts every owned job past its deadline; notes the earliest one left. True if any.
    bool expire_due(Worker& w) {
        w.next_deadline = Clock::time_point::max();
        const auto now = Clock::now();
        std::vector<Job*> due;
        for (Job* j = w.owned_head; j; j = j->next) {
            if (j->is_claimed()) continue;
            if (j->deadline > now) {
                w.next_deadline = j->deadline;
                break;
            }
            due.push_back(j);
        }
        for (Job* j : due)
            abort(j, errors::timed_out(name_), AbortKind::timed_out);
        return !due.empty();
    }

    void name_thread(std::size_t index) const {
#if defined(__linux__)
        std::string n = "bf:" + name_.substr(0, 8) + ":" + std::to_string(index);
        if (n.size() > 15) n.resize(15);
        pthread_setname_np(pthread_self(), n.c_str());
#else
        (void)index;
#endif
    }

    P provider_;
    std::chrono::nanoseconds worker_spin_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::mutex stop_mutex_;
    bool joined_ = false;
    /// Credential exchanges in flight, by credential name, with the requests waiting on each.
    std::mutex credential_mutex_;
    std::map<std::string, std::vector<Job*>, std::less<>> credential_waiters_;
};

}  // namespace bifrost::detail
