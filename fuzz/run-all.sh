#!/usr/bin/env bash
# Runs every fuzz target for a while; fails if any target crashes.
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET]    (default 30)
#
# Works on stable Rust: targets are built without a sanitizer (-s none), which
# needs no nightly -Z flags; overflow checks and debug assertions stay on.
# For an AddressSanitizer run, use RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET.
#
# The checked-in seeds in fuzz/corpus/<target>/ are read but never written:
# new inputs go to fuzz/target/work-corpus/<target>/ and crashes to
# fuzz/artifacts/<target>/ (both ignored by git).
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version '^0.13' --locked
fi

targets=$(cargo fuzz list --fuzz-dir "$fuzz_dir")
cargo fuzz build --fuzz-dir "$fuzz_dir" -s none

failed=()
for target in $targets; do
    work="$fuzz_dir/target/work-corpus/$target"
    mkdir -p "$work"
    echo "=== fuzzing $target for ${seconds}s" >&2
    if ! cargo fuzz run --fuzz-dir "$fuzz_dir" -s none "$target" "$work" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED fuzz targets: ${failed[*]} (crash inputs under $fuzz_dir/artifacts/)" >&2
    exit 1
fi
echo "all fuzz targets ran ${seconds}s without a crash: $(echo $targets)" >&2
