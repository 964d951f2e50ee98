#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using bifrost::ChatRequest;
using bifrost::Result;
using bifrost::transport::MockCall;
using bifrost::transport::MockScript;
using test::MockGateway;
namespace mock = bifrost::transport::mock;
namespace asio = boost::asio;

namespace {

/// Records every upstream request the mock sees (thread-safe).
struct Recorder {
    std::mutex m;
    std::vector<bifrost::HttpRequest> seen;
    MockScript script(MockScript inner = mock::echo()) {
        return [this, inner](MockCall& call) {
            {
                std::lock_guard l(m);
                seen.push_back(call.request);
            }
            inner(call);
        };
    }
};

}  // namespace

TEST_CASE("gateway: a chat request is answered by its provider", "[gateway]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));

    auto r = gw.chat(test::request("openai/gpt-4o-mini", "hello there"));
    REQUIRE(r.ok());
    REQUIRE(r->choices.size() == 1);
    CHECK(r->choices[0].message.content == "Echo: hello there");
    CHECK(r->choices[0].message.role == bifrost::Role::assistant);
    CHECK(r->choices[0].finish_reason == "stop");
    CHECK(r->model == "gpt-4o-mini");  // the provider-local id went upstream
    CHECK(r->extra_fields.provider == "openai");
    REQUIRE(r->usage.has_value());
    CHECK(r->usage->total_tokens == r->usage->prompt_tokens + r->usage->completion_tokens);

    const auto s = gw.stats();
    const auto* p = s.provider("openai");
    REQUIRE(p != nullptr);
    CHECK(p->submitted == 1);
    CHECK(p->completed == 1);
    CHECK(p->failed == 0);
    CHECK(p->queue_wait.count == 1);
    CHECK(p->upstream.count == 1);
}

TEST_CASE("gateway: the upstream request carries key, headers and the local model id",
          "[gateway]") {
    Recorder rec;
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.network_config.base_url = "http://upstream.test:9000/";
    cfg.network_config.extra_headers = {{"X-Team", "search"}};
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", cfg, {rec.script()}));

    auto req = test::request("openai/gpt-4o", "hi");
    req.temperature = 0.25;
    req.fallbacks = {"other/model"};
    REQUIRE(gw.chat(req).ok());

    std::lock_guard l(rec.m);
    REQUIRE(rec.seen.size() == 1);
    const auto& h = rec.seen[0];
    CHECK(h.method == bifrost::HttpMethod::post);
    CHECK(h.url == "http://upstream.test:9000/v1/chat/completions");
    CHECK(h.headers.get("Authorization") == "Bearer sk-test-key");
    CHECK(h.headers.get("x-team") == "search");
    CHECK(h.headers.get("content-type") == "application/json");
    auto body = boost::json::parse(h.body).as_object();
    CHECK(body.at("model").as_string() == "gpt-4o");
    CHECK(body.at("temperature").as_double() == Approx(0.25));
    CHECK_FALSE(body.contains("fallbacks"));  // routing fields stay in the gateway
    CHECK_FALSE(body.contains("provider"));
}

