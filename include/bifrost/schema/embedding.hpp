#pragma once
/// \file
/// The unified embeddings schema: `EmbeddingRequest` and `EmbeddingResponse`, in the shape of
/// OpenAI's `/v1/embeddings`, plus Bifrost's routing fields (`provider`, `fallbacks`). Fields
/// this schema does not model are kept in `extra` and forwarded.

#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/input.hpp>

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bifrost {

/// An embeddings request.
///
/// Routing as for chat: `model` is `"provider/model"`, or the provider's own id when `provider`
/// is set; `fallbacks` are `"provider/model"` alternatives tried in order.
struct EmbeddingRequest {
    std::string model;
    std::string provider;
    TextInput input;
    std::optional<std::int64_t> dimensions;
    std::string encoding_format;  ///< "float", "base64", or empty (the upstream's default)
    std::string user;

    std::vector<std::string> fallbacks;

    /// Request fields not modelled above, forwarded to the provider verbatim.
    boost::json::object extra;

    friend bool operator==(const EmbeddingRequest&, const EmbeddingRequest&) = default;
};

/// One embedding vector.
struct Embedding {
    std::string object = "embedding";
    std::int64_t index = 0;
    /// The vector, when the upstream sent numbers (`encoding_format` "float" or unset).
    std::vector<float> embedding;
    /// The vector as the upstream's base64 text (little-endian float32), when it sent a string
    /// (`encoding_format` "base64"); `embedding` is then empty.
    std::string base64;
    boost::json::object extra;  ///< fields not modelled here

    friend bool operator==(const Embedding&, const Embedding&) = default;
};

/// Token accounting of an embeddings request.
struct EmbeddingUsage {
    std::int64_t prompt_tokens = 0;
    std::int64_t total_tokens = 0;
    boost::json::object extra;

    friend bool operator==(const EmbeddingUsage&, const EmbeddingUsage&) = default;
};

/// An embeddings response: one `Embedding` per input, in `data`.
struct EmbeddingResponse {
    std::string object = "list";
    std::vector<Embedding> data;
    std::string model;
    std::optional<EmbeddingUsage> usage;
    ResponseExtra extra_fields;  ///< which provider served it, upstream latency
    boost::json::object extra;   ///< response fields not modelled here

    friend bool operator==(const EmbeddingResponse&, const EmbeddingResponse&) = default;
};

}  // namespace bifrost
