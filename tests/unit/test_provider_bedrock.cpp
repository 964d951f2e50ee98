// providers::Bedrock against fixtures written from the Bedrock Converse / ConverseStream API
// reference, and InvokeModel embeddings against the Titan and Cohere embed model references.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/providers/bedrock.hpp>
#include <bifrost/providers/detail/eventstream.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using bifrost::providers::Bedrock;
namespace es = bifrost::providers::detail::eventstream;

namespace {

std::chrono::system_clock::time_point suite_time() {
    return std::chrono::system_clock::time_point(
        std::chrono::seconds(1440938160));  // 20150830T123600Z
}

Bedrock fixed_clock() {
    Bedrock b;
    b.clock = &suite_time;
    return b;
}

const char* const bedrock_config = R"({"access_key": "AKIDEXAMPLE",
    "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session_token": "tok",
    "region": "us-west-2", "deployments": {"claude-3-haiku": "anthropic.claude-3-haiku-20240307-v1:0"}})";

}  // namespace

TEST_CASE("bedrock: a conversation maps to a signed Converse request", "[providers][bedrock]") {
    bifrost::ChatRequest r;
    r.messages.push_back({bifrost::Role::system, "Be brief.", {}, {}, {}, {}, {}});
    bifrost::Message u{bifrost::Role::user, {}, {}, {}, {}, {}, {}};
    u.parts.push_back({bifrost::ContentPart::Type::text, "Weather?", {}, {}, {}});
    u.parts.push_back(
        {bifrost::ContentPart::Type::image_url, {}, "data:image/png;base64,iVBORw0K", {}, {}});
    r.messages.push_back(u);
    bifrost::Message call{bifrost::Role::assistant, {}, {}, {}, {}, {}, {}};
    call.tool_calls.push_back({"tooluse_1", "function", "get_weather", R"({"city":"Oslo"})"});
    r.messages.push_back(call);
    r.messages.push_back({bifrost::Role::tool, R"({"temp":-3})", {}, {}, {}, "tooluse_1", {}});
    r.max_tokens = 512;
    r.temperature = 0.5;
    r.top_p = 0.9;
    r.stop = {"END"};
    bifrost::Tool t;
    t.name = "get_weather";
    t.description = "Weather by city";
    t.parameters = test::json(R"({"type":"object","properties":{"city":{"type":"string"}}})");
    r.tools.push_back(t);
    r.tool_choice = bifrost::ToolChoice{bifrost::ToolChoice::Mode::function, "get_weather"};

    const auto k = test::key("", "bedrock_key_config", bedrock_config);
    const auto out = test::build<Bedrock>(r, "claude-3-haiku", &k, {}, false, fixed_clock());
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url ==
          "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
          "anthropic.claude-3-haiku-20240307-v1%3A0/converse");
    CHECK(out.headers.get("x-amz-date") == "20150830T123600Z");
    CHECK(out.headers.get("x-amz-security-token") == "tok");
    CHECK(out.headers.get("content-type") == "application/json");
    CHECK(test::json(out.body) == test::json(R"({
        "messages": [
            {"role": "user", "content": [
                {"text": "Weather?"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0K"}}}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp": -3}}]}}]}
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather by city",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
            "toolChoice": {"tool": {"name": "get_weather"}}}
    })"));

    // The path is encoded twice in the canonical request (AWS's rule for services other than S3).
    namespace sigv4 = bifrost::providers::detail::sigv4;
    const auto expected =
        sigv4::sign("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "",
                    {{"host", "bedrock-runtime.us-west-2.amazonaws.com"},
                     {"content-type", "application/json"},
                     {"x-amz-date", "20150830T123600Z"},
                     {"x-amz-security-token", "tok"}},
                    out.body, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok"},
                    "us-west-2", "bedrock", "20150830T123600Z");
    CHECK(expected.canonical_request.find(
              "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n") != std::string::npos);
    CHECK(out.headers.get("authorization") == expected.authorization);
    CHECK(
        out.headers.get("authorization")
            .find("Credential=AKIDEXAMPLE/20150830/us-west-2/bedrock/aws4_request, "
                  "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=") !=
        std::string::npos);
    CHECK(out.headers.get("authorization").find("wJalr") == std::string::npos);
}

