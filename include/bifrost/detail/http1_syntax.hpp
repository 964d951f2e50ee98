#pragma once
/// \file
/// HTTP/1.1 syntax shared by the fast request parser (`server/http1.hpp`) and the fast response
/// parser (`transport/http1.hpp`): token and field-value characters, case-insensitive name
/// comparison, and the `Connection` field's tokens. All of it reads bytes in place.

#include <bifrost/detail/swar.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bifrost::detail::http1 {

/// RFC 9110 token characters, as a table (a header name is checked byte by byte).
inline constexpr auto tchar_table = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c)
        t[static_cast<std::size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c)
        t[static_cast<std::size_t>(c)] = t[static_cast<std::size_t>(c - 'a' + 'A')] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~"))
        t[static_cast<unsigned char>(c)] = true;
    return t;
}();

inline bool is_tchar(unsigned char c) noexcept {
    return tchar_table[c];
}

inline unsigned char byte(char c) noexcept {
    return static_cast<unsigned char>(c);
}

/// The first byte at or after `p` (before `lim`) that is not a token character, or `lim`.
inline const char* skip_tchars(const char* p, const char* lim) noexcept {
    while (p != lim && is_tchar(byte(*p)))
        ++p;
    return p;
}

/// Whether a field value may hold `c`: anything but a control byte other than HTAB, and DEL
/// (UTF-8 and other bytes of 0x80 and up are allowed, as obs-text).
inline bool is_value_byte(unsigned char c) noexcept {
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

/// The first byte at or after `p` (before `lim`) that a field value may not hold, or `lim`.
/// Eight bytes at a time while none of them can be one; a flagged word is stepped through
/// byte by byte.
inline const char* skip_value(const char* p, const char* lim) noexcept {
    namespace swar = bifrost::detail::swar;
    for (;;) {
        while (lim - p >= 8) {
            const std::uint64_t w = swar::load(p);
            if ((swar::any_below(w, 0x20) | swar::any_equal(w, 0x7f)) != 0) break;
            p += 8;
        }
        if (p == lim || !is_value_byte(byte(*p))) return p;
        ++p;
    }
}

/// Whether `name`, of token characters only, is `lower` (lowercase letters, digits and '-') in
/// any case. A token character ORed with 0x20 is a lowercase letter only if it was that letter
/// in either case, and a digit or '-' only if it was that one: so eight bytes are compared at
/// a time.
inline bool name_is(std::string_view name, std::string_view lower) noexcept {
    namespace swar = bifrost::detail::swar;
    const std::size_t n = lower.size();
    if (name.size() != n) return false;
    const char* a = name.data();
    const char* b = lower.data();
    if (n >= 8) {
        constexpr std::uint64_t case_bits = swar::ones * 0x20;
        for (std::size_t i = 0; i + 8 <= n; i += 8)
            if ((swar::load(a + i) | case_bits) != swar::load(b + i)) return false;
        return (swar::load(a + n - 8) | case_bits) == swar::load(b + n - 8);
    }
    for (std::size_t i = 0; i < n; ++i)
        if ((byte(a[i]) | 0x20) != byte(b[i])) return false;
    return true;
}

inline std::string_view trim_ows(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    return v;
}

/// The `Connection` field's tokens that matter: `close` and `keep-alive`. False when the
/// field is not a list of tokens (which Beast refuses).
inline bool connection_tokens(std::string_view v, bool& close, bool& keep_alive) noexcept {
    while (!v.empty()) {
        const std::size_t comma = v.find(',');
        const std::string_view token = trim_ows(v.substr(0, comma));
        if (skip_tchars(token.data(), token.data() + token.size()) != token.data() + token.size())
            return false;
        if (name_is(token, "close")) close = true;
        if (name_is(token, "keep-alive")) keep_alive = true;
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
    }
    return true;
}

/// What `header_line` found.
enum class Line {
    field,     ///< a field: its name and value (without surrounding whitespace) are set
    end,       ///< the empty line that ends the head
    short_of,  ///< the bytes end before the line does
    bad,       ///< a line this reader does not accept (see `header_line`)
};

/// Reads the header line at `p` (before `lim`) and moves `p` past it: `name ":" OWS value OWS
/// CRLF`, or the empty line. A leading space (obsolete folding), an empty name, a name byte
/// that is not a token character, a line without a colon, a control byte in the value or a
/// bare CR or LF is `bad`, as soon as it is seen.
inline Line header_line(const char*& p, const char* lim, std::string_view& name,
                        std::string_view& value) noexcept {
    if (p == lim) return Line::short_of;
    if (*p == '\r') {  // the empty line (or a bare CR, which is not one)
        if (lim - p < 2) return Line::short_of;
        if (p[1] != '\n') return Line::bad;
        p += 2;
        return Line::end;
    }
    const char* const name_begin = p;
    const char* q = skip_tchars(p, lim);
    if (q == lim) return Line::short_of;
    if (*q != ':' || q == name_begin) return Line::bad;
    name = std::string_view(name_begin, static_cast<std::size_t>(q - name_begin));
    const char* const value_begin = ++q;
    q = skip_value(q, lim);
    if (q == lim || (*q == '\r' && lim - q < 2)) return Line::short_of;
    if (*q != '\r' || q[1] != '\n') return Line::bad;
    value = trim_ows(std::string_view(value_begin, static_cast<std::size_t>(q - value_begin)));
    p = q + 2;
    return Line::field;
}

/// A `Content-Length` value: one to 18 digits (no sign, no list). False for anything else.
inline bool content_length(std::string_view v, std::size_t& out) noexcept {
    if (v.empty() || v.size() > 18) return false;
    std::size_t len = 0;
    for (const char ch : v) {
        if (ch < '0' || ch > '9') return false;
        len = len * 10 + static_cast<std::size_t>(ch - '0');
    }
    out = len;
    return true;
}

}  // namespace bifrost::detail::http1
