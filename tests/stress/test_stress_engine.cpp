// Concurrency stress tests of the engine: many producer threads, several providers, small queues,
// every backpressure path. They run in the normal build and under ThreadSanitizer and
// AddressSanitizer in CI. Sizes scale with BIFROST_STRESS_SCALE (default 1).

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using bifrost::Result;
using bifrost::transport::MockCall;
using bifrost::transport::MockScript;
namespace mock = bifrost::transport::mock;

namespace {

int scale() {
    const char* s = std::getenv("BIFROST_STRESS_SCALE");
    const int v = s ? std::atoi(s) : 1;
    return v > 0 ? v : 1;
}

/// Echo with a random latency in [0, max_us] microseconds (0 half of the time: inline completion).
MockScript jittery_echo(int max_us) {
    return [max_us, echo = mock::echo()](MockCall& call) {
        thread_local std::minstd_rand rng(std::random_device{}());
        echo(call);
        if (rng() % 2) call.latency = std::chrono::microseconds(rng() % (max_us + 1));
    };
}

const char* const provider_names[] = {"alpha", "beta", "gamma"};

/// `breaker`: the providers' circuit-breaker threshold (0: none).
template <class Gw>
void add_three_providers(Gw& gw, std::size_t buffer, std::uint32_t breaker = 5) {
    auto config = [&](std::size_t concurrency, std::size_t workers) {
        bifrost::ProviderConfig c = test::provider_config(concurrency, buffer, workers);
        c.circuit_breaker.failure_threshold = breaker;
        return c;
    };
    REQUIRE_FALSE(gw.template add_provider<bifrost::providers::OpenAI>("alpha", config(4, 1),
                                                                       {jittery_echo(200)}));
    REQUIRE_FALSE(gw.template add_provider<bifrost::providers::OpenAI>("beta", config(8, 2),
                                                                       {jittery_echo(100)}));
    REQUIRE_FALSE(gw.template add_provider<bifrost::providers::OpenAI>("gamma", config(16, 1),
                                                                       {jittery_echo(50)}));
}

/// Per-request bookkeeping: how many times each request was answered, and with what.
struct Ledger {
    explicit Ledger(std::size_t n) : answers(n), ok(n), content_ok(n) {}
    std::vector<std::atomic<int>> answers;
    std::vector<std::atomic<int>> ok;
    std::vector<std::atomic<int>> content_ok;

    void record(std::size_t id, const Result& r) {
        answers[id].fetch_add(1);
        if (r.ok()) {
            ok[id].fetch_add(1);
            if (r->choices.size() == 1 &&
                r->choices[0].message.content == "Echo: req-" + std::to_string(id))
                content_ok[id].fetch_add(1);
        }
    }
    [[nodiscard]] std::size_t count_if_answered(int times) const {
        std::size_t n = 0;
        for (const auto& a : answers)
            n += a.load() == times ? 1 : 0;
        return n;
    }
};

std::uint64_t sum(const bifrost::GatewayStats& s, std::uint64_t bifrost::ProviderStats::*field) {
    std::uint64_t n = 0;
    for (const auto& p : s.providers)
        n += p.*field;
    return n;
}

}  // namespace

TEST_CASE("stress: every synchronous request is answered exactly once, with its own answer",
          "[stress][concurrency]") {
    const std::size_t producers = 6, per_producer = 1500 * static_cast<std::size_t>(scale());
    const std::size_t total = producers * per_producer;
    test::MockGateway<bifrost::queue::Block> gw(test::options(32));
    add_three_providers(gw, 8);

    Ledger ledger(total);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < producers; ++t) {
        threads.emplace_back([&, t] {
            bifrost::ChatRequest req = test::request("", "");
            for (std::size_t i = 0; i < per_producer; ++i) {
                const std::size_t id = t * per_producer + i;
                req.model = std::string(provider_names[id % 3]) + "/m";
                req.messages[0].content = "req-" + std::to_string(id);
                ledger.record(id, gw.chat(req));
            }
        });
    }
    for (auto& th : threads)
        th.join();

    CHECK(ledger.count_if_answered(1) == total);
    std::size_t content_ok = 0;
    for (const auto& c : ledger.content_ok)
        content_ok += static_cast<std::size_t>(c.load());
    CHECK(content_ok == total);

    const auto s = gw.stats();
    CHECK(sum(s, &bifrost::ProviderStats::submitted) == total);
    CHECK(sum(s, &bifrost::ProviderStats::completed) == total);
    CHECK(sum(s, &bifrost::ProviderStats::failed) == 0);
    for (const auto& p : s.providers) {
        CHECK(p.in_flight == 0);
        CHECK(p.queue_depth == 0);
        CHECK(p.submitted == total / 3);
    }
    CHECK(s.pool.gets == total);
    // Workers drop their reference just after waking the caller: wait for the last ones.
    CHECK(test::eventually([&] { return gw.stats().pool.returns == total; }));
}