TEST_CASE("bedrock: a fixed request has an independently computed signature",
          "[providers][bedrock]") {
    const auto k = test::key(
        "", "bedrock_key_config",
        R"({"access_key": "AKIDEXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"})");
    const auto out =
        test::build<Bedrock>(test::user_request("bedrock/m", "Hi"), "amazon.titan-text-lite-v1", &k,
                             {}, false, fixed_clock());
    CHECK(
        out.url ==
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-text-lite-v1/converse");
    REQUIRE(out.body == R"({"messages":[{"role":"user","content":[{"text":"Hi"}]}]})");
    CHECK_FALSE(out.headers.contains("x-amz-security-token"));
    // Computed outside this project from the canonical request AWS's rules give for this request.
    CHECK(out.headers.get("authorization") ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
          "SignedHeaders=content-type;host;x-amz-date, "
          "Signature=bc214768d88380ebc44f5ae95614625a6234895cb6a1cc0a624cd1a20ba14ef0");
}

TEST_CASE("bedrock: streaming path, base_url, extra headers, API keys and missing credentials",
          "[providers][bedrock]") {
    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://127.0.0.1:9100/proxy/";
    cfg.network_config.extra_headers = {{"X-Trace", "t1"}};
    const auto k = test::key("", "bedrock_key_config", bedrock_config);
    const auto s = test::build<Bedrock>(test::user_request("bedrock/claude-3-haiku", "Hi"),
                                        "claude-3-haiku", &k, cfg, true, fixed_clock());
    CHECK(s.url ==
          "http://127.0.0.1:9100/proxy/model/anthropic.claude-3-haiku-20240307-v1%3A0/"
          "converse-stream");
    CHECK(s.headers.get("accept") == "application/vnd.amazon.eventstream");
    CHECK(s.headers.get("x-trace") == "t1");
    namespace sigv4 = bifrost::providers::detail::sigv4;
    const auto expected = sigv4::sign(
        "POST", "/proxy/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", "",
        {{"host", "127.0.0.1:9100"},
         {"content-type", "application/json"},
         {"x-amz-date", "20150830T123600Z"},
         {"x-amz-security-token", "tok"}},
        s.body, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok"}, "us-west-2",
        "bedrock", "20150830T123600Z");
    CHECK(s.headers.get("authorization") == expected.authorization);

    const auto api = test::key("bedrock-api-key-xyz");
    const auto b = test::build<Bedrock>(test::user_request("bedrock/m", "Hi"), "m", &api);
    CHECK(b.headers.get("authorization") == "Bearer bedrock-api-key-xyz");
    CHECK_FALSE(b.headers.contains("x-amz-date"));

    const auto none =
        test::key("", "bedrock_key_config", R"({"access_key": "AKID", "secret_key": ""})");
    try {
        (void)test::build<Bedrock>(test::user_request("bedrock/m", "Hi"), "m", &none);
        FAIL("a key without a secret must not build a request");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("secret_key") != std::string::npos);
        CHECK(std::string(e.what()).find("AKID") == std::string::npos);
    }
}

