// Remote write out (issue 15 item 1): tricorder forwards what it stores to remote-write
// receivers, read from its metrics WAL. The receivers are real: Debian's Prometheus 2.42
// (--web.enable-remote-write-receiver) and VictoriaMetrics 1.79, started here; what tricorder
// received (remote write and OTLP: counters, gauges, histograms, a stale series, exemplars) is
// exported from all three and compared sample by sample. Then the hard parts: the target down
// (with a tricorder restart in the middle) and back, the target down for good with a small
// --remote-write-max-backlog, and a tiny HTTP target answering 429 + Retry-After and 400.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { remoteWrite, STALE } from './lib/remote_write.mjs';
import { start, freePort, sleep, metricSum, eventually, spawnLogged } from './lib/tricorder.mjs';

const HAVE = existsSync('/usr/bin/prometheus') && existsSync('/usr/bin/victoria-metrics');

async function startVM(dir, port) {
  port = port || await freePort();
  const vm = spawnLogged('/usr/bin/victoria-metrics', [
    `-storageDataPath=${join(dir, 'vm')}`, `-httpListenAddr=127.0.0.1:${port}`, '-loggerLevel=ERROR',
    '-search.latencyOffset=0', '-search.disableCache',
  ], dir);
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${url}/health`)).ok, 15000, 'victoria-metrics up');
  return { ...vm, url, port, write: `${url}/api/v1/write` };
}

async function startProm(dir) {
  const port = await freePort();
  writeFileSync(join(dir, 'prometheus.yml'), 'global: {scrape_interval: 1m}\n');
  const p = spawnLogged('/usr/bin/prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'prom')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--web.enable-remote-write-receiver',
    '--enable-feature=exemplar-storage', '--log.level=warn',
  ], dir);
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${url}/-/ready`)).ok, 20000, 'prometheus ready');
  return { ...p, url, write: `${url}/api/v1/write` };
}

const key = (labels) => Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',');

