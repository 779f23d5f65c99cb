#!/usr/bin/env bash
# Interleaved A/B of two quiver binaries on the same saved indexes:
#
#   benches/ab_binaries.sh OLD_BIN NEW_BIN [ROUNDS]
#
# Builds an HNSW graph and a SPANN index of $D (default
# ../shared/datasets/minilm-npm-384) once, with NEW_BIN (both binaries read
# the same formats), then alternates OLD and NEW `quiver bench --load` sweeps
# for ROUNDS rounds (default 3; the order flips each round) and prints, per
# setting, the median QPS of each binary, their ratio and the recalls. Build
# times of the HNSW graph are measured the same way (one build per binary
# per round, with --limit to keep it short). Results: $OUT (default
# /tmp/quiver-ab), one JSON per run.
set -euo pipefail
old="$(realpath "$1")"
new="$(realpath "$2")"
rounds="${3:-3}"
D="${D:-$(dirname "$0")/../../shared/datasets/minilm-npm-384}"
D="$(realpath "$D")"
out="${OUT:-/tmp/quiver-ab}"
mkdir -p "$out"
common=(--base "$D/base.fbin" --query "$D/query.fbin" --gt "$D/gt.ibin" --metric cosine --log warn)

echo "ab: building the shared indexes with $new" >&2
[[ -f "$out/g.hnsw" ]] || "$new" bench --index hnsw "${common[@]}" --ef 10 --runs 1 --save "$out/g.hnsw" >/dev/null
[[ -d "$out/sp" ]] || "$new" index --index spann --base "$D/base.fbin" --metric cosine --out "$out/sp" --log warn

for r in $(seq "$rounds"); do
    order=(old new)
    ((r % 2 == 0)) && order=(new old)
    for who in "${order[@]}"; do
        bin="$old"
        [[ $who == new ]] && bin="$new"
        echo "ab: round $r $who" >&2
        "$bin" bench --index hnsw "${common[@]}" --load "$out/g.hnsw" --ef 10,20,40,80,160 \
            --runs 3 --json "$out/hnsw-$who-$r.json" >/dev/null
        "$bin" bench --index spann "${common[@]}" --load "$out/sp" --nprobe 4,8,16,32,64 \
            --runs 3 --json "$out/spann-$who-$r.json" >/dev/null
        "$bin" bench --index hnsw "${common[@]}" --limit 20000 --ef 40 --runs 1 \
            --json "$out/build-$who-$r.json" >/dev/null
    done
done

python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(kind, who):
    return [json.load(open(f"{out}/{kind}-{who}-{r}.json")) for r in range(1, rounds + 1)]
for kind, key in (("hnsw", "ef"), ("spann", "nprobe")):
    o, n = load(kind, "old"), load(kind, "new")
    print(f"\n{kind}: median QPS over {rounds} interleaved rounds (each the median of 3 passes)")
    print(f"| {key} | recall old | recall new | QPS old | QPS new | new/old |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, row in enumerate(o[0]["runs"]):
        qo = statistics.median(x["runs"][i]["qps"] for x in o)
        qn = statistics.median(x["runs"][i]["qps"] for x in n)
        ro = statistics.median(x["runs"][i]["recall"] for x in o)
        rn = statistics.median(x["runs"][i]["recall"] for x in n)
        print(f"| {row[key]} | {ro:.4f} | {rn:.4f} | {qo:,.0f} | {qn:,.0f} | {qn/qo:.2f} |")
bo = statistics.median(x["build_seconds"] for x in load("build", "old"))
bn = statistics.median(x["build_seconds"] for x in load("build", "new"))
print(f"\nHNSW build of 20,000 vectors: median {bo:.2f} s old, {bn:.2f} s new (new/old {bn/bo:.2f})")
EOF
