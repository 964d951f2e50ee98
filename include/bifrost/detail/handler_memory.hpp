#pragma once
/// \file
/// Memory for asynchronous operations without the heap: a few fixed-size slots embedded in each
/// pooled job, handed to Asio through the handlers' associated allocator, and a small-buffer
/// type-erased completion that stores a caller's handler inside the job.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace bifrost::detail {

/// A handful of fixed-size memory slots. Asio allocates each asynchronous operation through the
/// handler's associated allocator; binding `ArenaAllocator` to the handlers of one request makes
/// those operations live in the request's own job. Requests too big for a slot, or arriving when
/// every slot is taken, fall back to `::operator new`.
///
/// Thread safety: allocate/deallocate may be called from different threads (an operation may be
/// created on a worker and destroyed on the caller's executor); slots are claimed atomically.
class HandlerArena {
  public:
    /// Big enough for Asio's socket operations on a Beast stream with a request's handler chain
    /// bound in (bifrost-http's upstream reads and writes did not fit slots of 384 bytes).
    static constexpr std::size_t slot_size = 1024;
    static constexpr unsigned slots = 3;

    void* allocate(std::size_t size, std::size_t align) {
        if (size <= slot_size && align <= alignof(std::max_align_t)) {
            std::uint32_t used = used_.load(std::memory_order_relaxed);
            for (;;) {
                unsigned free_slot = slots;
                for (unsigned i = 0; i < slots; ++i) {
                    if (!(used & (1u << i))) {
                        free_slot = i;
                        break;
                    }
                }
                if (free_slot == slots) break;
                if (used_.compare_exchange_weak(used, used | (1u << free_slot),
                                                std::memory_order_acquire,
                                                std::memory_order_relaxed))
                    return storage_[free_slot];
            }
        }
        fallbacks_.fetch_add(1, std::memory_order_relaxed);
        return ::operator new(
            size, std::align_val_t(align < alignof(std::max_align_t) ? alignof(std::max_align_t)
                                                                     : align));
    }

    void deallocate(void* p, std::size_t /*size*/, std::size_t align) noexcept {
        for (unsigned i = 0; i < slots; ++i) {
            if (p == storage_[i]) {
                used_.fetch_and(~(1u << i), std::memory_order_release);
                return;
            }
        }
        // Unsized: Clang before 19 declares sized deallocation only with -fsized-deallocation.
        ::operator delete(
            p, std::align_val_t(align < alignof(std::max_align_t) ? alignof(std::max_align_t)
                                                                  : align));
    }

    /// Allocations that did not fit a slot (diagnostics; steady state should show none).
    [[nodiscard]] std::uint64_t fallbacks() const noexcept {
        return fallbacks_.load(std::memory_order_relaxed);
    }

  private:
    alignas(std::max_align_t) unsigned char storage_[slots][slot_size];
    std::atomic<std::uint32_t> used_{0};
    std::atomic<std::uint64_t> fallbacks_{0};
};

/// A standard allocator drawing from a `HandlerArena`.
template <class T>
class ArenaAllocator {
  public:
    using value_type = T;

    explicit ArenaAllocator(HandlerArena& arena) noexcept : arena_(&arena) {}
    template <class U>
    ArenaAllocator(const ArenaAllocator<U>& other) noexcept : arena_(other.arena()) {}

    T* allocate(std::size_t n) {
        return static_cast<T*>(arena_->allocate(n * sizeof(T), alignof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        arena_->deallocate(p, n * sizeof(T), alignof(T));
    }

    [[nodiscard]] HandlerArena* arena() const noexcept { return arena_; }

    template <class U>
    friend bool operator==(const ArenaAllocator& a, const ArenaAllocator<U>& b) noexcept {
        return a.arena_ == b.arena();
    }

  private:
    HandlerArena* arena_;
};

/// A move-only, type-erased `void(Arg)` callable stored in place when it fits `buffer_size`
/// bytes (on the heap otherwise). Invoking consumes it.
template <class Arg, std::size_t BufferSize = 128>
class InplaceCompletion {
  public:
    InplaceCompletion() = default;
    InplaceCompletion(const InplaceCompletion&) = delete;
    InplaceCompletion& operator=(const InplaceCompletion&) = delete;
    ~InplaceCompletion() { reset(); }

    /// Stores `f`: in place when it fits (Asio's handlers, whose move constructors are rarely
    /// declared `noexcept`, included: a move that throws is handled), else on the heap.
    template <class F>
    void emplace(F&& f) {
        using Fn = std::decay_t<F>;
        reset();
        if constexpr (sizeof(Fn) <= BufferSize && alignof(Fn) <= alignof(std::max_align_t)) {
            ::new (static_cast<void*>(buffer_)) Fn(std::forward<F>(f));
            target_ = buffer_;
            invoke_ = [](void* p, Arg a) {
                Fn* fn = static_cast<Fn*>(p);
                // Moved out before the call (which may re-arm this object); the stored one is
                // destroyed whether or not the move throws.
                Fn local = [fn] {
                    struct Destroy {
                        Fn* f;
                        ~Destroy() { f->~Fn(); }
                    } destroy{fn};
                    return Fn(std::move(*fn));
                }();
                local(std::forward<Arg>(a));
            };
            destroy_ = [](void* p) noexcept { static_cast<Fn*>(p)->~Fn(); };
        } else {
            target_ = new Fn(std::forward<F>(f));
            invoke_ = [](void* p, Arg a) {
                std::unique_ptr<Fn> fn(static_cast<Fn*>(p));
                Fn local(std::move(*fn));
                fn.reset();
                local(std::forward<Arg>(a));
            };
            destroy_ = [](void* p) noexcept { delete static_cast<Fn*>(p); };
        }
    }

    [[nodiscard]] bool has_value() const noexcept { return target_ != nullptr; }

    /// Calls the stored callable once and empties this object (before the call runs, so the
    /// callable may re-arm it).
    void operator()(Arg a) {
        void* t = std::exchange(target_, nullptr);
        auto inv = invoke_;
        invoke_ = nullptr;
        destroy_ = nullptr;
        inv(t, std::forward<Arg>(a));
    }

    /// Destroys the stored callable without calling it.
    void reset() noexcept {
        if (target_) {
            destroy_(target_);
            target_ = nullptr;
            invoke_ = nullptr;
            destroy_ = nullptr;
        }
    }

  private:
    alignas(std::max_align_t) unsigned char buffer_[BufferSize];
    void* target_ = nullptr;
    void (*invoke_)(void*, Arg) = nullptr;
    void (*destroy_)(void*) noexcept = nullptr;
};

}  // namespace bifrost::detail
