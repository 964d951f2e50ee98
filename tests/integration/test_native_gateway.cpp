// Native providers through the gateway, against scripted upstreams speaking each provider's
// dialect: plain answers and upstream errors keeping their status (Anthropic, Azure, Bedrock,
// Cohere, Gemini), a stream in every dialect, embeddings, a fallback from one native provider to
// another, and Vertex AI with the service-account token exchange run by the engine (the scripted
// transport answers the token endpoint too).

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <bifrost/providers/detail/eventstream.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using bifrost::transport::MockCall;
using test::MockGateway;
using namespace std::chrono_literals;

namespace {

struct Seen {
    std::mutex m;
    std::vector<bifrost::HttpRequest> requests;
    void add(const bifrost::HttpRequest& r) {
        std::lock_guard l(m);
        requests.push_back(r);
    }
    std::size_t count() {
        std::lock_guard l(m);
        return requests.size();
    }
    bifrost::HttpRequest last() {
        std::lock_guard l(m);
        return requests.back();
    }
};

/// Collects a stream's text and finish reason (chunks arrive on a worker thread).
struct Collector {
    std::mutex m;
    std::string text;
    std::string finish;
    std::size_t chunks = 0;
    bool operator()(const bifrost::StreamChunk& c) {
        std::lock_guard l(m);
        ++chunks;
        for (const auto& d : c.choices) {
            if (d.content) text += *d.content;
            if (!d.finish_reason.empty()) finish = d.finish_reason;
        }
        return true;
    }
};

/// A script answering with `body` (status 200), or with `error_status` and `error_body` when
/// the request's body mentions "fail".
bifrost::transport::MockScript plain_or_error(
    Seen& seen, std::string body, int error_status, std::string error_body,
    std::vector<std::pair<std::string, std::string>> error_headers = {}) {
    return [&seen, body = std::move(body), error_status, error_body = std::move(error_body),
            error_headers = std::move(error_headers)](MockCall& call) {
        seen.add(call.request);
        if (call.request.body.find("fail") != std::string::npos) {
            call.response.status = error_status;
            call.response.body = error_body;
            for (const auto& [n, v] : error_headers)
                call.response.headers.add(n, v);
            return;
        }
        call.response.body = body;
    };
}

/// A script streaming `pieces` (each its own delivery).
bifrost::transport::MockScript streaming(Seen& seen, std::vector<std::string> pieces,
                                         std::string content_type) {
    return [&seen, pieces = std::move(pieces),
            content_type = std::move(content_type)](MockCall& call) {
        seen.add(call.request);
        call.response.headers.add("content-type", content_type);
        call.stream = pieces;
    };
}

/// An SSE event with an `event:` line.
std::string sse(std::string_view event, std::string_view data) {
    std::string s("event: ");
    s.append(event).append("\ndata: ").append(data).append("\n\n");
    return s;
}

/// An SSE event with data only.
std::string data(std::string_view json) {
    return std::string("data: ").append(json).append("\n\n");
}

/// One ConverseStream event-stream frame.
std::string frame(const char* type, const char* payload) {
    return bifrost::providers::detail::eventstream::encode(
        {{":event-type", type}, {":content-type", "application/json"}, {":message-type", "event"}},
        payload);
}

constexpr const char* bedrock_config =
    R"({"access_key": "AKIDEXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "region": "eu-central-1", "deployments": {"claude": "anthropic.claude-3-haiku-20240307-v1:0"}})";

bifrost::Key settings_key(std::string value, std::string_view name, std::string_view json) {
    bifrost::Key k{bifrost::Secret(std::move(value)), {}, 1.0, true, "k", {}};
    k.settings[name] = boost::json::parse(json);
    return k;
}

/// A fresh RSA private key as PEM (the service account's, for the JWT the engine signs).
std::string make_pem() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(2048), &EVP_PKEY_free);
    REQUIRE(key);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
            1);
    char* bytes = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &bytes);
    return std::string(bytes, static_cast<std::size_t>(n));
}

