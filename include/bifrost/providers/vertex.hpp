#pragma once
/// \file
/// `providers::Vertex`: Gemini models on Google Cloud Vertex AI. The body, response, errors and
/// stream are Gemini's (`providers/gemini.hpp`); the URL is
/// `https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`
/// (`aiplatform.googleapis.com` for region `global`; `network_config.base_url` replaces the
/// origin) and the key an OAuth access token sent as `Authorization: Bearer`.
///
/// The key's `vertex_key_config` gives `project_id`, `region` (default us-central1) and
/// `auth_credentials` (the service-account JSON, as an object or a string). The provider is a
/// `CredentialProvider`: when no access token of the account is cached (or it expires within a
/// minute), the worker exchanges a signed JWT (`make_assertion`, RS256 with the account's
/// private key) at the account's `token_uri` (`token_request`, `read_token`) over the
/// provider's transport before the request; concurrent requests share one exchange, and the
/// token is cached (`TokenCache`, shared by copies of the provider) until a minute before it
/// expires. A refused exchange answers 401 (5xx or a bad answer: 502) with a message naming the
/// service account, never its key.
///
/// Embeddings go to `:predict` of the text-embedding models (`text-embedding-005`,
/// `gemini-embedding-001`, ...): one instance per input string (`content`, plus the client's
/// `task_type` and `title`), `dimensions` as `parameters.outputDimensionality`; vectors come
/// back as floats, usage is the sum of the predictions' `statistics.token_count`.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/base64.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/providers/gemini.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bifrost::providers {

namespace detail::vertex {

/// Base64url without padding (JWT's encoding).
inline std::string base64url(std::string_view bytes) {
    return bifrost::detail::base64_encode(bytes, bifrost::detail::Base64::url);
}

/// The fields of a service-account JSON the token exchange needs.
struct ServiceAccount {
    std::string client_email;
    std::string private_key;  ///< PEM
    std::string private_key_id;
    std::string token_uri = "https://oauth2.googleapis.com/token";
};

/// Reads `auth_credentials` (an object, or a string holding the JSON). Throws
/// `std::invalid_argument` naming what is missing (never quoting the key).
inline ServiceAccount read_service_account(const json::value& credentials) {
    json::value doc = credentials;
    if (credentials.is_string()) {
        boost::system::error_code ec;
        doc = json::parse(credentials.get_string(), ec);
        if (ec) throw std::invalid_argument("vertex: auth_credentials is not valid JSON");
    }
    const auto* o = doc.if_object();
    ServiceAccount sa;
    sa.client_email.assign(string_member(o, "client_email"));
    sa.private_key.assign(string_member(o, "private_key"));
    sa.private_key_id.assign(string_member(o, "private_key_id"));
    if (const auto uri = string_member(o, "token_uri"); !uri.empty()) sa.token_uri.assign(uri);
    if (sa.client_email.empty() || sa.private_key.empty())
        throw std::invalid_argument(
            "vertex: auth_credentials needs client_email and private_key (a service-account key)");
    return sa;
}

/// Signs `data` with RS256 (RSA PKCS#1 v1.5, SHA-256) using a PEM private key. Throws
/// `std::invalid_argument` when the key cannot be read or used.
inline std::string rs256(std::string_view pem, std::string_view data) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    if (!bio) throw std::invalid_argument("vertex: cannot read the private key");
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
    if (!key) throw std::invalid_argument("vertex: the private key is not a PEM private key");
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
        EVP_DigestSignUpdate(ctx.get(), data.data(), data.size()) != 1 ||
        EVP_DigestSignFinal(ctx.get(), nullptr, &len) != 1)
        throw std::invalid_argument("vertex: cannot sign with the private key");
    std::string sig(len, '\0');
    if (EVP_DigestSignFinal(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len) != 1)
        throw std::invalid_argument("vertex: cannot sign with the private key");
    sig.resize(len);
    return sig;
}

/// The signed JWT a service account exchanges for an access token (scope cloud-platform,
/// audience the token URI, valid one hour from `now`).
inline std::string make_assertion(const ServiceAccount& sa,
                                  std::chrono::system_clock::time_point now) {
    const auto iat =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    json::object header{{"alg", "RS256"}, {"typ", "JWT"}};
    if (!sa.private_key_id.empty()) header["kid"] = sa.private_key_id;
    const json::object claims{{"iss", sa.client_email},
                              {"scope", "https://www.googleapis.com/auth/cloud-platform"},
                              {"aud", sa.token_uri},
                              {"iat", iat},
                              {"exp", iat + 3600}};
    std::string jwt = base64url(json::serialize(header));
    jwt.push_back('.');
    jwt.append(base64url(json::serialize(claims)));
    const std::string sig = rs256(sa.private_key, jwt);
    jwt.push_back('.');
    jwt.append(base64url(sig));
    return jwt;
}

