#pragma once
/// \file
/// The HTTP request/response values a `Provider` builds and a `Transport` carries. Plain, reusable
/// value types: clearing keeps capacity so pooled jobs do not reallocate per request.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bifrost {

enum class HttpMethod : std::uint8_t { get, post, put, del };

constexpr std::string_view to_string(HttpMethod m) noexcept {
    switch (m) {
        case HttpMethod::get:
            return "GET";
        case HttpMethod::post:
            return "POST";
        case HttpMethod::put:
            return "PUT";
        case HttpMethod::del:
            return "DELETE";
    }
    return "GET";
}

/// ASCII case-insensitive equality (HTTP header names).
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

/// True for headers that carry credentials; their values are never logged or echoed.
constexpr bool is_sensitive_header(std::string_view name) noexcept {
    return iequals(name, "authorization") || iequals(name, "proxy-authorization") ||
           iequals(name, "x-api-key") || iequals(name, "api-key") ||
           iequals(name, "x-goog-api-key") || iequals(name, "cookie");
}

/// An ordered list of header fields. `clear()` keeps the slots (and their string capacity) for
/// the next use.
class Headers {
  public:
    struct Field {
        std::string name;
        std::string value;
    };

    void clear() noexcept { size_ = 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] const Field* begin() const noexcept { return fields_.data(); }
    [[nodiscard]] const Field* end() const noexcept { return fields_.data() + size_; }

    /// Appends a field (duplicates allowed, as HTTP allows).
    void add(std::string_view name, std::string_view value) {
        if (size_ < fields_.size()) {
            fields_[size_].name.assign(name);
            fields_[size_].value.assign(value);
        } else {
            fields_.push_back(Field{std::string(name), std::string(value)});
        }
        ++size_;
    }

    /// Appends a field whose value is `a` followed by `b` (e.g. "Bearer " + key), with no
    /// temporary string.
    void add_joined(std::string_view name, std::string_view a, std::string_view b) {
        if (size_ < fields_.size()) {
            fields_[size_].name.assign(name);
            fields_[size_].value.assign(a).append(b);
        } else {
            std::string v;
            v.reserve(a.size() + b.size());
            v.append(a).append(b);
            fields_.push_back(Field{std::string(name), std::move(v)});
        }
        ++size_;
    }

    /// Replaces the first field named `name` (case-insensitive) or appends it.
    void set(std::string_view name, std::string_view value) {
        for (std::size_t i = 0; i < size_; ++i) {
            if (iequals(fields_[i].name, name)) {
                fields_[i].value.assign(value);
                return;
            }
        }
        add(name, value);
    }

    /// The value of the first field named `name` (case-insensitive), or empty.
    [[nodiscard]] std::string_view get(std::string_view name) const noexcept {
        for (std::size_t i = 0; i < size_; ++i)
            if (iequals(fields_[i].name, name)) return fields_[i].value;
        return {};
    }

    [[nodiscard]] bool contains(std::string_view name) const noexcept {
        return std::any_of(begin(), end(), [&](const Field& f) { return iequals(f.name, name); });
    }

  private:
    std::vector<Field> fields_;
    std::size_t size_ = 0;
};

/// An upstream HTTP request as built by a provider: method, absolute URL, headers, body.
struct HttpRequest {
    HttpMethod method = HttpMethod::post;
    std::string url;
    Headers headers;
    std::string body;

    void clear() noexcept {
        method = HttpMethod::post;
        url.clear();
        headers.clear();
        body.clear();
    }
};

/// An upstream HTTP response as delivered by a transport.
struct HttpResponse {
    int status = 0;
    Headers headers;
    std::string body;

    void clear() noexcept {
        status = 0;
        headers.clear();
        body.clear();
    }
};

}  // namespace bifrost
