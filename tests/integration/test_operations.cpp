// Embeddings, legacy text completions and model listing through the gateway: the same engine as
// chat (queue, workers, keys, retries, deadlines, fallbacks, plugins) on the Mock transport.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using bifrost::Context;
using bifrost::EmbeddingOutcome;
using bifrost::EmbeddingRequest;
using bifrost::EmbeddingResult;
using bifrost::TextCompletionRequest;
using bifrost::TextCompletionResult;
using bifrost::TextInput;
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
    std::vector<bifrost::HttpRequest> take() {
        std::lock_guard l(m);
        return std::exchange(seen, {});
    }
};

EmbeddingRequest embedding(std::string model, TextInput input = TextInput::text("hello")) {
    EmbeddingRequest r;
    r.model = std::move(model);
    r.input = std::move(input);
    return r;
}

TextCompletionRequest completion(std::string model, std::string prompt) {
    TextCompletionRequest r;
    r.model = std::move(model);
    r.prompt = TextInput::text(std::move(prompt));
    return r;
}

/// Fails the first `n` calls with `status`, then runs `inner`.
MockScript failing_first(int n, int status, MockScript inner = mock::echo()) {
    auto left = std::make_shared<std::atomic<int>>(n);
    return [left, status, inner](MockCall& call) {
        if (left->fetch_sub(1) > 0) {
            call.response.status = status;
            call.response.body = R"({"error":{"message":"try later","type":"server_error"}})";
            return;
        }
        inner(call);
    };
}

/// A provider with chat only (no embeddings, completions or listing).
struct ChatOnly {
    static constexpr bool requires_key = false;
    void build_chat(const bifrost::BuildContext& ctx, bifrost::HttpRequest& out) const {
        bifrost::providers::OpenAI{}.build_chat(ctx, out);
    }
    void parse_chat(const bifrost::HttpResponse& in, bifrost::Outcome& out) const {
        bifrost::providers::OpenAI{}.parse_chat(in, out);
    }
};
static_assert(bifrost::Provider<ChatOnly> && !bifrost::EmbeddingProvider<ChatOnly> &&
              !bifrost::TextCompletionProvider<ChatOnly> &&
              !bifrost::ModelListingProvider<ChatOnly>);

}  // namespace

TEST_CASE("operations: an embeddings request is answered by its provider", "[operations]") {
    Recorder rec;
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.network_config.base_url = "http://upstream.test:9000/";
    cfg.network_config.extra_headers = {{"X-Team", "search"}};
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", cfg, {rec.script()}));

    auto req = embedding("openai/text-embedding-3-small", TextInput::of_texts({"a", "bb", "ccc"}));
    req.dimensions = 5;
    req.user = "u-1";
    req.extra["custom"] = 7;
    req.fallbacks = {"other/model"};
    const EmbeddingResult r = gw.embed(req);
    INFO(r.error().message);
    REQUIRE(r.ok());
    REQUIRE(r->data.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(r->data[i].index == static_cast<std::int64_t>(i));
        CHECK(r->data[i].embedding.size() == 5);
    }
    CHECK(r->data[0].embedding != r->data[1].embedding);
    CHECK(r->model == "text-embedding-3-small");
    CHECK(r->extra_fields.provider == "openai");
    REQUIRE(r->usage.has_value());
    CHECK(r->usage->total_tokens > 0);

    const auto seen = rec.take();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].method == bifrost::HttpMethod::post);
    CHECK(seen[0].url == "http://upstream.test:9000/v1/embeddings");
    CHECK(seen[0].headers.get("authorization") == "Bearer sk-test-key");
    CHECK(seen[0].headers.get("x-team") == "search");
    const auto body = boost::json::parse(seen[0].body).as_object();
    CHECK(body.at("model").as_string() == "text-embedding-3-small");
    CHECK(body.at("input").as_array().size() == 3);
    CHECK(body.at("dimensions").as_int64() == 5);
    CHECK(body.at("user").as_string() == "u-1");
    CHECK(body.at("custom").as_int64() == 7);
    CHECK_FALSE(body.contains("fallbacks"));

    const auto stats = gw.stats();
    const auto* p = stats.provider("openai");
    REQUIRE(p != nullptr);
    CHECK(p->submitted == 1);
    CHECK(p->completed == 1);
}

