// Retries, fallbacks, deadlines, cancellation, circuit breakers and runtime reconfiguration.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using bifrost::Result;
using bifrost::transport::MockCall;
using bifrost::transport::MockScript;
using test::MockGateway;
namespace mock = bifrost::transport::mock;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

/// An upstream whose answer for each call comes from a list of statuses (the last repeats);
/// records each call's time and Authorization header.
struct Scripted {
    std::mutex m;
    std::vector<int> statuses;
    std::vector<Clock::time_point> times;
    std::vector<std::string> auth;
    std::string retry_after;
    std::atomic<int> calls{0};

    MockScript script() {
        return [this, echo = mock::echo()](MockCall& call) {
            int status = 200;
            {
                std::lock_guard l(m);
                const std::size_t i = times.size();
                times.push_back(Clock::now());
                auth.emplace_back(call.request.headers.get("authorization"));
                if (!statuses.empty()) status = statuses[std::min(i, statuses.size() - 1)];
            }
            calls.fetch_add(1);
            if (status == 0) {
                call.fault = MockCall::Fault::network_error;
                return;
            }
            if (status != 200) {
                call.response.status = status;
                call.response.body = R"({"error":{"message":"upstream says )" +
                                     std::to_string(status) + R"(","type":"server_error"}})";
                if (!retry_after.empty()) call.response.headers.add("Retry-After", retry_after);
                return;
            }
            echo(call);
        };
    }
};

bifrost::ProviderConfig retrying(int max_retries, std::chrono::milliseconds initial = 1ms,
                                 std::size_t concurrency = 4) {
    auto c = test::provider_config(concurrency, 64);
    c.network_config.max_retries = max_retries;
    c.network_config.retry_backoff_initial = initial;
    c.network_config.retry_backoff_max = initial * 4;
    c.circuit_breaker.failure_threshold = 0;
    return c;
}

}  // namespace

// ---- retries ----------------------------------------------------------------------------------

TEST_CASE("reliability: retryable failures are retried until success", "[reliability]") {
    Scripted up;
    up.statuses = {503, 0, 502, 200};  // 503, network error, 502, then success
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(3), {up.script()}));
    auto r = gw.chat(test::request("p/m", "retry me"));
    REQUIRE(r.ok());
    CHECK(r->choices[0].message.content == "Echo: retry me");
    CHECK(up.calls == 4);
    const auto s = gw.stats();
    CHECK(s.provider("p")->retries == 3);
    CHECK(s.provider("p")->completed == 1);
    CHECK(s.provider("p")->failed == 0);
}

TEST_CASE("reliability: retries stop at max_retries and return the upstream's error",
          "[reliability]") {
    Scripted up;
    up.statuses = {500};
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(2), {up.script()}));
    auto r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 500);
    CHECK(r.error().message == "upstream says 500");
    CHECK(up.calls == 3);
    CHECK(gw.stats().provider("p")->retries == 2);
}

TEST_CASE("reliability: client errors are not retried; max_retries 0 means one call",
          "[reliability]") {
    Scripted up;
    up.statuses = {400};
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(5), {up.script()}));
    CHECK(gw.chat(test::request("p/m", "x")).error().status == 400);
    CHECK(up.calls == 1);

    Scripted down;
    down.statuses = {503};
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("q", retrying(0), {down.script()}));
    CHECK(gw.chat(test::request("q/m", "x")).error().status == 503);
    CHECK(down.calls == 1);
}

TEST_CASE("reliability: Retry-After is honoured", "[reliability]") {
    Scripted up;
    up.statuses = {429, 200};
    up.retry_after = "1";  // seconds; the backoff alone would be ~1 ms
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(1), {up.script()}));
    REQUIRE(gw.chat(test::request("p/m", "x")).ok());
    std::lock_guard l(up.m);
    REQUIRE(up.times.size() == 2);
    CHECK(up.times[1] - up.times[0] >= 1s);
}

