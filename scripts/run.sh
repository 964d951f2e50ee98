#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs the main program on its embedded default
# (no API keys needed). Extra arguments go to the program.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target bifrost-demo
exec build/examples/bifrost-demo "$@"