TEST_CASE("gateway: routing errors are clear 400s", "[gateway]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));

    SECTION("no provider prefix") {
        auto r = gw.chat(test::request("gpt-4o", "x"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 400);
        CHECK(r.error().param == "model");
        CHECK(r.error().message.find("'gpt-4o' names no provider") != std::string::npos);
    }
    SECTION("unknown provider lists the configured ones") {
        auto r = gw.chat(test::request("anthropic/claude", "x"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 400);
        CHECK(r.error().type == "unknown_provider");
        CHECK(r.error().message == "unknown provider 'anthropic' (configured: openai)");
    }
    SECTION("empty model id") {
        auto r = gw.chat(test::request("openai/", "x"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 400);
    }
    SECTION("explicit provider takes the model verbatim") {
        auto req = test::request("meta-llama/llama-3-70b", "x");
        req.provider = "openai";
        auto r = gw.chat(req);
        REQUIRE(r.ok());
        CHECK(r->model == "meta-llama/llama-3-70b");
    }
    CHECK(gw.stats().provider("openai")->failed == 0);
}

TEST_CASE("gateway: add_provider validates its input", "[gateway]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));
    auto dup = gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config());
    REQUIRE(dup);
    CHECK(dup->message == "provider 'openai' is already configured");
    CHECK(gw.add_provider<bifrost::providers::OpenAI>("a/b", test::provider_config()));
    CHECK(gw.add_provider<bifrost::providers::OpenAI>("", test::provider_config()));

    auto zero = gw.add_provider<bifrost::providers::OpenAI>("z", test::provider_config(0, 10));
    REQUIRE(zero);
    CHECK(zero->message.find("concurrency_and_buffer_size.concurrency") != std::string::npos);
    auto nobuf = gw.add_provider<bifrost::providers::OpenAI>("z", test::provider_config(1, 0));
    REQUIRE(nobuf);
    CHECK(nobuf->message.find("buffer_size") != std::string::npos);
    auto cfg = test::provider_config();
    cfg.keys[0].weight = -1;
    auto neg = gw.add_provider<bifrost::providers::OpenAI>("z", cfg);
    REQUIRE(neg);
    CHECK(neg->message.find("keys[0].weight") != std::string::npos);
    CHECK_FALSE(gw.has_provider("z"));
}

TEST_CASE("gateway: upstream errors keep the provider's status and message", "[gateway]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "openai", test::provider_config(),
        {mock::fixed(
            429,
            R"({"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded","param":null}})")}));
    auto r = gw.chat(test::request("openai/gpt-4o", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 429);
    CHECK(r.error().message == "Rate limit reached for gpt-4o");
    CHECK(r.error().type == "requests");
    CHECK(r.error().code == "rate_limit_exceeded");
    CHECK(r.error().provider == "openai");
    CHECK(gw.stats().provider("openai")->failed == 1);
}

TEST_CASE("gateway: faults become errors for that request only; the worker lives on", "[gateway]") {
    std::atomic<int> mode{0};
    MockScript script = [&, echo = mock::echo()](MockCall& call) {
        switch (mode.load()) {
            case 1:
                call.fault = MockCall::Fault::network_error;
                return;
            case 2:
                call.fault = MockCall::Fault::exception;
                return;
            case 3:
                throw std::runtime_error("script blew up");
            case 4:
                call.response.body = "this is not json";
                return;
            default:
                echo(call);
        }
    };
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config(1, 8),
                                                              {script}));

    mode = 1;
    auto net = gw.chat(test::request("openai/m", "x"));
    CHECK(net.error().status == 502);
    CHECK(net.error().type == "network_error");
    CHECK(net.error().provider == "openai");

    mode = 2;
    auto exc = gw.chat(test::request("openai/m", "x"));
    CHECK(exc.error().status == 500);
    CHECK(exc.error().message.find("scripted exception") != std::string::npos);

    mode = 3;
    auto thrown = gw.chat(test::request("openai/m", "x"));
    CHECK(thrown.error().status == 500);
    CHECK(thrown.error().message.find("script blew up") != std::string::npos);

    mode = 4;
    auto bad = gw.chat(test::request("openai/m", "x"));
    CHECK(bad.error().status == 502);
    CHECK(bad.error().type == "invalid_upstream_response");

    mode = 0;
    auto ok = gw.chat(test::request("openai/m", "still alive"));
    REQUIRE(ok.ok());
    CHECK(ok->choices[0].message.content == "Echo: still alive");
    const auto snapshot = gw.stats();
    const auto* p = snapshot.provider("openai");
    CHECK(p->failed == 4);
    CHECK(p->completed == 1);
    CHECK(p->in_flight == 0);
}

