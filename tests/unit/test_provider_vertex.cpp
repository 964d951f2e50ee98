// providers::Vertex: the signed JWT of a service account (checked with the matching public key),
// the token exchange request and answer, the cache, the CredentialProvider hooks the engine runs,
// the Vertex URL around the Gemini mapping, and :predict embeddings.

#include "bifrost_catch.hpp"
#include "provider_fixtures.hpp"

#include <bifrost/providers/vertex.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using bifrost::providers::Vertex;
namespace vx = bifrost::providers::detail::vertex;

namespace {

/// A fresh 2048-bit RSA key as PEM (PKCS#8), generated for the test.
std::string make_pem() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(2048), &EVP_PKEY_free);
    REQUIRE(key);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
            1);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string base64url_decode(std::string s) {
    for (char& c : s) {
        if (c == '-') c = '+';
        if (c == '_') c = '/';
    }
    while (s.size() % 4 != 0)
        s.push_back('=');
    std::string out(s.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(s.data()),
                                  static_cast<int>(s.size()));
    REQUIRE(n >= 0);
    std::size_t pad = 0;
    while (pad < 2 && s.size() > pad && s[s.size() - 1 - pad] == '=')
        ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

bool verify_rs256(const std::string& pem, std::string_view data, std::string_view sig) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                            sig.size(), reinterpret_cast<const unsigned char*>(data.data()),
                            data.size()) == 1;
}

std::chrono::system_clock::time_point at(long long s) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(s));
}

std::chrono::system_clock::time_point fixed_now() {
    return at(1'700'000'000);
}

}  // namespace

TEST_CASE("vertex: base64url has no padding and the URL-safe alphabet", "[providers][vertex]") {
    CHECK(vx::base64url("") == "");
    CHECK(vx::base64url("f") == "Zg");
    CHECK(vx::base64url("fo") == "Zm8");
    CHECK(vx::base64url("foo") == "Zm9v");
    CHECK(vx::base64url("\xfb\xff") == "-_8");
}

TEST_CASE("base64: RFC 4648's test vectors, standard alphabet with padding", "[detail]") {
    using bifrost::detail::base64_encode;
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foob") == "Zm9vYg==");
    CHECK(base64_encode("fooba") == "Zm9vYmE=");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode("\xfb\xff") == "+/8=");
    CHECK(base64_encode("user:p@ss") == "dXNlcjpwQHNz");
}

TEST_CASE("vertex: the service-account assertion is a JWT signed with RS256",
          "[providers][vertex]") {
    const std::string pem = make_pem();
    vx::ServiceAccount sa;
    sa.client_email = "bot@proj.iam.gserviceaccount.com";
    sa.private_key = pem;
    sa.private_key_id = "kid-1";
    const std::string jwt = vx::make_assertion(sa, at(1'700'000'000));
    const auto dot1 = jwt.find('.');
    const auto dot2 = jwt.rfind('.');
    REQUIRE(dot1 != std::string::npos);
    REQUIRE(dot2 != dot1);
    CHECK(test::json(base64url_decode(jwt.substr(0, dot1))) ==
          test::json(R"({"alg":"RS256","typ":"JWT","kid":"kid-1"})"));
    CHECK(test::json(base64url_decode(jwt.substr(dot1 + 1, dot2 - dot1 - 1))) ==
          test::json(R"({"iss":"bot@proj.iam.gserviceaccount.com",
                         "scope":"https://www.googleapis.com/auth/cloud-platform",
                         "aud":"https://oauth2.googleapis.com/token",
                         "iat":1700000000,"exp":1700003600})"));
    const std::string sig = base64url_decode(jwt.substr(dot2 + 1));
    CHECK(sig.size() == 256);
    CHECK(verify_rs256(pem, std::string_view(jwt).substr(0, dot2), sig));
    CHECK_FALSE(verify_rs256(pem, std::string_view(jwt).substr(0, dot2 - 1), sig));

    sa.private_key = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
    CHECK_THROWS_AS(vx::make_assertion(sa, at(0)), std::invalid_argument);
}

TEST_CASE("vertex: token exchange request and answers", "[providers][vertex]") {
    vx::ServiceAccount sa;
    sa.client_email = "bot@proj.iam.gserviceaccount.com";
    bifrost::HttpRequest req;
    vx::token_request(sa, "a.b.c", req);
    CHECK(req.url == "https://oauth2.googleapis.com/token");
    CHECK(req.headers.get("content-type") == "application/x-www-form-urlencoded");
    CHECK(req.body ==
          "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c");

    bifrost::HttpResponse ok;
    ok.status = 200;
    ok.body = R"({"access_token":"ya29.token","expires_in":3599,"token_type":"Bearer"})";
    bifrost::Error err;
    const auto token = vx::read_token(ok, at(100), err);
    REQUIRE(token);
    CHECK(token->access_token == "ya29.token");
    CHECK(token->expires_at == at(3699));

    bifrost::HttpResponse bad;
    bad.status = 400;
    bad.body = R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})";
    CHECK_FALSE(vx::read_token(bad, at(100), err));
    CHECK(err.status == 400);
    CHECK(err.type == "invalid_grant");
    CHECK(err.message == "vertex: token exchange failed: Invalid JWT Signature.");
}

