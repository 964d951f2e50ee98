// Streaming chat completions end to end: Gateway::chat_stream / async_chat_stream on
// transport::Mock (scripted streams) and transport::Beast (the in-tree mock upstream).

#include "bifrost_catch.hpp"
#include "mock_upstream.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>
#include <bifrost/transport/beast.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using bifrost::Result;
using bifrost::StreamChunk;
using bifrost::transport::MockCall;
using bifrost::transport::MockScript;
using test::MockGateway;
namespace mock = bifrost::transport::mock;
namespace asio = boost::asio;

namespace {

/// Collects a stream's chunks (thread-safe: chunks arrive on a worker thread).
struct Collector {
    std::mutex m;
    std::vector<StreamChunk> chunks;
    std::string text;
    std::size_t stop_after = 0;  ///< return false on this chunk (0: never)

    bool operator()(const StreamChunk& c) {
        std::lock_guard l(m);
        chunks.push_back(c);
        for (const auto& d : c.choices)
            if (d.content) text += *d.content;
        return stop_after == 0 || chunks.size() < stop_after;
    }
    std::size_t size() {
        std::lock_guard l(m);
        return chunks.size();
    }
};

/// A Collector usable by value in `async_chat_stream`.
struct CollectorRef {
    Collector* c;
    bool operator()(const StreamChunk& chunk) const { return (*c)(chunk); }
};

bifrost::ProviderConfig config(int max_retries = 0, std::size_t concurrency = 4) {
    auto c = test::provider_config(concurrency, 64);
    c.network_config.max_retries = max_retries;
    c.network_config.retry_backoff_initial = 1ms;
    c.network_config.retry_backoff_max = 4ms;
    c.circuit_breaker.failure_threshold = 0;
    return c;
}

/// Counts the script's calls and the streams the engine closed early.
struct Upstream {
    std::atomic<int> calls{0};
    std::atomic<int> cancelled{0};

    /// `inner`, counting calls and early closes.
    MockScript script(MockScript inner = mock::stream_echo()) {
        return [this, inner](MockCall& call) {
            calls.fetch_add(1);
            inner(call);
            call.on_cancelled = [this] { cancelled.fetch_add(1); };
        };
    }
};

/// Streams `pieces` SSE chunks of "w<i> " then applies `fault` (no [DONE] unless none).
MockScript pieces_then(std::size_t pieces, MockCall::Fault fault,
                       std::chrono::nanoseconds interval = 0ms) {
    return [=](MockCall& call) {
        for (std::size_t i = 0; i < pieces; ++i) {
            std::string p;
            mock::write_sse_chunk(p, "id-1", "m", true, "w" + std::to_string(i) + " ", {});
            call.stream.push_back(p);
        }
        if (fault == MockCall::Fault::none) call.stream.emplace_back("data: [DONE]\n\n");
        call.stream_interval = interval;
        call.fault = fault;
    };
}

MockScript status(int code) {
    return [code](MockCall& call) {
        call.response.status = code;
        call.response.body = R"({"error":{"message":"upstream says )" + std::to_string(code) +
                             R"(","type":"server_error"}})";
    };
}

}  // namespace

// ---- the happy path
// -------------------------------------------------------------------------------

TEST_CASE("streaming: chunks arrive in order, usage last, and the result summarises",
          "[stream][gateway]") {
    Upstream up;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", config(),
                                                              {up.script(mock::stream_echo(1ms))}));
    Collector col;
    auto r = gw.chat_stream(test::request("openai/gpt-4o", "one two three"), std::ref(col));
    INFO(r.error().message);
    REQUIRE(r.ok());
    CHECK(col.text == "Echo: one two three");
    // role chunk, 4 words, finish chunk, usage chunk
    REQUIRE(col.chunks.size() == 7);
    CHECK(col.chunks.front().choices.at(0).role == bifrost::Role::assistant);
    CHECK(col.chunks[5].choices.at(0).finish_reason == "stop");
    CHECK(col.chunks.back().choices.empty());
    REQUIRE(col.chunks.back().usage.has_value());
    CHECK(col.chunks.back().usage->completion_tokens == 4);
    for (const auto& c : col.chunks) {
        CHECK(c.extra_fields.provider == "openai");
        CHECK(c.model == "gpt-4o");
    }
    // The outcome summarises the stream: usage and finish reason, no text.
    REQUIRE(r->usage.has_value());
    CHECK(r->usage->completion_tokens == 4);
    REQUIRE(r->choices.size() == 1);
    CHECK(r->choices[0].finish_reason == "stop");
    CHECK(r->extra_fields.provider == "openai");
    CHECK(r->id == col.chunks[0].id);
    CHECK(up.calls == 1);
    CHECK(up.cancelled == 0);
    const auto stats = gw.stats();
    const auto* p = stats.provider("openai");
    CHECK(p->completed == 1);
    CHECK(p->in_flight == 0);
}

