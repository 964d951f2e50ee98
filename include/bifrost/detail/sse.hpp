#pragma once
/// \file
/// `detail::SseParser`: an incremental parser for Server-Sent Events (the `text/event-stream`
/// format of streaming chat completions), following the WHATWG event-stream rules: fields
/// `data`, `event`, `id` and `retry`, comment lines (starting with `:`), multi-line data joined
/// with `\n`, lines ending in CRLF, LF or CR, a leading UTF-8 byte order mark ignored. Input may
/// be cut anywhere (even inside a CRLF pair); the events are the same whatever the cuts.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bifrost::detail {

/// One dispatched event. The views stay valid until the next call to `feed`.
struct SseEvent {
    std::string_view event;              ///< the `event:` type; empty means "message"
    std::string_view data;               ///< the `data:` lines joined with '\n'
    std::string_view id;                 ///< the last event id seen so far in the stream
    std::optional<std::uint64_t> retry;  ///< a `retry:` value received with this event

    /// True for OpenAI's end-of-stream sentinel, `data: [DONE]`.
    [[nodiscard]] bool done() const noexcept { return data == "[DONE]"; }
};

/// Parses an event stream fed in chunks of any size. Not thread-safe: one parser per stream.
class SseParser {
  public:
    /// Longest line or event accepted (bytes). A stream exceeding it fails (`feed` returns
    /// false) instead of growing without bound.
    explicit SseParser(std::size_t max_event_size = 16u << 20) : max_event_size_(max_event_size) {}

    /// Parses `chunk`, calling `on_event(const SseEvent&)` for each complete event. Returns false
    /// if a line or an event exceeds the size limit (the parser then stays failed).
    template <class OnEvent>
    bool feed(std::string_view chunk, OnEvent&& on_event) {
        if (failed_) return false;
        std::size_t i = 0;
        if (!bom_checked_) {
            // The BOM may itself arrive split; collect up to three bytes before deciding.
            while (i < chunk.size() && bom_seen_ < 3 &&
                   static_cast<unsigned char>(chunk[i]) == bom[bom_seen_]) {
                ++bom_seen_;
                ++i;
            }
            if (bom_seen_ == 3 || i < chunk.size()) {
                if (bom_seen_ != 3) line_.append(reinterpret_cast<const char*>(bom), bom_seen_);
                bom_checked_ = true;
            } else {
                return true;  // all of this chunk may still be a BOM prefix
            }
        }
        if (skip_lf_ && i < chunk.size()) {
            if (chunk[i] == '\n') ++i;
            skip_lf_ = false;
        }
        while (i < chunk.size()) {
            std::size_t end = i;
            while (end < chunk.size() && chunk[end] != '\n' && chunk[end] != '\r')
                ++end;
            if (end == chunk.size()) {  // an unfinished line: keep it for the next chunk
                if (line_.size() + (end - i) > max_event_size_) return fail();
                line_.append(chunk.substr(i, end - i));
                return true;
            }
            std::string_view line = chunk.substr(i, end - i);
            if (!line_.empty()) {
                if (line_.size() + line.size() > max_event_size_) return fail();
                line_.append(line);
                line = line_;
            }
            if (!process_line(line, on_event)) return fail();
            line_.clear();
            i = end + 1;
            if (chunk[end] == '\r') {
                if (i < chunk.size()) {
                    if (chunk[i] == '\n') ++i;
                } else {
                    skip_lf_ = true;  // a CR at the end of a chunk: its LF may come next
                }
            }
        }
        return true;
    }

    /// Forgets everything (including the last event id), for a new stream.
    void reset() noexcept {
        line_.clear();
        data_.clear();
        event_.clear();
        id_.clear();
        retry_.reset();
        has_data_ = skip_lf_ = failed_ = bom_checked_ = false;
        bom_seen_ = 0;
    }

  private:
    static constexpr unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

    bool fail() noexcept {
        failed_ = true;
        return false;
    }

    template <class OnEvent>
    bool process_line(std::string_view line, OnEvent& on_event) {
        if (line.empty()) {
            dispatch(on_event);
            return true;
        }
        if (line.front() == ':') return true;  // a comment (keep-alive pings)
        std::string_view field = line, value;
        if (const auto colon = line.find(':'); colon != std::string_view::npos) {
            field = line.substr(0, colon);
            value = line.substr(colon + 1);
            if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        }
        if (field == "data") {
            if (data_.size() + value.size() + 1 > max_event_size_) return false;
            if (has_data_) data_.push_back('\n');
            data_.append(value);
            has_data_ = true;
        } else if (field == "event") {
            event_.assign(value);
        } else if (field == "id") {
            if (value.find('\0') == std::string_view::npos) id_.assign(value);
        } else if (field == "retry") {
            std::uint64_t ms = 0;
            bool digits = !value.empty();
            for (char c : value) {
                if (c < '0' || c > '9') {
                    digits = false;
                    break;
                }
                ms = ms * 10 + static_cast<std::uint64_t>(c - '0');
            }
            if (digits) retry_ = ms;
        }
        return true;  // unknown fields are ignored
    }

    template <class OnEvent>
    void dispatch(OnEvent& on_event) {
        if (!has_data_) {  // an event without data is not dispatched
            event_.clear();
            return;
        }
        on_event(SseEvent{event_, data_, id_, retry_});
        data_.clear();
        event_.clear();
        retry_.reset();
        has_data_ = false;
    }

    std::size_t max_event_size_;
    std::string line_;  // an unfinished line carried over from the previous chunk
    std::string data_;
    std::string event_;
    std::string id_;
    std::optional<std::uint64_t> retry_;
    bool has_data_ = false;
    bool skip_lf_ = false;
    bool failed_ = false;
    bool bom_checked_ = false;
    unsigned bom_seen_ = 0;
};

}  // namespace bifrost::detail
