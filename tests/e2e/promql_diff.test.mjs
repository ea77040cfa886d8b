// PromQL side by side: the same samples are remote-written to tricorder and to Debian's
// Prometheus (2.42), then several hundred queries (data/promql_diff.queries, Scotty's dashboard
// and the alert rules of its documentation) are asked of both, as instant and range queries,
// and the answers compared: result type, series, labels, timestamps, values, error types.
// The dataset keeps every sample off window edges (see lib/promql_data.mjs), where 2.x and 3.x
// window rules differ. promtool, as a client, must print the same for both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, freePort, sleep } from './lib/tricorder.mjs';
import { remoteWrite } from './lib/remote_write.mjs';
import { dataset, timeOrderedBatches } from './lib/promql_data.mjs';
import { expand, diff } from './lib/promql_compare.mjs';

const PROM = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const SHARED = process.env.TR_SHARED_DIR || new URL('../../../shared', import.meta.url).pathname;
const skip = !existsSync(PROM) && `no ${PROM} (apt-get install prometheus)`;
const MIN_SCORE = Number(process.env.TR_PROMQL_DIFF_MIN || 1);

let tr, prom, promUrl, promDir, data;

function queriesFromFile() {
  const text = readFileSync(new URL('./data/promql_diff.queries', import.meta.url), 'utf8');
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).flatMap(expand);
}

// Every expr of a Grafana dashboard, with Grafana's interval variables as the panels resolve
// them at a 15 s step over one hour.
function dashboardQueries(file) {
  const d = JSON.parse(readFileSync(file, 'utf8'));
  const out = [];
  const walk = (ps) => { for (const p of ps || []) { for (const t of p.targets || []) if (t.expr) out.push(t.expr); walk(p.panels); } };
  walk(d.panels);
  return out.map((e) => e.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '1h'));
}

// The PromQL examples and alert expressions of Scotty's observability documentation.
const SCOTTY_DOC_QUERIES = [
  'sum by (status) (rate(scotty_http_requests_total[5m]))',
  'histogram_quantile(0.95, rate(scotty_http_request_duration_seconds_bucket[5m]))',
  'rate(scotty_websocket_connections_total[5m])',
  'deriv(scotty_memory_rss_bytes[10m])',
  'scotty_log_streams_active +\nscotty_shell_sessions_active +\nscotty_websocket_connections_active +\nscotty_tasks_active',
  '# All active resources\nscotty_log_streams_active + scotty_shell_sessions_active',
  'rate(scotty_http_requests_total{status="500"}[5m]) > 0.1',
  'deriv(scotty_memory_rss_bytes[30m]) > 1000000',
  'rate(scotty_websocket_auth_failures_total[5m]) > 1',
  'rate(scotty_task_failures_total[5m]) > 0.5',
];