TEST_CASE("stress: every asynchronous request is answered exactly once, through full queues",
          "[stress][concurrency]") {
    const std::size_t producers = 4, per_producer = 2500 * static_cast<std::size_t>(scale());
    const std::size_t total = producers * per_producer;
    test::MockGateway<bifrost::queue::Block> gw(test::options(64));
    add_three_providers(gw, 4);  // tiny rings: most requests park in the overflow list

    Ledger ledger(total);
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < producers; ++t) {
        threads.emplace_back([&, t] {
            bifrost::ChatRequest req = test::request("", "");
            for (std::size_t i = 0; i < per_producer; ++i) {
                const std::size_t id = t * per_producer + i;
                req.model = std::string(provider_names[id % 3]) + "/m";
                req.messages[0].content = "req-" + std::to_string(id);
                gw.async_chat(req, [&, id](Result r) {
                    ledger.record(id, r);
                    done.fetch_add(1);
                });
            }
        });
    }
    for (auto& th : threads)
        th.join();
    REQUIRE(test::eventually([&] { return done.load() == total; }, 60000ms));

    CHECK(ledger.count_if_answered(1) == total);
    std::size_t content_ok = 0;
    for (const auto& c : ledger.content_ok)
        content_ok += static_cast<std::size_t>(c.load());
    CHECK(content_ok == total);
    const auto s = gw.stats();
    CHECK(sum(s, &bifrost::ProviderStats::completed) == total);
    CHECK(sum(s, &bifrost::ProviderStats::queued) == total);
    CHECK(sum(s, &bifrost::ProviderStats::waited_for_space) > 0);  // the overflow path ran
    for (const auto& p : s.providers)
        CHECK(p.waiting_for_space == 0);
}

TEST_CASE("stress: with Drop, accepted + dropped == submitted and every accepted one completes",
          "[stress][concurrency]") {
    const std::size_t producers = 4, per_producer = 3000 * static_cast<std::size_t>(scale());
    const std::size_t total = producers * per_producer;
    test::MockGateway<bifrost::queue::Drop> gw(test::options(64));
    add_three_providers(gw, 4);

    Ledger ledger(total);
    std::atomic<std::size_t> done{0}, dropped{0};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < producers; ++t) {
        threads.emplace_back([&, t] {
            bifrost::ChatRequest req = test::request("", "");
            for (std::size_t i = 0; i < per_producer; ++i) {
                const std::size_t id = t * per_producer + i;
                req.model = std::string(provider_names[id % 3]) + "/m";
                req.messages[0].content = "req-" + std::to_string(id);
                if (i % 2) {
                    auto r = gw.chat(req);
                    if (!r && r.error().type == "request_dropped") dropped.fetch_add(1);
                    ledger.record(id, r);
                    done.fetch_add(1);
                } else {
                    gw.async_chat(req, [&, id](Result r) {
                        if (!r && r.error().type == "request_dropped") dropped.fetch_add(1);
                        ledger.record(id, r);
                        done.fetch_add(1);
                    });
                }
            }
        });
    }
    for (auto& th : threads)
        th.join();
    REQUIRE(test::eventually([&] { return done.load() == total; }, 60000ms));

    CHECK(ledger.count_if_answered(1) == total);
    std::size_t ok = 0, content_ok = 0;
    for (std::size_t i = 0; i < total; ++i) {
        ok += static_cast<std::size_t>(ledger.ok[i].load());
        content_ok += static_cast<std::size_t>(ledger.content_ok[i].load());
    }
    CHECK(ok == content_ok);
    CHECK(ok + dropped.load() == total);
    const auto s = gw.stats();
    CHECK(sum(s, &bifrost::ProviderStats::dropped) == dropped.load());
    CHECK(sum(s, &bifrost::ProviderStats::completed) == ok);
    CHECK(sum(s, &bifrost::ProviderStats::queued) == ok);
    CHECK(sum(s, &bifrost::ProviderStats::submitted) == total);
}

