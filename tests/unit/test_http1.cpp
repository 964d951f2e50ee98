#include "bifrost_catch.hpp"
#include "mutate.hpp"

#include <bifrost/server/http1.hpp>
#include <bifrost/transport/http1.hpp>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using bifrost::server::http1::Parse;
using bifrost::server::http1::parse_head;
using bifrost::server::http1::ParsedHead;
using bifrost::server::http1::write_head;
namespace http = boost::beast::http;

namespace {

Parse parse(std::string_view bytes, ParsedHead& out, std::size_t limit = 16 * 1024) {
    return parse_head(bytes, limit, out);
}

}  // namespace

TEST_CASE("http1: a plain request is parsed in place", "[http1]") {
    const std::string bytes =
        "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
        "Host: localhost:8080\r\n"
        "content-type: application/json\r\n"
        "AUTHORIZATION:   Bearer sk-vk-1 \r\n"
        "Authorization: Bearer second\r\n"
        "X-BF-VK: vk-2\r\n"
        "Content-Length: 16\r\n"
        "\r\n"
        "{\"model\":\"a/b\"}\n"
        "GET /next";
    ParsedHead p;
    REQUIRE(parse(bytes, p) == Parse::complete);
    CHECK(p.head.method == http::verb::post);
    CHECK(p.head.method_string == "POST");
    CHECK(p.head.target == "/v1/chat/completions?x=1");
    CHECK(p.head.version == 11);
    CHECK(p.head.keep_alive);
    CHECK(p.head.authorization == "Bearer sk-vk-1");  // the first, without surrounding space
    CHECK(p.head.x_bf_vk == "vk-2");
    CHECK(p.content_length == 16);
    CHECK(bytes.substr(p.head_size, p.content_length) == "{\"model\":\"a/b\"}\n");
    // Views point into the bytes themselves, and follow them to a copy.
    CHECK(p.head.target.data() == bytes.data() + 5);
    const std::string copy = bytes;
    p.rebase(bytes.data(), copy.data());
    CHECK(p.head.target.data() == copy.data() + 5);
    CHECK(p.head.target == "/v1/chat/completions?x=1");
    CHECK(p.head.method_string.data() == copy.data());
    CHECK(p.head.authorization == "Bearer sk-vk-1");
    CHECK(p.head.x_bf_vk.data() >= copy.data());
    CHECK(p.head.x_bf_vk == "vk-2");
}

TEST_CASE("http1: field names of every token character are accepted", "[http1]") {
    ParsedHead p;
    REQUIRE(parse("GET / HTTP/1.1\r\nAz09!#$%&'*+-.^_`|~: v\r\nX-Upgrade: 1\r\n"
                  "Content-Lengths: 9\r\n\r\n",
                  p) == Parse::complete);
    CHECK(p.content_length == 0);  // a longer name is another field
}

