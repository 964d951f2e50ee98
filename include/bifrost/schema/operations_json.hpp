#pragma once
/// \file
/// JSON conversions of the embeddings, text-completion and model-list schemas, both ways, in
/// OpenAI's wire format, with the same rules as the chat conversions in `json.hpp`: reading is
/// strict and says what and where (`input: expected a string or an array, got a number`), unknown
/// fields are kept in `extra` and written back out, writing appends to a caller's string.
///
/// Requests read into a 400 `invalid_request_error`; upstream responses read into a 502
/// `invalid_upstream_response` in the outcome, leniently where OpenAI-compatible servers differ
/// (`object`, `model`, `usage`, `index` may be missing; `null` stands for "absent").

#include <bifrost/detail/json_writer.hpp>
#include <bifrost/schema/completion.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/json.hpp>
#include <bifrost/schema/models.hpp>
#include <bifrost/schema/operation_outcome.hpp>

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost {

// ---- reading -------------------------------------------------------------------------------

/// Parses an OpenAI-format embeddings request. On failure returns false and sets `err` to a 400
/// naming the field. `out` is assigned field by field (fields the input lacks are reset).
inline bool parse_embedding_request(std::string_view text, EmbeddingRequest& out, Error& err);
/// Reads an already-parsed document (same rules as `parse_embedding_request`).
inline bool read_embedding_request(const boost::json::value& v, EmbeddingRequest& out, Error& err);

/// Parses an OpenAI-format embeddings response into `out.response`. On failure returns false and
/// sets `out.error` (502 `invalid_upstream_response`, naming the field).
inline bool parse_embedding_response(std::string_view text, EmbeddingOutcome& out);
inline bool read_embedding_response(const boost::json::value& v, EmbeddingOutcome& out);

/// Parses an OpenAI-format legacy completions request (as `parse_embedding_request`).
inline bool parse_text_completion_request(std::string_view text, TextCompletionRequest& out,
                                          Error& err);
inline bool read_text_completion_request(const boost::json::value& v, TextCompletionRequest& out,
                                         Error& err);

/// Parses an OpenAI-format legacy completions response (as `parse_embedding_response`).
inline bool parse_text_completion_response(std::string_view text, TextCompletionOutcome& out);
inline bool read_text_completion_response(const boost::json::value& v, TextCompletionOutcome& out);

/// Parses an OpenAI-format model list (`GET /v1/models`) (as `parse_embedding_response`).
inline bool parse_model_list(std::string_view text, ModelListOutcome& out);

// ---- writing -------------------------------------------------------------------------------

/// Appends the OpenAI JSON form of `r` to `out` (`opts` as for `write_chat_request`).
inline void write_embedding_request(std::string& out, const EmbeddingRequest& r,
                                    const RequestWriteOptions& opts = {});
/// Appends the OpenAI JSON form of `r` to `out`, with `extra_fields` when a provider is set.
inline void write_embedding_response(std::string& out, const EmbeddingResponse& r);

inline void write_text_completion_request(std::string& out, const TextCompletionRequest& r,
                                          const RequestWriteOptions& opts = {});
inline void write_text_completion_response(std::string& out, const TextCompletionResponse& r);

/// Appends `{"object":"list","data":[...]}`; with `id_prefix` ("openai/") before each id.
inline void write_model_list(std::string& out, const ModelList& r, std::string_view id_prefix = {});

}  // namespace bifrost

