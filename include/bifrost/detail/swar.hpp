#pragma once
/// \file
/// Eight bytes at a time: tests on a 64-bit word that say whether any of its bytes may be one
/// of interest, for scans that then look byte by byte only where a word was flagged. Each test
/// never misses such a byte and may flag a word that has none (a borrow past a true hit).

#include <cstdint>
#include <cstring>

namespace bifrost::detail::swar {

inline constexpr std::uint64_t ones = 0x0101010101010101ULL;
inline constexpr std::uint64_t highs = 0x8080808080808080ULL;

/// The 8 bytes at `p` (any alignment) as one word.
inline std::uint64_t load(const char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
}

/// Nonzero when a byte of `w` may be below `n` (`n` at most 128).
constexpr std::uint64_t any_below(std::uint64_t w, unsigned char n) noexcept {
    return (w - ones * n) & ~w & highs;
}

/// Nonzero when a byte of `w` may equal `c`.
constexpr std::uint64_t any_equal(std::uint64_t w, unsigned char c) noexcept {
    return any_below(w ^ (ones * c), 1);
}

}  // namespace bifrost::detail::swar
