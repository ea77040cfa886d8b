// The Prometheus metadata endpoints side by side: the same samples are remote-written to
// tricorder and to Debian's Prometheus (2.42), then several hundred requests over /api/v1/series,
// /labels, /label/{name}/values, /metadata and /federate — both methods, every matcher kind,
// time formats, windows, limits and errors — are asked of both and the answers compared
// (status, error type, data; series as sets). Differences that follow Prometheus 3 or tricorder's
// finer precision on purpose are classified by `documented` (and listed in the README); every
// other difference counts against the score.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { start, freePort, sleep } from './lib/tricorder.mjs';
import { remoteWrite } from './lib/remote_write.mjs';
import { dataset, timeOrderedBatches } from './lib/promql_data.mjs';

const PROM = '/usr/bin/prometheus';
const skip = !existsSync(PROM) && `no ${PROM} (apt-get install prometheus)`;
const MIN_SCORE = Number(process.env.TR_WIRE_PROM_MIN || 0.95);

let tr, prom, promUrl, promDir, data, now;

// Recent series for /federate (its lookback is 5 minutes): unicode and escaped label values,
// a -0 value, a series two match[] both select.
function recentSeries(t) {
  return [
    [[['__name__', 'wire_recent'], ['job', 'fed'], ['path', 'a"b\\c\nd']], [[1.5, t - 40000], [2.5, t - 20000]]],
    [[['__name__', 'wire_recent'], ['job', 'fed'], ['path', 'héllo/ünïcode ✓']], [[-0, t - 20000]]],
    [[['__name__', 'wire_recent'], ['instance', 'x:1'], ['job', 'fed']], [[1e21, t - 20000]]],
    [[['__name__', 'wire_other'], ['job', 'fed']], [[0.1, t - 30000], [123456789.125, t - 15000]]],
    // label names sorting before __name__ (upper case): these series come first in label order
    [[['Zone', 'eu'], ['__name__', 'wire_recent'], ['job', 'fed']], [[7, t - 20000]]],
    [[['Zone', 'us'], ['__name__', 'wire_other'], ['job', 'fed']], [[8, t - 20000]]],
    [[['Zone', 'us'], ['__name__', 'wire_zlast'], ['job', 'fed']], [[9, t - 20000]]],
  ];
}

before(async () => {
  if (skip) return;
  now = Date.now();
  const t0 = Math.floor(now / 60000) * 60000 - 110 * 60000;
  data = dataset(t0);
  promDir = mkdtempSync(join(tmpdir(), 'tricorder-wireprom-'));
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
  for (const batch of [...timeOrderedBatches(data.series), recentSeries(now)]) {
    await remoteWrite(promUrl, batch);
    await remoteWrite(tr.httpUrl, batch);
  }
});

after(async () => {
  if (prom) { prom.kill('SIGTERM'); await new Promise((r) => prom.on('exit', r)); }
  if (tr) { await tr.stop(); tr.cleanup(); }
  if (promDir) rmSync(promDir, { recursive: true, force: true });
});

