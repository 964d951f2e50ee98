#!/usr/bin/env bash
# Runs openai_sdk_test.mjs: usage run.sh NODE BIFROST_HTTP. Skips (exit 77) when the SDK is not
# installed, unless BIFROST_REQUIRE_TEST_TOOLS=1 (as scripts/test.sh sets), then it fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/openai" ]; then
    if [ "${BIFROST_REQUIRE_TEST_TOOLS:-0}" = "1" ]; then
        echo "the OpenAI SDK is not installed: run scripts/install-test-deps.sh" >&2
        exit 1
    fi
    echo "skipped: the OpenAI SDK is not installed (scripts/install-test-deps.sh)"
    exit 77
fi
exec "$1" "$here/openai_sdk_test.mjs" "$2"
