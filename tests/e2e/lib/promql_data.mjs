// A deterministic dataset for comparing PromQL answers between tricorder and Prometheus:
// counters (with a reset), gauges (negative values, a NaN sample), classic histograms, series
// that end with and without a staleness marker, sparse series with gaps longer than the
// lookback, and Scotty's instruments as its dashboard queries them.
//
// Every sample sits at a timestamp with a non-zero millisecond part, and every query the tests
// make uses whole-second times and ranges, so no sample ever falls on a window edge: Prometheus
// 2.x ([t-r, t]) and 3.x ((t-r, t]) then agree.
import { STALE } from './remote_write.mjs';

// Park-Miller: the same numbers on every run and every machine.
function rng(seed) {
  let s = seed % 2147483647;
  if (s <= 0) s += 2147483646;
  return () => (s = (s * 16807) % 2147483647) / 2147483647;
}

const BUCKETS = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'];

// dataset(t0): { series: [[labels, samples]], t0, t1 } with samples every 15 s over 100 min.
export function dataset(t0) {
  const span = 100 * 60 * 1000;
  const out = [];
  const steps = span / 15000;
  const add = (labels, fn, { every = 15000, offset = 137, from = 0, to = span } = {}) => {
    const samples = [];
    for (let t = from; t < to; t += every) {
      const v = fn(t / 15000 | 0, t);
      if (v !== undefined) samples.push([v, t0 + t + offset]);
    }
    const l = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out.push([l, samples]);
  };
  // Counters start at 0, as a process's counters do: a rate window that holds a series' first
  // sample then extrapolates to that zero under both 2.x rules (zero point, then threshold) and
  // 3.x rules (threshold, then zero point); from a non-zero start the two differ. Increments
  // differ per seed (real counters rarely tie), so that topk/bottomk have one answer: which
  // of two equal series they pick is not specified.
  const counter = (seed, incMax, resetAt = -1) => {
    const r = rng(seed);
    let c = 0;
    return (i) => {
      if (i === resetAt) c = 0;
      if (i > 0) c += Math.floor(r() * incMax) + seed / 100 + r() / 1000;
      return c;
    };
  };
  const walk = (seed, scale, base = 0) => {
    const r = rng(seed);
    let g = base;
    return () => (g += (r() - 0.5) * scale);
  };

  // Generic series.
  let seed = 1;
  for (const inst of ['i1', 'i2', 'i3']) {
    for (const method of ['GET', 'POST']) {
      add({ __name__: 'diff_requests_total', job: 'api', instance: inst, method },
        counter(seed++, 20, inst === 'i2' && method === 'GET' ? 200 : -1), { offset: 137 + seed * 11 });
    }
    add({ __name__: 'diff_gauge', job: 'api', instance: inst, zone: inst === 'i3' ? 'b' : 'a' }, walk(seed++, 10, 5), { offset: 251 });
    add({ __name__: 'diff_temp_celsius', job: 'env', instance: inst }, walk(seed++, 2, 20), { offset: 439 });
    // A classic histogram: cumulative buckets, _sum and _count.
    const r = rng(seed++);
    const counts = new Array(BUCKETS.length).fill(0);
    let sum = 0;
    const hist = [];
    for (let i = 0; i < steps; i++) {
      const n = Math.floor(r() * 10);
      for (let k = 0; k < n; k++) {
        const x = r() ** 3 * 12;
        sum += x;
        for (let b = 0; b < BUCKETS.length; b++) if (BUCKETS[b] === '+Inf' || x <= Number(BUCKETS[b])) counts[b]++;
      }
      hist.push({ counts: [...counts], sum });
    }
    BUCKETS.forEach((le, b) => add({ __name__: 'diff_latency_seconds_bucket', job: 'api', instance: inst, le }, (i) => hist[i].counts[b], { offset: 613 }));
    add({ __name__: 'diff_latency_seconds_sum', job: 'api', instance: inst }, (i) => hist[i].sum, { offset: 613 });
    add({ __name__: 'diff_latency_seconds_count', job: 'api', instance: inst }, (i) => hist[i].counts[BUCKETS.length - 1], { offset: 613 });
  }
  // A gauge with an ordinary NaN value in the middle (not a staleness marker).
  add({ __name__: 'diff_nan_gauge', job: 'env' }, (i) => (i === 200 ? NaN : i % 7), { offset: 777 });
  // Series that end at 40 min: one with a staleness marker, one without.
  add({ __name__: 'diff_ending', how: 'stale' }, (i) => (i === 160 ? STALE : i), { offset: 333, to: 161 * 15000 });
  add({ __name__: 'diff_ending', how: 'silent' }, (i) => i, { offset: 333, to: 160 * 15000 });
  // A series that starts at 50 min.
  add({ __name__: 'diff_late', job: 'env' }, (i) => i * 2, { offset: 911, from: 50 * 60 * 1000 });
  // Sparse: every 7 minutes, gaps longer than the 5-minute lookback.
  add({ __name__: 'diff_sparse', job: 'env' }, (i) => i, { offset: 521, every: 7 * 60 * 1000 });
  // Constant info-style series, and two with the same labels but different names.
  add({ __name__: 'diff_info', job: 'api', instance: 'i1', version: '1.2.3' }, () => 1, { offset: 199 });
  add({ __name__: 'diff_info', job: 'api', instance: 'i2', version: '1.3.0' }, () => 1, { offset: 199 });
  add({ __name__: 'diff_a_total', job: 'dup' }, counter(seed++, 5), { offset: 187 });
  add({ __name__: 'diff_b_total', job: 'dup' }, counter(seed++, 5), { offset: 187 });

  // Scotty's instruments, as the collector turned them into Prometheus series.
  const scottyCounters = ['log_streams_total', 'log_stream_lines_total', 'log_stream_errors_total', 'shell_sessions_total',
    'shell_session_errors_total', 'shell_session_timeouts_total', 'websocket_messages_sent_total',
    'websocket_messages_received_total', 'websocket_auth_failures_total', 'tasks_total', 'task_failures_total',
    'task_output_lines_total', 'task_output_streams_total', 'tokio_tasks_dropped_total', 'tokio_poll_count_total',
    'tokio_poll_slow_count_total', 'tokio_scheduled_count_total', 'oauth_sessions_expired_cleaned_total',
    'oauth_device_flows_total', 'oauth_web_flows_total', 'oauth_flows_failures_total', 'oauth_token_validations_total',
    'oauth_token_validations_failures_total', 'rate_limit_extractor_errors_total', 'rate_limit_hits_total', 'websocket_connections_total'];
  const scottyGauges = ['log_streams_active', 'shell_sessions_active', 'websocket_connections', 'websocket_connections_active',
    'tasks_active', 'task_output_streams_active', 'memory_rss_bytes', 'memory_virtual_bytes', 'tokio_workers_count',
    'tokio_tasks_active', 'http_requests_active', 'apps_total', 'oauth_device_flow_sessions_active',
    'oauth_web_flow_sessions_active', 'oauth_sessions_active'];
  const scottyHists = ['log_stream_duration_seconds', 'shell_session_duration_seconds', 'task_duration_seconds',
    'tokio_poll_duration_seconds', 'tokio_idle_duration_seconds', 'tokio_first_poll_delay_seconds',
    'app_services_count', 'app_last_check_age_seconds', 'oauth_token_validation_duration_seconds'];
  const res = { job: 'scotty', instance: 'scotty:21342' };
  for (const n of scottyCounters) add({ __name__: `scotty_${n}`, ...res }, counter(seed++, 30), { offset: 347 });
  for (const n of scottyGauges) add({ __name__: `scotty_${n}`, ...res }, walk(seed++, 4, n.includes('bytes') ? 5e7 : 10), { offset: 347 });
  for (const [tier, decision] of [['authenticated', 'allowed'], ['public_auth', 'denied'], ['oauth', 'allowed']]) {
    add({ __name__: 'scotty_rate_limit_requests_total', tier, decision, ...res }, counter(seed++, 30), { offset: 347 });
    add({ __name__: 'scotty_rate_limit_hits_by_tier', tier, ...res }, counter(seed++, 30), { offset: 347 });
  }
  for (const status of ['running', 'stopped', 'starting', 'creating']) {
    add({ __name__: 'scotty_apps_by_status', status, ...res }, walk(seed++, 1, 3), { offset: 347 });
  }
  const hists = [...scottyHists.map((n) => [n, {}])];
  for (const [method, route, status] of [['GET', '/api/v1/apps', '200'], ['POST', '/api/v1/apps', '500'], ['GET', '/health', '200']]) {
    add({ __name__: 'scotty_http_requests_total', method, route, status, ...res }, counter(seed++, 50), { offset: 347 });
    hists.push(['http_request_duration_seconds', { method, route, status }]);
  }
  for (const [n, extra] of hists) {
    const cs = BUCKETS.map(() => 0);
    const r = rng(seed++);
    const snap = [];
    for (let i = 0; i < steps; i++) {
      const k = Math.floor(r() * 6);
      for (let j = 0; j < k; j++) { const x = r() ** 2 * 6; for (let b = 0; b < BUCKETS.length; b++) if (BUCKETS[b] === '+Inf' || x <= Number(BUCKETS[b])) cs[b]++; }
      snap.push([...cs]);
    }
    BUCKETS.forEach((le, b) => add({ __name__: `scotty_${n}_bucket`, le, ...extra, ...res }, (i) => snap[i][b], { offset: 347 }));
    add({ __name__: `scotty_${n}_count`, ...extra, ...res }, (i) => snap[i][BUCKETS.length - 1], { offset: 347 });
  }
  return { series: out, t0, t1: t0 + span };
}

// Splits the dataset into requests ordered by time (all series' samples of one slice per
// request), as a scraper would send them: Prometheus refuses samples far behind its head.
export function* timeOrderedBatches(series, sliceMs = 5 * 60 * 1000) {
  let minT = Infinity, maxT = -Infinity;
  for (const [, s] of series) for (const [, t] of s) { minT = Math.min(minT, t); maxT = Math.max(maxT, t); }
  for (let a = minT; a <= maxT; a += sliceMs) {
    const batch = [];
    for (const [labels, s] of series) {
      const part = s.filter(([, t]) => t >= a && t < a + sliceMs);
      if (part.length) batch.push([labels, part]);
    }
    if (batch.length) yield batch;
  }
}
