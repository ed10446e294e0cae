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

if [[ ! -d fuzz ]]; then
    echo "no fuzz/ directory: skipping the fuzz smoke run"
    exit 0
fi

step "cargo-fuzz"
if cargo fuzz --version >/dev/null 2>&1; then
    cargo fuzz --version
else
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes -Z flags to rustc, which only a nightly toolchain accepts. Machines that
# have only the stable toolchain use RUSTC_BOOTSTRAP=1, which makes stable rustc accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    echo "no nightly toolchain: running cargo-fuzz on stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

step "fuzz targets: build"
"${fuzz[@]}" build

mapfile -t targets < <("${fuzz[@]}" list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz/ has no targets" >&2
    exit 1
fi

# New inputs go to a temporary corpus so that the smoke run leaves the work tree clean. The
# committed corpus, if any, is read as seeds. Crashes are written to fuzz/artifacts/TARGET/.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    step "fuzz target $target: ${FUZZ_SECONDS}s smoke run"
    corpora=("$scratch/$target")
    mkdir -p "$scratch/$target"
    if [[ -d "fuzz/corpus/$target" ]]; then
        corpora+=("fuzz/corpus/$target")
    fi
    "${fuzz[@]}" run "$target" "${corpora[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -runs=10000000 -print_final_stats=1
done

step "all tests passed"
