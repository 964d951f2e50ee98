#pragma once
/// \file
/// `TextInput`: text or token ids, in the four forms OpenAI accepts for an embedding's `input`
/// and a legacy completion's `prompt`: a string, an array of strings, an array of token ids, or
/// an array of token-id arrays.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bifrost {

/// Text or tokens. `kind` says which member holds the value: `texts` for `text` (one element)
/// and `texts` (each string), `tokens` for `tokens`, `token_arrays` for `token_arrays`. The other
/// members are empty.
struct TextInput {
    enum class Kind : std::uint8_t { text, texts, tokens, token_arrays };

    Kind kind = Kind::text;
    std::vector<std::string> texts;
    std::vector<std::int64_t> tokens;
    std::vector<std::vector<std::int64_t>> token_arrays;

    /// One string (`"input": "..."`).
    static TextInput text(std::string s) {
        TextInput in;
        in.texts.push_back(std::move(s));
        return in;
    }
    /// An array of strings.
    static TextInput of_texts(std::vector<std::string> v) {
        TextInput in;
        in.kind = Kind::texts;
        in.texts = std::move(v);
        return in;
    }
    /// An array of token ids.
    static TextInput of_tokens(std::vector<std::int64_t> v) {
        TextInput in;
        in.kind = Kind::tokens;
        in.tokens = std::move(v);
        return in;
    }
    /// An array of token-id arrays.
    static TextInput of_token_arrays(std::vector<std::vector<std::int64_t>> v) {
        TextInput in;
        in.kind = Kind::token_arrays;
        in.token_arrays = std::move(v);
        return in;
    }

    /// How many separate inputs this is (one per string or token array; one for `text` and
    /// `tokens`).
    [[nodiscard]] std::size_t count() const noexcept {
        switch (kind) {
            case Kind::texts:
                return texts.size();
            case Kind::token_arrays:
                return token_arrays.size();
            case Kind::text:
            case Kind::tokens:
                return 1;
        }
        return 1;
    }

    /// Empties the value (kind `text`, no string), keeping capacity.
    void clear() noexcept {
        kind = Kind::text;
        texts.clear();
        tokens.clear();
        token_arrays.clear();
    }

    friend bool operator==(const TextInput&, const TextInput&) = default;
};

}  // namespace bifrost
