#pragma once
/// \file
/// `providers::OpenAI`: OpenAI's chat-completions API, plus embeddings, legacy text completions
/// and model listing. The unified schema is OpenAI's shape, so the mapping is a rewrite of `model`
/// to the provider-local id and the bearer key.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/sse.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/json.hpp>
#include <bifrost/schema/operations_json.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/json/parse.hpp>

#include <deque>
#include <string>
#include <string_view>
#include <utility>

namespace bifrost::providers {

namespace detail {

/// Reads an upstream error body in OpenAI's shape (`{"error":{"message","type","code","param"}}`)
/// into `out`, keeping the upstream status. Bodies of other shapes become the message (cut to
/// 512 bytes). Used by every OpenAI-compatible provider.
inline void read_openai_error(int status, std::string_view body, std::string_view provider,
                              Error& out) {
    out.status = status;
    out.provider.assign(provider);
    out.type.assign(error_type::upstream);
    out.code.clear();
    out.param.clear();
    out.message.clear();
    boost::system::error_code ec;
    const auto doc = boost::json::parse(body, ec);
    const boost::json::object* err = nullptr;
    if (!ec) {
        if (const auto* o = doc.if_object()) {
            if (const auto* e = o->if_contains("error")) err = e->if_object();
            if (!err && o->contains("message")) err = o;
        }
    }
    if (err) {
        const auto str = [&](std::string_view k, std::string& dst) {
            if (const auto* v = err->if_contains(k)) {
                if (v->is_string())
                    dst.assign(v->get_string());
                else if (v->is_int64())
                    dst.assign(std::to_string(v->get_int64()));
            }
        };
        str("message", out.message);
        str("type", out.type);
        str("code", out.code);
        str("param", out.param);
        if (out.type.empty()) out.type.assign(error_type::upstream);
    }
    if (out.message.empty()) {
        if (provider.empty())
            out.message.assign("upstream returned HTTP ");
        else
            out.message.assign("provider '").append(provider).append("' returned HTTP ");
        out.message.append(std::to_string(status));
        if (!body.empty()) {
            out.message.append(": ");
            out.message.append(body.substr(0, 512));
        }
    }
}

/// `base_url` from the config, else `fallback`, without a trailing slash.
inline std::string_view base_url(const ProviderConfig& cfg, std::string_view fallback) noexcept {
    std::string_view b = cfg.network_config.base_url.empty()
                             ? fallback
                             : std::string_view(cfg.network_config.base_url);
    while (!b.empty() && b.back() == '/')
        b.remove_suffix(1);
    return b;
}

/// Fills the head of an OpenAI-format request: `method`, `base_url` (or `default_base_url`) +
/// `path`, a JSON content type for a POST, a bearer key when one was selected, then
/// `extra_headers` (which win over the headers set here). The one place a request's URL and extra
/// headers are decided; the body is the caller's.
inline void build_openai_head(const ProviderConfig& config, const Key* key, HttpRequest& out,
                              HttpMethod method, std::string_view default_base_url,
                              std::string_view path) {
    out.method = method;
    out.url.assign(base_url(config, default_base_url)).append(path);
    if (method == HttpMethod::post) out.headers.add("content-type", "application/json");
    if (key != nullptr && !key->value.empty())
        out.headers.add_joined("authorization", "Bearer ", key->value.reveal());
    for (const auto& [name, value] : config.network_config.extra_headers)
        out.headers.set(name, value);
}

/// Fills an OpenAI-format chat-completions request (`build_openai_head` plus the JSON body).
inline void build_openai_chat(const BuildContext& ctx, HttpRequest& out,
                              std::string_view default_base_url, std::string_view path) {
    build_openai_head(ctx.config, ctx.key, out, HttpMethod::post, default_base_url, path);
    write_chat_request(out.body, ctx.request, RequestWriteOptions{ctx.model, true});
}

/// The path of a sibling endpoint of a chat path: "/v1/chat/completions" + "/embeddings" gives
/// "/v1/embeddings", "/chat/completions" + "/models" gives "/models".
inline std::string sibling_path(std::string_view chat_path, std::string_view endpoint) {
    constexpr std::string_view chat = "/chat/completions";
    std::string_view prefix = "/v1";
    if (chat_path.size() >= chat.size() && chat_path.substr(chat_path.size() - chat.size()) == chat)
        prefix = chat_path.substr(0, chat_path.size() - chat.size());
    std::string p(prefix);
    p.append(endpoint);
    return p;
}

/// Fills an OpenAI-format embeddings request at the sibling `/embeddings` of `chat_path`.
inline void build_openai_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out,
                                   std::string_view default_base_url, std::string_view chat_path) {
    build_openai_head(ctx.config, ctx.key, out, HttpMethod::post, default_base_url,
                      sibling_path(chat_path, "/embeddings"));
    write_embedding_request(out.body, ctx.request, RequestWriteOptions{ctx.model, true});
}

/// Fills an OpenAI-format legacy completions request at the sibling `/completions`.
inline void build_openai_text_completion(const RequestContext<TextCompletionRequest>& ctx,
                                         HttpRequest& out, std::string_view default_base_url,
                                         std::string_view chat_path) {
    build_openai_head(ctx.config, ctx.key, out, HttpMethod::post, default_base_url,
                      sibling_path(chat_path, "/completions"));
    write_text_completion_request(out.body, ctx.request, RequestWriteOptions{ctx.model, true});
}

/// Fills an OpenAI-format `GET .../models` request.
inline void build_openai_list_models(const RequestContext<ListModelsRequest>& ctx, HttpRequest& out,
                                     std::string_view default_base_url,
                                     std::string_view chat_path) {
    build_openai_head(ctx.config, ctx.key, out, HttpMethod::get, default_base_url,
                      sibling_path(chat_path, "/models"));
}

/// Reads an OpenAI-format answer of another kind: `parse(body, out)` for 2xx, else the error.
template <class O, class Parse>
void parse_openai_other(const HttpResponse& in, O& out, Parse parse) {
    if (in.status >= 200 && in.status < 300) {
        parse(in.body, out);
    } else {
        read_openai_error(in.status, in.body, {}, out.error);
    }
}

/// Fills an OpenAI-format streamed chat-completions request: as `build_openai_chat`, with
/// `"stream": true` and, unless the caller set `stream_options`, `"stream_options":
/// {"include_usage": true}` (so the last chunk carries the token usage).
inline void build_openai_chat_stream(const BuildContext& ctx, HttpRequest& out,
                                     std::string_view default_base_url, std::string_view path) {
    build_openai_chat(ctx, out, default_base_url, path);
    // The body is the request's JSON object: splice the streaming fields in before its end
    // (without copying the request to change two fields).
    std::string& b = out.body;
    while (!b.empty() && b.back() != '}')
        b.pop_back();
    if (b.empty()) return;
    b.pop_back();
    const bool has_stream = ctx.request.stream.has_value();
    const bool has_options = ctx.request.extra.contains("stream_options");
    if (has_stream) {
        // write_chat_request wrote the caller's `"stream":` value; a streamed call needs true.
        const auto at = b.find("\"stream\":false");
        if (at != std::string::npos) b.replace(at, 14, "\"stream\":true");
    } else {
        b.append(",\"stream\":true");
    }
    if (!has_options) b.append(",\"stream_options\":{\"include_usage\":true}");
    b.push_back('}');
    out.headers.set("accept", "text/event-stream");
}

/// Decodes an OpenAI-format event stream (`data: {chunk}` events, then `data: [DONE]`) into
/// `StreamChunk`s; see `StreamingProvider`. Bytes may be fed cut anywhere. An `error` object in
/// an event ends the stream with that error (keeping its message and type); a body that ends
/// before `[DONE]` is an error. Shared by every OpenAI-compatible provider.
class OpenAIStreamDecoder {
  public:
    bool feed(std::string_view bytes) {
        if (state_ != State::open) return true;  // after the end marker, the rest is ignored
        return sse_.feed(bytes, [this](const ::bifrost::detail::SseEvent& e) { on_event(e); }) ||
               broken("the event stream is malformed (an event exceeds the size limit)");
    }

