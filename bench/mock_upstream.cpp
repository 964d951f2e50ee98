// bifrost-mock-upstream: an OpenAI-compatible upstream for the end-to-end benchmarks
// (bench/e2e.py), built to hold tens of thousands of keep-alive connections on a few threads.
//
//   bifrost-mock-upstream [--host 127.0.0.1] [--port 0] [--latency-ms 0] [--threads 1]
//
// POST .../chat/completions answers 200 with an OpenAI chat completion (the same body as the
// in-process `transport::Mock`, naming the request's model) after `--latency-ms` (an Asio timer:
// a waiting request costs no thread). GET /v1/models lists one model; GET /stats reports the
// connections, requests and chat completions seen so far as JSON. Every other route answers 404.
//
// A chat request with `"stream": true` is answered as an OpenAI event stream (chunked): the first
// `chat.completion.chunk` event after `--latency-ms`, the other events and `data: [DONE]`
// `--stream-gap-ms` later, so that a client can time the first chunk apart from the whole.
//
// Each thread runs its own event loop and its own listening socket on the same port
// (SO_REUSEPORT), so the kernel spreads connections over the threads without locks. The first
// line on stdout is "listening on http://HOST:PORT". SIGINT or SIGTERM stops it; the counts go
// to stderr.

#include <bifrost/transport/mock.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::chrono::milliseconds latency{0};
    std::chrono::milliseconds stream_gap{2};
    std::size_t threads = 1;
};

struct Counters {
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> open{0};
    std::atomic<std::uint64_t> max_open{0};
    std::atomic<std::uint64_t> requests{0};  // all routes
    std::atomic<std::uint64_t> chats{0};     // chat completions answered or being answered
};

Counters counters;

void usage(std::FILE* out) {
    std::fputs(
        "usage: bifrost-mock-upstream [flags]\n"
        "\n"
        "An OpenAI-compatible upstream for benchmarks: POST /v1/chat/completions answers a chat\n"
        "completion after a fixed latency.\n"
        "\n"
        "  --host ADDR        address to listen on (default 127.0.0.1)\n"
        "  --port N           port (default 0: a free one, printed on stdout)\n"
        "  --latency-ms N     delay before each chat answer (default 0)\n"
        "  --stream-gap-ms N  a streamed answer: delay between its first event and the rest\n"
        "                     (default 2)\n"
        "  --threads N        event-loop threads (default 1)\n",
        out);
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

int parse_flags(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg(argv[i]);
        std::optional<std::string_view> value;
        if (const auto eq = arg.find('='); eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return -1;
        }
        if (!value) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bifrost-mock-upstream: %s needs a value\n", argv[i]);
                return 2;
            }
            value = std::string_view(argv[++i]);
        }
        bool ok = true;
        if (arg == "--host") {
            o.host = *value;
        } else if (arg == "--port") {
            ok = parse_number(*value, o.port);
        } else if (arg == "--latency-ms") {
            std::int64_t ms = 0;
            ok = parse_number(*value, ms) && ms >= 0;
            o.latency = std::chrono::milliseconds(ms);
        } else if (arg == "--stream-gap-ms") {
            std::int64_t ms = 0;
            ok = parse_number(*value, ms) && ms >= 0;
            o.stream_gap = std::chrono::milliseconds(ms);
        } else if (arg == "--threads") {
            ok = parse_number(*value, o.threads) && o.threads > 0 && o.threads <= 64;
        } else {
            std::fprintf(stderr, "bifrost-mock-upstream: unknown flag %.*s\n",
                         static_cast<int>(arg.size()), arg.data());
            usage(stderr);
            return 2;
        }
        if (!ok) {
            std::fprintf(stderr, "bifrost-mock-upstream: invalid value '%.*s' for %.*s\n",
                         static_cast<int>(value->size()), value->data(),
                         static_cast<int>(arg.size()), arg.data());
            return 2;
        }
    }
    return 0;
}

/// The value of the top-level "model" member, found by a scan rather than a parse (the answer
/// only echoes it; a body without one is answered for "mock-model").
std::string_view find_model(std::string_view body) {
    const auto k = body.find("\"model\"");
    if (k == std::string_view::npos) return "mock-model";
    std::size_t i = k + 7;
    while (i < body.size() && (body[i] == ' ' || body[i] == ':' || body[i] == '\t'))
        ++i;
    if (i >= body.size() || body[i] != '"') return "mock-model";
    const auto end = body.find('"', i + 1);
    if (end == std::string_view::npos) return "mock-model";
    return body.substr(i + 1, end - i - 1);
}

