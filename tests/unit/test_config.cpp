#include "bifrost_catch.hpp"

#include <bifrost/config/config.hpp>
#include <bifrost/providers/native.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

using bifrost::Config;
using bifrost::ConfigError;
using bifrost::ConfigOptions;

namespace {

/// Options whose environment is the given map.
ConfigOptions env(std::map<std::string, std::string> vars) {
    ConfigOptions o;
    o.getenv = [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
    return o;
}

/// Parses `text`, requiring failure; returns the error.
ConfigError error_of(std::string_view text, const ConfigOptions& o = env({})) {
    Config cfg;
    auto err = bifrost::parse_config(text, "test.json", cfg, o);
    REQUIRE(err.has_value());
    return *err;
}

}  // namespace

TEST_CASE("config: a Bifrost config.json loads with its defaults and env values", "[config]") {
    const char* text = R"({
      "client": { "initial_pool_size": 300, "drop_excess_requests": true,
                  "enable_logging": true },
      "providers": {
        "openai": {
          "keys": [
            { "value": "env.OPENAI_API_KEY", "models": ["gpt-4o-mini"], "weight": 0.6 },
            { "value": "sk-literal", "models": [], "weight": 0.4, "enabled": false }
          ],
          "network_config": {
            "base_url": "https://api.openai.com",
            "extra_headers": { "X-Team": "search" },
            "default_request_timeout_in_seconds": 45,
            "max_retries": 2,
            "retry_backoff_initial": 250,
            "retry_backoff_max": 4000
          },
          "concurrency_and_buffer_size": { "concurrency": 20, "buffer_size": 500 },
          "proxy_config": { "type": "http", "url": "http://proxy:3128", "username": "",
                            "password": "env.PROXY_PASSWORD" },
          "circuit_breaker": { "failure_threshold": 3, "cooldown_ms": 1500 }
        },
        "azure": {
          "keys": [ { "value": "env.AZURE_KEY", "models": ["gpt-4o"], "weight": 1.0,
                      "azure_key_config": { "endpoint": "https://x.openai.azure.com",
                                            "deployments": { "gpt-4o": "my-gpt4o" },
                                            "api_version": "2024-10-21" } } ]
        },
        "ollama": { "keys": [], "network_config": { "base_url": "http://localhost:11434" } }
      },
      "mcp": {},
    })";
    Config cfg;
    auto err = bifrost::parse_config(
        text, "config.json", cfg,
        env({{"OPENAI_API_KEY", "sk-from-env"}, {"AZURE_KEY", "az"}, {"PROXY_PASSWORD", "pw"}}));
    REQUIRE_FALSE(err.has_value());

    CHECK(cfg.client.initial_pool_size == std::optional<std::size_t>(300));
    CHECK(cfg.client.drop_excess_requests);
    REQUIRE(cfg.providers.size() == 3);
    CHECK(cfg.providers[0].name == "openai");
    CHECK(cfg.providers[1].name == "azure");
    CHECK(cfg.providers[2].name == "ollama");

    const bifrost::ProviderConfig* openai = cfg.provider("openai");
    REQUIRE(openai != nullptr);
    REQUIRE(openai->keys.size() == 2);
    CHECK(openai->keys[0].value.reveal() == "sk-from-env");
    CHECK(openai->keys[0].models == std::vector<std::string>{"gpt-4o-mini"});
    CHECK(openai->keys[0].weight == Approx(0.6));
    CHECK(openai->keys[0].enabled);
    CHECK(openai->keys[1].value.reveal() == "sk-literal");
    CHECK_FALSE(openai->keys[1].enabled);
    const auto& net = openai->network_config;
    CHECK(net.base_url == "https://api.openai.com");
    REQUIRE(net.extra_headers.size() == 1);
    CHECK(net.extra_headers[0].first == "X-Team");
    CHECK(net.extra_headers[0].second == "search");
    CHECK(net.default_request_timeout == std::chrono::seconds(45));
    CHECK(net.max_retries == 2);
    CHECK(net.retry_backoff_initial == std::chrono::milliseconds(250));
    CHECK(net.retry_backoff_max == std::chrono::milliseconds(4000));
    CHECK(openai->concurrency_and_buffer_size.concurrency == 20);
    CHECK(openai->concurrency_and_buffer_size.buffer_size == 500);
    REQUIRE(openai->proxy_config.has_value());
    CHECK(openai->proxy_config->url == "http://proxy:3128");
    CHECK(openai->proxy_config->password.reveal() == "pw");
    CHECK(openai->circuit_breaker.failure_threshold == 3);
    CHECK(openai->circuit_breaker.cooldown == std::chrono::milliseconds(1500));

    const auto* azure = cfg.provider("azure");
    REQUIRE(azure != nullptr);
    REQUIRE(azure->keys.size() == 1);
    CHECK(azure->keys[0].settings.contains("azure_key_config"));
    // Defaults where the file is silent.
    CHECK(azure->concurrency_and_buffer_size.concurrency == 10);
    CHECK(azure->concurrency_and_buffer_size.buffer_size == 100);
    CHECK(azure->network_config.default_request_timeout == std::chrono::seconds(30));
    CHECK(azure->network_config.max_retries == 0);
    CHECK_FALSE(azure->proxy_config.has_value());

    CHECK(cfg.provider("ollama")->keys.empty());
    CHECK(cfg.provider("anthropic") == nullptr);
    CHECK(cfg.virtual_keys.empty());
    // Members this build does not use are reported, not fatal.
    CHECK(std::find(cfg.ignored.begin(), cfg.ignored.end(), "client.enable_logging") !=
          cfg.ignored.end());
    CHECK(std::find(cfg.ignored.begin(), cfg.ignored.end(), "mcp") != cfg.ignored.end());
}

