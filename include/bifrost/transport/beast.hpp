#pragma once
/// \file
/// `transport::Beast`: real HTTP/1.1 and HTTPS to upstreams, on Boost.Beast and Asio with OpenSSL.
///
/// One object per worker thread (the `Transport` contract), so its connection pools need no
/// locks. Per upstream host (scheme, host, port) it keeps a pool of keep-alive connections,
/// bounded by `Options::max_connections_per_host`; a request finding every connection busy waits
/// for one. A pooled connection the server has closed is noticed before reuse or, when the close
/// races the request, by the request failing before any response byte: the request is then sent
/// once more on a fresh connection, so the caller never sees the stale connection.
///
/// HTTPS verifies the server's certificate against the system's CA store plus
/// `network_config.ca_cert_pem`, checks the host name, and sends SNI; `insecure_skip_verify`
/// turns verification off. `proxy_config` (type "http") sends HTTPS through a CONNECT tunnel and
/// plain HTTP in absolute form, with Basic credentials when a username is set.
///
/// `base_url` and `extra_headers` are applied by the providers when they build the request; the
/// transport sends the request as built.

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/detail/base64.hpp>
#include <bifrost/detail/common.hpp>
#include <bifrost/detail/write_now.hpp>
#include <bifrost/transport/http.hpp>
#include <bifrost/transport/http1.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/socket.h>
#include <sys/types.h>
#include <cerrno>
#endif

namespace bifrost::transport {

/// Failures the Beast transport reports besides network errors.
enum class BeastErrc {
    bad_url = 1,        ///< the request URL is not http(s)://host[:port][/path]
    proxy_refused,      ///< the proxy answered the CONNECT with a non-2xx status
    unsupported_proxy,  ///< `proxy_config.type` is neither "http" nor empty
    bad_header,         ///< a request header's name or value holds a line break or a NUL byte
};

}  // namespace bifrost::transport

namespace bifrost::detail {

// Boost's error_category has a protected non-virtual destructor by design (categories are
// never deleted through a base pointer); GCC's -Wnon-virtual-dtor does not know that.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
#endif
class BeastCategory final : public boost::system::error_category {
  public:
    const char* name() const noexcept override { return "bifrost.beast"; }
    std::string message(int ev) const override {
        switch (static_cast<transport::BeastErrc>(ev)) {
            case transport::BeastErrc::bad_url:
                return "invalid upstream URL";
            case transport::BeastErrc::proxy_refused:
                return "the proxy refused to open a tunnel";
            case transport::BeastErrc::unsupported_proxy:
                return "unsupported proxy type (only \"http\" proxies are supported)";
            case transport::BeastErrc::bad_header:
                return "an upstream request header holds a line break or a NUL byte (a key or "
                       "a configured header value copied with its newline?)";
        }
        return "unknown error";
    }
};
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

inline const boost::system::error_category& beast_category() noexcept {
    static const BeastCategory category;
    return category;
}

/// The pieces of an absolute http(s) URL (views into it).
struct UrlParts {
    bool tls = false;
    std::string_view host;       ///< without IPv6 brackets
    std::string_view port;       ///< explicit or the scheme's default
    std::string_view authority;  ///< host[:port] as written (the Host header)
    std::string_view target;     ///< path and query, "/" when empty
};

/// One pass over the URL (it is parsed for every request: `find_first_of` would search the
/// delimiter set once per character).
inline std::optional<UrlParts> parse_url(std::string_view url) noexcept {
    UrlParts u;
    if (url.starts_with("https://")) {
        u.tls = true;
        url.remove_prefix(8);
    } else if (url.starts_with("http://")) {
        url.remove_prefix(7);
    } else {
        return std::nullopt;
    }
    std::size_t end = 0;  // of the authority
    std::size_t colon = std::string_view::npos;
    while (end < url.size()) {
        const char c = url[end];
        if (c == '/' || c == '?' || c == '#') break;
        if (c == '@') return std::nullopt;  // no userinfo
        if (c == ':') colon = end;          // the last one: a port follows (or an IPv6 part)
        ++end;
    }
    u.authority = url.substr(0, end);
    if (end == url.size()) {
        u.target = "/";
    } else {
        if (url[end] != '/') return std::nullopt;  // "?q" or "#f" without a path
        u.target = url.substr(end);
        if (const auto hash = u.target.find('#'); hash != std::string_view::npos)
            u.target = u.target.substr(0, hash);
    }
    std::string_view hp = u.authority;
    if (!hp.empty() && hp.front() == '[') {
        const auto close = hp.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        u.host = hp.substr(1, close - 1);
        hp.remove_prefix(close + 1);
        if (!hp.empty() && hp.front() != ':') return std::nullopt;
    } else {
        const auto first = hp.find(':');
        if (first != colon) return std::nullopt;  // two colons outside brackets
        u.host = hp.substr(0, first);
        hp = first == std::string_view::npos ? std::string_view() : hp.substr(first);
    }
    if (!hp.empty()) {
        hp.remove_prefix(1);  // ':'
        if (hp.empty() || hp.size() > 5) return std::nullopt;
        for (const char c : hp)
            if (c < '0' || c > '9') return std::nullopt;
        u.port = hp;
    } else {
        u.port = u.tls ? "443" : "80";
    }
    if (u.host.empty()) return std::nullopt;
    return u;
}

inline bool is_ip_literal(std::string_view host) {
    boost::system::error_code ec;
    (void)asio::ip::make_address(std::string(host), ec);
    return !ec;
}

}  // namespace bifrost::detail

