#pragma once
/// \file
/// The contracts of the gateway's compile-time parts: `Transport`, `Provider`, `QueuePolicy`,
/// `PoolPolicy` and `Plugin`. A user-written policy is a small type that satisfies one of these
/// concepts; every shipped one is checked with a `static_assert` next to its definition.

#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/context.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/detail/handler_memory.hpp>
#include <bifrost/pool/stats.hpp>
#include <bifrost/queue/on_full.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/completion.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/models.hpp>
#include <bifrost/schema/operation_outcome.hpp>
#include <bifrost/schema/outcome.hpp>
#include <bifrost/schema/stream.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>

namespace bifrost {

/// What a provider needs to build one upstream request.
struct BuildContext {
    const ChatRequest& request;    ///< the request after pre-hooks
    std::string_view model;        ///< the provider-local model id ("gpt-4o" of "openai/gpt-4o")
    const Key* key;                ///< the selected key; nullptr for keyless providers
    const ProviderConfig& config;  ///< the provider instance's configuration
};

/// What a provider needs to build one upstream request of a kind other than chat
/// (`RequestContext<EmbeddingRequest>`, `RequestContext<TextCompletionRequest>`,
/// `RequestContext<ListModelsRequest>`): the same facts as `BuildContext`.
template <class Request>
struct RequestContext {
    const Request& request;        ///< the request after pre-hooks
    std::string_view model;        ///< the provider-local model id (empty for model listing)
    const Key* key;                ///< the selected key; nullptr for keyless providers
    const ProviderConfig& config;  ///< the provider instance's configuration
};

namespace detail {

/// The shape of the completion handler the engine passes to `Transport::async_send`: callable
/// with an error code, carrying an associated allocator and cancellation slot. Only for concept
/// checks.
struct TransportHandlerArchetype {
    using allocator_type = ArenaAllocator<void>;
    using cancellation_slot_type = asio::cancellation_slot;
    allocator_type get_allocator() const noexcept;
    cancellation_slot_type get_cancellation_slot() const noexcept;
    void operator()(boost::system::error_code);
};

/// The shape of the body sink the engine passes to `StreamingTransport::async_send_stream`:
/// called with each piece of a 2xx response body as it arrives; returning false stops the
/// exchange. Only for concept checks.
struct BodySinkArchetype {
    bool operator()(std::string_view);
};

/// A stand-in for the engine's pooled object in `PoolPolicy` checks.
struct PoolObjectArchetype {
    void reset();
};

}  // namespace detail

/// How worker threads talk to upstreams.
///
/// One transport object is constructed per worker thread with that thread's executor and the
/// provider's configuration (plus transport-specific `Options`). `async_send` starts one HTTP
/// exchange and must eventually invoke the handler exactly once, on that executor's thread (or
/// inline, before returning): with no error after filling `response` (any HTTP status counts as
/// success here), or with an error code for network failures. It must honour the handler's
/// cancellation slot (terminal cancellation ends the exchange promptly with
/// `operation_aborted`) and should allocate per-operation state through the handler's
/// associated allocator. It may throw only before taking ownership of the handler.
template <class T>
concept Transport = std::default_initializable<typename T::Options> &&
    std::constructible_from<T, asio::io_context::executor_type, const ProviderConfig&,
                            const typename T::Options&> &&
    requires(T& t, const HttpRequest& req, HttpResponse& res, detail::TransportHandlerArchetype h) {
    t.async_send(req, res, std::move(h));
};

/// A transport that can also deliver a response body as it arrives (streaming completions).
///
/// `async_send_stream(req, res, on_body, handler)` behaves as `async_send` except for the body:
/// once the response head is in, `res.status` and `res.headers` are set; for a 2xx status each
/// piece of the (de-chunked) body is passed to `on_body(std::string_view)` as it arrives, on the
/// executor's thread, and `res.body` stays empty; for any other status the body is collected into
/// `res.body` (errors are parsed whole). `handler(ec)` runs once at the end: no error when the
/// body ended, `operation_aborted` if `on_body` returned false or the call was cancelled, or
/// the network error. A stream that stays silent longer than the transport's idle timeout fails
/// with `timed_out`.
template <class T>
concept StreamingTransport = Transport<T> &&
    requires(T& t, const HttpRequest& req, HttpResponse& res, detail::BodySinkArchetype sink,
             detail::TransportHandlerArchetype h) {
    t.async_send_stream(req, res, std::move(sink), std::move(h));
};

/// Maps the unified schema to one upstream API and back. Stateless in spirit: one instance per
/// provider pool, called concurrently from its worker threads through const members.
///
/// `build_chat` fills an HTTP request from a `BuildContext`; `parse_chat` turns the upstream's
/// HTTP response (any status) into `outcome.response` or `outcome.error` (keeping the upstream's
/// status and message for errors). Either may throw; the request then fails with a 500 and the
/// worker lives on. `requires_key` says whether a key must be selected first.
template <class P>
concept Provider = std::copy_constructible<P> &&
    requires(const P& p, const BuildContext& ctx, HttpRequest& out, const HttpResponse& in,
             Outcome& outcome) {
    { P::requires_key } -> std::convertible_to<bool>;
    p.build_chat(ctx, out);
    p.parse_chat(in, outcome);
};

/// A provider whose upstream answers chat requests in the unified schema's own wire format
/// (OpenAI's chat-completion JSON), and whose `parse_chat` reads a 2xx body as it is: a
/// successful answer's body may then be relayed to an OpenAI-format client as it came
/// (`Result::wire_json`), rather than written anew from the parsed response. It says so with
/// `static constexpr bool chat_wire_is_unified = true`.
template <class P>
concept ChatWireIsUnified = Provider<P> && requires {
    requires static_cast<bool>(P::chat_wire_is_unified);
};

/// A provider that can create embeddings (OpenAI's `/v1/embeddings`): `build_embedding` fills the
/// upstream request, `parse_embedding` reads the answer (any status) into `outcome.response` or
/// `outcome.error`, as `build_chat` / `parse_chat` do. Optional: the gateway answers embedding
/// requests for a provider without these members with 400 `unsupported_operation`.
template <class P>
concept EmbeddingProvider = Provider<P> &&
    requires(const P& p, const RequestContext<EmbeddingRequest>& ctx, HttpRequest& out,
             const HttpResponse& in, EmbeddingOutcome& outcome) {
    p.build_embedding(ctx, out);
    p.parse_embedding(in, outcome);
};

/// A provider that serves legacy text completions (OpenAI's `/v1/completions`), as
/// `EmbeddingProvider` with `build_text_completion` / `parse_text_completion`.
template <class P>
concept TextCompletionProvider = Provider<P> &&
    requires(const P& p, const RequestContext<TextCompletionRequest>& ctx, HttpRequest& out,
             const HttpResponse& in, TextCompletionOutcome& outcome) {
    p.build_text_completion(ctx, out);
    p.parse_text_completion(in, outcome);
};

/// A provider that can list its upstream's models (OpenAI's `GET /v1/models`), as
/// `EmbeddingProvider` with `build_list_models` / `parse_list_models`. Without it,
/// `Gateway::list_models` answers from the configured keys' `models`.
template <class P>
concept ModelListingProvider = Provider<P> &&
    requires(const P& p, const RequestContext<ListModelsRequest>& ctx, HttpRequest& out,
             const HttpResponse& in, ModelListOutcome& outcome) {
    p.build_list_models(ctx, out);
    p.parse_list_models(in, outcome);
};

/// A provider that can stream chat completions.
///
/// `build_chat_stream` fills the upstream request for a streamed completion (as `build_chat`,
/// plus whatever the API needs to stream, e.g. `"stream": true`). The upstream's 2xx body is fed
/// to a `StreamDecoder` (one per stream, default-constructed or `reset()`): `feed(bytes)` takes
/// the next piece of body, cut anywhere (false if the framing is broken beyond repair);
/// `next(chunk, error)` returns the next decoded `StreamChunk` (`StreamStatus::chunk`), or says
/// that more bytes are needed, that the stream is `done`, or that it failed (`error` written,
/// keeping the upstream's status and message where it sent one); `finish()` says the body has
/// ended, after which `next` drains what is left and then answers `done` or `error` (a stream
/// cut before its end marker is an error). Non-2xx responses go to `parse_chat` whole.
template <class P>
concept StreamingProvider = Provider<P> && std::default_initializable<typename P::StreamDecoder> &&
    requires(const P& p, const BuildContext& ctx, HttpRequest& out, typename P::StreamDecoder& d,
             std::string_view bytes, StreamChunk& chunk, Error& error) {
    p.build_chat_stream(ctx, out);
    { d.feed(bytes) } -> std::same_as<bool>;
    { d.next(chunk, error) } -> std::same_as<StreamStatus>;
    d.finish();
    d.reset();
};

/// A provider whose keys must first be exchanged for a short-lived credential it caches (an
/// OAuth access token from a service account). Before each upstream call the worker asks
/// `credential_needed(key)`: empty when the cached credential serves, else the name of the
/// credential to obtain. Requests needing the same name share one exchange: the first builds it
/// with `build_credential_request(key, out)` and sends it over the provider's transport, the
/// others wait (holding their slots, bounded by their deadlines); the answer (any status) goes to
/// `read_credential_response(key, in, error)`, which caches the credential and returns true, or
/// writes `error` (a status such as 401 or 502 and a message free of secrets) and returns false.
/// Then every waiting request goes on, or fails with that error. A network failure of the
/// exchange answers 502. All three are called concurrently from the worker threads; any may
/// throw (the request then fails, the worker lives on).
template <class P>
concept CredentialProvider = Provider<P> &&
    requires(const P& p, const Key* key, HttpRequest& out, const HttpResponse& in, Error& error) {
    { p.credential_needed(key) } -> std::convertible_to<std::string>;
    p.build_credential_request(key, out);
    { p.read_credential_response(key, in, error) } -> std::same_as<bool>;
};

/// Decides what a request does when its provider's queue is full (shipped ones in
/// `queue/policies.hpp`).
template <class Q>
concept QueuePolicy = requires(const Q& q, const queue::FullQueue& full) {
    { q.on_full(full) } -> std::same_as<queue::OnFull>;
};

/// Supplies the engine's per-request objects. `P::pool<T>` is constructed with the initial
/// size; `acquire` returns a clean object (default-constructed or `reset()`), `release` takes it
/// back; both are called from many threads at once; `stats` reports the counters.
template <class P>
concept PoolPolicy = requires(typename P::template pool<detail::PoolObjectArchetype>& pool,
                              detail::PoolObjectArchetype* obj) {
    { pool.acquire() } -> std::same_as<detail::PoolObjectArchetype*>;
    pool.release(obj);
    { pool.stats() } -> std::same_as<pool::PoolStats>;
}
&&std::constructible_from<typename P::template pool<detail::PoolObjectArchetype>, std::size_t>;

/// A plugin has a pre-hook, a post-hook, or both.
///
/// `pre_hook(Context&, ChatRequest&)` runs on the caller's thread before routing, in declaration
/// order; it may rewrite the request or answer it (`ctx.respond` / `ctx.fail`), which skips the
/// provider and later pre-hooks. `post_hook(Context&, Outcome&)` runs in reverse order for the
/// plugins whose pre-hook ran (plugins without one count as having run), where the caller
/// receives the result; it may change the response or the error. Hooks run concurrently for
/// different requests, so plugin state must be thread-safe. An exception from a hook becomes a
/// 500 `plugin_error` for that request.
///
/// Other kinds of request run the hooks written for them and skip the others: a plugin with
/// `pre_hook(Context&, EmbeddingRequest&)` / `post_hook(Context&, EmbeddingOutcome&)` (or the
/// `TextCompletionRequest` / `TextCompletionOutcome` pair) sees embeddings (text completions); a
/// chat-only plugin is skipped for them (and counts as having run). A pre-hook of another kind may
/// rewrite the request or fail it (`ctx.fail`); `ctx.respond` answers chat requests only. A
/// generic hook (`pre_hook(Context&, auto&)`) is called for every kind, so it must compile for
/// each. Model listing runs no hooks.
template <class P>
concept HasPreHook = requires(P& p, Context& ctx, ChatRequest& req) {
    p.pre_hook(ctx, req);
};

template <class P>
concept HasPostHook = requires(P& p, Context& ctx, Outcome& out) {
    p.post_hook(ctx, out);
};

/// A plugin with a pre-hook for requests of type `Request` (`EmbeddingRequest`, ...).
template <class P, class Request>
concept HasPreHookFor = requires(P& p, Context& ctx, Request& req) {
    p.pre_hook(ctx, req);
};

/// A plugin with a post-hook for outcomes of type `O` (`EmbeddingOutcome`, ...).
template <class P, class O>
concept HasPostHookFor = requires(P& p, Context& ctx, O& out) {
    p.post_hook(ctx, out);
};

template <class P>
concept Plugin = HasPreHook<P> || HasPostHook<P> || HasPreHookFor<P, EmbeddingRequest> ||
    HasPostHookFor<P, EmbeddingOutcome> || HasPreHookFor<P, TextCompletionRequest> ||
    HasPostHookFor<P, TextCompletionOutcome>;

}  // namespace bifrost
