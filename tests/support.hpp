#pragma once
// Shared helpers for the tests: gateway aliases, request builders, small synchronisation tools.

#include <bifrost/bifrost.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace test {

using namespace std::chrono_literals;

template <class Queue = bifrost::queue::Block, class... Plugins>
using MockGateway =
    bifrost::Gateway<bifrost::transport::Mock, Queue, bifrost::pool::Preallocated, Plugins...>;

/// A one-message user request for `model`.
inline bifrost::ChatRequest request(std::string model, std::string text) {
    bifrost::ChatRequest r;
    r.model = std::move(model);
    r.messages.push_back({bifrost::Role::user, std::move(text), {}, {}, {}, {}, {}});
    return r;
}

/// A provider config with one key, the given concurrency and buffer, and no spinning callers.
inline bifrost::ProviderConfig provider_config(std::size_t concurrency = 4, std::size_t buffer = 64,
                                               std::size_t threads = 1) {
    bifrost::ProviderConfig c;
    c.keys.push_back({bifrost::Secret("sk-test-key"), {}, 1.0, true, "k1", {}});
    c.concurrency_and_buffer_size = {concurrency, buffer, threads};
    return c;
}

/// Options that keep tests light on a 2-core machine (short spins, short drain).
inline bifrost::GatewayOptions options(std::size_t pool = 16) {
    bifrost::GatewayOptions o;
    o.initial_pool_size = pool;
    o.caller_spin = 2us;
    o.worker_spin = 2us;
    o.drain_timeout = 2000ms;
    return o;
}

/// Whether the server tests run their connections on the gateway's worker threads
/// (`server::Options::connections_on_workers`): ctest runs the `[server]` cases once each way,
/// the second time with `BIFROST_TEST_CONNECTIONS_ON_WORKERS=1`.
inline bool server_on_workers() {
    const char* v = std::getenv("BIFROST_TEST_CONNECTIONS_ON_WORKERS");
    return v != nullptr && v[0] == '1';
}

/// A gate that scripted upstreams wait on (blocks the mock script, i.e. the worker thread).
class Gate {
  public:
    void open() {
        {
            std::lock_guard l(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock l(m_);
        cv_.wait(l, [&] { return open_; });
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Polls `pred` until true or `timeout`; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > until) return pred();
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

}  // namespace test
