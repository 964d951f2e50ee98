#pragma once
/// \file
/// `detail::Timekeeper`: a gateway-owned thread with an event loop for deadline timers that have
/// no better home (asynchronous requests whose own deadline is tighter than their provider's
/// timeout). Started on first use.

#include <bifrost/detail/common.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <mutex>
#include <optional>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace bifrost::detail {

class Timekeeper {
  public:
    Timekeeper() = default;
    Timekeeper(const Timekeeper&) = delete;
    Timekeeper& operator=(const Timekeeper&) = delete;
    ~Timekeeper() { stop(); }

    /// The event loop; starts its thread on first call. Thread-safe.
    asio::io_context& context() {
        std::call_once(started_, [this] {
            work_.emplace(ioc_.get_executor());
            thread_ = std::thread([this] {
#if defined(__linux__)
                pthread_setname_np(pthread_self(), "bf:timekeeper");
#endif
                ioc_.run();
            });
        });
        return ioc_;
    }

    /// Lets every pending handler run (timers still armed are cancelled by their owners first),
    /// then joins the thread.
    void stop() {
        std::lock_guard lock(stop_mutex_);
        work_.reset();
        if (thread_.joinable()) thread_.join();
    }

  private:
    asio::io_context ioc_{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::thread thread_;
    std::once_flag started_;
    std::mutex stop_mutex_;
};

}  // namespace bifrost::detail
