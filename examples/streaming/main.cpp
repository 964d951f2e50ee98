// Streaming chat completions: chat_stream() hands each chunk to a callback as the upstream sends
// it, then returns the final Result (ok, or the error that ended the stream).
//
// The Mock transport plays a streaming LLM here ("Echo: <your message>", one word every 20 ms);
// with transport::Beast and a real provider the code is the same.

#include <bifrost/bifrost.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

using Gateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>;

int main() {
    Gateway gw;
    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-example");
    cfg.keys.push_back(key);
    // A scripted upstream that streams its answer word by word.
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>(
            "openai", cfg, {bifrost::transport::mock::stream_echo(20ms)})) {
        std::fprintf(stderr, "add_provider: %s\n", err->message.c_str());
        return 1;
    }

    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o-mini";
    bifrost::Message m;
    m.content = "tell me a short story";
    req.messages.push_back(std::move(m));

    // The callback runs on a gateway worker thread, once per chunk, in order: keep it short.
    // Returning false would stop the stream (and cancel the upstream call).
    std::string text;
    const bifrost::Result r = gw.chat_stream(req, [&](const bifrost::StreamChunk& chunk) {
        for (const auto& choice : chunk.choices) {
            if (choice.content) {
                std::printf("%s", choice.content->c_str());
                std::fflush(stdout);
                text += *choice.content;
            }
        }
        return true;
    });
    std::printf("\n");

    if (!r) {
        std::fprintf(stderr, "stream failed: %d %s\n", r.error().status, r.error().message.c_str());
        return 1;
    }
    // The final result summarises the stream: finish reason and token usage (not the text).
    std::printf("finish_reason=%s, tokens=%lld, provider=%s\n",
                r->choices.empty() ? "?" : r->choices[0].finish_reason.c_str(),
                r->usage ? static_cast<long long>(r->usage->total_tokens) : -1LL,
                r->extra_fields.provider.c_str());
    return text == "Echo: tell me a short story" ? 0 : 1;
}
