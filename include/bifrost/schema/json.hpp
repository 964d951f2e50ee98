#pragma once
/// \file
/// JSON conversions of the unified schema, both ways, in OpenAI's wire format.
///
/// Reading is strict and explains itself: a malformed document or a field of the wrong type
/// gives an `Error` whose message says what and where (`messages[1].role: expected a string, got
/// a number`) and whose `param` names the field path. Unknown fields are kept in the `extra`
/// members and written back out, so nothing a client sends is silently dropped.
///
/// Writing appends to a caller-provided `std::string` (reuse it and writing stops allocating).
///
/// Boost.JSON's `value_from` / `value_to` work too (`value_to` throws `std::invalid_argument`
/// carrying the same message).

#include <bifrost/detail/json_writer.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/outcome.hpp>

#include <boost/config.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/conversion.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost {

/// Options for `write_chat_request`.
struct RequestWriteOptions {
    /// When non-empty, written as `model` instead of `request.model` (the provider-local id).
    std::string_view model;
    /// Upstream form: omit the gateway's own routing fields (`provider`, `fallbacks`).
    bool for_upstream = true;
};

// ---- reading -------------------------------------------------------------------------------

/// Parses JSON text into `out`. On failure returns false and sets `err` to a 400
/// `invalid_request_error` naming the field.
///
/// `out` is assigned field by field, reusing its capacity; on success every field reflects the
/// input (fields the input lacks are reset). On failure `out` is valid but unspecified. `err` is
/// written only on failure. Documents nested deeper than 64 levels are rejected.
/// Thread-safe: each thread parses with its own parser and scratch buffers.
inline bool parse_chat_request(std::string_view text, ChatRequest& out, Error& err);

/// Reads an already-parsed document into `out` (same rules as `parse_chat_request`).
inline bool read_chat_request(const boost::json::value& v, ChatRequest& out, Error& err);

/// Parses an OpenAI-format chat-completion response into `out.response`, reusing `out`'s memory
/// (`Outcome::reuse_choices`). On failure returns false and sets `out.error` (502
/// `invalid_upstream_response`, naming the field).
///
/// Lenient where OpenAI-compatible servers differ: `id`, `object`, `created`, `model`, `usage`
/// and a message's `role` may be missing, `null` stands for "absent", and tool-call `arguments`
/// sent as a JSON object are kept as their serialized text. On success `out.error` is clear.
///
/// The text is read in one pass straight into `out` (no document is built for the fields the
/// schema models), so `text` must not point into `out` itself. Reading into a reused or recycled
/// `out` reuses its strings and choices: a plain text response is then read with no allocation.
/// Thread-safe: each thread parses with its own parser and scratch buffers.
inline bool parse_chat_response(std::string_view text, Outcome& out);

/// Reads an already-parsed response document (same rules as `parse_chat_response`).
inline bool read_chat_response(const boost::json::value& v, Outcome& out);

// ---- writing -------------------------------------------------------------------------------

/// Appends the OpenAI JSON form of `r` to `out`.
inline void write_chat_request(std::string& out, const ChatRequest& r,
                               const RequestWriteOptions& opts = {});

/// Appends the OpenAI JSON form of `r` to `out`, with `extra_fields` when a provider is set.
inline void write_chat_response(std::string& out, const ChatResponse& r);

/// Appends `wire`, a chat-completion object as an OpenAI-format upstream sent it (valid JSON:
/// it was parsed), with the gateway's `extra_fields` (from `extra`, when a provider is set) as
/// its last member: what `write_chat_response` writes, with the upstream's own members, order
/// and formatting kept, and no second serialization. Returns false, having appended nothing,
/// when `wire` is not an object with members or holds an `extra_fields` of its own (write the
/// response with `write_chat_response` then).
inline bool write_chat_wire(std::string& out, std::string_view wire, const ResponseExtra& extra);

/// Appends OpenAI's error body: `{"error":{"message":...,"type":...,"param":...,"code":...}}`.
inline void write_error(std::string& out, const Error& e);

// ---- Boost.JSON conversions -------------------------------------------------------------------

/// The document `write_chat_request` writes, with the routing fields (`for_upstream = false`), so
/// that `value_to<ChatRequest>(value_from(r)) == r`.
inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv,
                       const ChatRequest& r);
/// Reads like `read_chat_request`; throws `std::invalid_argument` with the error message.
inline ChatRequest tag_invoke(const boost::json::value_to_tag<ChatRequest>&,
                              const boost::json::value& jv);
/// The document `write_chat_response` writes.
inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv,
                       const ChatResponse& r);
/// Reads like `read_chat_response`; throws `std::invalid_argument` with the error message.
inline ChatResponse tag_invoke(const boost::json::value_to_tag<ChatResponse>&,
                               const boost::json::value& jv);
/// The document `write_error` writes.
inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv, const Error& e);

}  // namespace bifrost

namespace bifrost::detail::json_impl {

namespace json = boost::json;

inline std::string_view sv(const json::string& s) noexcept {
    return {s.data(), s.size()};
}
inline std::string_view sv_key(const json::key_value_pair& kv) noexcept {
    return {kv.key().data(), kv.key().size()};
}

// ---- paths and errors ------------------------------------------------------------------------

/// One step of the path to the value being read. Paths live on the stack and are rendered only
/// when an error is reported, so reading a valid document builds no strings.
struct Path {
    Path(const Path* p, std::string_view k) noexcept : parent(p), key(k) {}
    Path(const Path* p, std::size_t i) noexcept : parent(p), index(i), is_index(true) {}

    const Path* parent = nullptr;
    std::string_view key;
    std::size_t index = 0;
    bool is_index = false;
};

inline void append_number(std::string& out, std::uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

inline void append_number(std::string& out, double v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

/// Renders `messages[1].content[0].text`.
inline void append_path(std::string& out, const Path* p) {
    if (p == nullptr) return;
    append_path(out, p->parent);
    if (p->is_index) {
        out.push_back('[');
        append_number(out, static_cast<std::uint64_t>(p->index));
        out.push_back(']');
    } else {
        if (!out.empty()) out.push_back('.');
        out.append(p->key);
    }
}

inline std::string_view kind_name(const json::value& v) noexcept {
    switch (v.kind()) {
        case json::kind::null:
            return "null";
        case json::kind::bool_:
            return "a boolean";
        case json::kind::int64:
        case json::kind::uint64:
        case json::kind::double_:
            return "a number";
        case json::kind::string:
            return "a string";
        case json::kind::array:
            return "an array";
        case json::kind::object:
            return "an object";
    }
    return "a value";
}

/// Where errors go: a request's `Error` (400) or an upstream response's `Outcome` (502). Also
/// selects the response-only leniencies.
struct Reader {
    Error* err = nullptr;
    bool response = false;

    /// Reports `<path>: <problem>`; always returns false.
    bool fail(const Path* at, std::initializer_list<std::string_view> problem) const {
        std::string path;
        append_path(path, at);
        std::string msg;
        if (!path.empty()) {
            msg.append(path).append(": ");
        } else if (!response) {
            msg.append("request body: ");
        }
        for (std::string_view s : problem)
            msg.append(s);
        return report(std::move(msg), path);
    }

    /// Reports a problem with the document as a whole (no path); always returns false.
    bool fail_document(std::string msg) const { return report(std::move(msg), {}); }

  private:
    bool report(std::string msg, std::string_view path) const {
        if (response) {
            msg.insert(0, "upstream response: ");
            err->assign(502, error_type::bad_response, msg);
        } else {
            *err = errors::invalid_request(std::move(msg), path);
        }
        return false;
    }
};

// ---- typed readers ---------------------------------------------------------------------------

inline bool type_error(const Reader& rd, const Path* at, std::string_view expected,
                       const json::value& v) {
    return rd.fail(at, {"expected ", expected, ", got ", kind_name(v)});
}

inline bool as_object(const Reader& rd, const json::value& v, const Path* at,
                      const json::object*& out) {
    out = v.if_object();
    return out != nullptr || type_error(rd, at, "an object", v);
}

inline bool as_array(const Reader& rd, const json::value& v, const Path* at,
                     const json::array*& out) {
    out = v.if_array();
    return out != nullptr || type_error(rd, at, "an array", v);
}

inline bool read_value(const Reader& rd, const json::value& v, const Path* at, std::string& out) {
    const json::string* s = v.if_string();
    if (s == nullptr) return type_error(rd, at, "a string", v);
    out.assign(s->data(), s->size());
    return true;
}

inline bool read_value(const Reader& rd, const json::value& v, const Path* at, double& out) {
    switch (v.kind()) {
        case json::kind::double_:
            out = v.get_double();
            return true;
        case json::kind::int64:
            out = static_cast<double>(v.get_int64());
            return true;
        case json::kind::uint64:
            out = static_cast<double>(v.get_uint64());
            return true;
        default:
            return type_error(rd, at, "a number", v);
    }
}

inline bool read_value(const Reader& rd, const json::value& v, const Path* at, bool& out) {
    const bool* b = v.if_bool();
    if (b == nullptr) return type_error(rd, at, "a boolean", v);
    out = *b;
    return true;
}

/// Integers; a double with an integral value (`2.0`, `1.7e9`) is accepted.
inline bool read_value(const Reader& rd, const json::value& v, const Path* at, std::int64_t& out) {
    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    switch (v.kind()) {
        case json::kind::int64:
            out = v.get_int64();
            return true;
        case json::kind::uint64:
            if (v.get_uint64() > static_cast<std::uint64_t>(max)) {
                std::string n;
                append_number(n, v.get_uint64());
                return rd.fail(at, {"integer out of range: ", n});
            }
            out = static_cast<std::int64_t>(v.get_uint64());
            return true;
        case json::kind::double_: {
            const double d = v.get_double();
            if (!std::isfinite(d) || d != std::trunc(d)) {
                std::string n;
                append_number(n, d);
                return rd.fail(at, {"expected an integer, got ", n});
            }
            // 2^63 is exactly representable; every double below it fits an int64.
            if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
                std::string n;
                append_number(n, d);
                return rd.fail(at, {"integer out of range: ", n});
            }
            out = static_cast<std::int64_t>(d);
            return true;
        }
        default:
            return type_error(rd, at, "an integer", v);
    }
}

// The member readers come in two forms: given the object (they look the member up) and given
// the member's value, or nullptr when it is missing (for a reader that found every member in
// one pass over the object, as `read_request` does).

/// A required member: missing is an error, and so is null (it must have the member's type).
template <class T>
bool required_value(const Reader& rd, const json::value* v, const Path* at, std::string_view key,
                    T& out) {
    const Path p(at, key);
    if (v == nullptr) return rd.fail(&p, {"required field is missing"});
    return read_value(rd, *v, &p, out);
}
template <class T>
bool required_member(const Reader& rd, const json::object& o, const Path* at, std::string_view key,
                     T& out) {
    return required_value(rd, o.if_contains(key), at, key, out);
}

/// An optional scalar member: missing or null resets `out`.
template <class T>
bool optional_value(const Reader& rd, const json::value* v, const Path* at, std::string_view key,
                    std::optional<T>& out) {
    if (v == nullptr || v->is_null()) {
        out.reset();
        return true;
    }
    const Path p(at, key);
    T t{};
    if (!read_value(rd, *v, &p, t)) return false;
    out = t;
    return true;
}
template <class T>
bool optional_member(const Reader& rd, const json::object& o, const Path* at, std::string_view key,
                     std::optional<T>& out) {
    return optional_value(rd, o.if_contains(key), at, key, out);
}

/// An optional member with a plain default: missing or null assigns `fallback`.
template <class T, class D>
bool optional_member_or(const Reader& rd, const json::object& o, const Path* at,
                        std::string_view key, T& out, const D& fallback) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) {
        out = fallback;
        return true;
    }
    const Path p(at, key);
    return read_value(rd, *v, &p, out);
}

