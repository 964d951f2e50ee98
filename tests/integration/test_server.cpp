// bifrost-http's server end to end over loopback sockets: a Mock-transport gateway behind
// `server::Server`, driven by a small Beast client.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>
#include <bifrost/server/server.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace mock = bifrost::transport::mock;
namespace srv = bifrost::server;

namespace {

using Gateway = test::MockGateway<bifrost::queue::FromConfig>;
using Server = srv::Server<Gateway>;
using Response = http::response<http::string_body>;

const std::string chat_body =
    R"({"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]})";

std::string chat_for(std::string_view text) {
    return R"({"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":")" +
           std::string(text) + R"("}]})";
}

/// A gateway with one provider, `mock`, and a server in front of it on an ephemeral port.
/// Captures the server's log lines.
struct Harness {
    explicit Harness(srv::Options o = {}, bifrost::transport::MockScript script = mock::echo(),
                     bool drop = false, std::size_t concurrency = 8, std::size_t buffer = 64)
        : gw(test::options(), bifrost::queue::FromConfig{drop}) {
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
                            "mock", test::provider_config(concurrency, buffer), {std::move(script)})
                          .has_value());
        o.host = "127.0.0.1";
        o.port = 0;
        o.io_threads = 2;
        if (!o.connections_on_workers) o.connections_on_workers = test::server_on_workers();
        o.drain_timeout = 5s;
        o.models = {{"mock", {"gpt-4o-mini"}}};
        o.logger = srv::Logger(srv::LogLevel::debug, [this](std::string_view line) {
            std::lock_guard lock(log_mutex);
            log.emplace_back(line);
            log_threads.push_back(std::this_thread::get_id());
        });
        server = std::make_unique<Server>(gw, std::move(o));
        auto err = server->start();
        REQUIRE_FALSE(err.has_value());
    }

    ~Harness() { server->stop(); }

    [[nodiscard]] std::string log_text() {
        std::lock_guard lock(log_mutex);
        std::string all;
        for (const auto& l : log)
            all.append(l).push_back('\n');
        return all;
    }

    [[nodiscard]] bifrost::ProviderStats mock_stats() const { return *gw.stats().provider("mock"); }

    /// The threads that logged the lines containing `what`, in order.
    [[nodiscard]] std::vector<std::thread::id> threads_logging(std::string_view what) {
        std::lock_guard lock(log_mutex);
        std::vector<std::thread::id> out;
        for (std::size_t i = 0; i < log.size(); ++i)
            if (log[i].find(what) != std::string::npos) out.push_back(log_threads[i]);
        return out;
    }

    Gateway gw;
    std::unique_ptr<Server> server;
    std::mutex log_mutex;
    std::vector<std::string> log;
    std::vector<std::thread::id> log_threads;
};

/// A blocking HTTP/1.1 client on one connection.
class Client {
  public:
    explicit Client(std::uint16_t port) : socket_(ioc_) {
        socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    }

    Response request(http::verb method, std::string target, std::string body = {},
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
        send(method, std::move(target), std::move(body), std::move(headers));
        return read();
    }
    Response post(std::string target, std::string body,
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
        return request(http::verb::post, std::move(target), std::move(body), std::move(headers));
    }
    Response get(std::string target, std::vector<std::pair<std::string, std::string>> h = {}) {
        return request(http::verb::get, std::move(target), {}, std::move(h));
    }

    void send(http::verb method, std::string target, std::string body = {},
              std::vector<std::pair<std::string, std::string>> headers = {}) {
        http::request<http::string_body> req(method, target, 11);
        req.set(http::field::host, "127.0.0.1");
        for (auto& [k, v] : headers)
            req.set(k, v);
        req.body() = std::move(body);
        req.prepare_payload();
        http::write(socket_, req);
    }

    /// Reads whatever bytes have arrived (at least one).
    std::string read_some_raw() {
        char buf[4096];
        const auto got =
            bounded([&](auto done) { socket_.async_read_some(asio::buffer(buf), done); });
        if (!got) throw std::runtime_error("test client: no bytes from the server within 30 s");
        if (got->first) throw beast::system_error(got->first);
        return std::string(buf, got->second);
    }

    /// Writes raw bytes (several requests at once, partial requests).
    void send_raw(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }

    Response read() {
        Response res;
        const auto got = bounded([&](auto done) { http::async_read(socket_, buffer_, res, done); });
        if (!got) throw std::runtime_error("test client: no response from the server within 30 s");
        if (got->first) throw beast::system_error(got->first);
        return res;
    }

    /// True when the server closed the connection (a read ends with EOF or a reset); false when
    /// it sent something, or nothing at all for `limit`.
    bool closed_by_server(std::chrono::milliseconds limit = 10s) {
        char c;
        const auto got =
            bounded([&](auto done) { socket_.async_read_some(asio::buffer(&c, 1), done); }, limit);
        return got &&
               (got->first == asio::error::eof || got->first == asio::error::connection_reset);
    }

    void close() {
        beast::error_code ec;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        socket_.close(ec);
    }

  private:
    /// Runs the read `start(done)` begins on this client's loop for at most `limit`, so that a
    /// server that never answers fails the test instead of hanging the run: its error and byte
    /// count, or nothing when it did not finish in time (it is then cancelled).
    template <class Start>
    std::optional<std::pair<beast::error_code, std::size_t>> bounded(
        Start start, std::chrono::milliseconds limit = 30s) {
        std::optional<std::pair<beast::error_code, std::size_t>> got;
        start([&got](beast::error_code ec, std::size_t n) { got.emplace(ec, n); });
        ioc_.restart();
        ioc_.run_for(limit);
        if (got) return got;
        beast::error_code ec;
        socket_.cancel(ec);
        ioc_.restart();
        ioc_.run();  // the cancelled read completes
        return std::nullopt;
    }

    asio::io_context ioc_;
    asio::ip::tcp::socket socket_;
    beast::flat_buffer buffer_;
};

json::object error_of(const Response& res) {
    const auto doc = json::parse(res.body());
    return doc.at("error").as_object();
}