TEST_CASE("streaming: the async form delivers chunks, then completes once", "[stream][gateway]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", config(), {mock::stream_echo()}));
    Collector col;
    auto fut =
        gw.async_chat_stream(test::request("p/m", "a b"), CollectorRef{&col}, asio::use_future);
    Result r = fut.get();
    REQUIRE(r.ok());
    CHECK(col.text == "Echo: a b");
    CHECK(col.size() == 6);
    // The plain path still works on the same gateway.
    auto plain = gw.chat(test::request("p/m", "x"));
    REQUIRE(plain.ok());
}

// ---- failures before and after the first chunk
// ---------------------------------------------------

TEST_CASE("streaming: a failure before the first chunk is retried", "[stream][reliability]") {
    std::atomic<int> calls{0};
    MockGateway<> gw(test::options());
    auto script = [&, echo = mock::stream_echo()](MockCall& call) {
        const int n = calls.fetch_add(1);
        if (n == 0) return status(503)(call);
        if (n == 1) {
            call.fault = MockCall::Fault::network_error;  // drops before any byte
            return;
        }
        echo(call);
    };
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config(3), {script}));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "hi"), std::ref(col));
    INFO(r.error().message);
    REQUIRE(r.ok());
    CHECK(calls == 3);
    CHECK(col.text == "Echo: hi");  // each chunk exactly once
    CHECK(gw.stats().provider("p")->retries == 2);
}

TEST_CASE("streaming: an error event before the first chunk is retried; after it, it is not",
          "[stream][reliability]") {
    std::atomic<int> calls{0};
    MockGateway<> gw(test::options());
    const std::string error_event =
        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"status\":503}}"
        "\n\n";
    bool chunk_first = false;
    auto script = [&](MockCall& call) {
        calls.fetch_add(1);
        if (chunk_first) pieces_then(1, MockCall::Fault::none)(call);
        call.stream.insert(call.stream.begin() + (chunk_first ? 1 : 0), error_event);
    };
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config(2), {script}));
    Collector col;
    SECTION("before") {
        auto r = gw.chat_stream(test::request("p/m", "hi"), std::ref(col));
        CHECK(r.error().message == "overloaded");
        CHECK(r.error().status == 503);
        CHECK(calls == 3);  // one try and two retries
        CHECK(col.size() == 0);
    }
    SECTION("after") {
        chunk_first = true;
        auto r = gw.chat_stream(test::request("p/m", "hi"), std::ref(col));
        CHECK(r.error().message == "overloaded");
        CHECK(calls == 1);
        CHECK(col.size() == 1);
    }
}

TEST_CASE(
    "streaming: a primary failing before its first chunk falls back; the fallback feeds "
    "the same callback",
    "[stream][reliability]") {
    Upstream primary, backup;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", config(), {primary.script(status(500))}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "b", config(), {backup.script(mock::stream_echo())}));
    auto req = test::request("p/m", "fall");
    req.fallbacks = {"b/m2"};
    Collector col;
    SECTION("sync") {
        auto r = gw.chat_stream(req, std::ref(col));
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "b");
    }
    SECTION("async") {
        auto r = gw.async_chat_stream(req, CollectorRef{&col}, asio::use_future).get();
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "b");
    }
    CHECK(col.text == "Echo: fall");
    for (const auto& c : col.chunks)
        CHECK(c.extra_fields.provider == "b");
    CHECK(primary.calls == 1);
    CHECK(backup.calls == 1);
    CHECK(gw.stats().fallback_successes == 1);
}

