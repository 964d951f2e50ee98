#pragma once
/// \file
/// What the native (non-OpenAI-format) providers share: reading key settings, applying
/// `extra_headers`, small JSON helpers, data: URL splitting, embedding helpers, and
/// `StreamQueue`, the state every stream decoder keeps (decoded chunks waiting for `next`, the
/// end marker, a failure).

#include <bifrost/concepts.hpp>
#include <bifrost/providers/openai.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/operation_outcome.hpp>
#include <bifrost/schema/stream.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost::providers::detail {

namespace json = boost::json;

/// The provider-specific settings object of `key` (`azure_key_config`, ...), or nullptr.
inline const json::object* key_settings(const Key* key, std::string_view name) noexcept {
    if (key == nullptr) return nullptr;
    const auto* v = key->settings.if_contains(name);
    return v != nullptr ? v->if_object() : nullptr;
}

/// The string member `name` of `o`, or empty.
inline std::string_view string_member(const json::object* o, std::string_view name) noexcept {
    if (o == nullptr) return {};
    const auto* v = o->if_contains(name);
    if (v == nullptr || !v->is_string()) return {};
    return v->get_string();
}

/// The string member `name` of `o`, or empty (value form).
inline std::string_view string_member(const json::value& o, std::string_view name) noexcept {
    return string_member(o.if_object(), name);
}

/// An integer member (int64, uint64 or an integral double), or `fallback`.
inline std::int64_t int_member(const json::object* o, std::string_view name,
                               std::int64_t fallback = 0) noexcept {
    if (o == nullptr) return fallback;
    const auto* v = o->if_contains(name);
    if (v == nullptr) return fallback;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
    if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
    return fallback;
}

/// The object member `name` of `o`, or nullptr.
inline const json::object* object_member(const json::object* o, std::string_view name) noexcept {
    if (o == nullptr) return nullptr;
    const auto* v = o->if_contains(name);
    return v != nullptr ? v->if_object() : nullptr;
}

/// The array member `name` of `o`, or nullptr.
inline const json::array* array_member(const json::object* o, std::string_view name) noexcept {
    if (o == nullptr) return nullptr;
    const auto* v = o->if_contains(name);
    return v != nullptr ? v->if_array() : nullptr;
}

/// The deployment a key maps `model` to (`deployments` in its key config), else `model`.
inline std::string_view deployment_for(const json::object* settings,
                                       std::string_view model) noexcept {
    if (const auto* d = object_member(settings, "deployments")) {
        if (const auto* v = d->if_contains(model); v != nullptr && v->is_string())
            return v->get_string();
    }
    return model;
}

/// Sets the configured `extra_headers` (they win over the provider's own headers).
inline void apply_extra_headers(const ProviderConfig& cfg, HttpRequest& out) {
    for (const auto& [name, value] : cfg.network_config.extra_headers)
        out.headers.set(name, value);
}

/// The message's text: `content`, or its text parts joined.
inline std::string message_text(const Message& m) {
    if (m.parts.empty()) return m.content;
    std::string s;
    for (const auto& p : m.parts)
        if (p.type == ContentPart::Type::text) s.append(p.text);
    return s;
}

/// A tool call's `arguments` text as a JSON value: the parsed object, or `{}` when the text is
/// empty or not a JSON object (upstreams that take structured input require an object).
inline json::value arguments_object(std::string_view arguments) {
    boost::system::error_code ec;
    auto v = json::parse(arguments, ec);
    if (ec || !v.is_object()) return json::object{};
    return v;
}

/// Serialized JSON text of `v` (tool-call arguments as OpenAI sends them).
inline std::string to_text(const json::value& v) {
    return json::serialize(v);
}

/// A data: URL split into its media type and base64 payload.
struct DataUrl {
    std::string_view media_type;
    std::string_view data;
};

/// Splits `data:<type>;base64,<data>`; false for any other URL.
inline bool parse_data_url(std::string_view url, DataUrl& out) noexcept {
    if (url.substr(0, 5) != "data:") return false;
    const auto comma = url.find(',');
    if (comma == std::string_view::npos) return false;
    std::string_view meta = url.substr(5, comma - 5);
    constexpr std::string_view b64 = ";base64";
    if (meta.size() < b64.size() || meta.substr(meta.size() - b64.size()) != b64) return false;
    out.media_type = meta.substr(0, meta.size() - b64.size());
    out.data = url.substr(comma + 1);
    return true;
}