async function ask(base, path, params) {
  const r = await fetch(`${base}${path}`, {
    method: 'POST', body: new URLSearchParams(params),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  const text = await r.text();
  try { return { http: r.status, ...JSON.parse(text) }; } catch { return { http: r.status, status: 'unparsable', body: text.slice(0, 200) }; }
}

before(async () => {
  if (skip) return;
  const t0 = Math.floor(Date.now() / 60000) * 60000 - 110 * 60000;
  data = dataset(t0);
  promDir = mkdtempSync(join(tmpdir(), 'tricorder-promdiff-'));
  writeFileSync(join(promDir, 'prometheus.yml'), 'global: {scrape_interval: 15s}\n');
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prom = spawn(PROM, [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--web.enable-remote-write-receiver', '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr.on('data', (d) => { promErr += d; });
  tr = await start();
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${promUrl}/-/ready`)).ok) break; } catch { /* starting */ }
    if (i > 200) throw new Error(`prometheus did not start: ${promErr}`);
    await sleep(100);
  }
  for (const batch of timeOrderedBatches(data.series)) {
    await remoteWrite(promUrl, batch);
    await remoteWrite(tr.httpUrl, batch);
  }
});

after(async () => {
  if (prom) { prom.kill('SIGTERM'); await new Promise((r) => prom.on('exit', r)); }
  if (tr) { await tr.stop(); tr.cleanup(); }
  if (promDir) rmSync(promDir, { recursive: true, force: true });
});

// Compares every query as instants at several times and as ranges; returns [score, failures].
async function compareAll(queries) {
  const s = (ms) => (ms / 1000).toFixed(3);
  const { t0 } = data;
  // seconds chosen so that no time is a multiple of a subquery step (30 s, 1 m) either:
  // subquery points land on whole minutes, and would otherwise sit on the outer window's edge
  const instants = [t0 + 20 * 60000 + 3000, t0 + 41 * 60000 + 17000, t0 + 61 * 60000 + 11000, t0 + 99 * 60000 + 7000].map(s);
  const ranges = [
    { start: s(t0 + 10 * 60000 + 13000), end: s(t0 + 105 * 60000), step: '60' },
    { start: s(t0 + 37 * 60000 + 5000), end: s(t0 + 52 * 60000), step: '37' },
    { start: s(t0 + 30 * 60000 + 29000), end: s(t0 + 90 * 60000), step: '15m' },
  ];
  let total = 0, same = 0;
  const failures = [];
  for (const q of queries) {
    const ordered = /^\s*sort/.test(q);
    const asks = [
      ...instants.map((time) => ['/api/v1/query', { query: q, time }]),
      ...ranges.map((r) => ['/api/v1/query_range', { query: q, ...r }]),
    ];
    for (const [path, params] of asks) {
      total++;
      const [want, got] = await Promise.all([ask(promUrl, path, params), ask(tr.httpUrl, path, params)]);
      const d = diff(want, got, ordered && path === '/api/v1/query');
      if (d === null) same++; else failures.push(`${path} ${JSON.stringify(params)}: ${d}`);
    }
  }
  return [same / total, failures, total];
}

test('the query file: tricorder answers as Prometheus does', { skip }, async () => {
  const queries = queriesFromFile();
  assert.ok(queries.length >= 300, `only ${queries.length} queries`);
  const [score, failures, total] = await compareAll(queries);
  console.log(`promql differential: ${queries.length} queries, ${total} comparisons, ${(score * 100).toFixed(2)}% identical`);
  for (const f of failures.slice(0, 60)) console.log(`  DIFF ${f}`);
  assert.ok(score >= MIN_SCORE, `${(score * 100).toFixed(2)}% identical, below ${MIN_SCORE * 100}%`);
});

test("Scotty's dashboard and documentation queries: identical answers", { skip }, async () => {
  const queries = [...new Set([...dashboardQueries(join(SHARED, 'reference/scotty/scotty-metrics.json')), ...SCOTTY_DOC_QUERIES])];
  assert.ok(queries.length > 60);
  const [score, failures, total] = await compareAll(queries);
  console.log(`scotty queries: ${queries.length} queries, ${total} comparisons, ${(score * 100).toFixed(2)}% identical`);
  assert.deepEqual(failures, []);
});

test('promtool query instant and range print the same for both servers', { skip: skip || (!existsSync(PROMTOOL) && 'no promtool') }, async () => {
  const run = promisify(execFile);
  const { t0 } = data;
  const time = new Date(t0 + 61 * 60000).toISOString();
  const cases = [
    ['query', 'instant', `--time=${time}`],
    ['query', 'range', `--start=${new Date(t0 + 30 * 60000).toISOString()}`, `--end=${new Date(t0 + 40 * 60000).toISOString()}`, '--step=1m'],
  ];
  for (const exprs of ['sum by (method) (rate(diff_requests_total[5m]))', 'diff_gauge', 'scalar(sum(diff_gauge))']) {
    for (const c of cases) {
      const [a, b] = await Promise.all([promUrl, tr.httpUrl].map((u) => run(PROMTOOL, [...c.slice(0, 2), ...c.slice(2), u, exprs])));
      // lines like `{method="GET"} => 2.09 @[1796216820]`; values compared as the JSON ones
      // are (the last digit of a sum may differ: 3.x adds with Kahan compensation, 2.42 not)
      const norm = (o) => o.stdout.split('\n').filter(Boolean).sort();
      const [la, lb] = [norm(a), norm(b)];
      assert.ok(la.length > 0, `promtool printed nothing for ${exprs}`);
      assert.equal(lb.length, la.length, `promtool ${c[1]} ${exprs}:\n${lb.join('\n')}\nvs\n${la.join('\n')}`);
      const num = /-?(?:\d+\.?\d*(?:e[-+]?\d+)?|\+?Inf|NaN)(?= @)/g;
      for (let i = 0; i < la.length; i++) {
        assert.equal(lb[i].replace(num, 'V'), la[i].replace(num, 'V'), `promtool ${c[1]} ${exprs}`);
        const [va, vb] = [la[i].match(num) || [], lb[i].match(num) || []].map((m) => m.map(Number));
        assert.equal(vb.length, va.length);
        va.forEach((x, k) => assert.ok(Math.abs(x - vb[k]) <= 1e-9 * Math.abs(x) || x === vb[k], `${lb[i]} vs ${la[i]}`));
      }
    }
  }
});

test('the expander and the comparison catch what they should', () => {
  assert.deepEqual(expand('<<a|b>>(x[<<1m|5m>>])'), ['a(x[1m])', 'a(x[5m])', 'b(x[1m])', 'b(x[5m])']);
  assert.deepEqual(expand('x <<>|<>> 1'), ['x > 1', 'x < 1']);
  const v = (val) => ({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: '1' }, value: [1, val] }] } });
  assert.equal(diff(v('1'), v('1.0000000000001')), null);
  assert.notEqual(diff(v('1'), v('1.001')), null);
  assert.notEqual(diff(v('NaN'), v('0')), null);
  assert.equal(diff(v('+Inf'), v('+Inf')), null);
  assert.notEqual(diff({ status: 'error', errorType: 'bad_data' }, { status: 'error', errorType: 'execution' }), null);
});
