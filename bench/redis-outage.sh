#!/usr/bin/env bash
# Throughput with Redis up and with Redis down, side by side (issue 16: "0 failed requests and at
# least half the normal throughput while Redis is down").
#
#   bench/redis-outage.sh
#
# Builds the release binary, starts a redis-server of its own on a spare port and the server on
# the embedded SQLite defaults with REDIS_URL pointing at it and the demo data seeded, then
# measures with oha at 64 connections for BENCH_DURATION (default 10s) each:
#   1. Redis up;
#   2. Redis killed (the server keeps running: the link's breaker sends every call to its
#      fallback);
#   3. Redis started again (the server picks it up by itself).
# Each phase runs two documents: the course catalogue's first page with mentors (entity reads
# through both cache levels; whole responses off, so the entity levels are what is measured) and
# `{ __typename }` (admission and the rate limiter, which asks Redis for every anonymous call).
# Rate limits are on with a wide-open anonymous rule, so the limiter's Redis path is exercised.
# One fixed document per run: this measures the request path around Redis, not page variety.
# Writes bench/results/redis-outage.json and prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
PORT=${BENCH_PORT:-8320}
REDIS_PORT=${BENCH_REDIS_PORT:-6391}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/master-guide-target}
command -v oha >/dev/null || cargo install oha --locked --version 1.16.0
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }

WORK=$(mktemp -d)
cargo build --release --quiet
BIN=$CARGO_TARGET_DIR/release/master-guide
REDIS=
SERVER=
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
  REDIS=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && return; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}
stop_redis() { [ -n "$REDIS" ] || return 0; kill "$REDIS" 2>/dev/null || true; wait "$REDIS" 2>/dev/null || true; REDIS=; }
stop_server() { [ -n "$SERVER" ] || return 0; kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; }
trap 'stop_server; stop_redis' EXIT

export DATA_DIR=$WORK/data JWT_SECRET=bench-secret-bench-secret-bench-secret-01 BIND_ADDR=127.0.0.1:$PORT \
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT CACHE_RESPONSES=false RATE_ANONYMOUS_IP=1000000000/1m \
  LOG_FORMAT=json RUST_LOG=error
start_redis
"$BIN" seed >/dev/null
"$BIN" serve &
SERVER=$!
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.5; done
URL="http://127.0.0.1:$PORT/graphql"

measure() { # measure NAME BODY -> one JSON line with rps, latencies and failures
  oha -z "$DURATION" -c "$CONNECTIONS" -w --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -d "$2" "$URL" > "$WORK/$1.json"
  python3 - "$1" "$WORK/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
codes = d.get("statusCodeDistribution", {})
errors = sum(d.get("errorDistribution", {}).values())
ok = sum(v for k, v in codes.items() if k.startswith("2"))
p = d["latencyPercentiles"]
print(json.dumps({"name": sys.argv[1], "rps": round(d["summary"]["requestsPerSec"], 1),
    "p50_ms": round(p["p50"] * 1000, 2), "p99_ms": round(p["p99"] * 1000, 2),
    "failed": sum(codes.values()) + errors - ok}))
PY
}
# A failed GraphQL answer is HTTP 200 with errors: count those too, on a sample.
graphql_errors() { # graphql_errors BODY -> how many of 200 sequential answers carry errors
  local n=0
  for _ in $(seq 1 200); do
    curl -fs "$URL" -H 'content-type: application/json' -d "$1" | grep -q '"errors"' && n=$((n + 1))
  done
  echo "$n"
}

CATALOGUE='{"query":"{ courses(first: 10) { edges { node { id title price mentor { profile { name } } } } } }"}'
TYPENAME='{"query":"{ __typename }"}'
RESULTS=$WORK/lines.jsonl
: > "$RESULTS"
for phase in up down back; do
  case $phase in
    down) stop_redis; sleep 1 ;;
    back) start_redis; for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/readyz" | grep -q '"redis":"up"' && break; sleep 0.2; done ;;
  esac
  measure "catalogue-$phase" "$CATALOGUE" >> "$RESULTS"
  measure "typename-$phase" "$TYPENAME" >> "$RESULTS"
  echo "{\"name\": \"errors-$phase\", \"graphql_errors_of_200\": $(graphql_errors "$CATALOGUE")}" >> "$RESULTS"
  echo "{\"name\": \"ready-$phase\", \"readyz\": $(curl -fs "http://127.0.0.1:$PORT/readyz")}" >> "$RESULTS"
done

mkdir -p bench/results
python3 - "$RESULTS" "$(git rev-parse --short HEAD)" > bench/results/redis-outage.json <<'PY'
import json, sys
print(json.dumps({"commit": sys.argv[2], "runs": [json.loads(l) for l in open(sys.argv[1])]}, indent=1))
PY
python3 - bench/results/redis-outage.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
runs = {x["name"]: x for x in r["runs"]}
print(f"\n### Redis up, down and back ({r['commit']}), 64 connections\n")
print("| phase | /readyz | catalogue req/s | p99 ms | failed | `{ __typename }` req/s | p99 ms | failed | GraphQL errors in 200 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for phase in ("up", "down", "back"):
    c, t = runs[f"catalogue-{phase}"], runs[f"typename-{phase}"]
    ready = runs[f"ready-{phase}"]["readyz"]["status"]
    errors = runs[f"errors-{phase}"]["graphql_errors_of_200"]
    print(f"| {phase} | {ready} | {c['rps']:,.0f} | {c['p99_ms']} | {c['failed']} | {t['rps']:,.0f} | {t['p99_ms']} | {t['failed']} | {errors} |")
up, down = runs["catalogue-up"]["rps"], runs["catalogue-down"]["rps"]
print(f"\nCatalogue with Redis down / up: {down / up:.2f}")
PY
