// transport::Beast over real sockets on 127.0.0.1: the gateway with providers::OpenAI against
// the in-tree mock upstream (HTTP and HTTPS) and a tiny proxy.

#include "bifrost_catch.hpp"
#include "mock_upstream.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>
#include <bifrost/detail/sse.hpp>
#include <bifrost/transport/beast.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using bifrost::Result;
namespace asio = boost::asio;

namespace {

using BeastGateway =
    bifrost::Gateway<bifrost::transport::Beast, bifrost::queue::Block, bifrost::pool::Preallocated>;

bifrost::ProviderConfig config_for(const std::string& base_url, std::size_t concurrency = 8) {
    auto c = test::provider_config(concurrency, 256);
    c.network_config.base_url = base_url;
    c.circuit_breaker.failure_threshold = 0;
    return c;
}

std::string content(const Result& r) {
    INFO((r.ok() ? std::string() : std::to_string(r.error().status) + " " + r.error().message));
    REQUIRE(r.ok());
    REQUIRE(!r->choices.empty());
    return r->choices[0].message.content;
}

/// A loopback port nothing listens on.
unsigned short closed_port() {
    asio::io_context ioc;
    asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

}  // namespace

TEST_CASE("beast: a chat request reaches the upstream and its answer comes back", "[beast]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    auto cfg = config_for(up.base_url() + "/");  // a trailing slash is tolerated
    cfg.network_config.extra_headers = {{"X-Team", "search"}};
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", cfg));
    const Result r = gw.chat(test::request("openai/gpt-4o-mini", "hello there"));
    CHECK(content(r) == "Echo: hello there");
    CHECK(r->model == "gpt-4o-mini");
    const auto seen = up.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].method == "POST");
    CHECK(seen[0].target == "/v1/chat/completions");
    CHECK(seen[0].host == "127.0.0.1:" + std::to_string(up.port()));
    CHECK(seen[0].authorization == "Bearer sk-test-key");
    CHECK(seen[0].header("x-team") == "search");
    CHECK(seen[0].header("content-type") == "application/json");
}

TEST_CASE("beast: sequential requests reuse one keep-alive connection", "[beast]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));
    for (int i = 0; i < 20; ++i)
        CHECK(content(gw.chat(test::request("p/m", "n" + std::to_string(i)))) ==
              "Echo: n" + std::to_string(i));
    CHECK(up.requests() == 20);
    CHECK(up.connections() == 1);
}

TEST_CASE("beast: many concurrent requests each get their own answer over a bounded pool",
          "[beast][concurrency]") {
    test::MockUpstream up;
    up.set({.latency = 5ms});
    BeastGateway gw(test::options(64));
    auto cfg = config_for(up.base_url(), 32);
    cfg.concurrency_and_buffer_size.worker_threads = 2;
    bifrost::transport::Beast::Options topts;
    topts.max_connections_per_host = 8;
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", cfg, bifrost::providers::OpenAI{}, topts));
    constexpr int n = 300;
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < n; ++i)
        futures.push_back(
            gw.async_chat(test::request("p/m", "req-" + std::to_string(i)), asio::use_future));
    for (int i = 0; i < n; ++i)
        CHECK(content(futures[static_cast<std::size_t>(i)].get()) ==
              "Echo: req-" + std::to_string(i));
    CHECK(up.requests() == n);
    // Two worker threads, each with its own pool of at most 8 connections.
    CHECK(up.connections() <= 16);
    CHECK(up.max_open_connections() <= 16);
    CHECK(up.connections() < static_cast<std::size_t>(n));
}

TEST_CASE("beast: max_connections_per_host bounds the pool; the others wait their turn",
          "[beast][concurrency]") {
    test::MockUpstream up;
    up.set({.latency = 2ms});
    BeastGateway gw(test::options(32));
    bifrost::transport::Beast::Options topts;
    topts.max_connections_per_host = 2;
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url(), 16),
                                                              bifrost::providers::OpenAI{}, topts));
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < 64; ++i)
        futures.push_back(
            gw.async_chat(test::request("p/m", "w" + std::to_string(i)), asio::use_future));
    for (int i = 0; i < 64; ++i)
        CHECK(content(futures[static_cast<std::size_t>(i)].get()) == "Echo: w" + std::to_string(i));
    CHECK(up.max_open_connections() <= 2);
    CHECK(up.connections() == 2);
}