/// An optional string member: missing or null clears `out`.
inline bool optional_string_value(const Reader& rd, const json::value* v, const Path* at,
                                  std::string_view key, std::string& out) {
    if (v == nullptr || v->is_null()) {
        out.clear();
        return true;
    }
    const Path p(at, key);
    return read_value(rd, *v, &p, out);
}
inline bool optional_string(const Reader& rd, const json::object& o, const Path* at,
                            std::string_view key, std::string& out) {
    return optional_string_value(rd, o.if_contains(key), at, key, out);
}

/// An optional array of strings: missing or null clears `out`.
inline bool optional_strings_value(const Reader& rd, const json::value* v, const Path* at,
                                   std::string_view key, std::vector<std::string>& out) {
    if (v == nullptr || v->is_null()) {
        out.clear();
        return true;
    }
    const Path p(at, key);
    const json::array* a = nullptr;
    if (!as_array(rd, *v, &p, a)) return false;
    out.resize(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&p, i);
        if (!read_value(rd, (*a)[i], &pi, out[i])) return false;
    }
    return true;
}
inline bool optional_strings(const Reader& rd, const json::object& o, const Path* at,
                             std::string_view key, std::vector<std::string>& out) {
    return optional_strings_value(rd, o.if_contains(key), at, key, out);
}

/// Whether `key` is one of `names` (any range of string views).
template <class Names>
bool is_one_of(std::string_view key, const Names& names) {
    for (std::string_view n : names) {
        if (n == key) return true;
    }
    return false;
}
inline bool is_one_of(std::string_view key, std::initializer_list<std::string_view> names) {
    return is_one_of<std::initializer_list<std::string_view>>(key, names);
}

inline void assign_value(json::value& dst, const json::value& src);

/// Assigns the members of `src` not named in `skip` to the members of `dst` in place, when `dst`
/// has exactly those keys in the same order. Returns false (with `dst` partly assigned) when the
/// keys differ.
template <class Names>
bool assign_members(json::object& dst, const json::object& src, const Names& skip) {
    auto it = dst.begin();
    for (const json::key_value_pair& kv : src) {
        const std::string_view k = sv_key(kv);
        if (is_one_of(k, skip)) continue;
        if (it == dst.end() || sv_key(*it) != k) return false;
        assign_value(it->value(), kv.value());
        ++it;
    }
    return it == dst.end();
}

inline bool assign_members(json::object& dst, const json::object& src,
                           std::initializer_list<std::string_view> skip) {
    return assign_members<std::initializer_list<std::string_view>>(dst, src, skip);
}

/// `dst = src`, reusing `dst`'s memory where both have the same shape (same keys in the same
/// order, arrays of the same length), so that a reused object reading documents of a steady
/// shape (`"refusal": null`, usage details, the same tool schemas) stops allocating.
inline void assign_value(json::value& dst, const json::value& src) {
    if (dst.kind() == src.kind()) {
        switch (src.kind()) {
            case json::kind::string:
                dst.get_string() = src.get_string();
                return;
            case json::kind::array: {
                json::array& da = dst.get_array();
                const json::array& sa = src.get_array();
                if (da.size() != sa.size()) break;
                for (std::size_t i = 0; i < sa.size(); ++i)
                    assign_value(da[i], sa[i]);
                return;
            }
            case json::kind::object:
                if (assign_members(dst.get_object(), src.get_object(), {})) return;
                break;
            default:
                break;
        }
    }
    dst = src;
}

/// Copies every member of `o` whose key is not in `known` (a range of string views) into
/// `extra`, in document order.
template <class Names>
void copy_unknown(const json::object& o, const Names& known, json::object& extra) {
    if (assign_members(extra, o, known)) return;
    extra.clear();
    for (const json::key_value_pair& kv : o) {
        const std::string_view k = sv_key(kv);
        if (!is_one_of(k, known)) extra.emplace(k, kv.value());
    }
}
inline void copy_unknown(const json::object& o, std::initializer_list<std::string_view> known,
                         json::object& extra) {
    copy_unknown<std::initializer_list<std::string_view>>(o, known, extra);
}

// ---- messages --------------------------------------------------------------------------------

inline bool read_part(const Reader& rd, const json::value& v, const Path* at, ContentPart& part) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    const Path pt(at, "type");
    const json::value* type = o->if_contains("type");
    if (type == nullptr) return rd.fail(&pt, {"required field is missing"});
    const json::string* t = type->if_string();
    if (t == nullptr) return type_error(rd, &pt, "a string", *type);

    if (*t == "text") {
        part.type = ContentPart::Type::text;
        if (!required_member(rd, *o, at, "text", part.text)) return false;
        part.image_url.clear();
        part.image_detail.clear();
        part.raw = nullptr;
        return true;
    }
    if (*t == "image_url") {
        part.type = ContentPart::Type::image_url;
        part.text.clear();
        part.raw = nullptr;
        const Path pi(at, "image_url");
        const json::value* iu = o->if_contains("image_url");
        if (iu == nullptr) return rd.fail(&pi, {"required field is missing"});
        if (const json::string* url = iu->if_string()) {
            part.image_url.assign(url->data(), url->size());
            part.image_detail.clear();
            return true;
        }
        const json::object* io = iu->if_object();
        if (io == nullptr) return type_error(rd, &pi, "an object or a string", *iu);
        return required_member(rd, *io, &pi, "url", part.image_url) &&
               optional_string(rd, *io, &pi, "detail", part.image_detail);
    }
    part.type = ContentPart::Type::other;
    part.text.clear();
    part.image_url.clear();
    part.image_detail.clear();
    assign_value(part.raw, v);
    return true;
}

/// The array form of `content` (`at` is the path of `content`).
inline bool read_parts(const Reader& rd, const json::array& a, const Path* at, Message& m) {
    m.content.clear();
    m.parts.resize(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        const Path pi(at, i);
        if (!read_part(rd, a[i], &pi, m.parts[i])) return false;
    }
    return true;
}

inline bool read_content(const Reader& rd, const json::object& o, const Path* at, Message& m) {
    const json::value* c = o.if_contains("content");
    if (c == nullptr || c->is_null()) {
        m.content.clear();
        m.parts.clear();
        return true;
    }
    if (const json::string* s = c->if_string()) {
        m.content.assign(s->data(), s->size());
        m.parts.clear();
        return true;
    }
    const Path pc(at, "content");
    const json::array* a = c->if_array();
    if (a == nullptr) return type_error(rd, &pc, "a string, an array or null", *c);
    return read_parts(rd, *a, &pc, m);
}

/// Tool-call `arguments` sent as a JSON object (or array), kept as their serialized text.
inline void write_arguments(const json::value& args, std::string& out) {
    out.clear();
    detail::JsonWriter(out).value(args);
}

inline bool read_tool_call(const Reader& rd, const json::value& v, const Path* at, ToolCall& tc) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_string(rd, *o, at, "id", tc.id)) return false;
    if (!optional_member_or(rd, *o, at, "type", tc.type, std::string_view("function")))
        return false;
    const Path pf(at, "function");
    const json::value* f = o->if_contains("function");
    if (f == nullptr) return rd.fail(&pf, {"required field is missing"});
    const json::object* fo = nullptr;
    if (!as_object(rd, *f, &pf, fo)) return false;
    if (!required_member(rd, *fo, &pf, "name", tc.name)) return false;

    const json::value* args = fo->if_contains("arguments");
    if (rd.response) {
        // Some OpenAI-compatible servers send arguments as a JSON object instead of its text.
        if (args == nullptr || args->is_null()) {
            tc.arguments.clear();
            return true;
        }
        if (args->is_object() || args->is_array()) {
            write_arguments(*args, tc.arguments);
            return true;
        }
    }
    const Path pa(&pf, "arguments");
    if (args == nullptr) return rd.fail(&pa, {"required field is missing"});
    return read_value(rd, *args, &pa, tc.arguments);
}

inline bool read_tool_calls(const Reader& rd, const json::object& o, const Path* at,
                            std::vector<ToolCall>& out) {
    const json::value* v = o.if_contains("tool_calls");
    if (v == nullptr || v->is_null()) {
        out.clear();
        return true;
    }
    const Path p(at, "tool_calls");
    const json::array* a = nullptr;
    if (!as_array(rd, *v, &p, a)) return false;
    out.resize(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&p, i);
        if (!read_tool_call(rd, (*a)[i], &pi, out[i])) return false;
    }
    return true;
}

inline bool read_message(const Reader& rd, const json::value& v, const Path* at, Message& m) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;

    const Path pr(at, "role");
    const json::value* role = o->if_contains("role");
    if (role == nullptr) {
        if (!rd.response) return rd.fail(&pr, {"required field is missing"});
        m.role = Role::assistant;
    } else {
        const json::string* r = role->if_string();
        if (r == nullptr) return type_error(rd, &pr, "a string", *role);
        if (!parse_role(sv(*r), m.role)) return rd.fail(&pr, {"unknown role \"", sv(*r), "\""});
    }
    if (!read_content(rd, *o, at, m)) return false;
    if (!optional_string(rd, *o, at, "name", m.name)) return false;
    if (!read_tool_calls(rd, *o, at, m.tool_calls)) return false;
    if (!optional_string(rd, *o, at, "tool_call_id", m.tool_call_id)) return false;
    copy_unknown(*o, {"role", "content", "name", "tool_calls", "tool_call_id"}, m.extra);
    return true;
}

// ---- request parameters ----------------------------------------------------------------------

inline bool read_tool(const Reader& rd, const json::value& v, const Path* at, Tool& t) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_member_or(rd, *o, at, "type", t.type, std::string_view("function"))) return false;
    const Path pf(at, "function");
    const json::value* f = o->if_contains("function");
    if (f == nullptr) return rd.fail(&pf, {"required field is missing"});
    const json::object* fo = nullptr;
    if (!as_object(rd, *f, &pf, fo)) return false;
    if (!required_member(rd, *fo, &pf, "name", t.name)) return false;
    if (!optional_string(rd, *fo, &pf, "description", t.description)) return false;
    if (const json::value* params = fo->if_contains("parameters")) {
        assign_value(t.parameters, *params);
    } else {
        t.parameters = nullptr;
    }
    return optional_member(rd, *fo, &pf, "strict", t.strict);
}

