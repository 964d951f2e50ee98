#pragma once
/// \file
/// The `stats()` snapshot: per-provider queue, worker, outcome and latency figures, plus the
/// request pool's counters.

#include <bifrost/core/circuit_breaker.hpp>
#include <bifrost/core/histogram.hpp>
#include <bifrost/pool/stats.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bifrost {

/// One provider's figures at the moment of the snapshot.
///
/// Every attempt routed to a provider ends in exactly one terminal counter:
/// `submitted == dropped + queue_timeouts + rejected_circuit + rejected_shutdown + completed +
/// failed + timed_out + cancelled` once nothing is queued, running or waiting.
struct ProviderStats {
    std::string name;

    // queue
    std::size_t queue_depth = 0;        ///< requests in the ring
    std::size_t queue_capacity = 0;     ///< `buffer_size`
    std::size_t waiting_for_space = 0;  ///< requests blocked or parked because the ring was full

    // workers
    std::size_t concurrency = 0;       ///< most requests in flight at once
    std::size_t in_flight = 0;         ///< requests a worker is serving now
    std::size_t idle_workers = 0;      ///< concurrency - in_flight
    std::size_t worker_threads = 0;    ///< OS threads serving this provider
    std::size_t in_retry_backoff = 0;  ///< requests waiting to retry (they hold no slot)

    // outcomes (monotonic counters)
    std::uint64_t submitted = 0;         ///< requests routed to this provider
    std::uint64_t queued = 0;            ///< admitted into the ring (at once or after waiting)
    std::uint64_t waited_for_space = 0;  ///< admitted after waiting for space
    std::uint64_t dropped = 0;         ///< rejected because the ring was full (503 request_dropped)
    std::uint64_t queue_timeouts = 0;  ///< waited for space until the deadline (503)
    std::uint64_t rejected_shutdown = 0;  ///< refused or abandoned because of shutdown (503)
    std::uint64_t rejected_circuit = 0;   ///< refused while the circuit breaker was open (503)
    std::uint64_t completed = 0;          ///< answered with a response
    std::uint64_t failed = 0;             ///< answered with an error after reaching a worker
    std::uint64_t timed_out = 0;          ///< deadline passed, queued or in flight (504)
    std::uint64_t cancelled = 0;          ///< the caller cancelled (499)
    std::uint64_t retries = 0;            ///< upstream calls repeated after a retryable failure

    // circuit breaker
    CircuitState circuit = CircuitState::closed;
    std::uint64_t circuit_opened = 0;        ///< times the circuit opened
    std::uint32_t consecutive_failures = 0;  ///< the breaker's current failure streak

    LatencySummary queue_wait;  ///< time from admission to a worker picking it up
    LatencySummary upstream;    ///< time spent in the transport call
};

/// A whole-gateway snapshot.
struct GatewayStats {
    std::vector<ProviderStats> providers;
    pool::PoolStats pool;
    std::uint64_t short_circuited = 0;  ///< attempts a pre-hook answered
    std::uint64_t rejected = 0;  ///< attempts refused before routing (bad model, unknown provider)
    std::uint64_t fallback_attempts = 0;   ///< attempts made on a fallback after a failure
    std::uint64_t fallback_successes = 0;  ///< requests a fallback answered

    /// The entry for `name`, or nullptr.
    [[nodiscard]] const ProviderStats* provider(std::string_view name) const noexcept {
        for (const auto& p : providers)
            if (p.name == name) return &p;
        return nullptr;
    }
};

}  // namespace bifrost
