#pragma once
/// \file
/// Retry decisions: which failures are retried, how long to back off (exponential with ±20%
/// jitter, capped), and `Retry-After` parsing.

#include <bifrost/detail/random.hpp>

#include <boost/system/error_code.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string_view>

namespace bifrost::retry {

/// Statuses Bifrost retries: rate limiting and transient server errors.
constexpr bool retryable_status(int status) noexcept {
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/// Statuses worth retrying with a different key when the provider has several: the key itself
/// may be the problem (revoked, out of quota, rate-limited).
constexpr bool key_specific_status(int status) noexcept {
    return status == 401 || status == 403 || status == 429;
}

/// The wait before retry number `attempt` (0-based): `min(initial * 2^attempt, max)` with a
/// uniform ±20% jitter.
inline std::chrono::nanoseconds backoff(int attempt, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max,
                                        detail::FastRandom& rng) noexcept {
    using namespace std::chrono;
    const double base = static_cast<double>(duration_cast<nanoseconds>(initial).count());
    const double cap = static_cast<double>(duration_cast<nanoseconds>(max).count());
    double d = base;
    for (int i = 0; i < attempt && d < cap; ++i)
        d *= 2;
    d = std::min(d, cap);
    const double jitter = 0.8 + 0.4 * rng.uniform();
    return nanoseconds(static_cast<std::int64_t>(d * jitter));
}

namespace detail {
inline int month_index(std::string_view m) noexcept {
    constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i)
        if (months[i] == m) return i;
    return -1;
}
inline bool parse_uint(std::string_view s, std::int64_t& out) noexcept {
    if (s.empty() || s.size() > 12) return false;
    out = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + (c - '0');
    }
    return true;
}
}  // namespace detail

/// Parses a `Retry-After` value: delay-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015
/// 07:28:00 GMT"), relative to `now` (system clock). Negative results are clamped to 0; an
/// unparsable value gives nullopt.
inline std::optional<std::chrono::nanoseconds> parse_retry_after(
    std::string_view v,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    std::int64_t secs = 0;
    if (detail::parse_uint(v, secs)) return std::chrono::seconds(secs);
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (v.size() != 29 || v[3] != ',' || v.substr(26) != "GMT") return std::nullopt;
    std::int64_t day = 0, year = 0, hh = 0, mm = 0, ss = 0;
    const int mon = detail::month_index(v.substr(8, 3));
    if (mon < 0 || !detail::parse_uint(v.substr(5, 2), day) ||
        !detail::parse_uint(v.substr(12, 4), year) || !detail::parse_uint(v.substr(17, 2), hh) ||
        !detail::parse_uint(v.substr(20, 2), mm) || !detail::parse_uint(v.substr(23, 2), ss))
        return std::nullopt;
    // Days from civil (Howard Hinnant's algorithm), UTC.
    const std::int64_t y = year - (mon < 2 ? 1 : 0);
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t mp = (mon + 10) % 12;  // March-based month of the 0-based `mon`
    const std::int64_t doy = (153 * mp + 2) / 5 + day - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const std::int64_t days = era * 146097 + doe - 719468;
    const auto when = std::chrono::system_clock::time_point(
        std::chrono::seconds(days * 86400 + hh * 3600 + mm * 60 + ss));
    const auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(when - now);
    return d.count() < 0 ? std::chrono::nanoseconds(0) : d;
}

}  // namespace bifrost::retry
