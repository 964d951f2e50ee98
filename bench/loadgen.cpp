// bifrost-loadgen: an HTTP/1.1 load generator for the end-to-end benchmarks (bench/e2e.py).
//
//   bifrost-loadgen --url http://127.0.0.1:8080/v1/chat/completions --connections 64 --duration 10
//   bifrost-loadgen --url ... --rate 5000 --max-in-flight 6000 --duration 10 --json out.json
//
// It POSTs an OpenAI chat-completions body over keep-alive connections, in one of two modes:
//
// - closed loop (`--connections N`, no `--rate`): N connections, each sends its next request as
//   soon as the previous answer arrived. Measures the most a server serves at that concurrency.
// - open loop (`--rate R`): requests are due at a constant rate R, whatever the answers do. Each
//   request's latency runs from the time it was due, not from the time it could be sent, so a
//   server that stalls is charged for every request that waited behind the stall (no coordinated
//   omission). A due request goes out on an idle connection, else on a new one while fewer than
//   `--max-in-flight` are open, else it waits in a backlog (its latency still counting).
//
// Requests due during the warm-up (`--warmup S`, counted within `--duration`) are sent but not
// reported. Latencies go into a log-linear histogram (bifrost::LatencyHistogram, ~3% relative
// error); throughput counts the successful answers that arrived within the measured window.
// The report is a table on stdout and, with `--json FILE`, a JSON document.

#include <bifrost/core/histogram.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/optional/optional.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
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
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::nanoseconds;

// ---- options ----------------------------------------------------------------------------------

struct Options {
    std::string url = "http://127.0.0.1:8080/v1/chat/completions";
    std::string model = "openai/gpt-4o-mini";
    std::string message = "Hello! How are you today?";
    std::vector<std::string> headers;  // "Name: value"
    std::size_t connections = 0;       // closed loop: the connections; open loop: opened up front
    double rate = 0;                   // requests per second; > 0 selects the open loop
    std::size_t max_in_flight = 10000;
    double duration = 10;
    double warmup = 1;
    double timeout = 60;  // per request, seconds
    std::size_t threads = 1;
    std::string json_path;
    std::string label;
    bool quiet = false;
    bool stream = false;  // ask for an event stream; also time each answer's first body bytes
};

void usage(std::FILE* out) {
    std::fputs(
        "usage: bifrost-loadgen [flags]\n"
        "\n"
        "POSTs OpenAI chat-completion requests over HTTP/1.1 keep-alive connections and reports\n"
        "throughput, errors and latency percentiles.\n"
        "\n"
        "  --url URL             http://host:port/path (default "
        "http://127.0.0.1:8080/v1/chat/completions)\n"
        "  --model NAME          the request's model (default openai/gpt-4o-mini)\n"
        "  --message TEXT        the user message\n"
        "  --header 'N: V'       an extra request header (repeatable)\n"
        "  --connections N       closed loop: N connections, each one request at a time;\n"
        "                        open loop: connections opened before the start (default 0)\n"
        "  --rate R              open loop: R requests per second, latency from each request's\n"
        "                        due time\n"
        "  --max-in-flight M     open loop: most connections (so requests in flight) at once\n"
        "                        (default 10000)\n"
        "  --duration S          seconds of load, warm-up included (default 10)\n"
        "  --warmup S            seconds at the start not reported (default 1)\n"
        "  --timeout S           a request unanswered for S seconds fails (default 60)\n"
        "  --threads T           event-loop threads (default 1)\n"
        "  --json FILE           also write the results as JSON\n"
        "  --label TEXT          a name for this run in the JSON\n"
        "  --stream              ask for streamed answers (\"stream\": true) and also report the\n"
        "                        latency of each answer's first body bytes (its first chunk)\n"
        "  --quiet               no table\n",
        out);
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    if constexpr (std::is_floating_point_v<T>) {
        // std::from_chars for double is in GCC 11+, which we require.
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        return ec == std::errc() && p == s.data() + s.size() && std::isfinite(out);
    } else {
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        return ec == std::errc() && p == s.data() + s.size();
    }
}