// tricorder's own export (VictoriaMetrics' /api/v1/export/prometheus text): Map(series@ms → value)
async function exportTricorder(t, match) {
  const r = await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=${encodeURIComponent(match)}&start=0`);
  const out = new Map();
  for (const line of (await r.text()).split('\n')) {
    const m = /^([^{ ]+)(\{.*\})? (\S+) (-?\d+)$/.exec(line);
    if (!m) continue;
    const labels = { __name__: m[1] };
    for (const l of (m[2] || '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = JSON.parse(`"${l[2]}"`);
    const v = Number(m[3]);
    if (Number.isNaN(v)) continue; // staleness markers are checked separately
    out.set(`${key(labels)}@${m[4]}`, v);
  }
  return out;
}

async function exportVM(vm, match) {
  const r = await fetch(`${vm.url}/api/v1/export?match[]=${encodeURIComponent(match)}`);
  const out = new Map();
  for (const line of (await r.text()).split('\n')) {
    if (!line) continue;
    const j = JSON.parse(line);
    j.timestamps.forEach((ts, i) => { if (typeof j.values[i] === 'number' && !Number.isNaN(j.values[i])) out.set(`${key(j.metric)}@${ts}`, j.values[i]); });
  }
  return out;
}

async function exportProm(p, match) {
  const r = await fetch(`${p.url}/api/v1/query?query=${encodeURIComponent(`${match}[2h]`)}&time=${Date.now() / 1000 + 60}`);
  const j = await r.json();
  const out = new Map();
  for (const s of j.data.result) for (const [ts, v] of s.values) out.set(`${key(s.metric)}@${Math.round(ts * 1000)}`, Number(v));
  return out;
}

// VictoriaMetrics stores floats through a decimal form: 1.7999999999999998 comes back as 1.8
function sameSamples(a, b, what, approx = false) {
  const missing = [...a.keys()].filter((k) => !b.has(k));
  const extra = [...b.keys()].filter((k) => !a.has(k));
  assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), nMissing: missing.length, nExtra: extra.length },
    { missing: [], extra: [], nMissing: 0, nExtra: 0 }, what);
  for (const [k, v] of a) {
    if (approx && Math.abs(b.get(k) - v) <= 1e-12 * Math.max(1, Math.abs(v))) continue;
    assert.equal(b.get(k), v, `${what}: ${k}`);
  }
}

function otlpBody(tMs, n) {
  const ns = (ms) => `${BigInt(ms) * 1000000n}`;
  const attrs = (o) => Object.entries(o).map(([k, v]) => ({ key: k, value: { stringValue: v } }));
  return JSON.stringify({
    resourceMetrics: [{
      resource: { attributes: attrs({ 'service.name': 'rwo-svc', 'service.instance.id': 'i-1' }) },
      scopeMetrics: [{
        scope: { name: 'rwo' },
        metrics: [
          { name: 'rwo_otlp_requests', sum: { aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ attributes: attrs({ route: '/a' }), startTimeUnixNano: ns(tMs - 60000), timeUnixNano: ns(tMs), asDouble: 10 * n }] } },
          { name: 'rwo_otlp_temp', gauge: { dataPoints: [{ attributes: attrs({ room: 'x' }), timeUnixNano: ns(tMs), asDouble: 20 + n / 4 }] } },
          { name: 'rwo_otlp_latency', histogram: { aggregationTemporality: 2, dataPoints: [{
            attributes: attrs({ route: '/a' }), startTimeUnixNano: ns(tMs - 60000), timeUnixNano: ns(tMs),
            count: String(3 * n), sum: 0.6 * n, explicitBounds: [0.1, 0.5], bucketCounts: [String(n), String(n), String(n)],
            exemplars: [{ timeUnixNano: ns(tMs), asDouble: 0.3, traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' }],
          }] } },
        ],
      }],
    }],
  });
}

async function postOtlp(t, body) {
  const r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200, await r.text());
}

function writeConfig(dir, targets) {
  const f = join(dir, 'rw.yml');
  const lines = ['remote_write:'];
  for (const t of targets) {
    lines.push(`  - url: ${t.url}`, `    name: ${t.name}`);
    lines.push(`    queue_config: {batch_send_deadline: ${t.deadline || '200ms'}, max_samples_per_send: ${t.per || 500}, min_backoff: 100ms, max_backoff: ${t.maxBackoff || '1s'}}`);
    lines.push(`    metadata_config: {send_interval: ${t.metaInterval || '1m'}}`);
    if (t.extra) lines.push(...t.extra.map((l) => `    ${l}`));
  }
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

// One batch of remote-write series into tricorder: `nSeries` series with samples at ts.
function rwBatch(prefix, nSeries, tsList, base = 0) {
  const series = [];
  for (let s = 0; s < nSeries; s++) {
    series.push([[['__name__', `${prefix}_total`], ['job', 'rwo'], ['shard', String(s)]], tsList.map((ts, i) => [base + s * 1000 + i, ts])]);
  }
  return series;
}

test('everything tricorder received arrives at Prometheus and VictoriaMetrics, sample by sample', { skip: !HAVE && 'no prometheus / victoria-metrics' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-rwo-'));
  const vm = await startVM(dir);
  const prom = await startProm(dir);
  const cfg = writeConfig(dir, [{ url: prom.write, name: 'prom', metaInterval: '500ms' }, { url: vm.write, name: 'vm' }]);
  const t = await start({ args: ['--remote-write-config', cfg] });
  try {
    const t0 = Date.now() - 120000;
    // remote write in: a counter over 50 series, a gauge that goes stale, one that does not
    for (let b = 0; b < 5; b++) await remoteWrite(t.httpUrl, rwBatch('rwo_rw_requests', 50, [t0 + b * 2000, t0 + b * 2000 + 1000], b * 10));
    await remoteWrite(t.httpUrl, [
      [[['__name__', 'rwo_rw_gauge'], ['k', 'stale']], [[1, t0], [2, t0 + 1000], [STALE, t0 + 2000]]],
      [[['__name__', 'rwo_rw_gauge'], ['k', 'kept']], [[1, t0], [2, t0 + 1000]]],
    ]);
    // OTLP in: counter, gauge, histogram with an exemplar
    const now = Date.now();
    for (let n = 1; n <= 4; n++) await postOtlp(t, otlpBody(now - 10000 + n * 1000, n));

    const want = await exportTricorder(t, '{__name__=~"rwo_.*"}');
    assert.ok(want.size >= 500 + 4 + 4 * 7, `tricorder holds ${want.size} samples`);
    const m = await eventually(async () => {
      const mm = await t.metrics();
      return metricSum(mm, 'prometheus_remote_storage_samples_total', { remote_name: 'prom' }) >= want.size + 1 &&
        metricSum(mm, 'prometheus_remote_storage_samples_total', { remote_name: 'vm' }) >= want.size + 1 ? mm : null;
    }, 20000, 'both targets acknowledged every sample');
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_failed_total'), 0, prom.log + t.stderr);
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_dropped_total'), 0);
    assert.ok(metricSum(m, 'prometheus_remote_storage_exemplars_total', { remote_name: 'prom' }) >= 4);
    assert.ok(metricSum(m, 'prometheus_remote_storage_queue_highest_sent_timestamp_seconds', { remote_name: 'vm' }) >= (now - 6000) / 1000);

    const fromVM = await eventually(async () => { const e = await exportVM(vm, '{__name__=~"rwo_.*"}'); return e.size >= want.size ? e : null; }, 15000, 'VM export');
    sameSamples(want, fromVM, 'VictoriaMetrics', true);
    const fromProm = await exportProm(prom, '{__name__=~"rwo_.*"}');
    sameSamples(want, fromProm, 'Prometheus');

    // the staleness marker made it: at t0+2.5s the stale series is gone, the other is not
    const inst = async (q, at) => (await (await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(q)}&time=${at / 1000}`)).json()).data.result;
    assert.equal((await inst('rwo_rw_gauge{k="stale"}', t0 + 2500)).length, 0);
    assert.equal((await inst('rwo_rw_gauge{k="stale"}', t0 + 1500)).length, 1);
    assert.equal((await inst('rwo_rw_gauge{k="kept"}', t0 + 2500)).length, 1);

    // exemplars: Prometheus has the histogram's, with its trace id
    const ex = await (await fetch(`${prom.url}/api/v1/query_exemplars?query=${encodeURIComponent('{__name__=~"rwo_otlp_latency.*"}')}&start=${(now - 60000) / 1000}&end=${(now + 60000) / 1000}`)).json();
    const exl = ex.data.flatMap((s) => s.exemplars);
    assert.ok(exl.length >= 4, JSON.stringify(ex));
    assert.equal(exl[0].labels.trace_id, '0af7651916cd43dd8448eb211c80319c');
    // metadata: Prometheus 2.42 takes it without storing it; what was sent is counted
    await eventually(async () => metricSum(await t.metrics(), 'prometheus_remote_storage_metadata_total', { remote_name: 'prom' }) > 0, 10000, 'metadata sent');
    const mm = await t.metrics();
    assert.equal(metricSum(mm, 'prometheus_remote_storage_shards_max', { remote_name: 'vm' }), 8);
    assert.ok(metricSum(mm, 'prometheus_remote_storage_shards', { remote_name: 'vm' }) >= 1);
    // a clean stop (positions saved; under ASan: no leak report)
    const st = await t.stop();
    assert.equal(st.code, 0, t.stderr.slice(-2000));
  } finally {
    await t.stop();
    t.cleanup();
    await vm.stop();
    await prom.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// how long the target stays down after the restart: 4 s in the suite; the note's run used
// TR_E2E_RW_OUTAGE_S=180 (minutes of outage, dozens of capped back-off cycles)
const OUTAGE_MS = Number(process.env.TR_E2E_RW_OUTAGE_S || 4) * 1000;

function walBytes(dataDir) {
  const d = join(dataDir, 'metrics', 'wal');
  return readdirSync(d).filter((f) => /^\d{8}$/.test(f)).reduce((a, f) => a + statSync(join(d, f)).size, 0);
}

test('target down, tricorder restarted meanwhile, target up: it catches up and nothing is missing', { skip: !HAVE && 'no victoria-metrics' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-rwo-down-'));
  const dataDir = join(dir, 'data');
  const vmPort = await freePort();
  const cfg = writeConfig(dir, [{ url: `http://127.0.0.1:${vmPort}/api/v1/write`, name: 'vm', per: 2000 }]);
  const args = ['--remote-write-config', cfg, '--wal-segment-size', '64KiB', '--shutdown-timeout', '1s'];
  let t = await start({ args, dataDir });
  let vm;
  const outageStart = Date.now();
  try {
    const t0 = Date.now() - 600000;
    let b = 0;
    const send = async () => { await remoteWrite(t.httpUrl, rwBatch('rwo_down', 200, [t0 + b * 2000, t0 + b * 2000 + 1000], b * 10)); b++; };
    for (let i = 0; i < 6; i++) { await send(); await sleep(500); }
    // a head cut checkpoints the WAL: the segments the target still needs stay
    assert.equal((await fetch(`${t.httpUrl}/api/v1/admin/tsdb/snapshot`, { method: 'POST' })).status, 200);
    let m = await t.metrics();
    assert.ok(metricSum(m, 'prometheus_remote_storage_samples_retried_total') > 0, 'retries while the target is down');
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_total'), 0);
    // restart tricorder while the target is down
    await t.stop();
    t = await start({ args, dataDir });
    for (let i = 0; i < 6; i++) { await send(); await sleep(500); }
    await sleep(OUTAGE_MS); // more back-off cycles (the back-off tops out at 5 s)
    const segs = readdirSync(join(dataDir, 'metrics', 'wal')).filter((f) => /^\d{8}$/.test(f));
    assert.ok(segs.length >= 3, `WAL segments rotated during the outage: ${segs}`);
    const want = await exportTricorder(t, '{__name__="rwo_down_total"}');
    assert.equal(want.size, 12 * 200 * 2);
    // the target comes up
    const outage = Date.now() - outageStart;
    console.log(`# outage: ${outage} ms, ${segs.length} WAL segments, ${metricSum(await t.metrics(), "prometheus_remote_storage_samples_retried_total")} samples retried since the restart`);
    vm = await startVM(dir, vmPort);
    await eventually(async () => metricSum(await t.metrics(), 'prometheus_remote_storage_samples_total') >= want.size, 30000, 'caught up');
    const got = await eventually(async () => { const e = await exportVM(vm, '{__name__="rwo_down_total"}'); return e.size >= want.size ? e : null; }, 15000, 'VM export');
    sameSamples(want, got, `VictoriaMetrics after a ${outage} ms outage`, true);
    m = await t.metrics();
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_dropped_total'), 0);
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_failed_total'), 0);
  } finally {
    await t.stop();
    if (vm) await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('target down for good: the WAL stays under --remote-write-max-backlog, the oldest are dropped and counted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-rwo-forever-'));
  const dataDir = join(dir, 'data');
  const deadPort = await freePort();
  const cfg = writeConfig(dir, [{ url: `http://127.0.0.1:${deadPort}/api/v1/write`, name: 'dead' }]);
  const backlog = 256 * 1024, seg = 64 * 1024;
  const t = await start({ args: ['--remote-write-config', cfg, '--wal-segment-size', '64KiB', '--remote-write-max-backlog', '256KiB', '--shutdown-timeout', '1s'], dataDir });
  try {
    const t0 = Date.now() - 600000;
    for (let b = 0; b < 100; b++) {
      await remoteWrite(t.httpUrl, rwBatch('rwo_forever', 200, [t0 + b * 2000, t0 + b * 2000 + 1000], b));
      if (b % 20 === 19) assert.equal((await fetch(`${t.httpUrl}/api/v1/admin/tsdb/snapshot`, { method: 'POST' })).status, 200);
    }
    assert.equal((await fetch(`${t.httpUrl}/api/v1/admin/tsdb/snapshot`, { method: 'POST' })).status, 200);
    const bytes = walBytes(dataDir);
    // kept for the target: at most the backlog; beyond it only the segment being written
    assert.ok(bytes <= backlog + 2 * seg, `WAL ${bytes} bytes`);
    const m = await t.metrics();
    const dropped = metricSum(m, 'prometheus_remote_storage_samples_dropped_total', { remote_name: 'dead' });
    assert.ok(dropped > 0 && dropped <= 100 * 400, `dropped ${dropped}`);
    assert.equal(t.stderr.split('\n').filter((l) => l.includes('further behind than --remote-write-max-backlog')).length, 1, 'logged once');
  } finally {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('429 with Retry-After is honoured; 400 is not retried and is counted', async () => {
  const hits = { slow: [], bad: [] };
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const which = req.url.includes('slow') ? 'slow' : 'bad';
      hits[which].push({ at: Date.now(), headers: req.headers, len: Buffer.concat(chunks).length });
      if (which === 'bad') { res.writeHead(400); res.end('bad sample'); return; }
      if (hits.slow.length === 1) { res.writeHead(429, { 'Retry-After': '2' }); res.end('slow down'); return; }
      res.writeHead(204); res.end();
    });
  });
  const port = await freePort();
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-rwo-429-'));
  const cfg = writeConfig(dir, [
    { url: `http://127.0.0.1:${port}/slow`, name: 'slow' },
    { url: `http://127.0.0.1:${port}/bad`, name: 'bad', extra: ['headers: {X-Scope-OrgID: tenant-1}', 'basic_auth: {username: u, password: p}'] },
  ]);
  const t = await start({ args: ['--remote-write-config', cfg] });
  try {
    await remoteWrite(t.httpUrl, [[[['__name__', 'rwo_429'], ['a', 'b']], [[1, Date.now() - 1000]]]]);
    await eventually(async () => metricSum(await t.metrics(), 'prometheus_remote_storage_samples_total', { remote_name: 'slow' }) === 1, 15000, 'sent after the 429');
    const slow = hits.slow.filter((h) => h.len > 0 && h.headers['content-encoding'] === 'snappy');
    assert.ok(slow.length >= 2);
    assert.ok(slow[1].at - slow[0].at >= 1900, `retried ${slow[1].at - slow[0].at} ms after a Retry-After of 2 s`);
    assert.equal(slow[0].headers['x-prometheus-remote-write-version'], '0.1.0');
    assert.equal(slow[0].headers['content-type'], 'application/x-protobuf');
    assert.match(slow[0].headers['user-agent'], /^tricorder\//);
    await eventually(async () => metricSum(await t.metrics(), 'prometheus_remote_storage_samples_failed_total', { remote_name: 'bad' }) === 1, 10000, '400 counted');
    await sleep(1500);
    const m = await t.metrics();
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_retried_total', { remote_name: 'bad' }), 0);
    const badSamples = hits.bad.filter((h) => h.len > 0);
    assert.ok(badSamples.length >= 1);
    assert.equal(badSamples[0].headers['x-scope-orgid'], 'tenant-1');
    assert.equal(badSamples[0].headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.equal(metricSum(m, 'prometheus_remote_storage_samples_retried_total', { remote_name: 'slow' }), 1);
  } finally {
    await t.stop();
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