const std::string& service_account_pem() {
    static const std::string pem = make_pem();
    return pem;
}

constexpr std::string_view token_url = "http://oauth.test/token";
constexpr std::string_view account = "gw@my-proj.iam.gserviceaccount.com";

/// A Vertex key whose service account exchanges at `token_url`.
bifrost::Key vertex_key() {
    const boost::json::object sa{{"type", "service_account"},
                                 {"client_email", account},
                                 {"private_key", service_account_pem()},
                                 {"private_key_id", "k1"},
                                 {"token_uri", token_url}};
    bifrost::Key k{bifrost::Secret(), {}, 1.0, true, "vx", {}};
    k.settings["vertex_key_config"] = boost::json::object{
        {"project_id", "my-proj"},
        {"region", "us-central1"},
        {"auth_credentials", boost::json::serialize(sa)}};  // as a string, as configs hold it
    return k;
}

/// A scripted Vertex upstream: the token endpoint (counted; `token_latency`, or refusing when
/// `refuse`, or hanging when `hang`) and the model endpoint (Gemini's answer, or a stream).
struct VertexUpstream {
    std::atomic<int> token_calls{0};
    std::atomic<int> model_calls{0};
    std::chrono::milliseconds token_latency{0};
    std::atomic<bool> refuse{false};
    std::atomic<bool> hang{false};
    std::mutex m;
    std::vector<std::string> authorizations;
    std::vector<std::string> urls;

    bifrost::transport::MockScript script() {
        return [this](MockCall& call) {
            if (call.request.url == token_url) {
                ++token_calls;
                CHECK(call.request.headers.get("content-type") ==
                      "application/x-www-form-urlencoded");
                CHECK(call.request.body.find("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%"
                                             "3Ajwt-bearer&assertion=") == 0);
                call.latency = token_latency;
                if (hang) {
                    call.fault = MockCall::Fault::hang;
                } else if (refuse) {
                    call.response.status = 400;
                    call.response.body =
                        R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})";
                } else {
                    call.response.body =
                        R"({"access_token":"ya29.engine-token","expires_in":3599,"token_type":"Bearer"})";
                }
                return;
            }
            ++model_calls;
            {
                std::lock_guard l(m);
                authorizations.emplace_back(call.request.headers.get("authorization"));
                urls.push_back(call.request.url);
            }
            if (call.request.url.ends_with(":predict")) {
                call.response.body =
                    R"({"predictions":[{"embeddings":{"values":[0.25,-0.5],"statistics":{"token_count":3}}}]})";
            } else if (call.request.url.find("alt=sse") != std::string::npos) {
                call.stream = {
                    data(
                        R"({"candidates":[{"content":{"parts":[{"text":"Hal"}],"role":"model"},"index":0}],"responseId":"v1"})"),
                    data(
                        R"({"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":2,"totalTokenCount":4},"responseId":"v1"})")};
            } else {
                call.response.body =
                    R"({"candidates":[{"content":{"parts":[{"text":"Hallo"}],"role":"model"},"finishReason":"STOP","index":0}],
                        "usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1,"totalTokenCount":3},"modelVersion":"gemini-2.0-flash-001"})";
            }
        };
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

TEST_CASE("native gateway: Azure answers and errors through its deployment URL",
          "[native][gateway]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto cfg = config_with(settings_key("az-key", "azure_key_config",
                                        R"({"endpoint": "http://azure.test",
                                            "deployments": {"gpt-4o": "prod-4o"},
                                            "api_version": "2024-10-21"})"));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Azure>(
        "azure", cfg,
        {plain_or_error(
            seen,
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
                "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
            429,
            R"({"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded the rate limit."}})")}));

    const auto r = gw.chat(test::request("azure/gpt-4o", "hello"));
    REQUIRE(r.ok());
    CHECK(r->choices.at(0).message.content == "Hi there");
    CHECK(r->usage->total_tokens == 5);
    CHECK(r->extra_fields.provider == "azure");
    const auto sent = seen.last();
    CHECK(sent.url ==
          "http://azure.test/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21");
    CHECK(sent.headers.get("api-key") == "az-key");

    const auto e = gw.chat(test::request("azure/gpt-4o", "please fail"));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().status == 429);
    CHECK(e.error().provider == "azure");
    CHECK(e.error().message.find("exceeded the rate limit") != std::string::npos);
}

