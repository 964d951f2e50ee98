#pragma once
/// \file
/// `providers::Gemini`: Google's Generative Language API (`generateContent` and
/// `streamGenerateContent?alt=sse` under `/v1beta/models/{model}`), keyed by `x-goog-api-key`.
///
/// Request mapping: system and developer messages become `systemInstruction`; user and tool
/// turns take role `user`, assistant turns role `model`; text parts become `text`, images
/// `inlineData` (data: URLs) or `fileData` (other URLs); an assistant's `tool_calls` become
/// `functionCall` parts and tool messages `functionResponse` parts (named after the call they
/// answer); `temperature`, `top_p`, `max_tokens`, `stop`, `n`, `seed`, penalties and JSON mode go
/// in `generationConfig`; tools become `functionDeclarations` and `tool_choice`
/// `toolConfig.functionCallingConfig`.
///
/// Response mapping: each candidate is a choice; `finishReason` STOP / MAX_TOKENS / SAFETY,
/// RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII become stop (tool_calls when the candidate
/// calls functions) / length / content_filter; `usageMetadata` becomes usage. Errors
/// (`{"error":{"code","message","status"}}`) keep the HTTP status; `status` becomes the type.
///
/// Gemini's stream has no end marker: it is complete when a `finishReason` was seen before the
/// body ended.
///
/// Embeddings: one string goes to `models/{model}:embedContent`, an array of strings to
/// `:batchEmbedContents` (one request per text); `dimensions` becomes `outputDimensionality`,
/// and the client's `task_type` / `taskType` and `title` go through. Vectors come back as
/// floats whatever `encoding_format` asked (OpenAI's SDKs accept either); usage is reported
/// when the answer carries `usageMetadata`.

#include <bifrost/concepts.hpp>
#include <bifrost/detail/sse.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/providers/openai.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost::providers {

