#pragma once
/// \file
/// JSON conversions of `StreamChunk`, OpenAI's `chat.completion.chunk` (one SSE `data:` event of
/// a streamed chat completion). Included by `schema/json.hpp`.

#include <bifrost/detail/json_writer.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/json.hpp>
#include <bifrost/schema/stream.hpp>

#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bifrost {

/// Appends the OpenAI JSON form of `c` (`"object": "chat.completion.chunk"`): per choice a
/// `delta` with `role` when set, `content` when present (omitted, not `null`, when absent),
/// `tool_calls` when any; `"finish_reason": null` until the choice's last chunk; `usage` when
/// present; `extra_fields.provider` when a provider is set.
inline void write_stream_chunk(std::string& out, const StreamChunk& c);

/// Parses one OpenAI `chat.completion.chunk` JSON text into `out`. On failure returns false and
/// sets `err` to a 502 `invalid_upstream_response` saying what is wrong and where
/// (`choices[0].delta.content: expected a string, got a number`). Lenient like
/// `parse_chat_response`: `id`, `object`, `created`, `model` may be missing and `null` means
/// absent. Unknown fields are kept in `extra` (of the chunk, or of a choice's delta).
/// Thread-safe.
inline bool parse_stream_chunk(std::string_view text, StreamChunk& out, Error& err);

/// Reads an already-parsed chunk document (same rules as `parse_stream_chunk`).
inline bool read_stream_chunk(const boost::json::value& v, StreamChunk& out, Error& err);

}  // namespace bifrost

namespace bifrost::detail::json_impl {

inline bool read_tool_call_delta(const Reader& rd, const json::value& v, const Path* at,
                                 ToolCallDelta& tc) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_member_or(rd, *o, at, "index", tc.index, std::int64_t{0}) ||
        !optional_string(rd, *o, at, "id", tc.id) ||
        !optional_string(rd, *o, at, "type", tc.type)) {
        return false;
    }
    tc.name.clear();
    tc.arguments.clear();
    const json::value* f = o->if_contains("function");
    if (f == nullptr || f->is_null()) return true;
    const Path pf(at, "function");
    const json::object* fo = nullptr;
    if (!as_object(rd, *f, &pf, fo)) return false;
    return optional_string(rd, *fo, &pf, "name", tc.name) &&
           optional_string(rd, *fo, &pf, "arguments", tc.arguments);
}

inline bool read_choice_delta(const Reader& rd, const json::value& v, const Path* at, std::size_t i,
                              ChoiceDelta& c) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_member_or(rd, *o, at, "index", c.index, static_cast<std::int64_t>(i)) ||
        !optional_string(rd, *o, at, "finish_reason", c.finish_reason)) {
        return false;
    }
    const json::value* lp = o->if_contains("logprobs");
    c.logprobs = lp ? *lp : json::value();
    c.role.reset();
    c.content.reset();
    c.tool_calls.clear();
    c.extra.clear();
    const json::value* d = o->if_contains("delta");
    if (d == nullptr || d->is_null()) return true;  // some servers send none on the last chunk
    const Path pd(at, "delta");
    const json::object* dobj = nullptr;
    if (!as_object(rd, *d, &pd, dobj)) return false;
    if (const json::value* r = dobj->if_contains("role"); r && !r->is_null()) {
        const Path pr(&pd, "role");
        const json::string* s = r->if_string();
        if (s == nullptr) return type_error(rd, &pr, "a string", *r);
        Role role{};
        if (!parse_role(sv(*s), role)) return rd.fail(&pr, {"unknown role \"", sv(*s), "\""});
        c.role = role;
    }
    if (const json::value* t = dobj->if_contains("content"); t && !t->is_null()) {
        const Path pt(&pd, "content");
        c.content.emplace();
        if (!read_value(rd, *t, &pt, *c.content)) return false;
    }
    if (const json::value* tcs = dobj->if_contains("tool_calls"); tcs && !tcs->is_null()) {
        const Path pt(&pd, "tool_calls");
        const json::array* a = nullptr;
        if (!as_array(rd, *tcs, &pt, a)) return false;
        c.tool_calls.resize(a->size());
        for (std::size_t k = 0; k < a->size(); ++k) {
            const Path pk(&pt, k);
            if (!read_tool_call_delta(rd, (*a)[k], &pk, c.tool_calls[k])) return false;
        }
    }
    copy_unknown(*dobj, {"role", "content", "tool_calls"}, c.extra);
    return true;
}

