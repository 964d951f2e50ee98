// providers::Cohere against fixtures written from Cohere's v2 Chat and Embed API references.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/providers/cohere.hpp>

#include <string>
#include <vector>

using bifrost::providers::Cohere;

TEST_CASE("cohere: a conversation with tools maps to /v2/chat", "[providers][cohere]") {
    bifrost::ChatRequest r;
    r.messages.push_back({bifrost::Role::system, "Be brief.", {}, {}, {}, {}, {}});
    r.messages.push_back({bifrost::Role::user, "Sales on 2024-06-29?", {}, {}, {}, {}, {}});
    bifrost::Message call{bifrost::Role::assistant, {}, {}, {}, {}, {}, {}};
    call.tool_calls.push_back({"q_1", "function", "query_daily_sales", R"({"day":"2024-06-29"})"});
    r.messages.push_back(call);
    r.messages.push_back({bifrost::Role::tool, R"({"total":1000})", {}, {}, {}, "q_1", {}});
    r.temperature = 0.3;
    r.top_p = 0.75;
    r.max_completion_tokens = 100;
    r.stop = {"###"};
    bifrost::Tool t;
    t.name = "query_daily_sales";
    t.description = "Sales of a day";
    t.parameters = test::json(
        R"({"type":"object","properties":{"day":{"type":"string"}},"required":["day"]})");
    r.tools.push_back(t);
    r.tool_choice = bifrost::ToolChoice{bifrost::ToolChoice::Mode::required, {}};

    const auto k = test::key("co-secret");
    const auto out = test::build<Cohere>(r, "command-r-plus-08-2024", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url == "https://api.cohere.com/v2/chat");
    CHECK(out.headers.get("authorization") == "Bearer co-secret");
    CHECK(test::json(out.body) == test::json(R"({
        "model": "command-r-plus-08-2024",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Sales on 2024-06-29?"},
            {"role": "assistant", "tool_calls": [{"id": "q_1", "type": "function",
                "function": {"name": "query_daily_sales", "arguments": "{\"day\":\"2024-06-29\"}"}}]},
            {"role": "tool", "tool_call_id": "q_1", "content": "{\"total\":1000}"}
        ],
        "tools": [{"type": "function", "function": {"name": "query_daily_sales", "description": "Sales of a day",
            "parameters": {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}}}],
        "tool_choice": "REQUIRED",
        "temperature": 0.3,
        "p": 0.75,
        "max_tokens": 100,
        "stop_sequences": ["###"]
    })"));

    bifrost::ProviderConfig cfg;
    cfg.network_config.base_url = "http://localhost:5000/";
    cfg.network_config.extra_headers = {{"X-Client-Name", "bifrost"}};
    const auto s = test::build<Cohere>(test::user_request("cohere/command-r", "Hi"), "command-r",
                                       &k, cfg, true);
    CHECK(s.url == "http://localhost:5000/v2/chat");
    CHECK(s.headers.get("x-client-name") == "bifrost");
    CHECK(
        test::json(s.body) ==
        test::json(
            R"({"model":"command-r","messages":[{"role":"user","content":"Hi"}],"stream":true})"));
}

TEST_CASE("cohere: a response maps content, tool calls, finish reason and usage",
          "[providers][cohere]") {
    const auto out = test::parse<Cohere>(200, R"({
        "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
        "finish_reason": "TOOL_CALL",
        "message": {"role": "assistant",
            "tool_plan": "I will query the sales database.",
            "tool_calls": [{"id": "query_daily_sales_report_1462q", "type": "function",
                "function": {"name": "query_daily_sales_report", "arguments": "{\"day\":\"2023-09-29\"}"}}]},
        "usage": {"billed_units": {"input_tokens": 37, "output_tokens": 20},
                  "tokens": {"input_tokens": 1091, "output_tokens": 47}}})");
    REQUIRE(out.ok());
    CHECK(out.response.id == "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    const auto& c = out.response.choices.at(0);
    CHECK(c.finish_reason == "tool_calls");
    REQUIRE(c.message.tool_calls.size() == 1);
    CHECK(c.message.tool_calls[0] == bifrost::ToolCall{"query_daily_sales_report_1462q", "function",
                                                       "query_daily_sales_report",
                                                       R"({"day":"2023-09-29"})"});
    CHECK(out.response.usage->prompt_tokens == 1091);
    CHECK(out.response.usage->completion_tokens == 47);
    CHECK(out.response.usage->total_tokens == 1138);

    const auto text = test::parse<Cohere>(200, R"({"id":"x","finish_reason":"MAX_TOKENS",
        "message":{"role":"assistant","content":[{"type":"text","text":"Hello "},{"type":"text","text":"world"}]}})");
    REQUIRE(text.ok());
    CHECK(text.response.choices.at(0).message.content == "Hello world");
    CHECK(text.response.choices.at(0).finish_reason == "length");
}

