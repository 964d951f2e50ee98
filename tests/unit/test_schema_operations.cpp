// JSON of the embeddings, legacy text-completion and model-list schemas: round trips, OpenAI's
// wire names, errors that say what and where.

#include "bifrost_catch.hpp"

#include <bifrost/schema/operations_json.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <stdexcept>
#include <string>

using bifrost::EmbeddingOutcome;
using bifrost::EmbeddingRequest;
using bifrost::Error;
using bifrost::TextCompletionOutcome;
using bifrost::TextCompletionRequest;
using bifrost::TextInput;
namespace json = boost::json;

namespace {

std::string upstream_form(const EmbeddingRequest& r) {
    std::string out;
    bifrost::write_embedding_request(out, r);
    return out;
}

Error embedding_error(std::string_view text) {
    EmbeddingRequest r;
    Error e;
    REQUIRE_FALSE(bifrost::parse_embedding_request(text, r, e));
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    return e;
}

Error completion_error(std::string_view text) {
    TextCompletionRequest r;
    Error e;
    REQUIRE_FALSE(bifrost::parse_text_completion_request(text, r, e));
    CHECK(e.status == 400);
    return e;
}

}  // namespace

TEST_CASE("schema operations: embedding inputs in every OpenAI form round-trip") {
    const TextInput inputs[] = {
        TextInput::text("hello"),
        TextInput::of_texts({"a", "b"}),
        TextInput::of_tokens({1, 2, 3}),
        TextInput::of_token_arrays({{1, 2}, {3}}),
    };
    const char* wire[] = {R"("hello")", R"(["a","b"])", "[1,2,3]", "[[1,2],[3]]"};
    for (std::size_t i = 0; i < 4; ++i) {
        EmbeddingRequest r;
        r.model = "openai/text-embedding-3-small";
        r.provider = "openai";
        r.input = inputs[i];
        r.dimensions = 256;
        r.encoding_format = "float";
        r.user = "u";
        r.fallbacks = {"azure/emb"};
        r.extra["truncate"] = "END";

        std::string text;
        bifrost::write_embedding_request(text, r, {{}, false});
        CHECK(text.find(std::string(R"("input":)") + wire[i]) != std::string::npos);
        EmbeddingRequest back;
        Error e;
        REQUIRE(bifrost::parse_embedding_request(text, back, e));
        CHECK(back == r);
        CHECK(back.input.count() == (i == 1 ? 2u : i == 3 ? 2u : 1u));

        // Boost.JSON conversions agree.
        CHECK(json::value_to<EmbeddingRequest>(json::value_from(r)) == r);
    }
}

TEST_CASE("schema operations: the upstream embeddings request is exact") {
    EmbeddingRequest r;
    r.model = "openai/text-embedding-3-small";
    r.input = TextInput::of_texts({"x"});
    r.fallbacks = {"other/m"};
    r.provider = "openai";
    r.extra["custom"] = 1;
    std::string out;
    bifrost::write_embedding_request(out, r, {"text-embedding-3-small", true});
    CHECK(out == R"({"model":"text-embedding-3-small","input":["x"],"custom":1})");
    CHECK(upstream_form(r).find("fallbacks") == std::string::npos);
}

TEST_CASE("schema operations: malformed embeddings requests say what and where") {
    CHECK(embedding_error(R"({"model":"m","input":42})").message ==
          "input: expected a string or an array, got a number");
    CHECK(embedding_error(R"({"model":"m","input":42})").param == "input");
    CHECK(embedding_error(R"({"model":"m"})").message == "input: required field is missing");
    CHECK(embedding_error(R"({"input":"x"})").message == "model: required field is missing");
    CHECK(embedding_error(R"({"model":"","input":"x"})").message == "model: must not be empty");
    CHECK(embedding_error(R"({"model":"m","input":[]})").message == "input: must not be empty");
    CHECK(embedding_error(R"({"model":"m","input":["a",1]})").message ==
          "input[1]: expected a string, got a number");
    CHECK(embedding_error(R"({"model":"m","input":[1,"a"]})").message ==
          "input[1]: expected an integer, got a string");
    CHECK(embedding_error(R"({"model":"m","input":[[1],[2.5]]})").message ==
          "input[1][0]: expected an integer, got 2.5");
    CHECK(embedding_error(R"({"model":"m","input":[[1],[]]})").message ==
          "input[1]: must not be empty");
    CHECK(embedding_error(R"({"model":"m","input":[[1],2]})").message ==
          "input[1]: expected an array, got a number");
    CHECK(embedding_error(R"({"model":"m","input":[{"a":1}]})").message ==
          "input[0]: expected a string, a token id or an array of token ids, got an object");
    CHECK(embedding_error(R"({"model":"m","input":"x","dimensions":"8"})").message ==
          "dimensions: expected an integer, got a string");
    CHECK(embedding_error(R"({"model":"m","input":"x","dimensions":0})").message ==
          "dimensions: must be a positive integer");
    CHECK(embedding_error(R"({"model":"m","input":"x","fallbacks":"a"})").message ==
          "fallbacks: expected an array, got a string");
    CHECK(embedding_error("[1]").message == "request body: expected an object, got an array");
    CHECK(embedding_error("{").message.rfind("malformed JSON at line 1", 0) == 0);
    CHECK(embedding_error("").message == "request body is empty");
}