namespace bifrost::transport {

inline boost::system::error_code make_error_code(BeastErrc e) noexcept {
    return {static_cast<int>(e), detail::beast_category()};
}

}  // namespace bifrost::transport

template <>
struct boost::system::is_error_code_enum<bifrost::transport::BeastErrc> : std::true_type {};

namespace bifrost::transport {

/// HTTP/1.1 and HTTPS client transport with per-host keep-alive pools (see the file comment).
class Beast {
  public:
    struct Options {
        /// Most connections (open, in use or being opened) to one host from this transport
        /// object, i.e. per worker thread. Requests beyond it wait for a free connection.
        std::size_t max_connections_per_host = 256;
        /// Bound on opening a connection: TCP connect, proxy tunnel and TLS handshake together.
        std::chrono::milliseconds connect_timeout{10'000};
        /// Bound on writing a request and reading its response; 0: none (the gateway's
        /// per-request deadline still applies and cancels the exchange).
        std::chrono::milliseconds request_timeout{0};
        /// A pooled connection idle for longer is closed instead of reused.
        std::chrono::milliseconds idle_timeout{90'000};
        /// Largest response body accepted (for streamed responses: of an error body; a 2xx
        /// stream is not collected, so it has no size limit).
        std::size_t max_response_bytes = std::size_t(64) << 20;
        /// A streamed response that sends nothing for this long fails with `timed_out`; 0: no
        /// limit. It also bounds the wait for a stream's response head unless `request_timeout`
        /// is set, which then bounds writing the request and reading the head.
        std::chrono::milliseconds stream_idle_timeout{60'000};
        std::string user_agent = "bifrost-cpp";
    };

    Beast(asio::io_context::executor_type ex, const ProviderConfig& config, const Options& options)
        : ex_(ex), options_(options), ssl_(asio::ssl::context::tls_client) {
        const NetworkConfig& net = config.network_config;
        insecure_ = net.insecure_skip_verify;
        if (options_.max_connections_per_host == 0) options_.max_connections_per_host = 1;
        SSL_CTX_set_min_proto_version(ssl_.native_handle(), TLS1_2_VERSION);
        if (insecure_) {
            ssl_.set_verify_mode(asio::ssl::verify_none);
        } else {
            ssl_.set_default_verify_paths();
            if (!net.ca_cert_pem.empty())
                ssl_.add_certificate_authority(asio::buffer(net.ca_cert_pem));
            ssl_.set_verify_mode(asio::ssl::verify_peer);
        }
        if (config.proxy_config && !config.proxy_config->url.empty()) {
            const ProxyConfig& p = *config.proxy_config;
            if (!p.type.empty() && !iequals(p.type, "http")) {
                proxy_error_ = BeastErrc::unsupported_proxy;
            } else {
                proxy_url_ = p.url;
                auto u = detail::parse_url(proxy_url_);
                if (!u || u->tls) {
                    proxy_error_ = BeastErrc::unsupported_proxy;
                } else {
                    proxy_ = u;
                    if (!p.username.empty()) {
                        std::string cred = p.username;
                        cred.push_back(':');
                        cred.append(p.password.reveal());
                        proxy_auth_ = Secret("Basic " + detail::base64_encode(cred));
                    }
                }
            }
        }
    }

    Beast(const Beast&) = delete;
    Beast& operator=(const Beast&) = delete;

    /// Closes every pooled connection. Precondition: no exchange is in flight.
    ~Beast() = default;

    /// Sends `request` and reads the answer into `response` (see `Transport`). The handler runs
    /// on this transport's executor, exactly once; terminal (or partial, or total) cancellation
    /// through its slot closes the connection and ends the exchange with `operation_aborted`.
    template <class Handler>
    void async_send(const HttpRequest& request, HttpResponse& response, Handler&& handler) {
        using H = std::decay_t<Handler>;
        response.clear();
        const auto url = split_url(request.url);
        if (!url || proxy_error_) {
            boost::system::error_code ec =
                proxy_error_ ? make_error_code(*proxy_error_) : make_error_code(BeastErrc::bad_url);
            std::forward<Handler>(handler)(ec);
            return;
        }
        HostPool& host = host_for(*url);
        using Alloc = typename std::allocator_traits<
            asio::associated_allocator_t<H>>::template rebind_alloc<Op<H>>;
        Alloc alloc(asio::get_associated_allocator(handler));
        Op<H>* op = std::allocator_traits<Alloc>::allocate(alloc, 1);
        try {
            std::allocator_traits<Alloc>::construct(alloc, op, *this, host, *url, request, response,
                                                    H(std::forward<Handler>(handler)));
        } catch (...) {
            std::allocator_traits<Alloc>::deallocate(alloc, op, 1);
            throw;
        }
        op->start();
    }

    /// Sends `request` and delivers the body of a 2xx answer to `on_body` as it arrives (see
    /// `StreamingTransport`): the response head is read first, then the (de-chunked) body piece
    /// by piece, each read bounded by `Options::stream_idle_timeout`. A non-2xx answer is read
    /// whole into `response.body`. The connection goes back to the keep-alive pool only when the
    /// body ended cleanly; `on_body` returning false or cancellation closes it.
    template <class OnBody, class Handler>
    void async_send_stream(const HttpRequest& request, HttpResponse& response, OnBody&& on_body,
                           Handler&& handler) {
        using H = std::decay_t<Handler>;
        using S = std::decay_t<OnBody>;
        response.clear();
        const auto url = split_url(request.url);
        if (!url || proxy_error_) {
            boost::system::error_code ec =
                proxy_error_ ? make_error_code(*proxy_error_) : make_error_code(BeastErrc::bad_url);
            std::forward<Handler>(handler)(ec);
            return;
        }
        HostPool& host = host_for(*url);
        using Alloc = typename std::allocator_traits<
            asio::associated_allocator_t<H>>::template rebind_alloc<Op<H, S>>;
        Alloc alloc(asio::get_associated_allocator(handler));
        Op<H, S>* op = std::allocator_traits<Alloc>::allocate(alloc, 1);
        try {
            std::allocator_traits<Alloc>::construct(alloc, op, *this, host, *url, request, response,
                                                    H(std::forward<Handler>(handler)),
                                                    S(std::forward<OnBody>(on_body)));
        } catch (...) {
            std::allocator_traits<Alloc>::deallocate(alloc, op, 1);
            throw;
        }
        op->start();
    }

  private:
    /// The body sink of a plain (not streamed) exchange.
    struct NoSink {};

    using Clock = std::chrono::steady_clock;
    using tcp = asio::ip::tcp;
    using ResponseParser = boost::beast::http::response_parser<boost::beast::http::string_body>;

    /// Parses a whole response straight into the caller's `HttpResponse`: the status, each
    /// field appended to its reused slots, the body appended (any framing: Beast's parser does
    /// the HTTP). Unlike `ResponseParser` it keeps no header of its own, so a response costs no
    /// allocation once the caller's storage has grown to its usual size.
    class ResponseInto final : public boost::beast::http::basic_parser<false> {
      public:
        explicit ResponseInto(HttpResponse& res) : res_(res) {}

      private:
        using string_view = boost::beast::string_view;
        using error_code = boost::beast::error_code;
        void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                             error_code&) override {}
        void on_response_impl(int code, string_view, int, error_code&) override {
            res_.status = code;
        }
        void on_field_impl(boost::beast::http::field, string_view name, string_view value,
                           error_code&) override {
            res_.headers.add(name, value);
        }
        void on_header_impl(error_code&) override {}
        void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
            if (length) res_.body.reserve(static_cast<std::size_t>(*length));  // within body_limit
        }
        std::size_t on_body_impl(string_view body, error_code&) override {
            res_.body.append(body.data(), body.size());
            return body.size();
        }
        void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
        std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
            res_.body.append(body.data(), body.size());
            return body.size();
        }
        void on_finish_impl(error_code&) override {}

