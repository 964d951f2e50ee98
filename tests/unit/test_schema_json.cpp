#include "bifrost_catch.hpp"
#include "mutate.hpp"

#include <bifrost/schema/json.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace json = boost::json;
using namespace bifrost;

ChatRequest parse_request_ok(std::string_view text) {
    ChatRequest r;
    Error e;
    const bool ok = parse_chat_request(text, r, e);
    CHECK(e.message == "");
    REQUIRE(ok);
    return r;
}

void check_request_rejected(std::string_view text, const std::string& param,
                            const std::string& message) {
    ChatRequest r;
    Error e;
    CHECK(!parse_chat_request(text, r, e));
    CHECK(e.status == 400);
    CHECK(e.type == error_type::invalid_request);
    CHECK(e.param == param);
    CHECK(e.message == message);
}

void check_response_rejected(std::string_view text, const std::string& message) {
    Outcome o;
    CHECK(!parse_chat_response(text, o));
    CHECK(!o.ok());
    CHECK(o.error.status == 502);
    CHECK(o.error.type == error_type::bad_response);
    CHECK(o.error.message == message);
}

Message text_message(Role role, std::string content) {
    Message m;
    m.role = role;
    m.content = std::move(content);
    return m;
}

ContentPart text_part(std::string text) {
    ContentPart p;
    p.type = ContentPart::Type::text;
    p.text = std::move(text);
    return p;
}

ContentPart image_part(std::string url, std::string detail) {
    ContentPart p;
    p.type = ContentPart::Type::image_url;
    p.image_url = std::move(url);
    p.image_detail = std::move(detail);
    return p;
}

ToolCall tool_call(std::string id, std::string name, std::string arguments) {
    ToolCall tc;
    tc.id = std::move(id);
    tc.name = std::move(name);
    tc.arguments = std::move(arguments);
    return tc;
}

/// A request that sets every field the schema models.
ChatRequest rich_request() {
    ChatRequest r;
    r.model = "openai/gpt-4o";
    r.provider = "openai";
    r.fallbacks = {"anthropic/claude-3-5-sonnet", "mistral/mistral-large"};

    r.messages.push_back(text_message(Role::system, "You are terse."));
    r.messages.push_back(text_message(Role::developer, "Answer in French."));
    Message user;
    user.role = Role::user;
    user.name = "alice";
    user.parts.push_back(text_part("What is in these images?"));
    user.parts.push_back(image_part("https://example.com/cat.png", "high"));
    user.parts.push_back(image_part("data:image/png;base64,iVBORw0KGgo=", ""));
    ContentPart audio;
    audio.type = ContentPart::Type::other;
    audio.raw =
        json::parse(R"({"type":"input_audio","input_audio":{"data":"UklG","format":"wav"}})");
    user.parts.push_back(audio);
    r.messages.push_back(user);
    Message assistant;
    assistant.role = Role::assistant;
    assistant.tool_calls.push_back(tool_call("call_1", "get_weather", R"({"city":"Paris"})"));
    assistant.tool_calls.push_back(tool_call("call_2", "get_time", "{}"));
    r.messages.push_back(assistant);
    Message tool = text_message(Role::tool, "18C and sunny");
    tool.tool_call_id = "call_1";
    r.messages.push_back(tool);

    r.temperature = 0.7;
    r.top_p = 0.95;
    r.max_tokens = 512;
    r.max_completion_tokens = 1024;
    r.n = 2;
    r.seed = -42;
    r.frequency_penalty = 0.5;
    r.presence_penalty = -0.25;
    r.logprobs = true;
    r.top_logprobs = 3;
    r.parallel_tool_calls = false;
    r.stream = false;
    r.stop = {"END", "\n\n"};

    Tool weather;
    weather.name = "get_weather";
    weather.description = "Current weather for a city";
    weather.parameters = json::parse(
        R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})");
    weather.strict = true;
    r.tools.push_back(weather);
    Tool time;
    time.name = "get_time";
    r.tools.push_back(time);

    ToolChoice choice;
    choice.mode = ToolChoice::Mode::function;
    choice.function_name = "get_weather";
    r.tool_choice = choice;

    ResponseFormat format;
    format.type = ResponseFormat::Type::json_schema;
    format.json_schema =
        json::parse(R"({"name":"weather","strict":true,"schema":{"type":"object"}})");
    r.response_format = format;
    r.user = "user-1234";
    return r;
}

constexpr std::string_view openai_response = R"({
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": null,
        "tool_calls": [
          {
            "id": "call_abc123",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
          }
        ],
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "tool_calls"
    },
    {
      "index": 1,
      "message": {
        "role": "assistant",
        "content": "I can't help with that.",
        "refusal": "I can't help with that."
      },
      "logprobs": {"content": [{"token": "I", "logprob": -0.25, "bytes": [73], "top_logprobs": []}]},
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035",
  "extra_fields": {"provider": "openai", "latency": 12.5}
})";

}  // namespace

TEST_CASE("schema json: a rich request round-trips through write and parse") {
    const ChatRequest original = rich_request();
    std::string text;
    RequestWriteOptions gateway_form;
    gateway_form.for_upstream = false;
    write_chat_request(text, original, gateway_form);

    const ChatRequest parsed = parse_request_ok(text);
    CHECK(parsed == original);
    CHECK(parsed.messages.size() == 5);
    CHECK(parsed.messages[2].parts.size() == 4);
    CHECK(parsed.fallbacks.size() == 2);

    SECTION("writing again gives the same text") {
        std::string again;
        write_chat_request(again, parsed, gateway_form);
        CHECK(again == text);
    }
    SECTION("the upstream form drops the routing fields and can rename the model") {
        std::string upstream;
        RequestWriteOptions opts;
        opts.model = "gpt-4o";
        write_chat_request(upstream, original, opts);
        CHECK(upstream.rfind(R"({"model":"gpt-4o","messages":[)", 0) == 0);
        CHECK(upstream.find(R"("provider")") == std::string::npos);
        CHECK(upstream.find(R"("fallbacks")") == std::string::npos);
        const ChatRequest reparsed = parse_request_ok(upstream);
        CHECK(reparsed.model == "gpt-4o");
        CHECK(reparsed.provider.empty());
        CHECK(reparsed.fallbacks.empty());
        CHECK(reparsed.messages == original.messages);
        CHECK(reparsed.tools == original.tools);
    }
    SECTION("writing appends to what the string already holds") {
        std::string out = "prefix:";
        write_chat_request(out, original, gateway_form);
        CHECK(out == "prefix:" + text);
    }
}

TEST_CASE("schema json: request fields map to their OpenAI names") {
    const ChatRequest r = parse_request_ok(R"({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "name": "bob", "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                {"type": "image_url", "image_url": "https://x/z.png"},
                {"type": "file", "file": {"file_id": "file-1"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_9", "type": "function",
                 "function": {"name": "lookup", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_9", "content": "found"},
            {"role": "function", "name": "legacy", "content": "old"}
        ],
        "temperature": 1,
        "top_p": 0.5,
        "max_tokens": 256.0,
        "max_completion_tokens": 300,
        "n": 3,
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "logprobs": true,
        "top_logprobs": 5,
        "parallel_tool_calls": true,
        "stream": true,
        "stop": "STOP",
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Find",
                   "parameters": {"type": "object"}, "strict": false}}],
        "tool_choice": "required",
        "response_format": {"type": "json_object"},
        "user": "u-1",
        "provider": "azure",
        "fallbacks": ["openai/gpt-4o-mini"]
    })");

    CHECK(r.model == "gpt-4o");
    REQUIRE(r.messages.size() == 5);
    CHECK(r.messages[0].role == Role::system);
    CHECK(r.messages[0].content == "Be brief.");
    const Message& user = r.messages[1];
    CHECK(user.role == Role::user);
    CHECK(user.name == "bob");
    CHECK(user.content.empty());
    REQUIRE(user.parts.size() == 4);
    CHECK(user.parts[0].type == ContentPart::Type::text);
    CHECK(user.parts[0].text == "Describe");
    CHECK(user.parts[1].type == ContentPart::Type::image_url);
    CHECK(user.parts[1].image_url == "https://x/y.png");
    CHECK(user.parts[1].image_detail == "low");
    CHECK(user.parts[2].type == ContentPart::Type::image_url);
    CHECK(user.parts[2].image_url == "https://x/z.png");
    CHECK(user.parts[2].image_detail.empty());
    CHECK(user.parts[3].type == ContentPart::Type::other);
    CHECK(user.parts[3].raw == json::parse(R"({"type":"file","file":{"file_id":"file-1"}})"));
    const Message& assistant = r.messages[2];
    CHECK(assistant.role == Role::assistant);
    CHECK(assistant.content.empty());
    REQUIRE(assistant.tool_calls.size() == 1);
    CHECK(assistant.tool_calls[0] == tool_call("call_9", "lookup", R"({"q":1})"));
    CHECK(r.messages[3].role == Role::tool);
    CHECK(r.messages[3].tool_call_id == "call_9");
    CHECK(r.messages[3].content == "found");
    CHECK(r.messages[4].role == Role::function);
    CHECK(r.messages[4].name == "legacy");

    CHECK(r.temperature == 1.0);
    CHECK(r.top_p == 0.5);
    CHECK(r.max_tokens == 256);
    CHECK(r.max_completion_tokens == 300);
    CHECK(r.n == 3);
    CHECK(r.seed == 7);
    CHECK(r.frequency_penalty == 0.1);
    CHECK(r.presence_penalty == 0.2);
    CHECK(r.logprobs == true);
    CHECK(r.top_logprobs == 5);
    CHECK(r.parallel_tool_calls == true);
    CHECK(r.stream == true);
    CHECK(r.stop == std::vector<std::string>{"STOP"});
    REQUIRE(r.tools.size() == 1);
    CHECK(r.tools[0].type == "function");
    CHECK(r.tools[0].name == "lookup");
    CHECK(r.tools[0].description == "Find");
    CHECK(r.tools[0].parameters == json::parse(R"({"type":"object"})"));
    CHECK(r.tools[0].strict == false);
    REQUIRE(r.tool_choice.has_value());
    CHECK(r.tool_choice->mode == ToolChoice::Mode::required);
    REQUIRE(r.response_format.has_value());
    CHECK(r.response_format->type == ResponseFormat::Type::json_object);
    CHECK(r.response_format->json_schema.is_null());
    CHECK(r.user == "u-1");
    CHECK(r.provider == "azure");
    CHECK(r.fallbacks == std::vector<std::string>{"openai/gpt-4o-mini"});
    CHECK(r.extra.empty());

    SECTION("a stop string and a stop array are both written as an array") {
        std::string text;
        write_chat_request(text, r);
        CHECK(text.find(R"("stop":["STOP"])") != std::string::npos);
        CHECK(parse_request_ok(text).stop == r.stop);

        const ChatRequest two = parse_request_ok(
            R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"]})");
        CHECK(two.stop == std::vector<std::string>{"a", "b"});
        std::string text2;
        write_chat_request(text2, two);
        CHECK(text2 ==
              R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"]})");
    }
    SECTION("tool_choice strings are written back as strings") {
        std::string text;
        write_chat_request(text, r);
        CHECK(text.find(R"("tool_choice":"required")") != std::string::npos);
        for (const char* mode : {"none", "auto", "required"}) {
            const ChatRequest c = parse_request_ok(
                std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)") +
                R"("tool_choice":")" + mode + "\"}");
            std::string out;
            write_chat_request(out, c);
            CHECK(out.find(std::string(R"("tool_choice":")") + mode + "\"") != std::string::npos);
        }
    }
}

