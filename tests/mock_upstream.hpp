#pragma once
// An in-tree upstream speaking OpenAI's API over loopback, for integration tests and benchmarks:
// `MockUpstream` (HTTP or HTTPS with a certificate generated at start) and `MockProxy` (an HTTP
// proxy: CONNECT tunnels and absolute-form forwarding). Both run their own event loop thread,
// listen on 127.0.0.1 on a free port, and count what they see.
//
// POST /v1/chat/completions answers "Echo: <last user message>" (or, with "stream": true, an SSE
// stream of chunks then `data: [DONE]`); POST /v1/embeddings and /v1/completions answer in
// OpenAI's shapes (`mock::write_embeddings`, `mock::write_text_completion`); GET /v1/models lists
// one model. `Behaviour` sets the
// latency, an error status and body, closing after each response, dropping a connection midway,
// byte-by-byte writes, closing idle connections, and more; it can change while running.

#include <bifrost/transport/mock.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace test {

using namespace std::chrono_literals;

namespace upstream_detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
}  // namespace upstream_detail

/// A self-signed certificate for "localhost" and 127.0.0.1 with its private key, both PEM.
struct TestCertificate {
    std::string cert_pem;
    std::string key_pem;

    /// Generates a fresh P-256 key and a certificate valid for a day.
    static TestCertificate generate() {
        TestCertificate out;
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* x = X509_new();
        if (!key || !x) throw std::runtime_error("TestCertificate: OpenSSL allocation failed");
        X509_set_version(x, 2);
        ASN1_INTEGER_set(
            X509_get_serialNumber(x),
            static_cast<long>(std::chrono::steady_clock::now().time_since_epoch().count() &
                              0x7fffffff));
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, key);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
        const std::pair<int, const char*> exts[] = {
            {NID_basic_constraints, "critical,CA:TRUE"},
            {NID_key_usage, "critical,digitalSignature,keyCertSign"},
            {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
            {NID_subject_key_identifier, "hash"},
        };
        for (const auto& [nid, value] : exts) {
            X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
            if (!ext) throw std::runtime_error("TestCertificate: bad extension");
            X509_add_ext(x, ext, -1);
            X509_EXTENSION_free(ext);
        }
        X509_sign(x, key, EVP_sha256());
        const auto to_string = [](BIO* bio) {
            char* data = nullptr;
            const long n = BIO_get_mem_data(bio, &data);
            std::string s(data, static_cast<std::size_t>(n));
            BIO_free(bio);
            return s;
        };
        BIO* cert_bio = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(cert_bio, x);
        out.cert_pem = to_string(cert_bio);
        BIO* key_bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
        out.key_pem = to_string(key_bio);
        X509_free(x);
        EVP_PKEY_free(key);
        return out;
    }
};

/// What the mock upstream does with each request.
struct Behaviour {
    std::chrono::milliseconds latency{0};  ///< before answering
    int status = 200;                      ///< non-2xx: answers `error_body`
    std::string error_body =
        R"({"error":{"message":"mock upstream error","type":"server_error","param":null,"code":"mock_code"}})";
    bool close_after_response = false;  ///< "Connection: close" and close
    bool drop_mid_response = false;     ///< send half of the response, then close
    bool byte_by_byte = false;          ///< write the response one byte per write
    /// Write the response in pieces of this many bytes, 2 ms apart (each its own read on the
    /// other side). 0: whole.
    std::size_t piece_bytes = 0;
    std::size_t stream_chunks = 3;  ///< SSE chunks for "stream": true
    std::chrono::milliseconds stream_interval{0};
    /// For "stream": true, close the connection after sending this many chunks (a stream cut
    /// midway, no [DONE]). 0: never.
    std::size_t stream_drop_after = 0;
    /// For "stream": true, send a usage chunk (no choices) before [DONE].
    bool stream_usage = false;
    std::size_t pad_bytes = 0;  ///< extra bytes in the echoed content (large bodies)
    /// How a whole chat answer's body is framed: by `Content-Length`, chunked (in three
    /// chunks), or by closing the connection after it (no length, `Connection: close`).
    enum class Framing { length, chunked, until_close } framing = Framing::length;
    /// After this many answered requests on a connection, the next request is read and the
    /// connection closed without an answer (a stale keep-alive connection). 0: never.
    std::size_t max_requests_per_connection = 0;
    /// Close a connection idle for this long. 0: never.
    std::chrono::milliseconds idle_close{0};
};