TEST_CASE("schema operations: a reused embeddings request keeps nothing from before") {
    EmbeddingRequest r;
    Error e;
    REQUIRE(bifrost::parse_embedding_request(
        R"({"model":"m","input":[[1,2]],"dimensions":3,"user":"u","x":1})", r, e));
    REQUIRE(bifrost::parse_embedding_request(R"({"model":"n","input":"t"})", r, e));
    EmbeddingRequest fresh;
    fresh.model = "n";
    fresh.input = TextInput::text("t");
    CHECK(r == fresh);
}

TEST_CASE("schema operations: embeddings responses parse and re-write") {
    const std::string body = R"({
      "object": "list",
      "data": [
        {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, 1]},
        {"object": "embedding", "index": 1, "embedding": "AAAAPw==", "extra": true}
      ],
      "model": "text-embedding-3-small",
      "usage": {"prompt_tokens": 8, "total_tokens": 8}
    })";
    EmbeddingOutcome o;
    REQUIRE(bifrost::parse_embedding_response(body, o));
    REQUIRE(o.ok());
    const auto& r = o.response;
    REQUIRE(r.data.size() == 2);
    CHECK(r.data[0].embedding.size() == 3);
    CHECK(r.data[0].embedding[0] == Approx(0.0023064255f));
    CHECK(r.data[0].embedding[2] == 1.0f);
    CHECK(r.data[0].base64.empty());
    CHECK(r.data[1].base64 == "AAAAPw==");
    CHECK(r.data[1].embedding.empty());
    CHECK(r.data[1].extra.at("extra").as_bool());
    CHECK(r.model == "text-embedding-3-small");
    REQUIRE(r.usage);
    CHECK(r.usage->prompt_tokens == 8);

    std::string out;
    bifrost::write_embedding_response(out, r);
    CHECK(
        out ==
        R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,1]},)"
        R"({"object":"embedding","index":1,"embedding":"AAAAPw==","extra":true}],)"
        R"("model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}})");
    EmbeddingOutcome again;
    REQUIRE(bifrost::parse_embedding_response(out, again));
    CHECK(again.response == r);
}

TEST_CASE("schema operations: malformed embeddings responses are 502s naming the field") {
    const auto fail = [](std::string_view body) {
        EmbeddingOutcome o;
        REQUIRE_FALSE(bifrost::parse_embedding_response(body, o));
        CHECK(o.error.status == 502);
        CHECK(o.error.type == "invalid_upstream_response");
        return o.error.message;
    };
    CHECK(fail(R"({"object":"list"})") == "upstream response: data: required field is missing");
    CHECK(fail(R"({"data":[{"index":0}]})") ==
          "upstream response: data[0].embedding: required field is missing");
    CHECK(fail(R"({"data":[{"embedding":[1,null]}]})") ==
          "upstream response: data[0].embedding[1]: expected a number, got null");
    CHECK(fail(R"({"data":[],"usage":{"total_tokens":"x"}})") ==
          "upstream response: usage.total_tokens: expected an integer, got a string");
    // Lenient: object, model, index and usage may be missing.
    EmbeddingOutcome o;
    REQUIRE(
        bifrost::parse_embedding_response(R"({"data":[{"embedding":[1]},{"embedding":[2]}]})", o));
    CHECK(o.response.object == "list");
    CHECK(o.response.data[1].index == 1);
    CHECK_FALSE(o.response.usage);
}

