#pragma once
/// \file
/// `detail::OpenAIStreamDecoder`: decodes OpenAI's chat-completions event stream
/// (`data: {chat.completion.chunk}` events ending with `data: [DONE]`) into `StreamChunk`s, for
/// every provider that speaks OpenAI's format (Azure OpenAI among them). An `{"error":...}` event
/// fails the stream with the upstream's message.

#include <bifrost/detail/sse.hpp>
#include <bifrost/providers/detail/native.hpp>
#include <bifrost/schema/stream.hpp>

#include <boost/json/parse.hpp>

#include <string_view>

namespace bifrost::providers::detail {

/// Reads one OpenAI chunk object into `c` (lenient: missing fields stay empty).
inline void read_openai_chunk(const json::object& o, StreamChunk& c) {
    for (const auto& kv : o) {
        const std::string_view k = kv.key();
        const json::value& v = kv.value();
        if (k == "id") {
            c.id.assign(string_member(o, "id"));
        } else if (k == "object") {
            if (v.is_string()) c.object.assign(v.get_string());
        } else if (k == "created") {
            c.created = int_member(&o, "created");
        } else if (k == "model") {
            c.model.assign(string_member(o, "model"));
        } else if (k == "system_fingerprint") {
            c.system_fingerprint.assign(string_member(o, "system_fingerprint"));
        } else if (k == "usage") {
            if (const auto* u = v.if_object()) {
                set_usage(c.usage, int_member(u, "prompt_tokens"),
                          int_member(u, "completion_tokens"), int_member(u, "total_tokens", -1));
                for (const auto& ukv : *u) {
                    const std::string_view uk = ukv.key();
                    if (uk != "prompt_tokens" && uk != "completion_tokens" && uk != "total_tokens")
                        c.usage->extra[uk] = ukv.value();
                }
            }
        } else if (k == "choices") {
            const auto* choices = v.if_array();
            if (choices == nullptr) continue;
            for (const auto& cv : *choices) {
                const auto* ch = cv.if_object();
                if (ch == nullptr) continue;
                ChoiceDelta& d = c.choices.emplace_back();
                d.index = int_member(ch, "index");
                d.finish_reason.assign(string_member(ch, "finish_reason"));
                if (const auto* lp = ch->if_contains("logprobs")) d.logprobs = *lp;
                const auto* delta = object_member(ch, "delta");
                if (delta == nullptr) continue;
                for (const auto& dkv : *delta) {
                    const std::string_view dk = dkv.key();
                    const json::value& dv = dkv.value();
                    if (dk == "role") {
                        Role r;
                        if (dv.is_string() && parse_role(std::string_view(dv.get_string()), r))
                            d.role = r;
                    } else if (dk == "content") {
                        if (dv.is_string()) d.content.emplace(dv.get_string());
                    } else if (dk == "tool_calls") {
                        const auto* calls = dv.if_array();
                        if (calls == nullptr) continue;
                        for (const auto& tv : *calls) {
                            const auto* t = tv.if_object();
                            if (t == nullptr) continue;
                            ToolCallDelta& td = d.tool_calls.emplace_back();
                            td.index = int_member(t, "index");
                            td.id.assign(string_member(t, "id"));
                            td.type.assign(string_member(t, "type"));
                            const auto* f = object_member(t, "function");
                            td.name.assign(string_member(f, "name"));
                            td.arguments.assign(string_member(f, "arguments"));
                        }
                    } else {
                        d.extra[dk] = dv;
                    }
                }
            }
        } else {
            c.extra[k] = v;
        }
    }
}

/// Decodes an OpenAI-format event stream. Not thread-safe: one per stream.
class OpenAIStreamDecoder {
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
    }

  private:
    void on_event(const bifrost::detail::SseEvent& e) {
        if (q_.closed()) return;
        if (e.done()) {
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
        if (o->contains("error")) {
            Error failure;
            read_openai_error(500, e.data, {}, failure);
            if (const auto* err = object_member(o, "error")) {
                // An in-stream error may carry its HTTP status as a numeric code.
                const auto code = int_member(err, "code", 0);
                if (code >= 400 && code < 600) failure.status = static_cast<int>(code);
            }
            q_.fail(std::move(failure));
            return;
        }
        StreamChunk& c = q_.push({}, {});
        read_openai_chunk(*o, c);
    }

    bifrost::detail::SseParser sse_;
    StreamQueue q_;
};

}  // namespace bifrost::providers::detail
