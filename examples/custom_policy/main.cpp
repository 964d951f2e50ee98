// A backpressure policy written by the user: when a provider's queue is full, interactive requests
// wait for space (up to a limit) while background ones are dropped at once, so a batch job never
// holds up a person waiting for an answer.
//
// A QueuePolicy is any type with `OnFull on_full(const queue::FullQueue&) const` (the
// `bifrost::QueuePolicy` concept). It is consulted only when a queue is full, and sees the
// provider, the queue depth and the request.

#include <bifrost/bifrost.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

struct InteractiveFirst {
    std::chrono::nanoseconds max_wait = 2s;

    bifrost::queue::OnFull on_full(const bifrost::queue::FullQueue& q) const {
        // Background traffic marks itself through OpenAI's `user` field.
        if (q.request.user.starts_with("batch")) return bifrost::queue::OnFull::reject();  // 503
        return bifrost::queue::OnFull::wait_until(q.now + max_wait);
    }
};

static_assert(bifrost::QueuePolicy<InteractiveFirst>);

using Gateway = bifrost::Gateway<bifrost::transport::Mock, InteractiveFirst,  // <- the policy
                                 bifrost::pool::Preallocated>;

bifrost::ChatRequest ask(std::string text, std::string user) {
    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o-mini";
    req.user = std::move(user);
    bifrost::Message m;
    m.content = std::move(text);
    req.messages.push_back(std::move(m));
    return req;
}

}  // namespace

int main() {
    std::atomic<int> interactive_ok{0}, answered{0};  // declared first: they outlive the gateway
    Gateway gw;  // a policy with state can be passed too: Gateway gw({}, InteractiveFirst{5s});

    // A tiny provider: one request in flight, room for one more in its queue. A valve holds the
    // simulated upstream's answers until we open it, so the queue fills up predictably.
    auto valve = std::make_shared<bifrost::transport::Valve>();
    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-example");
    cfg.keys.push_back(key);
    cfg.concurrency_and_buffer_size.concurrency = 1;
    cfg.concurrency_and_buffer_size.buffer_size = 1;
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>(
            "openai", cfg, {bifrost::transport::mock::held_by(valve)}))
        return std::fprintf(stderr, "add_provider: %s\n", err->message.c_str()), 1;

    const auto on_answer = [&](bifrost::Result r) {  // runs on a worker thread: keep it short
        if (r) interactive_ok.fetch_add(1);
        answered.fetch_add(1);
    };

    gw.async_chat(ask("one", "alice"), on_answer);  // in flight (held by the valve)
    for (int i = 0; valve->held() == 0 && i < 10000; ++i)
        std::this_thread::sleep_for(1ms);
    gw.async_chat(ask("two", "bob"), on_answer);  // fills the queue

    // The queue is full. A background request is turned away at once...
    const bifrost::Result batch = gw.chat(ask("nightly report", "batch-reports"));
    std::printf("background request: %d %s\n", batch.error().status, batch.error().type.c_str());

    // ...an interactive one waits for space (parked, not blocking a thread, as it is async).
    gw.async_chat(ask("three", "carol"), on_answer);

    valve->open();  // the upstream answers; the queue drains
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (answered.load() < 3 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(1ms);

    const auto s = gw.stats().providers.at(0);
    std::printf("interactive requests answered: %d, dropped: %llu, waited for space: %llu\n",
                interactive_ok.load(), static_cast<unsigned long long>(s.dropped),
                static_cast<unsigned long long>(s.waited_for_space));
    const bool ok = !batch && batch.error().type == bifrost::error_type::request_dropped &&
                    interactive_ok.load() == 3 && s.dropped == 1;
    return ok ? 0 : 1;
}
