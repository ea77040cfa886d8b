// Exemplars end to end: in over OTLP/HTTP (JSON) and remote write, out of
// /api/v1/query_exemplars with their trace ids, still there after kill -9; and the response
// compared with Debian's Prometheus 2.42, which scrapes OpenMetrics exemplars and remote-writes
// them to tricorder (send_exemplars), so both answer from the same exemplars.
//
// The OTel JS SDK 2.x ships exemplar classes but does not wire them into its aggregators or
// exporters (no exemplar filter option on MeterProvider, serializers write no exemplars), so
// the OTLP request here is the SDK's own serialised histogram, recorded inside a real span,
// with the exemplar of that span added by hand in OTLP/JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { JsonMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { start, freePort, sleep } from './lib/tricorder.mjs';

const PROMETHEUS = '/usr/bin/prometheus';

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

async function exemplars(t, query, start = '', end = '', method = 'GET') {
  const params = new URLSearchParams({ query });
  if (start !== '') params.set('start', String(start));
  if (end !== '') params.set('end', String(end));
  const r = method === 'GET'
    ? await fetch(`${t.httpUrl}/api/v1/query_exemplars?${params}`)
    : await fetch(`${t.httpUrl}/api/v1/query_exemplars`, {
      method: 'POST', body: params.toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
  return { status: r.status, body: await r.json() };
}

// One OTLP/JSON request made by the SDK: a histogram observation recorded inside an active
// span, plus the exemplar of that span (trace and span id, a filtered attribute).
async function otlpWithExemplar() {
  const spans = new InMemorySpanExporter();
  const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }).getTracer('e2e');
  const reader = new TestReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'checkout', 'service.instance.id': 'pod-1' }),
    readers: [reader],
  });
  const hist = provider.getMeter('e2e-exemplars').createHistogram('checkout.latency', { unit: 's' });
  let span;
  tracer.startActiveSpan('POST /pay', (s) => {
    hist.record(0.42, { route: '/pay' });
    span = s.spanContext();
    s.end();
  });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  const req = JSON.parse(Buffer.from(JsonMetricsSerializer.serializeRequest(resourceMetrics)).toString());
  const point = req.resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0];
  point.exemplars = [{
    timeUnixNano: point.timeUnixNano, asDouble: 0.42, traceId: span.traceId, spanId: span.spanId,
    filteredAttributes: [{ key: 'user.id', value: { stringValue: 'u-7' } }],
  }];
  return { body: JSON.stringify(req), span, tMs: Number(BigInt(point.timeUnixNano) / 1000000n) };
}

