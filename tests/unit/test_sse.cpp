// The Server-Sent Events parser: fields, comments, multi-line data, every line ending, and the
// same events whatever the chunk boundaries.

#include "bifrost_catch.hpp"

#include <bifrost/detail/sse.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Seen {
    std::string event, data, id;
    std::optional<std::uint64_t> retry;
    bool done = false;
    friend bool operator==(const Seen&, const Seen&) = default;
};

/// Feeds `text` cut into pieces of `step` bytes (0: all at once).
std::vector<Seen> parse(std::string_view text, std::size_t step = 0) {
    bifrost::detail::SseParser p;
    std::vector<Seen> out;
    const auto on_event = [&](const bifrost::detail::SseEvent& e) {
        out.push_back(
            Seen{std::string(e.event), std::string(e.data), std::string(e.id), e.retry, e.done()});
    };
    if (step == 0) step = text.size() + 1;
    for (std::size_t i = 0; i < text.size(); i += step)
        REQUIRE(p.feed(text.substr(i, step), on_event));
    return out;
}

constexpr std::string_view openai_stream =
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
    "data: [DONE]\n\n";

}  // namespace

TEST_CASE("sse: OpenAI's stream gives its data events and the [DONE] sentinel", "[sse]") {
    const auto events = parse(openai_stream);
    REQUIRE(events.size() == 3);
    CHECK(events[0].data == R"({"choices":[{"delta":{"content":"Hel"}}]})");
    CHECK(events[1].data == R"({"choices":[{"delta":{"content":"lo"}}]})");
    CHECK_FALSE(events[1].done);
    CHECK(events[2].data == "[DONE]");
    CHECK(events[2].done);
}

TEST_CASE("sse: fields event, id and retry; comments and unknown fields are ignored", "[sse]") {
    const auto events = parse(
        ":comment line\n"
        "event: delta\n"
        "id: 7\n"
        "retry: 1500\n"
        "foo: bar\n"
        "data: one\n"
        "\n"
        "data:no-space\n"
        "\n");
    REQUIRE(events.size() == 2);
    CHECK(events[0] == Seen{"delta", "one", "7", 1500, false});
    // The event type resets after dispatch; the last event id persists.
    CHECK(events[1] == Seen{"", "no-space", "7", std::nullopt, false});
}

TEST_CASE("sse: multi-line data is joined with newlines; only one leading space is removed",
          "[sse]") {
    const auto events = parse("data: line one\ndata:  two spaces\ndata\ndata: \n\n");
    REQUIRE(events.size() == 1);
    CHECK(events[0].data == "line one\n two spaces\n\n");
}

TEST_CASE("sse: events without data are not dispatched; an unterminated event is held", "[sse]") {
    CHECK(parse("event: ping\n\n: only a comment\n\n").empty());
    CHECK(parse("data: no blank line after me\n").empty());
    const auto events = parse("event: x\n\ndata: d\n\n");
    REQUIRE(events.size() == 1);
    CHECK(events[0].event.empty());  // "x" belonged to the discarded event
}

TEST_CASE("sse: CRLF, LF and CR line endings are all understood", "[sse]") {
    const std::vector<Seen> want{{"", "a\nb", "", std::nullopt, false},
                                 {"", "[DONE]", "", std::nullopt, true}};
    CHECK(parse("data: a\r\ndata: b\r\n\r\ndata: [DONE]\r\n\r\n") == want);
    CHECK(parse("data: a\ndata: b\n\ndata: [DONE]\n\n") == want);
    CHECK(parse("data: a\rdata: b\r\rdata: [DONE]\r\r") == want);
    CHECK(parse("data: a\r\ndata: b\r\rdata: [DONE]\n\r\n") == want);
}

TEST_CASE("sse: a leading byte order mark is ignored, even split", "[sse]") {
    const std::string text =
        "\xEF\xBB\xBF"
        "data: x\n\n";
    for (std::size_t step : {0, 1, 2}) {
        const auto events = parse(text, step);
        REQUIRE(events.size() == 1);
        CHECK(events[0].data == "x");
    }
}

TEST_CASE("sse: the events are the same whatever the chunk boundaries, one byte at a time included",
          "[sse]") {
    std::string text(openai_stream);
    text += "event: e\r\nid: 42\r\ndata: multi\r\ndata: line\r\n\r\n";
    text += "data: cr\r\rdata: [DONE]\r\n\r\n";
    const auto whole = parse(text);
    REQUIRE(whole.size() == 6);
    CHECK(whole[3] == Seen{"e", "multi\nline", "42", std::nullopt, false});
    CHECK(whole[4].data == "cr");
    CHECK(whole[5].done);
    for (std::size_t step = 1; step <= 9; ++step)
        CHECK(parse(text, step) == whole);
}

TEST_CASE("sse: a line beyond the size limit fails the stream instead of growing", "[sse]") {
    bifrost::detail::SseParser p(64);
    int events = 0;
    const auto on_event = [&](const bifrost::detail::SseEvent&) { ++events; };
    CHECK(p.feed("data: short\n\n", on_event));
    CHECK(events == 1);
    CHECK_FALSE(p.feed("data: " + std::string(100, 'x'), on_event));
    CHECK_FALSE(p.feed("\n\n", on_event));  // stays failed
    CHECK(events == 1);
    p.reset();
    CHECK(p.feed("data: again\n\n", on_event));
    CHECK(events == 2);
}