std::string content_of(const Response& res) {
    const auto doc = json::parse(res.body());
    return std::string(doc.at("choices").at(0).at("message").at("content").as_string());
}

}  // namespace

TEST_CASE("server: a chat request is answered in OpenAI's format", "[server]") {
    Harness h;
    Client c(h.server->port());
    const Response res = c.post("/v1/chat/completions", chat_body);
    REQUIRE(res.result_int() == 200);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(content_of(res) == "Echo: Hello");
    const auto doc = json::parse(res.body());
    CHECK(doc.at("object").as_string() == "chat.completion");
    CHECK(doc.at("extra_fields").at("provider").as_string() == "mock");
    CHECK(h.mock_stats().completed == 1);

    // One structured line per request, with provider, model, status and timings.
    const std::string log = h.log_text();
    CHECK(log.find(R"("msg":"request")") != std::string::npos);
    CHECK(log.find(R"("provider":"mock")") != std::string::npos);
    CHECK(log.find(R"("model":"mock/gpt-4o-mini")") != std::string::npos);
    CHECK(log.find(R"("status":200)") != std::string::npos);
    CHECK(log.find(R"("overhead_ms":)") != std::string::npos);
}

TEST_CASE("server: an OpenAI-format upstream's answer is relayed as it came", "[server]") {
    // Members the schema does not model, their order and the upstream's spacing stay; the
    // gateway adds its extra_fields as the last member.
    const std::string upstream =
        R"({"id":"chatcmpl-9", "object":"chat.completion","created":1700000000,)"
        R"("model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",)"
        R"("content":"relayed","refusal":null,"annotations":[]},"logprobs":null,)"
        R"("finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,)"
        R"("total_tokens":4},"service_tier":"default","system_fingerprint":"fp_1"})"
        "\n";
    Harness h({}, mock::fixed(200, upstream));
    Client c(h.server->port());
    for (int i = 0; i < 2; ++i) {  // the second on a reused job and connection
        const Response res = c.post("/v1/chat/completions", chat_body);
        REQUIRE(res.result_int() == 200);
        const std::string& body = res.body();
        const std::string prefix = upstream.substr(0, upstream.size() - 2);
        REQUIRE(body.size() > prefix.size());
        CHECK(body.substr(0, prefix.size()) == prefix);
        const auto doc = json::parse(body);
        CHECK(doc.at("extra_fields").at("provider").as_string() == "mock");
        CHECK(doc.at("extra_fields").at("latency").is_number());
        CHECK(doc.at("choices").at(0).at("message").at("content").as_string() == "relayed");
    }
    SECTION("an upstream that sends extra_fields of its own: the gateway's replace them") {
        Harness other({}, mock::fixed(200, R"({"id":"x","choices":[{"index":0,"message":)"
                                           R"({"role":"assistant","content":"hi"}}],)"
                                           R"("extra_fields":{"provider":"elsewhere"}})"));
        Client c2(other.server->port());
        const Response res = c2.post("/v1/chat/completions", chat_body);
        REQUIRE(res.result_int() == 200);
        const auto doc = json::parse(res.body());
        CHECK(doc.at("extra_fields").at("provider").as_string() == "mock");
        CHECK(doc.at("choices").at(0).at("message").at("content").as_string() == "hi");
    }
}

TEST_CASE("server: the /openai drop-in prefixes serve the same routes", "[server]") {
    Harness h;
    Client c(h.server->port());
    for (std::string target : {"/openai/v1/chat/completions", "/openai/chat/completions"}) {
        const Response res = c.post(target, chat_body);
        CHECK(res.result_int() == 200);
        CHECK(content_of(res) == "Echo: Hello");
    }
    const Response models = c.get("/openai/v1/models");
    REQUIRE(models.result_int() == 200);
    const auto doc = json::parse(models.body());
    CHECK(doc.at("object").as_string() == "list");
    CHECK(doc.at("data").at(0).at("id").as_string() == "mock/gpt-4o-mini");
    CHECK(doc.at("data").at(0).at("owned_by").as_string() == "mock");
}

TEST_CASE("server: bad requests get 400 saying what and where", "[server]") {
    Harness h;
    Client c(h.server->port());

    SECTION("malformed JSON") {
        const Response res = c.post("/v1/chat/completions", R"({"model": "mock/x",)");
        REQUIRE(res.result_int() == 400);
        const auto e = error_of(res);
        CHECK(e.at("type").as_string() == "invalid_request_error");
        CHECK(std::string(e.at("message").as_string()).find("malformed JSON") != std::string::npos);
    }
    SECTION("a field of the wrong type") {
        const Response res =
            c.post("/v1/chat/completions", R"({"model":"mock/x","messages":[{"role":7}]})");
        REQUIRE(res.result_int() == 400);
        const auto e = error_of(res);
        CHECK(std::string(e.at("message").as_string()).find("messages[0].role") !=
              std::string::npos);
        CHECK(e.at("param").as_string() == "messages[0].role");
    }
    SECTION("a missing field") {
        const Response res = c.post("/v1/chat/completions", R"({"model":"mock/x"})");
        REQUIRE(res.result_int() == 400);
        CHECK(std::string(error_of(res).at("message").as_string()).find("messages") !=
              std::string::npos);
    }
    SECTION("a streamed request with a bad field is refused before any stream") {
        const Response res = c.post(
            "/v1/chat/completions",
            R"({"model":"mock/x","stream":"yes","messages":[{"role":"user","content":"x"}]})");
        REQUIRE(res.result_int() == 400);
        CHECK(error_of(res).at("param").as_string() == "stream");
    }
    // The connection survives a 400.
    CHECK(c.get("/health").result_int() == 200);
    CHECK(h.mock_stats().submitted == 0);
}

TEST_CASE("server: an unknown provider is a 400 naming the configured ones", "[server]") {
    Harness h;
    Client c(h.server->port());
    const Response res =
        c.post("/v1/chat/completions",
               R"({"model":"nope/gpt-4o","messages":[{"role":"user","content":"x"}]})");
    REQUIRE(res.result_int() == 400);
    const auto e = error_of(res);
    CHECK(e.at("type").as_string() == "unknown_provider");
    const std::string msg(e.at("message").as_string());
    CHECK(msg.find("'nope'") != std::string::npos);
    CHECK(msg.find("mock") != std::string::npos);
}