TEST_CASE("http1: keep-alive follows the version and the Connection field", "[http1]") {
    struct Case {
        const char* head;
        bool keep_alive;
    };
    for (const Case& c : {
             Case{"GET / HTTP/1.1\r\n\r\n", true},
             Case{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
             Case{"GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n", false},
             Case{"GET / HTTP/1.0\r\n\r\n", false},
             Case{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
             Case{"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
         }) {
        ParsedHead p;
        INFO(c.head);
        REQUIRE(parse(c.head, p) == Parse::complete);
        CHECK(p.head.keep_alive == c.keep_alive);
        CHECK(p.content_length == 0);
    }
}

TEST_CASE("http1: a head not yet whole is incomplete, one past the limit falls back", "[http1]") {
    ParsedHead p;
    CHECK(parse("", p) == Parse::incomplete);
    CHECK(parse("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", p) == Parse::incomplete);
    CHECK(parse("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r", p) == Parse::incomplete);
    const std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(100, 'a') + "\r\n\r\n";
    CHECK(parse(big, p, 64) == Parse::fallback);
    CHECK(parse(big.substr(0, 70), p, 64) == Parse::fallback);
    CHECK(parse(big.substr(0, 40), p, 64) == Parse::incomplete);
    CHECK(parse(big, p, big.size()) == Parse::complete);
}

TEST_CASE("http1: whatever the fast path does not fully understand is left to Beast", "[http1]") {
    for (const char* head : {
             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
             "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
             "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
             "GET / HTTP/1.1\r\nConnection: keep alive\r\n\r\n",
             "GET / HTTP/1.1\r\nConnection: close;\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
             "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
             "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
             "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
             "GET / HTTP/1.1\r\nX@Y: x\r\n\r\n",
             "GET / HTTP/1.1\r\nX\xc3\xa9: x\r\n\r\n",
             "GET / HTTP/1.1\r\nX(Y): x\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: a long value, past eight bytes\x01\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: a long value\x7f past eight bytes\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: twelve bytes\x0b of text\r\n\r\n",
             "GET / HTTP/1.1\r\nX-A: a value with a bare\nline feed\r\n\r\n",
             "GET / HTTP/2.0\r\n\r\n",
             "GET / HTTP/1.1 \r\n\r\n",
             "GET /  HTTP/1.1\r\n\r\n",
             "GET  / HTTP/1.1\r\n\r\n",
             " GET / HTTP/1.1\r\n\r\n",
             "BREW / HTTP/1.1\r\n\r\n",
             "GET /\x7f HTTP/1.1\r\n\r\n",
             "G\"T / HTTP/1.1\r\n\r\n",
             "GET\r\n\r\n",
         }) {
        ParsedHead p;
        INFO(head);
        CHECK(parse(head, p) == Parse::fallback);
    }
}

TEST_CASE("http1: a response head has the status, the length and the connection's fate",
          "[http1]") {
    std::string out;
    write_head(out, 11, 200, "bifrost-http/1.2.3", "application/json", 1234, true);
    CHECK(out ==
          "HTTP/1.1 200 OK\r\nServer: bifrost-http/1.2.3\r\nContent-Type: application/json\r\n"
          "Content-Length: 1234\r\n\r\n");
    out.clear();
    write_head(out, 11, 405, "s", "application/json", 0, false, "POST");
    CHECK(out ==
          "HTTP/1.1 405 Method Not Allowed\r\nServer: s\r\nContent-Type: application/json\r\n"
          "Content-Length: 0\r\nConnection: close\r\nAllow: POST\r\n\r\n");
    out.clear();
    write_head(out, 10, 503, "s", "text/plain", 7, true);
    CHECK(out ==
          "HTTP/1.0 503 Service Unavailable\r\nServer: s\r\nContent-Type: text/plain\r\n"
          "Content-Length: 7\r\nConnection: keep-alive\r\n\r\n");
    out.clear();
    write_head(out, 10, 529, "s", "application/json", 10, false);
    CHECK(out.substr(0, 15) == "HTTP/1.0 529 \r\n");  // no reason phrase for an unnamed code
    CHECK(out.find("Connection") == std::string::npos);
}

TEST_CASE("http1: field values may hold tabs and bytes of 0x80 and up, anywhere", "[http1]") {
    // Long values go through the eight-bytes-at-a-time check; a tab or UTF-8 in one of those
    // words is decided byte by byte.
    const std::string head =
        "GET / HTTP/1.1\r\nX-Tabbed: one\ttwo\tthree\tfour\tfive\r\n"
        "X-Utf8: caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
        "e\r\n"
        "Authorization: Bearer 0123456789abcdefghij\r\n\r\n";
    ParsedHead p;
    REQUIRE(parse(head, p) == Parse::complete);
    CHECK(p.head.authorization == "Bearer 0123456789abcdefghij");
}

TEST_CASE("http1: bytes it does not accept fall back before the head is whole", "[http1]") {
    ParsedHead p;
    CHECK(parse("GET / HTTP/1.1\r\nX-A: a\x01", p) == Parse::fallback);
    CHECK(parse("GET / HTTP/1.1\r\nBad Name", p) == Parse::fallback);
    CHECK(parse("GET / HTTP/1.1\r\nX-A: a\rz", p) == Parse::fallback);
    CHECK(parse("G(T / HTTP/1.1\r", p) == Parse::fallback);
    // Cut anywhere before its end, a good head is only incomplete.
    const std::string good =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        "Content-Length: 2\r\n\r\n";
    for (std::size_t n = 0; n < good.size(); ++n) {
        INFO(n);
        CHECK(parse(good.substr(0, n), p) == Parse::incomplete);
    }
    CHECK(parse(good, p) == Parse::complete);
}

namespace {

/// What Beast makes of the head at the start of `bytes`: whether it is whole and well formed,
/// and the fields the fast path reports.
struct BeastView {
    bool complete = false;
    bool error = false;
    std::size_t head_size = 0;
    http::verb method = http::verb::unknown;
    std::string target;
    unsigned version = 0;
    bool keep_alive = false;
    std::string authorization;
    std::string x_bf_vk;
    std::size_t content_length = 0;
};

BeastView parse_with_beast(std::string_view bytes, std::size_t limit) {
    BeastView v;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limit));
    parser.eager(false);
    boost::beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec == http::error::need_more) return v;
    if (ec || !parser.is_header_done()) {
        v.error = true;
        return v;
    }
    v.complete = true;
    const auto& req = parser.get();
    v.head_size = used;
    v.method = req.method();
    v.target = req.target();
    v.version = req.version();
    v.keep_alive = req.keep_alive();
    v.authorization = req[http::field::authorization];
    v.x_bf_vk = req["x-bf-vk"];
    v.content_length = parser.content_length().value_or(0);
    return v;
}

}  // namespace

