#pragma once
/// \file
/// The server's own figures (requests by route and status, request duration, upstream latency
/// and gateway overhead histograms) and their rendering, together with a gateway's `stats()`
/// snapshot, as Prometheus text exposition (`/metrics`) and as JSON (`/api/stats`).
///
/// Every metric name starts with `bifrost_`. Labels carry route templates, statuses and provider
/// names only: never keys, tokens or request content.

#include <bifrost/core/stats.hpp>
#include <bifrost/detail/json_writer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost::server {

/// The server's routes (one label value each; `/openai/v1/...` counts as its `/v1/...` route).
enum class Route : std::uint8_t {
    chat_completions,
    completions,
    embeddings,
    models,
    health,
    metrics,
    stats,
    unknown,
};
inline constexpr std::size_t route_count = 8;

constexpr std::string_view to_string(Route r) noexcept {
    switch (r) {
        case Route::chat_completions:
            return "/v1/chat/completions";
        case Route::completions:
            return "/v1/completions";
        case Route::embeddings:
            return "/v1/embeddings";
        case Route::models:
            return "/v1/models";
        case Route::health:
            return "/health";
        case Route::metrics:
            return "/metrics";
        case Route::stats:
            return "/api/stats";
        case Route::unknown:
            return "unknown";
    }
    return "unknown";
}

/// A Prometheus-style histogram with fixed bucket edges (seconds, from 1 us to 10 min: the
/// gateway's own overhead is microseconds, upstream calls are up to minutes). Edges are 1 us
/// apart up to 10 us, so that a percentile of the overhead reads to about a microsecond.
/// Thread safety: `record` is wait-free and may run on any thread. Each thread records into one
/// of a few shards (every request records several of these from whichever thread serves it, and
/// shared counters would bounce between the cores); readers add the shards up.
class DurationHistogram {
  public:
    static constexpr std::array<double, 36> edges = {
        0.000001, 0.000002, 0.000003, 0.000004, 0.000005, 0.000006, 0.000007, 0.000008,
        0.000009, 0.00001,  0.0000125, 0.000015, 0.00002, 0.000025, 0.00005,  0.0001,
        0.00025,  0.0005,   0.001,    0.0025,   0.005,    0.01,     0.025,    0.05,
        0.1,      0.25,     0.5,      1.0,      2.5,      5.0,      10.0,     30.0,
        60.0,     120.0,    300.0,    600.0};
    static constexpr std::size_t shard_count = 4;

    void record(std::chrono::nanoseconds d) noexcept {
        const double s = static_cast<double>(d.count()) / 1e9;
        std::size_t i = 0;
        while (i < edges.size() && s > edges[i])
            ++i;
        Shard& sh = shards_[detail::thread_shard(shard_count)];
        sh.buckets[i].fetch_add(1, std::memory_order_relaxed);
        sh.sum_ns.fetch_add(d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0,
                            std::memory_order_relaxed);
    }

    /// Observations at or below `edges[i]` (i == edges.size(): all of them).
    [[nodiscard]] std::uint64_t cumulative(std::size_t i) const noexcept {
        std::uint64_t n = 0;
        for (const Shard& sh : shards_)
            for (std::size_t k = 0; k <= i && k < sh.buckets.size(); ++k)
                n += sh.buckets[k].load(std::memory_order_relaxed);
        return n;
    }
    [[nodiscard]] std::uint64_t count() const noexcept { return cumulative(edges.size()); }
    [[nodiscard]] double sum_seconds() const noexcept {
        std::uint64_t ns = 0;
        for (const Shard& sh : shards_)
            ns += sh.sum_ns.load(std::memory_order_relaxed);
        return static_cast<double>(ns) / 1e9;
    }

  private:
    struct alignas(detail::cache_line) Shard {
        std::array<std::atomic<std::uint64_t>, edges.size() + 1> buckets{};
        std::atomic<std::uint64_t> sum_ns{0};
    };
    std::array<Shard, shard_count> shards_{};
};

/// The server's counters. Requests are counted by route and status; chat requests that a
/// provider answered also record their upstream latency and the gateway's overhead (total time
/// minus upstream time: parsing, queueing, scheduling, writing) per provider.
///
/// Thread safety: `record_*` may run on any thread. `add_provider` is called before traffic
/// (providers seen later are counted under `other`).
class ServerMetrics {
  public:
    static constexpr std::size_t max_providers = 64;
    static constexpr int max_status = 600;