/// Returns 0 to go on, -1 after printing help, else the exit status.
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
        if (arg == "--quiet") {
            o.quiet = true;
            continue;
        }
        if (arg == "--stream") {
            o.stream = true;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bifrost-loadgen: %s needs a value\n", argv[i]);
                return 2;
            }
            value = std::string_view(argv[++i]);
        }
        const std::string_view v = *value;
        bool ok = true;
        if (arg == "--url") {
            o.url = v;
        } else if (arg == "--model") {
            o.model = v;
        } else if (arg == "--message") {
            o.message = v;
        } else if (arg == "--header") {
            ok = v.find(':') != std::string_view::npos;
            o.headers.emplace_back(v);
        } else if (arg == "--connections") {
            ok = parse_number(v, o.connections);
        } else if (arg == "--rate") {
            ok = parse_number(v, o.rate) && o.rate > 0;
        } else if (arg == "--max-in-flight") {
            ok = parse_number(v, o.max_in_flight) && o.max_in_flight > 0;
        } else if (arg == "--duration") {
            ok = parse_number(v, o.duration) && o.duration > 0;
        } else if (arg == "--warmup") {
            ok = parse_number(v, o.warmup) && o.warmup >= 0;
        } else if (arg == "--timeout") {
            ok = parse_number(v, o.timeout) && o.timeout > 0;
        } else if (arg == "--threads") {
            ok = parse_number(v, o.threads) && o.threads > 0 && o.threads <= 64;
        } else if (arg == "--json") {
            o.json_path = v;
        } else if (arg == "--label") {
            o.label = v;
        } else {
            std::fprintf(stderr, "bifrost-loadgen: unknown flag %.*s\n",
                         static_cast<int>(arg.size()), arg.data());
            usage(stderr);
            return 2;
        }
        if (!ok) {
            std::fprintf(stderr, "bifrost-loadgen: invalid value '%.*s' for %.*s\n",
                         static_cast<int>(v.size()), v.data(), static_cast<int>(arg.size()),
                         arg.data());
            return 2;
        }
    }
    if (o.rate == 0 && o.connections == 0) o.connections = 1;
    if (o.warmup >= o.duration) {
        std::fprintf(stderr, "bifrost-loadgen: --warmup must be shorter than --duration\n");
        return 2;
    }
    return 0;
}

struct Url {
    std::string host, port, target, authority;
};

std::optional<Url> parse_url(std::string_view s) {
    if (s.substr(0, 7) != "http://") return std::nullopt;
    s.remove_prefix(7);
    const auto slash = s.find('/');
    Url u;
    u.authority = std::string(s.substr(0, slash));
    u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
    const auto colon = u.authority.rfind(':');
    if (colon == std::string::npos) {
        u.host = u.authority;
        u.port = "80";
    } else {
        u.host = u.authority.substr(0, colon);
        u.port = u.authority.substr(colon + 1);
    }
    if (u.host.empty()) return std::nullopt;
    return u;
}

/// A JSON string literal (quotes included) of `s`.
std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += ch;
        }
    }
    out += '"';
    return out;
}

/// The whole request, bytes ready to write: every request of a run is the same.
std::string build_request(const Options& o, const Url& u) {
    const std::string body =
        "{\"model\":" + json_string(o.model) +
        ",\"messages\":[{\"role\":\"user\",\"content\":" + json_string(o.message) + "}]" +
        (o.stream ? ",\"stream\":true}" : "}");
    std::string r = "POST " + u.target + " HTTP/1.1\r\nHost: " + u.authority +
                    "\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
                    "Content-Length: " +
                    std::to_string(body.size()) + "\r\n";
    for (const auto& h : o.headers)
        r += h + "\r\n";
    r += "\r\n";
    r += body;
    return r;
}

// ---- a response body that is counted and dropped ----------------------------------------------

/// A Beast body type that discards the payload (the load generator needs the status only), so
/// reading an answer allocates nothing. It notes when the first body bytes arrived (a stream's
/// first chunk).
struct DiscardBody {
    struct value_type {
        std::uint64_t bytes = 0;
        Clock::time_point first{};
    };

