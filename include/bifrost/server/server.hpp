#pragma once
/// \file
/// `server::Server<Gateway>`: the OpenAI-compatible HTTP/1.1 server of bifrost-http, on
/// Boost.Asio, generic over the gateway type (any transport, queue policy, pool, plugins).
/// Common requests are parsed in place by `http1.hpp`; any other framing is read by Beast.
///
/// Routes (also under the drop-in prefixes `/openai/v1/...` and `/openai/...`):
///
/// | route                        | answer                                                   |
/// |------------------------------|----------------------------------------------------------|
/// | `POST /v1/chat/completions`  | the gateway's answer (OpenAI's JSON) or OpenAI's error JSON; |
/// |                              | with `"stream": true`, server-sent events (see below)     |
/// | `POST /v1/embeddings`        | the same, for embeddings (`Gateway::async_embed`)         |
/// | `POST /v1/completions`       | the same, for legacy text completions                     |
/// | `GET /v1/models`             | the configured providers' models, as `provider/model`     |
/// | `GET /health`                | `{"status":"ok"}` (503 `draining` during shutdown)        |
/// | `GET /metrics`               | Prometheus text exposition (see `metrics.hpp`)            |
/// | `GET /api/stats`             | the same figures as JSON                                  |
///
/// Connections are served by a fixed number of I/O threads, or (`Options::connections_on_workers`)
/// by the gateway's worker threads themselves, so that a request is read, sent upstream and
/// answered on one thread with no hand-off; each connection handles its requests one at a time,
/// so pipelined requests are answered in order. While a chat request is in
/// flight the server watches its connection: a client that goes away cancels the upstream call
/// (through the cancellation slot bound to `async_chat`). Embeddings and text completions are
/// served the same way. `stop()` drains gracefully.
///
/// Streaming (`"stream": true`): the answer is `text/event-stream`, chunked, one
/// `data: {chat.completion.chunk}` event per chunk as the upstream sends it, then `data: [DONE]`.
/// An error before the first chunk is an ordinary JSON error response with its status; an error
/// after it is sent as a `data: {"error":{...}}` event, and the stream ends there (no [DONE]).
/// A client that goes away mid-stream cancels the upstream stream.

#include <bifrost/config/config.hpp>
#include <bifrost/core/result.hpp>
#include <bifrost/detail/handler_memory.hpp>
#include <bifrost/detail/write_now.hpp>
#include <bifrost/gateway.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/json.hpp>
#include <bifrost/schema/operations_json.hpp>
#include <bifrost/schema/stream.hpp>
#include <bifrost/server/http1.hpp>
#include <bifrost/server/logger.hpp>
#include <bifrost/server/metrics.hpp>
#include <bifrost/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace bifrost::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;

/// The models a provider offers on `GET /v1/models`.
struct ProviderModels {
    std::string provider;
    std::vector<std::string> models;
};

/// The models of every provider in `config` (its keys' `models`, without duplicates).
inline std::vector<ProviderModels> models_of(const Config& config) {
    std::vector<ProviderModels> out;
    for (const auto& p : config.providers) {
        ProviderModels pm{p.name, {}};
        for (const auto& k : p.config.keys)
            for (const auto& m : k.models)
                if (std::find(pm.models.begin(), pm.models.end(), m) == pm.models.end())
                    pm.models.push_back(m);
        out.push_back(std::move(pm));
    }
    return out;
}

/// Server settings. The limits protect the server from slow, silent or oversized clients.
struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;  ///< 0: an ephemeral port (read it back with `Server::port()`)
    std::size_t io_threads = 2;
    /// Run each client connection on one of the gateway's worker threads (round robin over
    /// `Gateway::worker_executors()`, when the gateway has any at `start()`) instead of on the
    /// I/O threads, which then only accept. A request is then read, sent upstream, and answered
    /// on one thread: no wake-up of another thread and no queue hop on the way back, which is
    /// most of the server's cost per request on a small machine. The price is isolation: a
    /// worker thread also parses and writes its connections' HTTP, so plugins and transports
    /// must not block (the built-in ones do not), and the gateway must keep running until
    /// `stop()` returned.
    bool connections_on_workers = false;
    /// Largest accepted request body (413 beyond; Bifrost's `client.max_request_body_size_mb`).
    std::size_t body_limit = 10 * 1024 * 1024;
    /// Largest accepted request line plus headers (431 beyond).
    std::size_t header_limit = 16 * 1024;
    /// How long a kept-alive connection may sit without starting a request.
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
    /// How long a request may take to arrive once its first byte did (slow clients).
    std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};
    /// How long writing a response may take.
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
    /// Most bytes of a streamed response waiting for a slow client. Past it the upstream stream
    /// is cancelled and the client gets a `stream_buffer_overflow` error event instead of the
    /// rest, so a client that reads slowly cannot make the server hold a whole answer.
    std::size_t stream_buffer_limit = 4 * 1024 * 1024;
    /// How long `stop()` lets in-flight requests finish before closing their connections.
    std::chrono::milliseconds drain_timeout{std::chrono::seconds(30)};
    /// A deadline for every chat request (504 on expiry); unset: the providers' own timeouts.
    std::optional<std::chrono::nanoseconds> request_timeout;
    /// Access tokens; when any is active, every route but `/health` needs one
    /// (`Authorization: Bearer <token>` or `x-bf-vk: <token>`), else 401.
    std::vector<VirtualKey> virtual_keys;
    /// What `GET /v1/models` lists.
    std::vector<ProviderModels> models;
    Logger logger;
};

/// What the server needs from a gateway: `async_chat` with completion tokens and cancellation
/// slots, and `stats()`. Every `bifrost::Gateway` qualifies.
template <class G>
concept ServableGateway = requires(G& g) {
    { g.stats() } -> std::convertible_to<GatewayStats>;
};

/// The HTTP server. Construct, `start()`, and later `stop()` (the destructor stops too).
///
/// Thread safety: `start`, `stop` and `port` may be called from any thread except the server's
/// own I/O threads. The gateway must outlive the server.
template <ServableGateway GatewayT>
class Server {
  public:
    using RequestHead = http1::RequestHead;

    /// A handler's answer, written by `write_reply` (a stream writes its own and returns none).
    struct Reply {
        int status = 200;
        std::string_view content_type = "application/json";
        std::string body;
        std::string_view allow;  ///< the `Allow` field of a 405
    };

    Server(GatewayT& gateway, Options options)
        : gw_(gateway), opts_(std::move(options)), acceptor_(asio::make_strand(ioc_)) {
        if (opts_.io_threads == 0) opts_.io_threads = 1;
        for (const auto& p : gateway.stats().providers)
            metrics_.add_provider(p.name);
        for (const auto& vk : opts_.virtual_keys)
            if (vk.is_active) auth_required_ = true;
    }

    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    ~Server() {
        stop();
        // A worker thread that handed a completion to an I/O thread may still be inside that
        // post (Asio signals the loop after queueing): the loop must outlive it.
        while (handoffs_.load(std::memory_order_acquire) != 0)
            std::this_thread::yield();
    }

