// AWS Signature Version 4 against vectors of AWS's published SigV4 test suite (credentials
// AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1, service "service",
// 20150830T123600Z, host example.amazonaws.com).

#include "bifrost_catch.hpp"

#include <bifrost/providers/detail/sigv4.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace sigv4 = bifrost::providers::detail::sigv4;

namespace {

constexpr const char* date = "20150830T123600Z";
const sigv4::Credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", {}};
constexpr const char* empty_hash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

using HeaderList = std::vector<std::pair<std::string, std::string>>;

HeaderList suite_headers(HeaderList extra = {}) {
    HeaderList h{{"Host", "example.amazonaws.com"}, {"X-Amz-Date", date}};
    for (auto& e : extra)
        h.push_back(std::move(e));
    return h;
}

std::string authz(const char* signed_headers, const char* signature) {
    return std::string(
               "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
               "SignedHeaders=") +
           signed_headers + ", Signature=" + signature;
}

sigv4::Signature sign(const char* method, const char* path, const char* query,
                      const HeaderList& headers, const char* body = "",
                      const sigv4::Credentials& c = creds) {
    return sigv4::sign(method, path, query, headers, body, c, "us-east-1", "service", date);
}

}  // namespace

TEST_CASE("sigv4: get-vanilla", "[sigv4]") {
    const auto s = sign("GET", "/", "", suite_headers());
    CHECK(s.canonical_request ==
          std::string("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                      "host;x-amz-date\n") +
              empty_hash);
    CHECK(s.string_to_sign ==
          "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
          "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    CHECK(s.authorization ==
          authz("host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST_CASE("sigv4: post-vanilla and post-vanilla-query", "[sigv4]") {
    const auto s = sign("POST", "/", "", suite_headers());
    CHECK(s.string_to_sign ==
          "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
          "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87");
    CHECK(s.authorization ==
          authz("host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));

    const auto q = sign("POST", "/", "Param1=value1", suite_headers());
    CHECK(q.authorization ==
          authz("host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"));
}

TEST_CASE("sigv4: get-vanilla-query-order-key-case sorts parameters", "[sigv4]") {
    const auto s = sign("GET", "/", "Param2=value2&Param1=value1", suite_headers());
    CHECK(s.canonical_request ==
          std::string("GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
                      "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n") +
              empty_hash);
    CHECK(s.authorization ==
          authz("host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST_CASE("sigv4: get-vanilla-utf8-query encodes UTF-8 names", "[sigv4]") {
    const auto s = sign("GET", "/", "\xE1\x88\xB4=bar", suite_headers());
    CHECK(s.canonical_request.find("\n%E1%88%B4=bar\n") != std::string::npos);
    CHECK(s.authorization ==
          authz("host;x-amz-date",
                "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"));
}

TEST_CASE("sigv4: get-space encodes the path", "[sigv4]") {
    const auto s = sign("GET", "/example space/", "", suite_headers());
    CHECK(s.canonical_request.substr(0, 22) == "GET\n/example%20space/\n");
    CHECK(s.authorization ==
          authz("host;x-amz-date",
                "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"));
}

TEST_CASE("sigv4: post-x-www-form-urlencoded and -parameters sign the body and content-type",
          "[sigv4]") {
    const auto s = sign("POST", "/", "",
                        suite_headers({{"Content-Type", "application/x-www-form-urlencoded"}}),
                        "Param1=value1");
    CHECK(s.canonical_request ==
          "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
          "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
          "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    CHECK(s.string_to_sign ==
          "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
          "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281");
    CHECK(s.authorization ==
          authz("content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));

    const auto p =
        sign("POST", "/", "",
             suite_headers({{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}}),
             "Param1=value1");
    CHECK(p.authorization ==
          authz("content-type;host;x-amz-date",
                "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"));
}

TEST_CASE("sigv4: post-header-key-sort and post-header-value-case", "[sigv4]") {
    const auto sorted =
        sign("POST", "/", "",
             {{"My-Header1", "value1"}, {"X-Amz-Date", date}, {"Host", "example.amazonaws.com"}});
    CHECK(sorted.signed_headers == "host;my-header1;x-amz-date");
    CHECK(sorted.authorization ==
          authz("host;my-header1;x-amz-date",
                "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"));
    const auto value_case = sign("POST", "/", "", suite_headers({{"My-Header1", "VALUE1"}}));
    CHECK(value_case.authorization ==
          authz("host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"));
}

TEST_CASE("sigv4: post-sts-header-before signs the session token", "[sigv4]") {
    const std::string token =
        "AQoDYXdzEPT//////////"
        "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8"
        "YUuwthAx7mSEI/qkPpKPi/"
        "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE"
        "8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
        "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2"
        "ICCR/oLxBA==";
    const auto s = sign("POST", "/", "", suite_headers({{"X-Amz-Security-Token", token}}));
    CHECK(s.string_to_sign ==
          "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
          "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6");
    CHECK(s.authorization ==
          authz("host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"));
}

TEST_CASE("sigv4: header values are trimmed and a wrong secret changes the signature", "[sigv4]") {
    const auto spaced = sign("POST", "/", "", suite_headers({{"My-Header1", "  value1  "}}));
    const auto plain = sign("POST", "/", "", suite_headers({{"My-Header1", "value1"}}));
    CHECK(spaced.authorization == plain.authorization);
    const sigv4::Credentials other{"AKIDEXAMPLE", "not-the-secret", {}};
    CHECK(sign("GET", "/", "", suite_headers(), "", other).signature !=
          sign("GET", "/", "", suite_headers()).signature);
    CHECK(sigv4::amz_date(
              std::chrono::system_clock::time_point(std::chrono::seconds(1440938160))) == date);
}
