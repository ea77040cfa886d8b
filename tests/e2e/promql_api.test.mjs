// The Prometheus query API as clients call it: every golden response captured from
// Prometheus 2.42 that does not depend on Prometheus' own scraped series is replayed against
// tricorder and must come back byte for byte (status, content type, body); then Grafana's
// calls as its Prometheus data source sends them (form POSTs, "Save & test", the metric
// browser, panel range queries, multi-line queries with comments), limits, gzip and CORS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { start } from './lib/tricorder.mjs';
import { remoteWrite } from './lib/remote_write.mjs';

const SHARED = process.env.TR_SHARED_DIR || new URL('../../../shared', import.meta.url).pathname;
let t;

before(async () => {
  t = await start({ args: ['--no-default-rules'] }); // the golden answers come from a Prometheus without rules
  // a few series, one sample every 15 s over the last 20 minutes
  const now = Math.floor(Date.now() / 1000) * 1000;
  const series = [];
  for (let i = 0; i < 50; i++) {
    const samples = [];
    for (let k = 80; k >= 0; k--) samples.push([i * 10 + (80 - k), now - k * 15000 - 250]);
    series.push([[['__name__', 'api_requests_total'], ['instance', `i${i}`], ['job', 'api']], samples]);
  }
  await remoteWrite(t.httpUrl, series);
});
after(async () => { await t.stop(); t.cleanup(); });

// "### curl <args>" blocks of the golden file: [args, body, status, contentType].
function goldenCases() {
  const text = readFileSync(join(SHARED, 'reference/prometheus-api/golden-responses-2.42.txt'), 'utf8');
  const out = [];
  for (const block of text.split('\n### ').slice(1)) {
    const lines = block.split('\n');
    const args = lines[0].replace(/^curl /, '');
    const st = lines.findIndex((l) => /^\[HTTP \d+/.test(l));
    const [, status, ctype] = lines[st].match(/^\[HTTP (\d+) ?(.*)\]$/);
    out.push({ args, body: lines.slice(1, st).join('\n'), status: Number(status), ctype });
  }
  return out;
}

// The golden cases that hold no data of Prometheus' own (its self-scrape: up, scrape_*,
// prometheus_*): literals, functions of time, and every parameter error. Left out: the 1 µs
// timeout (whether an evaluation outlives 1 µs is not a property of the API).
const replayed = (a) => /query=(1%2B1|1\/0|-1\/0|0\/0|1e21|vector|%22foo%22|time\(\)|sum\(|1&)/.test(a) ||
  /job%3D%22nope|exemplars\?query=test|1bad|series\?start=|job%3D~%22\.\*|time=abc|timeout=abc|start=10&end=5|end=100000|step=0|query=up&end=10|format_query|\/rules|OPTIONS|nonexistent|DELETE/.test(a);

test('golden responses of Prometheus 2.42, replayed byte for byte', async () => {
  const cases = goldenCases().filter((c) => replayed(c.args));
  assert.ok(cases.length >= 25, `only ${cases.length} golden cases`);
  for (const c of cases) {
    const m = c.args.match(/^-X (\w+) (\/\S+)$/);
    const r = m ? await fetch(t.httpUrl + m[2], { method: m[1] }) : await fetch(t.httpUrl + c.args);
    const body = await r.text();
    assert.equal(r.status, c.status, `${c.args}: ${body}`);
    assert.equal(body.trim(), c.body.trim(), c.args);
    if (c.ctype) assert.equal(r.headers.get('content-type'), c.ctype, c.args);
  }
});

const form = (path, params, headers = {}) => fetch(t.httpUrl + path, {
  method: 'POST', body: new URLSearchParams(params), headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
});

test("Grafana's Save & test, buildinfo and metric browser", async () => {
  let r = await form('/api/v1/query', { query: '1+1', time: '4' });
  assert.deepEqual(await r.json(), { status: 'success', data: { resultType: 'scalar', result: [4, '2'] } });
  r = await fetch(`${t.httpUrl}/api/v1/status/buildinfo`);
  assert.equal((await r.json()).status, 'success');
  const end = Math.floor(Date.now() / 1000), start = end - 3600;
  r = await form('/api/v1/labels', { 'match[]': 'api_requests_total', start, end, limit: 40000 });
  assert.deepEqual((await r.json()).data, ['__name__', 'instance', 'job']);
  r = await fetch(`${t.httpUrl}/api/v1/label/__name__/values?start=${start}&end=${end}&limit=40000`);
  assert.ok((await r.json()).data.includes('api_requests_total'));
  r = await fetch(`${t.httpUrl}/api/v1/query_exemplars?query=api_requests_total&start=${start}&end=${end}`);
  assert.deepEqual(await r.json(), { status: 'success', data: [] });
});

test('panel range queries, multi-line with comments, and instant vectors', async () => {
  const end = Math.floor(Date.now() / 1000), start = end - 600;
  let r = await form('/api/v1/query_range', { query: '# requests per second\nsum by (job) (\n  rate(api_requests_total[1m])  # per instance\n)', start, end, step: '15' });
  let j = await r.json();
  assert.equal(j.status, 'success', JSON.stringify(j));
  assert.equal(j.data.resultType, 'matrix');
  assert.equal(j.data.result.length, 1);
  assert.deepEqual(j.data.result[0].metric, { job: 'api' });
  const pts = j.data.result[0].values;
  assert.ok(pts.length >= 35 && pts.length <= 41, `${pts.length} points`);
  for (const [ts, v] of pts) { assert.equal(typeof ts, 'number'); assert.ok(Math.abs(Number(v) - 50 / 15) < 1e-9, v); }
  r = await form('/api/v1/query', { query: 'api_requests_total{instance="i3"}', time: String(end) });
  j = await r.json();
  assert.equal(j.data.result.length, 1);
  assert.equal(j.data.result[0].metric.instance, 'i3');
  r = await form('/api/v1/query', { query: 'api_requests_total', time: String(end), limit: '5' });
  j = await r.json();
  assert.equal(j.data.result.length, 5);
  assert.ok(j.warnings.some((w) => /truncated/.test(w)), JSON.stringify(j.warnings));
});

test('errors: types and statuses as Prometheus answers them', async () => {
  let r = await form('/api/v1/query', { query: 'rate(api_requests_total)' });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).errorType, 'bad_data');
  r = await form('/api/v1/query', { query: 'api_requests_total + on(job) api_requests_total' });
  assert.equal(r.status, 422);
  assert.equal((await r.json()).errorType, 'execution');
  r = await form('/api/v1/query', { query: 'a;b', time: '1' });
  assert.equal(r.status, 400);
  r = await fetch(`${t.httpUrl}/api/v1/query?query=1&time=1;x=2`);
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /invalid semicolon separator in query/);
});

