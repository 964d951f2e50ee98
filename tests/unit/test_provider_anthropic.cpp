// providers::Anthropic against fixtures written from Anthropic's Messages API reference.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/providers/anthropic.hpp>

#include <string>

using bifrost::providers::Anthropic;

namespace {

bifrost::ChatRequest tool_conversation() {
    bifrost::ChatRequest r;
    r.model = "anthropic/claude-3-5-sonnet-20241022";
    r.messages.push_back({bifrost::Role::system, "You are terse.", {}, {}, {}, {}, {}});
    r.messages.push_back({bifrost::Role::user, "Weather in Paris and Rome?", {}, {}, {}, {}, {}});
    bifrost::Message call{bifrost::Role::assistant, "Checking.", {}, {}, {}, {}, {}};
    call.tool_calls.push_back({"toolu_1", "function", "get_weather", R"({"city":"Paris"})"});
    call.tool_calls.push_back({"toolu_2", "function", "get_weather", R"({"city":"Rome"})"});
    r.messages.push_back(call);
    r.messages.push_back({bifrost::Role::tool, "18C", {}, {}, {}, "toolu_1", {}});
    r.messages.push_back({bifrost::Role::tool, "21C", {}, {}, {}, "toolu_2", {}});
    r.temperature = 0.5;
    r.top_p = 0.9;
    r.stop = {"END"};
    bifrost::Tool t;
    t.name = "get_weather";
    t.description = "Current weather";
    t.parameters = test::json(R"({"type":"object","properties":{"city":{"type":"string"}}})");
    r.tools.push_back(t);
    r.tool_choice = bifrost::ToolChoice{bifrost::ToolChoice::Mode::required, {}};
    return r;
}

}  // namespace

TEST_CASE("anthropic: a conversation with tools maps to a Messages request",
          "[providers][anthropic]") {
    const auto k = test::key("sk-ant-secret");
    const auto out = test::build<Anthropic>(tool_conversation(), "claude-3-5-sonnet-20241022", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url == "https://api.anthropic.com/v1/messages");
    CHECK(out.headers.get("x-api-key") == "sk-ant-secret");
    CHECK(out.headers.get("anthropic-version") == "2023-06-01");
    CHECK(out.headers.get("content-type") == "application/json");
    CHECK_FALSE(out.headers.contains("authorization"));
    CHECK(test::json(out.body) == test::json(R"({
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 4096,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "21C"}]}
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "description": "Current weather",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any"}
    })"));
}

TEST_CASE(
    "anthropic: max_tokens, images, named tool choice, stream flag, base_url and extra headers",
    "[providers][anthropic]") {
    bifrost::ChatRequest r;
    r.max_tokens = 300;
    bifrost::Message m{bifrost::Role::user, {}, {}, {}, {}, {}, {}};
    m.parts.push_back({bifrost::ContentPart::Type::text, "What is this?", {}, {}, {}});
    m.parts.push_back(
        {bifrost::ContentPart::Type::image_url, {}, "data:image/png;base64,iVBORw0K", {}, {}});
    m.parts.push_back(
        {bifrost::ContentPart::Type::image_url, {}, "https://example.com/cat.jpg", {}, {}});
    r.messages.push_back(m);
    r.tool_choice = bifrost::ToolChoice{bifrost::ToolChoice::Mode::function, "lookup"};
    r.parallel_tool_calls = false;

    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://127.0.0.1:9999/";
    cfg.network_config.extra_headers = {{"anthropic-beta", "tools-2024"},
                                        {"anthropic-version", "2023-01-01"}};
    const auto k = test::key("sk-ant");
    const auto out = test::build<Anthropic>(r, "claude-3-haiku", &k, cfg, /*stream*/ true);
    CHECK(out.url == "http://127.0.0.1:9999/v1/messages");
    CHECK(out.headers.get("anthropic-beta") == "tools-2024");
    CHECK(out.headers.get("anthropic-version") == "2023-01-01");
    CHECK(test::json(out.body) == test::json(R"({
        "model": "claude-3-haiku",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}],
        "tool_choice": {"type": "tool", "name": "lookup", "disable_parallel_tool_use": true},
        "stream": true
    })"));
}

TEST_CASE("anthropic: a message with text and tool_use maps to content and tool_calls",
          "[providers][anthropic]") {
    const auto out = test::parse<Anthropic>(200, R"({
        "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [
            {"type": "text", "text": "I'll check."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503}
    })");
    REQUIRE(out.ok());
    CHECK(out.response.id == "msg_01Aq9w938a90dw8q");
    CHECK(out.response.model == "claude-3-5-sonnet-20241022");
    REQUIRE(out.response.choices.size() == 1);
    const auto& c = out.response.choices[0];
    CHECK(c.message.role == bifrost::Role::assistant);
    CHECK(c.message.content == "I'll check.");
    REQUIRE(c.message.tool_calls.size() == 1);
    CHECK(c.message.tool_calls[0].id == "toolu_01A09q90qw90lq917835lq9");
    CHECK(c.message.tool_calls[0].name == "get_weather");
    CHECK(test::json(c.message.tool_calls[0].arguments) ==
          test::json(R"({"location":"San Francisco, CA"})"));
    CHECK(c.finish_reason == "tool_calls");
    REQUIRE(out.response.usage);
    CHECK(out.response.usage->prompt_tokens == 2095);
    CHECK(out.response.usage->completion_tokens == 503);
    CHECK(out.response.usage->total_tokens == 2598);
}

