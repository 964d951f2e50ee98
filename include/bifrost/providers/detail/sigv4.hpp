#pragma once
/// \file
/// AWS Signature Version 4 request signing (HMAC-SHA256 through OpenSSL), for the Bedrock
/// provider. `sign` computes the canonical request, the string to sign and the `Authorization`
/// header value from a request's method, path, query, headers and payload. It follows AWS's rules
/// for services other than S3: every path segment is URI-encoded once more on top of its form on
/// the wire, query parameters are decoded, re-encoded and sorted, header names are lower-cased and
/// values trimmed with inner runs of spaces collapsed. Paths are taken as they are sent (no
/// `.` / `..` normalization).
///
/// The secret key and the session token go into the signature only; nothing here logs them.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost::providers::detail::sigv4 {

/// AWS credentials; `session_token` is empty for long-term keys.
struct Credentials {
    std::string_view access_key;
    std::string_view secret_key;
    std::string_view session_token;
};

/// The intermediate and final values of one signature (the suite's published artefacts).
struct Signature {
    std::string canonical_request;
    std::string string_to_sign;
    std::string signature;       ///< lowercase hex
    std::string signed_headers;  ///< "host;x-amz-date"
    std::string authorization;   ///< the `Authorization` header value
};

using Digest = std::array<unsigned char, 32>;

inline Digest sha256(std::string_view data) {
    Digest d{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
    return d;
}

inline Digest hmac(std::string_view key, std::string_view data) {
    Digest d{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data(), &len);
    return d;
}

inline std::string_view view(const Digest& d) noexcept {
    return {reinterpret_cast<const char*>(d.data()), d.size()};
}

inline std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        s.push_back(digits[c >> 4]);
        s.push_back(digits[c & 15]);
    }
    return s;
}

inline std::string sha256_hex(std::string_view data) {
    return hex(view(sha256(data)));
}

inline bool unreserved(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/// Percent-encodes every byte but the unreserved ones (and '/' when `keep_slash`), uppercase hex.
inline void uri_encode(std::string& out, std::string_view s, bool keep_slash = false) {
    static constexpr char digits[] = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if (unreserved(c) || (keep_slash && c == '/')) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 15]);
        }
    }
}

inline std::string uri_encode(std::string_view s, bool keep_slash = false) {
    std::string out;
    uri_encode(out, s, keep_slash);
    return out;
}

inline std::string percent_decode(std::string_view s) {
    const auto val = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const int hi = val(s[i + 1]), lo = val(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

/// The canonical query string: parameters decoded, re-encoded, sorted by name then value.
inline std::string canonical_query(std::string_view query) {
    std::vector<std::pair<std::string, std::string>> params;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty()) continue;
        const auto eq = item.find('=');
        const std::string_view k = item.substr(0, eq);
        const std::string_view v =
            eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        params.emplace_back(uri_encode(percent_decode(k)), uri_encode(percent_decode(v)));
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto& [k, v] : params) {
        if (!out.empty()) out.push_back('&');
        out.append(k).append("=").append(v);
    }
    return out;
}

/// A header value trimmed, with inner runs of spaces collapsed to one.
inline std::string trim_value(std::string_view v) {
    std::string out;
    bool space = false;
    for (char c : v) {
        if (c == ' ' || c == '\t') {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    return out;
}

/// `YYYYMMDDTHHMMSSZ` for a point in time (UTC).
inline std::string amz_date(std::chrono::system_clock::time_point t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[20];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

/// Signs a request. `path` and `query` are as sent on the wire (the path percent-encoded where
/// needed, no '?'); `headers` are the headers to sign (they must include `host` and `x-amz-date`,
/// and `x-amz-security-token` when a session token is used); `amz_date` is the `x-amz-date` value.
inline Signature sign(std::string_view method, std::string_view path, std::string_view query,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      std::string_view payload, const Credentials& creds, std::string_view region,
                      std::string_view service, std::string_view amz_date) {
    Signature s;
    // Canonical headers: lower-case names, sorted; repeated names joined with ','.
    std::vector<std::pair<std::string, std::string>> canon;
    for (const auto& [name, value] : headers) {
        std::string n(name);
        std::transform(n.begin(), n.end(), n.begin(), [](char c) {
            return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
        });
        canon.emplace_back(std::move(n), trim_value(value));
    }
    std::stable_sort(canon.begin(), canon.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string canonical_headers;
    for (std::size_t i = 0; i < canon.size(); ++i) {
        if (i > 0 && canon[i].first == canon[i - 1].first) {
            canonical_headers.pop_back();  // the '\n' of the previous line
            canonical_headers.append(",").append(canon[i].second).append("\n");
            continue;
        }
        if (!s.signed_headers.empty()) s.signed_headers.push_back(';');
        s.signed_headers.append(canon[i].first);
        canonical_headers.append(canon[i].first).append(":").append(canon[i].second).append("\n");
    }

    s.canonical_request.append(method).append("\n");
    if (path.empty()) path = "/";
    uri_encode(s.canonical_request, path, /*keep_slash*/ true);
    s.canonical_request.append("\n").append(canonical_query(query)).append("\n");
    s.canonical_request.append(canonical_headers).append("\n");
    s.canonical_request.append(s.signed_headers).append("\n").append(sha256_hex(payload));

    const std::string_view date = amz_date.substr(0, 8);
    std::string scope;
    scope.append(date).append("/").append(region).append("/").append(service).append(
        "/aws4_request");
    s.string_to_sign.append("AWS4-HMAC-SHA256\n")
        .append(amz_date)
        .append("\n")
        .append(scope)
        .append("\n")
        .append(sha256_hex(s.canonical_request));

    std::string secret("AWS4");
    secret.append(creds.secret_key);
    const Digest k_date = hmac(secret, date);
    std::fill(secret.begin(), secret.end(), '\0');
    const Digest k_region = hmac(view(k_date), region);
    const Digest k_service = hmac(view(k_region), service);
    const Digest k_signing = hmac(view(k_service), "aws4_request");
    s.signature = hex(view(hmac(view(k_signing), s.string_to_sign)));

    s.authorization.append("AWS4-HMAC-SHA256 Credential=")
        .append(creds.access_key)
        .append("/")
        .append(scope)
        .append(", SignedHeaders=")
        .append(s.signed_headers)
        .append(", Signature=")
        .append(s.signature);
    return s;
}

}  // namespace bifrost::providers::detail::sigv4
