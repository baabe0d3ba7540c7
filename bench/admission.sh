#!/usr/bin/env bash
# The admission path's cost and sign-in under load, side by side with a reference commit.
#
#   bench/admission.sh [REFERENCE]     REFERENCE: a commit before src/admission/ (default 4976f38)
#
# Builds the release binary of this tree and of REFERENCE (in a git worktree, same target dir),
# runs each on the embedded defaults (SQLite, no Redis) with rate limits off (one load generator
# stands for many clients), and measures with oha at 64 connections:
#   - `{ __typename }` over POST /graphql: what admission adds to the cheapest operation, in
#     BENCH_ROUNDS (5) alternating rounds per binary (the VM's speed drifts; alternating cancels most
#     of it), server and oha pinned to a core each: saturated (req/s) and at a fixed rate
#     (BENCH_RATE), where the server's own CPU time per request (from /proc) is admission's cost;
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

# The `{ __typename }` rounds pin the server to one core and oha to another (with 2 or more), so
# the two do not trade places on the cores between rounds. The login server runs unpinned (hashing
# uses every core); its oha stays on core 1.
PIN_SERVER=() PIN_LOAD=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then PIN_SERVER=(taskset -c 0) PIN_LOAD=(taskset -c 1); fi
SERVER=
start() { # start BINARY [pinned]: a fresh embedded server
  local data="$WORK/data-$1-$RANDOM" pin=()
  [ "${2:-}" = pinned ] && pin=("${PIN_SERVER[@]}")
  DATA_DIR=$data JWT_SECRET=bench-secret-bench-secret-bench-secret-01 BIND_ADDR=127.0.0.1:$PORT \
    RATE_LIMITS=false LOG_FORMAT=json RUST_LOG=error "${pin[@]}" "$WORK/$1" serve &
  SERVER=$!
  for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.5; done
  echo "server $1 did not start" >&2; exit 1
}
stop() { [ -n "$SERVER" ] || return 0; kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; }
trap 'stop' EXIT
URL="http://127.0.0.1:$PORT/graphql"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

measure() { # measure NAME BODY [oha options...] -> one JSON line: rps, latencies, server CPU per request
  local before after name=$1 body=$2
  shift 2
  before=$(cpu_ticks)
  "${PIN_LOAD[@]}" oha -z "$DURATION" -c "$CONNECTIONS" -w --no-tui --output-format json -m POST "$@" \
    -H 'content-type: application/json' -d "$body" "$URL" > "$WORK/$name.json"
  after=$(cpu_ticks)
  python3 - "$name" "$WORK/$name.json" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
codes = d.get("statusCodeDistribution", {})
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
ok = sum(v for k, v in codes.items() if k.startswith("2"))
p = d["latencyPercentiles"]
cpu_us = int(sys.argv[3]) / int(sys.argv[4]) * 1e6
print(json.dumps({"name": sys.argv[1], "rps": round(d["summary"]["requestsPerSec"], 1),
    "p50_ms": round(p["p50"] * 1000, 2), "p99_ms": round(p["p99"] * 1000, 2), "non_2xx": total - ok,
    "server_cpu_us_per_request": round(cpu_us / max(total, 1), 2)}))
PY
}

TYPENAME='{"query":"{ __typename }"}'
LOGIN='{"query":"mutation { login(input: {email: \"bench@example.com\", password: \"bench-password-1\"}) { accessToken } }"}'
RESULTS="$WORK/lines.jsonl"
: > "$RESULTS"
ROUNDS=${BENCH_ROUNDS:-5}
# Two measures per round and binary: as many requests as the pinned server answers (req/s), and a
# fixed rate both serve without queueing (BENCH_RATE, 30,000 req/s), where the server's CPU time
# per request is what admission costs, free of the load generator's share and of the feedback a
# saturated server's wake-ups add to the kernel's.
RATE=${BENCH_RATE:-30000}
for round in $(seq 1 "$ROUNDS"); do
  for binary in reference current; do
    start "$binary" pinned
    measure "typename-$binary-$round" "$TYPENAME" >> "$RESULTS"
    measure "typename-rate-$binary-$round" "$TYPENAME" -q "$RATE" >> "$RESULTS"
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
python3 - "$RESULTS" "$REFERENCE" "$(git describe --always --dirty)" "$ROUNDS" > bench/results/admission.json <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps({"reference": sys.argv[2], "current": sys.argv[3], "rounds": int(sys.argv[4]), "runs": lines}, indent=1))
PY
python3 - bench/results/admission.json <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1]))
runs = {x["name"]: x for x in r["runs"]}
print(f"\n### {{ __typename }}: {r['reference']} (before admission) vs {r['current']}\n")
print("| round | before req/s | before p99 ms | before CPU µs/req | now req/s | now p99 ms | now CPU µs/req | now / before (req/s) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
ratios, cpu = [], {"reference": [], "current": []}
for i in range(1, r.get("rounds", 3) + 1):
    a, b = runs[f"typename-reference-{i}"], runs[f"typename-current-{i}"]
    ratios.append(b["rps"] / a["rps"])
    cpu["reference"].append(a["server_cpu_us_per_request"])
    cpu["current"].append(b["server_cpu_us_per_request"])
    print(f"| {i} | {a['rps']:,.0f} | {a['p99_ms']} | {a['server_cpu_us_per_request']} | {b['rps']:,.0f} | {b['p99_ms']} "
          f"| {b['server_cpu_us_per_request']} | {ratios[-1]:.3f} |")
print(f"\nMedian ratio now / before (req/s): {statistics.median(ratios):.3f}")
fixed = {b: [runs[f"typename-rate-{b}-{i}"]["server_cpu_us_per_request"] for i in range(1, r.get("rounds", 3) + 1)]
         for b in ("reference", "current")}
print(f"\nAt a fixed {runs['typename-rate-current-1']['rps']:,.0f} req/s, server CPU per request (median of "
      f"{len(fixed['current'])} rounds): before {statistics.median(fixed['reference'])} µs "
      f"{fixed['reference']}, now {statistics.median(fixed['current'])} µs {fixed['current']}: "
      f"now / before {statistics.median(fixed['current']) / statistics.median(fixed['reference']):.3f}")
print("\n### login (argon2id, 19 MiB), 64 connections\n")
print("| binary | req/s | p50 ms | p99 ms | non-2xx | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|")
for b in ("reference", "current"):
    x = runs[f"login-{b}"]
    print(f"| {b} | {x['rps']} | {x['p50_ms']} | {x['p99_ms']} | {x['non_2xx']} | {runs[f'rss-{b}']['peak_rss_kb'] / 1024:.0f} |")
PY
