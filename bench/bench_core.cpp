// Micro-benchmarks of the engine (Google Benchmark). Figures, not assertions.
//
//   build/bench/bench_core                               # table
//   build/bench/bench_core --benchmark_format=json       # JSON
//
// Counters: `allocs/req` is heap allocations per iteration across the whole process (every
// thread), counted by replacing the global operator new; `p50_ns` / `p99_ns` are per-iteration
// latency percentiles of the round-trip benchmarks.

#include <bifrost/bifrost.hpp>
#include <bifrost/server/http1.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

// ---- allocation counting ------------------------------------------------------------------------

namespace {
std::atomic<std::uint64_t> g_allocs{0};
}

void* operator new(std::size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    const auto al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Sets `allocs/req` from the process-wide count over the timed loop.
class AllocCounter {
  public:
    explicit AllocCounter(benchmark::State& state, double requests_per_iteration = 1)
        : state_(state), per_iteration_(requests_per_iteration), start_(g_allocs.load()) {}
    ~AllocCounter() {
        const auto n = g_allocs.load() - start_;
        const double requests =
            per_iteration_ * static_cast<double>(std::max<std::int64_t>(1, state_.iterations()));
        state_.counters["allocs/req"] = benchmark::Counter(static_cast<double>(n) / requests);
    }

  private:
    benchmark::State& state_;
    double per_iteration_;
    std::uint64_t start_;
};

void set_percentiles(benchmark::State& state, const bifrost::LatencyHistogram& h) {
    state.counters["p50_ns"] = static_cast<double>(h.quantile(0.50));
    state.counters["p99_ns"] = static_cast<double>(h.quantile(0.99));
}

// ---- key selection
// -------------------------------------------------------------------------------

void BM_KeySelection(benchmark::State& state) {
    std::vector<bifrost::Key> keys{
        {bifrost::Secret("sk-a"), {}, 0.6, true, "a", {}},
        {bifrost::Secret("sk-b"), {}, 0.3, true, "b", {}},
        {bifrost::Secret("sk-c"), {}, 0.1, true, "c", {}},
    };
    if (state.range(0) == 1) {  // with per-model key lists
        keys[0].models = {"gpt-4o", "gpt-4o-mini"};
        keys[1].models = {"gpt-4o-mini", "o1", "o3-mini"};
    }
    bifrost::KeySelector sel(keys);
    bifrost::detail::FastRandom rng(7);
    const std::string_view model = "gpt-4o-mini";
    for (auto _ : state)
        benchmark::DoNotOptimize(sel.select(model, rng));
}
BENCHMARK(BM_KeySelection)->Arg(0)->Arg(1)->ArgName("model_lists");

// ---- pool
// ----------------------------------------------------------------------------------------

template <class Policy>
void BM_PoolAcquireRelease(benchmark::State& state) {
    typename Policy::template pool<bifrost::detail::Job> pool(64);
    AllocCounter allocs(state);
    for (auto _ : state) {
        bifrost::detail::Job* j = pool.acquire();
        benchmark::DoNotOptimize(j);
        pool.release(j);
    }
}
BENCHMARK_TEMPLATE(BM_PoolAcquireRelease, bifrost::pool::Preallocated);
BENCHMARK_TEMPLATE(BM_PoolAcquireRelease, bifrost::pool::Heap);

// ---- ring hand-off
// -------------------------------------------------------------------------------

/// Ping-pong through two rings between this thread and a spinning consumer: one iteration is two
/// hand-offs (there and back).
void BM_RingHandoffRoundTrip(benchmark::State& state) {
    bifrost::queue::Ring<std::uint64_t> there(100), back(100);
    std::atomic<bool> stop{false};
    std::thread consumer([&] {
        std::uint64_t v = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            if (there.try_pop(v)) {
                while (back.try_push(v) != bifrost::queue::PushStatus::ok) {
                }
            } else {
                bifrost::detail::cpu_relax();
            }
        }
    });
    std::uint64_t i = 0, v = 0;
    for (auto _ : state) {
        while (there.try_push(++i) != bifrost::queue::PushStatus::ok) {
        }
        while (!back.try_pop(v))
            bifrost::detail::cpu_relax();
        benchmark::DoNotOptimize(v);
    }
    stop = true;
    consumer.join();
}
BENCHMARK(BM_RingHandoffRoundTrip)->UseRealTime();