TEST_CASE("server: unknown routes are 404 and wrong methods 405", "[server]") {
    Harness h;
    Client c(h.server->port());
    const Response missing = c.get("/v2/everything");
    CHECK(missing.result_int() == 404);
    CHECK(error_of(missing).at("code").as_string() == "unknown_url");
    const Response wrong = c.get("/v1/chat/completions");
    CHECK(wrong.result_int() == 405);
    CHECK(wrong[http::field::allow] == "POST");
    CHECK(c.post("/health", "").result_int() == 405);
    const Response no_model = c.post("/v1/embeddings", "{}");
    CHECK(no_model.result_int() == 400);
    CHECK(error_of(no_model).at("message").as_string() == "model: required field is missing");
    const Response get_embeddings = c.get("/v1/embeddings");
    CHECK(get_embeddings.result_int() == 405);
    CHECK(get_embeddings[http::field::allow] == "POST");
    CHECK(c.get("/v1/completions").result_int() == 405);
}

TEST_CASE("server: upstream errors keep the provider's status and message", "[server]") {
    Harness h({}, mock::fixed(429, R"({"error":{"message":"Rate limit reached","type":"tokens",)"
                                   R"("code":"rate_limit_exceeded"}})"));
    Client c(h.server->port());
    const Response res = c.post("/v1/chat/completions", chat_body);
    REQUIRE(res.result_int() == 429);
    const auto e = error_of(res);
    CHECK(e.at("message").as_string() == "Rate limit reached");
    CHECK(e.at("code").as_string() == "rate_limit_exceeded");
}

TEST_CASE("server: a deadline gives 504 and a full queue with dropping gives 503", "[server]") {
    SECTION("deadline") {
        srv::Options o;
        o.request_timeout = 50ms;
        Harness h(o, mock::hang());
        Client c(h.server->port());
        const Response res = c.post("/v1/chat/completions", chat_body);
        REQUIRE(res.result_int() == 504);
        CHECK(error_of(res).at("type").as_string() == "request_timed_out");
    }
    SECTION("queue full") {
        auto valve = std::make_shared<bifrost::transport::Valve>();
        Harness h({}, mock::held_by(valve), /*drop*/ true, /*concurrency*/ 1, /*buffer*/ 1);
        Client a(h.server->port()), b(h.server->port()), c(h.server->port());
        a.send(http::verb::post, "/v1/chat/completions", chat_body);
        REQUIRE(test::eventually([&] { return h.mock_stats().in_flight == 1; }));
        b.send(http::verb::post, "/v1/chat/completions", chat_body);
        REQUIRE(test::eventually([&] { return h.mock_stats().queue_depth == 1; }));
        const Response res = c.post("/v1/chat/completions", chat_body);
        CHECK(res.result_int() == 503);
        CHECK(error_of(res).at("type").as_string() == "request_dropped");
        valve->open();
        CHECK(a.read().result_int() == 200);
        CHECK(b.read().result_int() == 200);
    }
}

TEST_CASE("server: bodies over the limit get 413", "[server]") {
    srv::Options o;
    o.body_limit = 1024;
    Harness h(o);
    {
        Client c(h.server->port());
        const Response res = c.post("/v1/chat/completions", chat_for(std::string(4000, 'x')));
        CHECK(res.result_int() == 413);
        CHECK(error_of(res).at("code").as_string() == "request_too_large");
        CHECK(c.closed_by_server());
    }
    {
        // A chunked body has no length up front: the limit applies while it is read.
        Client c(h.server->port());
        c.send_raw(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "800\r\n" +
            std::string(0x800, 'x') + "\r\n0\r\n\r\n");
        CHECK(c.read().result_int() == 413);
    }
    Client ok(h.server->port());
    CHECK(ok.post("/v1/chat/completions", chat_body).result_int() == 200);
    CHECK(h.mock_stats().submitted == 1);
}

TEST_CASE("server: oversized headers get 431 and slow clients are cut off", "[server]") {
    srv::Options o;
    o.header_limit = 2048;
    o.read_timeout = 200ms;
    o.idle_timeout = 200ms;
    Harness h(o);
    {
        Client c(h.server->port());
        const Response res = c.get("/health", {{"x-padding", std::string(4096, 'p')}});
        CHECK(res.result_int() == 431);
    }
    {
        // Starts a request and never finishes it.
        Client c(h.server->port());
        c.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
        CHECK(c.closed_by_server());
    }
    {
        // Connects and says nothing.
        Client c(h.server->port());
        CHECK(c.closed_by_server());
    }
    CHECK(h.mock_stats().submitted == 0);
}

TEST_CASE("server: a connection kept alive after a chat answer is closed at the idle timeout",
          "[server]") {
    // The read that watched the request in flight is the one that waits for the next request:
    // it keeps the idle limit and serves what comes next.
    srv::Options o;
    o.idle_timeout = 200ms;
    Harness h(o);
    Client c(h.server->port());
    CHECK(content_of(c.post("/v1/chat/completions", chat_body)) == "Echo: Hello");
    CHECK(content_of(c.post("/v1/chat/completions", chat_body)) == "Echo: Hello");
    CHECK(c.get("/health").result_int() == 200);
    CHECK(content_of(c.post("/v1/chat/completions", chat_body)) == "Echo: Hello");
    CHECK(c.closed_by_server(5s));
    CHECK(h.mock_stats().completed == 3);
    CHECK(h.mock_stats().cancelled == 0);
}

TEST_CASE("server: the idle limit counts from each answer, not from the connection's start",
          "[server]") {
    // Five requests 150 ms apart under a 400 ms limit: the connection is older than the limit
    // by the fourth, yet never idle that long. The upstream answers after a millisecond, so
    // that (on workers) the read that watches each call is the one that waits for the next.
    srv::Options o;
    o.idle_timeout = 400ms;
    Harness h(o, mock::echo(1ms));
    Client c(h.server->port());
    for (int i = 0; i < 5; ++i) {
        if (i > 0) std::this_thread::sleep_for(150ms);
        CHECK(content_of(c.post("/v1/chat/completions", chat_body)) == "Echo: Hello");
    }
    const auto idle_from = std::chrono::steady_clock::now();
    CHECK(c.closed_by_server(10s));
    // Closed at the limit, not before it, nor at some later round of a sweep.
    const auto idle = std::chrono::steady_clock::now() - idle_from;
    CHECK(idle >= 300ms);
    CHECK(idle < 4s);
    CHECK(h.mock_stats().completed == 5);
}