inline bool read_tool_choice(const Reader& rd, const json::value* v,
                             std::optional<ToolChoice>& out) {
    if (v == nullptr || v->is_null()) {
        out.reset();
        return true;
    }
    const Path p(nullptr, "tool_choice");
    if (!out) out.emplace();
    ToolChoice& tc = *out;
    if (const json::string* s = v->if_string()) {
        tc.function_name.clear();
        if (*s == "none") {
            tc.mode = ToolChoice::Mode::none;
        } else if (*s == "auto") {
            tc.mode = ToolChoice::Mode::auto_;
        } else if (*s == "required") {
            tc.mode = ToolChoice::Mode::required;
        } else {
            return rd.fail(&p, {"unknown value \"", sv(*s), "\""});
        }
        return true;
    }
    const json::object* o = v->if_object();
    if (o == nullptr) return type_error(rd, &p, "a string or an object", *v);
    const Path pt(&p, "type");
    const json::value* type = o->if_contains("type");
    if (type == nullptr) return rd.fail(&pt, {"required field is missing"});
    const json::string* t = type->if_string();
    if (t == nullptr) return type_error(rd, &pt, "a string", *type);
    if (*t != "function") return rd.fail(&pt, {"unsupported value \"", sv(*t), "\""});
    tc.mode = ToolChoice::Mode::function;
    const Path pf(&p, "function");
    const json::value* f = o->if_contains("function");
    if (f == nullptr) return rd.fail(&pf, {"required field is missing"});
    const json::object* fo = nullptr;
    if (!as_object(rd, *f, &pf, fo)) return false;
    return required_member(rd, *fo, &pf, "name", tc.function_name);
}

inline bool read_response_format(const Reader& rd, const json::value* v,
                                 std::optional<ResponseFormat>& out) {
    if (v == nullptr || v->is_null()) {
        out.reset();
        return true;
    }
    const Path p(nullptr, "response_format");
    const json::object* o = nullptr;
    if (!as_object(rd, *v, &p, o)) return false;
    if (!out) out.emplace();
    ResponseFormat& rf = *out;
    const Path pt(&p, "type");
    const json::value* type = o->if_contains("type");
    if (type == nullptr) return rd.fail(&pt, {"required field is missing"});
    const json::string* t = type->if_string();
    if (t == nullptr) return type_error(rd, &pt, "a string", *type);
    if (*t == "text") {
        rf.type = ResponseFormat::Type::text;
    } else if (*t == "json_object") {
        rf.type = ResponseFormat::Type::json_object;
    } else if (*t == "json_schema") {
        rf.type = ResponseFormat::Type::json_schema;
    } else {
        return rd.fail(&pt, {"unknown value \"", sv(*t), "\""});
    }
    const Path ps(&p, "json_schema");
    const json::value* schema = o->if_contains("json_schema");
    if (schema == nullptr || schema->is_null()) {
        if (rf.type == ResponseFormat::Type::json_schema) {
            return rd.fail(&ps, {"required field is missing"});
        }
        rf.json_schema = nullptr;
        return true;
    }
    if (!schema->is_object()) return type_error(rd, &ps, "an object", *schema);
    assign_value(rf.json_schema, *schema);
    return true;
}

/// `stop`: a string or an array of strings (`v` is the member's value, nullptr when missing).
inline bool read_stop_value(const Reader& rd, const json::value* v, std::vector<std::string>& out) {
    if (v != nullptr) {
        if (const json::string* s = v->if_string()) {
            out.resize(1);
            out[0].assign(s->data(), s->size());
            return true;
        }
        if (!v->is_null() && !v->is_array()) {
            const Path p(nullptr, "stop");
            return type_error(rd, &p, "a string or an array", *v);
        }
    }
    return optional_strings_value(rd, v, nullptr, "stop", out);
}
inline bool read_stop(const Reader& rd, const json::object& root, std::vector<std::string>& out) {
    return read_stop_value(rd, root.if_contains("stop"), out);
}

/// The members of a chat request the schema models, in the order of `request_fields`.
enum RequestField : std::uint8_t {
    f_model,
    f_provider,
    f_messages,
    f_temperature,
    f_top_p,
    f_max_tokens,
    f_max_completion_tokens,
    f_n,
    f_seed,
    f_frequency_penalty,
    f_presence_penalty,
    f_logprobs,
    f_top_logprobs,
    f_parallel_tool_calls,
    f_stream,
    f_stop,
    f_tools,
    f_tool_choice,
    f_response_format,
    f_user,
    f_fallbacks,
    request_field_count
};
inline constexpr std::string_view request_fields[request_field_count] = {
    "model",
    "provider",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "stream",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "user",
    "fallbacks",
};

/// Finds the members of `o` named in `names` in one pass: `found[i]` is the value of
/// `names[i]` (nullptr when missing). Returns how many members have other names. (A parsed
/// object holds no duplicate keys: the parser keeps the last.)
template <std::size_t N>
std::size_t find_members(const json::object& o, const std::string_view (&names)[N],
                         const json::value* (&found)[N]) noexcept {
    for (auto& f : found)
        f = nullptr;
    std::size_t unknown = 0;
    for (const json::key_value_pair& kv : o) {
        const std::string_view k = sv_key(kv);
        std::size_t i = 0;
        while (i < N && names[i] != k)
            ++i;
        if (i < N) {
            found[i] = &kv.value();
        } else {
            ++unknown;
        }
    }
    return unknown;
}

inline bool read_request(const Reader& rd, const json::value& v, ChatRequest& out) {
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;
    const json::value* m[request_field_count];
    const std::size_t unknown = find_members(o, request_fields, m);

    const Path pm(nullptr, "model");
    if (!required_value(rd, m[f_model], nullptr, "model", out.model)) return false;
    if (out.model.empty()) return rd.fail(&pm, {"must not be empty"});

    const Path pms(nullptr, "messages");
    const json::value* msgs = m[f_messages];
    if (msgs == nullptr) return rd.fail(&pms, {"required field is missing"});
    const json::array* a = nullptr;
    if (!as_array(rd, *msgs, &pms, a)) return false;
    if (a->empty()) return rd.fail(&pms, {"must not be empty"});
    out.messages.resize(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&pms, i);
        if (!read_message(rd, (*a)[i], &pi, out.messages[i])) return false;
    }

    const auto field = [&](RequestField f, auto& target) {
        return optional_value(rd, m[f], nullptr, request_fields[f], target);
    };
    if (!optional_string_value(rd, m[f_provider], nullptr, "provider", out.provider) ||
        !field(f_temperature, out.temperature) || !field(f_top_p, out.top_p) ||
        !field(f_max_tokens, out.max_tokens) ||
        !field(f_max_completion_tokens, out.max_completion_tokens) || !field(f_n, out.n) ||
        !field(f_seed, out.seed) || !field(f_frequency_penalty, out.frequency_penalty) ||
        !field(f_presence_penalty, out.presence_penalty) || !field(f_logprobs, out.logprobs) ||
        !field(f_top_logprobs, out.top_logprobs) ||
        !field(f_parallel_tool_calls, out.parallel_tool_calls) || !field(f_stream, out.stream) ||
        !read_stop_value(rd, m[f_stop], out.stop)) {
        return false;
    }

    const json::value* tools = m[f_tools];
    if (tools == nullptr || tools->is_null()) {
        out.tools.clear();
    } else {
        const Path pt(nullptr, "tools");
        const json::array* ta = nullptr;
        if (!as_array(rd, *tools, &pt, ta)) return false;
        out.tools.resize(ta->size());
        for (std::size_t i = 0; i < ta->size(); ++i) {
            const Path pi(&pt, i);
            if (!read_tool(rd, (*ta)[i], &pi, out.tools[i])) return false;
        }
    }

    if (!read_tool_choice(rd, m[f_tool_choice], out.tool_choice) ||
        !read_response_format(rd, m[f_response_format], out.response_format) ||
        !optional_string_value(rd, m[f_user], nullptr, "user", out.user) ||
        !optional_strings_value(rd, m[f_fallbacks], nullptr, "fallbacks", out.fallbacks)) {
        return false;
    }

    if (unknown == 0) {
        out.extra.clear();
    } else {
        copy_unknown(o, request_fields, out.extra);
    }
    return true;
}

// ---- responses -------------------------------------------------------------------------------

inline bool read_choice(const Reader& rd, const json::value& v, const Path* at, std::size_t i,
                        Choice& c) {
    const json::object* o = nullptr;
    if (!as_object(rd, v, at, o)) return false;
    if (!optional_member_or(rd, *o, at, "index", c.index, static_cast<std::int64_t>(i)))
        return false;
    const Path pm(at, "message");
    const json::value* m = o->if_contains("message");
    if (m == nullptr) return rd.fail(&pm, {"required field is missing"});
    if (!read_message(rd, *m, &pm, c.message)) return false;
    if (!optional_string(rd, *o, at, "finish_reason", c.finish_reason)) return false;
    if (const json::value* lp = o->if_contains("logprobs")) {
        assign_value(c.logprobs, *lp);
    } else {
        c.logprobs = nullptr;
    }
    return true;
}

inline bool read_usage(const Reader& rd, const json::object& root, std::optional<Usage>& out) {
    const json::value* v = root.if_contains("usage");
    if (v == nullptr || v->is_null()) {
        out.reset();
        return true;
    }
    const Path p(nullptr, "usage");
    const json::object* o = nullptr;
    if (!as_object(rd, *v, &p, o)) return false;
    if (!out) out.emplace();
    Usage& u = *out;
    constexpr std::int64_t zero = 0;
    if (!optional_member_or(rd, *o, &p, "prompt_tokens", u.prompt_tokens, zero) ||
        !optional_member_or(rd, *o, &p, "completion_tokens", u.completion_tokens, zero) ||
        !optional_member_or(rd, *o, &p, "total_tokens", u.total_tokens, zero)) {
        return false;
    }
    copy_unknown(*o, {"prompt_tokens", "completion_tokens", "total_tokens"}, u.extra);
    return true;
}

inline bool read_extra_fields(const Reader& rd, const json::object& root, ResponseExtra& out) {
    const json::value* v = root.if_contains("extra_fields");
    out.latency = {};
    if (v == nullptr || v->is_null()) {
        out.provider.clear();
        return true;
    }
    const Path p(nullptr, "extra_fields");
    const json::object* o = nullptr;
    if (!as_object(rd, *v, &p, o)) return false;
    if (!optional_string(rd, *o, &p, "provider", out.provider)) return false;
    const json::value* lat = o->if_contains("latency");
    if (lat == nullptr || lat->is_null()) return true;
    const Path pl(&p, "latency");
    double ms = 0;
    if (!read_value(rd, *lat, &pl, ms)) return false;
    const double ns = std::round(ms * 1e6);
    if (!(std::fabs(ns) < 9.2e18)) return rd.fail(&pl, {"out of range"});
    out.latency = std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
    return true;
}