TEST_CASE("gateway: no key serving the model is a clear error", "[gateway]") {
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.keys[0].models = {"gpt-4o"};
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", cfg));
    auto r = gw.chat(test::request("openai/o1", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 400);
    CHECK(r.error().type == "no_key_available");
    CHECK(r.error().message == "no enabled key of provider 'openai' serves model 'o1'");
    CHECK(r.error().message.find("sk-") == std::string::npos);
    CHECK(gw.chat(test::request("openai/gpt-4o", "x")).ok());
}

namespace {
/// A provider that needs no key and tags its requests, to check keyless routing.
struct Keyless : bifrost::providers::OpenAI {
    static constexpr bool requires_key = false;
};
}  // namespace

TEST_CASE("gateway: keyless providers need no keys", "[gateway]") {
    Recorder rec;
    MockGateway<> gw(test::options());
    bifrost::ProviderConfig cfg;  // no keys at all
    REQUIRE_FALSE(gw.add_provider<Keyless>("ollama", cfg, {rec.script()}));
    REQUIRE(gw.chat(test::request("ollama/llama3", "x")).ok());
    std::lock_guard l(rec.m);
    CHECK_FALSE(rec.seen.at(0).headers.contains("authorization"));
}

TEST_CASE("gateway: async_chat works with callbacks, futures and coroutines",
          "[gateway][concurrency]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config(),
                                                              {mock::echo(1ms)}));

    SECTION("callback") {
        std::promise<std::string> got;
        gw.async_chat(test::request("openai/m", "cb"), [&](Result r) {
            got.set_value(r ? r->choices[0].message.content : r.error().message);
        });
        CHECK(got.get_future().get() == "Echo: cb");
    }
    SECTION("use_future") {
        std::future<Result> f = gw.async_chat(test::request("openai/m", "fut"), asio::use_future);
        Result r = f.get();
        REQUIRE(r.ok());
        CHECK(r->choices[0].message.content == "Echo: fut");
    }
    SECTION("use_awaitable on the caller's io_context") {
        asio::io_context ioc;
        std::string content;
        std::thread::id ran_on;
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                Result r =
                    co_await gw.async_chat(test::request("openai/m", "co"), asio::use_awaitable);
                content = r ? r->choices[0].message.content : r.error().message;
                ran_on = std::this_thread::get_id();
            },
            asio::detached);
        // Returns only once the gateway delivered (it holds work on ioc meanwhile, and until its
        // hand-over to ioc has returned): ioc may then be destroyed at once.
        ioc.run();
        CHECK(content == "Echo: co");
        CHECK(ran_on == std::this_thread::get_id());
    }
    SECTION("immediate errors are delivered too") {
        std::future<Result> f = gw.async_chat(test::request("nope/m", "x"), asio::use_future);
        CHECK(f.get().error().status == 400);
    }
}

TEST_CASE("gateway: BlockFor times out while workers are stuck and succeeds once they free up",
          "[gateway][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();
    bifrost::queue::BlockFor policy{50ms};
    MockGateway<bifrost::queue::BlockFor> gw(test::options(), policy);
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(1, 1),
                                                              {mock::held_by(valve)}));

    // One request occupies the worker, one fills the ring.
    auto f1 = gw.async_chat(test::request("p/m", "1"), asio::use_future);
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_flight == 1; }));
    auto f2 = gw.async_chat(test::request("p/m", "2"), asio::use_future);
    REQUIRE(gw.stats().provider("p")->queue_depth == 1);

    // Synchronous caller: waits 50 ms for space, then fails.
    auto blocked = gw.chat(test::request("p/m", "3"));
    REQUIRE_FALSE(blocked.ok());
    CHECK(blocked.error().status == 503);
    CHECK(blocked.error().message == "queue full, timeout waiting");

    // Asynchronous caller: parked, then fails at its deadline without blocking this thread.
    auto f4 = gw.async_chat(test::request("p/m", "4"), asio::use_future);
    Result r4 = f4.get();
    CHECK(r4.error().status == 503);
    CHECK(r4.error().type == "queue_timeout");

    // Space frees up while a caller waits: it gets in.
    gw.queue_policy().timeout = 10s;
    auto f5 = std::async(std::launch::async, [&] { return gw.chat(test::request("p/m", "5")); });
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->waiting_for_space == 1; }));
    valve->open();
    CHECK(f1.get().ok());
    CHECK(f2.get().ok());
    Result r5 = f5.get();
    REQUIRE(r5.ok());
    CHECK(r5->choices[0].message.content == "Echo: 5");

    const auto snapshot = gw.stats();
    const auto* p = snapshot.provider("p");
    CHECK(p->queue_timeouts == 2);
    CHECK(p->waited_for_space == 1);
    CHECK(p->completed == 3);
    CHECK(p->submitted == 5);
}

