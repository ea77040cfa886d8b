#!/bin/bash
# Trace-store benchmark (issue 5): fills a fresh tricorder with Scotty-shaped traces over
# OTLP/HTTP protobuf, then reports spans per CPU-second of the server, bytes per span on disk
# and p50/p95 of the Jaeger searches over the full store, as a client sees them and, once the
# server has stopped, as the store alone answers them. Not part of the test run.
# usage: bench/traces/run.sh [SPANS=1000000] [BUILD_DIR=build] [SEARCH_ROUNDS=100] [CLIENTS=1]
# (CLIENTS concurrent senders share the SPANS; with several, --trace-sync full batches their
# exports into shared commits: the transaction count is printed. Extra server flags can be
# given as environment, e.g. TRICORDER_TRACE_SYNC=normal.)
# (use an optimised build). The machine's load is printed with the figures: spans per
# CPU-second and client latencies both suffer when other work shares the cores.
set -euo pipefail
SPANS=${1:-1000000}
ROUNDS=${3:-100}
CLIENTS=${4:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${2:-$ROOT/build}" && pwd)
WORK=$(mktemp -d /tmp/tricorder-bench-traces.XXXXXX)
PID=; trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
gcc -O2 -o "$WORK/loadgen" "$ROOT/bench/traces/loadgen.c" -I"$BUILD/proto" "$BUILD/libtr_proto.a" -lprotobuf-c
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port); GRPC=$(port); OTLP=$(port)
"$BUILD/tricorder" --data-dir "$WORK/data" --http-addr 127.0.0.1:$HTTP --otlp-grpc-addr 127.0.0.1:$GRPC \
  --otlp-http-addr 127.0.0.1:$OTLP --log-level warn &
PID=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$HTTP/healthz >/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; }   # utime + stime in clock ticks
TCK=$(getconf CLK_TCK)
echo "load before ingest: $(cut -d' ' -f1-3 /proc/loadavg)"
C0=$(cpu)
LG=()
for i in $(seq "$CLIENTS"); do
  "$WORK/loadgen" 127.0.0.1 $OTLP $((SPANS / CLIENTS)) 600 7200 "$WORK/ids$i.txt" & LG+=($!)
done
wait "${LG[@]}"
cat "$WORK"/ids[0-9]*.txt > "$WORK/ids.txt"
C1=$(cpu)
echo "load after ingest:  $(cut -d' ' -f1-3 /proc/loadavg)"
STORED=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '/^tricorder_traces_spans_stored_total/ {print $2}')
TX=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '/^tricorder_traces_transaction_duration_seconds_count/ {print $2}')
echo "$CLIENTS client(s): $TX write transactions"
DISK=$(du -cb "$WORK"/data/traces.db* | tail -1 | cut -f1)
awk -v s="$STORED" -v c0="$C0" -v c1="$C1" -v t="$TCK" -v d="$DISK" 'BEGIN {
  cs = (c1 - c0) / t;
  printf "stored %d spans; server CPU %.1f s => %.0f spans per CPU-second\n", s, cs, s / cs;
  printf "disk %.1f MB (traces.db + wal) => %.0f bytes per span\n", d / 1e6, d / s }'
node "$ROOT/bench/traces/search.mjs" http://127.0.0.1:$HTTP "$WORK/ids.txt" "$ROUNDS"
echo "load after searches: $(cut -d' ' -f1-3 /proc/loadavg)"
kill $PID && wait $PID || true
gcc -O2 -o "$WORK/store_search" "$ROOT/bench/traces/store_search.c" -I"$ROOT/src" -I"$BUILD/proto" \
  "$BUILD/libtr_traces.a" "$BUILD/libtr_util.a" "$BUILD/libtr_proto.a" -lsqlite3 -lzstd -lprotobuf-c -lpthread -lm
"$WORK/store_search" "$WORK/data" "$WORK/ids.txt" "$ROUNDS" 2> >(grep -v 'level=info' >&2)
echo "load after store searches: $(cut -d' ' -f1-3 /proc/loadavg)"
