#pragma once
/// \file
/// Per-provider and gateway-wide configuration, with Bifrost's names and defaults
/// (concurrency 10, buffer 100, pool 100, timeout 30 s, no retries, backoff 500 ms -> 5000 ms).

#include <bifrost/core/circuit_breaker.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost {

/// A credential. Holds the text but never prints it: there is no stream operator and no implicit
/// conversion; `reveal()` is the one way to read it and is meant for building upstream requests.
class Secret {
  public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}

    [[nodiscard]] std::string_view reveal() const noexcept { return value_; }
    [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
    /// A form safe for logs: "<empty>" or "<redacted:N chars>".
    [[nodiscard]] std::string redacted() const {
        return value_.empty() ? "<empty>"
                              : "<redacted:" + std::to_string(value_.size()) + " chars>";
    }

    friend bool operator==(const Secret&, const Secret&) = default;

  private:
    std::string value_;
};

/// One API key of a provider (`providers.<name>.keys[]`).
struct Key {
    Secret value;
    std::vector<std::string> models;  ///< models this key serves; empty = every model
    double weight = 1.0;              ///< relative share among keys serving the model
    bool enabled = true;
    std::string id;  ///< optional label, safe to log
    /// Provider-specific key settings (`azure_key_config`, `bedrock_key_config`,
    /// `vertex_key_config`), verbatim.
    boost::json::object settings;
};

/// `network_config`.
struct NetworkConfig {
    std::string base_url;  ///< overrides the provider's default URL when non-empty
    std::vector<std::pair<std::string, std::string>> extra_headers;
    std::chrono::seconds default_request_timeout{30};
    int max_retries = 0;
    std::chrono::milliseconds retry_backoff_initial{500};
    std::chrono::milliseconds retry_backoff_max{5000};
    /// PEM text of extra CA certificates trusted for HTTPS upstreams (on top of the system's).
    std::string ca_cert_pem;
    /// Skips HTTPS certificate and host name verification. For tests and trusted networks only.
    bool insecure_skip_verify = false;
};

/// `concurrency_and_buffer_size`.
struct ConcurrencyAndBufferSize {
    std::size_t concurrency = 10;   ///< most requests in flight to this provider at once
    std::size_t buffer_size = 100;  ///< capacity of this provider's queue
    /// OS threads serving this provider (each runs an event loop; `concurrency` requests are
    /// multiplexed over them). A bifrost-cpp extension; 1 suits I/O-bound upstreams.
    std::size_t worker_threads = 1;
};

/// `proxy_config`.
struct ProxyConfig {
    std::string type;  ///< "http" (or empty for none)
    std::string url;
    std::string username;
    Secret password;
};

/// Everything one provider instance needs.
struct ProviderConfig {
    std::vector<Key> keys;
    NetworkConfig network_config;
    ConcurrencyAndBufferSize concurrency_and_buffer_size;
    std::optional<ProxyConfig> proxy_config;
    CircuitBreakerConfig circuit_breaker;
};

/// Gateway-wide options (`client` in config.json, plus tuning knobs).
struct GatewayOptions {
    /// Objects warmed in the request pool at start (`client.initial_pool_size`).
    /// Each object carries one attempt: a request with fallbacks may use one per attempt.
    std::size_t initial_pool_size = 100;
    /// How long a caller blocked in `chat()` spins before sleeping. Spinning saves a futex
    /// wake-up (several microseconds) when responses are fast; 0 disables it.
    std::chrono::nanoseconds caller_spin{std::chrono::microseconds(20)};
    /// How long an idle worker thread spins on its queue before parking.
    std::chrono::nanoseconds worker_spin{std::chrono::microseconds(20)};
    /// How long `shutdown()` lets queued and in-flight requests finish before cancelling them.
    std::chrono::milliseconds drain_timeout{5000};
};

}  // namespace bifrost