/// One request as the upstream saw it.
struct SeenRequest {
    std::string method, target, host, authorization, body;
    std::vector<std::pair<std::string, std::string>> headers;

    std::string header(std::string_view name) const {
        for (const auto& [n, v] : headers)
            if (bifrost::iequals(n, name)) return v;
        return {};
    }
};

struct MockUpstreamOptions {
    bool tls = false;  ///< serve HTTPS with a certificate generated at start
};

class MockUpstream {
  public:
    using Options = MockUpstreamOptions;

    explicit MockUpstream(Options options = {})
        : tls_(options.tls),
          ssl_(upstream_detail::asio::ssl::context::tls_server),
          acceptor_(ioc_) {
        using namespace upstream_detail;
        if (tls_) {
            cert_ = TestCertificate::generate();
            ssl_.use_certificate_chain(asio::buffer(cert_.cert_pem));
            ssl_.use_private_key(asio::buffer(cert_.key_pem), asio::ssl::context::pem);
        }
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        port_ = acceptor_.local_endpoint().port();
        asio::co_spawn(ioc_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { ioc_.run(); });
    }

    MockUpstream(const MockUpstream&) = delete;
    MockUpstream& operator=(const MockUpstream&) = delete;
    ~MockUpstream() { stop(); }

    /// Stops listening and serving; open connections are closed.
    void stop() {
        if (!thread_.joinable()) return;
        ioc_.stop();
        thread_.join();
    }

    [[nodiscard]] unsigned short port() const noexcept { return port_; }
    /// "http://127.0.0.1:<port>" (https in TLS mode).
    [[nodiscard]] std::string base_url(std::string_view host = "127.0.0.1") const {
        return std::string(tls_ ? "https://" : "http://") + std::string(host) + ":" +
               std::to_string(port_);
    }
    /// The certificate (PEM) the TLS mode serves.
    [[nodiscard]] const std::string& cert_pem() const noexcept { return cert_.cert_pem; }

    void set(Behaviour b) {
        std::lock_guard l(mutex_);
        behaviour_ = std::move(b);
    }
    [[nodiscard]] Behaviour behaviour() const {
        std::lock_guard l(mutex_);
        return behaviour_;
    }

    /// Connections accepted so far.
    [[nodiscard]] std::size_t connections() const { return accepted_.load(); }
    /// Connections currently open.
    [[nodiscard]] std::size_t open_connections() const { return open_.load(); }
    /// The most connections open at once.
    [[nodiscard]] std::size_t max_open_connections() const { return max_open_.load(); }
    /// Streams the client hung up on before their end (seen before writing the next chunk).
    [[nodiscard]] std::size_t streams_cut_by_client() const { return cut_by_client_.load(); }
    /// Requests read so far (answered or not).
    [[nodiscard]] std::size_t requests() const { return requests_.load(); }
    [[nodiscard]] std::vector<SeenRequest> seen() const {
        std::lock_guard l(mutex_);
        return seen_;
    }

  private:
    upstream_detail::asio::awaitable<void> accept_loop() {
        using namespace upstream_detail;
        for (;;) {
            boost::system::error_code ec;
            tcp::socket sock =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            sock.set_option(tcp::no_delay(true));
            accepted_.fetch_add(1);
            const std::size_t now_open = open_.fetch_add(1) + 1;
            std::size_t prev = max_open_.load();
            while (prev < now_open && !max_open_.compare_exchange_weak(prev, now_open)) {
            }
            if (tls_)
                asio::co_spawn(ioc_, tls_session(std::move(sock)), asio::detached);
            else
                asio::co_spawn(ioc_, session(beast::tcp_stream(std::move(sock))), asio::detached);
        }
    }

