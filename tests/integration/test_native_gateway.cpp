// Native providers through the gateway, against scripted upstreams speaking each provider's
// dialect: a plain answer, an upstream error keeping its status, and a fallback from one native
// provider to another.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/json/parse.hpp>

#include <mutex>
#include <string>
#include <vector>

using bifrost::transport::MockCall;
using test::MockGateway;

namespace {

struct Seen {
    std::mutex m;
    std::vector<bifrost::HttpRequest> requests;
    void add(const bifrost::HttpRequest& r) {
        std::lock_guard l(m);
        requests.push_back(r);
    }
};

bifrost::ProviderConfig config_with(bifrost::Key key) {
    auto cfg = test::provider_config();
    cfg.keys = {std::move(key)};
    return cfg;
}

}  // namespace

TEST_CASE("native gateway: an Anthropic answer reaches the caller in the unified schema",
          "[native][gateway]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.network_config.base_url = "http://anthropic.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Anthropic>(
        "anthropic", cfg, {[&](MockCall& call) {
            seen.add(call.request);
            call.response.body =
                R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku",
                    "content":[{"type":"text","text":"Bonjour"}],"stop_reason":"end_turn",
                    "usage":{"input_tokens":7,"output_tokens":2}})";
        }}));

    auto req = test::request("anthropic/claude-3-5-haiku", "Say hello in French");
    req.messages.insert(req.messages.begin(),
                        {bifrost::Role::system, "Be brief.", {}, {}, {}, {}, {}});
    const auto r = gw.chat(req);
    REQUIRE(r.ok());
    CHECK(r->choices.at(0).message.content == "Bonjour");
    CHECK(r->choices.at(0).finish_reason == "stop");
    CHECK(r->usage->total_tokens == 9);
    CHECK(r->extra_fields.provider == "anthropic");

    std::lock_guard l(seen.m);
    REQUIRE(seen.requests.size() == 1);
    CHECK(seen.requests[0].url == "http://anthropic.test/v1/messages");
    CHECK(seen.requests[0].headers.get("x-api-key") == "sk-test-key");
    const auto body = boost::json::parse(seen.requests[0].body).as_object();
    CHECK(body.at("system").as_string() == "Be brief.");
    CHECK(body.at("model").as_string() == "claude-3-5-haiku");
    CHECK(body.at("max_tokens").as_int64() == 4096);
}

TEST_CASE(
    "native gateway: an upstream error keeps its status; a fallback to another native "
    "provider serves",
    "[native][gateway]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto anthropic = test::provider_config();
    anthropic.network_config.base_url = "http://anthropic.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Anthropic>(
        "anthropic", anthropic, {[&](MockCall& call) {
            seen.add(call.request);
            call.response.status = 400;
            call.response.body =
                R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}})";
        }}));
    auto gemini = config_with({bifrost::Secret("AIza-test"), {}, 1.0, true, "g", {}});
    gemini.network_config.base_url = "http://gemini.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Gemini>(
        "gemini", gemini, {[&](MockCall& call) {
            seen.add(call.request);
            call.response.body =
                R"({"candidates":[{"content":{"parts":[{"text":"Hej"}],"role":"model"},"finishReason":"STOP","index":0}],
                    "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4},
                    "modelVersion":"gemini-2.0-flash"})";
        }}));

    auto plain = gw.chat(test::request("anthropic/claude-3-5-haiku", "hi"));
    REQUIRE_FALSE(plain.ok());
    CHECK(plain.error().status == 400);
    CHECK(plain.error().type == "invalid_request_error");
    CHECK(plain.error().message == "max_tokens: too large");

    auto req = test::request("anthropic/claude-3-5-haiku", "hi");
    req.fallbacks = {"gemini/gemini-2.0-flash"};
    const auto r = gw.chat(req);
    REQUIRE(r.ok());
    CHECK(r->extra_fields.provider == "gemini");
    CHECK(r->choices.at(0).message.content == "Hej");
    CHECK(r->usage->total_tokens == 4);

    std::lock_guard l(seen.m);
    REQUIRE(seen.requests.size() == 3);
    CHECK(seen.requests[2].url ==
          "http://gemini.test/v1beta/models/gemini-2.0-flash:generateContent");
    CHECK(seen.requests[2].headers.get("x-goog-api-key") == "AIza-test");
}