TEST_CASE("beast: large request bodies and GET requests go through", "[beast]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));
    const std::string big(3u << 20, 'y');
    CHECK(content(gw.chat(test::request("p/m", big))) == "Echo: " + big);

    asio::io_context ioc;
    bifrost::transport::Beast t(ioc.get_executor(), bifrost::ProviderConfig{}, {});
    bifrost::HttpRequest req;
    req.method = bifrost::HttpMethod::get;
    req.url = up.base_url() + "/v1/models";
    bifrost::HttpResponse res;
    boost::system::error_code got = asio::error::would_block;
    t.async_send(req, res, [&](boost::system::error_code ec) { got = ec; });
    ioc.run();
    CHECK_FALSE(got);
    CHECK(res.status == 200);
    CHECK(res.body.find(R"("id":"mock-model")") != std::string::npos);
    CHECK(up.seen().back().method == "GET");
    CHECK(up.seen().back().header("content-length").empty());
}

TEST_CASE("beast: one transport sends to each URL it is given, in any order", "[beast]") {
    // The transport keeps the last URL's split: requests that alternate between two upstreams
    // and two targets, some in flight together, each reach theirs (an exchange reads its own
    // request's URL, not the transport's copy of the last one).
    test::MockUpstream a;
    test::MockUpstream b;
    asio::io_context ioc;
    bifrost::transport::Beast t(ioc.get_executor(), bifrost::ProviderConfig{}, {});
    struct Send {
        test::MockUpstream* up;
        std::string target;
        bifrost::HttpRequest req;
        bifrost::HttpResponse res;
        boost::system::error_code got = asio::error::would_block;
    };
    const std::vector<std::vector<std::pair<test::MockUpstream*, std::string>>> rounds = {
        {{&a, "/v1/models"}},
        {{&a, "/v1/models"}, {&b, "/v1/models"}},
        {{&a, "/v1/nope"}, {&b, "/v1/models"}, {&a, "/v1/models"}},
        {{&b, "/v1/nope"}},
        {{&b, "/v1/models"}, {&a, "/v1/nope"}}};
    std::size_t to_a = 0;
    for (const auto& round : rounds) {
        std::vector<std::unique_ptr<Send>> sends;
        for (const auto& [up, target] : round) {
            auto& s = *sends.emplace_back(std::make_unique<Send>());
            s.up = up;
            s.target = target;
            s.req.method = bifrost::HttpMethod::get;
            s.req.url = up->base_url() + target;
            t.async_send(s.req, s.res, [&s](boost::system::error_code ec) { s.got = ec; });
            to_a += up == &a;
        }
        ioc.restart();
        ioc.run();
        for (const auto& s : sends) {
            CHECK_FALSE(s->got);
            CHECK(s->res.status == (s->target == "/v1/models" ? 200 : 404));
        }
    }
    std::vector<std::string> seen_a;
    std::vector<std::string> seen_b;
    for (const auto& r : a.seen())
        seen_a.push_back(r.target);
    for (const auto& r : b.seen())
        seen_b.push_back(r.target);
    std::sort(seen_a.begin(), seen_a.end());
    std::sort(seen_b.begin(), seen_b.end());
    CHECK(seen_a == std::vector<std::string>{"/v1/models", "/v1/models", "/v1/models", "/v1/nope",
                                             "/v1/nope"});
    CHECK(seen_b == std::vector<std::string>{"/v1/models", "/v1/models", "/v1/models", "/v1/nope"});
    CHECK(to_a == 5);
}