TEST_CASE("bedrock: a Converse response maps text, tool use, stop reason and usage",
          "[providers][bedrock]") {
    bifrost::HttpResponse res;
    res.status = 200;
    res.headers.add("x-amzn-RequestId", "req-123");
    res.body = R"({"output": {"message": {"role": "assistant", "content": [
        {"text": "Checking the weather."},
        {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 375, "outputTokens": 36, "totalTokens": 411},
        "metrics": {"latencyMs": 2133}})";
    bifrost::Outcome out;
    Bedrock{}.parse_chat(res, out);
    REQUIRE(out.ok());
    CHECK(out.response.id == "req-123");
    const auto& c = out.response.choices.at(0);
    CHECK(c.message.content == "Checking the weather.");
    REQUIRE(c.message.tool_calls.size() == 1);
    CHECK(c.message.tool_calls[0].id == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    CHECK(c.message.tool_calls[0].name == "top_song");
    CHECK(test::json(c.message.tool_calls[0].arguments) == test::json(R"({"sign":"WZPZ"})"));
    CHECK(c.finish_reason == "tool_calls");
    CHECK(out.response.usage->prompt_tokens == 375);
    CHECK(out.response.usage->completion_tokens == 36);
    CHECK(out.response.usage->total_tokens == 411);

    const auto finish = [](const char* reason) {
        const auto o = test::parse<Bedrock>(
            200,
            std::string(
                R"({"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":")") +
                reason + R"("})");
        REQUIRE(o.ok());
        return o.response.choices.at(0).finish_reason;
    };
    CHECK(finish("end_turn") == "stop");
    CHECK(finish("stop_sequence") == "stop");
    CHECK(finish("max_tokens") == "length");
    CHECK(finish("guardrail_intervened") == "content_filter");
    CHECK(finish("content_filtered") == "content_filter");
}

TEST_CASE("bedrock: errors keep the status, the x-amzn-ErrorType and the message",
          "[providers][bedrock]") {
    bifrost::HttpResponse res;
    res.status = 400;
    res.headers.add("x-amzn-ErrorType",
                    "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/");
    res.body = R"({"message":"The provided model identifier is invalid."})";
    bifrost::Outcome out;
    Bedrock{}.parse_chat(res, out);
    CHECK(out.error.status == 400);
    CHECK(out.error.type == "ValidationException");
    CHECK(out.error.message == "The provided model identifier is invalid.");

    const auto denied = test::parse<Bedrock>(403, R"({"Message":"User is not authorized"})");
    CHECK(denied.error.status == 403);
    CHECK(denied.error.message == "User is not authorized");
}

namespace {

std::string event(const char* type, const char* payload) {
    return es::encode(
        {{":event-type", type}, {":content-type", "application/json"}, {":message-type", "event"}},
        payload);
}

std::string converse_stream() {
    return event("messageStart", R"({"p":"abcd","role":"assistant"})") +
           event("contentBlockDelta",
                 R"({"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"ab"})") +
           event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":" there"}})") +
           event("contentBlockStop", R"({"contentBlockIndex":0})") +
           event(
               "contentBlockStart",
               R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather"}}})") +
           event("contentBlockDelta",
                 R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}})") +
           event("contentBlockDelta",
                 R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Oslo\"}"}}})") +
           event("contentBlockStop", R"({"contentBlockIndex":1})") +
           event("messageStop", R"({"stopReason":"tool_use"})") +
           event(
               "metadata",
               R"({"usage":{"inputTokens":20,"outputTokens":12,"totalTokens":32},"metrics":{"latencyMs":300}})");
}

}  // namespace

TEST_CASE("bedrock: a ConverseStream maps to chunks, whole or byte by byte",
          "[providers][bedrock][stream]") {
    const std::string bytes = converse_stream();
    const auto d = test::decode_both<Bedrock::StreamDecoder>(bytes);
    CHECK(d.last == bifrost::StreamStatus::done);
    CHECK(d.chunks.at(0).choices.at(0).role == bifrost::Role::assistant);
    CHECK(test::text_of(d) == "Hello there");
    CHECK(test::finish_of(d) == "tool_calls");
    std::string args;
    int starts = 0;
    for (const auto& c : d.chunks)
        for (const auto& ch : c.choices)
            for (const auto& tc : ch.tool_calls) {
                CHECK(tc.index == 0);
                if (!tc.id.empty()) {
                    ++starts;
                    CHECK(tc.id == "tooluse_1");
                    CHECK(tc.name == "get_weather");
                }
                args += tc.arguments;
            }
    CHECK(starts == 1);
    CHECK(test::json(args) == test::json(R"({"city":"Oslo"})"));
    REQUIRE(test::usage_of(d));
    CHECK(test::usage_of(d)->total_tokens == 32);
}