namespace detail::gemini {

inline std::string_view finish_reason(std::string_view r, bool called_functions) noexcept {
    if (r == "STOP") return called_functions ? "tool_calls" : "stop";
    if (r == "MAX_TOKENS") return "length";
    if (r == "SAFETY" || r == "RECITATION" || r == "BLOCKLIST" || r == "PROHIBITED_CONTENT" ||
        r == "SPII" || r == "IMAGE_SAFETY")
        return "content_filter";
    if (r.empty() || r == "FINISH_REASON_UNSPECIFIED") return {};
    return "stop";  // OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...: the model stopped
}

/// A media type for a URL Gemini is given by reference (it requires one).
inline std::string_view guess_media_type(std::string_view url) noexcept {
    const auto ends = [&](std::string_view s) {
        return url.size() >= s.size() && url.substr(url.size() - s.size()) == s;
    };
    if (ends(".png")) return "image/png";
    if (ends(".webp")) return "image/webp";
    if (ends(".gif")) return "image/gif";
    if (ends(".pdf")) return "application/pdf";
    return "image/jpeg";
}

inline json::array parts_of(const Message& m) {
    json::array parts;
    if (m.parts.empty()) {
        if (!m.content.empty()) parts.push_back(json::object{{"text", m.content}});
        return parts;
    }
    for (const auto& p : m.parts) {
        if (p.type == ContentPart::Type::text) {
            parts.push_back(json::object{{"text", p.text}});
        } else if (p.type == ContentPart::Type::image_url) {
            DataUrl d;
            if (parse_data_url(p.image_url, d))
                parts.push_back(json::object{
                    {"inlineData", json::object{{"mimeType", d.media_type}, {"data", d.data}}}});
            else
                parts.push_back(json::object{
                    {"fileData", json::object{{"mimeType", guess_media_type(p.image_url)},
                                              {"fileUri", p.image_url}}}});
        }
    }
    return parts;
}

/// The name of the function a tool message answers: from the assistant call with its id.
inline std::string_view called_name(const ChatRequest& r, const Message& tool) noexcept {
    for (const Message& m : r.messages)
        for (const ToolCall& tc : m.tool_calls)
            if (tc.id == tool.tool_call_id) return tc.name;
    return tool.name;
}

inline json::object build_body(const BuildContext& ctx) {
    const ChatRequest& r = ctx.request;
    json::object body;
    std::string system;
    json::array contents;
    for (const Message& m : r.messages) {
        if (m.role == Role::system || m.role == Role::developer) {
            if (!system.empty()) system.append("\n\n");
            system.append(message_text(m));
            continue;
        }
        if (m.role == Role::tool || m.role == Role::function) {
            const std::string text = message_text(m);
            boost::system::error_code ec;
            json::value result = json::parse(text, ec);
            if (ec || !result.is_object()) result = json::object{{"content", text}};
            json::object part{{"functionResponse", json::object{{"name", called_name(r, m)},
                                                                {"response", std::move(result)}}}};
            // Consecutive tool results share one user turn.
            if (!contents.empty()) {
                auto& last = contents.back().as_object();
                auto& parts = last["parts"].as_array();
                if (last["role"] == "user" && !parts.empty() &&
                    parts.back().as_object().contains("functionResponse")) {
                    parts.push_back(std::move(part));
                    continue;
                }
            }
            contents.push_back(
                json::object{{"role", "user"}, {"parts", json::array{std::move(part)}}});
            continue;
        }
        json::array parts = parts_of(m);
        for (const ToolCall& tc : m.tool_calls)
            parts.push_back(json::object{
                {"functionCall",
                 json::object{{"name", tc.name}, {"args", arguments_object(tc.arguments)}}}});
        contents.push_back(json::object{{"role", m.role == Role::assistant ? "model" : "user"},
                                        {"parts", std::move(parts)}});
    }
    body["contents"] = std::move(contents);
    if (!system.empty())
        body["systemInstruction"] =
            json::object{{"parts", json::array{json::object{{"text", system}}}}};

    json::object gen;
    if (r.temperature) gen["temperature"] = *r.temperature;
    if (r.top_p) gen["topP"] = *r.top_p;
    if (r.max_completion_tokens)
        gen["maxOutputTokens"] = *r.max_completion_tokens;
    else if (r.max_tokens)
        gen["maxOutputTokens"] = *r.max_tokens;
    if (!r.stop.empty()) {
        json::array stops;
        for (const auto& s : r.stop)
            stops.push_back(json::string(s));
        gen["stopSequences"] = std::move(stops);
    }
    if (r.n) gen["candidateCount"] = *r.n;
    if (r.seed) gen["seed"] = *r.seed;
    if (r.presence_penalty) gen["presencePenalty"] = *r.presence_penalty;
    if (r.frequency_penalty) gen["frequencyPenalty"] = *r.frequency_penalty;
    if (r.response_format && r.response_format->type != ResponseFormat::Type::text) {
        gen["responseMimeType"] = "application/json";
        if (r.response_format->type == ResponseFormat::Type::json_schema) {
            if (const auto* s = object_member(r.response_format->json_schema.if_object(), "schema"))
                gen["responseJsonSchema"] = *s;
        }
    }
    if (!gen.empty()) body["generationConfig"] = std::move(gen);

    if (!r.tools.empty()) {
        json::array decls;
        for (const Tool& t : r.tools) {
            json::object d{{"name", t.name}};
            if (!t.description.empty()) d["description"] = t.description;
            if (t.parameters.is_object()) d["parameters"] = t.parameters;
            decls.push_back(std::move(d));
        }
        body["tools"] = json::array{json::object{{"functionDeclarations", std::move(decls)}}};
    }
    if (r.tool_choice) {
        json::object fc;
        switch (r.tool_choice->mode) {
            case ToolChoice::Mode::none:
                fc["mode"] = "NONE";
                break;
            case ToolChoice::Mode::auto_:
                fc["mode"] = "AUTO";
                break;
            case ToolChoice::Mode::required:
                fc["mode"] = "ANY";
                break;
            case ToolChoice::Mode::function:
                fc["mode"] = "ANY";
                fc["allowedFunctionNames"] =
                    json::array{json::string(r.tool_choice->function_name)};
                break;
        }
        body["toolConfig"] = json::object{{"functionCallingConfig", std::move(fc)}};
    }
    // Gemini-native request fields a client sent (safety settings, cached content) go through.
    for (std::string_view k : {"safetySettings", "cachedContent", "labels"})
        if (const auto* v = r.extra.if_contains(k)) body[k] = *v;
    return body;
}

/// The model id without a leading "models/".
inline std::string_view model_name(std::string_view model) noexcept {
    if (model.substr(0, 7) == "models/") model.remove_prefix(7);
    return model;
}

inline void build(const BuildContext& ctx, HttpRequest& out, std::string_view default_base_url,
                  bool stream) {
    const std::string_view model = model_name(ctx.model);
    out.method = HttpMethod::post;
    out.url.assign(base_url(ctx.config, default_base_url))
        .append("/v1beta/models/")
        .append(model)
        .append(stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
    out.headers.add("content-type", "application/json");
    if (ctx.key != nullptr && !ctx.key->value.empty())
        out.headers.add("x-goog-api-key", ctx.key->value.reveal());
    apply_extra_headers(ctx.config, out);
    out.body = json::serialize(build_body(ctx));
}

/// Reads a Google error body (`{"error":{"code","message","status"}}`, possibly inside an array)
/// keeping `status`.
inline void read_error(int status, std::string_view body, Error& out) {
    boost::system::error_code ec;
    auto doc = json::parse(body, ec);
    if (!ec && doc.is_array() && !doc.as_array().empty()) {
        const std::string inner = json::serialize(doc.as_array().front());
        read_error(status, inner, out);
        return;
    }
    read_openai_error(status, body, {}, out);
    const auto* err = ec ? nullptr : object_member(doc.if_object(), "error");
    if (const auto s = string_member(err, "status"); !s.empty()) out.type.assign(s);
}

/// Reads one candidate's parts: text appended to `text`, function calls to `calls`.
inline void read_parts(const json::object* content, std::string& text, std::vector<ToolCall>& calls,
                       std::size_t& call_counter) {
    const auto* parts = array_member(content, "parts");
    if (parts == nullptr) return;
    for (const auto& pv : *parts) {
        const auto* p = pv.if_object();
        if (p == nullptr) continue;
        if (const auto* t = p->if_contains("text"); t != nullptr && t->is_string()) {
            if (const auto* th = p->if_contains("thought");
                th != nullptr && th->is_bool() && th->get_bool())
                continue;  // thought summaries are not the answer
            text.append(t->get_string());
        } else if (const auto* f = object_member(p, "functionCall")) {
            ToolCall& tc = calls.emplace_back();
            tc.id.assign(string_member(f, "id"));
            if (tc.id.empty()) tc.id = "call_" + std::to_string(call_counter);
            ++call_counter;
            tc.name.assign(string_member(f, "name"));
            const auto* args = f->if_contains("args");
            tc.arguments = args != nullptr ? to_text(*args) : "{}";
        }
    }
}

inline void read_usage(const json::object* u, std::optional<Usage>& usage) {
    if (u == nullptr) return;
    set_usage(usage, int_member(u, "promptTokenCount"), int_member(u, "candidatesTokenCount"),
              int_member(u, "totalTokenCount", -1));
    for (std::string_view k : {"cachedContentTokenCount", "thoughtsTokenCount"})
        if (const auto* v = u->if_contains(k)) usage->extra[k] = *v;
}

inline void parse(const HttpResponse& in, Outcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_error(in.status, in.body, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Gemini response")) return;
    const auto* o = doc.if_object();
    if (o == nullptr) {
        out.fail(502, error_type::bad_response, "upstream response: expected an object");
        return;
    }
    auto& r = out.response;
    r.id.assign(string_member(o, "responseId"));
    r.model.assign(string_member(o, "modelVersion"));
    r.created = unix_now();
    const auto* candidates = array_member(o, "candidates");
    if (candidates == nullptr || candidates->empty()) {
        // The prompt itself was blocked: no candidate, only promptFeedback.
        Choice& c = fresh_choices(out, 1).front();
        c.index = 0;
        c.message.role = Role::assistant;
        c.finish_reason.assign(
            string_member(object_member(o, "promptFeedback"), "blockReason").empty()
                ? "stop"
                : "content_filter");
    } else {
        auto& choices = fresh_choices(out, candidates->size());
        std::size_t counter = 0;
        for (std::size_t i = 0; i < candidates->size(); ++i) {
            const auto* cand = (*candidates)[i].if_object();
            Choice& c = choices[i];
            c.index = int_member(cand, "index", static_cast<std::int64_t>(i));
            c.message.role = Role::assistant;
            read_parts(object_member(cand, "content"), c.message.content, c.message.tool_calls,
                       counter);
            c.finish_reason.assign(
                finish_reason(string_member(cand, "finishReason"), !c.message.tool_calls.empty()));
        }
    }
    read_usage(object_member(o, "usageMetadata"), r.usage);
}

/// One `EmbedContentRequest` (`model` is set inside a batch only).
inline json::object embed_request(const EmbeddingRequest& r, std::string_view text,
                                  std::string_view model) {
    json::object o;
    if (!model.empty()) o["model"] = std::string("models/").append(model);
    o["content"] = json::object{{"parts", json::array{json::object{{"text", text}}}}};
    if (const auto t = extra_string(r.extra, "task_type", "taskType"); !t.empty())
        o["taskType"] = t;
    if (const auto t = extra_string(r.extra, "title"); !t.empty()) o["title"] = t;
    if (r.dimensions) o["outputDimensionality"] = *r.dimensions;
    return o;
}

inline void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out,
                            std::string_view default_base_url) {
    const auto& texts = embedding_texts(ctx.request, "gemini");
    const std::string_view model = model_name(ctx.model);
    const bool batch = ctx.request.input.kind == TextInput::Kind::texts;
    out.method = HttpMethod::post;
    out.url.assign(base_url(ctx.config, default_base_url))
        .append("/v1beta/models/")
        .append(model)
        .append(batch ? ":batchEmbedContents" : ":embedContent");
    out.headers.add("content-type", "application/json");
    if (ctx.key != nullptr && !ctx.key->value.empty())
        out.headers.add("x-goog-api-key", ctx.key->value.reveal());
    apply_extra_headers(ctx.config, out);
    if (!batch) {
        out.body = json::serialize(embed_request(ctx.request, texts.front(), {}));
        return;
    }
    json::array requests;
    requests.reserve(texts.size());
    for (const auto& t : texts)
        requests.push_back(embed_request(ctx.request, t, model));
    out.body = json::serialize(json::object{{"requests", std::move(requests)}});
}

/// Reads an `embedContent` (`{"embedding":{"values":[...]}}`) or `batchEmbedContents`
/// (`{"embeddings":[{"values":[...]}, ...]}`) answer.
inline void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) {
    if (in.status < 200 || in.status >= 300) {
        read_error(in.status, in.body, out.error);
        return;
    }
    json::value doc;
    if (!parse_body(in.body, doc, out.error, "Gemini embeddings response")) return;
    const auto* o = doc.if_object();
    std::vector<const json::object*> vectors;
    if (const auto* one = object_member(o, "embedding")) {
        vectors.push_back(one);
    } else if (const auto* many = array_member(o, "embeddings")) {
        for (const auto& v : *many)
            vectors.push_back(v.if_object());
    } else {
        bad_embedding_response(out, "expected \"embedding\" or \"embeddings\"");
        return;
    }
    auto& data = fresh_embeddings(out, vectors.size());
    for (std::size_t i = 0; i < vectors.size(); ++i) {
        const auto* values = vectors[i] != nullptr ? vectors[i]->if_contains("values") : nullptr;
        if (!read_vector(values, data[i].embedding)) {
            bad_embedding_response(out, "an embedding has no \"values\" array of numbers");
            return;
        }
    }
    if (const auto* u = object_member(o, "usageMetadata"))
        set_embedding_usage(out, int_member(u, "promptTokenCount"));
}

/// Maps Gemini's SSE stream (each event a whole `GenerateContentResponse` carrying the next
/// parts) to chunks.
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
    void finish() noexcept {
        if (finished_) q_.end();
        q_.finish();
    }
    void reset() noexcept {
        sse_.reset();
        q_.reset();
        id_.clear();
        model_.clear();
        calls_.clear();
        started_.clear();
        finished_ = false;
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
        if (o->contains("error")) {
            Error failure;
            read_error(500, e.data, failure);
            const auto code = int_member(object_member(o, "error"), "code", 0);
            if (code >= 400 && code < 600) failure.status = static_cast<int>(code);
            q_.fail(std::move(failure));
            return;
        }
        if (id_.empty()) id_.assign(string_member(o, "responseId"));
        if (model_.empty()) model_.assign(string_member(o, "modelVersion"));
        q_.stamp();
        const auto* candidates = array_member(o, "candidates");
        bool finishing = false;
        if (candidates == nullptr || candidates->empty()) {
            if (!string_member(object_member(o, "promptFeedback"), "blockReason").empty()) {
                q_.push_choice(id_, model_).finish_reason = "content_filter";
                finishing = true;
            }
        } else {
            StreamChunk& c = q_.push(id_, model_);
            for (std::size_t i = 0; i < candidates->size(); ++i) {
                const auto* cand = (*candidates)[i].if_object();
                const auto index = int_member(cand, "index", static_cast<std::int64_t>(i));
                const auto slot = static_cast<std::size_t>(std::max<std::int64_t>(index, 0));
                if (slot >= calls_.size()) {
                    calls_.resize(slot + 1, 0);
                    started_.resize(slot + 1, false);
                }
                ChoiceDelta& d = c.choices.emplace_back();
                d.index = index;
                if (!started_[slot]) {
                    d.role = Role::assistant;
                    started_[slot] = true;
                }
                std::string text;
                std::vector<ToolCall> calls;
                std::size_t counter = calls_[slot];
                read_parts(object_member(cand, "content"), text, calls, counter);
                if (!text.empty() || d.role) d.content.emplace(std::move(text));
                for (auto& tc : calls) {
                    ToolCallDelta& t = d.tool_calls.emplace_back();
                    t.index = static_cast<std::int64_t>(calls_[slot]++);
                    t.id = std::move(tc.id);
                    t.type = "function";
                    t.name = std::move(tc.name);
                    t.arguments = std::move(tc.arguments);
                }
                const auto reason = string_member(cand, "finishReason");
                if (!reason.empty()) {
                    d.finish_reason.assign(finish_reason(reason, calls_[slot] > 0));
                    finishing = true;
                }
            }
        }
        if (finishing) {
            finished_ = true;
            if (const auto* u = object_member(o, "usageMetadata"))
                read_usage(u, q_.push(id_, model_).usage);
        }
    }

