// The out-of-the-box demo: a gateway on the in-process Mock transport with two providers, a
// burst of concurrent requests from several threads, and the gateway's figures.
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

using Gateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>;

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

}  // namespace

int main(int argc, char** argv) {
    const std::size_t total = arg_or(argc, argv, 1, 20000);
    const std::size_t threads = arg_or(argc, argv, 2, 8);
    using namespace std::chrono_literals;

    Gateway gw;

    // Two providers on the Mock transport: a fast one and a slower one with more concurrency.
    bifrost::ProviderConfig fast;
    fast.keys.push_back({bifrost::Secret("sk-demo-fast"), {}, 1.0, true, "fast", {}});
    fast.concurrency_and_buffer_size = {16, 256, 1};
    bifrost::ProviderConfig slow;
    slow.keys.push_back({bifrost::Secret("sk-demo-a"), {}, 0.7, true, "a", {}});
    slow.keys.push_back({bifrost::Secret("sk-demo-b"), {}, 0.3, true, "b", {}});
    slow.concurrency_and_buffer_size = {256, 1024, 1};

    if (auto err = gw.add_provider<bifrost::providers::OpenAI>(
            "openai", fast, {bifrost::transport::mock::echo(200us)})) {
        std::fprintf(stderr, "add_provider: %s\n", err->message.c_str());
        return 1;
    }
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>(
            "mistral", slow, {bifrost::transport::mock::echo(5ms)})) {
        std::fprintf(stderr, "add_provider: %s\n", err->message.c_str());
        return 1;
    }

    // One request first, to show a response.
    bifrost::ChatRequest hello;
    hello.model = "openai/gpt-4o-mini";
    hello.messages.push_back({bifrost::Role::user, "Hello, gateway!", {}, {}, {}, {}, {}});
    if (auto r = gw.chat(hello)) {
        std::printf("openai/gpt-4o-mini -> \"%s\" (served by %s, finish_reason %s)\n\n",
                    r->choices.at(0).message.content.c_str(), r->extra_fields.provider.c_str(),
                    r->choices.at(0).finish_reason.c_str());
    } else {
        std::fprintf(stderr, "request failed: %s\n", r.error().message.c_str());
        return 1;
    }

    // The burst: `threads` callers, alternating providers, every answer checked.
    std::atomic<std::size_t> next{0}, ok{0}, mismatched{0}, failed{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> callers;
    for (std::size_t t = 0; t < threads; ++t) {
        callers.emplace_back([&] {
            bifrost::ChatRequest req;
            req.messages.resize(1);
            for (std::size_t i; (i = next.fetch_add(1)) < total;) {
                req.model = i % 2 ? "mistral/mistral-small" : "openai/gpt-4o-mini";
                req.messages[0].content = "request " + std::to_string(i);
                auto r = gw.chat(req);
                if (!r) {
                    failed.fetch_add(1);
                } else if (r->choices.at(0).message.content !=
                           "Echo: request " + std::to_string(i)) {
                    mismatched.fetch_add(1);
                } else {
                    ok.fetch_add(1);
                }
            }
        });
    }
    for (auto& c : callers)
        c.join();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::printf(
        "burst: %zu requests from %zu threads in %.3f s (%.0f req/s): %zu ok, %zu failed, "
        "%zu mismatched\n\n",
        total, threads, secs, static_cast<double>(total) / secs, ok.load(), failed.load(),
        mismatched.load());

    const auto s = gw.stats();
    std::printf("%-8s %7s %6s %9s %9s %7s %7s %11s %11s %11s %11s\n", "provider", "conc", "queue",
                "submitted", "completed", "failed", "dropped", "wait p50ms", "wait p99ms",
                "upstr p50ms", "upstr p99ms");
    for (const auto& p : s.providers) {
        std::printf(
            "%-8s %7zu %6zu %9llu %9llu %7llu %7llu %11.3f %11.3f %11.3f %11.3f\n", p.name.c_str(),
            p.concurrency, p.queue_capacity, static_cast<unsigned long long>(p.submitted),
            static_cast<unsigned long long>(p.completed), static_cast<unsigned long long>(p.failed),
            static_cast<unsigned long long>(p.dropped), ms(p.queue_wait.p50_ns),
            ms(p.queue_wait.p99_ns), ms(p.upstream.p50_ns), ms(p.upstream.p99_ns));
    }
    std::printf("\npool: %llu gets, %llu hits, %llu misses (hit ratio %.4f), %llu objects\n",
                static_cast<unsigned long long>(s.pool.gets),
                static_cast<unsigned long long>(s.pool.hits),
                static_cast<unsigned long long>(s.pool.misses), s.pool.hit_ratio(),
                static_cast<unsigned long long>(s.pool.size));
    return (ok.load() == total) ? 0 : 1;
}