TEST_CASE("server: stop closes a connection idle after a chat answer at once",
          "[server][concurrency]") {
    srv::Options o;
    o.drain_timeout = 20s;  // a connection stop() failed to close would hold it this long
    Harness h(o);
    Client c(h.server->port());
    CHECK(content_of(c.post("/v1/chat/completions", chat_body)) == "Echo: Hello");
    auto stopped = std::async(std::launch::async, [&] { h.server->stop(); });
    CHECK(c.closed_by_server(5s));
    CHECK(stopped.wait_for(5s) == std::future_status::ready);
}

TEST_CASE("server: virtual keys guard every route but /health", "[server]") {
    srv::Options o;
    o.virtual_keys = {{"team-a", bifrost::Secret("vk-team-a-secret"), true},
                      {"retired", bifrost::Secret("vk-retired"), false}};
    Harness h(o);
    Client c(h.server->port());

    const Response none = c.post("/v1/chat/completions", chat_body);
    CHECK(none.result_int() == 401);
    CHECK(error_of(none).at("code").as_string() == "invalid_api_key");
    CHECK(c.post("/v1/chat/completions", chat_body, {{"authorization", "Bearer vk-wrong"}})
              .result_int() == 401);
    CHECK(c.post("/v1/chat/completions", chat_body, {{"authorization", "Bearer vk-retired"}})
              .result_int() == 401);
    CHECK(c.get("/metrics").result_int() == 401);
    CHECK(h.mock_stats().submitted == 0);

    CHECK(c.post("/v1/chat/completions", chat_body, {{"authorization", "Bearer vk-team-a-secret"}})
              .result_int() == 200);
    CHECK(
        c.post("/v1/chat/completions", chat_body, {{"x-bf-vk", "vk-team-a-secret"}}).result_int() ==
        200);
    CHECK(c.get("/health").result_int() == 200);
    const Response metrics = c.get("/metrics", {{"authorization", "Bearer vk-team-a-secret"}});
    CHECK(metrics.result_int() == 200);

    // Neither the token nor the provider's API key appears in logs, metrics or bodies.
    const std::string log = h.log_text();
    CHECK(log.find(R"("virtual_key":"team-a")") != std::string::npos);
    for (std::string_view secret : {"vk-team-a-secret", "vk-wrong", "sk-test-key"}) {
        CHECK(log.find(secret) == std::string::npos);
        CHECK(metrics.body().find(secret) == std::string::npos);
        CHECK(none.body().find(secret) == std::string::npos);
    }
}

TEST_CASE("server: /metrics exposes request, latency and provider series", "[server]") {
    Harness h;
    Client c(h.server->port());
    REQUIRE(c.post("/v1/chat/completions", chat_body).result_int() == 200);
    REQUIRE(c.get("/nowhere").result_int() == 404);
    const Response res = c.get("/metrics");
    REQUIRE(res.result_int() == 200);
    CHECK(res[http::field::content_type].starts_with("text/plain; version=0.0.4"));
    const std::string& m = res.body();
    for (std::string_view series : {
             "# TYPE bifrost_http_requests_total counter",
             R"(bifrost_http_requests_total{route="/v1/chat/completions",status="200"} 1)",
             R"(bifrost_http_requests_total{route="unknown",status="404"} 1)",
             "# TYPE bifrost_upstream_latency_seconds histogram",
             R"(bifrost_upstream_latency_seconds_count{provider="mock"} 1)",
             R"(bifrost_gateway_overhead_seconds_bucket{provider="mock",le="+Inf"} 1)",
             "# TYPE bifrost_queue_wait_seconds histogram",
             R"(bifrost_queue_wait_seconds_count{provider="mock"} 1)",
             R"(bifrost_provider_retries_total{provider="mock"} 0)",
             R"(bifrost_provider_requests_total{provider="mock",outcome="dropped"} 0)",
             R"(bifrost_provider_requests_total{provider="mock",outcome="timed_out"} 0)",
             "bifrost_fallback_attempts_total 0",
             "bifrost_pool_hits_total ",
             "bifrost_pool_misses_total ",
             R"(bifrost_http_request_duration_seconds_count{route="/v1/chat/completions"} 1)",
             R"(bifrost_provider_queue_depth{provider="mock"} 0)",
             R"(bifrost_provider_queue_capacity{provider="mock"} 64)",
             R"(bifrost_provider_in_flight{provider="mock"} 0)",
             R"(bifrost_provider_requests_total{provider="mock",outcome="completed"} 1)",
             R"(bifrost_provider_circuit_state{provider="mock",state="closed"} 1)",
             R"(bifrost_provider_circuit_state{provider="mock",state="open"} 0)",
             "bifrost_pool_gets_total ",
         }) {
        INFO(series);
        CHECK(m.find(series) != std::string::npos);
    }
    // Every sample line is `name{labels} value` or `name value`.
    std::size_t pos = 0;
    while (pos < m.size()) {
        const std::size_t end = m.find('\n', pos);
        REQUIRE(end != std::string::npos);
        const std::string line = m.substr(pos, end - pos);
        pos = end + 1;
        if (line.starts_with("#")) continue;
        INFO(line);
        CHECK(line.starts_with("bifrost_"));
        CHECK(line.find(' ') != std::string::npos);
    }

    const Response stats = c.get("/api/stats");
    REQUIRE(stats.result_int() == 200);
    const auto doc = json::parse(stats.body());
    CHECK(doc.at("providers").at(0).at("name").as_string() == "mock");
    CHECK(doc.at("providers").at(0).at("completed").as_int64() == 1);
    CHECK(doc.at("server").at("requests").at("/v1/chat/completions").at("200").as_int64() == 1);
}