TEST_CASE("config: an empty file section gives the documented defaults", "[config]") {
    Config cfg;
    REQUIRE_FALSE(bifrost::parse_config("{}", "c.json", cfg, env({})).has_value());
    CHECK_FALSE(cfg.client.initial_pool_size.has_value());
    CHECK_FALSE(cfg.client.drop_excess_requests);
    CHECK(cfg.providers.empty());
}

TEST_CASE("config: virtual keys for server access", "[config]") {
    Config cfg;
    auto err = bifrost::parse_config(R"({"governance": {"virtual_keys": [
            {"name": "team-a", "value": "env.VK_A"},
            {"name": "old", "value": "vk-old", "is_active": false}]}})",
                                     "c.json", cfg, env({{"VK_A", "vk-secret-a"}}));
    REQUIRE_FALSE(err.has_value());
    REQUIRE(cfg.virtual_keys.size() == 2);
    CHECK(cfg.virtual_keys[0].name == "team-a");
    CHECK(cfg.virtual_keys[0].value.reveal() == "vk-secret-a");
    CHECK(cfg.virtual_keys[0].is_active);
    CHECK_FALSE(cfg.virtual_keys[1].is_active);

    const auto e = error_of(R"({"governance": {"virtual_keys": [{"name": "x"}]}})");
    CHECK(e.path == "governance.virtual_keys[0].value");
}

TEST_CASE("config: a missing environment variable names the file, path and variable", "[config]") {
    const auto e = error_of(R"({"providers": {"openai": {"keys": [
        {"value": "sk-ok"}, {"value": "env.MISSING_KEY_VAR", "weight": 1}]}}})",
                            env({}));
    CHECK(e.file == "test.json");
    CHECK(e.path == "providers.openai.keys[1].value");
    CHECK(e.reason.find("MISSING_KEY_VAR") != std::string::npos);
    CHECK(e.message().find("test.json: providers.openai.keys[1].value: ") == 0);
}

