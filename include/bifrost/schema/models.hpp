#pragma once
/// \file
/// `ModelList`: the models a provider offers, in the shape of OpenAI's `GET /v1/models`.

#include <bifrost/schema/chat.hpp>

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bifrost {

/// One model.
struct ModelInfo {
    std::string id;  ///< the provider's own model id
    std::string object = "model";
    std::int64_t created = 0;
    std::string owned_by;
    boost::json::object extra;  ///< fields not modelled here

    friend bool operator==(const ModelInfo&, const ModelInfo&) = default;
};

/// A model-listing request: which provider to ask (`Gateway::list_models`).
struct ListModelsRequest {
    std::string provider;

    friend bool operator==(const ListModelsRequest&, const ListModelsRequest&) = default;
};

/// A list of models.
struct ModelList {
    std::string object = "list";
    std::vector<ModelInfo> data;
    ResponseExtra extra_fields;  ///< the provider asked; latency when it was asked upstream
    boost::json::object extra;   ///< fields not modelled here

    friend bool operator==(const ModelList&, const ModelList&) = default;
};

}  // namespace bifrost