TEST_CASE("beast: the transport owns the framing; a header that would break the head fails",
          "[beast]") {
    test::MockUpstream up;
    asio::io_context ioc;
    bifrost::transport::Beast t(ioc.get_executor(), bifrost::ProviderConfig{}, {});
    const auto send = [&](bifrost::HttpRequest& req) {
        bifrost::HttpResponse res;
        boost::system::error_code got = asio::error::would_block;
        t.async_send(req, res, [&](boost::system::error_code ec) { got = ec; });
        ioc.restart();
        ioc.run();
        return std::pair(got, res.status);
    };
    bifrost::HttpRequest req;
    req.url = up.base_url() + "/v1/chat/completions";
    req.body = R"({"model":"m","messages":[{"role":"user","content":"framing"}]})";
    // A provider's framing fields are not sent twice (nor wrong): the transport's are.
    req.headers.add("Content-Length", "3");
    req.headers.add("Connection", "close");
    req.headers.add("Host", "elsewhere.example");
    req.headers.add("X-Custom", "kept");
    const auto [ec, status] = send(req);
    CHECK_FALSE(ec);
    CHECK(status == 200);
    REQUIRE(up.seen().size() == 1);
    CHECK(up.seen()[0].header("content-length") == std::to_string(req.body.size()));
    CHECK(up.seen()[0].header("x-custom") == "kept");
    CHECK(up.seen()[0].header("host") != "elsewhere.example");
    CHECK(up.seen()[0].header("connection").empty());

    // A value with a line break (a key pasted with its newline) would split the head: the
    // request fails before anything is written, and the error does not show the value.
    for (const std::string& bad :
         {std::string("Bearer sk-secret\n"), std::string("Bearer sk-\r\nX-Injected: 1"),
          std::string("a\0b", 3)}) {
        bifrost::HttpRequest r = req;
        r.headers.clear();
        r.headers.add("Authorization", bad);
        const auto [e, s] = send(r);
        CHECK(e == bifrost::transport::BeastErrc::bad_header);
        CHECK(e.message().find("sk-") == std::string::npos);
    }
    bifrost::HttpRequest named = req;
    named.headers.clear();
    named.headers.add("X-Bad\r\nName", "v");
    CHECK(send(named).first == bifrost::transport::BeastErrc::bad_header);
    CHECK(up.seen().size() == 1);
}

TEST_CASE("beast: a keyless provider sends no Authorization header", "[beast]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    auto cfg = config_for(up.base_url());
    cfg.keys.clear();
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Ollama>("ollama", cfg));
    CHECK(content(gw.chat(test::request("ollama/llama3.2", "local"))) == "Echo: local");
    REQUIRE(up.seen().size() == 1);
    CHECK(up.seen()[0].header("authorization").empty());
    CHECK(up.seen()[0].target == "/v1/chat/completions");
}

TEST_CASE("beast: a server closing connections causes no spurious error", "[beast]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));

    SECTION("Connection: close after each response") {
        up.set({.close_after_response = true});
        for (int i = 0; i < 5; ++i)
            CHECK(content(gw.chat(test::request("p/m", "c" + std::to_string(i)))) ==
                  "Echo: c" + std::to_string(i));
        CHECK(up.connections() == 5);
    }
    SECTION("idle connections closed by the server") {
        up.set({.idle_close = 20ms});
        for (int i = 0; i < 4; ++i) {
            CHECK(content(gw.chat(test::request("p/m", "i" + std::to_string(i)))) ==
                  "Echo: i" + std::to_string(i));
            REQUIRE(test::eventually([&] { return up.open_connections() == 0; }));
            // Reused at once, the closed connection is caught by the stale-connection retry;
            // after a while in the pool, by the check before reuse.
            if (i % 2 == 1) std::this_thread::sleep_for(300ms);
        }
        CHECK(up.connections() == 4);
        CHECK(up.requests() == 4);
    }
    SECTION("a stale connection that reads the request and closes is retried once") {
        up.set({.max_requests_per_connection = 1});
        for (int i = 0; i < 4; ++i)
            CHECK(content(gw.chat(test::request("p/m", "s" + std::to_string(i)))) ==
                  "Echo: s" + std::to_string(i));
        // Each later request was read on the stale connection, then again on a fresh one.
        CHECK(up.requests() == 7);
        CHECK(up.connections() == 4);
    }
}

TEST_CASE("beast: an upstream error keeps its status and message", "[beast]") {
    test::MockUpstream up;
    up.set(
        {.status = 429,
         .error_body =
             R"({"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}})"});
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));
    const Result r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 429);
    CHECK(r.error().message == "Rate limit reached for gpt-4o");
    CHECK(r.error().code == "rate_limit_exceeded");
    CHECK(r.error().provider == "p");
}

TEST_CASE("beast: a refused connection is a 502 network error without the key", "[beast]") {
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", config_for("http://127.0.0.1:" + std::to_string(closed_port()))));
    const Result r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().type == "network_error");
    CHECK(r.error().message.find("sk-test-key") == std::string::npos);
}

