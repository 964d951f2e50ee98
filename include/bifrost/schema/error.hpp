#pragma once
/// \file
/// `bifrost::Error`: the error value every failed request carries, with Bifrost's statuses and
/// types. Errors are values on the public API; exceptions never cross it.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace bifrost {

/// The `type` strings the gateway itself produces (provider errors keep the provider's own type).
namespace error_type {
inline constexpr std::string_view invalid_request = "invalid_request_error";
inline constexpr std::string_view request_dropped = "request_dropped";
inline constexpr std::string_view queue_timeout = "queue_timeout";
inline constexpr std::string_view request_timed_out = "request_timed_out";
inline constexpr std::string_view request_cancelled = "request_cancelled";
inline constexpr std::string_view shutting_down = "provider_shutting_down";
inline constexpr std::string_view circuit_open = "circuit_open";
inline constexpr std::string_view unknown_provider = "unknown_provider";
inline constexpr std::string_view no_key = "no_key_available";
inline constexpr std::string_view network = "network_error";
inline constexpr std::string_view upstream = "upstream_error";
inline constexpr std::string_view bad_response = "invalid_upstream_response";
inline constexpr std::string_view internal = "internal_error";
inline constexpr std::string_view plugin = "plugin_error";
inline constexpr std::string_view unsupported_operation = "unsupported_operation";
}  // namespace error_type

/// An error outcome: HTTP status, OpenAI-style `type`, human-readable message (says what and
/// where), the provider it concerns (empty for gateway-level errors), and OpenAI's optional
/// `code` / `param`. Messages never contain API keys.
struct Error {
    int status = 0;
    std::string type;
    std::string message;
    std::string provider;
    std::string code;
    std::string param;

    /// Resets to "no error" while keeping string capacity (objects are reused by the pools).
    void clear() noexcept {
        status = 0;
        type.clear();
        message.clear();
        provider.clear();
        code.clear();
        param.clear();
    }

    /// Assigns all fields at once, reusing capacity.
    Error& assign(int s, std::string_view t, std::string_view msg, std::string_view prov = {}) {
        status = s;
        type.assign(t);
        message.assign(msg);
        provider.assign(prov);
        code.clear();
        param.clear();
        return *this;
    }

    friend bool operator==(const Error&, const Error&) = default;
};

/// Thrown by a provider's `build_*` for a request its API cannot take (an input shape or model it
/// does not serve): the gateway answers 400 `invalid_request_error` with the message, as for any
/// malformed request. Any other exception from a provider is the gateway's fault (500).
class InvalidRequest : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

/// Factories for the gateway's own errors, with Bifrost's statuses.
namespace errors {

inline Error make(int status, std::string_view type, std::string message,
                  std::string_view provider = {}) {
    Error e;
    e.status = status;
    e.type.assign(type);
    e.message = std::move(message);
    e.provider.assign(provider);
    return e;
}

/// 400: the request is malformed; `message` says what and where, `param` names the field.
inline Error invalid_request(std::string message, std::string_view param = {}) {
    Error e = make(400, error_type::invalid_request, std::move(message));
    e.param.assign(param);
    return e;
}

/// 503 `request_dropped`: the provider's queue was full and the policy dropped the request.
inline Error request_dropped(std::string_view provider) {
    return make(503, error_type::request_dropped, "request dropped: queue is full", provider);
}

/// 503: the queue stayed full for the whole `BlockFor` timeout.
inline Error queue_timeout(std::string_view provider) {
    return make(503, error_type::queue_timeout, "queue full, timeout waiting", provider);
}

/// 503: the provider no longer accepts requests.
inline Error shutting_down(std::string_view provider) {
    return make(503, error_type::shutting_down, "provider is shutting down", provider);
}

/// 504 `request_timed_out`.
inline Error timed_out(std::string_view provider) {
    return make(504, error_type::request_timed_out, "request timed out", provider);
}

/// 499 `request_cancelled`.
inline Error cancelled(std::string_view provider) {
    return make(499, error_type::request_cancelled, "request cancelled by the caller", provider);
}

/// 500: an unexpected failure inside the gateway (an exception from a plugin, provider or
/// transport); the worker lives on.
inline Error internal(std::string message, std::string_view provider = {}) {
    return make(500, error_type::internal, std::move(message), provider);
}

/// 400 `unsupported_operation`: the provider cannot serve this kind of request (`operation` is
/// a readable name: "embeddings", "text completions", ...).
inline Error unsupported_operation(std::string_view provider, std::string_view operation) {
    std::string msg = "provider '";
    msg.append(provider).append("' does not support ").append(operation);
    Error e = make(400, error_type::unsupported_operation, std::move(msg), provider);
    e.code.assign(error_type::unsupported_operation);
    return e;
}

}  // namespace errors
}  // namespace bifrost