inline bool read_response(const Reader& rd, const json::value& v, Outcome& out) {
    out.error.clear();
    ChatResponse& r = out.response;
    const json::object* root = nullptr;
    if (!as_object(rd, v, nullptr, root)) return false;
    const json::object& o = *root;

    if (!optional_string(rd, o, nullptr, "id", r.id) ||
        !optional_member_or(rd, o, nullptr, "object", r.object,
                            std::string_view("chat.completion")) ||
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
    std::vector<Choice>& cs = out.reuse_choices(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        const Path pi(&pc, i);
        if (!read_choice(rd, (*a)[i], &pi, i, cs[i])) return false;
    }

    if (!read_usage(rd, o, r.usage) || !read_extra_fields(rd, o, r.extra_fields)) return false;
    copy_unknown(o,
                 {"id", "object", "created", "model", "system_fingerprint", "choices", "usage",
                  "extra_fields"},
                 r.extra);
    return true;
}

// ---- parsing text ----------------------------------------------------------------------------

/// Per-thread parsing scratch: the parsed document lives in `document` (spilling to the heap
/// only for large documents), the parser keeps its own temporary buffer and grown stacks.
struct ParseState {
    static json::parse_options options() noexcept {
        json::parse_options opts;
        opts.max_depth = 64;
        return opts;
    }

    alignas(std::max_align_t) unsigned char document[16 * 1024];
    unsigned char temp[4 * 1024];
    json::parser parser{json::storage_ptr(), options(), temp, sizeof temp};
};

inline ParseState& parse_state() {
    thread_local ParseState state;
    return state;
}

/// "malformed JSON at line L, column C: <reason>", counting from 1 up to byte `offset`.
inline std::string syntax_message(std::string_view text, std::size_t offset,
                                  const json::error_code& ec) {
    if (offset > text.size()) offset = text.size();
    std::uint64_t line = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n') {
            ++line;
            line_start = i + 1;
        }
    }
    std::string msg = "malformed JSON at line ";
    append_number(msg, line);
    msg.append(", column ");
    append_number(msg, static_cast<std::uint64_t>(offset - line_start + 1));
    msg.append(": ");
    msg.append(ec.message());
    return msg;
}

/// Parses `text` with this thread's parser and calls `read(document)`. The document is valid
/// only during the call.
template <class Read>
bool parse_then(const Reader& rd, std::string_view text, std::string_view empty_message,
                Read&& read) {
    if (text.empty()) return rd.fail_document(std::string(empty_message));
    ParseState& st = parse_state();
    // A fresh resource per document: `monotonic_resource::release` keeps growing its next
    // block size, which would make spills ever larger.
    json::monotonic_resource resource(st.document, sizeof st.document);
    struct ResetParser {
        json::parser& p;
        ~ResetParser() { p.reset(); }
    } reset_parser{st.parser};
    st.parser.reset(json::storage_ptr(&resource));
    json::error_code ec;
    const std::size_t consumed = st.parser.write(text.data(), text.size(), ec);
    if (ec) return rd.fail_document(syntax_message(text, consumed, ec));
    const json::value doc = st.parser.release();
    return read(doc);
}

// ---- streaming response reader ---------------------------------------------------------------

/// What both streaming readers' `json::basic_parser` handlers share: Boost.JSON's own size
/// limits, and the events they ignore.
struct SaxBasics {
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
};

/// A `json::basic_parser` handler that reads a chat-completion response straight into an
/// `Outcome`, with no document in between: the fixed fields are assigned as they arrive (strings
/// into the capacity they already have), and choices and tool calls reuse the elements the
/// outcome keeps. Only the free-form parts (unknown members kept in `extra`, `logprobs`, array
/// `content`, tool-call `arguments` sent as an object) are built as `json::value`s, on a scratch
/// resource, and handed to the mapping code the DOM reader uses.
///
/// It reads only documents of the expected shape. At anything else (a wrong type, a missing
/// required field, a duplicate key, an unknown role, ...) it stops with `fallback()` set, and the
/// caller reads the document with the DOM reader, which reports the problem.
///
/// The callbacks keep their common case short and call-free; everything else is in out-of-line
/// `*_slow` functions.
class ResponseHandler : public SaxBasics {
  public:
    /// `scratch` backs the values built (spilling to the heap), `stack` is the initial memory of
    /// the value builder's stack (it grows on the heap).
    ResponseHandler(unsigned char* scratch, std::size_t scratch_size, unsigned char* stack,
                    std::size_t stack_size) noexcept
        : scratch_buffer_(scratch),
          scratch_size_(scratch_size),
          values_(json::storage_ptr(), stack, stack_size) {}

    /// Prepares to read one document into `out`.
    void start(Outcome& out) noexcept {
        out_ = &out;
        depth_ = 0;
        nesting_ = 0;
        slot_ = Slot::document;
        text_target_ = nullptr;
        int_target_ = nullptr;
        capturing_ = false;
        in_key_ = false;
        in_string_ = false;
        fallback_ = false;
        choice_ = nullptr;
        call_ = nullptr;
        choice_count_ = 0;
        call_count_ = 0;
    }

    /// Drops every value built on the scratch memory and the memory itself.
    void stop() noexcept {
        if (scratch_) {
            values_.reset();
            for (std::optional<json::object>& e : extra_)
                e.reset();
            scratch_.reset();
        }
        out_ = nullptr;
    }

    /// True when reading stopped because the document must be read by the DOM reader.
    [[nodiscard]] bool fallback() const noexcept { return fallback_; }

    BOOST_FORCEINLINE bool on_object_begin(json::error_code& ec) {
        if (nesting_ != 0) {
            ++nesting_;
            return true;
        }
        switch (slot_) {
            case Slot::document:
                return enter(Ctx::root);
            case Slot::choice:
                begin_choice();
                return enter(Ctx::choice);
            case Slot::message:
                return enter(Ctx::message);
            case Slot::tool_call:
                begin_tool_call();
                return enter(Ctx::tool_call);
            case Slot::function:
                return enter(Ctx::function);
            case Slot::usage:
                if (!out_->response.usage) out_->response.usage.emplace();
                return enter(Ctx::usage);
            case Slot::extra_fields:
                out_->response.extra_fields.latency = {};
                return enter(Ctx::extra_fields);
            default:
                return nested_begin_slow(false, ec);
        }
    }

    BOOST_FORCEINLINE bool on_object_end(std::size_t n, json::error_code& ec) {
        if (nesting_ != 0) return nested_end_slow(false, n, ec);
        const Frame& f = frames_[--depth_];
        switch (f.ctx) {
            case Ctx::root:
                return end_root(f.seen) || fail(ec);
            case Ctx::choice:
                set_slot(Slot::choice);
                return end_choice(f.seen) || fail(ec);
            case Ctx::message:
                end_message(f.seen);
                return true;
            case Ctx::tool_call:
                set_slot(Slot::tool_call);
                return end_tool_call(f.seen) || fail(ec);
            case Ctx::function:
                return end_function(f.seen) || fail(ec);
            case Ctx::usage:
                end_usage(f.seen);
                return true;
            case Ctx::extra_fields:
                if (!has(f.seen, Slot::provider)) out_->response.extra_fields.provider.clear();
                return true;
            case Ctx::choices:
            case Ctx::tool_calls:
                break;
        }
        return true;
    }

    bool on_array_begin(json::error_code& ec) {
        if (nesting_ != 0) {
            ++nesting_;
            return true;
        }
        switch (slot_) {
            case Slot::choices:
                choice_count_ = 0;
                enter(Ctx::choices);
                set_slot(Slot::choice);
                return true;
            case Slot::tool_calls:
                call_count_ = 0;
                enter(Ctx::tool_calls);
                set_slot(Slot::tool_call);
                return true;
            default:
                return nested_begin_slow(true, ec);
        }
    }