TEST_CASE("native gateway: Bedrock answers and errors through signed Converse calls",
          "[native][gateway]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto cfg = config_with(settings_key("", "bedrock_key_config", bedrock_config));
    cfg.network_config.base_url = "http://bedrock.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Bedrock>(
        "bedrock", cfg,
        {plain_or_error(
            seen,
            R"({"output":{"message":{"role":"assistant","content":[{"text":"Hei"}]}},
                "stopReason":"max_tokens","usage":{"inputTokens":4,"outputTokens":1,"totalTokens":5}})",
            400, R"({"message":"The provided model identifier is invalid."})",
            {{"x-amzn-ErrorType", "ValidationException:http://internal.amazon.com/coral/"}})}));

    const auto r = gw.chat(test::request("bedrock/claude", "hello"));
    REQUIRE(r.ok());
    CHECK(r->choices.at(0).message.content == "Hei");
    CHECK(r->choices.at(0).finish_reason == "length");
    CHECK(r->usage->total_tokens == 5);
    const auto sent = seen.last();
    CHECK(sent.url ==
          "http://bedrock.test/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
    CHECK(
        sent.headers.get("authorization").starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    CHECK(sent.headers.get("authorization").find("/eu-central-1/bedrock/aws4_request") !=
          std::string::npos);

    const auto e = gw.chat(test::request("bedrock/claude", "please fail"));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().status == 400);
    CHECK(e.error().type == "ValidationException");
    CHECK(e.error().message == "The provided model identifier is invalid.");
    CHECK(e.error().message.find("wJalr") == std::string::npos);
}

TEST_CASE("native gateway: Cohere answers and errors through /v2/chat", "[native][gateway]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.network_config.base_url = "http://cohere.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Cohere>(
        "cohere", cfg,
        {plain_or_error(seen,
                        R"({"id":"c-1","finish_reason":"COMPLETE","message":{"role":"assistant",
                "content":[{"type":"text","text":"Salut"}]},
                "usage":{"billed_units":{"input_tokens":3,"output_tokens":1},"tokens":{"input_tokens":9,"output_tokens":1}}})",
                        401, R"({"id":"e-1","message":"invalid api token"})")}));

    const auto r = gw.chat(test::request("cohere/command-r-plus", "hello"));
    REQUIRE(r.ok());
    CHECK(r->choices.at(0).message.content == "Salut");
    CHECK(r->choices.at(0).finish_reason == "stop");
    CHECK(r->usage->total_tokens == 10);
    const auto sent = seen.last();
    CHECK(sent.url == "http://cohere.test/v2/chat");
    CHECK(sent.headers.get("authorization") == "Bearer sk-test-key");
    CHECK(boost::json::parse(sent.body).at("model").as_string() == "command-r-plus");

    const auto e = gw.chat(test::request("cohere/command-r-plus", "please fail"));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().status == 401);
    CHECK(e.error().message == "invalid api token");
    CHECK(e.error().provider == "cohere");
}

