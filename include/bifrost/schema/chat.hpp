#pragma once
/// \file
/// The unified chat schema: `ChatRequest`, `Message`, `ChatResponse` and their parts. It follows
/// OpenAI's chat-completions shape (the lingua franca every provider maps to and from), plus
/// Bifrost's routing fields (`provider`, `fallbacks`). Fields this schema does not model are kept
/// in `extra` and forwarded, never dropped.
///
/// Every type here is a plain value type. Assignment reuses string and vector capacity, which is
/// what lets pooled objects serve request after request without touching the heap.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost {

/// Who speaks a message.
enum class Role : std::uint8_t { system, developer, user, assistant, tool, function };

/// The wire name of a role ("system", "user", ...).
constexpr std::string_view to_string(Role r) noexcept {
    switch (r) {
        case Role::system:
            return "system";
        case Role::developer:
            return "developer";
        case Role::user:
            return "user";
        case Role::assistant:
            return "assistant";
        case Role::tool:
            return "tool";
        case Role::function:
            return "function";
    }
    return "user";
}

/// Parses a wire role name; false if unknown.
constexpr bool parse_role(std::string_view s, Role& out) noexcept {
    constexpr Role all[] = {Role::system,    Role::developer, Role::user,
                            Role::assistant, Role::tool,      Role::function};
    for (Role r : all) {
        if (to_string(r) == s) {
            out = r;
            return true;
        }
    }
    return false;
}

/// One element of an array-valued message `content`.
struct ContentPart {
    enum class Type : std::uint8_t { text, image_url, other };
    Type type = Type::text;
    std::string text;       ///< for `text`
    std::string image_url;  ///< for `image_url`: `image_url.url` (http(s) or data: URL)
    std::string
        image_detail;  ///< for `image_url`: `image_url.detail` ("auto", "low", "high") or empty
    boost::json::value raw;  ///< for `other` (input_audio, file, ...): the whole part, verbatim

    friend bool operator==(const ContentPart&, const ContentPart&) = default;
};

/// A function call the assistant asked for.
struct ToolCall {
    std::string id;
    std::string type = "function";
    std::string name;  ///< `function.name`
    std::string
        arguments;  ///< `function.arguments`: a JSON document as a string, as OpenAI sends it

    friend bool operator==(const ToolCall&, const ToolCall&) = default;
};

/// One chat message.
///
/// `content` holds text content. When `parts` is non-empty the content is the array form and
/// `content` is ignored. An assistant message with `tool_calls` and empty `content` serializes its
/// content as `null`.
struct Message {
    Role role = Role::user;
    std::string content;
    std::vector<ContentPart> parts;
    std::string name;
    std::vector<ToolCall> tool_calls;  ///< assistant messages
    std::string tool_call_id;          ///< tool messages
    boost::json::object extra;         ///< message fields not modelled here, forwarded verbatim

    friend bool operator==(const Message&, const Message&) = default;
};

/// A tool (function) the model may call.
struct Tool {
    std::string type = "function";
    std::string name;         ///< `function.name`
    std::string description;  ///< `function.description`
    boost::json::value
        parameters;  ///< `function.parameters`: a JSON Schema, verbatim (null if absent)
    std::optional<bool> strict;  ///< `function.strict`

    friend bool operator==(const Tool&, const Tool&) = default;
};

/// `tool_choice`: "none" | "auto" | "required" | a named function.
struct ToolChoice {
    enum class Mode : std::uint8_t { none, auto_, required, function };
    Mode mode = Mode::auto_;
    std::string function_name;  ///< when mode == function

    friend bool operator==(const ToolChoice&, const ToolChoice&) = default;
};

/// `response_format`: plain text, JSON mode, or structured output with a schema.
struct ResponseFormat {
    enum class Type : std::uint8_t { text, json_object, json_schema };
    Type type = Type::text;
    boost::json::value
        json_schema;  ///< the `json_schema` object, verbatim, when type == json_schema

    friend bool operator==(const ResponseFormat&, const ResponseFormat&) = default;
};

/// A chat-completion request in the unified schema.
///
/// Routing: `model` is `"provider/model"` (split at the first '/'), or, when `provider` is set,
/// the provider's own model id verbatim. `fallbacks` lists `"provider/model"` alternatives tried
/// in order after the primary fails.
struct ChatRequest {
    std::string model;
    std::string provider;
    std::vector<Message> messages;

    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<std::int64_t> max_tokens;
    std::optional<std::int64_t> max_completion_tokens;
    std::optional<std::int64_t> n;
    std::optional<std::int64_t> seed;
    std::optional<double> frequency_penalty;
    std::optional<double> presence_penalty;
    std::optional<bool> logprobs;
    std::optional<std::int64_t> top_logprobs;
    std::optional<bool> parallel_tool_calls;
    std::optional<bool> stream;
    std::vector<std::string> stop;
    std::vector<Tool> tools;
    std::optional<ToolChoice> tool_choice;
    std::optional<ResponseFormat> response_format;
    std::string user;

    std::vector<std::string> fallbacks;

    /// Request fields not modelled above (e.g. `logit_bias`, `metadata`, `service_tier`), kept in
    /// their original order and forwarded to the provider verbatim.
    boost::json::object extra;

    friend bool operator==(const ChatRequest&, const ChatRequest&) = default;
};

/// Token accounting.
struct Usage {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::int64_t total_tokens = 0;
    boost::json::object extra;  ///< e.g. `prompt_tokens_details`, forwarded verbatim

    friend bool operator==(const Usage&, const Usage&) = default;
};

/// One completion alternative.
struct Choice {
    std::int64_t index = 0;
    Message message{Role::assistant, {}, {}, {}, {}, {}, {}};
    std::string
        finish_reason;  ///< "stop", "length", "tool_calls", "content_filter", ... (may be empty)
    boost::json::value logprobs;

    friend bool operator==(const Choice&, const Choice&) = default;
};

/// Gateway-added facts about how a response was produced.
struct ResponseExtra {
    std::string provider;                ///< the provider name that served the request
    std::chrono::nanoseconds latency{};  ///< upstream latency of the successful attempt
    std::chrono::nanoseconds queue_wait{};  ///< its wait in the provider's queue

    friend bool operator==(const ResponseExtra&, const ResponseExtra&) = default;
};

/// A chat-completion response in the unified schema.
struct ChatResponse {
    std::string id;
    std::string object = "chat.completion";
    std::int64_t created = 0;
    std::string model;
    std::string system_fingerprint;
    std::vector<Choice> choices;
    std::optional<Usage> usage;
    ResponseExtra extra_fields;
    boost::json::object extra;  ///< response fields not modelled here (e.g. `service_tier`)

    friend bool operator==(const ChatResponse&, const ChatResponse&) = default;
};

}  // namespace bifrost