TEST_CASE("stress: BlockFor under overload: every request completes or times out, counted",
          "[stress][concurrency]") {
    const std::size_t producers = 4, per_producer = 1000 * static_cast<std::size_t>(scale());
    const std::size_t total = producers * per_producer;
    bifrost::queue::BlockFor policy{200us};
    test::MockGateway<bifrost::queue::BlockFor> gw(test::options(64), policy);
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "alpha", test::provider_config(2, 2, 1), {mock::echo(300us)}));

    Ledger ledger(total);
    std::atomic<std::size_t> done{0}, timeouts{0};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < producers; ++t) {
        threads.emplace_back([&, t] {
            bifrost::ChatRequest req = test::request("alpha/m", "");
            for (std::size_t i = 0; i < per_producer; ++i) {
                const std::size_t id = t * per_producer + i;
                req.messages[0].content = "req-" + std::to_string(id);
                auto on_result = [&, id](const Result& r) {
                    if (!r && r.error().type == "queue_timeout") timeouts.fetch_add(1);
                    ledger.record(id, r);
                    done.fetch_add(1);
                };
                if (t % 2)
                    on_result(gw.chat(req));
                else
                    gw.async_chat(req, [on_result](Result r) { on_result(r); });
            }
        });
    }
    for (auto& th : threads)
        th.join();
    REQUIRE(test::eventually([&] { return done.load() == total; }, 60000ms));
    CHECK(ledger.count_if_answered(1) == total);
    const auto s = gw.stats();
    const auto& p = s.providers.at(0);
    CHECK(p.queue_timeouts == timeouts.load());
    CHECK(p.completed + p.queue_timeouts == total);
    CHECK(p.queue_timeouts > 0);
    CHECK(p.completed > 0);
}

TEST_CASE("stress: shutdown in the middle of traffic answers every request exactly once",
          "[stress][concurrency]") {
    const std::size_t producers = 4, per_producer = 2000 * static_cast<std::size_t>(scale());
    const std::size_t total = producers * per_producer;
    auto opts = test::options(64);
    opts.drain_timeout = 20ms;
    auto gw = std::make_unique<test::MockGateway<bifrost::queue::Block>>(opts);
    add_three_providers(*gw, 8);

    Ledger ledger(total);
    std::atomic<std::size_t> done{0}, submitted{0};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < producers; ++t) {
        threads.emplace_back([&, t] {
            bifrost::ChatRequest req = test::request("", "");
            for (std::size_t i = 0; i < per_producer; ++i) {
                const std::size_t id = t * per_producer + i;
                req.model = std::string(provider_names[id % 3]) + "/m";
                req.messages[0].content = "req-" + std::to_string(id);
                submitted.fetch_add(1);
                if (i % 2) {
                    ledger.record(id, gw->chat(req));
                    done.fetch_add(1);
                } else {
                    gw->async_chat(req, [&, id](Result r) {
                        ledger.record(id, r);
                        done.fetch_add(1);
                    });
                }
            }
        });
    }
    REQUIRE(test::eventually([&] { return submitted.load() > total / 3; }, 60000ms));
    gw->shutdown();
    for (auto& th : threads)
        th.join();
    REQUIRE(test::eventually([&] { return done.load() == total; }, 60000ms));

    CHECK(ledger.count_if_answered(1) == total);
    std::size_t ok = 0;
    for (const auto& o : ledger.ok)
        ok += static_cast<std::size_t>(o.load());
    CHECK(ok > 0);
    CHECK(ok < total);
    const auto s = gw->stats();
    CHECK(sum(s, &bifrost::ProviderStats::completed) == ok);
    CHECK(sum(s, &bifrost::ProviderStats::completed) + sum(s, &bifrost::ProviderStats::failed) +
              sum(s, &bifrost::ProviderStats::rejected_shutdown) ==
          total);
    gw.reset();  // all Results are gone: the gateway may go
}