    bool on_array_end(std::size_t n, json::error_code& ec) {
        if (nesting_ != 0) return nested_end_slow(true, n, ec);
        if (frames_[--depth_].ctx == Ctx::choices) {
            if (choice_count_ != out_->response.choices.size()) out_->reuse_choices(choice_count_);
        } else {
            choice_->message.tool_calls.resize(call_count_);
        }
        return true;
    }

    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        if (nesting_ != 0) {
            if (capturing_) values_.push_chars(s);
        } else if (in_key_) {
            key_.append(s.data(), s.size());
        } else {
            key_.assign(s.data(), s.size());
            in_key_ = true;
        }
        return true;
    }

    BOOST_FORCEINLINE bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        if (nesting_ == 0 && !in_key_) [[likely]]
            return member(s, ec);
        return key_slow(s, ec);
    }

    bool on_string_part(json::string_view s, std::size_t, json::error_code& ec) {
        return string_slow(s, false, ec);
    }

    BOOST_FORCEINLINE bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
        if (nesting_ == 0 && !in_string_ && text_target_ != nullptr) [[likely]] {
            // Cheaper than `assign` (no aliasing to handle); keeps the capacity all the same.
            text_target_->clear();
            text_target_->append(s.data(), s.size());
            if (slot_ == Slot::content) choice_->message.parts.clear();
            return true;
        }
        return string_slow(s, true, ec);
    }

    BOOST_FORCEINLINE bool on_int64(std::int64_t v, json::string_view, json::error_code& ec) {
        if (nesting_ == 0 && int_target_ != nullptr) [[likely]] {
            *int_target_ = v;
            return true;
        }
        return number_slow(v, ec);
    }
    bool on_uint64(std::uint64_t v, json::string_view, json::error_code& ec) {
        return number_slow(v, ec);
    }
    bool on_double(double v, json::string_view, json::error_code& ec) { return number_slow(v, ec); }

    bool on_bool(bool b, json::error_code& ec) {
        if (nesting_ != 0) {
            if (capturing_) values_.push_bool(b);
            return true;
        }
        switch (slot_) {
            case Slot::extra:
            case Slot::logprobs:
                begin_capture();
                values_.push_bool(b);
                return end_capture(ec);
            case Slot::ignored:
                return true;
            default:
                return fail(ec);
        }
    }

    bool on_null(json::error_code& ec) {
        if (nesting_ != 0) {
            if (capturing_) values_.push_null();
            return true;
        }
        ChatResponse& r = out_->response;
        switch (slot_) {
            case Slot::id:
            case Slot::model:
            case Slot::system_fingerprint:
            case Slot::finish_reason:
            case Slot::name:
            case Slot::tool_call_id:
            case Slot::call_id:
            case Slot::arguments:
            case Slot::provider:
                text_target_->clear();
                return true;
            case Slot::object:
                r.object.assign("chat.completion");
                return true;
            case Slot::call_type:
                call_->type.assign("function");
                return true;
            case Slot::created:
            case Slot::prompt_tokens:
            case Slot::completion_tokens:
            case Slot::total_tokens:
                *int_target_ = 0;
                return true;
            case Slot::index:
                choice_->index = static_cast<std::int64_t>(choice_count_ - 1);
                return true;
            case Slot::usage:
                r.usage.reset();
                return true;
            case Slot::extra_fields:
                r.extra_fields.provider.clear();
                r.extra_fields.latency = {};
                return true;
            case Slot::logprobs:
                choice_->logprobs = nullptr;
                return true;
            case Slot::content:
                choice_->message.content.clear();
                choice_->message.parts.clear();
                return true;
            case Slot::tool_calls:
                choice_->message.tool_calls.clear();
                return true;
            case Slot::latency:  // already reset when `extra_fields` began
            case Slot::ignored:
                return true;
            case Slot::extra:
                begin_capture();
                values_.push_null();
                return end_capture(ec);
            default:
                return fail(ec);
        }
    }

  private:
    /// The object or array being read.
    enum class Ctx : std::uint8_t {
        root,
        choices,
        choice,
        message,
        tool_calls,
        tool_call,
        function,
        usage,
        extra_fields
    };

    /// What the next value is: the document, an element of `choices` or `tool_calls`, or the
    /// value of a member (named after the member; `call_*` for a tool call's, `function_name`
    /// for `function.name`). Inside an object the slot is set by each key.
    enum class Slot : std::uint8_t {
        document,
        id,
        object,
        created,
        model,
        system_fingerprint,
        choices,
        usage,
        extra_fields,
        choice,
        index,
        message,
        finish_reason,
        logprobs,
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
        tool_call,
        call_id,
        call_type,
        function,
        function_name,
        arguments,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        provider,
        latency,
        extra,    // an unknown member, kept in the enclosing object's `extra`
        ignored,  // an unknown member the schema does not keep
    };

    struct Frame {
        Ctx ctx;
        std::uint64_t seen;  // a bit per member Slot: the known members read so far
    };

    /// Pending unknown members of the root, the current message and the usage.
    enum ExtraOf : std::uint8_t { root_extra, message_extra, usage_extra };

    static constexpr std::uint64_t bit(Slot s) noexcept {
        return std::uint64_t{1} << static_cast<unsigned>(s);
    }
    static constexpr bool has(std::uint64_t seen, Slot s) noexcept { return (seen & bit(s)) != 0; }

    /// The `L` bytes at `a` and `b` are equal: compared a word (or two overlapping words) at a
    /// time, with no call.
    template <std::size_t L>
    BOOST_FORCEINLINE static bool same(const char* a, const char* b) noexcept {
        if constexpr (L > 16) {
            return same<8>(a, b) && same<L - 8>(a + 8, b + 8);
        } else if constexpr (L >= 8) {
            return same_words<std::uint64_t, L>(a, b);
        } else if constexpr (L >= 4) {
            return same_words<std::uint32_t, L>(a, b);
        } else if constexpr (L >= 2) {
            return same_words<std::uint16_t, L>(a, b);
        } else if constexpr (L == 1) {
            return *a == *b;
        } else {
            return true;
        }
    }

    /// Compares the first and the last `sizeof(W)` of `L` bytes (`sizeof(W) <= L <= 2 *
    /// sizeof(W)`).
    template <class W, std::size_t L>
    BOOST_FORCEINLINE static bool same_words(const char* a, const char* b) noexcept {
        W a1, a2, b1, b2;
        std::memcpy(&a1, a, sizeof(W));
        std::memcpy(&b1, b, sizeof(W));
        std::memcpy(&a2, a + L - sizeof(W), sizeof(W));
        std::memcpy(&b2, b + L - sizeof(W), sizeof(W));
        return ((a1 ^ b1) | (a2 ^ b2)) == 0;
    }

    /// `k == name`.
    template <std::size_t N>
    BOOST_FORCEINLINE static bool is(std::string_view k, const char (&name)[N]) noexcept {
        return k.size() == N - 1 && same<N - 1>(k.data(), name);
    }

    bool fail(json::error_code& ec) noexcept {
        fallback_ = true;
        ec = json::error::exception;
        return false;
    }

    bool enter(Ctx c) noexcept {
        frames_[depth_++] = Frame{c, 0};
        return true;
    }

    void set_slot(Slot s) noexcept {
        slot_ = s;
        text_target_ = nullptr;
        int_target_ = nullptr;
    }

    /// A known member: selects its slot and where a string or integer value goes.
    bool known(Frame& f, json::error_code& ec, Slot s, std::string* text = nullptr,
               std::int64_t* integer = nullptr) noexcept {
        if (has(f.seen, s)) return fail(ec);  // a duplicate key: the DOM reader keeps the last
        f.seen |= bit(s);
        slot_ = s;
        text_target_ = text;
        int_target_ = integer;
        return true;
    }

    /// An unknown member: kept in `extra` (`keep`) or skipped.
    bool unknown(std::string_view k, bool keep) noexcept {
        // `k` is in the input or in `key_`, which is left alone until the value ends.
        pending_key_ = k;
        set_slot(keep ? Slot::extra : Slot::ignored);
        return true;
    }

    BOOST_FORCEINLINE bool member(std::string_view k, json::error_code& ec) {
        Frame& f = frames_[depth_ - 1];
        ChatResponse& r = out_->response;
        switch (f.ctx) {
            case Ctx::root:
                if (is(k, "id")) return known(f, ec, Slot::id, &r.id);
                if (is(k, "object")) return known(f, ec, Slot::object, &r.object);
                if (is(k, "created")) return known(f, ec, Slot::created, nullptr, &r.created);
                if (is(k, "model")) return known(f, ec, Slot::model, &r.model);
                if (is(k, "choices")) return known(f, ec, Slot::choices);
                if (is(k, "usage")) return known(f, ec, Slot::usage);
                if (is(k, "system_fingerprint"))
                    return known(f, ec, Slot::system_fingerprint, &r.system_fingerprint);
                if (is(k, "extra_fields")) return known(f, ec, Slot::extra_fields);
                return unknown(k, true);
            case Ctx::choice: {
                Choice& c = *choice_;
                if (is(k, "index")) return known(f, ec, Slot::index, nullptr, &c.index);
                if (is(k, "message")) return known(f, ec, Slot::message);
                if (is(k, "finish_reason"))
                    return known(f, ec, Slot::finish_reason, &c.finish_reason);
                if (is(k, "logprobs")) return known(f, ec, Slot::logprobs);
                return unknown(k, false);
            }
            case Ctx::message: {
                Message& m = choice_->message;
                if (is(k, "role")) return known(f, ec, Slot::role);
                if (is(k, "content")) return known(f, ec, Slot::content, &m.content);
                if (is(k, "tool_calls")) return known(f, ec, Slot::tool_calls);
                if (is(k, "name")) return known(f, ec, Slot::name, &m.name);
                if (is(k, "tool_call_id")) return known(f, ec, Slot::tool_call_id, &m.tool_call_id);
                return unknown(k, true);
            }
            case Ctx::tool_call:
                if (is(k, "id")) return known(f, ec, Slot::call_id, &call_->id);
                if (is(k, "type")) return known(f, ec, Slot::call_type, &call_->type);
                if (is(k, "function")) return known(f, ec, Slot::function);
                return unknown(k, false);
            case Ctx::function:
                if (is(k, "name")) return known(f, ec, Slot::function_name, &call_->name);
                if (is(k, "arguments")) return known(f, ec, Slot::arguments, &call_->arguments);
                return unknown(k, false);
            case Ctx::usage: {
                Usage& u = *r.usage;
                if (is(k, "prompt_tokens"))
                    return known(f, ec, Slot::prompt_tokens, nullptr, &u.prompt_tokens);
                if (is(k, "completion_tokens"))
                    return known(f, ec, Slot::completion_tokens, nullptr, &u.completion_tokens);
                if (is(k, "total_tokens"))
                    return known(f, ec, Slot::total_tokens, nullptr, &u.total_tokens);
                return unknown(k, true);
            }
            case Ctx::extra_fields:
                if (is(k, "provider"))
                    return known(f, ec, Slot::provider, &r.extra_fields.provider);
                if (is(k, "latency")) return known(f, ec, Slot::latency);
                return unknown(k, false);
            case Ctx::choices:
            case Ctx::tool_calls:
                break;
        }
        return fail(ec);  // unreachable: arrays have no keys
    }

    BOOST_NOINLINE bool key_slow(json::string_view s, json::error_code& ec) {
        if (nesting_ != 0) {
            if (capturing_) values_.push_key(s);
            return true;
        }
        in_key_ = false;
        key_.append(s.data(), s.size());
        return member(key_, ec);
    }

    /// A piece of a string value (`last`: the final one), outside the common case.
    BOOST_NOINLINE bool string_slow(json::string_view s, bool last, json::error_code& ec) {
        if (nesting_ != 0) {
            if (capturing_) {
                if (last) {
                    values_.push_string(s);
                } else {
                    values_.push_chars(s);
                }
            }
            return true;
        }
        const bool first = !in_string_;
        in_string_ = !last;
        if (text_target_ != nullptr) {
            if (first) {
                text_target_->assign(s.data(), s.size());
            } else {
                text_target_->append(s.data(), s.size());
            }
            if (last && slot_ == Slot::content) choice_->message.parts.clear();
            return true;
        }
        switch (slot_) {
            case Slot::role: {
                std::string_view role = s;
                if (!first || !last) {
                    if (first) {
                        text_.assign(s.data(), s.size());
                    } else {
                        text_.append(s.data(), s.size());
                    }
                    if (!last) return true;
                    role = text_;
                }
                if (is(role, "assistant")) {  // nearly always
                    choice_->message.role = Role::assistant;
                    return true;
                }
                return parse_role(role, choice_->message.role) || fail(ec);
            }
            case Slot::extra:
            case Slot::logprobs:
                if (first) begin_capture();
                if (!last) {
                    values_.push_chars(s);
                    return true;
                }
                values_.push_string(s);
                return end_capture(ec);
            case Slot::ignored:
                return true;
            default:
                return fail(ec);
        }
    }

    static bool to_int(std::int64_t v, std::int64_t& out) noexcept {
        out = v;
        return true;
    }
    static bool to_int(std::uint64_t v, std::int64_t& out) noexcept {
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
        out = static_cast<std::int64_t>(v);
        return true;
    }
    /// As `read_value` for integers: a double with an integral value is accepted.
    static bool to_int(double d, std::int64_t& out) noexcept {
        if (!std::isfinite(d) || d != std::trunc(d)) return false;
        if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) return false;
        out = static_cast<std::int64_t>(d);
        return true;
    }

    void push(std::int64_t v) { values_.push_int64(v); }
    void push(std::uint64_t v) { values_.push_uint64(v); }
    void push(double v) { values_.push_double(v); }

    template <class T>
    BOOST_NOINLINE bool number_slow(T v, json::error_code& ec) {
        if (nesting_ != 0) {
            if (capturing_) push(v);
            return true;
        }
        if (int_target_ != nullptr) return to_int(v, *int_target_) || fail(ec);
        switch (slot_) {
            case Slot::latency: {
                // As `read_extra_fields`.
                const double ns = std::round(static_cast<double>(v) * 1e6);
                if (!(std::fabs(ns) < 9.2e18)) return fail(ec);
                out_->response.extra_fields.latency =
                    std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
                return true;
            }
            case Slot::extra:
            case Slot::logprobs:
                begin_capture();
                push(v);
                return end_capture(ec);
            case Slot::ignored:
                return true;
            default:
                return fail(ec);
        }
    }

    /// An object or array that is built (for `extra`, `logprobs`, array `content`, object
    /// `arguments`) or skipped (an ignored member), or not allowed here.
    BOOST_NOINLINE bool nested_begin_slow(bool array, json::error_code& ec) {
        switch (slot_) {
            case Slot::content:
                if (!array) return fail(ec);
                [[fallthrough]];
            case Slot::extra:
            case Slot::logprobs:
            case Slot::arguments:
                begin_capture();
                capturing_ = true;
                break;
            case Slot::ignored:
                capturing_ = false;
                break;
            default:
                return fail(ec);
        }
        nesting_ = 1;
        return true;
    }

    BOOST_NOINLINE bool nested_end_slow(bool array, std::size_t n, json::error_code& ec) {
        if (capturing_) {
            if (array) {
                values_.push_array(n);
            } else {
                values_.push_object(n);
            }
        }
        if (--nesting_ != 0 || !capturing_) return true;
        capturing_ = false;
        return end_capture(ec);
    }

    void begin_capture() {
        if (!scratch_) scratch_.emplace(scratch_buffer_, scratch_size_);
        values_.reset(json::storage_ptr(&*scratch_));
    }

    /// The value built in `values_` is complete: hands it to its slot.
    bool end_capture(json::error_code& ec) {
        json::value v = values_.release();
        switch (slot_) {
            case Slot::extra: {
                const Ctx c = frames_[depth_ - 1].ctx;
                std::optional<json::object>& e = extra_[c == Ctx::root      ? root_extra
                                                        : c == Ctx::message ? message_extra
                                                                            : usage_extra];
                if (!e) e.emplace(json::storage_ptr(&*scratch_));
                if (!e->emplace(pending_key_, std::move(v)).second) return fail(ec);  // duplicate
                return true;
            }
            case Slot::logprobs:
                assign_value(choice_->logprobs, v);
                return true;
            case Slot::content: {
                const Reader rd{&out_->error, true};
                const Path pc(nullptr, "choices");
                const Path pi(&pc, choice_count_ - 1);
                const Path pm(&pi, "message");
                const Path pt(&pm, "content");
                return read_parts(rd, v.get_array(), &pt, choice_->message) || fail(ec);
            }
            case Slot::arguments:
                write_arguments(v, call_->arguments);
                return true;
            default:
                return fail(ec);
        }
    }

    /// Moves the pending unknown members into `extra`, as `copy_unknown` does.
    void take_extra(ExtraOf which, json::object& extra) {
        std::optional<json::object>& e = extra_[which];
        if (e && !e->empty()) {
            copy_unknown(*e, {}, extra);
            e->clear();
        } else if (!extra.empty()) {
            extra.clear();
        }
    }

    void begin_choice() {
        const std::size_t i = choice_count_++;
        std::vector<Choice>& cs = out_->response.choices;
        if (i >= cs.size()) out_->reuse_choices(i + 1);
        choice_ = &cs[i];
    }

    void begin_tool_call() {
        std::vector<ToolCall>& calls = choice_->message.tool_calls;
        const std::size_t i = call_count_++;
        if (i >= calls.size()) calls.emplace_back();
        call_ = &calls[i];
    }

    // At the end of an object, the members it lacked take the values the DOM reader gives them.

    bool end_root(std::uint64_t seen) {
        ChatResponse& r = out_->response;
        if (!has(seen, Slot::choices)) return false;
        if (!has(seen, Slot::id)) r.id.clear();
        if (!has(seen, Slot::object)) r.object.assign("chat.completion");
        if (!has(seen, Slot::created)) r.created = 0;
        if (!has(seen, Slot::model)) r.model.clear();
        if (!has(seen, Slot::system_fingerprint)) r.system_fingerprint.clear();
        if (!has(seen, Slot::usage)) r.usage.reset();
        if (!has(seen, Slot::extra_fields)) {
            r.extra_fields.provider.clear();
            r.extra_fields.latency = {};
        }
        take_extra(root_extra, r.extra);
        return true;
    }

    bool end_choice(std::uint64_t seen) {
        Choice& c = *choice_;
        if (!has(seen, Slot::message)) return false;
        if (!has(seen, Slot::index)) c.index = static_cast<std::int64_t>(choice_count_ - 1);
        if (!has(seen, Slot::finish_reason)) c.finish_reason.clear();
        if (!has(seen, Slot::logprobs)) c.logprobs = nullptr;
        return true;
    }

    void end_message(std::uint64_t seen) {
        Message& m = choice_->message;
        if (!has(seen, Slot::role)) m.role = Role::assistant;
        if (!has(seen, Slot::content)) {
            m.content.clear();
            m.parts.clear();
        }
        if (!has(seen, Slot::name)) m.name.clear();
        if (!has(seen, Slot::tool_calls)) m.tool_calls.clear();
        if (!has(seen, Slot::tool_call_id)) m.tool_call_id.clear();
        take_extra(message_extra, m.extra);
    }

    bool end_tool_call(std::uint64_t seen) {
        if (!has(seen, Slot::function)) return false;
        if (!has(seen, Slot::call_id)) call_->id.clear();
        if (!has(seen, Slot::call_type)) call_->type.assign("function");
        return true;
    }

    bool end_function(std::uint64_t seen) {
        if (!has(seen, Slot::function_name)) return false;
        if (!has(seen, Slot::arguments)) call_->arguments.clear();
        return true;
    }

    void end_usage(std::uint64_t seen) {
        Usage& u = *out_->response.usage;
        if (!has(seen, Slot::prompt_tokens)) u.prompt_tokens = 0;
        if (!has(seen, Slot::completion_tokens)) u.completion_tokens = 0;
        if (!has(seen, Slot::total_tokens)) u.total_tokens = 0;
        take_extra(usage_extra, u.extra);
    }

    Outcome* out_ = nullptr;
    Frame frames_[8] = {};  // the objects and arrays being read (at most 7 deep)
    std::size_t depth_ = 0;
    std::size_t nesting_ = 0;  // depth inside a value being built or skipped
    Slot slot_ = Slot::document;
    bool capturing_ = false;  // the nested value is built, not skipped
    bool in_key_ = false;     // a key arrived in parts so far (in `key_`)
    bool in_string_ = false;  // a string value arrived in parts so far
    bool fallback_ = false;
    std::string* text_target_ = nullptr;  // where the slot's string value goes
    std::int64_t* int_target_ = nullptr;  // where the slot's integer value goes
    Choice* choice_ = nullptr;
    ToolCall* call_ = nullptr;
    std::size_t choice_count_ = 0;  // choices begun so far
    std::size_t call_count_ = 0;    // tool calls of the current message begun so far
    std::string key_;               // a key that arrived in parts
    std::string text_;              // a role that arrived in parts
    std::string_view pending_key_;  // the key of the member built for `extra`

    unsigned char* scratch_buffer_;
    std::size_t scratch_size_;
    std::optional<json::monotonic_resource> scratch_;  // created by the first value built
    json::value_stack values_;                         // builds values on `scratch_`
    std::optional<json::object> extra_[3];             // see ExtraOf; on `scratch_`
};

