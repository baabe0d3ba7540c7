#!/usr/bin/env bash
# The uploads bench on the embedded defaults (SQLite, the local store under a fresh DATA_DIR):
#   1. upload throughput: 5 MB files PUT to their createUpload tickets' URLs, 1 and 4 at a time;
#   2. the completion check of a 5 MB image (a 1300x1300 RGB PNG of noise: it does not compress):
#      decode, dimensions, the re-encoded original and its 320 and 1280 px copies, one at a time
#      and 4 at once; and of a 5 MB PDF (sniffed from its first bytes and copied in the store).
#
#   bench/uploads.sh
#
# Knobs: BENCH_FILES (40). Writes bench/results/uploads.json and prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/master-guide-target}
PORT=${BENCH_PORT:-8320}
DATA=$(mktemp -d)
export BIND_ADDR=127.0.0.1:$PORT DATA_DIR=$DATA RATE_LIMITS=false LOG_FORMAT=json RUST_LOG=warn
export JWT_SECRET=bench-secret-bench-secret-bench-secret-01
unset DATABASE_URL REDIS_URL STORAGE_URL
BIN=$CARGO_TARGET_DIR/release/master-guide
cargo build --release --quiet
"$BIN" serve > "$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
BENCH_URL="http://127.0.0.1:$PORT" SERVER_PID=$SERVER python3 bench/uploads.py