TEST_CASE("schema json: the request wire format is exact") {
    ChatRequest r;
    r.model = "m";
    Message assistant;
    assistant.role = Role::assistant;
    assistant.tool_calls.push_back(tool_call("c1", "f", "{}"));
    r.messages.push_back(assistant);
    r.max_tokens = 10;
    r.temperature = 0.5;
    r.stop = {"x"};
    Tool t;
    t.name = "f";
    t.parameters = json::parse(R"({"type":"object"})");
    t.strict = true;
    r.tools.push_back(t);
    ToolChoice choice;
    choice.mode = ToolChoice::Mode::function;
    choice.function_name = "f";
    r.tool_choice = choice;
    ResponseFormat format;
    format.type = ResponseFormat::Type::json_schema;
    format.json_schema = json::parse(R"({"name":"s"})");
    r.response_format = format;
    r.user = "u";
    r.provider = "openai";
    r.fallbacks = {"a/b"};
    r.extra.emplace("metadata", json::parse(R"({"k":"v"})"));

    std::string upstream;
    write_chat_request(upstream, r);
    CHECK(upstream ==
          R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[)"
          R"({"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}],)"
          R"("temperature":0.5,"max_tokens":10,"stop":["x"],)"
          R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},)"
          R"("strict":true}}],"tool_choice":{"type":"function","function":{"name":"f"}},)"
          R"("response_format":{"type":"json_schema","json_schema":{"name":"s"}},"user":"u",)"
          R"("metadata":{"k":"v"}})");

    std::string gateway;
    RequestWriteOptions opts;
    opts.for_upstream = false;
    write_chat_request(gateway, r, opts);
    CHECK(gateway ==
          upstream.substr(0, upstream.size() - 1) + R"(,"provider":"openai","fallbacks":["a/b"]})");
    CHECK(parse_request_ok(gateway) == r);
}

TEST_CASE("schema json: unknown request fields are preserved in order") {
    const std::string_view text =
        R"({"zeta":1,"model":"m","logit_bias":{"50256":-100},)"
        R"("messages":[{"role":"user","content":"hi","cache_control":{"type":"ephemeral"},"audio":null}],)"
        R"("alpha":[true,null],"metadata":{"b":2,"a":1},"service_tier":"flex"})";
    const ChatRequest r = parse_request_ok(text);

    REQUIRE(r.extra.size() == 5);
    auto it = r.extra.begin();
    CHECK(it->key() == "zeta");
    CHECK((it++)->value() == 1);
    CHECK(it->key() == "logit_bias");
    CHECK((it++)->value() == json::parse(R"({"50256":-100})"));
    CHECK((it++)->key() == "alpha");
    CHECK((it++)->key() == "metadata");
    CHECK(it->key() == "service_tier");
    CHECK(it->value() == "flex");

    REQUIRE(r.messages.size() == 1);
    REQUIRE(r.messages[0].extra.size() == 2);
    CHECK(r.messages[0].extra.at("cache_control") == json::parse(R"({"type":"ephemeral"})"));
    CHECK(r.messages[0].extra.at("audio").is_null());

    std::string written;
    write_chat_request(written, r);
    CHECK(written == R"({"model":"m","messages":[{"role":"user","content":"hi",)"
                     R"("cache_control":{"type":"ephemeral"},"audio":null}],)"
                     R"("zeta":1,"logit_bias":{"50256":-100},"alpha":[true,null],)"
                     R"("metadata":{"b":2,"a":1},"service_tier":"flex"})");
    CHECK(parse_request_ok(written) == r);
}

TEST_CASE("schema json: null optional request parameters mean absent") {
    const ChatRequest r = parse_request_ok(
        R"({"model":"m","messages":[{"role":"user","content":null,"name":null,"tool_calls":null}],)"
        R"("temperature":null,"max_tokens":null,"stream":null,"stop":null,"tools":null,)"
        R"("tool_choice":null,"response_format":null,"user":null,"provider":null,"fallbacks":null})");
    CHECK(!r.temperature.has_value());
    CHECK(!r.max_tokens.has_value());
    CHECK(!r.stream.has_value());
    CHECK(r.stop.empty());
    CHECK(r.tools.empty());
    CHECK(!r.tool_choice.has_value());
    CHECK(!r.response_format.has_value());
    CHECK(r.user.empty());
    CHECK(r.provider.empty());
    CHECK(r.fallbacks.empty());
    CHECK(r.extra.empty());
    CHECK(r.messages[0].content.empty());
    CHECK(r.messages[0].extra.empty());

    std::string text;
    write_chat_request(text, r);
    CHECK(text == R"({"model":"m","messages":[{"role":"user","content":""}]})");
}

