// OTLP forwarding (--otlp-forward-endpoint): tricorder A receives from the real OpenTelemetry JS
// SDK exporters and forwards every export, through its disk queue, to tricorder B (the stand-in
// for an OTLP backend such as Tempo), over gRPC and over HTTP. B is stopped and restarted in the
// middle, A is restarted while B is down, and a tiny queue bound drops the oldest, counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricsProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as TraceGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as TraceProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as TraceJson } from '@opentelemetry/exporter-trace-otlp-http';

import { start, freePort, sleep, metricSum } from './lib/tricorder.mjs';

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

const exportOnce = (exporter, batch) => new Promise((resolve) => exporter.export(batch, resolve));

function makeSpans(service, n, round, pad = '') {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new SimpleSpanProcessor(mem)],
  });
  const tracer = provider.getTracer('fwd-e2e');
  for (let i = 0; i < n; i++) {
    tracer.startActiveSpan(`op ${round}.${i}`, (root) => {
      root.setAttribute('round', round);
      if (pad) root.setAttribute('pad', pad);
      tracer.startSpan('child').end();
      root.end();
    });
  }
  return mem.getFinishedSpans();
}

// one counter series per service whose value after `round` rounds is known
async function makeMetrics(service, round) {
  const reader = new TestReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': service }), readers: [reader] });
  const c = provider.getMeter('fwd-e2e').createCounter('fwd.requests');
  c.add(round + 1, { route: '/a' });
  const { resourceMetrics, errors } = await reader.collect();
  assert.equal(errors.length, 0);
  await provider.shutdown();
  return resourceMetrics;
}

// B on fixed ports (so A's endpoint stays valid across B's restarts)
const startAt = (ports, dataDir) => start({ ports, dataDir });

// span ids (with how often each appears) that `t` holds for `service`, via the Jaeger API
async function spanCounts(t, service) {
  const r = await fetch(`http://127.0.0.1:${t.ports.http}/api/traces?service=${service}&limit=100000&lookback=1h`);
  assert.equal(r.status, 200);
  const body = await r.json();
  const seen = new Map();
  for (const tr of body.data || []) for (const s of tr.spans) seen.set(s.spanID, (seen.get(s.spanID) || 0) + 1);
  return seen;
}

async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function waitAllSpans(b, service, sentIds) {
  let got;
  await waitFor(async () => { got = await spanCounts(b, service); return got.size >= sentIds.size; }, 30000,
    `${sentIds.size} spans of ${service} in the target`);
  for (const id of sentIds) assert.equal(got.get(id), 1, `span ${id} arrived ${got.get(id) || 0} times`);
  assert.equal(got.size, sentIds.size);
}

async function queryValue(t, q) {
  const r = await fetch(`http://127.0.0.1:${t.ports.http}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = await r.json();
  assert.equal(body.status, 'success', JSON.stringify(body));
  return body.data.result.map((s) => ({ metric: s.metric, value: s.value[1] }));
}

function dirBytes(d) {
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

const kinds = [
  {
    name: 'grpc', scheme: 'grpc', port: (p) => p.grpc,
    traces: (a) => new TraceGrpc({ url: a.grpcUrl }), metrics: (a) => new MetricsGrpc({ url: a.grpcUrl }),
  },
  {
    name: 'http', scheme: 'http', port: (p) => p.otlpHttp, opts: ';compression=gzip;header=X-Scope-OrgID=e2e',
    traces: (a) => new TraceProto({ url: `${a.otlpHttpUrl}/v1/traces` }),
    metrics: (a) => new MetricsProto({ url: `${a.otlpHttpUrl}/v1/metrics` }),
  },
];

for (const k of kinds) {
  test(`forward over ${k.name}: the target stopped and restarted, then the forwarder restarted while the target is down: every span arrives once`, async () => {
    const service = `fwd-${k.name}`;
    const bPorts = { http: await freePort(), grpc: await freePort(), otlpHttp: await freePort() };
    const bDir = mkdtempSync(join(tmpdir(), 'tricorder-e2e-fwd-b-'));
    const aDir = mkdtempSync(join(tmpdir(), 'tricorder-e2e-fwd-a-'));
    const fwdArgs = ['--otlp-forward-endpoint', `${k.scheme}://127.0.0.1:${k.port(bPorts)}${k.opts || ''}`];
    let a, b;
    const sent = new Set();
    let rounds = 0;
    const exportRound = async (json) => {
      const spans = makeSpans(service, 5, rounds);
      const te = json ? new TraceJson({ url: `${a.otlpHttpUrl}/v1/traces` }) : k.traces(a);
      const r = await exportOnce(te, spans);
      assert.equal(r.code, 0, `trace export failed: ${r.error}`);
      await te.shutdown();
      for (const s of spans) sent.add(s.spanContext().spanId);
      const me = k.metrics(a);
      const mr = await exportOnce(me, await makeMetrics(service, rounds));
      assert.equal(mr.code, 0, `metrics export failed: ${mr.error}`);
      await me.shutdown();
      rounds++;
    };
    try {
      b = await startAt(bPorts, bDir);
      a = await start({ args: fwdArgs, dataDir: aDir });
      for (let i = 0; i < 4; i++) await exportRound(false);
      await exportRound(true); // OTLP/JSON in: forwarded as protobuf
      assert.equal((await b.stop()).code, 0);
      for (let i = 0; i < 4; i++) await exportRound(false); // queued on A's disk meanwhile
      b = await startAt(bPorts, bDir);
      for (let i = 0; i < 3; i++) await exportRound(false);
      await waitAllSpans(b, service, sent);

      // the forwarder restarted while the target is down: its queue survives
      assert.equal((await b.stop()).code, 0);
      for (let i = 0; i < 3; i++) await exportRound(false);
      assert.equal((await a.stop()).code, 0, a.stderr);
      a = await start({ args: fwdArgs, dataDir: aDir });
      for (let i = 0; i < 2; i++) await exportRound(false);
      b = await startAt(bPorts, bDir);
      await waitAllSpans(b, service, sent);

      // metrics forwarded too: the counter series reads the same on both
      const q = `fwd_requests_total{service_name="${service}"}`;
      const want = await queryValue(a, q);
      assert.equal(want.length, 1, JSON.stringify(want));
      await waitFor(async () => {
        const got = await queryValue(b, q);
        return got.length === 1 && got[0].value === want[0].value;
      }, 20000, `${q} on the target equal to the forwarder's (${want[0].value})`);

      const ep = `${k.scheme}://127.0.0.1:${k.port(bPorts)}`;
      await waitFor(async () => metricSum(await a.metrics(), 'tricorder_otlp_forward_queue_bytes', { endpoint: ep }) === 0,
        10000, 'the queue to drain');
      const m = await a.metrics();
      // since A's restart: 2 rounds queued after it plus what was left from before, all sent
      assert.ok(metricSum(m, 'tricorder_otlp_forward_sent_items_total', { endpoint: ep }) >= 2 * 10);
      assert.equal(metricSum(m, 'tricorder_otlp_forward_dropped_items_total', { endpoint: ep }), 0);
      assert.equal(metricSum(m, 'tricorder_otlp_forward_failed_items_total', { endpoint: ep }), 0);
      if (k.name === 'http') {
        // the flags API shows the endpoint without its options (a header may hold a secret)
        const flags = await (await fetch(`${a.httpUrl}/api/v1/status/flags`)).json();
        assert.equal(flags.data['otlp-forward-endpoint'], ep);
      }
    } finally {
      if (a) await a.stop();
      if (b) await b.stop();
      rmSync(aDir, { recursive: true, force: true });
      rmSync(bDir, { recursive: true, force: true });
    }
  });
}