TEST_CASE("schema operations: text completion requests round-trip") {
    TextCompletionRequest r;
    r.model = "openai/gpt-3.5-turbo-instruct";
    r.provider = "openai";
    r.prompt = TextInput::of_texts({"Say this", "and that"});
    r.max_tokens = 7;
    r.temperature = 0.5;
    r.top_p = 0.9;
    r.n = 2;
    r.stop = {"\n", "END"};
    r.echo = true;
    r.suffix = "!";
    r.seed = 42;
    r.logprobs = 3;
    r.stream = false;
    r.user = "u";
    r.fallbacks = {"groq/x"};
    r.extra["best_of"] = 3;
    r.extra["logit_bias"] = json::object{{"50256", -100}};

    std::string text;
    bifrost::write_text_completion_request(text, r, {{}, false});
    TextCompletionRequest back;
    Error e;
    REQUIRE(bifrost::parse_text_completion_request(text, back, e));
    CHECK(back == r);
    CHECK(json::value_to<TextCompletionRequest>(json::value_from(r)) == r);

    std::string up;
    bifrost::write_text_completion_request(up, r, {"gpt-3.5-turbo-instruct", true});
    const auto doc = json::parse(up).as_object();
    CHECK(doc.at("model").as_string() == "gpt-3.5-turbo-instruct");
    CHECK(doc.at("prompt").as_array().size() == 2);
    CHECK(doc.at("stop").as_array().size() == 2);
    CHECK(doc.at("echo").as_bool());
    CHECK(doc.at("logprobs").as_int64() == 3);
    CHECK(doc.at("best_of").as_int64() == 3);
    CHECK_FALSE(doc.contains("fallbacks"));
    CHECK_FALSE(doc.contains("provider"));

    // "stop" may be a single string.
    REQUIRE(bifrost::parse_text_completion_request(R"({"model":"m","prompt":"p","stop":"x"})", back,
                                                   e));
    CHECK(back.stop == std::vector<std::string>{"x"});
    CHECK(back.prompt == TextInput::text("p"));
}

TEST_CASE("schema operations: malformed text completion requests say what and where") {
    CHECK(completion_error(R"({"model":"m"})").message == "prompt: required field is missing");
    CHECK(completion_error(R"({"model":"m","prompt":true})").message ==
          "prompt: expected a string or an array, got a boolean");
    CHECK(completion_error(R"({"model":"m","prompt":"p","max_tokens":"5"})").message ==
          "max_tokens: expected an integer, got a string");
    CHECK(completion_error(R"({"model":"m","prompt":"p","echo":1})").message ==
          "echo: expected a boolean, got a number");
    CHECK(completion_error(R"({"model":"m","prompt":"p","stop":5})").message ==
          "stop: expected a string or an array, got a number");
    CHECK(completion_error(R"({"model":"m","prompt":"p","logprobs":true})").message ==
          "logprobs: expected an integer, got a boolean");
}

TEST_CASE("schema operations: text completion responses parse and re-write") {
    const std::string body = R"({
      "id": "cmpl-1", "object": "text_completion", "created": 1700000000,
      "model": "gpt-3.5-turbo-instruct", "system_fingerprint": "fp_1",
      "choices": [
        {"text": "\n\nHi", "index": 0, "logprobs": {"tokens": ["Hi"]}, "finish_reason": "length"},
        {"text": "Yo", "index": 1, "logprobs": null, "finish_reason": null}
      ],
      "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
      "service_tier": "default"
    })";
    TextCompletionOutcome o;
    REQUIRE(bifrost::parse_text_completion_response(body, o));
    const auto& r = o.response;
    REQUIRE(r.choices.size() == 2);
    CHECK(r.choices[0].text == "\n\nHi");
    CHECK(r.choices[0].finish_reason == "length");
    CHECK(r.choices[0].logprobs.at("tokens").at(0).as_string() == "Hi");
    CHECK(r.choices[1].finish_reason.empty());
    CHECK(r.choices[1].logprobs.is_null());
    CHECK(r.usage->total_tokens == 12);
    CHECK(r.extra.at("service_tier").as_string() == "default");

    std::string out;
    bifrost::write_text_completion_response(out, r);
    TextCompletionOutcome again;
    REQUIRE(bifrost::parse_text_completion_response(out, again));
    CHECK(again.response == r);
    CHECK(out.find(R"({"text":"Yo","index":1,"logprobs":null,"finish_reason":null})") !=
          std::string::npos);

    TextCompletionOutcome bad;
    REQUIRE_FALSE(bifrost::parse_text_completion_response(R"({"choices":[{"text":5}]})", bad));
    CHECK(bad.error.message ==
          "upstream response: choices[0].text: expected a string, got a number");
}

TEST_CASE("schema operations: model lists parse and re-write") {
    bifrost::ModelListOutcome o;
    REQUIRE(bifrost::parse_model_list(
        R"({"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"system"},)"
        R"({"id":"o1","permission":[]}]})",
        o));
    REQUIRE(o.response.data.size() == 2);
    CHECK(o.response.data[0].owned_by == "system");
    CHECK(o.response.data[1].object == "model");
    CHECK(o.response.data[1].extra.contains("permission"));
    std::string out;
    bifrost::write_model_list(out, o.response, "openai/");
    CHECK(out.find(R"("id":"openai/gpt-4o")") != std::string::npos);

    bifrost::ModelListOutcome bad;
    REQUIRE_FALSE(bifrost::parse_model_list(R"({"data":[{"object":"model"}]})", bad));
    CHECK(bad.error.message == "upstream response: data[0].id: required field is missing");
}