TEST_CASE("schema json: malformed requests give 400 naming the field") {
    SECTION("missing, empty and mistyped top-level fields") {
        check_request_rejected(R"({"messages":[{"role":"user","content":"x"}]})", "model",
                               "model: required field is missing");
        check_request_rejected(R"({"model":"","messages":[{"role":"user","content":"x"}]})",
                               "model", "model: must not be empty");
        check_request_rejected(R"({"model":7,"messages":[{"role":"user","content":"x"}]})", "model",
                               "model: expected a string, got a number");
        check_request_rejected(R"({"model":"m"})", "messages",
                               "messages: required field is missing");
        check_request_rejected(R"({"model":"m","messages":[]})", "messages",
                               "messages: must not be empty");
        check_request_rejected(R"({"model":"m","messages":{}})", "messages",
                               "messages: expected an array, got an object");
        check_request_rejected(R"([{"model":"m"}])", "",
                               "request body: expected an object, got an array");
    }
    SECTION("wrong types inside messages, at several depths") {
        check_request_rejected(
            R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":5,"content":"b"}]})",
            "messages[1].role", "messages[1].role: expected a string, got a number");
        check_request_rejected(R"({"model":"m","messages":[{"content":"a"}]})", "messages[0].role",
                               "messages[0].role: required field is missing");
        check_request_rejected(R"({"model":"m","messages":["hi"]})", "messages[0]",
                               "messages[0]: expected an object, got a string");
        check_request_rejected(R"({"model":"m","messages":[{"role":"user","content":42}]})",
                               "messages[0].content",
                               "messages[0].content: expected a string, an array or null, got a "
                               "number");
        check_request_rejected(
            R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},)"
            R"({"type":"image_url","image_url":{"url":true}}]}]})",
            "messages[0].content[1].image_url.url",
            "messages[0].content[1].image_url.url: expected a string, got a boolean");
        check_request_rejected(
            R"({"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]})",
            "messages[0].content[0].type",
            "messages[0].content[0].type: required field is missing");
        check_request_rejected(
            R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c",)"
            R"("function":{"name":"f","arguments":{"a":1}}}]}]})",
            "messages[0].tool_calls[0].function.arguments",
            "messages[0].tool_calls[0].function.arguments: expected a string, got an object");
        check_request_rejected(
            R"({"model":"m","messages":[{"role":"user","content":"x","name":["n"]}]})",
            "messages[0].name", "messages[0].name: expected a string, got an array");
    }
    SECTION("unknown role") {
        check_request_rejected(R"({"model":"m","messages":[{"role":"robot","content":"x"}]})",
                               "messages[0].role", "messages[0].role: unknown role \"robot\"");
    }
    SECTION("typed parameters") {
        const std::string head = R"({"model":"m","messages":[{"role":"user","content":"x"}],)";
        check_request_rejected(head + R"("temperature":"hot"})", "temperature",
                               "temperature: expected a number, got a string");
        check_request_rejected(head + R"("max_tokens":1.5})", "max_tokens",
                               "max_tokens: expected an integer, got 1.5");
        check_request_rejected(head + R"("n":"2"})", "n", "n: expected an integer, got a string");
        check_request_rejected(head + R"("seed":18446744073709551615})", "seed",
                               "seed: integer out of range: 18446744073709551615");
        check_request_rejected(head + R"("stream":"yes"})", "stream",
                               "stream: expected a boolean, got a string");
        check_request_rejected(head + R"("stop":["a",1]})", "stop[1]",
                               "stop[1]: expected a string, got a number");
        check_request_rejected(head + R"("stop":3})", "stop",
                               "stop: expected a string or an array, got a number");
        check_request_rejected(head + R"("tools":[{"type":"function","function":{}}]})",
                               "tools[0].function.name",
                               "tools[0].function.name: required field is missing");
        check_request_rejected(head + R"("tools":[{"type":"function"}]})", "tools[0].function",
                               "tools[0].function: required field is missing");
        check_request_rejected(head + R"("tool_choice":"sometimes"})", "tool_choice",
                               "tool_choice: unknown value \"sometimes\"");
        check_request_rejected(head + R"("tool_choice":{"type":"function","function":{}}})",
                               "tool_choice.function.name",
                               "tool_choice.function.name: required field is missing");
        check_request_rejected(head + R"("response_format":{"type":"xml"}})",
                               "response_format.type",
                               "response_format.type: unknown value \"xml\"");
        check_request_rejected(head + R"("response_format":{"type":"json_schema"}})",
                               "response_format.json_schema",
                               "response_format.json_schema: required field is missing");
        check_request_rejected(head + R"("fallbacks":"openai/gpt-4o"})", "fallbacks",
                               "fallbacks: expected an array, got a string");
        check_request_rejected(head + R"("provider":false})", "provider",
                               "provider: expected a string, got a boolean");
    }
    SECTION("an integral double is an integer") {
        const ChatRequest r = parse_request_ok(
            R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":2.0,"n":1e1})");
        CHECK(r.max_tokens == 2);
        CHECK(r.n == 10);
    }
    SECTION("malformed JSON reports line and column") {
        const std::string_view text =
            "{\n"
            "  \"model\": \"gpt-4o\",\n"
            "  \"messages\": [\n"
            "    {\"role\": \"user\", \"content\": \"hi\"},\n"
            "  ]\n"
            "}\n";
        ChatRequest r;
        Error e;
        CHECK(!parse_chat_request(text, r, e));
        CHECK(e.status == 400);
        CHECK(e.type == error_type::invalid_request);
        CHECK(e.param.empty());
        const std::string prefix = "malformed JSON at line 5, column 3: ";
        CHECK(e.message.rfind(prefix, 0) == 0);
        CHECK(e.message.size() > prefix.size());

        CHECK(!parse_chat_request("{\"model\": \"m\"\n  \"messages\": []}", r, e));
        CHECK(e.message.rfind("malformed JSON at line 2, column 3: ", 0) == 0);
        CHECK(!parse_chat_request(R"({"model":"m"} x)", r, e));
        CHECK(e.message.rfind("malformed JSON at line 1, column 15: ", 0) == 0);
    }
    SECTION("empty body") {
        check_request_rejected("", "", "request body is empty");
    }
    SECTION("documents nested deeper than 64 levels are refused") {
        const std::string head = R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":)";
        ChatRequest r;
        Error e;
        CHECK(
            !parse_chat_request(head + std::string(100, '[') + std::string(100, ']') + "}", r, e));
        CHECK(e.status == 400);
        CHECK(e.message.rfind("malformed JSON at line 1, column ", 0) == 0);
        const ChatRequest ok =
            parse_request_ok(head + std::string(30, '[') + std::string(30, ']') + "}");
        CHECK(ok.extra.at("x").is_array());
    }
}

TEST_CASE("schema json: a realistic OpenAI response parses and re-writes") {
    Outcome o;
    REQUIRE(parse_chat_response(openai_response, o));
    CHECK(o.ok());
    const ChatResponse& r = o.response;
    CHECK(r.id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    CHECK(r.object == "chat.completion");
    CHECK(r.created == 1741570283);
    CHECK(r.model == "gpt-4o-2024-08-06");
    CHECK(r.system_fingerprint == "fp_fc9f1d7035");
    REQUIRE(r.choices.size() == 2);

    const Choice& first = r.choices[0];
    CHECK(first.index == 0);
    CHECK(first.finish_reason == "tool_calls");
    CHECK(first.logprobs.is_null());
    CHECK(first.message.role == Role::assistant);
    CHECK(first.message.content.empty());
    REQUIRE(first.message.tool_calls.size() == 1);
    CHECK(first.message.tool_calls[0] ==
          tool_call("call_abc123", "get_weather", R"({"city":"Paris"})"));
    REQUIRE(first.message.extra.size() == 2);
    CHECK(first.message.extra.at("refusal").is_null());
    CHECK(first.message.extra.at("annotations") == json::array());

    const Choice& second = r.choices[1];
    CHECK(second.index == 1);
    CHECK(second.finish_reason == "stop");
    CHECK(second.message.content == "I can't help with that.");
    CHECK(second.message.extra.at("refusal") == "I can't help with that.");
    CHECK(second.logprobs.at("content").at(0).at("logprob") == -0.25);

    REQUIRE(r.usage.has_value());
    CHECK(r.usage->prompt_tokens == 1117);
    CHECK(r.usage->completion_tokens == 46);
    CHECK(r.usage->total_tokens == 1163);
    CHECK(r.usage->extra.size() == 2);
    CHECK(r.usage->extra.at("prompt_tokens_details").at("cached_tokens") == 1024);

    REQUIRE(r.extra.size() == 1);
    CHECK(r.extra.at("service_tier") == "default");
    CHECK(r.extra_fields.provider == "openai");
    CHECK(r.extra_fields.latency == std::chrono::microseconds(12500));

    std::string text;
    write_chat_response(text, r);
    CHECK(text.find(R"("message":{"role":"assistant","content":null,"tool_calls":[)") !=
          std::string::npos);
    CHECK(text.find(R"("extra_fields":{"provider":"openai","latency":12.5})") != std::string::npos);
    Outcome again;
    REQUIRE(parse_chat_response(text, again));
    CHECK(again.response == r);
}

TEST_CASE("schema json: the response wire format is exact") {
    ChatResponse r;
    r.id = "chatcmpl-1";
    r.created = 1700000000;
    r.model = "gpt-4o-mini";
    Choice c;
    c.message.content = "Hello!";
    c.finish_reason = "stop";
    r.choices.push_back(c);
    Choice unfinished;
    unfinished.index = 1;
    unfinished.message.tool_calls.push_back(tool_call("c", "f", "{}"));
    unfinished.logprobs = json::parse(R"({"content":[]})");
    r.choices.push_back(unfinished);
    Usage u;
    u.prompt_tokens = 9;
    u.completion_tokens = 3;
    u.total_tokens = 12;
    u.extra.emplace("prompt_tokens_details", json::parse(R"({"cached_tokens":0})"));
    r.usage = u;
    r.extra.emplace("service_tier", "default");

    std::string text;
    write_chat_response(text, r);
    const std::string expected =
        R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,)"
        R"("model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",)"
        R"("content":"Hello!"},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant",)"
        R"("content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f",)"
        R"("arguments":"{}"}}]},"finish_reason":null,"logprobs":{"content":[]}}],)"
        R"("usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,)"
        R"("prompt_tokens_details":{"cached_tokens":0}},"service_tier":"default"})";
    CHECK(text == expected);

    r.system_fingerprint = "fp_1";
    r.extra_fields.provider = "openai";
    r.extra_fields.latency = std::chrono::milliseconds(250);
    std::string with_extra;
    write_chat_response(with_extra, r);
    CHECK(with_extra.find(R"("model":"gpt-4o-mini","system_fingerprint":"fp_1","choices")") !=
          std::string::npos);
    CHECK(with_extra.ends_with(
        R"("service_tier":"default","extra_fields":{"provider":"openai","latency":250}})"));
    Outcome o;
    REQUIRE(parse_chat_response(with_extra, o));
    CHECK(o.response == r);
}

