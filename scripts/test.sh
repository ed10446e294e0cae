#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests, then a short smoke run of each fuzz
# target if fuzz/ exists. Installs what the tests need first. Exits non-zero on any failure.
#
# On 2 cores the test build and run take minutes. Each fuzz target then runs for FUZZ_SECONDS
# after one shared build.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# Seconds each fuzz target runs in the smoke run.
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"

step() {
    printf '\n==> %s\n' "$*"
}

step "Python environment for the integration tests"
bash scripts/setup-python.sh

step "System tools for the integration tests"
# The TLS tests make certificates with the openssl command line tool.
if ! command -v openssl >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi
openssl version

step "Rust unit and integration tests"
cargo test --all-targets

step "Clippy: the protocol, file and server modules deny unwrap, expect and slicing"
# Those modules carry #![deny(clippy::unwrap_used, clippy::expect_used,
# clippy::indexing_slicing)] outside tests, so a violation fails here; other lints only warn.
cargo clippy --all-targets

step "Fuzz targets: ${FUZZ_SECONDS}s smoke run each"
FUZZ_SECONDS="$FUZZ_SECONDS" bash scripts/fuzz.sh

step "all tests passed"
