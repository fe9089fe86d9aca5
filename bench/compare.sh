#!/usr/bin/env bash
# Runs the Python reference harness (bench/python) and ours at identical sizes, in
# one window, and prints one table: per-op time of each, their ratio, ours against the raw
# Tokio floor measured in the same run, and memory per suspended run.
#
#   bench/compare.sh                          # the reference's default sizes
#   bench/compare.sh --loop-n 20000 ...       # any size flag of the harness, passed to both
#   ROUNDS=3 bench/compare.sh                 # medians of 3 interleaved rounds (default 1)
#
# Needs python3 (the harness makes its own virtualenv with the pinned library) and cargo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
harness="${PYTHON_BENCH:-$root/bench/python/run.sh}"
rounds="${ROUNDS:-1}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

if [ ! -x "$harness" ] && [ ! -f "$harness" ]; then
    echo "error: the Python harness is not at $harness (set PYTHON_BENCH)" >&2
    exit 1
fi

cargo build --quiet --release -p workflows-bench --manifest-path "$root/Cargo.toml"
ours="$root/target/release/bench_workflows"
extra=()
for arg in "$@"; do
    # With scenarios picked, ours still measures the floor for the "ours/floor" column.
    if [ "$arg" = "--scenario" ] || [[ "$arg" == --scenario=* ]]; then extra=(--scenario floor); fi
done

for round in $(seq "$rounds"); do
    echo "# round $round of $rounds" >&2
    bash "$harness" "$@" > "$out/python.$round.jsonl"
    "$ours" --runtime multi --threads 2 "$@" "${extra[@]}" > "$out/multi.$round.jsonl"
    "$ours" --runtime current "$@" "${extra[@]}" > "$out/current.$round.jsonl"
done

python3 - "$out" "$rounds" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])

def load(kind):
    runs = {}
    for r in range(1, rounds + 1):
        with open(os.path.join(out, f"{kind}.{r}.jsonl")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    d = json.loads(line)
                    runs.setdefault(d["scenario"], []).append(d)
    return runs

def median(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None

py, runtimes = load("python"), {"multi_thread": load("multi"), "current_thread": load("current")}
order = ["chain", "loop", "fanout", "hitl", "snapshot", "concurrent"]
print(f"{'scenario':<11} {'n':>6} {'runtime':<15} {'python µs/op':>13} {'ours µs/op':>11} {'py/ours':>9} {'ours/floor':>11} {'KB/suspended run (py, ours)':>28}")
for name, runs in runtimes.items():
    floor = median(runs.get("floor", []), "ping_pong_ns_per_msg")
    for scenario in order:
        if scenario not in runs or scenario not in py:
            continue
        p, o = median(py[scenario], "per_op_us"), median(runs[scenario], "per_op_us")
        ratio = f"{p / o:,.0f}x" if o else "-"
        vs_floor = "-"
        if floor and scenario in ("chain", "loop", "fanout"):
            vs_floor = f"{o * 1000 / floor:.2f}x"
        elif floor and scenario == "hitl":
            # A round trip is two messages: the request out and the answer in.
            vs_floor = f"{o * 1000 / (2 * floor):.2f}x rt"
        elif scenario == "snapshot" and median(runs[scenario], "cycle_over_floor"):
            # Its own floor: the same state through serde_json alone, in the same run.
            vs_floor = f"{median(runs[scenario], 'cycle_over_floor'):.2f}x serde"
        mem = "-"
        if scenario == "concurrent":
            mem = f"{median(py[scenario], 'rss_per_run_kb'):.2f}, {median(runs[scenario], 'rss_per_run_kb'):.2f}"
        n = runs[scenario][0]["n"]
        print(f"{scenario:<11} {n:>6} {name:<15} {p:>13,.1f} {o:>11.3f} {ratio:>9} {vs_floor:>11} {mem:>28}")
    if floor:
        chain = median(runs.get("floor", []), "chain10_ns_per_hop")
        print(f"{'floor':<11} {'':>6} {name:<15} {'':>13} mpsc ping-pong {floor:.0f} ns/msg, 10-task chain {chain:.0f} ns/hop")
PY
