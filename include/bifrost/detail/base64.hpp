#pragma once
/// \file
/// Base64 encoding (RFC 4648): the standard alphabet with padding, or the URL-safe one without
/// (JWTs).

#include <cstddef>
#include <string>
#include <string_view>

namespace bifrost::detail {

enum class Base64 { standard, url };

/// `in` in base64: `Base64::standard` ('+', '/', '=' padding) or `Base64::url` ('-', '_', no
/// padding).
inline std::string base64_encode(std::string_view in, Base64 kind = Base64::standard) {
    const char* alphabet = kind == Base64::url
                               ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                               : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto byte = [&](std::size_t i) -> unsigned { return static_cast<unsigned char>(in[i]); };
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        for (int shift = 18; shift >= 0; shift -= 6)
            out.push_back(alphabet[(v >> shift) & 63]);
    }
    if (const std::size_t rest = in.size() - i; rest > 0) {
        const unsigned v = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0u);
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        if (rest == 2) out.push_back(alphabet[(v >> 6) & 63]);
        if (kind == Base64::standard) out.append(rest == 2 ? "=" : "==");
    }
    return out;
}

}  // namespace bifrost::detail