    upstream_detail::asio::awaitable<void> tls_session(upstream_detail::tcp::socket sock) {
        using namespace upstream_detail;
        asio::ssl::stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), ssl_);
        boost::system::error_code ec;
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
        co_await stream.async_handshake(asio::ssl::stream_base::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            open_.fetch_sub(1);
            co_return;
        }
        co_await session(std::move(stream));
    }

    template <class Stream>
    upstream_detail::asio::awaitable<void> session(Stream stream) {
        using namespace upstream_detail;
        beast::flat_buffer buffer;
        std::size_t answered = 0;
        for (;;) {
            // What applies while waiting for the request; what applies to answering it is read
            // once it arrived, so a test's `set()` between two requests on one kept-alive
            // connection takes effect for the second.
            const Behaviour waiting = behaviour();
            if (waiting.idle_close.count() > 0)
                beast::get_lowest_layer(stream).expires_after(waiting.idle_close);
            else
                beast::get_lowest_layer(stream).expires_never();
            http::request_parser<http::string_body> parser;
            parser.body_limit(std::uint64_t(256) << 20);  // large bodies are a test case
            boost::system::error_code ec;
            co_await http::async_read(stream, buffer, parser,
                                      asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            const http::request<http::string_body> req = parser.release();
            beast::get_lowest_layer(stream).expires_never();
            requests_.fetch_add(1);
            record(req);
            const Behaviour b = behaviour();
            if (b.max_requests_per_connection != 0 && answered == b.max_requests_per_connection)
                break;  // a stale connection: close without answering
            if (b.latency.count() > 0) {
                // Sleeps in slices, watching for the client to hang up meanwhile.
                const auto until = std::chrono::steady_clock::now() + b.latency;
                bool gone = false;
                while (!gone && std::chrono::steady_clock::now() < until) {
                    asio::steady_timer t(ioc_, std::min<std::chrono::steady_clock::duration>(
                                                   5ms, until - std::chrono::steady_clock::now()));
                    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                    gone = peer_closed(beast::get_lowest_layer(stream).socket());
                }
                if (gone) break;
            }
            std::vector<std::string> segments;
            std::chrono::milliseconds interval{0};
            const bool keep =
                answer(req, b, segments, interval) && !b.close_after_response && req.keep_alive();
            if (b.drop_mid_response) {
                std::string all;
                for (const auto& s : segments)
                    all += s;
                co_await asio::async_write(stream, asio::buffer(all.data(), all.size() / 2),
                                           asio::redirect_error(asio::use_awaitable, ec));
                break;
            }
            bool cut = false;
            for (std::size_t i = 0; i < segments.size() && !ec; ++i) {
                if (i > 0 && interval.count() > 0) {
                    asio::steady_timer t(ioc_, interval);
                    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                }
                if (i > 0 && segments.size() > 2 &&
                    peer_closed(beast::get_lowest_layer(stream).socket())) {
                    cut_by_client_.fetch_add(1);
                    cut = true;
                    break;
                }
                if (b.stream_drop_after != 0 && segments.size() > 2 && i > b.stream_drop_after) {
                    cut = true;  // the head and `stream_drop_after` chunks went out
                    break;
                }
                if (b.byte_by_byte) {
                    for (std::size_t k = 0; k < segments[i].size() && !ec; ++k)
                        co_await asio::async_write(stream, asio::buffer(&segments[i][k], 1),
                                                   asio::redirect_error(asio::use_awaitable, ec));
                } else if (b.piece_bytes > 0) {
                    const std::string& seg = segments[i];
                    for (std::size_t k = 0; k < seg.size() && !ec; k += b.piece_bytes) {
                        if (k > 0) {
                            asio::steady_timer t(ioc_, std::chrono::milliseconds(2));
                            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                        }
                        const std::size_t n = std::min(b.piece_bytes, seg.size() - k);
                        co_await asio::async_write(stream, asio::buffer(seg.data() + k, n),
                                                   asio::redirect_error(asio::use_awaitable, ec));
                    }
                } else {
                    co_await asio::async_write(stream, asio::buffer(segments[i]),
                                               asio::redirect_error(asio::use_awaitable, ec));
                }
            }
            if (ec || cut || !keep) break;
            ++answered;
        }
        boost::system::error_code ignored;
        beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(stream).close();
        open_.fetch_sub(1);
    }

    static bool peer_closed(upstream_detail::tcp::socket& s) {
        char byte;
        const auto n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }

    void record(const upstream_detail::http::request<upstream_detail::http::string_body>& req) {
        SeenRequest s;
        s.method = std::string(req.method_string());
        s.target = std::string(req.target());
        for (const auto& f : req)
            s.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        s.host = s.header("host");
        s.authorization = s.header("authorization");
        s.body = req.body();
        std::lock_guard l(mutex_);
        seen_.push_back(std::move(s));
    }

    static std::string head(int status, std::string_view content_type, bool keep,
                            std::string_view length_or_chunked) {
        std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                        std::string(upstream_detail::http::obsolete_reason(
                            upstream_detail::http::int_to_status(static_cast<unsigned>(status)))) +
                        "\r\nContent-Type: " + std::string(content_type) + "\r\n";
        h += length_or_chunked;
        if (!keep) h += "Connection: close\r\n";
        h += "\r\n";
        return h;
    }

    /// One chunk of a chunked body.
    static std::string chunk(const std::string& data) {
        char hex[20];
        std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
        return std::string(hex) + data + "\r\n";
    }

    static std::string whole(int status, const std::string& body, bool keep) {
        return head(status, "application/json", keep,
                    "Content-Length: " + std::to_string(body.size()) + "\r\n") +
               body;
    }

    /// Builds the response as segments written with `interval` between them; false when the
    /// connection must close afterwards.
    bool answer(const upstream_detail::http::request<upstream_detail::http::string_body>& req,
                const Behaviour& b, std::vector<std::string>& segments,
                std::chrono::milliseconds& interval) {
        using namespace upstream_detail;
        const bool keep = !b.close_after_response && req.keep_alive();
        if (req.method() == http::verb::get && req.target() == "/v1/models") {
            segments.push_back(whole(
                200,
                R"({"object":"list","data":[{"id":"mock-model","object":"model","owned_by":"mock"}]})",
                keep));
            return keep;
        }
        const bool embeddings = req.target() == "/v1/embeddings";
        const bool completions = req.target() == "/v1/completions";
        if (req.method() != http::verb::post ||
            (req.target() != "/v1/chat/completions" && !embeddings && !completions)) {
            segments.push_back(whole(
                404, R"({"error":{"message":"no such route","type":"invalid_request_error"}})",
                keep));
            return keep;
        }
        if (b.status < 200 || b.status >= 300) {
            segments.push_back(whole(b.status, b.error_body, keep));
            return keep;
        }
        boost::system::error_code ec;
        const auto body = boost::json::parse(req.body(), ec);
        if (ec) {
            segments.push_back(whole(
                400, R"({"error":{"message":"body is not JSON","type":"invalid_request_error"}})",
                keep));
            return keep;
        }
        std::string_view model;
        bool stream = false;
        if (const auto* o = body.if_object()) {
            if (const auto* m = o->if_contains("model"); m && m->is_string())
                model = m->get_string();
            if (const auto* s = o->if_contains("stream"); s && s->is_bool()) stream = s->get_bool();
        }
        if (embeddings || completions) {
            std::string out;
            if (embeddings)
                bifrost::transport::mock::write_embeddings(out, body);
            else
                bifrost::transport::mock::write_text_completion(out, body, seq_.fetch_add(1));
            segments.push_back(whole(200, out, keep));
            return keep;
        }
        std::string text(bifrost::transport::mock::last_user_text(body));
        text.append(b.pad_bytes, 'x');
        const std::uint64_t seq = seq_.fetch_add(1);
        if (!stream) {
            std::string out;
            bifrost::transport::mock::write_completion(out, model, text, seq);
            if (b.framing == Behaviour::Framing::chunked) {
                std::string framed =
                    head(200, "application/json", keep, "Transfer-Encoding: chunked\r\n");
                const std::size_t third = out.size() / 3;
                framed += chunk(out.substr(0, third)) + chunk(out.substr(third, third)) +
                          chunk(out.substr(2 * third)) + "0\r\n\r\n";
                segments.push_back(std::move(framed));
                return keep;
            }
            if (b.framing == Behaviour::Framing::until_close) {
                segments.push_back(head(200, "application/json", false, "") + out);
                return false;
            }
            segments.push_back(whole(200, out, keep));
            return keep;
        }
        interval = b.stream_interval;
        segments.push_back(head(200, "text/event-stream", keep, "Transfer-Encoding: chunked\r\n"));
        for (std::size_t i = 0; i < b.stream_chunks; ++i) {
            std::string event = "data: {\"id\":\"chatcmpl-mock-" + std::to_string(seq) +
                                "\",\"object\":\"chat.completion.chunk\",\"model\":\"" +
                                std::string(model) +
                                "\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"piece " +
                                std::to_string(i) + "\"},\"finish_reason\":null}]}\n\n";
            segments.push_back(chunk(event));
        }
        if (b.stream_usage)
            segments.push_back(
                chunk("data: {\"id\":\"chatcmpl-mock-" + std::to_string(seq) +
                      "\",\"object\":\"chat.completion.chunk\",\"model\":\"" + std::string(model) +
                      "\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,"
                      "\"total_tokens\":12}}\n\n"));
        segments.push_back(chunk("data: [DONE]\n\n") + "0\r\n\r\n");
        return keep;
    }

    bool tls_;
    TestCertificate cert_;
    upstream_detail::asio::io_context ioc_;
    upstream_detail::asio::ssl::context ssl_;
    upstream_detail::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    Behaviour behaviour_;
    std::vector<SeenRequest> seen_;
    std::atomic<std::size_t> accepted_{0}, open_{0}, max_open_{0}, requests_{0}, cut_by_client_{0};
    std::atomic<std::uint64_t> seq_{0};
};

