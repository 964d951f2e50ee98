#pragma once
/// \file
/// `providers::Bedrock`: Amazon Bedrock's Converse and ConverseStream APIs
/// (`POST /model/{modelId}/converse` and `/converse-stream`), one request shape for every model
/// family Bedrock hosts (Anthropic, Llama, Mistral, Titan, Cohere, ...), signed with AWS
/// Signature Version 4.
///
/// The key's `bedrock_key_config` gives `access_key`, `secret_key`, `session_token` (optional),
/// `region` (default us-east-1) and `deployments` (model -> model id or inference profile). A key
/// without an access key but with a `value` is sent as a Bedrock API key (bearer token) instead.
/// The endpoint is `https://bedrock-runtime.{region}.amazonaws.com`, or `network_config.base_url`.
///
/// Request mapping: system messages become `system` blocks; text parts `text` blocks; data: URL
/// images `image` blocks (bytes); an assistant's `tool_calls` become `toolUse` blocks and tool
/// messages `toolResult` blocks in a user turn; `max_tokens`, `temperature`, `top_p` and `stop`
/// go in `inferenceConfig`; tools become `toolConfig.tools[].toolSpec` and `tool_choice`
/// `toolConfig.toolChoice` (auto / any / tool). Response: text and `toolUse` blocks become the
/// message; `stopReason` end_turn, stop_sequence / max_tokens / tool_use / guardrail_intervened,
/// content_filtered become stop / length / tool_calls / content_filter; usage is Bedrock's.
/// Errors keep the HTTP status; the type comes from `x-amzn-ErrorType`.
///
/// The stream is AWS's binary event-stream framing (`detail/eventstream.hpp`, CRC-checked); its
/// events messageStart, contentBlockStart / Delta / Stop, messageStop and metadata map to chunks,
/// exception messages to an error.
///
/// Embeddings go through InvokeModel (`POST /model/{modelId}/invoke`, signed the same way) for
/// Titan text embeddings (`amazon.titan-embed-text-v1` / `-v2:0`: one text per request,
/// `dimensions` for v2) and Cohere embed models (`cohere.embed-*`: `texts`, `input_type` from
/// the client or `search_document`); other model ids are refused before anything is sent.
/// Vectors come back as floats; usage is the input token count Bedrock reports.

#include <bifrost/concepts.hpp>
#include <bifrost/providers/detail/eventstream.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/providers/detail/sigv4.hpp>
#include <bifrost/providers/openai.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost::providers {

