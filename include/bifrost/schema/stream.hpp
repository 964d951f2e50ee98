#pragma once
/// \file
/// Streaming chat completions in the unified schema: `StreamChunk` (OpenAI's
/// `chat.completion.chunk` shape, what every provider's stream is mapped to) and `StreamStatus`,
/// the answer of a provider's stream decoder.

#include <bifrost/schema/chat.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bifrost {

/// A piece of a tool call as it streams: the first delta of a call carries `id`, `type` and
/// `name`; later ones append to `arguments`. `index` says which call of the choice it extends.
struct ToolCallDelta {
    std::int64_t index = 0;
    std::string id;
    std::string type;  ///< "function" on the first delta, else empty
    std::string name;
    std::string arguments;  ///< a fragment of the JSON arguments text

    friend bool operator==(const ToolCallDelta&, const ToolCallDelta&) = default;
};

/// What one choice gained in one chunk.
struct ChoiceDelta {
    std::int64_t index = 0;
    std::optional<Role> role;  ///< usually only on the first chunk
    std::optional<std::string>
        content;  ///< text appended to the message; absent (not empty) when the chunk has none
    std::vector<ToolCallDelta> tool_calls;
    std::string finish_reason;  ///< set on the choice's last chunk ("stop", "length", ...)
    boost::json::value logprobs;
    boost::json::object extra;  ///< delta fields not modelled here (e.g. `refusal`), verbatim

    friend bool operator==(const ChoiceDelta&, const ChoiceDelta&) = default;
};

/// One chunk of a streamed chat completion (`"object": "chat.completion.chunk"`).
struct StreamChunk {
    std::string id;
    std::string object = "chat.completion.chunk";
    std::int64_t created = 0;
    std::string model;
    std::string system_fingerprint;
    std::vector<ChoiceDelta> choices;  ///< may be empty (e.g. the final usage-only chunk)
    std::optional<Usage> usage;
    ResponseExtra extra_fields;  ///< the provider that serves the stream
    boost::json::object extra;   ///< chunk fields not modelled here, verbatim

    friend bool operator==(const StreamChunk&, const StreamChunk&) = default;
};

/// What a provider's stream decoder has for the engine (see `StreamingProvider`).
enum class StreamStatus : std::uint8_t {
    need_more,  ///< no complete chunk yet: feed more bytes (or `finish()` at end of body)
    chunk,      ///< a chunk was written to the caller's `StreamChunk`
    done,       ///< the stream ended normally; nothing follows
    error,      ///< the stream failed; the error was written, nothing follows
};

}  // namespace bifrost
