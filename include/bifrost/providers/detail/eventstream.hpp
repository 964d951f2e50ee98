#pragma once
/// \file
/// A decoder for AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), the
/// body of Bedrock's streaming responses. Each message is:
///
/// | bytes | field                                                    |
/// |-------|----------------------------------------------------------|
/// | 4     | total length (big-endian, the whole message)             |
/// | 4     | headers length                                           |
/// | 4     | prelude CRC32 (of the 8 bytes before it)                 |
/// | n     | headers: name length (1), name, type (1), value          |
/// | m     | payload                                                  |
/// | 4     | message CRC32 (of everything before it)                  |
///
/// Header value types: 0 true, 1 false, 2 byte, 3 int16, 4 int32, 5 int64, 6 bytes (2-byte
/// length), 7 string (2-byte length), 8 timestamp (int64 ms), 9 UUID (16 bytes). Input may be cut
/// anywhere. A bad CRC, an impossible length or a malformed header fails the decoder for good.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost::providers::detail::eventstream {

/// CRC-32 (IEEE 802.3, reflected, the zlib one), continuing from `crc`.
inline std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0) noexcept {
    static constexpr auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (unsigned char b : data)
        crc = table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/// One decoded message: its headers (string and byte-array values as text, other types
/// rendered in decimal, booleans as "true"/"false") and its payload.
struct Message {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string payload;

    /// The value of header `name`, or empty.
    [[nodiscard]] std::string_view header(std::string_view name) const noexcept {
        for (const auto& [n, v] : headers)
            if (n == name) return v;
        return {};
    }
};

/// What `Decoder::next` found.
enum class Status : std::uint8_t { message, need_more, error };

/// Splits a byte stream into messages. Not thread-safe: one per stream.
class Decoder {
  public:
    /// Largest message accepted (AWS documents 16 MiB).
    static constexpr std::uint32_t max_message = 16u << 20;

    /// Appends bytes; false once the stream has failed.
    bool feed(std::string_view bytes) {
        if (failed_) return false;
        buf_.append(bytes);
        return true;
    }

    /// Decodes the next complete message into `out`. On `error`, `why` says what was wrong.
    Status next(Message& out, std::string& why) {
        if (failed_) {
            why = why_;
            return Status::error;
        }
        const std::string_view b = std::string_view(buf_).substr(pos_);
        if (b.size() < 12) return compact(), Status::need_more;
        const std::uint32_t total = be32(b, 0);
        const std::uint32_t headers_len = be32(b, 4);
        if (crc32(b.substr(0, 8)) != be32(b, 8)) return fail("prelude CRC mismatch", why);
        if (total < 16 || total > max_message || headers_len > total - 16)
            return fail("impossible message length", why);
        if (b.size() < total) return compact(), Status::need_more;
        if (crc32(b.substr(0, total - 4)) != be32(b, total - 4))
            return fail("message CRC mismatch", why);
        out.headers.clear();
        if (!read_headers(b.substr(12, headers_len), out)) return fail("malformed header", why);
        out.payload.assign(b.substr(12 + headers_len, total - 16 - headers_len));
        pos_ += total;
        return Status::message;
    }

    /// True when bytes of an unfinished message are buffered.
    [[nodiscard]] bool partial() const noexcept { return buf_.size() > pos_; }
    [[nodiscard]] bool failed() const noexcept { return failed_; }

    void reset() noexcept {
        buf_.clear();
        pos_ = 0;
        failed_ = false;
        why_.clear();
    }

  private:
    static std::uint32_t be32(std::string_view b, std::size_t at) noexcept {
        return (std::uint32_t{static_cast<unsigned char>(b[at])} << 24) |
               (std::uint32_t{static_cast<unsigned char>(b[at + 1])} << 16) |
               (std::uint32_t{static_cast<unsigned char>(b[at + 2])} << 8) |
               std::uint32_t{static_cast<unsigned char>(b[at + 3])};
    }

    static std::uint64_t be(std::string_view b, std::size_t at, std::size_t n) noexcept {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i)
            v = (v << 8) | static_cast<unsigned char>(b[at + i]);
        return v;
    }

    static bool read_headers(std::string_view h, Message& out) {
        std::size_t i = 0;
        while (i < h.size()) {
            const std::size_t name_len = static_cast<unsigned char>(h[i++]);
            if (name_len == 0 || i + name_len + 1 > h.size()) return false;
            std::string name(h.substr(i, name_len));
            i += name_len;
            const unsigned type = static_cast<unsigned char>(h[i++]);
            std::string value;
            const auto fixed = [&](std::size_t n, bool is_signed) {
                if (i + n > h.size()) return false;
                const std::uint64_t raw = be(h, i, n);
                i += n;
                if (is_signed) {
                    // Sign-extend an n-byte two's complement value.
                    const unsigned shift = static_cast<unsigned>(64 - 8 * n);
                    const auto v = static_cast<std::int64_t>(raw << shift) >> shift;
                    value = std::to_string(v);
                } else {
                    value = std::to_string(raw);
                }
                return true;
            };
            switch (type) {
                case 0:
                    value = "true";
                    break;
                case 1:
                    value = "false";
                    break;
                case 2:
                    if (!fixed(1, true)) return false;
                    break;
                case 3:
                    if (!fixed(2, true)) return false;
                    break;
                case 4:
                    if (!fixed(4, true)) return false;
                    break;
                case 5:
                case 8:
                    if (!fixed(8, true)) return false;
                    break;
                case 6:
                case 7: {
                    if (i + 2 > h.size()) return false;
                    const std::size_t n = be(h, i, 2);
                    i += 2;
                    if (i + n > h.size()) return false;
                    value.assign(h.substr(i, n));
                    i += n;
                    break;
                }
                case 9:
                    if (i + 16 > h.size()) return false;
                    value.assign(h.substr(i, 16));
                    i += 16;
                    break;
                default:
                    return false;
            }
            out.headers.emplace_back(std::move(name), std::move(value));
        }
        return true;
    }

    Status fail(const char* reason, std::string& why) {
        failed_ = true;
        why_ = reason;
        why = why_;
        return Status::error;
    }

    void compact() {
        if (pos_ > 0 && pos_ >= buf_.size() / 2) {
            buf_.erase(0, pos_);
            pos_ = 0;
        }
    }

    std::string buf_;
    std::size_t pos_ = 0;
    bool failed_ = false;
    std::string why_;
};

/// Encodes one message with string headers (for tests and mock upstreams).
inline std::string encode(const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view payload) {
    std::string h;
    for (const auto& [name, value] : headers) {
        h.push_back(static_cast<char>(name.size()));
        h.append(name);
        h.push_back(7);
        h.push_back(static_cast<char>((value.size() >> 8) & 0xFF));
        h.push_back(static_cast<char>(value.size() & 0xFF));
        h.append(value);
    }
    const auto total = static_cast<std::uint32_t>(16 + h.size() + payload.size());
    const auto put32 = [](std::string& s, std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8)
            s.push_back(static_cast<char>((v >> shift) & 0xFF));
    };
    std::string m;
    put32(m, total);
    put32(m, static_cast<std::uint32_t>(h.size()));
    put32(m, crc32(m));
    m.append(h).append(payload);
    put32(m, crc32(m));
    return m;
}

}  // namespace bifrost::providers::detail::eventstream