        HttpResponse& res_;
    };

    /// One connection to a host (directly or through the proxy), plain or TLS.
    struct Connection {
        Connection(asio::io_context::executor_type ex, asio::ssl::context* ssl) : resolver(ex) {
            if (ssl)
                tls.emplace(ex, *ssl);
            else
                plain.emplace(ex);
        }

        boost::beast::tcp_stream& tcp_stream() { return tls ? tls->next_layer() : *plain; }

        template <class F>
        void with_stream(F&& f) {
            if (tls)
                f(*tls);
            else
                f(*plain);
        }

        void close() noexcept { tcp_stream().close(); }

        std::optional<boost::beast::tcp_stream> plain;
        std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls;
        tcp::resolver resolver;
        boost::beast::flat_buffer buffer;
        std::string request_head;  // the request's head, formatted by `send`, capacity reused
        std::optional<ResponseParser> parser;  // a stream's
        std::optional<ResponseInto> whole;     // a whole response's
        std::optional<boost::beast::http::response_parser<boost::beast::http::empty_body>>
            tunnel_parser;
        std::string tunnel_request;
        Clock::time_point idle_since{};
    };

    struct HostPool;

    /// What the pool needs from a request waiting for a connection.
    class Waiter {
      public:
        /// Reuse this pooled connection.
        virtual void granted(std::unique_ptr<Connection> c) = 0;
        /// A connection slot was freed for you: open a new connection.
        virtual void open_granted() = 0;

