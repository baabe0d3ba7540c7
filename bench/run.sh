#!/usr/bin/env bash
# The load driver: loads a data set, starts the release server on PostgreSQL, and drives a fixed set
# of frontend operations with oha at 64 connections, then the trivial /healthz route (the ceiling).
#
#   bench/run.sh small|large [--skip-seed]
#
# BENCH_CACHE=on (default) runs the server with its cache in front of Redis (BENCH_REDIS_URL, default
# redis://127.0.0.1:6379, under a fresh key prefix so earlier runs leave nothing warm), whole query
# responses included; BENCH_CACHE=entities keeps the entity and list caches but not whole responses
# (what a viewer's first read of a page costs: every field resolves); BENCH_CACHE=off turns the cache
# off, so every read goes to PostgreSQL.
# Needs PostgreSQL (BENCH_ADMIN_URL, default postgres://postgres:postgres@127.0.0.1:5432/postgres).
# Installs oha (cargo) when missing. Writes bench/results/<scale>-cache-<on|entities|off>.json and prints a
# Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-small}
SKIP_SEED=${2:-}
DURATION=${BENCH_DURATION:-20s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
PORT=${BENCH_PORT:-8300}
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
DB=mg_bench_${SCALE}
BASE=${ADMIN_URL%/*}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/master-guide-target}
export DATABASE_URL="$BASE/$DB" JWT_SECRET=bench-secret-bench-secret-bench-secret-01 BIND_ADDR=127.0.0.1:$PORT
export LOG_FORMAT=json RUST_LOG=warn DATA_DIR=$(mktemp -d) GRAPHQL_MAX_COMPLEXITY=5000
# One load generator on one IP stands for many clients: per-IP and per-viewer budgets would refuse it
# (BENCH_RATE_LIMITS=true measures them instead).
export RATE_LIMITS=${BENCH_RATE_LIMITS:-false}
case ${BENCH_CACHE:=on} in
  on|entities) export CACHE_ENABLED=true REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379} \
        CACHE_KEY_PREFIX=mg-bench-$(date +%s) EVENTS_CHANNEL=mg-bench-$(date +%s):events
      if [ "$BENCH_CACHE" = entities ]; then export CACHE_RESPONSES=false; fi ;;
  off) export CACHE_ENABLED=false; unset REDIS_URL ;;
  *) echo "BENCH_CACHE must be on, entities or off" >&2; exit 2 ;;
esac
BIN=$CARGO_TARGET_DIR/release/master-guide
mkdir -p bench/results

command -v oha >/dev/null || cargo install oha --locked --version 1.16.0
cargo build --release --quiet

if [ "$SKIP_SEED" = "--skip-seed" ]; then
  psql "$ADMIN_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || { echo "database $DB does not exist: run without --skip-seed first" >&2; exit 1; }
else
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  started=$(date +%s)
  "$BIN" seed --scale "$SCALE" --force
  echo "seed: $(( $(date +%s) - started )) s"
fi

"$BIN" serve & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 1; done
URL="http://127.0.0.1:$PORT/graphql"

gql() { # gql TOKEN QUERY [VARIABLES]
  curl -fs "$URL" -H 'content-type: application/json' ${1:+-H "authorization: Bearer $1"} \
    -d "$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "variables": json.loads(sys.argv[2])}))' "$2" "${3:-{\}}")"
}
pick() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

TOKEN=$(gql "" 'mutation { login(input: {email: "user1@bench.masterguide.dev", password: "bench-password"}) { accessToken } }' | pick 'd["data"]["login"]["accessToken"]')
IDENTITY=$(gql "$TOKEN" '{ me { identities { id } } }' | pick 'd["data"]["me"]["identities"][0]["id"]')
COURSE=$(gql "" '{ courses(first: 1, orderBy: {field: STUDENTS, direction: DESC}) { edges { node { id } } } }' | pick 'd["data"]["courses"]["edges"][0]["node"]["id"]')
MENTOR=$(gql "" '{ mentors(first: 1, orderBy: {field: STUDENTS, direction: DESC}) { edges { node { id } } } }' | pick 'd["data"]["mentors"]["edges"][0]["node"]["id"]')
CIRCLE=$(gql "" '{ circles(first: 1) { edges { node { id } } } }' | pick 'd["data"]["circles"]["edges"][0]["node"]["id"]')
gql "$TOKEN" 'mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id } }' "{\"c\": \"$CIRCLE\", \"i\": \"$IDENTITY\"}" >/dev/null
POST=$(gql "$TOKEN" 'query($c: ID!) { circle(id: $c) { posts(first: 1) { edges { node { id } } } } }' "{\"c\": \"$CIRCLE\"}" | pick 'd["data"]["circle"]["posts"]["edges"][0]["node"]["id"]')

body() { python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "variables": json.loads(sys.argv[2])}))' "$1" "$2"; }
declare -A QUERY AUTH
QUERY[course_page]=$(body 'query($id: ID!) { course(id: $id) { title price rating mentor { profile { name avatar } stats { courseCount studentCount averageRating } } contents { title contentType durationMinutes isFree locked } reviews(first: 5) { edges { node { rating content reviewer { id } } } } } }' "{\"id\": \"$COURSE\"}")
QUERY[course_list]=$(body '{ courses(first: 20, orderBy: {field: RATING, direction: DESC}) { edges { node { id title price rating reviewCount mentor { profile { name } } } } } }' '{}')
QUERY[mentor_page]=$(body 'query($id: ID!) { mentor(id: $id) { profile { name bio skills hourlyRate } stats { courseCount studentCount averageRating reviewCount } courses(first: 10) { id title price rating } reviews(first: 5) { edges { node { rating content } } } } }' "{\"id\": \"$MENTOR\"}")
QUERY[circle_feed]=$(body 'query($id: ID!) { circle(id: $id) { posts(first: 20) { edges { node { id content likeCount commentCount viewerHasLiked author { profile { name avatar } } } } } } }' "{\"id\": \"$CIRCLE\"}")
AUTH[circle_feed]=1
QUERY[notifications]=$(body '{ unreadNotificationCount notifications(first: 20) { edges { node { title notificationType isRead createdAt } } } }' '{}')
AUTH[notifications]=1
QUERY[like_post]=$(body 'mutation($id: ID!) { likePost(postId: $id) { likeCount viewerHasLiked } }' "{\"id\": \"$POST\"}")
AUTH[like_post]=1

statements() { curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^db_statements_executed /{print $2}'; }
RESULTS=bench/results/$SCALE-cache-$BENCH_CACHE.json
echo "{" > "$RESULTS"
run() { # run NAME -- oha args...
  local name=$1; shift
  local before after
  before=$(statements)
  oha -z "$DURATION" -c "$CONNECTIONS" -w --no-tui --output-format json "$@" > "/tmp/oha-$name.json"
  after=$(statements)
  python3 - "$name" "$before" "$after" "/tmp/oha-$name.json" >> "$RESULTS" <<'PY'
import json, sys
name, before, after, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
d = json.load(open(path))
s = d["summary"]
codes = d.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
p = d["latencyPercentiles"]
print(json.dumps(name) + ": " + json.dumps({
    "rps": round(s["requestsPerSec"], 1),
    "p50_ms": round(p["p50"] * 1000, 2),
    "p99_ms": round(p["p99"] * 1000, 2),
    "errors": total - ok,
    "requests": total,
    "sql_per_request": round((after - before) / max(total, 1), 2),
}) + ",")
PY
}
for name in course_page course_list mentor_page circle_feed notifications like_post; do
  args=(-m POST -H 'content-type: application/json' -d "${QUERY[$name]}")
  [ -n "${AUTH[$name]:-}" ] && args+=(-H "authorization: Bearer $TOKEN")
  run "$name" "${args[@]}" "$URL"
done
run ceiling_healthz "http://127.0.0.1:$PORT/healthz"
RSS=$(awk '/VmHWM/{print $2}' /proc/$SERVER/status)
echo "\"server_peak_rss_kb\": $RSS" >> "$RESULTS"
echo "}" >> "$RESULTS"

python3 - "$RESULTS" "$SCALE" "$BENCH_CACHE" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ceiling = r["ceiling_healthz"]["rps"]
print(f"\n### {sys.argv[2]} data set, cache {sys.argv[3]}\n")
print("| operation | req/s | % of ceiling | p50 ms | p99 ms | errors | SQL/request |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, v in r.items():
    if not isinstance(v, dict):
        continue
    print(f"| {name} | {v['rps']} | {100 * v['rps'] / ceiling:.0f} % | {v['p50_ms']} | {v['p99_ms']} | {v['errors']} | {v['sql_per_request']} |")
print(f"\nServer peak RSS: {r['server_peak_rss_kb'] / 1024:.0f} MB")
PY
