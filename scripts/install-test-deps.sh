#!/usr/bin/env bash
# Installs what the tests need beyond the build (run by scripts/test.sh after install-deps.sh):
# Prometheus' promtool (checks the /metrics exposition), Node.js and the official OpenAI SDK
# (npm package `openai`, pinned by tests/sdk/package-lock.json) that drives bifrost-http.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
pkgs=()
command -v promtool >/dev/null || pkgs+=(prometheus)
# A Node.js already on the machine (with its own npm) is used as it is.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
if [ ${#pkgs[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
# Debian's prometheus package starts a server; the tests only need its promtool.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
fi
npm ci --prefix tests/sdk --no-audit --no-fund --loglevel=error >/dev/null