    StreamStatus next(StreamChunk& chunk, Error& error) {
        if (!pending_.empty()) {
            chunk = std::move(pending_.front());
            pending_.pop_front();
            return StreamStatus::chunk;
        }
        switch (state_) {
            case State::open:
                if (!finished_) return StreamStatus::need_more;
                error.assign(502, error_type::bad_response, "upstream stream ended before [DONE]");
                state_ = State::failed;
                return StreamStatus::error;
            case State::done:
                return StreamStatus::done;
            case State::failed:
                error = error_;
                return StreamStatus::error;
        }
        return StreamStatus::error;
    }

    void finish() { finished_ = true; }

    void reset() {
        sse_.reset();
        pending_.clear();
        error_.clear();
        state_ = State::open;
        finished_ = false;
    }

  private:
    enum class State : std::uint8_t { open, done, failed };

    bool broken(std::string_view why) {
        if (state_ == State::open) {
            error_.assign(502, error_type::bad_response, why);
            state_ = State::failed;
        }
        return false;
    }

    void on_event(const ::bifrost::detail::SseEvent& e) {
        if (state_ != State::open) return;
        if (e.done()) {
            state_ = State::done;
            return;
        }
        boost::system::error_code ec;
        const auto doc = boost::json::parse(e.data, ec);
        if (!ec) {
            if (const auto* o = doc.if_object()) {
                if (const auto* err = o->if_contains("error"); err && !err->is_null()) {
                    // The upstream failed mid-stream; its status, when it sent one, is kept
                    // (`status`, or an HTTP-like numeric `code` as Azure sends).
                    int status = 502;
                    if (const auto* eo = err->if_object()) {
                        const auto* st = eo->if_contains("status");
                        if (!st || !st->is_int64()) st = eo->if_contains("code");
                        if (st && st->is_int64()) status = static_cast<int>(st->get_int64());
                    }
                    if (status < 400 || status > 599) status = 502;
                    read_openai_error(status, e.data, {}, error_);
                    state_ = State::failed;
                    return;
                }
            }
        }
        StreamChunk c;
        if (ec) {
            std::string msg = "upstream stream event is not JSON: ";
            msg.append(e.data.substr(0, 256));
            error_.assign(502, error_type::bad_response, msg);
            state_ = State::failed;
            return;
        }
        if (!read_stream_chunk(doc, c, error_)) {
            state_ = State::failed;
            return;
        }
        pending_.push_back(std::move(c));
    }

