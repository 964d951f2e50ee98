#pragma once
/// \file
/// `write_now`: the bytes a non-blocking socket takes at once, written without an asynchronous
/// operation. A request or an answer of a few hundred bytes nearly always fits in the socket's
/// send buffer, and writing it in place skips what an asynchronous write costs even when it
/// completes at once: the operation's allocation, the arming and cancelling of a stream
/// timeout, and the trip of its completion through the scheduler. What does not fit is left to
/// the asynchronous write that follows, under its timeout.

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>

namespace bifrost::detail {

/// Writes what `socket` (in non-blocking mode: `socket.non_blocking(true)`) takes of `buffers`
/// without waiting, drops it from the front of `buffers`, and returns true when nothing is
/// left. A socket that would block or fails writes nothing here: the asynchronous write of the
/// rest then waits, or reports the error, as it would have without this attempt.
template <class Socket, std::size_t N>
bool write_now(Socket& socket, std::array<boost::asio::const_buffer, N>& buffers) noexcept {
    std::size_t total = 0;
    for (const auto& b : buffers)
        total += b.size();
    if (total == 0 || !socket.non_blocking()) return total == 0;
    boost::system::error_code ec;
    std::size_t n = socket.write_some(buffers, ec);
    if (ec) return false;
    if (n == total) return true;
    for (auto& b : buffers) {
        const std::size_t k = n < b.size() ? n : b.size();
        b += k;
        n -= k;
    }
    return false;
}

}  // namespace bifrost::detail