inline bool read_chunk(const Reader& rd, const json::value& v, StreamChunk& c) {
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    if (!optional_string(rd, o, nullptr, "id", c.id) ||
        !optional_member_or(rd, o, nullptr, "object", c.object,
                            std::string_view("chat.completion.chunk")) ||
        !optional_member_or(rd, o, nullptr, "created", c.created, std::int64_t{0}) ||
        !optional_string(rd, o, nullptr, "model", c.model) ||
        !optional_string(rd, o, nullptr, "system_fingerprint", c.system_fingerprint)) {
        return false;
    }
    c.choices.clear();
    if (const json::value* cs = o.if_contains("choices"); cs && !cs->is_null()) {
        const Path pc(nullptr, "choices");
        const json::array* a = nullptr;
        if (!as_array(rd, *cs, &pc, a)) return false;
        c.choices.resize(a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
            const Path pi(&pc, i);
            if (!read_choice_delta(rd, (*a)[i], &pi, i, c.choices[i])) return false;
        }
    }
    if (!read_usage(rd, o, c.usage) || !read_extra_fields(rd, o, c.extra_fields)) return false;
    copy_unknown(o,
                 {"id", "object", "created", "model", "system_fingerprint", "choices", "usage",
                  "extra_fields"},
                 c.extra);
    return true;
}

inline void write_tool_call_delta(JsonWriter& w, const ToolCallDelta& tc) {
    w.begin_object().field_int("index", tc.index);
    if (!tc.id.empty()) w.field("id", tc.id);
    if (!tc.type.empty()) w.field("type", tc.type);
    w.key("function").begin_object();
    if (!tc.name.empty()) w.field("name", tc.name);
    w.field("arguments", tc.arguments);
    w.end_object().end_object();
}

}  // namespace bifrost::detail::json_impl

namespace bifrost {

inline void write_stream_chunk(std::string& out, const StreamChunk& c) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object();
    w.field("id", c.id).field("object", c.object).field_int("created", c.created);
    w.field("model", c.model);
    if (!c.system_fingerprint.empty()) w.field("system_fingerprint", c.system_fingerprint);
    w.key("choices").begin_array();
    for (const ChoiceDelta& d : c.choices) {
        w.begin_object().field_int("index", d.index).key("delta").begin_object();
        if (d.role) w.field("role", to_string(*d.role));
        if (d.content) w.field("content", *d.content);
        if (!d.tool_calls.empty()) {
            w.key("tool_calls").begin_array();
            for (const ToolCallDelta& tc : d.tool_calls)
                write_tool_call_delta(w, tc);
            w.end_array();
        }
        write_members(w, d.extra);
        w.end_object();
        if (!d.logprobs.is_null()) w.key("logprobs").value(d.logprobs);
        w.key("finish_reason");
        if (d.finish_reason.empty()) {
            w.null();
        } else {
            w.string(d.finish_reason);
        }
        w.end_object();
    }
    w.end_array();
    if (c.usage) {
        w.key("usage").begin_object();
        w.field_int("prompt_tokens", c.usage->prompt_tokens);
        w.field_int("completion_tokens", c.usage->completion_tokens);
        w.field_int("total_tokens", c.usage->total_tokens);
        write_members(w, c.usage->extra);
        w.end_object();
    }
    write_members(w, c.extra);
    if (!c.extra_fields.provider.empty()) {
        w.key("extra_fields").begin_object().field("provider", c.extra_fields.provider);
        w.end_object();
    }
    w.end_object();
}

inline bool read_stream_chunk(const boost::json::value& v, StreamChunk& out, Error& err) {
    const detail::json_impl::Reader rd{&err, true};
    return detail::json_impl::read_chunk(rd, v, out);
}

inline bool parse_stream_chunk(std::string_view text, StreamChunk& out, Error& err) {
    const detail::json_impl::Reader rd{&err, true};
    return detail::json_impl::parse_then(
        rd, text, "stream chunk is empty",
        [&](const boost::json::value& doc) { return detail::json_impl::read_chunk(rd, doc, out); });
}

}  // namespace bifrost