TEST_CASE("beast: a bad base URL fails the request, not the worker", "[beast]") {
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for("ftp://example")));
    const Result r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().message.find("invalid upstream URL") != std::string::npos);
}

TEST_CASE("beast: a deadline with a slow upstream answers 504 and closes the connection",
          "[beast][concurrency]") {
    test::MockUpstream up;
    up.set({.latency = 10s});
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));
    bifrost::RequestOptions opts;
    opts.timeout = 100ms;
    const Result r = gw.chat(test::request("p/m", "slow"), opts);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 504);
    REQUIRE(test::eventually([&] { return up.requests() == 1; }));
    CHECK(test::eventually([&] { return up.open_connections() == 0; }));
    // The slot was freed: a fast request goes through afterwards.
    up.set({});
    CHECK(content(gw.chat(test::request("p/m", "after"))) == "Echo: after");
}

TEST_CASE("beast: a caller's cancellation answers 499 and closes the upstream connection",
          "[beast][concurrency]") {
    test::MockUpstream up;
    up.set({.latency = 10s});
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));
    asio::io_context caller;
    asio::cancellation_signal signal;
    std::vector<Result> got;
    gw.async_chat(test::request("p/m", "cancel me"),
                  asio::bind_cancellation_slot(
                      signal.slot(),
                      asio::bind_executor(caller, [&](Result r) { got.push_back(std::move(r)); })));
    REQUIRE(test::eventually([&] { return up.requests() == 1; }));
    asio::post(caller, [&] { signal.emit(asio::cancellation_type::terminal); });
    caller.run();
    REQUIRE(got.size() == 1);
    const Result& r = got[0];
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 499);
    CHECK(test::eventually([&] { return up.open_connections() == 0; }));
}

TEST_CASE("beast: the transport's request timeout ends a stalled exchange", "[beast]") {
    test::MockUpstream up;
    up.set({.latency = 10s});
    BeastGateway gw(test::options());
    bifrost::transport::Beast::Options topts;
    topts.request_timeout = 100ms;
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url()),
                                                              bifrost::providers::OpenAI{}, topts));
    const Result r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().type == "network_error");
}

TEST_CASE("beast: an answer larger than max_response_bytes fails whole, on either read path",
          "[beast]") {
    test::MockUpstream up;
    up.set({.pad_bytes = 8192});
    BeastGateway gw(test::options());
    bifrost::transport::Beast::Options topts;
    topts.max_response_bytes = 4096;
    SECTION("no request timeout (read as the socket has it)") {}
    SECTION("a request timeout (read by Beast under the stream's timer)") {
        topts.request_timeout = 5s;
    }
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url()),
                                                              bifrost::providers::OpenAI{}, topts));
    const Result r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().message.find("sk-") == std::string::npos);
    up.set({});
    CHECK(content(gw.chat(test::request("p/m", "small"))) == "Echo: small");
}

TEST_CASE("beast: an upstream that never answers the TLS handshake ends at the connect timeout",
          "[beast]") {
    // A listener that never accepts: the kernel completes the TCP handshake into its backlog, but
    // nobody ever sends a ServerHello, so only the transport's connect bound (which covers the
    // TLS handshake) ends the attempt.
    asio::io_context ioc;
    asio::ip::tcp::acceptor silent(ioc);
    const asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), 0);
    silent.open(at.protocol());
    silent.bind(at);
    silent.listen(64);
    auto cfg = config_for("https://127.0.0.1:" + std::to_string(silent.local_endpoint().port()));
    cfg.network_config.default_request_timeout = 60s;  // the deadline is not what ends it
    BeastGateway gw(test::options());
    bifrost::transport::Beast::Options topts;
    topts.connect_timeout = 200ms;
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", cfg, bifrost::providers::OpenAI{}, topts));
    const auto start = std::chrono::steady_clock::now();
    const Result r = gw.chat(test::request("p/m", "x"));
    CHECK(std::chrono::steady_clock::now() - start < 10s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().type == "network_error");
    CHECK(r.error().message.find("timed out") != std::string::npos);
    CHECK(r.error().message.find("sk-test-key") == std::string::npos);
}

