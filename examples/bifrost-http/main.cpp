// bifrost-http: an OpenAI-compatible gateway server configured by Bifrost's config.json.
//
//   bifrost-http [-config FILE] [-host 127.0.0.1] [-port 8080] [-pool-size N]
//                [-drop-excess-requests] [-log-level info] [-io-threads 2]
//
// With no -config it serves a built-in `mock` provider (a simulated LLM answering "Echo: ..."
// after a few milliseconds, a word at a time when streamed), so it can be tried at once:
//
//   curl localhost:8080/v1/chat/completions
//        -d '{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
//
// SIGTERM or SIGINT drains: no new connections, requests in flight finish, exit status 0.

#include <bifrost/bifrost.hpp>
#include <bifrost/config/config.hpp>
#include <bifrost/server/server.hpp>
#include <bifrost/transport/variant.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include <pthread.h>

namespace {

// Real providers go over HTTP(S) with transport::Beast; the built-in `mock` provider (a
// simulated LLM) runs in process on transport::Mock. The provider's transport options pick one.
using Transport = bifrost::transport::Variant<bifrost::transport::Beast, bifrost::transport::Mock>;
using Gateway = bifrost::Gateway<Transport,
                                 bifrost::queue::FromConfig,    // client.drop_excess_requests
                                 bifrost::pool::Preallocated>;  // client.initial_pool_size

// Providers this build serves: the OpenAI-format family and the native ones (each at its
// default URL unless network_config.base_url says otherwise) and the built-in `mock`.
std::vector<std::string> served_providers() {
    std::vector<std::string> names(bifrost::providers::OpenAIFamily::names.begin(),
                                   bifrost::providers::OpenAIFamily::names.end());
    names.insert(names.end(), bifrost::providers::NativeFamily::names.begin(),
                 bifrost::providers::NativeFamily::names.end());
    names.emplace_back("sgl");
    names.emplace_back("mock");
    return names;
}

// The built-in mock: first answer after 5 ms, then (when streaming) a word every 10 ms.
constexpr std::chrono::milliseconds mock_latency{5};
constexpr std::chrono::milliseconds mock_word_interval{10};

struct Flags {
    std::string config;
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::optional<std::size_t> pool_size;
    bool drop_excess_requests = false;
    bifrost::server::LogLevel log_level = bifrost::server::LogLevel::info;
    std::size_t io_threads = 2;
    bool connections_on_workers = true;
    std::size_t worker_spin_us = 20;
};

void usage(std::FILE* out) {
    std::fputs(
        "usage: bifrost-http [flags]\n"
        "\n"
        "An OpenAI-compatible AI gateway. Routes: POST /v1/chat/completions (plain or\n"
        "\"stream\": true), POST /v1/embeddings, POST /v1/completions, GET /v1/models (also\n"
        "under /openai/v1), GET /health, GET /metrics, GET /api/stats.\n"
        "\n"
        "  -config FILE             Bifrost config.json (default: a built-in `mock` provider)\n"
        "  -host ADDR               address to listen on (default 127.0.0.1)\n"
        "  -port N                  port to listen on (default 8080; 0 picks a free one)\n"
        "  -pool-size N             request objects warmed at start (default: the config's\n"
        "                           client.initial_pool_size, else 300)\n"
        "  -drop-excess-requests    answer 503 when a provider's queue is full instead of\n"
        "                           waiting (default: the config's client.drop_excess_requests)\n"
        "  -log-level LEVEL         debug, info, warn or error (default info)\n"
        "  -io-mode MODE            where client connections are served: workers (default:\n"
        "                           on the providers' worker threads, so a request is read,\n"
        "                           sent upstream and answered on one thread) or threads (on\n"
        "                           I/O threads of their own)\n"
        "  -io-threads N            HTTP I/O threads with -io-mode threads (default 2)\n"
        "  -worker-spin-us N        how long an idle worker thread polls for work before it\n"
        "                           sleeps, in microseconds (default 20; 0: sleep at once, for\n"
        "                           machines whose cores are shared with other busy work)\n"
        "  -help, --help            this text\n",
        out);
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

/// Go-style flags: `-name value`, `-name=value`, `--name` alike. Returns 0 to go on, else the
/// exit status (after printing help or an error).
int parse_flags(int argc, char** argv, Flags& f) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg(argv[i]);
        if (arg.substr(0, 2) == "--") arg.remove_prefix(1);
        if (arg.empty() || arg[0] != '-') {
            std::fprintf(stderr, "bifrost-http: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        arg.remove_prefix(1);
        std::string_view name = arg;
        std::optional<std::string_view> value;
        if (const auto eq = arg.find('='); eq != std::string_view::npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
        }
        if (name == "help" || name == "h") {
            usage(stdout);
            return -1;
        }
        if (name == "drop-excess-requests") {
            if (!value || *value == "true" || *value == "1") {
                f.drop_excess_requests = true;
            } else if (*value == "false" || *value == "0") {
                f.drop_excess_requests = false;
            } else {
                std::fprintf(stderr, "bifrost-http: -drop-excess-requests takes true or false\n");
                return 2;
            }
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bifrost-http: flag -%.*s needs a value\n",
                             static_cast<int>(name.size()), name.data());
                return 2;
            }
            value = std::string_view(argv[++i]);
        }
        bool ok = true;
        if (name == "config") {
            f.config = *value;
        } else if (name == "host") {
            f.host = *value;
        } else if (name == "port") {
            ok = parse_number(*value, f.port);
        } else if (name == "pool-size") {
            std::size_t n = 0;
            ok = parse_number(*value, n) && n > 0;
            f.pool_size = n;
        } else if (name == "log-level") {
            ok = bifrost::server::parse_log_level(*value, f.log_level);
        } else if (name == "io-mode") {
            ok = *value == "workers" || *value == "threads";
            f.connections_on_workers = *value == "workers";
        } else if (name == "io-threads") {
            ok = parse_number(*value, f.io_threads) && f.io_threads > 0 && f.io_threads <= 256;
        } else if (name == "worker-spin-us") {
            ok = parse_number(*value, f.worker_spin_us) && f.worker_spin_us <= 1'000'000;
        } else {
            std::fprintf(stderr, "bifrost-http: unknown flag -%.*s\n",
                         static_cast<int>(name.size()), name.data());
            usage(stderr);
            return 2;
        }
        if (!ok) {
            std::fprintf(stderr, "bifrost-http: invalid value '%.*s' for -%.*s\n",
                         static_cast<int>(value->size()), value->data(),
                         static_cast<int>(name.size()), name.data());
            return 2;
        }
    }
    return 0;
}

