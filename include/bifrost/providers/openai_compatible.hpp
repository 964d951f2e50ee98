#pragma once
/// \file
/// The OpenAI-compatible providers: services that speak OpenAI's chat-completions API at their
/// own URL. Each is a small type (`providers::Groq`, `providers::Ollama`, ...) with its public
/// default base URL, its chat path and whether it needs a key; `network_config.base_url`
/// overrides the default (self-hosted servers, regional endpoints, gateways in front).
/// `with_provider_type(name, f)` maps a configuration name ("groq") to its type.
///
/// | name       | default base URL                      | path                  | key      |
/// |------------|---------------------------------------|-----------------------|----------|
/// | openai     | https://api.openai.com                | /v1/chat/completions  | Bearer   |
/// | groq       | https://api.groq.com/openai           | /v1/chat/completions  | Bearer   |
/// | mistral    | https://api.mistral.ai                | /v1/chat/completions  | Bearer   |
/// | ollama     | http://localhost:11434                | /v1/chat/completions  | none     |
/// | vllm       | http://localhost:8000                 | /v1/chat/completions  | none     |
/// | sglang     | http://localhost:30000                | /v1/chat/completions  | none     |
/// | parasail   | https://api.parasail.io               | /v1/chat/completions  | Bearer   |
/// | openrouter | https://openrouter.ai/api             | /v1/chat/completions  | Bearer   |
/// | xai        | https://api.x.ai                      | /v1/chat/completions  | Bearer   |
/// | together   | https://api.together.xyz              | /v1/chat/completions  | Bearer   |
/// | fireworks  | https://api.fireworks.ai/inference    | /v1/chat/completions  | Bearer   |
/// | cerebras   | https://api.cerebras.ai               | /v1/chat/completions  | Bearer   |
/// | perplexity | https://api.perplexity.ai             | /chat/completions     | Bearer   |
/// | deepseek   | https://api.deepseek.com              | /chat/completions     | Bearer   |
///
/// Bifrost's configuration calls SGLang `sgl`; `with_provider_type` accepts both names.
///
/// Keyless providers (self-hosted servers) send no `Authorization` header; one their deployment
/// needs can go in `network_config.extra_headers`.

#include <bifrost/concepts.hpp>
#include <bifrost/providers/openai.hpp>

#include <array>
#include <string_view>
#include <utility>

namespace bifrost::providers {

/// Any OpenAI-format service, its default URL and chat path chosen at run time. Serving many
/// services through this one type instantiates the engine once instead of once per service
/// (what a configuration-driven server wants: build time and code size). It always sends the
/// selected key when it is non-empty; a keyless service is given one empty key.
/// `OpenAICompatible<Traits>` is this with compile-time settings.
struct OpenAIFormat {
    static constexpr bool requires_key = true;
    static constexpr bool chat_wire_is_unified = true;  // parse_chat reads OpenAI's JSON as is
    std::string_view default_base_url = OpenAI::default_base_url;
    std::string_view chat_path = OpenAI::chat_path;

    /// The settings of the shipped type `P` (e.g. `OpenAIFormat::of<Groq>()`).
    template <class P>
    static constexpr OpenAIFormat of() noexcept {
        return {P::default_base_url, P::chat_path};
    }

    void build_chat(const BuildContext& ctx, HttpRequest& out) const {
        detail::build_openai_chat(ctx, out, default_base_url, chat_path);
    }

    void parse_chat(const HttpResponse& in, Outcome& out) const {
        detail::parse_openai_chat(in, out);
    }

    /// Embeddings, text completions and model listing at the sibling paths of `chat_path`
    /// (`/v1/embeddings`, `/v1/completions`, `/v1/models`), as `OpenAI` does.
    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        detail::build_openai_embedding(ctx, out, default_base_url, chat_path);
    }
    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        OpenAI{}.parse_embedding(in, out);
    }
    void build_text_completion(const RequestContext<TextCompletionRequest>& ctx,
                               HttpRequest& out) const {
        detail::build_openai_text_completion(ctx, out, default_base_url, chat_path);
    }
    void parse_text_completion(const HttpResponse& in, TextCompletionOutcome& out) const {
        OpenAI{}.parse_text_completion(in, out);
    }
    void build_list_models(const RequestContext<ListModelsRequest>& ctx, HttpRequest& out) const {
        detail::build_openai_list_models(ctx, out, default_base_url, chat_path);
    }
    void parse_list_models(const HttpResponse& in, ModelListOutcome& out) const {
        OpenAI{}.parse_list_models(in, out);
    }

    using StreamDecoder = detail::OpenAIStreamDecoder;

    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        detail::build_openai_chat_stream(ctx, out, default_base_url, chat_path);
    }
};

/// Names a compatible service: `Traits` has `name`, `default_base_url`, `chat_path` and
/// `requires_key`.
template <class Traits>
struct OpenAICompatible : OpenAIFormat {
    static constexpr std::string_view name = Traits::name;
    static constexpr bool requires_key = Traits::requires_key;
    static constexpr std::string_view default_base_url = Traits::default_base_url;
    static constexpr std::string_view chat_path = Traits::chat_path;

    OpenAICompatible() noexcept : OpenAIFormat{Traits::default_base_url, Traits::chat_path} {}
};