TEST_CASE("schema json: lenient response reading") {
    SECTION("id, created, usage and role may be missing") {
        Outcome o;
        REQUIRE(parse_chat_response(R"({"choices":[{"message":{"content":"hi"}}]})", o));
        CHECK(o.ok());
        CHECK(o.response.id.empty());
        CHECK(o.response.object == "chat.completion");
        CHECK(o.response.created == 0);
        CHECK(!o.response.usage.has_value());
        REQUIRE(o.response.choices.size() == 1);
        CHECK(o.response.choices[0].index == 0);
        CHECK(o.response.choices[0].message.role == Role::assistant);
        CHECK(o.response.choices[0].message.content == "hi");
        CHECK(o.response.choices[0].finish_reason.empty());
    }
    SECTION("tool-call arguments sent as an object are kept as text") {
        Outcome o;
        REQUIRE(parse_chat_response(
            R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,)"
            R"("tool_calls":[{"id":"c","function":{"name":"f","arguments":{"a":[1,"x"]}}}]},)"
            R"("finish_reason":"tool_calls"}]})",
            o));
        REQUIRE(o.response.choices[0].message.tool_calls.size() == 1);
        CHECK(o.response.choices[0].message.tool_calls[0].arguments == R"({"a":[1,"x"]})");
        CHECK(o.response.choices[0].message.tool_calls[0].type == "function");
    }
    SECTION("a previous error is cleared by a successful parse") {
        Outcome o;
        o.fail(500, error_type::internal, "earlier");
        REQUIRE(parse_chat_response(R"({"choices":[]})", o));
        CHECK(o.ok());
        CHECK(o.error.message.empty());
        CHECK(o.response.choices.empty());
    }
}

TEST_CASE("schema json: malformed responses give 502 bad_response naming the field") {
    check_response_rejected(R"({"id":"x","object":"chat.completion"})",
                            "upstream response: choices: required field is missing");
    check_response_rejected(R"({"choices":{}})",
                            "upstream response: choices: expected an array, got an object");
    check_response_rejected(R"({"choices":["x"]})",
                            "upstream response: choices[0]: expected an object, got a string");
    check_response_rejected(R"({"choices":[{"index":0}]})",
                            "upstream response: choices[0].message: required field is missing");
    check_response_rejected(
        R"({"choices":[{"message":{"content":"a"}},{"message":{"content":5}}]})",
        "upstream response: choices[1].message.content: expected a string, an array or null, got "
        "a number");
    check_response_rejected(R"({"choices":[{"message":{"role":"robot"}}]})",
                            "upstream response: choices[0].message.role: unknown role \"robot\"");
    check_response_rejected(R"({"choices":[],"usage":{"prompt_tokens":"3"}})",
                            "upstream response: usage.prompt_tokens: expected an integer, got a "
                            "string");
    check_response_rejected(R"({"created":"yesterday","choices":[]})",
                            "upstream response: created: expected an integer, got a string");
    check_response_rejected(R"([1,2])", "upstream response: expected an object, got an array");
    check_response_rejected("", "upstream response: body is empty");

    Outcome o;
    CHECK(!parse_chat_response("{\"choices\": [\n  {\"message\": }\n]}", o));
    CHECK(o.error.status == 502);
    CHECK(o.error.type == error_type::bad_response);
    CHECK(o.error.message.rfind("upstream response: malformed JSON at line 2, column 15: ", 0) ==
          0);
}

TEST_CASE("schema json: a reused request keeps nothing from the previous parse") {
    std::string rich_text;
    RequestWriteOptions opts;
    opts.for_upstream = false;
    ChatRequest rich = rich_request();
    rich.extra.emplace("metadata", json::parse(R"({"a":1})"));
    rich.messages[0].extra.emplace("cache_control", "x");
    write_chat_request(rich_text, rich, opts);

    const std::string_view small = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
    ChatRequest reused;
    Error e;
    REQUIRE(parse_chat_request(rich_text, reused, e));
    REQUIRE(reused == rich);
    REQUIRE(parse_chat_request(small, reused, e));
    CHECK(reused == parse_request_ok(small));
    ChatRequest expected;
    expected.model = "m";
    expected.messages.push_back(text_message(Role::user, "hi"));
    CHECK(reused == expected);

    SECTION("also after a failed parse") {
        REQUIRE(parse_chat_request(rich_text, reused, e));
        CHECK(!parse_chat_request(R"({"model":"m","messages":[{"role":"user"}],"n":"x"})", reused,
                                  e));
        REQUIRE(parse_chat_request(small, reused, e));
        CHECK(reused == parse_request_ok(small));
    }
    SECTION("message parts and tool calls of a reused message are reset") {
        const std::string_view parts =
            R"({"model":"m","messages":[{"role":"user","content":[)"
            R"({"type":"input_audio","input_audio":{}},)"
            R"({"type":"image_url","image_url":{"url":"u","detail":"low"}}]}]})";
        const std::string_view other = R"({"model":"m","messages":[{"role":"user","content":[)"
                                       R"({"type":"text","text":"t"},)"
                                       R"({"type":"image_url","image_url":"v"}]}]})";
        REQUIRE(parse_chat_request(parts, reused, e));
        REQUIRE(parse_chat_request(other, reused, e));
        CHECK(reused == parse_request_ok(other));
        CHECK(reused.messages[0].parts[0].raw.is_null());
        CHECK(reused.messages[0].parts[1].image_detail.empty());
    }
}

TEST_CASE("schema json: a reused outcome keeps nothing from the previous response") {
    const std::string_view small = R"({"choices":[{"message":{"content":"ok"}}]})";
    Outcome o;
    REQUIRE(parse_chat_response(openai_response, o));
    REQUIRE(parse_chat_response(small, o));
    Outcome fresh;
    REQUIRE(parse_chat_response(small, fresh));
    CHECK(o.response == fresh.response);
    CHECK(o.response.id.empty());
    CHECK(o.response.system_fingerprint.empty());
    CHECK(!o.response.usage.has_value());
    CHECK(o.response.extra.empty());
    CHECK(o.response.extra_fields.provider.empty());
    CHECK(o.response.extra_fields.latency.count() == 0);
    REQUIRE(o.response.choices.size() == 1);
    CHECK(o.response.choices[0].message.tool_calls.empty());
    CHECK(o.response.choices[0].message.extra.empty());
    CHECK(o.response.choices[0].logprobs.is_null());
    CHECK(o.response.choices[0].finish_reason.empty());

    SECTION("strings and choices reuse their memory") {
        const std::string long_text(200, 'a');
        const std::string doc1 = R"({"id":")" + long_text + R"(","model":")" + long_text +
                                 R"(","choices":[{"message":{"content":")" + long_text + R"("}}]})";
        const std::string doc2 = R"({"id":"short-but-not-small-string-optimised-xxxxxxxx",)"
                                 R"("model":"m2","choices":[{"message":{"content":"bye"}}]})";
        REQUIRE(parse_chat_response(doc1, o));
        const char* id = o.response.id.data();
        const char* content = o.response.choices[0].message.content.data();
        const Choice* choices = o.response.choices.data();
        REQUIRE(parse_chat_response(doc2, o));
        CHECK(o.response.id.data() == id);
        CHECK(o.response.choices.data() == choices);
        CHECK(o.response.choices[0].message.content.data() == content);
        CHECK(o.response.choices[0].message.content == "bye");

        o.recycle();
        REQUIRE(parse_chat_response(doc1, o));
        CHECK(o.response.id.data() == id);
        CHECK(o.response.choices[0].message.content.data() == content);
        CHECK(o.response.choices[0].message.content == long_text);
    }
}

