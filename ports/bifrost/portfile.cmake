# vcpkg port of bifrost-cpp, used as an overlay port from this source tree:
#   vcpkg install bifrost --overlay-ports=<bifrost-cpp>/ports
# A registry port would fetch a release instead (vcpkg_from_github with REPO, REF and SHA512).
set(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../..")
set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is enough

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DBIFROST_BUILD_TESTS=OFF
        -DBIFROST_BUILD_BENCH=OFF
        -DBIFROST_BUILD_EXAMPLES=OFF
        -DBIFROST_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/bifrost/cmake)

# Header-only: no debug tree.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