    class reader {
      public:
        template <bool IsRequest, class Fields>
        reader(http::header<IsRequest, Fields>&, value_type& v) : v_(v) {}
        void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
        template <class ConstBufferSequence>
        std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
            const std::size_t n = asio::buffer_size(buffers);
            if (n != 0 && v_.bytes == 0) v_.first = Clock::now();
            v_.bytes += n;
            ec = {};
            return n;
        }
        void finish(beast::error_code& ec) { ec = {}; }

      private:
        value_type& v_;
    };
};

// ---- results ----------------------------------------------------------------------------------

/// What one event-loop thread counted; summed at the end.
struct Counts {
    std::uint64_t sent = 0;       // requests written (all, warm-up included)
    std::uint64_t answered = 0;   // answers read (all)
    std::uint64_t measured = 0;   // requests due in the measured window that finished
    std::uint64_t ok = 0;         // of those, 2xx answers
    std::uint64_t in_window = 0;  // 2xx answers that arrived within the measured window
    std::uint64_t connections_opened = 0;
    std::uint64_t max_open = 0;
    std::uint64_t max_backlog = 0;
    nanoseconds max_lag{0};                  // how late the open loop's timer sent a due request
    std::map<int, std::uint64_t> by_status;  // measured non-2xx answers
    std::map<std::string, std::uint64_t> by_cause;  // measured network failures

    void add(const Counts& o) {
        sent += o.sent;
        answered += o.answered;
        measured += o.measured;
        ok += o.ok;
        in_window += o.in_window;
        connections_opened += o.connections_opened;
        max_open += o.max_open;
        max_backlog += o.max_backlog;
        max_lag = std::max(max_lag, o.max_lag);
        for (const auto& [k, v] : o.by_status)
            by_status[k] += v;
        for (const auto& [k, v] : o.by_cause)
            by_cause[k] += v;
    }
};

// ---- one event-loop thread ---------------------------------------------------------------------

class Worker;

/// One keep-alive connection carrying at most one request at a time. Owned by its worker for the
/// whole run (a failed connection's slot is reused), so handlers hold plain pointers.
struct Connection {
    explicit Connection(Worker& w, asio::io_context& ioc) : worker(w), socket(ioc) {}

    Worker& worker;
    tcp::socket socket;
    beast::flat_buffer buffer;
    std::optional<http::response_parser<DiscardBody>> parser;
    Clock::time_point due{};      // when the request in progress was due
    Clock::time_point started{};  // when it (or the connect for it) started, for the timeout
    bool busy = false;            // a request (or a connect carrying one) is in progress
    bool open = false;            // counted as open
    bool timed_out = false;       // closed by the timeout sweep
};

class Worker {
  public:
    Worker(const Options& o, const std::string& request, const tcp::endpoint& ep,
           bifrost::LatencyHistogram& hist, bifrost::LatencyHistogram& first_hist,
           std::size_t connections, double rate, std::size_t max_in_flight, std::size_t phase,
           std::size_t stride)
        : opts_(o),
          request_(request),
          endpoint_(ep),
          hist_(hist),
          first_hist_(first_hist),
          ioc_(1),
          tick_(ioc_),
          sweep_(ioc_),
          closed_loop_(o.rate == 0),
          initial_connections_(connections),
          max_in_flight_(std::max<std::size_t>(max_in_flight, 1)),
          interval_ns_(rate > 0 ? 1e9 / rate : 0),
          phase_(phase),
          stride_(stride) {}

    /// Opens the initial connections and waits until they are connected (or failed).
    void prepare() {
        for (std::size_t i = 0; i < initial_connections_; ++i)
            connect(slot(), std::nullopt);
        ioc_.run();  // only connects are pending: returns when all finished
        ioc_.restart();
    }

