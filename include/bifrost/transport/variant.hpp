#pragma once
/// \file
/// `transport::Variant<Ts...>`: one gateway, several transports, chosen per provider.
///
/// A `Gateway` has one transport type. When some providers need a different one (the built-in
/// simulated `mock` provider next to real HTTP upstreams, or a test double next to production
/// providers), `Variant<Mock, Beast>` is that type: its `Options` is a `std::variant` of the
/// alternatives' options, and the alternative the options hold picks the transport for that
/// provider. Dispatch is one switch on an index per request; no virtual calls, no allocation.
///
///     using Gateway = bifrost::Gateway<transport::Variant<transport::Mock, transport::Beast>,
///                                      queue::Block, pool::Preallocated>;
///     gw.add_provider<providers::OpenAI>("mock", cfg, transport::Mock::Options{});
///     gw.add_provider<providers::Groq>("groq", cfg, transport::Beast::Options{});

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/transport/http.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>
#include <variant>

namespace bifrost::transport {

namespace detail {

template <class T, class... Ts>
inline constexpr bool distinct_v = (!std::is_same_v<T, Ts> && ...) && distinct_v<Ts...>;
template <class T>
inline constexpr bool distinct_v<T> = true;

}  // namespace detail

/// A transport that is one of `Ts...`, decided per provider by which alternative its
/// `Options` holds (the first by default). Each alternative's `Options` type must be distinct.
template <Transport... Ts>
class Variant {
    static_assert(sizeof...(Ts) > 0, "transport::Variant needs at least one transport");
    static_assert(detail::distinct_v<typename Ts::Options...>,
                  "transport::Variant: each alternative needs its own Options type");

  public:
    using Options = std::variant<typename Ts::Options...>;

    Variant(asio::io_context::executor_type ex, const ProviderConfig& config,
            const Options& options)
        : impl_(make_at(ex, config, options, std::integral_constant<std::size_t, 0>{})) {}

    Variant(const Variant&) = delete;
    Variant& operator=(const Variant&) = delete;

    /// The index of the transport this object uses (the alternative of its options).
    [[nodiscard]] std::size_t index() const noexcept { return impl_.index(); }

    template <class Handler>
    void async_send(const HttpRequest& request, HttpResponse& response, Handler&& handler) {
        std::visit(
            [&](auto& t) { t.async_send(request, response, std::forward<Handler>(handler)); },
            impl_);
    }

    /// Streams through the selected transport; present when every alternative can stream.
    template <class OnBody, class Handler>
    void async_send_stream(const HttpRequest& request, HttpResponse& response, OnBody&& on_body,
                           Handler&& handler) requires(StreamingTransport<Ts>&&...) {
        std::visit(
            [&](auto& t) {
                t.async_send_stream(request, response, std::forward<OnBody>(on_body),
                                    std::forward<Handler>(handler));
            },
            impl_);
    }

  private:
    using Impl = std::variant<Ts...>;

    // Constructs alternative `options.index()` in place (transports need not be movable).
    template <std::size_t I>
    static Impl make_at(asio::io_context::executor_type ex, const ProviderConfig& config,
                        const Options& options, std::integral_constant<std::size_t, I>) {
        if constexpr (I + 1 < sizeof...(Ts)) {
            if (options.index() != I)
                return make_at(ex, config, options, std::integral_constant<std::size_t, I + 1>{});
        }
        return Impl(std::in_place_index<I>, ex, config, std::get<I>(options));
    }

    Impl impl_;
};

}  // namespace bifrost::transport