/// A tiny HTTP proxy on 127.0.0.1: CONNECT tunnels (for HTTPS) and absolute-form forwarding (for
/// HTTP). With `credentials` set ("user:password" in base64, as in `Proxy-Authorization: Basic
/// ...`), other requests get 407.
class MockProxy {
  public:
    explicit MockProxy(std::string basic_credentials = {})
        : credentials_(std::move(basic_credentials)), acceptor_(ioc_) {
        using namespace upstream_detail;
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        asio::co_spawn(ioc_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { ioc_.run(); });
    }
    MockProxy(const MockProxy&) = delete;
    MockProxy& operator=(const MockProxy&) = delete;
    ~MockProxy() {
        ioc_.stop();
        thread_.join();
    }

    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::size_t tunnels() const { return tunnels_.load(); }
    [[nodiscard]] std::size_t forwarded() const { return forwarded_.load(); }
    [[nodiscard]] std::size_t refused() const { return refused_.load(); }
    /// The request targets seen (CONNECT authorities and absolute URLs).
    [[nodiscard]] std::vector<std::string> targets() const {
        std::lock_guard l(mutex_);
        return targets_;
    }

  private:
    upstream_detail::asio::awaitable<void> accept_loop() {
        using namespace upstream_detail;
        for (;;) {
            boost::system::error_code ec;
            tcp::socket sock =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            asio::co_spawn(ioc_, session(std::move(sock)), asio::detached);
        }
    }