TEST_CASE("cohere: errors keep status and message", "[providers][cohere]") {
    const auto out = test::parse<Cohere>(401, R"({"id":"e1","message":"invalid api token"})");
    CHECK(out.error.status == 401);
    CHECK(out.error.message == "invalid api token");
    const auto plain = test::parse<Cohere>(502, "Bad Gateway");
    CHECK(plain.error.status == 502);
    CHECK(plain.error.message.find("Bad Gateway") != std::string::npos);
}

namespace {

constexpr std::string_view cohere_stream =
    "event: message-start\n"
    "data: "
    "{\"id\":\"29f14a5a-11de-4cae-9800-25e4747408ea\",\"type\":\"message-start\",\"delta\":{"
    "\"message\":"
    "{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}"
    "}\n\n"
    "event: content-start\n"
    "data: "
    "{\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":"
    "\"text\",\"text\":\"\"}}}}\n\n"
    "event: content-delta\n"
    "data: "
    "{\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"A "
    "large\"}}}}\n\n"
    "event: content-delta\n"
    "data: "
    "{\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\" "
    "model\"}}}}\n\n"
    "event: content-end\n"
    "data: {\"type\":\"content-end\",\"index\":0}\n\n"
    "event: message-end\n"
    "data: "
    "{\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_"
    "units\":"
    "{\"input_tokens\":5,\"output_tokens\":2},\"tokens\":{\"input_tokens\":71,\"output_tokens\":2}}"
    "}}\n\n";

constexpr std::string_view cohere_tool_stream =
    "event: message-start\n"
    "data: "
    "{\"id\":\"t1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}"
    "\n\n"
    "event: tool-plan-delta\n"
    "data: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\"I will\"}}}\n\n"
    "event: tool-call-start\n"
    "data: "
    "{\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":"
    "\"get_weather_nsz5zm3w56q3\","
    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}}}}\n\n"
    "event: tool-call-delta\n"
    "data: "
    "{\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{"
    "\"function\":{\"arguments\":\"{\\\"loc\"}}}}}\n\n"
    "event: tool-call-delta\n"
    "data: "
    "{\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{"
    "\"function\":{\"arguments\":\"ation\\\":\\\"Toronto\\\"}\"}}}}}\n\n"
    "event: tool-call-end\n"
    "data: {\"type\":\"tool-call-end\",\"index\":0}\n\n"
    "event: message-end\n"
    "data: "
    "{\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\",\"usage\":{\"tokens\":{"
    "\"input_tokens\":37,\"output_tokens\":28}}}}\n\n";

}  // namespace

TEST_CASE("cohere: streams map to chunks, whole or byte by byte", "[providers][cohere][stream]") {
    const auto d = test::decode_both<Cohere::StreamDecoder>(cohere_stream);
    CHECK(d.last == bifrost::StreamStatus::done);
    CHECK(d.chunks.at(0).id == "29f14a5a-11de-4cae-9800-25e4747408ea");
    CHECK(d.chunks.at(0).choices.at(0).role == bifrost::Role::assistant);
    CHECK(test::text_of(d) == "A large model");
    CHECK(test::finish_of(d) == "stop");
    REQUIRE(test::usage_of(d));
    CHECK(test::usage_of(d)->prompt_tokens == 71);
    CHECK(test::usage_of(d)->total_tokens == 73);

    const auto t = test::decode_both<Cohere::StreamDecoder>(cohere_tool_stream);
    CHECK(t.last == bifrost::StreamStatus::done);
    CHECK(test::finish_of(t) == "tool_calls");
    std::string args;
    int starts = 0;
    for (const auto& c : t.chunks)
        for (const auto& ch : c.choices)
            for (const auto& tc : ch.tool_calls) {
                CHECK(tc.index == 0);
                if (!tc.id.empty()) {
                    ++starts;
                    CHECK(tc.id == "get_weather_nsz5zm3w56q3");
                    CHECK(tc.name == "get_weather");
                    CHECK(tc.type == "function");
                }
                args += tc.arguments;
            }
    CHECK(starts == 1);
    CHECK(test::json(args) == test::json(R"({"location":"Toronto"})"));
}

