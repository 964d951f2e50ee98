// The out-of-the-box demo: a gateway on the in-process Mock transport (a simulated LLM, so no API
// keys are needed) with two providers, one request, then a burst of concurrent requests from
// several threads (blocking and asynchronous), and the gateway's figures.
//
//   bifrost-demo [requests] [threads]

#include <bifrost/bifrost.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using Gateway = bifrost::Gateway<bifrost::transport::Mock,      // simulated upstreams
                                 bifrost::queue::Block,         // full queue: wait for space
                                 bifrost::pool::Preallocated>;  // pooled per-request objects

namespace {

std::size_t arg_or(int argc, char** argv, int i, std::size_t fallback) {
    if (argc <= i) return fallback;
    std::size_t v = 0;
    const std::string_view s(argv[i]);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return (ec == std::errc() && p == s.data() + s.size() && v > 0) ? v : fallback;
}

double ms(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

bifrost::ChatRequest user_request(std::string model, std::string text) {
    bifrost::ChatRequest req;
    req.model = std::move(model);
    req.messages.push_back({bifrost::Role::user, std::move(text), {}, {}, {}, {}, {}});
    return req;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t total = arg_or(argc, argv, 1, 20000);
    const std::size_t threads = arg_or(argc, argv, 2, 4);
    using namespace std::chrono_literals;

    bifrost::GatewayOptions options;
    options.initial_pool_size = 1024;
    Gateway gw(options);

    // Two providers with their own queues and workers: a fast one (200 us upstream, 16 in
    // flight) and a slow one (5 ms upstream, 256 in flight, two weighted keys).
    bifrost::ProviderConfig fast;
    fast.keys.push_back({bifrost::Secret("sk-demo-fast"), {}, 1.0, true, "fast", {}});
    fast.concurrency_and_buffer_size = {16, 256, 1};
    bifrost::ProviderConfig slow;
    slow.keys.push_back({bifrost::Secret("sk-demo-a"), {}, 0.7, true, "a", {}});
    slow.keys.push_back({bifrost::Secret("sk-demo-b"), {}, 0.3, true, "b", {}});
    slow.concurrency_and_buffer_size = {256, 1024, 1};

    for (auto [name, cfg, latency] :
         {std::tuple{"openai", fast, 200us}, {"mistral", slow, 5000us}}) {
        if (auto err = gw.add_provider<bifrost::providers::OpenAI>(
                name, cfg, {bifrost::transport::mock::echo(latency)})) {
            std::fprintf(stderr, "add_provider(%s): %s\n", name, err->message.c_str());
            return 1;
        }
    }

    // One blocking request.
    if (auto r = gw.chat(user_request("openai/gpt-4o-mini", "Hello, gateway!"))) {
        std::printf(
            "openai/gpt-4o-mini -> \"%s\" (served by %s, finish_reason %s, %lld tokens)\n\n",
            r->choices.at(0).message.content.c_str(), r->extra_fields.provider.c_str(),
            r->choices.at(0).finish_reason.c_str(),
            static_cast<long long>(r->usage ? r->usage->total_tokens : 0));
    } else {
        std::fprintf(stderr, "request failed: %s\n", r.error().message.c_str());
        return 1;
    }

    // The burst: `threads` producers; most requests go through async_chat() with a callback, so
    // thousands are in flight at once; every eighth blocks in chat(). Every answer is checked
    // against its own request.
    std::atomic<std::size_t> next{0}, ok{0}, mismatched{0}, failed{0}, answered{0};
    const auto check = [&](std::size_t i, const bifrost::Result& r) {
        if (!r)
            failed.fetch_add(1);
        else if (r->choices.at(0).message.content != "Echo: request " + std::to_string(i))
            mismatched.fetch_add(1);
        else
            ok.fetch_add(1);
        answered.fetch_add(1);
    };
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> producers;
    for (std::size_t t = 0; t < threads; ++t) {
        producers.emplace_back([&] {
            for (std::size_t i; (i = next.fetch_add(1)) < total;) {
                auto req = user_request(i % 2 ? "mistral/mistral-small" : "openai/gpt-4o-mini",
                                        "request " + std::to_string(i));
                if (i % 8 == 2) {
                    check(i, gw.chat(req));
                } else {
                    gw.async_chat(req, [&check, i](bifrost::Result r) { check(i, r); });
                }
            }
        });
    }
    for (auto& p : producers)
        p.join();
    while (answered.load() < total)
        std::this_thread::sleep_for(1ms);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::printf(
        "burst: %zu requests from %zu threads in %.3f s (%.0f req/s): %zu ok, %zu failed, "
        "%zu mismatched\n\n",
        total, threads, secs, static_cast<double>(total) / secs, ok.load(), failed.load(),
        mismatched.load());

    const auto s = gw.stats();
    std::printf("%-8s %5s %6s %9s %9s %6s %7s %10s %10s %11s %11s\n", "provider", "conc", "queue",
                "submitted", "completed", "failed", "waited", "wait p50", "wait p99",
                "upstream p50", "upstream p99");
    for (const auto& p : s.providers) {
        std::printf("%-8s %5zu %6zu %9llu %9llu %6llu %7llu %8.3fms %8.3fms %9.3fms %9.3fms\n",
                    p.name.c_str(), p.concurrency, p.queue_capacity,
                    static_cast<unsigned long long>(p.submitted),
                    static_cast<unsigned long long>(p.completed),
                    static_cast<unsigned long long>(p.failed),
                    static_cast<unsigned long long>(p.waited_for_space), ms(p.queue_wait.p50_ns),
                    ms(p.queue_wait.p99_ns), ms(p.upstream.p50_ns), ms(p.upstream.p99_ns));
    }
    std::printf("\npool: %llu gets, %llu hits, %llu misses (hit ratio %.4f), %llu objects\n",
                static_cast<unsigned long long>(s.pool.gets),
                static_cast<unsigned long long>(s.pool.hits),
                static_cast<unsigned long long>(s.pool.misses), s.pool.hit_ratio(),
                static_cast<unsigned long long>(s.pool.size));
    return (ok.load() == total) ? 0 : 1;
}
