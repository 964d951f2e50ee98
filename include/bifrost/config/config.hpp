#pragma once
/// \file
/// `Config`: a Bifrost-compatible `config.json` (the `client` section, `providers.<name>` with
/// keys, `network_config`, `concurrency_and_buffer_size`, `proxy_config`), plus bifrost-cpp's
/// `circuit_breaker` per provider and the server's access tokens (`governance.virtual_keys`).
///
/// ```json
/// {
///   "client": { "initial_pool_size": 300, "drop_excess_requests": false },
///   "providers": {
///     "openai": {
///       "keys": [ { "value": "env.OPENAI_API_KEY", "models": ["gpt-4o-mini"], "weight": 1.0 } ],
///       "network_config": { "default_request_timeout_in_seconds": 30, "max_retries": 2 },
///       "concurrency_and_buffer_size": { "concurrency": 10, "buffer_size": 100 },
///       "circuit_breaker": { "failure_threshold": 5, "cooldown_ms": 30000 }
///     }
///   },
///   "governance": { "virtual_keys": [ { "name": "team-a", "value": "env.BIFROST_VK_TEAM_A" } ] }
/// }
/// ```
///
/// A string `"env.NAME"` stands for the value of environment variable NAME (key values, key
/// settings, `base_url`, `extra_headers` values, `proxy_config` url/username/password, virtual
/// key values). Members this build does not use (Bifrost's `mcp`, `plugins`, stores, ...) are
/// ignored and listed in `Config::ignored`.
///
/// Errors are values: `load_config` returns a `ConfigError` naming the file, the JSON path
/// (`providers.openai.keys[0].value`) and the reason. Messages never contain a secret: values
/// read from the file or the environment are never echoed.

#include <bifrost/config/provider_config.hpp>
#include <bifrost/schema/json.hpp>

#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost {

/// A bearer token that grants access to the server (`governance.virtual_keys[]`). Requests send
/// it as `Authorization: Bearer <value>` or `x-bf-vk: <value>`.
struct VirtualKey {
    std::string name;  ///< a label, safe to log
    Secret value;
    bool is_active = true;
};

/// The `client` section.
struct ClientConfig {
    /// `initial_pool_size`; unset when the file does not say (the library's default is 100,
    /// bifrost-http's 300).
    std::optional<std::size_t> initial_pool_size;
    bool drop_excess_requests = false;
    /// `max_request_body_size_mb`: the server's request body limit; unset = the server's default.
    std::optional<std::size_t> max_request_body_size_mb;
};

/// One configured provider instance.
struct NamedProvider {
    std::string name;
    ProviderConfig config;
};

/// A whole configuration file.
struct Config {
    ClientConfig client;
    std::vector<NamedProvider> providers;  ///< in file order
    std::vector<VirtualKey> virtual_keys;  ///< empty: the server needs no token
    std::vector<std::string> ignored;      ///< paths of members this build does not use

    /// The provider named `name`, or nullptr.
    [[nodiscard]] const ProviderConfig* provider(std::string_view name) const noexcept {
        for (const auto& p : providers)
            if (p.name == name) return &p.config;
        return nullptr;
    }
};

/// What went wrong, where. `path` is empty for file-level problems (unreadable, not JSON).
struct ConfigError {
    std::string file;
    std::string path;
    std::string reason;

    /// `file: path: reason` (or `file: reason`).
    [[nodiscard]] std::string message() const {
        std::string m = file.empty() ? std::string("config") : file;
        m += ": ";
        if (!path.empty()) m.append(path).append(": ");
        return m + reason;
    }
};

/// Provider names Bifrost knows. `keyless_providers` need no keys.
inline constexpr std::string_view known_providers[] = {
    "openai", "anthropic", "azure", "bedrock", "cohere", "vertex", "mistral", "ollama", "groq",
    "sgl", "parasail", "cerebras", "gemini", "openrouter", "vllm", "perplexity", "xai", "mock",
    // bifrost-cpp additions: more OpenAI-compatible services
    "sglang", "together", "fireworks", "deepseek"};