TEST_CASE("server: keep-alive serves several requests on one connection", "[server]") {
    Harness h;
    Client c(h.server->port());
    for (int i = 0; i < 5; ++i) {
        const Response res = c.post("/v1/chat/completions", chat_for("n" + std::to_string(i)));
        REQUIRE(res.result_int() == 200);
        CHECK(res.keep_alive());
        CHECK(content_of(res) == "Echo: n" + std::to_string(i));
    }
    CHECK(h.server->metrics().connections_total.load() == 1);
}

TEST_CASE("server: connections can run on the gateway's worker threads", "[server][concurrency]") {
    // The mock upstream runs on the provider's (one) worker thread: record where each call ran.
    auto upstream_threads = std::make_shared<std::mutex>();
    auto seen = std::make_shared<std::vector<std::thread::id>>();
    auto script = [upstream_threads, seen](bifrost::transport::MockCall& call) {
        mock::echo()(call);
        std::lock_guard lock(*upstream_threads);
        seen->push_back(std::this_thread::get_id());
    };
    const bool on_workers = GENERATE(false, true);
    // Under BIFROST_TEST_CONNECTIONS_ON_WORKERS every harness runs on workers; the run without
    // it covers the I/O threads.
    if (!on_workers && test::server_on_workers()) return;
    srv::Options o;
    o.connections_on_workers = on_workers;
    Harness h(o, script);
    CHECK(h.log_text().find(on_workers ? R"("connections":"workers")"
                                       : R"("connections":"io_threads")") != std::string::npos);

    // Several clients at once, each with a few keep-alive requests.
    constexpr int clients = 4;
    constexpr int per_client = 25;
    std::vector<std::future<int>> done;
    for (int k = 0; k < clients; ++k) {
        done.push_back(std::async(std::launch::async, [&h, k] {
            Client c(h.server->port());
            int ok = 0;
            for (int i = 0; i < per_client; ++i) {
                const std::string text = "c" + std::to_string(k) + "-" + std::to_string(i);
                const Response res = c.post("/v1/chat/completions", chat_for(text));
                if (res.result_int() == 200 && content_of(res) == "Echo: " + text) ++ok;
            }
            return ok;
        }));
    }
    for (auto& f : done)
        CHECK(f.get() == per_client);

    const auto served_on = h.threads_logging(R"("msg":"request")");
    REQUIRE(served_on.size() == clients * per_client);
    std::vector<std::thread::id> upstream;
    {
        std::lock_guard lock(*upstream_threads);
        upstream = *seen;
    }
    REQUIRE(upstream.size() == clients * per_client);
    const std::thread::id worker = upstream.front();
    for (const auto& t : upstream)
        REQUIRE(t == worker);
    for (const auto& t : served_on) {
        // On workers, the request is read, sent upstream and answered on the worker thread;
        // otherwise on an I/O thread, never the worker.
        if (on_workers)
            REQUIRE(t == worker);
        else
            REQUIRE(t != worker);
    }
}

TEST_CASE("server: requests in any HTTP/1.x framing are answered alike", "[server]") {
    srv::Options o;
    o.virtual_keys = {{"team-a", bifrost::Secret("vk-framing"), true}};
    Harness h(o);
    const std::string body = chat_for("framed");
    const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
    const std::string start = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";
    const std::string auth = "AUTHORIZATION: bearer   vk-framing\r\n";  // any case, any space
    const auto answered = [](const Response& res) {
        REQUIRE(res.result_int() == 200);
        CHECK(content_of(res) == "Echo: framed");
    };

    SECTION("the head in pieces, the body in pieces") {
        Client c(h.server->port());
        c.send_raw(start);
        std::this_thread::sleep_for(30ms);
        c.send_raw(auth + length + "\r\n" + body.substr(0, 10));
        std::this_thread::sleep_for(30ms);
        c.send_raw(body.substr(10));
        answered(c.read());
        // The whole head at once, the body after it.
        c.send_raw(start + auth + length + "\r\n");
        std::this_thread::sleep_for(30ms);
        c.send_raw(body);
        answered(c.read());
    }
    SECTION("a chunked body, then a plain request in the same write") {
        Client c(h.server->port());
        char size[16];
        std::snprintf(size, sizeof size, "%zx", body.size() - 5);
        c.send_raw(start + auth + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" +
                   body.substr(0, body.size() - 5) + "\r\n5\r\n" + body.substr(body.size() - 5) +
                   "\r\n0\r\n\r\n" + start + auth + length + "\r\n" + body);
        answered(c.read());
        answered(c.read());
    }
    SECTION("Expect: 100-continue") {
        Client c(h.server->port());
        c.send_raw(start + auth + length + "Expect: 100-continue\r\n\r\n");
        CHECK(c.read().result_int() == 100);
        c.send_raw(body);
        answered(c.read());
    }
    SECTION("HTTP/1.0 closes after the answer unless asked to keep the connection") {
        Client c(h.server->port());
        c.send_raw("POST /v1/chat/completions HTTP/1.0\r\n" + auth + length +
                   "Connection: keep-alive\r\n\r\n" + body);
        Response res = c.read();
        CHECK(res.version() == 10);
        CHECK(res.keep_alive());
        answered(res);
        c.send_raw("POST /v1/chat/completions HTTP/1.0\r\n" + auth + length + "\r\n" + body);
        res = c.read();
        CHECK(res.version() == 10);
        CHECK_FALSE(res.keep_alive());
        answered(res);
        CHECK(c.closed_by_server());
    }
    SECTION("Connection: close is honoured and said") {
        Client c(h.server->port());
        c.send_raw(start + auth + length + "Connection: close\r\n\r\n" + body);
        const Response res = c.read();
        CHECK(res[http::field::connection] == "close");
        answered(res);
        CHECK(c.closed_by_server());
    }
    SECTION("a request larger than a connection's reused storage, between small ones") {
        Client c(h.server->port());
        const std::string big(100 * 1024, 'z');
        const auto vk = std::vector<std::pair<std::string, std::string>>{
            {"authorization", "Bearer vk-framing"}};
        for (const std::string& text : {std::string("framed"), big, std::string("framed")}) {
            const Response res = c.post("/v1/chat/completions", chat_for(text), vk);
            REQUIRE(res.result_int() == 200);
            CHECK(content_of(res) == "Echo: " + text);
        }
    }
    SECTION("a malformed head is still a 400 naming the problem") {
        Client c(h.server->port());
        c.send_raw("POST /v1/chat/completions HTTP/1.1\r\nBad Name: x\r\n\r\n");
        const Response res = c.read();
        CHECK(res.result_int() == 400);
        CHECK(std::string(error_of(res).at("message").as_string()).find("malformed HTTP request") !=
              std::string::npos);
        CHECK(c.closed_by_server());
    }
}