namespace bifrost::detail::json_impl {

// ---- text or tokens ------------------------------------------------------------------------

/// Reads a string, an array of strings, an array of token ids or an array of token-id arrays.
/// The first element of an array decides which form the others must have.
inline bool read_text_input(const Reader& rd, const json::value& v, const Path* at,
                            TextInput& out) {
    if (const json::string* s = v.if_string()) {
        out.kind = TextInput::Kind::text;
        out.texts.resize(1);
        out.texts[0].assign(s->data(), s->size());
        out.tokens.clear();
        out.token_arrays.clear();
        return true;
    }
    const json::array* a = v.if_array();
    if (a == nullptr) return type_error(rd, at, "a string or an array", v);
    if (a->empty()) return rd.fail(at, {"must not be empty"});
    const json::value& first = (*a)[0];
    if (first.is_string()) {
        out.kind = TextInput::Kind::texts;
        out.tokens.clear();
        out.token_arrays.clear();
        out.texts.resize(a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
            const Path pi(at, i);
            if (!read_value(rd, (*a)[i], &pi, out.texts[i])) return false;
        }
        return true;
    }
    if (first.is_number()) {
        out.kind = TextInput::Kind::tokens;
        out.texts.clear();
        out.token_arrays.clear();
        out.tokens.resize(a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
            const Path pi(at, i);
            if (!read_value(rd, (*a)[i], &pi, out.tokens[i])) return false;
        }
        return true;
    }
    if (first.is_array()) {
        out.kind = TextInput::Kind::token_arrays;
        out.texts.clear();
        out.tokens.clear();
        out.token_arrays.resize(a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
            const Path pi(at, i);
            const json::array* inner = nullptr;
            if (!as_array(rd, (*a)[i], &pi, inner)) return false;
            if (inner->empty()) return rd.fail(&pi, {"must not be empty"});
            auto& dst = out.token_arrays[i];
            dst.resize(inner->size());
            for (std::size_t k = 0; k < inner->size(); ++k) {
                const Path pk(&pi, k);
                if (!read_value(rd, (*inner)[k], &pk, dst[k])) return false;
            }
        }
        return true;
    }
    const Path p0(at, std::size_t{0});
    return type_error(rd, &p0, "a string, a token id or an array of token ids", first);
}

/// A required text-or-tokens member.
inline bool required_text_input(const Reader& rd, const json::object& o, std::string_view key,
                                TextInput& out) {
    const Path p(nullptr, key);
    const json::value* v = o.if_contains(key);
    if (v == nullptr) return rd.fail(&p, {"required field is missing"});
    return read_text_input(rd, *v, &p, out);
}

inline void write_text_input(JsonWriter& w, const TextInput& in) {
    switch (in.kind) {
        case TextInput::Kind::text:
            w.string(in.texts.empty() ? std::string_view() : std::string_view(in.texts[0]));
            return;
        case TextInput::Kind::texts:
            w.begin_array();
            for (const std::string& s : in.texts)
                w.string(s);
            w.end_array();
            return;
        case TextInput::Kind::tokens:
            w.begin_array();
            for (std::int64_t t : in.tokens)
                w.integer(t);
            w.end_array();
            return;
        case TextInput::Kind::token_arrays:
            w.begin_array();
            for (const auto& arr : in.token_arrays) {
                w.begin_array();
                for (std::int64_t t : arr)
                    w.integer(t);
                w.end_array();
            }
            w.end_array();
            return;
    }
}

/// The model field of a request: required, non-empty.
inline bool read_model(const Reader& rd, const json::object& o, std::string& out) {
    const Path pm(nullptr, "model");
    if (!required_member(rd, o, nullptr, "model", out)) return false;
    if (out.empty()) return rd.fail(&pm, {"must not be empty"});
    return true;
}

/// `float` in its shortest round-tripping form (null when not finite).
inline void write_float(JsonWriter& w, float f) {
    if (!std::isfinite(f)) {
        w.null();
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, f);
    w.raw(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

// ---- embeddings ------------------------------------------------------------------------------

inline bool read_embedding_request(const Reader& rd, const json::value& v, EmbeddingRequest& out) {
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    if (!read_model(rd, o, out.model) || !required_text_input(rd, o, "input", out.input) ||
        !optional_string(rd, o, nullptr, "provider", out.provider) ||
        !optional_member(rd, o, nullptr, "dimensions", out.dimensions) ||
        !optional_string(rd, o, nullptr, "encoding_format", out.encoding_format) ||
        !optional_string(rd, o, nullptr, "user", out.user) ||
        !optional_strings(rd, o, nullptr, "fallbacks", out.fallbacks)) {
        return false;
    }
    if (out.dimensions && *out.dimensions <= 0) {
        const Path p(nullptr, "dimensions");
        return rd.fail(&p, {"must be a positive integer"});
    }
    copy_unknown(
        o, {"model", "provider", "input", "dimensions", "encoding_format", "user", "fallbacks"},
        out.extra);
    return true;
}

inline bool read_embedding(const Reader& rd, const json::value& v, const Path* at, std::size_t i,
                           Embedding& e) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_member_or(rd, *o, at, "object", e.object, std::string_view("embedding")) ||
        !optional_member_or(rd, *o, at, "index", e.index, static_cast<std::int64_t>(i))) {
        return false;
    }
    const Path pe(at, "embedding");
    const json::value* ev = o->if_contains("embedding");
    if (ev == nullptr) return rd.fail(&pe, {"required field is missing"});
    if (const json::string* s = ev->if_string()) {
        e.base64.assign(s->data(), s->size());
        e.embedding.clear();
    } else {
        const json::array* a = nullptr;
        if (!as_array(rd, *ev, &pe, a)) return false;
        e.base64.clear();
        e.embedding.resize(a->size());
        for (std::size_t k = 0; k < a->size(); ++k) {
            const Path pk(&pe, k);
            double d = 0;
            if (!read_value(rd, (*a)[k], &pk, d)) return false;
            e.embedding[k] = static_cast<float>(d);
        }
    }
    copy_unknown(*o, {"object", "index", "embedding"}, e.extra);
    return true;
}

inline bool read_embedding_usage(const Reader& rd, const json::object& root,
                                 std::optional<EmbeddingUsage>& out) {
    const json::value* v = root.if_contains("usage");
    if (v == nullptr || v->is_null()) {
        out.reset();
        return true;
    }
    const Path p(nullptr, "usage");
    const json::object* o = nullptr;
    if (!as_object(rd, *v, &p, o)) return false;
    if (!out) out.emplace();
    constexpr std::int64_t zero = 0;
    if (!optional_member_or(rd, *o, &p, "prompt_tokens", out->prompt_tokens, zero) ||
        !optional_member_or(rd, *o, &p, "total_tokens", out->total_tokens, zero)) {
        return false;
    }
    copy_unknown(*o, {"prompt_tokens", "total_tokens"}, out->extra);
    return true;
}

inline bool read_embedding_response(const Reader& rd, const json::value& v, EmbeddingOutcome& out) {
    out.error.clear();
    EmbeddingResponse& r = out.response;
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    if (!optional_member_or(rd, o, nullptr, "object", r.object, std::string_view("list")) ||
        !optional_string(rd, o, nullptr, "model", r.model)) {
        return false;
    }
    const Path pd(nullptr, "data");
    const json::value* data = o.if_contains("data");
    if (data == nullptr) return rd.fail(&pd, {"required field is missing"});
    const json::array* a = nullptr;
    if (!as_array(rd, *data, &pd, a)) return false;
    r.data.resize(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&pd, i);
        if (!read_embedding(rd, (*a)[i], &pi, i, r.data[i])) return false;
    }
    if (!read_embedding_usage(rd, o, r.usage) || !read_extra_fields(rd, o, r.extra_fields))
        return false;
    copy_unknown(o, {"object", "data", "model", "usage", "extra_fields"}, r.extra);
    return true;
}

