#!/usr/bin/env bash
# Builds and runs the consumer projects of tests/consumers/ against this source tree, the way users
# consume bifrost:
#   find_package     `cmake --install` into a prefix, then find_package(bifrost) (this project is
#                    also the Conan recipe's test_package);
#   add_subdirectory the source tree added as a subdirectory, compiled with Clang when
#                    clang++ is installed (the other consumers use the default compiler);
#   fetch_content    FetchContent from a source archive of the working tree (no network).
# Then scripts/check-packages.py checks that the Conan recipe and the vcpkg port install the same
# files as `cmake --install`. Work happens in build-consumers/ (BIFROST_CONSUMERS_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${BIFROST_CONSUMERS_DIR:-$root/build-consumers}
jobs=${BIFROST_JOBS:-2}
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
rm -rf "$out"
mkdir -p "$out"

echo "-- install into $out/prefix"
cmake -S . -B "$out/bifrost" "${common[@]}" -DBIFROST_BUILD_TESTS=OFF -DBIFROST_BUILD_BENCH=OFF \
    -DBIFROST_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$out/bifrost" >/dev/null
cmake --install "$out/bifrost" --prefix "$out/prefix" >/dev/null

echo "-- source archive of the working tree"
# What a release archive holds: the files Git tracks or would track (untracked, not ignored).
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - --transform 's,^,bifrost/,' -czf "$out/bifrost-src.tar.gz"

echo "-- configure the consumers"
cmake -S tests/consumers/find_package -B "$out/find_package" "${common[@]}" \
    -DCMAKE_PREFIX_PATH="$out/prefix" >/dev/null
clang=()
if command -v clang++ >/dev/null; then clang=(-DCMAKE_CXX_COMPILER=clang++); fi
cmake -S tests/consumers/add_subdirectory -B "$out/add_subdirectory" "${common[@]}" "${clang[@]}" \
    -DBIFROST_SOURCE_DIR="$root" >/dev/null
cmake -S tests/consumers/fetch_content -B "$out/fetch_content" "${common[@]}" \
    -DBIFROST_URL="$out/bifrost-src.tar.gz" -DFETCHCONTENT_BASE_DIR="$out/fetch_content/_deps" \
    >/dev/null

# The version file accepts the same major version only.
if cmake -S tests/consumers/find_package -B "$out/find_package-1.0" "${common[@]}" \
    -DCMAKE_PREFIX_PATH="$out/prefix" -DBIFROST_REQUIRED_VERSION=1.0 >/dev/null 2>&1; then
    echo "find_package(bifrost 1.0) accepted the installed 0.x package" >&2
    exit 1
fi

# The consumed package must not bring the project's own tests, benchmarks or examples along.
for c in add_subdirectory fetch_content; do
    if grep -qE '(^|/)(examples|tests|bench)/CMakeFiles/' "$out/$c/build.ninja"; then
        echo "$c: the bifrost subproject builds its own tests/examples/benchmarks" >&2
        exit 1
    fi
done

echo "-- build the consumers ($jobs at a time)"
printf '%s\n' find_package add_subdirectory fetch_content |
    xargs -P "$jobs" -I{} sh -c 'cmake --build "$1/$2" -j 1 >"$1/$2.log" 2>&1 || { cat "$1/$2.log"; exit 1; }' \
        sh "$out" {}

for c in find_package add_subdirectory fetch_content; do
    printf '%-17s ' "$c:"
    "$out/$c/consumer"
done

echo "-- Conan recipe and vcpkg port install what cmake --install installs"
python3 scripts/check-packages.py --reference "$out/prefix" --work "$out/packages"
