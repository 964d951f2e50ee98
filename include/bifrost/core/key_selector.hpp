#pragma once
/// \file
/// Weighted random choice of an API key among the enabled keys that serve a model.

#include <bifrost/config/provider_config.hpp>
#include <bifrost/detail/random.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bifrost {

/// Picks keys for requests: among the enabled keys whose `models` list contains the model (or is
/// empty, meaning every model), each key is chosen with probability weight / total weight; when
/// every candidate weighs 0 the choice is uniform.
///
/// All the work that does not depend on the draw happens at construction: one candidate table
/// for "any other model" and one per model named in some key's list, each with cumulative
/// weights. A selection is then a table lookup, one random draw and a scan of a few doubles.
///
/// Thread safety: `select` is const and may run on many threads at once (each draws from its
/// own thread-local generator). The selector refers to `keys` and must not outlive it.
class KeySelector {
  public:
    KeySelector() = default;

    /// Builds the tables. Throws `std::invalid_argument` for a negative or non-finite weight.
    explicit KeySelector(const std::vector<Key>& keys) : keys_(&keys) {
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const Key& k = keys[i];
            if (!(k.weight >= 0) || k.weight > 1e300)
                throw std::invalid_argument("keys[" + std::to_string(i) +
                                            "].weight must be a finite number >= 0");
        }
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const Key& k = keys[i];
            if (!k.enabled) continue;
            if (k.models.empty()) {
                add(any_model_, i);
                for (auto& [model, table] : by_model_)
                    add(table, i);
            } else {
                for (const auto& m : k.models) {
                    auto it = std::find_if(by_model_.begin(), by_model_.end(),
                                           [&](const auto& e) { return e.first == m; });
                    if (it == by_model_.end()) {
                        by_model_.emplace_back(m, any_model_);  // starts with the wildcard keys
                        it = by_model_.end() - 1;
                    }
                    if (it->second.index.empty() || it->second.index.back() != i)
                        add(it->second, i);
                }
            }
        }
        std::sort(by_model_.begin(), by_model_.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
    }

    /// A key serving `model`, or nullptr when none does.
    [[nodiscard]] const Key* select(std::string_view model) const noexcept {
        return select(model, detail::thread_random());
    }

    /// As above with an explicit generator (deterministic tests and benchmarks).
    [[nodiscard]] const Key* select(std::string_view model,
                                    detail::FastRandom& rng) const noexcept {
        const Table& t = table_for(model);
        const std::size_t n = t.index.size();
        if (n == 0) return nullptr;
        if (n == 1) return &(*keys_)[t.index[0]];
        if (t.total <= 0) return &(*keys_)[t.index[rng.below(n)]];
        const double x = rng.uniform() * t.total;
        for (std::size_t i = 0; i + 1 < n; ++i)
            if (x < t.cumulative[i]) return &(*keys_)[t.index[i]];
        return &(*keys_)[t.index[n - 1]];
    }

    /// A key serving `model` other than `excluded`, weighted the same way; `excluded` itself
    /// only when it is the sole candidate. Used to rotate keys on retries.
    [[nodiscard]] const Key* select_excluding(std::string_view model,
                                              const Key* excluded) const noexcept {
        const Table& t = table_for(model);
        const std::size_t n = t.index.size();
        if (n < 2 || excluded == nullptr) return select(model);
        std::size_t skip = n;
        for (std::size_t i = 0; i < n; ++i)
            if (&(*keys_)[t.index[i]] == excluded) skip = i;
        if (skip == n) return select(model);
        detail::FastRandom& rng = detail::thread_random();
        const double skip_weight = (*keys_)[t.index[skip]].weight;
        const double total = t.total - skip_weight;
        if (total <= 0) {  // the others all weigh 0: uniform among them
            std::size_t k = rng.below(n - 1);
            if (k >= skip) ++k;
            return &(*keys_)[t.index[k]];
        }
        double x = rng.uniform() * total;
        std::size_t last = n;
        for (std::size_t i = 0; i < n; ++i) {
            if (i == skip) continue;
            const double w = (*keys_)[t.index[i]].weight;
            last = i;
            if (x < w) return &(*keys_)[t.index[i]];
            x -= w;
        }
        return &(*keys_)[t.index[last]];
    }

    /// How many keys could serve `model`.
    [[nodiscard]] std::size_t candidates(std::string_view model) const noexcept {
        return table_for(model).index.size();
    }

  private:
    struct Table {
        std::vector<std::uint32_t> index;  // into *keys_
        std::vector<double> cumulative;    // running sum of weights
        double total = 0;
    };

    void add(Table& t, std::size_t i) {
        t.total += (*keys_)[i].weight;
        t.index.push_back(static_cast<std::uint32_t>(i));
        t.cumulative.push_back(t.total);
    }

    [[nodiscard]] const Table& table_for(std::string_view model) const noexcept {
        if (by_model_.empty()) return any_model_;
        auto it = std::lower_bound(by_model_.begin(), by_model_.end(), model,
                                   [](const auto& e, std::string_view m) { return e.first < m; });
        if (it != by_model_.end() && it->first == model) return it->second;
        return any_model_;
    }

    const std::vector<Key>* keys_ = nullptr;
    Table any_model_;
    std::vector<std::pair<std::string, Table>> by_model_;
};

}  // namespace bifrost