/// The token-exchange request (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
inline void token_request(const ServiceAccount& sa, std::string_view assertion, HttpRequest& out) {
    out.clear();
    out.method = HttpMethod::post;
    out.url = sa.token_uri;
    out.headers.add("content-type", "application/x-www-form-urlencoded");
    out.body.assign("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=");
    out.body.append(assertion);  // base64url and '.' need no form encoding
}

/// An access token and when it stops being valid.
struct Token {
    std::string access_token;
    std::chrono::system_clock::time_point expires_at;
};

/// Reads the token endpoint's answer (`{"access_token","expires_in","token_type"}`); on failure
/// writes `error` (keeping the status and Google's `error_description`) and returns nullopt.
inline std::optional<Token> read_token(const HttpResponse& in,
                                       std::chrono::system_clock::time_point now, Error& error) {
    boost::system::error_code ec;
    const auto doc = json::parse(in.body, ec);
    const auto* o = ec ? nullptr : doc.if_object();
    if (in.status >= 200 && in.status < 300 && !string_member(o, "access_token").empty()) {
        return Token{std::string(string_member(o, "access_token")),
                     now + std::chrono::seconds(int_member(o, "expires_in", 3600))};
    }
    const auto description = string_member(o, "error_description");
    const auto code = string_member(o, "error");
    error.assign(in.status >= 400 ? in.status : 502, code.empty() ? error_type::upstream : code,
                 std::string("vertex: token exchange failed")
                     .append(description.empty() ? "" : ": ")
                     .append(description));
    return std::nullopt;
}

/// Access tokens by service account, shared by copies of the provider. Thread-safe.
class TokenCache {
  public:
    void store(std::string_view client_email, Token token) {
        std::lock_guard l(m_);
        tokens_[std::string(client_email)] = std::move(token);
    }
    /// The token of `client_email` if it is valid for at least another minute.
    std::optional<std::string> get(std::string_view client_email,
                                   std::chrono::system_clock::time_point now) const {
        std::lock_guard l(m_);
        const auto it = tokens_.find(std::string(client_email));
        if (it == tokens_.end() || it->second.expires_at - std::chrono::minutes(1) <= now)
            return std::nullopt;
        return it->second.access_token;
    }

  private:
    mutable std::mutex m_;
    std::map<std::string, Token, std::less<>> tokens_;
};

/// The service account of a key's `vertex_key_config`, with the project and region. Throws
/// `std::invalid_argument` naming what is missing.
struct KeyAccount {
    std::string_view project;
    std::string_view region;
    ServiceAccount account;
};

inline KeyAccount key_account(const Key* key) {
    const auto* settings = key_settings(key, "vertex_key_config");
    const auto* creds = settings != nullptr ? settings->if_contains("auth_credentials") : nullptr;
    KeyAccount k{string_member(settings, "project_id"), string_member(settings, "region"), {}};
    if (k.project.empty() || creds == nullptr)
        throw std::invalid_argument(
            "vertex: the key needs vertex_key_config.project_id and auth_credentials");
    if (k.region.empty()) k.region = "us-central1";
    k.account = read_service_account(*creds);
    return k;
}

/// `{origin}/v1/projects/{project}/locations/{region}/publishers/google/models/{model}{method}`.
inline std::string model_url(const KeyAccount& k, const ProviderConfig& config,
                             std::string_view model, std::string_view method) {
    std::string url(base_url(config, {}));
    if (url.empty()) {
        url = k.region == "global"
                  ? "https://aiplatform.googleapis.com"
                  : std::string("https://").append(k.region).append("-aiplatform.googleapis.com");
    }
    url.append("/v1/projects/")
        .append(k.project)
        .append("/locations/")
        .append(k.region)
        .append("/publishers/google/models/")
        .append(model)
        .append(method);
    return url;
}

/// The `:predict` body of an embeddings request.
inline std::string embedding_body(const EmbeddingRequest& r) {
    const auto& texts = embedding_texts(r, "vertex");
    const auto task = extra_string(r.extra, "task_type", "taskType");
    const auto title = extra_string(r.extra, "title");
    json::array instances;
    instances.reserve(texts.size());
    for (const auto& t : texts) {
        json::object i{{"content", t}};
        if (!task.empty()) i["task_type"] = task;
        if (!title.empty()) i["title"] = title;
        instances.push_back(std::move(i));
    }
    json::object body{{"instances", std::move(instances)}};
    if (r.dimensions) body["parameters"] = json::object{{"outputDimensionality", *r.dimensions}};
    return json::serialize(body);
}