/// Whether the body asks for a stream: a top-level-looking `"stream": true`, found by a scan.
bool wants_stream(std::string_view body) {
    const auto i = body.find("\"stream\"");
    if (i == std::string_view::npos) return false;
    std::size_t j = i + 8;
    while (j < body.size() && (body[j] == ' ' || body[j] == ':' || body[j] == '\t'))
        ++j;
    return body.substr(j, 4) == "true";
}

/// Appends `data` as one HTTP/1.1 chunk.
void append_chunk(std::string& out, std::string_view data) {
    char hex[16];
    const auto [end, ec] = std::to_chars(hex, hex + sizeof hex, data.size(), 16);
    out.append(hex, end).append("\r\n").append(data).append("\r\n");
}

/// One client connection. Exactly one operation (read, timer or write) is pending at a time, so
/// the session deletes itself when its chain ends.
class Session {
  public:
    Session(tcp::socket socket, std::chrono::milliseconds latency, std::chrono::milliseconds gap)
        : socket_(std::move(socket)),
          timer_(socket_.get_executor()),
          latency_(latency),
          stream_gap_(gap) {}

    void start() { read(); }

  private:
    void read() {
        parser_.emplace();
        parser_->body_limit(std::uint64_t(64) << 20);
        http::async_read(socket_, buffer_, *parser_,
                         [this](beast::error_code ec, std::size_t) { on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec) return finish();
        counters.requests.fetch_add(1, std::memory_order_relaxed);
        const auto& req = parser_->get();
        keep_alive_ = req.keep_alive();
        const std::string_view target = req.target();
        bool delay = false;
        body_.clear();
        rest_.clear();
        int status = 200;
        if (req.method() == http::verb::post && target.ends_with("/chat/completions") &&
            wants_stream(req.body())) {
            stream_answer(find_model(req.body()));
            counters.chats.fetch_add(1, std::memory_order_relaxed);
            if (latency_.count() == 0) return write();
            timer_.expires_after(latency_);
            timer_.async_wait([this](beast::error_code) { write(); });
            return;
        }
        if (req.method() == http::verb::post && target.ends_with("/chat/completions")) {
            bifrost::transport::mock::write_completion(
                body_, find_model(req.body()), "Hello from the benchmark upstream.",
                seq_.fetch_add(1, std::memory_order_relaxed));
            delay = latency_.count() > 0;
            counters.chats.fetch_add(1, std::memory_order_relaxed);
        } else if (req.method() == http::verb::get && target == "/v1/models") {
            body_ = R"({"object":"list","data":[)"
                    R"({"id":"mock-model","object":"model","owned_by":"mock"}]})";
        } else if (req.method() == http::verb::get && target == "/stats") {
            body_ = "{\"accepted\":" + std::to_string(counters.accepted.load()) +
                    ",\"open\":" + std::to_string(counters.open.load()) +
                    ",\"max_open\":" + std::to_string(counters.max_open.load()) +
                    ",\"requests\":" + std::to_string(counters.requests.load()) +
                    ",\"chat_completions\":" + std::to_string(counters.chats.load()) + "}";
        } else {
            status = 404;
            body_ = R"({"error":{"message":"no such route","type":"invalid_request_error"}})";
        }
        out_ = status == 200 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n";
        out_ += "Content-Type: application/json\r\nContent-Length: ";
        out_ += std::to_string(body_.size());
        out_ += keep_alive_ ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
        out_ += body_;
        if (!delay) return write();
        timer_.expires_after(latency_);
        timer_.async_wait([this](beast::error_code) { write(); });
    }

    /// A streamed chat answer: `out_` the head and the first event, `rest_` the other events,
    /// `[DONE]` and the last chunk.
    void stream_answer(std::string_view model) {
        const std::string id =
            "chatcmpl-mock-" + std::to_string(seq_.fetch_add(1, std::memory_order_relaxed));
        out_ =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n";
        out_ += keep_alive_ ? "\r\n" : "Connection: close\r\n\r\n";
        std::string event;
        bifrost::transport::mock::write_sse_chunk(event, id, model, true, "Hello", "");
        append_chunk(out_, event);
        for (std::string_view word : {" from", " the", " benchmark", " upstream."}) {
            event.clear();
            bifrost::transport::mock::write_sse_chunk(event, id, model, true, word, "");
            append_chunk(rest_, event);
        }
        event.clear();
        bifrost::transport::mock::write_sse_chunk(event, id, model, false, "", "stop");
        append_chunk(rest_, event);
        append_chunk(rest_, "data: [DONE]\n\n");
        rest_ += "0\r\n\r\n";
    }

    void write() {
        asio::async_write(socket_, asio::buffer(out_), [this](beast::error_code ec, std::size_t) {
            if (ec) return finish();
            if (!rest_.empty()) {
                if (stream_gap_.count() == 0) return write_rest();
                timer_.expires_after(stream_gap_);
                timer_.async_wait([this](beast::error_code) { write_rest(); });
                return;
            }
            if (!keep_alive_) return finish();
            read();
        });
    }

    void write_rest() {
        asio::async_write(socket_, asio::buffer(rest_), [this](beast::error_code ec, std::size_t) {
            if (ec || !keep_alive_) return finish();
            read();
        });
    }

    void finish() {
        beast::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        counters.open.fetch_sub(1, std::memory_order_relaxed);
        delete this;
    }

    static inline std::atomic<std::uint64_t> seq_{0};

    tcp::socket socket_;
    asio::steady_timer timer_;
    std::chrono::milliseconds latency_;
    std::chrono::milliseconds stream_gap_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::string body_;
    std::string out_;
    std::string rest_;  // a stream's events after the first
    bool keep_alive_ = true;
};

/// One thread's listening socket and its accept loop.
class Listener {
  public:
    Listener(asio::io_context& ioc, const tcp::endpoint& ep, std::chrono::milliseconds latency,
             std::chrono::milliseconds gap)
        : acceptor_(ioc), latency_(latency), stream_gap_(gap) {
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        const int one = 1;
        ::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        acceptor_.bind(ep);
        acceptor_.listen(asio::socket_base::max_listen_connections);
    }

