#pragma once
/// \file
/// `detail::OperationData`: a job's storage for the requests and outcomes of the kinds other than
/// chat (embeddings, text completions, model listing). A job allocates it on its first request of
/// such a kind and keeps it across reuse, so chat jobs never touch it.

#include <bifrost/schema/completion.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/models.hpp>
#include <bifrost/schema/operation_outcome.hpp>

#include <type_traits>

namespace bifrost::detail {

struct OperationData {
    EmbeddingRequest embedding_request;
    EmbeddingOutcome embedding;
    TextCompletionRequest completion_request;
    TextCompletionOutcome completion;
    ListModelsRequest list_request;
    ModelListOutcome models;

    /// The outcome holding responses of type `Response`.
    template <class Response>
    OperationOutcome<Response>& outcome() noexcept {
        if constexpr (std::is_same_v<Response, EmbeddingResponse>)
            return embedding;
        else if constexpr (std::is_same_v<Response, TextCompletionResponse>)
            return completion;
        else
            return models;
    }
};

}  // namespace bifrost::detail