// ---- text completions ------------------------------------------------------------------------

inline bool read_text_completion_request(const Reader& rd, const json::value& v,
                                         TextCompletionRequest& out) {
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    if (!read_model(rd, o, out.model) || !required_text_input(rd, o, "prompt", out.prompt) ||
        !optional_string(rd, o, nullptr, "provider", out.provider) ||
        !optional_member(rd, o, nullptr, "max_tokens", out.max_tokens) ||
        !optional_member(rd, o, nullptr, "temperature", out.temperature) ||
        !optional_member(rd, o, nullptr, "top_p", out.top_p) ||
        !optional_member(rd, o, nullptr, "n", out.n) || !read_stop(rd, o, out.stop) ||
        !optional_member(rd, o, nullptr, "echo", out.echo) ||
        !optional_string(rd, o, nullptr, "suffix", out.suffix) ||
        !optional_member(rd, o, nullptr, "seed", out.seed) ||
        !optional_member(rd, o, nullptr, "logprobs", out.logprobs) ||
        !optional_member(rd, o, nullptr, "stream", out.stream) ||
        !optional_string(rd, o, nullptr, "user", out.user) ||
        !optional_strings(rd, o, nullptr, "fallbacks", out.fallbacks)) {
        return false;
    }
    copy_unknown(o,
                 {"model", "provider", "prompt", "max_tokens", "temperature", "top_p", "n", "stop",
                  "echo", "suffix", "seed", "logprobs", "stream", "user", "fallbacks"},
                 out.extra);
    return true;
}