inline constexpr std::string_view keyless_providers[] = {"ollama", "sgl", "sglang", "vllm", "mock"};

/// How `parse_config` / `load_config` read a file.
struct ConfigOptions {
    /// Accepted provider names; empty = `known_providers`.
    std::vector<std::string> providers;
    /// Reads an environment variable (default: `std::getenv`). Returns nullopt when unset.
    std::function<std::optional<std::string>(const std::string&)> getenv;
};

namespace detail::config {

namespace json = boost::json;

/// Thrown inside the reader only; `parse_config` turns it into a `ConfigError`.
struct Failure {
    std::string path;
    std::string reason;
};

using json_impl::kind_name;

inline std::string join(std::string_view path, std::string_view key) {
    std::string p(path);
    if (!p.empty()) p.push_back('.');
    return p.append(key);
}

inline std::string index(std::string_view path, std::size_t i) {
    return std::string(path).append("[").append(std::to_string(i)).append("]");
}

class Reader {
  public:
    explicit Reader(const ConfigOptions& o) : options_(o) {}

    [[noreturn]] static void fail(std::string path, std::string reason) {
        throw Failure{std::move(path), std::move(reason)};
    }

    static const json::object& object(const json::value& v, const std::string& path) {
        if (!v.is_object()) fail(path, "expected an object, got " + std::string(kind_name(v)));
        return v.get_object();
    }
    static const json::array& array(const json::value& v, const std::string& path) {
        if (!v.is_array()) fail(path, "expected an array, got " + std::string(kind_name(v)));
        return v.get_array();
    }
    static bool boolean(const json::value& v, const std::string& path) {
        if (!v.is_bool()) fail(path, "expected true or false, got " + std::string(kind_name(v)));
        return v.get_bool();
    }
    static double number(const json::value& v, const std::string& path) {
        if (v.is_int64()) return static_cast<double>(v.get_int64());
        if (v.is_uint64()) return static_cast<double>(v.get_uint64());
        if (v.is_double()) return v.get_double();
        fail(path, "expected a number, got " + std::string(kind_name(v)));
    }
    /// An integer in [lo, hi]; a double with an integral value is accepted.
    static std::int64_t integer(const json::value& v, const std::string& path, std::int64_t lo,
                                std::int64_t hi) {
        std::int64_t n = 0;
        if (v.is_int64()) {
            n = v.get_int64();
        } else if (v.is_uint64()) {
            n = std::numeric_limits<std::int64_t>::max();
        } else if (v.is_double() && v.get_double() == static_cast<double>(static_cast<std::int64_t>(
                                                          v.get_double()))) {
            n = static_cast<std::int64_t>(v.get_double());
        } else {
            fail(path, "expected an integer, got " + std::string(kind_name(v)));
        }
        if (n < lo || n > hi)
            fail(path, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
        return n;
    }
    static std::string plain_string(const json::value& v, const std::string& path) {
        if (!v.is_string()) fail(path, "expected a string, got " + std::string(kind_name(v)));
        return std::string(v.get_string());
    }
    /// A string that may be `"env.NAME"`.
    std::string string(const json::value& v, const std::string& path) const {
        std::string s = plain_string(v, path);
        if (s.rfind("env.", 0) != 0) return s;
        const std::string var = s.substr(4);
        if (var.empty()) fail(path, "\"env.\" names no environment variable");
        std::optional<std::string> value;
        if (options_.getenv) {
            value = options_.getenv(var);
        } else if (const char* e = std::getenv(var.c_str())) {
            value = std::string(e);
        }
        if (!value) fail(path, "environment variable " + var + " is not set");
        return std::move(*value);
    }

    /// Calls `on(key, value, path)` for each member; members not in `known` are recorded as
    /// ignored.
    template <class F>
    void members(const json::object& o, const std::string& path,
                 std::initializer_list<std::string_view> known, F&& on) {
        for (const auto& kv : o) {
            const std::string_view key = kv.key();
            const std::string p = join(path, key);
            if (std::find(known.begin(), known.end(), key) == known.end()) {
                ignored_.push_back(p);
                continue;
            }
            on(key, kv.value(), p);
        }
    }

    Config read(const json::value& root) {
        Config cfg;
        const auto& top = object(root, "");
        members(top, "", {"client", "providers", "governance"},
                [&](std::string_view key, const json::value& v, const std::string& p) {
                    if (key == "client") read_client(v, p, cfg.client);
                    if (key == "providers") read_providers(v, p, cfg);
                    if (key == "governance") read_governance(v, p, cfg);
                });
        cfg.ignored = std::move(ignored_);
        return cfg;
    }

  private:
    void read_client(const json::value& v, const std::string& path, ClientConfig& c) {
        members(object(v, path), path,
                {"initial_pool_size", "drop_excess_requests", "max_request_body_size_mb"},
                [&](std::string_view key, const json::value& x, const std::string& p) {
                    if (key == "initial_pool_size")
                        c.initial_pool_size = static_cast<std::size_t>(integer(x, p, 1, 1 << 24));
                    if (key == "drop_excess_requests") c.drop_excess_requests = boolean(x, p);
                    if (key == "max_request_body_size_mb")
                        c.max_request_body_size_mb =
                            static_cast<std::size_t>(integer(x, p, 1, 1 << 16));
                });
    }

    bool accepted(std::string_view name) const {
        if (options_.providers.empty())
            return std::find(std::begin(known_providers), std::end(known_providers), name) !=
                   std::end(known_providers);
        return std::find(options_.providers.begin(), options_.providers.end(), name) !=
               options_.providers.end();
    }

    std::string accepted_list() const {
        std::string s;
        const auto add = [&](std::string_view n) {
            if (!s.empty()) s += ", ";
            s += n;
        };
        if (options_.providers.empty()) {
            for (auto n : known_providers)
                add(n);
        } else {
            for (const auto& n : options_.providers)
                add(n);
        }
        return s;
    }

    void read_providers(const json::value& v, const std::string& path, Config& cfg) {
        for (const auto& kv : object(v, path)) {
            const std::string name(kv.key());
            const std::string p = join(path, name);
            if (!accepted(name))
                fail(p, "unknown provider '" + name + "' (known: " + accepted_list() + ")");
            NamedProvider np{name, {}};
            read_provider(kv.value(), p, name, np.config);
            cfg.providers.push_back(std::move(np));
        }
    }

    void read_provider(const json::value& v, const std::string& path, std::string_view name,
                       ProviderConfig& c) {
        bool has_keys = false;
        members(object(v, path), path,
                {"keys", "network_config", "concurrency_and_buffer_size", "proxy_config",
                 "circuit_breaker"},
                [&](std::string_view key, const json::value& x, const std::string& p) {
                    if (key == "keys") {
                        const auto& arr = array(x, p);
                        for (std::size_t i = 0; i < arr.size(); ++i)
                            c.keys.push_back(read_key(arr[i], index(p, i)));
                        has_keys = !arr.empty();
                    }
                    if (key == "network_config") read_network(x, p, c.network_config);
                    if (key == "concurrency_and_buffer_size")
                        read_concurrency(x, p, c.concurrency_and_buffer_size);
                    if (key == "proxy_config") read_proxy(x, p, c);
                    if (key == "circuit_breaker") read_breaker(x, p, c.circuit_breaker);
                });
        const bool keyless = std::find(std::begin(keyless_providers), std::end(keyless_providers),
                                       name) != std::end(keyless_providers);
        if (!has_keys && !keyless)
            fail(join(path, "keys"), "provider '" + std::string(name) + "' needs at least one key");
    }

    Key read_key(const json::value& v, const std::string& path) {
        Key k;
        members(object(v, path), path,
                {"value", "models", "weight", "enabled", "id", "name", "azure_key_config",
                 "bedrock_key_config", "vertex_key_config"},
                [&](std::string_view key, const json::value& x, const std::string& p) {
                    if (key == "value") k.value = Secret(string(x, p));
                    if (key == "models") {
                        const auto& arr = array(x, p);
                        for (std::size_t i = 0; i < arr.size(); ++i)
                            k.models.push_back(plain_string(arr[i], index(p, i)));
                    }
                    if (key == "weight") {
                        k.weight = number(x, p);
                        if (!(k.weight >= 0)) fail(p, "must not be negative");
                    }
                    if (key == "enabled") k.enabled = boolean(x, p);
                    if (key == "id" || key == "name") k.id = plain_string(x, p);
                    if (key.ends_with("_key_config")) {
                        json::value resolved = x;
                        resolve_env(resolved, p);
                        k.settings.emplace(key, std::move(resolved));
                    }
                });
        return k;
    }

    /// Replaces every `"env.NAME"` string inside `v` by the variable's value.
    void resolve_env(json::value& v, const std::string& path) const {
        if (v.is_string()) {
            v = string(v, path);
        } else if (v.is_object()) {
            for (auto& kv : v.get_object())
                resolve_env(kv.value(), join(path, kv.key()));
        } else if (v.is_array()) {
            auto& arr = v.get_array();
            for (std::size_t i = 0; i < arr.size(); ++i)
                resolve_env(arr[i], index(path, i));
        }
    }

    void read_network(const json::value& v, const std::string& path, NetworkConfig& n) {
        members(
            object(v, path), path,
            {"base_url", "extra_headers", "default_request_timeout_in_seconds", "max_retries",
             "retry_backoff_initial", "retry_backoff_max"},
            [&](std::string_view key, const json::value& x, const std::string& p) {
                if (key == "base_url") {
                    n.base_url = string(x, p);
                    if (!n.base_url.empty() && n.base_url.rfind("http://", 0) != 0 &&
                        n.base_url.rfind("https://", 0) != 0)
                        fail(p, "must start with http:// or https://");
                }
                if (key == "extra_headers") {
                    for (const auto& h : object(x, p)) {
                        const std::string hp = join(p, h.key());
                        if (h.key().empty()) fail(hp, "a header name must not be empty");
                        n.extra_headers.emplace_back(std::string(h.key()), string(h.value(), hp));
                    }
                }
                if (key == "default_request_timeout_in_seconds")
                    n.default_request_timeout = std::chrono::seconds(integer(x, p, 1, 86400));
                if (key == "max_retries") n.max_retries = static_cast<int>(integer(x, p, 0, 100));
                if (key == "retry_backoff_initial")
                    n.retry_backoff_initial =
                        std::chrono::milliseconds(integer(x, p, 0, 3'600'000));
                if (key == "retry_backoff_max")
                    n.retry_backoff_max = std::chrono::milliseconds(integer(x, p, 0, 3'600'000));
            });
        if (n.retry_backoff_max < n.retry_backoff_initial)
            fail(join(path, "retry_backoff_max"),
                 "must not be less than retry_backoff_initial (" +
                     std::to_string(n.retry_backoff_initial.count()) + " ms)");
    }

    void read_concurrency(const json::value& v, const std::string& path,
                          ConcurrencyAndBufferSize& c) {
        members(object(v, path), path, {"concurrency", "buffer_size", "worker_threads"},
                [&](std::string_view key, const json::value& x, const std::string& p) {
                    if (key == "concurrency")
                        c.concurrency = static_cast<std::size_t>(integer(x, p, 1, 1'000'000));
                    if (key == "buffer_size")
                        c.buffer_size = static_cast<std::size_t>(integer(x, p, 1, 10'000'000));
                    if (key == "worker_threads")
                        c.worker_threads = static_cast<std::size_t>(integer(x, p, 1, 256));
                });
    }

    void read_proxy(const json::value& v, const std::string& path, ProviderConfig& c) {
        ProxyConfig proxy;
        members(object(v, path), path, {"type", "url", "username", "password"},
                [&](std::string_view key, const json::value& x, const std::string& p) {
                    if (key == "type") {
                        proxy.type = plain_string(x, p);
                        if (proxy.type != "none" && proxy.type != "http" &&
                            proxy.type != "socks5" && proxy.type != "environment" &&
                            !proxy.type.empty())
                            fail(p, "must be one of none, http, socks5, environment");
                    }
                    if (key == "url") proxy.url = string(x, p);
                    if (key == "username") proxy.username = string(x, p);
                    if (key == "password") proxy.password = Secret(string(x, p));
                });
        if (proxy.type == "none" || proxy.type.empty()) return;
        if ((proxy.type == "http" || proxy.type == "socks5") && proxy.url.empty())
            fail(join(path, "url"), "a " + proxy.type + " proxy needs a url");
        c.proxy_config = std::move(proxy);
    }

    void read_breaker(const json::value& v, const std::string& path, CircuitBreakerConfig& b) {
        members(object(v, path), path, {"failure_threshold", "cooldown_ms"},
                [&](std::string_view key, const json::value& x, const std::string& p) {
                    if (key == "failure_threshold")
                        b.failure_threshold =
                            static_cast<std::uint32_t>(integer(x, p, 0, 1'000'000));
                    if (key == "cooldown_ms")
                        b.cooldown = std::chrono::milliseconds(integer(x, p, 0, 86'400'000));
                });
    }

    void read_governance(const json::value& v, const std::string& path, Config& cfg) {
        members(object(v, path), path, {"virtual_keys"},
                [&](std::string_view, const json::value& x, const std::string& p) {
                    const auto& arr = array(x, p);
                    for (std::size_t i = 0; i < arr.size(); ++i) {
                        const std::string vp = index(p, i);
                        VirtualKey vk;
                        bool has_value = false;
                        members(
                            object(arr[i], vp), vp, {"name", "id", "value", "is_active"},
                            [&](std::string_view key, const json::value& y, const std::string& q) {
                                if (key == "name" || key == "id") {
                                    if (vk.name.empty() || key == "name")
                                        vk.name = plain_string(y, q);
                                }
                                if (key == "value") {
                                    vk.value = Secret(string(y, q));
                                    has_value = true;
                                }
                                if (key == "is_active") vk.is_active = boolean(y, q);
                            });
                        if (!has_value || vk.value.empty())
                            fail(join(vp, "value"), "a virtual key needs a non-empty value");
                        cfg.virtual_keys.push_back(std::move(vk));
                    }
                });
    }

    const ConfigOptions& options_;
    std::vector<std::string> ignored_;
};

/// "line L, column C" of byte offset `pos` in `text`.
inline std::string position(std::string_view text, std::size_t pos) {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < pos && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

}  // namespace detail::config

/// Reads configuration text. `file` names the source in errors. Returns the error, or nullopt
/// with `out` filled. Comments and trailing commas are accepted (Bifrost's files sometimes have
/// them).
inline std::optional<ConfigError> parse_config(std::string_view text, std::string_view file,
                                               Config& out, const ConfigOptions& options = {}) {
    namespace json = boost::json;
    json::parse_options po;
    po.allow_comments = true;
    po.allow_trailing_commas = true;
    json::stream_parser p(json::storage_ptr(), po);
    boost::system::error_code ec;
    const std::size_t used = p.write_some(text.data(), text.size(), ec);
    if (!ec) p.finish(ec);
    if (ec) {
        return ConfigError{
            std::string(file), "",
            "not valid JSON at " + detail::config::position(text, used) + ": " + ec.message()};
    }
    const json::value root = p.release();
    try {
        detail::config::Reader reader(options);
        out = reader.read(root);
    } catch (const detail::config::Failure& f) {
        return ConfigError{std::string(file), f.path.empty() ? std::string("(top level)") : f.path,
                           f.reason};
    } catch (const std::exception& e) {
        return ConfigError{std::string(file), "", e.what()};
    }
    return std::nullopt;
}

/// Reads the configuration file at `path` (see `parse_config`).
inline std::optional<ConfigError> load_config(const std::string& path, Config& out,
                                              const ConfigOptions& options = {}) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return ConfigError{path, "", "cannot open the file"};
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return ConfigError{path, "", "cannot read the file"};
    return parse_config(text.str(), path, out, options);
}

}  // namespace bifrost