    /// Registers a provider label; returns false when the table is full.
    bool add_provider(std::string_view name) {
        std::lock_guard lock(mutex_);
        const std::size_t n = provider_count_.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < n; ++i)
            if (providers_[i].name == name) return true;
        if (n + 1 >= max_providers) return false;
        providers_[n].name.assign(name);
        provider_count_.store(n + 1, std::memory_order_release);
        return true;
    }

    void record_request(Route r, int status, std::chrono::nanoseconds total) noexcept {
        if (status < 0 || status >= max_status) status = 0;
        requests_[index(r, status)].fetch_add(1, std::memory_order_relaxed);
        duration_[static_cast<std::size_t>(r)].record(total);
    }

    void record_upstream(std::string_view provider, std::chrono::nanoseconds upstream,
                         std::chrono::nanoseconds overhead,
                         std::chrono::nanoseconds queue_wait) noexcept {
        ProviderSlot& p = slot(provider);
        p.upstream.record(upstream);
        p.overhead.record(overhead);
        p.queue_wait.record(queue_wait);
    }

    std::atomic<std::int64_t> connections{0};          ///< open client connections
    std::atomic<std::int64_t> requests_in_flight{0};   ///< requests being handled
    std::atomic<std::uint64_t> connections_total{0};   ///< connections accepted
    std::atomic<std::uint64_t> client_disconnects{0};  ///< requests abandoned by their client

    [[nodiscard]] std::uint64_t requests(Route r, int status) const noexcept {
        if (status < 0 || status >= max_status) return 0;
        return requests_[index(r, status)].load(std::memory_order_relaxed);
    }

    /// Appends the Prometheus text exposition of these figures and of `gw`.
    void render_prometheus(std::string& out, const GatewayStats& gw) const;
    /// Appends a JSON snapshot of these figures and of `gw`.
    void render_json(std::string& out, const GatewayStats& gw) const;

  private:
    struct ProviderSlot {
        std::string name;
        DurationHistogram upstream;
        DurationHistogram overhead;
        DurationHistogram queue_wait;
    };

    static std::size_t index(Route r, int status) noexcept {
        return static_cast<std::size_t>(r) * max_status + static_cast<std::size_t>(status);
    }

    ProviderSlot& slot(std::string_view name) noexcept {
        const std::size_t n = provider_count_.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < n; ++i)
            if (providers_[i].name == name) return providers_[i];
        return providers_[max_providers - 1];  // "other"
    }

    std::array<std::atomic<std::uint64_t>, route_count * max_status> requests_{};
    std::array<DurationHistogram, route_count> duration_{};
    std::array<ProviderSlot, max_providers> providers_{};
    std::atomic<std::size_t> provider_count_{0};
    std::mutex mutex_;
};

namespace detail {

/// Prometheus label value escaping (backslash, double quote, newline).
inline void append_label(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\' || c == '"') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else {
            out.push_back(c);
        }
    }
}

inline void append_double(std::string& out, double v) {
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
    out.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
}

/// Writes `# HELP` and `# TYPE` lines.
inline void family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

/// One sample: `name{label="value",...} v`. `labels` alternate names and values.
inline void sample(std::string& out, std::string_view name,
                   std::initializer_list<std::string_view> labels, double v) {
    out.append(name);
    if (labels.size() > 0) {
        out.push_back('{');
        bool first = true;
        for (auto it = labels.begin(); it != labels.end(); it += 2) {
            if (!first) out.push_back(',');
            first = false;
            out.append(*it).append("=\"");
            append_label(out, *(it + 1));
            out.push_back('"');
        }
        out.push_back('}');
    }
    out.push_back(' ');
    append_double(out, v);
    out.push_back('\n');
}

inline void histogram(std::string& out, std::string_view name, std::string_view label,
                      std::string_view value, const DurationHistogram& h) {
    const std::string bucket = std::string(name) + "_bucket";
    char le[32];
    for (std::size_t i = 0; i < DurationHistogram::edges.size(); ++i) {
        std::snprintf(le, sizeof le, "%g", DurationHistogram::edges[i]);
        sample(out, bucket, {label, value, "le", le}, static_cast<double>(h.cumulative(i)));
    }
    const auto count = static_cast<double>(h.count());
    sample(out, bucket, {label, value, "le", "+Inf"}, count);
    sample(out, std::string(name) + "_sum", {label, value}, h.sum_seconds());
    sample(out, std::string(name) + "_count", {label, value}, count);
}