inline bool read_text_choice(const Reader& rd, const json::value& v, const Path* at, std::size_t i,
                             TextChoice& c) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_member_or(rd, *o, at, "index", c.index, static_cast<std::int64_t>(i)) ||
        !optional_string(rd, *o, at, "text", c.text) ||
        !optional_string(rd, *o, at, "finish_reason", c.finish_reason)) {
        return false;
    }
    if (const json::value* lp = o->if_contains("logprobs")) {
        assign_value(c.logprobs, *lp);
    } else {
        c.logprobs = nullptr;
    }
    copy_unknown(*o, {"index", "text", "finish_reason", "logprobs"}, c.extra);
    return true;
}

inline bool read_text_completion_response(const Reader& rd, const json::value& v,
                                          TextCompletionOutcome& out) {
    out.error.clear();
    TextCompletionResponse& r = out.response;
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    if (!optional_string(rd, o, nullptr, "id", r.id) ||
        !optional_member_or(rd, o, nullptr, "object", r.object,
                            std::string_view("text_completion")) ||
        !optional_member_or(rd, o, nullptr, "created", r.created, std::int64_t{0}) ||
        !optional_string(rd, o, nullptr, "model", r.model) ||
        !optional_string(rd, o, nullptr, "system_fingerprint", r.system_fingerprint)) {
        return false;
    }
    const Path pc(nullptr, "choices");
    const json::value* choices = o.if_contains("choices");
    if (choices == nullptr) return rd.fail(&pc, {"required field is missing"});
    const json::array* a = nullptr;
    if (!as_array(rd, *choices, &pc, a)) return false;
    r.choices.resize(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&pc, i);
        if (!read_text_choice(rd, (*a)[i], &pi, i, r.choices[i])) return false;
    }
    if (!read_usage(rd, o, r.usage) || !read_extra_fields(rd, o, r.extra_fields)) return false;
    copy_unknown(o,
                 {"id", "object", "created", "model", "system_fingerprint", "choices", "usage",
                  "extra_fields"},
                 r.extra);
    return true;
}

// ---- model lists -----------------------------------------------------------------------------

inline bool read_model_list(const Reader& rd, const json::value& v, ModelListOutcome& out) {
    out.error.clear();
    ModelList& r = out.response;
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    if (!optional_member_or(rd, o, nullptr, "object", r.object, std::string_view("list")))
        return false;
    const Path pd(nullptr, "data");
    const json::value* data = o.if_contains("data");
    if (data == nullptr) return rd.fail(&pd, {"required field is missing"});
    const json::array* a = nullptr;
    if (!as_array(rd, *data, &pd, a)) return false;
    r.data.resize(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&pd, i);
        const json::object* m = nullptr;
        if (!as_object(rd, (*a)[i], &pi, m)) return false;
        ModelInfo& info = r.data[i];
        if (!required_member(rd, *m, &pi, "id", info.id) ||
            !optional_member_or(rd, *m, &pi, "object", info.object, std::string_view("model")) ||
            !optional_member_or(rd, *m, &pi, "created", info.created, std::int64_t{0}) ||
            !optional_string(rd, *m, &pi, "owned_by", info.owned_by)) {
            return false;
        }
        copy_unknown(*m, {"id", "object", "created", "owned_by"}, info.extra);
    }
    if (!read_extra_fields(rd, o, r.extra_fields)) return false;
    copy_unknown(o, {"object", "data", "extra_fields"}, r.extra);
    return true;
}

inline void write_extra_fields(JsonWriter& w, const ResponseExtra& x) {
    if (x.provider.empty()) return;
    w.key("extra_fields").begin_object().field("provider", x.provider);
    w.field_millis("latency", x.latency.count());
    w.end_object();
}

