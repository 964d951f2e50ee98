#pragma once
/// \file
/// `server::Logger`: one JSON object per line (`{"ts":...,"level":"info","msg":"request",...}`),
/// filtered by level, written to stderr or a caller-supplied sink. The server logs labels,
/// statuses and timings, never header values, bodies or keys.

#include <bifrost/detail/json_writer.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace bifrost::server {

enum class LogLevel : std::uint8_t { debug, info, warn, error, off };

constexpr std::string_view to_string(LogLevel l) noexcept {
    switch (l) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
        case LogLevel::off:
            return "off";
    }
    return "info";
}

/// Parses "debug", "info", "warn" (or "warning"), "error", "off"; false if unknown.
constexpr bool parse_log_level(std::string_view s, LogLevel& out) noexcept {
    constexpr LogLevel all[] = {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error,
                                LogLevel::off};
    for (LogLevel l : all) {
        if (to_string(l) == s) {
            out = l;
            return true;
        }
    }
    if (s == "warning") {
        out = LogLevel::warn;
        return true;
    }
    return false;
}

/// A structured line under construction: `Logger::line(level, msg).field(...)...`; written when
/// destroyed. Costs nothing when the level is filtered out.
class LogLine;

/// Thread safety: every member may be called from any thread; lines never interleave.
class Logger {
  public:
    /// Receives one complete line (without the trailing newline).
    using Sink = std::function<void(std::string_view)>;

    /// Logs at `info` and above to stderr.
    Logger() : Logger(LogLevel::info) {}
    explicit Logger(LogLevel level, Sink sink = {})
        : level_(level), sink_(std::make_shared<SinkHolder>(std::move(sink))) {}

    [[nodiscard]] LogLevel level() const noexcept { return level_; }
    void set_level(LogLevel l) noexcept { level_ = l; }
    [[nodiscard]] bool enabled(LogLevel l) const noexcept {
        return l != LogLevel::off && l >= level_;
    }

    LogLine line(LogLevel l, std::string_view msg) const;

    /// Writes a finished line.
    void write(std::string_view text) const {
        std::lock_guard lock(sink_->mutex);
        if (sink_->sink) {
            sink_->sink(text);
        } else {
            std::fwrite(text.data(), 1, text.size(), stderr);
            std::fputc('\n', stderr);
            std::fflush(stderr);
        }
    }

  private:
    struct SinkHolder {
        explicit SinkHolder(Sink s) : sink(std::move(s)) {}
        std::mutex mutex;
        Sink sink;
    };

    LogLevel level_;
    std::shared_ptr<SinkHolder> sink_;  // shared: copies of a logger write to one place in order
};

class LogLine {
  public:
    LogLine(const Logger* logger, LogLevel l, std::string_view msg) : logger_(logger) {
        if (!logger_) return;
        text_.append("{\"ts\":\"");
        append_timestamp(text_);
        text_.append("\",\"level\":\"").append(to_string(l)).append("\",\"msg\":");
        detail::JsonWriter::append_quoted(text_, msg);
    }
    LogLine(const LogLine&) = delete;
    LogLine& operator=(const LogLine&) = delete;
    ~LogLine() {
        if (!logger_) return;
        text_.push_back('}');
        logger_->write(text_);
    }

    LogLine& field(std::string_view k, std::string_view v) {
        if (!logger_) return *this;
        key(k);
        detail::JsonWriter::append_quoted(text_, v);
        return *this;
    }
    LogLine& field(std::string_view k, const char* v) { return field(k, std::string_view(v)); }
    LogLine& field(std::string_view k, std::int64_t v) {
        if (!logger_) return *this;
        key(k);
        text_.append(std::to_string(v));
        return *this;
    }
    LogLine& field(std::string_view k, int v) { return field(k, static_cast<std::int64_t>(v)); }
    LogLine& field(std::string_view k, unsigned v) {
        return field(k, static_cast<std::int64_t>(v));
    }
    /// A duration in milliseconds with microsecond precision.
    LogLine& millis(std::string_view k, std::chrono::nanoseconds d) {
        if (!logger_) return *this;
        key(k);
        char buf[32];
        const int n = std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(d.count()) / 1e6);
        text_.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
        return *this;
    }

  private:
    void key(std::string_view k) {
        text_.push_back(',');
        detail::JsonWriter::append_quoted(text_, k);
        text_.push_back(':');
    }

    static void append_timestamp(std::string& out) {
        const auto now = std::chrono::system_clock::now();
        const auto secs = std::chrono::system_clock::to_time_t(now);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
            1000;
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char buf[40];
        const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        out.append(buf, n);
        std::snprintf(buf, sizeof buf, ".%03dZ", static_cast<int>(ms));
        out.append(buf);
    }

    const Logger* logger_;
    std::string text_;
};

inline LogLine Logger::line(LogLevel l, std::string_view msg) const {
    return LogLine(enabled(l) ? this : nullptr, l, msg);
}

}  // namespace bifrost::server