inline double seconds(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e9;
}

}  // namespace detail

inline void ServerMetrics::render_prometheus(std::string& out, const GatewayStats& gw) const {
    using detail::family;
    using detail::sample;
    const auto d = [](auto v) { return static_cast<double>(v); };

    family(out, "bifrost_http_requests_total", "counter", "HTTP requests answered.");
    for (std::size_t r = 0; r < route_count; ++r) {
        for (int s = 0; s < max_status; ++s) {
            const std::uint64_t n = requests(static_cast<Route>(r), s);
            if (n == 0) continue;
            const std::string status = std::to_string(s);
            sample(out, "bifrost_http_requests_total",
                   {"route", to_string(static_cast<Route>(r)), "status", status}, d(n));
        }
    }
    family(out, "bifrost_http_request_duration_seconds", "histogram",
           "Time from a request's arrival to its response, by route.");
    for (std::size_t r = 0; r < route_count; ++r) {
        if (duration_[r].count() == 0) continue;
        detail::histogram(out, "bifrost_http_request_duration_seconds", "route",
                          to_string(static_cast<Route>(r)), duration_[r]);
    }
    const std::size_t np = provider_count_.load(std::memory_order_acquire);
    const auto each_slot = [&](auto&& f) {
        for (std::size_t i = 0; i < np; ++i)
            f(providers_[i].name, providers_[i]);
        if (providers_[max_providers - 1].upstream.count() > 0)
            f(std::string_view("other"), providers_[max_providers - 1]);
    };
    family(out, "bifrost_upstream_latency_seconds", "histogram",
           "Upstream time of answered chat requests, by provider.");
    each_slot([&](std::string_view name, const ProviderSlot& p) {
        detail::histogram(out, "bifrost_upstream_latency_seconds", "provider", name, p.upstream);
    });
    family(out, "bifrost_gateway_overhead_seconds", "histogram",
           "Gateway time of answered chat requests (total minus upstream), by provider.");
    each_slot([&](std::string_view name, const ProviderSlot& p) {
        detail::histogram(out, "bifrost_gateway_overhead_seconds", "provider", name, p.overhead);
    });
    family(out, "bifrost_queue_wait_seconds", "histogram",
           "Time answered requests waited in their provider's queue for a worker, by provider.");
    each_slot([&](std::string_view name, const ProviderSlot& p) {
        detail::histogram(out, "bifrost_queue_wait_seconds", "provider", name, p.queue_wait);
    });

    family(out, "bifrost_http_connections", "gauge", "Open client connections.");
    sample(out, "bifrost_http_connections", {}, d(connections.load(std::memory_order_relaxed)));
    family(out, "bifrost_http_connections_total", "counter", "Client connections accepted.");
    sample(out, "bifrost_http_connections_total", {},
           d(connections_total.load(std::memory_order_relaxed)));
    family(out, "bifrost_http_requests_in_flight", "gauge", "Requests being handled.");
    sample(out, "bifrost_http_requests_in_flight", {},
           d(requests_in_flight.load(std::memory_order_relaxed)));
    family(out, "bifrost_http_client_disconnects_total", "counter",
           "Requests whose client went away before the answer (upstream call cancelled).");
    sample(out, "bifrost_http_client_disconnects_total", {},
           d(client_disconnects.load(std::memory_order_relaxed)));

    // Per provider, from the gateway's snapshot.
    struct Gauge {
        std::string_view name, help;
        double (*get)(const ProviderStats&);
    };
    static constexpr Gauge gauges[] = {
        {"bifrost_provider_queue_depth", "Requests in the provider's queue.",
         [](const ProviderStats& p) { return static_cast<double>(p.queue_depth); }},
        {"bifrost_provider_queue_capacity", "Capacity of the provider's queue (buffer_size).",
         [](const ProviderStats& p) { return static_cast<double>(p.queue_capacity); }},
        {"bifrost_provider_waiting_for_space", "Requests waiting for space in a full queue.",
         [](const ProviderStats& p) { return static_cast<double>(p.waiting_for_space); }},
        {"bifrost_provider_concurrency", "Most requests in flight to the provider at once.",
         [](const ProviderStats& p) { return static_cast<double>(p.concurrency); }},
        {"bifrost_provider_in_flight", "Requests a worker is serving now.",
         [](const ProviderStats& p) { return static_cast<double>(p.in_flight); }},
        {"bifrost_provider_in_retry_backoff", "Requests waiting to retry.",
         [](const ProviderStats& p) { return static_cast<double>(p.in_retry_backoff); }},
    };
    for (const Gauge& g : gauges) {
        family(out, g.name, "gauge", g.help);
        for (const auto& p : gw.providers)
            sample(out, g.name, {"provider", p.name}, g.get(p));
    }
    family(out, "bifrost_provider_submitted_total", "counter", "Requests routed to the provider.");
    for (const auto& p : gw.providers)
        sample(out, "bifrost_provider_submitted_total", {"provider", p.name}, d(p.submitted));
    family(out, "bifrost_provider_requests_total", "counter",
           "Requests the provider finished, by outcome.");
    for (const auto& p : gw.providers) {
        const std::pair<std::string_view, std::uint64_t> outcomes[] = {
            {"completed", p.completed},
            {"failed", p.failed},
            {"dropped", p.dropped},
            {"queue_timeout", p.queue_timeouts},
            {"timed_out", p.timed_out},
            {"cancelled", p.cancelled},
            {"rejected_shutdown", p.rejected_shutdown},
            {"rejected_circuit", p.rejected_circuit},
        };
        for (const auto& [outcome, n] : outcomes)
            sample(out, "bifrost_provider_requests_total", {"provider", p.name, "outcome", outcome},
                   d(n));
    }
    family(out, "bifrost_provider_retries_total", "counter",
           "Upstream calls repeated after a retryable failure.");
    for (const auto& p : gw.providers)
        sample(out, "bifrost_provider_retries_total", {"provider", p.name}, d(p.retries));
    family(out, "bifrost_provider_circuit_state", "gauge",
           "Circuit-breaker state (1 for the current state).");
    for (const auto& p : gw.providers) {
        for (auto s : {CircuitState::closed, CircuitState::open, CircuitState::half_open})
            sample(out, "bifrost_provider_circuit_state",
                   {"provider", p.name, "state", to_string(s)}, p.circuit == s ? 1.0 : 0.0);
    }
    family(out, "bifrost_provider_circuit_opened_total", "counter", "Times the circuit opened.");
    for (const auto& p : gw.providers)
        sample(out, "bifrost_provider_circuit_opened_total", {"provider", p.name},
               d(p.circuit_opened));

    const auto summary = [&](std::string_view name, std::string_view help,
                             LatencySummary ProviderStats::*field) {
        family(out, name, "summary", help);
        const std::string sum = std::string(name) + "_sum";
        const std::string count = std::string(name) + "_count";
        for (const auto& p : gw.providers) {
            const LatencySummary& s = p.*field;
            sample(out, name, {"provider", p.name, "quantile", "0.5"}, detail::seconds(s.p50_ns));
            sample(out, name, {"provider", p.name, "quantile", "0.9"}, detail::seconds(s.p90_ns));
            sample(out, name, {"provider", p.name, "quantile", "0.99"}, detail::seconds(s.p99_ns));
            sample(out, sum, {"provider", p.name}, s.mean_ns * d(s.count) / 1e9);
            sample(out, count, {"provider", p.name}, d(s.count));
        }
    };
    summary("bifrost_provider_queue_wait_seconds",
            "Time from admission into the queue to a worker picking the request up.",
            &ProviderStats::queue_wait);
    summary("bifrost_provider_upstream_seconds", "Time spent in upstream calls (every attempt).",
            &ProviderStats::upstream);

    family(out, "bifrost_pool_gets_total", "counter", "Request objects taken from the pool.");
    sample(out, "bifrost_pool_gets_total", {}, d(gw.pool.gets));
    family(out, "bifrost_pool_hits_total", "counter", "Pool gets served by a recycled object.");
    sample(out, "bifrost_pool_hits_total", {}, d(gw.pool.hits));
    family(out, "bifrost_pool_misses_total", "counter", "Pool gets that created an object.");
    sample(out, "bifrost_pool_misses_total", {}, d(gw.pool.misses));
    family(out, "bifrost_pool_objects", "gauge", "Objects the pool owns.");
    sample(out, "bifrost_pool_objects", {}, d(gw.pool.size));
    family(out, "bifrost_fallback_attempts_total", "counter", "Attempts made on a fallback.");
    sample(out, "bifrost_fallback_attempts_total", {}, d(gw.fallback_attempts));
    family(out, "bifrost_fallback_successes_total", "counter", "Requests a fallback answered.");
    sample(out, "bifrost_fallback_successes_total", {}, d(gw.fallback_successes));
    family(out, "bifrost_rejected_total", "counter",
           "Requests refused before routing (bad model, unknown provider).");
    sample(out, "bifrost_rejected_total", {}, d(gw.rejected));
}