TEST_CASE("gateway: Drop rejects at once and accounts for every request",
          "[gateway][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();
    MockGateway<bifrost::queue::Drop> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(1, 4),
                                                              {mock::held_by(valve)}));

    std::vector<std::future<Result>> futures;
    futures.push_back(gw.async_chat(test::request("p/m", "0"), asio::use_future));
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_flight == 1; }));
    for (int i = 1; i < 20; ++i)
        futures.push_back(gw.async_chat(test::request("p/m", std::to_string(i)), asio::use_future));
    // 1 in flight + 4 queued are accepted; the other 15 are dropped at once.
    CHECK(gw.stats().provider("p")->dropped == 15);
    valve->open();
    int ok = 0, dropped = 0;
    for (auto& f : futures) {
        Result r = f.get();
        if (r.ok()) {
            ++ok;
        } else {
            CHECK(r.error().status == 503);
            CHECK(r.error().type == "request_dropped");
            CHECK(r.error().message == "request dropped: queue is full");
            ++dropped;
        }
    }
    const auto snapshot = gw.stats();
    const auto* p = snapshot.provider("p");
    CHECK(ok + dropped == 20);
    CHECK(static_cast<int>(p->dropped) == dropped);
    CHECK(static_cast<int>(p->completed) == ok);
    CHECK(p->submitted == 20);
    CHECK(ok == 5);
}

TEST_CASE("gateway: requests submitted on a provider's own worker take its free slots there",
          "[gateway][concurrency]") {
    // A server connection runs on a provider's worker thread and submits from there. While
    // slots are free and nothing waits in the ring, such a request skips the ring: it runs on
    // the submitting worker and does not count against the ring's capacity. Once the slots
    // are taken, requests queue in the ring as any other (and a full ring drops them).
    auto valve = std::make_shared<bifrost::transport::Valve>();
    std::mutex m;
    std::vector<std::pair<std::string, std::thread::id>> ran;  // content, upstream call's thread
    MockScript held = mock::held_by(valve);
    MockScript script = [&, held](MockCall& call) {
        {
            std::lock_guard l(m);
            ran.emplace_back(call.request.body, std::this_thread::get_id());
        }
        held(call);
    };
    MockGateway<bifrost::queue::Drop> gw(test::options());
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(3, 1, 2), {script}));
    const auto executors = gw.worker_executors();
    REQUIRE(executors.size() == 2);

    std::atomic<int> answered{0}, ok{0}, dropped{0};
    std::thread::id submitter;
    std::size_t begun_in_handler = 0;  // upstream calls begun before the submitting handler ended
    std::promise<void> submitted;
    asio::post(executors[1], [&] {
        submitter = std::this_thread::get_id();
        for (int i = 0; i < 5; ++i) {
            gw.async_chat(test::request("p/m", "r" + std::to_string(i)), [&](Result r) {
                if (r.ok()) {
                    ++ok;
                } else if (r.error().type == "request_dropped") {
                    ++dropped;
                }
                ++answered;
            });
        }
        {
            std::lock_guard l(m);
            begun_in_handler = ran.size();
        }
        submitted.set_value();
    });
    submitted.get_future().wait();
    // Their upstream calls began inside `async_chat`, not when the worker came round.
    CHECK(begun_in_handler == 3);
    // r0..r2 took the three slots on worker 1; r3 waits in the ring (capacity 1); r4 found it
    // full and was dropped.
    REQUIRE(test::eventually([&] { return dropped.load() == 1; }));
    REQUIRE(test::eventually([&] {
        std::lock_guard l(m);
        return ran.size() == 3;
    }));
    {
        std::lock_guard l(m);
        for (const auto& [body, thread] : ran) {
            INFO(body);
            CHECK(thread == submitter);
            CHECK(body.find("\"r3\"") == std::string::npos);
        }
    }
    const auto before = gw.stats();
    CHECK(before.provider("p")->in_flight == 3);
    CHECK(before.provider("p")->queue_depth == 1);
    valve->open();
    REQUIRE(test::eventually([&] { return answered.load() == 5; }));
    CHECK(ok.load() == 4);
    const auto after = gw.stats();
    CHECK(after.provider("p")->completed == 4);
    CHECK(after.provider("p")->queued == 4);
    CHECK(after.provider("p")->dropped == 1);
    CHECK(after.provider("p")->in_flight == 0);
}