TEST_CASE("beast: bodies arrive whole whatever the framing", "[beast]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));

    SECTION("written one byte at a time") {
        up.set({.byte_by_byte = true});
        CHECK(content(gw.chat(test::request("p/m", "slowly"))) == "Echo: slowly");
    }
    SECTION("in pieces, each read on its own: a few, and more than the fast path waits for") {
        // About 300 bytes of answer: in 5 pieces of 64 the fast parser sees the head and then
        // the body cut (mid-field, mid-body); in pieces of 16 it hands over to Beast midway.
        for (const std::size_t piece : {std::size_t(64), std::size_t(16), std::size_t(150)}) {
            INFO(piece);
            up.set({.piece_bytes = piece});
            for (int i = 0; i < 2; ++i)  // the connection is reused after each
                CHECK(content(gw.chat(test::request("p/m", "piece " + std::to_string(i)))) ==
                      "Echo: piece " + std::to_string(i));
        }
        CHECK(up.connections() == 1);
    }
    SECTION("a large body (4 MB)") {
        up.set({.pad_bytes = 4u << 20});
        const std::string c = content(gw.chat(test::request("p/m", "big")));
        CHECK(c.size() == std::string("Echo: big").size() + (4u << 20));
        CHECK(c.substr(0, 9) == "Echo: big");
    }
    SECTION("chunked") {
        up.set({.framing = test::Behaviour::Framing::chunked});
        for (int i = 0; i < 3; ++i)  // the connection is reused after each
            CHECK(content(gw.chat(test::request("p/m", "in chunks " + std::to_string(i)))) ==
                  "Echo: in chunks " + std::to_string(i));
        CHECK(up.connections() == 1);
    }
    SECTION("ended by closing the connection (no length)") {
        up.set({.framing = test::Behaviour::Framing::until_close});
        for (int i = 0; i < 3; ++i)  // a new connection each time
            CHECK(content(gw.chat(test::request("p/m", "to the end " + std::to_string(i)))) ==
                  "Echo: to the end " + std::to_string(i));
        CHECK(up.connections() == 3);
    }
    SECTION("a connection dropped midway is a network error") {
        up.set({.drop_mid_response = true});
        const Result r = gw.chat(test::request("p/m", "x"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 502);
    }
}

TEST_CASE("beast: a chunked SSE stream arrives intact through the transport", "[beast][sse]") {
    // Drives the transport directly: the gateway's streaming API is separate work.
    test::MockUpstream up;
    up.set({.byte_by_byte = true, .stream_chunks = 5});
    asio::io_context ioc;
    bifrost::ProviderConfig cfg;
    bifrost::transport::Beast t(ioc.get_executor(), cfg, {});
    bifrost::HttpRequest req;
    req.url = up.base_url() + "/v1/chat/completions";
    req.headers.add("content-type", "application/json");
    req.body = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
    bifrost::HttpResponse res;
    boost::system::error_code got = asio::error::would_block;
    t.async_send(req, res, [&](boost::system::error_code ec) { got = ec; });
    ioc.run();
    REQUIRE_FALSE(got);
    CHECK(res.status == 200);
    CHECK(res.headers.get("transfer-encoding") == "chunked");
    bifrost::detail::SseParser parser;
    std::vector<std::string> data;
    for (char c : res.body)  // and parse it one byte at a time, too
        REQUIRE(parser.feed(std::string_view(&c, 1), [&](const bifrost::detail::SseEvent& e) {
            data.emplace_back(e.data);
        }));
    REQUIRE(data.size() == 6);
    CHECK(data[0].find(R"("content":"piece 0")") != std::string::npos);
    CHECK(data[4].find(R"("content":"piece 4")") != std::string::npos);
    CHECK(data[5] == "[DONE]");
}

TEST_CASE("beast: HTTPS verifies the upstream's certificate", "[beast][tls]") {
    test::MockUpstream up({.tls = true});
    BeastGateway gw(test::options());

    SECTION("trusted through ca_cert_pem, by IP address and by host name") {
        auto cfg = config_for(up.base_url());
        cfg.network_config.ca_cert_pem = up.cert_pem();
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("ip", cfg));
        cfg.network_config.base_url = up.base_url("localhost");
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("name", cfg));
        CHECK(content(gw.chat(test::request("ip/m", "secure"))) == "Echo: secure");
        CHECK(content(gw.chat(test::request("ip/m", "again"))) == "Echo: again");
        CHECK(content(gw.chat(test::request("name/m", "by name"))) == "Echo: by name");
        CHECK(up.connections() == 2);  // one per provider: kept alive
    }
    SECTION("an unknown certificate fails with a network error") {
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", config_for(up.base_url())));
        const Result r = gw.chat(test::request("p/m", "x"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 502);
        CHECK(r.error().type == "network_error");
        CHECK(up.requests() == 0);
    }
    SECTION("insecure_skip_verify accepts it") {
        auto cfg = config_for(up.base_url());
        cfg.network_config.insecure_skip_verify = true;
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", cfg));
        CHECK(content(gw.chat(test::request("p/m", "trust me"))) == "Echo: trust me");
    }
}

