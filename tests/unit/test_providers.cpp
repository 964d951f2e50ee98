// The OpenAI-compatible provider family: URLs, auth conventions, lookup by name.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/providers/openai_compatible.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

struct Built {
    std::string url;
    std::string authorization;
    bool has_authorization = false;
    std::string custom;
};

template <class P>
Built build(const bifrost::ProviderConfig& cfg, const bifrost::Key* key) {
    const auto req = test::request("x/some-model", "hi");
    bifrost::HttpRequest out;
    P{}.build_chat(bifrost::BuildContext{req, "some-model", key, cfg}, out);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.headers.get("content-type") == "application/json");
    CHECK(out.body.find(R"("model":"some-model")") != std::string::npos);
    return Built{out.url, std::string(out.headers.get("authorization")),
                 out.headers.contains("authorization"), std::string(out.headers.get("x-custom"))};
}

}  // namespace

TEST_CASE("providers: each compatible service has its default URL and auth convention",
          "[providers]") {
    const bifrost::ProviderConfig cfg;
    const bifrost::Key key{bifrost::Secret("sk-abc"), {}, 1.0, true, "k", {}};
    struct Want {
        std::string_view name, url;
        bool keyed;
    };
    const std::vector<Want> wants{
        {"openai", "https://api.openai.com/v1/chat/completions", true},
        {"groq", "https://api.groq.com/openai/v1/chat/completions", true},
        {"mistral", "https://api.mistral.ai/v1/chat/completions", true},
        {"ollama", "http://localhost:11434/v1/chat/completions", false},
        {"vllm", "http://localhost:8000/v1/chat/completions", false},
        {"sglang", "http://localhost:30000/v1/chat/completions", false},
        {"parasail", "https://api.parasail.io/v1/chat/completions", true},
        {"openrouter", "https://openrouter.ai/api/v1/chat/completions", true},
        {"xai", "https://api.x.ai/v1/chat/completions", true},
        {"together", "https://api.together.xyz/v1/chat/completions", true},
        {"fireworks", "https://api.fireworks.ai/inference/v1/chat/completions", true},
        {"cerebras", "https://api.cerebras.ai/v1/chat/completions", true},
        {"perplexity", "https://api.perplexity.ai/chat/completions", true},
        {"deepseek", "https://api.deepseek.com/chat/completions", true},
    };
    for (const Want& w : wants) {
        CAPTURE(w.name);
        bool found = bifrost::providers::with_provider_type(w.name, [&](auto p) {
            using P = decltype(p);
            CHECK(P::requires_key == w.keyed);
            // The engine selects a key only for providers that require one.
            const Built b = build<P>(cfg, P::requires_key ? &key : nullptr);
            CHECK(b.url == w.url);
            CHECK(b.has_authorization == w.keyed);
            if (w.keyed) CHECK(b.authorization == "Bearer sk-abc");
        });
        CHECK(found);
    }
    CHECK(bifrost::providers::OpenAIFamily::names.size() == wants.size());
}

TEST_CASE("providers: an unknown name is reported, not guessed", "[providers]") {
    int calls = 0;
    CHECK_FALSE(bifrost::providers::with_provider_type("gorq", [&](auto) { ++calls; }));
    CHECK_FALSE(bifrost::providers::with_provider_type("", [&](auto) { ++calls; }));
    CHECK(calls == 0);
}

TEST_CASE("providers: base_url and extra_headers apply once, and extra headers win",
          "[providers]") {
    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://gpu-box:9000/";
    cfg.network_config.extra_headers = {{"X-Custom", "yes"}, {"Authorization", "Bearer proxy"}};
    const Built ollama = build<bifrost::providers::Ollama>(cfg, nullptr);
    CHECK(ollama.url == "http://gpu-box:9000/v1/chat/completions");
    CHECK(ollama.custom == "yes");
    CHECK(ollama.authorization == "Bearer proxy");  // a keyless server behind an auth proxy

    const bifrost::Key key{bifrost::Secret("sk-abc"), {}, 1.0, true, "k", {}};
    cfg.network_config.extra_headers = {{"X-Custom", "1"}};
    cfg.network_config.base_url = "https://eu.api.mistral.ai";
    const Built mistral = build<bifrost::providers::Mistral>(cfg, &key);
    CHECK(mistral.url == "https://eu.api.mistral.ai/v1/chat/completions");
    CHECK(mistral.authorization == "Bearer sk-abc");
    CHECK(mistral.custom == "1");
}

TEST_CASE("providers: a compatible provider keeps the upstream's error", "[providers]") {
    bifrost::HttpResponse res;
    res.status = 401;
    res.body =
        R"({"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}})";
    bifrost::Outcome out;
    bifrost::providers::Groq{}.parse_chat(res, out);
    CHECK(out.error.status == 401);
    CHECK(out.error.message == "Invalid API Key");
    CHECK(out.error.code == "invalid_api_key");
}