TEST_CASE("gateway: async_chat can take the request by move; the argument stays reusable",
          "[gateway]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(2, 8)));
    // One object read into again and again, as a server connection does: each request is
    // answered as sent, whatever storage the previous call left in the object.
    bifrost::ChatRequest req;
    for (int i = 0; i < 20; ++i) {
        req = test::request("p/m-" + std::to_string(i), "message " + std::to_string(i));
        if (i % 2 == 1) req.temperature = 0.5;
        Result r = gw.async_chat(std::move(req), {}, asio::use_future).get();
        REQUIRE(r.ok());
        CHECK(r->choices[0].message.content == "Echo: message " + std::to_string(i));
        CHECK(r->model == "m-" + std::to_string(i));
    }
    CHECK(gw.stats().provider("p")->completed == 20);
}

TEST_CASE("gateway: a hung provider does not delay another provider", "[gateway][concurrency]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("stuck", test::provider_config(2, 8),
                                                              {mock::hang()}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("fast", test::provider_config(2, 8)));

    std::vector<std::future<Result>> hung;
    for (int i = 0; i < 6; ++i)
        hung.push_back(gw.async_chat(test::request("stuck/m", "h"), asio::use_future));
    REQUIRE(test::eventually([&] { return gw.stats().provider("stuck")->in_flight == 2; }));

    for (int i = 0; i < 200; ++i) {
        auto r = gw.chat(test::request("fast/m", std::to_string(i)));
        REQUIRE(r.ok());
        REQUIRE(r->choices[0].message.content == "Echo: " + std::to_string(i));
    }
    // The stuck provider is still stuck: none of its requests finished meanwhile.
    for (auto& f : hung)
        CHECK(f.wait_for(0s) == std::future_status::timeout);
    const auto s = gw.stats();
    CHECK(s.provider("stuck")->in_flight == 2);
    CHECK(s.provider("stuck")->queue_depth == 4);
    CHECK(s.provider("fast")->completed == 200);

    gw.shutdown();  // drains for 2 s, then cancels the hung calls
    for (auto& f : hung) {
        Result r = f.get();
        CHECK(r.error().status == 503);
        CHECK(r.error().message == "provider is shutting down");
    }
    CHECK(gw.stats().provider("stuck")->rejected_shutdown == 6);  // abandoned at the drain's end
    CHECK(gw.stats().provider("stuck")->failed == 0);
}

