#include "bifrost_catch.hpp"

#include <bifrost/detail/handler_memory.hpp>

#include <stdexcept>

namespace {

using bifrost::detail::HandlerArena;
using bifrost::detail::InplaceCompletion;

/// Counts the live copies of a callable; its move constructor may throw (as Asio handlers'
/// are declared), and throws when `throw_on_move` is set.
struct Counted {
    static inline int live = 0;
    static inline bool throw_on_move = false;
    int* calls;
    unsigned char payload[48] = {};

    explicit Counted(int* c) : calls(c) { ++live; }
    Counted(const Counted& o) : calls(o.calls) { ++live; }
    Counted(Counted&& o) noexcept(false) : calls(o.calls) {
        if (throw_on_move) throw std::runtime_error("move");
        ++live;
    }
    ~Counted() { --live; }
    void operator()(int v) const { *calls += v; }
};

/// A callable too large for the buffer.
struct Large : Counted {
    using Counted::Counted;
    unsigned char more[512] = {};
};

}  // namespace

TEST_CASE("inplace completion: called once, destroyed once, in place or not", "[handler_memory]") {
    int calls = 0;
    SECTION("a callable whose move may throw is stored and called") {
        {
            InplaceCompletion<int, 128> c;
            c.emplace(Counted(&calls));
            CHECK(c.has_value());
            CHECK(Counted::live == 1);
            c(5);
            CHECK_FALSE(c.has_value());
            CHECK(calls == 5);
            CHECK(Counted::live == 0);
        }
        CHECK(Counted::live == 0);
    }
    SECTION("a callable too large for the buffer goes to the heap, the same way") {
        InplaceCompletion<int, 128> c;
        c.emplace(Large(&calls));
        CHECK(Counted::live == 1);
        c(7);
        CHECK(calls == 7);
        CHECK(Counted::live == 0);
    }
    SECTION("reset and destruction destroy an uncalled callable") {
        InplaceCompletion<int, 128> c;
        c.emplace(Counted(&calls));
        c.reset();
        CHECK(Counted::live == 0);
        c.emplace(Counted(&calls));
        c.emplace(Counted(&calls));  // replaces the first
        CHECK(Counted::live == 1);
    }
    SECTION("a move that throws during the call leaves nothing behind") {
        InplaceCompletion<int, 128> c;
        c.emplace(Counted(&calls));
        Counted::throw_on_move = true;
        CHECK_THROWS_AS(c(1), std::runtime_error);
        Counted::throw_on_move = false;
        CHECK_FALSE(c.has_value());
        CHECK(calls == 0);
        CHECK(Counted::live == 0);
    }
    CHECK(Counted::live == 0);
}

TEST_CASE("handler arena: slots are reused, larger requests go to the heap", "[handler_memory]") {
    HandlerArena arena;
    void* a = arena.allocate(HandlerArena::slot_size, alignof(std::max_align_t));
    void* b = arena.allocate(100, 8);
    CHECK(a != b);
    CHECK(arena.fallbacks() == 0);
    arena.deallocate(a, HandlerArena::slot_size, alignof(std::max_align_t));
    void* c = arena.allocate(200, 8);
    CHECK(c == a);  // the freed slot again
    void* big = arena.allocate(HandlerArena::slot_size + 1, 8);
    CHECK(arena.fallbacks() == 1);
    arena.deallocate(big, HandlerArena::slot_size + 1, 8);
    arena.deallocate(b, 100, 8);
    arena.deallocate(c, 200, 8);
}
