#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 60; the test command
# uses 10 as a smoke run). Installs cargo-fuzz when it is missing. Exits non-zero when a target
# fails to build or finds a crash; crashes are written to fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh                  all targets, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh all targets, 10 minutes each
#   scripts/fuzz.sh chunked          one target
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"

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

"${fuzz[@]}" build

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz/ has no targets" >&2
    exit 1
fi

# New inputs go to a temporary corpus so that the run leaves the work tree clean. The committed
# corpus is read as seeds.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    printf '\n==> fuzz target %s: %ss\n' "$target" "$FUZZ_SECONDS"
    corpora=("$scratch/$target")
    mkdir -p "$scratch/$target"
    if [[ -d "fuzz/corpus/$target" ]]; then
        corpora+=("fuzz/corpus/$target")
    fi
    "${fuzz[@]}" run "$target" "${corpora[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -runs=100000000 -print_final_stats=1
done