      protected:
        ~Waiter() = default;
    };

    struct HostPool {
        bool tls = false;
        std::string host, port, authority;
        std::vector<std::unique_ptr<Connection>> idle;  // most recently used last
        std::size_t open = 0;                           // idle + in use + being opened
        std::deque<Waiter*> waiters;
    };

    /// `url` split by `parse_url`, through a one-entry cache (a provider's requests mostly go
    /// to one URL): the parts are views into `url` itself, as `parse_url` gives them.
    std::optional<detail::UrlParts> split_url(std::string_view url) {
        if (url != last_url_) {
            last_url_.assign(url);
            last_parts_ = detail::parse_url(last_url_);
        }
        if (!last_parts_) return std::nullopt;
        const char* const base = last_url_.data();
        const auto rebase = [&](std::string_view v) {
            const std::less<const char*> before;
            const bool inside =
                !before(v.data(), base) && !before(base + last_url_.size(), v.data());
            // Else a literal ("/", "443", "80").
            return inside ? url.substr(static_cast<std::size_t>(v.data() - base), v.size()) : v;
        };
        detail::UrlParts u = *last_parts_;
        u.host = rebase(u.host);
        u.port = rebase(u.port);
        u.authority = rebase(u.authority);
        u.target = rebase(u.target);
        return u;
    }

    HostPool& host_for(const detail::UrlParts& u) {
        for (auto& h : hosts_)
            if (h->tls == u.tls && h->port == u.port && h->host == u.host) return *h;
        auto h = std::make_unique<HostPool>();
        h->tls = u.tls;
        h->host.assign(u.host);
        h->port.assign(u.port);
        h->authority.assign(u.authority);
        hosts_.push_back(std::move(h));
        return *hosts_.back();
    }

    /// A connection back in the pool for less than this is reused without asking the kernel
    /// whether the server closed it meanwhile: under load connections come back every few
    /// microseconds, and a close in so short a window is left to the stale-connection retry.
    static constexpr std::chrono::milliseconds peek_after{250};

    /// Whether a pooled connection still looks alive (not idle too long, not closed by the
    /// server). A close racing this check is caught by the stale-connection retry.
    bool usable(Connection& c) const {
        const auto idle = Clock::now() - c.idle_since;
        if (idle > options_.idle_timeout) return false;
        if (c.buffer.size() != 0) return false;  // bytes nobody asked for
        if (idle < peek_after) return true;
#if defined(__unix__) || defined(__APPLE__)
        char byte;
        const auto n =
            ::recv(c.tcp_stream().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) return false;             // the server closed it
        if (n > 0) return c.tls.has_value();  // TLS may carry records between requests
        return errno == EAGAIN || errno == EWOULDBLOCK;
#else
        return true;
#endif
    }

    /// Takes a finished exchange's connection back: to the first waiter, or to the idle list.
    void give_back(HostPool& h, std::unique_ptr<Connection> c) {
        if (!h.waiters.empty()) {
            Waiter* w = h.waiters.front();
            h.waiters.pop_front();
            w->granted(std::move(c));
            return;
        }
        c->idle_since = Clock::now();
        h.idle.push_back(std::move(c));
    }

    /// Closes a connection and frees its slot, handing the slot to the first waiter.
    void discard(HostPool& h, std::unique_ptr<Connection> c) {
        if (c) c->close();
        c.reset();
        if (!h.waiters.empty()) {
            Waiter* w = h.waiters.front();
            h.waiters.pop_front();
            w->open_granted();  // keeps the slot
            return;
        }
        --h.open;
    }

    template <class Handler, class Sink = NoSink>
    class Op;

    asio::io_context::executor_type ex_;
    Options options_;
    asio::ssl::context ssl_;
    bool insecure_ = false;
    std::string proxy_url_;
    std::optional<detail::UrlParts> proxy_;       // views into proxy_url_
    std::string last_url_;                        // the URL `split_url` split last
    std::optional<detail::UrlParts> last_parts_;  // its parts, views into `last_url_`
    std::optional<BeastErrc> proxy_error_;
    Secret proxy_auth_;  // "Basic ..." or empty
    std::vector<std::unique_ptr<HostPool>> hosts_;
};

/// One exchange: get a connection (pooled, new, or wait for one), write, read, give it back.
/// With a `Sink` other than `NoSink`, a 2xx body is streamed to it instead of collected.
template <class Handler, class Sink>
class Beast::Op final : public Beast::Waiter {
  public:
    Op(Beast& t, HostPool& host, const detail::UrlParts& url, const HttpRequest& req,
       HttpResponse& res, Handler&& h, Sink&& sink = Sink{})
        : t_(t),
          host_(host),
          url_(url),
          req_(req),
          res_(res),
          handler_(std::move(h)),
          sink_(std::move(sink)) {}

    void start() {
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.template emplace<CancelHandler>(this);
        acquire(false);
    }

    void granted(std::unique_ptr<Connection> c) override {
        conn_ = std::move(c);
        reused_ = true;
        send();
    }