/// Seconds since the epoch (`created` of mapped responses, which native APIs do not send).
inline std::int64_t unix_now() noexcept {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Parses an upstream body; on failure sets a 502 `invalid_upstream_response` and returns false.
inline bool parse_body(std::string_view body, json::value& out, Error& err, std::string_view what) {
    boost::system::error_code ec;
    out = json::parse(body, ec);
    if (!ec) return true;
    err.assign(502, error_type::bad_response,
               std::string("upstream response: ").append(what).append(" is not valid JSON"));
    return false;
}

/// Makes `out.response.choices` hold `n` choices with empty assistant messages (reusing
/// recycled ones) and drops a previous usage, so a reused outcome keeps nothing stale.
inline std::vector<Choice>& fresh_choices(Outcome& out, std::size_t n) {
    out.response.usage.reset();
    out.response.extra.clear();
    auto& choices = out.reuse_choices(n);
    for (std::size_t i = 0; i < choices.size(); ++i) {
        Choice& c = choices[i];
        c.index = static_cast<std::int64_t>(i);
        c.finish_reason.clear();
        c.logprobs = nullptr;
        c.message.role = Role::assistant;
        c.message.content.clear();
        c.message.parts.clear();
        c.message.name.clear();
        c.message.tool_calls.clear();
        c.message.tool_call_id.clear();
        c.message.extra.clear();
    }
    return choices;
}

/// Sets `usage` from prompt/completion counts (total computed when `total` is negative).
inline void set_usage(std::optional<Usage>& usage, std::int64_t prompt, std::int64_t completion,
                      std::int64_t total = -1) {
    usage.emplace();
    usage->prompt_tokens = prompt;
    usage->completion_tokens = completion;
    usage->total_tokens = total >= 0 ? total : prompt + completion;
}

/// The texts of an embeddings request. Native embedding APIs take text only: token-id input
/// and an empty input throw `InvalidRequest` naming `provider`.
inline const std::vector<std::string>& embedding_texts(const EmbeddingRequest& r,
                                                       std::string_view provider) {
    if (r.input.kind == TextInput::Kind::tokens || r.input.kind == TextInput::Kind::token_arrays)
        throw InvalidRequest(std::string(provider).append(
            ": embeddings take text input (a string or an array of strings), not token ids"));
    if (r.input.texts.empty())
        throw InvalidRequest(std::string(provider).append(": the embedding input is empty"));
    return r.input.texts;
}

/// A string the client sent among the request's extra fields (`input_type`, `task_type`, ...)
/// under `name` or `alias`, or empty.
inline std::string_view extra_string(const json::object& extra, std::string_view name,
                                     std::string_view alias = {}) noexcept {
    if (auto s = string_member(&extra, name); !s.empty()) return s;
    return alias.empty() ? std::string_view{} : string_member(&extra, alias);
}

/// Reads a JSON array of numbers into `out`; false when `v` is not one.
inline bool read_vector(const json::value* v, std::vector<float>& out) {
    const auto* a = v != nullptr ? v->if_array() : nullptr;
    if (a == nullptr) return false;
    out.clear();
    out.reserve(a->size());
    for (const auto& x : *a) {
        if (x.is_double())
            out.push_back(static_cast<float>(x.get_double()));
        else if (x.is_int64())
            out.push_back(static_cast<float>(x.get_int64()));
        else if (x.is_uint64())
            out.push_back(static_cast<float>(x.get_uint64()));
        else
            return false;
    }
    return true;
}

/// Empties `out` for a new embeddings response of `n` vectors (indexed 0..n-1) and returns them.
inline std::vector<Embedding>& fresh_embeddings(EmbeddingOutcome& out, std::size_t n) {
    out.error.clear();
    out.response = EmbeddingResponse{};
    out.response.data.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        out.response.data[i].index = static_cast<std::int64_t>(i);
    return out.response.data;
}

/// Fails `out` with a 502 saying the upstream's embeddings answer lacks `what`.
inline void bad_embedding_response(EmbeddingOutcome& out, std::string_view what) {
    out.fail(502, error_type::bad_response,
             std::string("upstream embeddings response: ").append(what));
}

/// Sets embeddings usage from a prompt token count (total = prompt).
inline void set_embedding_usage(EmbeddingOutcome& out, std::int64_t prompt_tokens) {
    out.response.usage.emplace();
    out.response.usage->prompt_tokens = prompt_tokens;
    out.response.usage->total_tokens = prompt_tokens;
}

/// Reads the float vectors of an embed answer: `embeddings.float` (v2, and v1 by type) or
/// `embeddings` as an array of vectors (v1's `embeddings_floats`), into `out`: Cohere's
/// API and Cohere models on Bedrock. False (with `out` failed) when neither is there.
inline bool read_cohere_embeddings(const json::object* o, EmbeddingOutcome& out) {
    const json::array* vectors = nullptr;
    if (const auto* e = o != nullptr ? o->if_contains("embeddings") : nullptr) {
        if (const auto* by_type = e->if_object())
            vectors = array_member(by_type, "float");
        else
            vectors = e->if_array();
    }
    if (vectors == nullptr) {
        bad_embedding_response(out, "expected \"embeddings\" with float vectors");
        return false;
    }
    auto& data = fresh_embeddings(out, vectors->size());
    for (std::size_t i = 0; i < vectors->size(); ++i) {
        if (!read_vector(&(*vectors)[i], data[i].embedding)) {
            bad_embedding_response(out, "an embedding is not an array of numbers");
            return false;
        }
    }
    return true;
}

/// The state of a stream decoder: chunks decoded and not yet taken, whether the end marker was
/// seen, whether the body ended, and a failure. `next` hands out the queued chunks first, then
/// `done` or the error. Not thread-safe: one per stream.
class StreamQueue {
  public:
    /// Appends an empty chunk carrying the stream's id and model, and returns it.
    StreamChunk& push(std::string_view id, std::string_view model) {
        StreamChunk& c = chunks_.emplace_back();
        c.id.assign(id);
        c.model.assign(model);
        c.created = created_;
        return c;
    }

    /// Appends a chunk with one choice (index 0) and returns that choice.
    ChoiceDelta& push_choice(std::string_view id, std::string_view model) {
        return push(id, model).choices.emplace_back();
    }

    /// The end marker was seen: after the queued chunks, `next` answers `done`.
    void end() noexcept { ended_ = true; }

    /// The stream failed: after the queued chunks, `next` answers `error`.
    void fail(int status, std::string_view type, std::string_view message) {
        if (failed_) return;
        failed_ = true;
        error_.assign(status, type, message);
    }
    void fail(Error e) {
        if (failed_) return;
        failed_ = true;
        error_ = std::move(e);
    }

    /// The body ended.
    void finish() noexcept { finished_ = true; }

    [[nodiscard]] bool ended() const noexcept { return ended_; }
    [[nodiscard]] bool failed() const noexcept { return failed_; }
    /// True once nothing more is accepted (end marker seen or failed).
    [[nodiscard]] bool closed() const noexcept { return ended_ || failed_; }

    /// The stream's `created` stamp, set once when the stream starts.
    void stamp() noexcept {
        if (created_ == 0) created_ = unix_now();
    }

    StreamStatus next(StreamChunk& chunk, Error& error) {
        if (!chunks_.empty()) {
            chunk = std::move(chunks_.front());
            chunks_.pop_front();
            return StreamStatus::chunk;
        }
        if (failed_) {
            error = error_;
            return StreamStatus::error;
        }
        if (ended_) return StreamStatus::done;
        if (finished_) {
            error.assign(502, error_type::bad_response,
                         "upstream stream ended before its end marker");
            return StreamStatus::error;
        }
        return StreamStatus::need_more;
    }

    void reset() noexcept {
        chunks_.clear();
        error_.clear();
        ended_ = failed_ = finished_ = false;
        created_ = 0;
    }

  private:
    std::deque<StreamChunk> chunks_;
    Error error_;
    std::int64_t created_ = 0;
    bool ended_ = false;
    bool failed_ = false;
    bool finished_ = false;
};

}  // namespace bifrost::providers::detail
