#pragma once
/// \file
/// A minimal append-only JSON writer into a `std::string`. No DOM, no allocation beyond the
/// string's own growth (which a reused string stops doing after warm-up). Used on the request
/// path to build upstream bodies and responses.

#include <bifrost/detail/swar.hpp>

#include <boost/json/serializer.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bifrost::detail {

/// Writes JSON tokens, inserting commas automatically. The caller is responsible for balanced
/// begin/end calls and for calling `key` before each value inside an object.
class JsonWriter {
  public:
    explicit JsonWriter(std::string& out) noexcept : out_(out) {}
    /// Continues inside an object or array `out` already holds: `after_member` says whether a
    /// member precedes (so the next one takes a comma).
    JsonWriter(std::string& out, bool after_member) noexcept : out_(out), first_(!after_member) {}

    JsonWriter& begin_object() {
        comma();
        out_.push_back('{');
        first_ = true;
        return *this;
    }
    JsonWriter& end_object() {
        out_.push_back('}');
        first_ = false;
        return *this;
    }
    JsonWriter& begin_array() {
        comma();
        out_.push_back('[');
        first_ = true;
        return *this;
    }
    JsonWriter& end_array() {
        out_.push_back(']');
        first_ = false;
        return *this;
    }

    /// Writes `"name":`; the next value call writes the value.
    JsonWriter& key(std::string_view name) {
        if (!small_quoted(name, ":")) {
            comma();
            quoted(name);
            out_.push_back(':');
        }
        first_ = true;  // the value that follows takes no comma
        return *this;
    }

