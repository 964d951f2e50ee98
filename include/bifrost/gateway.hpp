#pragma once
/// \file
/// `Gateway<Transport, QueuePolicy, PoolPolicy, Plugins...>`: the unified entry point. Callers
/// on any number of threads send chat requests (and embeddings, legacy text completions and
/// model listings, which take the same path); each request runs the plugins' pre-hooks, is
/// routed by its `"provider/model"` name to that provider's own bounded lock-free queue, is
/// served by that provider's own worker threads (with retries), comes back through the
/// post-hooks, and, when it failed, is tried again on each of its fallbacks in turn. Everything
/// is composed at compile time: no virtual call on the request path.

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/context.hpp>
#include <bifrost/core/job.hpp>
#include <bifrost/core/operation_result.hpp>
#include <bifrost/core/provider_pool.hpp>
#include <bifrost/core/provider_queue.hpp>
#include <bifrost/core/result.hpp>
#include <bifrost/core/stats.hpp>
#include <bifrost/core/timekeeper.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/queue/policies.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/completion.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/models.hpp>
#include <bifrost/schema/operation_outcome.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace bifrost {

/// Per-call options.
struct RequestOptions {
    /// Passed to plugins as `Context::user_data()`.
    void* user_data = nullptr;
    /// A deadline for the whole request (queue wait, upstream, retries and fallbacks): on
    /// expiry the caller gets 504 `request_timed_out` and the upstream call is cancelled.
    /// Unset: each attempt is bounded by its provider's `default_request_timeout_in_seconds`.
    std::optional<std::chrono::nanoseconds> timeout;
};

namespace detail {

/// The gateway's back door into `Result` and `Context` (which keep their setters private).
struct GatewayAccess {
    static Result make_result(Job* j) noexcept { return Result(j); }
    static void begin(Job* j, std::uint64_t id, std::chrono::steady_clock::time_point start,
                      void* user_data, int fallback_index) noexcept {
        j->ctx.request_id_ = id;
        j->ctx.start_ = start;
        j->ctx.user_data_ = user_data;
        j->ctx.fallback_index_ = fallback_index;
        j->ctx.short_circuit_ = false;
        j->ctx.provider_ = {};
    }
    static void set_provider(Job* j, std::string_view p) noexcept { j->ctx.provider_ = p; }
    static void mark_short_circuit(Job* j) noexcept { j->ctx.short_circuit_ = true; }
    /// Moves the job of a finished request from its `Result` into the handle of its kind.
    template <class R>
    static R convert(Result&& r) noexcept {
        return R(std::exchange(r.job_, nullptr));
    }
};

/// Wraps the handler of a request of another kind so that the chat machinery can complete it
/// with a `Result`: converts that to the kind's handle `R`. Keeps the handler's associated
/// executor, allocator and cancellation slot.
template <class Handler, class R>
struct ResultAdapter {
    Handler handler;

    using executor_type = asio::associated_executor_t<Handler>;
    executor_type get_executor() const noexcept { return asio::get_associated_executor(handler); }
    using allocator_type = asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept {
        return asio::get_associated_allocator(handler);
    }
    using cancellation_slot_type = asio::associated_cancellation_slot_t<Handler>;
    cancellation_slot_type get_cancellation_slot() const noexcept {
        return asio::get_associated_cancellation_slot(handler);
    }

    void operator()(Result r) { std::move(handler)(GatewayAccess::convert<R>(std::move(r))); }
};

/// The request of kind `Req` stored in a job's `op_data`.
template <class Req>
Req& op_request(OperationData& d) noexcept {
    if constexpr (std::is_same_v<Req, EmbeddingRequest>)
        return d.embedding_request;
    else
        return d.completion_request;
}

template <class Req>
constexpr Operation operation_of() noexcept {
    return std::is_same_v<Req, EmbeddingRequest> ? Operation::embedding
                                                 : Operation::text_completion;
}

/// Copies the routing fields of the job's request of another kind into `request`, where routing
/// and the queue policy read them.
inline void sync_routing(Job* j) {
    const auto copy = [&](const auto& req) {
        j->request.model = req.model;
        j->request.provider = req.provider;
    };
    if (j->op == Operation::embedding)
        copy(j->ops().embedding_request);
    else if (j->op == Operation::text_completion)
        copy(j->ops().completion_request);
}

/// Loads a request of another kind into a fresh job.
template <class Req>
void load(Job* j, const Req& req) {
    j->op = operation_of<Req>();
    OperationData& d = j->ops();
    op_request<Req>(d) = req;
    d.template outcome<std::conditional_t<std::is_same_v<Req, EmbeddingRequest>, EmbeddingResponse,
                                          TextCompletionResponse>>()
        .recycle();
    j->request.messages.clear();
    sync_routing(j);
}

/// Owns one reference to a job until released (async initiation arguments).
class JobRef {
  public:
    explicit JobRef(Job* j) noexcept : job_(j) {}
    JobRef(JobRef&& o) noexcept : job_(std::exchange(o.job_, nullptr)) {}
    JobRef& operator=(JobRef&&) = delete;
    ~JobRef() {
        if (job_) job_->release();
    }
    Job* release() noexcept { return std::exchange(job_, nullptr); }
    Job* get() const noexcept { return job_; }
    Job* operator->() const noexcept { return job_; }

  private:
    Job* job_;
};

template <class T>
inline constexpr bool transport_cannot_stream = !StreamingTransport<T>;

template <class P>
constexpr std::string_view plugin_name() {
    if constexpr (requires { P::name; })
        return P::name;
    else
        return "plugin";
}

}  // namespace detail

/// The gateway.
///
/// - `TransportT`: how workers reach upstreams (`transport::Mock`, `transport::Beast`).
/// - `QueueT`: what a request does when its provider's queue is full (`queue::Block`,
///   `queue::BlockFor`, `queue::Drop`, `queue::FromConfig`).
/// - `PoolT`: where per-request objects come from (`pool::Preallocated`, `pool::Heap`).
/// - `Plugins...`: pre-hooks run in this order, post-hooks in reverse.
///
/// Thread safety: `chat`, `async_chat`, `embed`, `async_embed`, `text_complete`,
/// `async_text_complete`, `list_models`, `stats` and `update_provider` may be called from any
/// number of threads at once. `add_provider` may run concurrently with requests (a request for
/// a provider not yet added fails with 400). `shutdown` may be called from any thread; the
/// destructor calls it.
template <Transport TransportT, QueuePolicy QueueT, PoolPolicy PoolT, Plugin... Plugins>
class Gateway {
  public:
    using transport_type = TransportT;
    using queue_policy_type = QueueT;
    using pool_policy_type = PoolT;
    using Clock = std::chrono::steady_clock;
    using TransportOptions = typename TransportT::Options;

