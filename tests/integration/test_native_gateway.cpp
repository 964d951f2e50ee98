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
bifrost::transport::MockScript plain_or_error(Seen& seen, std::string body, int error_status,
                                              std::string error_body,
                                              std::vector<std::pair<std::string, std::string>>
                                                  error_headers = {}) {
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
    return [&seen, pieces = std::move(pieces), content_type = std::move(content_type)](
               MockCall& call) {
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
    bool refuse = false;
    bool hang = false;
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
                    data(R"({"candidates":[{"content":{"parts":[{"text":"Hal"}],"role":"model"},"index":0}],"responseId":"v1"})"),
                    data(R"({"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":2,"totalTokenCount":4},"responseId":"v1"})")};
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