    bifrost::detail::SseParser sse_;
    StreamQueue q_;
    std::string id_;
    std::string model_;
    std::vector<std::size_t> calls_;  // per candidate: function calls so far
    std::vector<bool> started_;       // per candidate: role chunk sent
    bool finished_ = false;           // a finishReason was seen
};

}  // namespace detail::gemini

/// Google Gemini through the Generative Language API. Stateless; the key goes in
/// `x-goog-api-key`.
struct Gemini {
    static constexpr std::string_view name = "gemini";
    static constexpr bool requires_key = true;
    static constexpr std::string_view default_base_url =
        "https://generativelanguage.googleapis.com";

    /// Decodes a `streamGenerateContent?alt=sse` stream into OpenAI-style chunks.
    using StreamDecoder = detail::gemini::Decoder;

    void build_chat(const BuildContext& ctx, HttpRequest& out) const {
        detail::gemini::build(ctx, out, default_base_url, false);
    }
    void build_chat_stream(const BuildContext& ctx, HttpRequest& out) const {
        detail::gemini::build(ctx, out, default_base_url, true);
    }
    void parse_chat(const HttpResponse& in, Outcome& out) const { detail::gemini::parse(in, out); }

    void build_embedding(const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out) const {
        detail::gemini::build_embedding(ctx, out, default_base_url);
    }
    void parse_embedding(const HttpResponse& in, EmbeddingOutcome& out) const {
        detail::gemini::parse_embedding(in, out);
    }
};

static_assert(Provider<Gemini>);
static_assert(StreamingProvider<Gemini>);
static_assert(EmbeddingProvider<Gemini>);

}  // namespace bifrost::providers
