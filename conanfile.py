"""Conan 2 recipe for bifrost-cpp, a header-only library.

    conan create . --build=missing        # package it, then build and run the test_package

The package holds exactly what `cmake --install` installs (headers in include/, the CMake package
in share/bifrost/cmake) plus the license; scripts/check-packages.py checks that.
"""
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

required_conan_version = ">=2.0"


class BifrostConan(ConanFile):
    name = "bifrost"
    description = "Header-only C++20 AI gateway: one API in front of many model providers"
    license = "MIT"
    topics = ("ai", "llm", "gateway", "openai", "asio", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "CMakeLists.txt", "cmake/*", "include/*", "LICENSE"
    no_copy_source = True
    # Boost.JSON is a compiled library: Boost must not be header-only.
    default_options = {"boost/*:header_only": False, "boost/*:without_json": False}
    # The find_package consumer project doubles as the test_package.
    test_package_folder = "tests/consumers/find_package"

    def set_version(self):
        text = load(self, os.path.join(self.recipe_folder, "include", "bifrost", "version.hpp"))
        self.version = ".".join(
            re.search(rf"#define BIFROST_VERSION_{part} (\d+)", text).group(1)
            for part in ("MAJOR", "MINOR", "PATCH"))

    def layout(self):
        cmake_layout(self)
        # cmake --install puts the CMake package under share/ (not Conan's default res/).
        self.cpp.package.resdirs = ["share"]

    def requirements(self):
        self.requires("boost/[>=1.81 <2]", transitive_headers=True, transitive_libs=True)
        self.requires("openssl/[>=3 <4]", transitive_headers=True, transitive_libs=True)

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)
        boost = self.dependencies["boost"].options
        if boost.get_safe("header_only") or boost.get_safe("without_json"):
            raise ConanInvalidConfiguration("bifrost needs Boost.JSON: boost/*:header_only=False, "
                                            "boost/*:without_json=False")

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["BIFROST_BUILD_TESTS"] = False
        tc.cache_variables["BIFROST_BUILD_BENCH"] = False
        tc.cache_variables["BIFROST_BUILD_EXAMPLES"] = False
        tc.cache_variables["BIFROST_INSTALL"] = True
        tc.generate()
        CMakeDeps(self).generate()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.configure()
        cmake.install()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "bifrost")
        self.cpp_info.set_property("cmake_target_name", "bifrost::bifrost")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["boost::headers", "boost::json", "openssl::ssl", "openssl::crypto"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
