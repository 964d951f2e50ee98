// bifrost-http's server with real sockets on both sides: clients over loopback, a gateway on
// transport::Beast, and the in-tree mock upstream (tests/mock_upstream.hpp) behind it.

#include "bifrost_catch.hpp"
#include "mock_upstream.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>
#include <bifrost/server/server.hpp>
#include <bifrost/transport/beast.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace srv = bifrost::server;

namespace {

using BeastGateway =
    bifrost::Gateway<bifrost::transport::Beast, bifrost::queue::Block, bifrost::pool::Preallocated>;
using Response = http::response<http::string_body>;

/// The server in front of two providers: `up` at the mock upstream and `down` at a loopback
/// port nothing listens on.
struct Stack {
    Stack() : gw(test::options()) {
        auto cfg = test::provider_config(8, 64);
        cfg.network_config.base_url = upstream.base_url();
        cfg.circuit_breaker.failure_threshold = 0;
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("up", cfg));
        auto down = cfg;
        down.network_config.base_url = "http://127.0.0.1:" + std::to_string(closed_port());
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("down", down));
        srv::Options o;
        o.port = 0;
        o.io_threads = 2;
        o.connections_on_workers = test::server_on_workers();
        o.drain_timeout = 5s;
        o.models = {{"up", {"gpt-4o-mini"}}};
        o.logger = srv::Logger(srv::LogLevel::error, [](std::string_view) {});
        server = std::make_unique<srv::Server<BeastGateway>>(gw, std::move(o));
        REQUIRE_FALSE(server->start().has_value());
    }
    ~Stack() { server->stop(); }

    static unsigned short closed_port() {
        asio::io_context ioc;
        asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
        return a.local_endpoint().port();
    }

    test::MockUpstream upstream;
    BeastGateway gw;
    std::unique_ptr<srv::Server<BeastGateway>> server;
};

/// One blocking client connection.
struct Client {
    explicit Client(std::uint16_t port) : socket(ioc) {
        socket.connect({asio::ip::make_address("127.0.0.1"), port});
    }
    void send(http::verb method, const std::string& target, const std::string& body = {}) {
        http::request<http::string_body> req(method, target, 11);
        req.set(http::field::host, "127.0.0.1");
        if (!body.empty()) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        http::write(socket, req);
    }
    Response call(http::verb method, const std::string& target, const std::string& body = {}) {
        send(method, target, body);
        Response res;
        http::read(socket, buffer, res);
        return res;
    }
    asio::io_context ioc;
    asio::ip::tcp::socket socket;
    beast::flat_buffer buffer;
};

std::string chat(std::string_view model, std::string_view text, std::string_view more = {}) {
    return R"({"model":")" + std::string(model) + R"(",)" + std::string(more) +
           R"("messages":[{"role":"user","content":")" + std::string(text) + R"("}]})";
}

}  // namespace

TEST_CASE("server over beast: every route reaches the mock upstream and comes back",
          "[server][beast]") {
    Stack s;
    Client c(s.server->port());

    const Response plain = c.call(http::verb::post, "/v1/chat/completions", chat("up/m", "hi"));
    REQUIRE(plain.result_int() == 200);
    const auto doc = json::parse(plain.body());
    CHECK(doc.at("choices").at(0).at("message").at("content").as_string() == "Echo: hi");
    auto seen = s.upstream.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].target == "/v1/chat/completions");
    CHECK(seen[0].authorization == "Bearer sk-test-key");
    CHECK(json::parse(seen[0].body).at("model").as_string() == "m");

    const Response streamed = c.call(http::verb::post, "/openai/v1/chat/completions",
                                     chat("up/m", "one two", R"("stream":true,)"));
    REQUIRE(streamed.result_int() == 200);
    CHECK(streamed[http::field::content_type] == "text/event-stream");
    CHECK(streamed.body().find("chat.completion.chunk") != std::string::npos);
    CHECK(streamed.body().ends_with("data: [DONE]\n\n"));

    const Response emb = c.call(http::verb::post, "/v1/embeddings",
                                R"({"model":"up/text-embedding-3-small","input":["a","b"]})");
    REQUIRE(emb.result_int() == 200);
    CHECK(json::parse(emb.body()).at("data").as_array().size() == 2);

    const Response legacy =
        c.call(http::verb::post, "/v1/completions", R"({"model":"up/m","prompt":"say"})");
    REQUIRE(legacy.result_int() == 200);
    CHECK(json::parse(legacy.body()).at("object").as_string() == "text_completion");

    const Response models = c.call(http::verb::get, "/v1/models");
    REQUIRE(models.result_int() == 200);
    CHECK(models.body().find("up/gpt-4o-mini") != std::string::npos);

    seen = s.upstream.seen();
    REQUIRE(seen.size() == 4);
    CHECK(seen[2].target == "/v1/embeddings");
    CHECK(seen[3].target == "/v1/completions");
    // One keep-alive connection upstream served all four calls of this one client.
    CHECK(s.upstream.connections() <= 2);
}

TEST_CASE("server over beast: upstream errors keep their status, fallbacks rescue",
          "[server][beast]") {
    Stack s;
    Client c(s.server->port());
    s.upstream.set({.status = 429});
    const Response limited = c.call(http::verb::post, "/v1/chat/completions", chat("up/m", "x"));
    CHECK(limited.result_int() == 429);
    CHECK(json::parse(limited.body()).at("error").at("message").as_string() ==
          "mock upstream error");
    s.upstream.set({});

    const Response down = c.call(http::verb::post, "/v1/chat/completions", chat("down/m", "x"));
    CHECK(down.result_int() == 502);
    CHECK(json::parse(down.body()).at("error").at("type").as_string() == "network_error");

    const Response rescued = c.call(http::verb::post, "/v1/chat/completions",
                                    chat("down/m", "saved", R"("fallbacks":["up/m2"],)"));
    REQUIRE(rescued.result_int() == 200);
    const auto doc = json::parse(rescued.body());
    CHECK(doc.at("choices").at(0).at("message").at("content").as_string() == "Echo: saved");
    CHECK(doc.at("extra_fields").at("provider").as_string() == "up");
}

TEST_CASE("server over beast: a client leaving mid-stream closes the upstream stream",
          "[server][beast][stream]") {
    Stack s;
    s.upstream.set({.stream_chunks = 200, .stream_interval = 20ms});
    {
        Client c(s.server->port());
        c.send(http::verb::post, "/v1/chat/completions",
               chat("up/m", "a b c", R"("stream":true,)"));
        std::string got;
        char buf[4096];
        while (got.find("chat.completion.chunk") == std::string::npos)
            got.append(buf, c.socket.read_some(asio::buffer(buf)));
    }  // the client goes away
    CHECK(test::eventually([&] { return s.upstream.streams_cut_by_client() == 1; }));
    CHECK(test::eventually([&] { return s.gw.stats().provider("up")->in_flight == 0; }));
}