TEST_CASE("operations: a text completion is answered at the provider's completions path",
          "[operations]") {
    Recorder rec;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config(),
                                                              {rec.script()}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::Perplexity>("pplx", test::provider_config(),
                                                                  {rec.script()}));

    auto req = completion("openai/gpt-3.5-turbo-instruct", "Once upon");
    req.max_tokens = 16;
    req.stop = {"\n"};
    req.echo = false;
    const TextCompletionResult r = gw.text_complete(req);
    INFO(r.error().message);
    REQUIRE(r.ok());
    REQUIRE(r->choices.size() == 1);
    CHECK(r->choices[0].text == "Echo: Once upon");
    CHECK(r->choices[0].finish_reason == "stop");
    CHECK(r->object == "text_completion");
    CHECK(r->extra_fields.provider == "openai");

    const TextCompletionResult p = gw.text_complete(completion("pplx/m", "x"));
    REQUIRE(p.ok());
    CHECK(p->extra_fields.provider == "pplx");

    const auto seen = rec.take();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].url == "https://api.openai.com/v1/completions");
    CHECK(seen[1].url == "https://api.perplexity.ai/completions");  // beside /chat/completions
    const auto body = boost::json::parse(seen[0].body).as_object();
    CHECK(body.at("prompt").as_string() == "Once upon");
    CHECK(body.at("max_tokens").as_int64() == 16);
    CHECK(body.at("echo").as_bool() == false);
}

TEST_CASE("operations: upstream errors keep the provider's status and message", "[operations]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "openai", test::provider_config(),
        {mock::fixed(400, R"({"error":{"message":"input too long","type":"invalid_request_error",)"
                          R"("param":"input","code":"context_length_exceeded"}})")}));
    const EmbeddingResult r = gw.embed(embedding("openai/e"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 400);
    CHECK(r.error().message == "input too long");
    CHECK(r.error().code == "context_length_exceeded");
    CHECK(r.error().param == "input");
    CHECK(r.error().provider == "openai");
    const TextCompletionResult t = gw.text_complete(completion("openai/c", "x"));
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().status == 400);
    CHECK(gw.stats().provider("openai")->failed == 2);
}

TEST_CASE("operations: a malformed upstream answer is a 502 naming the field", "[operations]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "openai", test::provider_config(),
        {mock::fixed(200,
                     R"({"object":"list","data":[{"embedding":"x"},{"embedding":[1,"a"]}]})")}));
    const EmbeddingResult r = gw.embed(embedding("openai/e"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 502);
    CHECK(r.error().type == "invalid_upstream_response");
    CHECK(r.error().message ==
          "upstream response: data[1].embedding[1]: expected a number, got a string");
}

TEST_CASE("operations: retryable failures are retried", "[operations]") {
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.network_config.max_retries = 2;
    cfg.network_config.retry_backoff_initial = 1ms;
    cfg.network_config.retry_backoff_max = 2ms;
    REQUIRE_FALSE(
        gw.add_provider<bifrost::providers::OpenAI>("openai", cfg, {failing_first(2, 503)}));
    const EmbeddingResult r = gw.embed(embedding("openai/e"));
    INFO(r.error().message);
    REQUIRE(r.ok());
    CHECK(r->data.size() == 1);
    const auto stats = gw.stats();
    const auto* p = stats.provider("openai");
    CHECK(p->retries == 2);
    CHECK(p->completed == 1);
}

