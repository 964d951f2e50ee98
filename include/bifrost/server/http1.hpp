#pragma once
/// \file
/// The server's hot-path HTTP/1.1 codec: a request head parsed in place (views into the bytes,
/// no allocation) and a response head formatted into a reused string.
///
/// The parser is deliberately partial. It recognizes the requests OpenAI SDKs and load
/// generators send (a request line, plain header fields, a `Content-Length` body or none) and
/// answers `fallback` for anything else: chunked bodies, `Expect`, obsolete line folding, an
/// unknown method, duplicate or malformed `Content-Length`, a head longer than the limit, bytes
/// it does not accept. The server then parses the same bytes with Boost.Beast, which produces
/// the answer (including the 400, 413 and 431 errors). So the fast path never refuses a request
/// itself: it either understands a request completely, or it leaves it to Beast.

#include <bifrost/detail/http1_syntax.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bifrost::server::http1 {

/// What the server's handlers read of a request. Views into the request's bytes: valid while
/// the request is being answered.
struct RequestHead {
    boost::beast::http::verb method = boost::beast::http::verb::unknown;
    std::string_view method_string;
    std::string_view target;
    unsigned version = 11;  ///< 10 or 11
    bool keep_alive = true;
    std::string_view authorization;  ///< the first `Authorization` field's value, or empty
    std::string_view x_bf_vk;        ///< the first `x-bf-vk` field's value, or empty
    std::string_view body;
};

enum class Parse {
    complete,    ///< the head is whole: `head_size` and `content_length` are set
    incomplete,  ///< the head has not fully arrived (and is within the limit so far)
    fallback,    ///< not a request this parser handles: parse it with Beast
};

/// A parsed head: the fields, how many bytes the head took (through its empty line) and how
/// many the body takes after it.
struct ParsedHead {
    RequestHead head;
    std::size_t head_size = 0;
    std::size_t content_length = 0;

    /// Points the views at a copy of the parsed bytes: `from` is where they began (still
    /// valid), `to` where the copy begins.
    void rebase(const char* from, const char* to) noexcept {
        for (std::string_view* v :
             {&head.method_string, &head.target, &head.authorization, &head.x_bf_vk, &head.body})
            if (!v->empty()) *v = std::string_view(to + (v->data() - from), v->size());
    }
};

namespace detail = bifrost::detail::http1;

/// Parses the head of the request at the start of `data` (see the file comment). `header_limit`
/// bounds the head's size: a head not complete within it is left to Beast (which answers 431).
///
/// One pass over the bytes: each line is checked as it is found. Bytes it does not accept make
/// it answer `fallback` as soon as they are seen, even before the head is whole.
inline Parse parse_head(std::string_view data, std::size_t header_limit, ParsedHead& out) {
    using detail::byte;
    const char* const begin = data.data();
    const char* const lim = begin + (data.size() < header_limit ? data.size() : header_limit);
    // Out of bytes before the head's end: wait for more, unless the limit is reached.
    const Parse short_of = data.size() >= header_limit ? Parse::fallback : Parse::incomplete;
    out = ParsedHead{};
    const char* p = begin;

    // Request line: method SP target SP HTTP/1.x CRLF
    p = detail::skip_tchars(p, lim);
    if (p == lim) return short_of;
    if (*p != ' ' || p == begin) return Parse::fallback;
    const std::string_view method(begin, static_cast<std::size_t>(p - begin));
    const char* const target_begin = ++p;
    while (p != lim && byte(*p) > 0x20 && byte(*p) < 0x7f)
        ++p;
    if (p == lim) return short_of;
    if (*p != ' ' || p == target_begin) return Parse::fallback;
    out.head.target = std::string_view(target_begin, static_cast<std::size_t>(p - target_begin));
    ++p;
    if (lim - p < 10) return short_of;
    if (std::string_view(p, 7) != "HTTP/1." || (p[7] != '1' && p[7] != '0') || p[8] != '\r' ||
        p[9] != '\n')
        return Parse::fallback;
    out.head.version = p[7] == '1' ? 11 : 10;
    p += 10;
    using boost::beast::http::verb;
    out.head.method = method == "POST"  ? verb::post
                      : method == "GET" ? verb::get
                                        : boost::beast::http::string_to_verb(method);
    if (out.head.method == verb::unknown) return Parse::fallback;
    out.head.method_string = method;

    // Header fields: name ":" OWS value OWS CRLF, then the empty line.
    bool have_length = false;
    bool close = false;
    bool keep_alive = false;
    for (;;) {
        std::string_view name, value;
        const detail::Line line = detail::header_line(p, lim, name, value);
        if (line == detail::Line::end) break;
        if (line == detail::Line::short_of) return short_of;
        if (line == detail::Line::bad) return Parse::fallback;
        // The fields that matter, told apart by length first: most fields are compared with
        // one name at most.
        switch (name.size()) {
            case 14:
                if (detail::name_is(name, "content-length")) {
                    if (have_length || !detail::content_length(value, out.content_length))
                        return Parse::fallback;
                    have_length = true;
                }
                break;
            case 17:
                if (detail::name_is(name, "transfer-encoding")) return Parse::fallback;
                break;
            case 6:
                if (detail::name_is(name, "expect")) return Parse::fallback;
                break;
            case 7:
                if (detail::name_is(name, "upgrade")) return Parse::fallback;
                if (detail::name_is(name, "x-bf-vk") && out.head.x_bf_vk.empty())
                    out.head.x_bf_vk = value;
                break;
            case 10:
                if (detail::name_is(name, "connection") &&
                    !detail::connection_tokens(value, close, keep_alive))
                    return Parse::fallback;
                break;
            case 13:
                if (detail::name_is(name, "authorization") && out.head.authorization.empty())
                    out.head.authorization = value;
                break;
            default:
                break;
        }
    }
    out.head_size = static_cast<std::size_t>(p - begin);
    out.head.keep_alive = out.head.version == 11 ? !close : (keep_alive && !close);
    return Parse::complete;
}

/// Appends a response head to `out`: status line (the request's HTTP version), `Server`,
/// `Content-Type`, `Content-Length`, `Connection` when it differs from the version's default,
/// `Allow` when given, and the empty line.
inline void write_head(std::string& out, unsigned version, int status, std::string_view server,
                       std::string_view content_type, std::size_t content_length, bool keep_alive,
                       std::string_view allow = {}) {
    out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    char digits[24];
    int n = 0;
    for (int s = status; n < 3; ++n, s /= 10)
        digits[2 - n] = static_cast<char>('0' + s % 10);
    out.append(digits, 3);
    out.push_back(' ');
    // A code without a registered name (e.g. 529) gets no reason phrase, which HTTP/1.1 allows.
    const auto code = boost::beast::http::int_to_status(static_cast<unsigned>(status));
    if (code != boost::beast::http::status::unknown)
        out.append(boost::beast::http::obsolete_reason(code));
    out.append("\r\nServer: ").append(server);
    out.append("\r\nContent-Type: ").append(content_type);
    out.append("\r\nContent-Length: ");
    n = 0;
    std::size_t v = content_length;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        out.push_back(digits[--n]);
    if (version == 10 && keep_alive) out.append("\r\nConnection: keep-alive");
    if (version != 10 && !keep_alive) out.append("\r\nConnection: close");
    if (!allow.empty()) out.append("\r\nAllow: ").append(allow);
    out.append("\r\n\r\n");
}

}  // namespace bifrost::server::http1
