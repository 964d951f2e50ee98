#pragma once
/// \file
/// `detail::ProviderPool<P, T>`: one provider instance's worker threads. Each thread runs an
/// Asio event loop and keeps up to `concurrency` requests in flight across the pool: it pops
/// jobs from the provider's ring while a slot is free, builds the upstream request with the
/// provider `P`, starts it on its transport `T`, and, when the transport completes, parses the
/// answer and hands the outcome to the caller. Threads spin briefly when idle, then park in their
/// event loop; producers wake a parked thread by posting to it.

#include <bifrost/concepts.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/job.hpp>
#include <bifrost/core/key_selector.hpp>
#include <bifrost/core/provider_queue.hpp>
#include <bifrost/schema/error.hpp>

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace bifrost::detail {

template <Provider P, Transport T>
class ProviderPool final : public ProviderQueue {
  public:
    using TransportOptions = typename T::Options;

    /// Validates the configuration (throws `std::invalid_argument` naming the bad field) and
    /// starts the worker threads.
    ProviderPool(std::string name, ProviderConfig config, P provider, TransportOptions topts,
                 const GatewayOptions& gopts)
        : ProviderQueue(std::move(name), validated(config.concurrency_and_buffer_size)),
          config_(std::move(config)),
          provider_(std::move(provider)),
          keys_(config_.keys),
          worker_spin_(gopts.worker_spin) {
        const std::size_t n = config_.concurrency_and_buffer_size.worker_threads;
        workers_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            auto w = std::make_unique<Worker>();
            w->transport.emplace(w->ioc.get_executor(), config_, topts);
            cores_.push_back(w.get());
            workers_.push_back(std::move(w));
        }
        for (std::size_t i = 0; i < n; ++i) {
            Worker* w = workers_[i].get();
            w->thread = std::thread([this, w, i] { run(*w, i); });
        }
    }

    ~ProviderPool() override { stop(std::chrono::milliseconds(0)); }

    /// Closes intake, lets queued and in-flight requests finish for up to `drain`, then cancels
    /// what is still in flight (those requests fail with 503 "provider is shutting down") and
    /// joins the threads. Idempotent.
    void stop(std::chrono::milliseconds drain) override {
        std::lock_guard lock(stop_mutex_);
        if (joined_) return;
        close();
        stopping_.store(true, std::memory_order_seq_cst);
        wake_all();
        const auto deadline = Clock::now() + drain;
        while (!idle() && Clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (!idle()) {
            aborting_.store(true, std::memory_order_seq_cst);
            for (auto& w : workers_) {
                Worker* wp = w.get();
                asio::post(wp->ioc, [wp] { cancel_in_flight(*wp); });
            }
        }
        for (auto& w : workers_)
            if (w->thread.joinable()) w->thread.join();
        release_loop_objects();
        for (auto& w : workers_)
            w->transport.reset();
        joined_ = true;
    }

    [[nodiscard]] const P& provider() const noexcept { return provider_; }
    [[nodiscard]] const ProviderConfig& config() const noexcept { return config_; }

  private:
    struct Worker : WorkerCore {
        std::optional<T> transport;
        Job* in_flight = nullptr;  // intrusive list of jobs started on this thread
        std::size_t local_in_flight = 0;
        std::thread thread;
    };

    /// The completion handler given to the transport: routes back to this pool and carries the
    /// job's arena allocator and upstream cancellation slot.
    struct UpstreamHandler {
        ProviderPool* pool;
        Worker* worker;
        Job* job;

        using allocator_type = ArenaAllocator<void>;
        allocator_type get_allocator() const noexcept { return allocator_type(job->arena); }
        using cancellation_slot_type = asio::cancellation_slot;
        cancellation_slot_type get_cancellation_slot() const noexcept {
            return job->upstream_cancel.slot();
        }
        void operator()(boost::system::error_code ec) { pool->on_upstream_done(*worker, job, ec); }
    };

    static const ConcurrencyAndBufferSize& validated(const ConcurrencyAndBufferSize& c) {
        if (c.concurrency == 0)
            throw std::invalid_argument(
                "concurrency_and_buffer_size.concurrency must be at least 1");
        if (c.buffer_size == 0)
            throw std::invalid_argument(
                "concurrency_and_buffer_size.buffer_size must be at least 1");
        if (c.worker_threads == 0 || c.worker_threads > 256)
            throw std::invalid_argument(
                "concurrency_and_buffer_size.worker_threads must be between 1 and 256");
        return c;
    }

    void run(Worker& w, std::size_t index) {
        name_thread(index);
        auto guard = asio::make_work_guard(w.ioc);
        using namespace std::chrono;
        for (;;) {
            bool progress = pump(w);
            progress |= w.ioc.poll() != 0;
            if (progress) continue;
            if (stopping_.load(std::memory_order_acquire) && ring_.empty() &&
                w.local_in_flight == 0)
                break;
            if (spin(w)) continue;
            park(w);
        }
        guard.reset();
        w.ioc.poll();  // run what is left (e.g. wake-ups), so nothing posted is destroyed unrun
    }

    /// Starts jobs while both a job and an in-flight slot are available.
    bool pump(Worker& w) {
        bool any = false;
        while (acquire_slot()) {
            Job* j = nullptr;
            if (!pop(j)) {
                release_slot();
                break;
            }
            any = true;
            start(w, j);
        }
        return any;
    }

    /// Spins for up to `worker_spin_` waiting for work; true if work appeared.
    bool spin(Worker& w) {
        if (worker_spin_.count() <= 0) return false;
        const auto until = Clock::now() + worker_spin_;
        for (unsigned i = 1;; ++i) {
            if (work_available()) return true;
            if ((i & 31) == 0) {
                if (w.ioc.poll() != 0) return true;
                if (stopping_.load(std::memory_order_relaxed)) return true;
                if (Clock::now() >= until) return false;
            }
            cpu_relax();
        }
    }

    void start(Worker& w, Job* j) {
        const auto now = Clock::now();
        queue_wait_.record(now - j->enqueued_at);
        link(w, j);
        if (aborting_.load(std::memory_order_relaxed)) {
            fail(w, j, errors::shutting_down(name_));
            return;
        }
        try {
            const Key* key = nullptr;
            if constexpr (P::requires_key) {
                key = keys_.select(j->model_id);
                if (!key) {
                    fail(w, j,
                         errors::make(400, error_type::no_key,
                                      "no enabled key of provider '" + name_ + "' serves model '" +
                                          std::string(j->model_id) + "'",
                                      name_));
                    return;
                }
            }
            j->http_request.clear();
            j->http_response.clear();
            provider_.build_chat(BuildContext{j->request, j->model_id, key, config_},
                                 j->http_request);
            j->upstream_started_at = Clock::now();
            w.transport->async_send(j->http_request, j->http_response,
                                    UpstreamHandler{this, &w, j});
        } catch (const std::exception& e) {
            fail(w, j,
                 errors::internal(std::string("provider '") + name_ + "' failed: " + e.what(),
                                  name_));
        } catch (...) {
            fail(w, j, errors::internal("provider '" + name_ + "' failed", name_));
        }
    }

    void on_upstream_done(Worker& w, Job* j, boost::system::error_code ec) {
        j->upstream_latency = Clock::now() - j->upstream_started_at;
        upstream_.record(j->upstream_latency);
        if (ec) {
            if (aborting_.load(std::memory_order_relaxed) && ec == asio::error::operation_aborted)
                j->outcome.fail(errors::shutting_down(name_));
            else
                j->outcome.fail(
                    502, error_type::network,
                    "network error talking to provider '" + name_ + "': " + ec.message(), name_);
        } else {
            try {
                provider_.parse_chat(j->http_response, j->outcome);
            } catch (const std::exception& e) {
                j->outcome.fail(502, error_type::bad_response,
                                std::string("could not read the response of provider '") + name_ +
                                    "': " + e.what(),
                                name_);
            }
            if (j->outcome.ok()) {
                j->outcome.response.extra_fields.provider.assign(name_);
                j->outcome.response.extra_fields.latency = j->upstream_latency;
            } else if (j->outcome.error.provider.empty()) {
                j->outcome.error.provider.assign(name_);
            }
        }
        finish(w, j);
    }

    void fail(Worker& w, Job* j, Error e) {
        j->outcome.fail(std::move(e));
        finish(w, j);
    }

    void finish(Worker& w, Job* j) {
        unlink(w, j);
        release_slot();
        count_finished(j->outcome.ok());
        try {
            j->complete();
        } catch (...) {
            // Only a failing post to the caller's executor can throw here (out of memory); the
            // worker must live on.
        }
        j->release();
    }

    void link(Worker& w, Job* j) noexcept {
        j->prev = nullptr;
        j->next = w.in_flight;
        if (w.in_flight) w.in_flight->prev = j;
        w.in_flight = j;
        ++w.local_in_flight;
    }

    void unlink(Worker& w, Job* j) noexcept {
        if (j->prev)
            j->prev->next = j->next;
        else
            w.in_flight = j->next;
        if (j->next) j->next->prev = j->prev;
        j->next = j->prev = nullptr;
        --w.local_in_flight;
    }

    static void cancel_in_flight(Worker& w) {
        // Emitting may complete a job inline (unlinking it), so collect first.
        std::vector<Job*> jobs;
        for (Job* j = w.in_flight; j; j = j->next)
            jobs.push_back(j);
        for (Job* j : jobs)
            j->upstream_cancel.emit(asio::cancellation_type::terminal);
    }

    void name_thread(std::size_t index) const {
#if defined(__linux__)
        std::string n = "bf:" + name_.substr(0, 8) + ":" + std::to_string(index);
        if (n.size() > 15) n.resize(15);
        pthread_setname_np(pthread_self(), n.c_str());
#else
        (void)index;
#endif
    }

    ProviderConfig config_;
    P provider_;
    KeySelector keys_;
    std::chrono::nanoseconds worker_spin_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::mutex stop_mutex_;
    bool joined_ = false;
};

}  // namespace bifrost::detail