namespace detail::bedrock {

inline std::string_view finish_reason(std::string_view r) noexcept {
    if (r == "end_turn" || r == "stop_sequence") return "stop";
    if (r == "max_tokens" || r == "model_context_window_exceeded") return "length";
    if (r == "tool_use") return "tool_calls";
    if (r == "guardrail_intervened" || r == "content_filtered") return "content_filter";
    return r;
}

/// The HTTP status Bedrock documents for an exception type (exceptions inside a stream arrive
/// after a 200).
inline int status_of(std::string_view type) noexcept {
    const auto is = [&](std::string_view t) { return type.size() == t.size() && iequals(type, t); };
    if (is("validationException")) return 400;
    if (is("accessDeniedException")) return 403;
    if (is("resourceNotFoundException")) return 404;
    if (is("modelTimeoutException")) return 408;
    if (is("modelNotReadyException")) return 429;
    if (is("throttlingException")) return 429;
    if (is("modelStreamErrorException")) return 424;
    if (is("serviceUnavailableException")) return 503;
    return 500;
}

inline json::object content_block(const ContentPart& p) {
    if (p.type == ContentPart::Type::text) return json::object{{"text", p.text}};
    DataUrl d;
    if (!parse_data_url(p.image_url, d))
        throw InvalidRequest("bedrock: images must be sent as data: URLs");
    std::string_view format = d.media_type;
    if (const auto slash = format.find('/'); slash != std::string_view::npos)
        format.remove_prefix(slash + 1);
    if (format == "jpg") format = "jpeg";
    return json::object{
        {"image", json::object{{"format", format}, {"source", json::object{{"bytes", d.data}}}}}};
}

inline json::object build_body(const BuildContext& ctx) {
    const ChatRequest& r = ctx.request;
    json::object body;
    json::array system;
    json::array messages;
    for (const Message& m : r.messages) {
        if (m.role == Role::system || m.role == Role::developer) {
            system.push_back(json::object{{"text", message_text(m)}});
            continue;
        }
        if (m.role == Role::tool || m.role == Role::function) {
            const std::string text = message_text(m);
            boost::system::error_code ec;
            auto parsed = json::parse(text, ec);
            json::array content;
            if (!ec && parsed.is_object())
                content.push_back(json::object{{"json", std::move(parsed)}});
            else
                content.push_back(json::object{{"text", text}});
            json::object block{{"toolResult", json::object{{"toolUseId", m.tool_call_id},
                                                           {"content", std::move(content)}}}};
            if (!messages.empty()) {
                auto& last = messages.back().as_object();
                auto& blocks = last["content"].as_array();
                if (last["role"] == "user" && !blocks.empty() &&
                    blocks.back().as_object().contains("toolResult")) {
                    blocks.push_back(std::move(block));
                    continue;
                }
            }
            messages.push_back(
                json::object{{"role", "user"}, {"content", json::array{std::move(block)}}});
            continue;
        }
        json::array content;
        if (m.parts.empty()) {
            if (!m.content.empty()) content.push_back(json::object{{"text", m.content}});
        } else {
            for (const auto& p : m.parts)
                if (p.type != ContentPart::Type::other) content.push_back(content_block(p));
        }
        for (const ToolCall& tc : m.tool_calls)
            content.push_back(
                json::object{{"toolUse", json::object{{"toolUseId", tc.id},
                                                      {"name", tc.name},
                                                      {"input", arguments_object(tc.arguments)}}}});
        messages.push_back(json::object{{"role", m.role == Role::assistant ? "assistant" : "user"},
                                        {"content", std::move(content)}});
    }
    body["messages"] = std::move(messages);
    if (!system.empty()) body["system"] = std::move(system);

    json::object inference;
    if (r.max_completion_tokens)
        inference["maxTokens"] = *r.max_completion_tokens;
    else if (r.max_tokens)
        inference["maxTokens"] = *r.max_tokens;
    if (r.temperature) inference["temperature"] = *r.temperature;
    if (r.top_p) inference["topP"] = *r.top_p;
    if (!r.stop.empty()) {
        json::array stops;
        for (const auto& s : r.stop)
            stops.push_back(json::string(s));
        inference["stopSequences"] = std::move(stops);
    }
    if (!inference.empty()) body["inferenceConfig"] = std::move(inference);

    if (!r.tools.empty()) {
        json::array tools;
        for (const Tool& t : r.tools) {
            json::object spec{{"name", t.name}};
            if (!t.description.empty()) spec["description"] = t.description;
            spec["inputSchema"] = json::object{
                {"json", t.parameters.is_object() ? t.parameters
                                                  : json::value(json::object{{"type", "object"}})}};
            tools.push_back(json::object{{"toolSpec", std::move(spec)}});
        }
        json::object config{{"tools", std::move(tools)}};
        if (r.tool_choice) {
            switch (r.tool_choice->mode) {
                case ToolChoice::Mode::auto_:
                    config["toolChoice"] = json::object{{"auto", json::object{}}};
                    break;
                case ToolChoice::Mode::required:
                    config["toolChoice"] = json::object{{"any", json::object{}}};
                    break;
                case ToolChoice::Mode::function:
                    config["toolChoice"] = json::object{
                        {"tool", json::object{{"name", r.tool_choice->function_name}}}};
                    break;
                case ToolChoice::Mode::none:
                    break;  // Converse has no "none": the model is left to decide
            }
        }
        body["toolConfig"] = std::move(config);
    }
    for (std::string_view k : {"additionalModelRequestFields", "guardrailConfig",
                               "performanceConfig", "additionalModelResponseFieldPaths"})
        if (const auto* v = r.extra.if_contains(k)) body[k] = *v;
    return body;
}

/// scheme://authority and the path prefix of a base URL.
struct BaseParts {
    std::string_view origin;     ///< "https://bedrock-runtime.us-east-1.amazonaws.com"
    std::string_view authority;  ///< "bedrock-runtime.us-east-1.amazonaws.com" (the Host header)
    std::string_view prefix;     ///< a path prefix ("" or "/proxy")
};

inline BaseParts split_base(std::string_view base) noexcept {
    BaseParts p;
    const auto scheme = base.find("://");
    const std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
    const auto slash = base.find('/', start);
    p.origin = base.substr(0, slash);
    p.authority = base.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (slash != std::string_view::npos) p.prefix = base.substr(slash);
    return p;
}

/// Fills a signed Bedrock runtime request: `POST {endpoint}/model/{id}{action}` with `body`,
/// the model id from the key's `deployments` (else `model`), SigV4-signed with the key's
/// `bedrock_key_config` at `clock()` (or the key's `value` as a Bedrock API key).
template <class Clock>
void build_signed(const Key* key, const ProviderConfig& config, std::string_view model,
                  std::string_view action, std::string body, std::string_view accept,
                  HttpRequest& out, Clock clock) {
    const auto* settings = key_settings(key, "bedrock_key_config");
    std::string_view region = string_member(settings, "region");
    if (region.empty()) region = "us-east-1";
    const sigv4::Credentials creds{string_member(settings, "access_key"),
                                   string_member(settings, "secret_key"),
                                   string_member(settings, "session_token")};
    const bool api_key = creds.access_key.empty() && key != nullptr && !key->value.empty();
    if (!api_key && (creds.access_key.empty() || creds.secret_key.empty()))
        throw std::invalid_argument(
            "bedrock: the key needs bedrock_key_config.access_key and secret_key (or a value "
            "holding a Bedrock API key)");

    std::string default_base;
    std::string_view base = detail::base_url(config, {});
    if (base.empty()) {
        default_base.assign("https://bedrock-runtime.").append(region).append(".amazonaws.com");
        base = default_base;
    }
    const BaseParts parts = split_base(base);
    std::string path(parts.prefix);
    path.append("/model/");
    sigv4::uri_encode(path, deployment_for(settings, model));
    path.append(action);

    out.method = HttpMethod::post;
    out.url.assign(parts.origin).append(path);
    out.body = std::move(body);
    out.headers.add("content-type", "application/json");
    out.headers.add("accept", accept);
    if (api_key) {
        out.headers.add_joined("authorization", "Bearer ", key->value.reveal());
        apply_extra_headers(config, out);
        return;
    }
    const std::string date = sigv4::amz_date(clock());
    out.headers.add("x-amz-date", date);
    if (!creds.session_token.empty()) out.headers.add("x-amz-security-token", creds.session_token);
    apply_extra_headers(config, out);

    std::vector<std::pair<std::string, std::string>> signed_headers{
        {"host", std::string(parts.authority)},
        {"content-type", std::string(out.headers.get("content-type"))},
        {"x-amz-date", date}};
    if (!creds.session_token.empty())
        signed_headers.emplace_back("x-amz-security-token", std::string(creds.session_token));
    const auto sig =
        sigv4::sign("POST", path, {}, signed_headers, out.body, creds, region, "bedrock", date);
    out.headers.set("authorization", sig.authorization);
}

template <class Clock>
void build(const BuildContext& ctx, HttpRequest& out, bool stream, Clock clock) {
    build_signed(ctx.key, ctx.config, ctx.model, stream ? "/converse-stream" : "/converse",
                 json::serialize(build_body(ctx)),
                 stream ? "application/vnd.amazon.eventstream" : "application/json", out, clock);
}

/// The embedding model families InvokeModel is mapped for.
enum class EmbeddingFamily : std::uint8_t { titan, cohere };

/// The family of a Bedrock model id (or inference profile: "us.cohere.embed-v4:0"); throws
/// `InvalidRequest` (400) for a model this mapping does not know.
inline EmbeddingFamily embedding_family(std::string_view model_id) {
    if (model_id.find("amazon.titan-embed-text") != std::string_view::npos)
        return EmbeddingFamily::titan;
    if (model_id.find("cohere.embed") != std::string_view::npos) return EmbeddingFamily::cohere;
    throw InvalidRequest(
        std::string("bedrock: embeddings are mapped for Titan text embeddings "
                    "(amazon.titan-embed-text-*) and Cohere embed models (cohere.embed-*), not '")
            .append(model_id)
            .append("'"));
}

/// The InvokeModel body for an embeddings request: Titan's `{"inputText"}` (one text per call;
/// `dimensions`, and a client `normalize`, for v2) or Cohere's `{"texts","input_type"}`.
inline std::string embedding_body(const EmbeddingRequest& r, std::string_view model_id) {
    const auto& texts = embedding_texts(r, "bedrock");
    json::object body;
    if (embedding_family(model_id) == EmbeddingFamily::titan) {
        if (texts.size() != 1)
            throw InvalidRequest(
                "bedrock: Titan text embeddings take one input per request, not " +
                std::to_string(texts.size()));
        body["inputText"] = texts.front();
        if (r.dimensions) body["dimensions"] = *r.dimensions;
        if (const auto* n = r.extra.if_contains("normalize"); n != nullptr && n->is_bool())
            body["normalize"] = n->get_bool();
    } else {
        json::array list;
        list.reserve(texts.size());
        for (const auto& t : texts)
            list.push_back(json::string(t));
        const auto input_type = extra_string(r.extra, "input_type");
        body["texts"] = std::move(list);
        body["input_type"] = input_type.empty() ? "search_document" : input_type;
        if (const auto t = extra_string(r.extra, "truncate"); !t.empty()) body["truncate"] = t;
        if (r.dimensions) body["output_dimension"] = *r.dimensions;
    }
    return json::serialize(body);
}

template <class Clock>
void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out, Clock clock) {
    const auto* settings = key_settings(ctx.key, "bedrock_key_config");
    build_signed(ctx.key, ctx.config, ctx.model, "/invoke",
                 embedding_body(ctx.request, deployment_for(settings, ctx.model)),
                 "application/json", out, clock);
}

