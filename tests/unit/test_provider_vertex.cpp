// providers::Vertex (partial): the signed JWT of a service account (checked with the matching
// public key), the token exchange request and answer, the cache, and the Vertex URL around the
// Gemini mapping.

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
