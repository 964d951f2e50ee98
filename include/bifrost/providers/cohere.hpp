#pragma once
/// \file
/// `providers::Cohere`: Cohere's v2 chat API (`POST /v2/chat`, bearer key), plain and streamed,
/// and v2 embed.
///
/// The v2 request is close to OpenAI's: messages keep their roles (system, user, assistant with
/// `tool_calls`, tool with `tool_call_id`); `top_p` becomes `p`, `stop` `stop_sequences`,
/// `tool_choice` required / none become `REQUIRED` / `NONE` (auto is the default; a named
/// function is sent as `REQUIRED` with only that tool). Responses carry content blocks, tool
/// calls, `finish_reason` (COMPLETE, STOP_SEQUENCE -> stop; MAX_TOKENS -> length; TOOL_CALL ->
/// tool_calls) and `usage.tokens`. The stream's events (message-start, content-delta,
/// tool-call-start / -delta, message-end, ...) map to chunks; message-end ends the stream.
///
/// Embeddings go to `POST /v2/embed`: the input strings become `texts`, `dimensions`
/// `output_dimension`; `input_type` (which v3+ models require) is the client's `input_type`,
/// else `search_document`; a client `truncate` goes through. Floats are asked for
/// (`embedding_types: ["float"]`) and returned whatever `encoding_format` said; usage is
/// `meta.billed_units.input_tokens`.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/sse.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/providers/openai.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <string_view>

