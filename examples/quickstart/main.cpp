// Quickstart: one gateway, one provider, one blocking request.
//
// The gateway runs on the in-process Mock transport (a simulated LLM that answers
// "Echo: <your message>"), so no network and no API key are needed. Swap the transport for a real
// one and the rest of the program stays the same.

#include <bifrost/bifrost.hpp>

#include <cstdio>
#include <string>

// The pipeline is chosen at compile time: how workers reach upstreams, what a request does when its
// provider's queue is full, and where per-request objects come from.
using Gateway = bifrost::Gateway<bifrost::transport::Mock,      // simulated upstream
                                 bifrost::queue::Block,         // a full queue makes callers wait
                                 bifrost::pool::Preallocated>;  // pooled per-request objects

int main() {
    Gateway gw;

    // A provider instance: a name ("openai", the prefix of "openai/<model>"), a provider type (how
    // to speak its API) and Bifrost's per-provider configuration (keys, queue size, ...).
    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-example");  // never printed: Secret has no stream operator
    cfg.keys.push_back(key);
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>("openai", cfg)) {
        std::fprintf(stderr, "add_provider: %s\n", err->message.c_str());
        return 1;
    }

    // OpenAI's chat-completions request; "provider/model" routes it.
    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o-mini";
    bifrost::Message hello;  // role: user (the default)
    hello.content = "Hello!";
    req.messages.push_back(hello);

    // chat() blocks until the answer is in. Errors are values: no exception crosses the API.
    bifrost::Result r = gw.chat(req);
    if (!r) {
        std::fprintf(stderr, "error %d %s: %s\n", r.error().status, r.error().type.c_str(),
                     r.error().message.c_str());
        return 1;
    }
    const std::string& answer = r->choices.at(0).message.content;
    std::printf("%s (served by %s)\n", answer.c_str(), r->extra_fields.provider.c_str());
    return answer == "Echo: Hello!" ? 0 : 1;
}
