#pragma once
/// \file
/// `Result`: the caller's handle on a finished request: the response or the error, held in the
/// gateway's pooled object until the handle goes away.

#include <bifrost/core/job.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/outcome.hpp>

#include <cassert>
#include <string_view>
#include <utility>

namespace bifrost {

namespace detail {
struct GatewayAccess;
}

/// A move-only handle on a finished request. `ok()` tells whether it holds a response
/// (`value()`, `*`, `->`) or an error (`error()`). The memory behind it returns to the gateway's
/// pool when the handle is destroyed, so reading a response allocates nothing; `take()` moves
/// the response out when it must outlive the handle.
///
/// A `Result` must not outlive the gateway that produced it.
class Result {
  public:
    Result() noexcept = default;
    Result(Result&& other) noexcept : job_(std::exchange(other.job_, nullptr)) {}
    Result& operator=(Result&& other) noexcept {
        if (this != &other) {
            reset();
            job_ = std::exchange(other.job_, nullptr);
        }
        return *this;
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result() { reset(); }

    /// True when the request produced a response.
    [[nodiscard]] bool ok() const noexcept { return job_ != nullptr && job_->outcome.ok(); }
    explicit operator bool() const noexcept { return ok(); }

    /// The response. Precondition: `ok()`.
    [[nodiscard]] const ChatResponse& value() const& noexcept {
        assert(ok());
        return job_->outcome.response;
    }
    [[nodiscard]] ChatResponse& value() & noexcept {
        assert(ok());
        return job_->outcome.response;
    }
    [[nodiscard]] const ChatResponse& operator*() const& noexcept { return value(); }
    [[nodiscard]] const ChatResponse* operator->() const noexcept { return &value(); }

    /// Moves the response out. Precondition: `ok()`.
    [[nodiscard]] ChatResponse take() {
        assert(ok());
        return std::move(job_->outcome.response);
    }

    /// The upstream's body the response was read from, when it can stand for the response as
    /// it is: OpenAI's chat-completion JSON from a provider that speaks it
    /// (`ChatWireIsUnified`), and no plugin's post-hook has seen the outcome (a hook may change
    /// it). Empty otherwise: answered by a fallback of another kind, a pre-hook, a stream, or a
    /// non-OpenAI upstream. It does not hold `extra_fields` (those are the gateway's) and does
    /// not reflect changes made through `value()`. Precondition: `ok()`.
    [[nodiscard]] std::string_view wire_json() const noexcept {
        assert(ok());
        return job_->wire_response ? std::string_view(job_->http_response.body)
                                   : std::string_view();
    }

    /// The error. Precondition: `!ok()`. An empty handle reports a 500 "empty result".
    [[nodiscard]] const Error& error() const noexcept {
        if (job_ == nullptr) return empty_error();
        return job_->outcome.error;
    }

    /// The request as it was sent (after pre-hooks rewrote it). Precondition: not empty.
    [[nodiscard]] const ChatRequest& request() const noexcept {
        assert(job_ != nullptr);
        return job_->request;
    }

    /// The outcome (response and error together), as post-hooks saw it last.
    [[nodiscard]] const Outcome& outcome() const noexcept {
        assert(job_ != nullptr);
        return job_->outcome;
    }

    /// True when the handle holds nothing (default-constructed or moved from).
    [[nodiscard]] bool empty() const noexcept { return job_ == nullptr; }

  private:
    friend struct detail::GatewayAccess;

    explicit Result(detail::Job* job) noexcept : job_(job) {}

    void reset() noexcept {
        if (job_ != nullptr) std::exchange(job_, nullptr)->release();
    }

    static const Error& empty_error() noexcept {
        static const Error e{500, "internal_error", "empty result", {}, {}, {}};
        return e;
    }

    detail::Job* job_ = nullptr;
};

}  // namespace bifrost
