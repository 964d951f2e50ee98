// providers::Azure against fixtures written from the Azure OpenAI REST reference.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/providers/azure.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using bifrost::providers::Azure;

namespace {

const char* const azure_config = R"({"endpoint": "https://my-res.openai.azure.com/",
                                     "deployments": {"gpt-4o": "prod-gpt4o"},
                                     "api_version": "2024-06-01"})";

}  // namespace

TEST_CASE("azure: the deployment URL, api-key header and OpenAI body", "[providers][azure]") {
    auto req = test::user_request("azure/gpt-4o", "Hello");
    req.max_tokens = 50;
    const auto k = test::key("azure-secret", "azure_key_config", azure_config);
    const auto out = test::build<Azure>(req, "gpt-4o", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url ==
          "https://my-res.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions"
          "?api-version=2024-06-01");
    CHECK(out.headers.get("api-key") == "azure-secret");
    CHECK_FALSE(out.headers.contains("authorization"));
    CHECK(test::json(out.body) ==
          test::json(R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}],
                                                "max_tokens":50})"));

    const auto s = test::build<Azure>(req, "gpt-4o", &k, {}, /*stream*/ true);
    CHECK(test::json(s.body) ==
          test::json(R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}],
                                              "max_tokens":50,"stream":true,
                                              "stream_options":{"include_usage":true}})"));
}

TEST_CASE("azure: unmapped models, the default api version, base_url and extra headers",
          "[providers][azure]") {
    const auto req = test::user_request("azure/gpt-4o-mini", "Hi");
    const auto k = test::key("azure-secret", "azure_key_config",
                             R"({"endpoint": "https://r.openai.azure.com"})");
    CHECK(test::build<Azure>(req, "gpt-4o-mini", &k).url ==
          "https://r.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions"
          "?api-version=2024-10-21");

    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://127.0.0.1:8081";
    cfg.network_config.extra_headers = {{"x-ms-client-request-id", "abc"}};
    const auto out = test::build<Azure>(req, "gpt-4o-mini", &k, cfg);
    CHECK(out.url ==
          "http://127.0.0.1:8081/openai/deployments/gpt-4o-mini/chat/completions"
          "?api-version=2024-10-21");
    CHECK(out.headers.get("x-ms-client-request-id") == "abc");

    const auto bare = test::key("azure-secret");
    try {
        (void)test::build<Azure>(req, "gpt-4o-mini", &bare);
        FAIL("a key without an endpoint must not build a request");
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        CHECK(what.find("endpoint") != std::string::npos);
        CHECK(what.find("azure-secret") == std::string::npos);
    }
}

TEST_CASE("azure: responses and errors are OpenAI's", "[providers][azure]") {
    const auto ok = test::parse<Azure>(200, R"({
        "id": "chatcmpl-A1", "object": "chat.completion", "created": 1727894340, "model": "gpt-4o-2024-05-13",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"},
                     "finish_reason": "stop", "content_filter_results": {}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})");
    REQUIRE(ok.ok());
    CHECK(ok.response.choices.at(0).message.content == "Hi there");
    CHECK(ok.response.usage->total_tokens == 12);

    const auto err = test::parse<Azure>(404, R"({"error": {"code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist."}})");
    CHECK(err.error.status == 404);
    CHECK(err.error.code == "DeploymentNotFound");
    CHECK(err.error.message == "The API deployment for this resource does not exist.");
}

namespace {

constexpr std::string_view azure_stream =
    "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
    "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}\n\n"
    "data: "
    "{\"choices\":[{\"delta\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":null,"
    "\"index\":0}],\"created\":1727894340,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-05-13\","
    "\"object\":\"chat.completion.chunk\"}\n\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null,\"index\":0}],"
    "\"created\":1727894340,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-05-13\","
    "\"object\":\"chat.completion.chunk\"}\n\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":null,\"index\":0}],"
    "\"created\":1727894340,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-05-13\","
    "\"object\":\"chat.completion.chunk\"}\n\n"
    "data: "
    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":"
    "\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\","
    "\"index\":0}],"
    "\"created\":1727894340,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-05-13\","
    "\"object\":\"chat.completion.chunk\"}\n\n"
    "data: "
    "{\"choices\":[],\"created\":1727894340,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-05-13\","
    "\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":9,"
    "\"total_tokens\":11}}\n\n"
    "data: [DONE]\n\n";

}  // namespace

TEST_CASE("azure: the OpenAI-format stream, whole or byte by byte", "[providers][azure][stream]") {
    const auto d = test::decode_both<Azure::StreamDecoder>(azure_stream);
    CHECK(d.last == bifrost::StreamStatus::done);
    REQUIRE(d.chunks.size() == 6);
    CHECK(d.chunks[0].choices.empty());
    CHECK(d.chunks[0].extra.contains("prompt_filter_results"));
    CHECK(d.chunks[1].id == "chatcmpl-A1");
    CHECK(d.chunks[1].created == 1727894340);
    CHECK(d.chunks[1].choices.at(0).role == bifrost::Role::assistant);
    CHECK(test::text_of(d) == "Hello");
    REQUIRE(d.chunks[4].choices.at(0).tool_calls.size() == 1);
    CHECK(d.chunks[4].choices[0].tool_calls[0] ==
          bifrost::ToolCallDelta{0, "call_1", "function", "f", "{}"});
    CHECK(test::finish_of(d) == "tool_calls");
    REQUIRE(test::usage_of(d));
    CHECK(test::usage_of(d)->total_tokens == 11);

    const auto cut = test::decode_both<Azure::StreamDecoder>(
        azure_stream.substr(0, azure_stream.find("data: [DONE]")));
    CHECK(cut.last == bifrost::StreamStatus::error);
    CHECK(cut.error.status == 502);

    const auto err = test::decode_both<Azure::StreamDecoder>(
        "data: {\"error\":{\"code\":429,\"message\":\"Rate limit is exceeded.\"}}\n\n");
    CHECK(err.last == bifrost::StreamStatus::error);
    CHECK(err.error.status == 429);
    CHECK(err.error.message == "Rate limit is exceeded.");
}

TEST_CASE("azure: embeddings go to the deployment's /embeddings in OpenAI's format",
          "[providers][azure][embedding]") {
    const auto k = test::key("azure-secret", "azure_key_config",
                             R"({"endpoint": "https://my-res.openai.azure.com",
                                 "deployments": {"text-embedding-3-small": "emb-small"}})");
    const auto out = test::build_embedding<Azure>(
        test::embedding_request("azure/text-embedding-3-small", {"hello", "world"}),
        "text-embedding-3-small", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url ==
          "https://my-res.openai.azure.com/openai/deployments/emb-small/embeddings"
          "?api-version=2024-10-21");
    CHECK(out.headers.get("api-key") == "azure-secret");
    CHECK(test::json(out.body) ==
          test::json(R"({"model":"text-embedding-3-small","input":["hello","world"]})"));

    const auto res = test::parse_embedding<Azure>(200, R"({"object":"list",
        "data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],
        "model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}})");
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 1);
    CHECK(res.response.data[0].embedding == std::vector<float>{0.5f, -0.25f});

    const auto err = test::parse_embedding<Azure>(
        404, R"({"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}})");
    CHECK(err.error.status == 404);
    CHECK(err.error.message == "The API deployment for this resource does not exist.");
}
