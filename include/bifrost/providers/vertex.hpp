#pragma once
/// \file
/// `providers::Vertex` (partial): Gemini models on Google Cloud Vertex AI. The body, response,
/// errors and stream are Gemini's (`providers/gemini.hpp`); the URL is
/// `https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`
/// (`aiplatform.googleapis.com` for region `global`) and the key an OAuth access token sent as
/// `Authorization: Bearer`.
///
/// The key's `vertex_key_config` gives `project_id`, `region` and `auth_credentials` (the
/// service-account JSON, as an object or a string). An access token comes from exchanging a
/// signed JWT (`make_assertion`, RS256 with the account's private key) at the account's
/// `token_uri` (`token_request`, `read_token`). The engine has no step yet that runs that
/// exchange before a request, so tokens are put in the provider's `TokenCache` by the
/// application (`Vertex::tokens()->store(...)`); `build_chat` uses a cached token until a minute
/// before it expires and otherwise fails with a message naming the service account (never its
/// key).

#include <bifrost/concepts.hpp>
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
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                           (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                           static_cast<unsigned char>(bytes[i + 2]);
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(alphabet[(v >> 6) & 63]);
        out.push_back(alphabet[v & 63]);
    }
    if (i + 1 == bytes.size()) {
        const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
    } else if (i + 2 == bytes.size()) {
        const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                           (static_cast<unsigned char>(bytes[i + 1]) << 8);
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(alphabet[(v >> 6) & 63]);
    }
    return out;
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

}  // namespace detail::vertex

/// Gemini on Vertex AI (partial: tokens are supplied through `tokens()`, see the file comment).
struct Vertex {
    static constexpr std::string_view name = "vertex";
    static constexpr bool requires_key = true;

    using StreamDecoder = detail::gemini::Decoder;
    using TokenCache = detail::vertex::TokenCache;

    /// The access-token cache (shared by copies of this provider).
    [[nodiscard]] const std::shared_ptr<TokenCache>& tokens() const noexcept { return tokens_; }

    /// The signing clock (replaceable for tests).
    std::chrono::system_clock::time_point (*clock)() = &std::chrono::system_clock::now;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const { build(ctx, out, false); }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        build(ctx, out, true);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const { detail::gemini::parse(in, out); }

  private:
    void build(const BuildContext& ctx, HttpRequest& out, bool stream) const {
        const auto* settings = detail::key_settings(ctx.key, "vertex_key_config");
        const auto project = detail::string_member(settings, "project_id");
        std::string_view region = detail::string_member(settings, "region");
        if (region.empty()) region = "us-central1";
        const auto* creds =
            settings != nullptr ? settings->if_contains("auth_credentials") : nullptr;
        if (project.empty() || creds == nullptr)
            throw std::invalid_argument(
                "vertex: the key needs vertex_key_config.project_id and auth_credentials");
        const auto sa = detail::vertex::read_service_account(*creds);
        const auto token = tokens_->get(sa.client_email, clock());
        if (!token)
            throw std::runtime_error("vertex: no valid access token for service account " +
                                     sa.client_email);

        std::string base(detail::base_url(ctx.config, {}));
        if (base.empty()) {
            base = region == "global"
                       ? "https://aiplatform.googleapis.com"
                       : "https://" + std::string(region) + "-aiplatform.googleapis.com";
        }
        out.method = HttpMethod::post;
        out.url.assign(base)
            .append("/v1/projects/")
            .append(project)
            .append("/locations/")
            .append(region)
            .append("/publishers/google/models/")
            .append(ctx.model)
            .append(stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
        out.headers.add("content-type", "application/json");
        out.headers.add_joined("authorization", "Bearer ", *token);
        detail::apply_extra_headers(ctx.config, out);
        out.body = boost::json::serialize(detail::gemini::build_body(ctx));
    }

    std::shared_ptr<TokenCache> tokens_ = std::make_shared<TokenCache>();
};

static_assert(Provider<Vertex>);
static_assert(StreamingProvider<Vertex>);

}  // namespace bifrost::providers
