#!/usr/bin/env bash
# Calibrates `harness gate --history` on this machine, as scripts/calibrate-gate.sh does for
# `harness ab`. A store gets HISTORY runs of the quick scenario (native backend, 8 cells; each
# run a fresh process under a commit name of its own), then each of RUNS trials gates:
#   A/A    a fresh run of the same build (every failure is a false alarm), which is then kept
#          in the store, as CI keeps each commit's run: the history rolls, and spans the
#          whole calibration rather than the minute its first runs took;
#   20%    a run of examples/slowed_harness at 1.2x (every pass is a missed slowdown);
#   drift  a copy of the store with four runs at 1.02x, 1.02^2x, 1.02^3x, 1.02^4x kept, then a
#          run at 1.02^5x gated (five steps of +2%: a detection is a caught drift).
# Prints the three rates. Usage: scripts/calibrate-history-gate.sh [RUNS] [HISTORY] [PROCESSES]
# (defaults 20, 10 and 1: every run, stored or gated, measures each cell in PROCESSES fresh
# processes sharing the scenario's budget; the gate's defaults: threshold 5%, 99%, window 10,
# K 5).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
history=${2:-10}
processes=${3:-1}
cargo build -q -p harness --examples
bin=target/debug/harness
slowed=target/debug/examples/slowed_harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure BINARY OUT COMMIT [FACTOR]: one run into OUT, its results renamed to COMMIT.
measure() {
    ONEBENCH_SLOWDOWN=${4:-1.2} "$1" run scenarios/quick.yaml --backends native --history off \
        --processes "$processes" --out "$2" >"$2.log" 2>&1 || { cat "$2.log"; exit 2; }
    sed -i "s/\"git_commit\": \"[^\"]*\"/\"git_commit\": \"$3\"/" "$2/results.json"
}
keep() {
    "$bin" history import --store "$1" "$2/results.json" >/dev/null
}
# judge STORE OUT: the gate's exit code; no verdict (2, e.g. a cell measured under foreign
# load) stops the calibration, after showing why.
judge() {
    set +e
    "$bin" gate --history "$1" --candidate "$2/results.json" >"$2.gate" 2>&1
    local rc=$?
    set -e
    [ "$rc" = 2 ] && cat "$2.gate" >&2
    echo "$rc"
}
# failed RC: 1 when the gate failed; stops the calibration on no verdict.
failed() {
    [ "$1" = 2 ] && { echo "no verdict: calibration stopped (is the machine busy?)" >&2; kill -TERM $$; }
    [ "$1" = 1 ] && echo 1 || echo 0
}

base="$work/base.sqlite"
for i in $(seq 1 "$history"); do
    measure "$bin" "$work/h$i" "base-$i"
    keep "$base" "$work/h$i"
done
aa=0 slow=0 drift=0 aa_by_drift=0 drift_by_rule=0
# by_drift OUT: 1 when the gate's failure named a drift (not only a cell's regressed verdict).
by_drift() {
    grep -q '^drift: ' "$1.gate" && echo 1 || echo 0
}
for i in $(seq 1 "$runs"); do
    measure "$bin" "$work/aa$i" "cand-$i"
    if [ "$(failed "$(judge "$base" "$work/aa$i")")" = 1 ]; then
        aa=$((aa + 1))
        aa_by_drift=$((aa_by_drift + $(by_drift "$work/aa$i")))
    fi
    keep "$base" "$work/aa$i"
    measure "$slowed" "$work/sl$i" "cand-$i" 1.2
    [ "$(failed "$(judge "$base" "$work/sl$i")")" = 1 ] && slow=$((slow + 1))
    cp "$base" "$work/d$i.sqlite"
    for k in 1 2 3 4; do
        measure "$slowed" "$work/d$i-$k" "step-$k" "$(awk "BEGIN { print 1.02 ^ $k }")"
        keep "$work/d$i.sqlite" "$work/d$i-$k"
    done
    measure "$slowed" "$work/d$i-5" "step-5" "$(awk 'BEGIN { print 1.02 ^ 5 }')"
    if [ "$(failed "$(judge "$work/d$i.sqlite" "$work/d$i-5")")" = 1 ]; then
        drift=$((drift + 1))
        drift_by_rule=$((drift_by_rule + $(by_drift "$work/d$i-5")))
    fi
    echo "trial $i/$runs: A/A false alarms $aa; 20% slowdowns caught $slow; drifts caught $drift"
done
echo
echo "gate --history against $history kept runs, $runs trials each, every run in $processes process(es):"
echo "  A/A (same build):           failed $aa of $runs (false-alarm rate $((100 * aa / runs))%; $aa_by_drift by the drift rule)"
echo "  20% slower:                 failed $slow of $runs (detection rate $((100 * slow / runs))%)"
echo "  drift, five steps of +2%:   failed $drift of $runs (detection rate $((100 * drift / runs))%; the drift rule named $drift_by_rule)"