TEST_CASE("stress: requests submitted on the providers' own workers are answered exactly once",
          "[stress][concurrency]") {
    // As a server's connections do: chains of requests, each started on a worker thread and
    // continued from its answer's callback (run where the answer was delivered: a worker, or
    // the timekeeper for a deadline), to the three providers in turn, so a request is submitted
    // on its own provider's worker (the local path), on another provider's, or elsewhere. Some
    // have deadlines short enough to expire while waiting or running; the gateway shuts down
    // in the middle in one section.
    const std::size_t chains = 48, per_chain = 80 * static_cast<std::size_t>(scale());
    const std::size_t total = chains * per_chain;
    auto gw = std::make_unique<test::MockGateway<bifrost::queue::Block>>(test::options(64));
    // No circuit breaker: the requests with deadlines time out while running, and a slow run
    // (a sanitizer, a busy machine) can time out five in a row, which would open a provider's
    // circuit and fail the requests without deadlines too.
    add_three_providers(*gw, 4, 0);
    const auto executors = gw->worker_executors();
    REQUIRE(executors.size() == 4);
    const bool shut_down = GENERATE(false, true);

    Ledger ledger(total);
    std::atomic<std::size_t> done{0};
    std::mutex m;
    std::vector<std::string> unexpected;  // failures of requests without a deadline
    std::function<void(std::size_t)> submit = [&](std::size_t id) {
        bifrost::ChatRequest req =
            test::request(std::string(provider_names[id % 3]) + "/m", "req-" + std::to_string(id));
        bifrost::RequestOptions ro;
        if (id % 7 == 0) ro.timeout = std::chrono::microseconds(20 + id % 100);
        gw->async_chat(req, ro, [&, id](Result r) {
            ledger.record(id, r);
            if (!r.ok() && id % 7 != 0 && !shut_down) {
                std::lock_guard l(m);
                unexpected.push_back(std::to_string(r.error().status) + " " + r.error().message);
            }
            done.fetch_add(1);
            if ((id + 1) % per_chain != 0) submit(id + 1);
        });
    };
    for (std::size_t c = 0; c < chains; ++c)
        boost::asio::post(executors[c % executors.size()], [&, c] { submit(c * per_chain); });
    if (shut_down) {
        REQUIRE(test::eventually([&] { return done.load() > total / 3; }, 60000ms));
        gw->shutdown();
    }
    REQUIRE(test::eventually([&] { return done.load() == total; }, 60000ms));

    CHECK(ledger.count_if_answered(1) == total);
    std::size_t ok = 0, content_ok = 0;
    for (std::size_t i = 0; i < total; ++i) {
        ok += static_cast<std::size_t>(ledger.ok[i].load());
        content_ok += static_cast<std::size_t>(ledger.content_ok[i].load());
    }
    CHECK(content_ok == ok);                          // every success carried its own answer
    CHECK(unexpected == std::vector<std::string>{});  // only those with deadlines may fail
    const auto s = gw->stats();
    CHECK(sum(s, &bifrost::ProviderStats::completed) == ok);
    for (const auto& p : s.providers) {
        CHECK(p.in_flight == 0);
        CHECK(p.queue_depth == 0);
    }
    gw.reset();
}

TEST_CASE("stress: a caller that goes to sleep is always woken", "[stress][concurrency]") {
    // The caller spins for 10 us and then sleeps; upstream latencies straddle that moment, so
    // completions keep landing right as callers go to sleep (a lost wake-up shows up as a hang).
    auto opts = test::options(8);
    opts.caller_spin = 10us;
    opts.worker_spin = 0ns;
    test::MockGateway<bifrost::queue::Block> gw(opts);
    MockScript script = [echo = mock::echo()](MockCall& call) {
        thread_local std::minstd_rand rng(12345);
        echo(call);
        call.latency = std::chrono::nanoseconds(rng() % 20000);
    };
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("alpha", test::provider_config(4, 8),
                                                              {script}));

    const std::size_t per_thread = 20000 * static_cast<std::size_t>(scale());
    std::atomic<std::size_t> ok{0};
    std::atomic<bool> finished{false};
    std::thread watchdog([&] {
        for (int i = 0; i < 1200 && !finished.load(); ++i)
            std::this_thread::sleep_for(100ms);
        if (!finished.load()) {
            std::fprintf(stderr, "stress: callers still blocked after 120 s (lost wake-up?)\n");
            std::abort();
        }
    });
    std::vector<std::thread> callers;
    for (int t = 0; t < 2; ++t) {
        callers.emplace_back([&] {
            const auto req = test::request("alpha/m", "ping");
            for (std::size_t i = 0; i < per_thread; ++i)
                if (gw.chat(req).ok()) ok.fetch_add(1);
        });
    }
    for (auto& c : callers)
        c.join();
    finished = true;
    watchdog.join();
    CHECK(ok.load() == 2 * per_thread);
}