    void run(Clock::time_point start) {
        started_ = true;
        start_ = start;
        measure_from_ =
            start + duration_cast<nanoseconds>(std::chrono::duration<double>(opts_.warmup));
        end_ = start + duration_cast<nanoseconds>(std::chrono::duration<double>(opts_.duration));
        drain_until_ =
            end_ + duration_cast<nanoseconds>(std::chrono::duration<double>(opts_.timeout));
        timeout_ = duration_cast<nanoseconds>(std::chrono::duration<double>(opts_.timeout));
        if (closed_loop_) {
            tick_.expires_at(start_);
            tick_.async_wait([this](beast::error_code ec) {
                if (ec) return;
                for (auto& c : conns_) {
                    if (c->open) {
                        send(*c, Clock::now());
                    } else {
                        connect(*c, Clock::now());
                    }
                }
            });
        } else {
            next_ = due_at(0);
            schedule();
        }
        arm_sweep();
        ioc_.run();
    }

    [[nodiscard]] const Counts& counts() const noexcept { return counts_; }

  private:
    Connection& slot() {
        if (!free_.empty()) {
            Connection* c = free_.back();
            free_.pop_back();
            return *c;
        }
        conns_.push_back(std::make_unique<Connection>(*this, ioc_));
        return *conns_.back();
    }

    void note_open(Connection& c) {
        c.open = true;
        ++open_;
        counts_.max_open = std::max<std::uint64_t>(counts_.max_open, open_);
    }

    /// Opens `c`; when `due` is set, sends that request once connected.
    void connect(Connection& c, std::optional<Clock::time_point> due) {
        beast::error_code ec;
        if (c.socket.is_open()) c.socket.close(ec);
        c.buffer.clear();
        c.timed_out = false;
        c.busy = due.has_value();
        c.due = due.value_or(Clock::time_point{});
        c.started = Clock::now();
        note_open(c);
        ++counts_.connections_opened;
        c.socket.async_connect(endpoint_, [this, &c](beast::error_code cec) {
            if (cec) return fail(c, cec, "connect: ");
            beast::error_code ignored;
            c.socket.set_option(tcp::no_delay(true), ignored);
            if (c.busy) {
                send(c, c.due);
            } else if (!started_) {
                idle_.push_back(&c);  // prepared before the start
            } else {
                on_free(c);
            }
        });
    }

    void send(Connection& c, Clock::time_point due) {
        c.busy = true;
        c.due = due;
        c.started = Clock::now();
        c.parser.emplace();
        c.parser->body_limit(std::uint64_t(64) << 20);
        c.parser->header_limit(64 * 1024);
        ++counts_.sent;
        asio::async_write(
            c.socket, asio::buffer(request_), [this, &c](beast::error_code ec, std::size_t) {
                if (ec) return fail(c, ec, "");
                http::async_read(
                    c.socket, c.buffer, *c.parser,
                    [this, &c](beast::error_code rec, std::size_t) { on_read(c, rec); });
            });
    }

    void on_read(Connection& c, beast::error_code ec) {
        if (ec) return fail(c, ec, "");
        const auto now = Clock::now();
        const int status = static_cast<int>(c.parser->get().result_int());
        const bool keep = c.parser->keep_alive();
        ++counts_.answered;
        c.busy = false;
        if (measured(c.due)) {
            ++counts_.measured;
            if (status >= 200 && status < 300) {
                ++counts_.ok;
                hist_.record(now - c.due);
                const auto first = c.parser->get().body().first;
                first_hist_.record((first == Clock::time_point{} ? now : first) - c.due);
            } else {
                ++counts_.by_status[status];
            }
        }
        if (status >= 200 && status < 300 && now >= measure_from_ && now < end_)
            ++counts_.in_window;
        if (!keep) {
            close(c);
            if (closed_loop_ && Clock::now() < end_) connect(c, Clock::now());
            refill();
            maybe_finish();
            return;
        }
        on_free(c);
    }