TEST_CASE("vertex: requests use the cached token, the Vertex URL and the Gemini body",
          "[providers][vertex]") {
    const auto k =
        test::key("", "vertex_key_config", R"({"project_id": "my-proj", "region": "europe-west4",
        "auth_credentials": "{\"type\":\"service_account\",\"client_email\":\"bot@my-proj.iam.gserviceaccount.com\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\"}"})");
    Vertex v;
    v.clock = &fixed_now;
    const auto req = test::user_request("vertex/gemini-1.5-pro", "Hi");
    try {
        (void)test::build<Vertex>(req, "gemini-1.5-pro", &k, {}, false, v);
        FAIL("no token is cached yet");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.find("bot@my-proj.iam.gserviceaccount.com") != std::string::npos);
        CHECK(what.find("PRIVATE KEY") == std::string::npos);
    }

    v.tokens()->store("bot@my-proj.iam.gserviceaccount.com",
                      {"ya29.abc", fixed_now() + std::chrono::minutes(30)});
    const Vertex copy = v;  // copies share the cache
    const auto out = test::build<Vertex>(req, "gemini-1.5-pro", &k, {}, false, copy);
    CHECK(out.url ==
          "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/"
          "europe-west4/publishers/"
          "google/models/gemini-1.5-pro:generateContent");
    CHECK(out.headers.get("authorization") == "Bearer ya29.abc");
    CHECK(test::json(out.body) ==
          test::json(R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})"));
    const auto s = test::build<Vertex>(req, "gemini-1.5-pro", &k, {}, true, copy);
    CHECK(s.url.find(":streamGenerateContent?alt=sse") != std::string::npos);

    // A token within a minute of expiry is not used.
    v.tokens()->store("bot@my-proj.iam.gserviceaccount.com",
                      {"ya29.old", fixed_now() + std::chrono::seconds(30)});
    CHECK_THROWS_AS(test::build<Vertex>(req, "gemini-1.5-pro", &k, {}, false, v),
                    std::runtime_error);
}

namespace {

/// A key whose service account signs with `pem` and exchanges at `token_uri`.
bifrost::Key vertex_key(const std::string& pem, std::string_view token_uri) {
    boost::json::object sa{{"type", "service_account"},
                           {"client_email", "bot@my-proj.iam.gserviceaccount.com"},
                           {"private_key", pem},
                           {"private_key_id", "kid-7"},
                           {"token_uri", token_uri}};
    bifrost::Key k = test::key("");
    k.settings["vertex_key_config"] = boost::json::object{
        {"project_id", "my-proj"}, {"region", "us-central1"}, {"auth_credentials", sa}};
    return k;
}

}  // namespace

