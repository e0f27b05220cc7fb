#!/usr/bin/env bash
# Calibrates the latency gate (`harness ab`) on this machine: RUNS A/A comparisons (the same
# build against itself: every failure is a false alarm) and RUNS comparisons against a build
# 20% slower (examples/slowed_harness.rs busy-waits 20% after each forward pass: every pass is
# a detection), each a full `harness ab` on the quick scenario (native backend, S0 and S1, both
# forms, 1 and 2 threads: 8 cells) with the gate's defaults and its confirmation run.
# Prints both rates. Usage: scripts/calibrate-gate.sh [RUNS] [extra `harness ab` flags]
# (RUNS defaults to 20; e.g. `scripts/calibrate-gate.sh 20 --threshold 3`).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
shift || true
cargo build -q -p harness --examples
bin=target/debug/harness
slowed=target/debug/examples/slowed_harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs one comparison; prints the exit code and the per-cell counts of the first pass.
compare() {
    local candidate=$1 out=$2
    set +e
    "$bin" ab scenarios/quick.yaml --backends native \
        --baseline-harness "$bin" --candidate-harness "$candidate" --out "$out" "${@:3}" \
        >"$out.log" 2>&1
    local rc=$?
    set -e
    local first
    first=$(grep -o '"regressions": [0-9]*' "$out/gate.json" | head -1 | grep -o '[0-9]*$' || echo "?")
    echo "$rc $first"
}

aa_fail=0 ab_fail=0 aa_cells=0 ab_cells=0
for i in $(seq 1 "$runs"); do
    read -r rc cells < <(compare "$bin" "$work/aa-$i" "$@")
    [ "$rc" = 1 ] && aa_fail=$((aa_fail + 1))
    [ "$rc" = 2 ] && { cat "$work/aa-$i.log"; exit 2; }
    aa_cells=$((aa_cells + cells))
    read -r rc cells < <(compare "$slowed" "$work/ab-$i" "$@")
    [ "$rc" = 1 ] && ab_fail=$((ab_fail + 1))
    [ "$rc" = 2 ] && { cat "$work/ab-$i.log"; exit 2; }
    ab_cells=$((ab_cells + cells))
    echo "run $i/$runs: A/A false alarms so far $aa_fail; 20%-slower detections so far $ab_fail"
done
echo
echo "A/A (same build): the gate failed in $aa_fail of $runs runs (false-alarm rate $((100 * aa_fail / runs))%);"
echo "    $aa_cells of $((8 * runs)) cells looked regressed before confirmation"
echo "A/B (20% slower): the gate failed in $ab_fail of $runs runs (detection rate $((100 * ab_fail / runs))%);"
echo "    $ab_cells of $((8 * runs)) cells looked regressed before confirmation"
