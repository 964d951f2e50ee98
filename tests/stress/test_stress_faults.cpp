// Randomized fault injection: 100,000 requests (divided by BIFROST_STRESS_DIVISOR, for the
// sanitizer runs) across three providers whose mock upstreams answer with random latency, 5xx,
// 429 with Retry-After, network errors, hangs and exceptions; callers that set deadlines, cancel
// at random, use fallbacks, block or go asynchronous; and a shutdown in the middle. Every
// request must be answered exactly once, with an outcome its faults allow, and the per-provider
// counters must add up.

#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/bifrost.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

using namespace std::chrono_literals;
using bifrost::Result;
using bifrost::transport::MockCall;
using bifrost::transport::MockScript;
namespace asio = boost::asio;

namespace {

int divisor() {
    const char* s = std::getenv("BIFROST_STRESS_DIVISOR");
    const int v = s ? std::atoi(s) : 1;
    return v > 0 ? v : 1;
}

/// What the upstream does for a request, derived from the request's number.
enum class Plan { ok, fail_once, always_500, network, rate_limited_once, hang, exception };

Plan plan_of(std::size_t id) {
    switch ((id * 7919) % 20) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
        case 5:
        case 6:
        case 7:
        case 8:
        case 9:
            return Plan::ok;
        case 10:
        case 11:
            return Plan::fail_once;
        case 12:
        case 13:
            return Plan::always_500;
        case 14:
        case 15:
            return Plan::network;
        case 16:
        case 17:
            return Plan::rate_limited_once;
        case 18:
            return Plan::hang;
        default:
            return Plan::exception;
    }
}

std::size_t id_of(const std::string& body) {
    const auto at = body.find("req-");
    return at == std::string::npos ? 0 : std::strtoull(body.c_str() + at + 4, nullptr, 10);
}

/// The fault-injecting upstream, shared by the three providers (calls are counted per request
/// and provider, so "once" means once per provider).
class FaultyUpstream {
  public:
    MockScript script(std::string provider) {
        return [this, provider, echo = bifrost::transport::mock::echo()](MockCall& call) {
            thread_local std::minstd_rand rng(std::random_device{}());
            const std::size_t id = id_of(call.request.body);
            int n = 0;
            {
                std::lock_guard l(m_);
                n = calls_[provider + ":" + std::to_string(id)]++;
            }
            const Plan plan = plan_of(id);
            echo(call);
            call.latency = std::chrono::microseconds(rng() % 400);
            switch (plan) {
                case Plan::ok:
                    break;
                case Plan::fail_once:
                    if (n == 0) call.response.status = 503;
                    break;
                case Plan::always_500:
                    call.response.status = 500;
                    break;
                case Plan::network:
                    call.fault = MockCall::Fault::network_error;
                    break;
                case Plan::rate_limited_once:
                    if (n == 0) {
                        call.response.status = 429;
                        call.response.headers.add("Retry-After", "0");
                    }
                    break;
                case Plan::hang:
                    call.fault = MockCall::Fault::hang;
                    break;
                case Plan::exception:
                    call.fault = MockCall::Fault::exception;
                    break;
            }
        };
    }

  private:
    std::mutex m_;
    std::unordered_map<std::string, int> calls_;
};

/// Whether `r` is an outcome the request's faults allow. With a deadline of its own, a request
/// may also get the upstream's transient error (no time was left to retry).
bool allowed(Plan plan, const Result& r, std::size_t id, bool deadline, bool fallback) {
    if (r.ok()) {
        // A failing primary may be rescued by the healthy fallback; a hang never is (its own
        // deadline is the whole request's).
        if (plan == Plan::hang || (!fallback && (plan == Plan::always_500 ||
                                                 plan == Plan::network || plan == Plan::exception)))
            return false;
        return r->choices.size() == 1 &&
               r->choices[0].message.content == "Echo: req-" + std::to_string(id);
    }
    const auto& e = r.error();
    // Any request may be cancelled, time out, meet an open circuit or the shutdown.
    if (e.status == 499 && e.type == "request_cancelled") return true;
    if (e.status == 504 && e.type == "request_timed_out") return true;
    if (e.status == 503 && (e.type == "circuit_open" || e.message == "provider is shutting down"))
        return true;
    switch (plan) {
        case Plan::ok:
            return false;
        case Plan::fail_once:
            return deadline && e.status == 503 && e.type == "upstream_error";
        case Plan::rate_limited_once:
            return deadline && e.status == 429 && e.type == "upstream_error";
        case Plan::always_500:
            return e.status == 500 && e.type == "upstream_error";
        case Plan::network:
            return e.status == 502 && e.type == "network_error";
        case Plan::hang:
            return false;  // only a deadline, a cancellation or the shutdown end it
        case Plan::exception:
            return e.status == 500 && e.type == "internal_error";
    }
    return false;
}

}  // namespace

