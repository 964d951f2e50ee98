// StreamChunk JSON (write_stream_chunk / parse_stream_chunk) and the OpenAI stream decoder.

#include "bifrost_catch.hpp"

#include <bifrost/providers/openai.hpp>
#include <bifrost/providers/openai_compatible.hpp>
#include <bifrost/schema/json.hpp>

#include <boost/json/parse.hpp>

#include <string>
#include <vector>

using bifrost::Error;
using bifrost::StreamChunk;
using bifrost::StreamStatus;

namespace {

constexpr const char* openai_chunk =
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o",)"
    R"("system_fingerprint":"fp_1","service_tier":"default","choices":[{"index":0,)"
    R"("delta":{"role":"assistant","content":"Hel","refusal":null},"logprobs":null,)"
    R"("finish_reason":null}]})";

struct Decoded {
    std::vector<StreamChunk> chunks;
    StreamStatus end = StreamStatus::need_more;
    Error error;
};

/// Feeds `body` to a decoder in pieces of `step` bytes, then finishes it.
Decoded decode(std::string_view body, std::size_t step) {
    bifrost::providers::OpenAI::StreamDecoder d;
    Decoded out;
    StreamChunk c;
    const auto drain = [&] {
        for (;;) {
            const StreamStatus s = d.next(c, out.error);
            if (s == StreamStatus::chunk) {
                out.chunks.push_back(c);
                continue;
            }
            if (s != StreamStatus::need_more) out.end = s;
            return s;
        }
    };
    for (std::size_t i = 0; i < body.size(); i += step) {
        d.feed(body.substr(i, step));
        if (drain() != StreamStatus::need_more) return out;
    }
    d.finish();
    drain();
    return out;
}

std::string sse_body() {
    std::string b;
    b += "data: ";
    b += openai_chunk;
    b += "\n\n: keep-alive\r\n\r\n";
    b += R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"lo"},)"
         R"("finish_reason":"stop"}]})"
         "\r\n\r\n";
    b += R"(data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,)"
         R"("completion_tokens":2,"total_tokens":5}})"
         "\n\n";
    b += "data: [DONE]\n\n";
    return b;
}

}  // namespace

TEST_CASE("stream json: an OpenAI chunk is read field by field, unknown fields kept", "[stream]") {
    StreamChunk c;
    Error err;
    REQUIRE(bifrost::parse_stream_chunk(openai_chunk, c, err));
    CHECK(c.id == "chatcmpl-1");
    CHECK(c.object == "chat.completion.chunk");
    CHECK(c.created == 1700000000);
    CHECK(c.model == "gpt-4o");
    CHECK(c.system_fingerprint == "fp_1");
    CHECK(c.extra.contains("service_tier"));
    REQUIRE(c.choices.size() == 1);
    CHECK(c.choices[0].index == 0);
    REQUIRE(c.choices[0].role.has_value());
    CHECK(*c.choices[0].role == bifrost::Role::assistant);
    REQUIRE(c.choices[0].content.has_value());
    CHECK(*c.choices[0].content == "Hel");
    CHECK(c.choices[0].extra.contains("refusal"));
    CHECK(c.choices[0].finish_reason.empty());
    CHECK_FALSE(c.usage.has_value());
}

TEST_CASE("stream json: writing gives OpenAI's chunk shape and reads back equal", "[stream]") {
    StreamChunk c;
    c.id = "chatcmpl-9";
    c.created = 42;
    c.model = "m";
    bifrost::ChoiceDelta d;
    d.role = bifrost::Role::assistant;
    d.tool_calls.push_back({0, "call_1", "function", "lookup", "{\"q\":"});
    c.choices.push_back(d);
    bifrost::ChoiceDelta last;
    last.index = 1;
    last.content = "";
    last.finish_reason = "stop";
    c.choices.push_back(last);
    c.usage = bifrost::Usage{1, 2, 3, {}};
    c.extra_fields.provider = "openai";

    std::string text;
    bifrost::write_stream_chunk(text, c);
    const auto doc = boost::json::parse(text).as_object();
    CHECK(doc.at("object") == "chat.completion.chunk");
    const auto& c0 = doc.at("choices").at(0).as_object();
    CHECK(c0.at("finish_reason").is_null());  // null, not absent, until the last chunk
    CHECK_FALSE(c0.at("delta").as_object().contains("content"));  // absent content is omitted
    CHECK(c0.at("delta").at("tool_calls").at(0).at("function").at("name") == "lookup");
    const auto& c1 = doc.at("choices").at(1).as_object();
    CHECK(c1.at("delta").at("content") == "");  // present but empty is written
    CHECK(c1.at("finish_reason") == "stop");
    CHECK(doc.at("usage").at("total_tokens") == 3);
    CHECK(doc.at("extra_fields").at("provider") == "openai");

    StreamChunk back;
    Error err;
    REQUIRE(bifrost::parse_stream_chunk(text, back, err));
    CHECK(back == c);
}