TEST_CASE("reliability: a retry that cannot finish before the deadline is not attempted",
          "[reliability]") {
    Scripted up;
    up.statuses = {429, 200};
    up.retry_after = "60";
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(3), {up.script()}));
    bifrost::RequestOptions opts;
    opts.timeout = 5s;
    auto r = gw.chat(test::request("p/m", "x"), opts);
    CHECK(r.error().status == 429);  // the upstream's answer now, not a 504 in 5 s
    CHECK(up.calls == 1);
}

TEST_CASE("reliability: with several keys, a retry after 401/403/429 uses another key",
          "[reliability]") {
    for (int status : {401, 403, 429}) {
        Scripted up;
        up.statuses = {status, 200};
        MockGateway<> gw(test::options());
        auto cfg = retrying(1);
        cfg.keys = {{bifrost::Secret("sk-one"), {}, 1.0, true, "one", {}},
                    {bifrost::Secret("sk-two"), {}, 1.0, true, "two", {}}};
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", cfg, {up.script()}));
        for (int i = 0; i < 20; ++i) {
            {
                std::lock_guard l(up.m);
                up.times.clear();
                up.auth.clear();
            }
            REQUIRE(gw.chat(test::request("p/m", "x")).ok());
            std::lock_guard l(up.m);
            REQUIRE(up.auth.size() == 2);
            CHECK(up.auth[0] != up.auth[1]);
        }
    }
    // With one key, a 401 is final.
    Scripted single;
    single.statuses = {401, 200};
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(1), {single.script()}));
    CHECK(gw.chat(test::request("p/m", "x")).error().status == 401);
    CHECK(single.calls == 1);
}

TEST_CASE("reliability: a request in backoff holds no worker: others keep flowing",
          "[reliability][concurrency]") {
    std::atomic<int> first_calls{0};
    MockScript script = [&, echo = mock::echo()](MockCall& call) {
        echo(call);
        if (call.request.body.find("slow-one") != std::string::npos && first_calls++ == 0)
            call.response.status = 503;  // first try fails: backoff of 2 s
    };
    MockGateway<> gw(test::options());
    // One in-flight slot only: if the backoff held it, nothing else could run.
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", retrying(1, 2000ms, 1), {script}));
    auto slow = gw.async_chat(test::request("p/m", "slow-one"), asio::use_future);
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_retry_backoff == 1; }));
    for (int i = 0; i < 50; ++i) {
        auto r = gw.chat(test::request("p/m", "other " + std::to_string(i)));
        REQUIRE(r.ok());
    }
    // All 50 finished while the first request was still waiting to retry.
    CHECK(gw.stats().provider("p")->in_retry_backoff == 1);
    CHECK(slow.wait_for(0s) == std::future_status::timeout);
    Result r = slow.get();
    REQUIRE(r.ok());
    CHECK(r->choices[0].message.content == "Echo: slow-one");
}

// ---- fallbacks ---------------------------------------------------------------------------------

namespace {
/// Records each attempt's fallback index and provider as the plugins see them.
struct AttemptLog {
    static inline std::mutex m;
    static inline std::vector<std::string> lines;
    void pre_hook(bifrost::Context& ctx, bifrost::ChatRequest& req) {
        std::lock_guard l(m);
        lines.push_back("pre " + std::to_string(ctx.fallback_index()) + " " + req.model);
    }
    void post_hook(bifrost::Context& ctx, bifrost::Outcome& out) {
        std::lock_guard l(m);
        lines.push_back("post " + std::to_string(ctx.fallback_index()) + " " +
                        std::string(ctx.provider()) + " " +
                        (out.ok() ? "ok" : std::to_string(out.error.status)));
    }
    static std::vector<std::string> take() {
        std::lock_guard l(m);
        return std::exchange(lines, {});
    }
};
}  // namespace