TEST_CASE("stress: randomized faults, cancellations, deadlines and a shutdown: exactly once",
          "[stress][concurrency][faults]") {
    const std::size_t total = 100000 / static_cast<std::size_t>(divisor());
    FaultyUpstream upstream;
    auto opts = test::options(256);
    opts.drain_timeout = 200ms;
    auto gw = std::make_unique<test::MockGateway<bifrost::queue::Block>>(opts);
    for (const char* name : {"a", "b", "c"}) {
        auto cfg = test::provider_config(32, 256, 1);
        cfg.network_config.max_retries = 2;
        cfg.network_config.retry_backoff_initial = 1ms;
        cfg.network_config.retry_backoff_max = 4ms;
        cfg.network_config.default_request_timeout = 1s;
        cfg.circuit_breaker = {200, 20ms};
        REQUIRE_FALSE(
            gw->add_provider<bifrost::providers::OpenAI>(name, cfg, {upstream.script(name)}));
    }
    REQUIRE_FALSE(gw->add_provider<bifrost::providers::OpenAI>(
        "healthy", test::provider_config(32, 256, 1), {bifrost::transport::mock::echo(100us)}));

    // Asynchronous completions and cancellations happen on this loop.
    asio::io_context loop;
    auto work = asio::make_work_guard(loop);
    std::thread loop_thread([&] { loop.run(); });

    std::vector<std::atomic<int>> answers(total);
    std::vector<std::atomic<int>> bad(total);
    std::vector<std::atomic<bool>> has_deadline(total);
    std::vector<std::atomic<bool>> has_fallback(total);
    std::atomic<std::size_t> done{0}, next{0};
    const std::size_t shut_at = total * 3 / 5;
    const auto record = [&](std::size_t id, const Result& r) {
        answers[id].fetch_add(1);
        if (!allowed(plan_of(id), r, id, has_deadline[id].load(), has_fallback[id].load())) {
            bad[id].fetch_add(1);
            if (std::getenv("BIFROST_STRESS_VERBOSE"))
                std::fprintf(stderr, "req-%zu plan %d deadline %d fallback %d: %s %s\n", id,
                             static_cast<int>(plan_of(id)), has_deadline[id].load() ? 1 : 0,
                             has_fallback[id].load() ? 1 : 0,
                             r.ok() ? r->extra_fields.provider.c_str() : "",
                             r.ok() ? r->choices[0].message.content.c_str()
                                    : (std::to_string(r.error().status) + " " + r.error().type +
                                       " " + r.error().message)
                                          .c_str());
        }
        done.fetch_add(1);
    };

    std::array<std::atomic<int>, 4> outstanding{};
    std::thread shutter;
    std::mutex shutter_mutex;
    std::vector<std::thread> producers;
    for (int t = 0; t < 4; ++t) {
        producers.emplace_back([&, t] {
            std::minstd_rand rng(static_cast<unsigned>(t) * 977 + 1);
            const char* const names[] = {"a", "b", "c"};
            for (std::size_t id; (id = next.fetch_add(1)) < total;) {
                if (id == shut_at) {
                    std::lock_guard l(shutter_mutex);
                    shutter = std::thread([&] { gw->shutdown(); });
                }
                auto req =
                    test::request(std::string(names[id % 3]) + "/m", "req-" + std::to_string(id));
                if (rng() % 4 == 0) {
                    req.fallbacks = {std::string(names[(id + 1) % 3]) + "/m", "healthy/m"};
                    has_fallback[id] = true;
                }
                bifrost::RequestOptions ro;
                if (plan_of(id) == Plan::hang || rng() % 10 == 0) {
                    ro.timeout = std::chrono::milliseconds(5 + rng() % 20);
                    has_deadline[id] = true;
                }
                if (t == 0) {  // a blocking caller
                    record(id, gw->chat(req, ro));
                    continue;
                }
                // Closed loop: at most 128 requests of this producer outstanding, so queue waits
                // stay far below the provider timeout.
                while (outstanding[t].load() >= 128)
                    std::this_thread::yield();
                outstanding[t].fetch_add(1);
                auto signal = std::make_shared<asio::cancellation_signal>();
                const bool cancel = rng() % 20 == 0;
                gw->async_chat(
                    req, ro,
                    asio::bind_cancellation_slot(
                        signal->slot(), asio::bind_executor(loop, [&, id, t, signal](Result r) {
                            record(id, r);
                            outstanding[t].fetch_sub(1);
                        })));
                if (cancel) {
                    asio::post(loop, [signal] { signal->emit(asio::cancellation_type::terminal); });
                }
            }
        });
    }
    for (auto& p : producers)
        p.join();
    REQUIRE(test::eventually([&] { return done.load() == total; }, 120000ms));
    shutter.join();
    work.reset();
    loop_thread.join();

    std::size_t once = 0, wrong = 0;
    for (std::size_t i = 0; i < total; ++i) {
        once += answers[i].load() == 1 ? 1 : 0;
        wrong += bad[i].load() != 0 ? 1 : 0;
    }
    CHECK(once == total);
    CHECK(wrong == 0);

    const auto s = gw->stats();
    std::uint64_t submitted = 0, ended = 0, completed = 0, retries = 0, timed_out = 0,
                  cancelled = 0, shutdown = 0;
    for (const auto& p : s.providers) {
        submitted += p.submitted;
        ended += p.dropped + p.queue_timeouts + p.rejected_circuit + p.rejected_shutdown +
                 p.completed + p.failed + p.timed_out + p.cancelled;
        completed += p.completed;
        retries += p.retries;
        timed_out += p.timed_out;
        cancelled += p.cancelled;
        shutdown += p.rejected_shutdown;
        CHECK(p.in_flight == 0);
        CHECK(p.queue_depth == 0);
        CHECK(p.in_retry_backoff == 0);
    }
    CHECK(submitted == ended);
    // The run exercised every path it claims to.
    CHECK(completed > 0);
    CHECK(retries > 0);
    CHECK(timed_out > 0);
    CHECK(cancelled > 0);
    CHECK(shutdown > 0);
    CHECK(s.fallback_attempts > 0);
    CHECK(s.fallback_successes > 0);
    CHECK(s.pool.returns == s.pool.gets);
    gw.reset();
}