TEST_CASE("native gateway: Gemini answers and errors through generateContent",
          "[native][gateway]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto cfg = config_with({bifrost::Secret("AIza-test"), {}, 1.0, true, "g", {}});
    cfg.network_config.base_url = "http://gemini.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Gemini>(
        "gemini", cfg,
        {plain_or_error(
            seen,
            R"({"candidates":[{"content":{"parts":[{"text":"Hola"}],"role":"model"},"finishReason":"SAFETY","index":0}],
                "usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1,"totalTokenCount":3},"modelVersion":"gemini-2.0-flash"})",
            400,
            R"({"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}})")}));

    const auto r = gw.chat(test::request("gemini/gemini-2.0-flash", "hello"));
    REQUIRE(r.ok());
    CHECK(r->choices.at(0).message.content == "Hola");
    CHECK(r->choices.at(0).finish_reason == "content_filter");
    CHECK(r->usage->total_tokens == 3);

    const auto e = gw.chat(test::request("gemini/gemini-2.0-flash", "please fail"));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().status == 400);
    CHECK(e.error().type == "INVALID_ARGUMENT");
    CHECK(e.error().message == "API key not valid. Please pass a valid API key.");
    CHECK(seen.last().url.find("AIza") == std::string::npos);
}

TEST_CASE("native gateway: every native dialect streams through the gateway",
          "[native][gateway][stream]") {
    Seen seen;
    MockGateway<> gw(test::options());

    auto anthropic = test::provider_config();
    anthropic.network_config.base_url = "http://anthropic.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Anthropic>(
        "anthropic", anthropic,
        {streaming(
            seen,
            {sse("message_start",
                 R"({"type":"message_start","message":{"id":"msg_s","type":"message","role":"assistant","model":"claude-3-5-haiku","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}})"),
             sse("content_block_start",
                 R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
             sse("ping", R"({"type":"ping"})"),
             sse("content_block_delta",
                 R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bon"}})"),
             sse("content_block_delta",
                 R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"jour"}})"),
             sse("content_block_stop", R"({"type":"content_block_stop","index":0})"),
             sse("message_delta",
                 R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}})"),
             sse("message_stop", R"({"type":"message_stop"})")},
            "text/event-stream")}));

    auto azure = config_with(
        settings_key("az-key", "azure_key_config", R"({"endpoint": "http://azure.test"})"));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Azure>(
        "azure", azure,
        {streaming(
            seen,
            {data(
                 R"({"id":"","object":"","created":0,"model":"","choices":[],"prompt_filter_results":[]})"),
             data(
                 R"({"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Bon"},"finish_reason":null}]})"),
             data(
                 R"({"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"jour"},"finish_reason":"stop"}]})"),
             "data: [DONE]\n\n"},
            "text/event-stream")}));

    auto gemini = config_with({bifrost::Secret("AIza-test"), {}, 1.0, true, "g", {}});
    gemini.network_config.base_url = "http://gemini.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Gemini>(
        "gemini", gemini,
        {streaming(
            seen,
            {data(
                 R"({"candidates":[{"content":{"parts":[{"text":"Bon"}],"role":"model"},"index":0}],"responseId":"g1"})"),
             data(
                 R"({"candidates":[{"content":{"parts":[{"text":"jour"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":2,"totalTokenCount":4},"responseId":"g1"})")},
            "text/event-stream")}));

    auto cohere = test::provider_config();
    cohere.network_config.base_url = "http://cohere.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Cohere>(
        "cohere", cohere,
        {streaming(
            seen,
            {sse("message-start",
                 R"({"id":"c-s","type":"message-start","delta":{"message":{"role":"assistant","content":[]}}})"),
             sse("content-start",
                 R"({"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}})"),
             sse("content-delta",
                 R"({"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Bon"}}}})"),
             sse("content-delta",
                 R"({"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"jour"}}}})"),
             sse("content-end", R"({"type":"content-end","index":0})"),
             sse("message-end",
                 R"({"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":3,"output_tokens":2}}}})")},
            "text/event-stream")}));

    auto bedrock = config_with(settings_key("", "bedrock_key_config", bedrock_config));
    bedrock.network_config.base_url = "http://bedrock.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Bedrock>(
        "bedrock", bedrock,
        {streaming(
            seen,
            {frame("messageStart", R"({"role":"assistant"})"),
             frame("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Bon"}})"),
             frame("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"jour"}})"),
             frame("contentBlockStop", R"({"contentBlockIndex":0})"),
             frame("messageStop", R"({"stopReason":"end_turn"})"),
             frame(
                 "metadata",
                 R"({"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":12}})")},
            "application/vnd.amazon.eventstream")}));

    VertexUpstream vertex_up;
    auto vertex = config_with(vertex_key());
    vertex.network_config.base_url = "http://vertex.test";
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::Vertex>("vertex", vertex, {vertex_up.script()}));

    const std::vector<std::pair<std::string, std::string>> cases{
        {"anthropic/claude-3-5-haiku", "http://anthropic.test/v1/messages"},
        {"azure/gpt-4o",
         "http://azure.test/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"},
        {"gemini/gemini-2.0-flash",
         "http://gemini.test/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"},
        {"cohere/command-r", "http://cohere.test/v2/chat"},
        {"bedrock/claude",
         "http://bedrock.test/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"},
    };
    for (const auto& [model, url] : cases) {
        CAPTURE(model);
        Collector col;
        const auto before = seen.count();
        const auto r = gw.chat_stream(test::request(model, "hello"), std::ref(col));
        REQUIRE(r.ok());
        CHECK(col.text == "Bonjour");
        CHECK(col.finish == "stop");
        CHECK(r->choices.at(0).finish_reason == "stop");
        REQUIRE(seen.count() == before + 1);
        CHECK(seen.last().url == url);
    }

    Collector col;
    const auto r = gw.chat_stream(test::request("vertex/gemini-2.0-flash", "hello"), std::ref(col));
    REQUIRE(r.ok());
    CHECK(col.text == "Hallo");
    CHECK(col.finish == "stop");
    REQUIRE(r->usage);
    CHECK(r->usage->total_tokens == 4);
    CHECK(vertex_up.token_calls == 1);
    std::lock_guard l(vertex_up.m);
    REQUIRE(vertex_up.urls.size() == 1);
    CHECK(vertex_up.urls[0] ==
          "http://vertex.test/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
          "gemini-2.0-flash:streamGenerateContent?alt=sse");
    CHECK(vertex_up.authorizations[0] == "Bearer ya29.engine-token");
}

