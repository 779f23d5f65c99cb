#!/usr/bin/env bash
# Container tests of the quiver image, run by .ci/run (and by hand:
# `bash deploy/test-container.sh` from the repository root, as root or a
# member of the docker group; the base image needs root once).
#
# Builds the registry-free image (deploy/base-image.sh + the Dockerfile's
# `runtime-prebuilt` target on target/release/quiver), then checks, with real
# data (../shared/datasets/minilm-npm-384, the first $N vectors; generated
# clustered vectors of that shape when it is absent):
#   1. `docker run` with a named volume, QUIVER_API_KEYS, --read-only,
#      --cap-drop ALL and --user 10001: the HEALTHCHECK turns healthy, the
#      server runs as uid 10001 with no capabilities;
#   2. `quiver import` from the host through the published port with the
#      key, then `quiver query` reaches the recall the same import gets from a
#      server outside the container (within 0.02: concurrent HNSW inserts are
#      not deterministic);
#   3. `docker kill -s KILL` + `docker start`: the count and a sample of
#      vectors are intact (deploy/check_points.py);
#   4. `docker stop` exits 0 within the grace period, and the next start
#      replays nothing: its "collection opened" log line says replayed=0;
#   5. `docker-compose -f deploy/docker-compose.yml up -d` on the same image
#      turns healthy and answers a search; `down` keeps the volume.
#   6. when the binary has cluster mode (`serve --cluster`): the compose
#      `cluster` profile (etcd image from deploy/etcd.Dockerfile, 3-member
#      etcd, 3 quiver nodes) turns healthy; a 3-shard x RF 3 import through
#      node 1 is searched through node 2 at the single server's recall; after
#      `docker kill` of node 1 the searches through node 2 still answer.
# Prints the image size and the time from `docker run` to healthy.
#
# Without a Docker engine it skips (exit 0) with a message, except under
# CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-3000}"
KEY="ci-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
IMAGE="${QUIVER_IMAGE:-quiver:latest}"
DATA="${QUIVER_DATASETS:-../shared/datasets}/minilm-npm-384"
BIN="$PWD/target/release/quiver"
run_id="qvtest$$"
t0_all=$(date +%s)

say() { echo "container-test: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
skip() {
    if [[ -n "${CI:-}" ]]; then fail "$* (required under CI)"; fi
    say "skipped: $*"
    exit 0
}

docker info >/dev/null 2>&1 || skip "no Docker engine (docker info failed)"
command -v docker-compose >/dev/null || skip "docker-compose is missing"
python3 -c "import grpc, grpc_tools" 2>/dev/null || skip "python3 lacks grpcio/grpcio-tools"
[[ -x "$BIN" ]] || { say "building $BIN"; cargo build --release --bin quiver; }

tmp="$(mktemp -d /tmp/quiver-container-test.XXXXXX)"
if [[ ! -f "$DATA/base.fbin" || ! -f "$DATA/query.fbin" ]]; then
    # Without the real data the checks still run, on generated clustered
    # unit vectors of the same shape (384-d, 1,000 queries).
    say "no dataset at $DATA: generating $N clustered 384-d vectors instead"
    DATA="$tmp/data"
    mkdir -p "$DATA"
    python3 - "$DATA" "$N" <<'PY'
import math, random, struct, sys
out, n, dim = sys.argv[1], int(sys.argv[2]), 384
rng = random.Random(11)
centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(50)]
def point():
    c = rng.choice(centres)
    v = [x + rng.gauss(0, 0.6) for x in c]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]
for name, rows in (("base.fbin", n), ("query.fbin", 1000)):
    with open(f"{out}/{name}", "wb") as f:
        f.write(struct.pack("<II", rows, dim))
        for _ in range(rows):
            f.write(struct.pack(f"<{dim}f", *point()))