/// Per-thread state of the streaming response reader: the parser, scratch memory for the values
/// it builds (spilling to the heap only for large ones) and the value builder's initial stack.
struct ResponseParseState {
    alignas(std::max_align_t) unsigned char scratch[8 * 1024];
    alignas(json::value) unsigned char stack[2 * 1024];
    json::basic_parser<ResponseHandler> parser{ParseState::options(), scratch, sizeof scratch,
                                               stack, sizeof stack};
};

inline ResponseParseState& response_parse_state() {
    thread_local ResponseParseState state;
    return state;
}

/// Reads `text` into `out` with this thread's streaming parser and sets `ok` as
/// `parse_chat_response` returns. Returns false, with `out` unspecified, when the document must
/// be read by the DOM reader instead: it is empty or not of the expected shape.
inline bool stream_response(const Reader& rd, std::string_view text, Outcome& out, bool& ok) {
    if (text.empty()) return false;
    json::basic_parser<ResponseHandler>& parser = response_parse_state().parser;
    struct Stop {
        ResponseHandler& h;
        ~Stop() { h.stop(); }
    } stop{parser.handler()};
    parser.reset();
    parser.handler().start(out);
    json::error_code ec;
    const std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
    if (parser.handler().fallback()) return false;
    // As `json::parser::write`.
    if (!ec && consumed < text.size()) ec = json::error::extra_data;
    ok = ec ? rd.fail_document(syntax_message(text, consumed, ec)) : true;
    return true;
}

// ---- streaming request reader ----------------------------------------------------------------

/// A `json::basic_parser` handler that reads the common chat request straight into a
/// `ChatRequest`, with no document in between: a model, messages whose content is a string,
/// and scalar parameters. Strings are assigned into the capacity the request's members kept
/// from the last request, and messages reuse the elements the request keeps.
///
/// It reads only that shape. At anything else (a member it does not read this way, a null, a
/// nested value, a duplicate key, a wrong type, an unknown role, a missing or empty required
/// field, malformed JSON) it stops with `fallback()` set, and the caller reads the document with
/// the DOM reader, which reads every form and reports any problem with its path. So this reader
/// never decides an error itself, and what it reads is what the DOM reader would have read.
class RequestHandler : public SaxBasics {
  public:
    /// Prepares to read one document into `out`.
    void start(ChatRequest& out) noexcept {
        out_ = &out;
        message_ = nullptr;
        level_ = Level::document;
        slot_ = Slot::none;
        seen_ = 0;
        message_seen_ = 0;
        messages_ = 0;
        in_key_ = false;
        in_string_ = false;
        fallback_ = false;
    }

    /// True when reading stopped because the document must be read by the DOM reader.
    [[nodiscard]] bool fallback() const noexcept { return fallback_; }

    bool on_object_begin(json::error_code& ec) {
        if (level_ == Level::document) {
            level_ = Level::root;
            return true;
        }
        if (level_ != Level::messages) return fail(ec);
        std::vector<Message>& ms = out_->messages;
        if (messages_ == ms.size()) ms.emplace_back();
        message_ = &ms[messages_++];
        message_seen_ = 0;
        level_ = Level::message;
        return true;
    }

    bool on_object_end(std::size_t, json::error_code& ec) {
        if (level_ == Level::message) {
            level_ = Level::messages;
            return end_message() || fail(ec);
        }
        level_ = Level::document;  // the root's end
        return end_root() || fail(ec);
    }

    bool on_array_begin(json::error_code& ec) {
        if (level_ != Level::root || slot_ != Slot::messages) return fail(ec);
        level_ = Level::messages;
        messages_ = 0;
        return true;
    }

