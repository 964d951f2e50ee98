#pragma once
/// \file
/// `pool::PoolStats`: counters every PoolPolicy reports.

#include <cstdint>

namespace bifrost::pool {

/// Object-pool counters. `gets == hits + misses`; a miss created a new object.
struct PoolStats {
    std::uint64_t gets = 0;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t returns = 0;
    std::uint64_t size = 0;       ///< objects the pool owns (free + in use)
    std::uint64_t available = 0;  ///< objects free right now

    [[nodiscard]] double hit_ratio() const noexcept {
        return gets == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(gets);
    }
};

}  // namespace bifrost::pool
