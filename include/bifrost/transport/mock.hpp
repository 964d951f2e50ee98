#pragma once
/// \file
/// `transport::Mock`: an in-process upstream for tests, benchmarks and the out-of-the-box demo.
/// A script decides, per request, the latency, the HTTP status and body, or a fault (network
/// error, a hang until cancelled, an exception), or holds the call until a `Valve` opens. Latency
/// is an Asio timer on the worker's event loop, so thousands of slow mock calls cost no threads.

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/detail/json_writer.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bifrost::transport {

class Mock;

/// A tap that holds mock upstream calls until it is opened: lets tests make workers "busy" with
/// calls that are really in flight (asynchronously, as real upstream calls are) and release them
/// on cue. Shared between the test and the script (`mock::held_by`).
class Valve {
  public:
    /// Releases every held call (each completes with its response) and lets later calls pass.
    void open();
    /// Later calls are held again.
    void close() {
        std::lock_guard lock(mutex_);
        open_ = false;
    }
    /// Calls currently held.
    [[nodiscard]] std::size_t held() const {
        std::lock_guard lock(mutex_);
        return held_.size();
    }

  private:
    friend class Mock;
    struct Entry {
        Mock* mock;
        std::uint64_t id;
        asio::io_context::executor_type ex;
    };
    bool hold(Mock* mock, std::uint64_t id, asio::io_context::executor_type ex) {
        std::lock_guard lock(mutex_);
        if (open_) return false;
        held_.push_back(Entry{mock, id, ex});
        return true;
    }
    void forget(Mock* mock, std::uint64_t id) {
        std::lock_guard lock(mutex_);
        std::erase_if(held_, [&](const Entry& e) { return e.mock == mock && e.id == id; });
    }

    mutable std::mutex mutex_;
    bool open_ = false;
    std::vector<Entry> held_;
};

/// One scripted upstream call: the script reads `request` and sets the rest.
///
/// Streamed calls (`async_send_stream`) with a 2xx status deliver `stream` piece by piece, one
/// every `stream_interval` after `latency`; the fault then applies after the last piece
/// (`network_error`: the connection drops mid-stream; `hang`: the stream goes silent). With no
/// pieces, `response.body` is the one piece. A non-2xx status answers with `response.body`.
/// A plain call (`async_send`) answers with `response.body` followed by the pieces.
struct MockCall {
    enum class Fault : std::uint8_t {
        none,           ///< deliver `response` after `latency`
        network_error,  ///< fail with "connection reset" after `latency` (and the pieces)
        hang,           ///< never answer (after the pieces); only cancellation ends the call
        exception,      ///< `async_send` throws (before taking the handler)
    };

    const HttpRequest& request;
    HttpResponse& response;  ///< preset to status 200 with an empty body
    std::chrono::nanoseconds latency{0};
    Fault fault = Fault::none;
    /// When set and closed, the call is held (in flight) until the valve opens (plain calls).
    std::shared_ptr<Valve> valve;
    /// The pieces of a streamed body, in order.
    std::vector<std::string> stream{};
    std::chrono::nanoseconds stream_interval{0};
    /// Called (on the worker thread) when a streamed call ends early because the engine stopped
    /// reading or cancelled it, as a real upstream sees its connection closed.
    std::function<void()> on_cancelled{};
};

/// A script: called on the worker thread for each request; must be thread-safe when the
/// provider has several worker threads.
using MockScript = std::function<void(MockCall&)>;

namespace mock {

/// The text of the last user message of an OpenAI-format request body, or empty.
inline std::string_view last_user_text(const boost::json::value& body) noexcept {
    const auto* obj = body.if_object();
    if (!obj) return {};
    const auto* msgs = obj->if_contains("messages");
    if (!msgs || !msgs->is_array()) return {};
    const auto& arr = msgs->get_array();
    for (auto it = arr.rbegin(); it != arr.rend(); ++it) {
        const auto* m = it->if_object();
        if (!m) continue;
        const auto* role = m->if_contains("role");
        if (!role || !role->is_string() || role->get_string() != "user") continue;
        const auto* content = m->if_contains("content");
        if (content && content->is_string()) return content->get_string();
        if (content && content->is_array()) {
            for (const auto& part : content->get_array()) {
                const auto* p = part.if_object();
                if (!p) continue;
                const auto* text = p->if_contains("text");
                if (text && text->is_string()) return text->get_string();
            }
        }
        return {};
    }
    return {};
}

/// Writes an OpenAI chat-completion body answering with `content`.
inline void write_completion(std::string& out, std::string_view model, std::string_view content,
                             std::uint64_t seq) {
    char id[40] = "chatcmpl-mock-";
    auto r = std::to_chars(id + 14, id + sizeof id, seq);
    const auto words = [](std::string_view s) {
        std::int64_t n = 0;
        bool in = false;
        for (char c : s) {
            const bool sp = c == ' ' || c == '\n' || c == '\t';
            if (!sp && !in) ++n;
            in = !sp;
        }
        return n;
    };
    const std::int64_t completion = words(content) + 2;
    const std::int64_t prompt = words(content) + 8;
    detail::JsonWriter w(out);
    w.begin_object()
        .field("id", std::string_view(id, static_cast<std::size_t>(r.ptr - id)))
        .field("object", "chat.completion")
        .field_int("created", static_cast<std::int64_t>(std::time(nullptr)))
        .field("model", model)
        .key("choices")
        .begin_array()
        .begin_object()
        .field_int("index", 0)
        .key("message")
        .begin_object()
        .field("role", "assistant");
    w.key("content").string2("Echo: ", content);
    w.end_object()
        .field("finish_reason", "stop")
        .end_object()
        .end_array()
        .key("usage")
        .begin_object()
        .field_int("prompt_tokens", prompt)
        .field_int("completion_tokens", completion)
        .field_int("total_tokens", prompt + completion)
        .end_object()
        .end_object();
}

/// Writes an OpenAI embeddings body for `body` (an embeddings request): one vector per input of
/// `dimensions` (default 8) numbers derived from the input's text or tokens, so equal inputs get
/// equal vectors; with `encoding_format` "base64" the vectors are base64 strings of float32s.
inline void write_embeddings(std::string& out, const boost::json::value& body) {
    const auto* o = body.if_object();
    std::string_view model;
    std::int64_t dims = 8;
    bool base64 = false;
    std::vector<std::string> inputs;
    if (o) {
        if (const auto* m = o->if_contains("model"); m && m->is_string()) model = m->get_string();
        if (const auto* d = o->if_contains("dimensions"); d && d->is_int64())
            dims = std::clamp<std::int64_t>(d->get_int64(), 1, 4096);
        if (const auto* f = o->if_contains("encoding_format"); f && f->is_string())
            base64 = f->get_string() == "base64";
        if (const auto* in = o->if_contains("input")) {
            if (in->is_string()) {
                inputs.emplace_back(in->get_string());
            } else if (in->is_array()) {
                const auto& a = in->get_array();
                if (!a.empty() && a[0].is_number()) {
                    inputs.push_back(boost::json::serialize(a));
                } else {
                    for (const auto& e : a)
                        inputs.push_back(e.is_string() ? std::string(e.get_string())
                                                       : boost::json::serialize(e));
                }
            }
        }
    }
    std::int64_t tokens = 0;
    detail::JsonWriter w(out);
    w.begin_object().field("object", "list").key("data").begin_array();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        std::uint64_t h = 1469598103934665603ull;  // FNV-1a of the input
        for (unsigned char c : inputs[i])
            h = (h ^ c) * 1099511628211ull;
        tokens += static_cast<std::int64_t>(inputs[i].size() / 4 + 1);
        std::vector<float> v(static_cast<std::size_t>(dims));
        for (auto& x : v) {
            h ^= h >> 33;
            h *= 0xff51afd7ed558ccdull;
            h ^= h >> 33;
            x = static_cast<float>(static_cast<double>(h % 2001) / 1000.0 - 1.0);
        }
        w.begin_object()
            .field("object", "embedding")
            .field_int("index", static_cast<std::int64_t>(i));
        w.key("embedding");
        if (base64) {
            static constexpr char table[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            std::string bytes(v.size() * sizeof(float), '\0');
            std::memcpy(bytes.data(), v.data(), bytes.size());
            std::string enc;
            for (std::size_t k = 0; k < bytes.size(); k += 3) {
                std::uint32_t n = static_cast<unsigned char>(bytes[k]) << 16;
                if (k + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[k + 1]) << 8;
                if (k + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[k + 2]);
                enc.push_back(table[(n >> 18) & 63]);
                enc.push_back(table[(n >> 12) & 63]);
                enc.push_back(k + 1 < bytes.size() ? table[(n >> 6) & 63] : '=');
                enc.push_back(k + 2 < bytes.size() ? table[n & 63] : '=');
            }
            w.string(enc);
        } else {
            w.begin_array();
            for (float x : v)
                w.number(static_cast<double>(x));
            w.end_array();
        }
        w.end_object();
    }
    w.end_array().field("model", model).key("usage").begin_object();
    w.field_int("prompt_tokens", tokens).field_int("total_tokens", tokens);
    w.end_object().end_object();
}

/// Writes an OpenAI legacy completions body for `body`: one choice "Echo: <prompt>" (the first
/// prompt when there are several).
inline void write_text_completion(std::string& out, const boost::json::value& body,
                                  std::uint64_t seq) {
    std::string_view model, prompt;
    if (const auto* o = body.if_object()) {
        if (const auto* m = o->if_contains("model"); m && m->is_string()) model = m->get_string();
        if (const auto* p = o->if_contains("prompt")) {
            if (p->is_string()) {
                prompt = p->get_string();
            } else if (p->is_array() && !p->get_array().empty() && p->get_array()[0].is_string()) {
                prompt = p->get_array()[0].get_string();
            }
        }
    }
    detail::JsonWriter w(out);
    w.begin_object().key("id").string2("cmpl-mock-", std::to_string(seq));
    w.field("object", "text_completion")
        .field_int("created", static_cast<std::int64_t>(std::time(nullptr)))
        .field("model", model)
        .key("choices")
        .begin_array()
        .begin_object();
    w.key("text").string2("Echo: ", prompt);
    w.field_int("index", 0).key("logprobs").null().field("finish_reason", "stop").end_object();
    w.end_array().key("usage").begin_object();
    w.field_int("prompt_tokens", 8).field_int("completion_tokens", 4).field_int("total_tokens", 12);
    w.end_object().end_object();
}

/// Writes an OpenAI model list with `models`.
inline void write_model_list(std::string& out, const std::vector<std::string>& models) {
    detail::JsonWriter w(out);
    w.begin_object().field("object", "list").key("data").begin_array();
    for (const auto& m : models) {
        w.begin_object().field("id", m).field("object", "model").field_int("created", 0);
        w.field("owned_by", "mock").end_object();
    }
    w.end_array().end_object();
}

/// True when `url`'s path ends with `suffix` (ignoring a query string).
inline bool path_ends_with(std::string_view url, std::string_view suffix) noexcept {
    if (const auto q = url.find('?'); q != std::string_view::npos) url = url.substr(0, q);
    return url.size() >= suffix.size() && url.substr(url.size() - suffix.size()) == suffix;
}

/// A simulated LLM: answers every chat request with "Echo: <last user message>" in OpenAI's
/// format (status 200) after `latency`. A body that is not JSON gets a 400 error body.
/// Allocation-free in steady state (thread-local parse buffers). Also speaks OpenAI's other
/// endpoints: `.../embeddings` (`write_embeddings`), `.../completions` other than chat
/// (`write_text_completion`) and `GET .../models` (two models, "mock-small" and "mock-large").
inline MockScript echo(std::chrono::nanoseconds latency = {}) {
    auto seq = std::make_shared<std::atomic<std::uint64_t>>(0);
    return [latency, seq](MockCall& call) {
        thread_local unsigned char parse_buffer[16384];
        thread_local unsigned char temp_buffer[4096];
        thread_local boost::json::parser parser(boost::json::storage_ptr(), {}, temp_buffer,
                                                sizeof temp_buffer);
        call.latency = latency;
        if (call.request.method == HttpMethod::get && path_ends_with(call.request.url, "/models")) {
            call.response.headers.add("content-type", "application/json");
            write_model_list(call.response.body, {"mock-small", "mock-large"});
            return;
        }
        boost::json::monotonic_resource mr(parse_buffer, sizeof parse_buffer);
        parser.reset(&mr);
        boost::system::error_code ec;
        parser.write(call.request.body.data(), call.request.body.size(), ec);
        call.latency = latency;
        if (ec) {
            call.response.status = 400;
            call.response.body.assign(
                R"({"error":{"message":"mock upstream: request body is not JSON","type":"invalid_request_error","param":null,"code":null}})");
            return;
        }
        const boost::json::value body = parser.release();
        std::string_view model;
        if (const auto* o = body.if_object())
            if (const auto* m = o->if_contains("model"); m && m->is_string())
                model = m->get_string();
        call.response.headers.add("content-type", "application/json");
        if (!path_ends_with(call.request.url, "/chat/completions")) {
            if (path_ends_with(call.request.url, "/embeddings")) {
                write_embeddings(call.response.body, body);
                return;
            }
            if (path_ends_with(call.request.url, "/completions")) {
                write_text_completion(call.response.body, body,
                                      seq->fetch_add(1, std::memory_order_relaxed));
                return;
            }
        }
        write_completion(call.response.body, model, last_user_text(body),
                         seq->fetch_add(1, std::memory_order_relaxed));
    };
}

/// Always answers with `status` and `body` after `latency`.
inline MockScript fixed(int status, std::string body, std::chrono::nanoseconds latency = {}) {
    return [status, body = std::move(body), latency](MockCall& call) {
        call.response.status = status;
        call.response.headers.add("content-type", "application/json");
        call.response.body.assign(body);
        call.latency = latency;
    };
}

/// Appends one OpenAI `chat.completion.chunk` SSE event (`data: {...}\n\n`) with `content` (when
/// `with_content`), `finish_reason` (when non-empty) and usage (when `usage_tokens` > 0, with no
/// choices).
inline void write_sse_chunk(std::string& out, std::string_view id, std::string_view model,
                            bool with_content, std::string_view content,
                            std::string_view finish_reason, std::int64_t usage_tokens = 0) {
    out.append("data: ");
    detail::JsonWriter w(out);
    w.begin_object()
        .field("id", id)
        .field("object", "chat.completion.chunk")
        .field_int("created", static_cast<std::int64_t>(std::time(nullptr)))
        .field("model", model)
        .key("choices")
        .begin_array();
    if (usage_tokens == 0) {
        w.begin_object().field_int("index", 0).key("delta").begin_object();
        if (with_content) w.field("content", content);
        w.end_object().key("finish_reason");
        if (finish_reason.empty())
            w.null();
        else
            w.string(finish_reason);
        w.end_object();
    }
    w.end_array();
    if (usage_tokens > 0) {
        w.key("usage")
            .begin_object()
            .field_int("prompt_tokens", usage_tokens)
            .field_int("completion_tokens", usage_tokens)
            .field_int("total_tokens", 2 * usage_tokens)
            .end_object();
    }
    w.end_object();
    out.append("\n\n");
}

/// A simulated streaming LLM: answers "Echo: <last user message>" as an OpenAI event stream,
/// one word per chunk every `interval` (a chunk with the role first, a last chunk with
/// `finish_reason: "stop"`, a usage chunk, then `data: [DONE]`). Every other request (a chat
/// without `"stream": true`, embeddings, text completions, model listing) gets `echo()`'s answer.
inline MockScript stream_echo(std::chrono::nanoseconds interval = {},
                              std::chrono::nanoseconds latency = {}) {
    auto seq = std::make_shared<std::atomic<std::uint64_t>>(0);
    return [interval, latency, seq, plain = echo(latency)](MockCall& call) {
        // Model listing, embeddings and text completions: as echo() answers them.
        if (call.request.method != HttpMethod::post ||
            !path_ends_with(call.request.url, "/chat/completions"))
            return plain(call);
        boost::system::error_code ec;
        const boost::json::value body = boost::json::parse(call.request.body, ec);
        call.latency = latency;
        if (ec) {
            call.response.status = 400;
            call.response.body.assign(
                R"({"error":{"message":"mock upstream: request body is not JSON","type":"invalid_request_error","param":null,"code":null}})");
            return;
        }
        std::string_view model;
        bool streamed = false;
        if (const auto* o = body.if_object()) {
            if (const auto* m = o->if_contains("model"); m && m->is_string())
                model = m->get_string();
            if (const auto* st = o->if_contains("stream"); st && st->is_bool())
                streamed = st->get_bool();
        }
        if (!streamed) {
            call.response.headers.add("content-type", "application/json");
            write_completion(call.response.body, model, last_user_text(body), seq->fetch_add(1));
            return;
        }
        const std::string id = "chatcmpl-mock-" + std::to_string(seq->fetch_add(1) + 1);
        call.response.headers.add("content-type", "text/event-stream");
        call.stream_interval = interval;
        std::string piece;
        piece.append("data: ");
        {
            detail::JsonWriter w(piece);
            w.begin_object()
                .field("id", id)
                .field("object", "chat.completion.chunk")
                .field_int("created", static_cast<std::int64_t>(std::time(nullptr)))
                .field("model", model)
                .key("choices")
                .begin_array()
                .begin_object()
                .field_int("index", 0)
                .key("delta")
                .begin_object()
                .field("role", "assistant")
                .field("content", "")
                .end_object()
                .key("finish_reason")
                .null()
                .end_object()
                .end_array()
                .end_object();
        }
        piece.append("\n\n");
        call.stream.push_back(std::move(piece));
        std::string text = "Echo: ";
        text.append(last_user_text(body));
        std::int64_t words = 0;
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t end = text.find(' ', start);
            end = end == std::string::npos ? text.size() : end + 1;
            piece.clear();
            write_sse_chunk(piece, id, model, true,
                            std::string_view(text).substr(start, end - start), {});
            call.stream.push_back(piece);
            ++words;
            start = end;
        }
        piece.clear();
        write_sse_chunk(piece, id, model, false, {}, "stop");
        call.stream.push_back(piece);
        piece.clear();
        write_sse_chunk(piece, id, model, false, {}, {}, words);
        call.stream.push_back(piece);
        call.stream.emplace_back("data: [DONE]\n\n");
    };
}

/// Never answers (until cancelled).
inline MockScript hang() {
    return [](MockCall& call) { call.fault = MockCall::Fault::hang; };
}

/// Runs `inner`, then holds the call while `valve` is closed.
inline MockScript held_by(std::shared_ptr<Valve> valve, MockScript inner = echo()) {
    return [valve = std::move(valve), inner = std::move(inner)](MockCall& call) {
        inner(call);
        call.valve = valve;
    };
}

}  // namespace mock