TEST_CASE("bedrock: stream exceptions, corruption and truncation are errors",
          "[providers][bedrock][stream]") {
    const std::string bytes = converse_stream();
    SECTION("an exception message") {
        const std::string s =
            event("messageStart", R"({"role":"assistant"})") +
            es::encode({{":exception-type", "throttlingException"},
                        {":content-type", "application/json"},
                        {":message-type", "exception"}},
                       R"({"message":"Too many requests, please wait before trying again."})");
        const auto d = test::decode_both<Bedrock::StreamDecoder>(s);
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(d.error.status == 429);
        CHECK(d.error.type == "throttlingException");
        CHECK(d.error.message == "Too many requests, please wait before trying again.");
        CHECK(d.chunks.size() == 1);
    }
    SECTION("a corrupted CRC") {
        std::string bad = bytes;
        bad[bad.size() / 2] ^= 0x20;
        const auto d = test::decode_both<Bedrock::StreamDecoder>(bad);
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(d.error.status == 502);
        CHECK(d.error.message.find("CRC") != std::string::npos);
    }
    SECTION("a body cut inside a frame") {
        const auto d = test::decode_both<Bedrock::StreamDecoder>(
            std::string_view(bytes).substr(0, bytes.size() - 5));
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(d.error.status == 502);
    }
    SECTION("a body cut before messageStop") {
        const auto d = test::decode_both<Bedrock::StreamDecoder>(
            event("messageStart", R"({"role":"assistant"})") +
            event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hel"}})"));
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(test::text_of(d) == "Hel");
    }
}

TEST_CASE("bedrock: Titan text embeddings go through a signed InvokeModel",
          "[providers][bedrock][embedding]") {
    const auto k = test::key("", "bedrock_key_config", R"({"access_key": "AKIDEXAMPLE",
        "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "region": "us-west-2",
        "deployments": {"titan-v2": "amazon.titan-embed-text-v2:0"}})");
    auto r = test::embedding_request("bedrock/titan-v2", {"Hello world"});
    r.dimensions = 256;
    r.extra["normalize"] = true;
    const auto out = test::build_embedding<Bedrock>(r, "titan-v2", &k, {}, fixed_clock());
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url ==
          "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
          "amazon.titan-embed-text-v2%3A0/invoke");
    CHECK(out.headers.get("accept") == "application/json");
    CHECK(out.headers.get("content-type") == "application/json");
    CHECK(out.headers.get("x-amz-date") == "20150830T123600Z");
    CHECK(test::json(out.body) ==
          test::json(R"({"inputText": "Hello world", "dimensions": 256, "normalize": true})"));
    namespace sigv4 = bifrost::providers::detail::sigv4;
    const auto expected =
        sigv4::sign("POST", "/model/amazon.titan-embed-text-v2%3A0/invoke", "",
                    {{"host", "bedrock-runtime.us-west-2.amazonaws.com"},
                     {"content-type", "application/json"},
                     {"x-amz-date", "20150830T123600Z"}},
                    out.body, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""},
                    "us-west-2", "bedrock", "20150830T123600Z");
    CHECK(out.headers.get("authorization") == expected.authorization);
    CHECK(out.headers.get("authorization").find("wJalr") == std::string::npos);

    // v1 takes the text alone.
    const auto v1 = test::build_embedding<Bedrock>(
        test::embedding_request("bedrock/amazon.titan-embed-text-v1", {"x"}),
        "amazon.titan-embed-text-v1", &k, {}, fixed_clock());
    CHECK(v1.url.ends_with("/model/amazon.titan-embed-text-v1/invoke"));
    CHECK(test::json(v1.body) == test::json(R"({"inputText": "x"})"));

    const auto res =
        test::parse_embedding<Bedrock>(200,
                                       R"({"embedding": [0.125, -0.5, 1], "inputTextTokenCount": 3,
            "embeddingsByType": {"float": [0.125, -0.5, 1]}})");
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 1);
    CHECK(res.response.data[0].embedding == std::vector<float>{0.125f, -0.5f, 1.0f});
    REQUIRE(res.response.usage);
    CHECK(res.response.usage->prompt_tokens == 3);
    CHECK(res.response.usage->total_tokens == 3);

    // Titan embeds one text per call: a batch is refused before anything is sent.
    try {
        (void)test::build_embedding<Bedrock>(
            test::embedding_request("bedrock/titan-v2", {"a", "b"}), "titan-v2", &k, {},
            fixed_clock());
        FAIL("Titan takes one input");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("one input per request") != std::string::npos);
    }
}