TEST_CASE("gateway: shutdown drains in-flight work and refuses new requests",
          "[gateway][concurrency]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(4, 64),
                                                              {mock::echo(20ms)}));
    std::vector<std::future<Result>> pending;
    for (int i = 0; i < 12; ++i)
        pending.push_back(gw.async_chat(test::request("p/m", std::to_string(i)), asio::use_future));
    gw.shutdown();
    for (int i = 0; i < 12; ++i) {
        Result r = pending[static_cast<std::size_t>(i)].get();
        REQUIRE(r.ok());  // drained, not cancelled: 12 x 20 ms / 4 fits the 2 s drain
        CHECK(r->choices[0].message.content == "Echo: " + std::to_string(i));
    }
    auto late = gw.chat(test::request("p/m", "late"));
    CHECK(late.error().status == 503);
    CHECK(late.error().message == "provider is shutting down");
    auto late_async = gw.async_chat(test::request("p/m", "late"), asio::use_future).get();
    CHECK(late_async.error().status == 503);
    const auto snapshot = gw.stats();
    const auto* p = snapshot.provider("p");
    CHECK(p->completed == 12);
    CHECK(p->rejected_shutdown == 2);
    CHECK(p->submitted == 14);
}

TEST_CASE("gateway: shutdown releases blocked producers and cancels what outlives the drain",
          "[gateway][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();  // never opened
    auto opts = test::options();
    opts.drain_timeout = 100ms;
    MockGateway<> gw(opts);
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(1, 1),
                                                              {mock::held_by(valve)}));
    auto in_flight = gw.async_chat(test::request("p/m", "1"), asio::use_future);
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->in_flight == 1; }));
    auto queued = gw.async_chat(test::request("p/m", "2"), asio::use_future);
    auto parked = gw.async_chat(test::request("p/m", "parked"), asio::use_future);
    auto blocked =
        std::async(std::launch::async, [&] { return gw.chat(test::request("p/m", "b")); });
    REQUIRE(test::eventually([&] { return gw.stats().provider("p")->waiting_for_space == 2; }));

    gw.shutdown();
    std::vector<Result> results;
    results.push_back(blocked.get());
    results.push_back(parked.get());
    results.push_back(in_flight.get());
    results.push_back(queued.get());
    for (const Result& r : results) {
        CHECK(r.error().status == 503);
        CHECK(r.error().message == "provider is shutting down");
    }
    const auto snapshot = gw.stats();
    const auto* p = snapshot.provider("p");
    CHECK(p->rejected_shutdown == 4);  // two waiting for space, one queued, one in flight
    CHECK(p->failed == 0);
    CHECK(p->in_flight == 0);
    CHECK(p->queue_depth == 0);
    CHECK(valve->held() == 0);
}

TEST_CASE("gateway: pooled objects are reused and clean", "[gateway]") {
    Recorder rec;
    MockGateway<> gw(test::options(4));
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config(), {rec.script()}));
    auto rich = test::request("p/m", "first");
    rich.extra["logit_bias"] = boost::json::object{{"50256", -100}};
    rich.stop = {"END"};
    rich.max_tokens = 5;
    REQUIRE(gw.chat(rich).ok());
    for (int i = 0; i < 50; ++i) {
        auto r = gw.chat(test::request("p/m", "plain " + std::to_string(i)));
        REQUIRE(r.ok());
        CHECK(r.request().extra.empty());
        CHECK(r.request().stop.empty());
        CHECK_FALSE(r.request().max_tokens.has_value());
        CHECK(r->choices.size() == 1);
    }
    {
        std::lock_guard l(rec.m);
        auto last = boost::json::parse(rec.seen.back().body).as_object();
        CHECK_FALSE(last.contains("logit_bias"));
        CHECK_FALSE(last.contains("stop"));
    }
    const auto pool = gw.stats().pool;
    CHECK(pool.gets == 51);
    CHECK(pool.misses == 0);
    CHECK(pool.hit_ratio() == Approx(1.0));
}
