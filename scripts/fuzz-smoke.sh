#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for a short, fixed time
# (FUZZ_SECONDS, default 10) from its committed seeds; fails on any crash,
# hang or memory blow-up, printing one summary line per target.
#
#   bash scripts/fuzz-smoke.sh            # all targets
#   bash scripts/fuzz-smoke.sh tcp_codec  # some targets
#
# cargo-fuzz needs nightly-only flags; on a stable toolchain they are
# unlocked with RUSTC_BOOTSTRAP=1. AddressSanitizer is used when its
# runtime links, else none (FUZZ_SANITIZER=address or none forces one).
# Findings go to fuzz/artifacts/<target>/; new corpus entries to
# fuzz/corpus/<target>/ (both ignored by git). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-10}
sanitizer=${FUZZ_SANITIZER:-}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Release code with debug assertions and overflow checks (what
# fuzz/Cargo.toml optimises, and why, is explained there); 16 codegen units
# keep the build of every target short.
build() {
    flags=(--release --debug-assertions --codegen-units 16 --sanitizer "$1")
    echo "building the fuzz targets (sanitizer: $1)"
    cargo fuzz build "${flags[@]}"
}
if [ -n "$sanitizer" ]; then
    build "$sanitizer"
elif build address; then
    sanitizer=address
else
    # Where the AddressSanitizer runtime is missing, fuzz without it.
    echo "the AddressSanitizer build failed; building without a sanitizer"
    sanitizer=none
    build none
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Targets write temp files (journals, config files); keep them in memory
# and clean them up.
tmp_parent=/dev/shm
[ -d "$tmp_parent" ] && [ -w "$tmp_parent" ] || tmp_parent=${TMPDIR:-/tmp}
run_tmp=$(mktemp -d "$tmp_parent/betanet-fuzz.XXXXXX")
logs=$(mktemp -d)
trap 'rm -rf "$run_tmp" "$logs"' EXIT

# Inputs must be long enough for the structures each target decodes.
max_len() {
    case "$1" in
        unwrap_batch) echo 24000 ;;
        tcp_codec) echo 16384 ;;
        config_layers | topology_json) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

failed=()
summary=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    seeds=fuzz/seeds/$target
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    log=$logs/$target.log
    echo "fuzzing $target for ${seconds}s"
    status=0
    TMPDIR=$run_tmp cargo fuzz run "${flags[@]}" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" \
        -len_control=0 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        line=$(printf '%-20s ok     %10s runs %8s exec/s %6s MB' \
            "$target" "${runs:-?}" "${speed:-?}" "${rss:-?}")
    else
        failed+=("$target")
        artifact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | head -1 || true)
        line=$(printf '%-20s FAILED (exit %s) %s' "$target" "$status" "${artifact:-see log below}")
        echo "---- $target log (last 60 lines) ----"
        tail -60 "$log"
    fi
    summary+=("$line")
    echo "$line"
done

echo
echo "fuzz smoke summary (${seconds}s per target, sanitizer: $sanitizer):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran clean"
