#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/asio/use_future.hpp>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using bifrost::ChatRequest;
using bifrost::Context;
using bifrost::Outcome;

namespace {

/// A shared log of hook calls.
struct Log {
    std::mutex m;
    std::vector<std::string> lines;
    void add(std::string s) {
        std::lock_guard l(m);
        lines.push_back(std::move(s));
    }
    std::vector<std::string> take() {
        std::lock_guard l(m);
        return std::exchange(lines, {});
    }
};
Log g_log;

template <int N>
struct Tracer {
    void pre_hook(Context&, ChatRequest&) { g_log.add("pre" + std::to_string(N)); }
    void post_hook(Context& ctx, Outcome&) {
        g_log.add("post" + std::to_string(N) + ":" + std::string(ctx.provider()));
    }
};

/// Only a post-hook: counts as having run whenever the plugins before it ran.
struct PostOnly {
    void post_hook(Context&, Outcome&) { g_log.add("postonly"); }
};

/// Answers requests whose model is "cache/hit" itself.
struct Cache {
    static constexpr std::string_view name = "cache";
    void pre_hook(Context& ctx, ChatRequest& req) {
        g_log.add("cache-pre");
        if (req.model == "cache/hit") {
            bifrost::ChatResponse r;
            r.id = "cached-1";
            r.model = "cached";
            r.choices.resize(1);
            r.choices[0].message.content = "from cache";
            r.choices[0].finish_reason = "stop";
            ctx.respond(std::move(r));
        } else if (req.model == "cache/deny") {
            ctx.fail(bifrost::errors::make(403, "forbidden", "denied by policy"));
        }
    }
    void post_hook(Context&, Outcome& out) {
        g_log.add(out.ok() ? "cache-post:ok" : "cache-post:err");
    }
};

/// Rewrites the model before routing.
struct Router {
    void pre_hook(Context&, ChatRequest& req) {
        if (req.model == "alias/fast") req.model = "p/fast-model";
    }
};

/// Throws from the hook named by the request's user field.
struct Thrower {
    static constexpr std::string_view name = "thrower";
    void pre_hook(Context&, ChatRequest& req) {
        g_log.add("thrower-pre");
        if (req.user == "throw-pre") throw std::runtime_error("pre exploded");
    }
    void post_hook(Context&, Outcome&) {
        g_log.add("thrower-post");
        throw std::logic_error("post exploded");
    }
};

/// Turns errors into a canned response (recovery in a post-hook).
struct Recover {
    void post_hook(Context&, Outcome& out) {
        if (!out.ok()) {
            out.error.clear();
            out.reuse_choices(1)[0].message.content = "recovered";
        }
    }
};

static_assert(bifrost::Plugin<Tracer<1>>);
static_assert(bifrost::Plugin<PostOnly>);
static_assert(!bifrost::Plugin<int>);

}  // namespace

TEST_CASE("plugins: pre-hooks in order, post-hooks in reverse", "[plugins]") {
    test::MockGateway<bifrost::queue::Block, Tracer<1>, PostOnly, Tracer<2>> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
    g_log.take();
    REQUIRE(gw.chat(test::request("p/m", "x")).ok());
    CHECK(g_log.take() ==
          std::vector<std::string>{"pre1", "pre2", "post2:p", "postonly", "post1:p"});

    // The same order on the async path.
    REQUIRE(gw.async_chat(test::request("p/m", "x"), boost::asio::use_future).get().ok());
    CHECK(g_log.take() ==
          std::vector<std::string>{"pre1", "pre2", "post2:p", "postonly", "post1:p"});
}

TEST_CASE("plugins: a pre-hook may answer or fail a request itself", "[plugins]") {
    test::MockGateway<bifrost::queue::Block, Tracer<1>, Cache, Tracer<2>> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
    g_log.take();

    auto hit = gw.chat(test::request("cache/hit", "x"));
    REQUIRE(hit.ok());
    CHECK(hit->choices[0].message.content == "from cache");
    // Tracer<2> never ran: its post-hook is skipped; the provider was never called.
    CHECK(g_log.take() == std::vector<std::string>{"pre1", "cache-pre", "cache-post:ok", "post1:"});

    auto deny = gw.chat(test::request("cache/deny", "x"));
    REQUIRE_FALSE(deny.ok());
    CHECK(deny.error().status == 403);
    CHECK(deny.error().message == "denied by policy");
    CHECK(g_log.take() ==
          std::vector<std::string>{"pre1", "cache-pre", "cache-post:err", "post1:"});

    auto async_hit = gw.async_chat(test::request("cache/hit", "x"), boost::asio::use_future).get();
    CHECK(async_hit->choices[0].message.content == "from cache");
    g_log.take();

    const auto s = gw.stats();
    CHECK(s.short_circuited == 3);
    CHECK(s.provider("p")->submitted == 0);
}