    /// Most providers one gateway serves.
    static constexpr std::size_t max_providers = 128;

    /// A gateway with default-constructed plugins.
    explicit Gateway(GatewayOptions options = {}, QueueT queue_policy = {})
        : options_(options),
          queue_policy_(std::move(queue_policy)),
          pool_(options.initial_pool_size) {}

    /// A gateway with the given plugin objects.
    Gateway(GatewayOptions options, QueueT queue_policy,
            Plugins... plugins) requires(sizeof...(Plugins) > 0)
        : options_(options),
          queue_policy_(std::move(queue_policy)),
          plugins_(std::move(plugins)...),
          pool_(options.initial_pool_size) {}

    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    /// Stops intake, drains (up to `GatewayOptions::drain_timeout`), joins every thread.
    /// Precondition: no `Result` of this gateway outlives it, no call is in progress.
    ~Gateway() {
        shutdown();
        // Late attempts (fallbacks started after the shutdown) may still have armed deadline
        // timers: the timekeeper runs until here so that their handlers release their jobs.
        timekeeper_.stop();
    }

    /// Starts a provider instance named `name` (the prefix of `"name/model"`) served by the
    /// provider type `P`. Returns an error (400) for a duplicate name or an invalid
    /// configuration, naming the field.
    template <Provider P>
    std::optional<Error> add_provider(std::string name, ProviderConfig config,
                                      TransportOptions transport_options = {}) {
        return add_provider(std::move(name), std::move(config), P{}, std::move(transport_options));
    }

    /// As above with a provider object (for providers carrying settings).
    template <Provider P>
    std::optional<Error> add_provider(std::string name, ProviderConfig config, P provider,
                                      TransportOptions transport_options) {
        std::lock_guard lock(admin_mutex_);
        if (name.empty() || name.find('/') != std::string::npos)
            return errors::invalid_request("provider name '" + name +
                                           "' must be non-empty and contain no '/'");
        if (find(name) != nullptr)
            return errors::invalid_request("provider '" + name + "' is already configured");
        if (shut_down_.load(std::memory_order_acquire)) return errors::shutting_down(name);
        const std::size_t n = provider_count_.load(std::memory_order_relaxed);
        if (n == max_providers) return errors::invalid_request("too many providers");
        try {
            providers_[n] = std::make_unique<detail::ProviderPool<P, TransportT>>(
                name, std::move(config), std::move(provider), std::move(transport_options),
                options_);
        } catch (const std::exception& e) {
            return errors::invalid_request("provider '" + name + "': " + e.what());
        }
        provider_count_.store(n + 1, std::memory_order_release);
        return std::nullopt;
    }

    /// Reconfigures a running provider (Bifrost's UpdateProvider): concurrency, buffer size,
    /// keys, network settings and circuit breaker change while it serves traffic; queued
    /// requests are neither lost nor duplicated. Returns an error for an unknown provider or an
    /// invalid configuration (`worker_threads` cannot change).
    std::optional<Error> update_provider(std::string_view name, ProviderConfig config) {
        detail::ProviderQueue* q = find(name);
        if (q == nullptr)
            return errors::invalid_request("unknown provider '" + std::string(name) + "'");
        try {
            q->update(std::move(config));
        } catch (const std::exception& e) {
            return errors::invalid_request("provider '" + std::string(name) + "': " + e.what());
        }
        return std::nullopt;
    }

    /// True when a provider named `name` was added.
    [[nodiscard]] bool has_provider(std::string_view name) const noexcept {
        return find(name) != nullptr;
    }

    /// Sends a request and blocks the calling thread until its outcome is final.
    Result chat(const ChatRequest& request, const RequestOptions& opts = {}) {
        detail::Job* j = acquire_job();
        j->request = request;
        return run_sync(j, request, opts);
    }

    /// As above, taking the request's memory instead of copying it (when it has no fallbacks,
    /// which need the original).
    Result chat(ChatRequest&& request, const RequestOptions& opts = {}) {
        if (!request.fallbacks.empty()) return chat(static_cast<const ChatRequest&>(request), opts);
        detail::Job* j = acquire_job();
        j->request = std::move(request);
        return run_sync(j, j->request, opts);
    }

    /// Sends a request asynchronously; completes with `void(Result)`. Works with any Asio
    /// completion token: a callback, `asio::use_future`, `asio::use_awaitable`, `deferred`.
    ///
    /// The completion runs on the handler's associated executor (post-hooks run there too). A
    /// handler without one (a plain lambda) runs on the thread that finished the request (a
    /// worker), or inside this call when the outcome is immediate (a pre-hook answered, a routing
    /// error, a full queue with a dropping policy): keep such callbacks short and non-blocking.
    /// Called on one of the provider's own worker threads (`worker_executors`), the request's
    /// upstream call begins inside this call, and a transport that answers at once may complete
    /// it there too.
    ///
    /// Cancellation: emitting on the handler's associated cancellation slot (from the handler's
    /// executor) ends the request with 499 `request_cancelled` and cancels its upstream call.
    template <class CompletionToken>
    auto async_chat(const ChatRequest& request, CompletionToken&& token) {
        return async_chat(request, RequestOptions{}, std::forward<CompletionToken>(token));
    }

    template <class CompletionToken>
    auto async_chat(const ChatRequest& request, const RequestOptions& opts,
                    CompletionToken&& token) {
        detail::JobRef primary(acquire_job());
        primary->request = request;
        return initiate_chat(std::move(primary), opts, std::forward<CompletionToken>(token));
    }

    /// As above, taking the contents of `request`, which is left valid but unspecified: it gets
    /// the storage of the request a recycled job held, so a caller that reads its next request
    /// into the same object reuses that capacity, and no request is copied.
    template <class CompletionToken>
    auto async_chat(ChatRequest&& request, const RequestOptions& opts, CompletionToken&& token) {
        detail::JobRef primary(acquire_job());
        std::swap(primary->request, request);
        return initiate_chat(std::move(primary), opts, std::forward<CompletionToken>(token));
    }

