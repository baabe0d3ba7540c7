#!/usr/bin/env bash
# The search bench, on the embedded tantivy index over PostgreSQL: `seed --scale search` (100k
# courses, 50k masters, 5k circles, Chinese and English text), then
#   1. the first start's index build (the server builds a missing index itself) and a full
#      `master-guide reindex` with the server stopped, timed;
#   2. indexing throughput through the outbox: every course queued at once (as a bulk edit would),
#      timed until the outbox is empty;
#   3. searches at 64 connections (oha) per collection, each request drawing its query from a
#      list of realistic ones (Chinese words, pinyin full and initials, English, typos, prefixes,
#      two-word queries). Search responses are never cached whole, so every request is a search.
#
#   bench/search.sh [--skip-seed]
#
# Needs PostgreSQL (BENCH_ADMIN_URL, default postgres://postgres:postgres@127.0.0.1:5432/postgres).
# Installs oha (cargo) when missing. Writes bench/results/search.json and prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_SEED=${1:-}
DURATION=${BENCH_DURATION:-20s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
PORT=${BENCH_PORT:-8310}
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
DB=mg_bench_search
BASE=${ADMIN_URL%/*}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/master-guide-target}
export DATABASE_URL="$BASE/$DB" JWT_SECRET=bench-secret-bench-secret-bench-secret-01 BIND_ADDR=127.0.0.1:$PORT
export LOG_FORMAT=json RUST_LOG=warn DATA_DIR=$(mktemp -d) RATE_LIMITS=false GRAPHQL_MAX_COMPLEXITY=5000
unset REDIS_URL ELASTICSEARCH_URL SEARCH_INDEX
BIN=$CARGO_TARGET_DIR/release/master-guide
RESULTS=bench/results/search.json
mkdir -p bench/results

command -v oha >/dev/null || cargo install oha --locked --version 1.16.0
cargo build --release --quiet

if [ "$SKIP_SEED" = "--skip-seed" ]; then
  psql "$ADMIN_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || { echo "database $DB does not exist: run without --skip-seed first" >&2; exit 1; }
else
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  "$BIN" seed --scale search --force
fi
DOCS=$(psql "$DATABASE_URL" -Atc "SELECT
  (SELECT count(*) FROM courses WHERE status = 'published')
  + (SELECT count(*) FROM user_identities WHERE identity_type = 'master' AND status = 'active')
  + (SELECT count(*) FROM circles WHERE status = 'active')")
URL="http://localhost:$PORT/graphql"
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null || true' EXIT
serve() { "$BIN" serve & SERVER=$!; for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.5; done; }
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
indexed() { # the index answers (not the database fallback)
  curl -fs "$URL" -H 'content-type: application/json' -d '{"query":"{ searchCourses(query: \"\", first: 1) { degraded } }"}' \
    | grep -q '"degraded":false'
}
now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 2))' "$(now)" "$1"; }

# 1. The first start builds the index; then a full reindex with the server stopped.
started=$(now)
serve
until indexed; do sleep 0.2; done
BUILD=$(elapsed "$started")
stop
started=$(now)
"$BIN" reindex > /dev/null
REINDEX=$(elapsed "$started")

# 2. Outbox throughput: every published course queued at once.
serve
until indexed; do sleep 0.2; done
QUEUED=$(psql "$DATABASE_URL" -Atc "INSERT INTO search_outbox (collection, document_id, created_at)
  SELECT 'courses', id, now() FROM courses WHERE status = 'published'" | awk '{print $3}')
started=$(now)
until [ "$(psql "$DATABASE_URL" -Atc 'SELECT count(*) FROM search_outbox')" = 0 ]; do sleep 0.1; done
DRAIN=$(elapsed "$started")

# 3. Searches: the query drawn per request from the list (oha's --rand-regex-url).
url_for() { # url_for DOCUMENT QUERY...: a GET URL whose variables.q is a regex alternation
  python3 - "$URL" "$@" <<'PY'
import sys
url, document, queries = sys.argv[1], sys.argv[2], sys.argv[3:]
def enc(text):  # percent-encode everything but letters and digits (nothing else is special)
    return "".join(c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
q = "(" + "|".join(enc(x) for x in queries) + ")"
variables = enc('{"q":"') + q + enc('"}')
# oha's --rand-regex-url: the URL is a regex (no dots in it: the host is localhost).
print(url + r"\?query=" + enc(document) + "&variables=" + variables)
PY
}
COURSES_Q='query($q: String!) { searchCourses(query: $q, first: 20) { totalCount facets { domain { value count } difficulty { value count } } edges { score highlights { field snippet } node { id title price rating mentor { profile { name } } } } } }'
MENTORS_Q='query($q: String!) { searchMentors(query: $q, first: 20) { totalCount facets { domain { value count } } edges { highlights { field snippet } node { id profile { name skills hourlyRate } } } } }'
CIRCLES_Q='query($q: String!) { searchCircles(query: $q, first: 20) { totalCount edges { highlights { field snippet } node { id name memberCount } } } }'
COURSE_TERMS=(数据库 shujuku sjk postgresql postg pythn reakt "postgre sql" "rust 编程" 机器学习 jiqixuexi react 前端 "烘焙 入门"
  吉他 jita 理财 "python 数据" pytho kubernetes kubernets 查询优化 微服务 面试 mianshi "摄影 进阶" 日语 英语口语
  masterclass beginners figma "design for" 家常菜 jcc 钢琴 "go 微服" 写作 从零开始 "sql 查询" 职业规划 zhiye)
MENTOR_TERMS=(王伟 wangwei 李 zhang 陈静 chenjing Alice emma grac 数据库 rust 理财 摄影 sheying 健身 "go 微服务" 钢琴
  "patient teacher" 讲解 jiangjie 面试技巧 kubernetes kubernets 日语 riyu)
CIRCLE_TERMS=(交流圈 "数据库 交流" rust 吉他 gangqin 写作 yingyu "英语口语" 烘焙 hongbei 理财 "前端 react" 摄影 sheyin
  职业 "questions about" 互相帮助 hxbz)

echo "{" > "$RESULTS"
run() { # run NAME URL-REGEX
  oha -z "$DURATION" -c "$CONNECTIONS" -w --no-tui --output-format json --rand-regex-url "$2" > "/tmp/oha-$1.json"
  python3 - "$1" "/tmp/oha-$1.json" >> "$RESULTS" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
codes = d.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
p = d["latencyPercentiles"]
print(json.dumps(name) + ": " + json.dumps({"rps": round(d["summary"]["requestsPerSec"], 1),
    "p50_ms": round(p["p50"] * 1000, 2), "p99_ms": round(p["p99"] * 1000, 2), "errors": total - ok, "requests": total}) + ",")
PY
}
# First reads: each query once, one at a time, before any other search (nothing of it is kept yet:
# no automaton built, no word's matches kept). What the caches below save is what a new query pays.
first_reads() { # first_reads NAME DOCUMENT QUERY...
  local name=$1 document=$2; shift 2
  for q in "$@"; do
    curl -fs -o /dev/null -w '%{time_total}\n' -G "$URL" --data-urlencode "query=$document" \
      --data-urlencode "variables={\"q\":\"$q\"}"
  done | python3 -c '
import json, sys
ms = sorted(float(x) * 1000 for x in sys.stdin)
print(json.dumps(sys.argv[1] + "_first") + ": " + json.dumps({"queries": len(ms), "p50_ms": round(ms[len(ms) // 2], 2),
    "max_ms": round(ms[-1], 2)}) + ",")' "$name" >> "$RESULTS"
}
first_reads search_courses "$COURSES_Q" "${COURSE_TERMS[@]}"
first_reads search_mentors "$MENTORS_Q" "${MENTOR_TERMS[@]}"
first_reads search_circles "$CIRCLES_Q" "${CIRCLE_TERMS[@]}"
# A sample of each list through curl first: answered from the index, no errors.
for q in "数据库" "sjk" "pythn" "kubernets" "postg"; do
  body=$(curl -fs -G "$URL" --data-urlencode "query=$COURSES_Q" --data-urlencode "variables={\"q\":\"$q\"}")
  echo "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "errors" not in d, d; n=d["data"]["searchCourses"]["totalCount"]; print("  " + sys.argv[1] + ": " + str(n) + " courses")' "$q"
done
run search_courses "$(url_for "$COURSES_Q" "${COURSE_TERMS[@]}")"
run search_mentors "$(url_for "$MENTORS_Q" "${MENTOR_TERMS[@]}")"
run search_circles "$(url_for "$CIRCLES_Q" "${CIRCLE_TERMS[@]}")"
RSS=$(awk '/VmHWM/{print $2}' /proc/$SERVER/status)
INDEX_MB=$(du -sm "$DATA_DIR/search" | cut -f1)
cat >> "$RESULTS" <<EOF
"documents": $DOCS,
"first_build_s": $BUILD,
"reindex_s": $REINDEX,
"outbox_documents": $QUEUED,
"outbox_drain_s": $DRAIN,
"index_mb": $INDEX_MB,
"server_peak_rss_kb": $RSS
}
EOF
stop

python3 - "$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\n### search, {r['documents']} documents (tantivy, PostgreSQL)\n")
print("| query | req/s | p50 ms | p99 ms | errors |")
print("|---|---:|---:|---:|---:|")
for name in ("search_courses", "search_mentors", "search_circles"):
    v = r[name]
    print(f"| {name} | {v['rps']} | {v['p50_ms']} | {v['p99_ms']} | {v['errors']} |")
print("\nFirst read of each query (one client, nothing of it kept yet):")
for name in ("search_courses", "search_mentors", "search_circles"):
    v = r[name + "_first"]
    print(f"- {name}: {v['queries']} queries, p50 {v['p50_ms']} ms, slowest {v['max_ms']} ms")
print(f"\nFirst build (server start, empty index): {r['first_build_s']:.1f} s "
      f"({r['documents'] / r['first_build_s']:.0f} documents/s); `master-guide reindex`: {r['reindex_s']:.1f} s; "
      f"outbox: {r['outbox_documents']} courses in {r['outbox_drain_s']:.1f} s "
      f"({r['outbox_documents'] / r['outbox_drain_s']:.0f} documents/s); index {r['index_mb']} MB; "
      f"server peak RSS {r['server_peak_rss_kb'] / 1024:.0f} MB")
PY