TEST_CASE("http1: what the fast path accepts, Beast reads the same way", "[http1]") {
    // Good heads, each mutated thousands of times (a byte replaced by one that matters to the
    // grammar, removed or inserted, or the head cut short). Whenever the fast path says
    // `complete`, Beast must read a well-formed head with the same fields; whenever it says
    // `incomplete`, Beast must not have a whole head either.
    const std::string bases[] = {
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:8080\r\n"
        "Authorization: Bearer sk-1\r\nContent-Type: application/json\r\n"
        "Content-Length: 27\r\n\r\n",
        "GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\nx-bf-vk: vk-9\r\n\r\n",
        "PUT /x?y=1 HTTP/1.1\r\nconnection: close\r\nX-Long: a value well past eight "
        "bytes\twith a tab\r\ncontent-length:5\r\n\r\n",
    };
    const std::string specials = std::string(" \t\r\n:,;\"(/0A\x01\x7f\x80\xff", 17);
    std::mt19937 rng(20261207);
    std::size_t completes = 0, incompletes = 0, fallbacks = 0;
    for (const std::string& base : bases) {
        for (int round = 0; round < 4000; ++round) {
            const std::string bytes = test::mutated(base, specials, 3, true, rng);
            ParsedHead fast;
            const Parse r = parse(bytes, fast, 512);
            const BeastView beast = parse_with_beast(bytes, 512);
            INFO(bytes);
            if (r == Parse::complete) {
                ++completes;
                CHECK(beast.complete);
                if (!beast.complete) continue;
                CHECK(fast.head_size == beast.head_size);
                CHECK(fast.head.method == beast.method);
                CHECK(fast.head.target == beast.target);
                CHECK(fast.head.version == beast.version);
                CHECK(fast.head.keep_alive == beast.keep_alive);
                CHECK(fast.head.authorization == beast.authorization);
                CHECK(fast.head.x_bf_vk == beast.x_bf_vk);
                CHECK(fast.content_length == beast.content_length);
            } else if (r == Parse::incomplete) {
                ++incompletes;
                CHECK_FALSE(beast.complete);
            } else {
                ++fallbacks;
            }
        }
    }
    // The mutations reach every outcome (the property is not checked on nothing).
    CHECK(completes > 500);
    CHECK(incompletes > 500);
    CHECK(fallbacks > 500);
}

TEST_CASE("http1: field names match in any case, and only those names", "[http1]") {
    struct Case {
        const char* field;
        std::size_t length;
    };
    for (const Case& c : {
             Case{"CONTENT-LENGTH: 5", 5},
             Case{"content-length: 6", 6},
             Case{"cOnTeNt-LeNgTh: 7", 7},
             Case{"Content_Length: 8", 0},  // '_' is not '-'
             Case{"Content-Lengt^: 9", 0},
             Case{"Content~Length: 9", 0},
             Case{"Conte`t-Length: 9", 0},
         }) {
        INFO(c.field);
        ParsedHead p;
        REQUIRE(parse(std::string("POST / HTTP/1.1\r\n") + c.field + "\r\n\r\n", p) ==
                Parse::complete);
        CHECK(p.content_length == c.length);
    }
    ParsedHead p;
    REQUIRE(parse("GET / HTTP/1.1\r\nCONNECTION: CLOSE\r\n\r\n", p) == Parse::complete);
    CHECK_FALSE(p.head.keep_alive);
    REQUIRE(parse("GET / HTTP/1.1\r\nConnection: clos^\r\n\r\n", p) == Parse::complete);
    CHECK(p.head.keep_alive);
}