TEST_CASE("schema json: strings are escaped when written") {
    ChatRequest r;
    r.model = "m";
    r.messages.push_back(text_message(
        Role::user, "say \"hi\" \\ \x01 line\nnext\ttab caf\xc3\xa9 \xf0\x9f\x98\x80 </script>"));
    std::string text;
    write_chat_request(text, r);
    CHECK(text ==
          "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"say \\\"hi\\\" \\\\ \\u0001 line\\nnext\\ttab caf\xc3\xa9 \xf0\x9f\x98\x80 "
          "</script>\"}]}");
    CHECK(parse_request_ok(text) == r);

    SECTION("escapes in the input are decoded to UTF-8") {
        const ChatRequest d = parse_request_ok(
            R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \u0001"}]})");
        CHECK(d.messages[0].content == "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ \x01");
    }
    SECTION("a byte that needs an escape is found at any offset of a long run") {
        // Runs of plain bytes are scanned eight at a time: put each kind of byte at every
        // position of strings of every length up to 40, between multi-byte UTF-8 text.
        const std::string specials[] = {"\"", "\\", "\n", std::string(1, '\0'), "\x1f", "\x7f"};
        const std::string escaped[] = {"\\\"", "\\\\", "\\n", "\\u0000", "\\u001f", "\x7f"};
        for (std::size_t k = 0; k < std::size(specials); ++k) {
            for (std::size_t len = 1; len <= 40; ++len) {
                for (std::size_t at = 0; at < len; ++at) {
                    std::string in;
                    std::string want;
                    for (std::size_t i = 0; i < len; ++i) {
                        const std::string plain =
                            i % 5 == 4 ? "\xc3\xa9" : std::string(1, 'a' + i % 26);
                        in += i == at ? specials[k] : plain;
                        want += i == at ? escaped[k] : plain;
                    }
                    std::string out;
                    detail::JsonWriter::append_escaped(out, in);
                    INFO("kind " << k << ", length " << len << ", at " << at);
                    REQUIRE(out == want);
                }
            }
        }
    }
    SECTION("keys of extra fields are escaped too") {
        ChatRequest k = r;
        k.extra.emplace("we\"ird\n", "v");
        std::string out;
        write_chat_request(out, k);
        CHECK(out.find(R"("we\"ird\n":"v")") != std::string::npos);
        CHECK(parse_request_ok(out) == k);
    }
}

TEST_CASE("schema json: the writer's one-append tokens match the general path") {
    // Short keys and strings (up to 48 bytes) without escapes are written in one append; any
    // other is escaped byte by byte. Both must give the same text, commas included.
    const std::string specials[] = {"\"", "\\", "\n", std::string(1, '\0'), "\x1f"};
    for (std::size_t len = 0; len <= 60; ++len) {
        for (std::size_t at = 0; at <= len; ++at) {  // at == len: no special byte
            for (const std::string& special : specials) {
                std::string in;
                for (std::size_t i = 0; i < len; ++i)
                    in += i == at ? special : std::string(1, static_cast<char>('a' + i % 26));
                std::string quoted;
                detail::JsonWriter::append_quoted(quoted, in);
                std::string out;
                detail::JsonWriter w(out);
                w.begin_object().key(in).string(in).key("n").integer(-7).key(in);
                w.begin_array().string(in).string(in).integer(3).end_array().end_object();
                INFO("length " << len << ", special at " << at);
                REQUIRE(out == "{" + quoted + ":" + quoted + ",\"n\":-7," + quoted + ":[" + quoted +
                                   "," + quoted + ",3]}");
                if (at == len) break;  // the plain string once, not once per kind
            }
        }
    }
}

TEST_CASE("schema json: durations are written as exact decimal milliseconds") {
    const auto write = [](std::int64_t ns) {
        std::string out;
        detail::JsonWriter w(out);
        w.begin_object().field_millis("latency", ns).end_object();
        return out;
    };
    CHECK(write(0) == R"({"latency":0})");
    CHECK(write(250000) == R"({"latency":0.25})");
    CHECK(write(3000000) == R"({"latency":3})");
    CHECK(write(1) == R"({"latency":0.000001})");
    CHECK(write(1234567891) == R"({"latency":1234.567891})");
    CHECK(write(-1500000) == R"({"latency":-1.5})");
    CHECK(write(std::numeric_limits<std::int64_t>::min()) ==
          R"({"latency":-9223372036854.775808})");
    std::string two;
    detail::JsonWriter w(two);
    w.begin_array().decimal(12, 0).decimal(5, 1).end_array();
    CHECK(two == "[12,0.5]");
    // Read back, the text is the double the division gives (what the writer used to print).
    std::uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const auto ns = static_cast<std::int64_t>(x % 100'000'000'000ULL);  // up to 100 s
        const std::string text = write(ns);
        const double back = boost::json::parse(text).as_object().at("latency").to_number<double>();
        REQUIRE(back == static_cast<double>(ns) / 1e6);
    }
}

TEST_CASE("schema json: write_error writes exactly OpenAI's error body") {
    std::string out;
    write_error(out, errors::invalid_request("messages[0].role: unknown role \"robot\"",
                                             "messages[0].role"));
    CHECK(out == R"({"error":{"message":"messages[0].role: unknown role \"robot\"",)"
                 R"("type":"invalid_request_error","param":"messages[0].role","code":null}})");

    out.clear();
    write_error(out, errors::request_dropped("openai"));
    CHECK(out == R"({"error":{"message":"request dropped: queue is full",)"
                 R"("type":"request_dropped","param":null,"code":null}})");

    Error limited;
    limited.status = 429;
    limited.type = "requests";
    limited.message = "Rate limit reached";
    limited.provider = "openai";
    limited.code = "rate_limit_exceeded";
    out = "x";
    write_error(out, limited);
    CHECK(out == R"(x{"error":{"message":"Rate limit reached","type":"requests",)"
                 R"("param":null,"code":"rate_limit_exceeded"}})");
}

TEST_CASE("schema json: Boost.JSON value_from and value_to") {
    SECTION("requests round-trip, routing fields included") {
        const ChatRequest r = rich_request();
        const json::value jv = json::value_from(r);
        CHECK(jv.at("model") == "openai/gpt-4o");
        CHECK(jv.at("provider") == "openai");
        CHECK(jv.at("messages").as_array().size() == 5);
        CHECK(jv.at("tool_choice").at("function").at("name") == "get_weather");
        CHECK(json::value_to<ChatRequest>(jv) == r);
    }
    SECTION("responses round-trip") {
        Outcome o;
        REQUIRE(parse_chat_response(openai_response, o));
        const json::value jv = json::value_from(o.response);
        CHECK(jv.at("usage").at("total_tokens") == 1163);
        CHECK(jv.at("extra_fields").at("provider") == "openai");
        CHECK(json::value_to<ChatResponse>(jv) == o.response);
    }
    SECTION("errors") {
        const json::value jv = json::value_from(errors::invalid_request("bad", "n"));
        CHECK(jv ==
              json::parse(R"({"error":{"message":"bad","type":"invalid_request_error","param":"n",)"
                          R"("code":null}})"));
    }
    SECTION("value_to throws std::invalid_argument with the message") {
        bool threw = false;
        std::string what;
        try {
            (void)json::value_to<ChatRequest>(
                json::parse(R"({"model":"m","messages":[{"role":"robot"}]})"));
        } catch (const std::invalid_argument& ex) {
            threw = true;
            what = ex.what();
        }
        CHECK(threw);
        CHECK(what == "messages[0].role: unknown role \"robot\"");

        threw = false;
        try {
            (void)json::value_to<ChatResponse>(json::parse(R"({"id":"x"})"));
        } catch (const std::invalid_argument& ex) {
            threw = true;
            what = ex.what();
        }
        CHECK(threw);
        CHECK(what == "upstream response: choices: required field is missing");
    }
}

TEST_CASE("schema json: reused extra fields take the new values and key order") {
    const std::string_view first =
        R"({"choices":[{"message":{"content":"a","refusal":"no","annotations":[1,2]},)"
        R"("logprobs":{"content":[{"token":"a"}]}}],)"
        R"("usage":{"prompt_tokens":1,"details":{"x":1,"y":"s"}},"tier":"a","list":[{"k":1}]})";
    const std::string_view same_shape =
        R"({"choices":[{"message":{"content":"b","refusal":null,"annotations":[3,"four"]},)"
        R"("logprobs":{"content":[{"token":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}}],)"
        R"("usage":{"prompt_tokens":2,"details":{"x":"a long string, longer than before","y":2}},)"
        R"("tier":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","list":[{"k":[2]}]})";
    const std::string_view other_shape =
        R"({"list":[],"choices":[{"message":{"content":"c","annotations":[],"refusal":"r"},)"
        R"("logprobs":{"content":[]}}],)"
        R"("usage":{"details":{"y":1,"x":2,"z":3},"prompt_tokens":3},"tier":{"t":1}})";

    Outcome o;
    REQUIRE(parse_chat_response(first, o));
    for (std::string_view doc : {same_shape, other_shape, first}) {
        REQUIRE(parse_chat_response(doc, o));
        Outcome fresh;
        REQUIRE(parse_chat_response(doc, fresh));
        CHECK(o.response == fresh.response);
        std::string reused_text;
        std::string fresh_text;
        write_chat_response(reused_text, o.response);
        write_chat_response(fresh_text, fresh.response);
        CHECK(reused_text == fresh_text);
    }

    REQUIRE(parse_chat_response(other_shape, o));
    std::string text;
    write_chat_response(text, o.response);
    CHECK(text.find(
              R"("message":{"role":"assistant","content":"c","annotations":[],"refusal":"r"})") !=
          std::string::npos);
    CHECK(text.find(R"("details":{"y":1,"x":2,"z":3}},"list":[],"tier":{"t":1}})") !=
          std::string::npos);

    SECTION("tool schemas of a reused request") {
        const std::string head = R"({"model":"m","messages":[{"role":"user","content":"x"}],)";
        const std::string a = head + R"("tools":[{"function":{"name":"f","parameters":)"
                                     R"({"type":"object","required":["a"]}}}]})";
        const std::string b = head + R"("tools":[{"function":{"name":"f","parameters":)"
                                     R"({"type":"object","required":["b","c"]}}}]})";
        const std::string c = head + R"("tools":[{"function":{"name":"g","parameters":)"
                                     R"({"required":["b","c"],"type":"object"}}}]})";
        ChatRequest r;
        Error e;
        for (const std::string* doc : {&a, &b, &c, &a}) {
            REQUIRE(parse_chat_request(*doc, r, e));
            const ChatRequest expected = parse_request_ok(*doc);
            CHECK(r == expected);
            std::string got;
            std::string want;
            write_chat_request(got, r);
            write_chat_request(want, expected);
            CHECK(got == want);
        }
    }
}

// ---- the streaming response reader -------------------------------------------------------------