    // ---- embeddings, text completions, model listing ------------------------------------------

    /// Creates embeddings and blocks until the outcome is final. The request takes the chat path:
    /// its provider's queue and workers, key selection, retries, deadline, circuit breaker and
    /// fallbacks, plus the plugins' embedding hooks. A provider type without the capability
    /// (`EmbeddingProvider`) answers 400 `unsupported_operation`.
    EmbeddingResult embed(const EmbeddingRequest& request, const RequestOptions& opts = {}) {
        return run_sync_other<EmbeddingResult>(request, opts);
    }

    /// Creates embeddings asynchronously; completes with `void(EmbeddingResult)`. Completion
    /// tokens, executors and cancellation work as for `async_chat`.
    template <class CompletionToken>
    auto async_embed(const EmbeddingRequest& request, CompletionToken&& token) {
        return async_embed(request, RequestOptions{}, std::forward<CompletionToken>(token));
    }

    template <class CompletionToken>
    auto async_embed(const EmbeddingRequest& request, const RequestOptions& opts,
                     CompletionToken&& token) {
        return async_other<EmbeddingResult>(request, opts, std::forward<CompletionToken>(token));
    }

    /// A legacy text completion (OpenAI's `/v1/completions`), blocking; as `embed`
    /// (`TextCompletionProvider`).
    TextCompletionResult text_complete(const TextCompletionRequest& request,
                                       const RequestOptions& opts = {}) {
        return run_sync_other<TextCompletionResult>(request, opts);
    }

    /// A legacy text completion, asynchronously; completes with `void(TextCompletionResult)`.
    template <class CompletionToken>
    auto async_text_complete(const TextCompletionRequest& request, CompletionToken&& token) {
        return async_text_complete(request, RequestOptions{}, std::forward<CompletionToken>(token));
    }

    template <class CompletionToken>
    auto async_text_complete(const TextCompletionRequest& request, const RequestOptions& opts,
                             CompletionToken&& token) {
        return async_other<TextCompletionResult>(request, opts,
                                                 std::forward<CompletionToken>(token));
    }

    /// The models of provider `provider`, blocking. A `ModelListingProvider` is asked upstream
    /// (OpenAI's `GET /v1/models`) through its queue and workers, with retries, deadline and
    /// circuit breaker (no fallbacks, no plugin hooks; any enabled key is used). Other providers
    /// are answered at once from the configured keys' `models` (empty when every key serves all
    /// models). Ids are the provider's own; `extra_fields.provider` names the provider.
    ModelListResult list_models(std::string_view provider, const RequestOptions& opts = {}) {
        detail::Job* j = acquire_job();
        j->op = Operation::list_models;
        detail::OperationData& d = j->ops();
        d.models.recycle();
        d.list_request.provider.assign(provider);
        j->request.messages.clear();
        j->request.model.clear();
        j->request.provider.assign(provider);
        detail::GatewayAccess::begin(j, next_id(), Clock::now(), opts.user_data, 0);
        detail::ProviderQueue* q = find(provider);
        if (q == nullptr) {
            Error e = errors::invalid_request(
                "unknown provider '" + std::string(provider) + "'" + configured_list(), "provider");
            e.type.assign(error_type::unknown_provider);
            reject(j, std::move(e));
            return make_other<ModelListResult>(j);
        }
        j->target = q;
        j->model_id = {};
        detail::GatewayAccess::set_provider(j, q->name());
        if (!q->supports(Operation::list_models)) {
            ModelList& list = d.models.response;
            for (const Key& k : q->settings().config.keys) {
                if (!k.enabled) continue;
                for (const std::string& m : k.models) {
                    const bool seen = std::any_of(list.data.begin(), list.data.end(),
                                                  [&](const ModelInfo& i) { return i.id == m; });
                    if (seen) continue;
                    ModelInfo info;
                    info.id = m;
                    info.owned_by.assign(q->name());
                    list.data.push_back(std::move(info));
                }
            }
            list.extra_fields.provider.assign(q->name());
            return make_other<ModelListResult>(j);
        }
        j->deadline = attempt_deadline(*q, overall_deadline(opts));
        if (admit(j, true)) wait_sync(j);
        return make_other<ModelListResult>(j);
    }

    /// Streams a chat completion: blocks the calling thread until the stream is over, passing
    /// each chunk to `on_chunk(const StreamChunk&)` as it arrives, in order. Returns the final
    /// `Result`: ok when the stream ended normally, else the error that ended it.
    ///
    /// `on_chunk` runs on a provider worker thread, one call at a time, never after the final
    /// outcome is decided: keep it short and non-blocking (hand the chunk over, do not do slow
    /// I/O). It returns `bool`: false stops reading, which closes the upstream stream and ends the
    /// request with 499 `request_cancelled`. Each chunk carries `extra_fields.provider`.
    ///
    /// Everything else is as for `chat`: the same queue, workers, concurrency limit, plugins and
    /// fallbacks, with two differences. A failure before the first chunk reached `on_chunk` is
    /// retried, key-rotated and fallen back like any request (a fallback's stream feeds the same
    /// `on_chunk`); a failure after it ends the stream with that error, with no retry. The
    /// deadline is the request's own (`RequestOptions::timeout`, 504 when it passes mid-stream):
    /// a stream may rightly outlast the provider's `default_request_timeout_in_seconds`, and the
    /// transport bounds the silence between chunks (`Beast::Options::stream_idle_timeout`).
    ///
    /// The outcome post-hooks see (and `Result` holds) for a successful stream is a summary, not
    /// the text: `id`, `model`, `created`, `usage` (from the usage chunk, when the upstream sent
    /// one), one choice per index with its `finish_reason` and an empty message, and
    /// `extra_fields`. A provider type or transport that cannot stream answers 400 or 501.
    template <class OnChunk>
    Result chat_stream(const ChatRequest& request, OnChunk&& on_chunk,
                       const RequestOptions& opts = {}) {
        using F = std::remove_reference_t<OnChunk>;
        const detail::StreamSink sink{&invoke_on_chunk<F>,
                                      const_cast<void*>(static_cast<const void*>(&on_chunk))};
        detail::Job* primary = acquire_job();
        primary->request = request;
        primary->stream = &sink;
        const auto overall = overall_deadline(opts);
        detail::GatewayAccess::begin(primary, next_id(), Clock::now(), opts.user_data, 0);
        attempt_sync(primary, overall);
        if (primary->outcome.ok() || primary->stream_delivered || !may_fall_back(primary, primary))
            return detail::GatewayAccess::make_result(primary);
        for (std::size_t k = 0; k < request.fallbacks.size() && Clock::now() < overall; ++k) {
            detail::Job* f = make_fallback(request, primary, k);
            attempt_sync(f, overall);
            if (f->outcome.ok() || f->stream_delivered) {
                if (f->outcome.ok()) fallback_successes_.fetch_add(1, std::memory_order_relaxed);
                primary->release();
                return detail::GatewayAccess::make_result(f);
            }
            const bool go_on = may_fall_back(f, primary);
            f->release();
            if (!go_on) break;
        }
        return detail::GatewayAccess::make_result(primary);
    }