TEST_CASE("native gateway: Vertex fetches its token once for concurrent requests and caches it",
          "[native][gateway][vertex][concurrency]") {
    VertexUpstream up;
    up.token_latency = 100ms;  // both requests arrive while the exchange is in flight
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config(4, 64, 2);  // two workers: waiters on either one
    cfg.keys = {vertex_key()};
    cfg.network_config.base_url = "http://vertex.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Vertex>("vertex", cfg, {up.script()}));

    auto first = std::async(std::launch::async, [&] {
        return gw.chat(test::request("vertex/gemini-2.0-flash", "one"));
    });
    auto second = std::async(std::launch::async, [&] {
        return gw.chat(test::request("vertex/gemini-2.0-flash", "two"));
    });
    const auto a = first.get();
    const auto b = second.get();
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->choices.at(0).message.content == "Hallo");
    CHECK(b->extra_fields.provider == "vertex");
    CHECK(up.token_calls == 1);
    CHECK(up.model_calls == 2);

    // Later requests, embeddings too, use the cached token.
    const auto c = gw.chat(test::request("vertex/gemini-2.0-flash", "three"));
    REQUIRE(c.ok());
    bifrost::EmbeddingRequest er;
    er.model = "vertex/text-embedding-005";
    er.input = bifrost::TextInput::text("embed me");
    const auto e = gw.embed(er);
    REQUIRE(e.ok());
    REQUIRE(e->data.size() == 1);
    CHECK(e->data[0].embedding == std::vector<float>{0.25f, -0.5f});
    CHECK(e->model == "text-embedding-005");
    CHECK(e->usage->prompt_tokens == 3);
    CHECK(up.token_calls == 1);
    std::lock_guard l(up.m);
    REQUIRE(up.authorizations.size() == 4);
    for (const auto& auth : up.authorizations)
        CHECK(auth == "Bearer ya29.engine-token");
    CHECK(up.urls.back() ==
          "http://vertex.test/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
          "text-embedding-005:predict");
}

