#!/usr/bin/env bash
# The admission path's cost and sign-in under load, side by side with a reference commit.
#
#   bench/admission.sh [REFERENCE]     REFERENCE: a commit before src/admission/ (default 4976f38)
#
# Builds the release binary of this tree and of REFERENCE (in a git worktree, same target dir),
# runs each on the embedded defaults (SQLite, no Redis) with rate limits off (one load generator
# stands for many clients), and measures with oha at 64 connections:
#   - `{ __typename }` over POST /graphql: what admission adds to the cheapest operation, in 3
#     alternating rounds per binary (the VM's speed drifts; alternating cancels most of it);
#   - `login` with the right password for one user: throughput, p50/p99 and the server's peak RSS
#     (argon2 behind PASSWORD_HASH_CONCURRENCY slots here; unbounded on the blocking pool before).
# Writes bench/results/admission.json and prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
REFERENCE=${1:-4976f38}
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
PORT=${BENCH_PORT:-8310}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/master-guide-target}
command -v oha >/dev/null || cargo install oha --locked --version 1.16.0

WORK=$(mktemp -d)
cargo build --release --quiet
cp "$CARGO_TARGET_DIR/release/master-guide" "$WORK/current"
git worktree remove --force "$WORK/reference-tree" 2>/dev/null || true
git worktree add --detach "$WORK/reference-tree" "$REFERENCE" >/dev/null
# Its own target dir: workspace crates of another checkout in the same one would leave this tree's
# artifacts stale (cargo's fingerprints compare mtimes). Seeded from ours, so only they rebuild.
REFERENCE_TARGET=$CARGO_TARGET_DIR/bench-reference
KEPT=$REFERENCE_TARGET/master-guide-$(git rev-parse --short "$REFERENCE")
if [ ! -x "$KEPT" ]; then
  if [ ! -d "$REFERENCE_TARGET/release" ]; then
    mkdir -p "$REFERENCE_TARGET" && cp -r "$CARGO_TARGET_DIR/release" "$REFERENCE_TARGET/"
  fi
  (cd "$WORK/reference-tree" && CARGO_TARGET_DIR=$REFERENCE_TARGET cargo build --release --quiet)
  cp "$REFERENCE_TARGET/release/master-guide" "$KEPT"
fi
cp "$KEPT" "$WORK/reference"
git worktree remove --force "$WORK/reference-tree"

SERVER=
start() { # start BINARY: a fresh embedded server
  local data="$WORK/data-$1-$RANDOM"
  DATA_DIR=$data JWT_SECRET=bench-secret-bench-secret-bench-secret-01 BIND_ADDR=127.0.0.1:$PORT \
    RATE_LIMITS=false LOG_FORMAT=json RUST_LOG=error "$WORK/$1" serve &
  SERVER=$!
  for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.5; done
  echo "server $1 did not start" >&2; exit 1
}
stop() { [ -n "$SERVER" ] || return 0; kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; }
trap 'stop' EXIT
URL="http://127.0.0.1:$PORT/graphql"

measure() { # measure NAME BODY -> one JSON line with rps and latencies
  oha -z "$DURATION" -c "$CONNECTIONS" -w --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -d "$2" "$URL" > "$WORK/$1.json"
  python3 - "$1" "$WORK/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
codes = d.get("statusCodeDistribution", {})
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
ok = sum(v for k, v in codes.items() if k.startswith("2"))
p = d["latencyPercentiles"]
print(json.dumps({"name": sys.argv[1], "rps": round(d["summary"]["requestsPerSec"], 1),
    "p50_ms": round(p["p50"] * 1000, 2), "p99_ms": round(p["p99"] * 1000, 2), "non_2xx": total - ok}))
PY
}

TYPENAME='{"query":"{ __typename }"}'
LOGIN='{"query":"mutation { login(input: {email: \"bench@example.com\", password: \"bench-password-1\"}) { accessToken } }"}'
RESULTS="$WORK/lines.jsonl"
: > "$RESULTS"
for round in 1 2 3; do
  for binary in reference current; do
    start "$binary"
    measure "typename-$binary-$round" "$TYPENAME" >> "$RESULTS"
    stop
  done
done
for binary in reference current; do
  start "$binary"
  curl -fs "$URL" -H 'content-type: application/json' \
    -d '{"query":"mutation { register(input: {email: \"bench@example.com\", password: \"bench-password-1\"}) { accessToken } }"}' >/dev/null
  measure "login-$binary" "$LOGIN" >> "$RESULTS"
  rss=$(awk '/VmHWM/{print $2}' "/proc/$SERVER/status")
  echo "{\"name\": \"rss-$binary\", \"peak_rss_kb\": $rss}" >> "$RESULTS"
  stop
done

mkdir -p bench/results
python3 - "$RESULTS" "$REFERENCE" "$(git rev-parse --short HEAD)" > bench/results/admission.json <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps({"reference": sys.argv[2], "current": sys.argv[3], "runs": lines}, indent=1))
PY
python3 - bench/results/admission.json <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1]))
runs = {x["name"]: x for x in r["runs"]}
print(f"\n### {{ __typename }}: {r['reference']} (before admission) vs {r['current']}\n")
print("| round | before req/s | before p99 ms | now req/s | now p99 ms | now / before |")
print("|---|---:|---:|---:|---:|---:|")
ratios = []
for i in (1, 2, 3):
    a, b = runs[f"typename-reference-{i}"], runs[f"typename-current-{i}"]
    ratios.append(b["rps"] / a["rps"])
    print(f"| {i} | {a['rps']:,.0f} | {a['p99_ms']} | {b['rps']:,.0f} | {b['p99_ms']} | {ratios[-1]:.3f} |")
print(f"\nMedian ratio now / before: {statistics.median(ratios):.3f}")
print("\n### login (argon2id, 19 MiB), 64 connections\n")
print("| binary | req/s | p50 ms | p99 ms | non-2xx | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|")
for b in ("reference", "current"):
    x = runs[f"login-{b}"]
    print(f"| {b} | {x['rps']} | {x['p50_ms']} | {x['p99_ms']} | {x['non_2xx']} | {runs[f'rss-{b}']['peak_rss_kb'] / 1024:.0f} |")
PY