/// The scripted in-process transport. `Options::script` defaults to `mock::echo()`.
class Mock {
  public:
    struct Options {
        MockScript script;
    };

    Mock(asio::io_context::executor_type ex, const ProviderConfig& /*config*/,
         const Options& options)
        : ex_(ex), script_(options.script ? options.script : mock::echo()) {}

    /// Runs the script, then completes after the scripted latency (inline when it is zero).
    template <class Handler>
    void async_send(const HttpRequest& request, HttpResponse& response, Handler&& handler) {
        response.clear();
        response.status = 200;
        MockCall call{request, response, {}, MockCall::Fault::none, nullptr};
        script_(call);
        if (call.fault == MockCall::Fault::exception)
            throw std::runtime_error("mock transport: scripted exception");
        for (const std::string& piece : call.stream)
            response.body.append(piece);
        if (call.latency.count() <= 0 && call.fault != MockCall::Fault::hang && !call.valve) {
            boost::system::error_code ec;
            if (call.fault == MockCall::Fault::network_error) ec = asio::error::connection_reset;
            std::forward<Handler>(handler)(ec);
            return;
        }
        start_timer(std::forward<Handler>(handler), call);
    }

    /// Runs the script and streams its answer (see `MockCall` and `StreamingTransport`): the
    /// pieces go to `on_body` one per `stream_interval`, each on a timer of this transport's
    /// event loop. Cancellation or `on_body` returning false ends the call with
    /// `operation_aborted` (and runs the script's `on_cancelled`).
    template <class OnBody, class Handler>
    void async_send_stream(const HttpRequest& request, HttpResponse& response, OnBody&& on_body,
                           Handler&& handler) {
        using H = std::decay_t<Handler>;
        using Op = StreamOp<std::decay_t<OnBody>, H>;
        response.clear();
        response.status = 200;
        MockCall call{request, response, {}, MockCall::Fault::none, nullptr};
        script_(call);
        if (call.fault == MockCall::Fault::exception)
            throw std::runtime_error("mock transport: scripted exception");
        const bool success = response.status >= 200 && response.status < 300;
        if (success && call.stream.empty() && !response.body.empty()) {
            call.stream.push_back(std::move(response.body));
            response.body.clear();
        }
        auto alloc = asio::get_associated_allocator(handler);
        using OpAlloc = typename std::allocator_traits<decltype(alloc)>::template rebind_alloc<Op>;
        OpAlloc op_alloc(alloc);
        Op* op = std::allocator_traits<OpAlloc>::allocate(op_alloc, 1);
        std::allocator_traits<OpAlloc>::construct(op_alloc, op, ex_, std::forward<OnBody>(on_body),
                                                  H(std::forward<Handler>(handler)));
        op->call_fault = call.fault;
        op->pieces = std::move(call.stream);
        op->interval = call.stream_interval;
        op->on_cancelled = std::move(call.on_cancelled);
        op->success = success;
        op->step(call.latency);
    }

