#include "bifrost_catch.hpp"

#include <bifrost/pool/heap.hpp>
#include <bifrost/pool/preallocated.hpp>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Widget {
    static inline std::atomic<int> constructed{0};
    Widget() { constructed.fetch_add(1); }
    std::string text;
    int uses = 0;
    void reset() { text.clear(); }
};

}  // namespace

TEST_CASE("pool: Preallocated warms its objects and reuses them", "[pool]") {
    Widget::constructed = 0;
    bifrost::pool::Preallocated::pool<Widget> pool(8);
    CHECK(Widget::constructed == 8);

    std::set<Widget*> warm;
    std::vector<Widget*> taken;
    for (int i = 0; i < 8; ++i)
        taken.push_back(pool.acquire());
    warm.insert(taken.begin(), taken.end());
    for (Widget* w : taken)
        pool.release(w);

    for (int round = 0; round < 100; ++round) {
        Widget* w = pool.acquire();
        CHECK(warm.count(w) == 1);
        pool.release(w);
    }
    const auto s = pool.stats();
    CHECK(s.gets == 108);
    CHECK(s.misses == 0);
    CHECK(s.hits == 108);
    CHECK(s.returns == 108);
    CHECK(s.hit_ratio() == Approx(1.0));
    CHECK(s.size == 8);
    CHECK(s.available == 8);
    CHECK(Widget::constructed == 8);
}

TEST_CASE("pool: Preallocated resets objects before reuse", "[pool]") {
    bifrost::pool::Preallocated::pool<Widget> pool(1);
    Widget* w = pool.acquire();
    w->text = "a secret prompt that must not leak to the next request";
    const auto cap = w->text.capacity();
    pool.release(w);
    Widget* again = pool.acquire();
    CHECK(again == w);
    CHECK(again->text.empty());
    CHECK(again->text.capacity() == cap);  // memory kept for reuse
    pool.release(again);
}

TEST_CASE("pool: Preallocated grows on a miss and keeps the new object", "[pool]") {
    bifrost::pool::Preallocated::pool<Widget> pool(2);
    Widget* a = pool.acquire();
    Widget* b = pool.acquire();
    Widget* c = pool.acquire();  // miss
    CHECK(pool.stats().misses == 1);
    CHECK(pool.stats().size == 3);
    pool.release(a);
    pool.release(b);
    pool.release(c);
    CHECK(pool.stats().available == 3);
    std::set<Widget*> got;
    for (int i = 0; i < 3; ++i)
        got.insert(pool.acquire());
    CHECK(got == std::set<Widget*>{a, b, c});
    CHECK(pool.stats().misses == 1);
    for (Widget* w : got)
        pool.release(w);
}

TEST_CASE("pool: Heap allocates every time", "[pool]") {
    bifrost::pool::Heap::pool<Widget> pool(100);
    Widget* a = pool.acquire();
    pool.release(a);
    Widget* b = pool.acquire();
    pool.release(b);
    const auto s = pool.stats();
    CHECK(s.gets == 2);
    CHECK(s.misses == 2);
    CHECK(s.hits == 0);
    CHECK(s.hit_ratio() == Approx(0.0));
}

TEST_CASE("pool: concurrent acquire/release never hands one object to two threads",
          "[pool][concurrency]") {
    bifrost::pool::Preallocated::pool<Widget> pool(16);
    std::atomic<int> violations{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                Widget* w = pool.acquire();
                if (w->uses++ != 0) violations.fetch_add(1);
                w->uses--;
                pool.release(w);
            }
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK(violations == 0);
    const auto s = pool.stats();
    CHECK(s.gets == 80000);
    CHECK(s.returns == 80000);
    CHECK(s.available == s.size);
}

TEST_CASE("pool: growing from empty keeps every object, across index segments",
          "[pool]") {
    bifrost::pool::Preallocated::pool<Widget> pool(0);
    std::vector<Widget*> held;
    for (int i = 0; i < 1000; ++i)
        held.push_back(pool.acquire());
    std::sort(held.begin(), held.end());
    CHECK(std::adjacent_find(held.begin(), held.end()) == held.end());
    for (Widget* w : held)
        pool.release(w);
    auto s = pool.stats();
    CHECK(s.size == 1000);
    CHECK(s.available == 1000);
    CHECK(s.misses == 1000);
    std::vector<Widget*> again;
    for (int i = 0; i < 1000; ++i)
        again.push_back(pool.acquire());
    std::sort(again.begin(), again.end());
    CHECK(again == held);  // the same objects, none new
    s = pool.stats();
    CHECK(s.misses == 1000);
    CHECK(s.hits == 1000);
    for (Widget* w : again)
        pool.release(w);
}

TEST_CASE("pool: threads holding several objects while the pool grows never share one",
          "[pool][concurrency]") {
    bifrost::pool::Preallocated::pool<Widget> pool(2);
    std::atomic<int> violations{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10000; ++i) {
                Widget* held[3];
                for (auto& w : held) {
                    w = pool.acquire();
                    if (w->uses++ != 0) violations.fetch_add(1);
                }
                // Released in an order that differs by thread and round.
                for (int k = 0; k < 3; ++k) {
                    Widget* w = held[(k + t + i) % 3];
                    w->uses--;
                    pool.release(w);
                }
            }
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK(violations == 0);
    const auto s = pool.stats();
    CHECK(s.gets == 120000);
    CHECK(s.returns == 120000);
    CHECK(s.size <= 12);
    CHECK(s.available == s.size);
    CHECK(s.misses == s.size - 2);
}
