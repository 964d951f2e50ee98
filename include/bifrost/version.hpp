#pragma once
/// \file
/// Library version.

#define BIFROST_VERSION_MAJOR 0
#define BIFROST_VERSION_MINOR 1
#define BIFROST_VERSION_PATCH 0

namespace bifrost {
inline constexpr int version_major = BIFROST_VERSION_MAJOR;
inline constexpr int version_minor = BIFROST_VERSION_MINOR;
inline constexpr int version_patch = BIFROST_VERSION_PATCH;
}  // namespace bifrost