TEST_CASE("reliability: fallbacks are tried in order; the first success answers", "[reliability]") {
    MockGateway<bifrost::queue::Block, AttemptLog> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "primary", retrying(0), {mock::fixed(503, R"({"error":{"message":"primary down"}})")}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "second", retrying(0), {mock::fixed(500, R"({"error":{"message":"second down"}})")}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("third", retrying(0)));

    auto req = test::request("primary/big-model", "hello");
    req.fallbacks = {"second/mid-model", "third/small-model", "never/reached"};
    AttemptLog::take();

    SECTION("sync") {
        auto r = gw.chat(req);
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "third");
        CHECK(r->model == "small-model");
        CHECK(r->choices[0].message.content == "Echo: hello");
    }
    SECTION("async") {
        Result r = gw.async_chat(req, asio::use_future).get();
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "third");
    }
    SECTION("async, the request moved in") {
        // The fallbacks read the original request from the moved-in one.
        Result r = gw.async_chat(std::move(req), {}, asio::use_future).get();
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "third");
        CHECK(r->choices[0].message.content == "Echo: hello");
    }
    // Plugins ran for every attempt, with the attempt's model and index.
    CHECK(AttemptLog::take() ==
          std::vector<std::string>{"pre 0 primary/big-model", "post 0 primary 503",
                                   "pre 1 second/mid-model", "post 1 second 500",
                                   "pre 2 third/small-model", "post 2 third ok"});
    const auto s = gw.stats();
    CHECK(s.fallback_attempts == 2);
    CHECK(s.fallback_successes == 1);
    CHECK(s.provider("never") == nullptr);
}

TEST_CASE("reliability: when every fallback fails, the primary's error is returned",
          "[reliability]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "primary", retrying(0), {mock::fixed(503, R"({"error":{"message":"primary down"}})")}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "second", retrying(0), {mock::fixed(500, R"({"error":{"message":"second down"}})")}));
    auto req = test::request("primary/m", "x");
    req.fallbacks = {"second/m", "unknown/m"};
    for (int async = 0; async < 2; ++async) {
        Result r = async ? gw.async_chat(req, asio::use_future).get() : gw.chat(req);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 503);
        CHECK(r.error().message == "primary down");
        CHECK(r.error().provider == "primary");
    }
    CHECK(gw.stats().fallback_attempts == 4);
    CHECK(gw.stats().fallback_successes == 0);
}

// ---- deadlines
// -----------------------------------------------------------------------------------

TEST_CASE("reliability: a deadline answers 504 promptly and cancels the upstream call",
          "[reliability][concurrency]") {
    auto cfg = retrying(0);
    cfg.network_config.default_request_timeout = 1s;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", cfg, {mock::hang()}));

    SECTION("sync, the provider's timeout") {
        auto r = gw.chat(test::request("p/m", "x"));
        CHECK(r.error().status == 504);
        CHECK(r.error().type == "request_timed_out");
    }
    SECTION("sync, the request's own deadline") {
        bifrost::RequestOptions opts;
        opts.timeout = 50ms;
        auto r = gw.chat(test::request("p/m", "x"), opts);
        CHECK(r.error().status == 504);
    }
    SECTION("async, the provider's timeout (enforced by the worker)") {
        CHECK(gw.async_chat(test::request("p/m", "x"), asio::use_future).get().error().status ==
              504);
    }
    SECTION("async, the request's own deadline (timekeeper)") {
        bifrost::RequestOptions opts;
        opts.timeout = 50ms;
        CHECK(
            gw.async_chat(test::request("p/m", "x"), opts, asio::use_future).get().error().status ==
            504);
    }
    // The hung upstream call was cancelled and its slot freed.
    CHECK(test::eventually([&] { return gw.stats().provider("p")->in_flight == 0; }));
    CHECK(gw.stats().provider("p")->timed_out == 1);
    CHECK(gw.stats().provider("p")->failed == 0);
}