TEST_CASE("native gateway: a refused token exchange answers 401 without the key",
          "[native][gateway][vertex]") {
    VertexUpstream up;
    up.refuse = true;
    MockGateway<> gw(test::options());
    auto cfg = config_with(vertex_key());
    cfg.network_config.base_url = "http://vertex.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Vertex>("vertex", cfg, {up.script()}));

    const auto r = gw.chat(test::request("vertex/gemini-2.0-flash", "hello"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 401);
    CHECK(r.error().type == "invalid_grant");
    CHECK(r.error().provider == "vertex");
    CHECK(r.error().message.find(account) != std::string::npos);
    CHECK(r.error().message.find("Invalid JWT Signature.") != std::string::npos);
    CHECK(r.error().message.find("PRIVATE KEY") == std::string::npos);
    CHECK(r.error().message.find(service_account_pem().substr(40, 40)) == std::string::npos);
    CHECK(up.model_calls == 0);

    // Failures are not cached: the next request tries again (and the fixed endpoint serves).
    up.refuse = false;
    const auto ok = gw.chat(test::request("vertex/gemini-2.0-flash", "hello"));
    REQUIRE(ok.ok());
    CHECK(up.token_calls == 2);
    CHECK(up.model_calls == 1);
}

TEST_CASE("native gateway: requests waiting on a hung token exchange time out",
          "[native][gateway][vertex][concurrency]") {
    VertexUpstream up;
    up.hang = true;
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config(4, 64, 2);
    cfg.keys = {vertex_key()};
    cfg.network_config.base_url = "http://vertex.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Vertex>("vertex", cfg, {up.script()}));

    bifrost::RequestOptions opts;
    opts.timeout = 150ms;
    auto first = std::async(std::launch::async, [&] {
        return gw.chat(test::request("vertex/gemini-2.0-flash", "one"), opts);
    });
    auto second = std::async(std::launch::async, [&] {
        return gw.chat(test::request("vertex/gemini-2.0-flash", "two"), opts);
    });
    const auto a = first.get();
    const auto b = second.get();
    REQUIRE_FALSE(a.ok());
    REQUIRE_FALSE(b.ok());
    CHECK(a.error().status == 504);
    CHECK(b.error().status == 504);
    CHECK(up.model_calls == 0);
    // Both slots come back: the provider serves again once the endpoint answers.
    up.hang = false;
    CHECK(test::eventually([&] { return gw.stats().providers.at(0).in_flight == 0; }));
    const auto c = gw.chat(test::request("vertex/gemini-2.0-flash", "three"));
    CHECK(c.ok());
}

TEST_CASE("native gateway: embeddings through Gemini, Cohere and Bedrock",
          "[native][gateway][embedding]") {
    Seen seen;
    MockGateway<> gw(test::options());
    auto gemini = config_with({bifrost::Secret("AIza-test"), {}, 1.0, true, "g", {}});
    gemini.network_config.base_url = "http://gemini.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Gemini>(
        "gemini", gemini,
        {plain_or_error(seen, R"({"embeddings":[{"values":[1,2]},{"values":[3,4]}]})", 400,
                        R"({"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}})")}));
    auto cohere = test::provider_config();
    cohere.network_config.base_url = "http://cohere.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Cohere>(
        "cohere", cohere,
        {plain_or_error(
            seen,
            R"({"id":"e","embeddings":{"float":[[0.5,0.5]]},"meta":{"billed_units":{"input_tokens":2}}})",
            400, R"({"message":"bad"})")}));
    auto bedrock = config_with(settings_key("", "bedrock_key_config", bedrock_config));
    bedrock.network_config.base_url = "http://bedrock.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Bedrock>(
        "bedrock", bedrock,
        {plain_or_error(seen, R"({"embedding":[0.1,0.2,0.3],"inputTextTokenCount":4})", 400,
                        R"({"message":"bad"})")}));

    bifrost::EmbeddingRequest g;
    g.model = "gemini/gemini-embedding-001";
    g.input = bifrost::TextInput::of_texts({"a", "b"});
    const auto gr = gw.embed(g);
    REQUIRE(gr.ok());
    REQUIRE(gr->data.size() == 2);
    CHECK(gr->data[1].embedding == std::vector<float>{3.0f, 4.0f});
    CHECK(gr->model == "gemini-embedding-001");
    CHECK(gr->extra_fields.provider == "gemini");
    CHECK(seen.last().url ==
          "http://gemini.test/v1beta/models/gemini-embedding-001:batchEmbedContents");

    bifrost::EmbeddingRequest c;
    c.model = "cohere/embed-v4.0";
    c.input = bifrost::TextInput::text("hello");
    const auto cr = gw.embed(c);
    REQUIRE(cr.ok());
    CHECK(cr->data.at(0).embedding == std::vector<float>{0.5f, 0.5f});
    CHECK(cr->usage->prompt_tokens == 2);
    CHECK(seen.last().url == "http://cohere.test/v2/embed");

    bifrost::EmbeddingRequest b;
    b.model = "bedrock/amazon.titan-embed-text-v2:0";
    b.input = bifrost::TextInput::text("hello");
    const auto br = gw.embed(b);
    REQUIRE(br.ok());
    CHECK(br->data.at(0).embedding.size() == 3);
    CHECK(br->usage->prompt_tokens == 4);
    CHECK(seen.last().url == "http://bedrock.test/model/amazon.titan-embed-text-v2%3A0/invoke");

    c.input = bifrost::TextInput::text("please fail");
    const auto ce = gw.embed(c);
    REQUIRE_FALSE(ce.ok());
    CHECK(ce.error().status == 400);
    CHECK(ce.error().provider == "cohere");

    // Input the provider's API cannot take is the caller's error (400), sent nowhere.
    const std::size_t sent = seen.count();
    b.input = bifrost::TextInput::of_texts({"one", "two"});
    const auto bad = gw.embed(b);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().status == 400);
    CHECK(bad.error().type == "invalid_request_error");
    CHECK(bad.error().message.find("one input per request") != std::string::npos);
    b.model = "bedrock/amazon.nova-pro-v1:0";
    b.input = bifrost::TextInput::text("x");
    CHECK(gw.embed(b).error().status == 400);
    CHECK(seen.count() == sent);
}