TEST_CASE(
    "streaming: a failure after the first chunk ends the stream with that error, no "
    "retry, no fallback",
    "[stream][reliability]") {
    Upstream primary, backup;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", config(3), {primary.script(pieces_then(2, MockCall::Fault::network_error))}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "b", config(), {backup.script(mock::stream_echo())}));
    auto req = test::request("p/m", "x");
    req.fallbacks = {"b/m"};
    Collector col;
    Result r;
    SECTION("sync") {
        r = gw.chat_stream(req, std::ref(col));
    }
    SECTION("async") {
        r = gw.async_chat_stream(req, CollectorRef{&col}, asio::use_future).get();
    }
    CHECK(r.error().status == 502);
    CHECK(r.error().type == "network_error");
    CHECK(r.error().provider == "p");
    CHECK(col.text == "w0 w1 ");
    CHECK(primary.calls == 1);
    CHECK(backup.calls == 0);
}

TEST_CASE("streaming: a stream cut before [DONE] is an error", "[stream]") {
    MockGateway<> gw(test::options());
    // The body ends cleanly at the transport level, but without the end marker.
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", config(), {[](MockCall& call) {
                                                        pieces_then(1, MockCall::Fault::none)(call);
                                                        call.stream.pop_back();  // no [DONE]
                                                    }}));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(r.error().status == 502);
    CHECK(r.error().message.find("before [DONE]") != std::string::npos);
    CHECK(col.size() == 1);
}

// ---- stopping: caller, deadline, shutdown
// ---------------------------------------------------------

TEST_CASE("streaming: a caller returning false stops the stream and cancels the upstream",
          "[stream][concurrency]") {
    Upstream up;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", config(), {up.script(pieces_then(50, MockCall::Fault::none, 1ms))}));
    Collector col;
    col.stop_after = 3;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(r.error().status == 499);
    CHECK(r.error().type == "request_cancelled");
    CHECK(col.size() == 3);  // nothing after the callback said stop
    CHECK(up.cancelled == 1);
    CHECK(test::eventually([&] { return gw.stats().provider("p")->in_flight == 0; }));
}

TEST_CASE("streaming: the caller's cancellation slot ends an async stream with 499",
          "[stream][concurrency]") {
    Upstream up;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", config(), {up.script(pieces_then(2, MockCall::Fault::hang))}));
    asio::io_context ioc;
    asio::cancellation_signal signal;
    Collector col;
    std::atomic<int> completions{0};
    int status = 0;
    gw.async_chat_stream(
        test::request("p/m", "x"), CollectorRef{&col},
        asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(ioc, [&](Result r) {
                                         ++completions;
                                         status = r.error().status;
                                     })));
    REQUIRE(test::eventually([&] { return col.size() == 2; }));
    asio::post(ioc, [&] { signal.emit(asio::cancellation_type::terminal); });
    ioc.run();
    CHECK(completions == 1);
    CHECK(status == 499);
    CHECK(test::eventually([&] { return up.cancelled == 1; }));
    CHECK(col.size() == 2);
}

TEST_CASE("streaming: a deadline passing mid-stream answers 504 and cancels the upstream",
          "[stream][concurrency]") {
    Upstream up;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", config(), {up.script(pieces_then(3, MockCall::Fault::hang, 5ms))}));
    bifrost::RequestOptions opts;
    opts.timeout = 300ms;
    Collector col;
    SECTION("sync") {
        auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col), opts);
        CHECK(r.error().status == 504);
    }
    SECTION("async") {
        auto r = gw.async_chat_stream(test::request("p/m", "x"), CollectorRef{&col}, opts,
                                      asio::use_future)
                     .get();
        CHECK(r.error().status == 504);
    }
    CHECK(col.size() == 3);
    CHECK(test::eventually([&] { return up.cancelled == 1; }));
    CHECK(test::eventually([&] { return gw.stats().provider("p")->in_flight == 0; }));
}

TEST_CASE("streaming: a stream may outlast the provider's request timeout", "[stream]") {
    MockGateway<> gw(test::options());
    auto cfg = config();
    cfg.network_config.default_request_timeout = 1s;  // a plain request's bound, not a stream's
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", cfg, {pieces_then(30, MockCall::Fault::none, 50ms)}));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    INFO(r.error().message);
    CHECK(r.ok());
    CHECK(col.size() == 30);
}

TEST_CASE("streaming: a shutdown mid-stream answers 503", "[stream][concurrency]") {
    Upstream up;
    auto opts = test::options();
    opts.drain_timeout = 50ms;
    MockGateway<> gw(opts);
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", config(), {up.script(pieces_then(2, MockCall::Fault::hang))}));
    Collector col;
    auto fut = std::async(std::launch::async,
                          [&] { return gw.chat_stream(test::request("p/m", "x"), std::ref(col)); });
    REQUIRE(test::eventually([&] { return col.size() == 2; }));
    gw.shutdown();
    Result r = fut.get();
    CHECK(r.error().status == 503);
    CHECK(col.size() == 2);
    CHECK(up.cancelled == 1);
}