    [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

    void start() {
        acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) {
                beast::error_code ignored;
                socket.set_option(tcp::no_delay(true), ignored);
                counters.accepted.fetch_add(1, std::memory_order_relaxed);
                const auto now = counters.open.fetch_add(1, std::memory_order_relaxed) + 1;
                auto prev = counters.max_open.load(std::memory_order_relaxed);
                while (prev < now && !counters.max_open.compare_exchange_weak(
                                         prev, now, std::memory_order_relaxed)) {
                }
                (new Session(std::move(socket), latency_, stream_gap_))->start();
            }
            // Out of descriptors and the like: keep accepting; the client sees the refusal.
            start();
        });
    }

  private:
    tcp::acceptor acceptor_;
    std::chrono::milliseconds latency_;
    std::chrono::milliseconds stream_gap_;
};

void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (const int rc = parse_flags(argc, argv, o)) return rc < 0 ? 0 : rc;
    raise_fd_limit();

    std::vector<std::unique_ptr<asio::io_context>> contexts;
    std::vector<std::unique_ptr<Listener>> listeners;
    beast::error_code ec;
    const auto addr = asio::ip::make_address(o.host, ec);
    if (ec) {
        std::fprintf(stderr, "bifrost-mock-upstream: bad --host %s\n", o.host.c_str());
        return 2;
    }
    tcp::endpoint ep(addr, o.port);
    try {
        for (std::size_t i = 0; i < o.threads; ++i) {
            contexts.push_back(std::make_unique<asio::io_context>(1));
            listeners.push_back(
                std::make_unique<Listener>(*contexts.back(), ep, o.latency, o.stream_gap));
            ep.port(listeners.front()->port());  // the others share the first one's port
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bifrost-mock-upstream: cannot listen on %s:%u: %s\n", o.host.c_str(),
                     static_cast<unsigned>(o.port), e.what());
        return 1;
    }
    for (auto& l : listeners)
        l->start();

    asio::signal_set signals(*contexts.front(), SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
        for (auto& c : contexts)
            c->stop();
    });

    std::printf("listening on http://%s:%u\n", o.host.c_str(), static_cast<unsigned>(ep.port()));
    std::fflush(stdout);

    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < contexts.size(); ++i)
        threads.emplace_back([&c = *contexts[i]] { c.run(); });
    contexts.front()->run();
    for (auto& t : threads)
        t.join();
    std::fprintf(stderr,
                 "bifrost-mock-upstream: %llu requests, %llu connections accepted, at most %llu "
                 "open at once\n",
                 static_cast<unsigned long long>(counters.requests.load()),
                 static_cast<unsigned long long>(counters.accepted.load()),
                 static_cast<unsigned long long>(counters.max_open.load()));
    // Sessions still open are left to the process exit: their handlers are gone with the loops.
    std::quick_exit(0);
}