namespace traits {

#define BIFROST_OPENAI_COMPATIBLE(Type, Name, BaseUrl, Path, RequiresKey) \
    struct Type {                                                         \
        static constexpr std::string_view name = Name;                    \
        static constexpr std::string_view default_base_url = BaseUrl;     \
        static constexpr std::string_view chat_path = Path;               \
        static constexpr bool requires_key = RequiresKey;                 \
    }

BIFROST_OPENAI_COMPATIBLE(Groq, "groq", "https://api.groq.com/openai", "/v1/chat/completions",
                          true);
BIFROST_OPENAI_COMPATIBLE(Mistral, "mistral", "https://api.mistral.ai", "/v1/chat/completions",
                          true);
BIFROST_OPENAI_COMPATIBLE(Ollama, "ollama", "http://localhost:11434", "/v1/chat/completions",
                          false);
BIFROST_OPENAI_COMPATIBLE(VLLM, "vllm", "http://localhost:8000", "/v1/chat/completions", false);
BIFROST_OPENAI_COMPATIBLE(SGLang, "sglang", "http://localhost:30000", "/v1/chat/completions",
                          false);
BIFROST_OPENAI_COMPATIBLE(Parasail, "parasail", "https://api.parasail.io", "/v1/chat/completions",
                          true);
BIFROST_OPENAI_COMPATIBLE(OpenRouter, "openrouter", "https://openrouter.ai/api",
                          "/v1/chat/completions", true);
BIFROST_OPENAI_COMPATIBLE(XAI, "xai", "https://api.x.ai", "/v1/chat/completions", true);
BIFROST_OPENAI_COMPATIBLE(Together, "together", "https://api.together.xyz", "/v1/chat/completions",
                          true);
BIFROST_OPENAI_COMPATIBLE(Fireworks, "fireworks", "https://api.fireworks.ai/inference",
                          "/v1/chat/completions", true);
BIFROST_OPENAI_COMPATIBLE(Cerebras, "cerebras", "https://api.cerebras.ai", "/v1/chat/completions",
                          true);
BIFROST_OPENAI_COMPATIBLE(Perplexity, "perplexity", "https://api.perplexity.ai",
                          "/chat/completions", true);
BIFROST_OPENAI_COMPATIBLE(DeepSeek, "deepseek", "https://api.deepseek.com", "/chat/completions",
                          true);

#undef BIFROST_OPENAI_COMPATIBLE

}  // namespace traits

using Groq = OpenAICompatible<traits::Groq>;
using Mistral = OpenAICompatible<traits::Mistral>;
using Ollama = OpenAICompatible<traits::Ollama>;
using VLLM = OpenAICompatible<traits::VLLM>;
using SGLang = OpenAICompatible<traits::SGLang>;
using Parasail = OpenAICompatible<traits::Parasail>;
using OpenRouter = OpenAICompatible<traits::OpenRouter>;
using XAI = OpenAICompatible<traits::XAI>;
using Together = OpenAICompatible<traits::Together>;
using Fireworks = OpenAICompatible<traits::Fireworks>;
using Cerebras = OpenAICompatible<traits::Cerebras>;
using Perplexity = OpenAICompatible<traits::Perplexity>;
using DeepSeek = OpenAICompatible<traits::DeepSeek>;

static_assert(StreamingProvider<Groq> && StreamingProvider<Mistral> && StreamingProvider<Ollama> &&
              StreamingProvider<VLLM> && StreamingProvider<SGLang> && StreamingProvider<Parasail> &&
              StreamingProvider<OpenRouter> && StreamingProvider<XAI> &&
              StreamingProvider<Together> && StreamingProvider<Fireworks> &&
              StreamingProvider<Cerebras> && StreamingProvider<Perplexity> &&
              StreamingProvider<DeepSeek>);
static_assert(EmbeddingProvider<Groq> && TextCompletionProvider<Ollama> &&
              ModelListingProvider<Perplexity>);
static_assert(StreamingProvider<OpenAIFormat> && EmbeddingProvider<OpenAIFormat> &&
              TextCompletionProvider<OpenAIFormat> && ModelListingProvider<OpenAIFormat>);

/// A list of provider types, searchable by name.
template <class... Ps>
struct ProviderList {
    static constexpr std::array<std::string_view, sizeof...(Ps)> names{Ps::name...};

    /// Calls `f(P{})` for the type whose `name` equals `name` and returns true; false when no
    /// type has that name.
    template <class F>
    static bool visit(std::string_view name, F&& f) {
        return ((Ps::name == name ? (f(Ps{}), true) : false) || ...);
    }
};

/// Every OpenAI-format provider shipped, by name.
using OpenAIFamily = ProviderList<OpenAI, Groq, Mistral, Ollama, VLLM, SGLang, Parasail, OpenRouter,
                                  XAI, Together, Fireworks, Cerebras, Perplexity, DeepSeek>;

/// Calls `f(P{})` with the shipped provider type named `name` ("openai", "groq", "ollama", ...;
/// also Bifrost's "sgl" for SGLang) and returns true, or returns false for an unknown name. For
/// configuration loaders: `with_provider_type(name, [&](auto p) {
/// gw.add_provider<decltype(p)>(name, cfg); })`.
template <class F>
bool with_provider_type(std::string_view name, F&& f) {
    if (name == "sgl") name = SGLang::name;
    return OpenAIFamily::visit(name, std::forward<F>(f));
}

}  // namespace bifrost::providers