inline void read_error(const HttpResponse& in, Error& out) {
    read_openai_error(in.status, in.body, {}, out);
    boost::system::error_code ec;
    const auto doc = json::parse(in.body, ec);
    if (!ec) {
        // Some AWS error bodies spell it "Message".
        if (const auto m = string_member(doc, "Message"); !m.empty()) out.message.assign(m);
    }
    std::string_view type = in.headers.get("x-amzn-errortype");
    if (const auto colon = type.find(':'); colon != std::string_view::npos)
        type = type.substr(0, colon);
    if (!type.empty()) out.type.assign(type);
}

inline void read_usage(const json::object* u, std::optional<Usage>& usage) {
    if (u == nullptr) return;
    set_usage(usage, int_member(u, "inputTokens"), int_member(u, "outputTokens"),
              int_member(u, "totalTokens", -1));
    for (std::string_view k : {"cacheReadInputTokens", "cacheWriteInputTokens"})
        if (const auto* v = u->if_contains(k)) usage->extra[k] = *v;
}

inline void parse(const HttpResponse& in, Outcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_error(in, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Converse response")) return;
    const auto* o = doc.if_object();
    const auto* msg = object_member(object_member(o, "output"), "message");
    const auto* content = array_member(msg, "content");
    if (content == nullptr) {
        out.fail(502, error_type::bad_response,
                 "upstream response: output.message.content: expected an array");
        return;
    }
    auto& r = out.response;
    r.id.assign(in.headers.get("x-amzn-requestid"));
    r.created = unix_now();
    Choice& c = fresh_choices(out, 1).front();
    c.index = 0;
    c.message.role = Role::assistant;
    for (const auto& bv : *content) {
        const auto* b = bv.if_object();
        if (b == nullptr) continue;
        if (const auto* t = b->if_contains("text"); t != nullptr && t->is_string()) {
            c.message.content.append(t->get_string());
        } else if (const auto* u = object_member(b, "toolUse")) {
            ToolCall& tc = c.message.tool_calls.emplace_back();
            tc.id.assign(string_member(u, "toolUseId"));
            tc.name.assign(string_member(u, "name"));
            const auto* input = u->if_contains("input");
            tc.arguments = input != nullptr ? to_text(*input) : "{}";
        }
    }
    c.finish_reason.assign(finish_reason(string_member(o, "stopReason")));
    read_usage(object_member(o, "usage"), r.usage);
}

/// Reads an InvokeModel embeddings answer: Titan's `{"embedding":[...],
/// "inputTextTokenCount"}` or Cohere's `{"embeddings":...}`; the token count also comes from
/// Bedrock's `x-amzn-bedrock-input-token-count` header.
inline void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_error(in, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "InvokeModel embeddings response")) return;
    const auto* o = doc.if_object();
    std::int64_t tokens = -1;
    if (const auto* titan = o != nullptr ? o->if_contains("embedding") : nullptr) {
        auto& data = fresh_embeddings(out, 1);
        if (!read_vector(titan, data[0].embedding)) {
            bad_embedding_response(out, "\"embedding\" is not an array of numbers");
            return;
        }
        tokens = int_member(o, "inputTextTokenCount", -1);
    } else if (!read_cohere_embeddings(o, out)) {
        return;
    }
    if (const auto h = in.headers.get("x-amzn-bedrock-input-token-count"); !h.empty()) {
        std::int64_t n = 0;
        const auto [end, ec] = std::from_chars(h.data(), h.data() + h.size(), n);
        if (ec == std::errc{} && end == h.data() + h.size()) tokens = n;
    }
    if (tokens >= 0) set_embedding_usage(out, tokens);
}

