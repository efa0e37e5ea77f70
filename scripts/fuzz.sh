#!/usr/bin/env bash
# Fuzzing resnetc with cargo-fuzz (libFuzzer, AddressSanitizer): the targets in fuzz/fuzz_targets/.
#
#   bash scripts/fuzz.sh smoke [SECONDS]   build every target, run each SECONDS (default 20);
#                                          exit non-zero on any finding (a crash, OOM or timeout)
#   bash scripts/fuzz.sh long HOURS        run every target for HOURS in all, in turn (or, with
#                                          FUZZ_PARALLEL=1, all at once for HOURS each), going on
#                                          past findings; logs in fuzz/logs/, exit non-zero on any
#   bash scripts/fuzz.sh build             build only
#
# Environment: FUZZ_TARGETS="onnx_bytes npy_bytes" runs only those; FUZZ_SEED=N fixes libFuzzer's
# seed (CI's smoke run does, so that it tests the same inputs every time); FUZZ_FIXTURES=1 also seeds
# onnx_bytes and rnc_bytes with the smallest fixtures/models/*.onnx (1.1 MB each; max_len is then
# raised to fit them, which makes each run slower); FUZZ_NICE (default 19); FUZZ_SANITIZER
# (address by default; none is about twice as fast).
#
# New corpus entries go to fuzz/work/corpus/TARGET (git-ignored); fuzz/corpus/TARGET, the
# committed seeds, is only read. Findings land in fuzz/artifacts/TARGET/ (git-ignored); minimize
# one with `cargo +nightly fuzz tmin TARGET FILE` and keep it under fuzz/findings/TARGET/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ="$ROOT/fuzz"
cd "$ROOT"

ALL_TARGETS=(onnx_bytes model_structured rnc_bytes npy_bytes cpu_plan_bytes cpu_plan_mutate onnx_mutate)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
NICE=(nice -n "${FUZZ_NICE:-19}")
SANITIZER=${FUZZ_SANITIZER:-address}
# cargo-fuzz looks for its binaries under fuzz/target unless told otherwise: tell both the same.
unset CARGO_TARGET_DIR
FUZZ_ARGS=(--fuzz-dir "$FUZZ" --target-dir "$FUZZ/target" --sanitizer "$SANITIZER")

max_len() {
    case $1 in
        onnx_bytes) [[ ${FUZZ_FIXTURES:-0} == 1 ]] && echo 1200000 || echo 65536 ;;
        model_structured) echo 1024 ;;
        rnc_bytes) [[ ${FUZZ_FIXTURES:-0} == 1 ]] && echo 1200000 || echo 131072 ;;
        npy_bytes) echo 8192 ;;
        cpu_plan_bytes) echo 131072 ;;
        cpu_plan_mutate | onnx_mutate) echo 256 ;;
        *) echo "unknown target $1" >&2; exit 2 ;;
    esac
}

# Extra libFuzzer flags per target: an `arbitrary` description is useless until it is some tens of
# bytes long, so its length is not grown slowly from nothing.
target_flags() {
    case $1 in
        model_structured | cpu_plan_mutate | onnx_mutate) echo -len_control=0 ;;
    esac
}

ensure_cargo_fuzz() {
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "== installing cargo-fuzz"
        "${NICE[@]}" cargo install --locked cargo-fuzz
    fi
}

build() {
    ensure_cargo_fuzz
    echo "== building ${TARGETS[*]} (sanitizer: $SANITIZER)"
    for t in "${TARGETS[@]}"; do
        "${NICE[@]}" cargo +nightly fuzz build "${FUZZ_ARGS[@]}" "$t"
    done
}

