// A plugin: a response cache. Its pre-hook answers repeated questions itself (a short-circuit: the
// provider is never called); its post-hook stores fresh answers.
//
// A plugin is any type with `pre_hook(Context&, ChatRequest&)` and/or
// `post_hook(Context&, Outcome&)`: no base class. It is listed in the gateway type, so the hooks
// are called directly, without virtual dispatch.

#include <bifrost/bifrost.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace {

class Cache {
  public:
    // Shown in the message of a 500 `plugin_error` should a hook throw.
    static constexpr std::string_view name = "cache";

    // Runs on the caller's thread before routing. Hooks of different requests run concurrently,
    // so the plugin's state is guarded.
    void pre_hook(bifrost::Context& ctx, bifrost::ChatRequest& req) {
        std::string key = req.model + '\n' + req.messages.back().content;
        std::lock_guard lock(mutex_);
        if (auto hit = answers_.find(key); hit != answers_.end()) {
            ctx.respond(hit->second);  // answer now; the provider is not called
            return;
        }
        pending_[ctx.request_id()] = std::move(key);  // remember the key for the post-hook
    }

    // Runs where the caller receives the result, for every plugin whose pre-hook ran (including
    // the one that answered). It may also rewrite the response or the error.
    void post_hook(bifrost::Context& ctx, bifrost::Outcome& out) {
        std::lock_guard lock(mutex_);
        auto it = pending_.find(ctx.request_id());
        if (it == pending_.end()) return;  // answered from the cache: nothing to store
        if (out.ok() && !ctx.short_circuited()) answers_[it->second] = out.response;
        pending_.erase(it);
    }

  private:
    std::mutex mutex_;
    std::map<std::string, bifrost::ChatResponse> answers_;
    std::map<std::uint64_t, std::string> pending_;  // request id -> cache key
};

static_assert(bifrost::Plugin<Cache>);

// Plugins come after the three policies; several may be listed (pre-hooks run in order).
using Gateway = bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block,
                                 bifrost::pool::Preallocated, Cache>;

}  // namespace

int main() {
    Gateway gw;

    // The simulated upstream counts the calls that reach it.
    std::atomic<int> upstream_calls{0};
    const bifrost::transport::MockScript echo = bifrost::transport::mock::echo();
    bifrost::transport::Mock::Options upstream{[&](bifrost::transport::MockCall& call) {
        upstream_calls.fetch_add(1);
        echo(call);
    }};

    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-example");
    cfg.keys.push_back(key);
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>("openai", cfg, upstream))
        return std::fprintf(stderr, "add_provider: %s\n", err->message.c_str()), 1;

    bool answers_ok = true;
    for (const char* text : {"What is a gateway?", "What is a gateway?", "And a cache?"}) {
        bifrost::ChatRequest req;
        req.model = "openai/gpt-4o-mini";
        bifrost::Message m;
        m.content = text;
        req.messages.push_back(m);
        const bifrost::Result r = gw.chat(req);
        if (!r) return std::fprintf(stderr, "error: %s\n", r.error().message.c_str()), 1;
        std::printf("%-20s -> %s\n", text, r->choices.at(0).message.content.c_str());
        answers_ok = answers_ok && r->choices.at(0).message.content == std::string("Echo: ") + text;
    }

    // Three requests, two distinct questions: the repeated one never reached the upstream.
    const auto stats = gw.stats();
    std::printf("upstream calls: %d, answered by the cache: %llu\n", upstream_calls.load(),
                static_cast<unsigned long long>(stats.short_circuited));
    return answers_ok && upstream_calls.load() == 2 && stats.short_circuited == 1 ? 0 : 1;
}