    bool on_array_end(std::size_t, json::error_code& ec) {
        level_ = Level::root;
        if (messages_ == 0) return fail(ec);  // "must not be empty": the DOM reader says so
        out_->messages.resize(messages_);
        return true;
    }

    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        if (!in_key_) key_.clear();
        key_.append(s.data(), s.size());
        in_key_ = true;
        return true;
    }

    bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        std::string_view key(s.data(), s.size());
        if (in_key_) {
            key_.append(s.data(), s.size());
            key = key_;
            in_key_ = false;
        }
        return (level_ == Level::root ? root_member(key) : message_member(key)) || fail(ec);
    }

    bool on_string_part(json::string_view s, std::size_t, json::error_code& ec) {
        std::string* t = text_target();
        if (t == nullptr) return fail(ec);
        if (!in_string_) t->clear();
        t->append(s.data(), s.size());
        in_string_ = true;
        return true;
    }

    bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
        std::string* t = text_target();
        if (t == nullptr) return fail(ec);
        if (!in_string_) t->clear();
        t->append(s.data(), s.size());
        in_string_ = false;
        if (slot_ == Slot::role) return parse_role(role_, message_->role) || fail(ec);
        if (slot_ == Slot::content) message_->parts.clear();
        return true;
    }

    bool on_int64(std::int64_t v, json::string_view, json::error_code& ec) {
        if (std::optional<std::int64_t>* t = int_target()) {
            *t = v;
            return true;
        }
        if (std::optional<double>* t = double_target()) {
            *t = static_cast<double>(v);
            return true;
        }
        return fail(ec);
    }

    bool on_uint64(std::uint64_t v, json::string_view, json::error_code& ec) {
        // Integers past int64's range are the DOM reader's to judge.
        if (std::optional<double>* t = double_target()) {
            *t = static_cast<double>(v);
            return true;
        }
        return fail(ec);
    }

    bool on_double(double v, json::string_view, json::error_code& ec) {
        if (std::optional<double>* t = double_target()) {
            *t = v;
            return true;
        }
        return fail(ec);
    }

    bool on_bool(bool b, json::error_code& ec) {
        if (!in_object()) return fail(ec);
        std::optional<bool>* t = nullptr;
        switch (slot_) {
            case Slot::logprobs:
                t = &out_->logprobs;
                break;
            case Slot::parallel_tool_calls:
                t = &out_->parallel_tool_calls;
                break;
            case Slot::stream:
                t = &out_->stream;
                break;
            default:
                return fail(ec);
        }
        *t = b;
        return true;
    }

    bool on_null(json::error_code& ec) { return fail(ec); }

  private:
    enum class Level : std::uint8_t { document, root, messages, message };

    /// The member whose value comes next; its bit in `seen_` (root members) or
    /// `message_seen_` (message members) is `1 << slot`.
    enum class Slot : std::uint8_t {
        model,
        provider,
        messages,
        temperature,
        top_p,
        max_tokens,
        max_completion_tokens,
        n,
        seed,
        frequency_penalty,
        presence_penalty,
        logprobs,
        top_logprobs,
        parallel_tool_calls,
        stream,
        user,
        role,
        content,
        name,
        tool_call_id,
        none,
    };

    static constexpr std::uint32_t bit(Slot s) noexcept {
        return std::uint32_t{1} << static_cast<unsigned>(s);
    }

    bool fail(json::error_code& ec) noexcept {
        fallback_ = true;
        ec = json::error::exception;
        return false;
    }

    bool take(std::uint32_t& seen, Slot s) noexcept {
        if ((seen & bit(s)) != 0) return false;  // a duplicate key
        seen |= bit(s);
        slot_ = s;
        return true;
    }

    bool root_member(std::string_view k) noexcept {
        static constexpr std::pair<std::string_view, Slot> members[] = {
            {"model", Slot::model},
            {"messages", Slot::messages},
            {"stream", Slot::stream},
            {"temperature", Slot::temperature},
            {"max_tokens", Slot::max_tokens},
            {"top_p", Slot::top_p},
            {"max_completion_tokens", Slot::max_completion_tokens},
            {"n", Slot::n},
            {"seed", Slot::seed},
            {"frequency_penalty", Slot::frequency_penalty},
            {"presence_penalty", Slot::presence_penalty},
            {"logprobs", Slot::logprobs},
            {"top_logprobs", Slot::top_logprobs},
            {"parallel_tool_calls", Slot::parallel_tool_calls},
            {"user", Slot::user},
            {"provider", Slot::provider},
        };
        for (const auto& [name, slot] : members)
            if (k == name) return take(seen_, slot);
        return false;
    }

    bool message_member(std::string_view k) noexcept {
        if (k == "role") return take(message_seen_, Slot::role);
        if (k == "content") return take(message_seen_, Slot::content);
        if (k == "name") return take(message_seen_, Slot::name);
        if (k == "tool_call_id") return take(message_seen_, Slot::tool_call_id);
        return false;
    }

    /// A scalar is a member's value only inside an object: in the messages array (where
    /// `slot_` still names the last message's last member) or as the document, none is read.
    [[nodiscard]] bool in_object() const noexcept {
        return level_ == Level::root || level_ == Level::message;
    }

    std::string* text_target() noexcept {
        if (!in_object()) return nullptr;
        switch (slot_) {
            case Slot::model:
                return &out_->model;
            case Slot::provider:
                return &out_->provider;
            case Slot::user:
                return &out_->user;
            case Slot::role:
                return &role_;
            case Slot::content:
                return &message_->content;
            case Slot::name:
                return &message_->name;
            case Slot::tool_call_id:
                return &message_->tool_call_id;
            default:
                return nullptr;
        }
    }

    std::optional<std::int64_t>* int_target() noexcept {
        if (!in_object()) return nullptr;
        switch (slot_) {
            case Slot::max_tokens:
                return &out_->max_tokens;
            case Slot::max_completion_tokens:
                return &out_->max_completion_tokens;
            case Slot::n:
                return &out_->n;
            case Slot::seed:
                return &out_->seed;
            case Slot::top_logprobs:
                return &out_->top_logprobs;
            default:
                return nullptr;
        }
    }

    std::optional<double>* double_target() noexcept {
        if (!in_object()) return nullptr;
        switch (slot_) {
            case Slot::temperature:
                return &out_->temperature;
            case Slot::top_p:
                return &out_->top_p;
            case Slot::frequency_penalty:
                return &out_->frequency_penalty;
            case Slot::presence_penalty:
                return &out_->presence_penalty;
            default:
                return nullptr;
        }
    }

    /// A message's end: the role is required; what it did not have is cleared, as the DOM
    /// reader clears it.
    bool end_message() noexcept {
        if ((message_seen_ & bit(Slot::role)) == 0) return false;
        Message& m = *message_;
        if ((message_seen_ & bit(Slot::content)) == 0) {
            m.content.clear();
            m.parts.clear();
        }
        if ((message_seen_ & bit(Slot::name)) == 0) m.name.clear();
        if ((message_seen_ & bit(Slot::tool_call_id)) == 0) m.tool_call_id.clear();
        m.tool_calls.clear();
        m.extra.clear();
        return true;
    }

    /// The document's end: model (not empty) and messages are required; the members it did not
    /// have are reset, as the DOM reader resets them.
    bool end_root() noexcept {
        ChatRequest& r = *out_;
        if ((seen_ & bit(Slot::model)) == 0 || r.model.empty()) return false;
        if ((seen_ & bit(Slot::messages)) == 0) return false;
        const auto reset = [this](Slot s, auto& field) {
            if ((seen_ & bit(s)) == 0) field.reset();
        };
        if ((seen_ & bit(Slot::provider)) == 0) r.provider.clear();
        reset(Slot::temperature, r.temperature);
        reset(Slot::top_p, r.top_p);
        reset(Slot::max_tokens, r.max_tokens);
        reset(Slot::max_completion_tokens, r.max_completion_tokens);
        reset(Slot::n, r.n);
        reset(Slot::seed, r.seed);
        reset(Slot::frequency_penalty, r.frequency_penalty);
        reset(Slot::presence_penalty, r.presence_penalty);
        reset(Slot::logprobs, r.logprobs);
        reset(Slot::top_logprobs, r.top_logprobs);
        reset(Slot::parallel_tool_calls, r.parallel_tool_calls);
        reset(Slot::stream, r.stream);
        if ((seen_ & bit(Slot::user)) == 0) r.user.clear();
        r.stop.clear();
        r.tools.clear();
        r.tool_choice.reset();
        r.response_format.reset();
        r.fallbacks.clear();
        r.extra.clear();
        return true;
    }

    ChatRequest* out_ = nullptr;
    Message* message_ = nullptr;  // the message being read
    Level level_ = Level::document;
    Slot slot_ = Slot::none;
    std::uint32_t seen_ = 0;          // the root's members read so far
    std::uint32_t message_seen_ = 0;  // the current message's
    std::size_t messages_ = 0;        // messages read so far
    bool in_key_ = false;             // a key arrived in parts (escapes): `key_` holds it
    bool in_string_ = false;          // a string is arriving in parts
    bool fallback_ = false;
    std::string key_;
    std::string role_;
};

/// Reads `text` into `out` with this thread's streaming request reader. False, with `out`
/// unspecified, when the document must be read by the DOM reader instead (see
/// `RequestHandler`).
inline bool stream_request(std::string_view text, ChatRequest& out) {
    if (text.empty()) return false;
    thread_local json::basic_parser<RequestHandler> parser{ParseState::options()};
    parser.reset();
    parser.handler().start(out);
    json::error_code ec;
    const std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
    return !ec && consumed == text.size() && !parser.handler().fallback();
}

// ---- writing ---------------------------------------------------------------------------------

/// `"extra_fields":{"provider":...,"latency":ms}` when a provider is set; nothing otherwise.
inline void write_response_extra(JsonWriter& w, const ResponseExtra& e) {
    if (e.provider.empty()) return;
    if (JsonWriter::plain_small(e.provider)) {
        // The usual case in one append (it is written for every answer).
        constexpr std::string_view head = R"("extra_fields":{"provider":")";
        constexpr std::string_view mid = R"(","latency":)";
        char buf[head.size() + JsonWriter::small_limit + mid.size() + 48];
        char* p = buf;
        const auto put = [&p](std::string_view s) {
            std::memcpy(p, s.data(), s.size());
            p += s.size();
        };
        put(head);
        put(e.provider);
        put(mid);
        p = JsonWriter::put_decimal(p, e.latency.count(), 6);
        *p++ = '}';
        w.raw(std::string_view(buf, static_cast<std::size_t>(p - buf)));
        return;
    }
    w.key("extra_fields").begin_object().field("provider", e.provider);
    w.field_millis("latency", e.latency.count());
    w.end_object();
}

inline void write_members(JsonWriter& w, const json::object& o) {
    for (const json::key_value_pair& kv : o) {
        w.key(sv_key(kv)).value(kv.value());
    }
}