namespace bifrost::providers {

namespace detail::cohere {

inline std::string_view finish_reason(std::string_view r) noexcept {
    if (r == "COMPLETE" || r == "STOP_SEQUENCE") return "stop";
    if (r == "MAX_TOKENS") return "length";
    if (r == "TOOL_CALL") return "tool_calls";
    if (r == "ERROR_TOXIC") return "content_filter";
    if (r.empty()) return {};
    return "stop";
}

inline json::object build_body(const BuildContext& ctx, bool stream) {
    const ChatRequest& r = ctx.request;
    json::object body;
    body["model"] = ctx.model;
    json::array messages;
    for (const Message& m : r.messages) {
        json::object msg;
        switch (m.role) {
            case Role::system:
            case Role::developer:
                msg["role"] = "system";
                break;
            case Role::user:
                msg["role"] = "user";
                break;
            case Role::assistant:
                msg["role"] = "assistant";
                break;
            case Role::tool:
            case Role::function:
                msg["role"] = "tool";
                msg["tool_call_id"] = m.tool_call_id;
                break;
        }
        if (m.parts.empty()) {
            if (!m.content.empty() || m.tool_calls.empty()) msg["content"] = m.content;
        } else {
            json::array parts;
            for (const auto& p : m.parts) {
                if (p.type == ContentPart::Type::text)
                    parts.push_back(json::object{{"type", "text"}, {"text", p.text}});
                else if (p.type == ContentPart::Type::image_url)
                    parts.push_back(json::object{
                        {"type", "image_url"}, {"image_url", json::object{{"url", p.image_url}}}});
            }
            msg["content"] = std::move(parts);
        }
        if (!m.tool_calls.empty()) {
            json::array calls;
            for (const ToolCall& tc : m.tool_calls)
                calls.push_back(json::object{
                    {"id", tc.id},
                    {"type", "function"},
                    {"function", json::object{{"name", tc.name}, {"arguments", tc.arguments}}}});
            msg["tool_calls"] = std::move(calls);
        }
        messages.push_back(std::move(msg));
    }
    body["messages"] = std::move(messages);

    const bool only_named = r.tool_choice && r.tool_choice->mode == ToolChoice::Mode::function;
    if (!r.tools.empty()) {
        json::array tools;
        for (const Tool& t : r.tools) {
            if (only_named && t.name != r.tool_choice->function_name) continue;
            json::object f{{"name", t.name}};
            if (!t.description.empty()) f["description"] = t.description;
            if (t.parameters.is_object()) f["parameters"] = t.parameters;
            tools.push_back(json::object{{"type", "function"}, {"function", std::move(f)}});
        }
        body["tools"] = std::move(tools);
    }
    if (r.tool_choice) {
        if (r.tool_choice->mode == ToolChoice::Mode::none) body["tool_choice"] = "NONE";
        if (r.tool_choice->mode == ToolChoice::Mode::required || only_named)
            body["tool_choice"] = "REQUIRED";
    }
    if (r.temperature) body["temperature"] = *r.temperature;
    if (r.top_p) body["p"] = *r.top_p;
    if (r.max_completion_tokens)
        body["max_tokens"] = *r.max_completion_tokens;
    else if (r.max_tokens)
        body["max_tokens"] = *r.max_tokens;
    if (!r.stop.empty()) {
        json::array stops;
        for (const auto& s : r.stop)
            stops.push_back(json::string(s));
        body["stop_sequences"] = std::move(stops);
    }
    if (r.seed) body["seed"] = *r.seed;
    if (r.frequency_penalty) body["frequency_penalty"] = *r.frequency_penalty;
    if (r.presence_penalty) body["presence_penalty"] = *r.presence_penalty;
    if (r.response_format && r.response_format->type != ResponseFormat::Type::text) {
        json::object rf{{"type", "json_object"}};
        if (const auto* s = object_member(r.response_format->json_schema.if_object(), "schema"))
            rf["json_schema"] = *s;
        body["response_format"] = std::move(rf);
    }
    for (std::string_view k : {"k", "documents", "citation_options", "safety_mode"})
        if (const auto* v = r.extra.if_contains(k)) body[k] = *v;
    if (stream) body["stream"] = true;
    return body;
}

inline void build(const BuildContext& ctx, HttpRequest& out, std::string_view default_base_url,
                  bool stream) {
    out.method = HttpMethod::post;
    out.url.assign(base_url(ctx.config, default_base_url)).append("/v2/chat");
    out.headers.add("content-type", "application/json");
    out.headers.add("accept", stream ? "text/event-stream" : "application/json");
    if (ctx.key != nullptr && !ctx.key->value.empty())
        out.headers.add_joined("authorization", "Bearer ", ctx.key->value.reveal());
    apply_extra_headers(ctx.config, out);
    out.body = json::serialize(build_body(ctx, stream));
}

inline void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out,
                            std::string_view default_base_url) {
    const auto& texts = embedding_texts(ctx.request, "cohere");
    out.method = HttpMethod::post;
    out.url.assign(base_url(ctx.config, default_base_url)).append("/v2/embed");
    out.headers.add("content-type", "application/json");
    out.headers.add("accept", "application/json");
    if (ctx.key != nullptr && !ctx.key->value.empty())
        out.headers.add_joined("authorization", "Bearer ", ctx.key->value.reveal());
    apply_extra_headers(ctx.config, out);
    json::array list;
    list.reserve(texts.size());
    for (const auto& t : texts)
        list.push_back(json::string(t));
    const auto input_type = extra_string(ctx.request.extra, "input_type");
    json::object body{{"model", ctx.model},
                      {"texts", std::move(list)},
                      {"input_type", input_type.empty() ? "search_document" : input_type},
                      {"embedding_types", json::array{"float"}}};
    if (ctx.request.dimensions) body["output_dimension"] = *ctx.request.dimensions;
    if (const auto t = extra_string(ctx.request.extra, "truncate"); !t.empty())
        body["truncate"] = t;
    out.body = json::serialize(body);
}

inline void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_openai_error(in.status, in.body, {}, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Cohere embed response")) return;
    const auto* o = doc.if_object();
    if (!read_cohere_embeddings(o, out)) return;
    if (const auto id = string_member(o, "id"); !id.empty()) out.response.extra["id"] = id;
    if (const auto* billed = object_member(object_member(o, "meta"), "billed_units"))
        set_embedding_usage(out, int_member(billed, "input_tokens"));
}

/// `usage.tokens` (what the model used), else `usage.billed_units`.
inline void read_usage(const json::object* usage, std::optional<Usage>& out) {
    if (usage == nullptr) return;
    const auto* t = object_member(usage, "tokens");
    if (t == nullptr) t = object_member(usage, "billed_units");
    if (t == nullptr) return;
    set_usage(out, int_member(t, "input_tokens"), int_member(t, "output_tokens"));
    if (const auto* b = usage->if_contains("billed_units")) out->extra["billed_units"] = *b;
}

inline void read_call(const json::object* c, ToolCall& tc) {
    tc.id.assign(string_member(c, "id"));
    const auto* f = object_member(c, "function");
    tc.name.assign(string_member(f, "name"));
    const auto* args = f != nullptr ? f->if_contains("arguments") : nullptr;
    if (args == nullptr)
        tc.arguments = "{}";
    else if (args->is_string())
        tc.arguments.assign(args->get_string());
    else
        tc.arguments = to_text(*args);
}

inline void parse(const HttpResponse& in, Outcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_openai_error(in.status, in.body, {}, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Cohere chat response")) return;
    const auto* o = doc.if_object();
    const auto* msg = object_member(o, "message");
    if (msg == nullptr) {
        out.fail(502, error_type::bad_response, "upstream response: message: expected an object");
        return;
    }
    auto& r = out.response;
    r.id.assign(string_member(o, "id"));
    r.created = unix_now();
    Choice& c = fresh_choices(out, 1).front();
    c.index = 0;
    c.message.role = Role::assistant;
    if (const auto* content = array_member(msg, "content")) {
        for (const auto& b : *content)
            if (string_member(b, "type") == "text")
                c.message.content.append(string_member(b, "text"));
    }
    if (const auto* calls = array_member(msg, "tool_calls")) {
        for (const auto& cv : *calls)
            read_call(cv.if_object(), c.message.tool_calls.emplace_back());
    }
    if (const auto plan = string_member(msg, "tool_plan"); !plan.empty())
        c.message.extra["tool_plan"] = plan;
    c.finish_reason.assign(finish_reason(string_member(o, "finish_reason")));
    read_usage(object_member(o, "usage"), r.usage);
}

/// Maps Cohere's v2 stream events to chunks.
class Decoder {
  public:
    bool feed(std::string_view bytes) {
        if (q_.closed()) return true;
        const bool ok = sse_.feed(bytes, [&](const bifrost::detail::SseEvent& e) { on_event(e); });
        if (!ok)
            q_.fail(502, error_type::bad_response,
                    "upstream stream: an event exceeds the size limit");
        return ok;
    }
    StreamStatus next(StreamChunk& chunk, Error& error) { return q_.next(chunk, error); }
    void finish() noexcept { q_.finish(); }
    void reset() noexcept {
        sse_.reset();
        q_.reset();
        id_.clear();
    }

  private:
    void on_event(const bifrost::detail::SseEvent& e) {
        if (q_.closed()) return;
        if (e.done()) {  // not sent by v2, harmless if a proxy adds it
            q_.end();
            return;
        }
        boost::system::error_code ec;
        const auto doc = json::parse(e.data, ec);
        const auto* o = ec ? nullptr : doc.if_object();
        if (o == nullptr) {
            q_.fail(502, error_type::bad_response,
                    "upstream stream: an event is not a JSON object");
            return;
        }
        std::string_view type = string_member(o, "type");
        if (type.empty()) type = e.event;
        const auto* delta = object_member(o, "delta");
        const auto* msg = object_member(delta, "message");
        if (type == "message-start") {
            id_.assign(string_member(o, "id"));
            q_.stamp();
            ChoiceDelta& d = q_.push_choice(id_, {});
            d.role = Role::assistant;
            d.content.emplace();
        } else if (type == "content-delta") {
            const auto text = string_member(object_member(msg, "content"), "text");
            q_.push_choice(id_, {}).content.emplace(text);
        } else if (type == "tool-plan-delta") {
            ChoiceDelta& d = q_.push_choice(id_, {});
            d.extra["tool_plan"] = string_member(msg, "tool_plan");
        } else if (type == "tool-call-start") {
            ToolCall tc;
            read_call(object_member(msg, "tool_calls"), tc);
            ToolCallDelta& t = q_.push_choice(id_, {}).tool_calls.emplace_back();
            t.index = int_member(o, "index");
            t.id = std::move(tc.id);
            t.type = "function";
            t.name = std::move(tc.name);
            // Arguments follow in tool-call-delta events; a start that already carries some
            // keeps them.
            const auto* f = object_member(object_member(msg, "tool_calls"), "function");
            t.arguments.assign(string_member(f, "arguments"));
        } else if (type == "tool-call-delta") {
            const auto* f = object_member(object_member(msg, "tool_calls"), "function");
            const auto args = string_member(f, "arguments");
            if (args.empty()) return;
            ToolCallDelta& t = q_.push_choice(id_, {}).tool_calls.emplace_back();
            t.index = int_member(o, "index");
            t.arguments.assign(args);
        } else if (type == "message-end") {
            const auto reason = string_member(delta, "finish_reason");
            q_.push_choice(id_, {}).finish_reason.assign(finish_reason(reason));
            if (const auto* u = object_member(delta, "usage"))
                read_usage(u, q_.push(id_, {}).usage);
            if (reason == "ERROR") {
                q_.fail(500, error_type::upstream,
                        string_member(delta, "error").empty()
                            ? std::string_view("upstream stream ended with an error")
                            : string_member(delta, "error"));
                return;
            }
            q_.end();
        } else if (type == "error") {
            Error failure;
            read_openai_error(500, e.data, {}, failure);
            q_.fail(std::move(failure));
        }
        // content-start, content-end, tool-call-end, citation-* carry nothing to map.
    }

    bifrost::detail::SseParser sse_;
    StreamQueue q_;
    std::string id_;
};

}  // namespace detail::cohere

/// Cohere's v2 chat API. Stateless; the key is a bearer token.
struct Cohere {
    static constexpr std::string_view name = "cohere";
    static constexpr bool requires_key = true;
    static constexpr std::string_view default_base_url = "https://api.cohere.com";

    /// Decodes a v2 chat event stream into OpenAI-style chunks.
    using StreamDecoder = detail::cohere::Decoder;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const {
        detail::cohere::build(ctx, out, default_base_url, false);
    }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        detail::cohere::build(ctx, out, default_base_url, true);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const { detail::cohere::parse(in, out); }

    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        detail::cohere::build_embedding(ctx, out, default_base_url);
    }
    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        detail::cohere::parse_embedding(in, out);
    }
};

static_assert(Provider<Cohere>);
static_assert(StreamingProvider<Cohere>);
static_assert(EmbeddingProvider<Cohere>);

}  // namespace bifrost::providers