TEST_CASE("beast: proxy_config tunnels HTTPS with CONNECT and forwards HTTP", "[beast][proxy]") {
    const std::string credentials = bifrost::detail::base64_encode("alice:s3cret");
    test::MockProxy proxy(credentials);
    BeastGateway gw(test::options());
    const auto with_proxy = [&](bifrost::ProviderConfig cfg, std::string password) {
        cfg.proxy_config = bifrost::ProxyConfig{"http", proxy.url(), "alice",
                                                bifrost::Secret(std::move(password))};
        return cfg;
    };

    SECTION("HTTPS through a CONNECT tunnel with basic auth") {
        test::MockUpstream up({.tls = true});
        auto cfg = config_for(up.base_url());
        cfg.network_config.ca_cert_pem = up.cert_pem();
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", with_proxy(cfg, "s3cret")));
        CHECK(content(gw.chat(test::request("p/m", "tunnelled"))) == "Echo: tunnelled");
        CHECK(content(gw.chat(test::request("p/m", "reused"))) == "Echo: reused");
        CHECK(proxy.tunnels() == 1);
        CHECK(proxy.targets() ==
              std::vector<std::string>{"127.0.0.1:" + std::to_string(up.port())});
        CHECK(up.seen()[0].header("proxy-authorization").empty());
    }
    SECTION("HTTP in absolute form") {
        test::MockUpstream up;
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
            "p", with_proxy(config_for(up.base_url()), "s3cret")));
        CHECK(content(gw.chat(test::request("p/m", "forwarded"))) == "Echo: forwarded");
        CHECK(proxy.forwarded() == 1);
        CHECK(proxy.targets() == std::vector<std::string>{up.base_url() + "/v1/chat/completions"});
    }
    SECTION("wrong credentials: the refusal is an error without the password") {
        test::MockUpstream up({.tls = true});
        auto cfg = config_for(up.base_url());
        cfg.network_config.ca_cert_pem = up.cert_pem();
        REQUIRE_FALSE(
            gw.add_provider<bifrost::providers::OpenAI>("p", with_proxy(cfg, "wrong-pass")));
        const Result r = gw.chat(test::request("p/m", "x"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 502);
        CHECK(r.error().message.find("proxy") != std::string::npos);
        CHECK(r.error().message.find("wrong-pass") == std::string::npos);
        CHECK(proxy.refused() == 1);
        CHECK(up.requests() == 0);
    }
}