    static std::pair<std::string, std::string> split_authority(std::string_view a) {
        const auto colon = a.rfind(':');
        if (colon == std::string_view::npos) return {std::string(a), "80"};
        return {std::string(a.substr(0, colon)), std::string(a.substr(colon + 1))};
    }

    upstream_detail::asio::awaitable<void> session(upstream_detail::tcp::socket client) {
        using namespace upstream_detail;
        beast::flat_buffer buffer;
        boost::system::error_code ec;
        for (;;) {
            http::request<http::string_body> req;
            co_await http::async_read(client, buffer, req,
                                      asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            {
                std::lock_guard l(mutex_);
                targets_.emplace_back(req.target());
            }
            if (!credentials_.empty() &&
                req[http::field::proxy_authorization] != "Basic " + credentials_) {
                refused_.fetch_add(1);
                const std::string_view r =
                    "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n";
                co_await asio::async_write(client, asio::buffer(r),
                                           asio::redirect_error(asio::use_awaitable, ec));
                co_return;
            }
            tcp::socket upstream(ioc_);
            std::string authority;
            std::string origin_target;
            if (req.method() == http::verb::connect) {
                authority = std::string(req.target());
            } else {
                // absolute form: http://host:port/path
                std::string_view t = req.target();
                if (t.substr(0, 7) != "http://") co_return;
                t.remove_prefix(7);
                const auto slash = t.find('/');
                authority = std::string(t.substr(0, slash));
                origin_target =
                    slash == std::string_view::npos ? "/" : std::string(t.substr(slash));
            }
            const auto [host, port] = split_authority(authority);
            tcp::resolver resolver(ioc_);
            auto endpoints = co_await resolver.async_resolve(
                host, port, asio::redirect_error(asio::use_awaitable, ec));
            if (!ec)
                co_await asio::async_connect(upstream, endpoints,
                                             asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                const std::string_view r =
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                co_await asio::async_write(client, asio::buffer(r),
                                           asio::redirect_error(asio::use_awaitable, ec));
                co_return;
            }
            if (req.method() == http::verb::connect) {
                tunnels_.fetch_add(1);
                const std::string_view ok = "HTTP/1.1 200 Connection established\r\n\r\n";
                co_await asio::async_write(client, asio::buffer(ok),
                                           asio::redirect_error(asio::use_awaitable, ec));
                if (ec) co_return;
                auto a = std::make_shared<tcp::socket>(std::move(client));
                auto b = std::make_shared<tcp::socket>(std::move(upstream));
                asio::co_spawn(ioc_, pipe(a, b), asio::detached);
                asio::co_spawn(ioc_, pipe(b, a), asio::detached);
                co_return;
            }
            forwarded_.fetch_add(1);
            req.target(origin_target);
            req.erase(http::field::proxy_authorization);
            co_await http::async_write(upstream, req,
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            beast::flat_buffer up_buffer;
            http::response<http::string_body> res;
            co_await http::async_read(upstream, up_buffer, res,
                                      asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            const bool keep = res.keep_alive() && req.keep_alive();
            co_await http::async_write(client, res, asio::redirect_error(asio::use_awaitable, ec));
            if (ec || !keep) co_return;
        }
    }

    static upstream_detail::asio::awaitable<void> pipe(
        std::shared_ptr<upstream_detail::tcp::socket> from,
        std::shared_ptr<upstream_detail::tcp::socket> to) {
        using namespace upstream_detail;
        char data[16384];
        boost::system::error_code ec;
        for (;;) {
            const std::size_t n = co_await from->async_read_some(
                asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            co_await asio::async_write(*to, asio::buffer(data, n),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
        }
        boost::system::error_code ignored;
        to->shutdown(tcp::socket::shutdown_send, ignored);
        from->close(ignored);
    }

    std::string credentials_;
    upstream_detail::asio::io_context ioc_;
    upstream_detail::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<std::string> targets_;
    std::atomic<std::size_t> tunnels_{0}, forwarded_{0}, refused_{0};
};

}  // namespace test