    void open_granted() override { open_new(); }

  private:
    enum class Phase { waiting, resolving, connecting, tunnel, handshake, writing, reading };

    struct CancelHandler {
        Op* op;
        void operator()(asio::cancellation_type type) {
            if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                         asio::cancellation_type::total)) != asio::cancellation_type::none)
                op->cancel();
        }
    };

    using Allocator = asio::associated_allocator_t<Handler>;

    template <class F>
    auto wrap(F&& f) {
        return asio::bind_allocator(asio::get_associated_allocator(handler_), std::forward<F>(f));
    }

    void acquire(bool fresh_only) {
        if (!fresh_only) {
            while (!host_.idle.empty()) {
                std::unique_ptr<Connection> c = std::move(host_.idle.back());
                host_.idle.pop_back();
                if (t_.usable(*c)) {
                    granted(std::move(c));
                    return;
                }
                c->close();
                --host_.open;
            }
        }
        if (host_.open < t_.options_.max_connections_per_host) {
            ++host_.open;
            open_new();
            return;
        }
        phase_ = Phase::waiting;
        host_.waiters.push_back(this);
    }

    void open_new() {
        conn_ = std::make_unique<Connection>(t_.ex_, host_.tls ? &t_.ssl_ : nullptr);
        reused_ = false;
        phase_ = Phase::resolving;
        const bool via_proxy = t_.proxy_.has_value();
        const std::string_view h = via_proxy ? t_.proxy_->host : std::string_view(host_.host);
        const std::string_view p = via_proxy ? t_.proxy_->port : std::string_view(host_.port);
        boost::system::error_code ec;
        const auto address = asio::ip::make_address(h, ec);
        if (!ec) {  // an IP address: no resolver round trip
            unsigned short port = 0;
            for (char c : p)
                port = static_cast<unsigned short>(port * 10 + (c - '0'));
            connect(tcp::endpoint(address, port));
            return;
        }
        conn_->resolver.async_resolve(
            h, p, wrap([this](boost::system::error_code e, tcp::resolver::results_type r) {
                if (e || cancelled_) return fail(e);
                phase_ = Phase::connecting;
                auto& s = conn_->tcp_stream();
                s.expires_after(t_.options_.connect_timeout);
                s.async_connect(r, wrap([this](boost::system::error_code e2, const tcp::endpoint&) {
                                    on_connected(e2);
                                }));
            }));
    }

    void connect(const tcp::endpoint& ep) {
        phase_ = Phase::connecting;
        auto& s = conn_->tcp_stream();
        s.expires_after(t_.options_.connect_timeout);
        s.async_connect(ep, wrap([this](boost::system::error_code ec) { on_connected(ec); }));
    }

    void on_connected(boost::system::error_code ec) {
        if (ec || cancelled_) return fail(ec);
        boost::system::error_code ignored;
        conn_->tcp_stream().socket().set_option(tcp::no_delay(true), ignored);
        if (!host_.tls) conn_->tcp_stream().socket().non_blocking(true, ignored);  // write_now
        if (t_.proxy_ && host_.tls) return open_tunnel();
        if (host_.tls) return handshake();
        send();
    }

    void open_tunnel() {
        phase_ = Phase::tunnel;
        std::string& r = conn_->tunnel_request;
        r.assign("CONNECT ").append(host_.host).append(":").append(host_.port);
        r.append(" HTTP/1.1\r\nHost: ").append(host_.host).append(":").append(host_.port);
        r.append("\r\n");
        if (!t_.proxy_auth_.empty())
            r.append("Proxy-Authorization: ").append(t_.proxy_auth_.reveal()).append("\r\n");
        r.append("\r\n");
        asio::async_write(conn_->tcp_stream(), asio::buffer(r),
                          wrap([this](boost::system::error_code ec, std::size_t) {
                              if (ec || cancelled_) return fail(ec);
                              auto& p = conn_->tunnel_parser.emplace();
                              p.skip(true);  // a 2xx answer to CONNECT has no body
                              boost::beast::http::async_read(
                                  conn_->tcp_stream(), conn_->buffer, p,
                                  wrap([this](boost::system::error_code e, std::size_t) {
                                      if (e || cancelled_) return fail(e);
                                      const unsigned status =
                                          conn_->tunnel_parser->get().result_int();
                                      conn_->tunnel_parser.reset();
                                      if (status < 200 || status >= 300)
                                          return fail(make_error_code(BeastErrc::proxy_refused));
                                      handshake();
                                  }));
                          }));
    }

    void handshake() {
        phase_ = Phase::handshake;
        auto& s = *conn_->tls;
        if (!detail::is_ip_literal(host_.host)) {
            // SNI (not sent for IP addresses, as RFC 6066 says).
            SSL_ctrl(s.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(host_.host.c_str()));
        }
        if (!t_.insecure_) s.set_verify_callback(asio::ssl::host_name_verification(host_.host));
        s.async_handshake(asio::ssl::stream_base::client,
                          wrap([this](boost::system::error_code ec) {
                              if (ec || cancelled_) return fail(ec);
                              send();
                          }));
    }

    /// Formats the request head into the connection's reused string and writes it with the
    /// body in one gather write. The transport owns the framing: a provider's `Host`,
    /// `Content-Length`, `Transfer-Encoding` or `Connection` field is not sent (the connection
    /// is kept alive, the body's length is sent, as Beast's `prepare_payload` did).
    void send() {
        phase_ = Phase::writing;
        std::string& h = conn_->request_head;
        h.clear();
        const bool absolute = t_.proxy_ && !host_.tls;
        h.append(to_string(req_.method)).push_back(' ');
        h.append(absolute ? std::string_view(req_.url) : url_.target);
        h.append(" HTTP/1.1\r\nHost: ").append(host_.authority);
        h.append("\r\nUser-Agent: ").append(t_.options_.user_agent);
        bool clean = field_ok(t_.options_.user_agent);
        for (const auto& f : req_.headers) {
            const std::string_view name = f.name;
            if (iequals(name, "host") || iequals(name, "content-length") ||
                iequals(name, "transfer-encoding") || iequals(name, "connection"))
                continue;
            clean = clean && !name.empty() && field_ok(name) && field_ok(f.value);
            h.append("\r\n").append(name).append(": ").append(f.value);
        }
        if (absolute && !t_.proxy_auth_.empty())
            h.append("\r\nProxy-Authorization: ").append(t_.proxy_auth_.reveal());
        if (!req_.body.empty() || req_.method != HttpMethod::get) {
            char digits[24];
            const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, req_.body.size());
            h.append("\r\nContent-Length: ").append(digits, static_cast<std::size_t>(end - digits));
        }
        h.append("\r\n\r\n");
        if (!clean) {
            h.clear();  // it may hold a credential
            return fail(make_error_code(BeastErrc::bad_header));
        }
        auto& s = conn_->tcp_stream();
        if (t_.options_.request_timeout.count() > 0)
            s.expires_after(t_.options_.request_timeout);
        else
            s.expires_never();
        std::array<asio::const_buffer, 2> buffers{asio::buffer(h), asio::buffer(req_.body)};
        // In place when the socket takes it all (plain TCP; the rest, if any, is written below).
        if (!conn_->tls && detail::write_now(s.socket(), buffers)) return read();
        conn_->with_stream([&](auto& stream) {
            asio::async_write(stream, buffers,
                              wrap([this](boost::system::error_code ec, std::size_t) {
                                  if (ec || cancelled_) return failed_exchange(ec, false);
                                  read();
                              }));
        });
    }

    /// A header name or value that cannot break the head: no CR, LF or NUL. (One test per
    /// byte: a `find_first_of` of three characters costs three.)
    static bool field_ok(std::string_view v) noexcept {
        constexpr std::uint32_t bad = (1u << '\0') | (1u << '\n') | (1u << '\r');
        unsigned seen = 0;
        for (const char ch : v) {
            const auto c = static_cast<unsigned char>(ch);
            seen |= c < 32 ? (bad >> c) & 1u : 0u;
        }
        return seen == 0;
    }

    static constexpr bool streaming = !std::is_same_v<Sink, NoSink>;

    /// The most a response head may take, on either path.
    static constexpr std::size_t head_limit = 64 * 1024;
    /// The largest whole response the fast path collects in the connection's buffer before it
    /// hands over to Beast, which appends a longer body to the response as it arrives.
    static constexpr std::size_t fast_limit = 64 * 1024;
    /// How many reads of the socket the fast path waits through before it hands over to Beast,
    /// which keeps its place: the fast parser starts again from the first byte at each read, so
    /// an answer that arrives in many small pieces would otherwise cost it time in their square.
    static constexpr int fast_reads = 8;

    void read() {
        namespace http = boost::beast::http;
        if constexpr (streaming) {
            read_head();
            return;
        }
        phase_ = Phase::reading;
        res_.clear();  // a retry on a fresh connection starts over
        conn_->whole.reset();
        fast_waits_ = 0;
        if (!conn_->tls && t_.options_.request_timeout.count() == 0) return read_plain();
        ResponseInto& p = to_beast();
        conn_->with_stream([&](auto& stream) {
            http::async_read(stream, conn_->buffer, p,
                             wrap([this](boost::system::error_code ec, std::size_t) {
                                 if (ec || cancelled_) return failed_exchange(ec, answer_begun());
                                 done();
                             }));
        });
    }

    /// Hands the answer to Beast's parser (it starts over from the first byte of the answer).
    ResponseInto& to_beast() {
        res_.clear();
        ResponseInto& p = conn_->whole.emplace(res_);
        p.body_limit(t_.options_.max_response_bytes);
        p.header_limit(static_cast<std::uint32_t>(head_limit));
        return p;
    }

    /// Puts what is buffered into Beast's parser, up to the end of the answer. A parser that
    /// needs more is no error.
    boost::system::error_code feed_beast() {
        namespace http = boost::beast::http;
        ResponseInto& p = *conn_->whole;
        boost::beast::flat_buffer& b = conn_->buffer;
        boost::system::error_code ec;
        while (b.size() > 0 && !p.is_done()) {
            const std::size_t n = p.put(b.data(), ec);
            b.consume(n);
            if (ec == http::error::need_more) return {};
            if (ec || n == 0) break;
        }
        return ec;
    }

    /// Whether any byte of the answer has arrived (a failure after that is not retried).
    bool answer_begun() const {
        return conn_->whole ? conn_->whole->got_some() : conn_->buffer.size() > 0;
    }

    /// A whole response on plain TCP with no `request_timeout` (so no stream timer to arm).
    ///
    /// What is buffered is first read by the fast parser (`transport/http1.hpp`): a response
    /// with a `Content-Length` body that is all in the buffer is taken from it in place, the
    /// head's fields straight into the response and the body with one copy. Anything that
    /// parser does not take, and an answer longer than `fast_limit`, goes to Beast's parser,
    /// from its first byte.
    ///
    /// The socket is read with one plain `async_read_some` at a time, not Beast's four layers of
    /// composed operations. A read of the socket's own (which right after the request finds
    /// nothing) and a wait for readability would cost two system calls, the `EAGAIN` and the
    /// re-arming of the descriptor a wait takes; Asio's read makes the one attempt itself and
    /// then waits with no system call. The outcomes are Beast's: a connection that ends before
    /// any byte is `end_of_stream` (retried on a fresh connection when it was a reused one), one
    /// that ends mid-answer what Beast says of the bytes it had (`partial_message`).
    void read_plain() {
        namespace http = boost::beast::http;
        boost::beast::flat_buffer& b = conn_->buffer;
        if (!conn_->whole && b.size() > 0) {
            const std::string_view data(static_cast<const char*>(b.data().data()), b.size());
            http1::ResponseFrame frame;
            const http1::Parse r = http1::parse_response_head(
                data, head_limit, t_.options_.max_response_bytes, res_, frame);
            if (r == http1::Parse::complete && data.size() >= frame.size()) {
                res_.body.assign(data.data() + frame.head_size, frame.content_length);
                b.consume(frame.size());
                return finish(frame.keep_alive);
            }
            // Wait for more of a head, or of a body that fits, for a few reads; else Beast.
            const bool wait = r == http1::Parse::incomplete ||
                              (r == http1::Parse::complete && frame.size() <= fast_limit);
            if (!wait || ++fast_waits_ > fast_reads) to_beast();
        }
        if (conn_->whole) {
            if (const auto ec = feed_beast()) return failed_exchange(ec, true);
            if (conn_->whole->is_done()) return done();
        }
        const std::size_t room =
            std::min<std::size_t>(std::max<std::size_t>(b.capacity() - b.size(), 4096), 65536);
        conn_->tcp_stream().socket().async_read_some(
            b.prepare(room), wrap([this](boost::system::error_code e, std::size_t n) {
                if (cancelled_) return failed_exchange(e, answer_begun());
                if (e == asio::error::eof) {
                    if (!answer_begun()) return failed_exchange(http::error::end_of_stream, false);
                    if (!conn_->whole) {  // Beast says what the bytes that came amount to
                        to_beast();
                        if (const auto ec = feed_beast()) return failed_exchange(ec, true);
                        if (conn_->whole->is_done()) return done();
                    }
                    ResponseInto& parser = *conn_->whole;
                    parser.put_eof(e);
                    if (e) return failed_exchange(e, true);
                    return done();
                }
                if (e) return failed_exchange(e, answer_begun());
                conn_->buffer.commit(n);
                read_plain();
            }));
    }

    /// Streams: the head first; then a 2xx body piece by piece, anything else whole. Without a
    /// `request_timeout`, the stream's idle limit also bounds the wait for the head, so an
    /// upstream that takes the request and never answers cannot hold the stream forever.
    void read_head() {
        namespace http = boost::beast::http;
        phase_ = Phase::reading;
        ResponseParser& p = conn_->parser.emplace();
        p.body_limit(t_.options_.max_response_bytes);
        p.header_limit(static_cast<std::uint32_t>(head_limit));
        if (t_.options_.request_timeout.count() == 0 && t_.options_.stream_idle_timeout.count() > 0)
            conn_->tcp_stream().expires_after(t_.options_.stream_idle_timeout);
        conn_->with_stream([&](auto& stream) {
            http::async_read_header(
                stream, conn_->buffer, p, wrap([this](boost::system::error_code ec, std::size_t) {
                    if (ec || cancelled_) return failed_exchange(ec, conn_->parser->got_some());
                    ResponseParser& parser = *conn_->parser;
                    const auto& msg = parser.get();
                    res_.status = static_cast<int>(msg.result_int());
                    for (const auto& f : msg)
                        res_.headers.add(f.name_string(), f.value());
                    if (res_.status >= 200 && res_.status < 300) {
                        parser.body_limit(boost::none);
                        return read_body_piece();
                    }
                    conn_->with_stream([&](auto& s) {
                        http::async_read(s, conn_->buffer, parser,
                                         wrap([this](boost::system::error_code e, std::size_t) {
                                             if (e || cancelled_) return fail(e);
                                             done();
                                         }));
                    });
                }));
        });
    }

    void read_body_piece() {
        namespace http = boost::beast::http;
        ResponseParser& p = *conn_->parser;
        if (p.is_done()) return done();
        auto& s = conn_->tcp_stream();
        if (t_.options_.stream_idle_timeout.count() > 0)
            s.expires_after(t_.options_.stream_idle_timeout);
        else
            s.expires_never();
        conn_->with_stream([&](auto& stream) {
            http::async_read_some(
                stream, conn_->buffer, p, wrap([this](boost::system::error_code ec, std::size_t) {
                    if (cancelled_) return fail(ec);
                    std::string& body = conn_->parser->get().body();
                    if (!body.empty()) {
                        const bool more = sink_(std::string_view(body));
                        body.clear();
                        if (!more || cancelled_) {
                            cancelled_ = true;
                            return fail(asio::error::operation_aborted);
                        }
                    }
                    if (ec == http::error::end_of_stream && conn_->parser->is_done()) ec = {};
                    if (ec) {
                        if (ec == boost::beast::error::timeout) ec = asio::error::timed_out;
                        return fail(ec);
                    }
                    read_body_piece();
                }));
        });
    }

    /// A write or read failed. On a reused connection, before any byte of the answer, and not
    /// by timeout or cancellation, the server had closed it: try once more on a fresh one.
    void failed_exchange(boost::system::error_code ec, bool got_response_bytes) {
        if (conn_->parser) {
            res_.body.swap(conn_->parser->get().body());
            res_.body.clear();
        }
        if constexpr (!streaming) {
            conn_->whole.reset();
            res_.clear();  // what arrived of a failed answer is not an answer
        }
        if (reused_ && !retried_ && !cancelled_ && !got_response_bytes &&
            ec != boost::beast::error::timeout && ec != asio::error::operation_aborted) {
            retried_ = true;
            std::unique_ptr<Connection> stale = std::move(conn_);
            stale->close();
            stale.reset();
            --host_.open;
            acquire(true);
            return;
        }
        fail(ec);
    }

    void done() {
        bool keep = false;
        if (conn_->whole) {  // parsed into `res_` already
            keep = conn_->whole->keep_alive() && !conn_->whole->need_eof();
            conn_->whole.reset();
        } else {  // a stream: its head was taken when it arrived
            auto& msg = conn_->parser->get();
            res_.body.swap(msg.body());
            keep = msg.keep_alive() && !conn_->parser->need_eof();
            conn_->parser.reset();
        }
        finish(keep);
    }

    /// The answer is whole: the connection goes back to the pool when it may carry another.
    void finish(bool keep) {
        if (keep)
            t_.give_back(host_, std::move(conn_));
        else
            t_.discard(host_, std::move(conn_));
        complete({});
    }

    void fail(boost::system::error_code ec) {
        if (cancelled_) ec = asio::error::operation_aborted;
        if (ec == boost::beast::error::timeout) ec = asio::error::timed_out;
        if (conn_) {
            conn_->parser.reset();
            conn_->whole.reset();
            t_.discard(host_, std::move(conn_));
        }
        complete(ec);
    }

    void cancel() {
        if (cancelled_) return;
        cancelled_ = true;
        switch (phase_) {
            case Phase::waiting:
                host_.waiters.erase(std::find(host_.waiters.begin(), host_.waiters.end(),
                                              static_cast<Waiter*>(this)));
                // Not inline: the canceller may be inside its own bookkeeping.
                asio::post(t_.ex_, wrap([this] { complete(asio::error::operation_aborted); }));
                break;
            case Phase::resolving:
                conn_->resolver.cancel();
                break;
            default:
                conn_->close();  // the pending operation ends with an error
                break;
        }
    }

    void complete(boost::system::error_code ec) {
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.clear();
        Handler h(std::move(handler_));
        using Alloc = typename std::allocator_traits<Allocator>::template rebind_alloc<Op>;
        Alloc alloc(asio::get_associated_allocator(h));
        std::allocator_traits<Alloc>::destroy(alloc, this);
        std::allocator_traits<Alloc>::deallocate(alloc, this, 1);
        std::move(h)(ec);
    }

    Beast& t_;
    HostPool& host_;
    detail::UrlParts url_;
    const HttpRequest& req_;
    HttpResponse& res_;
    Handler handler_;
    [[no_unique_address]] Sink sink_;
    std::unique_ptr<Connection> conn_;
    Phase phase_ = Phase::waiting;
    int fast_waits_ = 0;  // reads the fast path has waited through (see `fast_reads`)
    bool reused_ = false;
    bool retried_ = false;
    bool cancelled_ = false;
};

static_assert(StreamingTransport<Beast>);

}  // namespace bifrost::transport