/// The configuration used without -config: one keyless `mock` provider.
bifrost::Config default_config() {
    bifrost::Config cfg;
    bifrost::ProviderConfig mock;
    mock.keys.push_back({bifrost::Secret(), {}, 1.0, true, "mock", {}});
    mock.concurrency_and_buffer_size = {1000, 10000, 1};
    cfg.providers.push_back({"mock", std::move(mock)});
    return cfg;
}

}  // namespace

int main(int argc, char** argv) {
    Flags flags;
    if (const int rc = parse_flags(argc, argv, flags)) return rc < 0 ? 0 : rc;

    bifrost::server::Logger logger(flags.log_level);
    bifrost::Config cfg;
    if (flags.config.empty()) {
        cfg = default_config();
    } else {
        bifrost::ConfigOptions co;
        co.providers = served_providers();
        if (auto err = bifrost::load_config(flags.config, cfg, co)) {
            std::fprintf(stderr, "bifrost-http: bad config: %s\n", err->message().c_str());
            return 1;
        }
        for (const auto& path : cfg.ignored)
            logger.line(bifrost::server::LogLevel::debug, "config member ignored")
                .field("path", path);
    }

    // Every thread started from here on inherits this mask; main receives the signals in
    // sigwait below.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    bifrost::GatewayOptions options;
    options.worker_spin = std::chrono::microseconds(flags.worker_spin_us);
    options.initial_pool_size =
        flags.pool_size.value_or(cfg.client.initial_pool_size.value_or(300));
    const bool drop = flags.drop_excess_requests || cfg.client.drop_excess_requests;
    Gateway gw(options, bifrost::queue::FromConfig{drop});

    for (auto& [name, pc] : cfg.providers) {
        Transport::Options transport;
        if (name == "mock") {
            transport = bifrost::transport::Mock::Options{
                bifrost::transport::mock::stream_echo(mock_word_interval, mock_latency)};
        } else {
            bifrost::transport::Beast::Options http;
            // A worker's connections to one upstream host: enough for the provider's
            // concurrency, split over its worker threads.
            const auto& cb = pc.concurrency_and_buffer_size;
            const std::size_t threads = std::max<std::size_t>(1, cb.worker_threads);
            http.max_connections_per_host =
                std::max<std::size_t>(1, (cb.concurrency + threads - 1) / threads);
            transport = http;
        }
        std::optional<bifrost::Error> err;
        // Every OpenAI-format service goes through one provider type (OpenAI's format at that
        // service's URL): the engine is compiled once for all of them, not once per service.
        std::optional<bifrost::providers::OpenAIFormat> format;
        if (name == "mock") format.emplace();
        bifrost::providers::with_provider_type(
            name, [&](auto p) { format = bifrost::providers::OpenAIFormat::of<decltype(p)>(); });
        if (format) {
            // Keyless services (and the mock) get one empty key: nothing is sent.
            if (pc.keys.empty()) pc.keys.push_back({bifrost::Secret(), {}, 1.0, true, "none", {}});
            err = gw.add_provider(name, pc, *format, std::move(transport));
        } else if (!bifrost::providers::NativeFamily::visit(name, [&](auto p) {
                       err = gw.add_provider(name, pc, p, std::move(transport));
                   })) {
            std::fprintf(stderr, "bifrost-http: provider %s is not served by this build\n",
                         name.c_str());
            return 1;
        }
        if (err) {
            std::fprintf(stderr, "bifrost-http: provider %s: %s\n", name.c_str(),
                         err->message.c_str());
            return 1;
        }
        logger.line(bifrost::server::LogLevel::debug, "provider ready").field("provider", name);
    }

    bifrost::server::Options so;
    so.host = flags.host;
    so.port = flags.port;
    so.connections_on_workers = flags.connections_on_workers;
    // On workers, the server's own I/O thread only accepts.
    so.io_threads = flags.connections_on_workers ? 1 : flags.io_threads;
    if (cfg.client.max_request_body_size_mb)
        so.body_limit = *cfg.client.max_request_body_size_mb * 1024 * 1024;
    so.virtual_keys = cfg.virtual_keys;
    so.models = bifrost::server::models_of(cfg);
    if (flags.config.empty()) so.models = {{"mock", {"gpt-4o-mini", "gpt-4o"}}};
    so.logger = logger;

    bifrost::server::Server<Gateway> server(gw, so);
    if (auto err = server.start()) {
        std::fprintf(stderr, "bifrost-http: %s\n", err->c_str());
        return 1;
    }

    int sig = 0;
    sigwait(&signals, &sig);
    logger.line(bifrost::server::LogLevel::info, "signal received")
        .field("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.stop();
    gw.shutdown();
    return 0;
}