    /// Binds, listens and starts the I/O threads. Returns an error message (naming the address)
    /// when the address cannot be used.
    std::optional<std::string> start() {
        namespace ip = asio::ip;
        boost::system::error_code ec;
        ip::tcp::endpoint ep;
        auto addr = ip::make_address(opts_.host, ec);
        if (!ec) {
            ep = ip::tcp::endpoint(addr, opts_.port);
        } else {
            ip::tcp::resolver resolver(ioc_);
            auto results = resolver.resolve(opts_.host, std::to_string(opts_.port), ec);
            if (ec || results.empty())
                return "cannot resolve host '" + opts_.host + "': " + ec.message();
            ep = results.begin()->endpoint();
        }
        const auto where = [&] { return opts_.host + ":" + std::to_string(opts_.port); };
        acceptor_.open(ep.protocol(), ec);
        if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor_.bind(ep, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            boost::system::error_code ignored;
            acceptor_.close(ignored);
            return "cannot listen on " + where() + ": " + ec.message();
        }
        port_ = acceptor_.local_endpoint().port();
        if constexpr (requires { gw_.worker_executors(); }) {
            if (opts_.connections_on_workers)
                for (const auto& ex : gw_.worker_executors())
                    connection_executors_.emplace_back(ex);
        }
        asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
        threads_.reserve(opts_.io_threads);
        for (std::size_t i = 0; i < opts_.io_threads; ++i)
            threads_.emplace_back([this] { run(); });
        opts_.logger.line(LogLevel::info, "listening")
            .field("address", ep.address().to_string())
            .field("port", static_cast<unsigned>(port_))
            .field("io_threads", static_cast<std::int64_t>(opts_.io_threads))
            .field("connections", connection_executors_.empty() ? "io_threads" : "workers")
            .field("auth", auth_required_ ? "virtual_keys" : "none");
        return std::nullopt;
    }

    /// The port the server listens on (after `start()`).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

    /// Graceful stop: stops accepting, closes idle connections, lets requests in progress finish
    /// (their responses say `Connection: close`) for up to `drain_timeout`, then closes what is
    /// left (cancelling its upstream calls) and joins the I/O threads. Idempotent.
    void stop() {
        if (stopping_.exchange(true)) {
            join();
            return;
        }
        if (threads_.empty()) return;
        opts_.logger.line(LogLevel::info, "draining")
            .field("connections", metrics_.connections.load());
        asio::post(acceptor_.get_executor(), [this] {
            boost::system::error_code ec;
            acceptor_.close(ec);
        });
        for_each_connection([](const std::shared_ptr<Connection>& c) {
            c->draining = true;
            beast::error_code ec;  // closed already: nothing to cancel
            if (c->idle) c->stream.socket().cancel(ec);
        });
        std::unique_lock lock(conn_mutex_);
        if (!conn_done_.wait_for(lock, opts_.drain_timeout, [&] { return connections_.empty(); })) {
            lock.unlock();
            opts_.logger.line(LogLevel::warn, "drain timeout: closing connections")
                .field("connections", metrics_.connections.load());
            for_each_connection([](const std::shared_ptr<Connection>& c) { c->stream.close(); });
            lock.lock();
            conn_done_.wait_for(lock, std::chrono::seconds(5),
                                [&] { return connections_.empty(); });
        }
        lock.unlock();
        join();
        opts_.logger.line(LogLevel::info, "stopped");
    }

    [[nodiscard]] const ServerMetrics& metrics() const noexcept { return metrics_; }

  private:
    using Clock = std::chrono::steady_clock;
    template <class T>
    using awaitable = asio::awaitable<T>;

    /// What one request's log line and metrics need. A connection keeps one and resets it per
    /// request, so its strings keep their capacity.
    struct Exchange {
        Route route = Route::unknown;
        std::string_view method;
        std::string provider;
        std::string model;
        std::string key_name;
        std::chrono::nanoseconds upstream{-1};
        std::chrono::nanoseconds queue_wait{};
        /// Set when the handler wrote the response itself (a stream): its status.
        int streamed_status = 0;

        void reset(std::string_view request_method) noexcept {
            route = Route::unknown;
            method = request_method;
            provider.clear();
            model.clear();
            key_name.clear();
            upstream = std::chrono::nanoseconds(-1);
            queue_wait = {};
            streamed_status = 0;
        }
    };

    /// A suspended coroutine, kept where the event that resumes it can reach it (in place: an
    /// Asio `use_awaitable` handler is a pointer or two).
    using Resume = bifrost::detail::InplaceCompletion<int, 48>;

    /// The read that watches a client while its request is in flight (see `watched`). It stays
    /// pending after the answer, as the read of the connection's next request, so that one read
    /// per request both watches the client and waits for what comes next.
    struct ClientWatch {
        bool pending = false;         // the read is outstanding (nobody may touch the buffer)
        bool ended = false;           // it completed: `ec` is its outcome
        bool call_in_flight = false;  // a gateway call runs: a client that leaves cancels it
        bool* answered = nullptr;     // set when the call completes inside its initiation
        boost::system::error_code ec;
        asio::cancellation_signal cancel;  // cancels the gateway call
        /// The connection's coroutine while it waits for the read (see `wait_for_watch`): the
        /// read's completion resumes it.
        Resume waiter;
        /// The keep-alive limit of a wait for the next request (`max()` for other waits): the
        /// idle sweep (see `IdleSweep`) ends such a wait at this time.
        Clock::time_point idle_deadline = Clock::time_point::max();
        bool sweep_pending = false;  // the idle sweep's timer wait is outstanding
        Resume sweep_waiter;         // the session's end, waiting for the sweep's last run
    };

    /// One client connection. Touched only on its strand (the stream's executor).
    struct Connection {
        explicit Connection(asio::ip::tcp::socket s)
            : stream(std::move(s)), idle_timer(stream.get_executor()) {
            boost::system::error_code ignored;
            // Answers and stream chunks leave as written, not held back behind an unacknowledged
            // segment; and the socket is non-blocking for `write_now`.
            stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
            stream.socket().non_blocking(true, ignored);
        }
        beast::tcp_stream stream;
        beast::flat_buffer buffer;
        bool idle = false;               // waiting for a request to begin
        bool draining = false;           // the server is stopping: finish this request, then close
        bool client_gone = false;        // the client went away while its request was in flight
        bool stream_keep_alive = false;  // a streamed response ended cleanly and said keep-alive
        std::string request_bytes;       // the request being answered (fast path), capacity reused
        std::string head_out;            // the response head being written, capacity reused
        std::string spare_body;          // the last response body's storage, for the next one
        Exchange exchange;               // the request being answered: its log and metrics facts
        ChatRequest chat_request;        // the chat request being answered, capacity reused
        ClientWatch watch;               // the read watching the client (see `watched`)
        asio::steady_timer idle_timer;   // the idle sweep's (see `IdleSweep`)

        /// An empty string with the capacity of the last response body.
        std::string take_body() {
            std::string b = std::move(spare_body);
            b.clear();
            return b;
        }
    };

    /// The hand-over between a stream's chunk callback (a worker thread) and the connection's
    /// coroutine (its strand): SSE events queued under a mutex, a timer the coroutine sleeps on,
    /// woken by a post to the strand.
    struct StreamPipe {
        StreamPipe(asio::any_io_executor ex, std::size_t max_bytes,
                   std::atomic<std::size_t>& handoff_count)
            : executor(ex),
              wake_timer(ex, asio::steady_timer::time_point::max()),
              limit(max_bytes),
              handoffs(handoff_count) {}

        asio::any_io_executor executor;
        asio::steady_timer wake_timer;     // strand only
        asio::cancellation_signal cancel;  // strand only
        std::optional<Result> result;      // strand only: the final outcome
        std::string provider;              // strand only
        std::mutex mutex;
        const std::size_t limit;             // most bytes in `events`
        std::atomic<std::size_t>& handoffs;  // the server's (see `hand_off`)
        std::deque<std::string> events;      // guarded by mutex
        std::size_t queued_bytes = 0;        // guarded by mutex: the size of `events`
        bool wake_posted = false;            // guarded by mutex
        bool stop = false;                   // guarded by mutex: the client left, or overflow
        bool overflow = false;               // guarded by mutex: `limit` was reached

        /// On a worker thread: queues one chunk's event. False (which ends the upstream stream)
        /// once the client has left, or when the client is so slow that the event would take
        /// the queue past `limit`.
        bool push(const StreamChunk& chunk, const std::shared_ptr<StreamPipe>& self) {
            std::string event = "data: ";
            write_stream_chunk(event, chunk);
            event.append("\n\n");
            bool post = false;
            {
                std::lock_guard lock(mutex);
                if (stop) return false;
                if (queued_bytes + event.size() > limit) {
                    stop = overflow = true;
                    return false;
                }
                queued_bytes += event.size();
                events.push_back(std::move(event));
                post = !std::exchange(wake_posted, true);
            }
            if (post) hand_off(handoffs, executor, [self] { self->wake(); });
            return true;
        }