namespace {

/// What `parse_chat_response` did before it streamed: parse into a DOM, then read that.
bool parse_with_dom(std::string_view text, Outcome& out) {
    out.error.clear();
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::parse_then(rd, text, "body is empty", [&](const json::value& doc) {
        return detail::json_impl::read_response(rd, doc, out);
    });
}

/// True when the streaming reader reads `text` itself, without handing it to the DOM reader.
bool streamed(std::string_view text) {
    Outcome o;
    bool ok = false;
    const detail::json_impl::Reader rd{&o.error, true};
    return detail::json_impl::stream_response(rd, text, o, ok);
}

std::string written(const ChatResponse& r) {
    std::string text;
    write_chat_response(text, r);
    return text;
}

/// `got` equals `want`, the order of unknown members included.
void check_same_response(const Outcome& got, const Outcome& want) {
    CHECK(got.error == want.error);
    CHECK(got.response == want.response);
    CHECK(written(got.response) == written(want.response));
}

std::string escaped_text(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
        s += (i % 7 == 0) ? "\\\"" : (i % 11 == 0) ? "\\u00e9" : "x";
    return s;
}

/// A response that sets every field (which a reused outcome must then reset).
constexpr std::string_view full_response =
    R"({"id":"i","object":"o","created":5,"model":"m","system_fingerprint":"s","choices":[)"
    R"({"index":3,"message":{"role":"tool","content":[{"type":"text","text":"t"}],"name":"n",)"
    R"("tool_calls":[{"id":"c","type":"custom","function":{"name":"f","arguments":"{}"}}],)"
    R"("tool_call_id":"t","x":1},"finish_reason":"stop","logprobs":{"a":1}}],)"
    R"("usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"d":{}},)"
    R"("extra_fields":{"provider":"p","latency":5},"x":[1]})";

/// Responses of every shape the reader handles itself.
std::vector<std::string> stream_corpus() {
    std::vector<std::string> docs = {
        std::string(full_response),
        R"({"choices":[{"message":{"tool_calls":[{"function":{"name":"g"}}]}}],"usage":{},)"
        R"("extra_fields":{}})",
        std::string(full_response),
        R"({"choices":[{"message":{"content":"x"}}],"usage":{"x":2},"extra_fields":{"latency":1}})",
        std::string(openai_response),
        R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",)"
        R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hamlet avenges his father )"
        R"(and everyone dies."},"finish_reason":"stop"}],"usage":{"prompt_tokens":25,)"
        R"("completion_tokens":9,"total_tokens":34}})",
        // tool calls, null content, several of them, arguments as an object or an array
        R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[)"
        R"({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":)"
        R"("{\"city\":\"Paris\",\"unit\":\"celsius\"}"}},)"
        R"({"id":"call_2","type":"function","function":{"name":"get_time","arguments":{"tz":[1,"x",null,true,2.5]}}},)"
        R"({"function":{"name":"f","arguments":[]}},{"id":null,"type":null,"function":{"name":"g","arguments":null}},)"
        R"({"function":{"arguments":"{}","name":"h","extra":{"k":[1]}},"id":"c","index":3,"type":"custom"}]},)"
        R"("finish_reason":"tool_calls"}]})",
        R"({"choices":[{"message":{"role":"assistant","tool_calls":[]}}]})",
        R"({"choices":[{"message":{"role":"assistant","tool_calls":null,"name":null,"tool_call_id":null}}]})",
        // array content
        R"({"choices":[{"message":{"role":"user","content":[{"type":"text","text":"a"},)"
        R"({"type":"image_url","image_url":{"url":"u","detail":"low"}},{"type":"image_url","image_url":"v"},)"
        R"({"type":"input_audio","input_audio":{"data":"UklG","format":"wav"}}],"name":"alice"}}]})",
        R"({"choices":[{"message":{"content":[]}}]})",
        // refusal and other message fields
        R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"No.",)"
        R"("annotations":[{"type":"url_citation","url_citation":{"start_index":0}}],"audio":null},)"
        R"("logprobs":null,"finish_reason":"content_filter"}]})",
        // every role, tool messages
        R"({"choices":[{"message":{"role":"system","content":"s"}},{"message":{"role":"developer"}},)"
        R"({"message":{"role":"user"}},{"message":{"role":"tool","content":"18C","tool_call_id":"call_1"}},)"
        R"({"message":{"role":"function","name":"f"}},{"message":{}}]})",
        // usage details and unusual numbers
        R"({"choices":[],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,)"
        R"("prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},)"
        R"("completion_tokens_details":{"reasoning_tokens":0,"accepted_prediction_tokens":0},)"
        R"("cost":0.00125,"big":18446744073709551615,"neg":-5,"flag":false,"list":[[],{}],"s":"x"}})",
        R"({"choices":[],"usage":{}})",
        R"({"choices":[],"usage":{"prompt_tokens":null,"completion_tokens":3.0,"total_tokens":9223372036854775807}})",
        R"({"choices":[],"usage":null,"extra_fields":null})",
        // extra top-level fields of every kind
        R"({"service_tier":"default","choices":[],"a":true,"b":false,"c":null,"d":-1,)"
        R"("e":18446744073709551615,"f":1.5,"g":"s","h":[],"i":{},"j":[{"k":[{"l":null}]}],)"
        R"("system_fingerprint":"fp_1"})",
        // unicode escapes, in values and in keys (known and unknown)
        R"({"id":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t \u0001","choices":[{"message":{)"
        R"("r\u006fle":"\u0061ssistant","content":"caf\u00e9 \ud83d\ude00","we\"ird\n":"v\u00e9"}}],)"
        R"("\u00e9t\u00e9":{"\u00e9":"\u00e9"},"i\u0064x":1,"model":"caf\u00e9"})",
        "{\"id\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\",\"choices\":[],\"k\xc3\xa9y\":\"v\xc3\xa9\"}",
        // created as a double, null fields
        R"({"created":1.7e9,"choices":[]})",
        R"({"created":1700000000.0,"choices":[]})",
        R"({"created":-3,"choices":[]})",
        R"({"id":null,"object":null,"created":null,"model":null,"system_fingerprint":null,"choices":[]})",
        R"({"object":"chat.completion.chunk","choices":[]})",
        // empty and several choices
        R"({"choices":[]})",
        R"({"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}},{"message":{"content":"c"}}]})",
        // members in unusual order
        R"({"usage":{"total_tokens":3,"prompt_tokens":1,"x":1,"completion_tokens":2},"extra_fields":)"
        R"({"latency":250,"provider":"openai","other":[1]},"choices":[{"finish_reason":"stop",)"
        R"("message":{"content":"hi","role":"assistant"},"logprobs":{"content":[]},"index":7}],)"
        R"("model":"m","id":"x"})",
        // choice indexes given, null, integral doubles; members the schema drops
        R"({"choices":[{"index":null,"message":{"content":""},"delta":{"a":[1,{"b":2}]},"stop_reason":null},)"
        R"({"index":2.0,"message":{"content":"x"},"finish_reason":null,"seed":5,"ok":true}]})",
        R"({"choices":[{"index":9223372036854775807,"message":{"content":"x"}}]})",
        // logprobs of every kind
        R"({"choices":[{"message":{},"logprobs":true},{"message":{},"logprobs":1},)"
        R"({"message":{},"logprobs":"x"},{"message":{},"logprobs":[1,2]},{"message":{},"logprobs":{}},)"
        R"({"message":{},"logprobs":-1.5},{"message":{},"logprobs":18446744073709551615}]})",
        // extra_fields
        R"({"choices":[],"extra_fields":{"provider":"anthropic","latency":12.5}})",
        R"({"choices":[],"extra_fields":{"provider":null,"latency":null}})",
        R"({"choices":[],"extra_fields":{"latency":1234567,"provider":"p"}})",
        R"({"choices":[],"extra_fields":{}})",
        // pretty-printed
        "{\n  \"id\" : \"x\" ,\n\t\"choices\" : [ { \"message\" : { \"content\" : \"a\" } } ] "
        "\r\n}\n",
        // nested just within the depth limit
        R"({"choices":[],"x":)" + std::string(62, '[') + std::string(62, ']') + "}",
    };
    // Strings and keys long enough, with escapes, to arrive in several parts.
    const std::string long_text = escaped_text(9000);
    docs.push_back(R"({"id":")" + long_text +
                   R"(","choices":[{"message":{"role":"assistant","content":")" + long_text +
                   R"(","name":")" + long_text + R"(","k)" + long_text + R"(":")" + long_text +
                   R"("},"finish_reason":")" + long_text + R"("}],"k)" + long_text + R"(":{"k)" +
                   long_text + R"(":")" + long_text + R"("},"x":")" + long_text +
                   R"(","usage":{"s":")" + long_text + R"("}})");
    docs.push_back(R"({"choices":[{"logprobs":")" + long_text +
                   R"(","message":{"tool_calls":[{"function":{"name":")" + long_text +
                   R"(","arguments":")" + long_text + R"("}}]}}]})");
    docs.push_back(R"({"choices":[{"message":{"role":")" + std::string("\\u0061") +
                   R"(ssistant","content":")" + std::string(300, 'y') + R"("}}]})");
    docs.push_back(R"({"id":")" + std::string(5000, 'z') + R"(","choices":[]})");
    return docs;
}