# The corpus folders of a target: the writable one first, then the committed seeds (and, with
# FUZZ_FIXTURES=1, links to the smallest fixtures).
corpora() {
    local t=$1
    mkdir -p "$FUZZ/work/corpus/$t" "$FUZZ/artifacts/$t"
    local dirs=("$FUZZ/work/corpus/$t")
    [[ -d $FUZZ/corpus/$t ]] && dirs+=("$FUZZ/corpus/$t")
    if [[ ${FUZZ_FIXTURES:-0} == 1 && ( $t == onnx_bytes || $t == rnc_bytes ) ]]; then
        local seeds="$FUZZ/work/fixture-seeds"
        mkdir -p "$seeds/onnx" "$seeds/rnc"
        # shellcheck disable=SC2012
        ls -S -r "$ROOT"/fixtures/models/*.onnx | head -n 3 | while read -r f; do
            ln -sf "$f" "$seeds/onnx/$(basename "$f")"
        done
        dirs+=("$seeds/onnx")
        if [[ $t == rnc_bytes ]]; then
            if [[ ! -s $seeds/rnc/r20_a_ts17_static.rnc ]]; then
                "${NICE[@]}" cargo +nightly run -q --release --manifest-path "$FUZZ/Cargo.toml" \
                    --target-dir "$FUZZ/target" --example make_seeds -- --fixture-rnc "$seeds/rnc" >&2
            fi
            dirs+=("$seeds/rnc")
        fi
    fi
    printf '%s\n' "${dirs[@]}"
}

count_findings() {
    # On a fresh clone there is no artifacts folder yet (and find's failure must not end the script).
    mkdir -p "$FUZZ/artifacts"
    find "$FUZZ/artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l
}

# run TARGET SECONDS LOG [extra libFuzzer flags…]
run_target() {
    local t=$1 secs=$2 log=$3
    shift 3
    local dirs
    mapfile -t dirs < <(corpora "$t")
    echo "== $t for ${secs}s (max_len $(max_len "$t")) -> $log"
    set +e
    "${NICE[@]}" cargo +nightly fuzz run "${FUZZ_ARGS[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -timeout=20 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$FUZZ/artifacts/$t/" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
        $(target_flags "$t") "$@" >"$log" 2>&1
    local rc=$?
    set -e
    # The final stats: `Done N runs` and stat:: lines, or in fork mode the last `#N: cov:` line.
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)|^#[0-9]+: cov|^INFO: exiting' "$log" | tail -n 3 || true
    if [[ $rc != 0 ]]; then
        echo "!! $t exited with $rc; see $log"
        grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY' "$log" | head -n 5 || true
    fi
    return $rc
}

mode=${1:-smoke}
case $mode in
    build)
        build
        ;;
    smoke)
        secs=${2:-20}
        build
        mkdir -p "$FUZZ/logs"
        before=$(count_findings)
        failed=()
        for t in "${TARGETS[@]}"; do
            run_target "$t" "$secs" "$FUZZ/logs/smoke-$t.log" || failed+=("$t")
        done
        after=$(count_findings)
        if ((${#failed[@]} > 0 || after > before)); then
            echo "FINDINGS in: ${failed[*]:-} (artifacts under fuzz/artifacts/)"
            exit 1
        fi
        echo "smoke: no findings"
        ;;
    long)
        hours=${2:?usage: scripts/fuzz.sh long HOURS}
        total=$(awk -v h="$hours" 'BEGIN { printf "%d", h * 3600 }')
        build
        stamp=$(date +%Y%m%d-%H%M%S)
        mkdir -p "$FUZZ/logs"
        before=$(count_findings)
        # Keep going past a finding: fork mode restarts the fuzzer and keeps every crash.
        keep_going=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
        if [[ ${FUZZ_PARALLEL:-0} == 1 ]]; then
            pids=()
            for t in "${TARGETS[@]}"; do
                run_target "$t" "$total" "$FUZZ/logs/$stamp-$t.log" "${keep_going[@]}" &
                pids+=($!)
            done
            for p in "${pids[@]}"; do wait "$p" || true; done
        else
            each=$((total / ${#TARGETS[@]}))
            for t in "${TARGETS[@]}"; do
                run_target "$t" "$each" "$FUZZ/logs/$stamp-$t.log" "${keep_going[@]}" || true
            done
        fi
        after=$(count_findings)
        echo "long: $((after - before)) new finding(s); logs in fuzz/logs/$stamp-*.log"
        ((after == before))
        ;;
    *)
        echo "usage: bash scripts/fuzz.sh smoke [SECONDS] | long HOURS | build" >&2
        exit 2
        ;;
esac
