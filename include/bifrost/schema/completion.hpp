#pragma once
/// \file
/// The legacy text-completions schema: `TextCompletionRequest` and `TextCompletionResponse`, in
/// the shape of OpenAI's `/v1/completions` (a prompt in, text out), plus Bifrost's routing fields.
/// Fields this schema does not model (`best_of`, `logit_bias`, penalties, ...) are kept in
/// `extra` and forwarded.

#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/input.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bifrost {

/// A text-completion request. Routing as for chat (`model`, `provider`, `fallbacks`).
struct TextCompletionRequest {
    std::string model;
    std::string provider;
    TextInput prompt;

    std::optional<std::int64_t> max_tokens;
    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<std::int64_t> n;
    std::vector<std::string> stop;
    std::optional<bool> echo;
    std::string suffix;
    std::optional<std::int64_t> seed;
    std::optional<std::int64_t> logprobs;  ///< how many log-probabilities per token (0-5)
    std::optional<bool> stream;
    std::string user;

    std::vector<std::string> fallbacks;

    /// Request fields not modelled above, forwarded to the provider verbatim.
    boost::json::object extra;

    friend bool operator==(const TextCompletionRequest&, const TextCompletionRequest&) = default;
};

/// One completion alternative.
struct TextChoice {
    std::int64_t index = 0;
    std::string text;
    std::string finish_reason;    ///< "stop", "length", ... (may be empty)
    boost::json::value logprobs;  ///< verbatim; null when absent
    boost::json::object extra;    ///< fields not modelled here

    friend bool operator==(const TextChoice&, const TextChoice&) = default;
};

/// A text-completion response.
struct TextCompletionResponse {
    std::string id;
    std::string object = "text_completion";
    std::int64_t created = 0;
    std::string model;
    std::string system_fingerprint;
    std::vector<TextChoice> choices;
    std::optional<Usage> usage;
    ResponseExtra extra_fields;  ///< which provider served it, upstream latency
    boost::json::object extra;   ///< response fields not modelled here

    friend bool operator==(const TextCompletionResponse&, const TextCompletionResponse&) = default;
};

}  // namespace bifrost
