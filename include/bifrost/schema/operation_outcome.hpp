#pragma once
/// \file
/// `OperationOutcome<Response>`: what a request of a kind other than chat produced, a response
/// or an `Error` (`EmbeddingOutcome`, `TextCompletionOutcome`, `ModelListOutcome`). The
/// counterpart of chat's `Outcome`; providers parse into it and post-hooks receive it.

#include <bifrost/schema/completion.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/models.hpp>

#include <cstdint>
#include <string_view>
#include <utility>

namespace bifrost {

/// The kinds of request the gateway carries.
enum class Operation : std::uint8_t { chat, embedding, text_completion, list_models };

/// A readable name of an operation ("chat completions", "embeddings", ...), for messages.
constexpr std::string_view to_string(Operation op) noexcept {
    switch (op) {
        case Operation::chat:
            return "chat completions";
        case Operation::embedding:
            return "embeddings";
        case Operation::text_completion:
            return "text completions";
        case Operation::list_models:
            return "model listing";
    }
    return "chat completions";
}

/// A response or an error. `ok()` is true when no error is set (`error.status == 0`).
template <class Response>
class OperationOutcome {
  public:
    using response_type = Response;

    Response response;
    Error error;

    [[nodiscard]] bool ok() const noexcept { return error.status == 0; }

    /// Sets the error (the response is then meaningless).
    void fail(Error e) { error = std::move(e); }
    void fail(int status, std::string_view type, std::string_view message,
              std::string_view provider = {}) {
        error.assign(status, type, message, provider);
    }

    /// Empties the outcome: no error, an empty response.
    void recycle() {
        error.clear();
        response = Response{};
    }
};

using EmbeddingOutcome = OperationOutcome<EmbeddingResponse>;
using TextCompletionOutcome = OperationOutcome<TextCompletionResponse>;
using ModelListOutcome = OperationOutcome<ModelList>;

}  // namespace bifrost
