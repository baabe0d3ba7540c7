#!/usr/bin/env bash
# Side by side with PostGraphile v4 over the same database (issue 18).
#
#   bench/compare.sh [--skip-seed]
#
# Seeds `master-guide seed --scale medium` into its own database (mg_bench_compare), installs
# PostGraphile v4 and its two plugins from npm (bench/peer) and wrk (Debian) when missing, builds
# the release binary, and runs bench/compare.py: every page in both APIs, the same rows checked on
# a sample, then loaded with ids rotating over hundreds of values (Zipf skew) and once cold.
# Knobs: BENCH_ADMIN_URL, BENCH_DURATION (15s), BENCH_CONNECTIONS (64), BENCH_DISTINCT (300),
# BENCH_PAGES (comma list), BENCH_MODES (default,entities,off). Writes bench/results/compare.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
DB=mg_bench_compare
# Both servers talk to PostgreSQL over plain TCP, as on a private network: node-postgres (under
# PostGraphile) does not use TLS unless asked, while sqlx prefers it when the server offers it
# (Debian's PostgreSQL does), which put TLS on our side of every round trip only.
export DATABASE_URL="${ADMIN_URL%/*}/$DB?sslmode=disable" JWT_SECRET=bench-secret-bench-secret-bench-secret-01
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/master-guide-target}
export BIN=$CARGO_TARGET_DIR/release/master-guide

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -x bench/peer/node_modules/.bin/postgraphile ] || (cd bench/peer && npm install --no-audit --no-fund)
cargo build --release --quiet

if [ "${1:-}" = "--skip-seed" ]; then
  psql "$ADMIN_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || { echo "database $DB does not exist: run without --skip-seed first" >&2; exit 1; }
else
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  started=$(date +%s)
  "$BIN" seed --scale medium --force
  echo "seed: $(( $(date +%s) - started )) s"
fi
# The viewer's feed in PostGraphile: a SQL function in a schema of its own (PostGraphile has no
# viewer without its JWT set-up; the function takes the user id the token would carry).
psql "$DATABASE_URL" -q <<'SQL'
CREATE SCHEMA IF NOT EXISTS peer;
CREATE OR REPLACE FUNCTION peer.viewer_feed(viewer uuid) RETURNS SETOF public.posts LANGUAGE sql STABLE AS $$
  SELECT p.* FROM public.posts p
  WHERE p.status = 'active'
    AND p.circle_id IN (SELECT m.circle_id FROM public.circle_members m WHERE m.user_id = viewer AND m.is_active)
  ORDER BY p.created_at DESC, p.id DESC
$$;
SQL
python3 bench/compare.py