TEST_CASE("native gateway: a service-account key that cannot sign answers 401 and sends nothing",
          "[native][gateway][vertex]") {
    VertexUpstream up;
    MockGateway<> gw(test::options());
    bifrost::Key k = vertex_key();
    auto& vcfg = k.settings["vertex_key_config"].as_object();
    vcfg["auth_credentials"] = boost::json::object{
        {"type", "service_account"},
        {"client_email", account},
        {"private_key",
         "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"},
        {"token_uri", token_url}};
    auto cfg = config_with(std::move(k));
    cfg.network_config.base_url = "http://vertex.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Vertex>("vertex", cfg, {up.script()}));

    const auto r = gw.chat(test::request("vertex/gemini-2.0-flash", "hello"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 401);
    CHECK(r.error().provider == "vertex");
    CHECK(r.error().message.find("private key") != std::string::npos);
    CHECK(r.error().message.find("c2VjcmV0") == std::string::npos);
    CHECK(up.token_calls == 0);
    CHECK(up.model_calls == 0);

    // A key without vertex_key_config is a configuration error naming what is missing.
    auto bare = test::provider_config();
    bare.network_config.base_url = "http://vertex.test";
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Vertex>("vertex2", bare, {up.script()}));
    const auto b = gw.chat(test::request("vertex2/gemini-2.0-flash", "hello"));
    REQUIRE_FALSE(b.ok());
    CHECK(b.error().message.find("vertex_key_config") != std::string::npos);
    CHECK(b.error().message.find("sk-test-key") == std::string::npos);
}