inline void write_routing(JsonWriter& w, const RequestWriteOptions& opts,
                          const std::string& provider, const std::vector<std::string>& fallbacks) {
    if (opts.for_upstream) return;
    if (!provider.empty()) w.field("provider", provider);
    if (!fallbacks.empty()) write_strings(w, "fallbacks", fallbacks);
}

}  // namespace bifrost::detail::json_impl

namespace bifrost {

inline bool read_embedding_request(const boost::json::value& v, EmbeddingRequest& out, Error& err) {
    const detail::json_impl::Reader rd{&err, false};
    return detail::json_impl::read_embedding_request(rd, v, out);
}

inline bool parse_embedding_request(std::string_view text, EmbeddingRequest& out, Error& err) {
    const detail::json_impl::Reader rd{&err, false};
    return detail::json_impl::parse_then(
        rd, text, "request body is empty", [&](const boost::json::value& doc) {
            return detail::json_impl::read_embedding_request(rd, doc, out);
        });
}

inline bool read_embedding_response(const boost::json::value& v, EmbeddingOutcome& out) {
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::read_embedding_response(rd, v, out);
}

inline bool parse_embedding_response(std::string_view text, EmbeddingOutcome& out) {
    out.error.clear();
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::parse_then(
        rd, text, "body is empty", [&](const boost::json::value& doc) {
            return detail::json_impl::read_embedding_response(rd, doc, out);
        });
}

inline bool read_text_completion_request(const boost::json::value& v, TextCompletionRequest& out,
                                         Error& err) {
    const detail::json_impl::Reader rd{&err, false};
    return detail::json_impl::read_text_completion_request(rd, v, out);
}

inline bool parse_text_completion_request(std::string_view text, TextCompletionRequest& out,
                                          Error& err) {
    const detail::json_impl::Reader rd{&err, false};
    return detail::json_impl::parse_then(
        rd, text, "request body is empty", [&](const boost::json::value& doc) {
            return detail::json_impl::read_text_completion_request(rd, doc, out);
        });
}

inline bool read_text_completion_response(const boost::json::value& v, TextCompletionOutcome& out) {
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::read_text_completion_response(rd, v, out);
}

inline bool parse_text_completion_response(std::string_view text, TextCompletionOutcome& out) {
    out.error.clear();
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::parse_then(
        rd, text, "body is empty", [&](const boost::json::value& doc) {
            return detail::json_impl::read_text_completion_response(rd, doc, out);
        });
}

inline bool parse_model_list(std::string_view text, ModelListOutcome& out) {
    out.error.clear();
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::parse_then(
        rd, text, "body is empty", [&](const boost::json::value& doc) {
            return detail::json_impl::read_model_list(rd, doc, out);
        });
}

inline void write_embedding_request(std::string& out, const EmbeddingRequest& r,
                                    const RequestWriteOptions& opts) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object();
    w.field("model", opts.model.empty() ? std::string_view(r.model) : opts.model);
    w.key("input");
    write_text_input(w, r.input);
    write_opt(w, "dimensions", r.dimensions);
    if (!r.encoding_format.empty()) w.field("encoding_format", r.encoding_format);
    if (!r.user.empty()) w.field("user", r.user);
    write_members(w, r.extra);
    write_routing(w, opts, r.provider, r.fallbacks);
    w.end_object();
}

inline void write_embedding_response(std::string& out, const EmbeddingResponse& r) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object().field("object", r.object).key("data").begin_array();
    for (const Embedding& e : r.data) {
        w.begin_object().field("object", e.object).field_int("index", e.index).key("embedding");
        if (!e.base64.empty() && e.embedding.empty()) {
            w.string(e.base64);
        } else {
            w.begin_array();
            for (float f : e.embedding)
                write_float(w, f);
            w.end_array();
        }
        write_members(w, e.extra);
        w.end_object();
    }
    w.end_array();
    w.field("model", r.model);
    if (r.usage) {
        w.key("usage").begin_object();
        w.field_int("prompt_tokens", r.usage->prompt_tokens);
        w.field_int("total_tokens", r.usage->total_tokens);
        write_members(w, r.usage->extra);
        w.end_object();
    }
    write_members(w, r.extra);
    write_extra_fields(w, r.extra_fields);
    w.end_object();
}