TEST_CASE("cohere: a stream cut before message-end fails", "[providers][cohere][stream]") {
    const auto d = test::decode_both<Cohere::StreamDecoder>(
        cohere_stream.substr(0, cohere_stream.find("event: message-end")));
    CHECK(d.last == bifrost::StreamStatus::error);
    CHECK(d.error.status == 502);
    CHECK(test::text_of(d) == "A large model");
}

TEST_CASE("cohere: embeddings map to /v2/embed and back", "[providers][cohere][embedding]") {
    auto r = test::embedding_request("cohere/embed-v4.0", {"hello", "goodbye"});
    r.dimensions = 512;
    r.encoding_format = "base64";  // floats are asked for and returned regardless
    r.extra["input_type"] = "search_query";
    r.extra["truncate"] = "END";
    const auto k = test::key("co-secret");
    const auto out = test::build_embedding<Cohere>(r, "embed-v4.0", &k);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url == "https://api.cohere.com/v2/embed");
    CHECK(out.headers.get("authorization") == "Bearer co-secret");
    CHECK(out.headers.get("content-type") == "application/json");
    CHECK(test::json(out.body) == test::json(R"({"model": "embed-v4.0",
        "texts": ["hello", "goodbye"], "input_type": "search_query",
        "embedding_types": ["float"], "output_dimension": 512, "truncate": "END"})"));

    // input_type defaults to search_document (v3+ models require one).
    const auto plain = test::build_embedding<Cohere>(
        test::embedding_request("cohere/embed-english-v3.0", {"x"}), "embed-english-v3.0", &k);
    CHECK(test::json(plain.body) == test::json(R"({"model": "embed-english-v3.0", "texts": ["x"],
        "input_type": "search_document", "embedding_types": ["float"]})"));

    const auto res = test::parse_embedding<Cohere>(200, R"({
        "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
        "embeddings": {"float": [[0.016296387, -0.008354187], [-0.5, 1]]},
        "texts": ["hello", "goodbye"],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
        "response_type": "embeddings_by_type"})");
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 2);
    CHECK(res.response.data[0].embedding == std::vector<float>{0.016296387f, -0.008354187f});
    CHECK(res.response.data[1].index == 1);
    CHECK(res.response.data[1].embedding == std::vector<float>{-0.5f, 1.0f});
    REQUIRE(res.response.usage);
    CHECK(res.response.usage->prompt_tokens == 2);
    CHECK(res.response.usage->total_tokens == 2);
    CHECK(res.response.extra.at("id") == "da6e531f-54c6-4a73-bf92-f60566d8d753");

    // v1's embeddings_floats shape is read too.
    const auto v1 = test::parse_embedding<Cohere>(
        200, R"({"id": "x", "embeddings": [[1, 2, 3]], "response_type": "embeddings_floats"})");
    REQUIRE(v1.ok());
    CHECK(v1.response.data.at(0).embedding == std::vector<float>{1.0f, 2.0f, 3.0f});
}

TEST_CASE("cohere: embedding errors keep status and message", "[providers][cohere][embedding]") {
    const auto err = test::parse_embedding<Cohere>(
        400, R"({"id": "e1", "message": "invalid request: input_type must be specified"})");
    CHECK(err.error.status == 400);
    CHECK(err.error.message == "invalid request: input_type must be specified");
    const auto shape = test::parse_embedding<Cohere>(200, R"({"embeddings": {"int8": [[1]]}})");
    CHECK(shape.error.status == 502);
    CHECK(shape.error.type == "invalid_upstream_response");
}