TEST_CASE(
    "reliability: a request whose deadline passes while queued gets 504 without waiting its turn",
    "[reliability][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(0, 1ms, 1),
                                                              {mock::held_by(valve)}));
    auto busy = gw.async_chat(test::request("p/m", "busy"), asio::use_future);
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_flight == 1; }));
    bifrost::RequestOptions opts;
    opts.timeout = 50ms;
    auto queued_async = gw.async_chat(test::request("p/m", "q1"), opts, asio::use_future);
    auto queued_sync = gw.chat(test::request("p/m", "q2"), opts);
    CHECK(queued_sync.error().status == 504);
    CHECK(queued_async.get().error().status == 504);
    CHECK(gw.stats().provider("p")->in_flight == 1);  // the worker never started them
    valve->open();
    CHECK(busy.get().ok());
    CHECK(test::eventually([&] { return gw.stats().provider("p")->queue_depth == 0; }));
    const auto s = gw.stats();
    CHECK(s.provider("p")->timed_out == 2);
    CHECK(s.provider("p")->completed == 1);
}

// ---- cancellation -------------------------------------------------------------------------------

TEST_CASE("reliability: a caller's cancellation answers 499 and stops the upstream call",
          "[reliability][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();  // never opened
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(0, 1ms, 1),
                                                              {mock::held_by(valve)}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("backup", retrying(0)));
    asio::io_context ioc;
    asio::cancellation_signal in_flight_signal, queued_signal;
    std::vector<std::string> got;
    auto req = test::request("p/m", "x");
    req.fallbacks = {"backup/m"};  // never tried after a cancellation
    auto on_result = [&](Result r) {
        got.push_back(r ? "ok" : std::to_string(r.error().status) + " " + r.error().type);
    };
    gw.async_chat(req, asio::bind_cancellation_slot(in_flight_signal.slot(),
                                                    asio::bind_executor(ioc, on_result)));
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_flight == 1; }));
    gw.async_chat(req, asio::bind_cancellation_slot(queued_signal.slot(),
                                                    asio::bind_executor(ioc, on_result)));
    asio::post(ioc, [&] {
        in_flight_signal.emit(asio::cancellation_type::terminal);
        queued_signal.emit(asio::cancellation_type::terminal);
    });
    ioc.run();
    CHECK(got == std::vector<std::string>{"499 request_cancelled", "499 request_cancelled"});
    CHECK(test::eventually([&] { return gw.stats().provider("p")->in_flight == 0; }));
    const auto s = gw.stats();
    CHECK(s.provider("p")->cancelled == 2);
    CHECK(s.provider("backup")->submitted == 0);
    CHECK(s.fallback_attempts == 0);
}

// ---- circuit breaker
// ------------------------------------------------------------------------------

TEST_CASE("reliability: the circuit breaker opens, fails fast, probes and closes",
          "[reliability]") {
    std::atomic<bool> healthy{false};
    std::atomic<int> calls{0};
    MockScript script = [&, echo = mock::echo()](MockCall& call) {
        calls++;
        echo(call);
        if (!healthy) call.response.status = 500;
    };
    auto cfg = retrying(0);
    cfg.circuit_breaker = {3, 100ms};
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", cfg, {script}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("backup", retrying(0)));

    for (int i = 0; i < 3; ++i)
        CHECK(gw.chat(test::request("p/m", "x")).error().status == 500);
    CHECK(gw.stats().provider("p")->circuit == bifrost::CircuitState::open);

    // Open: fails fast without calling the upstream; fallbacks skip it.
    auto fast = gw.chat(test::request("p/m", "x"));
    CHECK(fast.error().status == 503);
    CHECK(fast.error().type == "circuit_open");
    CHECK(calls == 3);
    auto req = test::request("p/m", "with backup");
    req.fallbacks = {"backup/m"};
    auto r = gw.chat(req);
    REQUIRE(r.ok());
    CHECK(r->extra_fields.provider == "backup");
    CHECK(calls == 3);

    // After the cool-down one probe goes through; it fails: open again.
    std::this_thread::sleep_for(150ms);
    CHECK(gw.chat(test::request("p/m", "x")).error().status == 500);
    CHECK(calls == 4);
    CHECK(gw.stats().provider("p")->circuit == bifrost::CircuitState::open);
    CHECK(gw.chat(test::request("p/m", "x")).error().type == "circuit_open");

    // Healthy again: the next probe succeeds and closes the circuit.
    healthy = true;
    std::this_thread::sleep_for(150ms);
    CHECK(gw.chat(test::request("p/m", "x")).ok());
    CHECK(gw.stats().provider("p")->circuit == bifrost::CircuitState::closed);
    CHECK(gw.chat(test::request("p/m", "x")).ok());
    const auto s = gw.stats();
    CHECK(s.provider("p")->circuit_opened == 2);
    CHECK(s.provider("p")->rejected_circuit == 3);
}

