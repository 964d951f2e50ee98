// The native providers as a family: a Bifrost config.json with the key-config names loads, each
// provider is found by its config name and builds its request from the loaded keys; secrets
// stay out of errors.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/config/config.hpp>
#include <bifrost/providers/native.hpp>

#include <chrono>
#include <map>
#include <string>

namespace {

const char* const config_json = R"({
  "providers": {
    "anthropic": { "keys": [ { "value": "env.ANTHROPIC_API_KEY", "models": [], "weight": 1.0 } ] },
    "azure": {
      "keys": [ { "value": "env.AZURE_KEY", "models": ["gpt-4o"], "weight": 1.0,
                  "azure_key_config": { "endpoint": "https://x.openai.azure.com",
                                        "deployments": { "gpt-4o": "my-gpt4o" },
                                        "api_version": "2024-10-21" } } ]
    },
    "bedrock": {
      "keys": [ { "value": "", "models": [], "weight": 1.0,
                  "bedrock_key_config": { "access_key": "env.AWS_ACCESS_KEY_ID",
                                          "secret_key": "env.AWS_SECRET_ACCESS_KEY",
                                          "session_token": "", "region": "eu-west-1",
                                          "deployments": { "claude": "anthropic.claude-3-5-sonnet-20240620-v1:0" } } } ]
    },
    "gemini": { "keys": [ { "value": "env.GEMINI_API_KEY", "models": [], "weight": 1.0 } ] },
    "cohere": { "keys": [ { "value": "env.COHERE_API_KEY", "models": [], "weight": 1.0 } ] },
    "vertex": {
      "keys": [ { "value": "", "models": [], "weight": 1.0,
                  "vertex_key_config": { "project_id": "my-proj", "region": "us-east5",
                                         "auth_credentials": "env.VERTEX_CREDENTIALS" } } ]
    }
  }
})";

bifrost::ConfigOptions env() {
    static const std::map<std::string, std::string> vars{
        {"ANTHROPIC_API_KEY", "sk-ant-1"},
        {"AZURE_KEY", "az-1"},
        {"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
        {"AWS_SECRET_ACCESS_KEY", "shh"},
        {"GEMINI_API_KEY", "AIza-1"},
        {"COHERE_API_KEY", "co-1"},
        {"VERTEX_CREDENTIALS",
         R"({"type":"service_account","client_email":"sa@my-proj.iam.gserviceaccount.com",
             "private_key":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"})"}};
    bifrost::ConfigOptions o;
    o.getenv = [](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
    return o;
}

}  // namespace

TEST_CASE("native providers: a Bifrost config with key configs loads and builds requests",
          "[providers][native]") {
    bifrost::Config cfg;
    const auto err = bifrost::parse_config(config_json, "config.json", cfg, env());
    REQUIRE_FALSE(err);
    REQUIRE(cfg.providers.size() == 6);

    std::map<std::string, std::string> urls;
    std::map<std::string, bool> streams;
    for (const auto& np : cfg.providers) {
        CAPTURE(np.name);
        REQUIRE(np.config.keys.size() == 1);
        const bifrost::Key& key = np.config.keys[0];
        const std::string model = np.name == "azure"     ? "gpt-4o"
                                  : np.name == "bedrock" ? "claude"
                                                         : "m";
        const auto req = test::user_request(np.name + "/" + model, "Hi");
        const bool found = bifrost::providers::NativeFamily::visit(np.name, [&](auto p) {
            using P = decltype(p);
            static_assert(bifrost::StreamingProvider<P>);
            CHECK(P::requires_key);
            if constexpr (bifrost::CredentialProvider<P>) {
                // The engine would fetch the token first; here one is cached by hand.
                const std::string account = p.credential_needed(&key);
                CHECK(account == "sa@my-proj.iam.gserviceaccount.com");
                p.tokens()->store(
                    account, {"ya29.t", std::chrono::system_clock::now() + std::chrono::hours(1)});
                CHECK(p.credential_needed(&key).empty());
            }
            bifrost::HttpRequest out;
            p.build_chat(bifrost::BuildContext{req, model, &key, np.config}, out);
            urls[np.name] = out.url;
            bifrost::HttpRequest s;
            p.build_chat_stream(bifrost::BuildContext{req, model, &key, np.config}, s);
            streams[np.name] = s.url != out.url || s.body != out.body;
        });
        CHECK(found);
    }
    CHECK(urls["anthropic"] == "https://api.anthropic.com/v1/messages");
    CHECK(urls["azure"] ==
          "https://x.openai.azure.com/openai/deployments/my-gpt4o/chat/"
          "completions?api-version=2024-10-21");
    CHECK(urls["bedrock"] ==
          "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
          "anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    CHECK(urls["gemini"] ==
          "https://generativelanguage.googleapis.com/v1beta/models/m:generateContent");
    CHECK(urls["cohere"] == "https://api.cohere.com/v2/chat");
    CHECK(urls["vertex"] ==
          "https://us-east5-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-east5/"
          "publishers/google/models/m:generateContent");
    for (const auto& [name, differs] : streams) {
        CAPTURE(name);
        CHECK(differs);  // the streamed request is not the plain one
    }
}

TEST_CASE("native providers: names resolve, OpenAI-format ones too, unknown ones do not",
          "[providers][native]") {
    for (std::string_view n : bifrost::providers::NativeFamily::names) {
        std::string_view seen;
        CHECK(bifrost::providers::with_any_provider_type(
            n, [&](auto p) { seen = decltype(p)::name; }));
        CHECK(seen == n);
    }
    CHECK(bifrost::providers::with_any_provider_type("groq", [](auto) {}));
    bool fetches_tokens = false;
    CHECK(bifrost::providers::with_any_provider_type(
        "vertex", [&](auto p) { fetches_tokens = bifrost::CredentialProvider<decltype(p)>; }));
    CHECK(fetches_tokens);
    CHECK_FALSE(bifrost::providers::with_any_provider_type("anthropics", [](auto) {}));
}

TEST_CASE("native providers: upstream errors never echo the key", "[providers][native]") {
    // An upstream that answers with a non-JSON body: the message quotes the body, not the request.
    const auto k = test::key("sk-very-secret");
    const auto req = test::user_request("anthropic/m", "Hi");
    const auto built = test::build<bifrost::providers::Anthropic>(req, "m", &k);
    CHECK(built.body.find("sk-very-secret") == std::string::npos);
    CHECK(built.url.find("sk-very-secret") == std::string::npos);
    const auto out = test::parse<bifrost::providers::Gemini>(401, "unauthorized");
    CHECK(out.error.status == 401);
    CHECK(out.error.message.find("unauthorized") != std::string::npos);
}

TEST_CASE("native providers: a reused outcome keeps nothing of the previous response",
          "[providers][native]") {
    bifrost::HttpResponse res;
    res.status = 200;
    res.body =
        R"({"id":"m1","model":"c","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],
                   "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}})";
    bifrost::Outcome out;
    bifrost::providers::Anthropic{}.parse_chat(res, out);
    REQUIRE(out.ok());
    REQUIRE(out.response.choices.at(0).message.tool_calls.size() == 1);
    res.body =
        R"({"id":"m2","model":"c","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"})";
    bifrost::providers::Anthropic{}.parse_chat(res, out);
    REQUIRE(out.ok());
    CHECK(out.response.id == "m2");
    CHECK(out.response.choices.at(0).message.content == "hi");
    CHECK(out.response.choices.at(0).message.tool_calls.empty());
    CHECK_FALSE(out.response.usage);
}