    ::bifrost::detail::SseParser sse_;
    std::deque<StreamChunk> pending_;
    Error error_;
    State state_ = State::open;
    bool finished_ = false;
};

/// Reads an OpenAI-format chat-completions response: the completion for 2xx, else the error.
inline void parse_openai_chat(const HttpResponse& in, Outcome& out) {
    if (in.status >= 200 && in.status < 300) {
        parse_chat_response(in.body, out);
    } else {
        read_openai_error(in.status, in.body, {}, out.error);
    }
}

}  // namespace detail

/// OpenAI (and the base of every OpenAI-compatible provider).
struct OpenAI {
    static constexpr std::string_view name = "openai";
    static constexpr bool requires_key = true;
    static constexpr bool chat_wire_is_unified = true;  // parse_chat reads OpenAI's JSON as is
    static constexpr std::string_view default_base_url = "https://api.openai.com";
    static constexpr std::string_view chat_path = "/v1/chat/completions";

    void build_chat(const BuildContext& ctx, HttpRequest& out) const {
        detail::build_openai_chat(ctx, out, default_base_url, chat_path);
    }

    void parse_chat(const HttpResponse& in, Outcome& out) const {
        detail::parse_openai_chat(in, out);
    }

    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        detail::build_openai_embedding(ctx, out, default_base_url, chat_path);
    }

    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        detail::parse_openai_other(in, out, [](std::string_view body, EmbeddingOutcome& o) {
            parse_embedding_response(body, o);
        });
    }

    void build_text_completion(const RequestContext<TextCompletionRequest>& ctx,
                               HttpRequest& out) const {
        detail::build_openai_text_completion(ctx, out, default_base_url, chat_path);
    }

    void parse_text_completion(const HttpResponse& in, TextCompletionOutcome& out) const {
        detail::parse_openai_other(in, out, [](std::string_view body, TextCompletionOutcome& o) {
            parse_text_completion_response(body, o);
        });
    }

    void build_list_models(const RequestContext<ListModelsRequest>& ctx, HttpRequest& out) const {
        detail::build_openai_list_models(ctx, out, default_base_url, chat_path);
    }

    void parse_list_models(const HttpResponse& in, ModelListOutcome& out) const {
        detail::parse_openai_other(
            in, out, [](std::string_view body, ModelListOutcome& o) { parse_model_list(body, o); });
    }

    using StreamDecoder = detail::OpenAIStreamDecoder;

    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        detail::build_openai_chat_stream(ctx, out, default_base_url, chat_path);
    }
};

static_assert(Provider<OpenAI> && StreamingProvider<OpenAI> && EmbeddingProvider<OpenAI> &&
              TextCompletionProvider<OpenAI> && ModelListingProvider<OpenAI>);

}  // namespace bifrost::providers
