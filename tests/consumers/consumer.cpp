// The program every consumer project builds (find_package, add_subdirectory, FetchContent, the
// Conan test_package): a gateway on the Mock transport answers one request. Exits non-zero when
// the answer is wrong or when the headers' version differs from the package's
// (BIFROST_PACKAGE_VERSION, passed in by the consumer's CMakeLists.txt).

#include <bifrost/bifrost.hpp>

#include <cstdio>
#include <string>

int main() {
    bifrost::Gateway<bifrost::transport::Mock, bifrost::queue::Block, bifrost::pool::Preallocated>
        gw;
    bifrost::ProviderConfig cfg;
    bifrost::Key key;
    key.value = bifrost::Secret("sk-consumer");
    cfg.keys.push_back(key);
    if (auto err = gw.add_provider<bifrost::providers::OpenAI>("openai", cfg)) {
        std::fprintf(stderr, "add_provider: %s\n", err->message.c_str());
        return 1;
    }

    bifrost::ChatRequest req;
    req.model = "openai/gpt-4o-mini";
    bifrost::Message m;
    m.content = "consumer";
    req.messages.push_back(m);
    const bifrost::Result r = gw.chat(req);
    if (!r) {
        std::fprintf(stderr, "error %d: %s\n", r.error().status, r.error().message.c_str());
        return 1;
    }

    const std::string& answer = r->choices.at(0).message.content;
    const std::string version = std::to_string(bifrost::version_major) + '.' +
                                std::to_string(bifrost::version_minor) + '.' +
                                std::to_string(bifrost::version_patch);
    std::printf("bifrost %s: %s\n", version.c_str(), answer.c_str());
#ifdef BIFROST_PACKAGE_VERSION
    if (version != BIFROST_PACKAGE_VERSION) {
        std::fprintf(stderr, "headers say %s, the package says %s\n", version.c_str(),
                     BIFROST_PACKAGE_VERSION);
        return 1;
    }
#endif
    return answer == "Echo: consumer" ? 0 : 1;
}