async function ask(base, method, path, params) {
  const qs = new URLSearchParams(params).toString();
  const r = method === 'GET'
    ? await fetch(`${base}${path}${qs ? `?${qs}` : ''}`)
    : await fetch(`${base}${path}`, { method: 'POST', body: qs, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  const text = await r.text();
  const ctype = (r.headers.get('content-type') || '').split(';')[0];
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { http: r.status, ctype, body };
}

const sortKey = (m) => JSON.stringify(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// Federation text: the lines as a multiset (series order within a family may differ between
// index orders; Prometheus sorts by labels too).
const fedLines = (s) => s.split('\n').filter(Boolean).sort();

function diff(path, want, got) {
  if (want.http !== got.http) return `http ${want.http} vs ${got.http}: ${JSON.stringify(want.body).slice(0, 160)} vs ${JSON.stringify(got.body).slice(0, 160)}`;
  if (path === '/federate') {
    if (want.http !== 200) return want.ctype === got.ctype ? null : `content type ${want.ctype} vs ${got.ctype}`;
    const a = fedLines(want.body), b = fedLines(got.body);
    return JSON.stringify(a) === JSON.stringify(b) ? null : `federate ${JSON.stringify(a).slice(0, 400)} vs ${JSON.stringify(b).slice(0, 400)}`;
  }
  const a = want.body, b = got.body;
  if (typeof a !== 'object' || typeof b !== 'object') return `body ${String(a).slice(0, 100)} vs ${String(b).slice(0, 100)}`;
  if (a.status !== b.status) return `status ${a.status} (${a.error}) vs ${b.status} (${b.error})`;
  if (a.status !== 'success') return a.errorType === b.errorType ? null : `errorType ${a.errorType} vs ${b.errorType} (${b.error})`;
  if (path === '/api/v1/series') {
    const x = a.data.map(sortKey).sort(), y = b.data.map(sortKey).sort();
    return JSON.stringify(x) === JSON.stringify(y) ? null : `series ${x.length} vs ${y.length}: ${JSON.stringify(x.filter((k) => !y.includes(k))).slice(0, 200)} missing, ${JSON.stringify(y.filter((k) => !x.includes(k))).slice(0, 200)} extra`;
  }
  return JSON.stringify(a.data) === JSON.stringify(b.data) ? null : `data ${JSON.stringify(a.data).slice(0, 300)} vs ${JSON.stringify(b.data).slice(0, 300)}`;
}

// Differences on purpose (README, "Prometheus API: differences on purpose"): `limit` on
// series/labels/values (Prometheus 3; 2.42 ignores it), `.` matching a newline in regex
// matchers (Prometheus 3), and label names/values at series
// precision for windows that cut through the data (2.42 answers at block/head precision: every
// name in the head for any window the head overlaps).
function documented(path, params, want, got) {
  if (params.limit !== undefined && path !== '/api/v1/metadata') return 'limit (Prometheus 3)';
  // Prometheus 3: `.` in a regex matcher matches a newline too (2.42: any character but \n)
  if (path === '/api/v1/series' && /[=!]~/.test(params['match[]'] || '') && want.body?.status === 'success' && got.body?.status === 'success') {
    const w = new Set(want.body.data.map(sortKey));
    const extra = got.body.data.filter((m) => !w.has(sortKey(m)));
    if (extra.length && want.body.data.length + extra.length === got.body.data.length && extra.every((m) => Object.values(m).some((v) => v.includes('\n'))))
      return 'regex . matches newline (Prometheus 3)';
  }
  const windowed = params.start !== undefined || params.end !== undefined;
  if (windowed && (path === '/api/v1/labels' || path.startsWith('/api/v1/label/')) && want.body?.status === 'success' && got.body?.status === 'success') {
    const w = new Set(want.body.data);
    if (got.body.data.every((x) => w.has(x))) return 'series precision (a subset of the head-precision answer)';
  }
  return null;
}

function requests() {
  const t = (ms) => (ms / 1000).toFixed(3);
  const { t0 } = data;
  const windows = [
    {},
    { start: t(t0), end: t(now) },
    { start: new Date(t0 - 60000).toISOString(), end: new Date(now + 60000).toISOString() },
    { start: String(Math.floor((t0 + 60 * 60000) / 1000)), end: String(Math.floor(now / 1000)) },
    { start: t(t0 + 10 * 60000), end: t(t0 + 20 * 60000) },
    { start: t(now - 3 * 60000) },
    { end: t(t0 - 3600000) },
    { start: t(t0 - 7200000), end: t(t0 - 3600000) },
  ];
  const badTimes = [{ start: 'abc' }, { end: 'yesterday' }, { start: t(now), end: t(t0) }, { start: '2024-13-01T00:00:00Z' }];
  const selectors = [
    'diff_requests_total', 'diff_gauge{zone="b"}', '{job="api"}', '{job!="api",__name__=~"diff_.*"}', '{__name__=~"diff_(gauge|info)"}',
    '{__name__=~"scotty_http.*",status!~"2.."}', 'diff_ending', 'diff_ending{how="stale"}', 'diff_late', 'diff_sparse', 'wire_recent',
    '{path=~".+"}', 'wire_recent{path="héllo/ünïcode ✓"}', '{__name__="nonexistent"}', 'diff_info{version=~"1\\\\.2.*"}',
    '{job=~"api|env",instance="i1"}', 'diff_latency_seconds_bucket{le="+Inf"}', '{__name__=~".+_total",job="dup"}',
  ];
  const badSelectors = ['{', '{}', '{job=""}', 'diff_gauge{zone=~"("}', 'rate(x[5m])', '{job="api"', '1+1'];
  const labelNames = ['job', '__name__', 'instance', 'path', 'le', 'nonexistent', 'how'];
  const out = [];
  const both = (path, params) => { for (const method of ['GET', 'POST']) out.push([method, path, params]); };
  // /api/v1/series
  for (const s of selectors) for (const w of windows.slice(0, 6)) both('/api/v1/series', { 'match[]': s, ...w });
  for (const s of badSelectors) both('/api/v1/series', { 'match[]': s });
  for (const b of badTimes) both('/api/v1/series', { 'match[]': 'diff_gauge', ...b });
  both('/api/v1/series', {});
  out.push(['GET', '/api/v1/series', new URLSearchParams([['match[]', 'diff_gauge'], ['match[]', '{zone="b"}'], ['match[]', 'diff_gauge{zone="b"}']])]);
  for (const limit of ['1', '0', '-1', 'x']) both('/api/v1/series', { 'match[]': '{job="api"}', limit });
  // /api/v1/labels
  for (const w of windows) both('/api/v1/labels', w);
  for (const s of selectors.slice(0, 12)) for (const w of windows.slice(0, 3)) both('/api/v1/labels', { 'match[]': s, ...w });
  for (const s of badSelectors) both('/api/v1/labels', { 'match[]': s });
  for (const b of badTimes) both('/api/v1/labels', b);
  for (const limit of ['2', '0']) both('/api/v1/labels', { limit });
  // /api/v1/label/{name}/values (GET only, as Prometheus routes it)
  for (const n of labelNames) {
    for (const w of windows) out.push(['GET', `/api/v1/label/${n}/values`, w]);
    for (const s of selectors.slice(0, 8)) out.push(['GET', `/api/v1/label/${n}/values`, { 'match[]': s }]);
  }
  for (const s of badSelectors) out.push(['GET', '/api/v1/label/job/values', { 'match[]': s }]);
  for (const b of badTimes) out.push(['GET', '/api/v1/label/job/values', b]);
  out.push(['GET', '/api/v1/label/0bad/values', {}], ['GET', '/api/v1/label/job/values', { limit: '1' }]);
  // /api/v1/metadata (remote write carries none to 2.42: both must agree on the empty cases)
  for (const p of [{}, { metric: 'diff_gauge' }, { limit: '1' }, { limit: '0' }, { limit: '-1' }, { limit: 'x' }, { limit_per_metric: '1' }, { metric: 'nonexistent' }])
    out.push(['GET', '/api/v1/metadata', p]);
  // /federate
  for (const s of ['wire_recent', 'wire_other', '{job="fed"}', '{__name__=~"wire_.*"}', 'wire_recent{path=~"h.*"}', 'diff_gauge', '{__name__="nonexistent"}'])
    out.push(['GET', '/federate', { 'match[]': s }]);
  out.push(['GET', '/federate', new URLSearchParams([['match[]', 'wire_recent'], ['match[]', '{job="fed"}'], ['match[]', 'wire_other']])]);
  for (const s of badSelectors) out.push(['GET', '/federate', { 'match[]': s }]);
  out.push(['GET', '/federate', {}]);
  return out;
}

test('the metadata endpoints answer as Prometheus does', { skip }, async () => {
  const reqs = requests();
  assert.ok(reqs.length >= 300, `only ${reqs.length} requests`);
  let same = 0, onPurpose = 0;
  const failures = [], purposes = new Map();
  for (const [method, path, params] of reqs) {
    const p = params instanceof URLSearchParams ? params : new URLSearchParams(params);
    const plain = Object.fromEntries(p);
    const [want, got] = await Promise.all([ask(promUrl, method, path, p), ask(tr.httpUrl, method, path, p)]);
    const d = diff(path, want, got);
    if (d === null) { same++; continue; }
    const why = documented(path, plain, want, got);
    if (why) { onPurpose++; purposes.set(why, (purposes.get(why) || 0) + 1); continue; }
    failures.push(`${method} ${path}?${p}: ${d}`);
  }
  const score = (same + onPurpose) / reqs.length;
  console.log(`wire_prom differential: ${reqs.length} requests, ${same} identical, ${onPurpose} documented differences (${[...purposes].map(([k, v]) => `${k}: ${v}`).join('; ')}), ${failures.length} other; score ${(score * 100).toFixed(2)}%`);
  for (const f of failures.slice(0, 80)) console.log(`  DIFF ${f}`);
  assert.ok(score >= MIN_SCORE, `${(score * 100).toFixed(2)}% below ${MIN_SCORE * 100}%`);
});

// /api/v1/metadata needs metadata, which 2.42's remote-write receiver drops: a second Prometheus
// scrapes two exposition endpoints whose families disagree on help and type, and tricorder
// imports the same two texts. Prometheus' order inside a family and its choice under `limit`
// come from Go map iteration, so entries are compared as sets and limited answers by size.
const EXPO = [
  '# HELP wire_req_total Requests served.\n# TYPE wire_req_total counter\nwire_req_total 3\n# HELP wire_temp Temperature.\n# TYPE wire_temp gauge\nwire_temp 21.5\n# HELP wire_q_seconds Queue time.\n# TYPE wire_q_seconds summary\nwire_q_seconds_sum 1\nwire_q_seconds_count 2\n',
  '# HELP wire_req_total Requests handled, all kinds.\n# TYPE wire_req_total counter\nwire_req_total 5\n# HELP wire_temp Temperature.\n# TYPE wire_temp gauge\nwire_temp 19\n# TYPE wire_other untyped\nwire_other 1\n',
];

test('/api/v1/metadata lists every distinct (type, help, unit) as Prometheus does', { skip }, async () => {
  const http = await import('node:http');
  const servers = [];
  const ports = [];
  for (const text of EXPO) {
    const srv = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }); res.end(text); });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    servers.push(srv);
    ports.push(srv.address().port);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-wireprom-md-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'prometheus.yml'), `global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: md\n    static_configs: [{targets: [${ports.map((p) => `'127.0.0.1:${p}'`).join(', ')}]}]\n`);
  const p2 = spawn(PROM, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'ignore'] });
  const t2 = await start();
  try {
    for (const text of EXPO) assert.equal((await fetch(`${t2.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: text })).status, 204);
    for (let i = 0; ; i++) {
      try {
        const j = await (await fetch(`${url}/api/v1/metadata?metric=wire_req_total`)).json();
        if (j.data?.wire_req_total?.length === 2 && Object.keys((await (await fetch(`${url}/api/v1/metadata`)).json()).data).length >= 4) break;
      } catch { /* starting */ }
      if (i > 300) throw new Error('prometheus scraped no metadata');
      await sleep(100);
    }
    const norm = (d) => Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.map((x) => JSON.stringify(x)).sort()]));
    // Prometheus also lists its own scrape families (up, scrape_*): compare the wire_ ones
    const wire = (d) => Object.fromEntries(Object.entries(d).filter(([k]) => k.startsWith('wire_')));
    let n = 0;
    for (const q of ['', 'metric=wire_req_total', 'metric=wire_temp', 'metric=nonexistent', 'limit_per_metric=5', 'limit=-1', 'limit=x', 'limit=0']) {
      const [a, b] = await Promise.all([url, t2.httpUrl].map(async (u) => (await fetch(`${u}/api/v1/metadata?${q}`)).json()));
      assert.equal(b.status, a.status, q);
      if (a.status === 'success') assert.deepEqual(norm(wire(b.data)), norm(wire(a.data)), q);
      else assert.equal(b.errorType, a.errorType, q);
      n++;
    }
    for (const q of ['limit=1', 'limit=2']) {
      const [a, b] = await Promise.all([url, t2.httpUrl].map(async (u) => (await fetch(`${u}/api/v1/metadata?${q}`)).json()));
      assert.equal(Object.keys(b.data).length, Object.keys(a.data).length, q);
      if (q.includes('metric=')) assert.deepEqual(Object.values(b.data).map((v) => v.length), Object.values(a.data).map((v) => v.length), q);
      n++;
    }
    // limit_per_metric: Prometheus 3 (2.42 ignores it); tricorder follows 3
    const lp = await (await fetch(`${t2.httpUrl}/api/v1/metadata?limit_per_metric=1&metric=wire_req_total`)).json();
    assert.equal(lp.data.wire_req_total.length, 1);
    console.log(`wire_prom metadata: ${n} requests, all identical`);
  } finally {
    p2.kill('SIGTERM');
    await new Promise((r) => p2.on('exit', r));
    await t2.stop();
    t2.cleanup();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// io.prometheus.client's metrics.proto (the fields federation uses), to decode the delimited stream
const METRICS_PROTO = `syntax = "proto2"; package io.prometheus.client;
message LabelPair { optional string name = 1; optional string value = 2; }
message Gauge { optional double value = 1; }
message Counter { optional double value = 1; }
message Untyped { optional double value = 1; }
message Metric { repeated LabelPair label = 1; optional Gauge gauge = 2; optional Counter counter = 3;
  optional Untyped untyped = 5; optional int64 timestamp_ms = 6; }
enum MetricType { COUNTER = 0; GAUGE = 1; SUMMARY = 2; UNTYPED = 3; HISTOGRAM = 4; GAUGE_HISTOGRAM = 5; }
message MetricFamily { optional string name = 1; optional string help = 2; optional MetricType type = 3; repeated Metric metric = 4; }`;
const PROTO_ACCEPT = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

// The federation text as {key: value} with key = name{labels} (instance="" left out) and the
// number of # TYPE lines per family.
function parseFedText(text) {
  const series = new Map(), types = new Map();
  for (const line of text.split('\n').filter(Boolean)) {
    const m = /^# TYPE (\S+) untyped$/.exec(line);
    if (m) { types.set(m[1], (types.get(m[1]) || 0) + 1); continue; }
    const sp = line.lastIndexOf(' ', line.lastIndexOf(' ') - 1);
    const [v, ts] = line.slice(sp + 1).split(' ');
    series.set(line.slice(0, sp).replace(/,?instance=""/, '').replace('{}', ''), [Number(v), Number(ts)]);
  }
  return { series, types };
}

test('/federate: one # TYPE line per family, also with label names sorting before __name__', { skip }, async () => {
  const text = await (await fetch(`${tr.httpUrl}/federate?match[]=${encodeURIComponent('{job="fed"}')}`)).text();
  const { series, types } = parseFedText(text);
  assert.deepEqual([...types.keys()], ['wire_other', 'wire_recent', 'wire_zlast'], text);
  assert.ok([...types.values()].every((n) => n === 1), text);
  assert.equal(series.size, 7, text);
  // each family's lines follow its TYPE line
  const fams = text.split('\n').filter(Boolean).map((l) => (l.startsWith('#') ? l.split(' ')[2] : l.split('{')[0].split(' ')[0]));
  assert.deepEqual(fams, [...fams].sort(), text);
});

test('/federate: the protobuf exposition when Accept asks for it (negotiated as expfmt does), decoded by protobufjs', { skip }, async () => {
  const root = protobuf.parse(METRICS_PROTO).root;
  const MF = root.lookupType('io.prometheus.client.MetricFamily');
  const url = `${tr.httpUrl}/federate?match[]=${encodeURIComponent('{job="fed"}')}`;
  const cases = [
    [PROTO_ACCEPT, true],
    [`text/plain;version=0.0.4;q=0.5,${PROTO_ACCEPT};q=0.7`, true],
    [`${PROTO_ACCEPT};q=0.2,text/plain;version=0.0.4;q=0.5`, false],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text', false],
    ['application/vnd.google.protobuf;encoding=delimited', false],
    [`*/*;q=0.9,${PROTO_ACCEPT};q=0.9`, true],
    ['text/plain', false],
    ['', false],
  ];
  for (const [accept, proto] of cases) {
    const r = await fetch(url, { headers: accept ? { Accept: accept } : {} });
    assert.equal(r.headers.get('content-type'), proto
      ? 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'
      : 'text/plain; version=0.0.4; charset=utf-8', accept);
    await r.arrayBuffer();
  }
  const want = parseFedText(await (await fetch(url)).text()).series;
  const buf = new Uint8Array(await (await fetch(url, { headers: { Accept: PROTO_ACCEPT } })).arrayBuffer());
  const reader = protobuf.Reader.create(buf);
  const got = new Map(), names = [];
  while (reader.pos < reader.len) {
    const fam = MF.decodeDelimited(reader);
    assert.equal(fam.type, 3, 'UNTYPED');
    names.push(fam.name);
    for (const m of fam.metric) {
      assert.ok(m.label.some((l) => l.name === 'instance'), 'instance="" added as federation does');
      const ls = m.label.filter((l) => !(l.name === 'instance' && l.value === ''))
        .map((l) => `${l.name}="${l.value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
      got.set(ls.length ? `${fam.name}{${ls.join(',')}}` : fam.name, [m.untyped.value, Number(m.timestampMs)]);
    }
  }
  assert.deepEqual(names, ['wire_other', 'wire_recent', 'wire_zlast']);
  // the text prints -0 as 0 (as Prometheus' text writer); protobuf carries the double as it is
  assert.equal(Object.is(got.get('wire_recent{job="fed",path="héllo/ünïcode ✓"}')[0], -0), true);
  const z = (m) => new Map([...m].map(([k, [v, t]]) => [k, [v === 0 ? 0 : v, t]]).sort());
  assert.deepEqual(z(got), z(want));
});

test('a Prometheus federating from tricorder with native histograms on asks for protobuf and stores what tricorder holds', { skip }, async () => {
  const http = await import('node:http');
  const seen = [];
  // a recording pass-through, to show what Prometheus asked for and got
  const proxy = http.createServer(async (req, res) => {
    const r = await fetch(`${tr.httpUrl}${req.url}`, { headers: { Accept: req.headers.accept || '' } });
    const body = Buffer.from(await r.arrayBuffer());
    seen.push({ accept: req.headers.accept, ctype: r.headers.get('content-type') });
    res.writeHead(r.status, { 'Content-Type': r.headers.get('content-type') });
    res.end(body);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-wireprom-fed-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'prometheus.yml'), `global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params: {'match[]': ['{job="fed"}']}\n    static_configs: [{targets: ['127.0.0.1:${proxy.address().port}']}]\n`);
  const p2 = spawn(PROM, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', '--enable-feature=native-histograms'], { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    const want = parseFedText(await (await fetch(`${tr.httpUrl}/federate?match[]=${encodeURIComponent('{job="fed"}')}`)).text()).series;
    let got;
    for (let i = 0; ; i++) {
      try {
        // a range selector: the samples as stored, with the timestamps federation exposed
        const j = await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent('{job="fed"}[10m]')}`)).json();
        if (j.data?.result?.length >= want.size) { got = j.data.result; break; }
      } catch { /* starting */ }
      if (i > 300) throw new Error('prometheus federated nothing');
      await sleep(100);
    }
    assert.ok(seen.length > 0);
    assert.match(seen[0].accept, /^application\/vnd\.google\.protobuf;proto=io\.prometheus\.client\.MetricFamily;encoding=delimited/);
    assert.match(seen[0].ctype, /^application\/vnd\.google\.protobuf; proto=io\.prometheus\.client\.MetricFamily; encoding=delimited$/);
    const esc = (v) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const stored = new Map(got.map((s) => {
      const { __name__: name, ...rest } = s.metric;
      const ls = Object.keys(rest).sort((a, b) => (a < b ? -1 : 1)).map((k) => `${k}="${esc(rest[k])}"`);
      const [t, v] = s.values[s.values.length - 1];
      return [ls.length ? `${name}{${ls.join(',')}}` : name, [Number(v), Math.round(t * 1000)]];
    }));
    const norm = (m) => new Map([...m].map(([k, v]) => {
      const [name, rest] = k.split(/\{(.*)\}$/);
      const ls = rest ? rest.match(/[A-Za-z_][A-Za-z0-9_]*="(?:[^"\\]|\\.)*"/g).sort() : [];
      return [ls.length ? `${name}{${ls.join(',')}}` : name, [v[0] === 0 ? 0 : v[0], v[1]]];
    }).sort());
    assert.deepEqual(norm(stored), norm(want));
    console.log(`wire_prom federation: Prometheus asked "${seen[0].accept}", got ${seen[0].ctype}, stored ${stored.size} series identical to tricorder's`);
  } finally {
    p2.kill('SIGTERM');
    await new Promise((r) => p2.on('exit', r));
    proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
