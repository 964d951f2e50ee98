#pragma once
/// \file
/// The umbrella header: everything a user of bifrost-cpp needs.
///
/// ```cpp
/// #include <bifrost/bifrost.hpp>
/// using MyGateway = bifrost::Gateway<bifrost::transport::Beast, bifrost::queue::Block,
///                                    bifrost::pool::Preallocated>;
/// ```
///
/// The HTTP server (`bifrost/server/server.hpp`, Boost.Beast and C++20 coroutines) is not
/// included here, to keep this header light: include it where it is used.

#include <bifrost/version.hpp>

#include <bifrost/concepts.hpp>
#include <bifrost/config/config.hpp>
#include <bifrost/config/provider_config.hpp>
#include <bifrost/core/context.hpp>
#include <bifrost/core/histogram.hpp>
#include <bifrost/core/key_selector.hpp>
#include <bifrost/core/operation_result.hpp>
#include <bifrost/core/result.hpp>
#include <bifrost/core/stats.hpp>
#include <bifrost/gateway.hpp>
#include <bifrost/pool/heap.hpp>
#include <bifrost/pool/preallocated.hpp>
#include <bifrost/providers/native.hpp>
#include <bifrost/providers/openai.hpp>
#include <bifrost/providers/openai_compatible.hpp>
#include <bifrost/providers/vertex.hpp>
#include <bifrost/queue/policies.hpp>
#include <bifrost/queue/ring.hpp>
#include <bifrost/schema/chat.hpp>
#include <bifrost/schema/completion.hpp>
#include <bifrost/schema/embedding.hpp>
#include <bifrost/schema/error.hpp>
#include <bifrost/schema/input.hpp>
#include <bifrost/schema/json.hpp>
#include <bifrost/schema/models.hpp>
#include <bifrost/schema/operation_outcome.hpp>
#include <bifrost/schema/operations_json.hpp>
#include <bifrost/schema/outcome.hpp>
#include <bifrost/transport/beast.hpp>
#include <bifrost/transport/http.hpp>
#include <bifrost/transport/mock.hpp>
#include <bifrost/transport/variant.hpp>
