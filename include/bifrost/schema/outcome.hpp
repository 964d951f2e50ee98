#pragma once
/// \file
/// `Outcome`: what one request produced, a `ChatResponse` or an `Error`. Post-hooks receive it
/// and may change either; `Result` hands it to the caller.

#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/error.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace bifrost {

/// A response or an error. `ok()` is true when no error is set (`error.status == 0`).
///
/// Outcomes live in pooled objects. `recycle()` empties one for reuse while keeping the memory
/// of its strings and choices, and `reuse_choices(n)` hands that memory back to a writer, so a
/// provider that parses through it allocates nothing in steady state.
class Outcome {
  public:
    ChatResponse response;
    Error error;

    [[nodiscard]] bool ok() const noexcept { return error.status == 0; }

    /// Sets the error (the response is then meaningless).
    void fail(Error e) { error = std::move(e); }
    void fail(int status, std::string_view type, std::string_view message,
              std::string_view provider = {}) {
        error.assign(status, type, message, provider);
    }

    /// Makes `response.choices` hold exactly `n` empty choices, reusing recycled ones.
    std::vector<Choice>& reuse_choices(std::size_t n) {
        auto& choices = response.choices;
        while (choices.size() > n) {
            spare_.push_back(std::move(choices.back()));
            choices.pop_back();
        }
        while (choices.size() < n) {
            if (spare_.empty()) {
                choices.emplace_back();
            } else {
                choices.push_back(std::move(spare_.back()));
                spare_.pop_back();
            }
        }
        return choices;
    }

    /// Empties the outcome: no error, an empty response. Capacity is kept for reuse.
    void recycle() {
        error.clear();
        auto& r = response;
        r.id.clear();
        r.object.assign("chat.completion");
        r.created = 0;
        r.model.clear();
        r.system_fingerprint.clear();
        r.usage.reset();
        r.extra_fields.provider.clear();
        r.extra_fields.latency = {};
        r.extra_fields.queue_wait = {};
        r.extra.clear();
        while (!r.choices.empty()) {
            Choice& c = r.choices.back();
            clear_choice(c);
            spare_.push_back(std::move(c));
            r.choices.pop_back();
        }
    }

  private:
    static void clear_choice(Choice& c) noexcept {
        c.index = 0;
        c.finish_reason.clear();
        c.logprobs = nullptr;
        Message& m = c.message;
        m.role = Role::assistant;
        m.content.clear();
        m.parts.clear();
        m.name.clear();
        m.tool_calls.clear();
        m.tool_call_id.clear();
        m.extra.clear();
    }

    std::vector<Choice> spare_;
};

}  // namespace bifrost
