// Asynchronous requests: async_chat() takes any Asio completion token. Here the two most common
// ones: a C++20 coroutine (asio::use_awaitable) and a std::future (asio::use_future).
//
// No thread waits for an upstream in either case: the gateway's workers multiplex requests over
// their event loops and deliver each result to the caller's executor (the coroutine) or promise.

#include <bifrost/bifrost.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;

using Gateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>;

namespace {

bifrost::ChatRequest ask(std::string text) {
    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o-mini";
    bifrost::Message m;
    m.content = std::move(text);
    req.messages.push_back(std::move(m));
    return req;
}

std::string answer_of(const bifrost::Result& r) {
    return r ? r->choices.at(0).message.content : "error: " + r.error().message;
}

// A coroutine sends three requests one after the other; each co_await suspends it (no thread
// blocks) until the gateway answers. It resumes on its own io_context.
asio::awaitable<int> conversation(Gateway& gw) {
    int correct = 0;
    for (const char* text : {"first", "second", "third"}) {
        bifrost::Result r = co_await gw.async_chat(ask(text), asio::use_awaitable);
        std::printf("coroutine: %s\n", answer_of(r).c_str());
        if (answer_of(r) == std::string("Echo: ") + text) ++correct;
    }
    co_return correct;
}

}  // namespace

int main() {
    Gateway gw;
    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-example");
    cfg.keys.push_back(key);
    // The simulated upstream takes 2 ms per answer, as a (very fast) real one would take some time.
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>(
            "openai", cfg, {bifrost::transport::mock::echo(2ms)}))
        return std::fprintf(stderr, "add_provider: %s\n", err->message.c_str()), 1;

    // 1. Coroutine. co_spawn starts it on `ioc`; run() returns once it has finished (the gateway
    //    keeps `ioc` busy while a request of the coroutine is in flight).
    asio::io_context ioc;
    std::future<int> coroutine_result = asio::co_spawn(ioc, conversation(gw), asio::use_future);
    ioc.run();
    const int correct = coroutine_result.get();

    // 2. Futures. Each call returns a std::future<Result> at once; both requests are in flight
    //    together, and get() waits for each answer.
    std::future<bifrost::Result> a = gw.async_chat(ask("future A"), asio::use_future);
    std::future<bifrost::Result> b = gw.async_chat(ask("future B"), asio::use_future);
    const bifrost::Result ra = a.get();
    const bifrost::Result rb = b.get();
    std::printf("future:    %s\nfuture:    %s\n", answer_of(ra).c_str(), answer_of(rb).c_str());

    const bool ok =
        correct == 3 && answer_of(ra) == "Echo: future A" && answer_of(rb) == "Echo: future B";
    return ok ? 0 : 1;
}
