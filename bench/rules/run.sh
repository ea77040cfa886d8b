#!/usr/bin/env bash
# Cost of rule evaluation: 1,000 recording rules (10 groups of 100, every 15 s) over 10,000
# series (100 metrics x 100 series), against the same server without rules. Samples keep
# arriving every 15 s during the run (text import), as a scraper would send them.
# Usage: bench/rules/run.sh [BIN] [SECONDS]   (BIN defaults to build-rel/tricorder)
set -euo pipefail
BIN=${1:-build-rel/tricorder}
SECS=${2:-120}
W=$(mktemp -d /tmp/tricorder-bench-rules-XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$W"' EXIT
python3 - "$W/rules.yml" <<'PY'
import sys
with open(sys.argv[1], 'w') as f:
    f.write('groups:\n')
    for g in range(10):
        f.write(f'  - name: bench{g}\n    interval: 15s\n    rules:\n')
        for r in range(100):
            k = g * 100 + r
            m = k % 100
            if k % 2:
                f.write(f'      - record: bench:m{m}:rate5m_{k}\n        expr: sum by (job) (rate(bench_m{m}_total[5m]))\n')
            else:
                f.write(f'      - record: bench:m{m}:max_{k}\n        expr: max by (inst) (bench_m{m}_total) * 2\n')
PY
gen() { # samples for every series at time $1 (ms)
  python3 - "$1" <<'PY'
import sys
t = int(sys.argv[1])
out = []
for m in range(100):
    for s in range(100):
        out.append(f'bench_m{m}_total{{job="j{s%10}",inst="i{s}"}} {t//1000 + s} {t}')
print('\n'.join(out))
PY
}
run() { # $1: extra flags; prints CPU seconds used during the run
  rm -rf "$W/data"
  local port=$((20000 + RANDOM % 20000))
  "$BIN" --data-dir "$W/data" --http-addr "127.0.0.1:$port" --otlp-grpc-addr 127.0.0.1:0 --otlp-http-addr 127.0.0.1:0 \
    --log-level warn $1 &
  PID=$!
  until curl -sf "127.0.0.1:$port/-/ready" >/dev/null; do sleep 0.1; done
  local now=$(( $(date +%s) * 1000 ))
  for i in $(seq 20 -1 1); do gen $((now - i * 15000)) | curl -sf --data-binary @- "127.0.0.1:$port/api/v1/import/prometheus"; done
  local c0=$(awk '{print $14+$15}' /proc/$PID/stat)
  local t0=$(date +%s)
  while (( $(date +%s) - t0 < SECS )); do
    gen $(( $(date +%s) * 1000 )) | curl -sf --data-binary @- "127.0.0.1:$port/api/v1/import/prometheus"
    sleep 15
  done
  local c1=$(awk '{print $14+$15}' /proc/$PID/stat)
  local hz=$(getconf CLK_TCK)
  echo "cpu_seconds=$(echo "scale=2; ($c1 - $c0) / $hz" | bc) wall=$SECS"
  curl -s "127.0.0.1:$port/metrics" | awk '/^tricorder_rule_group_last_duration_seconds/ {d += $2; if ($2 > m) m = $2}
    /^tricorder_rule_group_iterations_missed_total/ {x += $2} /^tricorder_rule_evaluation_failures_total/ {f += $2}
    /^tricorder_rule_evaluations_total/ {e += $2}
    END {if (e) printf "rule_evaluations=%d failures=%d missed_iterations=%d last_group_durations_sum=%.3fs max=%.3fs\n", e, f, x, d, m}' 
  curl -s "127.0.0.1:$port/api/v1/query?query=count(%7B__name__%3D~%22bench%3A.*%22%7D)"; echo
  kill $PID; wait $PID 2>/dev/null || true
}
echo "== without rules"; run "--no-default-rules"
echo "== 1000 recording rules every 15s"; run "--rule-files $W/rules.yml"