    /// Streams a chat completion asynchronously: chunks go to `on_chunk` as for `chat_stream`
    /// (on a worker thread), then the operation completes with `void(Result)` like `async_chat`
    /// (any completion token; the handler's executor; cancellation through its slot ends the
    /// stream with 499). No chunk is delivered after the completion handler is invoked.
    template <class OnChunk, class CompletionToken>
    auto async_chat_stream(const ChatRequest& request, OnChunk&& on_chunk,
                           CompletionToken&& token) {
        return async_chat_stream(request, std::forward<OnChunk>(on_chunk), RequestOptions{},
                                 std::forward<CompletionToken>(token));
    }

    template <class OnChunk, class CompletionToken>
    auto async_chat_stream(const ChatRequest& request, OnChunk&& on_chunk,
                           const RequestOptions& opts, CompletionToken&& token) {
        using F = std::decay_t<OnChunk>;
        detail::JobRef primary(acquire_job());
        primary->request = request;
        auto box = std::make_unique<StreamBox<F>>(std::forward<OnChunk>(on_chunk));
        box->sink = detail::StreamSink{&invoke_on_chunk<F>, &box->fn};
        primary->stream = &box->sink;
        primary->stream_owned = std::move(box);
        detail::JobRef origin(request.fallbacks.empty() ? nullptr : acquire_job());
        if (origin.get()) origin->request = request;
        return asio::async_initiate<CompletionToken, void(Result)>(
            Initiation{this, opts}, token, std::move(primary), std::move(origin));
    }

    /// A snapshot of every provider's figures and the pool's.
    [[nodiscard]] GatewayStats stats() const {
        GatewayStats s;
        const std::size_t n = provider_count_.load(std::memory_order_acquire);
        s.providers.reserve(n);
        for (std::size_t i = 0; i < n; ++i)
            s.providers.push_back(providers_[i]->stats());
        s.pool = pool_.stats();
        s.short_circuited = short_circuited_.load(std::memory_order_relaxed);
        s.rejected = rejected_.load(std::memory_order_relaxed);
        s.fallback_attempts = fallback_attempts_.load(std::memory_order_relaxed);
        s.fallback_successes = fallback_successes_.load(std::memory_order_relaxed);
        return s;
    }