    JsonWriter& string(std::string_view s) {
        if (!small_quoted(s, "")) {
            comma();
            quoted(s);
        }
        return *this;
    }
    /// Writes one string value made of two parts (no temporary concatenation).
    JsonWriter& string2(std::string_view a, std::string_view b) {
        comma();
        out_.push_back('"');
        append_escaped(out_, a);
        append_escaped(out_, b);
        out_.push_back('"');
        return *this;
    }
    JsonWriter& null() {
        comma();
        out_.append("null");
        return *this;
    }
    JsonWriter& boolean(bool b) {
        comma();
        out_.append(b ? "true" : "false");
        return *this;
    }
    JsonWriter& integer(std::int64_t v) {
        char buf[24];
        char* p = buf;
        if (!first_) *p++ = ',';
        first_ = false;
        auto r = std::to_chars(p, buf + sizeof buf, v);
        out_.append(buf, r.ptr);
        return *this;
    }
    /// Non-finite numbers have no JSON form and are written as null.
    JsonWriter& number(double v) {
        comma();
        if (!std::isfinite(v)) {
            out_.append("null");
            return *this;
        }
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, v);
        out_.append(buf, r.ptr);
        return *this;
    }
    /// Writes `v / 10^scale` exactly, as a JSON number without trailing fractional zeros:
    /// `decimal(250000, 6)` is `0.25`, `decimal(3000000, 6)` is `3`. For a duration in
    /// nanoseconds written in milliseconds it is the value `number(ns / 1e6)` writes (both are
    /// the exact quotient, correctly rounded when read back), without the cost of a
    /// floating-point conversion. `scale` is at most 18.
    JsonWriter& decimal(std::int64_t v, unsigned scale) {
        char buf[48];
        char* p = buf;
        if (!first_) *p++ = ',';
        first_ = false;
        p = put_decimal(p, v, scale);
        out_.append(buf, p);
        return *this;
    }

    /// What `decimal` writes, at `p` (room for 40 bytes); returns the end.
    static char* put_decimal(char* p, std::int64_t v, unsigned scale) noexcept {
        // Magnitude as unsigned (no overflow for INT64_MIN).
        std::uint64_t m = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
        if (v < 0) *p++ = '-';
        std::uint64_t pow = 1;
        for (unsigned i = 0; i < scale; ++i)
            pow *= 10;
        p = std::to_chars(p, p + 20, m / pow).ptr;  // at most 20 digits
        std::uint64_t frac = m % pow;
        if (frac != 0) {
            unsigned digits = scale;
            while (frac % 10 == 0) {
                frac /= 10;
                --digits;
            }
            *p++ = '.';
            char* const end = p + digits;
            for (char* q = end; q != p; frac /= 10)
                *--q = static_cast<char>('0' + frac % 10);
            p = end;
        }
        return p;
    }

    /// Writes a Boost.JSON value verbatim.
    JsonWriter& value(const boost::json::value& v) {
        comma();
        boost::json::serializer sr;
        sr.reset(&v);
        char buf[512];
        while (!sr.done())
            out_.append(sr.read(buf));
        return *this;
    }
    /// Writes already-serialized JSON verbatim (the caller guarantees it is valid).
    JsonWriter& raw(std::string_view json) {
        comma();
        out_.append(json);
        return *this;
    }

    // key + value shorthands
    JsonWriter& field(std::string_view k, std::string_view v) { return key(k).string(v); }
    JsonWriter& field_int(std::string_view k, std::int64_t v) { return key(k).integer(v); }
    JsonWriter& field_number(std::string_view k, double v) { return key(k).number(v); }
    /// A duration in nanoseconds, written in milliseconds (`decimal(ns, 6)`).
    JsonWriter& field_millis(std::string_view k, std::int64_t ns) { return key(k).decimal(ns, 6); }
    JsonWriter& field_bool(std::string_view k, bool v) { return key(k).boolean(v); }

    /// Appends `s` as a quoted JSON string with the required escapes. Invalid UTF-8 passes
    /// through unchanged (JSON text is bytes here; upstreams validate).
    static void append_quoted(std::string& out, std::string_view s) {
        out.push_back('"');
        append_escaped(out, s);
        out.push_back('"');
    }

    /// Appends the escaped form of `s` without quotes. Runs of bytes that need no escape are
    /// found eight at a time and appended whole.
    static void append_escaped(std::string& out, std::string_view s) {
        static constexpr char hex[] = "0123456789abcdef";
        const char* p = s.data();
        const char* const end = p + s.size();
        const char* run = p;  // start of the pending run of bytes that need no escape
        for (;;) {
            while (end - p >= 8 && !word_needs_escape(p))
                p += 8;
            // The byte that needs an escape is within the next 8 (or the tail).
            const char* const stop = end - p >= 8 ? p + 8 : end;
            while (p != stop && !needs_escape(static_cast<unsigned char>(*p)))
                ++p;
            if (p == stop) {
                if (p == end) break;
                continue;
            }
            const auto c = static_cast<unsigned char>(*p);
            out.append(run, static_cast<std::size_t>(p - run));
            run = ++p;
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                case '\b':
                    out.append("\\b");
                    break;
                case '\f':
                    out.append("\\f");
                    break;
                default: {
                    const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                    out.append(esc, 6);
                }
            }
        }
        out.append(run, static_cast<std::size_t>(end - run));
    }

    /// The longest string `small_quoted` writes (most keys and short values).
    static constexpr std::size_t small_limit = 48;

    /// Whether `s` (at most `small_limit` bytes) needs no escape: its quoted form is `"s"`.
    static bool plain_small(std::string_view s) noexcept {
        if (s.size() > small_limit) return false;
        char buf[small_limit + 8];
        std::memcpy(buf, s.data(), s.size());
        std::memset(buf + s.size(), 'a', 8);  // benign bytes after `s` for the word scan
        for (std::size_t i = 0; i < s.size(); i += 8)
            if (word_needs_escape(buf + i)) return false;
        return true;
    }

  private:
    /// The token writers' common case in one append: the comma if one is due, `s` quoted and
    /// `suffix` (`":"` after a key), when `s` is at most `small_limit` bytes and needs no
    /// escape. Returns false, having written nothing, otherwise.
    bool small_quoted(std::string_view s, std::string_view suffix) {
        if (s.size() > small_limit) return false;
        // [comma] quote s quote suffix, with room to scan the last word of `s` whole.
        char buf[small_limit + 16];
        char* const text = buf + 2;
        std::memcpy(text, s.data(), s.size());
        std::memset(text + s.size(), 'a', 8);  // benign bytes after `s` for the word scan
        for (std::size_t i = 0; i < s.size(); i += 8)
            if (word_needs_escape(text + i)) return false;
        char* begin = text - 1;
        *begin = '"';
        if (!first_) *--begin = ',';
        first_ = false;
        char* end = text + s.size();
        *end++ = '"';
        std::memcpy(end, suffix.data(), suffix.size());
        end += suffix.size();
        out_.append(begin, static_cast<std::size_t>(end - begin));
        return true;
    }

    static constexpr bool needs_escape(unsigned char c) noexcept {
        return c < 0x20 || c == '"' || c == '\\';
    }

    /// Whether any of the 8 bytes at `p` may need an escape (a control byte, '"' or '\\').
    /// Never misses one; may report one that is not there (the byte loop then decides).
    static bool word_needs_escape(const char* p) noexcept {
        const std::uint64_t w = swar::load(p);
        return (swar::any_below(w, 0x20) | swar::any_equal(w, '"') | swar::any_equal(w, '\\')) != 0;
    }

    void comma() {
        if (!first_) out_.push_back(',');
        first_ = false;
    }
    void quoted(std::string_view s) { append_quoted(out_, s); }

    std::string& out_;
    bool first_ = true;
};

}  // namespace bifrost::detail
