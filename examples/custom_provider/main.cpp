// A provider written by the user: it speaks "TextGen", a made-up completion API of a local model
// server (POST /generate {"model", "prompt"} -> {"model", "text"}), behind the same ChatRequest /
// ChatResponse API as every other provider.
//
// A provider is a copyable type with `requires_key`, `build_chat` and `parse_chat` (the
// `bifrost::Provider` concept). The gateway does the rest: queueing, workers, key selection,
// retries, deadlines, stats.

#include <bifrost/bifrost.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cctype>
#include <cstdio>
#include <string>

namespace {

struct TextGen {
    static constexpr bool requires_key = false;  // a local server: no API key to select

    // Unified request -> upstream HTTP request. `ctx.model` is the provider-local model id
    // ("tiny" of "local/tiny"). Called concurrently from worker threads: keep it const.
    void build_chat(const bifrost::BuildContext& ctx, bifrost::HttpRequest& out) const {
        std::string prompt;
        for (const bifrost::Message& m : ctx.request.messages) {
            if (!prompt.empty()) prompt += '\n';
            prompt.append(bifrost::to_string(m.role)).append(": ").append(m.content);
        }
        const std::string& base = ctx.config.network_config.base_url;
        out.method = bifrost::HttpMethod::post;
        out.url = (base.empty() ? "http://localhost:8080" : base) + "/generate";
        out.headers.add("content-type", "application/json");
        out.body =
            boost::json::serialize(boost::json::object{{"model", ctx.model}, {"prompt", prompt}});
    }

    // Upstream HTTP response (any status) -> a ChatResponse or an Error. A throw here would also
    // become an error for this one request.
    void parse_chat(const bifrost::HttpResponse& in, bifrost::Outcome& out) const {
        boost::system::error_code ec;
        const boost::json::value doc = boost::json::parse(in.body, ec);
        const boost::json::object* obj = ec ? nullptr : doc.if_object();
        const boost::json::value* text = obj ? obj->if_contains("text") : nullptr;
        if (in.status != 200 || text == nullptr || !text->is_string()) {
            out.fail(in.status == 200 ? 502 : in.status, bifrost::error_type::upstream,
                     "textgen: unexpected answer: " + in.body.substr(0, 200));
            return;
        }
        if (const boost::json::value* model = obj->if_contains("model");
            model && model->is_string())
            out.response.model = model->get_string();
        bifrost::Choice& choice = out.reuse_choices(1)[0];  // reuses pooled memory
        choice.message.content = text->get_string();
        choice.finish_reason = "stop";
    }
};

// The concept is the contract: a mistake in the type fails here, with the reason.
static_assert(bifrost::Provider<TextGen>);

// The simulated TextGen server, on the Mock transport: a model that repeats the prompt in capitals.
void textgen_server(bifrost::transport::MockCall& call) {
    boost::system::error_code ec;
    const boost::json::value body = boost::json::parse(call.request.body, ec);
    if (ec || !call.request.url.ends_with("/generate") || !body.is_object() ||
        !body.as_object().contains("prompt")) {
        call.response.status = 404;
        call.response.body = R"({"detail":"not found"})";
        return;
    }
    std::string text(body.at("prompt").as_string());
    for (char& c : text)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    call.response.body =
        boost::json::serialize(boost::json::object{{"model", body.at("model")}, {"text", text}});
}

using Gateway =
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>;

}  // namespace

int main() {
    Gateway gw;
    bifrost::ProviderConfig cfg;  // no keys: TextGen does not need one
    cfg.network_config.base_url = "http://127.0.0.1:9000";
    if (auto err = gw.add_provider<TextGen>("local", cfg, {textgen_server}))
        return std::fprintf(stderr, "add_provider: %s\n", err->message.c_str()), 1;

    bifrost::ChatRequest req;
    req.model = "local/tiny";
    bifrost::Message m;
    m.content = "hello from a custom provider";
    req.messages.push_back(m);

    const bifrost::Result r = gw.chat(req);
    if (!r) return std::fprintf(stderr, "error: %s\n", r.error().message.c_str()), 1;
    const std::string& answer = r->choices.at(0).message.content;
    std::printf("%s -> \"%s\" (model %s, provider %s)\n", req.model.c_str(), answer.c_str(),
                r->model.c_str(), r->extra_fields.provider.c_str());
    return answer == "USER: HELLO FROM A CUSTOM PROVIDER" && r->model == "tiny" ? 0 : 1;
}