    /// A request failed on the network (or timed out): counted, its connection closed.
    void fail(Connection& c, beast::error_code ec, std::string_view what) {
        if (c.busy && measured(c.due)) {
            ++counts_.measured;
            ++counts_.by_cause[c.timed_out ? std::string("timeout")
                                           : std::string(what) + ec.message()];
        }
        c.busy = false;
        close(c);
        if (closed_loop_ && started_ && Clock::now() < end_) {
            // Reconnect after a pause, so a refusing server does not make this spin.
            auto t = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(10));
            t->async_wait([this, &c, t](beast::error_code) {
                if (Clock::now() < end_) connect(c, Clock::now());
                maybe_finish();
            });
            return;
        }
        refill();
        maybe_finish();
    }

    void close(Connection& c) {
        beast::error_code ignored;
        c.socket.close(ignored);
        if (c.open) {
            c.open = false;
            --open_;
            if (!closed_loop_) free_.push_back(&c);
        }
    }

    /// `c` finished its request and is still open.
    void on_free(Connection& c) {
        const auto now = Clock::now();
        if (closed_loop_) {
            if (now < end_) return send(c, now);
            close(c);
            return maybe_finish();
        }
        if (!backlog_.empty()) {
            const auto due = backlog_.front();
            backlog_.pop_front();
            return send(c, due);
        }
        idle_.push_back(&c);
        maybe_finish();
    }

    [[nodiscard]] bool measured(Clock::time_point due) const noexcept {
        return due >= measure_from_ && due < end_;
    }

    // Open loop: a timer at each due time; requests that fell due meanwhile all go out.
    void schedule() {
        if (next_ >= end_) {
            sending_done_ = true;
            return maybe_finish();
        }
        tick_.expires_at(next_);
        tick_.async_wait([this](beast::error_code ec) {
            if (ec) return;
            const auto now = Clock::now();
            while (next_ < end_ && next_ <= now) {
                counts_.max_lag =
                    std::max(counts_.max_lag, duration_cast<nanoseconds>(now - next_));
                dispatch(next_);
                next_ = due_at(++k_);
            }
            schedule();
        });
    }

    /// When this thread's k-th request is due: the threads' schedules interleave.
    [[nodiscard]] Clock::time_point due_at(std::uint64_t k) const noexcept {
        const double slot =
            static_cast<double>(k) + static_cast<double>(phase_) / static_cast<double>(stride_);
        return start_ + nanoseconds(static_cast<std::int64_t>(interval_ns_ * slot));
    }

    /// Open loop: a connection closed, so backlogged requests may open new ones.
    void refill() {
        while (!closed_loop_ && !backlog_.empty() && open_ < max_in_flight_) {
            const auto due = backlog_.front();
            backlog_.pop_front();
            connect(slot(), due);
        }
    }

    void dispatch(Clock::time_point due) {
        if (!idle_.empty()) {
            Connection* c = idle_.back();
            idle_.pop_back();
            return send(*c, due);
        }
        if (open_ < max_in_flight_) return connect(slot(), due);
        backlog_.push_back(due);
        counts_.max_backlog = std::max<std::uint64_t>(counts_.max_backlog, backlog_.size());
    }

    // Every 50 ms: fail requests older than the timeout; after the drain deadline, everything.
    void arm_sweep() {
        sweep_.expires_after(std::chrono::milliseconds(50));
        sweep_.async_wait([this](beast::error_code ec) {
            if (ec || finished_) return;
            const auto now = Clock::now();
            const bool give_up = now >= drain_until_;
            for (auto& c : conns_) {
                if (c->busy && (give_up || now - c->started >= timeout_)) {
                    c->timed_out = true;
                    beast::error_code ignored;
                    c->socket.close(ignored);  // its pending operation fails: counted there
                }
            }
            if (give_up) {
                for (const auto due : backlog_)
                    if (measured(due)) {
                        ++counts_.measured;
                        ++counts_.by_cause["not sent (backlog at the end)"];
                    }
                backlog_.clear();
                sending_done_ = true;
            }
            if (closed_loop_ && now >= end_) sending_done_ = true;
            maybe_finish();
            if (!finished_) arm_sweep();
        });
    }

    void maybe_finish() {
        if (closed_loop_ && Clock::now() >= end_) sending_done_ = true;
        if (finished_ || !started_ || !sending_done_ || !backlog_.empty()) return;
        for (const auto& c : conns_)
            if (c->busy) return;
        finished_ = true;
        for (auto& c : conns_)
            close(*c);
        tick_.cancel();
        sweep_.cancel();
    }

  private:
    const Options& opts_;
    const std::string& request_;
    tcp::endpoint endpoint_;
    bifrost::LatencyHistogram& hist_;
    bifrost::LatencyHistogram& first_hist_;
    asio::io_context ioc_;
    asio::steady_timer tick_;
    asio::steady_timer sweep_;
    bool closed_loop_;
    std::size_t initial_connections_;
    std::size_t max_in_flight_;
    double interval_ns_;
    std::size_t phase_, stride_;

    std::vector<std::unique_ptr<Connection>> conns_;
    std::vector<Connection*> free_;  // closed slots to reuse
    std::vector<Connection*> idle_;  // open, waiting for a request (open loop)
    std::deque<Clock::time_point> backlog_;
    std::size_t open_ = 0;
    Counts counts_;

    Clock::time_point start_{}, measure_from_{}, end_{}, drain_until_{}, next_{};
    nanoseconds timeout_{0};
    std::uint64_t k_ = 0;
    bool started_ = false;
    bool sending_done_ = false;
    bool finished_ = false;
};

