#pragma once
// Precompiled for every test translation unit.
#include "bifrost_catch.hpp"

#include <bifrost/bifrost.hpp>
