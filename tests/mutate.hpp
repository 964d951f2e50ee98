#pragma once
/// Random edits of a document for the tests that check a fast reader against a reference one.

#include <random>
#include <string>
#include <string_view>

namespace test {

/// `base` with one to `max_edits` random edits, each a byte replaced by one of `specials`,
/// removed, or one of them inserted; with `truncate`, an edit may also cut the text short there.
/// The result may be empty.
inline std::string mutated(const std::string& base, std::string_view specials, int max_edits,
                           bool truncate, std::mt19937& rng) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_edits));
    for (int e = 0; e < edits && !text.empty(); ++e) {
        const std::size_t at = rng() % text.size();
        const char ch = specials[rng() % specials.size()];
        switch (rng() % (truncate ? 4 : 3)) {
            case 0:
                text[at] = ch;
                break;
            case 1:
                text.erase(at, 1);
                break;
            case 2:
                text.insert(at, 1, ch);
                break;
            default:
                text.resize(at);
                break;
        }
    }
    return text;
}

}  // namespace test
