#pragma once
// The one include for Catch2 in this project's tests: builds with Catch2 v2.13 (Debian's
// package, single header) and with Catch2 v3 (Conan, vcpkg). Use the common subset only:
// TEST_CASE, SECTION, REQUIRE, CHECK, TEMPLATE_TEST_CASE, Approx.

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
using Catch::Approx;
#else
#include <catch2/catch.hpp>
#endif
