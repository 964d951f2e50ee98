#!/usr/bin/env bash
# Installs the Debian 12 packages the build, tests and benchmarks need. Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    cmake ninja-build g++ make ca-certificates python3 \
    libboost1.81-dev libboost-json1.81-dev libssl-dev \
    catch2 libbenchmark-dev >/dev/null