  private:
    friend class Valve;

    /// One streamed call: waits, then delivers the next piece, until the pieces run out.
    template <class OnBody, class Handler>
    struct StreamOp {
        StreamOp(asio::io_context::executor_type ex, OnBody&& b, Handler&& h)
            : timer(ex), on_body(std::move(b)), handler(std::move(h)) {}

        asio::steady_timer timer;
        OnBody on_body;
        Handler handler;
        MockCall::Fault call_fault = MockCall::Fault::none;
        std::vector<std::string> pieces;
        std::size_t next = 0;
        std::chrono::nanoseconds interval{0};
        std::function<void()> on_cancelled;
        bool success = true;

        void step(std::chrono::nanoseconds wait) {
            const bool silent =
                call_fault == MockCall::Fault::hang && (!success || next == pieces.size());
            timer.expires_after(silent ? std::chrono::hours(24 * 365) : wait);
            auto alloc = asio::get_associated_allocator(handler);
            timer.async_wait(asio::bind_cancellation_slot(
                asio::get_associated_cancellation_slot(handler),
                asio::bind_allocator(alloc,
                                     [this](boost::system::error_code ec) { on_timer(ec); })));
        }

        void on_timer(boost::system::error_code ec) {
            if (ec) return cancelled();
            if (success && next < pieces.size()) {
                if (!on_body(std::string_view(pieces[next++]))) return cancelled();
                if (next < pieces.size() || call_fault != MockCall::Fault::none)
                    return step(interval);
            }
            if (call_fault == MockCall::Fault::network_error)
                return complete(asio::error::connection_reset);
            complete({});
        }

