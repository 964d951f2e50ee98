#pragma once
/// \file
/// `providers::Azure`: Azure OpenAI. The body, the response, the errors and the stream are
/// OpenAI's; what differs is where a request goes and how the key travels:
/// `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={api_version}` (and
/// `.../embeddings?...` for embeddings) with the key in `api-key`.
///
/// The key's `azure_key_config` gives `endpoint` (the resource URL), `deployments` (model ->
/// deployment name; a model not listed is used as the deployment name) and `api_version`
/// (default `default_api_version`). `network_config.base_url`, when set, replaces the endpoint
/// (tests, gateways in front of Azure).

#include <bifrost/concepts.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/providers/openai.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace bifrost::providers {

/// Azure OpenAI Service. Stateless; the key goes in `api-key`.
struct Azure {
    static constexpr std::string_view name = "azure";
    static constexpr bool requires_key = true;
    /// Azure has no global endpoint: it comes from the key (or `network_config.base_url`).
    static constexpr std::string_view default_base_url = "";
    static constexpr std::string_view default_api_version = "2024-10-21";

    /// Decodes Azure's (OpenAI-format) event stream.
    using StreamDecoder = detail::OpenAIStreamDecoder;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const { build(ctx, out, false); }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        build(ctx, out, true);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const {
        detail::parse_openai_chat(in, out);
    }

    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        head(ctx.key, ctx.config, ctx.model, "/embeddings", out);
        write_embedding_request(out.body, ctx.request, RequestWriteOptions{ctx.model, true});
    }
    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        detail::parse_openai_other(in, out, [](std::string_view body, EmbeddingOutcome& o) {
            parse_embedding_response(body, o);
        });
    }

  private:
    /// Method, URL (`{endpoint}/openai/deployments/{deployment}{operation}?api-version=`) and
    /// headers of a request for `model`.
    static void head(const Key* key, const ProviderConfig& config, std::string_view model,
                     std::string_view operation, HttpRequest& out) {
        const auto* settings = detail::key_settings(key, "azure_key_config");
        std::string_view endpoint = detail::base_url(config, {});
        if (endpoint.empty()) {
            endpoint = detail::string_member(settings, "endpoint");
            while (!endpoint.empty() && endpoint.back() == '/')
                endpoint.remove_suffix(1);
        }
        if (endpoint.empty())
            throw std::invalid_argument(
                "azure: the key has no azure_key_config.endpoint and network_config.base_url is "
                "empty");
        std::string_view version = detail::string_member(settings, "api_version");
        if (version.empty()) version = default_api_version;

        out.method = HttpMethod::post;
        out.url.assign(endpoint)
            .append("/openai/deployments/")
            .append(detail::deployment_for(settings, model))
            .append(operation)
            .append("?api-version=")
            .append(version);
        out.headers.add("content-type", "application/json");
        if (key != nullptr && !key->value.empty()) out.headers.add("api-key", key->value.reveal());
        detail::apply_extra_headers(config, out);
        out.body.clear();
    }

    static void build(const BuildContext& ctx, HttpRequest& out, bool stream) {
        head(ctx.key, ctx.config, ctx.model, "/chat/completions", out);
        write_chat_request(out.body, ctx.request, RequestWriteOptions{ctx.model, true});
        if (stream) {
            auto body = boost::json::parse(out.body).as_object();
            body["stream"] = true;
            auto& options = body["stream_options"];
            if (!options.is_object()) options = boost::json::object{};
            if (!options.as_object().contains("include_usage"))
                options.as_object()["include_usage"] = true;
            out.body = boost::json::serialize(body);
        }
    }
};

static_assert(Provider<Azure>);
static_assert(StreamingProvider<Azure>);
static_assert(EmbeddingProvider<Azure>);

}  // namespace bifrost::providers