/// Maps ConverseStream's event-stream messages to chunks.
class Decoder {
  public:
    bool feed(std::string_view bytes) {
        if (q_.closed()) return true;
        frames_.feed(bytes);
        for (;;) {
            std::string why;
            const auto s = frames_.next(msg_, why);
            if (s == eventstream::Status::need_more) return true;
            if (s == eventstream::Status::error) {
                q_.fail(502, error_type::bad_response, "upstream event stream: " + why);
                return false;
            }
            on_message();
            if (q_.closed()) return true;
        }
    }
    StreamStatus next(StreamChunk& chunk, Error& error) { return q_.next(chunk, error); }
    void finish() noexcept {
        // metadata normally follows messageStop; a stream that stopped without it is complete.
        if (stopped_ && !frames_.partial()) q_.end();
        q_.finish();
    }
    void reset() noexcept {
        frames_.reset();
        q_.reset();
        tool_index_.clear();
        tools_ = 0;
        stopped_ = false;
    }

  private:
    void on_message() {
        const auto kind = msg_.header(":message-type");
        if (kind == "exception") {
            const auto type = msg_.header(":exception-type");
            boost::system::error_code ec;
            const auto doc = json::parse(msg_.payload, ec);
            std::string_view message = ec ? std::string_view{} : string_member(doc, "message");
            if (message.empty() && !ec) message = string_member(doc, "Message");
            q_.fail(status_of(type), type.empty() ? error_type::upstream : type,
                    message.empty() ? std::string_view("upstream stream reported an exception")
                                    : message);
            return;
        }
        if (kind == "error") {
            const auto code = msg_.header(":error-code");
            const auto message = msg_.header(":error-message");
            q_.fail(
                status_of(code), code.empty() ? error_type::upstream : code,
                message.empty() ? std::string_view("upstream stream reported an error") : message);
            return;
        }
        const auto type = msg_.header(":event-type");
        boost::system::error_code ec;
        const auto doc = json::parse(msg_.payload, ec);
        const auto* o = ec ? nullptr : doc.if_object();
        if (o == nullptr) {
            q_.fail(502, error_type::bad_response,
                    "upstream stream: an event payload is not a JSON object");
            return;
        }
        if (type == "messageStart") {
            q_.stamp();
            ChoiceDelta& d = q_.push_choice({}, {});
            d.role = Role::assistant;
            d.content.emplace();
        } else if (type == "contentBlockStart") {
            const auto* tool = object_member(object_member(o, "start"), "toolUse");
            if (tool == nullptr) return;
            const auto block = static_cast<std::size_t>(
                std::max<std::int64_t>(int_member(o, "contentBlockIndex"), 0));
            if (block >= tool_index_.size()) tool_index_.resize(block + 1, -1);
            tool_index_[block] = tools_;
            ToolCallDelta& t = q_.push_choice({}, {}).tool_calls.emplace_back();
            t.index = tools_++;
            t.id.assign(string_member(tool, "toolUseId"));
            t.type = "function";
            t.name.assign(string_member(tool, "name"));
        } else if (type == "contentBlockDelta") {
            const auto* delta = object_member(o, "delta");
            if (const auto* t = delta != nullptr ? delta->if_contains("text") : nullptr;
                t != nullptr && t->is_string()) {
                q_.push_choice({}, {}).content.emplace(t->get_string());
            } else if (const auto* tool = object_member(delta, "toolUse")) {
                const auto block = static_cast<std::size_t>(int_member(o, "contentBlockIndex"));
                const auto input = string_member(tool, "input");
                if (input.empty() || block >= tool_index_.size() || tool_index_[block] < 0) return;
                ToolCallDelta& call = q_.push_choice({}, {}).tool_calls.emplace_back();
                call.index = tool_index_[block];
                call.arguments.assign(input);
            }
        } else if (type == "messageStop") {
            q_.push_choice({}, {}).finish_reason.assign(
                finish_reason(string_member(o, "stopReason")));
            stopped_ = true;
        } else if (type == "metadata") {
            if (const auto* u = object_member(o, "usage")) read_usage(u, q_.push({}, {}).usage);
            if (stopped_) q_.end();
        }
        // contentBlockStop and event types added later carry nothing to map.
    }

    eventstream::Decoder frames_;
    eventstream::Message msg_;
    StreamQueue q_;
    std::vector<std::int64_t> tool_index_;  // content block index -> tool call index
    std::int64_t tools_ = 0;
    bool stopped_ = false;
};

}  // namespace detail::bedrock

/// Amazon Bedrock through the Converse API, SigV4-signed. Stateless apart from its clock.
struct Bedrock {
    static constexpr std::string_view name = "bedrock";
    static constexpr bool requires_key = true;

    /// Decodes a ConverseStream event stream into OpenAI-style chunks.
    using StreamDecoder = detail::bedrock::Decoder;

    /// The signing clock (replaceable for tests).
    std::chrono::system_clock::time_point (*clock)() = &std::chrono::system_clock::now;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const {
        detail::bedrock::build(ctx, out, false, clock);
    }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        detail::bedrock::build(ctx, out, true, clock);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const { detail::bedrock::parse(in, out); }

    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        detail::bedrock::build_embedding(ctx, out, clock);
    }
    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        detail::bedrock::parse_embedding(in, out);
    }
};

static_assert(Provider<Bedrock>);
static_assert(StreamingProvider<Bedrock>);
static_assert(EmbeddingProvider<Bedrock>);

}  // namespace bifrost::providers
