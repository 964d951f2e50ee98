// transport::Beast's connect timeout: an upstream whose listen queue is full never completes the
// TCP handshake, so only the transport's connect bound ends the attempt.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>
#include <bifrost/transport/beast.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;

TEST_CASE("beast: a connection that never completes ends at the connect timeout", "[beast]") {
    // A listener that never accepts, with a backlog of one: once its accept queue is full the
    // kernel drops further SYNs, and a new connection hangs in its handshake.
    asio::io_context ioc;
    asio::ip::tcp::acceptor stalled(ioc);
    const asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), 0);
    stalled.open(at.protocol());
    stalled.bind(at);
    stalled.listen(1);
    const auto port = stalled.local_endpoint().port();
    std::vector<asio::ip::tcp::socket> fillers;
    for (int i = 0; i < 4; ++i) {
        asio::ip::tcp::socket s(ioc);
        s.open(asio::ip::tcp::v4());
        s.non_blocking(true);
        boost::system::error_code ignored;
        s.connect({asio::ip::make_address("127.0.0.1"), port}, ignored);
        fillers.push_back(std::move(s));
    }

    using BeastGateway = bifrost::Gateway<bifrost::transport::Beast, bifrost::queue::Block,
                                          bifrost::pool::Preallocated>;
    BeastGateway gw(test::options());
    auto cfg = test::provider_config(2, 16);
    cfg.network_config.base_url = "http://127.0.0.1:" + std::to_string(port);
    cfg.network_config.default_request_timeout = 60s;  // the deadline is not what ends it
    cfg.circuit_breaker.failure_threshold = 0;
    bifrost::transport::Beast::Options topts;
    topts.connect_timeout = 200ms;
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("p", cfg, bifrost::providers::OpenAI{}, topts));
    const bifrost::Result r = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().type == "network_error");
    CHECK(r.error().message.find("sk-test-key") == std::string::npos);
}