        /// On the strand.
        void wake() {
            {
                std::lock_guard lock(mutex);
                wake_posted = false;
            }
            wake_timer.cancel();
        }

        /// On the strand: moves the queued events out.
        std::deque<std::string> take() {
            std::lock_guard lock(mutex);
            queued_bytes = 0;
            return std::exchange(events, {});
        }

        /// On the strand: whether the stream was cut off for a slow client.
        bool overflowed() {
            std::lock_guard lock(mutex);
            return overflow;
        }
    };

    void run() {
        for (;;) {
            try {
                ioc_.run();
                return;
            } catch (const std::exception& e) {
                opts_.logger.line(LogLevel::error, "unexpected exception on an I/O thread")
                    .field("what", e.what());
            }
        }
    }

    void join() {
        std::lock_guard lock(join_mutex_);
        if (threads_.empty()) return;
        work_.reset();
        ioc_.stop();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        threads_.clear();
    }

    template <class F>
    void for_each_connection(F f) {
        std::vector<std::shared_ptr<Connection>> conns;
        {
            std::lock_guard lock(conn_mutex_);
            for (auto& [id, c] : connections_)
                conns.push_back(c);
        }
        for (auto& c : conns)
            asio::post(c->stream.get_executor(), [c, f] { f(c); });
    }

    awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(
                next_connection_executor(), asio::as_tuple(asio::use_awaitable));
            if (stopping_.load() || !acceptor_.is_open()) co_return;
            if (ec) {
                opts_.logger.line(LogLevel::warn, "accept failed").field("error", ec.message());
                // Out of descriptors and the like: pause instead of spinning.
                asio::steady_timer pause(co_await asio::this_coro::executor,
                                         std::chrono::milliseconds(50));
                co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
                continue;
            }
            auto c = std::make_shared<Connection>(std::move(socket));
            const std::uint64_t id = ++next_connection_id_;
            {
                // Checked again under the lock `stop()` takes its snapshot of the connections
                // under: a connection is either in that snapshot (and told to drain) or closed.
                std::lock_guard lock(conn_mutex_);
                if (stopping_.load()) break;
                connections_.emplace(id, c);
            }
            metrics_.connections.fetch_add(1);
            metrics_.connections_total.fetch_add(1);
            asio::co_spawn(c->stream.get_executor(), session(c, id), asio::detached);
        }
    }

    /// Where the next connection runs: a strand of the I/O threads' loop, or the next worker
    /// thread's loop itself. A worker's loop is run by that one thread alone, so what is posted
    /// to it (by `stop()`, by the gateway's completions) already runs one at a time, in order:
    /// a strand there would only add its queue and reference counting to every operation.
    asio::any_io_executor next_connection_executor() {
        if (connection_executors_.empty()) return asio::make_strand(ioc_);
        const std::size_t i = next_executor_++ % connection_executors_.size();
        return connection_executors_[i];
    }

    awaitable<void> session(std::shared_ptr<Connection> c, std::uint64_t id) {
        try {
            co_await serve(*c);
        } catch (const std::exception& e) {
            opts_.logger.line(LogLevel::error, "connection failed").field("what", e.what());
        }
        beast::error_code ec;
        c->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        c->stream.close();
        // The closed socket ends a watching read still pending, and the cancelled timer the idle
        // sweep: their handlers (they point to the connection) run before the connection counts
        // as gone.
        if (c->watch.pending) co_await wait_for_watch(*c, false);
        if (c->watch.sweep_pending) {
            c->idle_timer.cancel();
            co_await suspend_in(c->watch.sweep_waiter);
        }
        metrics_.connections.fetch_sub(1);
        // Notified under the lock: once `stop()` sees no connection it may destroy the server,
        // and a connection on a worker thread is not joined by it.
        std::lock_guard lock(conn_mutex_);
        connections_.erase(id);
        conn_done_.notify_all();
    }

    /// Serves requests on one connection until it closes, fails or the server drains.
    awaitable<void> serve(Connection& c) {
        for (;;) {
            if (c.draining) co_return;
            if (c.buffer.size() == 0) {
                // Wait for the next request to begin (keep-alive idle time): on the read that
                // watched the last request when it is still pending, else on a new one.
                c.idle = true;
                boost::system::error_code ec;
                if (c.watch.pending) {
                    co_await wait_for_watch(c, true);
                    ec = c.watch.ec;
                } else if (c.watch.ended && c.watch.ec) {
                    ec = c.watch.ec;  // the client left after its answer was ready
                } else {
                    c.stream.expires_after(opts_.idle_timeout);
                    auto [rec, n] = co_await c.stream.async_read_some(
                        c.buffer.prepare(4096), asio::as_tuple(asio::use_awaitable));
                    c.buffer.commit(n);
                    ec = rec;
                }
                c.watch.ended = false;
                c.idle = false;
                if (ec || c.buffer.size() == 0) co_return;  // closed, timed out, or drained
            }
            const auto start = Clock::now();
            http1::ParsedHead parsed;
            Fast fast = read_fast(c, parsed);
            // A request read whole from the buffer waited for nothing: the read timeout (two
            // timers to set, and to reset after) is for the reads that wait.
            const bool timed = fast != Fast::read;
            if (timed) c.stream.expires_after(opts_.read_timeout);
            if (fast == Fast::body) fast = co_await read_body(c, parsed);
            if (fast == Fast::failed) co_return;  // the client left or timed out mid-request
            std::optional<http::request<http::string_body>> slow;  // the fallback's message
            RequestHead req;
            if (fast == Fast::read) {
                req = parsed.head;
            } else {
                if (!co_await read_with_beast(c, slow.emplace(), start)) co_return;
                req = head_of(*slow);
            }
            if (timed) c.stream.expires_never();

            metrics_.requests_in_flight.fetch_add(1);
            Exchange& ex = c.exchange;
            ex.reset(req.method_string);
            Reply res = co_await handle(c, req, ex);
            metrics_.requests_in_flight.fetch_sub(1);
            const auto total = Clock::now() - start;
            if (ex.streamed_status != 0) {  // written already, as a stream
                record(ex, req, c.client_gone ? 499 : ex.streamed_status, total);
                if (c.client_gone || !c.stream_keep_alive) co_return;
                continue;
            }
            const int status = c.client_gone ? 499 : res.status;
            record(ex, req, status, total);
            if (c.client_gone) co_return;

            const bool keep_alive = req.keep_alive && !c.draining && !stopping_.load();
            // Written in place when the socket takes it whole, as it nearly always does.
            auto buffers = reply_buffers(c, req.version, res, keep_alive);
            bool written = bifrost::detail::write_now(c.stream.socket(), buffers);
            if (!written) written = co_await write_rest(c, buffers);
            keep_body(c, res);
            if (!written || !keep_alive) co_return;
        }
    }

    enum class Fast { read, fallback, failed, body };

    /// The largest request the fast path copies into a connection's reused storage, and the
    /// largest response body whose storage a connection keeps. Larger ones are read by Beast
    /// into a string of their own (and freed after), so that thousands of kept-alive
    /// connections do not each hold the largest request or answer they ever saw.
    static constexpr std::size_t reused_limit = 64 * 1024;

    std::string_view buffered(const Connection& c) const noexcept {
        const auto b = c.buffer.data();
        return {static_cast<const char*>(b.data()), b.size()};
    }

    /// The hot path's read: a request whose head is in the buffer already (the usual case: it
    /// came in the read that began it) and that `http1::parse_head` understands is taken from
    /// the buffer here, copied into the connection's reused `request_bytes`; `out` then views
    /// the copy. `body`: such a request whose body has not all arrived yet (`read_body` reads
    /// it). Anything else is `fallback`, with nothing consumed, for Beast to read. No coroutine
    /// of its own: a request that came whole costs no frame.
    Fast read_fast(Connection& c, http1::ParsedHead& out) {
        const std::string_view bytes = buffered(c);
        if (http1::parse_head(bytes, opts_.header_limit, out) != http1::Parse::complete)
            return Fast::fallback;
        if (out.content_length > opts_.body_limit) return Fast::fallback;  // Beast says 413
        const std::size_t need = out.head_size + out.content_length;
        if (need > reused_limit) return Fast::fallback;
        if (bytes.size() < need) return Fast::body;
        // The views, into the copy (the buffer moves when the client is watched during the call).
        c.request_bytes.assign(bytes.data(), need);
        out.rebase(bytes.data(), c.request_bytes.data());
        c.buffer.consume(need);
        out.head.body = std::string_view(c.request_bytes).substr(out.head_size);
        return Fast::read;
    }

    /// The rest of a request `read_fast` answered `body` for: reads its body to its
    /// `Content-Length`, then takes it as `read_fast` does. `failed`: the client left or timed
    /// out mid-body (nobody to answer, as on Beast's path).
    awaitable<Fast> read_body(Connection& c, http1::ParsedHead& out) {
        const std::size_t need = out.head_size + out.content_length;
        while (c.buffer.size() < need) {
            auto [ec, n] = co_await c.stream.async_read_some(
                c.buffer.prepare(need - c.buffer.size()), asio::as_tuple(asio::use_awaitable));
            c.buffer.commit(n);
            if (ec) co_return Fast::failed;
        }
        // The buffer may have moved: the views are taken again, from the copy.
        c.request_bytes.assign(buffered(c).data(), need);
        http1::parse_head(c.request_bytes, opts_.header_limit, out);
        c.buffer.consume(need);
        out.head.body = std::string_view(c.request_bytes).substr(out.head_size);
        co_return Fast::read;
    }

    /// The general path: Beast reads the request (any framing, `Expect: 100-continue`) into
    /// `req`. A request that cannot be read is answered here (413, 431, 400) and false returned.
    awaitable<bool> read_with_beast(Connection& c, http::request<http::string_body>& req,
                                    Clock::time_point start) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(opts_.header_limit, UINT32_MAX)));
        parser.body_limit(opts_.body_limit);
        auto [hec, hn] = co_await http::async_read_header(c.stream, c.buffer, parser,
                                                          asio::as_tuple(asio::use_awaitable));
        if (hec) {
            co_await refuse_unreadable(c, hec, start);
            co_return false;
        }
        const auto& header = parser.get();
        if (parser.content_length() && *parser.content_length() > opts_.body_limit) {
            co_await refuse_unreadable(c, http::error::body_limit, start);
            co_return false;
        }
        if (beast::iequals(header[http::field::expect], "100-continue")) {
            http::response<http::empty_body> cont(http::status::continue_, header.version());
            c.stream.expires_after(opts_.write_timeout);
            auto [wec, wn] =
                co_await http::async_write(c.stream, cont, asio::as_tuple(asio::use_awaitable));
            if (wec) co_return false;
            c.stream.expires_after(opts_.read_timeout);
        }
        auto [bec, bn] = co_await http::async_read(c.stream, c.buffer, parser,
                                                   asio::as_tuple(asio::use_awaitable));
        if (bec) {
            co_await refuse_unreadable(c, bec, start);
            co_return false;
        }
        req = parser.release();
        co_return true;
    }

    /// What the handlers read of a request Beast parsed (views into `req`).
    static RequestHead head_of(const http::request<http::string_body>& req) {
        RequestHead h;
        h.method = req.method();
        h.method_string = req.method_string();
        h.target = req.target();
        h.version = req.version();
        h.keep_alive = req.keep_alive();
        h.authorization = req[http::field::authorization];
        h.x_bf_vk = req["x-bf-vk"];
        h.body = req.body();
        return h;
    }

    /// Answers a request that could not be read (too large, malformed) and closes gracefully:
    /// the client's unread bytes are drained for a moment so that it gets the answer rather than
    /// a connection reset.
    awaitable<void> refuse_unreadable(Connection& c, beast::error_code ec,
                                      Clock::time_point start) {
        int status = 0;
        std::string message;
        if (ec == http::error::body_limit) {
            status = 413;
            message = "request body too large: the limit is " + std::to_string(opts_.body_limit) +
                      " bytes";
        } else if (ec == http::error::header_limit) {
            status = 431;
            message = "request headers too large: the limit is " +
                      std::to_string(opts_.header_limit) + " bytes";
        } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
            status = 400;
            message = "malformed HTTP request: " + ec.message();
        } else {
            co_return;  // the client went away or timed out: nobody to answer
        }
        Reply res = error_response(status, "invalid_request_error", message,
                                   status == 413 ? "request_too_large" : "");
        metrics_.record_request(Route::unknown, status, Clock::now() - start);
        opts_.logger.line(LogLevel::info, "request")
            .field("route", to_string(Route::unknown))
            .field("status", status)
            .field("error", message)
            .millis("latency_ms", Clock::now() - start);
        if (!co_await write_reply(c, 11, res, false)) co_return;
        beast::error_code ignored;
        c.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        c.stream.expires_after(std::chrono::seconds(1));
        std::size_t drained = 0;
        char sink[4096];
        while (drained < 4 * 1024 * 1024) {
            auto [rec, rn] = co_await c.stream.async_read_some(asio::buffer(sink),
                                                               asio::as_tuple(asio::use_awaitable));
            if (rec) break;
            drained += rn;
        }
    }

    void record(const Exchange& ex, const RequestHead& req, int status,
                std::chrono::nanoseconds total) {
        metrics_.record_request(ex.route, status, total);
        const bool answered = ex.upstream.count() >= 0 && !ex.provider.empty();
        if (answered)
            metrics_.record_upstream(ex.provider, ex.upstream, total - ex.upstream, ex.queue_wait);
        if (status == 499) metrics_.client_disconnects.fetch_add(1);
        const LogLevel level = status >= 500 && status != 503 ? LogLevel::warn : LogLevel::info;
        auto line = opts_.logger.line(level, "request");
        std::string_view path = req.target;
        if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
        line.field("method", ex.method).field("path", path).field("route", to_string(ex.route));
        if (!ex.provider.empty()) line.field("provider", ex.provider);
        if (!ex.model.empty()) line.field("model", ex.model);
        if (!ex.key_name.empty()) line.field("virtual_key", ex.key_name);
        line.field("status", status).millis("latency_ms", total);
        if (answered)
            line.millis("upstream_ms", ex.upstream).millis("overhead_ms", total - ex.upstream);
    }

    // ---- routing ------------------------------------------------------------------------------

    struct RouteMatch {
        Route route = Route::unknown;
        http::verb method = http::verb::get;
    };

    static RouteMatch match(std::string_view path) {
        if (path == "/health") return {Route::health, http::verb::get};
        if (path == "/metrics") return {Route::metrics, http::verb::get};
        if (path == "/api/stats") return {Route::stats, http::verb::get};
        std::string_view rest;
        for (std::string_view prefix : {"/openai/v1/", "/openai/", "/v1/"}) {
            if (path.substr(0, prefix.size()) == prefix) {
                rest = path.substr(prefix.size() - 1);
                break;
            }
        }
        if (rest == "/chat/completions") return {Route::chat_completions, http::verb::post};
        if (rest == "/completions") return {Route::completions, http::verb::post};
        if (rest == "/embeddings") return {Route::embeddings, http::verb::post};
        if (rest == "/models") return {Route::models, http::verb::get};
        return {};
    }

    /// The answer to a request: the route's coroutine, or one that has its answer already. Not
    /// a coroutine itself, so that a request costs no frame for choosing its route.
    awaitable<Reply> handle(Connection& c, const RequestHead& req, Exchange& ex) {
        std::string_view path = req.target;
        if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
        const RouteMatch m = match(path);
        ex.route = m.route;
        if (m.route == Route::unknown)
            return answered(error_response(
                404, "invalid_request_error",
                "unknown route: " + std::string(req.method_string) + " " + std::string(path),
                "unknown_url"));
        if (req.method != m.method) {
            Reply res = error_response(405, "invalid_request_error",
                                       std::string(to_string(m.route)) + " accepts " +
                                           std::string(http::to_string(m.method)) + " only, not " +
                                           std::string(req.method_string),
                                       "method_not_allowed");
            res.allow = http::to_string(m.method);
            return answered(std::move(res));
        }
        if (m.route != Route::health && !authorize(req, ex))
            return answered(error_response(401, "invalid_request_error",
                                           "missing or invalid access token: send "
                                           "\"Authorization: Bearer <virtual key>\"",
                                           "invalid_api_key"));
        switch (m.route) {
            case Route::chat_completions:
                return chat(c, req, ex);
            case Route::completions:
                return text_completion(c, req, ex);
            case Route::embeddings:
                return embeddings(c, req, ex);
            case Route::models:
                return answered(json_response(200, models_json()));
            case Route::health:
                if (stopping_.load() || c.draining)
                    return answered(json_response(503, R"({"status":"draining"})"));
                return answered(json_response(200, R"({"status":"ok"})"));
            case Route::metrics: {
                std::string body;
                metrics_.render_prometheus(body, gw_.stats());
                return answered(
                    Reply{200, "text/plain; version=0.0.4; charset=utf-8", std::move(body), {}});
            }
            case Route::stats: {
                std::string body;
                metrics_.render_json(body, gw_.stats());
                return answered(json_response(200, std::move(body)));
            }
            case Route::unknown:
                break;
        }
        return answered(
            error_response(404, "invalid_request_error", "unknown route", "unknown_url"));
    }

    /// A route's answer known without waiting, as an awaitable.
    static awaitable<Reply> answered(Reply res) { co_return res; }

    bool authorize(const RequestHead& req, Exchange& ex) const {
        if (!auth_required_) return true;
        std::string_view token;
        const std::string_view auth = req.authorization;
        if (auth.size() > 7 && beast::iequals(auth.substr(0, 7), "bearer ")) {
            token = auth.substr(7);
        } else {
            token = req.x_bf_vk;
        }
        while (!token.empty() && token.front() == ' ')
            token.remove_prefix(1);
        while (!token.empty() && token.back() == ' ')
            token.remove_suffix(1);
        if (token.empty()) return false;
        bool ok = false;
        for (const auto& vk : opts_.virtual_keys) {
            if (vk.is_active && constant_time_equal(token, vk.value.reveal())) {
                ok = true;
                ex.key_name = vk.name;
            }
        }
        return ok;
    }

    static bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
        unsigned char diff = a.size() == b.size() ? 0 : 1;
        const std::size_t n = std::max(a.size(), b.size());
        for (std::size_t i = 0; i < n; ++i) {
            const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
            const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
            diff = static_cast<unsigned char>(diff | (x ^ y));
        }
        return diff == 0;
    }

    // ---- chat ---------------------------------------------------------------------------------

    awaitable<Reply> chat(Connection& c, const RequestHead& req, Exchange& ex) {
        // Read into the connection's request, whose strings and messages keep their capacity
        // from the last one (a large request's memory is given back once it is answered).
        ChatRequest& request = c.chat_request;
        struct Trim {
            ChatRequest& r;
            bool large;
            ~Trim() {
                if (large) r = ChatRequest{};
            }
        } trim{request, req.body.size() > reused_limit};
        Error err;
        if (!parse_chat_request(req.body, request, err)) co_return error_response(err);
        ex.model = request.model;
        RequestOptions ro;
        ro.timeout = opts_.request_timeout;
        if (request.stream.value_or(false)) co_return co_await chat_stream(c, req, request, ro, ex);

        c.client_gone = false;
        auto outcome = co_await watched<Result>(c, [&](auto&& token) {
            // The request moves into the job (and the job's old storage comes back for the
            // connection's next request): no copy.
            return gw_.async_chat(std::move(request), ro, std::forward<decltype(token)>(token));
        });
        if (outcome.index() == 1) {
            // The client went away first: the gateway was told to cancel (and has answered).
            c.client_gone = true;
            co_return error_response(errors::cancelled(""));
        }
        Result r = std::get<0>(std::move(outcome));
        if (!r.ok()) {
            const Error& e = r.error();
            ex.provider = e.provider;
            co_return error_response(e);
        }
        ex.provider = r->extra_fields.provider;
        ex.upstream = r->extra_fields.latency;
        ex.queue_wait = r->extra_fields.queue_wait;
        std::string body = c.take_body();
        // An OpenAI-format upstream's answer is relayed as it came, with the gateway's
        // `extra_fields` added (no second serialization); any other is written anew.
        const std::string_view wire = r.wire_json();
        if (wire.empty() || !write_chat_wire(body, wire, r->extra_fields))
            write_chat_response(body, *r);
        co_return json_response(200, std::move(body));
    }

    /// `"stream": true`: relays the gateway's chunks as server-sent events (see the file comment).
    /// Returns a response to write only when the stream failed before its first chunk; otherwise
    /// the response was written here and `ex.streamed_status` says so.
    awaitable<Reply> chat_stream(Connection& c, const RequestHead& req, const ChatRequest& request,
                                 const RequestOptions& ro, Exchange& ex) {
        using namespace asio::experimental::awaitable_operators;
        const unsigned v = req.version;
        auto pipe = std::make_shared<StreamPipe>(c.stream.get_executor(), opts_.stream_buffer_limit,
                                                 handoffs_);
        gw_.async_chat_stream(
            request, [pipe](const StreamChunk& chunk) { return pipe->push(chunk, pipe); }, ro,
            asio::bind_cancellation_slot(
                pipe->cancel.slot(),
                asio::bind_executor(CountedExecutor{pipe->executor, &handoffs_}, [pipe](Result r) {
                    pipe->result.emplace(std::move(r));
                    pipe->wake_timer.cancel();
                })));
        c.client_gone = false;
        c.stream_keep_alive = false;
        std::deque<std::string> events;
        // Until the first chunk or the outcome: a failure now is an ordinary response.
        while (events.empty() && !pipe->result) {
            events = pipe->take();
            if (!events.empty() || pipe->result) break;
            auto woke = co_await (sleep(*pipe) || watch_client(c));
            if (woke.index() == 1) {
                co_await abandon(*pipe);
                c.client_gone = true;
                co_return error_response(errors::cancelled(""));
            }
        }
        if (events.empty()) {       // the outcome came first (nothing was streamed)
            events = pipe->take();  // a chunk may have been queued with its wake-up pending
        }
        if (events.empty()) {
            Result& r = *pipe->result;
            if (pipe->overflowed()) {  // a first chunk larger than the whole buffer
                ex.provider = r.ok() ? r->extra_fields.provider : r.error().provider;
                co_return error_response(stream_overflow(ex.provider));
            }
            if (!r.ok()) {
                ex.provider = r.error().provider;
                co_return error_response(r.error());
            }
        }

        // The head, then events as they come.
        const bool keep_alive = req.keep_alive && !c.draining && !stopping_.load();
        http::response<http::empty_body> head(http::status::ok, v);
        head.set(http::field::server, server_name());
        head.set(http::field::content_type, "text/event-stream");
        head.set(http::field::cache_control, "no-cache");
        head.chunked(true);
        head.keep_alive(keep_alive);
        http::response_serializer<http::empty_body> sr(head);
        c.stream.expires_after(opts_.write_timeout);
        auto [hec, hn] =
            co_await http::async_write_header(c.stream, sr, asio::as_tuple(asio::use_awaitable));
        bool failed = static_cast<bool>(hec);
        ex.streamed_status = 200;
        for (;;) {
            std::string batch;
            for (auto& e : events)
                batch.append(e);
            events.clear();
            if (!failed && !batch.empty()) failed = !co_await write_chunk(c, batch);
            if (failed) break;
            if (pipe->result) {
                events = pipe->take();  // chunks queued before the outcome
                if (events.empty()) break;
                continue;
            }
            auto woke = co_await (sleep(*pipe) || watch_client(c));
            if (woke.index() == 1) {
                failed = true;
                break;
            }
            events = pipe->take();
        }
        if (failed) {  // the client left or cannot be written to
            co_await abandon(*pipe);
            c.client_gone = true;
            co_return Reply{};
        }
        Result& r = *pipe->result;
        std::string tail;
        if (pipe->overflowed()) {
            ex.provider = r.ok() ? r->extra_fields.provider : r.error().provider;
            ex.streamed_status = 503;
            tail = "data: ";
            write_error(tail, stream_overflow(ex.provider));
            tail.append("\n\n");
        } else if (r.ok()) {
            ex.provider = r->extra_fields.provider;
            ex.upstream = r->extra_fields.latency;
            ex.queue_wait = r->extra_fields.queue_wait;
            tail = "data: [DONE]\n\n";
        } else {
            ex.provider = r.error().provider;
            ex.streamed_status =
                r.error().status >= 400 && r.error().status < 600 ? r.error().status : 500;
            tail = "data: ";
            write_error(tail, r.error());
            tail.append("\n\n");
        }
        if (!co_await write_chunk(c, tail)) {
            c.client_gone = true;
            co_return Reply{};
        }
        std::array<asio::const_buffer, 1> last{asio::buffer("0\r\n\r\n", 5)};  // no trailers
        const bool ended = co_await write_all(c, last);
        c.stream_keep_alive = ended && keep_alive;
        if (!ended) c.client_gone = true;
        co_return Reply{};
    }

    Error stream_overflow(std::string_view provider) const {
        return errors::make(503, "stream_buffer_overflow",
                            "the stream was ended: more than " +
                                std::to_string(opts_.stream_buffer_limit) +
                                " bytes of it were waiting for the client to read them",
                            provider);
    }

    /// Writes `buffers` to the client: in place when the socket takes them whole, as it nearly
    /// always does, else the rest asynchronously under the write timeout. False on failure.
    template <std::size_t N>
    awaitable<bool> write_all(Connection& c, std::array<asio::const_buffer, N>& buffers) {
        if (bifrost::detail::write_now(c.stream.socket(), buffers)) co_return true;
        co_return co_await write_rest(c, buffers);
    }

    /// Writes what `write_now` left of `buffers`, asynchronously under the write timeout.
    template <std::size_t N>
    awaitable<bool> write_rest(Connection& c, std::array<asio::const_buffer, N>& buffers) {
        c.stream.expires_after(opts_.write_timeout);
        auto [ec, n] =
            co_await asio::async_write(c.stream, buffers, asio::as_tuple(asio::use_awaitable));
        co_return !ec;
    }

    /// Writes `data` (not empty) as one chunk: its size line, the bytes, CRLF.
    awaitable<bool> write_chunk(Connection& c, const std::string& data) {
        char size[24];
        const auto [end, ec0] = std::to_chars(size, size + sizeof size - 2, data.size(), 16);
        end[0] = '\r';
        end[1] = '\n';
        std::array<asio::const_buffer, 3> buffers{
            asio::buffer(size, static_cast<std::size_t>(end + 2 - size)), asio::buffer(data),
            asio::buffer("\r\n", 2)};
        co_return co_await write_all(c, buffers);
    }

    /// Sleeps until the pipe is woken (a chunk, or the outcome) or this wait is cancelled.
    static awaitable<void> sleep(StreamPipe& pipe) {
        pipe.wake_timer.expires_at(asio::steady_timer::time_point::max());
        {
            std::lock_guard lock(pipe.mutex);
            if (!pipe.events.empty()) co_return;
        }
        if (pipe.result) co_return;
        co_await pipe.wake_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }

    /// The client left mid-stream: stop taking chunks, cancel the request, wait for its outcome
    /// (so that nothing of it outlives the connection's interest).
    static awaitable<void> abandon(StreamPipe& pipe) {
        {
            std::lock_guard lock(pipe.mutex);
            pipe.stop = true;
            pipe.events.clear();
        }
        if (!pipe.result) pipe.cancel.emit(asio::cancellation_type::terminal);
        while (!pipe.result)
            co_await sleep(pipe);
    }

    /// Posts `f` to `ex`, counted in `count` until the post returned: a worker thread handing
    /// work to the I/O threads' loop still touches the loop after queueing it (Asio signals it
    /// then), so `~Server` waits for the count to reach zero before the loop is destroyed.
    template <class F>
    static void hand_off(std::atomic<std::size_t>& count, const asio::any_io_executor& ex, F&& f) {
        count.fetch_add(1, std::memory_order_relaxed);
        asio::post(ex, std::forward<F>(f));
        count.fetch_sub(1, std::memory_order_release);
    }

    /// The executor gateway completions are bound to: a connection's, with every `execute` (the
    /// gateway's hand-over from its worker thread) counted as `hand_off` counts a post. The
    /// completion still runs on the connection's strand, where its cancellation slot lives.
    struct CountedExecutor {
        asio::any_io_executor inner;
        std::atomic<std::size_t>* count;

        template <class F>
        void execute(F&& f) const {
            count->fetch_add(1, std::memory_order_relaxed);
            inner.execute(std::forward<F>(f));
            count->fetch_sub(1, std::memory_order_release);
        }
        /// Whether this thread runs the connection's work (its worker's loop, or its strand):
        /// the gateway then continues inline, as `dispatch` would, with nothing handed over.
        [[nodiscard]] bool running_in_this_thread() const noexcept {
            if (const auto* e = inner.target<asio::io_context::executor_type>())
                return e->running_in_this_thread();
            if (const auto* s = inner.target<asio::strand<asio::io_context::executor_type>>())
                return s->running_in_this_thread();
            return false;
        }
        [[nodiscard]] asio::execution_context& query(asio::execution::context_t) const noexcept {
            return asio::query(inner, asio::execution::context);
        }
        static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
            return asio::execution::blocking.possibly;
        }
        friend bool operator==(const CountedExecutor& a, const CountedExecutor& b) noexcept {
            return a.inner == b.inner && a.count == b.count;
        }
        friend bool operator!=(const CountedExecutor& a, const CountedExecutor& b) noexcept {
            return !(a == b);
        }
    };

    /// A watched call's completion handler on the path with `Connection::watch` (see
    /// `watched`): ends the call's watch state, tells the initiation when the call is answered
    /// inside it, and answers the awaiting coroutine, with `monostate` when the client left.
    template <class R, class H>
    struct EndWatchedCall {
        H handler;
        Connection* c;

        void operator()(R result) {
            ClientWatch& w = c->watch;
            if (bool* a = std::exchange(w.answered, nullptr)) *a = true;
            w.call_in_flight = false;
            w.cancel.slot().clear();
            using Outcome = std::variant<R, std::monostate>;
            if (w.ended && w.ec) {  // the client left
                std::move(handler)(Outcome(std::in_place_index<1>));
            } else {
                std::move(handler)(Outcome(std::in_place_index<0>, std::move(result)));
            }
        }
    };

    /// Ends a watched call (see `watched`): the answer ends it, and so does a client that left
    /// (its read ends in an error), which cancels the call. Bytes a pipelining client sends
    /// meanwhile end only the watch.
    struct AnswerOrClientGone {
        asio::cancellation_type_t operator()(const boost::system::error_code& ec,
                                             std::size_t) const noexcept {
            return ec ? asio::cancellation_type::all : asio::cancellation_type::none;
        }
        template <class R>
        asio::cancellation_type_t operator()(const R&) const noexcept {
            return asio::cancellation_type::all;
        }
    };

    /// Runs a gateway call (`start(token)` initiates it; it completes with `R`) while watching
    /// the client of `c` with one read: a client that goes away (end of stream, reset) cancels
    /// the call, and the result is then `monostate`, once the call has answered. Bytes a
    /// pipelining client sends meanwhile are kept for the next request (up to one request's
    /// worth; the connection is then no longer watched). The two run as one parallel group, on
    /// the connection's executor: no coroutine of their own.
    ///
    /// On a worker's loop (`-io-mode workers`, the default) with nothing buffered (the usual
    /// case), the watch is `Connection::watch` instead: a read of its own that the call's end
    /// does not cancel. It stays pending as the read of the next request (`serve` waits on it),
    /// so that a request costs one read, not a watch that is cancelled and then the next
    /// request's read, and no parallel group. Connections on a strand of the I/O threads keep the
    /// parallel group: there this path failed under AddressSanitizer (the strand's state used
    /// after it was freed, as a connection ended), for a reason not yet found.
    ///
    /// That watch is armed once the call has begun: a request started on this thread has its
    /// upstream request sent by then (`ProviderQueue::start_submitted`), so the system call the
    /// arming costs (Asio re-arms the edge-triggered descriptor for a wait) is not on the
    /// request's path. A call answered inside its initiation (an error found before any upstream
    /// call) gets no watch: its coroutine has resumed, and may have moved on, by then.
    ///
    /// That path is no coroutine of its own (the call's completion answers the caller's
    /// coroutine directly): a request costs one coroutine frame less.
    template <class R, class Start>
    awaitable<std::variant<R, std::monostate>> watched(Connection& c, Start start) {
        using Outcome = std::variant<R, std::monostate>;
        if (c.buffer.size() != 0 || c.watch.pending || connection_executors_.empty())
            return watched_racing<R>(c, std::move(start));
        const std::size_t keep = opts_.header_limit + opts_.body_limit;
        return asio::async_initiate<const asio::use_awaitable_t<>&, void(Outcome)>(
            [&c, keep, this, start = std::move(start)](auto handler) mutable {
                ClientWatch& w = c.watch;
                w.ended = false;
                w.ec = {};
                w.call_in_flight = true;
                bool answered = false;
                w.answered = &answered;
                try {
                    start(asio::bind_cancellation_slot(
                        w.cancel.slot(),
                        asio::bind_executor(
                            CountedExecutor{c.stream.get_executor(), &handoffs_},
                            EndWatchedCall<R, decltype(handler)>{std::move(handler), &c})));
                } catch (...) {
                    if (!answered) {
                        w.answered = nullptr;
                        w.call_in_flight = false;
                        w.cancel.slot().clear();
                    }
                    throw;
                }
                if (answered) return;  // `c` may be gone
                w.answered = nullptr;
                w.pending = true;
                c.stream.socket().async_wait(asio::socket_base::wait_read,
                                             WatchRead{&c, std::min<std::size_t>(keep, 65536)});
            },
            asio::use_awaitable);
    }

    /// `watched` with the watching read and the call as one parallel group (or, with a whole
    /// request's worth of bytes buffered already, no watch).
    template <class R, class Start>
    awaitable<std::variant<R, std::monostate>> watched_racing(Connection& c, Start start) {
        using Outcome = std::variant<R, std::monostate>;
        const std::size_t keep = opts_.header_limit + opts_.body_limit;
        if (c.buffer.size() >= keep)
            co_return Outcome(std::in_place_index<0>, co_await start(asio::use_awaitable));
        auto ex = c.stream.get_executor();
        auto call = asio::async_initiate<const asio::deferred_t&, void(R)>(
            [&start, ex, this](auto handler) {
                start(asio::bind_executor(CountedExecutor{ex, &handoffs_}, std::move(handler)));
            },
            asio::deferred);
        const std::size_t room = std::min<std::size_t>(keep - c.buffer.size(), 65536);
        auto [order, ec, n, result] =
            co_await asio::experimental::make_parallel_group(
                c.stream.socket().async_read_some(c.buffer.prepare(room), asio::deferred),
                std::move(call))
                .async_wait(AnswerOrClientGone{}, asio::use_awaitable);
        c.buffer.commit(n);
        if (order[0] == 0 && ec) co_return Outcome(std::in_place_index<1>);  // the client left
        co_return Outcome(std::in_place_index<0>, std::move(result));
    }

    /// The completion of a connection's watching read (`ClientWatch`). The connection outlives
    /// it: its session waits for a pending watch before it ends, and the watch stays pending
    /// until this handler is done (the cancelled call may answer, and the connection end,
    /// inside `emit`).
    ///
    /// The watch waits for the socket to become readable and then reads what is there (the
    /// socket is non-blocking), rather than being an asynchronous read: Asio begins a read
    /// with a speculative `recv`, which, started while the request is in flight, finds nothing
    /// (a system call per request for an `EAGAIN`: Asio skips that first try only after a read
    /// that found the end of the stream). A wait does not try first; it re-arms the descriptor
    /// instead (an `epoll_ctl`), which measured as cheap as the `EAGAIN` or slightly cheaper.
    struct WatchRead {
        Connection* c;
        std::size_t room;  // at most this much is read

        void operator()(boost::system::error_code ec) {
            ClientWatch& w = c->watch;
            if (!ec) {
                const std::size_t n = c->stream.socket().read_some(c->buffer.prepare(room), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) {
                    // Readable, then not (another reader cannot exist: a spurious wake-up).
                    c->stream.socket().async_wait(asio::socket_base::wait_read, *this);
                    return;
                }
                c->buffer.commit(n);
            }
            w.ended = true;
            w.ec = ec;
            if (ec && w.call_in_flight) w.cancel.emit(asio::cancellation_type::all);
            w.pending = false;
            // Last: the resumed coroutine may end the connection before this returns.
            if (w.waiter.has_value()) w.waiter(0);
        }
    };

    /// Waits until the pending watching read of `c` completes (its handler resumes this wait);
    /// with `idle_limit`, for up to the keep-alive idle timeout, after which the idle sweep
    /// cancels the read (which then completes).
    ///
    /// A wait costs no timer of its own: it only sets its deadline. The connection's one sweep
    /// timer, armed at the first such wait and re-armed as it runs (at the deadline of the wait
    /// under way, else a whole idle timeout later), runs about once per idle timeout, not once
    /// per request (a timer armed and cancelled per request took the reactor's lock twice, a
    /// trip through the scheduler, and a coroutine frame).
    awaitable<void> wait_for_watch(Connection& c, bool idle_limit) {
        ClientWatch& w = c.watch;
        if (idle_limit) {
            w.idle_deadline = Clock::now() + opts_.idle_timeout;
            if (!w.sweep_pending) arm_sweep(c, w.idle_deadline);
        } else {
            w.idle_deadline = Clock::time_point::max();
        }
        return suspend_in(w.waiter);
    }

    /// Suspends the calling coroutine until `slot` is called.
    static awaitable<void> suspend_in(Resume& slot) {
        return asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
            [&slot](auto handler) {
                static_assert(sizeof(handler) <= 48, "a coroutine's handler is stored in place");
                slot.emplace([h = std::move(handler)](int) mutable { std::move(h)(); });
            },
            asio::use_awaitable);
    }

    void arm_sweep(Connection& c, Clock::time_point at) {
        c.watch.sweep_pending = true;
        c.idle_timer.expires_at(at);
        c.idle_timer.async_wait(IdleSweep{this, &c});
    }

    /// The idle sweep of a connection whose requests are read by its watch (see `ClientWatch`):
    /// ends a wait for the next request that passed its deadline by cancelling the read, else
    /// runs again at that deadline (or an idle timeout later when no request is awaited). The
    /// connection outlives it: its session cancels the timer and waits for this handler.
    struct IdleSweep {
        Server* server;
        Connection* c;

        void operator()(boost::system::error_code ec) {
            ClientWatch& w = c->watch;
            w.sweep_pending = false;
            if (w.sweep_waiter.has_value()) {  // the session ends (and cancelled the timer)
                w.sweep_waiter(0);
                return;
            }
            if (ec) return;
            const auto now = Clock::now();
            const bool awaited =
                w.waiter.has_value() && w.idle_deadline != Clock::time_point::max();
            if (awaited && now >= w.idle_deadline) {  // the keep-alive time is up
                boost::system::error_code ignored;
                c->stream.socket().cancel(ignored);  // the read ends, and with it the wait
                return;
            }
            server->arm_sweep(*c, awaited ? w.idle_deadline : now + server->opts_.idle_timeout);
        }
    };

    // ---- embeddings and text completions ------------------------------------------------------

    awaitable<Reply> embeddings(Connection& c, const RequestHead& req, Exchange& ex) {
        EmbeddingRequest request;
        Error err;
        if (!parse_embedding_request(req.body, request, err)) co_return error_response(err);
        ex.model = request.model;
        RequestOptions ro;
        ro.timeout = opts_.request_timeout;
        c.client_gone = false;
        auto outcome = co_await watched<EmbeddingResult>(c, [&](auto&& token) {
            return gw_.async_embed(request, ro, std::forward<decltype(token)>(token));
        });
        co_return answer(c, ex, std::move(outcome),
                         [](std::string& body, const EmbeddingResponse& r) {
                             write_embedding_response(body, r);
                         });
    }

    awaitable<Reply> text_completion(Connection& c, const RequestHead& req, Exchange& ex) {
        TextCompletionRequest request;
        Error err;
        if (!parse_text_completion_request(req.body, request, err)) co_return error_response(err);
        ex.model = request.model;
        if (request.stream.value_or(false)) {
            co_return error_response(
                errors::invalid_request("\"stream\": true is not supported by this build of "
                                        "bifrost-http for /v1/completions: send the request "
                                        "without \"stream\"",
                                        "stream"));
        }
        RequestOptions ro;
        ro.timeout = opts_.request_timeout;
        c.client_gone = false;
        auto outcome = co_await watched<TextCompletionResult>(c, [&](auto&& token) {
            return gw_.async_text_complete(request, ro, std::forward<decltype(token)>(token));
        });
        co_return answer(c, ex, std::move(outcome),
                         [](std::string& body, const TextCompletionResponse& r) {
                             write_text_completion_response(body, r);
                         });
    }

    /// The HTTP answer to a request of another kind, as `chat` makes it: 499 when the client
    /// went away first, the error, or the response written by `write`.
    template <class R, class Write>
    Reply answer(Connection& c, Exchange& ex, std::variant<R, std::monostate> outcome,
                 Write write) {
        if (outcome.index() == 1) {
            c.client_gone = true;
            return error_response(errors::cancelled(""));
        }
        R r = std::get<0>(std::move(outcome));
        if (!r.ok()) {
            ex.provider = r.error().provider;
            return error_response(r.error());
        }
        ex.provider = r->extra_fields.provider;
        ex.upstream = r->extra_fields.latency;
        ex.queue_wait = r->extra_fields.queue_wait;
        std::string body = c.take_body();
        write(body, *r);
        return json_response(200, std::move(body));
    }

    /// Completes when the client of `c` goes away (end of stream, reset), and does nothing else
    /// until cancelled (a stream's watch). Bytes a pipelining client sends meanwhile are kept for
    /// the next request (up to one request's worth; beyond that the connection is no longer
    /// watched).
    awaitable<void> watch_client(Connection& c) {
        const std::size_t keep = opts_.header_limit + opts_.body_limit;
        for (;;) {
            if (c.buffer.size() >= keep) {
                // Only cancellation (the answer is ready) ends this wait.
                asio::steady_timer forever(co_await asio::this_coro::executor,
                                           asio::steady_timer::time_point::max());
                co_await forever.async_wait(asio::as_tuple(asio::use_awaitable));
                co_return;
            }
            const std::size_t room = std::min<std::size_t>(keep - c.buffer.size(), 65536);
            auto [ec, n] = co_await c.stream.socket().async_read_some(
                c.buffer.prepare(room), asio::as_tuple(asio::use_awaitable));
            c.buffer.commit(n);
            // Cancelled (the answer is ready), end of stream or reset (the client left), or the
            // socket was closed.
            if (ec) co_return;
        }
    }

    // ---- responses ----------------------------------------------------------------------------

    std::string models_json() const {
        std::string body;
        bifrost::detail::JsonWriter w(body);
        w.begin_object().field("object", "list").key("data").begin_array();
        for (const auto& p : opts_.models) {
            for (const auto& m : p.models) {
                w.begin_object();
                w.key("id").string2(p.provider + "/", m);
                w.field("object", "model").field_int("created", 0).field("owned_by", p.provider);
                w.end_object();
            }
        }
        w.end_array().end_object();
        return body;
    }

    static Reply json_response(int status, std::string body) {
        return Reply{status, "application/json", std::move(body), {}};
    }

    static Reply error_response(const Error& e) {
        std::string body;
        write_error(body, e);
        const int status = e.status >= 400 && e.status < 600 ? e.status : 500;
        return json_response(status, std::move(body));
    }

    static Reply error_response(int status, std::string_view type, std::string message,
                                std::string_view code) {
        Error e = errors::make(status, type, std::move(message));
        e.code.assign(code);
        return error_response(e);
    }

    /// The buffers that answer with `res`: its head, formatted into the connection's reused
    /// string, and its body.
    std::array<asio::const_buffer, 2> reply_buffers(Connection& c, unsigned version,
                                                    const Reply& res, bool keep_alive) const {
        c.head_out.clear();
        http1::write_head(c.head_out, version, res.status, server_name(), res.content_type,
                          res.body.size(), keep_alive, res.allow);
        return {asio::buffer(c.head_out), asio::buffer(res.body)};
    }

    /// Keeps the storage of an answer's body (once written) for the connection's next one.
    static void keep_body(Connection& c, Reply& res) {
        if (res.body.capacity() <= reused_limit) c.spare_body = std::move(res.body);
    }

    /// Writes `res` (`reply_buffers`, in one gather write: `write_all`) and keeps the body's
    /// storage for the next response. False on failure.
    awaitable<bool> write_reply(Connection& c, unsigned version, Reply& res, bool keep_alive) {
        auto buffers = reply_buffers(c, version, res, keep_alive);
        const bool ok = co_await write_all(c, buffers);
        keep_body(c, res);
        co_return ok;
    }

    static const std::string& server_name() {
        static const std::string name = "bifrost-http/" + std::to_string(version_major) + "." +
                                        std::to_string(version_minor) + "." +
                                        std::to_string(version_patch);
        return name;
    }

    GatewayT& gw_;
    Options opts_;
    ServerMetrics metrics_;
    bool auth_required_ = false;

    asio::io_context ioc_;
    asio::ip::tcp::acceptor acceptor_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
        asio::make_work_guard(ioc_)};
    std::vector<std::thread> threads_;
    std::vector<asio::io_context::executor_type> connection_executors_;  // set by start()
    std::size_t next_executor_ = 0;                                      // the accept loop's
    std::mutex join_mutex_;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> handoffs_{0};  // completions being handed to a connection (hand_off)

    std::mutex conn_mutex_;
    std::condition_variable conn_done_;
    std::unordered_map<std::uint64_t, std::shared_ptr<Connection>> connections_;
    std::atomic<std::uint64_t> next_connection_id_{0};
};

}  // namespace bifrost::server