// ---- the transport's response reader -------------------------------------------------------

namespace {

namespace rsp = bifrost::transport::http1;

rsp::Parse parse_response(std::string_view bytes, bifrost::HttpResponse& res,
                          rsp::ResponseFrame& frame, std::size_t limit = 16 * 1024,
                          std::size_t body_limit = 1 << 20) {
    return rsp::parse_response_head(bytes, limit, body_limit, res, frame);
}

std::vector<std::pair<std::string, std::string>> fields_of(const bifrost::Headers& h) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& f : h)
        out.emplace_back(f.name, f.value);
    return out;
}

}  // namespace

TEST_CASE("http1 response: a plain answer is read into the response", "[http1]") {
    const std::string bytes =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type:  application/json \r\n"
        "x-request-id: req-1\r\n"
        "content-length: 11\r\n"
        "\r\n"
        "{\"a\":\"bcd\"}HTTP/1.1";
    bifrost::HttpResponse res;
    res.headers.add("stale", "from before");
    rsp::ResponseFrame frame;
    REQUIRE(parse_response(bytes, res, frame) == rsp::Parse::complete);
    CHECK(res.status == 200);
    CHECK(fields_of(res.headers) ==
          std::vector<std::pair<std::string, std::string>>{{"Content-Type", "application/json"},
                                                           {"x-request-id", "req-1"},
                                                           {"content-length", "11"}});
    CHECK(frame.content_length == 11);
    CHECK(bytes.substr(frame.head_size, frame.content_length) == "{\"a\":\"bcd\"}");
    CHECK(frame.size() == bytes.size() - 8);
    CHECK(frame.keep_alive);
    CHECK(res.body.empty());  // the caller takes the body

    REQUIRE(parse_response("HTTP/1.0 429 \r\nContent-Length: 0\r\n\r\n", res, frame) ==
            rsp::Parse::complete);
    CHECK(res.status == 429);  // an empty reason phrase
    CHECK(frame.content_length == 0);
    CHECK_FALSE(frame.keep_alive);  // HTTP/1.0 without keep-alive
}