PY
fi
host_pid=""
cleanup() {
    set +e
    [[ -n "$host_pid" ]] && kill "$host_pid" 2>/dev/null
    docker rm -f "$run_id" >/dev/null 2>&1
    docker-compose -p "$run_id" -f deploy/docker-compose.yml down -v >/dev/null 2>&1
    docker-compose -p "${run_id}c" -f deploy/docker-compose.yml --profile cluster down -v >/dev/null 2>&1
    docker volume rm -f "$run_id-data" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# Waits until container $1 reports healthy; fails on unhealthy/exit/timeout.
wait_healthy() {
    local c="$1" deadline=$(($(date +%s) + ${2:-120})) st
    while :; do
        st="$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c")"
        case "$st" in
            running/healthy) return 0 ;;
            running/unhealthy | exited/* | dead/*)
                docker logs --tail 30 "$c" >&2 || true
                fail "$c is $st" ;;
        esac
        (($(date +%s) < deadline)) || { docker logs --tail 30 "$c" >&2; fail "$c not healthy in time ($st)"; }
        sleep 0.2
    done
}

recall_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recall"])' "$1"; }

# --- image -------------------------------------------------------------------
if [[ $(id -u) == 0 ]]; then
    bash deploy/base-image.sh
else
    sudo -n bash deploy/base-image.sh || fail "deploy/base-image.sh needs root"
fi
t0=$(date +%s)
docker build -q -f deploy/Dockerfile --target runtime-prebuilt \
    --build-arg BASE_IMAGE=quiver-base:bookworm -t "$IMAGE" . >/dev/null
size_mb=$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f", $1/1e6}')
say "built $IMAGE in $(($(date +%s) - t0)) s: ${size_mb} MB"

say "stubs and ground truth for the first $N vectors"
python3 examples/python/gen_stubs.py --out "$tmp/stubs" >/dev/null
"$BIN" --log warn gt --base "$DATA/base.fbin" --query "$DATA/query.fbin" --k 10 \
    --metric cosine --limit "$N" --out "$tmp/gt.ibin"

# --- the reference: the same import into a server outside the container -------
hport=$(free_port)
QUIVER_DATA="$tmp/host" QUIVER_ADDR="127.0.0.1:$hport" QUIVER_METRICS_ADDR="127.0.0.1:$(free_port)" \
    "$BIN" --log warn serve >"$tmp/host.log" 2>&1 &
host_pid=$!
for _ in $(seq 100); do "$BIN" --log error health --addr "127.0.0.1:$hport" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" --log warn import --addr "127.0.0.1:$hport" --collection npm --create --metric cosine \
    --input "$DATA/base.fbin" --limit "$N"
"$BIN" --log warn query --addr "127.0.0.1:$hport" --collection npm --queries "$DATA/query.fbin" \
    --gt "$tmp/gt.ibin" --k 10 --json "$tmp/host.json" >/dev/null
kill "$host_pid"; wait "$host_pid" || true; host_pid=""
host_recall=$(recall_of "$tmp/host.json")

# --- 1. run with the Kubernetes security context ------------------------------
port=$(free_port)
addr="127.0.0.1:$port"
t_run=$(now_ms)
docker run -d --name "$run_id" -p "$addr:6334" -v "$run_id-data:/data" \
    -e QUIVER_API_KEYS="$KEY" --read-only --cap-drop ALL --user 10001 \
    --stop-timeout 60 "$IMAGE" >/dev/null
until "$BIN" --log error health --addr "$addr" --timeout-ms 500 >/dev/null 2>&1; do
    (($(now_ms) - t_run < 60000)) || { docker logs --tail 30 "$run_id" >&2; fail "not serving in 60 s"; }
    sleep 0.05
done
serving_ms=$(($(now_ms) - t_run))
wait_healthy "$run_id"
healthy_ms=$(($(now_ms) - t_run))
say "1. serving $serving_ms ms and healthy $healthy_ms ms after docker run (HEALTHCHECK interval 5 s)"
uid=$(docker exec "$run_id" id -u)
[[ "$uid" == 10001 ]] || fail "server runs as uid $uid"
cap=$(docker exec "$run_id" sh -c 'grep CapEff /proc/1/status' | awk '{print $2}')
[[ "$cap" =~ ^0+$ ]] || fail "server has capabilities $cap"
[[ $(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$run_id") == true ]] || fail "root fs writable"
say "1. uid 10001, CapEff $cap, read-only root fs"

# --- 2. import and query through the published port ---------------------------
if "$BIN" --log error import --addr "$addr" --collection npm --create --metric cosine \
    --input "$DATA/base.fbin" --limit 10 2>/dev/null; then
    fail "an import without the API key was accepted"
fi
"$BIN" --log warn import --addr "$addr" --api-key "$KEY" --collection npm --create \
    --metric cosine --input "$DATA/base.fbin" --limit "$N"
"$BIN" --log warn query --addr "$addr" --api-key "$KEY" --collection npm \
    --queries "$DATA/query.fbin" --gt "$tmp/gt.ibin" --k 10 --json "$tmp/c.json" >/dev/null
c_recall=$(recall_of "$tmp/c.json")
c_recall=$(printf %.4f "$c_recall"); host_recall=$(printf %.4f "$host_recall")
python3 -c "import sys; a,b=map(float,sys.argv[1:]); sys.exit(abs(a-b) > 0.02)" \
    "$c_recall" "$host_recall" || fail "recall $c_recall in the container, $host_recall outside"
say "2. recall@10 $c_recall in the container, $host_recall outside ($N vectors, 1000 queries)"

check() {
    python3 deploy/check_points.py --stubs "$tmp/stubs" --addr "$addr" --api-key "$KEY" \
        --collection npm --fbin "$DATA/base.fbin" --n "$N" >&2 || fail "$1"
}

# --- 3. kill -9 and start again -----------------------------------------------
docker kill -s KILL "$run_id" >/dev/null
docker wait "$run_id" >/dev/null || true
docker start "$run_id" >/dev/null
wait_healthy "$run_id"
check "points lost after docker kill -s KILL"
say "3. after kill -9 + start: every point intact"

# --- 4. docker stop: exit 0 in the grace period, nothing to replay ------------
t_stop=$(now_ms)
docker stop -t 60 "$run_id" >/dev/null
stop_ms=$(($(now_ms) - t_stop))
code=$(docker inspect -f '{{.State.ExitCode}}' "$run_id")
[[ "$code" == 0 ]] || { docker logs --tail 20 "$run_id" >&2; fail "docker stop: exit code $code"; }
((stop_ms < 60000)) || fail "docker stop took $stop_ms ms (grace 60 s)"
docker start "$run_id" >/dev/null
wait_healthy "$run_id"
docker logs "$run_id" 2>&1 | python3 -c '
import json, sys
opened = []
for line in sys.stdin:
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    f = rec.get("fields", {})
    if f.get("message") == "collection opened":
        opened.append(f)
if len(opened) < 3:
    sys.exit("expected a \"collection opened\" log line per start, found %d" % len(opened))
killed, stopped = opened[-2], opened[-1]
print("container-test: 3. the start after kill -9 replayed %s WAL records" % killed.get("replayed"), file=sys.stderr)
if stopped.get("replayed") != 0:
    sys.exit("the start after docker stop replayed %s WAL records" % stopped.get("replayed"))
print("container-test: 4. the start after docker stop replayed 0 records (%s points)" % stopped.get("points"), file=sys.stderr)
' || fail "the start after a clean stop replayed the WAL"
check "points lost after docker stop + start"
say "4. docker stop: exit 0 in $stop_ms ms"
docker rm -f "$run_id" >/dev/null

# --- 5. compose ---------------------------------------------------------------
cport=$(free_port)
mport=$(free_port)
export QUIVER_API_KEYS="$KEY" QUIVER_IMAGE="$IMAGE" QUIVER_GRPC_PORT="$cport" QUIVER_METRICS_PORT="$mport"
docker-compose -p "$run_id" -f deploy/docker-compose.yml up -d --no-build 2>"$tmp/compose.log" \
    || { cat "$tmp/compose.log" >&2; fail "docker-compose up"; }
cid=$(docker-compose -p "$run_id" -f deploy/docker-compose.yml ps -q quiver)
wait_healthy "$cid"
caddr="127.0.0.1:$cport"
"$BIN" --log warn import --addr "$caddr" --api-key "$KEY" --collection npm --create \
    --metric cosine --input "$DATA/base.fbin" --limit "$N"
"$BIN" --log warn query --addr "$caddr" --api-key "$KEY" --collection npm \
    --queries "$DATA/query.fbin" --gt "$tmp/gt.ibin" --k 10 --limit 100 --json "$tmp/compose.json" >/dev/null
curl -fsS "http://127.0.0.1:$mport/metrics" >/dev/null 2>&1 \
    || python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]).read()" \
        "http://127.0.0.1:$mport/metrics" || fail "compose: no /metrics on $mport"
docker-compose -p "$run_id" -f deploy/docker-compose.yml down 2>>"$tmp/compose.log"
docker volume inspect "${run_id}_quiver-data" >/dev/null 2>&1 || fail "compose down removed the volume"
say "5. compose: healthy, recall@10 $(printf %.4f "$(recall_of "$tmp/compose.json")") on 100 queries, /metrics served, volume kept by down"

# --- 6. compose cluster profile -------------------------------------------------
if "$BIN" serve --help 2>/dev/null | grep -q -- '--cluster'; then
    ETCD_IMAGE="${QUIVER_ETCD_IMAGE:-quiver-etcd:latest}"
    t0=$(date +%s)
    docker build -q -f deploy/etcd.Dockerfile --build-arg BASE_IMAGE=quiver-base:bookworm \
        -t "$ETCD_IMAGE" deploy >/dev/null || fail "building $ETCD_IMAGE"
    say "6. built $ETCD_IMAGE in $(($(date +%s) - t0)) s"
    p1=$(free_port); p2=$(free_port); p3=$(free_port)
    export QUIVER_ETCD_IMAGE="$ETCD_IMAGE" QUIVER_CLUSTER_PORT1="$p1" QUIVER_CLUSTER_PORT2="$p2" \
        QUIVER_CLUSTER_PORT3="$p3"
    cproj="${run_id}c"
    dc() { docker-compose -p "$cproj" -f deploy/docker-compose.yml --profile cluster "$@"; }
    dc up -d --no-build quiver1 quiver2 quiver3 2>"$tmp/cluster.log" \
        || { cat "$tmp/cluster.log" >&2; fail "docker-compose --profile cluster up"; }
    for svc in quiver1 quiver2 quiver3; do wait_healthy "$(dc ps -q "$svc")" 180; done
    say "6. cluster profile: 3 etcd members and 3 nodes healthy"
    "$BIN" --log warn import --addr "127.0.0.1:$p1" --api-key "$KEY" --collection npm --create \
        --metric cosine --input "$DATA/base.fbin" --limit "$N" --shards 3 --replication-factor 3
    cquery() {
        "$BIN" --log warn query --addr "127.0.0.1:$p2" --api-key "$KEY" --collection npm \
            --queries "$DATA/query.fbin" --gt "$tmp/gt.ibin" --k 10 --limit 200 --json "$1" >/dev/null
    }
    cquery "$tmp/cluster.json" || fail "cluster: search through node 2"
    cl_recall=$(printf %.4f "$(recall_of "$tmp/cluster.json")")
    python3 -c "import sys; a,b=map(float,sys.argv[1:]); sys.exit(abs(a-b) > 0.03)" \
        "$cl_recall" "$host_recall" || fail "cluster recall $cl_recall, single server $host_recall"
    docker kill -s KILL "$(dc ps -q quiver1)" >/dev/null
    t_kill=$(now_ms)
    until cquery "$tmp/after.json" 2>/dev/null \
        && python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["errors"] != 0)' "$tmp/after.json"; do
        (($(now_ms) - t_kill < 60000)) || fail "cluster: no clean search through node 2 within 60 s of killing node 1"
        sleep 0.5
    done
    after_recall=$(printf %.4f "$(recall_of "$tmp/after.json")")
    say "6. cluster: recall@10 $cl_recall (single server $host_recall); node 1 killed: searches clean again after $(($(now_ms) - t_kill)) ms, recall $after_recall"
    dc down -v 2>>"$tmp/cluster.log"
else
    say "6. skipped: this quiver has no cluster mode (serve --cluster)"
fi

say "all passed in $(($(date +%s) - t0_all)) s; image ${size_mb} MB, docker run to serving ${serving_ms} ms, to healthy ${healthy_ms} ms"