        void cancelled() {
            if (on_cancelled) on_cancelled();
            complete(asio::error::operation_aborted);
        }

        void complete(boost::system::error_code ec) {
            Handler h(std::move(handler));
            auto alloc = asio::get_associated_allocator(h);
            using OpAlloc =
                typename std::allocator_traits<decltype(alloc)>::template rebind_alloc<StreamOp>;
            OpAlloc op_alloc(alloc);
            std::allocator_traits<OpAlloc>::destroy(op_alloc, this);
            std::allocator_traits<OpAlloc>::deallocate(op_alloc, this, 1);
            std::move(h)(ec);
        }
    };

    struct TimerBase {
        explicit TimerBase(asio::io_context::executor_type ex) : timer(ex) {}
        asio::steady_timer timer;
        bool released = false;
    };

    template <class Handler>
    struct TimerOp : TimerBase {
        TimerOp(asio::io_context::executor_type ex, Handler&& h, MockCall::Fault f)
            : TimerBase(ex), handler(std::move(h)), fault(f) {}
        Handler handler;
        MockCall::Fault fault;
        std::uint64_t hold_id = 0;
        std::shared_ptr<Valve> valve;
    };

    template <class Handler>
    void start_timer(Handler&& handler, MockCall& call) {
        using H = std::decay_t<Handler>;
        using Op = TimerOp<H>;
        auto alloc = asio::get_associated_allocator(handler);
        using OpAlloc = typename std::allocator_traits<decltype(alloc)>::template rebind_alloc<Op>;
        OpAlloc op_alloc(alloc);
        Op* op = std::allocator_traits<OpAlloc>::allocate(op_alloc, 1);
        std::allocator_traits<OpAlloc>::construct(op_alloc, op, ex_,
                                                  H(std::forward<Handler>(handler)), call.fault);
        std::chrono::nanoseconds wait = call.latency;
        if (call.fault == MockCall::Fault::hang) {
            wait = std::chrono::hours(24 * 365);
        } else if (call.valve) {
            const std::uint64_t id = ++next_hold_id_;
            if (call.valve->hold(this, id, ex_)) {
                op->hold_id = id;
                op->valve = std::move(call.valve);
                held_.emplace(id, op);
                wait = std::chrono::hours(24 * 365);
            }
        }
        op->timer.expires_after(wait);
        auto slot = asio::get_associated_cancellation_slot(op->handler);
        op->timer.async_wait(asio::bind_cancellation_slot(
            slot,
            asio::bind_allocator(alloc, [this, op, op_alloc](boost::system::error_code ec) mutable {
                H h(std::move(op->handler));
                const auto fault = op->fault;
                if (op->hold_id != 0) {
                    held_.erase(op->hold_id);
                    op->valve->forget(this, op->hold_id);
                    if (op->released && ec == asio::error::operation_aborted) ec = {};
                }
                std::allocator_traits<OpAlloc>::destroy(op_alloc, op);
                std::allocator_traits<OpAlloc>::deallocate(op_alloc, op, 1);
                if (!ec && fault == MockCall::Fault::network_error)
                    ec = asio::error::connection_reset;
                std::move(h)(ec);
            })));
    }

    /// Runs on this transport's thread: ends a held call with its response.
    void release(std::uint64_t id) {
        auto it = held_.find(id);
        if (it == held_.end()) return;
        it->second->released = true;
        it->second->timer.cancel();
    }

    asio::io_context::executor_type ex_;
    MockScript script_;
    std::uint64_t next_hold_id_ = 0;
    std::unordered_map<std::uint64_t, TimerBase*> held_;  // touched only on this thread
};

inline void Valve::open() {
    std::vector<Entry> entries;
    {
        std::lock_guard lock(mutex_);
        open_ = true;
        entries.swap(held_);
    }
    for (const Entry& e : entries)
        asio::post(e.ex, [m = e.mock, id = e.id] { m->release(id); });
}

static_assert(StreamingTransport<Mock>);

}  // namespace bifrost::transport