void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

double us(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (const int rc = parse_flags(argc, argv, o)) return rc < 0 ? 0 : rc;
    const auto url = parse_url(o.url);
    if (!url) {
        std::fprintf(stderr, "bifrost-loadgen: --url must be http://host[:port][/path]\n");
        return 2;
    }
    raise_fd_limit();

    tcp::endpoint endpoint;
    {
        asio::io_context ioc;
        tcp::resolver resolver(ioc);
        beast::error_code ec;
        const auto results = resolver.resolve(url->host, url->port, ec);
        if (ec || results.empty()) {
            std::fprintf(stderr, "bifrost-loadgen: cannot resolve %s: %s\n", url->host.c_str(),
                         ec.message().c_str());
            return 1;
        }
        endpoint = results.begin()->endpoint();
    }

    const std::string request = build_request(o, *url);
    bifrost::LatencyHistogram hist;
    bifrost::LatencyHistogram first_hist;  // the first body bytes of each answer
    const bool open_loop = o.rate > 0;
    std::vector<std::unique_ptr<Worker>> workers;
    for (std::size_t i = 0; i < o.threads; ++i) {
        const std::size_t conns = o.connections / o.threads + (i < o.connections % o.threads);
        const std::size_t limit = o.max_in_flight / o.threads + (i < o.max_in_flight % o.threads);
        workers.push_back(std::make_unique<Worker>(o, request, endpoint, hist, first_hist, conns,
                                                   o.rate / static_cast<double>(o.threads), limit,
                                                   i, o.threads));
    }
    for (auto& w : workers)
        w->prepare();

    const auto start = Clock::now() + std::chrono::milliseconds(20);
    std::vector<std::thread> threads;
    for (auto& w : workers)
        threads.emplace_back([&w, start] { w->run(start); });
    for (auto& t : threads)
        t.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

    Counts total;
    for (const auto& w : workers)
        total.add(w->counts());
    const bifrost::LatencySummary s = hist.summary();
    const bifrost::LatencySummary fs = first_hist.summary();
    const double window = o.duration - o.warmup;
    const double rps = static_cast<double>(total.in_window) / window;
    const std::uint64_t errors = total.measured - total.ok;

    if (!o.quiet) {
        std::printf("bifrost-loadgen: %s -> %s\n", open_loop ? "open loop" : "closed loop",
                    o.url.c_str());
        if (open_loop)
            std::printf("  load         %.0f req/s due, max %zu in flight, %zu thread(s)\n", o.rate,
                        o.max_in_flight, o.threads);
        else
            std::printf("  load         %zu connection(s), %zu thread(s)\n", o.connections,
                        o.threads);
        std::printf("  time         %.1f s measured after %.1f s warm-up (%.1f s in all)\n", window,
                    o.warmup, elapsed);
        std::printf("  requests     %llu measured: %llu ok, %llu errors\n",
                    static_cast<unsigned long long>(total.measured),
                    static_cast<unsigned long long>(total.ok),
                    static_cast<unsigned long long>(errors));
        std::printf("  throughput   %.1f req/s\n", rps);
        std::printf(
            "  latency      p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  "
            "max %.1f us  mean %.1f us\n",
            us(s.p50_ns), us(s.p90_ns), us(s.p99_ns), us(s.p999_ns), us(s.max_ns), s.mean_ns / 1e3);
        if (o.stream)
            std::printf(
                "  first chunk  p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  "
                "max %.1f us  mean %.1f us\n",
                us(fs.p50_ns), us(fs.p90_ns), us(fs.p99_ns), us(fs.p999_ns), us(fs.max_ns),
                fs.mean_ns / 1e3);
        for (const auto& [status, n] : total.by_status)
            std::printf("  error        HTTP %d: %llu\n", status,
                        static_cast<unsigned long long>(n));
        for (const auto& [cause, n] : total.by_cause)
            std::printf("  error        %s: %llu\n", cause.c_str(),
                        static_cast<unsigned long long>(n));
        std::printf("  connections  %llu opened, at most %llu open",
                    static_cast<unsigned long long>(total.connections_opened),
                    static_cast<unsigned long long>(total.max_open));
        if (open_loop)
            std::printf("; backlog at most %llu; send lag at most %.1f us",
                        static_cast<unsigned long long>(total.max_backlog),
                        static_cast<double>(total.max_lag.count()) / 1e3);
        std::printf("\n");
    }

    if (!o.json_path.empty()) {
        std::string j = "{";
        const auto num = [&](std::string_view k, double v, bool comma = true) {
            char b[64];
            std::snprintf(b, sizeof b, "%.10g", v);
            j += json_string(k) + ":" + b + (comma ? "," : "");
        };
        j += "\"label\":" + json_string(o.label) + ",";
        j += "\"mode\":" + json_string(open_loop ? "open" : "closed") + ",";
        j += "\"url\":" + json_string(o.url) + ",";
        j += "\"model\":" + json_string(o.model) + ",";
        num("connections", static_cast<double>(o.connections));
        num("rate", o.rate);
        num("max_in_flight", static_cast<double>(o.max_in_flight));
        num("threads", static_cast<double>(o.threads));
        num("duration_s", o.duration);
        num("warmup_s", o.warmup);
        num("elapsed_s", elapsed);
        num("requests", static_cast<double>(total.measured));
        num("ok", static_cast<double>(total.ok));
        num("errors", static_cast<double>(errors));
        num("throughput_rps", rps);
        num("sent_total", static_cast<double>(total.sent));
        num("answered_total", static_cast<double>(total.answered));
        num("connections_opened", static_cast<double>(total.connections_opened));
        num("max_open_connections", static_cast<double>(total.max_open));
        num("max_backlog", static_cast<double>(total.max_backlog));
        num("max_send_lag_us", static_cast<double>(total.max_lag.count()) / 1e3);
        j += "\"latency_us\":{";
        num("p50", us(s.p50_ns));
        num("p90", us(s.p90_ns));
        num("p99", us(s.p99_ns));
        num("p999", us(s.p999_ns));
        num("max", us(s.max_ns));
        num("mean", s.mean_ns / 1e3, false);
        j += "},";
        if (o.stream) {
            j += "\"first_chunk_us\":{";
            num("p50", us(fs.p50_ns));
            num("p90", us(fs.p90_ns));
            num("p99", us(fs.p99_ns));
            num("p999", us(fs.p999_ns));
            num("max", us(fs.max_ns));
            num("mean", fs.mean_ns / 1e3, false);
            j += "},";
        }
        j += "\"errors_by_status\":{";
        bool first = true;
        for (const auto& [status, n] : total.by_status) {
            if (!first) j += ",";
            first = false;
            num(std::to_string(status), static_cast<double>(n), false);
        }
        j += "},\"errors_by_cause\":{";
        first = true;
        for (const auto& [cause, n] : total.by_cause) {
            if (!first) j += ",";
            first = false;
            num(cause, static_cast<double>(n), false);
        }
        j += "}}\n";
        std::FILE* f = std::fopen(o.json_path.c_str(), "w");
        if (!f) {
            std::fprintf(stderr, "bifrost-loadgen: cannot write %s\n", o.json_path.c_str());
            return 1;
        }
        std::fwrite(j.data(), 1, j.size(), f);
        std::fclose(f);
    }
    return 0;
}