test('target down with a tiny queue bound: the disk stays under it, the oldest exports are dropped and counted', async () => {
  const dead = await freePort(); // nobody listens here
  const bound = 65536;
  const ep = `grpc://127.0.0.1:${dead}`;
  const metricsOnly = `http://127.0.0.1:${await freePort()}`;
  const a = await start({
    args: ['--otlp-forward-endpoint', ep, '--otlp-forward-max-queue-bytes', String(bound),
      '--otlp-forward-endpoint', `${metricsOnly};signals=metrics`],
  });
  try {
    let spans = 0;
    for (let round = 0; round < 40; round++) {
      const batch = makeSpans('fwd-bound', 5, round, 'x'.repeat(1000));
      const te = new TraceGrpc({ url: a.grpcUrl });
      const r = await exportOnce(te, batch);
      assert.equal(r.code, 0, `export failed: ${r.error}`); // acknowledged: stored locally
      await te.shutdown();
      spans += batch.length;
    }
    const qdir = join(a.dataDir, 'otlp-forward'); // both endpoints' queues (the second stays empty)
    assert.ok(dirBytes(qdir) <= bound + 100, `queue dir holds ${dirBytes(qdir)} bytes, bound ${bound}`);
    const m = await waitFor(async () => {
      const mm = await a.metrics();
      return metricSum(mm, 'tricorder_otlp_forward_dropped_items_total', { endpoint: ep }) > 0 ? mm : null;
    }, 5000, 'dropped items to be counted');
    const queued = metricSum(m, 'tricorder_otlp_forward_queued_items_total', { endpoint: ep });
    const dropped = metricSum(m, 'tricorder_otlp_forward_dropped_items_total', { endpoint: ep });
    assert.equal(queued, spans);
    assert.ok(dropped > 0 && dropped < spans, `dropped ${dropped} of ${spans}`);
    assert.ok(metricSum(m, 'tricorder_otlp_forward_queue_bytes', { endpoint: ep }) <= bound);
    assert.ok(metricSum(m, 'tricorder_otlp_forward_retries_total', { endpoint: ep }) > 0);
    // signals=metrics: spans are not queued for that endpoint
    assert.equal(metricSum(m, 'tricorder_otlp_forward_queued_items_total', { endpoint: metricsOnly }), 0);
    // the local store has every span regardless
    const local = await spanCounts(a, 'fwd-bound');
    assert.equal(local.size, spans);
  } finally {
    assert.equal((await a.stop()).code, 0, a.stderr);
    a.cleanup();
  }
});

test('a bad --otlp-forward-endpoint is refused at start with a clear message', async () => {
  for (const [v, re] of [['https://x:4318;ca=/nonexistent/ca.pem', /nonexistent\/ca\.pem/], ['ftp://x', /want grpc\[s\]:\/\/host:port/],
    ['grpc://x:4317;bogus=1', /unknown option bogus=1/], ['http://x:4318;header=NoValue', /header=Name=value/]]) {
    await assert.rejects(start({ args: ['--otlp-forward-endpoint', v] }), re);
  }
});