TEST_CASE("config: env values come from the process environment by default", "[config]") {
    ::setenv("BIFROST_TEST_CONFIG_KEY", "sk-process-env", 1);
    Config cfg;
    auto err = bifrost::parse_config(
        R"({"providers": {"groq": {"keys": [{"value": "env.BIFROST_TEST_CONFIG_KEY"}]}}})",
        "c.json", cfg);
    ::unsetenv("BIFROST_TEST_CONFIG_KEY");
    REQUIRE_FALSE(err.has_value());
    CHECK(cfg.provider("groq")->keys[0].value.reveal() == "sk-process-env");
}

TEST_CASE("config: every kind of bad config is reported where it is", "[config]") {
    SECTION("not JSON: the position") {
        const auto e = error_of("{\n  \"client\": {\n    \"initial_pool_size\": ,\n  }\n}");
        CHECK(e.path.empty());
        CHECK(e.reason.find("not valid JSON") != std::string::npos);
        CHECK(e.reason.find("line 3") != std::string::npos);
    }
    SECTION("the top level is not an object") {
        CHECK(error_of("[1, 2]").reason.find("expected an object") != std::string::npos);
    }
    SECTION("a wrong type") {
        const auto e = error_of(R"({"client": {"drop_excess_requests": "yes"}})");
        CHECK(e.path == "client.drop_excess_requests");
        CHECK(e.reason == "expected true or false, got a string");
    }
    SECTION("out of range") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k"}],
            "concurrency_and_buffer_size": {"concurrency": 0}}}})");
        CHECK(e.path == "providers.openai.concurrency_and_buffer_size.concurrency");
        CHECK(e.reason.find("between 1 and") != std::string::npos);
    }
    SECTION("a negative weight") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k",
            "weight": -1}]}}})");
        CHECK(e.path == "providers.openai.keys[0].weight");
    }
    SECTION("a model that is not a string") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k",
            "models": ["a", 7]}]}}})");
        CHECK(e.path == "providers.openai.keys[0].models[1]");
    }
    SECTION("a non-integer timeout") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k"}],
            "network_config": {"default_request_timeout_in_seconds": 1.5}}}})");
        CHECK(e.path == "providers.openai.network_config.default_request_timeout_in_seconds");
        CHECK(e.reason == "expected an integer, got a number");
    }
    SECTION("backoff max below initial") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k"}],
            "network_config": {"retry_backoff_initial": 800, "retry_backoff_max": 100}}}})");
        CHECK(e.path == "providers.openai.network_config.retry_backoff_max");
    }
    SECTION("a base_url that is not http(s)") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k"}],
            "network_config": {"base_url": "ftp://x"}}}})");
        CHECK(e.path == "providers.openai.network_config.base_url");
    }
    SECTION("a provider that needs keys has none") {
        const auto e = error_of(R"({"providers": {"anthropic": {}}})");
        CHECK(e.path == "providers.anthropic.keys");
    }
    SECTION("a bad proxy type") {
        const auto e = error_of(R"({"providers": {"openai": {"keys": [{"value": "k"}],
            "proxy_config": {"type": "ftp"}}}})");
        CHECK(e.path == "providers.openai.proxy_config.type");
    }
}

TEST_CASE("config: an unknown provider lists the known ones", "[config]") {
    const auto e = error_of(R"({"providers": {"opnai": {"keys": [{"value": "k"}]}}})");
    CHECK(e.path == "providers.opnai");
    CHECK(e.reason.find("unknown provider 'opnai'") != std::string::npos);
    CHECK(e.reason.find("openai") != std::string::npos);
    CHECK(e.reason.find("anthropic") != std::string::npos);

    // A program that serves fewer providers says which.
    ConfigOptions only = env({});
    only.providers = {"mock", "openai"};
    const auto e2 = error_of(R"({"providers": {"anthropic": {"keys": [{"value": "k"}]}}})", only);
    CHECK(e2.reason.find("known: mock, openai") != std::string::npos);
}