/// Responses the streaming reader hands to the DOM reader: wrong types, missing or duplicate
/// members. Plus malformed JSON, which it reports itself.
std::vector<std::string> fallback_corpus() {
    std::vector<std::string> docs = {
        // duplicate members: the DOM reader keeps the last
        R"({"id":"a","id":"b","choices":[]})",
        R"({"choices":[],"choices":[{"message":{"content":"x"}}]})",
        R"({"choices":[],"x":1,"x":2})",
        R"({"choices":[{"message":{"content":"a","content":"b","r":1,"r":2}}]})",
        R"({"choices":[{"message":{"content":"a"},"message":{"content":"b"}}]})",
        R"({"choices":[],"usage":{"prompt_tokens":1,"prompt_tokens":2}})",
        R"({"choices":[],"usage":{"d":1,"d":{}}})",
        R"({"choices":[{"message":{"tool_calls":[{"id":"a","id":"b","function":{"name":"f","name":"g"}}]}}]})",
        R"({"choices":[{"message":{"content":"a"},"x":1,"x":2}]})",  // dropped: no fallback needed
        // wrong types everywhere
        R"({"id":5,"choices":[]})",
        R"({"object":[],"choices":[]})",
        R"({"created":1.5,"choices":[]})",
        R"({"created":1e300,"choices":[]})",
        R"({"created":18446744073709551615,"choices":[]})",
        R"({"created":true,"choices":[]})",
        R"({"created":"yesterday","choices":[]})",
        R"({"model":{},"choices":[]})",
        R"({"system_fingerprint":false,"choices":[]})",
        R"({"choices":null})",
        R"({"choices":{}})",
        R"({"choices":"x"})",
        R"({"choices":[null]})",
        R"({"choices":[1]})",
        R"({"choices":["x"]})",
        R"({"choices":[[]]})",
        R"({"choices":[true]})",
        R"({"choices":[{"index":0}]})",
        R"({"choices":[{"index":"0","message":{}}]})",
        R"({"choices":[{"index":0.5,"message":{}}]})",
        R"({"choices":[{"index":18446744073709551615,"message":{}}]})",
        R"({"choices":[{"message":null}]})",
        R"({"choices":[{"message":"x"}]})",
        R"({"choices":[{"message":[]}]})",
        R"({"choices":[{"message":{},"finish_reason":1}]})",
        R"({"choices":[{"message":{"role":null}}]})",
        R"({"choices":[{"message":{"role":5}}]})",
        R"({"choices":[{"message":{"role":{}}}]})",
        R"({"choices":[{"message":{"role":"robot"}}]})",
        R"({"choices":[{"message":{"role":"\u0072obot"}}]})",
        R"({"choices":[{"message":{"content":"a"}},{"message":{"content":5}}]})",
        R"({"choices":[{"message":{"content":{}}}]})",
        R"({"choices":[{"message":{"content":true}}]})",
        R"({"choices":[{"message":{"content":[5]}}]})",
        R"({"choices":[{"message":{"content":[{"type":5}]}}]})",
        R"({"choices":[{"message":{"content":[{"text":"x"}]}}]})",
        R"({"choices":[{"message":{"content":[{"type":"text"}]}}]})",
        R"({"choices":[{"message":{"content":[{"type":"image_url","image_url":5}]}}]})",
        R"({"choices":[{"message":{"name":1}}]})",
        R"({"choices":[{"message":{"tool_call_id":[]}}]})",
        R"({"choices":[{"message":{"tool_calls":{}}}]})",
        R"({"choices":[{"message":{"tool_calls":"x"}}]})",
        R"({"choices":[{"message":{"tool_calls":[1]}}]})",
        R"({"choices":[{"message":{"tool_calls":[null]}}]})",
        R"({"choices":[{"message":{"tool_calls":[[]]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"id":"a"}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"id":1,"function":{"name":"f"}}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"type":1,"function":{"name":"f"}}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":null}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":"f"}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":{"name":null}}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":5}}]}}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":true}}]}}]})",
        R"({"choices":[],"usage":[]})",
        R"({"choices":[],"usage":5})",
        R"({"choices":[],"usage":"x"})",
        R"({"choices":[],"usage":{"prompt_tokens":"3"}})",
        R"({"choices":[],"usage":{"prompt_tokens":1.5}})",
        R"({"choices":[],"usage":{"total_tokens":{}}})",
        R"({"choices":[],"extra_fields":[]})",
        R"({"choices":[],"extra_fields":{"provider":1}})",
        R"({"choices":[],"extra_fields":{"latency":"x"}})",
        R"({"choices":[],"extra_fields":{"latency":true}})",
        R"({"choices":[],"extra_fields":{"latency":[]}})",
        R"({"choices":[],"extra_fields":{"latency":1e300}})",
        R"({"choices":[],"extra_fields":{"latency":18446744073709551615}})",
        // missing choices, not an object
        R"({"id":"x","object":"chat.completion"})",
        R"({})",
        R"([1,2])",
        R"("x")",
        R"(5)",
        R"(null)",
        R"(true)",
        "",
        // malformed JSON
        "{\"choices\": [\n  {\"message\": }\n]}",
        R"({"choices":[]} x)",
        R"({"choices":[]}})",
        R"({"choices":[])",
        "{",
        " ",
        R"({"a":"\u12"})",
        "{\"id\":\"\xff\",\"choices\":[]}",
        "{\"id\":\"a\x01\",\"choices\":[]}",
        R"({"choices":[],})",
        R"({"choices":[]/*c*/})",
        R"({"choices":[1,]})",
        R"({"choices":[{"message":{"content":"x"}}], "id": "unterminated)",
        R"({"choices":[],"x":)" + std::string(70, '[') + std::string(70, ']') + "}",
        R"({"created":1e400,"choices":[]})",
        R"({"created":-,"choices":[]})",
        // errors after something the stream reader would have handed over anyway
        R"({"id":1,"choices":[]} x)",
        R"({"id":"a","id":"b","choices":[})",
    };
    return docs;
}

}  // namespace

TEST_CASE("schema json: streamed responses equal the DOM reader's") {
    const std::vector<std::string> docs = stream_corpus();
    Outcome reused;
    Outcome recycled;
    for (const std::string& doc : docs) {
        INFO(doc.substr(0, 300));
        CHECK(streamed(doc));

        Outcome dom;
        json::parse_options deep;
        deep.max_depth = 64;
        REQUIRE(read_chat_response(json::parse(doc, {}, deep), dom));
        Outcome before;
        REQUIRE(parse_with_dom(doc, before));
        check_same_response(before, dom);

        Outcome fresh;
        REQUIRE(parse_chat_response(doc, fresh));
        check_same_response(fresh, dom);

        // Into outcomes that read every other document before (reusing their memory).
        REQUIRE(parse_chat_response(doc, reused));
        check_same_response(reused, dom);
        recycled.recycle();
        REQUIRE(parse_chat_response(doc, recycled));
        check_same_response(recycled, dom);
        for (const std::string_view other :
             {full_response, std::string_view(docs[4]), std::string_view(docs[6]),
              std::string_view(docs[9])}) {
            Outcome o;
            REQUIRE(parse_chat_response(other, o));
            REQUIRE(parse_chat_response(doc, o));
            check_same_response(o, dom);
        }
    }
}

TEST_CASE("schema json: responses of another shape read as they did before streaming") {
    const std::vector<std::string> docs = fallback_corpus();
    for (const std::string& doc : docs) {
        INFO(doc.substr(0, 300));
        Outcome before;
        const bool ok_before = parse_with_dom(doc, before);

        Outcome fresh;
        CHECK(parse_chat_response(doc, fresh) == ok_before);
        CHECK(fresh.error == before.error);
        if (ok_before) check_same_response(fresh, before);

        Outcome reused;
        REQUIRE(parse_chat_response(openai_response, reused));
        CHECK(parse_chat_response(doc, reused) == ok_before);
        CHECK(reused.error == before.error);
        if (ok_before) check_same_response(reused, before);

        // And the reused outcome still reads a good document afterwards.
        Outcome dom;
        REQUIRE(parse_with_dom(openai_response, dom));
        REQUIRE(parse_chat_response(openai_response, reused));
        check_same_response(reused, dom);
    }
    // Malformed JSON is reported by the streaming reader itself, with the same message.
    CHECK(streamed(R"({"choices":[]} x)"));
    CHECK(streamed("{\"choices\": [\n  {\"message\": }\n]}"));
    Outcome o;
    CHECK(!parse_chat_response(R"({"choices":[]} x)", o));
    CHECK(o.error.message == "upstream response: malformed JSON at line 1, column 16: " +
                                 json::error_code(json::error::extra_data).message());
    // A document of another shape is handed over.
    CHECK(!streamed(R"({"id":"a","id":"b","choices":[]})"));
    CHECK(!streamed(R"({"created":"yesterday","choices":[]})"));
    CHECK(!streamed(""));
}

