// Fallbacks: when the primary provider fails, the request is tried on each fallback in order; the
// first success answers, and the response says who served it.
//
// Fallbacks are Bifrost's `fallbacks: ["provider/model", ...]` on the request. Each is a full
// attempt (plugins, queue, retries); a fallback is not tried when the caller cancelled or the
// request's deadline has passed.

#include <bifrost/bifrost.hpp>

#include <cstdio>
#include <string>

using Gateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>;

int main() {
    Gateway gw;
    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-example");
    cfg.keys.push_back(key);

    // "openai" is down: its simulated upstream answers every call with a 503.
    const auto down = bifrost::transport::mock::fixed(
        503, R"({"error":{"message":"the engine is overloaded","type":"server_error"}})");
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>("openai", cfg, {down}))
        return std::fprintf(stderr, "add_provider: %s\n", err->message.c_str()), 1;
    // "backup" (any OpenAI-compatible service) works: the default Mock script echoes.
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>("backup", cfg))
        return std::fprintf(stderr, "add_provider: %s\n", err->message.c_str()), 1;

    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o";
    req.fallbacks = {"backup/gpt-4o-mini"};  // tried in order when the primary fails
    bifrost::Message m;
    m.content = "Are you there?";
    req.messages.push_back(m);

    const bifrost::Result r = gw.chat(req);
    if (!r) {
        // Had every fallback failed too, this would be the primary's error.
        std::fprintf(stderr, "error %d: %s\n", r.error().status, r.error().message.c_str());
        return 1;
    }
    std::printf("\"%s\" served by %s (model %s)\n", r->choices.at(0).message.content.c_str(),
                r->extra_fields.provider.c_str(), r->model.c_str());

    const auto s = gw.stats();
    std::printf("fallback attempts: %llu, successes: %llu\n",
                static_cast<unsigned long long>(s.fallback_attempts),
                static_cast<unsigned long long>(s.fallback_successes));
    const bool ok = r->extra_fields.provider == "backup" && r->model == "gpt-4o-mini" &&
                    r->choices.at(0).message.content == "Echo: Are you there?" &&
                    s.fallback_successes == 1;
    return ok ? 0 : 1;
}
