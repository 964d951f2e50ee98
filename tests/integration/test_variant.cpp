// transport::Variant: one gateway whose providers use different transports, picked by the
// alternative their transport options hold; and providers::OpenAIFormat, one provider type for
// every OpenAI-format service.

#include "bifrost_catch.hpp"
#include "mock_upstream.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>
#include <bifrost/transport/beast.hpp>
#include <bifrost/transport/variant.hpp>

#include <string>

namespace {

using Either = bifrost::transport::Variant<bifrost::transport::Beast, bifrost::transport::Mock>;
using EitherGateway = bifrost::Gateway<Either, bifrost::queue::Block, bifrost::pool::Preallocated>;

static_assert(bifrost::Transport<Either>);

bifrost::ProviderConfig config_for(const std::string& base_url) {
    auto c = test::provider_config(4, 64);
    c.network_config.base_url = base_url;
    return c;
}

}  // namespace

TEST_CASE("variant transport: each provider uses the transport its options select",
          "[variant][beast]") {
    test::MockUpstream up;
    EitherGateway gw(test::options());
    // Over HTTP to the mock upstream (the default alternative: Beast).
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("real", config_for(up.base_url())));
    // In process: a scripted Mock that never opens a socket.
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "sim", config_for("http://127.0.0.1:1"),
        bifrost::transport::Mock::Options{
            bifrost::transport::mock::fixed(418, R"({"error":{"message":"teapot"}})")}));

    const auto real = gw.chat(test::request("real/gpt-4o", "over http"));
    REQUIRE(real.ok());
    CHECK(real->choices[0].message.content == "Echo: over http");
    CHECK(up.seen().size() == 1);

    const auto sim = gw.chat(test::request("sim/gpt-4o", "in process"));
    REQUIRE_FALSE(sim.ok());
    CHECK(sim.error().status == 418);
    CHECK(up.seen().size() == 1);  // the mock provider never reached the upstream
}

TEST_CASE("OpenAIFormat: a service's URL and path chosen at run time", "[variant][beast]") {
    test::MockUpstream up;
    EitherGateway gw(test::options());
    // Perplexity's path has no /v1; its default URL is replaced by base_url.
    auto format = bifrost::providers::OpenAIFormat::of<bifrost::providers::Perplexity>();
    CHECK(format.default_base_url == "https://api.perplexity.ai");
    REQUIRE_FALSE(gw.add_provider("pplx", config_for(up.base_url()), format, Either::Options{}));
    auto keyless = config_for(up.base_url());
    keyless.keys = {bifrost::Key{}};  // one empty key: no Authorization header is sent
    REQUIRE_FALSE(gw.add_provider("local", keyless,
                                  bifrost::providers::OpenAIFormat::of<bifrost::providers::VLLM>(),
                                  Either::Options{}));

    const auto r = gw.chat(test::request("pplx/sonar", "hi"));
    INFO((r.ok() ? std::string() : r.error().message));
    const auto seen = up.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].target == "/chat/completions");
    CHECK(seen[0].authorization == "Bearer sk-test-key");

    const auto l = gw.chat(test::request("local/llama", "hi"));
    REQUIRE(l.ok());
    const auto seen2 = up.seen();
    REQUIRE(seen2.size() == 2);
    CHECK(seen2[1].target == "/v1/chat/completions");
    CHECK(seen2[1].authorization.empty());
}

TEST_CASE("with_provider_type accepts Bifrost's names", "[variant]") {
    std::string_view found;
    CHECK(
        bifrost::providers::with_provider_type("sgl", [&](auto p) { found = decltype(p)::name; }));
    CHECK(found == "sglang");
    CHECK(bifrost::providers::with_provider_type("parasail",
                                                 [&](auto p) { found = decltype(p)::name; }));
    CHECK(found == "parasail");
    CHECK_FALSE(bifrost::providers::with_provider_type("nosuch", [](auto) {}));
}
