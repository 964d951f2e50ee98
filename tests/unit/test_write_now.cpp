#include "bifrost_catch.hpp"

#include <bifrost/detail/write_now.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using bifrost::detail::write_now;

/// A connected pair of loopback TCP sockets; `send_buffer` (when not 0) is set on the writer
/// before it connects (shrinking a buffer of a connected socket can stall the stream).
struct Pair {
    asio::io_context ioc;
    tcp::socket writer{ioc};
    tcp::socket reader{ioc};

    explicit Pair(int send_buffer = 0) {
        tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        writer.open(tcp::v4());
        if (send_buffer != 0) writer.set_option(tcp::socket::send_buffer_size(send_buffer));
        writer.connect(acceptor.local_endpoint());
        writer.set_option(tcp::no_delay(true));
        acceptor.accept(reader);
    }
};

std::string pattern(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>(seed + static_cast<char>(i % 61));
    return s;
}

}  // namespace

TEST_CASE("write_now writes what fits at once and leaves the rest, in order, for a later write") {
    Pair p(4096);
    p.writer.non_blocking(true);

    SECTION("a small answer is written whole, at once") {
        const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        const std::string body = "hello";
        std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
        REQUIRE(write_now(p.writer, buffers));
        std::string got(head.size() + body.size(), '\0');
        asio::read(p.reader, asio::buffer(got));
        CHECK(got == head + body);
    }

    SECTION("what the send buffer cannot take is left in the buffers, and follows in order") {
        const std::string head = pattern(1000, 'A');
        const std::string body = pattern(2 << 20, 'a');  // far more than one write takes
        std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
        REQUIRE_FALSE(write_now(p.writer, buffers));
        const std::size_t left = buffers[0].size() + buffers[1].size();
        REQUIRE(left > 0);
        REQUIRE(left < head.size() + body.size());  // some was written
        std::string got(head.size() + body.size(), '\0');
        std::thread drain([&] { asio::read(p.reader, asio::buffer(got)); });
        p.writer.non_blocking(false);
        asio::write(p.writer, buffers);
        drain.join();
        CHECK(got == head + body);
    }

    SECTION("nothing to write is done") {
        std::array<asio::const_buffer, 2> buffers{};
        CHECK(write_now(p.writer, buffers));
    }

    SECTION("a socket that failed writes nothing and reports no completion") {
        p.reader.set_option(asio::socket_base::linger(true, 0));
        p.reader.close();  // a reset: the writer's next send fails
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::string body = pattern(64, 'x');
        bool done = true;
        for (int i = 0; i < 3 && done; ++i) {  // the reset may take a send to be noticed
            std::array<asio::const_buffer, 1> buffers{asio::buffer(body)};
            done = write_now(p.writer, buffers);
            if (!done) CHECK(buffers[0].size() == body.size());
        }
        CHECK_FALSE(done);
    }
}

TEST_CASE("write_now leaves a blocking socket to the asynchronous write") {
    Pair p;
    const std::string body = "hello";
    std::array<asio::const_buffer, 1> buffers{asio::buffer(body)};
    CHECK_FALSE(write_now(p.writer, buffers));  // would block the caller's thread: not tried
    CHECK(buffers[0].size() == body.size());
    CHECK(p.reader.available() == 0);
}