TEST_CASE("http1 response: keep-alive follows the version and the Connection field", "[http1]") {
    struct Case {
        const char* head;
        bool keep_alive;
    };
    for (const Case& c : {
             Case{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
             Case{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
             Case{"HTTP/1.1 503 x\r\nConnection: TE, CLOSE\r\nContent-Length: 0\r\n\r\n", false},
             Case{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
             Case{"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true},
         }) {
        INFO(c.head);
        bifrost::HttpResponse res;
        rsp::ResponseFrame frame;
        REQUIRE(parse_response(c.head, res, frame) == rsp::Parse::complete);
        CHECK(frame.keep_alive == c.keep_alive);
    }
}

TEST_CASE("http1 response: whatever the fast path does not fully understand is left to Beast",
          "[http1]") {
    for (const char* head : {
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",  // to the end of the stream
             "HTTP/1.1 100 Continue\r\n\r\n",
             "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
             "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
             "HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 099 Below\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
             "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
             "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n",  // over the body limit
             "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\r\nConnection: keep alive\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\r\nX-A: a\x7fz\r\nContent-Length: 0\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX",
         }) {
        INFO(head);
        bifrost::HttpResponse res;
        rsp::ResponseFrame frame;
        CHECK(parse_response(head, res, frame) == rsp::Parse::fallback);
    }
}

TEST_CASE("http1 response: a head not yet whole is incomplete, one past the limit falls back",
          "[http1]") {
    const std::string good =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";
    bifrost::HttpResponse res;
    rsp::ResponseFrame frame;
    for (std::size_t n = 0; n < good.size(); ++n) {
        INFO(n);
        CHECK(parse_response(good.substr(0, n), res, frame) == rsp::Parse::incomplete);
    }
    CHECK(parse_response(good, res, frame) == rsp::Parse::complete);
    CHECK(frame.size() == good.size() + 2);  // the body is still to come
    CHECK(parse_response(good, res, frame, 40) == rsp::Parse::fallback);
    CHECK(parse_response(good.substr(0, 45), res, frame, 40) == rsp::Parse::fallback);
    CHECK(parse_response(good.substr(0, 30), res, frame, 40) == rsp::Parse::incomplete);
    CHECK(parse_response(good, res, frame, good.size()) == rsp::Parse::complete);
    CHECK(parse_response(good, res, frame, good.size(), 1) == rsp::Parse::fallback);
}

namespace {

/// What Beast makes of the response at the start of `bytes`.
struct BeastResponse {
    bool complete = false;  // the head is whole and well formed
    std::size_t head_size = 0;
    int status = 0;
    bool keep_alive = false;
    std::vector<std::pair<std::string, std::string>> fields;
    std::optional<std::uint64_t> content_length;
    bool body_done = false;  // the whole body is there too
    std::string body;
};

BeastResponse response_with_beast(std::string_view bytes, std::size_t limit,
                                  std::size_t body_limit) {
    BeastResponse v;
    http::response_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limit));
    parser.body_limit(body_limit);
    parser.eager(false);
    boost::beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec || !parser.is_header_done()) return v;
    v.complete = true;
    v.head_size = used;
    const auto& msg = parser.get();
    v.status = static_cast<int>(msg.result_int());
    v.keep_alive = parser.keep_alive();
    for (const auto& f : msg)
        v.fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
    if (const auto n = parser.content_length()) v.content_length = *n;
    parser.eager(true);
    const std::string_view rest = bytes.substr(used);
    if (!parser.is_done() && !rest.empty())
        parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    v.body_done = !ec && parser.is_done();
    v.body = msg.body();
    return v;
}

}  // namespace

TEST_CASE("http1 response: what the fast path accepts, Beast reads the same way", "[http1]") {
    // As for requests: good answers mutated thousands of times. Whenever the fast path says
    // `complete`, Beast reads a well-formed head with the same status, fields in the same order,
    // length and connection fate, and the same body once all of it is there; whenever it says
    // `incomplete`, Beast has no whole head either.
    const std::string bases[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: r-1\r\n"
        "Content-Length: 12\r\n\r\n{\"id\":\"c-1\"}",
        "HTTP/1.0 429 Too Many Requests\r\nConnection: keep-alive\r\nRetry-After: 2\r\n"
        "content-length:5\r\n\r\nslow!",
        "HTTP/1.1 503 x\r\nconnection: close\r\nX-Long: a value well past eight bytes\twith a "
        "tab\r\nContent-Length: 0\r\n\r\n",
    };
    const std::string specials = std::string(" \t\r\n:,;\"(/0A1\x01\x7f\x80\xff", 18);
    std::mt19937 rng(20261207);
    std::size_t completes = 0, incompletes = 0, fallbacks = 0, bodies = 0;
    for (const std::string& base : bases) {
        for (int round = 0; round < 4000; ++round) {
            const std::string bytes = test::mutated(base, specials, 3, true, rng);
            bifrost::HttpResponse res;
            rsp::ResponseFrame frame;
            const rsp::Parse r = parse_response(bytes, res, frame, 256, 64);
            const BeastResponse beast = response_with_beast(bytes, 256, 64);
            INFO(bytes);
            if (r == rsp::Parse::complete) {
                ++completes;
                CHECK(beast.complete);
                if (!beast.complete) continue;
                CHECK(frame.head_size == beast.head_size);
                CHECK(res.status == beast.status);
                CHECK(frame.keep_alive == beast.keep_alive);
                CHECK(fields_of(res.headers) == beast.fields);
                CHECK(beast.content_length == frame.content_length);
                const bool whole = bytes.size() >= frame.size();
                CHECK(beast.body_done == whole);
                if (whole) {
                    ++bodies;
                    CHECK(bytes.substr(frame.head_size, frame.content_length) == beast.body);
                }
            } else if (r == rsp::Parse::incomplete) {
                ++incompletes;
                CHECK_FALSE(beast.complete);
            } else {
                ++fallbacks;
            }
        }
    }
    CHECK(completes > 500);
    CHECK(bodies > 200);
    CHECK(incompletes > 500);
    CHECK(fallbacks > 500);
}