TEST_CASE("plugins: a pre-hook may reroute a request", "[plugins]") {
    test::MockGateway<bifrost::queue::Block, Router> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
    auto r = gw.chat(test::request("alias/fast", "x"));
    REQUIRE(r.ok());
    CHECK(r->model == "fast-model");
    CHECK(r.request().model == "p/fast-model");
}

TEST_CASE("plugins: exceptions become a 500 plugin_error for that request", "[plugins]") {
    test::MockGateway<bifrost::queue::Block, Tracer<1>, Thrower, Tracer<2>> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
    g_log.take();

    auto pre = test::request("p/m", "x");
    pre.user = "throw-pre";
    auto r = gw.chat(pre);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 500);
    CHECK(r.error().type == "plugin_error");
    CHECK(r.error().message == "pre-hook of thrower failed: pre exploded");
    // The thrower's own post-hook does not run (its pre-hook did not complete).
    CHECK(g_log.take() == std::vector<std::string>{"pre1", "thrower-pre", "post1:"});

    auto post = gw.chat(test::request("p/m", "x"));
    REQUIRE_FALSE(post.ok());
    CHECK(post.error().message == "post-hook of thrower failed: post exploded");
    CHECK(g_log.take() == std::vector<std::string>{"pre1", "thrower-pre", "pre2", "post2:p",
                                                   "thrower-post", "post1:p"});

    // The gateway keeps serving.
    CHECK(gw.stats().provider("p")->completed == 1);
}

TEST_CASE("plugins: a post-hook may turn an error into a response", "[plugins]") {
    test::MockGateway<bifrost::queue::Block, Recover> gw(test::options());
    REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>(
        "p", test::provider_config(), {bifrost::transport::mock::fixed(500, "{}")}));
    auto r = gw.chat(test::request("p/m", "x"));
    REQUIRE(r.ok());
    CHECK(r->choices.at(0).message.content == "recovered");
}

namespace {

/// Rewrites every answer's content (a post-hook that changes the response).
struct Rewrite {
    void post_hook(Context&, Outcome& out) {
        if (out.ok()) out.response.choices.at(0).message.content = "rewritten";
    }
};

}  // namespace

TEST_CASE("plugins: an answer a post-hook saw is not relayed as the upstream sent it",
          "[plugins]") {
    // The relay (`Result::wire_json`) would bypass what the hook did to the response.
    SECTION("no plugin: the OpenAI upstream's body stands for the answer") {
        test::MockGateway<bifrost::queue::Block> gw(test::options());
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
        auto r = gw.chat(test::request("p/m", "hello"));
        REQUIRE(r.ok());
        const std::string_view wire = r.wire_json();
        REQUIRE_FALSE(wire.empty());
        CHECK(wire.find("Echo: hello") != std::string_view::npos);
        bifrost::Outcome again;
        REQUIRE(bifrost::parse_chat_response(wire, again));
        CHECK(again.response.choices.at(0).message.content == r->choices.at(0).message.content);
    }
    SECTION("a post-hook that rewrites the answer: written anew") {
        test::MockGateway<bifrost::queue::Block, Rewrite> gw(test::options());
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
        auto r = gw.chat(test::request("p/m", "hello"));
        REQUIRE(r.ok());
        CHECK(r->choices.at(0).message.content == "rewritten");
        CHECK(r.wire_json().empty());
    }
    SECTION("a pre-hook's own answer has no upstream body") {
        test::MockGateway<bifrost::queue::Block, Cache> gw(test::options());
        REQUIRE_FALSE(gw.add_provider<bifrost::providers::OpenAI>("p", test::provider_config()));
        auto r = gw.chat(test::request("cache/hit", "x"));
        REQUIRE(r.ok());
        CHECK(r.wire_json().empty());
    }
}