inline void ServerMetrics::render_json(std::string& out, const GatewayStats& gw) const {
    bifrost::detail::JsonWriter w(out);
    const auto i64 = [](auto v) { return static_cast<std::int64_t>(v); };
    const auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
    w.begin_object().key("server").begin_object();
    w.field_int("connections", connections.load(std::memory_order_relaxed));
    w.field_int("connections_total", i64(connections_total.load(std::memory_order_relaxed)));
    w.field_int("requests_in_flight", requests_in_flight.load(std::memory_order_relaxed));
    w.field_int("client_disconnects", i64(client_disconnects.load(std::memory_order_relaxed)));
    w.key("requests").begin_object();
    for (std::size_t r = 0; r < route_count; ++r) {
        bool any = false;
        for (int s = 0; s < max_status; ++s) {
            const std::uint64_t n = requests(static_cast<Route>(r), s);
            if (n == 0) continue;
            if (!any) w.key(to_string(static_cast<Route>(r))).begin_object();
            any = true;
            w.field_int(std::to_string(s), i64(n));
        }
        if (any) w.end_object();
    }
    w.end_object().end_object();

    w.key("providers").begin_array();
    for (const auto& p : gw.providers) {
        w.begin_object().field("name", p.name);
        w.field_int("queue_depth", i64(p.queue_depth))
            .field_int("queue_capacity", i64(p.queue_capacity))
            .field_int("waiting_for_space", i64(p.waiting_for_space))
            .field_int("concurrency", i64(p.concurrency))
            .field_int("in_flight", i64(p.in_flight))
            .field_int("idle_workers", i64(p.idle_workers))
            .field_int("worker_threads", i64(p.worker_threads))
            .field_int("in_retry_backoff", i64(p.in_retry_backoff))
            .field_int("submitted", i64(p.submitted))
            .field_int("queued", i64(p.queued))
            .field_int("waited_for_space", i64(p.waited_for_space))
            .field_int("dropped", i64(p.dropped))
            .field_int("queue_timeouts", i64(p.queue_timeouts))
            .field_int("rejected_shutdown", i64(p.rejected_shutdown))
            .field_int("rejected_circuit", i64(p.rejected_circuit))
            .field_int("completed", i64(p.completed))
            .field_int("failed", i64(p.failed))
            .field_int("timed_out", i64(p.timed_out))
            .field_int("cancelled", i64(p.cancelled))
            .field_int("retries", i64(p.retries))
            .field("circuit", to_string(p.circuit))
            .field_int("circuit_opened", i64(p.circuit_opened));
        for (auto [name, s] :
             {std::pair{"queue_wait_ms", &p.queue_wait}, std::pair{"upstream_ms", &p.upstream}}) {
            w.key(name).begin_object();
            w.field_int("count", i64(s->count))
                .field_number("mean", s->mean_ns / 1e6)
                .field_number("p50", ms(s->p50_ns))
                .field_number("p90", ms(s->p90_ns))
                .field_number("p99", ms(s->p99_ns))
                .field_number("max", ms(s->max_ns));
            w.end_object();
        }
        w.end_object();
    }
    w.end_array();
    w.key("pool")
        .begin_object()
        .field_int("gets", i64(gw.pool.gets))
        .field_int("hits", i64(gw.pool.hits))
        .field_int("misses", i64(gw.pool.misses))
        .field_int("returns", i64(gw.pool.returns))
        .field_int("size", i64(gw.pool.size))
        .field_int("available", i64(gw.pool.available))
        .field_number("hit_ratio", gw.pool.hit_ratio())
        .end_object();
    w.field_int("short_circuited", i64(gw.short_circuited))
        .field_int("rejected", i64(gw.rejected))
        .field_int("fallback_attempts", i64(gw.fallback_attempts))
        .field_int("fallback_successes", i64(gw.fallback_successes));
    w.end_object();
}

}  // namespace bifrost::server
