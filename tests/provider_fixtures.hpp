#pragma once
// Shared helpers for the provider fixture tests: building an upstream request (chat or
// embeddings), comparing JSON bodies as parsed documents, and running a stream decoder over bytes
// fed whole or one at a time.

#include "bifrost_catch.hpp"

#include <bifrost/concepts.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/operation_outcome.hpp>
#include <bifrost/schema/stream.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test {

/// A one-message user request for `model`.
inline bifrost::ChatRequest user_request(std::string model, std::string text) {
    bifrost::ChatRequest r;
    r.model = std::move(model);
    r.messages.push_back({bifrost::Role::user, std::move(text), {}, {}, {}, {}, {}});
    return r;
}

/// A key with `value` and, when given, one key-config object (`name` -> JSON text).
inline bifrost::Key key(std::string value, std::string_view settings_name = {},
                        std::string_view settings_json = {}) {
    bifrost::Key k{bifrost::Secret(std::move(value)), {}, 1.0, true, "k", {}};
    if (!settings_name.empty()) k.settings[settings_name] = boost::json::parse(settings_json);
    return k;
}

/// Runs `build_chat` (or `build_chat_stream`) of `P`.
template <class P>
bifrost::HttpRequest build(const bifrost::ChatRequest& req, std::string_view model,
                           const bifrost::Key* k, const bifrost::ProviderConfig& cfg = {},
                           bool stream = false, const P& p = P{}) {
    bifrost::HttpRequest out;
    const bifrost::BuildContext ctx{req, model, k, cfg};
    if (stream)
        p.build_chat_stream(ctx, out);
    else
        p.build_chat(ctx, out);
    return out;
}

/// The body as a parsed document (so key order and spacing do not matter).
inline boost::json::value json(std::string_view text) {
    return boost::json::parse(text);
}

/// Runs `parse_chat` of `P` on a response with `status` and `body`.
template <class P>
bifrost::Outcome parse(int status, std::string body, const P& p = P{}) {
    bifrost::HttpResponse res;
    res.status = status;
    res.body = std::move(body);
    bifrost::Outcome out;
    p.parse_chat(res, out);
    return out;
}

/// An embeddings request for `model`: one string (`input` as a string) or, with several, an
/// array of strings.
inline bifrost::EmbeddingRequest embedding_request(std::string model,
                                                   std::vector<std::string> texts) {
    bifrost::EmbeddingRequest r;
    r.model = std::move(model);
    r.input = texts.size() == 1 ? bifrost::TextInput::text(std::move(texts.front()))
                                : bifrost::TextInput::of_texts(std::move(texts));
    return r;
}

/// Runs `build_embedding` of `P`.
template <class P>
bifrost::HttpRequest build_embedding(const bifrost::EmbeddingRequest& req, std::string_view model,
                                     const bifrost::Key* k, const bifrost::ProviderConfig& cfg = {},
                                     const P& p = P{}) {
    bifrost::HttpRequest out;
    p.build_embedding(bifrost::RequestContext<bifrost::EmbeddingRequest>{req, model, k, cfg}, out);
    return out;
}

/// Runs `parse_embedding` of `P` on a response with `status`, `body` and `headers`.
template <class P>
bifrost::EmbeddingOutcome parse_embedding(
    int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {},
    const P& p = P{}) {
    bifrost::HttpResponse res;
    res.status = status;
    res.body = std::move(body);
    for (const auto& [n, v] : headers)
        res.headers.add(n, v);
    bifrost::EmbeddingOutcome out;
    p.parse_embedding(res, out);
    return out;
}

/// What a decoder made of a whole stream.
struct Decoded {
    std::vector<bifrost::StreamChunk> chunks;
    bifrost::StreamStatus last = bifrost::StreamStatus::need_more;
    bifrost::Error error;
    bool feed_ok = true;
};

template <class Decoder>
void drain(Decoder& d, Decoded& out) {
    for (;;) {
        bifrost::StreamChunk c;
        const auto s = d.next(c, out.error);
        if (s == bifrost::StreamStatus::chunk) {
            out.chunks.push_back(std::move(c));
            continue;
        }
        out.last = s;
        return;
    }
}

/// Feeds `bytes` in one piece (`step` 0) or `step` bytes at a time, draining after each piece,
/// then `finish()` and drains to the end.
template <class Decoder>
Decoded decode(std::string_view bytes, std::size_t step = 0) {
    Decoder d;
    Decoded out;
    if (step == 0) step = bytes.size() == 0 ? 1 : bytes.size();
    for (std::size_t i = 0; i < bytes.size(); i += step) {
        out.feed_ok = d.feed(bytes.substr(i, step)) && out.feed_ok;
        drain(d, out);
        if (out.last == bifrost::StreamStatus::done || out.last == bifrost::StreamStatus::error)
            return out;
    }
    d.finish();
    drain(d, out);
    return out;
}

/// The text a decoded stream carries (all content deltas of choice 0 appended).
inline std::string text_of(const Decoded& d) {
    std::string s;
    for (const auto& c : d.chunks)
        for (const auto& ch : c.choices)
            if (ch.content) s += *ch.content;
    return s;
}

/// The finish_reason of the stream (the last one set).
inline std::string finish_of(const Decoded& d) {
    std::string s;
    for (const auto& c : d.chunks)
        for (const auto& ch : c.choices)
            if (!ch.finish_reason.empty()) s = ch.finish_reason;
    return s;
}

/// The last usage the stream reported.
inline std::optional<bifrost::Usage> usage_of(const Decoded& d) {
    std::optional<bifrost::Usage> u;
    for (const auto& c : d.chunks)
        if (c.usage) u = c.usage;
    return u;
}

/// Chunks equal except for `created` (a clock reading).
inline bool same_chunks(std::vector<bifrost::StreamChunk> a, std::vector<bifrost::StreamChunk> b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i].created = b[i].created = 0;
        if (!(a[i] == b[i])) return false;
    }
    return true;
}

/// Checks that a stream gives the same chunks and end whether fed whole or byte by byte, and
/// returns the whole-fed result.
template <class Decoder>
Decoded decode_both(std::string_view bytes) {
    Decoded whole = decode<Decoder>(bytes);
    Decoded bytewise = decode<Decoder>(bytes, 1);
    CHECK(same_chunks(whole.chunks, bytewise.chunks));
    CHECK(whole.last == bytewise.last);
    CHECK(whole.error == bytewise.error);
    return whole;
}

}  // namespace test
