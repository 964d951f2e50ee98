// providers::Gemini against fixtures written from the Gemini API (generateContent) reference.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/providers/gemini.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using bifrost::providers::Gemini;

TEST_CASE("gemini: a conversation maps to generateContent", "[providers][gemini]") {
    bifrost::ChatRequest r;
    r.messages.push_back({bifrost::Role::system, "Answer in French.", {}, {}, {}, {}, {}});
    bifrost::Message u{bifrost::Role::user, {}, {}, {}, {}, {}, {}};
    u.parts.push_back({bifrost::ContentPart::Type::text, "Weather here?", {}, {}, {}});
    u.parts.push_back(
        {bifrost::ContentPart::Type::image_url, {}, "data:image/jpeg;base64,/9j/4AAQ", {}, {}});
    u.parts.push_back({bifrost::ContentPart::Type::image_url, {}, "https://x.test/a.png", {}, {}});
    r.messages.push_back(u);
    bifrost::Message call{bifrost::Role::assistant, {}, {}, {}, {}, {}, {}};
    call.tool_calls.push_back({"call_0", "function", "get_weather", R"({"city":"Lyon"})"});
    r.messages.push_back(call);
    r.messages.push_back({bifrost::Role::tool, R"({"temp":18})", {}, {}, {}, "call_0", {}});
    r.messages.push_back({bifrost::Role::tool, "sunny", {}, {}, {}, "call_0", {}});
    r.temperature = 0.2;
    r.top_p = 0.8;
    r.max_tokens = 256;
    r.stop = {"\n\n"};
    r.n = 2;
    r.response_format = bifrost::ResponseFormat{bifrost::ResponseFormat::Type::json_object, {}};
    bifrost::Tool t;
    t.name = "get_weather";
    t.description = "Weather by city";
    t.parameters = test::json(R"({"type":"object","properties":{"city":{"type":"string"}}})");
    r.tools.push_back(t);
    r.tool_choice = bifrost::ToolChoice{bifrost::ToolChoice::Mode::function, "get_weather"};

    const auto k = test::key("AIza-secret");
    const auto out = test::build<Gemini>(r, "gemini-1.5-flash", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(
        out.url ==
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-1.5-flash:generateContent");
    CHECK(out.headers.get("x-goog-api-key") == "AIza-secret");
    CHECK_FALSE(out.headers.contains("authorization"));
    CHECK(out.url.find("AIza") == std::string::npos);
    CHECK(test::json(out.body) == test::json(R"({
        "contents": [
            {"role": "user", "parts": [
                {"text": "Weather here?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.png"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}]}
        ],
        "systemInstruction": {"parts": [{"text": "Answer in French."}]},
        "generationConfig": {"temperature": 0.2, "topP": 0.8, "maxOutputTokens": 256,
                             "stopSequences": ["\n\n"], "candidateCount": 2,
                             "responseMimeType": "application/json"},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    })"));
}

TEST_CASE("gemini: streaming URL, base_url and extra headers", "[providers][gemini]") {
    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://127.0.0.1:7000";
    cfg.network_config.extra_headers = {{"x-goog-user-project", "proj"}};
    const auto k = test::key("AIza-secret");
    const auto out = test::build<Gemini>(test::user_request("gemini/gemini-2.0-flash", "Hi"),
                                         "gemini-2.0-flash", &k, cfg, true);
    CHECK(out.url ==
          "http://127.0.0.1:7000/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
    CHECK(out.headers.get("x-goog-user-project") == "proj");
    CHECK(test::json(out.body) ==
          test::json(R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})"));
}

TEST_CASE("gemini: candidates, function calls, finish reasons and usage", "[providers][gemini]") {
    const auto out = test::parse<Gemini>(200, R"({
        "candidates": [{
            "content": {"parts": [{"text": "Let me check. "},
                                  {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}],
                        "role": "model"},
            "finishReason": "STOP", "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19},
        "modelVersion": "gemini-1.5-flash-002", "responseId": "resp-1"})");
    REQUIRE(out.ok());
    CHECK(out.response.id == "resp-1");
    CHECK(out.response.model == "gemini-1.5-flash-002");
    const auto& c = out.response.choices.at(0);
    CHECK(c.message.content == "Let me check. ");
    REQUIRE(c.message.tool_calls.size() == 1);
    CHECK(c.message.tool_calls[0].name == "get_weather");
    CHECK_FALSE(c.message.tool_calls[0].id.empty());
    CHECK(test::json(c.message.tool_calls[0].arguments) == test::json(R"({"city":"Lyon"})"));
    CHECK(c.finish_reason == "tool_calls");
    REQUIRE(out.response.usage);
    CHECK(out.response.usage->prompt_tokens == 12);
    CHECK(out.response.usage->completion_tokens == 7);
    CHECK(out.response.usage->total_tokens == 19);

    const auto finish = [](const char* reason) {
        const auto o = test::parse<Gemini>(
            200,
            std::string(
                R"({"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},"finishReason":")") +
                reason + R"("}]})");
        REQUIRE(o.ok());
        return o.response.choices.at(0).finish_reason;
    };
    CHECK(finish("STOP") == "stop");
    CHECK(finish("MAX_TOKENS") == "length");
    for (const char* r : {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"})
        CHECK(finish(r) == "content_filter");

    const auto blocked = test::parse<Gemini>(
        200,
        R"({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}})");
    REQUIRE(blocked.ok());
    CHECK(blocked.response.choices.at(0).finish_reason == "content_filter");
}

TEST_CASE("gemini: Google errors keep status, message and status name", "[providers][gemini]") {
    const auto out = test::parse<Gemini>(400, R"({"error": {"code": 400,
        "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}})");
    CHECK(out.error.status == 400);
    CHECK(out.error.type == "INVALID_ARGUMENT");
    CHECK(out.error.message == "API key not valid. Please pass a valid API key.");

    const auto arr = test::parse<Gemini>(
        429,
        R"([{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}])");
    CHECK(arr.error.status == 429);
    CHECK(arr.error.type == "RESOURCE_EXHAUSTED");
    CHECK(arr.error.message == "Resource has been exhausted");
}

namespace {

constexpr std::string_view gemini_stream =
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": \"model\"},"
    "\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"totalTokenCount\": 8},"
    "\"modelVersion\": \"gemini-1.5-flash-002\",\"responseId\": \"r1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" sky is blue.\"}],\"role\": "
    "\"model\"},"
    "\"index\": 0}],\"modelVersion\": \"gemini-1.5-flash-002\",\"responseId\": \"r1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},"
    "\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,"
    "\"candidatesTokenCount\": 5,\"totalTokenCount\": 13},\"modelVersion\": "
    "\"gemini-1.5-flash-002\","
    "\"responseId\": \"r1\"}\r\n\r\n";

}  // namespace

TEST_CASE("gemini: an SSE stream maps to chunks, whole or byte by byte",
          "[providers][gemini][stream]") {
    const auto d = test::decode_both<Gemini::StreamDecoder>(gemini_stream);
    CHECK(d.last == bifrost::StreamStatus::done);
    REQUIRE(d.chunks.size() == 4);  // three events and the usage chunk
    CHECK(d.chunks[0].id == "r1");
    CHECK(d.chunks[0].model == "gemini-1.5-flash-002");
    CHECK(d.chunks[0].choices.at(0).role == bifrost::Role::assistant);
    CHECK_FALSE(d.chunks[1].choices.at(0).role);
    CHECK(test::text_of(d) == "The sky is blue.");
    CHECK(test::finish_of(d) == "stop");
    CHECK(d.chunks[3].choices.empty());
    REQUIRE(test::usage_of(d));
    CHECK(test::usage_of(d)->completion_tokens == 5);
    CHECK(test::usage_of(d)->total_tokens == 13);

    const auto call = test::decode_both<Gemini::StreamDecoder>(
        "data: "
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{"
        "\"a\":1}}}],"
        "\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}]}\n\n");
    CHECK(call.last == bifrost::StreamStatus::done);
    REQUIRE(call.chunks.at(0).choices.at(0).tool_calls.size() == 1);
    CHECK(call.chunks[0].choices[0].tool_calls[0].name == "f");
    CHECK(call.chunks[0].choices[0].tool_calls[0].type == "function");
    CHECK(test::json(call.chunks[0].choices[0].tool_calls[0].arguments) ==
          test::json(R"({"a":1})"));
    CHECK(test::finish_of(call) == "tool_calls");
}

TEST_CASE("gemini: a stream without a finish reason, or with an error, fails",
          "[providers][gemini][stream]") {
    const auto cut = test::decode_both<Gemini::StreamDecoder>(
        gemini_stream.substr(0, gemini_stream.find("data:", 10)));
    CHECK(cut.last == bifrost::StreamStatus::error);
    CHECK(cut.error.status == 502);
    CHECK(test::text_of(cut) == "The");

    const auto err = test::decode_both<Gemini::StreamDecoder>(
        "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": "
        "\"UNAVAILABLE\"}}\n\n");
    CHECK(err.last == bifrost::StreamStatus::error);
    CHECK(err.error.status == 503);
    CHECK(err.error.type == "UNAVAILABLE");
    CHECK(err.error.message == "The model is overloaded.");
}

TEST_CASE("gemini: one string embeds with embedContent", "[providers][gemini][embedding]") {
    auto r = test::embedding_request("gemini/text-embedding-004", {"Hello world"});
    r.dimensions = 256;
    r.extra["task_type"] = "RETRIEVAL_DOCUMENT";
    r.extra["title"] = "Greeting";
    const auto k = test::key("AIza-secret");
    const auto out = test::build_embedding<Gemini>(r, "text-embedding-004", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url ==
          "https://generativelanguage.googleapis.com/v1beta/models/"
          "text-embedding-004:embedContent");
    CHECK(out.headers.get("x-goog-api-key") == "AIza-secret");
    CHECK(out.headers.get("content-type") == "application/json");
    CHECK(out.url.find("AIza") == std::string::npos);
    CHECK(test::json(out.body) == test::json(R"({
        "content": {"parts": [{"text": "Hello world"}]},
        "taskType": "RETRIEVAL_DOCUMENT", "title": "Greeting", "outputDimensionality": 256})"));

    const auto res = test::parse_embedding<Gemini>(
        200, R"({"embedding": {"values": [0.013168523, -0.008711934, 0.5]}})");
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 1);
    CHECK(res.response.object == "list");
    CHECK(res.response.data[0].object == "embedding");
    CHECK(res.response.data[0].index == 0);
    CHECK(res.response.data[0].embedding == std::vector<float>{0.013168523f, -0.008711934f, 0.5f});
    CHECK_FALSE(res.response.usage);
}

TEST_CASE("gemini: an array of strings embeds with batchEmbedContents",
          "[providers][gemini][embedding]") {
    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://127.0.0.1:7000/";
    const auto k = test::key("AIza-secret");
    const auto out = test::build_embedding<Gemini>(
        test::embedding_request("gemini/gemini-embedding-001", {"a", "b"}),
        "models/gemini-embedding-001", &k, cfg);
    CHECK(out.url == "http://127.0.0.1:7000/v1beta/models/gemini-embedding-001:batchEmbedContents");
    CHECK(test::json(out.body) == test::json(R"({"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}]})"));

    const auto res = test::parse_embedding<Gemini>(
        200,
        R"({"embeddings": [{"values": [1, 2]}, {"values": [3.5, -4]}], "usageMetadata": {"promptTokenCount": 4}})");
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 2);
    CHECK(res.response.data[1].index == 1);
    CHECK(res.response.data[0].embedding == std::vector<float>{1.0f, 2.0f});
    CHECK(res.response.data[1].embedding == std::vector<float>{3.5f, -4.0f});
    REQUIRE(res.response.usage);
    CHECK(res.response.usage->prompt_tokens == 4);
    CHECK(res.response.usage->total_tokens == 4);
}

TEST_CASE("gemini: embedding errors and bad input", "[providers][gemini][embedding]") {
    const auto err = test::parse_embedding<Gemini>(
        400,
        R"({"error": {"code": 400, "message": "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch", "status": "INVALID_ARGUMENT"}})");
    CHECK(err.error.status == 400);
    CHECK(err.error.type == "INVALID_ARGUMENT");
    CHECK(err.error.message.find("at most 100 requests") != std::string::npos);

    const auto broken = test::parse_embedding<Gemini>(200, R"({"embedding": {"values": ["x"]}})");
    CHECK(broken.error.status == 502);
    CHECK(broken.error.type == "invalid_upstream_response");
    CHECK(test::parse_embedding<Gemini>(200, "{}").error.status == 502);
    CHECK(test::parse_embedding<Gemini>(200, "not json").error.status == 502);

    bifrost::EmbeddingRequest tokens;
    tokens.input = bifrost::TextInput::of_tokens({1, 2, 3});
    const auto k = test::key("AIza-secret");
    try {
        (void)test::build_embedding<Gemini>(tokens, "text-embedding-004", &k);
        FAIL("token ids cannot be sent to Gemini");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("token ids") != std::string::npos);
    }
}