TEST_CASE("schema json: an upstream's chat answer is relayed with the gateway's extra_fields") {
    bifrost::ResponseExtra extra;
    extra.provider = "openai";
    extra.latency = std::chrono::microseconds(1500);
    const std::string tail = R"(,"extra_fields":{"provider":"openai","latency":1.5}})";

    SECTION("the upstream's members, order and formatting are kept") {
        const std::string wire =
            "{\"id\":\"c1\", \"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"service_tier\":\"default\","
            "\"system_fingerprint\":\"fp\"}\n";
        std::string out = "prefix:";
        REQUIRE(write_chat_wire(out, wire, extra));
        CHECK(out == "prefix:" + wire.substr(0, wire.size() - 2) + tail);
        Outcome o;
        REQUIRE(parse_chat_response(out.substr(7), o));
        CHECK(o.response.extra_fields.provider == "openai");
        CHECK(o.response.extra_fields.latency == std::chrono::microseconds(1500));
        CHECK(o.response.choices.at(0).message.content == "hi");
    }
    SECTION("leading and trailing whitespace is dropped") {
        std::string out;
        REQUIRE(write_chat_wire(out, " \r\n{\"id\":\"c1\"}\t \n", extra));
        CHECK(out == "{\"id\":\"c1\"" + tail);
    }
    SECTION("no provider: the body as it is") {
        std::string out;
        REQUIRE(write_chat_wire(out, R"({"id":"c1"})", bifrost::ResponseExtra{}));
        CHECK(out == R"({"id":"c1"})");
    }
    SECTION("what cannot take the member is refused, with nothing written") {
        for (const char* wire : {"{}", "{ }", "", "[]", "\"x\"", "{\"id\":\"c1\"",
                                 R"({"id":"c1","extra_fields":{"provider":"other"}})",
                                 R"({"extra_fields":{},"id":"c1"})"}) {
            INFO(wire);
            std::string out = "kept";
            CHECK_FALSE(write_chat_wire(out, wire, extra));
            CHECK(out == "kept");
        }
    }
    SECTION("a message that mentions extra_fields in its text is relayed") {
        const std::string wire = R"({"id":"c1","content":"say \"extra_fields\" twice"})";
        std::string out;
        REQUIRE(write_chat_wire(out, wire, extra));
        CHECK(out == wire.substr(0, wire.size() - 1) + tail);
    }
    SECTION("any provider name and latency: valid JSON that reads back the same") {
        // Short plain names take a one-append path; long names and names with escapes the
        // general writer.
        for (const std::string& name :
             {std::string("p"), std::string("openai"), std::string(48, 'n'), std::string(49, 'n'),
              std::string("say \"hi\""), std::string("tab\there"), std::string("back\\slash"),
              std::string("\x01")}) {
            for (const std::int64_t ns : {std::int64_t{0}, std::int64_t{1}, std::int64_t{1500000},
                                          std::int64_t{1234567890123}, std::int64_t{-2500000}}) {
                INFO(name << " " << ns);
                bifrost::ResponseExtra e;
                e.provider = name;
                e.latency = std::chrono::nanoseconds(ns);
                std::string out;
                REQUIRE(write_chat_wire(out, R"({"id":"c1"})", e));
                std::string expected = R"({"id":"c1")";
                bifrost::detail::JsonWriter w(expected, true);
                w.key("extra_fields").begin_object().field("provider", name);
                w.field_millis("latency", ns).end_object();
                expected.push_back('}');
                CHECK(out == expected);
                const boost::json::value v = boost::json::parse(out);
                CHECK(v.at("extra_fields").at("provider").as_string() == name);
                CHECK(v.at("extra_fields").as_object().size() == 2);
            }
        }
    }
}

namespace {

/// The request documents the streaming request reader reads itself (the common shapes).
const std::vector<std::string>& request_stream_corpus() {
    static const std::vector<std::string> docs = {
        R"({"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]})",
        R"({"model":"m","messages":[{"role":"system","content":"be brief"},)"
        R"({"role":"user","content":"hi","name":"ann"},{"role":"assistant","content":"yo"},)"
        R"({"role":"tool","content":"42","tool_call_id":"call_1"}],"stream":true})",
        R"( { "messages" : [ { "content" : "x" , "role" : "developer" } ] , "model" : "a/b" } )",
        R"({"model":"m","messages":[{"role":"user","content":""}],"temperature":0.7,)"
        R"("top_p":1,"max_tokens":256,"max_completion_tokens":300,"n":2,"seed":-7,)"
        R"("frequency_penalty":-0.5,"presence_penalty":18446744073709551615,)"
        R"("logprobs":false,"top_logprobs":3,"parallel_tool_calls":true,"stream":false,)"
        R"("user":"u-1","provider":"openai"})",
        R"({"model":"caf\u00e9 \"q\"","messages":[{"role":"user","content":"line\nbreak \ud83d\ude00 \\ \/"}]})",
        R"({"model":"m","messages":[{"role":"user"}]})",
        R"({"model":"m","messages":[{"role":"user","content":")" + std::string(20000, 'y') +
            R"("}]})",
        R"({"mod\u0065l":"m","messages":[{"r\u006fle":"user","content":"escaped keys"}]})",
    };
    return docs;
}

/// Documents it leaves to the DOM reader: other shapes, and every error.
const std::vector<std::string>& request_dom_corpus() {
    static const std::vector<std::string> docs = {
        "",
        "   ",
        "{",
        "[]",
        "null",
        R"({"model":"m","messages":[{"role":"user","content":"x"}]} extra)",
        R"({"model":"","messages":[{"role":"user","content":"x"}]})",
        R"({"messages":[{"role":"user","content":"x"}]})",
        R"({"model":"m"})",
        R"({"model":"m","messages":[]})",
        R"({"model":"m","messages":{}})",
        R"({"model":7,"messages":[{"role":"user","content":"x"}]})",
        R"({"model":"m","messages":[{"content":"x"}]})",
        R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})",
        R"({"model":"m","messages":[{"role":"user","content":null}]})",
        R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"t"}]}]})",
        R"({"model":"m","messages":[{"role":"user","content":"x","cache_control":{"a":1}}]})",
        R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c",)"
        R"("type":"function","function":{"name":"f","arguments":"{}"}}]}]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":null})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":2.0})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":18446744073709551615})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":"a"})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"fallbacks":["b/c"]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"k":"v"}})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":2}})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",)"
        R"("function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto"})",
        R"({"model":"a","model":"b","messages":[{"role":"user","content":"x"}]})",
        R"({"model":"m","messages":[{"role":"user","role":"system","content":"x"}]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":"2"})",
        // Scalars in the messages array, after a message that ended with each member.
        R"({"model":"m","messages":[{"role":"user","content":"x"},"y"]})",
        R"({"model":"m","messages":[{"content":"x","role":"user"},"system"]})",
        R"({"model":"m","messages":[{"role":"user","content":"x","name":"n"},"y"]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"},7]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"},true]})",
        R"({"model":"m","messages":["y"]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"max_tokens":[1]})",
        R"("just a string")",
        R"(7)",
        R"(true)",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":true})",
    };
    return docs;
}

/// A request with every member set, read first into the requests the tests then reuse.
std::string dirty_request_text() {
    ChatRequest rich = rich_request();
    rich.extra.emplace("metadata", json::parse(R"({"a":1})"));
    rich.messages[0].extra.emplace("cache_control", "x");
    rich.messages.push_back(rich.messages[0]);
    rich.messages.push_back(rich.messages[0]);
    std::string text;
    RequestWriteOptions opts;
    opts.for_upstream = false;
    write_chat_request(text, rich, opts);
    return text;
}

/// Reads `text` both ways, into fresh requests and into reused ones, and checks that they
/// agree: the same verdict, the same error, the same request.
void check_request_readers_agree(const std::string& text, const std::string& dirty) {
    INFO(text.substr(0, 300));
    for (const bool reuse : {false, true}) {
        ChatRequest a, b;
        Error ea, eb;
        if (reuse) {
            REQUIRE(detail::json_impl::parse_request_document(dirty, a, ea));
            REQUIRE(detail::json_impl::parse_request_document(dirty, b, eb));
        }
        const bool ok_a = parse_chat_request(text, a, ea);
        const bool ok_b = detail::json_impl::parse_request_document(text, b, eb);
        REQUIRE(ok_a == ok_b);
        CHECK(ea.message == eb.message);
        CHECK(ea.status == eb.status);
        if (ok_a) CHECK(a == b);
    }
}

}  // namespace

TEST_CASE("schema json: requests of the common shape are read without a document, alike") {
    const std::string dirty = dirty_request_text();
    for (const std::string& text : request_stream_corpus()) {
        INFO(text.substr(0, 300));
        ChatRequest r;
        CHECK(detail::json_impl::stream_request(text, r));
        check_request_readers_agree(text, dirty);
    }
    for (const std::string& text : request_dom_corpus()) {
        INFO(text.substr(0, 300));
        ChatRequest r;
        CHECK_FALSE(detail::json_impl::stream_request(text, r));
        check_request_readers_agree(text, dirty);
    }
}

TEST_CASE("schema json: mutated requests read alike by both readers") {
    // Each document of both corpora, mutated thousands of times (a byte replaced by one that
    // matters to JSON, removed or inserted): whatever the verdict, the readers agree on it, on
    // the error message and on the request read.
    const std::string dirty = dirty_request_text();
    const std::string specials = "{}[]\":,0123456789.-e\\ntrul \x01\xc3";
    std::mt19937 rng(20261207);
    std::size_t streamed = 0, documented = 0;
    std::vector<std::string> bases = request_stream_corpus();
    bases.pop_back();  // the long one: slow to mutate, and nothing new
    for (const std::string& d : request_dom_corpus())
        if (d.size() > 10) bases.push_back(d);
    for (const std::string& base : bases) {
        for (int round = 0; round < 300; ++round) {
            const std::string text = test::mutated(base, specials, 2, false, rng);
            ChatRequest r;
            (detail::json_impl::stream_request(text, r) ? streamed : documented) += 1;
            check_request_readers_agree(text, dirty);
        }
    }
    CHECK(streamed > 300);  // the property is checked on both paths
    CHECK(documented > 300);
}