test('OTLP histogram exemplars come back with their trace id, also after kill -9', async () => {
  let t = await start();
  const dataDir = t.dataDir;
  try {
    const { body, span, tMs } = await otlpWithExemplar();
    const r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 200, await r.text());
    const want = [{
      seriesLabels: {
        __name__: 'checkout_latency_seconds_bucket', instance: 'pod-1', job: 'checkout', le: '5',
        otel_scope_name: 'e2e-exemplars', route: '/pay',
      },
      exemplars: [{ labels: { span_id: span.spanId, trace_id: span.traceId, user_id: 'u-7' }, value: '0.42', timestamp: tMs / 1000 }],
    }];
    const q = 'checkout_latency_seconds_bucket';
    let res = await exemplars(t, q);
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'success');
    // the promoted resource attributes (all by default) are labels too: compare what we chose
    const pick = (d) => d.map((s) => ({
      seriesLabels: Object.fromEntries(Object.entries(s.seriesLabels).filter(([k]) => k in want[0].seriesLabels)),
      exemplars: s.exemplars,
    }));
    assert.deepEqual(pick(res.body.data), want);
    assert.deepEqual(Object.keys(res.body.data[0]), ['seriesLabels', 'exemplars']);
    assert.deepEqual(Object.keys(res.body.data[0].exemplars[0]), ['labels', 'value', 'timestamp']);
    // POST (form-encoded, as Grafana sends it) and a time range around the exemplar
    res = await exemplars(t, `{__name__="${q}",route="/pay"}`, (tMs - 1000) / 1000, new Date(tMs + 1000).toISOString(), 'POST');
    assert.deepEqual(pick(res.body.data), want);
    // outside the range, or no such series: an empty list
    assert.deepEqual((await exemplars(t, q, (tMs + 1000) / 1000)).body, { status: 'success', data: [] });
    assert.deepEqual((await exemplars(t, 'nope', '', '')).body, { status: 'success', data: [] });
    // Grafana's probe sends start/end in ms (far future as seconds): success, empty
    assert.deepEqual((await exemplars(t, 'test', Date.now() - 3600000, Date.now())).body, { status: 'success', data: [] });
    // any expression: the exemplars of every selector in it, as Prometheus extracts them
    res = await exemplars(t, `sum by (route) (rate(${q}[5m])) / scalar(nope)`);
    assert.equal(res.status, 200);
    assert.deepEqual(pick(res.body.data), want);
    // not PromQL, no query, bad times: 400 bad_data
    for (const [query, s, e] of [['rate(checkout_latency_seconds_bucket[5m]', '', ''], ['', '', ''], [q, 'abc', ''], [q, '10', '5']]) {
      const b = await exemplars(t, query, s, e);
      assert.equal(b.status, 400, `${query} ${s} ${e}`);
      assert.equal(b.body.status, 'error');
      assert.equal(b.body.errorType, 'bad_data');
    }
    const m = await t.metrics();
    assert.equal(m.get('tricorder_tsdb_exemplar_exemplars_in_storage'), 1);
    assert.equal(m.get('tricorder_tsdb_exemplar_series_with_exemplars_in_storage'), 1);
    assert.equal(m.get('tricorder_tsdb_exemplar_exemplars_appended_total'), 1);
    assert.equal(m.get('tricorder_tsdb_exemplar_out_of_order_exemplars_total'), 0);
    assert.equal(m.get('tricorder_tsdb_exemplar_max_exemplars'), 100000);

    // the acknowledged exemplar survives kill -9
    await t.kill9();
    t = await start({ dataDir });
    res = await exemplars(t, q);
    assert.deepEqual(pick(res.body.data), want);
    // the same request again: a duplicate, dropped
    assert.equal((await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } })).status, 200);
    assert.equal((await exemplars(t, q)).body.data[0].exemplars.length, 1);
  } finally {
    await t.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

// ---- remote write, hand-encoded: protobuf + snappy (literals only) ----

function varint(n) {
  n = BigInt(n);
  const out = [];
  while (n >= 0x80n) { out.push(Number((n & 0x7fn) | 0x80n)); n >>= 7n; }
  out.push(Number(n));
  return Buffer.from(out);
}
const field = (num, wire, payload) => Buffer.concat([varint((num << 3) | wire), payload]);
const bytesField = (num, buf) => field(num, 2, Buffer.concat([varint(buf.length), buf]));
const labelsOf = (labels) => labels.map(([n, v]) => bytesField(1, Buffer.concat([bytesField(1, Buffer.from(n)), bytesField(2, Buffer.from(v))])));
const double = (v) => { const d = Buffer.alloc(8); d.writeDoubleLE(v); return d; };
// series: [labels, samples [[v, t]], exemplars [[labels, v, t]]]
function writeRequest(...series) {
  return Buffer.concat(series.map(([labels, samples, exs = []]) => {
    const parts = labelsOf(labels);
    for (const [v, t] of samples) parts.push(bytesField(2, Buffer.concat([field(1, 1, double(v)), field(2, 0, varint(t))])));
    for (const [el, v, t] of exs) parts.push(bytesField(3, Buffer.concat([...labelsOf(el), field(2, 1, double(v)), field(3, 0, varint(t))])));
    return bytesField(1, Buffer.concat(parts));
  }));
}
function snappyLiteral(buf) {
  const parts = [varint(buf.length)];
  for (let i = 0; i < buf.length; i += 60) {
    const chunk = buf.subarray(i, i + 60);
    parts.push(Buffer.from([(chunk.length - 1) << 2]), chunk);
  }
  return Buffer.concat(parts);
}

test('remote write exemplars are stored, queried and survive kill -9', async () => {
  let t = await start();
  const dataDir = t.dataDir;
  const now = Date.now() - 5000;
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  try {
    const le05 = [['__name__', 'rw_latency_seconds_bucket'], ['job', 'api'], ['le', '0.5']];
    const le1 = [['__name__', 'rw_latency_seconds_bucket'], ['job', 'api'], ['le', '1']];
    const post = async (...series) => {
      const r = await fetch(`${t.httpUrl}/api/v1/write`, {
        method: 'POST', body: snappyLiteral(writeRequest(...series)),
        headers: { 'Content-Encoding': 'snappy', 'Content-Type': 'application/x-protobuf', 'X-Prometheus-Remote-Write-Version': '0.1.0' },
      });
      assert.equal(r.status, 204, await r.text());
    };
    // samples and exemplars in one series entry; then, as Prometheus sends them, an entry with
    // exemplars only; then an out-of-order one (refused, counted) and one with labels over 128 runes
    await post([le05, [[3, now]], [[[['trace_id', trace], ['span_id', '00f067aa0ba902b7']], 0.31, now]]], [le1, [[5, now]]]);
    await post([le1, [], [[[['trace_id', trace]], 0.75, now + 500]]]);
    await post([le1, [], [[[['trace_id', 'aa']], 0.9, now], [[['trace_id', 'x'.repeat(130)]], 0.9, now + 900]]]);
    const want = [
      { seriesLabels: { __name__: 'rw_latency_seconds_bucket', job: 'api', le: '0.5' },
        exemplars: [{ labels: { span_id: '00f067aa0ba902b7', trace_id: trace }, value: '0.31', timestamp: now / 1000 }] },
      { seriesLabels: { __name__: 'rw_latency_seconds_bucket', job: 'api', le: '1' },
        exemplars: [{ labels: { trace_id: trace }, value: '0.75', timestamp: (now + 500) / 1000 }] },
    ];
    let res = await exemplars(t, '{__name__="rw_latency_seconds_bucket"}');
    assert.deepEqual(res.body, { status: 'success', data: want });
    res = await exemplars(t, 'rw_latency_seconds_bucket{le!="0.5"}');
    assert.deepEqual(res.body.data, [want[1]]);
    const m = await t.metrics();
    assert.equal(m.get('tricorder_tsdb_exemplar_exemplars_appended_total'), 2);
    assert.equal(m.get('tricorder_tsdb_exemplar_out_of_order_exemplars_total'), 1);
    assert.equal(m.get('tricorder_tsdb_exemplar_label_limit_rejections_total'), 1);
    await t.kill9();
    t = await start({ dataDir });
    res = await exemplars(t, '{__name__="rw_latency_seconds_bucket"}');
    assert.deepEqual(res.body, { status: 'success', data: want });
    // a clean restart keeps them too (they go into the WAL checkpoint written at close)
    await t.stop();
    t = await start({ dataDir });
    res = await exemplars(t, '{__name__="rw_latency_seconds_bucket"}');
    assert.deepEqual(res.body, { status: 'success', data: want });
  } finally {
    await t.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('--max-exemplars bounds the store, 0 turns it off', async () => {
  const t = await start({ args: ['--max-exemplars', '2'] });
  const off = await start({ args: ['--max-exemplars', '0'] });
  try {
    const now = Date.now() - 5000;
    const l = [['__name__', 'bounded_total']];
    const ex = [1, 2, 3].map((i) => [[['trace_id', `t${i}`]], i, now + i]);
    for (const s of [t, off]) {
      const r = await fetch(`${s.httpUrl}/api/v1/write`, { method: 'POST', body: snappyLiteral(writeRequest([l, [[1, now]], ex])), headers: { 'Content-Encoding': 'snappy' } });
      assert.equal(r.status, 204);
    }
    const res = await exemplars(t, 'bounded_total');
    assert.deepEqual(res.body.data[0].exemplars.map((e) => e.labels.trace_id), ['t2', 't3']);
    assert.deepEqual((await exemplars(off, 'bounded_total')).body, { status: 'success', data: [] });
    assert.equal((await off.metrics()).get('tricorder_tsdb_exemplar_max_exemplars'), 0);
  } finally {
    await t.stop();
    await off.stop();
    t.cleanup();
    off.cleanup();
  }
});

// ---- against Prometheus: it scrapes OpenMetrics exemplars and remote-writes them here ----

function openMetrics(tsSec) {
  const a = (tsSec + 0.5).toFixed(3), b = (tsSec + 1.25).toFixed(3);
  return `# TYPE e2e_ex_latency_seconds histogram
# HELP e2e_ex_latency_seconds Request latency.
e2e_ex_latency_seconds_bucket{le="0.1"} 5 # {trace_id="0af7651916cd43dd8448eb211c80319c",span_id="b7ad6b7169203331"} 0.0000001 ${a}
e2e_ex_latency_seconds_bucket{le="0.5"} 9 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.43 ${b}
e2e_ex_latency_seconds_bucket{le="+Inf"} 10 # {trace_id="5b8efff798038103d269b633813fc60c",user="ü"} 12345678901234567890123 ${tsSec}
e2e_ex_latency_seconds_sum 2.75
e2e_ex_latency_seconds_count 10
# TYPE e2e_ex_requests counter
# HELP e2e_ex_requests Requests.
e2e_ex_requests_total{code="200"} 17 # {trace_id="0af7651916cd43dd8448eb211c80319c"} 1 ${a}
# EOF
`;
}

test('query_exemplars answers as Prometheus 2.42 on the exemplars Prometheus remote-writes', {
  skip: !existsSync(PROMETHEUS) && 'Debian prometheus not installed',
}, async () => {
  const tsSec = Math.floor(Date.now() / 1000) - 30;
  const text = openMetrics(tsSec);
  const target = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/openmetrics-text; version=1.0.0; charset=utf-8' });
    res.end(text);
  });
  const targetPort = await freePort();
  await new Promise((r) => target.listen(targetPort, '127.0.0.1', r));
  const t = await start();
  const promDir = mkdtempSync(join(tmpdir(), 'prom-ex-e2e-'));
  writeFileSync(join(promDir, 'prometheus.yml'), `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: exemplars
    static_configs:
      - targets: ['127.0.0.1:${targetPort}']
remote_write:
  - url: ${t.httpUrl}/api/v1/write
    send_exemplars: true
    queue_config:
      batch_send_deadline: 500ms
`);
  const promPort = await freePort();
  const prom = spawn(PROMETHEUS, [
    `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn', '--enable-feature=exemplar-storage',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr.on('data', (d) => { promErr += d; });
  const promUrl = `http://127.0.0.1:${promPort}`;
  const ask = async (base, path) => {
    const r = await fetch(base + path);
    return { status: r.status, body: await r.json() };
  };
  // Prometheus' order of series is its map order: compare sorted
  const sorted = (b) => (Array.isArray(b.data) ? { ...b, data: [...b.data].sort((x, y) => JSON.stringify(x.seriesLabels).localeCompare(JSON.stringify(y.seriesLabels))) } : b);
  try {
    const all = `/api/v1/query_exemplars?query=${encodeURIComponent('{__name__=~"e2e_ex_.+"}')}`;
    const deadline = Date.now() + 40000;
    for (;;) {
      try {
        const [p, o] = await Promise.all([ask(promUrl, all), ask(t.httpUrl, all)]);
        if (p.body.data?.length === 4 && o.body.data?.length === 4) break;
      } catch { /* Prometheus not up yet */ }
      if (Date.now() > deadline) throw new Error(`exemplars did not arrive in time: ${promErr}`);
      await sleep(300);
    }
    const paths = [
      all,
      `/api/v1/query_exemplars?query=e2e_ex_latency_seconds_bucket&start=${tsSec}&end=${tsSec + 1}`,
      `/api/v1/query_exemplars?query=${encodeURIComponent('e2e_ex_latency_seconds_bucket{le=~"0.1|\\\\+Inf"}')}`,
      `/api/v1/query_exemplars?query=e2e_ex_requests_total&start=${new Date((tsSec + 2) * 1000).toISOString()}`,
      '/api/v1/query_exemplars?query=nothing_here',
      `/api/v1/query_exemplars?query=${encodeURIComponent('sum(rate(e2e_ex_requests_total[1m])) / sum(rate(e2e_ex_latency_seconds_bucket{le="+Inf"}[1m]))')}`,
      `/api/v1/query_exemplars?query=${encodeURIComponent('sum(')}`,
      '/api/v1/query_exemplars?query=test&start=1795561255000&end=1795563055000',
      '/api/v1/query_exemplars?query=e2e_ex_requests_total&start=abc',
    ];
    for (const p of paths) {
      const [a, b] = await Promise.all([ask(promUrl, p), ask(t.httpUrl, p)]);
      assert.equal(b.status, a.status, `${p}: status`);
      assert.deepEqual(sorted(b.body), sorted(a.body), `${p}: body`);
      if (a.body.data?.length) {
        assert.deepEqual(Object.keys(b.body.data[0]), Object.keys(a.body.data[0]), `${p}: key order`);
        assert.deepEqual(Object.keys(b.body.data[0].exemplars[0]), Object.keys(a.body.data[0].exemplars[0]), `${p}: key order`);
      }
    }
    // the re-scraped exemplars are duplicates: nothing was appended twice
    const m = await t.metrics();
    assert.equal(m.get('tricorder_tsdb_exemplar_exemplars_in_storage'), 4);
  } finally {
    prom.kill('SIGTERM');
    await new Promise((r) => prom.once('exit', r));
    target.close();
    await t.stop();
    t.cleanup();
    rmSync(promDir, { recursive: true, force: true });
  }
});