TEST_CASE("server: pipelined requests are answered in order", "[server][concurrency]") {
    // Each answer takes a different time, the first the longest.
    auto script = [](bifrost::transport::MockCall& call) {
        mock::echo()(call);
        const auto& b = call.request.body;
        call.latency = b.find("first") != std::string::npos    ? 30ms
                       : b.find("second") != std::string::npos ? 10ms
                                                               : 1ms;
    };
    Harness h({}, script);
    Client c(h.server->port());
    const auto raw = [](const std::string& body) {
        return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    c.send_raw(raw(chat_for("first")) + raw(chat_for("second")) +
               "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + raw(chat_for("third")));
    CHECK(content_of(c.read()) == "Echo: first");
    CHECK(content_of(c.read()) == "Echo: second");
    const Response health = c.read();
    CHECK(health.result_int() == 200);
    CHECK(health.body() == R"({"status":"ok"})");
    CHECK(content_of(c.read()) == "Echo: third");
    CHECK(h.mock_stats().cancelled == 0);
}

TEST_CASE("server: a client that disconnects cancels its upstream call", "[server][concurrency]") {
    Harness h({}, mock::hang());
    {
        Client c(h.server->port());
        c.send(http::verb::post, "/v1/chat/completions", chat_body);
        REQUIRE(test::eventually([&] { return h.mock_stats().in_flight == 1; }));
        c.close();
    }
    CHECK(test::eventually([&] { return h.mock_stats().cancelled == 1; }));
    CHECK(test::eventually([&] { return h.mock_stats().in_flight == 0; }));
    CHECK(test::eventually([&] { return h.server->metrics().client_disconnects.load() == 1; }));
    CHECK(test::eventually([&] { return h.server->metrics().connections.load() == 0; }));
    CHECK(test::eventually(
        [&] { return h.log_text().find(R"("status":499)") != std::string::npos; }));
}

TEST_CASE("server: a server destroyed right after its last answer outlives every hand-over",
          "[server][concurrency]") {
    // The worker thread that completed the call may still be inside its post to the server's
    // loop when the client has its answer; ThreadSanitizer reports the loop destroyed under it.
    for (int round = 0; round < 100; ++round) {
        Harness h;
        Client c(h.server->port());
        const Response res = c.post("/v1/chat/completions", chat_body);
        REQUIRE(res.result_int() == 200);
        if (round % 2 == 1) {  // and once with the answer a cancellation
            Client gone(h.server->port());
            gone.send(http::verb::post, "/v1/chat/completions", chat_body);
            gone.close();
        }
    }
}

TEST_CASE("server: stop drains: in-flight requests finish, idle connections close",
          "[server][concurrency]") {
    auto valve = std::make_shared<bifrost::transport::Valve>();
    Harness h({}, mock::held_by(valve));
    Client busy(h.server->port());
    Client idle(h.server->port());
    REQUIRE(idle.get("/health").result_int() == 200);  // served and now idle
    busy.send(http::verb::post, "/v1/chat/completions", chat_body);
    REQUIRE(test::eventually([&] { return h.mock_stats().in_flight == 1; }));

    auto stopped = std::async(std::launch::async, [&] { h.server->stop(); });
    CHECK(idle.closed_by_server());
    // No new connections once draining.
    CHECK(test::eventually([&] {
        try {
            Client late(h.server->port());
            return late.closed_by_server();
        } catch (const std::exception&) {
            return true;  // refused
        }
    }));
    CHECK(stopped.wait_for(0s) == std::future_status::timeout);  // still draining
    valve->open();
    const Response res = busy.read();
    CHECK(res.result_int() == 200);
    CHECK(content_of(res) == "Echo: Hello");
    CHECK_FALSE(res.keep_alive());
    stopped.get();
    CHECK(h.mock_stats().cancelled == 0);
    CHECK(h.mock_stats().completed == 1);
}

// ---- embeddings and legacy text completions
// ------------------------------------------------------

namespace {

const std::string embedding_body =
    R"({"model":"mock/text-embedding-3-small","input":["alpha","beta"],"dimensions":4})";
const std::string completion_body =
    R"({"model":"mock/gpt-3.5-turbo-instruct","prompt":"Say hi","max_tokens":5})";

}  // namespace

TEST_CASE("server: embeddings are answered in OpenAI's format", "[server][operations]") {
    Harness h;
    Client c(h.server->port());
    for (std::string target : {"/v1/embeddings", "/openai/v1/embeddings", "/openai/embeddings"}) {
        const Response res = c.post(target, embedding_body);
        REQUIRE(res.result_int() == 200);
        CHECK(res[http::field::content_type] == "application/json");
        const auto doc = json::parse(res.body());
        CHECK(doc.at("object").as_string() == "list");
        const auto& data = doc.at("data").as_array();
        REQUIRE(data.size() == 2);
        CHECK(data[1].at("index").as_int64() == 1);
        CHECK(data[0].at("object").as_string() == "embedding");
        CHECK(data[0].at("embedding").as_array().size() == 4);
        CHECK(doc.at("model").as_string() == "text-embedding-3-small");
        CHECK(doc.at("usage").at("total_tokens").as_int64() > 0);
        CHECK(doc.at("extra_fields").at("provider").as_string() == "mock");
    }
    CHECK(h.mock_stats().completed == 3);
    const std::string log = h.log_text();
    CHECK(log.find(R"("route":"/v1/embeddings")") != std::string::npos);
    CHECK(log.find(R"("model":"mock/text-embedding-3-small")") != std::string::npos);
    CHECK(log.find(R"("upstream_ms":)") != std::string::npos);

    std::string metrics = c.get("/metrics").body();
    CHECK(metrics.find(R"(bifrost_http_requests_total{route="/v1/embeddings",status="200"} 3)") !=
          std::string::npos);
}

TEST_CASE("server: legacy text completions are answered in OpenAI's format",
          "[server][operations]") {
    Harness h;
    Client c(h.server->port());
    for (std::string target : {"/v1/completions", "/openai/v1/completions"}) {
        const Response res = c.post(target, completion_body);
        REQUIRE(res.result_int() == 200);
        const auto doc = json::parse(res.body());
        CHECK(doc.at("object").as_string() == "text_completion");
        CHECK(doc.at("choices").at(0).at("text").as_string() == "Echo: Say hi");
        CHECK(doc.at("choices").at(0).at("finish_reason").as_string() == "stop");
        CHECK(doc.at("model").as_string() == "gpt-3.5-turbo-instruct");
        CHECK(doc.at("extra_fields").at("provider").as_string() == "mock");
    }
    // A chat body is not a completion: the prompt is missing.
    const Response bad = c.post("/v1/completions", chat_body);
    CHECK(bad.result_int() == 400);
    CHECK(error_of(bad).at("message").as_string() == "prompt: required field is missing");
    const Response stream =
        c.post("/v1/completions", R"({"model":"mock/x","prompt":"p","stream":true})");
    CHECK(stream.result_int() == 400);
    CHECK(error_of(stream).at("param").as_string() == "stream");
}

TEST_CASE("server: embeddings and completions map errors as chat does", "[server][operations]") {
    SECTION("bad input says what and where") {
        Harness h;
        Client c(h.server->port());
        const Response res = c.post("/v1/embeddings", R"({"model":"mock/e","input":42})");
        REQUIRE(res.result_int() == 400);
        const auto e = error_of(res);
        CHECK(e.at("message").as_string() == "input: expected a string or an array, got a number");
        CHECK(e.at("param").as_string() == "input");
        const Response tok = c.post("/v1/embeddings", R"({"model":"mock/e","input":[1,"x"]})");
        REQUIRE(tok.result_int() == 400);
        CHECK(error_of(tok).at("message").as_string() ==
              "input[1]: expected an integer, got a string");
    }
    SECTION("unknown provider") {
        Harness h;
        Client c(h.server->port());
        const Response res = c.post("/v1/embeddings", R"({"model":"nope/e","input":"x"})");
        REQUIRE(res.result_int() == 400);
        CHECK(error_of(res).at("type").as_string() == "unknown_provider");
    }
    SECTION("upstream error keeps status and message") {
        Harness h({},
                  mock::fixed(429, R"({"error":{"message":"Rate limit reached","type":"tokens",)"
                                   R"("code":"rate_limit_exceeded"}})"));
        Client c(h.server->port());
        for (std::string target : {"/v1/embeddings", "/v1/completions"}) {
            const Response res =
                c.post(target, target == "/v1/embeddings" ? embedding_body : completion_body);
            REQUIRE(res.result_int() == 429);
            CHECK(error_of(res).at("message").as_string() == "Rate limit reached");
            CHECK(error_of(res).at("code").as_string() == "rate_limit_exceeded");
        }
    }
    SECTION("deadline") {
        srv::Options o;
        o.request_timeout = 50ms;
        Harness h(o, mock::hang());
        Client c(h.server->port());
        const Response res = c.post("/v1/embeddings", embedding_body);
        REQUIRE(res.result_int() == 504);
        CHECK(error_of(res).at("type").as_string() == "request_timed_out");
    }
}

TEST_CASE("server: virtual keys guard the embeddings and completions routes",
          "[server][operations]") {
    srv::Options o;
    o.virtual_keys = {{"team-a", bifrost::Secret("vk-secret-a"), true}};
    Harness h(o);
    Client c(h.server->port());
    CHECK(c.post("/v1/embeddings", embedding_body).result_int() == 401);
    CHECK(c.post("/v1/completions", completion_body).result_int() == 401);
    CHECK(c.post("/v1/embeddings", embedding_body, {{"Authorization", "Bearer vk-secret-a"}})
              .result_int() == 200);
    CHECK(c.post("/v1/completions", completion_body, {{"x-bf-vk", "vk-secret-a"}}).result_int() ==
          200);
    const std::string log = h.log_text();
    CHECK(log.find(R"("virtual_key":"team-a")") != std::string::npos);
    CHECK(log.find("vk-secret-a") == std::string::npos);
}

TEST_CASE("server: a client that disconnects cancels its embeddings call",
          "[server][operations][concurrency]") {
    Harness h({}, mock::hang());
    {
        Client c(h.server->port());
        c.send(http::verb::post, "/v1/embeddings", embedding_body);
        REQUIRE(test::eventually([&] { return h.mock_stats().in_flight == 1; }));
        c.close();
    }
    REQUIRE(test::eventually([&] { return h.mock_stats().cancelled == 1; }));
    CHECK(test::eventually(
        [&] { return h.log_text().find(R"("status":499)") != std::string::npos; }));
}

// ---- streaming
// -----------------------------------------------------------------------------------

namespace {

const std::string stream_body =
    R"({"model":"mock/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello there"}]})";

/// The `data:` payloads of an event-stream body, in order.
std::vector<std::string> events_of(const std::string& body) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
        const auto end = body.find("\n\n", at);
        REQUIRE(end != std::string::npos);
        out.push_back(body.substr(at + 6, end - at - 6));
        at = end + 2;
    }
    return out;
}

/// SSE chunks "w0 ".."w<n-1> " then `fault` (with [DONE] only when there is none).
bifrost::transport::MockScript sse_pieces(std::size_t n, bifrost::transport::MockCall::Fault fault,
                                          std::shared_ptr<std::atomic<int>> cancelled = nullptr) {
    return [=](bifrost::transport::MockCall& call) {
        for (std::size_t i = 0; i < n; ++i) {
            std::string p;
            mock::write_sse_chunk(p, "id-1", "m", true, "w" + std::to_string(i) + " ", {});
            call.stream.push_back(p);
        }
        if (fault == bifrost::transport::MockCall::Fault::none)
            call.stream.emplace_back("data: [DONE]\n\n");
        call.stream_interval = 1ms;
        call.fault = fault;
        if (cancelled) call.on_cancelled = [cancelled] { cancelled->fetch_add(1); };
    };
}

}  // namespace

