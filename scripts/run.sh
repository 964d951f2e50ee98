#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and starts bifrost-http on 127.0.0.1:8080 with its
# embedded `mock` provider (no API keys needed). Extra arguments go to the server, e.g.
# `scripts/run.sh -port 9000` or `scripts/run.sh -config config.json`. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target bifrost-http
echo 'try: curl localhost:8080/v1/chat/completions -d '\''{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'\''' >&2
exec build/examples/bifrost-http "$@"