// ---- the JSON work of one chat request ---------------------------------------------------------
// What bifrost-http does with the bytes of one request of bench/e2e.py (the load generator's
// body, the mock upstream's answer), one step each: read the client's body, write the upstream
// body, read the upstream's answer, write the client's answer.

const std::string& client_body() {
    static const std::string body =
        R"({"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello! How are you today?"}]})";
    return body;
}

const std::string& upstream_body() {
    static const std::string body = [] {
        std::string b;
        bifrost::transport::mock::write_completion(b, "gpt-4o-mini", "Hello! How are you today?",
                                                   42);
        return b;
    }();
    return body;
}

void BM_JsonReadClientRequest(benchmark::State& state) {
    bifrost::ChatRequest req;
    bifrost::Error err;
    AllocCounter allocs(state);
    for (auto _ : state)
        if (!bifrost::parse_chat_request(client_body(), req, err)) state.SkipWithError("parse");
    benchmark::DoNotOptimize(req);
}
BENCHMARK(BM_JsonReadClientRequest);

void BM_JsonWriteUpstreamRequest(benchmark::State& state) {
    bifrost::ChatRequest req;
    bifrost::Error err;
    if (!bifrost::parse_chat_request(client_body(), req, err)) state.SkipWithError("parse");
    std::string out;
    AllocCounter allocs(state);
    for (auto _ : state) {
        out.clear();
        bifrost::write_chat_request(out, req, bifrost::RequestWriteOptions{"gpt-4o-mini", true});
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_JsonWriteUpstreamRequest);

void BM_JsonReadUpstreamResponse(benchmark::State& state) {
    bifrost::Outcome out;
    AllocCounter allocs(state);
    for (auto _ : state)
        if (!bifrost::parse_chat_response(upstream_body(), out)) state.SkipWithError("parse");
    benchmark::DoNotOptimize(out);
}
BENCHMARK(BM_JsonReadUpstreamResponse);

void BM_JsonWriteClientResponse(benchmark::State& state) {
    bifrost::Outcome o;
    if (!bifrost::parse_chat_response(upstream_body(), o)) state.SkipWithError("parse");
    o.response.extra_fields.provider = "openai";
    o.response.extra_fields.latency = std::chrono::microseconds(250);
    std::string out;
    AllocCounter allocs(state);
    for (auto _ : state) {
        out.clear();
        bifrost::write_chat_response(out, o.response);
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_JsonWriteClientResponse);

/// The same answer relayed as the upstream sent it, with the gateway's extra_fields appended
/// (what bifrost-http does for an OpenAI-format provider).
void BM_JsonRelayClientResponse(benchmark::State& state) {
    bifrost::ResponseExtra extra;
    extra.provider = "openai";
    extra.latency = std::chrono::microseconds(250);
    std::string out;
    AllocCounter allocs(state);
    for (auto _ : state) {
        out.clear();
        if (!bifrost::write_chat_wire(out, upstream_body(), extra)) state.SkipWithError("relay");
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_JsonRelayClientResponse);

/// The server's parse of a request head like an OpenAI SDK's (in place, no allocation).
void BM_ParseRequestHead(benchmark::State& state) {
    static const std::string head =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        "User-Agent: OpenAI/Python 1.54.0\r\nContent-Type: application/json\r\n"
        "Accept: application/json\r\nAuthorization: Bearer sk-0123456789abcdefghijklmnop\r\n"
        "Content-Length: 96\r\n\r\n";
    AllocCounter allocs(state);
    for (auto _ : state) {
        bifrost::server::http1::ParsedHead p;
        if (bifrost::server::http1::parse_head(head, 64 * 1024, p) !=
            bifrost::server::http1::Parse::complete)
            state.SkipWithError("parse");
        benchmark::DoNotOptimize(p);
    }
}
BENCHMARK(BM_ParseRequestHead);

// ---- full round trip through the gateway -----------------------------------------------------

using Gateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>;
using HeapGateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Heap>;

template <class Gw>
Gw& gateway() {
    static Gw* gw = [] {
        bifrost::GatewayOptions opts;
        opts.initial_pool_size = 256;
        auto* g = new Gw(opts);
        bifrost::ProviderConfig cfg;
        cfg.keys.push_back({bifrost::Secret("sk-bench"), {}, 1.0, true, "k", {}});
        cfg.concurrency_and_buffer_size = {64, 1024, 1};
        if (g->template add_provider<bifrost::providers::OpenAI>("openai", cfg)) std::abort();
        return g;
    }();
    return *gw;
}

bifrost::ChatRequest bench_request() {
    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o-mini";
    req.messages.push_back(
        {bifrost::Role::system, "You are a terse assistant.", {}, {}, {}, {}, {}});
    req.messages.push_back(
        {bifrost::Role::user, "Summarise the plot of Hamlet in one sentence.", {}, {}, {}, {}, {}});
    req.temperature = 0.2;
    req.max_tokens = 64;
    return req;
}

template <class Gw>
void BM_RoundTripSync(benchmark::State& state) {
    Gw& gw = gateway<Gw>();
    const bifrost::ChatRequest req = bench_request();
    for (int i = 0; i < 1000; ++i)
        benchmark::DoNotOptimize(gw.chat(req).ok());  // warm up
    bifrost::LatencyHistogram h;
    std::unique_ptr<AllocCounter> allocs;
    if (state.thread_index() == 0) allocs = std::make_unique<AllocCounter>(state);
    for (auto _ : state) {
        const auto t0 = Clock::now();
        auto r = gw.chat(req);
        if (!r) state.SkipWithError(r.error().message.c_str());
        h.record(Clock::now() - t0);
    }
    if (state.thread_index() == 0) set_percentiles(state, h);
}
BENCHMARK_TEMPLATE(BM_RoundTripSync, Gateway)->UseRealTime()->Threads(1)->Threads(2)->Threads(4);
BENCHMARK_TEMPLATE(BM_RoundTripSync, HeapGateway)->UseRealTime()->Threads(1);

void BM_RoundTripAsyncCallback(benchmark::State& state) {
    Gateway& gw = gateway<Gateway>();
    const bifrost::ChatRequest req = bench_request();
    std::atomic<int> done{0};
    bifrost::LatencyHistogram h;
    {
        AllocCounter allocs(state);
        for (auto _ : state) {
            const auto t0 = Clock::now();
            done.store(0, std::memory_order_relaxed);
            gw.async_chat(req, [&done](bifrost::Result r) {
                done.store(r.ok() ? 1 : 2, std::memory_order_release);
            });
            while (done.load(std::memory_order_acquire) == 0)
                bifrost::detail::cpu_relax();
            h.record(Clock::now() - t0);
        }
    }
    set_percentiles(state, h);
}
BENCHMARK(BM_RoundTripAsyncCallback)->UseRealTime();

/// Many requests in flight at once from one thread: throughput of the async path.
void BM_AsyncBurst(benchmark::State& state) {
    Gateway& gw = gateway<Gateway>();
    const bifrost::ChatRequest req = bench_request();
    const int burst = static_cast<int>(state.range(0));
    std::atomic<int> done{0};
    AllocCounter allocs(state, burst);
    for (auto _ : state) {
        done.store(0, std::memory_order_relaxed);
        for (int i = 0; i < burst; ++i)
            gw.async_chat(
                req, [&done](bifrost::Result) { done.fetch_add(1, std::memory_order_release); });
        while (done.load(std::memory_order_acquire) != burst)
            bifrost::detail::cpu_relax();
    }
    state.SetItemsProcessed(state.iterations() * burst);
}
BENCHMARK(BM_AsyncBurst)->Arg(256)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
