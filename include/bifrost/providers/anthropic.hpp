#pragma once
/// \file
/// `providers::Anthropic`: Anthropic's Messages API (`POST /v1/messages`), plain and streamed.
///
/// Request mapping: system and developer messages are lifted into `system`; `max_tokens` (or
/// `max_completion_tokens`) is required by the API and defaults to 4096; `stop` becomes
/// `stop_sequences`; tools become `{name, description, input_schema}`; `tool_choice` auto /
/// required / a function / none become `auto` / `any` / `tool` / `none`; an assistant's
/// `tool_calls` become `tool_use` blocks and tool messages `tool_result` blocks of a user turn;
/// image parts become `image` blocks (data: URLs as a base64 source, others as a url source).
/// The key goes in `x-api-key`, with `anthropic-version: 2023-06-01`.
///
/// Response mapping: text blocks become the message content, `tool_use` blocks its
/// `tool_calls`; `stop_reason` end_turn / stop_sequence / max_tokens / tool_use becomes
/// stop / stop / length / tool_calls; `input_tokens` / `output_tokens` become prompt /
/// completion tokens. Errors (`{"type":"error","error":{"type","message"}}`) keep the HTTP status.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/sse.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/providers/openai.hpp>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost::providers {

namespace detail::anthropic {

inline constexpr std::int64_t default_max_tokens = 4096;

inline std::string_view finish_reason(std::string_view stop_reason) noexcept {
    if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
    if (stop_reason == "max_tokens") return "length";
    if (stop_reason == "tool_use") return "tool_calls";
    if (stop_reason == "refusal") return "content_filter";
    return stop_reason;
}

/// The HTTP status Anthropic documents for each error type (used for errors inside a stream,
/// which arrive after a 200).
inline int status_of(std::string_view type) noexcept {
    if (type == "invalid_request_error") return 400;
    if (type == "authentication_error") return 401;
    if (type == "permission_error") return 403;
    if (type == "not_found_error") return 404;
    if (type == "request_too_large") return 413;
    if (type == "rate_limit_error") return 429;
    if (type == "overloaded_error") return 529;
    return 500;
}

inline json::object image_block(const ContentPart& p) {
    json::object source;
    DataUrl d;
    if (parse_data_url(p.image_url, d)) {
        source["type"] = "base64";
        source["media_type"] = d.media_type;
        source["data"] = d.data;
    } else {
        source["type"] = "url";
        source["url"] = p.image_url;
    }
    return json::object{{"type", "image"}, {"source", std::move(source)}};
}

inline json::array content_blocks(const Message& m) {
    json::array blocks;
    if (m.parts.empty()) {
        if (!m.content.empty())
            blocks.push_back(json::object{{"type", "text"}, {"text", m.content}});
    } else {
        for (const auto& p : m.parts) {
            if (p.type == ContentPart::Type::text)
                blocks.push_back(json::object{{"type", "text"}, {"text", p.text}});
            else if (p.type == ContentPart::Type::image_url)
                blocks.push_back(image_block(p));
            else if (p.raw.is_object())
                blocks.push_back(p.raw);  // an Anthropic-native block passed through
        }
    }
    return blocks;
}

inline json::object build_body(const BuildContext& ctx, bool stream) {
    const ChatRequest& r = ctx.request;
    json::object body;
    body["model"] = ctx.model;
    body["max_tokens"] = r.max_completion_tokens ? *r.max_completion_tokens
                         : r.max_tokens          ? *r.max_tokens
                                                 : default_max_tokens;

    std::string system;
    json::array messages;
    for (const Message& m : r.messages) {
        if (m.role == Role::system || m.role == Role::developer) {
            if (!system.empty()) system.append("\n\n");
            system.append(message_text(m));
            continue;
        }
        if (m.role == Role::tool || m.role == Role::function) {
            json::object result{{"type", "tool_result"},
                                {"tool_use_id", m.tool_call_id},
                                {"content", message_text(m)}};
            // Consecutive tool results share one user turn.
            if (!messages.empty()) {
                auto& last = messages.back().as_object();
                auto& content = last["content"];
                if (last["role"] == "user" && content.is_array() && !content.as_array().empty() &&
                    string_member(content.as_array().front(), "type") == "tool_result") {
                    content.as_array().push_back(std::move(result));
                    continue;
                }
            }
            messages.push_back(
                json::object{{"role", "user"}, {"content", json::array{std::move(result)}}});
            continue;
        }
        json::object msg;
        msg["role"] = m.role == Role::assistant ? "assistant" : "user";
        if (m.tool_calls.empty() && m.parts.empty()) {
            msg["content"] = m.content;
        } else {
            json::array blocks = content_blocks(m);
            for (const ToolCall& tc : m.tool_calls)
                blocks.push_back(json::object{{"type", "tool_use"},
                                              {"id", tc.id},
                                              {"name", tc.name},
                                              {"input", arguments_object(tc.arguments)}});
            msg["content"] = std::move(blocks);
        }
        messages.push_back(std::move(msg));
    }
    if (!system.empty()) body["system"] = system;
    body["messages"] = std::move(messages);

    if (r.temperature) body["temperature"] = *r.temperature;
    if (r.top_p) body["top_p"] = *r.top_p;
    if (!r.stop.empty()) {
        json::array stops;
        for (const auto& s : r.stop)
            stops.push_back(json::string(s));
        body["stop_sequences"] = std::move(stops);
    }
    if (!r.tools.empty()) {
        json::array tools;
        for (const Tool& t : r.tools) {
            json::object tool{{"name", t.name}};
            if (!t.description.empty()) tool["description"] = t.description;
            tool["input_schema"] = t.parameters.is_object()
                                       ? t.parameters
                                       : json::value(json::object{{"type", "object"}});
            tools.push_back(std::move(tool));
        }
        body["tools"] = std::move(tools);
    }
    if (r.tool_choice || r.parallel_tool_calls == false) {
        json::object choice;
        const auto mode = r.tool_choice ? r.tool_choice->mode : ToolChoice::Mode::auto_;
        switch (mode) {
            case ToolChoice::Mode::none:
                choice["type"] = "none";
                break;
            case ToolChoice::Mode::auto_:
                choice["type"] = "auto";
                break;
            case ToolChoice::Mode::required:
                choice["type"] = "any";
                break;
            case ToolChoice::Mode::function:
                choice["type"] = "tool";
                choice["name"] = r.tool_choice->function_name;
                break;
        }
        if (r.parallel_tool_calls == false && mode != ToolChoice::Mode::none)
            choice["disable_parallel_tool_use"] = true;
        body["tool_choice"] = std::move(choice);
    }
    if (!r.user.empty()) body["metadata"] = json::object{{"user_id", r.user}};
    // Anthropic rejects unknown fields: only its own extras are forwarded.
    for (std::string_view k : {"top_k", "metadata", "thinking", "service_tier"})
        if (const auto* v = r.extra.if_contains(k)) body[k] = *v;
    if (stream) body["stream"] = true;
    return body;
}

inline void build(const BuildContext& ctx, HttpRequest& out, std::string_view default_base_url,
                  bool stream) {
    out.method = HttpMethod::post;
    out.url.assign(base_url(ctx.config, default_base_url)).append("/v1/messages");
    out.headers.add("content-type", "application/json");
    if (ctx.key != nullptr && !ctx.key->value.empty())
        out.headers.add("x-api-key", ctx.key->value.reveal());
    out.headers.add("anthropic-version", "2023-06-01");
    apply_extra_headers(ctx.config, out);
    out.body = json::serialize(build_body(ctx, stream));
}

inline void parse(const HttpResponse& in, Outcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_openai_error(in.status, in.body, {}, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Anthropic message")) return;
    const auto* o = doc.if_object();
    const auto* content = array_member(o, "content");
    if (o == nullptr || content == nullptr) {
        out.fail(502, error_type::bad_response, "upstream response: content: expected an array");
        return;
    }
    auto& r = out.response;
    r.id.assign(string_member(o, "id"));
    r.model.assign(string_member(o, "model"));
    r.created = unix_now();
    Choice& c = fresh_choices(out, 1).front();
    c.index = 0;
    c.message.role = Role::assistant;
    for (const auto& b : *content) {
        const auto* block = b.if_object();
        const auto type = string_member(block, "type");
        if (type == "text") {
            c.message.content.append(string_member(block, "text"));
        } else if (type == "tool_use") {
            ToolCall& tc = c.message.tool_calls.emplace_back();
            tc.id.assign(string_member(block, "id"));
            tc.name.assign(string_member(block, "name"));
            const auto* input = block->if_contains("input");
            tc.arguments = input != nullptr ? to_text(*input) : "{}";
        }
    }
    c.finish_reason.assign(finish_reason(string_member(o, "stop_reason")));
    if (const auto* u = object_member(o, "usage")) {
        set_usage(r.usage, int_member(u, "input_tokens"), int_member(u, "output_tokens"));
        for (std::string_view k : {"cache_creation_input_tokens", "cache_read_input_tokens"})
            if (const auto* v = u->if_contains(k)) r.usage->extra[k] = *v;
    }
}

/// Maps Anthropic's stream events to chunks.
class Decoder {
  public:
    bool feed(std::string_view bytes) {
        if (q_.closed()) return true;  // nothing after the end marker or a failure matters
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
        model_.clear();
        tool_index_.clear();
        input_tokens_ = 0;
        tools_ = 0;
    }

  private:
    void on_event(const bifrost::detail::SseEvent& e) {
        if (q_.closed()) return;
        boost::system::error_code ec;
        const auto doc = json::parse(e.data, ec);
        const auto* o = ec ? nullptr : doc.if_object();
        if (o == nullptr) {
            q_.fail(502, error_type::bad_response,
                    "upstream stream: an event is not a JSON object");
            return;
        }
        const auto type = string_member(o, "type");
        if (type == "message_start") {
            const auto* m = object_member(o, "message");
            id_.assign(string_member(m, "id"));
            model_.assign(string_member(m, "model"));
            input_tokens_ = int_member(object_member(m, "usage"), "input_tokens");
            q_.stamp();
            ChoiceDelta& d = q_.push_choice(id_, model_);
            d.role = Role::assistant;
            d.content.emplace();
        } else if (type == "content_block_start") {
            const auto* b = object_member(o, "content_block");
            const auto btype = string_member(b, "type");
            if (btype == "tool_use") {
                const auto index = int_member(o, "index");
                tool_index_.resize(static_cast<std::size_t>(std::max<std::int64_t>(index, 0)) + 1,
                                   -1);
                tool_index_[static_cast<std::size_t>(std::max<std::int64_t>(index, 0))] = tools_;
                ChoiceDelta& d = q_.push_choice(id_, model_);
                ToolCallDelta& t = d.tool_calls.emplace_back();
                t.index = tools_++;
                t.id.assign(string_member(b, "id"));
                t.type = "function";
                t.name.assign(string_member(b, "name"));
            } else if (btype == "text") {
                if (const auto text = string_member(b, "text"); !text.empty())
                    q_.push_choice(id_, model_).content.emplace(text);
            }
        } else if (type == "content_block_delta") {
            const auto* delta = object_member(o, "delta");
            const auto dtype = string_member(delta, "type");
            if (dtype == "text_delta") {
                q_.push_choice(id_, model_).content.emplace(string_member(delta, "text"));
            } else if (dtype == "input_json_delta") {
                const auto part = string_member(delta, "partial_json");
                const auto index = static_cast<std::size_t>(int_member(o, "index"));
                if (part.empty() || index >= tool_index_.size() || tool_index_[index] < 0) return;
                ToolCallDelta& t = q_.push_choice(id_, model_).tool_calls.emplace_back();
                t.index = tool_index_[index];
                t.arguments.assign(part);
            }
        } else if (type == "message_delta") {
            const auto* delta = object_member(o, "delta");
            const auto stop = string_member(delta, "stop_reason");
            if (!stop.empty())
                q_.push_choice(id_, model_).finish_reason.assign(finish_reason(stop));
            if (const auto* u = object_member(o, "usage")) {
                const auto input = int_member(u, "input_tokens", input_tokens_);
                StreamChunk& c = q_.push(id_, model_);
                set_usage(c.usage, input, int_member(u, "output_tokens"));
            }
        } else if (type == "message_stop") {
            q_.end();
        } else if (type == "error") {
            const auto* err = object_member(o, "error");
            const auto etype = string_member(err, "type");
            Error failure;
            failure.assign(status_of(etype), etype.empty() ? error_type::upstream : etype,
                           string_member(err, "message"));
            if (failure.message.empty()) failure.message = "upstream stream reported an error";
            q_.fail(std::move(failure));
        }
        // ping, content_block_stop and event types added later carry nothing to map.
    }

    bifrost::detail::SseParser sse_;
    StreamQueue q_;
    std::string id_;
    std::string model_;
    std::vector<std::int64_t> tool_index_;  // content block index -> tool call index
    std::int64_t input_tokens_ = 0;
    std::int64_t tools_ = 0;
};

}  // namespace detail::anthropic

/// Anthropic's Messages API. Stateless; the key goes in `x-api-key`.
struct Anthropic {
    static constexpr std::string_view name = "anthropic";
    static constexpr bool requires_key = true;
    static constexpr std::string_view default_base_url = "https://api.anthropic.com";

    /// Decodes a `/v1/messages` event stream into OpenAI-style chunks.
    using StreamDecoder = detail::anthropic::Decoder;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const {
        detail::anthropic::build(ctx, out, default_base_url, false);
    }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        detail::anthropic::build(ctx, out, default_base_url, true);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const {
        detail::anthropic::parse(in, out);
    }
};

static_assert(Provider<Anthropic>);
static_assert(StreamingProvider<Anthropic>);

}  // namespace bifrost::providers
