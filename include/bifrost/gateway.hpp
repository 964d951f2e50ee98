#pragma once
/// \file
/// `Gateway<Transport, QueuePolicy, PoolPolicy, Plugins...>`: the unified entry point. Callers
/// on any number of threads send chat requests; each request runs the plugins' pre-hooks, is
/// routed by its `"provider/model"` name to that provider's own bounded lock-free queue, is
/// served by that provider's own worker threads, and comes back through the post-hooks as a
/// `Result`. Everything is composed at compile time: no virtual call on the request path.

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/context.hpp>
#include <bifrost/core/job.hpp>
#include <bifrost/core/provider_pool.hpp>
#include <bifrost/core/provider_queue.hpp>
#include <bifrost/core/result.hpp>
#include <bifrost/core/stats.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/queue/policies.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/error.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/system_executor.hpp>

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
};

namespace detail {

/// The gateway's back door into `Result` and `Context` (which keep their setters private).
struct GatewayAccess {
    static Result make_result(Job* j) noexcept { return Result(j); }
    static Context& ctx(Job* j) noexcept { return j->ctx; }
    static void begin(Job* j, std::uint64_t id, const RequestOptions& opts) noexcept {
        j->ctx.request_id_ = id;
        j->ctx.start_ = std::chrono::steady_clock::now();
        j->ctx.user_data_ = opts.user_data;
        j->ctx.fallback_index_ = 0;
        j->ctx.short_circuit_ = false;
        j->ctx.provider_ = {};
    }
    static void set_provider(Job* j, std::string_view p) noexcept { j->ctx.provider_ = p; }
    static void mark_short_circuit(Job* j) noexcept { j->ctx.short_circuit_ = true; }
};

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
    Job* operator->() const noexcept { return job_; }

