// The AWS event-stream frame decoder against hand-built frames.

#include "bifrost_catch.hpp"

#include <bifrost/providers/detail/eventstream.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace es = bifrost::providers::detail::eventstream;

namespace {

void put32(std::string& s, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        s.push_back(static_cast<char>((v >> shift) & 0xFF));
}

/// A frame built field by field (independently of `es::encode`), with typed headers.
std::string frame(const std::string& headers, const std::string& payload) {
    std::string m;
    put32(m, static_cast<std::uint32_t>(16 + headers.size() + payload.size()));
    put32(m, static_cast<std::uint32_t>(headers.size()));
    put32(m, es::crc32(m));
    m += headers;
    m += payload;
    put32(m, es::crc32(m));
    return m;
}

std::string string_header(const std::string& name, const std::string& value) {
    std::string h;
    h.push_back(static_cast<char>(name.size()));
    h += name;
    h.push_back(7);
    h.push_back(static_cast<char>(value.size() >> 8));
    h.push_back(static_cast<char>(value.size() & 0xFF));
    h += value;
    return h;
}

std::vector<es::Message> decode_all(const std::string& bytes, std::size_t step, es::Status& last,
                                    std::string& why) {
    es::Decoder d;
    std::vector<es::Message> out;
    last = es::Status::need_more;
    for (std::size_t i = 0; i < bytes.size(); i += step) {
        d.feed(std::string_view(bytes).substr(i, step));
        for (;;) {
            es::Message m;
            last = d.next(m, why);
            if (last != es::Status::message) break;
            out.push_back(std::move(m));
        }
        if (last == es::Status::error) break;
    }
    return out;
}

}  // namespace

TEST_CASE("eventstream: CRC-32 is the IEEE one", "[eventstream]") {
    CHECK(es::crc32("") == 0u);
    CHECK(es::crc32("123456789") == 0xCBF43926u);
    CHECK(es::crc32("56789", es::crc32("1234")) == 0xCBF43926u);
}

TEST_CASE("eventstream: AWS's published minimal frames decode", "[eventstream]") {
    // The empty message of AWS's event-stream test suite: total 16, no headers, no payload.
    const std::string empty("\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2\x48\xeb\x7d\x98\xc8\xff", 16);
    es::Status last;
    std::string why;
    const auto msgs = decode_all(empty, empty.size(), last, why);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].headers.empty());
    CHECK(msgs[0].payload.empty());
    CHECK(frame("", "") == empty);
}

TEST_CASE("eventstream: frames fed whole or byte by byte give the same messages", "[eventstream]") {
    std::string typed = string_header(":event-type", "contentBlockDelta") +
                        string_header(":content-type", "application/json") +
                        string_header(":message-type", "event");
    typed += '\x04';  // a bool header: name "flag", type 0 (true)
    typed += "flag";
    typed += '\x00';
    typed += '\x01';  // an int32 header: name "n", type 4, value -2
    typed += "n\x04";
    typed += std::string("\xFF\xFF\xFF\xFE", 4);
    const std::string bytes =
        frame(typed, R"({"contentBlockIndex":0,"delta":{"text":"Hi"}})") +
        es::encode({{":event-type", "messageStop"}}, R"({"stopReason":"end_turn"})");
    for (std::size_t step : {bytes.size(), std::size_t{1}, std::size_t{7}}) {
        CAPTURE(step);
        es::Status last;
        std::string why;
        const auto msgs = decode_all(bytes, step, last, why);
        CHECK(last == es::Status::need_more);
        REQUIRE(msgs.size() == 2);
        CHECK(msgs[0].header(":event-type") == "contentBlockDelta");
        CHECK(msgs[0].header(":message-type") == "event");
        CHECK(msgs[0].header("flag") == "true");
        CHECK(msgs[0].header("n") == "-2");
        CHECK(msgs[0].payload == R"({"contentBlockIndex":0,"delta":{"text":"Hi"}})");
        CHECK(msgs[1].header(":event-type") == "messageStop");
        CHECK(msgs[1].payload == R"({"stopReason":"end_turn"})");
    }
}

TEST_CASE("eventstream: corrupted frames fail the decoder", "[eventstream]") {
    const std::string good =
        es::encode({{":event-type", "messageStart"}}, R"({"role":"assistant"})");
    es::Status last;
    std::string why;

    SECTION("a flipped payload byte breaks the message CRC") {
        std::string bad = good;
        bad[bad.size() - 6] ^= 0x01;
        const auto msgs = decode_all(bad, 1, last, why);
        CHECK(msgs.empty());
        CHECK(last == es::Status::error);
        CHECK(why == "message CRC mismatch");
    }
    SECTION("a flipped length byte breaks the prelude CRC") {
        std::string bad = good;
        bad[3] ^= 0x01;
        decode_all(bad, bad.size(), last, why);
        CHECK(last == es::Status::error);
        CHECK(why == "prelude CRC mismatch");
    }
    SECTION("a valid message after a corrupt one is not decoded") {
        std::string bad = good;
        bad[bad.size() - 1] ^= 0x01;
        const auto msgs = decode_all(bad + good, 3, last, why);
        CHECK(msgs.empty());
        CHECK(last == es::Status::error);
    }
    SECTION("an impossible length") {
        std::string bad;
        put32(bad, 8);  // shorter than a prelude and its CRCs
        put32(bad, 0);
        put32(bad, es::crc32(bad));
        decode_all(bad, bad.size(), last, why);
        CHECK(last == es::Status::error);
        CHECK(why == "impossible message length");
    }
    SECTION("a header running past its section") {
        std::string h = string_header(":event-type", "x");
        h.pop_back();  // the value is one byte shorter than its length says
        decode_all(frame(h, "{}"), 1, last, why);
        CHECK(last == es::Status::error);
        CHECK(why == "malformed header");
    }
    SECTION("a truncated frame waits for more") {
        es::Decoder d;
        d.feed(std::string_view(good).substr(0, good.size() - 1));
        es::Message m;
        CHECK(d.next(m, why) == es::Status::need_more);
        CHECK(d.partial());
    }
}
