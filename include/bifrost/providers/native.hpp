#pragma once
/// \file
/// The providers whose APIs are not OpenAI's, by name, and `with_any_provider_type`, which maps
/// any shipped provider's configuration name (OpenAI-format or native) to its type.
///
/// | name        | type        | API                                   | key                  |
/// |-------------|-------------|---------------------------------------|----------------------|
/// | `anthropic` | `Anthropic` | Messages (`/v1/messages`)             | `x-api-key`          |
/// | `azure`     | `Azure`     | Azure OpenAI deployments              | `api-key`            |
/// | `gemini`    | `Gemini`    | Generative Language `generateContent` | `x-goog-api-key`     |
/// | `cohere`    | `Cohere`    | v2 chat (`/v2/chat`)                  | Bearer               |
/// | `bedrock`   | `Bedrock`   | Converse / ConverseStream             | SigV4 (key settings) |
/// | `vertex`    | `Vertex`    | Vertex AI Gemini `generateContent`    | OAuth (service acct) |
///
/// Every one streams (`StreamingProvider`); Gemini, Cohere, Bedrock and Vertex also create
/// embeddings (`EmbeddingProvider`). Vertex obtains its access tokens itself
/// (`CredentialProvider`).

#include <bifrost/providers/anthropic.hpp>
#include <bifrost/providers/azure.hpp>
#include <bifrost/providers/bedrock.hpp>
#include <bifrost/providers/cohere.hpp>
#include <bifrost/providers/gemini.hpp>
#include <bifrost/providers/openai_compatible.hpp>
#include <bifrost/providers/vertex.hpp>

#include <string_view>
#include <utility>

namespace bifrost::providers {

/// Every native provider shipped, by name.
using NativeFamily = ProviderList<Anthropic, Azure, Gemini, Cohere, Bedrock, Vertex>;

/// Calls `f(P{})` with the shipped provider type named `name`, OpenAI-format ("openai", "groq",
/// ...) or native ("anthropic", "bedrock", ...), and returns true; false for an unknown name.
template <class F>
bool with_any_provider_type(std::string_view name, F&& f) {
    return OpenAIFamily::visit(name, f) || NativeFamily::visit(name, f);
}

}  // namespace bifrost::providers