// ---- what cannot stream
// ---------------------------------------------------------------------------

namespace {

/// A provider without streaming support.
struct PlainProvider {
    static constexpr bool requires_key = false;
    void build_chat(const bifrost::BuildContext& ctx, bifrost::HttpRequest& out) const {
        bifrost::providers::OpenAI{}.build_chat(ctx, out);
    }
    void parse_chat(const bifrost::HttpResponse& in, bifrost::Outcome& out) const {
        bifrost::providers::OpenAI{}.parse_chat(in, out);
    }
};
static_assert(bifrost::Provider<PlainProvider> && !bifrost::StreamingProvider<PlainProvider>);

/// A transport without streaming support (Mock's plain half).
class PlainTransport {
  public:
    using Options = bifrost::transport::Mock::Options;
    PlainTransport(asio::io_context::executor_type ex, const bifrost::ProviderConfig& cfg,
                   const Options& o)
        : mock_(ex, cfg, o) {}
    template <class Handler>
    void async_send(const bifrost::HttpRequest& req, bifrost::HttpResponse& res, Handler&& h) {
        mock_.async_send(req, res, std::forward<Handler>(h));
    }

  private:
    bifrost::transport::Mock mock_;
};
static_assert(bifrost::Transport<PlainTransport> && !bifrost::StreamingTransport<PlainTransport>);

}  // namespace

TEST_CASE("streaming: a provider or transport that cannot stream answers with a clear error",
          "[stream]") {
    Collector col;
    SECTION("provider: 400") {
        MockGateway<> gw(test::options());
        REQUIRE_FALSE(gw.add_provider<PlainProvider>("plain", config()));
        auto r = gw.chat_stream(test::request("plain/m", "x"), std::ref(col));
        CHECK(r.error().status == 400);
        CHECK(r.error().message.find("provider 'plain' cannot stream") != std::string::npos);
        CHECK(gw.chat(test::request("plain/m", "x")).ok());  // plain requests still work
    }
    SECTION("transport: 501") {
        bifrost::Gateway<PlainTransport, bifrost::queue::Block, bifrost::pool::Preallocated> gw(
            test::options());
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config()));
        auto r =
            gw.async_chat_stream(test::request("p/m", "x"), CollectorRef{&col}, asio::use_future)
                .get();
        CHECK(r.error().status == 501);
        CHECK(r.error().message.find("transport cannot stream") != std::string::npos);
        CHECK(gw.chat(test::request("p/m", "x")).ok());
    }
    CHECK(col.size() == 0);
}

// ---- plugins
// -------------------------------------------------------------------------------------

namespace {

struct StreamObserver {
    static constexpr std::string_view name = "observer";
    std::atomic<int> pre{0}, post{0};
    std::mutex m;
    std::vector<std::string> outcomes;
    void pre_hook(bifrost::Context&, bifrost::ChatRequest& r) {
        ++pre;
        r.messages.back().content += " (seen)";
    }
    void post_hook(bifrost::Context&, bifrost::Outcome& o) {
        ++post;
        std::lock_guard l(m);
        outcomes.push_back(
            o.ok() ? "ok " + std::to_string(o.response.usage ? o.response.usage->total_tokens : -1)
                   : std::to_string(o.error.status));
    }
};

}  // namespace

TEST_CASE("streaming: pre-hooks rewrite the request, post-hooks see the outcome once",
          "[stream][plugins]") {
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated,
                     StreamObserver>
        gw(test::options());
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", config(), {mock::stream_echo()}));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "hi"), std::ref(col));
    REQUIRE(r.ok());
    CHECK(col.text == "Echo: hi (seen)");
    auto& obs = gw.plugin<StreamObserver>();
    CHECK(obs.pre == 1);
    CHECK(obs.post == 1);
    REQUIRE(obs.outcomes.size() == 1);
    CHECK(obs.outcomes[0] == "ok " + std::to_string(r->usage->total_tokens));
}

// ---- through transport::Beast
// --------------------------------------------------------------------