  private:
    Job* job_;
};

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
/// Thread safety: `chat`, `async_chat` and `stats` may be called from any number of threads at
/// once. `add_provider` may run concurrently with requests (a request for a provider not yet
/// added fails with 400). `shutdown` may be called once from any thread; the destructor calls it.
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
    /// Precondition: no `Result` of this gateway outlives it.
    ~Gateway() { shutdown(); }

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
        std::lock_guard lock(add_mutex_);
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

    /// True when a provider named `name` was added.
    [[nodiscard]] bool has_provider(std::string_view name) const noexcept {
        return find(name) != nullptr;
    }

    /// Sends a request and blocks the calling thread until its outcome is final.
    Result chat(const ChatRequest& request, const RequestOptions& opts = {}) {
        detail::Job* j = acquire_job();
        j->request = request;
        run_sync(j, opts);
        return detail::GatewayAccess::make_result(j);
    }

    /// As above, taking the request's memory instead of copying it.
    Result chat(ChatRequest&& request, const RequestOptions& opts = {}) {
        detail::Job* j = acquire_job();
        j->request = std::move(request);
        run_sync(j, opts);
        return detail::GatewayAccess::make_result(j);
    }

    /// Sends a request asynchronously; completes with `void(Result)`. Works with any Asio
    /// completion token: a callback, `asio::use_future`, `asio::use_awaitable`, `deferred`.
    ///
    /// The completion runs on the handler's associated executor (post-hooks run there too). A
    /// handler without one (a plain lambda) runs on the worker thread that finished the request,
    /// or inside this call when the outcome is immediate (a pre-hook answered, a routing error,
    /// a full queue with a dropping policy): keep such callbacks short and non-blocking.
    template <class CompletionToken>
    auto async_chat(const ChatRequest& request, CompletionToken&& token) {
        return async_chat(request, RequestOptions{}, std::forward<CompletionToken>(token));
    }

    template <class CompletionToken>
    auto async_chat(const ChatRequest& request, const RequestOptions& opts,
                    CompletionToken&& token) {
        detail::JobRef ref(acquire_job());
        ref->request = request;
        return asio::async_initiate<CompletionToken, void(Result)>(Initiation{this, opts}, token,
                                                                   std::move(ref));
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
        return s;
    }

    /// Stops intake on every provider (new requests get 503 "provider is shutting down", as do
    /// callers blocked waiting for queue space), lets queued and in-flight requests finish for up
    /// to `GatewayOptions::drain_timeout`, then cancels what is left (503) and joins all worker
    /// threads. Every request submitted before is answered exactly once. Idempotent.
    void shutdown() {
        std::lock_guard lock(add_mutex_);
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

    struct Initiation {
        Gateway* self;
        RequestOptions opts;
        template <class Handler>
        void operator()(Handler&& handler, detail::JobRef ref) const {
            self->start_async(std::forward<Handler>(handler), ref.release(), opts);
        }
    };

    // ---- jobs ---------------------------------------------------------------------------------

    detail::Job* acquire_job() {
        detail::Job* j = pool_.acquire();
        j->recycler = &pool_;
        j->recycle_fn = [](void* pool, detail::Job* job) noexcept {
            static_cast<JobPool*>(pool)->release(job);
        };
        j->refs.store(1, std::memory_order_relaxed);
        return j;
    }

    void begin(detail::Job* j, const RequestOptions& opts) noexcept {
        detail::GatewayAccess::begin(j, next_id_.fetch_add(1, std::memory_order_relaxed) + 1, opts);
    }

    // ---- the synchronous path -----------------------------------------------------------------

    void run_sync(detail::Job* j, const RequestOptions& opts) {
        begin(j, opts);
        const std::size_t ran = run_pre_hooks(j);
        if (j->ctx.short_circuited()) {
            short_circuited_.fetch_add(1, std::memory_order_relaxed);
        } else if (route(j) && submit_sync(j)) {
            j->wait_finished(options_.caller_spin);
        }
        run_post_hooks(j, ran);
    }

    /// Admits the job into its provider's queue, blocking per the policy when full. False (with
    /// the outcome set) when it was not admitted.
    bool submit_sync(detail::Job* j) {
        detail::ProviderQueue& q = *j->target;
        q.count_submitted();
        auto s = q.try_enqueue(j);
        if (s == queue::PushStatus::full) {
            const queue::OnFull d = on_full(q, j);
            if (!d.waits()) {
                q.count_dropped();
                j->outcome.fail(errors::request_dropped(q.name()));
                return false;
            }
            s = q.enqueue_blocking(j, d.deadline());
            if (s == queue::PushStatus::full) {
                q.count_queue_timeout();
                j->outcome.fail(errors::queue_timeout(q.name()));
                return false;
            }
        }
        if (s == queue::PushStatus::closed) {
            q.count_rejected_shutdown();
            j->outcome.fail(errors::shutting_down(q.name()));
            return false;
        }
        return true;
    }

    // ---- the asynchronous path ----------------------------------------------------------------

    template <class Handler>
    static constexpr bool runs_inline =
        std::is_same_v<asio::associated_executor_t<Handler>, asio::system_executor>;

    /// What a finished async request does: on the handler's executor, run the post-hooks and
    /// call the handler with the `Result`.
    template <class Handler>
    struct AsyncCompletion {
        using Executor = asio::associated_executor_t<Handler>;
        using Work = std::conditional_t<runs_inline<Handler>, std::nullptr_t,
                                        asio::executor_work_guard<Executor>>;

        Gateway* self;
        Handler handler;
        Work work;
        std::size_t ran;

        void operator()(detail::Job* j) {
            if constexpr (runs_inline<Handler>) {
                self->deliver(j, ran, handler);
            } else {
                Executor ex = work.get_executor();
                asio::dispatch(
                    ex, asio::bind_allocator(detail::ArenaAllocator<void>(j->arena),
                                             [self = self, j, ran = ran, h = std::move(handler),
                                              w = std::move(work)]() mutable {
                                                 self->deliver(j, ran, h);
                                                 w.reset();
                                             }));
            }
        }
    };

    template <class Handler>
    void start_async(Handler&& handler, detail::Job* j, const RequestOptions& opts) {
        using H = std::decay_t<Handler>;
        begin(j, opts);
        const std::size_t ran = run_pre_hooks(j);
        if constexpr (runs_inline<H>) {
            j->completion.emplace(
                AsyncCompletion<H>{this, std::forward<Handler>(handler), nullptr, ran});
        } else {
            auto ex = asio::get_associated_executor(handler);
            j->completion.emplace(AsyncCompletion<H>{this, std::forward<Handler>(handler),
                                                     asio::make_work_guard(ex), ran});
        }
        if (j->ctx.short_circuited()) {
            short_circuited_.fetch_add(1, std::memory_order_relaxed);
            j->complete();
            return;
        }
        if (!route(j)) {
            j->complete();
            return;
        }
        submit_async(j);
    }

    /// Admits the job without blocking: into the ring, or parked until space frees up, or
    /// completed at once with an error.
    void submit_async(detail::Job* j) {
        detail::ProviderQueue& q = *j->target;
        q.count_submitted();
        auto s = q.try_enqueue(j);
        if (s == queue::PushStatus::ok) return;
        if (s == queue::PushStatus::full) {
            const queue::OnFull d = on_full(q, j);
            if (d.waits()) {
                q.enqueue_parked(j, d.deadline());
                return;
            }
            q.count_dropped();
            j->outcome.fail(errors::request_dropped(q.name()));
        } else {
            q.count_rejected_shutdown();
            j->outcome.fail(errors::shutting_down(q.name()));
        }
        j->complete();
    }

    template <class Handler>
    void deliver(detail::Job* j, std::size_t ran, Handler& handler) {
        run_post_hooks(j, ran);
        std::move(handler)(detail::GatewayAccess::make_result(j));
    }

    // ---- routing ------------------------------------------------------------------------------

    queue::OnFull on_full(const detail::ProviderQueue& q, const detail::Job* j) const {
        return queue_policy_.on_full(
            queue::FullQueue{q.name(), q.depth(), q.capacity(), j->request, Clock::now()});
    }

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
        if constexpr (HasPreHook<P>) {
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

    template <std::size_t I>
    void post_hook_one(detail::Job* j, std::size_t ran) {
        using P = std::tuple_element_t<I, std::tuple<Plugins...>>;
        if constexpr (HasPostHook<P>) {
            if (I >= ran) return;
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
    JobPool pool_;  // destroyed after the providers (declared before them)

    std::array<std::unique_ptr<detail::ProviderQueue>, max_providers> providers_{};
    std::atomic<std::size_t> provider_count_{0};
    std::mutex add_mutex_;
    std::atomic<bool> shut_down_{false};

    alignas(detail::cache_line) std::atomic<std::uint64_t> next_id_{0};
    std::atomic<std::uint64_t> short_circuited_{0};
    std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace bifrost