TEST_CASE("vertex: the credential hooks fetch, cache and refuse tokens", "[providers][vertex]") {
    static_assert(bifrost::CredentialProvider<Vertex>);
    static_assert(!bifrost::CredentialProvider<bifrost::providers::Gemini>);
    const std::string pem = make_pem();
    const auto k = vertex_key(pem, "http://oauth.test/token");
    Vertex v;
    v.clock = &fixed_now;
    CHECK(v.credential_needed(&k) == "bot@my-proj.iam.gserviceaccount.com");

    bifrost::HttpRequest req;
    v.build_credential_request(&k, req);
    CHECK(req.method == bifrost::HttpMethod::post);
    CHECK(req.url == "http://oauth.test/token");
    CHECK(req.headers.get("content-type") == "application/x-www-form-urlencoded");
    constexpr std::string_view form =
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
    REQUIRE(req.body.substr(0, form.size()) == form);
    const std::string jwt = req.body.substr(form.size());
    const auto dot2 = jwt.rfind('.');
    CHECK(verify_rs256(pem, std::string_view(jwt).substr(0, dot2),
                       base64url_decode(jwt.substr(dot2 + 1))));
    CHECK(req.body.find("PRIVATE") == std::string::npos);

    bifrost::HttpResponse refused;
    refused.status = 400;
    refused.body = R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})";
    bifrost::Error err;
    CHECK_FALSE(v.read_credential_response(&k, refused, err));
    CHECK(err.status == 401);
    CHECK(err.type == "invalid_grant");
    CHECK(err.provider == "vertex");
    CHECK(err.message ==
          "vertex: the token exchange for service account bot@my-proj.iam.gserviceaccount.com "
          "failed (HTTP 400): Invalid JWT Signature.");
    CHECK(err.message.find("BEGIN") == std::string::npos);

    bifrost::HttpResponse down;
    down.status = 503;
    down.body = "upstream connect error";
    CHECK_FALSE(v.read_credential_response(&k, down, err));
    CHECK(err.status == 502);
    CHECK(v.credential_needed(&k) == "bot@my-proj.iam.gserviceaccount.com");

    bifrost::HttpResponse ok;
    ok.status = 200;
    ok.body = R"({"access_token":"ya29.fresh","expires_in":3599,"token_type":"Bearer"})";
    REQUIRE(v.read_credential_response(&k, ok, err));
    const Vertex copy = v;
    CHECK(copy.credential_needed(&k).empty());  // cached, and copies share the cache
    const auto out = test::build<Vertex>(test::user_request("vertex/gemini-2.0-flash", "Hi"),
                                         "gemini-2.0-flash", &k, {}, false, copy);
    CHECK(out.headers.get("authorization") == "Bearer ya29.fresh");

    // A key without the settings is a clear configuration error.
    const auto bare = test::key("x");
    CHECK_THROWS_AS(v.credential_needed(&bare), std::invalid_argument);
}

TEST_CASE("vertex: embeddings go to :predict and back", "[providers][vertex][embedding]") {
    const auto k = vertex_key("unused", "http://oauth.test/token");
    Vertex v;
    v.clock = &fixed_now;
    v.tokens()->store("bot@my-proj.iam.gserviceaccount.com",
                      {"ya29.abc", fixed_now() + std::chrono::minutes(30)});
    auto r = test::embedding_request("vertex/text-embedding-005", {"first", "second"});
    r.dimensions = 128;
    r.extra["task_type"] = "RETRIEVAL_QUERY";
    bifrost::ProviderConfig cfg;
    cfg.network_config.extra_headers = {{"x-goog-user-project", "billing-proj"}};
    const auto out = test::build_embedding<Vertex>(r, "text-embedding-005", &k, cfg, v);
    CHECK(out.method == bifrost::HttpMethod::post);
    CHECK(out.url ==
          "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/"
          "us-central1/publishers/google/models/text-embedding-005:predict");
    CHECK(out.headers.get("authorization") == "Bearer ya29.abc");
    CHECK(out.headers.get("x-goog-user-project") == "billing-proj");
    CHECK(test::json(out.body) == test::json(R"({"instances": [
        {"content": "first", "task_type": "RETRIEVAL_QUERY"},
        {"content": "second", "task_type": "RETRIEVAL_QUERY"}],
        "parameters": {"outputDimensionality": 128}})"));

    const auto res = test::parse_embedding<Vertex>(200, R"({"predictions": [
        {"embeddings": {"values": [0.5, -0.25], "statistics": {"token_count": 2, "truncated": false}}},
        {"embeddings": {"values": [1, 0], "statistics": {"token_count": 3, "truncated": false}}}],
        "metadata": {"billableCharacterCount": 11}})",
                                                   {}, v);
    REQUIRE(res.ok());
    REQUIRE(res.response.data.size() == 2);
    CHECK(res.response.data[0].embedding == std::vector<float>{0.5f, -0.25f});
    CHECK(res.response.data[1].index == 1);
    REQUIRE(res.response.usage);
    CHECK(res.response.usage->prompt_tokens == 5);

    const auto err = test::parse_embedding<Vertex>(
        404,
        R"({"error": {"code": 404, "message": "Publisher Model `text-embedding-999` not found.", "status": "NOT_FOUND"}})",
        {}, v);
    CHECK(err.error.status == 404);
    CHECK(err.error.type == "NOT_FOUND");
    CHECK(err.error.message == "Publisher Model `text-embedding-999` not found.");
    CHECK(test::parse_embedding<Vertex>(200, R"({"predictions": [{}]})", {}, v).error.status ==
          502);
}