namespace {

using BeastGateway =
    bifrost::Gateway<bifrost::transport::Beast, bifrost::queue::Block, bifrost::pool::Preallocated>;

bifrost::ProviderConfig beast_config(const std::string& base_url, int max_retries = 0) {
    auto c = config(max_retries, 8);
    c.network_config.base_url = base_url;
    return c;
}

}  // namespace

TEST_CASE("streaming over beast: chunks arrive as the upstream sends them", "[stream][beast]") {
    test::MockUpstream up;
    test::Behaviour b;
    b.stream_chunks = 5;
    b.stream_usage = true;
    SECTION("chunked, one write per chunk") {}
    SECTION("one byte per write") {
        b.byte_by_byte = true;
    }
    SECTION("with an interval") {
        b.stream_interval = 2ms;
    }
    up.set(b);
    BeastGateway gw(test::options());
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("openai", beast_config(up.base_url())));
    Collector col;
    auto r = gw.chat_stream(test::request("openai/gpt-4o", "x"), std::ref(col));
    INFO(r.error().message);
    REQUIRE(r.ok());
    CHECK(col.text == "piece 0piece 1piece 2piece 3piece 4");
    REQUIRE(col.size() == 6);
    REQUIRE(col.chunks.back().usage.has_value());
    CHECK(r->usage->total_tokens == 12);
    const auto seen = up.seen();
    REQUIRE(seen.size() == 1);
    const auto body = boost::json::parse(seen[0].body).as_object();
    CHECK(body.at("stream") == true);
    CHECK(body.at("stream_options").at("include_usage") == true);

    // A stream that ended cleanly gives its connection back for the next request.
    Collector again;
    REQUIRE(gw.chat_stream(test::request("openai/gpt-4o", "y"), std::ref(again)).ok());
    CHECK(gw.chat(test::request("openai/gpt-4o", "z")).ok());
    CHECK(up.connections() == 1);
}

TEST_CASE("streaming over beast: an error status before the stream is a normal error",
          "[stream][beast]") {
    test::MockUpstream up;
    test::Behaviour b;
    b.status = 429;
    up.set(b);
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", beast_config(up.base_url())));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(r.error().status == 429);
    CHECK(r.error().message == "mock upstream error");
    CHECK(col.size() == 0);
}

TEST_CASE("streaming over beast: a connection dropped mid-stream ends it with an error",
          "[stream][beast]") {
    test::MockUpstream up;
    test::Behaviour b;
    b.stream_chunks = 6;
    b.stream_drop_after = 2;
    up.set(b);
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", beast_config(up.base_url(), 3)));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(r.error().status == 502);
    CHECK(col.text == "piece 0piece 1");
    CHECK(up.requests() == 1);  // no retry once chunks went out
}

TEST_CASE("streaming over beast: a caller stopping closes the upstream connection",
          "[stream][beast][concurrency]") {
    test::MockUpstream up;
    test::Behaviour b;
    b.stream_chunks = 200;
    b.stream_interval = 2ms;
    up.set(b);
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", beast_config(up.base_url())));
    Collector col;
    col.stop_after = 2;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(r.error().status == 499);
    CHECK(col.size() == 2);
    CHECK(test::eventually([&] { return up.streams_cut_by_client() == 1; }));
    CHECK(test::eventually([&] { return up.open_connections() == 0; }));
    // The closed connection was not pooled: the next stream opens a fresh one and works.
    up.set(test::Behaviour{});
    Collector next;
    REQUIRE(gw.chat_stream(test::request("p/m", "y"), std::ref(next)).ok());
    CHECK(up.connections() == 2);
}

TEST_CASE("streaming over beast: a silent stream hits the idle timeout", "[stream][beast]") {
    test::MockUpstream up;
    test::Behaviour b;
    b.stream_chunks = 3;
    b.stream_interval = 2000ms;
    up.set(b);
    BeastGateway gw(test::options());
    bifrost::transport::Beast::Options topts;
    topts.stream_idle_timeout = 100ms;
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", beast_config(up.base_url()),
                                                              bifrost::providers::OpenAI{}, topts));
    Collector col;
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(r.error().status == 502);
    CHECK(r.error().message.find("timed out") != std::string::npos);
    CHECK(col.size() == 0);
}

