// The metrics store through the real binary: data acknowledged by /api/v1/import/prometheus
// survives kill -9 and clean restarts, export and federate give it back, and the metadata
// APIs answer exactly as Debian's Prometheus 2.42 does for the same data (Prometheus scrapes
// the same text from a tiny local HTTP server; tricorder gets it through the import route).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, freePort, sleep } from './lib/tricorder.mjs';

const PROMETHEUS = '/usr/bin/prometheus';

async function importText(t, text) {
  const r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: text });
  assert.equal(r.status, 204, `import: ${r.status} ${await r.text()}`);
}

async function getJSON(base, path) {
  const r = await fetch(base + path);
  return { status: r.status, body: await r.json() };
}

async function exportAll(t) {
  const r = await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=${encodeURIComponent('{__name__=~".+"}')}`);
  assert.equal(r.status, 200);
  return (await r.text()).split('\n').filter(Boolean).sort();
}

// `n` series × `k` samples, one line each, timestamps in ms ending near now.
function batch(n, k, now, tag) {
  const lines = [];
  for (let s = 0; s < n; s++)
    for (let i = 0; i < k; i++)
      lines.push(`e2e_batch_total{batch="${tag}",series="${s}"} ${s * 1000 + i} ${now - (k - i) * 1000}`);
  return lines.join('\n') + '\n';
}

test('acknowledged writes survive kill -9 and clean restarts', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tricorder-metrics-'));
  try {
    const now = Date.now();
    let t = await start({ dataDir });
    for (let b = 0; b < 5; b++) await importText(t, batch(40, 30, now - b * 60000, `b${b}`));
    const before = await exportAll(t);
    assert.equal(before.length, 5 * 40 * 30);
    await t.kill9();

    t = await start({ dataDir });
    assert.deepEqual(await exportAll(t), before, 'after kill -9 every acknowledged sample is back');
    // more data after the crash recovery, then a clean stop: the head becomes a block
    await importText(t, batch(10, 5, now, 'after'));
    const before2 = await exportAll(t);
    assert.equal(before2.length, before.length + 50);
    const st = await t.stop();
    assert.equal(st.code, 0);
    const blocks = readdirSync(join(dataDir, 'metrics', 'blocks')).filter((d) => !d.endsWith('.tmp'));
    assert.ok(blocks.length >= 1, 'a clean stop cuts the head into a block');

    t = await start({ dataDir });
    assert.deepEqual(await exportAll(t), before2, 'after a clean restart everything is there');
    // a flush through the admin API keeps the data readable
    const fl = await fetch(`${t.httpUrl}/api/v1/admin/tsdb/snapshot`, { method: 'POST' });
    assert.equal(fl.status, 200);
    const snap = await fl.json();
    assert.equal(snap.status, 'success');
    assert.ok(existsSync(join(dataDir, 'metrics', 'snapshots', snap.data.name)));
    assert.deepEqual(await exportAll(t), before2);
    // federate: latest sample per series, TYPE lines, instance="" added
    const fed = await (await fetch(`${t.httpUrl}/federate?match[]=${encodeURIComponent('e2e_batch_total{batch="after"}')}`)).text();
    const lines = fed.split('\n').filter(Boolean);
    assert.equal(lines[0], '# TYPE e2e_batch_total untyped');
    assert.equal(lines.length, 11);
    assert.match(lines[1], /^e2e_batch_total\{batch="after",series="\d+",instance=""\} \d+ \d+$/);
    assert.equal((await t.stop()).code, 0);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

// The same families through both servers: a counter, a gauge, a histogram and a summary, with
// explicit job/instance labels (Prometheus keeps them with honor_labels).
function exposition(ts) {
  return `# HELP e2e_requests_total Requests served, by code.
# TYPE e2e_requests_total counter
e2e_requests_total{job="api",instance="h1:80",code="200",method="GET"} 1027 ${ts}
e2e_requests_total{job="api",instance="h1:80",code="500",method="GET"} 3 ${ts}
e2e_requests_total{job="api",instance="h2:80",code="200",method="POST"} 12 ${ts}
# HELP e2e_temperature_celsius A "gauge" with \\\\ and a \\n newline in its help.
# TYPE e2e_temperature_celsius gauge
e2e_temperature_celsius{job="sensors",instance="s1",room="lab"} 21.5 ${ts}
e2e_temperature_celsius{job="sensors",instance="s2",room="hall"} -3.25 ${ts}
# HELP e2e_latency_seconds Request latency.
# TYPE e2e_latency_seconds histogram
e2e_latency_seconds_bucket{job="api",instance="h1:80",le="0.1"} 5 ${ts}
e2e_latency_seconds_bucket{job="api",instance="h1:80",le="0.5"} 9 ${ts}
e2e_latency_seconds_bucket{job="api",instance="h1:80",le="+Inf"} 10 ${ts}
e2e_latency_seconds_sum{job="api",instance="h1:80"} 2.75 ${ts}
e2e_latency_seconds_count{job="api",instance="h1:80"} 10 ${ts}
# HELP e2e_rpc_duration_seconds RPC duration.
# TYPE e2e_rpc_duration_seconds summary
e2e_rpc_duration_seconds{job="rpc",instance="r1",quantile="0.5"} 0.01 ${ts}
e2e_rpc_duration_seconds{job="rpc",instance="r1",quantile="0.99"} 0.2 ${ts}
e2e_rpc_duration_seconds_sum{job="rpc",instance="r1"} 17 ${ts}
e2e_rpc_duration_seconds_count{job="rpc",instance="r1"} 900 ${ts}
`;
}

test('metadata APIs answer as Prometheus 2.42 does on the same data', { skip: !existsSync(PROMETHEUS) && 'Debian prometheus not installed' }, async () => {
  const ts = Date.now() - 30000;
  const text = exposition(ts);
  // the scrape target
  const target = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(text);
  });
  const targetPort = await freePort();
  await new Promise((r) => target.listen(targetPort, '127.0.0.1', r));
  const promDir = mkdtempSync(join(tmpdir(), 'prom-e2e-'));
  writeFileSync(join(promDir, 'prometheus.yml'), `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: static
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:${targetPort}']
`);
  const promPort = await freePort();
  const prom = spawn(PROMETHEUS, [
    `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr.on('data', (d) => { promErr += d; });
  const promUrl = `http://127.0.0.1:${promPort}`;
  const t = await start();
  try {
    await importText(t, text);
    const sel = encodeURIComponent('{__name__=~"e2e_.+"}');
    // wait until Prometheus has scraped the target (and its metadata)
    const deadline = Date.now() + 30000;
    for (;;) {
      try {
        const s = await getJSON(promUrl, `/api/v1/series?match[]=${sel}`);
        const m = await getJSON(promUrl, '/api/v1/metadata');
        if (s.body.data?.length === 14 && Object.keys(m.body.data || {}).length === 4) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`Prometheus did not scrape in time: ${promErr}`);
      await sleep(300);
    }
    const paths = [
      `/api/v1/series?match[]=${sel}`,
      `/api/v1/series?match[]=e2e_requests_total&match[]=${encodeURIComponent('e2e_temperature_celsius{room!="x"}')}`,
      `/api/v1/series?match[]=${encodeURIComponent('e2e_requests_total{code=~"2..",method!~"P.*"}')}`,
      `/api/v1/series?match[]=${sel}&start=${(ts - 60000) / 1000}&end=${new Date(ts + 60000).toISOString()}`,
      `/api/v1/labels?match[]=${sel}`,
      `/api/v1/labels?match[]=e2e_latency_seconds_bucket`,
      `/api/v1/label/__name__/values?match[]=${sel}`,
      `/api/v1/label/le/values?match[]=${sel}`,
      `/api/v1/label/code/values?match[]=${encodeURIComponent('{job="api"}')}`,
      `/api/v1/label/nonexistent/values?match[]=${sel}`,
      '/api/v1/metadata',
      '/api/v1/metadata?metric=e2e_temperature_celsius',
      '/api/v1/metadata?metric=nope',
      '/api/v1/metadata?limit=abc',
      '/api/v1/series',
      `/api/v1/series?match[]=${encodeURIComponent('{job=~".*"}')}`,
      `/api/v1/series?match[]=${sel}&start=abc`,
      '/api/v1/label/1bad/values',
    ];
    for (const p of paths) {
      const [a, b] = await Promise.all([getJSON(promUrl, p), getJSON(t.httpUrl, p)]);
      assert.equal(b.status, a.status, `${p}: status`);
      assert.deepEqual(Object.keys(b.body), Object.keys(a.body), `${p}: key order`);
      assert.deepEqual(b.body, a.body, `${p}: body`);
    }
    const bi = await getJSON(t.httpUrl, '/api/v1/status/buildinfo');
    const pbi = await getJSON(promUrl, '/api/v1/status/buildinfo');
    assert.deepEqual(Object.keys(bi.body.data), Object.keys(pbi.body.data));
    const st = await getJSON(t.httpUrl, '/api/v1/status/tsdb');
    const pst = await getJSON(promUrl, '/api/v1/status/tsdb');
    assert.deepEqual(Object.keys(st.body.data), Object.keys(pst.body.data));
    assert.deepEqual(Object.keys(st.body.data.headStats), Object.keys(pst.body.data.headStats));
    assert.equal(st.body.data.headStats.numSeries, 14);
    assert.deepEqual(st.body.data.seriesCountByMetricName[0], { name: 'e2e_latency_seconds_bucket', value: 3 });
  } finally {
    prom.kill('SIGTERM');
    await new Promise((r) => prom.once('exit', r));
    target.close();
    await t.stop();
    t.cleanup();
    rmSync(promDir, { recursive: true, force: true });
  }
});
