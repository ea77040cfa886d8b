#!/bin/sh
# Differential test: the same data in Debian's prometheus (2.42, via promtool's OpenMetrics
# backfill) and in tricorder's engine, the same ~1400 queries (every function and operator,
# instant and range), results compared series by series with Prometheus's 1e-6 tolerance.
#   tests/conformance/diff/run.sh [build-dir]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../../build}
work=$(mktemp -d /tmp/promql-diff-XXXXXX)
port=$((20000 + $$ % 20000))
python3 "$here/gen.py" "$work"
promtool tsdb create-blocks-from openmetrics "$work/data.om" "$work/promdb" > /dev/null
printf 'global:\n  scrape_interval: 1h\n' > "$work/prom.yml"
prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/promdb" \
  --storage.tsdb.retention.time=100y --web.listen-address=127.0.0.1:$port > "$work/prom.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 50); do curl -sf "http://127.0.0.1:$port/-/ready" > /dev/null && break; sleep 0.2; done
python3 "$here/cmp.py" "$work" "$build/tests/promql_diff_cli" "http://127.0.0.1:$port"