TEST_CASE("operations: fallbacks serve when the primary fails", "[operations]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "bad", test::provider_config(),
        {mock::fixed(500, R"({"error":{"message":"primary down","type":"server_error"}})")}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("good", test::provider_config()));

    SECTION("blocking embeddings") {
        auto req = embedding("bad/e");
        req.fallbacks = {"bad/e2", "good/e3"};
        const EmbeddingResult r = gw.embed(req);
        INFO(r.error().message);
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "good");
        CHECK(r->model == "e3");
        CHECK(gw.stats().fallback_attempts == 2);
        CHECK(gw.stats().fallback_successes == 1);
    }
    SECTION("async text completion") {
        auto req = completion("bad/c", "hi");
        req.fallbacks = {"good/c2"};
        TextCompletionResult r = gw.async_text_complete(req, asio::use_future).get();
        INFO(r.error().message);
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "good");
        CHECK(r->choices.at(0).text == "Echo: hi");
    }
    SECTION("all fail: the primary's error") {
        auto req = embedding("bad/e");
        req.fallbacks = {"missing/e"};
        const EmbeddingResult r = gw.async_embed(req, asio::use_future).get();
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 500);
        CHECK(r.error().message == "primary down");
    }
}

TEST_CASE("operations: the deadline gives 504 and cancels the upstream call", "[operations]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config(),
                                                              {mock::hang()}));
    bifrost::RequestOptions opts;
    opts.timeout = 30ms;
    const EmbeddingResult r = gw.embed(embedding("openai/e"), opts);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 504);
    CHECK(r.error().type == "request_timed_out");
    const TextCompletionResult t =
        gw.async_text_complete(completion("openai/c", "x"), opts, asio::use_future).get();
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().status == 504);
    CHECK(test::eventually([&] { return gw.stats().provider("openai")->in_flight == 0; }));
    CHECK(gw.stats().provider("openai")->timed_out == 2);
}

TEST_CASE("operations: cancelling async_embed answers 499", "[operations]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config(),
                                                              {mock::hang()}));
    asio::cancellation_signal cancel;
    std::promise<EmbeddingResult> done;
    gw.async_embed(embedding("openai/e"),
                   asio::bind_cancellation_slot(
                       cancel.slot(), [&](EmbeddingResult r) { done.set_value(std::move(r)); }));
    REQUIRE(test::eventually([&] { return gw.stats().provider("openai")->in_flight == 1; }));
    cancel.emit(asio::cancellation_type::terminal);
    const EmbeddingResult r = done.get_future().get();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 499);
}

TEST_CASE("operations: a provider without the capability answers 400 unsupported_operation",
          "[operations]") {
    Recorder rec;
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<ChatOnly>("plain", test::provider_config(), {rec.script()}));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));

    const EmbeddingResult e = gw.embed(embedding("plain/e"));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().status == 400);
    CHECK(e.error().type == "unsupported_operation");
    CHECK(e.error().message == "provider 'plain' does not support embeddings");
    CHECK(e.error().provider == "plain");

    const TextCompletionResult t =
        gw.async_text_complete(completion("plain/c", "x"), asio::use_future).get();
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().message == "provider 'plain' does not support text completions");

    CHECK(rec.take().empty());  // nothing went upstream
    CHECK(gw.chat(test::request("plain/m", "still chats")).ok());

    auto req = embedding("plain/e");
    req.fallbacks = {"openai/e"};
    const EmbeddingResult f = gw.embed(req);
    REQUIRE(f.ok());
    CHECK(f->extra_fields.provider == "openai");
}

