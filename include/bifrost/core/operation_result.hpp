#pragma once
/// \file
/// `OperationResult<Response>`: the caller's handle on a finished request of a kind other than
/// chat (`EmbeddingResult`, `TextCompletionResult`, `ModelListResult`). Same ownership model as
/// `Result`: the response or the error stays in the gateway's pooled object until the handle goes
/// away.

#include <bifrost/core/job.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/operation_outcome.hpp>

#include <cassert>
#include <utility>

namespace bifrost {

namespace detail {
struct GatewayAccess;
}

/// A move-only handle on a finished request: `ok()` and the response (`value()`, `*`, `->`), or
/// `error()`. The memory behind it returns to the gateway's pool when the handle is destroyed;
/// `take()` moves the response out when it must outlive the handle.
///
/// A handle must not outlive the gateway that produced it.
template <class Response>
class OperationResult {
  public:
    using response_type = Response;

    OperationResult() noexcept = default;
    OperationResult(OperationResult&& other) noexcept : job_(std::exchange(other.job_, nullptr)) {}
    OperationResult& operator=(OperationResult&& other) noexcept {
        if (this != &other) {
            reset();
            job_ = std::exchange(other.job_, nullptr);
        }
        return *this;
    }
    OperationResult(const OperationResult&) = delete;
    OperationResult& operator=(const OperationResult&) = delete;
    ~OperationResult() { reset(); }

    /// True when the request produced a response.
    [[nodiscard]] bool ok() const noexcept { return job_ != nullptr && job_->outcome.ok(); }
    explicit operator bool() const noexcept { return ok(); }

    /// The response. Precondition: `ok()`.
    [[nodiscard]] const Response& value() const& noexcept {
        assert(ok());
        return job_->op_data->template outcome<Response>().response;
    }
    [[nodiscard]] Response& value() & noexcept {
        assert(ok());
        return job_->op_data->template outcome<Response>().response;
    }
    [[nodiscard]] const Response& operator*() const& noexcept { return value(); }
    [[nodiscard]] const Response* operator->() const noexcept { return &value(); }

    /// Moves the response out. Precondition: `ok()`.
    [[nodiscard]] Response take() {
        assert(ok());
        return std::move(job_->op_data->template outcome<Response>().response);
    }

    /// The error. Precondition: `!ok()`. An empty handle reports a 500 "empty result".
    [[nodiscard]] const Error& error() const noexcept {
        if (job_ == nullptr) return empty_error();
        return job_->outcome.error;
    }

    /// True when the handle holds nothing (default-constructed or moved from).
    [[nodiscard]] bool empty() const noexcept { return job_ == nullptr; }

  private:
    friend struct detail::GatewayAccess;

    explicit OperationResult(detail::Job* job) noexcept : job_(job) {}

    void reset() noexcept {
        if (job_ != nullptr) std::exchange(job_, nullptr)->release();
    }

    static const Error& empty_error() noexcept {
        static const Error e{500, "internal_error", "empty result", {}, {}, {}};
        return e;
    }

    detail::Job* job_ = nullptr;
};

/// The answer of `Gateway::embed` / `async_embed`.
using EmbeddingResult = OperationResult<EmbeddingResponse>;
/// The answer of `Gateway::text_complete` / `async_text_complete`.
using TextCompletionResult = OperationResult<TextCompletionResponse>;
/// The answer of `Gateway::list_models`.
using ModelListResult = OperationResult<ModelList>;

}  // namespace bifrost