inline void write_part(JsonWriter& w, const ContentPart& p) {
    switch (p.type) {
        case ContentPart::Type::text:
            w.begin_object().field("type", "text").field("text", p.text).end_object();
            return;
        case ContentPart::Type::image_url:
            w.begin_object().field("type", "image_url").key("image_url").begin_object();
            w.field("url", p.image_url);
            if (!p.image_detail.empty()) w.field("detail", p.image_detail);
            w.end_object().end_object();
            return;
        case ContentPart::Type::other:
            w.value(p.raw);
            return;
    }
}

inline void write_tool_call(JsonWriter& w, const ToolCall& tc) {
    w.begin_object().field("id", tc.id).field("type", tc.type);
    w.key("function").begin_object();
    w.field("name", tc.name).field("arguments", tc.arguments);
    w.end_object().end_object();
}

inline void write_message(JsonWriter& w, const Message& m) {
    w.begin_object().field("role", to_string(m.role)).key("content");
    if (!m.parts.empty()) {
        w.begin_array();
        for (const ContentPart& p : m.parts)
            write_part(w, p);
        w.end_array();
    } else if (m.content.empty() && !m.tool_calls.empty()) {
        w.null();
    } else {
        w.string(m.content);
    }
    if (!m.name.empty()) w.field("name", m.name);
    if (!m.tool_calls.empty()) {
        w.key("tool_calls").begin_array();
        for (const ToolCall& tc : m.tool_calls)
            write_tool_call(w, tc);
        w.end_array();
    }
    if (!m.tool_call_id.empty()) w.field("tool_call_id", m.tool_call_id);
    write_members(w, m.extra);
    w.end_object();
}

inline void write_tool(JsonWriter& w, const Tool& t) {
    w.begin_object().field("type", t.type).key("function").begin_object();
    w.field("name", t.name);
    if (!t.description.empty()) w.field("description", t.description);
    if (!t.parameters.is_null()) w.key("parameters").value(t.parameters);
    if (t.strict) w.field_bool("strict", *t.strict);
    w.end_object().end_object();
}

inline void write_tool_choice(JsonWriter& w, const ToolChoice& tc) {
    switch (tc.mode) {
        case ToolChoice::Mode::none:
            w.string("none");
            return;
        case ToolChoice::Mode::auto_:
            w.string("auto");
            return;
        case ToolChoice::Mode::required:
            w.string("required");
            return;
        case ToolChoice::Mode::function:
            w.begin_object().field("type", "function").key("function").begin_object();
            w.field("name", tc.function_name).end_object().end_object();
            return;
    }
}

inline std::string_view to_string(ResponseFormat::Type t) noexcept {
    switch (t) {
        case ResponseFormat::Type::text:
            return "text";
        case ResponseFormat::Type::json_object:
            return "json_object";
        case ResponseFormat::Type::json_schema:
            return "json_schema";
    }
    return "text";
}

inline void write_strings(JsonWriter& w, std::string_view key, const std::vector<std::string>& v) {
    w.key(key).begin_array();
    for (const std::string& s : v)
        w.string(s);
    w.end_array();
}

inline void write_opt(JsonWriter& w, std::string_view key, const std::optional<double>& v) {
    if (v) w.field_number(key, *v);
}
inline void write_opt(JsonWriter& w, std::string_view key, const std::optional<std::int64_t>& v) {
    if (v) w.field_int(key, *v);
}
inline void write_opt(JsonWriter& w, std::string_view key, const std::optional<bool>& v) {
    if (v) w.field_bool(key, *v);
}

}  // namespace bifrost::detail::json_impl

namespace bifrost {

inline bool read_chat_request(const boost::json::value& v, ChatRequest& out, Error& err) {
    const detail::json_impl::Reader rd{&err, false};
    return detail::json_impl::read_request(rd, v, out);
}

namespace detail::json_impl {
/// `parse_chat_request` by the DOM reader alone.
inline bool parse_request_document(std::string_view text, ChatRequest& out, Error& err) {
    const Reader rd{&err, false};
    return parse_then(rd, text, "request body is empty",
                      [&](const boost::json::value& doc) { return read_request(rd, doc, out); });
}
}  // namespace detail::json_impl

inline bool parse_chat_request(std::string_view text, ChatRequest& out, Error& err) {
    // The common shape without a document; anything else, and every error, by the DOM reader.
    return detail::json_impl::stream_request(text, out) ||
           detail::json_impl::parse_request_document(text, out, err);
}

inline bool read_chat_response(const boost::json::value& v, Outcome& out) {
    const detail::json_impl::Reader rd{&out.error, true};
    return detail::json_impl::read_response(rd, v, out);
}

inline bool parse_chat_response(std::string_view text, Outcome& out) {
    out.error.clear();
    const detail::json_impl::Reader rd{&out.error, true};
    bool ok = false;
    if (detail::json_impl::stream_response(rd, text, out, ok)) return ok;
    // Empty, or not the expected shape: the DOM reader reports exactly what is wrong.
    return detail::json_impl::parse_then(rd, text, "body is empty",
                                         [&](const boost::json::value& doc) {
                                             return detail::json_impl::read_response(rd, doc, out);
                                         });
}

inline void write_chat_request(std::string& out, const ChatRequest& r,
                               const RequestWriteOptions& opts) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object();
    w.field("model", opts.model.empty() ? std::string_view(r.model) : opts.model);
    w.key("messages").begin_array();
    for (const Message& m : r.messages)
        write_message(w, m);
    w.end_array();
    write_opt(w, "temperature", r.temperature);
    write_opt(w, "top_p", r.top_p);
    write_opt(w, "max_tokens", r.max_tokens);
    write_opt(w, "max_completion_tokens", r.max_completion_tokens);
    write_opt(w, "n", r.n);
    write_opt(w, "seed", r.seed);
    write_opt(w, "frequency_penalty", r.frequency_penalty);
    write_opt(w, "presence_penalty", r.presence_penalty);
    write_opt(w, "logprobs", r.logprobs);
    write_opt(w, "top_logprobs", r.top_logprobs);
    write_opt(w, "parallel_tool_calls", r.parallel_tool_calls);
    write_opt(w, "stream", r.stream);
    if (!r.stop.empty()) write_strings(w, "stop", r.stop);
    if (!r.tools.empty()) {
        w.key("tools").begin_array();
        for (const Tool& t : r.tools)
            write_tool(w, t);
        w.end_array();
    }
    if (r.tool_choice) {
        w.key("tool_choice");
        write_tool_choice(w, *r.tool_choice);
    }
    if (r.response_format) {
        w.key("response_format").begin_object();
        w.field("type", to_string(r.response_format->type));
        if (!r.response_format->json_schema.is_null()) {
            w.key("json_schema").value(r.response_format->json_schema);
        }
        w.end_object();
    }
    if (!r.user.empty()) w.field("user", r.user);
    write_members(w, r.extra);
    if (!opts.for_upstream) {
        if (!r.provider.empty()) w.field("provider", r.provider);
        if (!r.fallbacks.empty()) write_strings(w, "fallbacks", r.fallbacks);
    }
    w.end_object();
}

inline void write_chat_response(std::string& out, const ChatResponse& r) {
    using namespace detail::json_impl;
    detail::JsonWriter w(out);
    w.begin_object();
    w.field("id", r.id).field("object", r.object).field_int("created", r.created);
    w.field("model", r.model);
    if (!r.system_fingerprint.empty()) w.field("system_fingerprint", r.system_fingerprint);
    w.key("choices").begin_array();
    for (const Choice& c : r.choices) {
        w.begin_object().field_int("index", c.index).key("message");
        write_message(w, c.message);
        w.key("finish_reason");
        if (c.finish_reason.empty()) {
            w.null();
        } else {
            w.string(c.finish_reason);
        }
        if (!c.logprobs.is_null()) w.key("logprobs").value(c.logprobs);
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
    write_response_extra(w, r.extra_fields);
    w.end_object();
}

inline bool write_chat_wire(std::string& out, std::string_view wire, const ResponseExtra& extra) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    std::size_t begin = 0;
    std::size_t end = wire.size();
    while (begin < end && space(wire[begin]))
        ++begin;
    while (end > begin && space(wire[end - 1]))
        --end;
    if (end - begin < 2 || wire[begin] != '{' || wire[end - 1] != '}') return false;
    std::size_t first = begin + 1;
    while (first < end && space(wire[first]))
        ++first;
    if (wire[first] == '}') return false;  // no members: the comma below would be wrong
    // A key (or a string value) "extra_fields": the upstream's own, which the gateway's
    // replaces on the written path. Inside a string a quote is escaped, so text cannot match
    // the quoted name. It is looked for by its 'x', which JSON's syntax and an answer's usual
    // keys hardly have (a search for the whole name would stop at every quote).
    constexpr std::string_view name = "\"extra_fields\"";
    for (std::size_t x = wire.find('x', begin); x != std::string_view::npos && x < end;
         x = wire.find('x', x + 1))
        if (x >= 2 && wire.substr(x - 2, name.size()) == name) return false;
    out.append(wire.data() + begin, end - 1 - begin);
    detail::JsonWriter w(out, true);  // after the upstream's last member
    detail::json_impl::write_response_extra(w, extra);
    out.push_back('}');
    return true;
}

inline void write_error(std::string& out, const Error& e) {
    detail::JsonWriter w(out);
    w.begin_object().key("error").begin_object();
    w.field("message", e.message).field("type", e.type);
    w.key("param");
    if (e.param.empty()) {
        w.null();
    } else {
        w.string(e.param);
    }
    w.key("code");
    if (e.code.empty()) {
        w.null();
    } else {
        w.string(e.code);
    }
    w.end_object().end_object();
}

namespace detail::json_impl {

/// Parses text this header wrote (valid JSON of any depth) into `jv`'s storage.
inline void parse_written(boost::json::value& jv, std::string_view text) {
    boost::json::parse_options opts;
    opts.max_depth = std::numeric_limits<std::size_t>::max();
    jv = boost::json::parse(text, jv.storage(), opts);
}

}  // namespace detail::json_impl

inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv,
                       const ChatRequest& r) {
    std::string text;
    RequestWriteOptions opts;
    opts.for_upstream = false;
    write_chat_request(text, r, opts);
    detail::json_impl::parse_written(jv, text);
}

inline ChatRequest tag_invoke(const boost::json::value_to_tag<ChatRequest>&,
                              const boost::json::value& jv) {
    ChatRequest r;
    Error err;
    if (!read_chat_request(jv, r, err)) throw std::invalid_argument(err.message);
    return r;
}

inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv,
                       const ChatResponse& r) {
    std::string text;
    write_chat_response(text, r);
    detail::json_impl::parse_written(jv, text);
}

inline ChatResponse tag_invoke(const boost::json::value_to_tag<ChatResponse>&,
                               const boost::json::value& jv) {
    Outcome o;
    if (!read_chat_response(jv, o)) throw std::invalid_argument(o.error.message);
    return std::move(o.response);
}

inline void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv, const Error& e) {
    std::string text;
    write_error(text, e);
    detail::json_impl::parse_written(jv, text);
}

}  // namespace bifrost

// StreamChunk conversions (they use the readers above).
#include <bifrost/schema/stream_json.hpp>