TEST_CASE("operations: list_models asks the upstream or answers from the config", "[operations]") {
    Recorder rec;
    MockGateway<> gw(test::options());
    auto cfg = test::provider_config();
    cfg.keys[0].models = {"only-this"};  // listing needs no particular model
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", cfg, {rec.script()}));
    auto plain_cfg = test::provider_config();
    plain_cfg.keys[0].models = {"m1", "m2"};
    plain_cfg.keys.push_back({bifrost::Secret("sk-2"), {"m2", "m3"}, 1.0, true, "k2", {}});
    plain_cfg.keys.push_back({bifrost::Secret("sk-3"), {"off"}, 1.0, false, "k3", {}});
    REQUIRE_FALSE(gw.add_provider<ChatOnly>("plain", plain_cfg));

    const bifrost::ModelListResult up = gw.list_models("openai");
    INFO(up.error().message);
    REQUIRE(up.ok());
    REQUIRE(up->data.size() == 2);
    CHECK(up->data[0].id == "mock-small");
    CHECK(up->data[1].id == "mock-large");
    CHECK(up->extra_fields.provider == "openai");
    const auto seen = rec.take();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].method == bifrost::HttpMethod::get);
    CHECK(seen[0].url == "https://api.openai.com/v1/models");
    CHECK(seen[0].headers.get("authorization") == "Bearer sk-test-key");
    CHECK(seen[0].body.empty());

    const bifrost::ModelListResult conf = gw.list_models("plain");
    REQUIRE(conf.ok());
    std::vector<std::string> ids;
    for (const auto& m : conf->data)
        ids.push_back(m.id);
    CHECK(ids == std::vector<std::string>{"m1", "m2", "m3"});
    CHECK(conf->extra_fields.provider == "plain");

    const bifrost::ModelListResult none = gw.list_models("nope");
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().status == 400);
    CHECK(none.error().type == "unknown_provider");
}

TEST_CASE("operations: list_models keeps the upstream's error", "[operations]") {
    MockGateway<> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "openai", test::provider_config(),
        {mock::fixed(
            401, R"({"error":{"message":"Incorrect API key","type":"invalid_request_error"}})")}));
    const bifrost::ModelListResult r = gw.list_models("openai");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 401);
    CHECK(r.error().message == "Incorrect API key");
    CHECK(r.error().message.find("sk-test-key") == std::string::npos);
}

TEST_CASE("operations: pooled jobs serve chat and other kinds in turn", "[operations]") {
    MockGateway<> gw(test::options(1));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));
    for (int i = 0; i < 3; ++i) {
        {
            const EmbeddingResult e =
                gw.embed(embedding("openai/e", TextInput::of_texts(std::vector<std::string>(
                                                   static_cast<std::size_t>(3 - i), "x"))));
            REQUIRE(e.ok());
            CHECK(e->data.size() == static_cast<std::size_t>(3 - i));
        }
        {
            const bifrost::Result c =
                gw.chat(test::request("openai/m", "round " + std::to_string(i)));
            REQUIRE(c.ok());
            CHECK(c->choices.at(0).message.content == "Echo: round " + std::to_string(i));
        }
        {
            const TextCompletionResult t = gw.text_complete(completion("openai/c", "p"));
            REQUIRE(t.ok());
            CHECK(t->choices.size() == 1);
        }
    }
}

// ---- plugins -------------------------------------------------------------------------------

namespace {

struct Calls {
    std::mutex m;
    std::vector<std::string> lines;
    void add(std::string s) {
        std::lock_guard l(m);
        lines.push_back(std::move(s));
    }
    std::vector<std::string> take() {
        std::lock_guard l(m);
        return std::exchange(lines, {});
    }
};
Calls g_calls;

/// Chat hooks only: skipped for other kinds.
struct ChatTracer {
    void pre_hook(Context&, bifrost::ChatRequest&) { g_calls.add("chat-pre"); }
    void post_hook(Context&, bifrost::Outcome&) { g_calls.add("chat-post"); }
};

/// Embedding hooks: reroutes "alias/..." to the openai provider, refuses "deny/...", and marks
/// answers.
struct EmbeddingGuard {
    void pre_hook(Context& ctx, EmbeddingRequest& req) {
        g_calls.add("emb-pre");
        if (req.model.rfind("alias/", 0) == 0) req.model = "openai/" + req.model.substr(6);
        if (req.model.rfind("deny/", 0) == 0)
            ctx.fail(bifrost::errors::make(403, "forbidden", "embeddings denied"));
        if (req.model == "openai/throw") throw std::runtime_error("boom");
    }
    void post_hook(Context& ctx, EmbeddingOutcome& out) {
        g_calls.add("emb-post:" + std::string(ctx.provider()) + ":" +
                    std::to_string(out.error.status));
        if (out.ok()) out.response.extra["checked"] = true;
        if (out.error.status == 500 && out.error.message.find("boom") == std::string::npos)
            out.error.message = "rewritten by the post-hook";
    }
};

/// Only an embeddings post-hook: still a plugin.
struct EmbeddingOnly {
    void post_hook(Context&, EmbeddingOutcome&) {}
};
static_assert(bifrost::Plugin<EmbeddingOnly> && bifrost::Plugin<ChatTracer> &&
              !bifrost::HasPreHookFor<ChatTracer, EmbeddingRequest> &&
              bifrost::HasPreHookFor<EmbeddingGuard, EmbeddingRequest>);

}  // namespace