test('the sample limit and the timeout stop a query', async () => {
  const t2 = await start({ args: ['--query-max-samples', '100'] });
  try {
    const now = Math.floor(Date.now() / 1000) * 1000;
    const series = [];
    for (let i = 0; i < 20; i++) series.push([[['__name__', 'lim'], ['i', String(i)]], Array.from({ length: 20 }, (_, k) => [k, now - (20 - k) * 10000])]);
    await remoteWrite(t2.httpUrl, series);
    // counted as Prometheus counts: the samples held at once. A range vector as the answer
    // holds all 400; a range function holds one series' window (20) and its results (20); a
    // sum one sample per series (20) and its result
    let r = await fetch(`${t2.httpUrl}/api/v1/query?query=${encodeURIComponent('lim[10m]')}`);
    let j = await r.json();
    assert.equal(r.status, 422, JSON.stringify(j));
    assert.match(j.error, /query processing would load too many samples into memory/);
    for (const q of ['sum(lim)', 'count_over_time(lim[10m])', 'sum(count_over_time(lim[10m]))']) {
      r = await fetch(`${t2.httpUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
      j = await r.json();
      assert.equal(j.status, 'success', `${q}: ${JSON.stringify(j)}`);
    }
  } finally { await t2.stop(); t2.cleanup(); }
});

test('gzip when asked, CORS for browsers, format_query, rules, alerts, runtimeinfo', async () => {
  const end = Math.floor(Date.now() / 1000);
  let r = await fetch(`${t.httpUrl}/api/v1/query_range?query=api_requests_total&start=${end - 600}&end=${end}&step=15`, { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(r.headers.get('content-encoding'), 'gzip'); // fetch inflates it for us
  assert.equal((await r.json()).data.result.length, 50);
  r = await fetch(`${t.httpUrl}/api/v1/query?query=1`, { headers: { Origin: 'http://grafana.example' } });
  assert.equal(r.headers.get('access-control-allow-origin'), '*', "Prometheus' answer to any origin with the default --web-cors-origin");
  r = await fetch(`${t.httpUrl}/api/v1/format_query?query=${encodeURIComponent('sum(rate(x[5m]))by(job)')}`);
  assert.deepEqual(await r.json(), { status: 'success', data: 'sum by (job) (rate(x[5m]))' });
  assert.deepEqual(await (await fetch(`${t.httpUrl}/api/v1/alerts`)).json(), { status: 'success', data: { alerts: [] } });
  const ri = await (await fetch(`${t.httpUrl}/api/v1/status/runtimeinfo`)).json();
  assert.equal(ri.data.storageRetention, '30d');
  assert.equal(ri.data.reloadConfigSuccess, true);
  void gunzipSync;
});