TEST_CASE("server: \"stream\": true answers server-sent events, then [DONE]", "[server][stream]") {
    Harness h({}, mock::stream_echo(1ms));
    Client c(h.server->port());
    const Response res = c.post("/v1/chat/completions", stream_body);
    REQUIRE(res.result_int() == 200);
    CHECK(res[http::field::content_type] == "text/event-stream");
    CHECK(res.chunked());
    const auto events = events_of(res.body());
    REQUIRE(events.size() >= 3);
    CHECK(events.back() == "[DONE]");
    std::string text;
    bool usage = false;
    for (std::size_t i = 0; i + 1 < events.size(); ++i) {
        const auto doc = json::parse(events[i]).as_object();
        CHECK(doc.at("object").as_string() == "chat.completion.chunk");
        CHECK(doc.at("extra_fields").at("provider").as_string() == "mock");
        for (const auto& ch : doc.at("choices").as_array())
            if (const auto* d = ch.at("delta").as_object().if_contains("content"))
                text += std::string(d->as_string());
        if (doc.contains("usage") && !doc.at("usage").is_null()) usage = true;
    }
    CHECK(text == "Echo: Hello there");
    CHECK(usage);
    // The connection is kept alive after a stream that ended cleanly.
    const Response next = c.post("/v1/chat/completions", chat_body);
    CHECK(next.result_int() == 200);
    CHECK(test::eventually(
        [&] { return h.log_text().find(R"("status":200)") != std::string::npos; }));
}