TEST_CASE("beast: URLs are split into host, port and target", "[beast]") {
    using bifrost::detail::parse_url;
    auto u = parse_url("https://api.openai.com/v1/chat/completions?x=1#frag");
    REQUIRE(u);
    CHECK(u->tls);
    CHECK(u->host == "api.openai.com");
    CHECK(u->port == "443");
    CHECK(u->target == "/v1/chat/completions?x=1");
    u = parse_url("http://[::1]:8080");
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->port == "8080");
    CHECK(u->authority == "[::1]:8080");
    CHECK(u->target == "/");
    CHECK_FALSE(parse_url("ftp://x/"));
    CHECK_FALSE(parse_url("http://:80/"));
    CHECK_FALSE(parse_url("http://host:port/"));
    CHECK_FALSE(parse_url("http://user:pw@host/"));
    u = parse_url("http://127.0.0.1:9101/v1/x@y:z");  // '@' and ':' in the path are the path's
    REQUIRE(u);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == "9101");
    CHECK(u->target == "/v1/x@y:z");
    u = parse_url("http://h?q=1");
    CHECK_FALSE(u);  // a query needs a path
    u = parse_url("https://h:8443");
    REQUIRE(u);
    CHECK(u->host == "h");
    CHECK(u->port == "8443");
    CHECK(u->authority == "h:8443");
    CHECK(u->target == "/");
    u = parse_url("http://h/#only-a-fragment");
    REQUIRE(u);
    CHECK(u->target == "/");
    CHECK_FALSE(parse_url("http://h:1:2/"));
    CHECK_FALSE(parse_url("http://h:/"));
    CHECK_FALSE(parse_url("http://h:123456/"));
    CHECK_FALSE(parse_url("http://[::1/"));
    CHECK_FALSE(parse_url("http://[::1]x/"));
    CHECK_FALSE(parse_url("http://[]:80/"));
    CHECK_FALSE(parse_url("http:///path"));
    CHECK_FALSE(parse_url("HTTP://h/"));
    CHECK(bifrost::detail::base64_encode("alice:s3cret") == "YWxpY2U6czNjcmV0");
    CHECK(bifrost::detail::base64_encode("ab") == "YWI=");
    CHECK(bifrost::detail::base64_encode("a") == "YQ==");
}

// ---- embeddings, text completions, model listing -----------------------------------------------

TEST_CASE("beast: embeddings, text completions and model listing reach the upstream",
          "[beast][operations]") {
    test::MockUpstream up;
    BeastGateway gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", config_for(up.base_url())));

    bifrost::EmbeddingRequest er;
    er.model = "openai/text-embedding-3-small";
    er.input = bifrost::TextInput::of_texts({"one", "two"});
    er.dimensions = 3;
    const bifrost::EmbeddingResult e = gw.embed(er);
    INFO(e.error().message);
    REQUIRE(e.ok());
    REQUIRE(e->data.size() == 2);
    CHECK(e->data[1].embedding.size() == 3);
    CHECK(e->model == "text-embedding-3-small");
    CHECK(e->extra_fields.provider == "openai");

    er.encoding_format = "base64";
    const bifrost::EmbeddingResult b = gw.async_embed(er, asio::use_future).get();
    REQUIRE(b.ok());
    CHECK(b->data[0].embedding.empty());
    CHECK(b->data[0].base64.size() == 16);  // 3 float32s = 12 bytes

    bifrost::TextCompletionRequest tr;
    tr.model = "openai/gpt-3.5-turbo-instruct";
    tr.prompt = bifrost::TextInput::text("Complete me");
    const bifrost::TextCompletionResult t = gw.text_complete(tr);
    INFO(t.error().message);
    REQUIRE(t.ok());
    CHECK(t->choices.at(0).text == "Echo: Complete me");

    const bifrost::ModelListResult m = gw.list_models("openai");
    INFO(m.error().message);
    REQUIRE(m.ok());
    REQUIRE(m->data.size() == 1);
    CHECK(m->data[0].id == "mock-model");

    const auto seen = up.seen();
    REQUIRE(seen.size() == 4);
    CHECK(seen[0].target == "/v1/embeddings");
    CHECK(seen[0].authorization == "Bearer sk-test-key");
    CHECK(seen[2].target == "/v1/completions");
    CHECK(seen[3].method == "GET");
    CHECK(seen[3].target == "/v1/models");
    CHECK(seen[3].authorization == "Bearer sk-test-key");
}

TEST_CASE("beast: an embeddings error keeps the upstream's status and message",
          "[beast][operations]") {
    test::MockUpstream up;
    up.set({.status = 503,
            .error_body = R"({"error":{"message":"overloaded","type":"server_error"}})"});
    BeastGateway gw(test::options());
    auto cfg = config_for(up.base_url());
    cfg.network_config.max_retries = 1;
    cfg.network_config.retry_backoff_initial = 1ms;
    cfg.network_config.retry_backoff_max = 1ms;
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", cfg));
    bifrost::EmbeddingRequest er;
    er.model = "p/e";
    er.input = bifrost::TextInput::text("x");
    const bifrost::EmbeddingResult e = gw.embed(er);
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().status == 503);
    CHECK(e.error().message == "overloaded");
    CHECK(up.seen().size() == 2);  // retried once
    CHECK(gw.stats().provider("p")->retries == 1);
}