TEST_CASE("stream json: malformed chunks are errors that say what and where", "[stream]") {
    StreamChunk c;
    Error err;
    SECTION("not JSON") {
        CHECK_FALSE(bifrost::parse_stream_chunk(R"({"id": "x", )", c, err));
        CHECK(err.status == 502);
        CHECK(err.message.find("malformed JSON at line 1") != std::string::npos);
    }
    SECTION("empty") {
        CHECK_FALSE(bifrost::parse_stream_chunk("", c, err));
        CHECK(err.message.find("empty") != std::string::npos);
    }
    SECTION("content of the wrong type") {
        CHECK_FALSE(bifrost::parse_stream_chunk(
            R"({"choices":[{"index":0,"delta":{"content":5}}]})", c, err));
        CHECK(err.message.find("choices[0].delta.content: expected a string, got a number") !=
              std::string::npos);
    }
    SECTION("choices not an array") {
        CHECK_FALSE(bifrost::parse_stream_chunk(R"({"choices":{}})", c, err));
        CHECK(err.message.find("choices: expected an array") != std::string::npos);
    }
    SECTION("an unknown role") {
        CHECK_FALSE(
            bifrost::parse_stream_chunk(R"({"choices":[{"delta":{"role":"robot"}}]})", c, err));
        CHECK(err.message.find("choices[0].delta.role: unknown role \"robot\"") !=
              std::string::npos);
    }
    SECTION("a tool call's arguments of the wrong type") {
        CHECK_FALSE(bifrost::parse_stream_chunk(
            R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":[]}}]}}]})",
            c, err));
        CHECK(err.message.find("choices[0].delta.tool_calls[0].function.arguments") !=
              std::string::npos);
    }
}

TEST_CASE("stream decoder: the same chunks whatever the cuts, even one byte at a time",
          "[stream]") {
    const std::string body = sse_body();
    const Decoded whole = decode(body, body.size());
    REQUIRE(whole.end == StreamStatus::done);
    REQUIRE(whole.chunks.size() == 3);
    CHECK(*whole.chunks[0].choices[0].content == "Hel");
    CHECK(*whole.chunks[1].choices[0].content == "lo");
    CHECK(whole.chunks[1].choices[0].finish_reason == "stop");
    REQUIRE(whole.chunks[2].usage.has_value());
    CHECK(whole.chunks[2].usage->total_tokens == 5);
    for (std::size_t step : {1, 2, 3, 7, 64}) {
        const Decoded d = decode(body, step);
        INFO("step " << step);
        CHECK(d.end == StreamStatus::done);
        CHECK(d.chunks == whole.chunks);
    }
}

TEST_CASE("stream decoder: unhappy streams end with an error", "[stream]") {
    SECTION("the body ends before [DONE]") {
        const std::string body = std::string("data: ") + openai_chunk + "\n\n";
        for (std::size_t step : {std::size_t(1), body.size()}) {
            const Decoded d = decode(body, step);
            CHECK(d.chunks.size() == 1);
            CHECK(d.end == StreamStatus::error);
            CHECK(d.error.status == 502);
            CHECK(d.error.message.find("ended before [DONE]") != std::string::npos);
        }
    }
    SECTION("an error object in an event keeps the upstream's message and type") {
        const std::string body =
            std::string("data: ") + openai_chunk +
            "\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n" +
            "data: " + openai_chunk + "\n\n";
        const Decoded d = decode(body, 1);
        CHECK(d.chunks.size() == 1);  // nothing after the error
        CHECK(d.end == StreamStatus::error);
        CHECK(d.error.message == "overloaded");
        CHECK(d.error.type == "server_error");
    }
    SECTION("an event that is not JSON") {
        const Decoded d = decode("data: {oops\n\n", 3);
        CHECK(d.end == StreamStatus::error);
        CHECK(d.error.message.find("not JSON") != std::string::npos);
    }
    SECTION("a chunk of the wrong shape names the field") {
        const Decoded d = decode("data: {\"choices\":[{\"delta\":{\"content\":true}}]}\n\n", 5);
        CHECK(d.end == StreamStatus::error);
        CHECK(d.error.message.find("choices[0].delta.content") != std::string::npos);
    }
    SECTION("reset makes a used decoder fresh") {
        bifrost::providers::OpenAI::StreamDecoder d;
        d.feed("data: {oops\n\n");
        StreamChunk c;
        Error e;
        CHECK(d.next(c, e) == StreamStatus::error);
        d.reset();
        d.feed(std::string("data: ") + openai_chunk + "\n\ndata: [DONE]\n\n");
        CHECK(d.next(c, e) == StreamStatus::chunk);
        CHECK(d.next(c, e) == StreamStatus::done);
    }
}

TEST_CASE("stream request: stream and include_usage are set unless the caller chose", "[stream]") {
    bifrost::ChatRequest r;
    r.model = "openai/gpt-4o";
    r.messages.push_back({bifrost::Role::user, "hi", {}, {}, {}, {}, {}});
    bifrost::ProviderConfig cfg;
    bifrost::Key key{bifrost::Secret("sk-1"), {}, 1.0, true, "k", {}};
    bifrost::HttpRequest out;

    bifrost::providers::OpenAI{}.build_chat_stream({r, "gpt-4o", &key, cfg}, out);
    auto body = boost::json::parse(out.body).as_object();
    CHECK(body.at("stream") == true);
    CHECK(body.at("stream_options").at("include_usage") == true);
    CHECK(body.at("model") == "gpt-4o");
    CHECK(out.url == "https://api.openai.com/v1/chat/completions");

    r.stream = false;
    r.extra["stream_options"] = boost::json::object{{"include_usage", false}};
    out.clear();
    bifrost::providers::Groq{}.build_chat_stream({r, "llama", &key, cfg}, out);
    body = boost::json::parse(out.body).as_object();
    CHECK(body.at("stream") == true);
    CHECK(body.at("stream_options").at("include_usage") == false);
    CHECK(out.url == "https://api.groq.com/openai/v1/chat/completions");
}