TEST_CASE("server: a stream failing before its first chunk is a plain JSON error",
          "[server][stream]") {
    Harness h({}, mock::fixed(429, R"({"error":{"message":"slow down","type":"rate_limit"}})"));
    Client c(h.server->port());
    const Response res = c.post("/v1/chat/completions", stream_body);
    REQUIRE(res.result_int() == 429);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(error_of(res).at("message").as_string() == "slow down");
    CHECK(c.get("/health").result_int() == 200);
}

TEST_CASE("server: a stream failing after its first chunk ends with an error event",
          "[server][stream]") {
    Harness h({}, sse_pieces(2, bifrost::transport::MockCall::Fault::network_error));
    Client c(h.server->port());
    const Response res = c.post("/v1/chat/completions", stream_body);
    REQUIRE(res.result_int() == 200);  // the head went out with the first chunk
    const auto events = events_of(res.body());
    REQUIRE(events.size() == 3);
    CHECK(json::parse(events[0]).at("choices").at(0).at("delta").at("content") == "w0 ");
    const auto err = json::parse(events[2]).at("error").as_object();
    CHECK(err.at("type").as_string() == "network_error");
    CHECK(res.body().find("[DONE]") == std::string::npos);
    CHECK(test::eventually(
        [&] { return h.log_text().find(R"("status":502)") != std::string::npos; }));
}

TEST_CASE("server: a client leaving mid-stream cancels the upstream stream",
          "[server][stream][concurrency]") {
    auto cancelled = std::make_shared<std::atomic<int>>(0);
    Harness h({}, sse_pieces(2, bifrost::transport::MockCall::Fault::hang, cancelled));
    {
        Client c(h.server->port());
        c.send(http::verb::post, "/v1/chat/completions", stream_body);
        std::string got;
        while (got.find("w1 ") == std::string::npos)
            got += c.read_some_raw();
        CHECK(got.find("text/event-stream") != std::string::npos);
        c.close();
    }
    CHECK(test::eventually([&] { return cancelled->load() == 1; }));
    CHECK(test::eventually([&] { return h.mock_stats().in_flight == 0; }));
    CHECK(test::eventually([&] { return h.server->metrics().client_disconnects.load() == 1; }));
    CHECK(test::eventually([&] { return h.server->metrics().connections.load() == 0; }));
}

TEST_CASE("server: a client too slow for its stream is cut off, not buffered without bound",
          "[server][stream]") {
    // ~13 MB of events at full speed against a 64 KiB buffer and a client that reads nothing
    // until the upstream stream has been cancelled: more than the kernel's socket buffers hold.
    auto cancelled = std::make_shared<std::atomic<int>>(0);
    constexpr std::size_t pieces = 12'000;
    auto script = [cancelled](bifrost::transport::MockCall& call) {
        const std::string text(1000, 'x');
        for (std::size_t i = 0; i < pieces; ++i) {
            std::string p;
            mock::write_sse_chunk(p, "id-1", "m", true, text, {});
            call.stream.push_back(std::move(p));
        }
        call.stream.emplace_back("data: [DONE]\n\n");
        call.on_cancelled = [cancelled] { cancelled->fetch_add(1); };
    };
    srv::Options o;
    o.stream_buffer_limit = 64 * 1024;
    Harness h(o, script);
    Client c(h.server->port());
    c.send(http::verb::post, "/v1/chat/completions", stream_body);
    REQUIRE(test::eventually([&] { return cancelled->load() == 1; }, 10s));
    std::string got;
    while (got.size() < 5 || got.compare(got.size() - 5, 5, "0\r\n\r\n") != 0)
        got += c.read_some_raw();
    CHECK(got.find("text/event-stream") != std::string::npos);
    CHECK(got.find(R"("type":"stream_buffer_overflow")") != std::string::npos);
    CHECK(got.find("[DONE]") == std::string::npos);
    CHECK(got.size() < pieces * 1000);
    CHECK(test::eventually([&] { return h.mock_stats().in_flight == 0; }));
    CHECK(test::eventually(
        [&] { return h.log_text().find(R"("status":503)") != std::string::npos; }));
    // The stream ended cleanly for HTTP: the connection serves the next request.
    CHECK(c.get("/health").result_int() == 200);
}
