#include "bifrost_catch.hpp"
#include "support.hpp"

#include <bifrost/queue/ring.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

using bifrost::queue::PushStatus;
using bifrost::queue::Ring;
using namespace std::chrono_literals;

TEST_CASE("ring: capacity is exact and order is FIFO", "[ring]") {
    for (std::size_t cap : {std::size_t{1}, std::size_t{3}, std::size_t{100}}) {
        Ring<std::uint64_t> ring(cap);
        CHECK(ring.capacity() == cap);
        for (std::uint64_t i = 0; i < cap; ++i)
            REQUIRE(ring.try_push(i) == PushStatus::ok);
        CHECK(ring.try_push(999) == PushStatus::full);
        CHECK(ring.size() == cap);
        for (std::uint64_t i = 0; i < cap; ++i) {
            std::uint64_t v = 0;
            REQUIRE(ring.try_pop(v));
            CHECK(v == i);
        }
        std::uint64_t v = 0;
        CHECK_FALSE(ring.try_pop(v));
        CHECK(ring.empty());
    }
}

TEST_CASE("ring: capacities above 65,535 work", "[ring]") {
    const std::size_t cap = 70000;
    Ring<std::uint32_t> ring(cap);
    for (std::uint32_t i = 0; i < cap; ++i)
        REQUIRE(ring.try_push(i) == PushStatus::ok);
    CHECK(ring.try_push(1) == PushStatus::full);
    std::uint32_t v = 0;
    REQUIRE(ring.try_pop(v));
    CHECK(v == 0);
    CHECK(ring.try_push(7) == PushStatus::ok);
    CHECK(ring.try_push(8) == PushStatus::full);
    std::size_t n = 0;
    while (ring.try_pop(v))
        ++n;
    CHECK(n == cap);
}

TEST_CASE("ring: zero capacity is rejected", "[ring]") {
    CHECK_THROWS_AS(Ring<int>(0), std::invalid_argument);
}

TEST_CASE("ring: close refuses pushes but keeps contents", "[ring]") {
    Ring<int> ring(4);
    REQUIRE(ring.try_push(1) == PushStatus::ok);
    ring.close();
    CHECK(ring.closed());
    CHECK(ring.try_push(2) == PushStatus::closed);
    int v = 0;
    REQUIRE(ring.try_pop(v));
    CHECK(v == 1);
    ring.reopen();
    CHECK(ring.try_push(3) == PushStatus::ok);
}

TEST_CASE("ring: push_wait_until times out when nobody pops", "[ring]") {
    Ring<int> ring(1);
    REQUIRE(ring.try_push(1) == PushStatus::ok);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(ring.push_wait_until(2, t0 + 30ms) == PushStatus::full);
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK(ring.size() == 1);
}

TEST_CASE("ring: a blocked producer is woken by a pop and by close", "[ring][concurrency]") {
    Ring<int> ring(1);
    REQUIRE(ring.try_push(1) == PushStatus::ok);

    std::atomic<int> result{-1};
    std::thread producer([&] { result = static_cast<int>(ring.push_wait(2)); });
    REQUIRE(test::eventually([&] { return ring.blocked_producers() == 1; }));
    int v = 0;
    REQUIRE(ring.try_pop(v));
    producer.join();
    CHECK(result == static_cast<int>(PushStatus::ok));
    REQUIRE(ring.try_pop(v));
    CHECK(v == 2);

    REQUIRE(ring.try_push(3) == PushStatus::ok);
    std::thread blocked([&] { result = static_cast<int>(ring.push_wait(4)); });
    REQUIRE(test::eventually([&] { return ring.blocked_producers() == 1; }));
    ring.close();
    blocked.join();
    CHECK(result == static_cast<int>(PushStatus::closed));
}

TEST_CASE("ring: MPMC hand-off delivers every item exactly once", "[ring][concurrency]") {
    constexpr int producers = 4, consumers = 3, per_producer = 20000;
    Ring<std::uint32_t> ring(64);
    std::vector<std::atomic<int>> seen(producers * per_producer);
    std::atomic<int> consumed{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            for (int i = 0; i < per_producer; ++i) {
                REQUIRE(ring.push_wait(static_cast<std::uint32_t>(p * per_producer + i)) ==
                        PushStatus::ok);
            }
        });
    }
    for (int c = 0; c < consumers; ++c) {
        threads.emplace_back([&] {
            std::uint32_t v = 0;
            while (consumed.load() < producers * per_producer) {
                if (ring.try_pop(v)) {
                    seen[v].fetch_add(1);
                    consumed.fetch_add(1);
                } else {
                    std::this_thread::yield();
                }
            }
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK(consumed.load() == producers * per_producer);
    CHECK(std::all_of(seen.begin(), seen.end(), [](const auto& s) { return s.load() == 1; }));
    CHECK(ring.empty());
}