TEST_CASE("bedrock: Cohere embed models on Bedrock", "[providers][bedrock][embedding]") {
    const auto k = test::key("", "bedrock_key_config", bedrock_config);
    auto r = test::embedding_request("bedrock/cohere.embed-english-v3", {"hello", "world"});
    r.extra["input_type"] = "search_query";
    const auto out =
        test::build_embedding<Bedrock>(r, "cohere.embed-english-v3", &k, {}, fixed_clock());
    CHECK(out.url ==
          "https://bedrock-runtime.us-west-2.amazonaws.com/model/cohere.embed-english-v3/invoke");
    CHECK(out.headers.get("x-amz-security-token") == "tok");
    CHECK(test::json(out.body) ==
          test::json(R"({"texts": ["hello", "world"], "input_type": "search_query"})"));
    const auto profile = test::build_embedding<Bedrock>(
        test::embedding_request("bedrock/us.cohere.embed-v4:0", {"x"}), "us.cohere.embed-v4:0", &k,
        {}, fixed_clock());
    CHECK(test::json(profile.body) ==
          test::json(R"({"texts": ["x"], "input_type": "search_document"})"));

    const auto res = test::parse_embedding<Bedrock>(
        200,
        R"({"embeddings": [[0.5, 0.25], [-1, 0]], "id": "c1", "response_type": "embeddings_floats",
            "texts": ["hello", "world"]})",
        {{"X-Amzn-Bedrock-Input-Token-Count", "4"}});
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 2);
    CHECK(res.response.data[1].embedding == std::vector<float>{-1.0f, 0.0f});
    REQUIRE(res.response.usage);
    CHECK(res.response.usage->prompt_tokens == 4);

    const auto by_type = test::parse_embedding<Bedrock>(
        200, R"({"embeddings": {"float": [[1, 2]]}, "response_type": "embeddings_by_type"})");
    REQUIRE(by_type.ok());
    CHECK(by_type.response.data.at(0).embedding == std::vector<float>{1.0f, 2.0f});
    CHECK_FALSE(by_type.response.usage);

    CHECK_THROWS_AS(
        test::build_embedding<Bedrock>(test::embedding_request("bedrock/meta.llama3", {"x"}),
                                       "meta.llama3-8b-instruct-v1:0", &k, {}, fixed_clock()),
        std::invalid_argument);
}

TEST_CASE("bedrock: InvokeModel errors keep the status and the error type",
          "[providers][bedrock][embedding]") {
    const auto err = test::parse_embedding<Bedrock>(
        400, R"({"message":"Malformed input request: expected maxLength: 50000"})",
        {{"x-amzn-ErrorType", "ValidationException:http://internal.amazon.com/coral/"}});
    CHECK(err.error.status == 400);
    CHECK(err.error.type == "ValidationException");
    CHECK(err.error.message == "Malformed input request: expected maxLength: 50000");
    const auto throttled = test::parse_embedding<Bedrock>(
        429, R"({"message":"Too many requests"})", {{"x-amzn-ErrorType", "ThrottlingException"}});
    CHECK(throttled.error.status == 429);
    CHECK(throttled.error.type == "ThrottlingException");
    CHECK(test::parse_embedding<Bedrock>(200, R"({"embedding": "x"})").error.status == 502);
}
