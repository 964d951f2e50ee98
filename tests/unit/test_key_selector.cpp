#include "bifrost_catch.hpp"

#include <bifrost/core/key_selector.hpp>

#include <map>
#include <string>
#include <vector>

using bifrost::Key;
using bifrost::KeySelector;
using bifrost::Secret;

namespace {

Key key(std::string id, double weight, std::vector<std::string> models = {}, bool enabled = true) {
    return Key{Secret("sk-" + id), std::move(models), weight, enabled, id, {}};
}

std::map<std::string, int> draw(const KeySelector& sel, std::string_view model, int n,
                                std::uint64_t seed = 42) {
    bifrost::detail::FastRandom rng(seed);
    std::map<std::string, int> counts;
    for (int i = 0; i < n; ++i) {
        const Key* k = sel.select(model, rng);
        counts[k ? k->id : "<none>"]++;
    }
    return counts;
}

/// Pearson's chi-square statistic of observed counts against expected shares.
double chi_square(const std::map<std::string, int>& observed,
                  const std::map<std::string, double>& share, int n) {
    double chi = 0;
    for (const auto& [id, p] : share) {
        const double expected = p * n;
        const double o = observed.count(id) ? observed.at(id) : 0;
        chi += (o - expected) * (o - expected) / expected;
    }
    return chi;
}

}  // namespace

TEST_CASE("keys: selection follows the weights", "[keys]") {
    std::vector<Key> keys{key("a", 0.6), key("b", 0.3), key("c", 0.1)};
    KeySelector sel(keys);
    const int n = 200000;
    const auto counts = draw(sel, "gpt-4o", n);
    // 2 degrees of freedom: the 99.9% critical value is 13.82.
    CHECK(chi_square(counts, {{"a", 0.6}, {"b", 0.3}, {"c", 0.1}}, n) < 13.82);
    CHECK(counts.count("<none>") == 0);
}

TEST_CASE("keys: a skewed selector is detected by the same test", "[keys]") {
    // Guards the statistic itself: draws from 50/50 do not pass as 60/40.
    std::vector<Key> keys{key("a", 1), key("b", 1)};
    KeySelector sel(keys);
    const int n = 200000;
    CHECK(chi_square(draw(sel, "m", n), {{"a", 0.6}, {"b", 0.4}}, n) > 13.82);
}

TEST_CASE("keys: model lists filter the candidates", "[keys]") {
    std::vector<Key> keys{key("mini-only", 1, {"gpt-4o-mini"}), key("any", 1),
                          key("big-only", 3, {"gpt-4o", "o1"})};
    KeySelector sel(keys);
    CHECK(sel.candidates("gpt-4o-mini") == 2);
    CHECK(sel.candidates("gpt-4o") == 2);
    CHECK(sel.candidates("something-else") == 1);

    auto other = draw(sel, "something-else", 1000);
    CHECK(other.size() == 1);
    CHECK(other["any"] == 1000);

    const int n = 100000;
    auto big = draw(sel, "o1", n);
    CHECK(big.count("mini-only") == 0);
    CHECK(chi_square(big, {{"any", 0.25}, {"big-only", 0.75}}, n) < 10.83);  // 1 dof, 99.9%
}

TEST_CASE("keys: all-zero weights select uniformly; a zero among others is never chosen",
          "[keys]") {
    std::vector<Key> zeros{key("a", 0), key("b", 0), key("c", 0), key("d", 0)};
    KeySelector uniform(zeros);
    const int n = 100000;
    CHECK(chi_square(draw(uniform, "m", n), {{"a", .25}, {"b", .25}, {"c", .25}, {"d", .25}}, n) <
          16.27);  // 3 dof, 99.9%

    std::vector<Key> mixed{key("a", 0), key("b", 2)};
    KeySelector sel(mixed);
    auto counts = draw(sel, "m", 10000);
    CHECK(counts["b"] == 10000);
}

TEST_CASE("keys: disabled keys are never chosen; no candidate gives nullptr", "[keys]") {
    std::vector<Key> keys{key("off", 10, {}, false), key("on", 1, {"m1"})};
    KeySelector sel(keys);
    auto counts = draw(sel, "m1", 1000);
    CHECK(counts["on"] == 1000);
    CHECK(sel.select("m2") == nullptr);
    CHECK(sel.candidates("m2") == 0);

    std::vector<Key> none;
    KeySelector empty(none);
    CHECK(empty.select("m") == nullptr);
}

TEST_CASE("keys: negative or non-finite weights are rejected, naming the key", "[keys]") {
    std::vector<Key> keys{key("a", 1), key("b", -0.5)};
    try {
        KeySelector sel(keys);
        FAIL("expected std::invalid_argument");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("keys[1].weight") != std::string::npos);
    }
    std::vector<Key> nan{key("a", std::nan(""))};
    CHECK_THROWS_AS(KeySelector(nan), std::invalid_argument);
}