TEST_CASE("streaming over beast: an upstream that never sends the head hits the idle timeout",
          "[stream][beast]") {
    test::MockUpstream up;
    up.set({.latency = 10s});
    BeastGateway gw(test::options());
    bifrost::transport::Beast::Options topts;
    topts.stream_idle_timeout = 100ms;
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", beast_config(up.base_url()),
                                                              bifrost::providers::OpenAI{}, topts));
    Collector col;
    const auto start = std::chrono::steady_clock::now();
    auto r = gw.chat_stream(test::request("p/m", "x"), std::ref(col));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().message.find("timed out") != std::string::npos);
    CHECK(col.size() == 0);
}

// ---- stress
// ----------------------------------------------------------------------------------------

TEST_CASE("streaming stress: every stream completes exactly once and no chunk follows it",
          "[stream][concurrency]") {
    std::atomic<int> calls{0};
    auto script = [&](MockCall& call) {
        const int n = calls.fetch_add(1);
        switch (n % 6) {
            case 0:
                return pieces_then(3, MockCall::Fault::network_error, 100us)(call);
            case 1:
                return status(503)(call);
            case 2:
                return pieces_then(4, MockCall::Fault::hang, 100us)(call);
            default:
                return pieces_then(5, MockCall::Fault::none, 50us)(call);
        }
    };
    auto opts = test::options(64);
    opts.drain_timeout = 20ms;
    auto gw = std::make_unique<MockGateway<>>(opts);
    REQUIRE_FALSE(gw->add_provider<bifrost::providers::OpenAI>("p", config(1, 16), {script}));
    REQUIRE_FALSE(
        gw->add_provider<bifrost::providers::OpenAI>("b", config(0, 8), {mock::stream_echo(50us)}));

    struct Stream {
        std::atomic<int> completions{0};
        std::atomic<int> late_chunks{0};
        std::atomic<int> chunks{0};
        int stop_at = 0;
    };
    constexpr int threads = 4, per_thread = 60;
    std::vector<std::unique_ptr<Stream>> streams;
    for (int i = 0; i < threads * per_thread; ++i)
        streams.push_back(std::make_unique<Stream>());
    std::atomic<int> async_pending{0};
    asio::io_context ioc;
    auto work = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    std::vector<asio::cancellation_signal> signals(threads * per_thread);

    std::vector<std::thread> callers;
    for (int t = 0; t < threads; ++t) {
        callers.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
            for (int k = 0; k < per_thread; ++k) {
                const int id = t * per_thread + k;
                Stream& s = *streams[id];
                s.stop_at = static_cast<int>(rng() % 8);  // 0: never stop
                auto on_chunk = [&s](const StreamChunk&) {
                    if (s.completions.load() != 0) s.late_chunks.fetch_add(1);
                    const int n = s.chunks.fetch_add(1) + 1;
                    return s.stop_at == 0 || n < s.stop_at;
                };
                auto req = test::request("p/m", "s");
                if (rng() % 2) req.fallbacks = {"b/m"};
                bifrost::RequestOptions ro;
                if (rng() % 4 == 0)
                    ro.timeout = std::chrono::milliseconds(1 + rng() % 5);
                else if (k % 2 == 0)
                    ro.timeout = 100ms;  // a blocked caller's hung stream ends by its deadline
                if (k % 2 == 0) {
                    auto r = gw->chat_stream(req, on_chunk, ro);
                    s.completions.fetch_add(1);
                    (void)r;
                } else {
                    async_pending.fetch_add(1);
                    gw->async_chat_stream(
                        req, on_chunk, ro,
                        asio::bind_cancellation_slot(
                            signals[id].slot(),
                            asio::bind_executor(ioc, [&s, &async_pending](Result) {
                                s.completions.fetch_add(1);
                                async_pending.fetch_sub(1);
                            })));
                    if (rng() % 3 == 0) {
                        asio::post(ioc, [&signals, id] {
                            signals[id].emit(asio::cancellation_type::terminal);
                        });
                    }
                }
            }
        });
    }
    for (auto& c : callers)
        c.join();
    // Whatever still hangs ends with the shutdown.
    std::thread stopper([&] {
        std::this_thread::sleep_for(50ms);
        gw->shutdown();
    });
    CHECK(test::eventually([&] { return async_pending.load() == 0; }, 20000ms));
    stopper.join();
    work.reset();
    runner.join();
    gw.reset();
    int late = 0, wrong = 0;
    for (const auto& s : streams) {
        late += s->late_chunks.load();
        if (s->completions.load() != 1) ++wrong;
    }
    CHECK(late == 0);
    CHECK(wrong == 0);
}