// ---- reconfiguration and lifecycle ----------------------------------------------------------

TEST_CASE("reliability: reconfiguring a provider under traffic loses and duplicates nothing",
          "[reliability][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();
    std::mutex m;
    std::map<std::string, int> seen_keys;
    MockScript script = [&, inner = mock::held_by(valve)](MockCall& call) {
        {
            std::lock_guard l(m);
            seen_keys[std::string(call.request.headers.get("authorization"))]++;
        }
        inner(call);
    };
    MockGateway<> gw(test::options(64));
    auto cfg = retrying(0, 1ms, 1);
    cfg.concurrency_and_buffer_size.buffer_size = 4;
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", cfg, {script}));

    constexpr int n = 40;
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < n; ++i)
        futures.push_back(
            gw.async_chat(test::request("p/m", "r" + std::to_string(i)), asio::use_future));
    // 1 in flight, 4 in the ring, 35 parked for space.
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->waiting_for_space == 35; }));

    auto bigger = cfg;
    bigger.concurrency_and_buffer_size.buffer_size = 100;
    bigger.concurrency_and_buffer_size.concurrency = 8;
    bigger.keys = {{bifrost::Secret("sk-new"), {}, 1.0, true, "new", {}}};
    REQUIRE_FALSE(gw.update_provider("p", bigger));
    CHECK(gw.stats().provider("p")->queue_capacity == 100);
    CHECK(gw.stats().provider("p")->concurrency == 8);
    valve->open();
    for (int i = 0; i < n; ++i) {
        Result r = futures[static_cast<std::size_t>(i)].get();
        REQUIRE(r.ok());
        CHECK(r->choices[0].message.content == "Echo: r" + std::to_string(i));
    }
    const auto s = gw.stats();
    CHECK(s.provider("p")->completed == n);
    CHECK(s.provider("p")->submitted == n);
    std::lock_guard l(m);
    int calls = 0;
    for (auto& [k, c] : seen_keys)
        calls += c;
    CHECK(calls == n);                        // each request reached the upstream exactly once
    CHECK(seen_keys["Bearer sk-new"] >= 30);  // requests started after the update use the new key

    CHECK(gw.update_provider("nope", bigger)->status == 400);
    auto threads = bigger;
    threads.concurrency_and_buffer_size.worker_threads = 3;
    auto err = gw.update_provider("p", threads);
    REQUIRE(err);
    CHECK(err->message.find("worker_threads") != std::string::npos);
}

TEST_CASE("reliability: after shutdown nothing leaks", "[reliability][concurrency]") {
    auto opts = test::options(8);
    opts.drain_timeout = 50ms;
    MockGateway<> gw(opts);
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", retrying(3, 500ms, 2),
                                                              {mock::fixed(503, "{}")}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("h", retrying(0), {mock::hang()}));
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < 20; ++i) {
        futures.push_back(gw.async_chat(test::request("p/m", "x"), asio::use_future));
        futures.push_back(gw.async_chat(test::request("h/m", "x"), asio::use_future));
    }
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_retry_backoff >= 1; }));
    gw.shutdown();
    for (auto& f : futures)
        CHECK(f.get().error().status == 503);
    futures.clear();
    // Every pooled object comes back (the last releases may trail the answers by a moment).
    CHECK(test::eventually([&] {
        const auto p = gw.stats().pool;
        return p.returns == p.gets && p.available == p.size;
    }));
    const auto s = gw.stats();
    for (const auto& p : s.providers) {
        CHECK(p.in_flight == 0);
        CHECK(p.in_retry_backoff == 0);
        CHECK(p.queue_depth == 0);
    }
}
