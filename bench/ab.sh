#!/usr/bin/env bash
# Before/after: builds the benchmark at another revision and at the working tree, runs both
# interleaved on both runtimes, and prints per-op µs (min and median of the rounds) and the
# ratio. Same machine, same window: the fair way to tell a change from noise.
#
#   bench/ab.sh REV                        # e.g. bench/ab.sh main~3
#   ROUNDS=9 bench/ab.sh REV --scenario loop --scenario chain
#
# Extra arguments go to both binaries (scenarios, sizes).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev="${1:?usage: bench/ab.sh REV [bench flags...]}"
shift
rounds="${ROUNDS:-5}"
work="$(mktemp -d)"
trap 'git -C "$root" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add --detach --quiet "$work/tree" "$rev"
echo "# building $rev and the working tree" >&2
CARGO_TARGET_DIR="$root/target/ab-before" cargo build --quiet --release -p workflows-bench \
    --manifest-path "$work/tree/Cargo.toml"
cargo build --quiet --release -p workflows-bench --manifest-path "$root/Cargo.toml"
before="$root/target/ab-before/release/bench_workflows"
after="$root/target/release/bench_workflows"

for round in $(seq "$rounds"); do
    echo "# round $round of $rounds" >&2
    for rt in multi current; do
        "$before" --runtime "$rt" --threads 2 "$@" > "$work/before.$rt.$round.jsonl"
        "$after" --runtime "$rt" --threads 2 "$@" > "$work/after.$rt.$round.jsonl"
    done
done

python3 - "$work" "$rev" <<'PY'
import collections, glob, json, statistics, sys
work, rev = sys.argv[1], sys.argv[2]
runs = collections.defaultdict(list)
for path in glob.glob(work + "/*.jsonl"):
    who, rt = path.rsplit("/", 1)[1].split(".")[:2]
    for line in open(path):
        row = json.loads(line)
        runs[(who, row["scenario"], rt)].append(row["per_op_us"])
print(f"{'scenario':11} {'runtime':8} {rev + ' µs/op (min, median)':>30} {'now µs/op (min, median)':>26} {'now/before (min, median)':>25}")
for scenario, rt in sorted({(s, r) for (_, s, r) in runs}):
    b, a = runs[("before", scenario, rt)], runs[("after", scenario, rt)]
    if not a or not b:
        continue
    bm, am = min(b), min(a)
    bmed, amed = statistics.median(b), statistics.median(a)
    print(f"{scenario:11} {rt:8} {bm:14.3f} {bmed:14.3f} {am:12.3f} {amed:12.3f} {am / bm:12.2f}x {amed / bmed:11.2f}x")
PY