TEST_CASE("config: errors never contain secret values", "[config]") {
    // A bad key entry after a resolved secret, and a wrong-typed secret: neither message echoes
    // a value.
    const auto e = error_of(R"({"providers": {"openai": {"keys": [
        {"value": "env.SECRET_VAR", "weight": "heavy"}]}}})",
                            env({{"SECRET_VAR", "sk-very-secret"}}));
    CHECK(e.message().find("sk-very-secret") == std::string::npos);
    CHECK(e.path == "providers.openai.keys[0].weight");
    const auto e2 = error_of(R"({"providers": {"openai": {"keys": [{"value": "sk-inline-secret",
        "enabled": "sk-inline-secret"}]}}})");
    CHECK(e2.message().find("sk-inline-secret") == std::string::npos);
}

TEST_CASE("config: load_config reads a file and names it", "[config]") {
    const std::string path = "bifrost_test_config.json";
    {
        std::ofstream f(path);
        f << R"({"client": {"initial_pool_size": 7}, "providers": {"mock": {}}})";
    }
    Config cfg;
    auto err = bifrost::load_config(path, cfg);
    std::remove(path.c_str());
    REQUIRE_FALSE(err.has_value());
    CHECK(cfg.client.initial_pool_size == std::optional<std::size_t>(7));
    CHECK(cfg.provider("mock") != nullptr);

    auto missing = bifrost::load_config("no/such/config.json", cfg);
    REQUIRE(missing.has_value());
    CHECK(missing->message() == "no/such/config.json: cannot open the file");
}

TEST_CASE("config: a vertex provider with vertex_key_config loads and is usable", "[config]") {
    // auth_credentials as the service-account JSON text from the environment, or inline as an
    // object; the key's value may stay empty.
    const char* text = R"({"providers": {"vertex": {"keys": [
        {"value": "", "models": ["gemini-2.0-flash"], "weight": 1.0,
         "vertex_key_config": {"project_id": "env.GCP_PROJECT", "region": "europe-west4",
                               "auth_credentials": "env.VERTEX_SA_JSON"}},
        {"vertex_key_config": {"project_id": "p2", "region": "global",
                               "auth_credentials": {"type": "service_account",
                                   "client_email": "two@p2.iam.gserviceaccount.com",
                                   "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}}}]}}})";
    Config cfg;
    const auto err = bifrost::parse_config(
        text, "c.json", cfg,
        env({{"GCP_PROJECT", "my-proj"},
             {"VERTEX_SA_JSON",
              R"({"type":"service_account","client_email":"bot@my-proj.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"})"}}));
    REQUIRE_FALSE(err.has_value());
    const auto* p = cfg.provider("vertex");
    REQUIRE(p != nullptr);
    REQUIRE(p->keys.size() == 2);
    const auto& settings = p->keys[0].settings.at("vertex_key_config").as_object();
    CHECK(settings.at("project_id").as_string() == "my-proj");
    CHECK(settings.at("region").as_string() == "europe-west4");

    const bifrost::providers::Vertex vertex;
    CHECK(vertex.credential_needed(&p->keys[0]) == "bot@my-proj.iam.gserviceaccount.com");
    CHECK(vertex.credential_needed(&p->keys[1]) == "two@p2.iam.gserviceaccount.com");
    CHECK(bifrost::providers::with_any_provider_type("vertex", [](auto) {}));

    // A misspelt key-config name is listed among the ignored members (as Bifrost ignores it).
    Config typo;
    REQUIRE_FALSE(bifrost::parse_config(R"({"providers": {"vertex": {"keys": [
        {"vertex_key_cfg": {"project_id": "p"}}]}}})",
                                        "c.json", typo, env({})));
    REQUIRE(typo.ignored.size() == 1);
    CHECK(typo.ignored[0] == "providers.vertex.keys[0].vertex_key_cfg");
}