    /// Stops intake on every provider (new requests get 503 "provider is shutting down", as do
    /// callers blocked waiting for queue space), lets queued, in-flight and retrying requests
    /// finish for up to `GatewayOptions::drain_timeout`, then aborts what is left (503) and joins
    /// all worker threads. Every request submitted before is answered exactly once. Idempotent.
    void shutdown() {
        std::lock_guard lock(admin_mutex_);
        if (shut_down_.exchange(true, std::memory_order_acq_rel)) return;
        const std::size_t n = provider_count_.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < n; ++i)
            providers_[i]->close();
        const auto deadline = Clock::now() + options_.drain_timeout;
        for (std::size_t i = 0; i < n; ++i) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            providers_[i]->stop(left.count() > 0 ? left : std::chrono::milliseconds(0));
        }
    }

    /// The event loops of every provider's worker threads, in the order the providers were
    /// added. A server can run its client connections on them (`server::Options::
    /// connections_on_workers`) so that a request is read, sent upstream and answered on one
    /// thread. Each is run by its one thread alone (no strand is needed to serialize work on
    /// it). Work posted to them must not block: it delays the provider's requests. They stop
    /// at `shutdown()`.
    [[nodiscard]] std::vector<asio::io_context::executor_type> worker_executors() const {
        std::vector<asio::io_context::executor_type> out;
        const std::size_t n = provider_count_.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < n; ++i) {
            auto ex = providers_[i]->worker_executors();
            out.insert(out.end(), ex.begin(), ex.end());
        }
        return out;
    }

    /// The queue policy object (e.g. to set `BlockFor::timeout` before traffic starts).
    [[nodiscard]] QueueT& queue_policy() noexcept { return queue_policy_; }

    /// The plugin object of type `P`.
    template <class P>
    [[nodiscard]] P& plugin() noexcept {
        return std::get<P>(plugins_);
    }

    [[nodiscard]] const GatewayOptions& options() const noexcept { return options_; }

  private:
    using JobPool = typename PoolT::template pool<detail::Job>;
    static constexpr std::size_t plugin_count = sizeof...(Plugins);

    /// An async stream's callback, owned by its first attempt's job.
    template <class F>
    struct StreamBox final : detail::StreamStateBase {
        template <class G>
        explicit StreamBox(G&& g) : fn(std::forward<G>(g)) {}
        F fn;
        detail::StreamSink sink;
    };

    template <class F>
    static bool invoke_on_chunk(void* f, const StreamChunk& chunk) {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, const StreamChunk&>>) {
            (*static_cast<F*>(f))(chunk);
            return true;
        } else {
            return static_cast<bool>((*static_cast<F*>(f))(chunk));
        }
    }

    struct Initiation {
        Gateway* self;
        RequestOptions opts;
        template <class Handler>
        void operator()(Handler&& handler, detail::JobRef primary, detail::JobRef origin) const {
            self->start_async(std::forward<Handler>(handler), primary.release(), origin.release(),
                              opts);
        }
    };

    // ---- jobs and attempts ----------------------------------------------------------------------

    detail::Job* acquire_job() {
        detail::Job* j = pool_.acquire();
        j->recycler = &pool_;
        j->recycle_fn = [](void* pool, detail::Job* job) noexcept {
            static_cast<JobPool*>(pool)->release(job);
        };
        j->refs.store(1, std::memory_order_relaxed);
        return j;
    }

    static Clock::time_point overall_deadline(const RequestOptions& opts) noexcept {
        if (!opts.timeout || opts.timeout->count() <= 0) return Clock::time_point::max();
        return Clock::now() + *opts.timeout;
    }

    /// The attempt's deadline: the request's own, or the provider's timeout if that comes first.
    static Clock::time_point attempt_deadline(const detail::ProviderQueue& q,
                                              Clock::time_point overall) noexcept {
        const auto t = q.default_timeout();
        if (t.count() <= 0) return overall;
        return std::min(overall, Clock::now() + t);
    }

    /// A fallback attempt for `primary`: the original request with the k-th fallback's model.
    detail::Job* make_fallback(const ChatRequest& original, const detail::Job* primary,
                               std::size_t k) {
        detail::Job* f = acquire_job();
        f->request = original;
        f->request.model = original.fallbacks[k];
        f->request.provider.clear();
        f->stream = primary->stream;
        detail::GatewayAccess::begin(f, primary->ctx.request_id(), primary->ctx.start_time(),
                                     primary->ctx.user_data(), static_cast<int>(k + 1));
        fallback_attempts_.fetch_add(1, std::memory_order_relaxed);
        return f;
    }

    /// A fallback attempt for a request of another kind (as above).
    template <class Req>
    requires(std::is_same_v<Req, EmbeddingRequest> || std::is_same_v<Req, TextCompletionRequest>)
        detail::Job* make_fallback(const Req& original, const detail::Job* primary, std::size_t k) {
        detail::Job* f = acquire_job();
        detail::load(f, original);
        Req& req = detail::op_request<Req>(f->ops());
        req.model = original.fallbacks[k];
        req.provider.clear();
        detail::sync_routing(f);
        detail::GatewayAccess::begin(f, primary->ctx.request_id(), primary->ctx.start_time(),
                                     primary->ctx.user_data(), static_cast<int>(k + 1));
        fallback_attempts_.fetch_add(1, std::memory_order_relaxed);
        return f;
    }

    /// The k-th fallback attempt of the request held by `origin` (any kind).
    detail::Job* make_fallback(detail::Job* origin, const detail::Job* primary, std::size_t k) {
        switch (origin->op) {
            case Operation::embedding:
                return make_fallback(origin->ops().embedding_request, primary, k);
            case Operation::text_completion:
                return make_fallback(origin->ops().completion_request, primary, k);
            case Operation::chat:
            case Operation::list_models:
                break;
        }
        return make_fallback(origin->request, primary, k);
    }

    /// How many fallbacks the request held by `origin` lists.
    static std::size_t fallback_count(detail::Job* origin) {
        switch (origin->op) {
            case Operation::embedding:
                return origin->ops().embedding_request.fallbacks.size();
            case Operation::text_completion:
                return origin->ops().completion_request.fallbacks.size();
            case Operation::chat:
            case Operation::list_models:
                break;
        }
        return origin->request.fallbacks.size();
    }

    template <class R>
    static R make_other(detail::Job* j) noexcept {
        return detail::GatewayAccess::convert<R>(detail::GatewayAccess::make_result(j));
    }

    template <class R, class Req>
    R run_sync_other(const Req& request, const RequestOptions& opts) {
        detail::Job* j = acquire_job();
        detail::load(j, request);
        return detail::GatewayAccess::convert<R>(run_sync(j, request, opts));
    }

    template <class R>
    struct OtherInitiation {
        Gateway* self;
        RequestOptions opts;
        template <class Handler>
        void operator()(Handler&& handler, detail::JobRef primary, detail::JobRef origin) const {
            self->start_async(
                detail::ResultAdapter<std::decay_t<Handler>, R>{std::forward<Handler>(handler)},
                primary.release(), origin.release(), opts);
        }
    };

    template <class R, class Req, class CompletionToken>
    auto async_other(const Req& request, const RequestOptions& opts, CompletionToken&& token) {
        detail::JobRef primary(acquire_job());
        detail::load(primary.get(), request);
        detail::JobRef origin(request.fallbacks.empty() ? nullptr : acquire_job());
        if (origin.get()) detail::load(origin.get(), request);
        return asio::async_initiate<CompletionToken, void(R)>(
            OtherInitiation<R>{this, opts}, token, std::move(primary), std::move(origin));
    }

    /// Whether a failed attempt may be followed by a fallback: not after the caller cancelled,
    /// and not once the gateway is shutting down (providers close one after another, so a
    /// fallback could otherwise still slip into one that has not closed yet).
    bool may_fall_back(const detail::Job* attempt, const detail::Job* primary) const noexcept {
        return attempt->outcome.error.type != error_type::request_cancelled &&
               !primary->cancel_requested.load(std::memory_order_acquire) &&
               !shut_down_.load(std::memory_order_acquire);
    }

    // ---- the synchronous path -----------------------------------------------------------------

    template <class Req>
    Result run_sync(detail::Job* primary, const Req& original, const RequestOptions& opts) {
        const auto overall = overall_deadline(opts);
        detail::GatewayAccess::begin(primary, next_id(), Clock::now(), opts.user_data, 0);
        attempt_sync(primary, overall);
        if (primary->outcome.ok() || !may_fall_back(primary, primary))
            return detail::GatewayAccess::make_result(primary);
        for (std::size_t k = 0; k < original.fallbacks.size() && Clock::now() < overall; ++k) {
            detail::Job* f = make_fallback(original, primary, k);
            attempt_sync(f, overall);
            if (f->outcome.ok()) {
                fallback_successes_.fetch_add(1, std::memory_order_relaxed);
                primary->release();
                return detail::GatewayAccess::make_result(f);
            }
            f->release();
        }
        return detail::GatewayAccess::make_result(primary);  // all failed: the primary's error
    }

    void attempt_sync(detail::Job* j, Clock::time_point overall) {
        const std::size_t ran = run_pre_hooks(j);
        if (j->ctx.short_circuited()) {
            short_circuited_.fetch_add(1, std::memory_order_relaxed);
        } else if (route(j)) {
            j->deadline = j->stream ? overall : attempt_deadline(*j->target, overall);
            if (admit(j, true)) wait_sync(j);
        }
        run_post_hooks(j, ran);
    }

    /// Waits for the attempt's outcome; at its deadline, decides it with 504 (unless someone
    /// decided first, in which case the outcome is moments away).
    void wait_sync(detail::Job* j) {
        if (j->wait_finished(options_.caller_spin, j->deadline)) return;
        if (!j->target->abort(j, errors::timed_out(j->target->name()),
                              detail::AbortKind::timed_out))
            j->wait_finished(std::chrono::nanoseconds(0), Clock::time_point::max());
    }

    // ---- admission (both paths)
    // ------------------------------------------------------------------

    /// Admits the attempt into its provider's queue. False (outcome set, caller completed for
    /// async) when it was not admitted. `blocking`: a full queue may block this thread (sync);
    /// otherwise the attempt is parked without blocking (async).
    bool admit(detail::Job* j, bool blocking) {
        detail::ProviderQueue& q = *j->target;
        q.count_submitted();
        switch (q.breaker_allow()) {
            case CircuitBreaker::Admit::yes:
                break;
            case CircuitBreaker::Admit::probe:
                j->probe = true;
                break;
            case CircuitBreaker::Admit::no:
                return refuse(j, Refusal::circuit,
                              errors::make(503, error_type::circuit_open,
                                           "provider '" + std::string(q.name()) +
                                               "' is unavailable: its circuit breaker is open "
                                               "after repeated failures",
                                           q.name()));
        }
        auto s = q.try_enqueue(j);
        if (s == queue::PushStatus::ok) {
            // Submitted on one of the provider's own workers (a connection served there): its
            // upstream call starts here and now. The job may be decided before this returns.
            if (!blocking) q.start_submitted();
            return true;
        }
        if (s == queue::PushStatus::full) {
            const queue::OnFull d = on_full(q, j);
            if (!d.waits()) {
                return refuse(j, Refusal::dropped, errors::request_dropped(q.name()));
            }
            if (!blocking) {
                q.enqueue_parked(j, d.deadline());
                return true;
            }
            s = q.enqueue_blocking(j, std::min(d.deadline(), j->deadline));
            if (s == queue::PushStatus::full) {
                if (Clock::now() >= j->deadline)
                    return refuse(j, Refusal::timed_out, errors::timed_out(q.name()));
                return refuse(j, Refusal::queue_timeout, errors::queue_timeout(q.name()));
            }
        }
        if (s == queue::PushStatus::closed) {
            return refuse(j, Refusal::shutdown, errors::shutting_down(q.name()));
        }
        return true;
    }

    using Refusal = detail::ProviderQueue::Refusal;

    /// Fails an attempt that was not admitted (unless a deadline or cancellation decided it
    /// first); counts it once.
    bool refuse(detail::Job* j, Refusal why, Error e) {
        if (j->probe) j->target->probe_abandoned();
        if (j->claim() != detail::Job::claimed) {
            j->target->count_refusal(why);
            j->outcome.fail(std::move(e));
            if (j->completion.has_value()) j->complete();
        }
        return false;
    }

    queue::OnFull on_full(const detail::ProviderQueue& q, const detail::Job* j) const {
        return queue_policy_.on_full(
            queue::FullQueue{q.name(), q.depth(), q.capacity(), j->request, Clock::now()});
    }

    // ---- the asynchronous path ----------------------------------------------------------------

    /// `async_chat` once the primary job holds the request: a job for the original request too
    /// when there are fallbacks, then the initiation.
    template <class CompletionToken>
    auto initiate_chat(detail::JobRef primary, const RequestOptions& opts,
                       CompletionToken&& token) {
        const ChatRequest& request = primary->request;
        detail::JobRef origin(request.fallbacks.empty() ? nullptr : acquire_job());
        if (origin.get()) origin->request = request;
        return asio::async_initiate<CompletionToken, void(Result)>(
            Initiation{this, opts}, token, std::move(primary), std::move(origin));
    }

    template <class Handler>
    static constexpr bool runs_inline =
        std::is_same_v<asio::associated_executor_t<Handler>, asio::system_executor>;

    /// An async request in progress: the caller's handler (and work on its executor), the first
    /// attempt (whose error is returned if every fallback fails too), the original request (when
    /// there are fallbacks), where the fallbacks are.
    template <class Handler>
    struct AsyncRequest {
        using Executor = asio::associated_executor_t<Handler>;
        using Work = std::conditional_t<runs_inline<Handler>, std::nullptr_t,
                                        asio::executor_work_guard<Executor>>;

        Gateway* self;
        Handler handler;
        Work work;
        detail::Job* primary;
        detail::Job* origin;  // holds the original request; nullptr without fallbacks
        Clock::time_point overall;
        std::size_t next_fallback = 0;
        std::size_t ran = 0;  // plugins whose pre-hook ran in the current attempt

        /// Called by whoever decided the current attempt `j`: continue on the handler's executor.
        void operator()(detail::Job* j) {
            if constexpr (runs_inline<Handler>) {
                self->on_attempt_done(std::move(*this), j);
            } else {
                if constexpr (detail::TellsItsThread<Executor>) {
                    // What `dispatch` would do, without its type-erased function object.
                    if (work.get_executor().running_in_this_thread()) {
                        self->on_attempt_done(std::move(*this), j);
                        return;
                    }
                }
                // Work held until `dispatch` has returned: once the handler ran, the caller may
                // destroy its io_context (`run()` returned), while this thread, having queued the
                // continuation, still signals the loop's condition variable.
                const Work queueing = work;
                Executor ex = work.get_executor();
                asio::dispatch(ex, asio::bind_allocator(detail::ArenaAllocator<void>(j->arena),
                                                        [r = std::move(*this), j]() mutable {
                                                            r.self->on_attempt_done(std::move(r),
                                                                                    j);
                                                        }));
            }
        }
    };

    /// Installed in the caller's cancellation slot: aborts the attempt in progress.
    struct CancelRequest {
        detail::Job* primary;
        void operator()(asio::cancellation_type type) const {
            if (type == asio::cancellation_type::none) return;
            primary->cancel_requested.store(true, std::memory_order_release);
            if (detail::Job* cur = primary->current_attempt.load(std::memory_order_acquire)) {
                if (cur->target)
                    cur->target->abort(cur, errors::cancelled(cur->target->name()),
                                       detail::AbortKind::cancelled);
            }
        }
    };

    template <class Handler>
    void start_async(Handler&& handler, detail::Job* primary, detail::Job* origin,
                     const RequestOptions& opts) {
        using H = std::decay_t<Handler>;
        detail::GatewayAccess::begin(primary, next_id(), Clock::now(), opts.user_data, 0);
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) slot.template emplace<CancelRequest>(CancelRequest{primary});
        if constexpr (runs_inline<H>) {
            attempt_async(primary, AsyncRequest<H>{this, std::forward<Handler>(handler), nullptr,
                                                   primary, origin, overall_deadline(opts)});
        } else {
            auto ex = asio::get_associated_executor(handler);
            attempt_async(primary, AsyncRequest<H>{this, std::forward<Handler>(handler),
                                                   asio::make_work_guard(ex), primary, origin,
                                                   overall_deadline(opts)});
        }
    }

    template <class H>
    void attempt_async(detail::Job* j, AsyncRequest<H>&& r) {
        // Once admitted (or once its deadline timer is armed), the attempt may be decided and
        // delivered on another thread at any moment: hold it until this function is done.
        j->add_ref();
        submit_async(j, std::move(r));
        j->release();
    }

    template <class H>
    void submit_async(detail::Job* j, AsyncRequest<H>&& r) {
        detail::Job* primary = r.primary;
        const auto overall = r.overall;
        primary->current_attempt.store(j, std::memory_order_release);
        r.ran = run_pre_hooks(j);
        j->completion.emplace(std::move(r));
        if (j->ctx.short_circuited()) {
            short_circuited_.fetch_add(1, std::memory_order_relaxed);
            decide_now(j);
            return;
        }
        if (!route(j)) {
            decide_now(j);
            return;
        }
        if (primary->cancel_requested.load(std::memory_order_acquire)) {
            j->target->count_submitted();
            refuse(j, Refusal::cancelled, errors::cancelled(j->target->name()));
            return;
        }
        detail::ProviderQueue& q = *j->target;
        const auto t = q.default_timeout();
        const auto provider_deadline =
            t.count() > 0 && j->stream == nullptr ? Clock::now() + t : Clock::time_point::max();
        j->deadline = std::min(overall, provider_deadline);
        // A worker enforces the deadline of the jobs it runs. A timer on the timekeeper (a
        // cross-thread wake-up or two, so not for every request) makes it prompt where a worker
        // would see it late: a caller's deadline tighter than the provider's, or a backlog the
        // request must wait behind for a free slot. Requests queued while slots are free (a
        // burst arriving at once) wait only for a worker to come round, and get none.
        if (j->deadline != Clock::time_point::max() &&
            (overall < provider_deadline || q.backlogged()))
            arm_deadline(j);
        admit(j, false);
    }

    /// Completes an attempt that never reached a queue (short-circuit, routing error).
    static void decide_now(detail::Job* j) {
        if (j->claim() != detail::Job::claimed) j->complete();
    }

    void arm_deadline(detail::Job* j) {
        if (!j->deadline_timer) j->deadline_timer.emplace(timekeeper_.context());
        j->deadline_timer->expires_at(j->deadline);
        j->add_ref();
        j->deadline_timer->async_wait(asio::bind_allocator(
            detail::ArenaAllocator<void>(j->arena), [j](boost::system::error_code ec) {
                if (!ec && j->target)
                    j->target->abort(j, errors::timed_out(j->target->name()),
                                     detail::AbortKind::timed_out);
                j->release();
            }));
        // Publishes the armed timer to whichever thread decides the attempt (it cancels it).
        j->deadline_armed.store(true, std::memory_order_release);
    }

    /// On the handler's executor: post-hooks, then a fallback attempt or the caller's handler.
    template <class H>
    void on_attempt_done(AsyncRequest<H>&& r, detail::Job* j) {
        run_post_hooks(j, r.ran);
        detail::Job* primary = r.primary;
        if (!j->outcome.ok() && r.origin != nullptr && !j->stream_delivered &&
            may_fall_back(j, primary) && r.next_fallback < fallback_count(r.origin) &&
            Clock::now() < r.overall) {
            if (j != primary) j->release();
            detail::Job* f = make_fallback(r.origin, primary, r.next_fallback++);
            attempt_async(f, std::move(r));
            return;
        }
        asio::get_associated_cancellation_slot(r.handler).clear();
        primary->current_attempt.store(nullptr, std::memory_order_release);
        detail::Job* answer = primary;
        if (j->outcome.ok()) {
            if (j != primary) {
                fallback_successes_.fetch_add(1, std::memory_order_relaxed);
                answer = j;
                primary->release();
            }
        } else if (j != primary) {
            if (j->stream_delivered) {  // a fallback's stream broke: its error is the answer
                answer = j;
                primary->release();
            } else {
                j->release();  // every attempt failed: the caller gets the primary's error
            }
        }
        if (answer->stream_owned) answer->stream_owned.reset();  // the stream is over
        if (r.origin) r.origin->release();
        std::move(r.handler)(detail::GatewayAccess::make_result(answer));
    }

    // ---- routing ------------------------------------------------------------------------------

    /// Resolves the request's provider and provider-local model. False (outcome set) on error.
    bool route(detail::Job* j) {
        const ChatRequest& r = j->request;
        std::string_view provider = r.provider;
        std::string_view model = r.model;
        if (provider.empty()) {
            const auto slash = model.find('/');
            if (slash == std::string_view::npos) {
                return reject(j, errors::invalid_request(
                                     "model '" + r.model +
                                         "' names no provider: use \"provider/model\" or set "
                                         "\"provider\"",
                                     "model"));
            }
            provider = model.substr(0, slash);
            model = model.substr(slash + 1);
        }
        if (model.empty())
            return reject(j, errors::invalid_request("model: the model name is empty", "model"));
        detail::ProviderQueue* q = find(provider);
        if (q == nullptr) {
            Error e = errors::invalid_request(
                "unknown provider '" + std::string(provider) + "'" + configured_list(), "model");
            e.type.assign(error_type::unknown_provider);
            return reject(j, std::move(e));
        }
        if (j->op != Operation::chat && !q->supports(j->op))
            return reject(j, errors::unsupported_operation(q->name(), to_string(j->op)));
        if (j->stream != nullptr && q->streaming_unsupported() != nullptr) {
            const bool by_provider = !detail::transport_cannot_stream<TransportT>;
            return reject(
                j, errors::make(by_provider ? 400 : 501,
                                by_provider ? error_type::invalid_request : error_type::internal,
                                "provider '" + std::string(provider) +
                                    "' cannot stream: " + q->streaming_unsupported(),
                                q->name()));
        }
        j->target = q;
        j->model_id = model;
        detail::GatewayAccess::set_provider(j, q->name());
        return true;
    }

    bool reject(detail::Job* j, Error e) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        j->outcome.fail(std::move(e));
        return false;
    }

    [[nodiscard]] std::string configured_list() const {
        const std::size_t n = provider_count_.load(std::memory_order_acquire);
        if (n == 0) return " (no providers are configured)";
        std::string s = " (configured: ";
        for (std::size_t i = 0; i < n; ++i) {
            if (i) s += ", ";
            s += providers_[i]->name();
        }
        return s + ")";
    }

    [[nodiscard]] detail::ProviderQueue* find(std::string_view name) const noexcept {
        const std::size_t n = provider_count_.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < n; ++i)
            if (providers_[i]->name() == name) return providers_[i].get();
        return nullptr;
    }

    std::uint64_t next_id() noexcept {
        return next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    }

    // ---- plugins ------------------------------------------------------------------------------

    /// Runs pre-hooks in order until one answers or throws. Returns how many plugins count as
    /// having run (the answering one included, a throwing one excluded).
    std::size_t run_pre_hooks(detail::Job* j) {
        std::size_t ran = 0;
        bool stop = false;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (pre_hook_one<I>(j, ran, stop), ...);
        }
        (std::make_index_sequence<plugin_count>{});
        return ran;
    }

    template <std::size_t I>
    void pre_hook_one(detail::Job* j, std::size_t& ran, bool& stop) {
        if (stop) return;
        using P = std::tuple_element_t<I, std::tuple<Plugins...>>;
        if (j->op != Operation::chat) {
            if (!other_pre_hook<P, I>(j)) {
                stop = true;
                return;
            }
        } else if constexpr (HasPreHook<P>) {
            try {
                std::get<I>(plugins_).pre_hook(j->ctx, j->request);
            } catch (const std::exception& e) {
                plugin_failed<P>(j, "pre", e.what());
                stop = true;
                return;
            } catch (...) {
                plugin_failed<P>(j, "pre", "unknown exception");
                stop = true;
                return;
            }
        }
        ++ran;
        if (j->ctx.short_circuited()) stop = true;
    }

    /// Runs post-hooks in reverse order for the first `ran` plugins.
    void run_post_hooks(detail::Job* j, std::size_t ran) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (post_hook_one<plugin_count - 1 - I>(j, ran), ...);
        }
        (std::make_index_sequence<plugin_count>{});
    }

    /// The pre-hook of plugin `I` for a request of another kind, if it has one for that kind.
    /// False when it threw (the request then fails with 500 `plugin_error`).
    template <class P, std::size_t I>
    bool other_pre_hook(detail::Job* j) {
        bool ok = true;
        const auto call = [&](auto& req) {
            using Req = std::decay_t<decltype(req)>;
            if constexpr (HasPreHookFor<P, Req>) {
                try {
                    std::get<I>(plugins_).pre_hook(j->ctx, req);
                } catch (const std::exception& e) {
                    plugin_failed<P>(j, "pre", e.what());
                    ok = false;
                } catch (...) {
                    plugin_failed<P>(j, "pre", "unknown exception");
                    ok = false;
                }
                detail::sync_routing(j);  // the hook may have changed the model
            }
        };
        if (j->op == Operation::embedding)
            call(j->ops().embedding_request);
        else if (j->op == Operation::text_completion)
            call(j->ops().completion_request);
        return ok;
    }

    /// The post-hook of plugin `I` for a request of another kind, if it has one for that kind.
    /// The hook sees the attempt's error in the outcome it receives, and what it leaves there is
    /// the attempt's error.
    template <class P, std::size_t I>
    void other_post_hook(detail::Job* j) {
        const auto call = [&](auto& outcome) {
            using O = std::decay_t<decltype(outcome)>;
            if constexpr (HasPostHookFor<P, O>) {
                outcome.error = j->outcome.error;
                try {
                    std::get<I>(plugins_).post_hook(j->ctx, outcome);
                } catch (const std::exception& e) {
                    plugin_failed<P>(j, "post", e.what());
                    return;
                } catch (...) {
                    plugin_failed<P>(j, "post", "unknown exception");
                    return;
                }
                std::swap(j->outcome.error, outcome.error);
            }
        };
        if (j->op == Operation::embedding)
            call(j->ops().embedding);
        else if (j->op == Operation::text_completion)
            call(j->ops().completion);
    }

    template <std::size_t I>
    void post_hook_one(detail::Job* j, std::size_t ran) {
        using P = std::tuple_element_t<I, std::tuple<Plugins...>>;
        if (j->op != Operation::chat) {
            if (I < ran) other_post_hook<P, I>(j);
            return;
        }
        if constexpr (HasPostHook<P>) {
            if (I >= ran) return;
            j->wire_response = false;  // the hook may change the response: it is written anew
            try {
                std::get<I>(plugins_).post_hook(j->ctx, j->outcome);
            } catch (const std::exception& e) {
                plugin_failed<P>(j, "post", e.what());
            } catch (...) {
                plugin_failed<P>(j, "post", "unknown exception");
            }
        }
    }

    template <class P>
    void plugin_failed(detail::Job* j, std::string_view hook, std::string_view what) {
        std::string msg;
        msg.append(hook).append("-hook of ").append(detail::plugin_name<P>()).append(" failed: ");
        msg.append(what);
        j->outcome.fail(errors::make(500, error_type::plugin, std::move(msg)));
        detail::GatewayAccess::mark_short_circuit(j);
    }

    // ---- state --------------------------------------------------------------------------------

    GatewayOptions options_;
    [[no_unique_address]] QueueT queue_policy_;
    std::tuple<Plugins...> plugins_;
    detail::Timekeeper timekeeper_;  // outlives the pool: pooled jobs hold timers bound to it
    JobPool pool_;                   // outlives the providers (declared before them)

    std::array<std::unique_ptr<detail::ProviderQueue>, max_providers> providers_{};
    std::atomic<std::size_t> provider_count_{0};
    std::mutex admin_mutex_;
    std::atomic<bool> shut_down_{false};

    alignas(detail::cache_line) std::atomic<std::uint64_t> next_id_{0};
    std::atomic<std::uint64_t> short_circuited_{0};
    std::atomic<std::uint64_t> rejected_{0};
    std::atomic<std::uint64_t> fallback_attempts_{0};
    std::atomic<std::uint64_t> fallback_successes_{0};
};

}  // namespace bifrost