TEST_CASE("operations: an embeddings-only plugin leaves chat alone", "[operations][plugins]") {
    MockGateway<bifrost::queue::Block, EmbeddingOnly> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));
    CHECK(gw.chat(test::request("openai/m", "x")).ok());
    CHECK(gw.embed(embedding("openai/e")).ok());
}

TEST_CASE("operations: plugins run the hooks written for the request's kind",
          "[operations][plugins]") {
    MockGateway<bifrost::queue::Block, ChatTracer, EmbeddingGuard> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("openai", test::provider_config()));
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "down", test::provider_config(),
        {mock::fixed(500, R"({"error":{"message":"down","type":"server_error"}})")}));
    g_calls.take();

    SECTION("embedding hooks run, chat hooks are skipped; a pre-hook may reroute") {
        const EmbeddingResult r = gw.embed(embedding("alias/e"));
        REQUIRE(r.ok());
        CHECK(r->extra_fields.provider == "openai");
        CHECK(r->model == "e");
        CHECK(r->extra.at("checked").as_bool());
        CHECK(g_calls.take() == std::vector<std::string>{"emb-pre", "emb-post:openai:0"});
    }
    SECTION("async: the same hooks") {
        const EmbeddingResult r = gw.async_embed(embedding("alias/e"), asio::use_future).get();
        REQUIRE(r.ok());
        CHECK(r->extra.at("checked").as_bool());
        CHECK(g_calls.take() == std::vector<std::string>{"emb-pre", "emb-post:openai:0"});
    }
    SECTION("a pre-hook may fail the request; the provider is not called") {
        const EmbeddingResult r = gw.embed(embedding("deny/e"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 403);
        CHECK(r.error().message == "embeddings denied");
        CHECK(gw.stats().short_circuited == 1);
        CHECK(g_calls.take() == std::vector<std::string>{"emb-pre", "emb-post::403"});
    }
    SECTION("a post-hook sees and may change the error") {
        const EmbeddingResult r = gw.embed(embedding("down/e"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 500);
        CHECK(r.error().message == "rewritten by the post-hook");
        CHECK(g_calls.take() == std::vector<std::string>{"emb-pre", "emb-post:down:500"});
    }
    SECTION("a throwing hook is a 500 plugin_error") {
        const EmbeddingResult r = gw.embed(embedding("openai/throw"));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().status == 500);
        CHECK(r.error().type == "plugin_error");
        CHECK(r.error().message.find("boom") != std::string::npos);
    }
    SECTION("kinds without hooks skip every plugin; chat runs only chat hooks") {
        const TextCompletionResult t = gw.text_complete(completion("openai/c", "x"));
        REQUIRE(t.ok());
        CHECK(g_calls.take().empty());
        REQUIRE(gw.chat(test::request("openai/m", "x")).ok());
        CHECK(g_calls.take() == std::vector<std::string>{"chat-pre", "chat-post"});
    }
}
