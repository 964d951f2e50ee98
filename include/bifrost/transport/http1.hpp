#pragma once
/// \file
/// The transport's hot-path HTTP/1.1 response reader: the head of an upstream's answer parsed
/// in place, straight into the caller's `HttpResponse`, for an answer whose body has a
/// `Content-Length`.
///
/// Like the server's request parser (`server/http1.hpp`) it is deliberately partial. It reads
/// what upstream APIs answer a plain call with (a status line, plain header fields, a
/// `Content-Length` body) and answers `fallback` for anything else: a chunked or
/// close-delimited body, a 1xx, 204 or 304 status (whose body the status decides), obsolete line
/// folding, a duplicate or malformed `Content-Length`, a body over the limit, a head over its
/// limit, a `Connection` field that says both `close` and `keep-alive`, bytes it does not
/// accept. The transport then parses the same bytes with Boost.Beast, which produces the answer
/// or the error. So the fast path never fails a response itself: it either understands it
/// completely, or it leaves it to Beast.

#include <bifrost/detail/http1_syntax.hpp>
#include <bifrost/transport/http.hpp>

#include <cstddef>
#include <string_view>

namespace bifrost::transport::http1 {

enum class Parse {
    complete,    ///< the head is whole: `ResponseFrame` is set, the status and fields are read
    incomplete,  ///< the head has not fully arrived (and is within the limit so far)
    fallback,    ///< not a response this parser handles: parse it with Beast
};

/// Where a response's parts lie: its head takes `head_size` bytes (through the empty line), its
/// body the `content_length` bytes after it.
struct ResponseFrame {
    std::size_t head_size = 0;
    std::size_t content_length = 0;
    bool keep_alive = true;  ///< the connection may carry another request after this answer

    [[nodiscard]] std::size_t size() const noexcept { return head_size + content_length; }
};

/// Parses the head of the response at the start of `data` (see the file comment): the status
/// into `res.status` and each field, in order, into `res.headers` (cleared first; the body is
/// not touched). `header_limit` bounds the head's size and `body_limit` the body's: past either
/// it falls back (Beast then reports the limit). On `incomplete` and `fallback` what it wrote
/// into `res` is partial.
inline Parse parse_response_head(std::string_view data, std::size_t header_limit,
                                 std::size_t body_limit, HttpResponse& res, ResponseFrame& frame) {
    namespace syntax = bifrost::detail::http1;
    const char* const begin = data.data();
    const char* const lim = begin + (data.size() < header_limit ? data.size() : header_limit);
    const Parse short_of = data.size() >= header_limit ? Parse::fallback : Parse::incomplete;
    frame = ResponseFrame{};
    res.headers.clear();
    const char* p = begin;

    // Status line: HTTP/1.x SP 3DIGIT SP reason CRLF
    if (lim - p < 13) return short_of;
    if (std::string_view(p, 7) != "HTTP/1." || (p[7] != '1' && p[7] != '0') || p[8] != ' ' ||
        p[12] != ' ')
        return Parse::fallback;
    const bool http11 = p[7] == '1';
    int status = 0;
    for (int i = 9; i < 12; ++i) {
        if (p[i] < '0' || p[i] > '9') return Parse::fallback;
        status = status * 10 + (p[i] - '0');
    }
    // No body, or one that ends with the connection: Beast knows those rules.
    if (status < 200 || status > 599 || status == 204 || status == 304) return Parse::fallback;
    p = syntax::skip_value(p + 13, lim);
    if (p == lim || (*p == '\r' && lim - p < 2)) return short_of;
    if (*p != '\r' || p[1] != '\n') return Parse::fallback;
    p += 2;
    res.status = status;

    // Header fields: name ":" OWS value OWS CRLF, then the empty line.
    bool have_length = false;
    bool close = false;
    bool keep_alive = false;
    for (;;) {
        std::string_view name, value;
        const syntax::Line line = syntax::header_line(p, lim, name, value);
        if (line == syntax::Line::end) break;
        if (line == syntax::Line::short_of) return short_of;
        if (line == syntax::Line::bad) return Parse::fallback;
        switch (name.size()) {
            case 14:
                if (syntax::name_is(name, "content-length")) {
                    if (have_length || !syntax::content_length(value, frame.content_length) ||
                        frame.content_length > body_limit)
                        return Parse::fallback;
                    have_length = true;
                }
                break;
            case 17:
                if (syntax::name_is(name, "transfer-encoding")) return Parse::fallback;
                break;
            case 10:
                if (syntax::name_is(name, "connection") &&
                    !syntax::connection_tokens(value, close, keep_alive))
                    return Parse::fallback;
                break;
            default:
                break;
        }
        res.headers.add(name, value);
    }
    if (!have_length || (close && keep_alive)) return Parse::fallback;
    frame.head_size = static_cast<std::size_t>(p - begin);
    frame.keep_alive = http11 ? !close : keep_alive;
    return Parse::complete;
}

}  // namespace bifrost::transport::http1