/// Reads a `:predict` answer of a text-embedding model
/// (`{"predictions":[{"embeddings":{"values":[...],"statistics":{"token_count":n}}}]}`).
inline void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) {
    if (in.status < 200 || in.status >= 300) {
        gemini::read_error(in.status, in.body, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Vertex predict response")) return;
    const auto* predictions = array_member(doc.if_object(), "predictions");
    if (predictions == nullptr) {
        bad_embedding_response(out, "expected \"predictions\"");
        return;
    }
    auto& data = fresh_embeddings(out, predictions->size());
    std::int64_t tokens = 0;
    bool counted = false;
    for (std::size_t i = 0; i < predictions->size(); ++i) {
        const auto* e = object_member((*predictions)[i].if_object(), "embeddings");
        if (!read_vector(e != nullptr ? e->if_contains("values") : nullptr, data[i].embedding)) {
            bad_embedding_response(out, "a prediction has no embeddings.values array of numbers");
            return;
        }
        if (const auto* st = object_member(e, "statistics"); st && st->contains("token_count")) {
            tokens += int_member(st, "token_count");
            counted = true;
        }
    }
    if (counted) set_embedding_usage(out, tokens);
}

}  // namespace detail::vertex

/// Gemini (chat, streaming, embeddings) on Vertex AI, with the service-account token exchange
/// run by the engine (a `CredentialProvider`; see the file comment). Copies share the token
/// cache; thread-safe.
struct Vertex {
    static constexpr std::string_view name = "vertex";
    static constexpr bool requires_key = true;

    using StreamDecoder = detail::gemini::Decoder;
    using TokenCache = detail::vertex::TokenCache;

    /// The access-token cache (shared by copies of this provider). Tokens the application
    /// stores here are used as if the engine had fetched them.
    [[nodiscard]] const std::shared_ptr<TokenCache>& tokens() const noexcept { return tokens_; }

    /// The clock of the JWT and of token expiry (replaceable for tests).
    std::chrono::system_clock::time_point (*clock)() = &std::chrono::system_clock::now;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const { build(ctx, out, false); }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        build(ctx, out, true);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const { detail::gemini::parse(in, out); }

    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        const auto k = detail::vertex::key_account(ctx.key);
        const std::string body = detail::vertex::embedding_body(ctx.request);
        head(k, detail::vertex::model_url(k, ctx.config, ctx.model, ":predict"), ctx.config, out);
        out.body = body;
    }
    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        detail::vertex::parse_embedding(in, out);
    }

    // ---- CredentialProvider: the service-account token exchange ----

    /// Empty when a token of the key's service account is cached for at least another minute;
    /// else the account's email (requests of one account share an exchange).
    [[nodiscard]] std::string credential_needed(const Key* key) const {
        auto k = detail::vertex::key_account(key);
        if (tokens_->get(k.account.client_email, clock())) return {};
        return std::move(k.account.client_email);
    }

    /// The token request: a JWT signed with the account's key, posted to its `token_uri`.
    void build_credential_request(const Key* key, HttpRequest& out) const {
        const auto k = detail::vertex::key_account(key);
        detail::vertex::token_request(k.account, detail::vertex::make_assertion(k.account, clock()),
                                      out);
    }

    /// Caches the token of the answer; or writes `error`: 401 when the token endpoint refused
    /// (4xx), 502 otherwise, naming the account and keeping Google's `error` as the type.
    bool read_credential_response(const Key* key, const HttpResponse& in, Error& error) const {
        const auto k = detail::vertex::key_account(key);
        auto token = detail::vertex::read_token(in, clock(), error);
        if (token) {
            tokens_->store(k.account.client_email, std::move(*token));
            return true;
        }
        // read_token's message is "vertex: token exchange failed[: <error_description>]".
        constexpr std::string_view prefix = "vertex: token exchange failed";
        const std::string description =
            error.message.size() > prefix.size() ? error.message.substr(prefix.size()) : "";
        error.status = in.status >= 400 && in.status < 500 ? 401 : 502;
        error.message.assign("vertex: the token exchange for service account ")
            .append(k.account.client_email)
            .append(" failed (HTTP ")
            .append(std::to_string(in.status))
            .append(")")
            .append(description);
        error.provider.assign(name);
        return false;
    }

  private:
    /// The method, bearer token and headers of a Vertex request; throws when no valid token is
    /// cached (the engine fetches one first; see `CredentialProvider`).
    void head(const detail::vertex::KeyAccount& k, std::string url, const ProviderConfig& config,
              HttpRequest& out) const {
        const auto token = tokens_->get(k.account.client_email, clock());
        if (!token)
            throw std::runtime_error("vertex: no valid access token for service account " +
                                     k.account.client_email);
        out.method = HttpMethod::post;
        out.url = std::move(url);
        out.headers.add("content-type", "application/json");
        out.headers.add_joined("authorization", "Bearer ", *token);
        detail::apply_extra_headers(config, out);
    }

    void build(const BuildContext& ctx, HttpRequest& out, bool stream) const {
        const auto k = detail::vertex::key_account(ctx.key);
        head(k,
             detail::vertex::model_url(
                 k, ctx.config, ctx.model,
                 stream ? ":streamGenerateContent?alt=sse" : ":generateContent"),
             ctx.config, out);
        out.body = boost::json::serialize(detail::gemini::build_body(ctx));
    }

    std::shared_ptr<TokenCache> tokens_ = std::make_shared<TokenCache>();
};

static_assert(Provider<Vertex>);
static_assert(StreamingProvider<Vertex>);
static_assert(EmbeddingProvider<Vertex>);
static_assert(CredentialProvider<Vertex>);

}  // namespace bifrost::providers