inline void write_text_completion_request(std::string& out, const TextCompletionRequest& r,
                                          const RequestWriteOptions& opts) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object();
    w.field("model", opts.model.empty() ? std::string_view(r.model) : opts.model);
    w.key("prompt");
    write_text_input(w, r.prompt);
    write_opt(w, "max_tokens", r.max_tokens);
    write_opt(w, "temperature", r.temperature);
    write_opt(w, "top_p", r.top_p);
    write_opt(w, "n", r.n);
    if (!r.stop.empty()) write_strings(w, "stop", r.stop);
    write_opt(w, "echo", r.echo);
    if (!r.suffix.empty()) w.field("suffix", r.suffix);
    write_opt(w, "seed", r.seed);
    write_opt(w, "logprobs", r.logprobs);
    write_opt(w, "stream", r.stream);
    if (!r.user.empty()) w.field("user", r.user);
    write_members(w, r.extra);
    write_routing(w, opts, r.provider, r.fallbacks);
    w.end_object();
}

inline void write_text_completion_response(std::string& out, const TextCompletionResponse& r) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object();
    w.field("id", r.id).field("object", r.object).field_int("created", r.created);
    w.field("model", r.model);
    if (!r.system_fingerprint.empty()) w.field("system_fingerprint", r.system_fingerprint);
    w.key("choices").begin_array();
    for (const TextChoice& c : r.choices) {
        w.begin_object().field("text", c.text).field_int("index", c.index);
        w.key("logprobs").value(c.logprobs);
        w.key("finish_reason");
        if (c.finish_reason.empty()) {
            w.null();
        } else {
            w.string(c.finish_reason);
        }
        write_members(w, c.extra);
        w.end_object();
    }
    w.end_array();
    if (r.usage) {
        w.key("usage").begin_object();
        w.field_int("prompt_tokens", r.usage->prompt_tokens);
        w.field_int("completion_tokens", r.usage->completion_tokens);
        w.field_int("total_tokens", r.usage->total_tokens);
        write_members(w, r.usage->extra);
        w.end_object();
    }
    write_members(w, r.extra);
    write_extra_fields(w, r.extra_fields);
    w.end_object();
}

inline void write_model_list(std::string& out, const ModelList& r, std::string_view id_prefix) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object().field("object", r.object).key("data").begin_array();
    for (const ModelInfo& m : r.data) {
        w.begin_object().key("id").string2(id_prefix, m.id);
        w.field("object", m.object).field_int("created", m.created).field("owned_by", m.owned_by);
        write_members(w, m.extra);
        w.end_object();
    }
    w.end_array();
    write_members(w, r.extra);
    write_extra_fields(w, r.extra_fields);
    w.end_object();
}

// ---- Boost.JSON conversions ------------------------------------------------------------------

/// The document `write_embedding_request` writes, with the routing fields.
inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv,
                       const EmbeddingRequest& r) {
    std::string text;
    RequestWriteOptions opts;
    opts.for_upstream = false;
    write_embedding_request(text, r, opts);
    detail::json_impl::parse_written(jv, text);
}

/// Reads like `read_embedding_request`; throws `std::invalid_argument` with the error message.
inline EmbeddingRequest tag_invoke(const boost::json::value_to_tag<EmbeddingRequest>&,
                                   const boost::json::value& jv) {
    EmbeddingRequest r;
    Error err;
    if (!read_embedding_request(jv, r, err)) throw std::invalid_argument(err.message);
    return r;
}

/// The document `write_text_completion_request` writes, with the routing fields.
inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv,
                       const TextCompletionRequest& r) {
    std::string text;
    RequestWriteOptions opts;
    opts.for_upstream = false;
    write_text_completion_request(text, r, opts);
    detail::json_impl::parse_written(jv, text);
}

/// Reads like `read_text_completion_request`; throws `std::invalid_argument`.
inline TextCompletionRequest tag_invoke(const boost::json::value_to_tag<TextCompletionRequest>&,
                                        const boost::json::value& jv) {
    TextCompletionRequest r;
    Error err;
    if (!read_text_completion_request(jv, r, err)) throw std::invalid_argument(err.message);
    return r;
}

}  // namespace bifrost