TEST_CASE("anthropic: stop reasons map to OpenAI finish reasons", "[providers][anthropic]") {
    const auto finish = [](const char* reason) {
        const auto out = test::parse<Anthropic>(
            200,
            std::string(
                R"({"id":"m","model":"c","content":[{"type":"text","text":"x"}],"stop_reason":")") +
                reason + R"(","usage":{"input_tokens":1,"output_tokens":1}})");
        REQUIRE(out.ok());
        return out.response.choices.at(0).finish_reason;
    };
    CHECK(finish("end_turn") == "stop");
    CHECK(finish("stop_sequence") == "stop");
    CHECK(finish("max_tokens") == "length");
    CHECK(finish("tool_use") == "tool_calls");
}

TEST_CASE("anthropic: errors keep the upstream status, type and message",
          "[providers][anthropic]") {
    const auto out = test::parse<Anthropic>(
        529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
    CHECK_FALSE(out.ok());
    CHECK(out.error.status == 529);
    CHECK(out.error.type == "overloaded_error");
    CHECK(out.error.message == "Overloaded");

    const auto bad = test::parse<Anthropic>(200, "not json");
    CHECK(bad.error.status == 502);
    CHECK(bad.error.type == "invalid_upstream_response");
}

namespace {

constexpr std::string_view text_stream =
    "event: message_start\n"
    "data: "
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\","
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-"
    "20241022\","
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":"
    "1}}}\n\n"
    "event: content_block_start\n"
    "data: "
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":"
    "\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
    "\"Hello\"}}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!"
    "\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: "
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

constexpr std::string_view tool_stream =
    "event: message_start\n"
    "data: "
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"type\":\"message\",\"role\":"
    "\"assistant\","
    "\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\",\"usage\":{\"input_tokens\":472,"
    "\"output_tokens\":2}}}\n\n"
    "event: content_block_start\n"
    "data: "
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":"
    "\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
    "\"Okay\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"location\\\":\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\" \\\"Paris\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: "
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":89}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

}  // namespace

TEST_CASE("anthropic: a text stream maps to chunks, whole or byte by byte",
          "[providers][anthropic][stream]") {
    const auto d = test::decode_both<Anthropic::StreamDecoder>(text_stream);
    CHECK(d.last == bifrost::StreamStatus::done);
    REQUIRE(d.chunks.size() == 5);  // role, "Hello", "!", finish, usage
    CHECK(d.chunks[0].id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
    CHECK(d.chunks[0].model == "claude-3-5-sonnet-20241022");
    CHECK(d.chunks[0].object == "chat.completion.chunk");
    REQUIRE(d.chunks[0].choices.size() == 1);
    CHECK(d.chunks[0].choices[0].role == bifrost::Role::assistant);
    CHECK(test::text_of(d) == "Hello!");
    CHECK(test::finish_of(d) == "stop");
    CHECK(d.chunks[4].choices.empty());
    const auto u = test::usage_of(d);
    REQUIRE(u);
    CHECK(u->prompt_tokens == 25);
    CHECK(u->completion_tokens == 15);
    CHECK(u->total_tokens == 40);
    for (const auto& c : d.chunks)
        CHECK(c.id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
}

TEST_CASE("anthropic: a tool_use stream maps to tool call deltas",
          "[providers][anthropic][stream]") {
    const auto d = test::decode_both<Anthropic::StreamDecoder>(tool_stream);
    CHECK(d.last == bifrost::StreamStatus::done);
    CHECK(test::text_of(d) == "Okay");
    CHECK(test::finish_of(d) == "tool_calls");
    std::string args;
    int starts = 0;
    for (const auto& c : d.chunks) {
        for (const auto& ch : c.choices) {
            for (const auto& t : ch.tool_calls) {
                CHECK(t.index == 0);
                if (!t.id.empty()) {
                    ++starts;
                    CHECK(t.id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
                    CHECK(t.type == "function");
                    CHECK(t.name == "get_weather");
                }
                args += t.arguments;
            }
        }
    }
    CHECK(starts == 1);
    CHECK(test::json(args) == test::json(R"({"location": "Paris"})"));
}

TEST_CASE("anthropic: stream errors and truncation end the stream with an error",
          "[providers][anthropic][stream]") {
    SECTION("an error event") {
        const std::string bytes =
            std::string(text_stream.substr(0, text_stream.find("event: content_block_delta"))) +
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", "
            "\"message\": \"Overloaded\"}}\n\n";
        const auto d = test::decode_both<Anthropic::StreamDecoder>(bytes);
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(d.error.status == 529);
        CHECK(d.error.type == "overloaded_error");
        CHECK(d.error.message == "Overloaded");
        CHECK(d.chunks.size() == 1);  // the role chunk came before the error
    }
    SECTION("a body cut before message_stop") {
        const auto d = test::decode_both<Anthropic::StreamDecoder>(
            text_stream.substr(0, text_stream.find("event: message_stop")));
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(d.error.status == 502);
        CHECK(test::text_of(d) == "Hello!");
    }
    SECTION("an event that is not JSON") {
        const auto d =
            test::decode_both<Anthropic::StreamDecoder>("event: message_start\ndata: {oops\n\n");
        CHECK(d.last == bifrost::StreamStatus::error);
        CHECK(d.error.type == "invalid_upstream_response");
    }
    SECTION("reset starts a new stream") {
        Anthropic::StreamDecoder dec;
        dec.feed("event: message_start\ndata: {oops\n\n");
        dec.reset();
        dec.feed(text_stream);
        test::Decoded d;
        test::drain(dec, d);
        CHECK(d.last == bifrost::StreamStatus::done);
        CHECK(test::text_of(d) == "Hello!");
    }
}
